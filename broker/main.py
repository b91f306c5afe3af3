"""``caudal broker``: one broker of a multi-node cluster."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from prometheus_client import start_http_server

from caudal.broker.controller_channel import ControllerChannel
from caudal.broker.group import GroupConfig
from caudal.broker.isr_manager import DEFAULT_REPLICA_LAG_TIME_MAX_MS
from caudal.broker.server import DEFAULT_MAINTENANCE_INTERVAL_MS, BrokerServer
from caudal.common import event_loop, logs
from caudal.common.server_process import tune_garbage_collector
from caudal.common.tasks import stop_on_signals

log = logging.getLogger("caudal.broker")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("broker", help="run a broker of a multi-node cluster")
    p.add_argument("--node-id", type=int, required=True)
    p.add_argument("--listen", required=True, metavar="HOST:PORT", help="client address (port 0 picks a free one)")
    p.add_argument("--controllers", required=True, metavar="HOST:PORT,...", help="every controller's --listen address")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--rack", default="", help="rack or zone, for rack-aware replica placement")
    p.add_argument("--metrics-port", type=int, default=None)
    p.add_argument("--retention-check-interval-ms", type=int, default=DEFAULT_MAINTENANCE_INTERVAL_MS)
    p.add_argument(
        "--replica-lag-time-max-ms", type=int, default=DEFAULT_REPLICA_LAG_TIME_MAX_MS,
        help="drop a follower from the ISR after this long without catching up (default 30000)",
    )
    add_group_and_listener_arguments(p, GroupConfig.initial_rebalance_delay_ms)
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=main)


def add_group_and_listener_arguments(p: argparse.ArgumentParser, initial_rebalance_delay_ms: int) -> None:
    """Flags ``caudal broker`` and ``caudal dev`` share (the latter with no initial rebalance delay)."""
    p.add_argument(
        "--group-initial-rebalance-delay-ms", type=int, default=initial_rebalance_delay_ms,
        help=f"how long a new group's first rebalance waits for more members to join (default {initial_rebalance_delay_ms})",
    )
    p.add_argument(
        "--offsets-retention-minutes", type=int, default=GroupConfig.offsets_retention_ms // 60_000,
        help="how long an empty group keeps its committed offsets (default 10080 = 7 days)",
    )
    p.add_argument(
        "--advertised-listener", default=None, metavar="HOST:PORT",
        help="the address clients and brokers are told to use, if not the listening one (Kafka's advertised.listeners)",
    )


def group_config(args: argparse.Namespace) -> GroupConfig:
    return GroupConfig(
        initial_rebalance_delay_ms=args.group_initial_rebalance_delay_ms,
        offsets_retention_ms=args.offsets_retention_minutes * 60_000,
    )


def main(args: argparse.Namespace) -> int:
    logs.configure(f"broker-{args.node_id}", args.log_level)
    tune_garbage_collector()
    return event_loop.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    host, _, port = args.listen.rpartition(":")
    channel = ControllerChannel([a.strip() for a in args.controllers.split(",") if a.strip()])
    broker = BrokerServer(
        args.node_id, host, int(port), Path(args.data_dir), rack=args.rack,
        maintenance_interval_ms=args.retention_check_interval_ms, replica_lag_time_max_ms=args.replica_lag_time_max_ms,
        group_config=group_config(args),
        advertised_listener=args.advertised_listener,
    )
    stop = stop_on_signals()
    broker.on_storage_offline = stop.set
    try:
        bound = await broker.start(channel, channel)
        if args.metrics_port is not None:
            start_http_server(args.metrics_port, addr=host)
        log.info("event=ready bootstrap=%s:%d node=%d cluster_id=%s", host, bound, args.node_id, channel.cluster_id)
        await stop.wait()
        log.info("event=shutdown_requested storage_failed=%s", broker.storage_failed)
    finally:
        await broker.stop()
        await channel.close()
    return 1 if broker.storage_failed else 0
