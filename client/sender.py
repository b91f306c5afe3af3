"""The producer's network half: drains ready batches and sends Produce requests.

Runs as one task on the client's I/O loop. Ready batches are grouped by
partition leader into one request per broker. Each partition has at most one
request in flight, carrying every batch that became ready meanwhile
(concatenated RecordBatch bytes), so a retried batch can never be overtaken by
a later one and the request size adapts to the round-trip time. At most
``max_in_flight_requests_per_connection`` requests are outstanding per broker.
Retriable errors (leader moved, broker down, timeout) refresh metadata and
retry after ``retry_backoff_ms`` until ``delivery_timeout_ms`` expires;
anything else fails the batches' futures.
"""

from __future__ import annotations

import asyncio
import logging
import time

from caudal.client.accumulator import ProducerBatch, RecordAccumulator
from caudal.client.cluster import MetadataManager
from caudal.client.config import ProducerConfig
from caudal.client.structs import TopicPartition
from caudal.common.errors import CaudalError, KafkaTimeoutError, error_for
from caudal.v1 import broker_pb2 as pb

log = logging.getLogger(__name__)

IDEMPOTENCE_WINDOW_BATCHES = 64
"""Brokers keep the last 64 batches of each idempotent producer per partition
(``broker/producer_state.py``); a request never holds more of one partition, so a
retried request is always recognised whole. (Kafka's window is 5, its in-flight limit.)"""

PartitionBatches = dict[TopicPartition, list[ProducerBatch]]


class Sender:
    """Owns in-flight requests; ``wakeup`` (loop thread only) makes it look for ready batches."""

    def __init__(self, config: ProducerConfig, accumulator: RecordAccumulator, metadata: MetadataManager) -> None:
        self.config = config
        self.idempotence = IdempotenceState() if config.enable_idempotence else None
        self._max_batches = IDEMPOTENCE_WINDOW_BATCHES if config.enable_idempotence else None
        """An idempotent request holds at most the batches a broker remembers per producer and
        partition, so a request whose response was lost is recognised whole when retried."""
        self.acc = accumulator
        self.metadata = metadata
        self.acks = config.acks_value
        self.timeout_s = config.request_timeout_ms / 1000
        self._wake = asyncio.Event()
        self._in_flight_tps: set[TopicPartition] = set()
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.wake_at = 0.0
        """When the sender will next look for ready batches on its own (0: it is busy and will
        look again at once). User threads wake it only when a batch becomes ready before
        that: a cross-thread wakeup costs a syscall and a GIL hand-off, too much per batch."""

    def wakeup(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            self.wake_at = float("inf")  # before draining: a batch added from now on wakes us
            now = time.monotonic()
            ready, delay = self.acc.drain(now, self._in_flight_tps, self.config.max_request_size, self._max_batches)
            if ready:
                self.wake_at = 0.0
                await self._dispatch(ready)
                continue
            if delay is not None:
                self.wake_at = now + delay
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _dispatch(self, ready: PartitionBatches) -> None:
        if self.idempotence is not None:
            await self._number(ready)
        by_leader: dict[str, PartitionBatches] = {}
        cluster = self.metadata.cluster
        for tp, batches in ready.items():
            self._in_flight_tps.add(tp)
            address = cluster.leader_address(tp)
            if address is None:
                self._spawn(self._retry_later(batches, None))
            else:
                by_leader.setdefault(address, {})[tp] = batches
        for address, group in by_leader.items():
            slot = self._slots.setdefault(address, asyncio.Semaphore(self.config.max_in_flight_requests_per_connection))
            await slot.acquire()
            self._spawn(self._send(address, group, slot))

    async def _number(self, ready: PartitionBatches) -> None:
        """Give first-time batches the producer id and their partition's next sequence."""
        state = self.idempotence
        assert state is not None
        if state.producer_id < 0 or state.needs_reset:
            await self._init_producer_id()
        for tp, batches in ready.items():
            for batch in batches:
                if batch.sent_payload is None:
                    batch.builder.set_producer_state(state.producer_id, state.producer_epoch, state.next_sequence(tp, batch.builder.record_count))
                    batch.payload()  # encoded now: a batch numbered once keeps its sequence through every retry

    async def _init_producer_id(self) -> None:
        """InitProducerId, retried until a broker answers (idempotent sends cannot go out without one)."""
        state = self.idempotence
        assert state is not None
        while True:
            try:
                response = await self.metadata.call_any("InitProducerId", pb.InitProducerIdRequest())
                if not response.error_code:
                    state.reset(response.producer_id, response.producer_epoch)
                    log.info("event=producer_id producer_id=%d epoch=%d", response.producer_id, response.producer_epoch)
                    return
                error: CaudalError = error_for(response.error_code, response.error_message)
            except CaudalError as e:
                error = e
            log.info("event=init_producer_id_retry error=%s", error)
            await asyncio.sleep(self.config.retry_backoff_ms / 1000)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("event=sender_task_failed", exc_info=t.exception())
            self._wake.set()

        task.add_done_callback(done)

    def _request(self, group: PartitionBatches) -> pb.ProduceRequest:
        request = pb.ProduceRequest(acks=self.acks, timeout_ms=self.config.request_timeout_ms)
        by_topic: dict[str, pb.TopicProduceData] = {}
        for tp, batches in group.items():
            t = by_topic.get(tp.topic)
            if t is None:
                t = by_topic[tp.topic] = request.topics.add(topic=tp.topic)
            payload = batches[0].payload() if len(batches) == 1 else b"".join(b.payload() for b in batches)
            t.partitions.add(partition=tp.partition, records=payload)
        return request

    async def _send(self, address: str, group: PartitionBatches, slot: asyncio.Semaphore) -> None:
        try:
            for batches in group.values():
                for batch in batches:
                    batch.attempts += 1
            request = self._request(group)
            if self.acks == 0:
                try:
                    await self.metadata.conns.call(address, "Produce", request, self.timeout_s, answered=False)
                except CaudalError as e:
                    log.debug("event=acks0_send_failed address=%s error=%s", address, e)
                for batches in group.values():
                    self._finish(batches, -1, -1, None)
                return
            try:
                response = await self.metadata.conns.call(address, "Produce", request, self.timeout_s)
            except CaudalError as e:
                for batches in group.values():
                    await self._retry_or_fail(batches, e)
                return
            results = {(t.topic, p.partition): p for t in response.topics for p in t.partitions}
            for tp, batches in group.items():
                r = results.get(tp)
                if r is None:
                    await self._retry_or_fail(batches, error_for(-1, "partition missing from the Produce response"))
                elif r.error_code:
                    await self._retry_or_fail(batches, error_for(r.error_code, r.error_message))
                else:
                    self._finish(batches, r.base_offset, r.log_append_time, None)
        finally:
            slot.release()

    async def _retry_or_fail(self, batches: list[ProducerBatch], error: CaudalError) -> None:
        if not error.retriable or batches[0].attempts > self.config.retries:
            self._finish(batches, -1, -1, error)
            return
        await self._retry_later(batches, error)

    async def _retry_later(self, batches: list[ProducerBatch], error: CaudalError | None) -> None:
        """Back off, refresh metadata, then put the batches back at the head of their partition."""
        tp = batches[0].tp
        if time.monotonic() >= batches[0].deadline:
            self._finish(
                batches, -1, -1,
                KafkaTimeoutError(
                    f"Expiring {len(batches)} batch(es) for {tp.topic}-{tp.partition}: delivery_timeout_ms="
                    f"{self.config.delivery_timeout_ms} elapsed (last error: {error})"
                ),
            )
            return
        await asyncio.sleep(self.config.retry_backoff_ms / 1000)
        try:
            await self.metadata.refresh([tp.topic])
        except CaudalError as e:
            log.debug("event=metadata_refresh_failed error=%s", e)
        for batch in batches:
            batch.attempts = max(batch.attempts, 1)
        self._in_flight_tps.discard(tp)
        self.acc.reenqueue(batches)

    def _finish(self, batches: list[ProducerBatch], base_offset: int, log_append_time: int, error: Exception | None) -> None:
        """Complete a partition's batches; the broker gave them contiguous offsets from ``base_offset``."""
        self._in_flight_tps.discard(batches[0].tp)
        if error is not None and self.idempotence is not None:
            # The batch may or may not be in the log: its sequence number is spent either way,
            # so later batches start a new producer id rather than leave a sequence gap.
            self.idempotence.needs_reset = True
        offset = base_offset
        for batch in batches:
            self.acc.complete(batch, offset, log_append_time, error)
            if offset >= 0:
                offset += batch.builder.record_count


class IdempotenceState:
    """Producer id, epoch and next sequence per partition of an idempotent producer (I/O thread only)."""

    def __init__(self) -> None:
        self.producer_id = -1
        self.producer_epoch = -1
        self.needs_reset = False
        self._sequences: dict[TopicPartition, int] = {}

    def reset(self, producer_id: int, producer_epoch: int) -> None:
        self.producer_id, self.producer_epoch = producer_id, producer_epoch
        self._sequences.clear()
        self.needs_reset = False

    def next_sequence(self, tp: TopicPartition, record_count: int) -> int:
        """The first sequence for a batch of ``record_count`` records (Kafka wraps at int32 max)."""
        first = self._sequences.get(tp, 0)
        self._sequences[tp] = (first + record_count) & 0x7FFFFFFF
        return first
