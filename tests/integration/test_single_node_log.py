"""A real ``caudal dev`` node keeps every acknowledged record, in order, across a kill -9."""

from __future__ import annotations

import time

from nodes import DevNode, wait_until
from reading import read_all

from caudal.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition
from caudal.common.partitioner import partition_for_key

RECORDS = 100_000
PARTITIONS = 8


def _read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 120, partitions: int = PARTITIONS) -> dict[int, list]:
    return read_all(bootstrap, topic, partitions, expected, timeout_s)


def _check(by_partition: dict[int, list], acked: dict[tuple[int, int], bytes]) -> None:
    seen = 0
    for partition, records in by_partition.items():
        offsets = [r.offset for r in records]
        assert offsets == list(range(len(records))), f"partition {partition}: offsets not contiguous from 0"
        for r in records:
            assert partition_for_key(r.key, PARTITIONS) == partition, "key landed off its murmur2 partition"
            assert acked[(partition, r.offset)] == r.value
            assert list(r.headers) == [("trace", r.key), ("n", r.value[-6:])]
            seen += 1
    assert seen == len(acked), f"read {seen} records, {len(acked)} were acknowledged"


def test_hundred_thousand_keyed_records_survive_kill9(tmp_path) -> None:
    node = DevNode(tmp_path / "node").start()
    try:
        with AdminClient(bootstrap_servers=node.bootstrap) as admin:
            admin.create_topics([NewTopic("events", num_partitions=PARTITIONS)])["events"].result()
        producer = Producer(bootstrap_servers=node.bootstrap, acks="all", linger_ms=5)
        futures = []
        for i in range(RECORDS):
            key = f"user-{i % 977}".encode()
            value = f"payload-{i:06d}".encode()
            futures.append((key, value, producer.send("events", value=value, key=key, headers=[("trace", key), ("n", value[-6:])])))
        producer.flush()
        acked = {}
        for key, value, f in futures:
            md = f.result(timeout=30)
            assert md.partition == partition_for_key(key, PARTITIONS)
            acked[(md.partition, md.offset)] = value
        producer.close()
        assert len(acked) == RECORDS

        _check(_read_all(node.bootstrap, "events", RECORDS), acked)

        node.kill9()
        node.start()
        _check(_read_all(node.bootstrap, "events", RECORDS), acked)

        with AdminClient(bootstrap_servers=node.bootstrap) as admin:
            assert admin.describe_topics(["events"])["events"].partitions[0].leader == 1
    finally:
        node.stop()


def test_graceful_shutdown_exits_zero_and_keeps_data(tmp_path) -> None:
    node = DevNode(tmp_path / "node").start()
    try:
        with AdminClient(bootstrap_servers=node.bootstrap) as admin:
            admin.create_topics([NewTopic("t", num_partitions=1)])["t"].result()
        with Producer(bootstrap_servers=node.bootstrap) as producer:
            offsets = [producer.send("t", value=str(i).encode()).result(timeout=10).offset for i in range(10)]
        assert offsets == list(range(10))
        assert node.stop() == 0
        log_before_restart = node.log_path.stat().st_size
        node.start()
        by_partition = _read_all(node.bootstrap, "t", 10, timeout_s=30, partitions=1)
        assert [r.value for r in by_partition[0]] == [str(i).encode() for i in range(10)]
        restart_log = node.log_path.read_bytes()[log_before_restart:].decode()
        assert "event=fenced_for_shutdown" in node.log_path.read_text()
        assert "DUPLICATE_BROKER_REGISTRATION" not in restart_log, "a clean stop must not make the restart wait out a session"
    finally:
        node.stop()


def test_fetch_long_polls_until_data_arrives(dev_node) -> None:
    with AdminClient(bootstrap_servers=dev_node.bootstrap) as admin:
        admin.create_topics([NewTopic("lp", num_partitions=1)])["lp"].result()
    consumer = Consumer(bootstrap_servers=dev_node.bootstrap, fetch_max_wait_ms=20_000, auto_offset_reset="earliest")
    producer = Producer(bootstrap_servers=dev_node.bootstrap, linger_ms=0)
    try:
        tp = TopicPartition("lp", 0)
        consumer.assign([tp])
        assert consumer.position(tp) == 0
        assert consumer.poll(timeout_ms=300) == []
        started = time.monotonic()
        producer.send("lp", value=b"wake").result(timeout=10)
        records = wait_until(lambda: consumer.poll(timeout_ms=100), 10, what="the parked fetch to return the record")
        # The broker parked the fetch for up to 20 s; it must answer as soon as the record is durable.
        assert time.monotonic() - started < 5
        assert [r.value for r in records] == [b"wake"]
    finally:
        producer.close()
        consumer.close()
