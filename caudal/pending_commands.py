"""Subcommands whose implementation lands with later parts of the product.

They are registered so ``caudal --help`` shows the whole command set; running
one says what is missing and exits 2.
"""

from __future__ import annotations

import argparse
import sys

_PENDING = {
    "groups": "list, describe and reset consumer groups",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    for name, help_text in _PENDING.items():
        p = subparsers.add_parser(name, help=f"{help_text} (not yet available)", add_help=True)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=_not_yet, pending=name)


def _not_yet(args: argparse.Namespace) -> int:
    print(f"caudal {args.pending}: not available in this version; use `caudal dev` for a single-node cluster", file=sys.stderr)
    return 2
