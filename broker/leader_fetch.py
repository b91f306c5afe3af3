"""Leader side of replication: answers followers' fetches.

A follower's fetch offset is its log end offset; recording it moves the high
watermark and may bring the follower back into the ISR. Before serving, the
leader checks the follower's last fetched epoch against its own epoch cache
(KIP-320): if the follower's log diverges — it has batches of an epoch that
ended earlier here — the answer tells it where to truncate instead of data.
Followers read up to the leader's log end, not the high watermark: that is
what lets the watermark advance. They get batches the leader is still writing
and syncing, so replication overlaps the leader's own write; the watermark
counts the leader only up to its durable end, so nothing is committed before
it is durable on the leader too. With nothing to send, the fetch parks
until the leader appends or ``max_wait_ms`` passes. Owned by the broker's loop.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from caudal.broker.isr_manager import IsrManager
from caudal.broker.partition import Partition, park
from caudal.broker.replica_manager import ReplicaManager, error_fields
from caudal.common.errors import (
    ErrorCode,
    FencedLeaderEpochError,
    NotLeaderOrFollowerError,
    OffsetOutOfRangeError,
    UnknownTopicOrPartitionError,
    error_for,
)
from caudal.v1 import replication_pb2 as rpb
from caudal.v1 import replication_pb2_grpc

DEFAULT_REPLICA_FETCH_MAX_BYTES = 10 * 1024 * 1024


class LeaderFetch:
    """Serves replica fetches for every partition this broker leads."""

    def __init__(self, replicas: ReplicaManager, isr: IsrManager) -> None:
        self.replicas = replicas
        self.isr = isr

    async def fetch(self, request: rpb.ReplicaFetchRequest) -> rpb.ReplicaFetchResponse:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0, request.max_wait_ms) / 1000
        while True:
            response, has_data, watched = self._read(request)
            remaining = deadline - loop.time()
            if has_data or remaining <= 0 or not watched:
                return response
            await park([p.append_waiters for p in watched], remaining)

    def _read(self, request: rpb.ReplicaFetchRequest) -> tuple[rpb.ReplicaFetchResponse, bool, list[Partition]]:
        budget = request.max_bytes if request.max_bytes > 0 else DEFAULT_REPLICA_FETCH_MAX_BYTES
        response = rpb.ReplicaFetchResponse()
        has_data = False
        watched: list[Partition] = []
        for rp in request.partitions:
            out = response.partitions.add(topic_id=rp.topic_id, partition=rp.partition, high_watermark=-1, log_start_offset=-1)
            try:
                partition = self._partition(request.replica_id, rp)
                log = partition.log
                out.log_start_offset = log.log_start_offset
                if rp.last_fetched_epoch >= 0 and rp.fetch_offset > log.log_start_offset:
                    epoch, end = log.end_offset_for_epoch(rp.last_fetched_epoch)
                    if epoch != rp.last_fetched_epoch or end < rp.fetch_offset:
                        out.diverging, out.diverging_epoch = True, epoch
                        out.diverging_end_offset = end if end >= 0 else log.log_start_offset
                        out.high_watermark = partition.high_watermark
                        has_data = True
                        continue
                if not log.log_start_offset <= rp.fetch_offset <= log.log_end_offset:
                    raise OffsetOutOfRangeError(
                        f"replica fetch offset {rp.fetch_offset} outside [{log.log_start_offset}, {log.log_end_offset}] "
                        f"of {partition.topic}-{partition.index}"
                    )
                partition.on_follower_fetch(request.replica_id, rp.fetch_offset)
                self.isr.maybe_expand(partition)
                out.high_watermark = partition.high_watermark
                if rp.fetch_offset < log.log_end_offset and budget > 0:
                    data = log.read(rp.fetch_offset, budget, log.log_end_offset)
                    out.records = data
                    budget -= len(data)
                    has_data = has_data or bool(data)
                else:
                    watched.append(partition)
            except Exception as exc:
                out.error_code, out.error_message = error_fields(exc, "ReplicaFetch")
                has_data = True
        return response, has_data, watched

    def _partition(self, replica_id: int, rp: rpb.ReplicaFetchPartition) -> Partition:
        partition = self.replicas.partition_by_id(rp.topic_id, rp.partition)
        if not self.replicas.serving:
            raise NotLeaderOrFollowerError(f"broker {self.replicas.broker_id} is starting and not serving partitions yet")
        if partition is None:
            raise UnknownTopicOrPartitionError(f"broker {self.replicas.broker_id} does not host partition {rp.partition} of this topic")
        if not partition.is_leader:
            raise NotLeaderOrFollowerError(f"broker {self.replicas.broker_id} no longer leads {partition.topic}-{partition.index}")
        if rp.current_leader_epoch != partition.leader_epoch:
            if rp.current_leader_epoch < partition.leader_epoch:
                raise FencedLeaderEpochError(
                    f"{partition.topic}-{partition.index}: follower epoch {rp.current_leader_epoch} < leader epoch {partition.leader_epoch}"
                )
            raise error_for(ErrorCode.UNKNOWN_LEADER_EPOCH, f"leader epoch {rp.current_leader_epoch} not known yet here")
        if replica_id not in partition.replicas:
            raise NotLeaderOrFollowerError(f"broker {replica_id} is not a replica of {partition.topic}-{partition.index}")
        return partition


class ReplicationService(replication_pb2_grpc.ReplicationServicer):
    """gRPC ``caudal.v1.Replication``: one response per request on each follower stream."""

    def __init__(self, leader: LeaderFetch) -> None:
        self.leader = leader

    async def Fetch(
        self, request_iterator: AsyncIterator[rpb.ReplicaFetchRequest], context: object
    ) -> AsyncIterator[rpb.ReplicaFetchResponse]:
        async for request in request_iterator:
            yield await self.leader.fetch(request)
