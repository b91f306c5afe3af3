"""Per-poll acknowledgement bookkeeping of source tasks: offsets commit only in poll order,
only once every batch holding a poll's records completed, and failures are reported per batch."""

from __future__ import annotations

from typing import Optional

from caudal.connect.submitted_records import SubmittedPoll, SubmittedRecords, partition_key


class FakeBatch:
    def __init__(self) -> None:
        self.error: Optional[Exception] = None
        self._done = False

    def done(self) -> bool:
        return self._done

    def complete(self, error: Optional[Exception] = None) -> None:
        self.error, self._done = error, True


def _poll(partition: dict, offsets: list[int], batches: list[FakeBatch]) -> SubmittedPoll:
    poll = SubmittedPoll()
    for offset, batch in zip(offsets, batches, strict=True):
        poll.track(partition, {"position": offset})
        poll.sent(batch)
    return poll


def test_a_poll_settles_only_when_all_its_batches_completed() -> None:
    first, second = FakeBatch(), FakeBatch()
    submitted = SubmittedRecords()
    submitted.submit(_poll({"file": "a"}, [10, 20, 30], [first, first, second]))
    first.complete()
    assert submitted.settle() == []
    second.complete()
    [poll] = submitted.settle()
    assert poll.delivered() == 3 and poll.failures() == []


def test_later_polls_wait_for_earlier_ones() -> None:
    early, late = FakeBatch(), FakeBatch()
    submitted = SubmittedRecords()
    submitted.submit(_poll({"file": "a"}, [10], [early]))
    submitted.submit(_poll({"file": "a"}, [20], [late]))
    late.complete()
    assert submitted.settle() == [] and len(submitted) == 2
    early.complete()
    polls = submitted.settle()
    assert len(polls) == 2
    for poll in polls:
        submitted.acknowledge(poll)
    assert submitted.take_committable() == [({"file": "a"}, {"position": 20})]
    assert submitted.take_committable() == []


def test_newest_offset_per_partition_keyed_by_content() -> None:
    batch = FakeBatch()
    poll = SubmittedPoll()
    poll.track({"file": "a"}, {"position": 1})
    poll.track({"file": "b"}, {"position": 7})
    poll.track({"file": "a"}, {"position": 2})  # an equal dict, not the same object
    poll.sent(batch)
    batch.complete()
    submitted = SubmittedRecords()
    submitted.submit(poll)
    submitted.acknowledge(submitted.settle()[0])
    assert sorted(submitted.take_committable(), key=lambda po: po[0]["file"]) == [
        ({"file": "a"}, {"position": 2}), ({"file": "b"}, {"position": 7}),
    ]


def test_failed_batches_are_reported_with_their_record_counts() -> None:
    good, bad = FakeBatch(), FakeBatch()
    poll = _poll({"t": 1}, [1, 2, 3], [good, bad, bad])
    good.complete()
    failure = RuntimeError("NOT_ENOUGH_REPLICAS")
    bad.complete(failure)
    assert poll.done()
    assert poll.failures() == [(failure, 2)] and poll.delivered() == 1


def test_a_poll_without_sent_records_is_settled_at_once() -> None:
    poll = SubmittedPoll()
    poll.track({"file": "a"}, {"position": 5})  # every record filtered out
    submitted = SubmittedRecords()
    submitted.submit(poll)
    [settled] = submitted.settle()
    submitted.acknowledge(settled)
    assert submitted.take_committable() == [({"file": "a"}, {"position": 5})]


def test_partition_key_handles_unhashable_values() -> None:
    assert partition_key({"b": 1, "a": 2}) == partition_key({"a": 2, "b": 1})
    assert partition_key({"tables": ["x", "y"]}) == '{"tables": ["x", "y"]}'


def test_the_newest_position_wins_when_a_partition_comes_in_several_dicts() -> None:
    shared, other = {"file": "a"}, {"file": "a"}
    poll = SubmittedPoll()
    poll.track(shared, {"position": 1})
    poll.track(other, {"position": 2})
    poll.track(shared, {"position": 3})
    assert list(poll.offsets().values()) == [({"file": "a"}, {"position": 3})]
