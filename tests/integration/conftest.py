from __future__ import annotations

from typing import Iterator

import pytest
from nodes import DevNode


@pytest.fixture
def dev_node(tmp_path) -> Iterator[DevNode]:
    node = DevNode(tmp_path / "node").start()
    try:
        yield node
    finally:
        node.stop()
