"""The broker side of the idempotent producer: Kafka's ProducerStateManager / ProducerAppendInfo.

An idempotent producer stamps every batch with its producer id, producer epoch and
the sequence number of the batch's first record (per partition, +1 per record). A
partition replica remembers, for each producer id, the current epoch and the last
``NUM_BATCHES_TO_RETAIN`` (64) batches it appended. With that the leader can tell,
before appending a produce payload:

* a **retry** of a batch already in the log (its acknowledgement was lost) - answer
  with the original offset and append nothing, so the retry does not duplicate it;
* a **gap** or reordering (a batch went missing in between) - OUT_OF_ORDER_SEQUENCE_NUMBER,
  so no batch is ever written after a hole;
* a **zombie** producer whose epoch was bumped by a newer incarnation -
  INVALID_PRODUCER_EPOCH (fenced).

A retry can only concern batches that were unacknowledged together. A Kafka
producer keeps at most five requests in flight per connection
(``max.in.flight.requests.per.connection <= 5`` with idempotence); caudal's
producer keeps one request in flight per partition but packs up to 64 ready
batches into it (see ``client/sender.py``; 64 default 16 KiB batches fill a 1 MiB
request), so the window is 64 — which covers both.

This module is pure (no I/O, no clock); one ``ProducerStateTable`` per partition
replica, owned by whoever serialises appends to that partition. The leader calls
``check`` before an append and ``record`` after it; followers ``record`` what they
replicate; after a restart or a log truncation the table is ``rebuild``-t from the
headers of the log, oldest first. Per batch the work is a dict lookup and a scan of at
most 64 retained entries; records are never looked at.

Deliberate differences from Kafka: there are no snapshot files (the table is rebuilt
from the log), no producer-id expiration, and a producer id unknown to the table must
start at sequence 0 (Kafka, since KIP-360, accepts any sequence for an unknown producer
whose state was lost to retention).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from caudal.common.errors import (
    CaudalError,
    ErrorCode,
    OutOfOrderSequenceError,
    error_for,
)
from caudal.common.record_batch import BatchHeader

__all__ = [
    "NUM_BATCHES_TO_RETAIN", "BatchMetadata", "ProducerEntry", "ProducerStateTable",
    "increment_sequence", "next_sequence",
]

NUM_BATCHES_TO_RETAIN = 64
"""How many batches of a producer a replica remembers per partition: the most a producer may
have unacknowledged at once (Kafka's is 5, its in-flight request limit; caudal's producer
sends up to 64 batches of a partition in its one in-flight request)."""

_INT32_MAX = (1 << 31) - 1
_NO_SEQUENCE = -1


def increment_sequence(sequence: int, increment: int) -> int:
    """``sequence + increment`` wrapping past int32 max to 0 (Kafka's DefaultRecordBatch.incrementSequence).

    Sequence numbers are int32 and a long-lived producer wraps around: after
    2147483647 comes 0.
    """
    if sequence > _INT32_MAX - increment:
        return increment - (_INT32_MAX - sequence) - 1
    return sequence + increment


def next_sequence(last_sequence: int) -> int:
    """The sequence that must follow ``last_sequence`` (Kafka's ProducerAppendInfo.inSequence)."""
    return 0 if last_sequence == _INT32_MAX else last_sequence + 1


def _last_sequence(header: BatchHeader) -> int:
    # Kafka derives it from lastOffsetDelta, not recordCount: compaction may drop
    # records from a batch but keeps lastOffsetDelta, so the sequence range survives.
    return increment_sequence(header.base_sequence, header.last_offset_delta)


class BatchMetadata(NamedTuple):
    """What is retained of one appended batch (Kafka's BatchMetadata)."""

    first_seq: int
    last_seq: int
    base_offset: int
    last_offset: int


class ProducerEntry(NamedTuple):
    """An immutable view of one producer's state: its epoch and its last batches, oldest first."""

    epoch: int
    batches: tuple[BatchMetadata, ...]

    @property
    def last_seq(self) -> int:
        """The last sequence appended in this epoch; -1 when none (the next must then be 0)."""
        return self.batches[-1].last_seq if self.batches else _NO_SEQUENCE


class _Entry:
    """The mutable per-producer state kept in the table."""

    __slots__ = ("batches", "epoch")

    def __init__(self, epoch: int, retain: int) -> None:
        self.epoch = epoch
        self.batches: deque[BatchMetadata] = deque(maxlen=retain)


def _find_duplicate(batches: Sequence[BatchMetadata], first_seq: int, last_seq: int) -> int:
    """Index of the retained batch with exactly this sequence range, or -1 (Kafka's batchWithSequenceRange)."""
    for i, meta in enumerate(batches):
        if meta.first_seq == first_seq and meta.last_seq == last_seq:
            return i
    return -1


def _is_checked(header: BatchHeader) -> bool:
    """Whether ``check`` applies the idempotence rules to this batch.

    Batches without a producer id are plain (non-idempotent) appends. Control batches
    (transaction markers) are written by the broker for the transaction coordinator,
    carry no sequence, and are never retried by a producer.
    """
    return header.producer_id >= 0 and not header.is_control


class ProducerStateTable:
    """Per-partition-replica producer state: epoch and last ``retain`` batches per producer id.

    Not thread-safe: use it from the one task that serialises appends to the partition.
    """

    __slots__ = ("_entries", "retain")

    def __init__(self, retain: int = NUM_BATCHES_TO_RETAIN) -> None:
        self._entries: dict[int, _Entry] = {}
        self.retain = retain

    # ----------------------------------------------------------------- leader side

    def check(self, headers: Sequence[BatchHeader]) -> int | None:
        """Validate a produce payload before the leader appends it; the table is not changed.

        ``headers`` are the payload's batches, in order. Each idempotent batch is checked
        as if the earlier batches of the payload had already been appended. Returns
        None when the payload is new (append it, then ``record`` every batch), or, when
        it is a retry of batches already in the log, the base offset that the first of
        them was appended at (answer the produce with it and append nothing).

        Raises, for the first idempotent batch that breaks a rule:

        * INVALID_PRODUCER_EPOCH (``error_for``) when its epoch is lower than the
          producer's current epoch: a newer instance of the producer fenced this one
          (Kafka's ProducerAppendInfo.checkProducerEpoch).
        * OutOfOrderSequenceError when a new epoch (or a producer id the table does not
          know) does not start at sequence 0; when, within the epoch, the batch neither
          repeats one of the last five batches nor starts right after the last one
          (a gap or a reordering; Kafka's checkSequence); and when a payload mixes
          retried batches with new ones, or its retried batches are not consecutive in
          the log, because it can then be neither appended nor answered as a whole.
        """
        # Cumulative view: producer id -> (epoch, retained batches) after the payload's
        # earlier batches. Only producers the payload touches are copied, at most five
        # entries each, so the cost stays O(1) per batch.
        pending: dict[int, tuple[int, tuple[BatchMetadata, ...]]] = {}
        duplicate_of: int | None = None  # base offset answered for an all-retry payload
        last_duplicate_index: dict[int, int] = {}  # producer id -> retained index last matched
        seen_new = False  # some batch of the payload is (or must be appended as) new
        entries = self._entries
        for position, header in enumerate(headers):
            if not _is_checked(header):
                if duplicate_of is not None:
                    raise OutOfOrderSequenceError(
                        f"batch {position} of a retried payload is not idempotent; "
                        "the payload mixes retried and new batches"
                    )
                seen_new = True
                continue
            pid = header.producer_id
            epoch = header.producer_epoch
            first_seq = header.base_sequence
            last_seq = _last_sequence(header)
            state = pending.get(pid)
            if state is None:
                entry = entries.get(pid)
                state = None if entry is None else (entry.epoch, tuple(entry.batches))
            if state is not None and epoch < state[0]:
                raise _invalid_epoch(pid, epoch, state[0])

            if state is not None and epoch == state[0]:
                index = _find_duplicate(state[1], first_seq, last_seq)
                if index >= 0:
                    if seen_new:
                        raise OutOfOrderSequenceError(
                            f"producer {pid} epoch {epoch}: batch {position} (sequences {first_seq}..{last_seq}) "
                            "repeats an appended batch but earlier batches of the payload are new"
                        )
                    previous = last_duplicate_index.get(pid)
                    if previous is not None and index != previous + 1:
                        raise OutOfOrderSequenceError(
                            f"producer {pid} epoch {epoch}: retried batch {position} (sequences "
                            f"{first_seq}..{last_seq}) does not follow the previous retried batch in the log"
                        )
                    last_duplicate_index[pid] = index
                    if duplicate_of is None:
                        duplicate_of = state[1][index].base_offset
                    continue

            if duplicate_of is not None:
                raise OutOfOrderSequenceError(
                    f"producer {pid} epoch {epoch}: batch {position} (sequences {first_seq}..{last_seq}) is new "
                    "but earlier batches of the payload are retries of appended batches"
                )
            seen_new = True
            if state is None or epoch > state[0]:
                # Kafka: the first batch of a new epoch must carry sequence 0.
                if first_seq != 0:
                    known = "unknown producer id" if state is None else f"current epoch {state[0]}"
                    raise OutOfOrderSequenceError(
                        f"producer {pid}: batch {position} of new epoch {epoch} ({known}) must start at "
                        f"sequence 0, got {first_seq}"
                    )
                retained: tuple[BatchMetadata, ...] = ()
            else:
                retained = state[1]
                last = retained[-1].last_seq if retained else _NO_SEQUENCE
                expected = next_sequence(last)
                if first_seq != expected:
                    raise OutOfOrderSequenceError(
                        f"producer {pid} epoch {epoch}: batch {position} expected sequence {expected}, got "
                        f"{first_seq} (last appended sequence {last})"
                    )
            meta = BatchMetadata(first_seq, last_seq, header.base_offset, header.last_offset)
            pending[pid] = (epoch, (*retained, meta)[-self.retain:])
        return duplicate_of

    # ------------------------------------------------------------ every replica

    def record(self, header: BatchHeader) -> None:
        """Account for one batch that was appended to the log (oldest first).

        The leader calls it with the batch's assigned base offset, a follower for every
        batch it replicates, recovery for every batch read back from the log. Batches
        without a producer id are ignored. The log is the truth here, so nothing is
        validated: a batch whose epoch differs from the known one starts that epoch
        afresh (Kafka's ProducerStateEntry.maybeUpdateProducerEpoch), and the oldest
        retained batch is dropped beyond five. A control batch (transaction marker)
        only moves the epoch: like Kafka's appendEndTxnMarker it retains no batch, so
        after a marker that bumped the epoch the producer's next batch must be sequence 0.
        """
        pid = header.producer_id
        if pid < 0:
            return
        epoch = header.producer_epoch
        entry = self._entries.get(pid)
        if entry is None:
            entry = self._entries[pid] = _Entry(epoch, self.retain)
        elif entry.epoch != epoch:
            entry.epoch = epoch
            entry.batches.clear()
        if header.is_control:
            return
        entry.batches.append(
            BatchMetadata(header.base_sequence, _last_sequence(header), header.base_offset, header.last_offset)
        )

    def record_all(self, headers: Iterable[BatchHeader]) -> None:
        """``record`` every header, in order (an appended payload, or a stretch of the log)."""
        record = self.record
        for header in headers:
            record(header)

    def clear(self) -> None:
        """Forget every producer (before replaying the log after a truncation)."""
        self._entries.clear()

    @classmethod
    def rebuild(cls, headers: Iterable[BatchHeader], retain: int = NUM_BATCHES_TO_RETAIN) -> ProducerStateTable:
        """A table replayed from the log's batch headers, oldest first (after a restart or a truncation)."""
        table = cls(retain)
        table.record_all(headers)
        return table

    # ------------------------------------------------------------------ inspection

    def entry(self, producer_id: int) -> ProducerEntry | None:
        """An immutable view of one producer's state, or None when the table does not know it."""
        entry = self._entries.get(producer_id)
        return None if entry is None else ProducerEntry(entry.epoch, tuple(entry.batches))

    def snapshot(self) -> dict[int, ProducerEntry]:
        """An immutable view of the whole table, for tests and diagnostics."""
        return {pid: ProducerEntry(e.epoch, tuple(e.batches)) for pid, e in self._entries.items()}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, producer_id: object) -> bool:
        return producer_id in self._entries

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProducerStateTable):
            return NotImplemented
        return self.snapshot() == other.snapshot()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ProducerStateTable({self.snapshot()!r})"


def _invalid_epoch(producer_id: int, epoch: int, current: int) -> CaudalError:
    return error_for(
        ErrorCode.INVALID_PRODUCER_EPOCH,
        f"producer {producer_id} epoch {epoch} is older than the current epoch {current}: it has been fenced",
    )
