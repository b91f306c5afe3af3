"""MirrorMaker 2 between two real clusters: two ``caudal dev`` nodes, a standalone worker on the target.

The source connector must copy records byte for byte to the same partition of
``source.<topic>`` and keep the remote topics' partitions and configs in step;
the checkpoint connector must translate a group's committed source offsets so
that a consumer of that group on the target resumes where it left off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from connect_workers import ConnectWorker, rest
from nodes import DevNode, wait_until

from caudal.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition
from caudal.connect.mirror import Checkpoint, OffsetSync

PER_PARTITION = 120
BASE_TIMESTAMP = 1_700_000_000_000
BYTES = "org.apache.kafka.connect.converters.ByteArrayConverter"
Copied = dict[int, list[tuple[int, Any, Any, list, int]]]


@pytest.fixture
def clusters(tmp_path: Path) -> Iterator[tuple[DevNode, DevNode]]:
    source, target = DevNode(tmp_path / "source"), DevNode(tmp_path / "target")
    try:
        yield source.start(), target.start()
    finally:
        target.stop()
        source.stop()


def _connectors(source: DevNode, target: DevNode, **source_overrides: str) -> list[dict[str, str]]:
    common = {
        "source.cluster.bootstrap.servers": source.bootstrap, "target.cluster.bootstrap.servers": target.bootstrap,
        "key.converter": BYTES, "value.converter": BYTES,
    }
    return [
        {"name": "mirror-source", "connector.class": "caudal.connect.mirror.MirrorSourceConnector", "tasks.max": "2",
         "offset.lag.max": "10", **common, **source_overrides},
        {"name": "mirror-checkpoint", "connector.class": "caudal.connect.mirror.MirrorCheckpointConnector",
         "emit.checkpoints.interval.seconds": "1", "sync.group.offsets.enabled": "true",
         "sync.group.offsets.interval.seconds": "1", **common},
    ]


def _worker(tmp_path: Path, target: DevNode, connectors: list[dict[str, str]]) -> ConnectWorker:
    (tmp_path / "connect").mkdir(exist_ok=True)
    return ConnectWorker(tmp_path / "connect", target.bootstrap, connectors)


def _produce(bootstrap: str, topic: str, partitions: range, count: int) -> None:
    with Producer(bootstrap_servers=bootstrap) as producer:
        for p in partitions:
            for i in range(count):
                producer.send(topic, f"value-{p}-{i}".encode(), key=f"key-{i}".encode(), partition=p,
                              headers=[("trace", f"t-{p}-{i}".encode()), ("hop", b"\x00\xff")], timestamp_ms=BASE_TIMESTAMP + i)
        producer.flush(30)


def _read(bootstrap: str, topic: str, expected: dict[int, int], group: str | None = None) -> Copied:
    """``expected[p]`` records of each partition (from the start, or from the group's committed offsets)."""
    options: dict[str, Any] = {"group_id": group, "auto_offset_reset": "latest", "enable_auto_commit": False} if group else {
        "auto_offset_reset": "earliest"}
    consumer = Consumer(bootstrap_servers=bootstrap, **options)
    got: Copied = {p: [] for p in expected}

    def collect() -> bool:
        for r in consumer.poll(timeout_ms=200):
            got[r.partition].append((r.offset, r.key, r.value, list(r.headers), r.timestamp))
        return all(len(got[p]) >= n for p, n in expected.items())

    try:
        if group:
            consumer.subscribe([topic])
        else:
            consumer.assign([TopicPartition(topic, p) for p in expected])
        wait_until(collect, 60, what=f"{expected} records of {topic}")
    finally:
        consumer.close(autocommit=False)
    return got


def _commit_in_source(bootstrap: str, offsets: dict[int, int]) -> None:
    """Group ``billing`` consumes ``orders`` and commits ``offsets``, then leaves (as a consumer that fails over)."""
    consumer = Consumer(bootstrap_servers=bootstrap, group_id="billing", enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        consumer.subscribe(["orders"])
        wait_until(lambda: consumer.poll(timeout_ms=200) is not None and len(consumer.assignment()) == len(offsets), 30,
                   what="the group's assignment")
        consumer.commit({TopicPartition("orders", p): o for p, o in offsets.items()})
    finally:
        consumer.close(autocommit=False)


def _running(url: str, name: str, tasks: int) -> bool:
    status, body = rest(url, "GET", f"/connectors/{name}/status")
    return status == 200 and body["connector"]["state"] == "RUNNING" and [t["state"] for t in body["tasks"]] == ["RUNNING"] * tasks


def test_records_are_copied_and_a_group_fails_over_at_its_translated_offsets(clusters, tmp_path) -> None:
    source, target = clusters
    with AdminClient(bootstrap_servers=source.bootstrap) as admin:
        admin.create_topics([NewTopic("orders", 3, -1, {"retention.ms": "123456789"})])["orders"].result(30)
    _produce(source.bootstrap, "orders", range(3), PER_PARTITION)
    sent = _read(source.bootstrap, "orders", dict.fromkeys(range(3), PER_PARTITION))
    # Offset syncs come every offset.lag.max=10 records (upstream 0, 11, 22, ..., 55) and at the end of the copy
    # (119), so these three translate exactly: to the end, to one past a synced record, to the start.
    committed = {0: PER_PARTITION, 1: 56, 2: 0}
    _commit_in_source(source.bootstrap, committed)

    worker = _worker(tmp_path, target, _connectors(source, target)).run()
    try:
        copied = _read(target.bootstrap, "source.orders", dict.fromkeys(range(3), PER_PARTITION))
        assert copied == sent, "keys, values, headers, timestamps, partitions and offsets are copied unchanged"
        with AdminClient(bootstrap_servers=target.bootstrap) as admin:
            entry = admin.describe_configs(["source.orders"])["source.orders"]["retention.ms"]
            assert (entry.value, entry.is_default) == ("123456789", False)

            remote = {TopicPartition("source.orders", p): o for p, o in committed.items()}
            wait_until(
                lambda: {tp: om.offset for tp, om in admin.list_consumer_group_offsets("billing").items()} == remote, 60,
                what="the translated offsets of billing in the target",
            )

        resumed = _read(target.bootstrap, "source.orders", {0: 0, 1: PER_PARTITION - 56, 2: PER_PARTITION}, group="billing")
        assert resumed[1] == sent[1][56:] and resumed[2] == sent[2], "the group resumes where it left off, nothing re-read"
        assert resumed[0] == [] and _running(worker.url, "mirror-source", 2) and _running(worker.url, "mirror-checkpoint", 1)
    finally:
        worker.stop()

    raw = _read(target.bootstrap, "source.checkpoints.internal", {0: 3})[0]
    latest = {(c.group, c.topic, c.partition): c for c in (Checkpoint.decode(key, value) for _, key, value, _, _ in raw)}
    assert {k: (c.upstream, c.downstream) for k, c in latest.items()} == {
        ("billing", "source.orders", p): (o, o) for p, o in committed.items()}
    syncs = [OffsetSync.decode(key, value) for _, key, value, _, _ in _read(source.bootstrap, "mm2-offset-syncs.target.internal", {0: 3})[0]]
    assert all(s.topic == "orders" and s.upstream == s.downstream for s in syncs), "the remote topic started empty"
    with AdminClient(bootstrap_servers=source.bootstrap) as admin:
        assert admin.describe_configs(["mm2-offset-syncs.target.internal"])["mm2-offset-syncs.target.internal"]["cleanup.policy"].value == "compact"


def test_remote_topics_follow_new_partitions_new_topics_and_config_changes(clusters, tmp_path) -> None:
    source, target = clusters
    with AdminClient(bootstrap_servers=source.bootstrap) as admin:
        admin.create_topics([NewTopic("orders", 2)])["orders"].result(30)
    _produce(source.bootstrap, "orders", range(2), 5)
    worker = _worker(tmp_path, target, _connectors(source, target, **{"refresh.topics.interval.seconds": "1"})).run()
    try:
        _read(target.bootstrap, "source.orders", {0: 5, 1: 5})
        with AdminClient(bootstrap_servers=source.bootstrap) as admin:
            admin.create_topics([NewTopic("payments", 3)])["payments"].result(30)
            admin.create_partitions({"orders": 4})["orders"].result(30)
            admin.incremental_alter_configs({"orders": {"retention.ms": "987654321"}})["orders"].result(30)
        _produce(source.bootstrap, "payments", range(3), 4)
        copied = _read(target.bootstrap, "source.payments", dict.fromkeys(range(3), 4))
        assert {p: [r[2] for r in rs] for p, rs in copied.items()} == {p: [f"value-{p}-{i}".encode() for i in range(4)] for p in range(3)}
        with AdminClient(bootstrap_servers=target.bootstrap) as admin:
            wait_until(lambda: len(admin.describe_topics(["source.orders"])["source.orders"].partitions) == 4, 30,
                       what="source.orders to grow to 4 partitions")
            wait_until(lambda: admin.describe_configs(["source.orders"])["source.orders"]["retention.ms"].value == "987654321",
                       30, what="the changed retention.ms in the target")

        _produce(source.bootstrap, "orders", range(2, 4), 5)
        copied = _read(target.bootstrap, "source.orders", {2: 5, 3: 5})
        assert [r[2] for r in copied[3]] == [f"value-3-{i}".encode() for i in range(5)]
        assert _running(worker.url, "mirror-source", 2), "the tasks kept running while the topic grew"
    finally:
        worker.stop()
