"""The consumer's network half: keeps fetches in flight for assigned partitions.

Runs on the client's I/O loop. For every assigned partition whose next fetch
offset is known and whose buffered, unconsumed data is below a budget, it keeps
one Fetch request in flight per leader broker (long-polling with
``fetch_max_wait_ms``), advances the fetch offset past the returned batches
(reading only batch headers — records are decoded later in ``poll``, in the
user's thread) and posts the raw bytes to a thread-safe queue. Every seek bumps
a partition's epoch, so data fetched for an old position is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

from caudal.client.cluster import MetadataManager
from caudal.client.config import ConsumerConfig
from caudal.client.structs import TopicPartition
from caudal.common.errors import CaudalError, ErrorCode, NoOffsetForPartitionError, error_for
from caudal.common.record_batch import iter_batches
from caudal.v1 import broker_pb2 as pb

log = logging.getLogger(__name__)

LATEST = -1
EARLIEST = -2


@dataclass
class CompletedFetch:
    """Raw batches for one partition, or an error to surface from ``poll``."""

    tp: TopicPartition
    epoch: int
    data: bytes
    high_watermark: int
    error: CaudalError | None = None
    reset_offset: int | None = None
    """Set when the fetch position was reset (auto_offset_reset); the consumer's position follows."""


@dataclass
class _FetchState:
    fetch_offset: int | None
    epoch: int
    buffered: int = 0
    paused: bool = False


class Fetcher:
    """Loop-owned fetch state; user threads talk to it only through ``IOThread`` calls."""

    def __init__(self, config: ConsumerConfig, metadata: MetadataManager, notify: Callable[[], None]) -> None:
        self.config = config
        self.metadata = metadata
        self.timeout_s = config.request_timeout_ms / 1000 + config.fetch_max_wait_ms / 1000
        self.states: dict[TopicPartition, _FetchState] = {}
        self.completed: collections.deque[CompletedFetch] = collections.deque()
        self._notify = notify
        """Called on the fetcher's loop whenever a completed fetch is posted (wakes a waiting poll)."""
        self._wake = asyncio.Event()
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        self._buffer_budget = max(2 * config.max_partition_fetch_bytes, 1)

    def wakeup(self) -> None:
        self._wake.set()

    # ---- called from user threads through IOThread.run ----------------------

    async def assign(self, positions: dict[TopicPartition, tuple[int | None, int]]) -> None:
        """Replace the assignment: tp -> (fetch offset or None to reset, epoch)."""
        self.states = {tp: _FetchState(offset, epoch) for tp, (offset, epoch) in positions.items()}
        await self.metadata.refresh({tp.topic for tp in positions})
        self.wakeup()

    async def seek(self, tp: TopicPartition, offset: int | None, epoch: int) -> None:
        self.states[tp] = _FetchState(offset, epoch, paused=self.states.get(tp, _FetchState(None, 0)).paused)
        self.wakeup()

    def consumed(self, tp: TopicPartition, epoch: int, nbytes: int) -> None:
        state = self.states.get(tp)
        if state is not None and state.epoch == epoch:
            state.buffered = max(0, state.buffered - nbytes)
            self.wakeup()

    async def set_paused(self, tps: list[TopicPartition], paused: bool) -> None:
        for tp in tps:
            if tp in self.states:
                self.states[tp].paused = paused
        self.wakeup()

    async def list_offsets(
        self, tps: list[TopicPartition], timestamp: int, skip_errors: bool = False
    ) -> dict[TopicPartition, int]:
        """Offsets for ``timestamp`` (LATEST, EARLIEST or ms) from each partition's leader.

        With ``skip_errors`` a partition that fails (no leader yet, unknown) is left out
        instead of failing the whole call, so one bad partition cannot stall the others.
        """
        by_leader: dict[str, list[TopicPartition]] = {}
        cluster = await self.metadata.refresh({tp.topic for tp in tps})
        for tp in tps:
            address = cluster.leader_address(tp)
            if address is None:
                if skip_errors:
                    continue
                raise error_for(ErrorCode.LEADER_NOT_AVAILABLE, f"no leader for {tp.topic}-{tp.partition}")
            by_leader.setdefault(address, []).append(tp)
        out: dict[TopicPartition, int] = {}
        for address, group in by_leader.items():
            request = pb.ListOffsetsRequest()
            topics: dict[str, pb.ListOffsetsTopic] = {}
            for tp in group:
                t = topics.get(tp.topic) or topics.setdefault(tp.topic, request.topics.add(topic=tp.topic))
                t.partitions.add(partition=tp.partition, timestamp=timestamp)
            response = await self.metadata.conns.call(address, "ListOffsets", request, self.config.request_timeout_ms / 1000)
            for t in response.topics:
                for p in t.partitions:
                    if p.error_code:
                        if skip_errors:
                            continue
                        raise error_for(p.error_code, p.error_message)
                    out[TopicPartition(t.topic, p.partition)] = p.offset
        return out

    # ---- the fetch loop ------------------------------------------------------

    async def run(self) -> None:
        """Fetch until cancelled; the fetches and metadata refreshes it started end with it.

        An asyncio application's loop outlives its consumers, so a fetch left running
        after ``stop()`` would retry on the closed connections and open new ones.
        """
        try:
            while True:
                self._wake.clear()
                try:
                    await self._reset_positions()
                    self._dispatch()
                except CaudalError as e:
                    log.debug("event=fetch_round_failed error=%s", e)
                    await asyncio.sleep(self.config.retry_backoff_ms / 1000)
                    continue
                if any(s.fetch_offset is None and not s.paused for s in self.states.values()):
                    await asyncio.sleep(self.config.retry_backoff_ms / 1000)
                    continue
                await self._wake.wait()
        finally:
            self._stopped = True
            for task in list(self._tasks):
                task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> "asyncio.Task[None] | None":
        if self._stopped:
            coro.close()
            return None
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _reset_positions(self) -> None:
        missing = [tp for tp, s in self.states.items() if s.fetch_offset is None and not s.paused]
        if not missing:
            return
        policy = self.config.auto_offset_reset
        if policy == "none":
            for tp in missing:
                state = self.states[tp]
                state.paused = True
                self._post(CompletedFetch(tp, state.epoch, b"", -1, NoOffsetForPartitionError(f"no offset for {tp.topic}-{tp.partition} and auto_offset_reset=none")))
            return
        offsets = await self.list_offsets(missing, EARLIEST if policy == "earliest" else LATEST, skip_errors=True)
        for tp, offset in offsets.items():
            state = self.states.get(tp)
            if state is not None and state.fetch_offset is None:
                state.fetch_offset = offset
                self._post(CompletedFetch(tp, state.epoch, b"", -1, reset_offset=offset))

    def _dispatch(self) -> None:
        cluster = self.metadata.cluster
        by_leader: dict[str, list[tuple[TopicPartition, _FetchState]]] = {}
        needs_metadata = False
        for tp, state in self.states.items():
            if state.fetch_offset is None or state.paused or state.buffered >= self._buffer_budget:
                continue
            address = cluster.leader_address(tp)
            if address is None:
                needs_metadata = True
                continue
            if address not in self._in_flight:
                by_leader.setdefault(address, []).append((tp, state))
        for address, parts in by_leader.items():
            task = self._spawn(self._fetch(address, parts))
            if task is not None:
                self._in_flight.add(address)
                task.add_done_callback(lambda t, a=address: self._fetch_done(t, a))
        if needs_metadata:
            self._spawn(self._refresh_then_wake())

    def _fetch_done(self, task: "asyncio.Task[None]", address: str) -> None:
        self._in_flight.discard(address)
        if not task.cancelled() and task.exception() is not None:
            log.debug("event=fetch_failed address=%s error=%s", address, task.exception())
            asyncio.get_running_loop().call_later(self.config.retry_backoff_ms / 1000, self.wakeup)
            self._spawn(self._refresh_then_wake())
        else:
            self.wakeup()

    async def _refresh_then_wake(self) -> None:
        await asyncio.sleep(self.config.retry_backoff_ms / 1000)
        try:
            await self.metadata.refresh()
        finally:
            self.wakeup()

    async def _fetch(self, address: str, parts: list[tuple[TopicPartition, _FetchState]]) -> None:
        request = pb.FetchRequest(
            replica_id=-1,
            max_wait_ms=self.config.fetch_max_wait_ms,
            min_bytes=self.config.fetch_min_bytes,
            max_bytes=self.config.fetch_max_bytes,
            isolation_level=1 if self.config.isolation_level == "read_committed" else 0,
        )
        topics: dict[str, pb.FetchTopic] = {}
        sent = {}
        for tp, state in parts:
            t = topics.get(tp.topic) or topics.setdefault(tp.topic, request.topics.add(topic=tp.topic))
            t.partitions.add(partition=tp.partition, fetch_offset=state.fetch_offset, partition_max_bytes=self.config.max_partition_fetch_bytes, current_leader_epoch=-1)
            sent[tp] = (state.epoch, state.fetch_offset)
        response = await self.metadata.conns.call(address, "Fetch", request, self.timeout_s)
        for t in response.topics:
            for p in t.partitions:
                tp = TopicPartition(t.topic, p.partition)
                state = self.states.get(tp)
                epoch, offset = sent.get(tp, (-1, -1))
                if state is None or state.epoch != epoch or state.fetch_offset != offset:
                    continue
                if p.error_code:
                    self._on_partition_error(tp, state, error_for(p.error_code, p.error_message))
                    continue
                if not p.records:
                    continue
                next_offset = offset
                for _, header in iter_batches(p.records):
                    next_offset = max(next_offset, header.next_offset)
                state.fetch_offset = next_offset
                state.buffered += len(p.records)
                self._post(CompletedFetch(tp, epoch, p.records, p.high_watermark))

    def _on_partition_error(self, tp: TopicPartition, state: _FetchState, error: CaudalError) -> None:
        if error.code == ErrorCode.OFFSET_OUT_OF_RANGE and self.config.auto_offset_reset != "none":
            log.info("event=offset_reset topic=%s partition=%d offset=%s policy=%s", tp.topic, tp.partition, state.fetch_offset, self.config.auto_offset_reset)
            state.fetch_offset = None
        elif error.retriable:
            self._spawn(self._refresh_then_wake())
        else:
            state.paused = True
            self._post(CompletedFetch(tp, state.epoch, b"", -1, error))

    def _post(self, fetch: CompletedFetch) -> None:
        self.completed.append(fetch)
        self._notify()
