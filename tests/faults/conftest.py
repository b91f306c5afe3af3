from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from nodes import running
from storage_faults import BrokerDisk, build_shim, with_storage_faults

from caudal.local_cluster import LocalCluster


@pytest.fixture
def cluster(tmp_path) -> Iterator[LocalCluster]:
    """3 controllers + 3 brokers, each a real process on loopback, stopped by PID afterwards."""
    with running(LocalCluster(tmp_path / "cluster", controllers=3, brokers=3)) as c:
        yield c


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[tuple[LocalCluster, dict[int, BrokerDisk]]]:
    """Like ``cluster``, the brokers running with the storage fault shim (power loss, full disk)."""
    cluster = LocalCluster(tmp_path / "cluster", controllers=3, brokers=3)
    disk_of = with_storage_faults(cluster, build_shim(tmp_path / "shim"))
    with running(cluster):
        yield cluster, disk_of
