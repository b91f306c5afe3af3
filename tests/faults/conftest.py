from __future__ import annotations

from typing import Iterator

import pytest
from nodes import running

from caudal.local_cluster import LocalCluster


@pytest.fixture
def cluster(tmp_path) -> Iterator[LocalCluster]:
    """3 controllers + 3 brokers, each a real process on loopback, stopped by PID afterwards."""
    with running(LocalCluster(tmp_path / "cluster", controllers=3, brokers=3)) as c:
        yield c
