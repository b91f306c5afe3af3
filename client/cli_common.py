"""Helpers shared by the client command-line tools."""

from __future__ import annotations

import argparse
import sys

from caudal.common.errors import CaudalError


def add_bootstrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-server", default="localhost:9092", help="broker to connect to, HOST:PORT (default localhost:9092)"
    )


def parse_kv(items: list[str] | None, flag: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` (or comma-joined) → ``{"a": "1", "b": "2"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        for pair in item.split(","):
            if not pair:
                continue
            if "=" not in pair:
                raise SystemExit(f"{flag} expects key=value, got {pair!r}")
            k, v = pair.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def client_options(items: list[str] | None, flag: str) -> dict[str, object]:
    """``--producer-property`` style ``key=value`` pairs as SDK keyword options.

    Kafka's dotted names are accepted (``batch.size`` → ``batch_size``); ``true``/``false``
    become booleans and whole numbers integers, so the typed configs validate them.
    """
    out: dict[str, object] = {}
    for key, raw in parse_kv(items, flag).items():
        value: object = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        elif raw.lstrip("-").isdigit():
            value = int(raw)
        out[key.replace(".", "_")] = value
    return out


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """Columns padded to their widest cell and separated by a space, like Kafka's tools."""
    widths = [max(map(len, column)) for column in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print(" ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def fail(err: CaudalError) -> int:
    """Print a client error the way Kafka's tools do and return the exit status."""
    print(f"Error: {err}", file=sys.stderr)
    return 1
