"""Source records on their way to the cluster, tracked per ``poll()`` rather than per record.

A source offset may be committed only once its record and every record polled
before it are acknowledged. Kafka Connect tracks that with one callback per
record; at 100,000 records/s a Python callback per record (and the lock it
takes between the producer's I/O thread and the task thread) costs more than
sending the record. Records of one ``poll()`` land in a handful of producer
batches, and every record of a batch is acknowledged together, so the worker
keeps, per poll, the newest offset of each source partition and the distinct
batches holding its records: a poll is settled when all those batches are,
and polls settle in order. Everything here runs on the task's own thread.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Optional, Protocol


class BatchCompletion(Protocol):
    """What the producer shares between the records of one batch (its ``BatchResult``)."""

    error: Optional[Exception]

    def done(self) -> bool: ...


def partition_key(partition: dict[str, Any]) -> Any:
    """A hashable identity for a source partition: its items when they are hashable (cheap, the
    usual case of names and numbers), else its canonical JSON."""
    try:
        key = tuple(sorted(partition.items()))
        hash(key)
        return key
    except TypeError:
        return json.dumps(partition, sort_keys=True)


class SubmittedPoll:
    """The records of one ``poll()``: newest offset per source partition, and the batches they went into."""

    __slots__ = ("_offsets", "batches", "records")

    def __init__(self, keep_records: bool = False) -> None:
        self._offsets: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.batches: dict[Any, int] = {}
        """Each batch holding records of this poll, with how many of them it holds."""
        self.records: Optional[list[tuple[Any, Any]]] = [] if keep_records else None
        """(record, future) pairs, kept only for tasks that want ``commit_record``."""

    def track(self, partition: dict[str, Any], offset: dict[str, Any]) -> None:
        """Note a polled record's source position. Tasks reuse one partition dict for all its
        records, so positions are keyed by the dict's identity here and by content once settled.
        The newest position moves to the end, so equal partitions in different dicts settle on it."""
        offsets = self._offsets
        key = id(partition)
        if key in offsets:
            del offsets[key]
        offsets[key] = (partition, offset)

    def sent(self, batch: BatchCompletion) -> None:
        self.batches[batch] = self.batches.get(batch, 0) + 1

    def done(self) -> bool:
        return all(batch.done() for batch in self.batches)

    def failures(self) -> list[tuple[Exception, int]]:
        """(error, records lost) for each batch of this poll the cluster did not take."""
        return [(batch.error, count) for batch, count in self.batches.items() if batch.error is not None]

    def delivered(self) -> int:
        return sum(count for batch, count in self.batches.items() if batch.error is None)

    def offsets(self) -> dict[Any, tuple[dict[str, Any], dict[str, Any]]]:
        """Newest (partition, offset) of this poll per source partition, keyed by its content."""
        return {partition_key(partition): (partition, offset) for partition, offset in self._offsets.values()}


class SubmittedRecords:
    """Polls sent but not yet settled, oldest first, and the offsets ready to commit."""

    def __init__(self) -> None:
        self._pending: deque[SubmittedPoll] = deque()
        self._committable: dict[Any, tuple[dict[str, Any], dict[str, Any]]] = {}

    def submit(self, poll: SubmittedPoll) -> None:
        self._pending.append(poll)

    def settle(self) -> list[SubmittedPoll]:
        """Remove and return the oldest polls whose batches all completed, stopping at the first
        that has not: a later poll's offsets must wait for every earlier record."""
        settled = []
        while self._pending and self._pending[0].done():
            settled.append(self._pending.popleft())
        return settled

    def acknowledge(self, poll: SubmittedPoll) -> None:
        """Make a settled poll's offsets committable (the caller has handled its failures)."""
        self._committable.update(poll.offsets())

    def take_committable(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """The newest acknowledged offset per source partition since the last call."""
        out = list(self._committable.values())
        self._committable.clear()
        return out

    def __len__(self) -> int:
        return len(self._pending)
