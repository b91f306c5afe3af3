"""Follower side of replication: one fetcher per leader broker.

Each :class:`ReplicaFetcher` keeps a bidirectional ``Replication.Fetch``
stream to one leader and multiplexes every partition this broker follows
there. It sends its log end offset and last fetched epoch per partition,
appends the batches it gets back exactly as the leader stored them, then
takes the leader's high watermark. When the leader says the log diverged
(KIP-320) it first truncates to where the two logs agree (KIP-279); when its log
ends before the leader's log start, it starts over there. The
:class:`ReplicaFetcherManager` starts and stops fetchers as leadership moves.
Owned by the broker's loop; each fetcher reconnects with a backoff.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Awaitable, Callable

import grpc

from caudal.broker.partition import Partition
from caudal.broker.replica_manager import ReplicaManager
from caudal.common.errors import ErrorCode
from caudal.common.grpc_options import GRPC_OPTIONS
from caudal.common.record_batch import validate_batches
from caudal.common.tasks import cancel_and_wait
from caudal.v1 import replication_pb2 as rpb
from caudal.v1 import replication_pb2_grpc

log = logging.getLogger(__name__)

REPLICA_FETCH_WAIT_MS = 500
"""Kafka's ``replica.fetch.wait.max.ms``."""
REPLICA_FETCH_MAX_BYTES = 10 * 1024 * 1024
RECONNECT_BACKOFF_S = 0.2
RECONNECT_BACKOFF_MAX_S = 2.0


class ReplicaFetcher:
    """Fetches for the partitions ``partitions`` led by broker ``leader_id``."""

    def __init__(self, replicas: ReplicaManager, leader_id: int, broker_epoch: Callable[[], int]) -> None:
        self.replicas = replicas
        self.leader_id = leader_id
        self.broker_epoch = broker_epoch
        self.partitions: set[tuple[str, int]] = set()
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"replica-fetcher-{self.leader_id}")

    async def stop(self) -> None:
        await cancel_and_wait(self.task)

    def _followed(self) -> list[Partition]:
        out = []
        for key in self.partitions:
            p = self.replicas.partitions.get(key)
            if p is not None and not p.is_leader and p.leader == self.leader_id:
                out.append(p)
        return out

    async def _run(self) -> None:
        backoff = RECONNECT_BACKOFF_S
        while True:
            broker = self.replicas.image.brokers.get(self.leader_id)
            if broker is None:
                await asyncio.sleep(backoff)
                continue
            address = f"{broker.host}:{broker.port}"
            try:
                async with grpc.aio.insecure_channel(address, options=GRPC_OPTIONS) as channel:
                    call = replication_pb2_grpc.ReplicationStub(channel).Fetch()
                    while True:
                        followed = self._followed()
                        if not followed:
                            self.changed.clear()
                            await self.changed.wait()
                            continue
                        request = self._request(followed)
                        epochs = {(p.topic_id, p.index): p.leader_epoch for p in followed}
                        await call.write(request)
                        response = await call.read()
                        if response is grpc.aio.EOF:
                            raise ConnectionError("leader closed the replication stream")
                        await self._handle(response, epochs)
                        backoff = RECONNECT_BACKOFF_S
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.info("event=replica_fetch_retry leader=%d address=%s error=%s", self.leader_id, address, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_BACKOFF_MAX_S)

    def _request(self, followed: list[Partition]) -> rpb.ReplicaFetchRequest:
        request = rpb.ReplicaFetchRequest(
            replica_id=self.replicas.broker_id,
            broker_epoch=self.broker_epoch(),
            max_wait_ms=REPLICA_FETCH_WAIT_MS,
            max_bytes=REPLICA_FETCH_MAX_BYTES,
        )
        for p in followed:
            request.partitions.add(
                topic_id=p.topic_id,
                partition=p.index,
                fetch_offset=p.log.log_end_offset,
                last_fetched_epoch=p.log.latest_epoch,
                current_leader_epoch=p.leader_epoch,
                log_start_offset=p.log.log_start_offset,
            )
        return request

    def _following(self, partition: Partition, leader_epoch: int) -> bool:
        """Whether ``partition`` still follows this leader in the epoch a fetch was sent in.

        A response is applied only then: a replica promoted meanwhile must not take
        batches or truncate, and one whose leader changed and came back may have a
        leader that truncated since.
        """
        return not partition.is_leader and partition.leader == self.leader_id and partition.leader_epoch == leader_epoch

    async def _handle(self, response: rpb.ReplicaFetchResponse, epochs: dict[tuple[bytes, int], int]) -> None:
        """Apply a fetch response sent while the partitions had the leader epochs ``epochs``."""
        backoff = False
        appends = []
        for r in response.partitions:
            p = self.replicas.partition_by_id(r.topic_id, r.partition)
            if p is None:
                continue
            epoch = epochs.get((r.topic_id, r.partition), -1)
            if not self._following(p, epoch):
                continue
            following = partial(self._following, p, epoch)
            if r.error_code == ErrorCode.OFFSET_OUT_OF_RANGE and p.log.log_end_offset < r.log_start_offset:
                log.info("event=replica_restart topic=%s partition=%d at=%d", p.topic, p.index, r.log_start_offset)
                await p.log.restart_at(r.log_start_offset, following)
            elif r.error_code:
                backoff = True  # the leader moved or has not caught up with metadata yet
            elif r.diverging:
                to = p.log.divergence_offset(r.diverging_epoch, r.diverging_end_offset)
                log.info(
                    "event=replica_truncate topic=%s partition=%d leader_epoch=%d leader_end=%d to=%d leo=%d",
                    p.topic, p.index, r.diverging_epoch, r.diverging_end_offset, to, p.log.log_end_offset,
                )
                await p.log.truncate_to(to, following)
            elif r.records:
                # Staged now, in the same step as the check above, and queued for writing.
                written = p.log.append_replica(r.records, validate_batches(r.records))
                appends.append((written, p, r.high_watermark, following))
            else:
                p.follow_high_watermark(r.high_watermark)
        if appends:  # queued together, the partitions' appends share one group commit
            await asyncio.gather(*(_follow_when_written(*append) for append in appends))
        if backoff:
            await asyncio.sleep(RECONNECT_BACKOFF_S)


async def _follow_when_written(
    written: Awaitable[None], partition: Partition, leader_high_watermark: int, following: Callable[[], bool]
) -> None:
    await written
    if following():
        partition.follow_high_watermark(leader_high_watermark)


class ReplicaFetcherManager:
    """Starts a fetcher per leader this broker follows, and stops it when no longer needed."""

    def __init__(self, replicas: ReplicaManager, broker_epoch: Callable[[], int]) -> None:
        self.replicas = replicas
        self.broker_epoch = broker_epoch
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self.stopped = False

    def update(self) -> None:
        if self.stopped:
            return
        by_leader: dict[int, set[tuple[str, int]]] = {}
        for key, p in self.replicas.partitions.items():
            if not p.is_leader and p.leader >= 0:
                by_leader.setdefault(p.leader, set()).add(key)
        for leader_id, keys in by_leader.items():
            fetcher = self.fetchers.get(leader_id)
            if fetcher is None:
                fetcher = self.fetchers[leader_id] = ReplicaFetcher(self.replicas, leader_id, self.broker_epoch)
                fetcher.start()
            fetcher.partitions = keys
            fetcher.changed.set()
        for leader_id in [lid for lid in self.fetchers if lid not in by_leader]:
            fetcher = self.fetchers.pop(leader_id)
            asyncio.ensure_future(fetcher.stop())

    async def stop(self) -> None:
        """Stop following for good (the broker is shutting down: it must not rejoin ISRs)."""
        self.stopped = True
        for fetcher in self.fetchers.values():
            await fetcher.stop()
        self.fetchers.clear()
