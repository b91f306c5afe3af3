"""Start real ``caudal`` server processes for integration and fault tests.

Each node is a subprocess of the installed ``caudal`` command, listening on a
free loopback port chosen by the OS (``--port 0``); the bound port is read back
from the node's one-line ``event=ready`` log. Every wait is bounded, and every
process is stopped by its PID.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

READY = re.compile(r"event=ready bootstrap=(\S+)")


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


class DevNode:
    """A ``caudal dev`` process with its own data dir and log file."""

    def __init__(self, data_dir: Path, extra_args: list[str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.bootstrap = ""
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._log_offset = 0

    def start(self, timeout_s: float = 30.0) -> "DevNode":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        cmd = [sys.executable, "-m", "caudal", "dev", "--data-dir", str(self.data_dir), "--port", "0", *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

        def ready() -> str | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"caudal dev exited with {self.proc.returncode}:\n{self.log_tail()}")
            text = self.log_path.read_bytes()[self._log_offset :].decode(errors="replace")
            m = READY.search(text)
            return m.group(1) if m else None

        self.bootstrap = wait_until(ready, timeout_s, what="caudal dev to log event=ready")
        return self

    def log_tail(self, n: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        """Crash the node (SIGKILL) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode
