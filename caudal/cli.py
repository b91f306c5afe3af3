"""The ``caudal`` command: one entry point, subcommands registered by their packages."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

_COMMAND_MODULES = [
    "caudal.dev",
    "caudal.controller.main",
    "caudal.broker.main",
    "caudal.cluster_command",
    "caudal.client.topics_command",
    "caudal.client.groups_command",
    "caudal.client.status_command",
    "caudal.client.console",
    "caudal.client.bench",
    "caudal.connect.main",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caudal", description="caudal event-streaming platform")
    parser.add_argument("--version", action="version", version=f"caudal {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def _version() -> str:
    from caudal import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
