"""Replicated partitions keep every acknowledged record through broker failures."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

from nodes import wait_until
from replicas import bytes_below, replica_view

from caudal.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition

PARTITIONS = 3


def _read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60) -> dict[int, list]:
    out: dict[int, list] = defaultdict(list)
    consumer = Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", max_poll_records=5000)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        deadline = time.monotonic() + timeout_s
        count = 0
        while count < expected and time.monotonic() < deadline:
            for r in consumer.poll(timeout_ms=300):
                out[r.partition].append(r)
                count += 1
    finally:
        consumer.close()
    return out


def _all_in_sync(admin: AdminClient, topic: str, replicas: int = 3) -> bool:
    return all(len(p.isr) == replicas for p in admin.describe_topics([topic])[topic].partitions)


def test_acked_records_survive_killing_the_leaders(cluster) -> None:
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        admin.create_topics([NewTopic("orders", PARTITIONS, 3, config={"min.insync.replicas": "2"})])["orders"].result()
        wait_until(lambda: _all_in_sync(admin, "orders"), 20, what="every follower in the ISR")
        acked: dict[tuple[int, int], bytes] = {}
        with Producer(bootstrap_servers=cluster.bootstrap, acks="all", retries=50, request_timeout_ms=5000, delivery_timeout_ms=60000) as producer:
            futures = [(f"v{i}".encode(), producer.send("orders", value=f"v{i}".encode(), key=str(i % 50).encode())) for i in range(3000)]
            producer.flush()
            for value, f in futures:
                md = f.result(timeout=60)
                acked[(md.partition, md.offset)] = value
        leaders = {p.leader for p in admin.describe_topics(["orders"])["orders"].partitions}
        victim = min(leaders)
        cluster.brokers[victim].kill9()
        wait_until(
            lambda: all(p.leader not in (-1, victim) for p in admin.describe_topics(["orders"])["orders"].partitions),
            15, what="new leaders for the dead broker's partitions",
        )
        got = _read_all(cluster.bootstrap, "orders", len(acked))
        seen = {(r.partition, r.offset): r.value for recs in got.values() for r in recs}
        missing = [k for k in acked if seen.get(k) != acked[k]]
        assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:5]}"
        for recs in got.values():
            offsets = [r.offset for r in recs]
            assert offsets == sorted(set(offsets)), "no duplicates, in order"

        cluster.brokers[victim].start()
        cluster.brokers[victim].wait_ready()
        wait_until(lambda: _all_in_sync(admin, "orders"), 30, what="the restarted broker back in every ISR")
        topic_id = uuid.UUID(admin.describe_topics(["orders"])["orders"].topic_id).bytes
    _assert_replicas_identical(cluster, topic_id, min_hw=len(acked) // PARTITIONS // 2)


def _assert_replicas_identical(cluster, topic_id: bytes, min_hw: int) -> None:
    """Stop the brokers; every replica must hold the same bytes below the leader's high watermark.

    A follower learns the HW on its next fetch, so its own checkpoint may lag; what
    must hold is that everything committed (below the highest HW) is on every replica.
    """
    for node in cluster.brokers.values():
        node.stop()
    for partition in range(PARTITIONS):
        views = [replica_view(node.log_path.parent / node.name, topic_id, partition) for node in cluster.brokers.values()]
        try:
            committed = max(hw for hw, _, _ in views)
            assert committed >= min_hw
            contents = {bytes_below(plog, committed) for _, plog, _ in views}
            assert len(contents) == 1, f"replicas of partition {partition} differ below the HW {committed}"
        finally:
            for _, _, store in views:
                store.close()
