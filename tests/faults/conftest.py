from __future__ import annotations

from typing import Iterator

import pytest

from caudal.local_cluster import LocalCluster


@pytest.fixture
def cluster(tmp_path) -> Iterator[LocalCluster]:
    """3 controllers + 3 brokers, each a real process on loopback, stopped by PID afterwards."""
    c = LocalCluster(tmp_path / "cluster", controllers=3, brokers=3)
    try:
        c.start()
        yield c
    finally:
        for node in c.nodes():
            node.kill9()
