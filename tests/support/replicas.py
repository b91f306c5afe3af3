"""Read a stopped broker's partition logs straight from its RocksDB, to compare replicas."""

from __future__ import annotations

from pathlib import Path

from caudal.broker.log import PartitionLog
from caudal.broker.storage import Store
from caudal.common.topic_config import TopicConfig


def replica_view(broker_data_dir: Path, topic_id: bytes, partition: int) -> tuple[int, PartitionLog, Store]:
    """(high watermark, log, store) of one partition on a stopped broker; close the store after use."""
    store = Store(broker_data_dir / "log")
    plog = PartitionLog.open(store, topic_id, partition, TopicConfig(), lambda: 0)
    return plog.high_watermark, plog, store


def bytes_below(plog: PartitionLog, offset: int) -> bytes:
    """Stored batches from the log start up to ``offset`` (exclusive, a batch boundary)."""
    return plog.read(plog.log_start_offset, 1 << 30, offset) if offset > plog.log_start_offset else b""
