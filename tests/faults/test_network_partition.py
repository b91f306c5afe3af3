"""Network partitions between brokers and controllers, on real processes (fault matrix F4).

Every link between nodes goes through a proxy that cuts the links between two
groups of nodes (``tests/support/network.py``), either holding them (packets
dropped, delivered after the heal) or resetting them. Clients reach every node
throughout, which is the case that cost Kafka acknowledged writes in 2013: a
leader cut off from its followers and the controller while producers still
reach it.
"""

from __future__ import annotations

import random
import time
from typing import Iterator

import pytest
from invariants import assert_load_survived
from load import ProducerLoad
from network import MODES, Network, with_network
from nodes import running, wait_until
from replicas import in_sync_on_every_broker, replicated_topic

from caudal.client import AdminClient, Producer
from caudal.local_cluster import LocalCluster


@pytest.fixture
def partitionable(tmp_path) -> Iterator[tuple[LocalCluster, Network]]:
    """3 controllers + 3 brokers whose links can be cut; followers leave the ISR after 1.5 s of silence."""
    cluster = LocalCluster(
        tmp_path / "cluster", controllers=3, brokers=3, session_timeout_ms=4000, broker_args=["--replica-lag-time-max-ms", "1500"]
    )
    with with_network(cluster) as network, running(cluster):
        yield cluster, network


def _one_partition_topic(admin: AdminClient, name: str) -> tuple[int, list[int]]:
    """Create ``name`` with one partition and return its leader and followers once all are in sync."""
    replicated_topic(admin, name, 1)
    partition = admin.describe_topics([name])[name].partitions[0]
    return partition.leader, [r for r in partition.replicas if r != partition.leader]


def _converged_without_loss(
    cluster: LocalCluster, admin: AdminClient, load: ProducerLoad, topic: str, partitions: int, timeout_s: float, what: str
) -> None:
    """After the heal: every broker shows full ISRs; then no acknowledgement lost or doubled, replicas identical."""
    wait_until(lambda: in_sync_on_every_broker(cluster, topic), timeout_s, what=what)
    assert_load_survived(cluster, admin, topic, partitions, load.stop())


def _load(cluster: LocalCluster, topic: str, **options: object) -> ProducerLoad:
    """Idempotent acks=all load on ``topic`` at 300 records/s, once its first 100 records are acknowledged."""
    load = ProducerLoad(cluster.bootstrap, topic, rate=300, **options).start()
    wait_until(lambda: load.acked_count() > 100, 30, what="acknowledgements before the fault")
    return load


def _isr(admin: AdminClient, topic: str) -> list[int]:
    return admin.describe_topics([topic])[topic].partitions[0].isr


@pytest.mark.parametrize("mode", MODES)
def test_a_follower_cut_off_from_its_leader_leaves_the_isr_and_rejoins_after_the_heal(partitionable, mode: str) -> None:
    cluster, network = partitionable
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        leader, followers = _one_partition_topic(admin, "cut")
        follower = followers[0]
        load = _load(cluster, "cut")
        with network.partitioned([f"broker-{follower}"], [f"broker-{leader}"], mode):
            wait_until(lambda: follower not in _isr(admin, "cut"), 15, what="the leader to drop the cut-off follower")
            acked = load.acked_count()
            wait_until(lambda: load.acked_count() > acked + 100, 15, what="acks=all to go on with the ISR down to two")
            assert follower not in _isr(admin, "cut"), "a follower that cannot fetch got back into the ISR"
            assert cluster.brokers[follower].running, "the cut-off follower must stay up"
        _converged_without_loss(cluster, admin, load, "cut", 1, 30, "the follower back in the ISR after the heal")


@pytest.mark.parametrize("mode", MODES)
def test_a_leader_cut_off_from_brokers_and_controllers_but_not_clients_acknowledges_nothing_that_is_lost(
    partitionable, mode: str
) -> None:
    cluster, network = partitionable
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        leader, followers = _one_partition_topic(admin, "island")
        load = _load(cluster, "island")
        everyone_else = [f"broker-{b}" for b in followers] + [c.name for c in cluster.controllers.values()]
        with network.partitioned([f"broker-{leader}"], everyone_else, mode):
            acked = load.acked_count()
            wait_until(lambda: load.acked_count() > acked + 100, 40, what="acks=all to go on through a new leader")
        # Whatever the isolated leader appended after it was cut off was never acknowledged:
        # it is truncated away, and every acknowledgement is still where it said.
        _converged_without_loss(cluster, admin, load, "island", 1, 40, "the old leader back in the ISR as a follower")


def test_flapping_partitions_under_load_lose_no_acknowledged_record(partitionable) -> None:
    """A nemesis cuts one node (broker or controller) off from a random part of the
    others, held or reset, for 1-3 s at a time over about 25 s, under idempotent
    acks=all load on 3 partitions; then everything heals and must converge."""
    cluster, network = partitionable
    rng = random.Random(20261206)
    names = [node.name for node in cluster.nodes()]
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        replicated_topic(admin, "flap", 3)
        load = _load(cluster, "flap")
        deadline = time.monotonic() + 25
        for _ in range(20):
            if time.monotonic() >= deadline:
                break
            victim = rng.choice(names)
            others = [n for n in names if n != victim]
            cut_from = rng.sample(others, rng.randint(1, len(others)))
            with network.partitioned([victim], cut_from, rng.choice(MODES)):
                time.sleep(rng.uniform(1.0, 3.0))  # the fault's duration, not a wait for anything
            time.sleep(rng.uniform(0.3, 1.0))
        acked = load.acked_count()
        wait_until(lambda: load.acked_count() > acked + 100, 60, what="acks=all to go on after the last heal")
        _converged_without_loss(cluster, admin, load, "flap", 3, 60, "every replica back in every ISR")


def test_slow_links_between_nodes_shrink_no_isr(tmp_path) -> None:
    """Fault matrix F5, delay alone: 200 ± 50 ms on every link between brokers and to the
    controllers, with Kafka's replica.lag.time.max.ms (30 s), under acks=all load. Followers
    always have something left to fetch, yet each fetch reaches what the leader had at the
    previous one, so none counts as lagging: no ISR shrinks, and acks=all keeps going."""
    cluster = LocalCluster(tmp_path / "cluster", controllers=3, brokers=3)
    with with_network(cluster) as network, running(cluster), AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        replicated_topic(admin, "slow", 3)
        load = _load(cluster, "slow", request_timeout_ms=10_000)
        shrinks_before = _isr_shrinks(cluster)
        brokers = [node.name for node in cluster.brokers.values()]
        with network.delayed(brokers, [node.name for node in cluster.nodes()], delay_s=0.2, jitter_s=0.05):
            with Producer(bootstrap_servers=cluster.bootstrap, acks="all") as probe:
                probe.send("slow", b"probe-1", partition=0).result(timeout=30)  # connected before timing
                started = time.monotonic()
                probe.send("slow", b"probe-2", partition=0).result(timeout=30)
                assert time.monotonic() - started > 0.25, "acks=all did not wait for the slow follower round trip"
            acked = load.acked_count()
            wait_until(lambda: load.acked_count() > acked + 3000, 40, what="3,000 acks=all records over the slow links")
        assert _isr_shrinks(cluster) == shrinks_before, "a follower left an ISR because of latency alone"
        result = load.stop()
        assert_load_survived(cluster, admin, "slow", 3, result)


def _isr_shrinks(cluster: LocalCluster) -> int:
    return sum(node.log_path.read_text(errors="replace").count("event=isr_shrink") for node in cluster.brokers.values())
