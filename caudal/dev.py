"""``caudal dev``: a single-node cluster (one controller + one broker) in one process.

Like Kafka's KRaft combined mode: the controller keeps metadata in a fsynced
journal under ``<data-dir>/controller`` and the broker keeps partitions in
RocksDB under ``<data-dir>/broker``. Both run on one asyncio loop and use the
same code paths as a multi-node cluster — the broker registers, heartbeats and
follows the metadata stream — only the transport between them is a function
call instead of gRPC.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from prometheus_client import start_http_server

from caudal.broker.main import add_group_and_listener_arguments, group_config
from caudal.broker.server import DEFAULT_MAINTENANCE_INTERVAL_MS, BrokerServer
from caudal.common import event_loop, logs
from caudal.common.server_process import tune_garbage_collector
from caudal.common.tasks import stop_on_signals
from caudal.common.node_identity import load_or_create
from caudal.controller.control import ControllerDefaults
from caudal.controller.controller import Controller
from caudal.controller.local_quorum import LocalQuorum

log = logging.getLogger("caudal.dev")

NODE_ID = 1


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dev", help="run a single-node cluster (controller + broker) in this process")
    p.add_argument("--data-dir", default="./caudal-data", help="where logs and metadata live (default ./caudal-data)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on and advertise (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9092, help="client port (default 9092; 0 picks a free one)")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    p.add_argument(
        "--retention-check-interval-ms",
        type=int,
        default=DEFAULT_MAINTENANCE_INTERVAL_MS,
        help="how often retention and compaction run (log.retention.check.interval.ms, default 300000)",
    )
    # no initial rebalance delay here, as in Kafka's development server.properties
    add_group_and_listener_arguments(p, 0)
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    logs.configure(f"dev-{NODE_ID}", args.log_level)
    tune_garbage_collector()
    return event_loop.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    cluster_id = load_or_create(data_dir, NODE_ID)
    controller = Controller(
        NODE_ID,
        lambda publish: LocalQuorum(NODE_ID, data_dir / "controller", publish),
        ControllerDefaults(default_replication_factor=1),
        cluster_id=cluster_id,
    )
    broker = BrokerServer(
        NODE_ID, args.host, args.port, data_dir / "broker", maintenance_interval_ms=args.retention_check_interval_ms,
        group_config=group_config(args),
        advertised_listener=args.advertised_listener,
    )
    stop = stop_on_signals()
    broker.on_storage_offline = stop.set
    controller.start()
    try:
        port = await broker.start(controller, controller)
        if args.metrics_port is not None:
            start_http_server(args.metrics_port, addr=args.host)
        log.info(
            "event=ready bootstrap=%s:%d data_dir=%s cluster_id=%s metrics_port=%s",
            args.host, port, data_dir, cluster_id, args.metrics_port,
        )
        await stop.wait()
        log.info("event=shutdown_requested storage_failed=%s", broker.storage_failed)
    finally:
        await broker.stop()
        await controller.stop()
    return 1 if broker.storage_failed else 0
