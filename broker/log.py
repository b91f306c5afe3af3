"""One partition's replicated log on top of the broker's RocksDB store.

Every RecordBatch is stored whole, as one value under ``log`` key = partition key +
base offset, exactly as the producer encoded it except for the base offset and
partition leader epoch the broker writes into the header (fields the CRC does not
cover). Appends and fetches never decode records.

Per partition, the other column families hold:

- ``index``: a time index per segment: one empty-valued key ``pkey + segment base (8)
  + max timestamp (8) + batch base offset (8)`` for every batch that raises its
  segment's running maximum timestamp. Within a segment keys ascend in timestamp
  *and* offset, so ListOffsets-by-time picks the first segment whose max timestamp
  reaches the target (in memory), then one seek names the earliest batch that can
  hold it. Dropping segments or truncating a tail is a range delete.
- ``meta``: ``pkey + b"S" + base offset`` -> segment descriptor, one key per segment;
  ``pkey + b"H"`` -> high watermark checkpoint; ``pkey + b"E" + epoch`` -> start offset
  of that leader epoch.

Each append is a single group-committed WriteBatch (batch bytes + index entry +
active-segment descriptor + new epoch), so whatever a crash leaves behind is a
consistent prefix and :meth:`PartitionLog.open` needs no repair pass.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import struct
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

from caudal.broker import log_cleaner
from caudal.broker.producer_state import ProducerStateTable
from caudal.broker.storage import CF_INDEX, CF_LOG, CF_META, DeleteRange, Op, Store
from caudal.broker.storage import log_key, offset_of_key, partition_key, prefix_end
from caudal.common.errors import InvalidRecordError, MessageTooLargeError, OffsetOutOfRangeError
from caudal.common.errors import StorageError, UnknownTopicOrPartitionError
from caudal.common.record_batch import (
    BatchHeader,
    decode_records,
    parse_header,
    set_base_offset,
    set_log_append_time,
    with_base_offset,
)
from caudal.common.topic_config import TopicConfig

log = logging.getLogger(__name__)

Clock = Callable[[], int]


def _always() -> bool:
    return True


HW_CHECKPOINT_INTERVAL_MS = 5_000
"""The high watermark is written to ``meta`` at most this often (and on ``flush``)."""

_TAG_SEGMENT = b"S"
_TAG_HW = b"H"
_TAG_EPOCH = b"E"

_SEGMENT = struct.Struct(">qqqqq")  # end offset, size, max timestamp, created ms, modified ms
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_U32 = struct.Struct(">I")
_LAST_OFFSET_DELTA = struct.Struct(">i")
_LAST_OFFSET_DELTA_POS = 23  # baseOffset 8 + batchLength 4 + leaderEpoch 4 + magic 1 + crc 4 + attributes 2


def batch_last_offset(base_offset: int, batch: bytes) -> int:
    """Last offset covered by a stored batch, read straight from its header bytes."""
    return base_offset + _LAST_OFFSET_DELTA.unpack_from(batch, _LAST_OFFSET_DELTA_POS)[0]


@dataclass(slots=True)
class Segment:
    """A contiguous offset range ``[base_offset, end_offset)`` of the log; the last one is active."""

    base_offset: int
    end_offset: int
    size_bytes: int = 0
    max_timestamp: int = -1
    """Largest batch max timestamp in the segment (kept through compaction, recomputed by truncation)."""
    created_ms: int = -1
    """Clock time of the first append (-1 while empty): ``segment.ms`` counts from here."""
    modified_ms: int = -1
    """Clock time of the last append: retention's age when no record carries a timestamp."""

    def encode(self) -> bytes:
        return _SEGMENT.pack(self.end_offset, self.size_bytes, self.max_timestamp, self.created_ms, self.modified_ms)

    @property
    def retention_timestamp(self) -> int:
        return self.max_timestamp if self.max_timestamp >= 0 else self.modified_ms


class AppendResult(NamedTuple):
    """Where an append landed; ``log_append_time`` is -1 (CreateTime)."""

    base_offset: int
    last_offset: int
    log_append_time: int
    log_start_offset: int
    duplicate: bool = False
    """The batches were a retry of ones already in the log: nothing was appended and the
    offsets are those of the original append (idempotent producer)."""


class PartitionLog:
    """The log of one partition replica: append, read, ListOffsets, retention, compaction.

    Owned by the broker's asyncio loop; not thread-safe. Offsets are assigned
    synchronously when ``append`` is called, so concurrent appends on the loop get
    contiguous, ordered offsets; ``log_end_offset`` moves at assignment and
    ``durable_end_offset`` follows, in order, as group commits complete. Maintenance
    (``enforce_retention``, ``compact``, ``delete``) updates the in-memory state at
    once and queues its writes behind any in-flight appends, so RocksDB sees every
    mutation in call order; ``await flush()`` waits for all of them. Invariants:
    ``log_start_offset <= high_watermark <= log_end_offset``; segments are
    contiguous and there is always at least one (the active, last one).
    """

    def __init__(self, store: Store, topic_id: bytes, partition: int, config: TopicConfig, clock: Clock,
                 segments: list[Segment], high_watermark: int, epochs: list[tuple[int, int]]) -> None:
        """Use :meth:`open`; this takes the state it recovered."""
        self.config = config
        self.topic_id = topic_id
        self.partition = partition
        self._store = store
        self._clock = clock
        self._pkey = partition_key(topic_id, partition)
        self._pkey_end = prefix_end(self._pkey)
        self._segments = segments
        self._leo = segments[-1].end_offset
        self._durable_end = self._leo
        self._hw = min(max(high_watermark, segments[0].base_offset), self._leo)
        self._hw_checkpointed = self._hw
        self._hw_checkpoint_ms = clock()
        self._epochs = [e for e, _ in epochs]
        self._epoch_starts = [s for _, s in epochs]
        self._failed: StorageError | None = None
        self._unwritten: collections.deque[tuple[int, int, bytes]] = collections.deque()
        """(base offset, next offset, bytes) of appended batches not yet durable, oldest
        first: reads beyond the durable end (followers fetching) are served from here, so
        replication starts while this replica's own write and sync are still running."""
        self.producers = ProducerStateTable()
        """Idempotent producers' recent batches, rebuilt from the log on open and after truncation."""
        self._inflight = 0  # commits submitted and not yet completed
        self._deleted = False
        self._cleaned_upto = -1
        self._cleaned_at = 0
        """End of the segments the last compaction pass covered, and when it ran: a pass
        re-reads the whole log, so it runs only once a segment has closed since, or once
        ``delete.retention.ms`` has passed (tombstones may have expired)."""

    @classmethod
    def open(cls, store: Store, topic_id: bytes, partition: int, config: TopicConfig, clock: Clock) -> "PartitionLog":
        """Load (or create) the partition's log from ``store``, as a crash left it."""
        pkey = partition_key(topic_id, partition)
        segments = []
        for key, value in store.items(CF_META, pkey + _TAG_SEGMENT, prefix_end(pkey + _TAG_SEGMENT)):
            segments.append(Segment(offset_of_key(key), *_SEGMENT.unpack(value)))
        for prev, seg in zip(segments, segments[1:]):
            if seg.base_offset != prev.end_offset:
                raise StorageError(
                    f"segment table of partition {topic_id.hex()}-{partition} is not contiguous: "
                    f"[{prev.base_offset}, {prev.end_offset}) then [{seg.base_offset}, {seg.end_offset})"
                )
        if not segments:
            segments = [Segment(0, 0)]
        raw_hw = store.get(CF_META, pkey + _TAG_HW)
        epochs = [
            (_U32.unpack_from(key, len(key) - 4)[0], _I64.unpack(value)[0])
            for key, value in store.items(CF_META, pkey + _TAG_EPOCH, prefix_end(pkey + _TAG_EPOCH))
        ]
        plog = cls(store, topic_id, partition, config, clock, segments, _I64.unpack(raw_hw)[0] if raw_hw else 0, epochs)
        plog._rebuild_producer_state()
        log.debug("event=log_opened partition=%s log_start=%d leo=%d hw=%d segments=%d", plog.name,
                  plog.log_start_offset, plog.log_end_offset, plog.high_watermark, len(segments))
        return plog

    # ---- state ---------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"{self.topic_id.hex()}-{self.partition}"

    @property
    def log_start_offset(self) -> int:
        return self._segments[0].base_offset

    @property
    def log_end_offset(self) -> int:
        """The next offset to assign (moves when an append is accepted)."""
        return self._leo

    @property
    def durable_end_offset(self) -> int:
        """End of the prefix written to RocksDB (fsynced when the topic syncs writes)."""
        return self._durable_end

    @property
    def high_watermark(self) -> int:
        return self._hw

    @property
    def size_bytes(self) -> int:
        return sum(s.size_bytes for s in self._segments)

    @property
    def segments(self) -> list[Segment]:
        """Copies of the segment descriptors, oldest first (the last is active)."""
        return [replace(s) for s in self._segments]

    @property
    def latest_epoch(self) -> int:
        """Most recent leader epoch seen in the log, -1 if none."""
        return self._epochs[-1] if self._epochs else -1

    def assign_leader_epoch(self, epoch: int) -> None:
        """Start ``epoch`` at the current log end (this replica just became its leader).

        Kafka records the epoch at promotion, before any batch of it exists, so a
        follower holding batches of an older epoch the new leader never saw learns
        where that epoch ended here (the next epoch's start) and truncates there.
        """
        self._check_open()
        if epoch <= self.latest_epoch:
            return
        self._epochs.append(epoch)
        self._epoch_starts.append(self._leo)
        self._submit([(CF_META, self._pkey + _TAG_EPOCH + _U32.pack(epoch), _I64.pack(self._leo))], sync=self.config.sync_writes)

    def update_high_watermark(self, offset: int) -> int:
        """Set the HW (owned by the replica layer), clamped into [log start, log end] as Kafka does.

        Returns the value set. Checkpointed to ``meta`` at most every
        HW_CHECKPOINT_INTERVAL_MS (a recovered HW may lag; it never runs ahead).
        """
        self._hw = min(max(offset, self.log_start_offset), self._leo)
        now = self._clock()
        if self._hw != self._hw_checkpointed and now - self._hw_checkpoint_ms >= HW_CHECKPOINT_INTERVAL_MS:
            self._checkpoint_hw(now)
        return self._hw

    async def flush(self) -> None:
        """Checkpoint the HW and wait until everything submitted so far is written and synced."""
        self._check_open()
        if self._hw != self._hw_checkpointed:
            self._checkpoint_hw(self._clock())
        await self._store.commit((), True)

    def _checkpoint_hw(self, now: int) -> None:
        self._hw_checkpointed = self._hw
        self._hw_checkpoint_ms = now
        self._submit([(CF_META, self._pkey + _TAG_HW, _I64.pack(self._hw))], sync=False)

    # ---- append --------------------------------------------------------------

    def append(self, payload: bytes, headers: list[BatchHeader], leader_epoch: int) -> Awaitable[AppendResult]:
        """Append validated producer batches: assign offsets, write, wait per the flush policy.

        ``headers`` are ``validate_batches(payload)``. Offsets are assigned and the
        batches are readable by :meth:`read` up to the log end (followers fetch them)
        when this returns; awaiting the result waits until they are durable (fsynced when
        ``log.flush.policy=sync``). MESSAGE_TOO_LARGE for a batch above ``max.message.bytes``.
        """
        self._check_open()
        original = self.producers.check(headers)
        if original is not None:
            count = sum(h.last_offset_delta + 1 for h in headers)
            return _ready(AppendResult(original, original + count - 1, -1, self.log_start_offset, duplicate=True))
        base = self._leo
        append_time = self._clock() if self.config.message_timestamp_type == "LogAppendTime" else -1
        ops = self._stage(payload, headers, leader_epoch, append_time)
        end = self._leo  # read now: later appends move the log end offset
        written = self._commit(ops, self.config.sync_writes, end)
        return _when_written(written, AppendResult(base, end - 1, append_time, self.log_start_offset))

    def append_replica(self, payload: bytes, headers: list[BatchHeader]) -> Awaitable[None]:
        """Append batches fetched from the leader, keeping their offsets and leader epochs.

        The first batch must start at or after the log end offset and batches must not
        overlap (gaps are allowed: the leader may have compacted whole batches away).
        The batches are in the log when this returns; awaiting waits until they are
        durable. Staging at once matters: a follower promoted to leader starts its epoch
        at the log end, and a fetched batch staged after that would sit, with its older
        epoch, inside the new one.
        """
        self._check_open()
        ops = self._stage(payload, headers, None)
        return self._commit(ops, self.config.sync_writes, self._leo)

    def _commit(self, ops: list[Op], sync: bool, end: int = 0) -> asyncio.Future[None]:
        """Group-commit ``ops``; ``end`` is the log end offset they make durable (0: maintenance)."""
        self._inflight += 1
        try:
            return self._store.commit(ops, sync, partial(self._on_written, end))
        except StorageError as exc:  # state already reflects these ops: the log cannot go on
            self._on_written(end, exc)
            raise

    def _stage(
        self, payload: bytes, headers: list[BatchHeader], leader_epoch: int | None, append_time: int = -1
    ) -> list[Op]:
        """Check, assign offsets (if ``leader_epoch`` is given) and build the ops of one append.

        ``append_time`` >= 0 stamps each batch as LogAppendTime (the topic's
        ``message.timestamp.type``), the one case where the leader rewrites more than
        the base offset and epoch: the max timestamp, one attribute bit and the CRC.

        Everything that can fail is checked before any state changes.
        """
        if not headers:
            raise InvalidRecordError("an append needs at least one batch")
        limit = self.config.max_message_bytes
        total = 0
        expected = self._leo
        for h in headers:
            size = h.size
            if size > limit:
                raise MessageTooLargeError(f"batch of {size} bytes exceeds max.message.bytes={limit} ({self.name})")
            if leader_epoch is None:
                if h.base_offset < expected:
                    raise InvalidRecordError(f"replicated batch at {h.base_offset} overlaps {self.name} (next {expected})")
                expected = h.next_offset
            total += size
        if total != len(payload):
            raise InvalidRecordError(f"batch headers cover {total} bytes of a {len(payload)}-byte payload")

        now = self._clock()
        cfg = self.config
        pkey = self._pkey
        ops: list[Op] = []
        touched: list[Segment] = []
        single = len(headers) == 1
        pos = 0
        for h in headers:
            size = h.size
            data = payload if single else payload[pos : pos + size]
            pos += size
            if leader_epoch is None:
                base, epoch = h.base_offset, h.partition_leader_epoch
                if type(data) is not bytes:
                    data = bytes(data)
            elif append_time >= 0:
                base, epoch = self._leo, leader_epoch
                stamped = bytearray(data)
                set_base_offset(stamped, 0, base, leader_epoch)
                set_log_append_time(stamped, 0, append_time)
                data = bytes(stamped)
            else:
                base, epoch = self._leo, leader_epoch
                data = with_base_offset(data, base, leader_epoch)
            seg = self._segments[-1]
            if seg.size_bytes and (seg.size_bytes + size > cfg.segment_bytes or now - seg.created_ms >= cfg.segment_ms):
                seg = Segment(seg.end_offset, seg.end_offset)
                self._segments.append(seg)
            if not touched or touched[-1] is not seg:
                touched.append(seg)
            ops.append((CF_LOG, log_key(pkey, base), data))
            self._unwritten.append((base, base + h.last_offset_delta + 1, data))
            if h.producer_id >= 0:
                self.producers.record(h._replace(base_offset=base, partition_leader_epoch=epoch))
            max_ts = h.max_timestamp if append_time < 0 else append_time
            if max_ts > seg.max_timestamp:  # the segment's running max rises: index this batch
                seg.max_timestamp = max_ts
                ops.append((CF_INDEX, self._index_prefix(seg.base_offset) + _U64.pack(max_ts) + _U64.pack(base), b""))
            if epoch > self.latest_epoch:
                self._epochs.append(epoch)
                self._epoch_starts.append(base)
                ops.append((CF_META, pkey + _TAG_EPOCH + _U32.pack(epoch), _I64.pack(base)))
            self._leo = base + h.last_offset_delta + 1
            seg.end_offset = self._leo
            seg.size_bytes += size
            if seg.created_ms < 0:
                seg.created_ms = now
            seg.modified_ms = now
        for seg in touched:
            ops.append((CF_META, self._segment_key(seg.base_offset), seg.encode()))
        return ops

    def _on_written(self, end: int, exc: StorageError | None) -> None:
        """Group-commit completion (on the loop, in submission order)."""
        self._inflight -= 1
        if exc is not None:
            if self._failed is None:
                log.error("event=log_offline partition=%s error=%s", self.name, exc.message)
            self._failed = exc
        elif end > self._durable_end:
            self._durable_end = end
            unwritten = self._unwritten
            while unwritten and unwritten[0][1] <= end:
                unwritten.popleft()

    # ---- read ----------------------------------------------------------------

    def read(self, fetch_offset: int, max_bytes: int, max_offset: int) -> bytes:
        """Whole stored batches from the one containing ``fetch_offset``, below ``max_offset``.

        Batches start below ``max_offset`` (exclusive; the HW for consumers, which is
        always a batch boundary). Reading stops once ``max_bytes`` would be exceeded,
        but the first batch is returned whole even if larger (KIP-74). Returns b"" when
        nothing is available yet. OFFSET_OUT_OF_RANGE outside [log start, log end].
        """
        self._check_open()
        start = self.log_start_offset
        if not start <= fetch_offset <= self._leo:
            raise OffsetOutOfRangeError(
                f"fetch offset {fetch_offset} is out of range for partition {self.name}: "
                f"log start offset {start}, log end offset {self._leo}"
            )
        upper = min(max_offset, self._leo)
        if fetch_offset >= upper:
            return b""
        out: list[bytes] = []
        total = 0
        for value in self._batches_for_read(fetch_offset, upper):
            size = len(value)
            if out and total + size > max_bytes:
                break
            out.append(value)
            total += size
            if total >= max_bytes:
                break
        return b"".join(out)

    def _batches_for_read(self, fetch_offset: int, upper: int) -> Iterator[bytes]:
        """Stored batches from the one holding ``fetch_offset``, then those still being written."""
        stored_upper = min(upper, self._durable_end)
        if fetch_offset < stored_upper:
            pkey = self._pkey
            floor = True
            for key, value in self._store.items_from_floor(
                CF_LOG, log_key(pkey, fetch_offset), log_key(pkey, self.log_start_offset), log_key(pkey, stored_upper)
            ):
                if floor and batch_last_offset(offset_of_key(key), value) < fetch_offset:
                    floor = False
                    continue  # the floor batch ends before fetch_offset (records compacted away)
                floor = False
                yield value
        if upper > self._durable_end:
            for base, next_offset, value in self._unwritten:
                if base >= upper:
                    break
                if next_offset > fetch_offset:
                    yield value

    def batches(self, start_offset: int, end_offset: int) -> Iterator[tuple[int, bytes]]:
        """(base offset, bytes) of stored batches with base in ``[start_offset, end_offset)``."""
        pkey = self._pkey
        for key, value in self._store.items(CF_LOG, log_key(pkey, start_offset), log_key(pkey, end_offset)):
            yield offset_of_key(key), value

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the earliest record with timestamp >= ``timestamp``, or None.

        Earlier segments hold only older records (their max timestamp is lower); in the
        first segment that reaches the target, one index seek finds the first batch
        whose running max does. Only that batch (after compaction, maybe a few more)
        is decoded.
        """
        self._check_open()
        seg = next((s for s in self._segments if s.max_timestamp >= timestamp), None)
        if seg is None:
            return None
        prefix = self._index_prefix(seg.base_offset)
        entry = self._store.first(CF_INDEX, prefix + _U64.pack(max(timestamp, 0)), prefix_end(prefix))
        if entry is None:
            return None
        pkey = self._pkey
        start = max(offset_of_key(entry[0]), self.log_start_offset)
        for key, value in self._store.items_from_floor(
            CF_LOG, log_key(pkey, start), log_key(pkey, self.log_start_offset), self._pkey_end
        ):
            header = parse_header(value)
            if header.max_timestamp < timestamp or batch_last_offset(offset_of_key(key), value) < start:
                continue
            for record in decode_records(value, check_crc=False)[1]:
                if record.offset >= start and record.timestamp >= timestamp:
                    return record.offset, record.timestamp
        return None

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (largest epoch <= ``epoch``, end offset of that epoch).

        The end offset is the start of the next higher epoch, or the log end offset for
        the latest epoch; (-1, -1) if ``epoch`` is unknown or above the latest.
        """
        epochs = self._epochs
        if epoch < 0 or not epochs or epoch > epochs[-1]:
            return -1, -1
        if epoch == epochs[-1]:
            return epoch, self._leo
        higher = bisect.bisect_right(epochs, epoch)
        floor_epoch = epochs[higher - 1] if higher > 0 else epoch
        return floor_epoch, self._epoch_starts[higher]

    def divergence_offset(self, leader_epoch: int, leader_end_offset: int) -> int:
        """Where a follower truncates when its leader says its log diverges (KIP-279).

        The leader answered with ``leader_epoch``, the largest epoch it knows at or
        below the follower's last one, ending at ``leader_end_offset``. If this log
        has that epoch too, the logs agree up to the smaller of the two ends. If not,
        this log's own epochs in between are not the leader's: it goes back to where
        its largest epoch below ``leader_epoch`` ends and asks again. Truncating to
        the leader's end alone would keep batches of an epoch the leader never had.
        """
        if leader_epoch < 0:
            return min(leader_end_offset, self._leo)
        epoch, end = self.end_offset_for_epoch(leader_epoch)
        if epoch == leader_epoch:
            return min(end, leader_end_offset, self._leo)
        return min(end, self._leo)

    # ---- maintenance -----------------------------------------------------------

    def enforce_retention(self, now_ms: int) -> int:
        """Delete the oldest closed segments past ``retention.ms`` / ``retention.bytes``.

        Only whole closed segments entirely below the HW go, oldest first, stopping at
        the first one that must stay; the log start offset moves to the first survivor.
        No-op unless ``cleanup.policy`` includes ``delete``. Returns segments deleted.
        """
        self._check_open()
        cfg = self.config
        if not cfg.deletes:
            return 0
        remaining = self.size_bytes
        count = 0
        for seg in self._segments[:-1]:
            if seg.end_offset > self._hw:
                break
            too_old = cfg.retention_ms >= 0 and now_ms - seg.retention_timestamp > cfg.retention_ms
            too_big = cfg.retention_bytes >= 0 and remaining - seg.size_bytes >= cfg.retention_bytes
            if not (too_old or too_big):
                break
            remaining -= seg.size_bytes
            count += 1
        if count:
            self._delete_oldest(count)
        return count

    def _delete_oldest(self, count: int) -> None:
        del self._segments[:count]
        pkey = self._pkey
        new_start = self._segments[0].base_offset
        ops: list[Op] = [
            DeleteRange(CF_LOG, pkey, log_key(pkey, new_start)),
            DeleteRange(CF_META, pkey + _TAG_SEGMENT, self._segment_key(new_start)),
            DeleteRange(CF_INDEX, pkey, self._index_prefix(new_start)),
        ]
        # Leader epochs: the one in force at new_start now starts there; older ones go.
        keep_from = max(bisect.bisect_right(self._epoch_starts, new_start) - 1, 0)
        for epoch in self._epochs[:keep_from]:
            ops.append((CF_META, pkey + _TAG_EPOCH + _U32.pack(epoch), None))
        del self._epochs[:keep_from], self._epoch_starts[:keep_from]
        if self._epochs and self._epoch_starts[0] < new_start:
            self._epoch_starts[0] = new_start
            ops.append((CF_META, pkey + _TAG_EPOCH + _U32.pack(self._epochs[0]), _I64.pack(new_start)))
        self._submit(ops, sync=False)
        log.info("event=segments_deleted partition=%s count=%d log_start_offset=%d", self.name, count, new_start)

    def compact(self, now_ms: int) -> int:
        """Rewrite closed segments keeping only the latest record per key; returns segments rewritten.

        The key map covers every record below the HW (active segment included).
        Cleanable: the closed segments below the HW whose newest record is older than
        ``min.compaction.lag.ms``, oldest first; a pass is skipped when no segment closed
        since the previous one and no tombstone can have expired. Tombstones older than
        ``delete.retention.ms`` are dropped; offsets are preserved; each segment's
        rewrite is one atomic WriteBatch. No-op unless ``cleanup.policy`` has ``compact``.
        """
        self._check_open()
        cfg = self.config
        if not cfg.compacted:
            return 0
        cleanable = []
        upto = min(self._hw, self._durable_end)
        for seg in self._segments[:-1]:
            if seg.end_offset > upto or (
                cfg.min_compaction_lag_ms > 0 and now_ms - seg.retention_timestamp < cfg.min_compaction_lag_ms
            ):
                break
            cleanable.append(seg)
        if not cleanable:
            return 0
        dirty_end = cleanable[-1].end_offset
        if dirty_end <= self._cleaned_upto and now_ms - self._cleaned_at < cfg.delete_retention_ms:
            return 0  # nothing closed since the last pass, and no tombstone can have expired since
        self._cleaned_upto, self._cleaned_at = dirty_end, now_ms
        key_map = log_cleaner.build_key_map(self.batches(self.log_start_offset, upto), upto)
        horizon = now_ms - cfg.delete_retention_ms
        rewritten = 0
        for seg in cleanable:
            changes, size = log_cleaner.clean_segment(self.batches(seg.base_offset, seg.end_offset), key_map, horizon)
            if changes:
                seg.size_bytes = size
                ops: list[Op] = [(CF_LOG, log_key(self._pkey, base), batch) for base, batch in changes]
                ops.append((CF_META, self._segment_key(seg.base_offset), seg.encode()))
                self._submit(ops, sync=False)
                rewritten += 1
        if rewritten:
            log.info("event=log_compacted partition=%s segments=%d", self.name, rewritten)
        return rewritten

    async def truncate_to(self, offset: int, still_wanted: Callable[[], bool] = _always) -> None:
        """Drop every batch at or above ``offset`` (a follower diverged from its leader).

        A batch straddling ``offset`` is dropped whole, so the log end offset becomes
        the batch boundary at or below ``offset``; below the log start offset the log
        is emptied and restarts at ``offset``. Leader epochs starting at or after the
        new log end go too, even when no batch does: a replica promoted and demoted
        before it appended anything holds an epoch its new leader never had, and
        asking about it would get the same answer for ever (Kafka truncates its epoch
        cache in that case too). Waits for in-flight writes first, then truncates only
        if ``still_wanted()`` (a follower may have been promoted meanwhile), then waits
        for the truncation to be written.
        """
        await self._truncate(offset, restart=False, still_wanted=still_wanted)

    async def restart_at(self, offset: int, still_wanted: Callable[[], bool] = _always) -> None:
        """Empty the log and continue at ``offset``, which may lie beyond the log end.

        For a follower whose log ends before the leader's log start offset: the gap was
        deleted by retention on the leader, so the follower starts over where it begins.
        ``still_wanted`` as for :meth:`truncate_to`.
        """
        await self._truncate(offset, restart=True, still_wanted=still_wanted)

    async def _truncate(self, offset: int, restart: bool, still_wanted: Callable[[], bool]) -> None:
        self._check_open()
        while self._inflight:
            await self._store.commit((), False)
            self._check_open()
        if not still_wanted():
            return
        if offset >= self._leo and not restart:
            if self._epoch_starts and self._epoch_starts[-1] >= self._leo:
                await self._commit(self._drop_epochs_from(self._leo), self.config.sync_writes)
            return
        pkey, pkey_end = self._pkey, self._pkey_end
        seg_end = prefix_end(pkey + _TAG_SEGMENT)
        if restart or offset <= self.log_start_offset:
            cut = offset
            self._segments = [Segment(cut, cut)]
            ops: list[Op] = [
                DeleteRange(CF_LOG, pkey, pkey_end),
                DeleteRange(CF_INDEX, pkey, pkey_end),
                DeleteRange(CF_META, pkey + _TAG_SEGMENT, seg_end),
            ]
        else:
            cut = offset
            floor = self._store.last(CF_LOG, log_key(pkey, self.log_start_offset), log_key(pkey, offset + 1))
            if floor is not None and batch_last_offset(offset_of_key(floor[0]), floor[1]) >= offset:
                cut = offset_of_key(floor[0])  # the batch straddling offset goes too
            while self._segments[-1].base_offset > cut:
                self._segments.pop()
            seg = self._segments[-1]
            seg.size_bytes -= sum(len(v) for _, v in self.batches(cut, seg.end_offset))
            seg.end_offset = cut
            if cut == seg.base_offset:
                seg.size_bytes, seg.created_ms = 0, -1
            ops = [
                DeleteRange(CF_LOG, log_key(pkey, cut), pkey_end),
                DeleteRange(CF_META, self._segment_key(seg.base_offset + 1), seg_end),
            ]
            # The segment's running max timestamp is again that of its last surviving entry.
            prefix = self._index_prefix(seg.base_offset)
            drop_index_from = prefix_end(prefix)
            seg.max_timestamp = -1
            for key, _ in self._store.items_reversed(CF_INDEX, prefix, drop_index_from):
                if offset_of_key(key) < cut:
                    seg.max_timestamp = _U64.unpack_from(key, len(prefix))[0]
                    break
                drop_index_from = key
            ops.append(DeleteRange(CF_INDEX, drop_index_from, pkey_end))
        active = self._segments[-1]
        ops.append((CF_META, self._segment_key(active.base_offset), active.encode()))
        ops += self._drop_epochs_from(cut)
        self._leo = self._durable_end = cut
        self._unwritten.clear()
        self._hw = cut if restart else min(self._hw, cut)
        self._hw_checkpointed = self._hw
        ops.append((CF_META, pkey + _TAG_HW, _I64.pack(self._hw)))
        log.info("event=log_truncated partition=%s requested=%d log_end_offset=%d", self.name, offset, cut)
        await self._commit(ops, self.config.sync_writes)
        self._rebuild_producer_state()

    def _drop_epochs_from(self, offset: int) -> list[Op]:
        """Forget the leader epochs starting at or after ``offset``; the ops that delete them."""
        drop_from = bisect.bisect_left(self._epoch_starts, offset)
        if drop_from == len(self._epochs):
            return []
        pkey = self._pkey
        op = DeleteRange(CF_META, pkey + _TAG_EPOCH + _U32.pack(self._epochs[drop_from]), prefix_end(pkey + _TAG_EPOCH))
        log.info("event=leader_epochs_dropped partition=%s epochs=%s", self.name, self._epochs[drop_from:])
        del self._epochs[drop_from:], self._epoch_starts[drop_from:]
        return [op]

    def _rebuild_producer_state(self) -> None:
        """Replay the stored batches' headers (no record is decoded) into the producer table."""
        self.producers = ProducerStateTable.rebuild(
            parse_header(batch) for _, batch in self.batches(self.log_start_offset, self._leo)
        )

    def delete(self) -> None:
        """Drop all of the partition's data (its topic was deleted); the object is unusable after.

        The range deletes are queued behind in-flight appends.
        """
        if self._deleted:
            return
        self._deleted = True
        pkey, end = self._pkey, self._pkey_end
        self._submit([DeleteRange(CF_LOG, pkey, end), DeleteRange(CF_INDEX, pkey, end), DeleteRange(CF_META, pkey, end)], sync=False)

    # ---- helpers -------------------------------------------------------------

    def _segment_key(self, base_offset: int) -> bytes:
        return self._pkey + _TAG_SEGMENT + _U64.pack(base_offset)

    def _index_prefix(self, segment_base: int) -> bytes:
        return self._pkey + _U64.pack(segment_base)

    def _check_open(self) -> None:
        if self._deleted:
            raise UnknownTopicOrPartitionError(f"partition {self.name} has been deleted")
        if self._failed is not None:
            raise StorageError(f"log of partition {self.name} is offline: {self._failed.message}")

    def _submit(self, ops: list[Op], sync: bool) -> None:
        """Queue maintenance writes in order behind in-flight appends without waiting for them."""
        self._commit(ops, sync).add_done_callback(_retrieve)


async def _ready(result: AppendResult) -> AppendResult:
    return result


async def _when_written(written: "asyncio.Future[None]", result: AppendResult) -> AppendResult:
    await written
    return result


def _retrieve(fut: asyncio.Future[None]) -> None:
    """Mark a fire-and-forget commit's error as seen: ``_on_written`` already took the log offline."""
    if not fut.cancelled():
        fut.exception()
