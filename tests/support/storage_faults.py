"""Storage faults for broker processes: power loss and a full disk (fault matrix F9 and F11).

Brokers run with ``storage_faults.c`` preloaded. For power loss it logs the size
every synced file had when its sync began; a power cut keeps exactly that much of
each file, so after kill -9 each RocksDB write-ahead log (``NNNNNN.log``) is cut
back to its last synced size, or emptied if it was never synced ("truncate the WAL
to the last sync"). Other RocksDB files (tables, manifest) are synced by RocksDB when
written, and none is written between the last sync and the kill under the small loads
these tests run. For a full disk, writes under the broker's data dir fail with ENOSPC
while a flag file exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from caudal.local_cluster import LocalCluster, NodeProcess

_SOURCE = Path(__file__).resolve().parent / "storage_faults.c"
_WAL_NAME = re.compile(r"^\d+\.log$")


def build_shim(out_dir: Path) -> Path:
    """Compile the shim with the system C compiler (``.ci/run`` installs one)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("storage fault tests need a C compiler (cc) to build their LD_PRELOAD shim")
    out_dir.mkdir(parents=True, exist_ok=True)
    shim = out_dir / "libstorage_faults.so"
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(shim), str(_SOURCE), "-ldl"], check=True, capture_output=True)
    return shim


@dataclass(frozen=True)
class BrokerDisk:
    """One broker's data dir, as the shim sees it."""

    node: NodeProcess

    @property
    def data_dir(self) -> Path:
        return self.node.log_path.parent / self.node.name

    @property
    def ledger(self) -> Path:
        return self.node.log_path.with_suffix(".syncs")

    @property
    def full_flag(self) -> Path:
        return self.node.log_path.with_suffix(".disk-full")

    def fill(self) -> None:
        """From now on every write to this broker's data dir fails with ENOSPC."""
        self.full_flag.touch()

    def free(self) -> None:
        self.full_flag.unlink(missing_ok=True)

    def wals(self) -> list[Path]:
        """The RocksDB write-ahead logs, oldest first."""
        return sorted(p for p in (self.data_dir / "log").iterdir() if _WAL_NAME.match(p.name))

    def cut_to_last_sync(self) -> int:
        """Cut every write-ahead log back to what its last sync covered; bytes dropped."""
        synced = _last_synced_sizes(self.ledger)
        dropped = 0
        for wal in self.wals():
            size = wal.stat().st_size
            keep = min(size, synced.get(os.path.realpath(wal), 0))
            if keep < size:
                os.truncate(wal, keep)
                dropped += size - keep
        return dropped


def flip_a_bit_every(path: Path, stride: int) -> int:
    """Flip one bit in every ``stride`` bytes of ``path`` (bit rot); how many were flipped."""
    data = bytearray(path.read_bytes())
    positions = range(stride // 2, len(data), stride)
    for n, pos in enumerate(positions):
        data[pos] ^= 1 << (n % 8)
    path.write_bytes(bytes(data))
    return len(positions)


def with_storage_faults(cluster: LocalCluster, shim: Path) -> dict[int, BrokerDisk]:
    """Preload the shim into every broker of ``cluster`` (before it starts); broker id -> its disk."""
    disks = {}
    for node_id, node in cluster.brokers.items():
        disk = disks[node_id] = BrokerDisk(node)
        preload = " ".join(filter(None, [str(shim), os.environ.get("LD_PRELOAD", "")]))
        node.env = {
            "LD_PRELOAD": preload,
            "SYNC_LEDGER": str(disk.ledger),
            "DISK_FULL": str(disk.full_flag),
            "DISK_FULL_DIR": os.path.realpath(disk.data_dir),
        }
    return disks


def _last_synced_sizes(ledger: Path) -> dict[str, int]:
    """Real path -> size covered by the last successful sync of that file."""
    sizes: dict[str, int] = {}
    if ledger.exists():
        for line in ledger.read_text().splitlines():
            size, _, path = line.partition(" ")
            if path:
                sizes[path] = int(size)
    return sizes
