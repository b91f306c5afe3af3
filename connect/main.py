"""``caudal connect standalone|distributed``: run a Connect worker (Kafka's connect-* scripts).

Only the argument parser lives here: every ``caudal`` command builds the whole
parser, so the worker machinery (and the database drivers its connectors
import) loads only when a worker actually runs (``connect/runner.py``).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("connect", help="run a Kafka-Connect-compatible worker")
    modes = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    standalone = modes.add_parser("standalone", help="one worker; offsets in a local file")
    standalone.add_argument("worker_properties", help="worker config (bootstrap.servers, offset.storage.file.filename, ...)")
    standalone.add_argument("connector_properties", nargs="*", help="connector configs to start")
    distributed = modes.add_parser("distributed", help="a member of a worker group; state in compacted topics")
    distributed.add_argument("worker_properties", help="worker config (bootstrap.servers, group.id, *.storage.topic, ...)")
    for mode in (standalone, distributed):
        mode.add_argument("--log-level", default="INFO")
        mode.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from caudal.connect.runner import run

    return run(args)
