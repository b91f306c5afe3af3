"""Replica checks: whole ISRs as the admin client or every broker reports them, and a
stopped broker's partition logs read straight from its RocksDB, to compare replicas."""

from __future__ import annotations

from pathlib import Path

import grpc
from nodes import wait_until

from caudal.broker.log import PartitionLog
from caudal.broker.storage import Store
from caudal.client import AdminClient, NewTopic
from caudal.common.topic_config import TopicConfig
from caudal.local_cluster import LocalCluster
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import broker_pb2_grpc


def replicated_topic(admin: AdminClient, name: str, partitions: int, **config: str) -> None:
    """Create ``name`` with RF=3 and ``min.insync.replicas=2`` (plus ``config``), and wait
    until every follower is in its ISRs: the fault tests' starting point."""
    admin.create_topics([NewTopic(name, partitions, 3, config={"min.insync.replicas": "2", **config})])[name].result()
    wait_until(lambda: all_in_sync(admin, name), 20, what="every follower in the ISR")


def all_in_sync(admin: AdminClient, topic: str, replicas: int = 3) -> bool:
    """Whether every partition of ``topic`` has all ``replicas`` replicas in its ISR."""
    return all(len(p.isr) == replicas for p in admin.describe_topics([topic])[topic].partitions)


def in_sync_on_every_broker(cluster: LocalCluster, topic: str, replicas: int = 3) -> bool:
    """Whether each broker, asked directly, shows every partition of ``topic`` with a full ISR
    and the same leader epoch as the others.

    After a partition heals, the admin client may be answered by the broker that was cut
    off, whose metadata is as old as the cut: only all brokers agreeing means it caught up.
    """
    views = []
    for node in cluster.brokers.values():
        with grpc.insecure_channel(node.address) as channel:
            try:
                response = broker_pb2_grpc.BrokerStub(channel).Metadata(pb.MetadataRequest(topics=[topic]), timeout=2)
            except grpc.RpcError:
                return False
        partitions = [p for t in response.topics if t.name == topic and not t.error_code for p in t.partitions]
        if not partitions or any(len(p.isr) != replicas for p in partitions):
            return False
        views.append(sorted((p.partition, p.leader, p.leader_epoch) for p in partitions))
    return all(view == views[0] for view in views)


def replica_view(broker_data_dir: Path, topic_id: bytes, partition: int) -> tuple[int, PartitionLog, Store]:
    """(high watermark, log, store) of one partition on a stopped broker; close the store after use."""
    store = Store(broker_data_dir / "log")
    plog = PartitionLog.open(store, topic_id, partition, TopicConfig(), lambda: 0)
    return plog.high_watermark, plog, store


def bytes_below(plog: PartitionLog, offset: int) -> bytes:
    """Stored batches from the log start up to ``offset`` (exclusive, a batch boundary)."""
    return plog.read(plog.log_start_offset, 1 << 30, offset) if offset > plog.log_start_offset else b""


def assert_replicas_identical(cluster: LocalCluster, topic_id: bytes, partitions: int, min_hw: int) -> None:
    """Stop the brokers; every replica must hold the same bytes below the leader's high watermark.

    A follower learns the HW on its next fetch, so its own checkpoint may lag; what
    must hold is that everything committed (below the highest HW) is on every replica.
    """
    for node in cluster.brokers.values():
        node.stop()
    for partition in range(partitions):
        views = [replica_view(node.log_path.parent / node.name, topic_id, partition) for node in cluster.brokers.values()]
        try:
            committed = max(hw for hw, _, _ in views)
            assert committed >= min_hw
            contents = {bytes_below(plog, committed) for _, plog, _ in views}
            assert len(contents) == 1, f"replicas of partition {partition} differ below the HW {committed}"
        finally:
            for _, _, store in views:
                store.close()
