"""Power loss of brokers (fault matrix F9).

A power cut keeps what the last sync of each file covered and loses the rest of
the page cache. Brokers here run with an LD_PRELOAD shim that records the size of
every file when a sync of it began (``tests/support/storage_faults.c``); the fault
is kill -9, then each RocksDB write-ahead log cut back to its last synced size,
then a restart.

- Every broker at once: with the default ``log.flush.policy=sync`` every
  acknowledged record comes back. With ``log.flush.policy=replication`` (Kafka's
  durability, which relies on replicas, here all losing power together) the same
  fault loses acknowledged records, which also shows the emulation really drops
  what was never synced.
- The leader alone: nothing acknowledged is lost under either policy, and the
  restarted broker ends up byte-identical to the others.
- The last replica standing (KIP-966): with the followers stalled out of the ISR,
  the leader's acks=1 writes leave the high watermark where it was, and a power
  loss of that leader keeps every acks=all record.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest
from invariants import Acks, assert_acks_stored_once, assert_load_survived
from load import LoadResult, ProducerLoad
from nodes import running, wait_until
from reading import end_offsets, read_to_end
from replicas import all_in_sync, assert_replicas_identical, replicated_topic
from storage_faults import BrokerDisk, build_shim, with_storage_faults

from caudal.client import AdminClient, Producer
from caudal.local_cluster import LocalCluster

PARTITIONS = 3


def _power_loss(disks: list[BrokerDisk]) -> int:
    """Cut the power of these brokers at once, then start them again; bytes of unsynced WAL lost."""
    for disk in disks:
        disk.node.signal(signal.SIGKILL)
    dropped = 0
    for disk in disks:
        disk.node.kill9()  # reaps it
        dropped += disk.cut_to_last_sync()
    for disk in disks:
        disk.node.start()
    for disk in disks:
        disk.node.wait_ready()
    return dropped


def _produce_through_power_loss(
    cluster: LocalCluster, disk_of: dict[int, BrokerDisk], admin: AdminClient, topic: str, policy: str, victims: str
) -> tuple[Acks, LoadResult, int]:
    """Produce, cut the power of ``victims`` ("all" or "leader" of partition 0), restart them, let the
    producer finish: (acks before the cut, the whole load's result, WAL bytes lost)."""
    replicated_topic(admin, topic, PARTITIONS, **{"log.flush.policy": policy})
    load = ProducerLoad(cluster.bootstrap, topic, rate=500).start()
    wait_until(lambda: load.acked_count() > 1000, 30, what="acknowledgements before the power cut")
    node_ids = list(cluster.brokers) if victims == "all" else [admin.describe_topics([topic])[topic].partitions[0].leader]
    before = load.acked_so_far()
    dropped = _power_loss([disk_of[i] for i in node_ids])
    wait_until(lambda: _all_led(admin, topic), 30, what="a leader for every partition after the restart")
    if victims != "all":
        wait_until(lambda: all_in_sync(admin, topic), 30, what="the restarted broker back in every ISR")
    return before, load.stop(), dropped


def _all_led(admin: AdminClient, topic: str) -> bool:
    return all(p.leader >= 0 for p in admin.describe_topics([topic])[topic].partitions)


def test_a_power_loss_of_every_broker_keeps_every_acknowledged_record(disks: tuple[LocalCluster, dict[int, BrokerDisk]]) -> None:
    cluster, disk_of = disks
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        before, result, _ = _produce_through_power_loss(cluster, disk_of, admin, "durable", "sync", victims="all")
        assert_load_survived(cluster, admin, "durable", PARTITIONS, result, before)


@pytest.mark.parametrize("policy", ["sync", "replication"])
def test_a_power_loss_of_the_leader_alone_loses_nothing_under_either_flush_policy(
    disks: tuple[LocalCluster, dict[int, BrokerDisk]], policy: str
) -> None:
    """The replicas that kept power hold every acknowledged record; the restarted broker
    takes the lost suffix back from them instead of leading with a short log."""
    cluster, disk_of = disks
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        before, result, _ = _produce_through_power_loss(cluster, disk_of, admin, "leader-cut", policy, victims="leader")
        assert_load_survived(cluster, admin, "leader-cut", PARTITIONS, result, before)


def test_a_power_loss_of_every_broker_loses_acknowledged_records_without_synced_writes(
    disks: tuple[LocalCluster, dict[int, BrokerDisk]]
) -> None:
    cluster, disk_of = disks
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        before, _, dropped = _produce_through_power_loss(cluster, disk_of, admin, "lazy", "replication", victims="all")
        got = read_to_end(cluster.bootstrap, "lazy", PARTITIONS)
    stored = {(r.partition, r.offset): r.value for recs in got.values() for r in recs}
    lost = [k for k, v in before.items() if stored.get(k) != v]
    assert dropped > 0
    assert lost, "with nothing synced, a power loss of every replica must lose acknowledged records"


def test_the_last_replica_standing_keeps_the_high_watermark_and_every_acknowledged_record(tmp_path: Path) -> None:
    """Fault matrix F10 (KIP-966): both followers stall until the ISR is the leader alone;
    records it takes with acks=1 must not move the high watermark (a consumer must not
    see what no other replica has), then the leader loses power. Every acks=all record
    comes back, and nothing the HW exposed is lost."""
    cluster = LocalCluster(tmp_path / "cluster", 3, 3, session_timeout_ms=20_000, broker_args=["--replica-lag-time-max-ms", "1500"])
    disk_of = with_storage_faults(cluster, build_shim(tmp_path / "shim"))
    with running(cluster), AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        replicated_topic(admin, "last", 1)
        with Producer(bootstrap_servers=cluster.bootstrap, acks="all") as producer:
            acked = {(0, md.offset): f"a{i}".encode() for i, md in enumerate(
                [producer.send("last", value=f"a{i}".encode(), partition=0).result(timeout=30) for i in range(200)]
            )}
        committed = end_offsets(cluster.bootstrap, "last", 1)[0]
        leader = admin.describe_topics(["last"])["last"].partitions[0].leader
        followers = [b for b in cluster.brokers if b != leader]
        for b in followers:
            cluster.brokers[b].signal(signal.SIGSTOP)
        try:
            wait_until(lambda: admin.describe_topics(["last"])["last"].partitions[0].isr == [leader], 15, what="the ISR down to the leader")
            with Producer(bootstrap_servers=cluster.bootstrap, acks=1, enable_idempotence=False) as producer:
                alone = [producer.send("last", value=f"o{i}".encode(), partition=0).result(timeout=30) for i in range(50)]
            assert alone[-1].offset >= committed, "the leader took the acks=1 records"
            assert end_offsets(cluster.bootstrap, "last", 1)[0] == committed, "the high watermark moved with the ISR below min.insync.replicas"
            _power_loss([disk_of[leader]])
        finally:
            for b in followers:
                cluster.brokers[b].signal(signal.SIGCONT)
        wait_until(lambda: all_in_sync(admin, "last"), 30, what="every replica back in the ISR")
        topic_id = uuid.UUID(admin.describe_topics(["last"])["last"].topic_id).bytes
        assert_acks_stored_once(read_to_end(cluster.bootstrap, "last", 1), acked)
    assert_replicas_identical(cluster, topic_id, 1, min_hw=committed)
