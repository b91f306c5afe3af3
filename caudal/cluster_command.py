"""``caudal cluster up``: a local multi-node cluster for trying replication and failover."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from caudal.local_cluster import LocalCluster


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cluster", help="run a local multi-node cluster (separate processes on loopback)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start controllers and brokers; Ctrl-C stops them all")
    up.add_argument("--controllers", type=int, default=3)
    up.add_argument("--brokers", type=int, default=3)
    up.add_argument("--data-dir", default="./caudal-cluster")
    up.add_argument("--session-timeout-ms", type=int, default=None)
    up.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.controllers < 1 or args.brokers < 1:
        raise SystemExit("need at least one controller and one broker")
    cluster = LocalCluster(Path(args.data_dir), args.controllers, args.brokers, args.session_timeout_ms)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        cluster.start()
        print(f"bootstrap servers: {cluster.bootstrap}", flush=True)
        print(f"controllers: {','.join(cluster.controller_addresses)}", flush=True)
        for node in cluster.nodes():
            print(f"{node.name}: pid {node.pid}, log {node.log_path}", flush=True)
        stop.wait()
    finally:
        cluster.stop()
    return 0
