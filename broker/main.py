"""``caudal broker``: one broker of a multi-node cluster.

When a write fails (disk full, I/O error) the broker's store goes offline: the
broker hands its leaderships and ISR places to the other replicas (controlled
shutdown) and stops serving, but the process stays up. It probes its data
directory until a write and sync succeed there again, then starts over in the
same process, as a restart would: it reopens its logs, registers with a new
incarnation, catches up from the leaders and rejoins the ISRs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
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

STORAGE_PROBE_INTERVAL_S = 2.0
"""How often a broker whose store went offline tries a write in its data directory."""


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
    stop = stop_on_signals()
    if args.metrics_port is not None:
        start_http_server(args.metrics_port, addr=host)
    try:
        while await _serve_until_storage_fails(args, host, int(port), channel, stop):
            if stop.is_set() or not await _wait_until_writable(Path(args.data_dir), args.node_id, stop):
                return 1
        return 0
    finally:
        await channel.close()


async def _serve_until_storage_fails(
    args: argparse.Namespace, host: str, port: int, channel: ControllerChannel, stop: asyncio.Event
) -> bool:
    """Run one incarnation of the broker until asked to stop or its store fails; whether it failed."""
    broker = BrokerServer(
        args.node_id, host, port, Path(args.data_dir), rack=args.rack,
        maintenance_interval_ms=args.retention_check_interval_ms, replica_lag_time_max_ms=args.replica_lag_time_max_ms,
        group_config=group_config(args),
        advertised_listener=args.advertised_listener,
    )
    offline = asyncio.Event()
    broker.on_storage_offline = offline.set
    try:
        bound = await broker.start(channel, channel)
        log.info("event=ready bootstrap=%s:%d node=%d cluster_id=%s", host, bound, args.node_id, channel.cluster_id)
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(offline.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        log.info("event=shutdown_requested storage_failed=%s", broker.storage_failed)
    finally:
        await broker.stop()
    return broker.storage_failed


async def _wait_until_writable(data_dir: Path, node_id: int, stop: asyncio.Event) -> bool:
    """Probe ``data_dir`` until a write and sync succeed there; False if asked to stop first.

    The failed incarnation is dropped first: RocksDB's lock on the directory goes with
    the last reference to its database.
    """
    gc.collect()
    probe = data_dir / ".storage-probe"
    log.warning("event=storage_waiting broker=%d data_dir=%s", node_id, data_dir)
    while not stop.is_set():
        try:
            _write_and_sync(probe)
        except OSError as exc:
            log.debug("event=storage_probe_failed broker=%d error=%s", node_id, exc)
            try:
                await asyncio.wait_for(stop.wait(), STORAGE_PROBE_INTERVAL_S)
            except asyncio.TimeoutError:
                pass
            continue
        log.warning("event=storage_writable broker=%d data_dir=%s", node_id, data_dir)
        return True
    return False


def _write_and_sync(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"caudal storage probe\n" * 256)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
