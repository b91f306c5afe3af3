"""Replicated partitions keep every acknowledged record through broker failures."""

from __future__ import annotations

import signal
import uuid

import pytest
from invariants import assert_acks_stored_once
from load import ProducerLoad
from nodes import running, wait_until
from reading import read_all
from replicas import all_in_sync, assert_replicas_identical, in_sync_on_every_broker, replicated_topic

from caudal.client import AdminClient, Producer
from caudal.common.errors import NotEnoughReplicasError
from caudal.local_cluster import LocalCluster

PARTITIONS = 3


def _read_all(bootstrap: str, topic: str, expected: int) -> dict[int, list]:
    return read_all(bootstrap, topic, PARTITIONS, expected, timeout_s=60)


def test_acked_records_survive_killing_the_leaders(cluster) -> None:
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        replicated_topic(admin, "orders", PARTITIONS)
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
        assert_acks_stored_once(_read_all(cluster.bootstrap, "orders", len(acked)), acked)

        cluster.brokers[victim].start()
        cluster.brokers[victim].wait_ready()
        wait_until(lambda: all_in_sync(admin, "orders"), 30, what="the restarted broker back in every ISR")
        topic_id = uuid.UUID(admin.describe_topics(["orders"])["orders"].topic_id).bytes
    assert_replicas_identical(cluster, topic_id, PARTITIONS, min_hw=len(acked) // PARTITIONS // 2)


def _read_values(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    got = _read_all(bootstrap, topic, expected)
    return [r.value for recs in got.values() for r in recs]


def test_rolling_restart_under_load_loses_nothing(cluster) -> None:
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        replicated_topic(admin, "rolling", PARTITIONS)
        load = ProducerLoad(cluster.bootstrap, "rolling", rate=500).start()
        wait_until(lambda: load.acked_count() > 200, 20, what="the load to get going")
        for node_id, node in cluster.brokers.items():
            assert node.stop() == 0, f"broker {node_id} did not stop cleanly"
            node.start()
            node.wait_ready()
            wait_until(lambda: all_in_sync(admin, "rolling"), 30, what=f"broker {node_id} back in every ISR")
        result = load.stop()
    assert not result.errors, f"errors surfaced to the producer: {result.errors[:3]}"
    assert len(result.acked) == result.sent
    values = set(_read_values(cluster.bootstrap, "rolling", len(result.acked)))
    missing = [v for v in result.acked.values() if v not in values]
    assert not missing, f"{len(missing)} acknowledged records lost"


def test_two_replicas_down_refuses_acks_all_then_recovers(cluster) -> None:
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        replicated_topic(admin, "strict", PARTITIONS)
        with Producer(bootstrap_servers=cluster.bootstrap, acks="all") as producer:
            before = [producer.send("strict", value=f"b{i}".encode(), partition=0).result(timeout=30) for i in range(20)]
        leader = admin.describe_topics(["strict"])["strict"].partitions[0].leader
        victims = [b for b in cluster.brokers if b != leader]
        for b in victims:
            cluster.brokers[b].kill9()
        wait_until(
            lambda: admin.describe_topics(["strict"])["strict"].partitions[0].isr == [leader], 15,
            what="the ISR to shrink to the surviving leader",
        )
        with Producer(bootstrap_servers=cluster.bootstrap, acks="all", retries=0) as producer:
            with pytest.raises(NotEnoughReplicasError):
                producer.send("strict", value=b"refused", partition=0).result(timeout=30)
        cluster.brokers[victims[0]].start()
        cluster.brokers[victims[0]].wait_ready()
        with Producer(bootstrap_servers=cluster.bootstrap, acks="all", delivery_timeout_ms=60_000) as producer:
            after = producer.send("strict", value=b"accepted", partition=0).result(timeout=60)
    values = _read_values(cluster.bootstrap, "strict", len(before) + 1)
    assert [v for v in values if v.startswith(b"b")] == [f"b{i}".encode() for i in range(20)]
    assert b"refused" not in values and b"accepted" in values
    assert after.offset == before[-1].offset + 1


def test_lagging_follower_leaves_and_rejoins_the_isr(tmp_path) -> None:
    cluster = LocalCluster(
        tmp_path / "cluster", 3, 3, session_timeout_ms=20_000, broker_args=["--replica-lag-time-max-ms", "1500"]
    )
    with running(cluster):
        with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
            replicated_topic(admin, "lag", PARTITIONS)
            partition = admin.describe_topics(["lag"])["lag"].partitions[0]
            follower = next(r for r in partition.replicas if r != partition.leader)
            load = ProducerLoad(cluster.bootstrap, "lag", rate=300, acks="all").start()
            cluster.brokers[follower].signal(signal.SIGSTOP)
            try:
                wait_until(
                    lambda: follower not in admin.describe_topics(["lag"])["lag"].partitions[0].isr, 15,
                    what="the leader to drop the stalled follower from the ISR",
                )
                # With the ISR down to two, acks=all keeps being answered.
                acked = load.acked_count()
                wait_until(lambda: load.acked_count() > acked + 100, 15, what="acks=all to go on without the follower")
            finally:
                cluster.brokers[follower].signal(signal.SIGCONT)
            wait_until(lambda: in_sync_on_every_broker(cluster, "lag"), 30, what="the follower back in every ISR")
            result = load.stop()
            topic_id = uuid.UUID(admin.describe_topics(["lag"])["lag"].topic_id).bytes
        assert not result.errors
        assert_replicas_identical(cluster, topic_id, PARTITIONS, min_hw=1)


def _leader_of(admin: AdminClient, topic: str, partition: int = 0) -> int:
    return admin.describe_topics([topic])[topic].partitions[partition].leader


def _check_no_loss(cluster, topic: str, result) -> None:  # noqa: ANN001
    """Every acknowledged record is stored exactly once where its ack said (the producer is idempotent)."""
    assert not result.errors, f"errors surfaced to the producer: {result.errors[:3]}"
    assert_acks_stored_once(_read_all(cluster.bootstrap, topic, len(result.acked)), result.acked)


def test_killing_leaders_repeatedly_under_load_loses_nothing(cluster) -> None:
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        replicated_topic(admin, "churn", PARTITIONS)
        load = ProducerLoad(cluster.bootstrap, "churn", rate=400).start()
        for _ in range(3):
            wait_until(lambda: load.acked_count() > 100, 30, what="acknowledgements before the next kill")
            victim = _leader_of(admin, "churn")
            cluster.brokers[victim].kill9()
            wait_until(lambda: _leader_of(admin, "churn") not in (-1, victim), 15, what="a new leader")
            cluster.brokers[victim].start()
            cluster.brokers[victim].wait_ready()
            wait_until(lambda: all_in_sync(admin, "churn"), 30, what=f"broker {victim} back in every ISR")
        result = load.stop()
        topic_id = uuid.UUID(admin.describe_topics(["churn"])["churn"].topic_id).bytes
    _check_no_loss(cluster, "churn", result)
    assert_replicas_identical(cluster, topic_id, PARTITIONS, min_hw=1)


@pytest.mark.slow
def test_paused_leader_loses_leadership_and_converges(cluster) -> None:
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        replicated_topic(admin, "paused", PARTITIONS)
        load = ProducerLoad(cluster.bootstrap, "paused", rate=300).start()
        wait_until(lambda: load.acked_count() > 100, 30, what="acknowledgements before the pause")
        old = _leader_of(admin, "paused")
        cluster.brokers[old].signal(signal.SIGSTOP)
        try:
            wait_until(lambda: _leader_of(admin, "paused") not in (-1, old), 20, what="the controller to move leadership")
            acked = load.acked_count()
            wait_until(lambda: load.acked_count() > acked + 100, 20, what="writes through the new leader")
        finally:
            cluster.brokers[old].signal(signal.SIGCONT)
        wait_until(lambda: in_sync_on_every_broker(cluster, "paused"), 30, what="the old leader to rejoin as a follower")
        result = load.stop()
        topic_id = uuid.UUID(admin.describe_topics(["paused"])["paused"].topic_id).bytes
    _check_no_loss(cluster, "paused", result)
    assert_replicas_identical(cluster, topic_id, PARTITIONS, min_hw=1)
