"""``caudal controller``: one member of the Raft controller quorum."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import start_http_server

from caudal.common import event_loop, logs
from caudal.common.server_process import tune_garbage_collector
from caudal.common.tasks import stop_on_signals
from caudal.common.grpc_options import GRPC_OPTIONS
from caudal.common.node_identity import cluster_id_for, load_or_create
from caudal.controller import metrics
from caudal.controller.controller import Controller
from caudal.controller.liveness import DEFAULT_SESSION_TIMEOUT_MS
from caudal.controller.raft_quorum import RaftQuorum, parse_peers
from caudal.controller.service import ControllerService
from caudal.v1 import controller_pb2_grpc

log = logging.getLogger("caudal.controller")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("controller", help="run a member of the Raft controller quorum")
    p.add_argument("--node-id", type=int, required=True)
    p.add_argument("--raft", required=True, metavar="HOST:PORT", help="this member's Raft address")
    p.add_argument("--peers", required=True, metavar="ID@HOST:PORT,...", help="every quorum member's Raft address, this one included")
    p.add_argument("--listen", required=True, metavar="HOST:PORT", help="Controller API address for brokers")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--cluster-id", default=None, help="default: derived from --peers, the same on every member")
    p.add_argument("--session-timeout-ms", type=int, default=DEFAULT_SESSION_TIMEOUT_MS, help="broker session timeout (default 6000)")
    p.add_argument("--metrics-port", type=int, default=None)
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    logs.configure(f"controller-{args.node_id}", args.log_level)
    tune_garbage_collector()
    return event_loop.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    peers = parse_peers(args.peers)
    if args.node_id not in {p.node_id for p in peers}:
        raise SystemExit(f"--peers must include this node ({args.node_id})")
    cluster_id = load_or_create(data_dir, args.node_id, args.cluster_id or cluster_id_for(args.peers))
    controller = Controller(
        args.node_id,
        lambda publish: RaftQuorum(args.node_id, args.raft, peers, data_dir / "raft", publish),
        session_timeout_ms=args.session_timeout_ms,
        cluster_id=cluster_id,
    )
    server = grpc.aio.server(options=GRPC_OPTIONS)
    controller_pb2_grpc.add_ControllerServicer_to_server(ControllerService(controller), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    host, _, _ = args.listen.rpartition(":")
    port = server.add_insecure_port(args.listen)
    stop = stop_on_signals()
    controller.start()
    collector = metrics.register(controller)
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    if args.metrics_port is not None:
        start_http_server(args.metrics_port, addr=host)
    log.info("event=ready listen=%s:%d raft=%s cluster_id=%s", host, port, args.raft, cluster_id)
    try:
        await stop.wait()
        log.info("event=shutdown_requested")
    finally:
        await health_servicer.enter_graceful_shutdown()
        await server.stop(1.0)
        await controller.stop()
        metrics.REGISTRY.unregister(collector)
    return 0
