"""Start real ``caudal dev`` processes for integration tests, and poll with a deadline.

A node is a :class:`caudal.local_cluster.NodeProcess` (the same process handling
``caudal cluster up`` and the fault tests use) listening on a free loopback port
chosen by the OS (``--port 0``); the bound port is read back from its one-line
``event=ready`` log. Every wait is bounded, and every process is stopped by its PID.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from caudal.local_cluster import LocalCluster, NodeProcess


def wait_until(predicate, timeout_s: float, interval_s: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


@contextmanager
def running(cluster: LocalCluster) -> Iterator[LocalCluster]:
    """Start every node of ``cluster``; on the way out kill -9 each by its PID, whatever happened."""
    try:
        cluster.start()
        yield cluster
    finally:
        for node in cluster.nodes():
            node.kill9()


class DevNode(NodeProcess):
    """A ``caudal dev`` process with its own data dir and log file; ``start`` waits until it is ready."""

    def __init__(self, data_dir: Path, extra_args: list[str] | None = None) -> None:
        data_dir = Path(data_dir)
        super().__init__(
            data_dir.name,
            ["dev", "--data-dir", str(data_dir), "--port", "0", *(extra_args or [])],
            data_dir.parent / f"{data_dir.name}.log",
        )
        self.data_dir = data_dir

    def start(self, timeout_s: float = 30.0) -> "DevNode":  # type: ignore[override]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        super().start()
        self.wait_ready(timeout_s)
        return self

    @property
    def bootstrap(self) -> str:
        return self.address
