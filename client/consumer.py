"""Consumers: ``poll`` returns lists of ConsumerRecord.

Both consumers share :class:`ConsumerCore`: positions (the next offset ``poll``
returns per partition), the records decoded but not yet returned, and the
:class:`Fetcher` that keeps fetches in flight ahead of the positions. Decoding
happens when records are taken (in the polling thread, not on the I/O loop),
drops records below the position (a fetch starts at the batch that contains
the fetch offset) and hands out at most ``max_poll_records``. :class:`Consumer`
is for blocking code (fetcher on a private I/O thread); :class:`AIOConsumer`
(in ``caudal.client.aio``) runs everything on the caller's loop.
Consumer-group membership (``subscribe``/``commit``) builds on the group
coordinator; without a ``group_id`` a consumer uses manual ``assign``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable, Coroutine, Iterable, Optional

from caudal.client._transport import Connections, parse_bootstrap
from caudal.client.cluster import MetadataManager
from caudal.client.config import ConsumerConfig, build_config
from caudal.client.fetcher import EARLIEST, LATEST, CompletedFetch, Fetcher
from caudal.client.io_thread import IOThread
from caudal.client.structs import ConsumerRecord, TopicPartition
from caudal.common.errors import CaudalError, InvalidRequestError, KafkaTimeoutError
from caudal.common.record_batch import decode_batch_into, iter_batches

log = logging.getLogger(__name__)

NO_GROUPS = (
    "needs consumer-group membership, which this broker version does not offer yet; "
    "use assign([TopicPartition(topic, p), ...])"
)


class _Pending:
    """Decoded records of one partition not yet returned by ``poll``, and the fetched bytes
    they came from (released to the fetcher's prefetch budget once all are returned)."""

    __slots__ = ("epoch", "records", "index", "nbytes")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.records: list[ConsumerRecord] = []
        self.index = 0
        self.nbytes = 0


class ConsumerCore:
    """Assignment, positions and decoding shared by the blocking and asyncio consumers.

    Owned by the polling thread (blocking) or the loop (asyncio). Methods that
    must reach the fetcher return its coroutine; the caller runs it on the
    fetcher's loop. ``schedule`` hands a plain call to that loop.
    """

    def __init__(self, config: ConsumerConfig, notify: Callable[[], None], schedule: Callable[..., None]) -> None:
        self.config = config
        self.conns = Connections()
        self.metadata = MetadataManager(self.conns, parse_bootstrap(config.bootstrap_servers), config.request_timeout_ms / 1000)
        self.fetcher = Fetcher(config, self.metadata, notify)
        self.positions: dict[TopicPartition, Optional[int]] = {}
        self.paused: set[TopicPartition] = set()
        self.closed = False
        self._schedule = schedule
        self._epochs: dict[TopicPartition, int] = {}
        self._pending: dict[TopicPartition, _Pending] = {}

    def assign(self, partitions: Iterable[TopicPartition]) -> Coroutine[Any, Any, None]:
        parts = [TopicPartition(*tp) for tp in partitions]
        previous = self.positions
        self.positions = {tp: previous.get(tp) for tp in parts}
        for tp in parts:
            self._epochs[tp] = self._epochs.get(tp, 0) + 1
        self._pending = {tp: r for tp, r in self._pending.items() if tp in self.positions}
        return self.fetcher.assign({tp: (self.positions[tp], self._epochs[tp]) for tp in parts})

    def assigned(self, partition: TopicPartition) -> TopicPartition:
        tp = TopicPartition(*partition)
        if tp not in self.positions:
            raise InvalidRequestError(f"{tp.topic}-{tp.partition} is not assigned to this consumer")
        return tp

    def seek(self, partition: TopicPartition, offset: int) -> Coroutine[Any, Any, None]:
        """Make the next ``poll`` for ``partition`` start at ``offset``."""
        if offset < 0:
            raise InvalidRequestError(f"seek offset must be >= 0, got {offset}")
        tp = self.assigned(partition)
        self.positions[tp] = offset
        self._epochs[tp] += 1
        self._pending.pop(tp, None)
        return self.fetcher.seek(tp, offset, self._epochs[tp])

    def targets(self, partitions: Iterable[TopicPartition]) -> list[TopicPartition]:
        """The partitions a seek_to_* call means (every assigned one when none is named)."""
        return [TopicPartition(*tp) for tp in partitions] or list(self.positions)

    def set_paused(self, partitions: Iterable[TopicPartition], paused: bool) -> Coroutine[Any, Any, None]:
        tps = [TopicPartition(*tp) for tp in partitions]
        if paused:
            self.paused.update(tps)
        else:
            self.paused.difference_update(tps)
        return self.fetcher.set_paused(tps, paused)

    def check_open(self) -> None:
        if self.closed:
            raise InvalidRequestError("Consumer is closed")

    def take(self, limit: int) -> list[ConsumerRecord]:
        """Up to ``limit`` records across partitions, advancing their positions."""
        self.absorb()
        out: list[ConsumerRecord] = []
        for tp, pending in list(self._pending.items()):
            if tp in self.paused:
                continue
            chunk = pending.records[pending.index : pending.index + limit - len(out)]
            if not chunk:
                continue
            pending.index += len(chunk)
            out.extend(chunk)
            self.positions[tp] = chunk[-1].offset + 1
            if pending.index >= len(pending.records):
                del self._pending[tp]
                self._schedule(self.fetcher.consumed, tp, pending.epoch, pending.nbytes)
            if len(out) >= limit:
                break
        return out

    def absorb(self) -> None:
        """Decode every completed fetch into per-partition pending records."""
        completed = self.fetcher.completed
        while completed:
            self._absorb_one(completed.popleft())

    def _absorb_one(self, fetch: CompletedFetch) -> None:
        tp = fetch.tp
        if self._epochs.get(tp) != fetch.epoch:
            return
        if fetch.error is not None:
            raise fetch.error
        if fetch.reset_offset is not None:
            if self.positions.get(tp) is None or tp not in self._pending:
                self.positions[tp] = fetch.reset_offset
            return
        pending = self._pending.get(tp)
        if pending is None:
            pending = self._pending[tp] = _Pending(fetch.epoch)
        records = pending.records
        start = records[-1].offset + 1 if records else (self.positions.get(tp) or 0)
        prefix = (tp.topic, tp.partition)
        check = self.config.check_crcs
        for pos, header in iter_batches(fetch.data):
            if header.next_offset <= start or header.is_control:
                continue
            first = len(records)
            decode_batch_into(records, fetch.data, pos, check_crc=check, record_type=ConsumerRecord, prefix=prefix)
            if header.base_offset < start:  # the fetch began inside this batch: drop what was already returned
                skip = first
                while skip < len(records) and records[skip].offset < start:
                    skip += 1
                del records[first:skip]
        pending.nbytes += len(fetch.data)
        if self.positions.get(tp) is None and records:
            self.positions[tp] = records[0].offset

    async def partitions_for_topic(self, topic: str) -> set[int]:
        cluster = await self.metadata.refresh([topic])
        count = cluster.partition_counts.get(topic)
        if count is None:
            raise cluster.topic_errors.get(topic) or KafkaTimeoutError(f"no metadata for topic {topic}")
        return set(range(count))

    async def topics(self) -> set[str]:
        return set((await self.metadata.refresh()).partition_counts)

    async def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, Optional[int]]:
        """Earliest offset whose timestamp is >= the given one, per partition (None if there is none)."""
        out: dict[TopicPartition, Optional[int]] = {}
        for tp, ts in timestamps.items():
            offset = (await self.fetcher.list_offsets([tp], ts))[tp]
            out[tp] = offset if offset >= 0 else None
        return out


class Consumer:
    """Kafka-style blocking consumer; not thread-safe (one thread polls), like Kafka's."""

    def __init__(self, *topics: str, **options: Any) -> None:
        self.config: ConsumerConfig = build_config(ConsumerConfig, options)
        self._io = IOThread(f"caudal-consumer-io-{id(self):x}")
        self._data_ready = threading.Event()
        self._core = ConsumerCore(self.config, self._data_ready.set, self._io.call_soon)
        self._fetch_task = self._io.run(self._start())
        if topics:
            self.subscribe(list(topics))

    async def _start(self) -> "asyncio.Task[None]":
        return asyncio.ensure_future(self._core.fetcher.run())

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self._io.run(coro, self.config.request_timeout_ms / 1000 + 5)

    # ---- assignment ------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] | None = None, pattern: str | None = None, listener: object = None) -> None:
        raise InvalidRequestError(f"subscribe() {NO_GROUPS}")

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (no group); positions start per ``auto_offset_reset``."""
        self._run(self._core.assign(partitions))

    def assignment(self) -> set[TopicPartition]:
        return set(self._core.positions)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._run(self._core.partitions_for_topic(topic))

    def topics(self) -> set[str]:
        return self._run(self._core.topics())

    # ---- positions -------------------------------------------------------------

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make the next ``poll`` for ``partition`` start at ``offset``."""
        self._run(self._core.seek(partition, offset))

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp, offset in self.beginning_offsets(self._core.targets(partitions)).items():
            self.seek(tp, offset)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        for tp, offset in self.end_offsets(self._core.targets(partitions)).items():
            self.seek(tp, offset)

    def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, Optional[int]]:
        return self._run(self._core.offsets_for_times(timestamps))

    def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return self._run(self._core.fetcher.list_offsets(list(partitions), EARLIEST))

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return self._run(self._core.fetcher.list_offsets(list(partitions), LATEST))

    def position(self, partition: TopicPartition) -> int:
        """The offset of the next record ``poll`` returns for ``partition`` (resolving a reset if needed)."""
        tp = self._core.assigned(partition)
        deadline = time.monotonic() + self.config.request_timeout_ms / 1000 + 5
        while self._core.positions[tp] is None:
            self._wait_for_data(0.05)
            self._core.absorb()
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"position of {tp.topic}-{tp.partition} not resolved in time")
        return self._core.positions[tp]  # type: ignore[return-value]

    def pause(self, *partitions: TopicPartition) -> None:
        self._run(self._core.set_paused(partitions, True))

    def resume(self, *partitions: TopicPartition) -> None:
        self._run(self._core.set_paused(partitions, False))

    def paused(self) -> set[TopicPartition]:
        return set(self._core.paused)

    # ---- polling ---------------------------------------------------------------

    def poll(self, timeout_ms: int = 0, max_records: Optional[int] = None) -> list[ConsumerRecord]:
        """Records after each partition's position, waiting up to ``timeout_ms`` for the first."""
        self._core.check_open()
        limit = max_records or self.config.max_poll_records
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            records = self._core.take(limit)
            if records:
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._wait_for_data(remaining)

    def _wait_for_data(self, wait_s: float) -> None:
        if not self._core.fetcher.completed:
            self._data_ready.wait(wait_s)
        self._data_ready.clear()

    def commit(self, offsets: object = None, asynchronous: bool = False) -> None:
        raise InvalidRequestError(f"commit() {NO_GROUPS}")

    def close(self) -> None:
        if self._core.closed:
            return
        self._core.closed = True
        try:
            self._io.run(self._shutdown(), timeout=10)
        except (CaudalError, TimeoutError) as e:
            log.debug("event=consumer_close_error error=%s", e)
        self._io.stop()

    async def _shutdown(self) -> None:
        self._fetch_task.cancel()
        await self._core.conns.close()

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> "Consumer":
        return self

    def __next__(self) -> ConsumerRecord:
        while True:
            records = self.poll(timeout_ms=1000, max_records=1)
            if records:
                return records[0]
