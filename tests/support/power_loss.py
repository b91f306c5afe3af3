"""Emulated power loss for broker processes (fault matrix F9: "truncate the WAL to the last sync").

Brokers run with ``sync_ledger.c`` preloaded, which logs the size every synced file
had when its sync began. A power cut keeps exactly that much of each file, so after
kill -9 each RocksDB write-ahead log (``NNNNNN.log``) is cut back to its last synced
size, or emptied if it was never synced. Other RocksDB files (tables, manifest) are
synced by RocksDB when written, and none is written between the last sync and the kill
under the small loads these tests run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

_SOURCE = Path(__file__).resolve().parent / "sync_ledger.c"
_WAL_NAME = re.compile(r"^\d+\.log$")


def build_sync_ledger(out_dir: Path) -> Path:
    """Compile the shim with the system C compiler (``.ci/run`` installs one)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("power-loss tests need a C compiler (cc) to build their LD_PRELOAD shim")
    out_dir.mkdir(parents=True, exist_ok=True)
    shim = out_dir / "libsync_ledger.so"
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(shim), str(_SOURCE), "-ldl"], check=True, capture_output=True)
    return shim


def sync_ledger_env(shim: Path, ledger: Path) -> dict[str, str]:
    """Environment for a process whose syncs ``ledger`` should record."""
    preload = " ".join(filter(None, [str(shim), os.environ.get("LD_PRELOAD", "")]))
    return {"LD_PRELOAD": preload, "SYNC_LEDGER": str(ledger)}


def last_synced_sizes(ledger: Path) -> dict[str, int]:
    """Real path -> size covered by the last successful sync of that file."""
    sizes: dict[str, int] = {}
    if ledger.exists():
        for line in ledger.read_text().splitlines():
            size, _, path = line.partition(" ")
            if path:
                sizes[path] = int(size)
    return sizes


def cut_to_last_sync(store_dir: Path, ledger: Path) -> int:
    """Cut every write-ahead log in ``store_dir`` back to what its last sync covered; bytes dropped."""
    synced = last_synced_sizes(ledger)
    dropped = 0
    for wal in sorted(store_dir.iterdir()):
        if not _WAL_NAME.match(wal.name):
            continue
        size = wal.stat().st_size
        keep = min(size, synced.get(os.path.realpath(wal), 0))
        if keep < size:
            os.truncate(wal, keep)
            dropped += size - keep
    return dropped
