"""A throwaway PostgreSQL 15 server for tests: ``initdb`` into a temp dir, ``postgres`` on a free loopback port.

The JDBC connectors are tested against a real PostgreSQL, started from
Debian's server binaries (``/usr/lib/postgresql/15/bin``) with trust
authentication for the ``postgres`` user and durability switched off (the
data is thrown away). PostgreSQL refuses to run as root, so under root the
server runs as the ``postgres`` system user through ``runuser``, in a
directory made for it under the system temp dir (pytest's ``tmp_path`` is
private to root). Readiness is polled with ``pg_isready`` until a deadline;
the server is stopped by the PID it writes to ``postmaster.pid`` (a fast
shutdown, SIGKILL if it does not end in time) and its directory removed.
Anything missing raises :class:`PostgresUnavailable` naming what to install,
so a test needing the server fails with that message instead of passing by.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from caudal.local_cluster import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DEBIAN_PACKAGES = ("postgresql-15", "postgresql-client-15")
SYSTEM_USER = "postgres"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class PostgresUnavailable(RuntimeError):
    """The server cannot be started here; the message says why and what to install."""


@dataclass
class PostgresServer:
    """A running server; connect as ``postgres`` (no password) to the ``postgres`` database."""

    root: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        """The SQLAlchemy URL (psycopg 3)."""
        return f"postgresql+psycopg://{SYSTEM_USER}@127.0.0.1:{self.port}/postgres"

    @property
    def jdbc_url(self) -> str:
        """The same database as a Confluent-style JDBC URL."""
        return f"jdbc:postgresql://127.0.0.1:{self.port}/postgres?user={SYSTEM_USER}"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Fast shutdown by the postmaster's PID; SIGKILL if it is still there after the timeout."""
        pid_file = self.root / "data" / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        if pid is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(timeout=10)


def _as_server_user() -> list[str]:
    """The command prefix that runs the server binaries as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root needs the {SYSTEM_USER} system user, which the Debian package "
            f"{DEBIAN_PACKAGES[0]} creates"
        ) from None
    return ["runuser", "-u", SYSTEM_USER, "--"]


def _server_dir() -> Path:
    root = Path(tempfile.mkdtemp(prefix="caudal-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(SYSTEM_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
    return root


def _initdb(prefix: list[str], data: Path) -> None:
    command = [*prefix, str(PG_BIN / "initdb"), "-D", str(data), "-U", SYSTEM_USER, "--auth=trust",
               "--no-locale", "--encoding=UTF8", "--no-sync"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise PostgresUnavailable(f"initdb did not finish in {exc.timeout} s") from exc
    if done.returncode != 0:
        raise PostgresUnavailable(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def _wait_ready(server: PostgresServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.proc.poll() is not None:
            raise PostgresUnavailable(f"postgres exited ({server.proc.returncode}):\n{server.log_tail()}")
        probe = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(server.port), "-U", SYSTEM_USER, "-t", "1"],
            capture_output=True, timeout=10, stdin=subprocess.DEVNULL,
        )
        if probe.returncode == 0:
            return
        if time.monotonic() >= deadline:
            raise PostgresUnavailable(f"postgres not ready after {timeout_s} s:\n{server.log_tail()}")
        time.sleep(0.1)


@contextlib.contextmanager
def running_postgres(timeout_s: float = READY_TIMEOUT_S) -> Iterator[PostgresServer]:
    """A fresh server for the ``with`` block, stopped and deleted after it."""
    missing = [name for name in ("initdb", "postgres", "pg_isready") if not (PG_BIN / name).exists()]
    if missing:
        raise PostgresUnavailable(
            f"{', '.join(missing)} not found in {PG_BIN}: install the Debian packages {' '.join(DEBIAN_PACKAGES)}"
        )
    prefix = _as_server_user()
    root = _server_dir()
    try:
        _initdb(prefix, root / "data")
        port = free_port()
        with open(root / "postgres.log", "ab") as log:
            proc = subprocess.Popen(
                [*prefix, str(PG_BIN / "postgres"), "-D", str(root / "data"), "-p", str(port), "-k", str(root),
                 "-h", "127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        server = PostgresServer(root, port, proc)
        try:
            _wait_ready(server, timeout_s)
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
