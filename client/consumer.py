"""The blocking Consumer: ``poll`` returns lists of ConsumerRecord.

Positions (the next offset ``poll`` returns per partition) live in the user's
thread; the :class:`Fetcher` on the I/O thread keeps fetches in flight ahead
of them. ``poll`` decodes prefetched batches (the only place records are
decoded), drops records below the position (a fetch starts at the batch that
contains the fetch offset) and hands out at most ``max_poll_records``.
Consumer-group membership (``subscribe``/``commit``) builds on the group
coordinator; without a ``group_id`` the consumer uses manual ``assign``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Iterable, Optional

from caudal.client._transport import Connections, parse_bootstrap
from caudal.client.cluster import MetadataManager
from caudal.client.config import ConsumerConfig, build_config
from caudal.client.fetcher import EARLIEST, LATEST, CompletedFetch, Fetcher
from caudal.client.io_thread import IOThread
from caudal.client.structs import ConsumerRecord, TopicPartition
from caudal.common.errors import CaudalError, InvalidRequestError, KafkaTimeoutError
from caudal.common.record_batch import decode_batch_into, iter_batches

log = logging.getLogger(__name__)


class _Pending:
    """Decoded records of one partition not yet returned by ``poll``, and the fetched bytes
    they came from (released to the fetcher's prefetch budget once all are returned)."""

    __slots__ = ("epoch", "records", "index", "nbytes")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.records: list[ConsumerRecord] = []
        self.index = 0
        self.nbytes = 0


class Consumer:
    """Kafka-style consumer; not thread-safe (one thread polls), like Kafka's."""

    def __init__(self, *topics: str, **options: Any) -> None:
        self.config: ConsumerConfig = build_config(ConsumerConfig, options)
        self._io = IOThread(f"caudal-consumer-io-{id(self):x}")
        self._conns = Connections()
        self._metadata = MetadataManager(self._conns, parse_bootstrap(self.config.bootstrap_servers), self.config.request_timeout_ms / 1000)
        self._fetcher = Fetcher(self.config, self._metadata)
        self._fetch_task = self._io.run(self._start())
        self._positions: dict[TopicPartition, Optional[int]] = {}
        self._epochs: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._pending: dict[TopicPartition, _Pending] = {}
        self._closed = False
        if topics:
            self.subscribe(list(topics))

    async def _start(self) -> "asyncio.Task[None]":
        return asyncio.ensure_future(self._fetcher.run())

    def _timeout_s(self) -> float:
        return self.config.request_timeout_ms / 1000 + 5

    # ---- assignment ------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] | None = None, pattern: str | None = None, listener: object = None) -> None:
        raise InvalidRequestError(
            "subscribe() needs consumer-group membership, which this broker version does not offer yet; "
            "use assign([TopicPartition(topic, p), ...])"
        )

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (no group); positions start per ``auto_offset_reset``."""
        parts = [TopicPartition(*tp) for tp in partitions]
        previous = self._positions
        self._positions = {tp: previous.get(tp) for tp in parts}
        for tp in parts:
            self._epochs[tp] = self._epochs.get(tp, 0) + 1
        self._pending = {tp: r for tp, r in self._pending.items() if tp in self._positions}
        self._io.run(self._fetcher.assign({tp: (self._positions[tp], self._epochs[tp]) for tp in parts}), self._timeout_s())

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    def partitions_for_topic(self, topic: str) -> set[int]:
        cluster = self._io.run(self._metadata.refresh([topic]), self._timeout_s())
        count = cluster.partition_counts.get(topic)
        if count is None:
            raise cluster.topic_errors.get(topic) or KafkaTimeoutError(f"no metadata for topic {topic}")
        return set(range(count))

    def topics(self) -> set[str]:
        cluster = self._io.run(self._metadata.refresh(), self._timeout_s())
        return set(cluster.partition_counts)

    # ---- positions -------------------------------------------------------------

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make the next ``poll`` for ``partition`` start at ``offset``."""
        if offset < 0:
            raise InvalidRequestError(f"seek offset must be >= 0, got {offset}")
        self._set_position(TopicPartition(*partition), offset)

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self._seek_to(partitions, EARLIEST)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        self._seek_to(partitions, LATEST)

    def _seek_to(self, partitions: Iterable[TopicPartition], timestamp: int) -> None:
        tps = [TopicPartition(*tp) for tp in partitions] or list(self._positions)
        offsets = self._io.run(self._fetcher.list_offsets(tps, timestamp), self._timeout_s())
        for tp, offset in offsets.items():
            self._set_position(tp, offset)

    def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, Optional[int]]:
        """Earliest offset whose timestamp is >= the given one, per partition (None if there is none)."""
        out: dict[TopicPartition, Optional[int]] = {}
        for tp, ts in timestamps.items():
            offset = self._io.run(self._fetcher.list_offsets([tp], ts), self._timeout_s())[tp]
            out[tp] = offset if offset >= 0 else None
        return out

    def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return self._io.run(self._fetcher.list_offsets(list(partitions), EARLIEST), self._timeout_s())

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return self._io.run(self._fetcher.list_offsets(list(partitions), LATEST), self._timeout_s())

    def _set_position(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self._positions:
            raise InvalidRequestError(f"{tp.topic}-{tp.partition} is not assigned to this consumer")
        self._positions[tp] = offset
        self._epochs[tp] += 1
        self._pending.pop(tp, None)
        self._io.run(self._fetcher.seek(tp, offset, self._epochs[tp]), self._timeout_s())

    def position(self, partition: TopicPartition) -> int:
        """The offset of the next record ``poll`` returns for ``partition`` (resolving a reset if needed)."""
        tp = TopicPartition(*partition)
        if tp not in self._positions:
            raise InvalidRequestError(f"{tp.topic}-{tp.partition} is not assigned to this consumer")
        deadline = time.monotonic() + self._timeout_s()
        while self._positions[tp] is None:
            self._absorb(0.05)
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"position of {tp.topic}-{tp.partition} not resolved in time")
        return self._positions[tp]  # type: ignore[return-value]

    def pause(self, *partitions: TopicPartition) -> None:
        tps = [TopicPartition(*tp) for tp in partitions]
        self._paused.update(tps)
        self._io.run(self._fetcher.set_paused(tps, True), self._timeout_s())

    def resume(self, *partitions: TopicPartition) -> None:
        tps = [TopicPartition(*tp) for tp in partitions]
        self._paused.difference_update(tps)
        self._io.run(self._fetcher.set_paused(tps, False), self._timeout_s())

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    # ---- polling ---------------------------------------------------------------

    def poll(self, timeout_ms: int = 0, max_records: Optional[int] = None) -> list[ConsumerRecord]:
        """Records after each partition's position, waiting up to ``timeout_ms`` for the first."""
        if self._closed:
            raise InvalidRequestError("Consumer is closed")
        limit = max_records or self.config.max_poll_records
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            records = self._take(limit)
            if records:
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._absorb(remaining)

    def _take(self, limit: int) -> list[ConsumerRecord]:
        self._absorb(0)
        out: list[ConsumerRecord] = []
        for tp, pending in list(self._pending.items()):
            if tp in self._paused:
                continue
            chunk = pending.records[pending.index : pending.index + limit - len(out)]
            if not chunk:
                continue
            pending.index += len(chunk)
            out.extend(chunk)
            self._positions[tp] = chunk[-1].offset + 1
            if pending.index >= len(pending.records):
                del self._pending[tp]
                self._io.call_soon(self._fetcher.consumed, tp, pending.epoch, pending.nbytes)
            if len(out) >= limit:
                break
        return out

    def _absorb(self, wait_s: float) -> None:
        """Decode completed fetches into per-partition pending lists (waiting up to ``wait_s`` for one)."""
        fetcher = self._fetcher
        if not fetcher.completed and wait_s > 0:
            fetcher.data_ready.wait(wait_s)
        fetcher.data_ready.clear()
        while fetcher.completed:
            self._absorb_one(fetcher.completed.popleft())

    def _absorb_one(self, fetch: CompletedFetch) -> None:
        tp = fetch.tp
        if self._epochs.get(tp) != fetch.epoch:
            return
        if fetch.error is not None:
            raise fetch.error
        if fetch.reset_offset is not None:
            if self._positions.get(tp) is None or tp not in self._pending:
                self._positions[tp] = fetch.reset_offset
            return
        pending = self._pending.get(tp)
        if pending is None:
            pending = self._pending[tp] = _Pending(fetch.epoch)
        records = pending.records
        start = records[-1].offset + 1 if records else (self._positions.get(tp) or 0)
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
        if self._positions.get(tp) is None and records:
            self._positions[tp] = records[0].offset

    def commit(self, offsets: object = None, asynchronous: bool = False) -> None:
        raise InvalidRequestError("commit() needs a consumer group (group_id), which this broker version does not offer yet")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._io.run(self._shutdown(), timeout=10)
        except (CaudalError, TimeoutError) as e:
            log.debug("event=consumer_close_error error=%s", e)
        self._io.stop()

    async def _shutdown(self) -> None:
        self._fetch_task.cancel()
        await self._conns.close()

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

