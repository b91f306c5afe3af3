"""Producer batching: records collect per partition until a batch is sent.

``send()`` in any user thread appends to the partition's open batch under one
lock, encoding the record straight into RecordBatch v2 bytes (the only time a
record is ever encoded). The sender, on the client's I/O loop, drains batches
that are full, have waited ``linger_ms``, or are being flushed. Each batch has
one :class:`BatchResult`; every record's future points at it plus the record's
index, so a batch of 150 records costs one event, not 150.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Iterable, Optional

from caudal.client.structs import RecordMetadata, TopicPartition
from caudal.common.compression import CompressionType
from caudal.common.errors import CaudalError, KafkaTimeoutError
from caudal.common.record_batch import BatchBuilder

DeliveryCallback = Callable[[Optional[Exception], Optional[RecordMetadata]], None]

_CALLBACKS_LOCK = threading.Lock()
"""Guards callback registration against completion; delivery callbacks are rare enough to share one."""


class BatchResult:
    """Completion of one produced batch, shared by all its records' futures."""

    __slots__ = ("event", "base_offset", "log_append_time", "error", "callbacks")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.base_offset = -1
        self.log_append_time = -1
        self.error: Exception | None = None
        self.callbacks: list[Callable[[], None]] = []

    def complete(self, base_offset: int, log_append_time: int, error: Exception | None) -> None:
        self.base_offset, self.log_append_time, self.error = base_offset, log_append_time, error
        with _CALLBACKS_LOCK:
            self.event.set()
            callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            callback()

    def done(self) -> bool:
        return self.event.is_set()

    def on_complete(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the batch completes (at once if it already has)."""
        with _CALLBACKS_LOCK:
            if not self.event.is_set():
                self.callbacks.append(callback)
                return
        callback()


class FutureRecordMetadata:
    """The future ``send()`` returns; ``result()`` gives :class:`RecordMetadata` or raises."""

    __slots__ = ("_batch", "_index", "_tp", "_timestamp", "_key_size", "_value_size")

    def __init__(self, batch: BatchResult, index: int, tp: TopicPartition, timestamp: int, key_size: int, value_size: int) -> None:
        self._batch, self._index, self._tp = batch, index, tp
        self._timestamp, self._key_size, self._value_size = timestamp, key_size, value_size

    def done(self) -> bool:
        return self._batch.done()

    @property
    def batch(self) -> BatchResult:
        """The completion this record shares with the rest of its produced batch: code that
        tracks many records waits on each batch once instead of on every record."""
        return self._batch

    def result(self, timeout: float | None = None) -> RecordMetadata:
        if not self._batch.event.wait(timeout):
            raise KafkaTimeoutError(f"record to {self._tp.topic}-{self._tp.partition} not acknowledged within {timeout} s")
        if self._batch.error is not None:
            raise self._batch.error
        return self._metadata()

    get = result

    def exception(self, timeout: float | None = None) -> Exception | None:
        if not self._batch.event.wait(timeout):
            raise KafkaTimeoutError("record not acknowledged in time")
        return self._batch.error

    def _metadata(self) -> RecordMetadata:
        b = self._batch
        offset = b.base_offset + self._index if b.base_offset >= 0 else -1
        ts = b.log_append_time if b.log_append_time >= 0 else self._timestamp
        return RecordMetadata(self._tp.topic, self._tp.partition, offset, ts, self._key_size, self._value_size)

    def add_callback(self, callback: DeliveryCallback) -> None:
        """Call ``callback(err, metadata)`` once the record is acknowledged or failed (on the I/O thread)."""

        def fire() -> None:
            err = self._batch.error
            callback(err, None if err is not None else self._metadata())

        self._batch.on_complete(fire)


class ProducerBatch:
    """An open or in-flight batch for one partition."""

    __slots__ = ("tp", "builder", "result", "created", "attempts", "closed", "size", "sent_payload", "deadline")

    def __init__(self, tp: TopicPartition, compression: CompressionType, now: float, delivery_timeout_s: float) -> None:
        self.tp = tp
        self.builder = BatchBuilder(compression=compression)
        self.result = BatchResult()
        self.created = now
        self.deadline = now + delivery_timeout_s
        self.attempts = 0
        self.closed = False
        self.size = 0
        self.sent_payload: bytes | None = None

    def payload(self) -> bytes:
        """Encode once; a retry resends the very same bytes."""
        if self.sent_payload is None:
            self.sent_payload = self.builder.build()
        return self.sent_payload


class RecordAccumulator:
    """Per-partition queues of batches; ``buffer_memory`` bounds what waits.

    Threading: user threads append under ``_lock``, and only ever touch the
    last (open) batch of a queue. The sender on the I/O thread pops batches
    that are no longer open without the lock (deque operations are atomic) and
    takes the lock only to close an open batch early (linger expired, flush).
    Under load batches fill before ``linger_ms``, so the two threads rarely
    meet on the lock: lock hand-offs between threads under the GIL cost up to
    the interpreter's switch interval each. Buffered bytes are two counters,
    each written by one side only.
    """

    def __init__(self, batch_size: int, linger_ms: int, compression: CompressionType, buffer_memory: int, delivery_timeout_ms: int) -> None:
        self.batch_size = batch_size
        self.linger_s = linger_ms / 1000
        self.compression = compression
        self.buffer_memory = buffer_memory
        self.delivery_timeout_s = delivery_timeout_ms / 1000
        self._queues: dict[TopicPartition, deque[ProducerBatch]] = {}
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._space_waiters = 0
        self._appended_bytes = 0
        self._completed_bytes = 0
        self._incomplete: set[ProducerBatch] = set()
        self.flushing = 0

    def append(
        self, tp: TopicPartition, timestamp: int, key: bytes | None, value: bytes | None, headers: Iterable, max_block_s: float
    ) -> tuple[FutureRecordMetadata, float | None]:
        """Add a record; returns its future and, when this record opened or filled a batch,
        the monotonic time at which that batch becomes sendable (else None)."""
        key_size = len(key) if key is not None else -1
        value_size = len(value) if value is not None else -1
        with self._lock:
            if self._appended_bytes - self._completed_bytes >= self.buffer_memory:
                self._wait_for_space(max_block_s)
            queue = self._queues.get(tp)
            if queue is None:
                queue = self._queues[tp] = deque()
            batch = queue[-1] if queue else None
            ready_at = None
            if batch is None or batch.closed or batch.size >= self.batch_size:
                if batch is not None:
                    batch.closed = True
                batch = ProducerBatch(tp, self.compression, time.monotonic(), self.delivery_timeout_s)
                queue.append(batch)
                self._incomplete.add(batch)
                ready_at = batch.created + self.linger_s
            before = batch.size
            index = batch.builder.append(timestamp, key, value, headers)
            batch.size = batch.builder.size_in_bytes()
            self._appended_bytes += batch.size - before
            if batch.size >= self.batch_size:
                batch.closed = True
                ready_at = batch.created
            return FutureRecordMetadata(batch.result, index, tp, timestamp, key_size, value_size), ready_at

    def has_room(self, tp: TopicPartition) -> bool:
        """Whether ``tp`` has an open batch that is not full, so a record for it would not open
        one. Read without the lock: the answer only steers the sticky partitioner."""
        queue = self._queues.get(tp)
        if not queue:
            return False
        batch = queue[-1]
        return not batch.closed and batch.size < self.batch_size

    def _wait_for_space(self, max_block_s: float) -> None:
        deadline = time.monotonic() + max_block_s
        self._space_waiters += 1
        try:
            while self._appended_bytes - self._completed_bytes >= self.buffer_memory:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise KafkaTimeoutError(
                        f"Failed to allocate memory within the configured max blocking time {int(max_block_s * 1000)} ms "
                        f"(buffer_memory={self.buffer_memory} is full)"
                    )
                self._space.wait(min(remaining, 0.1))
        finally:
            self._space_waiters -= 1

    def drain(
        self, now: float, muted: set[TopicPartition], max_bytes: int, max_batches: int | None = None
    ) -> tuple[dict[TopicPartition, list[ProducerBatch]], float | None]:
        """Ready batches per partition (skipping ``muted`` ones, which have a request in flight),
        and the seconds until the next batch becomes ready by linger (None if nothing waits).

        A partition's ready batches go out together, up to ``max_bytes`` and
        ``max_batches`` per partition: while one request is in flight the next one
        grows, so throughput adapts to the round trip instead of being capped by it.
        """
        ready: dict[TopicPartition, list[ProducerBatch]] = {}
        next_delay: float | None = None
        for tp, queue in list(self._queues.items()):
            if not queue or tp in muted:
                continue
            taken: list[ProducerBatch] = []
            total = 0
            # A retry goes out alone with other retries, never merged with first sends, so a
            # broker can recognise the whole request as a duplicate of one it already appended.
            retrying = bool(queue[0].attempts)
            while (
                queue and queue[0].closed and bool(queue[0].attempts) == retrying
                and (not taken or total + queue[0].size <= max_bytes)
                and (max_batches is None or len(taken) < max_batches)
            ):
                batch = queue.popleft()
                taken.append(batch)
                total += batch.size
            if (
                queue and not retrying and (not taken or total + queue[0].size <= max_bytes)
                and (max_batches is None or len(taken) < max_batches)
            ):
                head = queue[0]
                waited = now - head.created
                if self.flushing or waited >= self.linger_s:
                    with self._lock:
                        if queue and queue[0] is head:
                            head.closed = True
                            taken.append(queue.popleft())
                elif not taken:
                    delay = self.linger_s - waited
                    next_delay = delay if next_delay is None else min(next_delay, delay)
            if taken:
                ready[tp] = taken
        return ready, next_delay

    def reenqueue(self, batches: list[ProducerBatch]) -> None:
        """Put batches to retry back at the head of their partition's queue, in their order."""
        queue = self._queues[batches[0].tp]
        for batch in reversed(batches):
            queue.appendleft(batch)

    def complete(self, batch: ProducerBatch, base_offset: int, log_append_time: int, error: Exception | None) -> None:
        """Resolve a batch's futures and release its buffer space (I/O thread only)."""
        self._incomplete.discard(batch)
        self._completed_bytes += batch.size
        if self._space_waiters:
            with self._lock:
                self._space.notify_all()
        batch.result.complete(base_offset, log_append_time, error)

    def incomplete(self) -> list[ProducerBatch]:
        return list(self._incomplete)

    def abort_all(self, error: CaudalError) -> None:
        """Fail every batch still queued (the producer is closing; I/O thread stopped sending)."""
        with self._lock:
            batches = [b for q in self._queues.values() for b in q]
            for q in self._queues.values():
                q.clear()
        for b in batches:
            self.complete(b, -1, -1, error)
