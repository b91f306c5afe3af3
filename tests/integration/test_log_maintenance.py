"""Retention and compaction act on a real node's logs."""

from __future__ import annotations

import time
from typing import Iterator

import pytest
from nodes import DevNode, wait_until

from caudal.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition


@pytest.fixture
def node(tmp_path) -> Iterator[DevNode]:
    n = DevNode(tmp_path / "node", ["--retention-check-interval-ms", "200"]).start()
    try:
        yield n
    finally:
        n.stop()


def _read_from_beginning(bootstrap: str, tp: TopicPartition, end: int) -> list:
    consumer = Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        out: list = []
        for _ in range(100):
            out += consumer.poll(timeout_ms=100)
            if out and out[-1].offset >= end - 1:
                break
        return out
    finally:
        consumer.close()


def test_retention_bytes_deletes_whole_old_segments(node) -> None:
    tp = TopicPartition("metrics", 0)
    with AdminClient(bootstrap_servers=node.bootstrap) as admin:
        admin.create_topics(
            [NewTopic("metrics", 1, config={"segment.bytes": "1024", "retention.bytes": "2048"})]
        )["metrics"].result()
    with Producer(bootstrap_servers=node.bootstrap, linger_ms=0) as producer:
        for i in range(60):
            producer.send("metrics", value=f"{i:03d}".encode() * 30).result(timeout=10)
    consumer = Consumer(bootstrap_servers=node.bootstrap)
    try:
        consumer.assign([tp])
        start = wait_until(lambda: consumer.beginning_offsets([tp])[tp] or None, 20, what="retention to move the log start")
        assert 0 < start < 60
        assert consumer.end_offsets([tp])[tp] == 60
    finally:
        consumer.close()
    records = _read_from_beginning(node.bootstrap, tp, 60)
    assert [r.offset for r in records] == list(range(start, 60))
    assert records[-1].value == b"059" * 30


def test_retention_ms_expires_old_records(node) -> None:
    tp = TopicPartition("ephemeral", 0)
    with AdminClient(bootstrap_servers=node.bootstrap) as admin:
        admin.create_topics([NewTopic("ephemeral", 1, config={"segment.ms": "100", "retention.ms": "1000"})])["ephemeral"].result()
    with Producer(bootstrap_servers=node.bootstrap, linger_ms=0) as producer:
        old = int(time.time() * 1000) - 3_600_000
        for _ in range(5):
            producer.send("ephemeral", value=b"old", timestamp_ms=old).result(timeout=10)
    # A fresh record rolls the old segment (segment.ms elapsed), which retention then deletes.
    consumer = Consumer(bootstrap_servers=node.bootstrap)
    try:
        consumer.assign([tp])
        with Producer(bootstrap_servers=node.bootstrap, linger_ms=0) as producer:

            def expired() -> bool:
                producer.send("ephemeral", value=b"new").result(timeout=10)
                return consumer.beginning_offsets([tp])[tp] >= 5

            wait_until(expired, 20, interval_s=0.2, what="time-based retention to delete the hour-old segment")
    finally:
        consumer.close()


def test_compaction_keeps_latest_value_per_key(node) -> None:
    tp = TopicPartition("profiles", 0)
    with AdminClient(bootstrap_servers=node.bootstrap) as admin:
        admin.create_topics(
            [NewTopic("profiles", 1, config={"cleanup.policy": "compact", "segment.bytes": "2048", "delete.retention.ms": "0"})]
        )["profiles"].result()
    latest: dict[bytes, tuple[int, bytes | None]] = {}
    with Producer(bootstrap_servers=node.bootstrap, linger_ms=0) as producer:
        for round_ in range(20):
            for k in range(10):
                key = f"user-{k}".encode()
                value = None if (k == 3 and round_ == 19) else f"v{round_}-{k}".encode() * 4
                md = producer.send("profiles", key=key, value=value).result(timeout=10)
                latest[key] = (md.offset, value)
    end = 200

    def compacted() -> list | None:
        records = _read_from_beginning(node.bootstrap, tp, end)
        return records if len(records) < 100 else None

    records = wait_until(compacted, 30, interval_s=0.3, what="compaction to drop superseded values")
    offsets = [r.offset for r in records]
    assert offsets == sorted(set(offsets)), "offsets stay unique and ordered"
    by_key: dict[bytes, list] = {}
    for r in records:
        by_key.setdefault(r.key, []).append(r)
    for key, (offset, value) in latest.items():
        if value is None:
            continue
        last = by_key[key][-1]
        assert (last.offset, last.value) == (offset, value), f"{key!r} lost its latest value"
