"""Structured logging: one ``key=value`` line per event, stamped with the node id."""

from __future__ import annotations

import logging
import sys


class _NodeFilter(logging.Filter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node
        return True


def configure(node: str, level: str = "INFO") -> None:
    """Send logs to stderr as ``ts level node=<id> logger msg``; safe to call twice."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_NodeFilter(node))
    handler.setFormatter(
        logging.Formatter("%(asctime)s level=%(levelname)s node=%(node)s logger=%(name)s %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
