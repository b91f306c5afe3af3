"""A follower applies a fetch response only while it still follows that leader in that epoch."""

from __future__ import annotations

import asyncio

import pytest
from metadata_records import TOPIC_ID, one_partition_cluster

from caudal.broker.replica_fetcher import ReplicaFetcher
from caudal.broker.replica_manager import ReplicaManager
from caudal.broker.storage import Store
from caudal.common.record_batch import build_batch, validate_batches, with_base_offset
from caudal.v1 import metadata_pb2 as md
from caudal.v1 import replication_pb2 as rpb

FOLLOWER, LEADER = 2, 1


def _leader_batches(count: int, epoch: int) -> bytes:
    """``count`` one-record batches at offsets 0.., stamped with the leader's ``epoch``."""
    return b"".join(with_base_offset(build_batch([(1000 + o, None, b"v%d" % o, ())]), o, epoch) for o in range(count))


def _response(records: bytes, high_watermark: int) -> rpb.ReplicaFetchResponse:
    response = rpb.ReplicaFetchResponse()
    response.partitions.add(topic_id=TOPIC_ID, partition=0, high_watermark=high_watermark, records=records)
    return response


@pytest.fixture
def replicas(tmp_path):
    store = Store(tmp_path / "db")
    manager = ReplicaManager(FOLLOWER, store)
    yield manager
    store.close()


def _scenario(
    replicas: ReplicaManager, change_before_handling: md.MetadataBatch | None = None, change_while_handling: md.MetadataBatch | None = None
) -> None:
    async def main() -> None:
        replicas.apply_metadata(one_partition_cluster(1, LEADER, 0))
        fetcher = ReplicaFetcher(replicas, LEADER, lambda: 1)
        sent_epochs = {(TOPIC_ID, 0): replicas.partition_by_id(TOPIC_ID, 0).leader_epoch}
        if change_before_handling is not None:
            replicas.apply_metadata(change_before_handling)
        if change_while_handling is not None:  # lands at the handler's first await
            asyncio.get_running_loop().call_soon(replicas.apply_metadata, change_while_handling)
        await fetcher._handle(_response(_leader_batches(3, 0), 2), sent_epochs)

    asyncio.run(main())


def test_batches_are_appended_with_the_leaders_offsets_and_its_high_watermark(replicas) -> None:
    _scenario(replicas)
    partition = replicas.partition_by_id(TOPIC_ID, 0)
    assert partition.log.log_end_offset == 3 and partition.high_watermark == 2
    assert [h.base_offset for h in validate_batches(partition.log.read(0, 1 << 20, 3))] == [0, 1, 2]


def test_a_response_reaching_a_follower_promoted_meanwhile_is_dropped(replicas) -> None:
    _scenario(replicas, one_partition_cluster(2, FOLLOWER, 1))
    partition = replicas.partition_by_id(TOPIC_ID, 0)
    assert partition.is_leader
    assert partition.log.log_end_offset == 0
    assert partition.log.latest_epoch == 1  # its own epoch starts at its log end, with no older batch after it


def test_a_response_from_an_earlier_epoch_of_the_same_leader_is_dropped(replicas) -> None:
    """The leader lost and regained leadership meanwhile and may have truncated its log since."""
    _scenario(replicas, one_partition_cluster(3, LEADER, 2))
    partition = replicas.partition_by_id(TOPIC_ID, 0)
    assert not partition.is_leader and partition.leader_epoch == 2
    assert partition.log.log_end_offset == 0


def test_a_promotion_landing_while_the_batches_are_written_starts_its_epoch_after_them(replicas) -> None:
    """Its own epoch must not begin in front of batches of the older epoch: followers
    asking where epoch 0 ends would be told to truncate them, refetch them, for ever."""
    _scenario(replicas, change_while_handling=one_partition_cluster(2, FOLLOWER, 1))
    partition = replicas.partition_by_id(TOPIC_ID, 0)
    assert partition.is_leader and partition.log.log_end_offset == 3
    assert partition.log.end_offset_for_epoch(0) == (0, 3)
    assert partition.log.end_offset_for_epoch(1) == (1, 3)
