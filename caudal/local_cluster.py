"""A multi-node cluster of real processes on this machine's loopback interface.

``caudal cluster up`` uses it to give users a 3-controller, 3-broker cluster
with one command; the integration and fault tests use it to start, kill,
pause and restart individual nodes by PID. Ports are free loopback ports
chosen at start; each node logs to ``<data-dir>/<node>.log`` and is ready once
it logs ``event=ready``.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

READY = re.compile(r"event=ready (?:bootstrap|listen)=(\S+)")
READY_TIMEOUT_S = 60.0


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_PORTS_BELOW_EPHEMERAL = 12_000
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nothing listens on right now, for a node to bind a moment later.

    The port comes from just below the kernel's ephemeral range: a port the OS hands
    out for ``bind(0)`` lies inside that range, which every outgoing connection on the
    machine also draws from, so between this check and the node's own bind a client
    connection could take it (seen as "Failed to bind" in busy test runs). Ports
    already handed out by this process are not handed out again.
    """
    low = _ephemeral_low()
    candidates = range(max(1024, low - _PORTS_BELOW_EPHEMERAL), low)
    for port in random.sample(candidates, min(len(candidates), 200)):
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    with socket.socket() as s:  # nothing free below the range: let the OS pick
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class NodeProcess:
    """One ``caudal controller`` or ``caudal broker`` process."""

    name: str
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    address: str = ""
    env: dict[str, str] = field(default_factory=dict)
    """Variables added to this process's environment (e.g. an LD_PRELOAD fault shim)."""
    _log_offset: int = field(default=0, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "caudal", *self.args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env} if self.env else None,
            )

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> str:
        """Block until the node logs ``event=ready``; returns its address."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited before it was ready:\n{self.log_tail()}")
            text = self.log_path.read_bytes()[self._log_offset :].decode(errors="replace")
            m = READY.search(text)
            if m:
                self.address = m.group(1)
                return self.address
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout_s} s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            os.kill(self.pid, sig)

    def kill9(self) -> None:
        """Crash the node and reap it."""
        if self.running:
            os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (a clean, controlled shutdown), SIGKILL if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)  # a paused node cannot handle SIGTERM
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class LocalCluster:
    """``controllers`` quorum members and ``brokers`` brokers, each its own process."""

    def __init__(
        self,
        data_dir: Path,
        controllers: int = 3,
        brokers: int = 3,
        session_timeout_ms: int | None = None,
        broker_args: list[str] | None = None,
        racks: list[str] | None = None,
        metrics: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.metrics_ports: dict[str, int] = {}
        """Node name -> its Prometheus port, when started with ``metrics=True``."""

        def metrics_args(name: str) -> list[str]:
            if not metrics:
                return []
            self.metrics_ports[name] = free_port()
            return ["--metrics-port", str(self.metrics_ports[name])]

        raft_ports = [free_port() for _ in range(controllers)]
        api_ports = [free_port() for _ in range(controllers)]
        peers = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(raft_ports))
        self.controller_addresses = [f"127.0.0.1:{p}" for p in api_ports]
        extra = ["--session-timeout-ms", str(session_timeout_ms)] if session_timeout_ms else []
        self.controllers = {
            i + 1: NodeProcess(
                f"controller-{i + 1}",
                ["controller", "--node-id", str(i + 1), "--raft", f"127.0.0.1:{raft_ports[i]}", "--peers", peers,
                 "--listen", self.controller_addresses[i], "--data-dir", str(self.data_dir / f"controller-{i + 1}"), *extra,
                 *metrics_args(f"controller-{i + 1}")],
                self.data_dir / f"controller-{i + 1}.log",
            )
            for i in range(controllers)
        }
        self.brokers: dict[int, NodeProcess] = {}
        for i in range(brokers):
            node_id = i + 1
            rack = ["--rack", racks[i % len(racks)]] if racks else []
            self.brokers[node_id] = NodeProcess(
                f"broker-{node_id}",
                ["broker", "--node-id", str(node_id), "--listen", f"127.0.0.1:{free_port()}",
                 "--controllers", ",".join(self.controller_addresses),
                 "--data-dir", str(self.data_dir / f"broker-{node_id}"), *rack, *(broker_args or []),
                 *metrics_args(f"broker-{node_id}")],
                self.data_dir / f"broker-{node_id}.log",
            )

    def start(self) -> "LocalCluster":
        for node in self.controllers.values():
            node.start()
        for node in self.controllers.values():
            node.wait_ready()
        for node in self.brokers.values():
            node.start()
        for node in self.brokers.values():
            node.wait_ready()
        return self

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.brokers.values() if n.address)

    def nodes(self) -> list[NodeProcess]:
        return [*self.brokers.values(), *self.controllers.values()]

    def stop(self) -> None:
        """Stop brokers first (controlled shutdown needs the controllers), then the quorum."""
        for node in self.brokers.values():
            node.stop()
        for node in self.controllers.values():
            node.stop()
