"""What fault tests check afterwards: no acknowledged record lost, none stored twice, replicas identical."""

from __future__ import annotations

import uuid

from load import LoadResult
from reading import read_to_end
from replicas import assert_replicas_identical

from caudal.client import AdminClient, ConsumerRecord
from caudal.local_cluster import LocalCluster

Acks = dict[tuple[int, int], bytes]
"""(partition, offset) -> value, as each acknowledgement reported it."""


def assert_acks_stored_once(records: dict[int, list[ConsumerRecord]], *acks: Acks) -> None:
    """Each acknowledged value is stored at the offset its ack gave; no value is stored
    twice (the producers are idempotent); each partition reads back in offset order."""
    stored = {(r.partition, r.offset): r.value for recs in records.values() for r in recs}
    for acked in acks:
        missing = [k for k, v in acked.items() if stored.get(k) != v]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged records lost or changed, e.g. {missing[:3]}"
    values = [r.value for recs in records.values() for r in recs]
    assert len(values) == len(set(values)), f"{len(values) - len(set(values))} records were written twice"
    for recs in records.values():
        offsets = [r.offset for r in recs]
        assert offsets == sorted(set(offsets)), "each partition reads back in offset order"


def assert_load_survived(
    cluster: LocalCluster, admin: AdminClient, topic: str, partitions: int, result: LoadResult, *earlier: Acks
) -> None:
    """After a fault: no error reached the producer, every acknowledgement (the load's and
    ``earlier`` snapshots of it) is stored once where it said, and the replicas, stopped,
    hold the same bytes below the high watermark."""
    topic_id = uuid.UUID(admin.describe_topics([topic])[topic].topic_id).bytes
    assert not result.errors, f"errors surfaced to the producer: {result.errors[:3]}"
    assert_acks_stored_once(read_to_end(cluster.bootstrap, topic, partitions), *earlier, result.acked)
    assert_replicas_identical(cluster, topic_id, partitions, min_hw=1)
