"""Producer batching: RecordAccumulator, ProducerBatch, BatchResult, FutureRecordMetadata.

Pure in-process tests: the test plays the sender (the I/O thread) by calling
``drain`` / ``complete`` itself, passing explicit ``now`` values.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest
from caudal.client.accumulator import BatchResult, RecordAccumulator
from caudal.client.structs import RecordMetadata, TopicPartition
from caudal.common.compression import CompressionType
from caudal.common.errors import (
    KafkaTimeoutError,
    NotLeaderOrFollowerError,
    UnknownServerError,
)
from caudal.common.record_batch import BatchBuilder, decode_records

TP0 = TopicPartition("orders", 0)
TP1 = TopicPartition("orders", 1)
NO_CAP = 1 << 30
FAR = 1e9  # a linger no test outlives


def make_acc(batch_size=16384, linger_ms=0, buffer_memory=1 << 25, delivery_timeout_ms=120_000):
    return RecordAccumulator(batch_size, linger_ms, CompressionType.NONE, buffer_memory, delivery_timeout_ms)


def send(acc, tp=TP0, value=b"v" * 20, key=None, timestamp=1_000, max_block_s=1.0):
    return acc.append(tp, timestamp, key, value, (), max_block_s)


def fill_batch(acc, tp=TP0, value=b"v" * 20):
    """Append until a record closes the open batch; returns the futures of that batch."""
    futures = []
    while True:
        futures.append(send(acc, tp, value)[0])
        if acc._queues[tp][-1].closed:
            return futures


def drain_all(acc, now=None, muted=(), max_bytes=NO_CAP):
    """``acc.drain`` as the sender calls it: (batches per partition, seconds to the next linger expiry)."""
    return acc.drain(time.monotonic() if now is None else now, set(muted), max_bytes)


def values_of(batch):
    return [r.value for r in decode_records(batch.payload())[1]]


# ---------------------------------------------------------------- append


def test_first_append_opens_a_batch_sendable_after_linger():
    acc = make_acc(linger_ms=250)
    before = time.monotonic()
    first, ready_at = send(acc)
    after = time.monotonic()
    assert before + 0.25 <= ready_at <= after + 0.25

    second, ready_again = send(acc)
    assert ready_again is None, "a record joining an open batch must not reschedule the sender"
    assert (first._index, second._index) == (0, 1)
    assert not first.done() and not second.done()


def test_partitions_have_independent_batches():
    acc = make_acc(linger_ms=250)
    a, ready_a = send(acc, TP0)
    b, ready_b = send(acc, TP1)
    assert ready_a is not None and ready_b is not None
    assert a._index == b._index == 0
    assert a._batch is not b._batch


def test_batch_closes_once_it_reaches_batch_size():
    acc = make_acc(batch_size=200, linger_ms=FAR)
    value = b"x" * 20
    futures, ready_ats = [], []
    while len(futures) < 2 or ready_ats[-1] is None:
        future, ready_at = send(acc, value=value)
        futures.append(future)
        ready_ats.append(ready_at)

    assert [f._index for f in futures] == list(range(len(futures)))
    assert ready_ats[1:-1] == [None] * (len(futures) - 2)
    ready, delay = drain_all(acc)
    (batch,) = ready[TP0]
    assert batch.closed and batch.size >= 200
    assert ready_ats[-1] == batch.created, "the filling record makes the batch sendable at once"
    assert batch.builder.record_count == len(futures)
    smaller = BatchBuilder()
    for _ in range(len(futures) - 1):
        smaller.append(1_000, None, value)
    assert smaller.size_in_bytes() < 200, "the batch must not have closed one record late"
    assert delay is None

    nxt, ready_at = send(acc, value=value)
    assert nxt._index == 0 and ready_at is not None and ready_at > time.monotonic() + 1000


def test_record_larger_than_batch_size_gets_a_closed_batch_of_its_own():
    acc = make_acc(batch_size=100, linger_ms=FAR)
    before = time.monotonic()
    big, ready_at = send(acc, value=b"b" * 500)
    assert before <= ready_at <= time.monotonic(), "sendable immediately, not after linger"
    small, ready_small = send(acc, value=b"s")
    assert small._index == 0 and small._batch is not big._batch
    assert ready_small is not None

    ready, _ = drain_all(acc)
    assert [values_of(b) for b in ready[TP0]] == [[b"b" * 500]]


# ---------------------------------------------------------------- drain


def test_drain_of_an_empty_accumulator():
    assert drain_all(make_acc()) == ({}, None)


def test_closed_batches_go_without_waiting_and_the_open_one_stays():
    acc = make_acc(batch_size=200, linger_ms=FAR)
    first = fill_batch(acc)
    second = fill_batch(acc)
    open_future, _ = send(acc, value=b"open")

    ready, delay = drain_all(acc)
    assert [b.result for b in ready[TP0]] == [first[0]._batch, second[0]._batch]
    assert delay is None, "the partition has something to send now"

    ready, delay = drain_all(acc)
    assert ready == {}
    assert delay == pytest.approx(FAR / 1000, abs=5)
    assert open_future._batch is acc._queues[TP0][0].result


def test_open_batch_waits_for_linger_and_reports_the_remaining_delay():
    acc = make_acc(linger_ms=1_000)
    future, ready_at = send(acc)
    created = ready_at - 1.0

    assert drain_all(acc, now=created + 0.3) == ({}, pytest.approx(0.7))
    ready, delay = drain_all(acc, now=created + 1.0)
    assert [b.result for b in ready[TP0]] == [future._batch]
    assert ready[TP0][0].closed and delay is None

    later, ready_later = send(acc)
    assert later._index == 0 and later._batch is not future._batch
    assert ready_later is not None


def test_delay_is_until_the_earliest_linger_expiry_across_partitions():
    acc = make_acc(linger_ms=1_000)
    _, ready0 = send(acc, TP0)
    _, ready1 = send(acc, TP1)
    now = max(ready0, ready1) - 0.5
    ready, delay = drain_all(acc, now=now)
    assert ready == {}
    assert delay == pytest.approx(min(ready0, ready1) - now)


def test_flushing_sends_the_open_batch_before_linger():
    acc = make_acc(linger_ms=FAR)
    future, ready_at = send(acc)
    created = ready_at - FAR / 1000
    acc.flushing = 1
    ready, _ = drain_all(acc, now=created)
    assert [b.result for b in ready[TP0]] == [future._batch]


def test_muted_partitions_are_skipped_until_unmuted():
    acc = make_acc(linger_ms=0)
    f0, _ = send(acc, TP0)
    send(acc, TP1)

    ready, _ = drain_all(acc, muted={TP0})
    assert set(ready) == {TP1}
    ready, _ = drain_all(acc)
    assert set(ready) == {TP0}, "the muted partition's batch waited; nothing was sent twice"
    assert ready[TP0][0].result is f0._batch


def test_muted_partition_does_not_contribute_a_delay():
    acc = make_acc(linger_ms=1_000)
    _, ready_at = send(acc, TP0)
    assert drain_all(acc, now=ready_at - 0.5, muted={TP0}) == ({}, None)


def _closed_batches(acc, count, tp=TP0):
    for _ in range(count):
        fill_batch(acc, tp)
    return [b for b in acc._queues[tp] if b.closed]


def test_per_partition_byte_cap():
    acc = make_acc(batch_size=200, linger_ms=0)
    batches = _closed_batches(acc, 3)
    two = batches[0].size + batches[1].size

    ready, _ = drain_all(acc, max_bytes=two)
    assert ready[TP0] == batches[:2]
    ready, _ = drain_all(acc, max_bytes=two)
    assert ready[TP0] == batches[2:]


def test_byte_cap_below_one_batch_still_sends_one():
    acc = make_acc(batch_size=200, linger_ms=0)
    batches = _closed_batches(acc, 2)
    ready, _ = drain_all(acc, max_bytes=1)
    assert ready[TP0] == batches[:1]


def test_byte_cap_applies_to_the_lingered_open_batch_too():
    acc = make_acc(batch_size=200, linger_ms=0)
    (closed,) = _closed_batches(acc, 1)
    open_future, _ = send(acc, value=b"tail")

    ready, _ = drain_all(acc, max_bytes=closed.size)
    assert ready[TP0] == [closed]
    ready, _ = drain_all(acc, max_bytes=closed.size)
    assert [b.result for b in ready[TP0]] == [open_future._batch]


# ---------------------------------------------------------------- reenqueue


def test_reenqueue_puts_batches_back_first_in_their_order():
    acc = make_acc(batch_size=200, linger_ms=FAR)
    _closed_batches(acc, 3)
    retried = drain_all(acc)[0][TP0]
    assert len(retried) == 3
    tail_first, _ = send(acc, value=b"tail")

    acc.reenqueue(retried)
    tail_second, ready_at = send(acc, value=b"tail2")
    assert ready_at is None and tail_second._index == 1, "the open batch keeps filling behind the retries"

    acc.flushing = 1
    ready = drain_all(acc)[0][TP0]
    assert ready[:3] == retried
    assert [b.result for b in ready[3:]] == [tail_first._batch]
    assert values_of(ready[3]) == [b"tail", b"tail2"]


def test_reenqueued_batch_resends_the_same_bytes():
    acc = make_acc(linger_ms=0)
    send(acc, value=b"once")
    (batch,) = drain_all(acc)[0][TP0]
    payload = batch.payload()
    acc.reenqueue([batch])
    (again,) = drain_all(acc)[0][TP0]
    assert again is batch and again.payload() is payload
    assert values_of(again) == [b"once"]


# ---------------------------------------------------------------- completion


def _drained_batch(acc, values, tp=TP0, timestamp=1_000, key=None):
    futures = [send(acc, tp, value=v, key=key, timestamp=timestamp)[0] for v in values]
    (batch,) = drain_all(acc)[0][tp]
    return batch, futures


@pytest.mark.parametrize(
    ("log_append_time", "expected_timestamp"), [(-1, 1_000), (5_555, 5_555)], ids=["create-time", "log-append-time"]
)
def test_complete_resolves_offsets_and_timestamps(log_append_time, expected_timestamp):
    acc = make_acc()
    values = [b"a", b"bb", b"ccc"]
    batch, futures = _drained_batch(acc, values, key=b"k")
    acc.complete(batch, 40, log_append_time, None)

    assert all(f.done() for f in futures)
    assert [f.result(timeout=0) for f in futures] == [
        RecordMetadata("orders", 0, 40 + i, expected_timestamp, 1, len(v)) for i, v in enumerate(values)
    ]
    assert futures[0].get(timeout=0) == futures[0].result()
    assert futures[0].exception(timeout=0) is None


def test_null_key_and_value_sizes_are_minus_one():
    acc = make_acc()
    future, _ = acc.append(TP0, 1, None, None, (), 1.0)
    (batch,) = drain_all(acc)[0][TP0]
    acc.complete(batch, 0, -1, None)
    meta = future.result(timeout=0)
    assert (meta.serialized_key_size, meta.serialized_value_size) == (-1, -1)


def test_acks_zero_completion_has_offset_minus_one():
    acc = make_acc()
    batch, (future,) = _drained_batch(acc, [b"x"])
    acc.complete(batch, -1, -1, None)
    assert future.result(timeout=0).offset == -1


def test_failed_batch_raises_its_error_from_every_future():
    acc = make_acc()
    batch, futures = _drained_batch(acc, [b"a", b"b"])
    error = NotLeaderOrFollowerError("gone")
    acc.complete(batch, -1, -1, error)
    for future in futures:
        assert future.exception(timeout=0) is error
        with pytest.raises(NotLeaderOrFollowerError) as info:
            future.result(timeout=0)
        assert info.value is error


def test_result_times_out_while_pending():
    acc = make_acc()
    future, _ = send(acc)
    with pytest.raises(KafkaTimeoutError):
        future.result(timeout=0.01)
    with pytest.raises(KafkaTimeoutError):
        future.exception(timeout=0.01)


def test_incomplete_tracks_batches_until_completed():
    acc = make_acc()
    batch, _ = _drained_batch(acc, [b"a"])
    assert acc.incomplete() == [batch]
    acc.complete(batch, 0, -1, None)
    assert acc.incomplete() == []


def test_batch_deadline_is_creation_plus_delivery_timeout():
    acc = make_acc(delivery_timeout_ms=30_000)
    batch, _ = _drained_batch(acc, [b"a"])
    assert batch.deadline == pytest.approx(batch.created + 30.0)


# ---------------------------------------------------------------- callbacks


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, err, meta):
        self.calls.append((err, meta))


@pytest.mark.parametrize("register", ["before", "after"])
@pytest.mark.parametrize("error", [None, UnknownServerError("boom")], ids=["acknowledged", "failed"])
def test_callback_fires_once_whenever_it_is_added(register, error):
    acc = make_acc()
    batch, (future,) = _drained_batch(acc, [b"a"])
    recorder = Recorder()
    if register == "before":
        future.add_callback(recorder)
        assert recorder.calls == []
    acc.complete(batch, 7, -1, error)
    if register == "after":
        future.add_callback(recorder)

    expected = (None, RecordMetadata("orders", 0, 7, 1_000, -1, 1)) if error is None else (error, None)
    assert recorder.calls == [expected]


class _CompletesWhenChecked(threading.Event):
    """An Event whose first ``is_set()`` lets the I/O thread try to complete the batch first.

    It forces the interleaving "the user thread has read *not done*, then the
    I/O thread runs ``complete``": the completion starts on another thread and
    gets a bounded chance to finish before the answer False is returned. Code
    that makes completion wait for the registration passes whether or not that
    chance is used; code that lets it run in between loses the callback.
    """

    def __init__(self, complete):
        super().__init__()
        self._complete = complete
        self.completer = None

    def is_set(self):
        if self.completer is not None:
            return super().is_set()
        self.completer = threading.Thread(target=self._complete)
        self.completer.start()
        self.completer.join(timeout=0.2)
        return False


def test_callback_added_while_the_batch_completes_is_not_lost():
    acc = make_acc()
    batch, (future,) = _drained_batch(acc, [b"a"])
    event = batch.result.event = _CompletesWhenChecked(lambda: acc.complete(batch, 3, -1, None))
    recorder = Recorder()

    future.add_callback(recorder)  # user thread (Producer.send with on_delivery)
    event.completer.join(timeout=5)

    assert not event.completer.is_alive() and future.done()
    assert recorder.calls == [(None, future.result(timeout=0))], "callback lost or fired twice"


def test_batch_result_runs_each_completion_callback_once():
    result = BatchResult()
    fired = []
    result.on_complete(lambda: fired.append(("early", result.base_offset)))
    result.complete(9, -1, None)
    result.on_complete(lambda: fired.append(("late", result.base_offset)))
    assert fired == [("early", 9), ("late", 9)] and result.event.is_set()


# ---------------------------------------------------------------- buffer memory


def _full_acc():
    """An accumulator whose buffer is already full after one record."""
    acc = make_acc(buffer_memory=100, linger_ms=0)
    future, _ = send(acc, value=b"f" * 60)
    return acc, future


def test_append_blocks_up_to_max_block_then_times_out():
    acc, _ = _full_acc()
    start = time.monotonic()
    with pytest.raises(KafkaTimeoutError, match="buffer_memory"):
        send(acc, max_block_s=0.05)
    elapsed = time.monotonic() - start
    assert 0.05 <= elapsed < 2.0


def _wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


def test_blocked_append_resumes_when_a_batch_completes():
    acc, first = _full_acc()
    outcome = {}

    def blocked_send():
        try:
            outcome["future"] = send(acc, value=b"second", max_block_s=10.0)[0]
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=blocked_send)
    thread.start()
    _wait_until(lambda: acc._space_waiters == 1)
    assert thread.is_alive()

    (batch,) = drain_all(acc)[0][TP0]
    acc.complete(batch, 0, -1, None)
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert "error" not in outcome
    assert outcome["future"]._index == 0 and outcome["future"]._batch is not first._batch


# ---------------------------------------------------------------- abort


def test_abort_all_fails_queued_batches_and_releases_memory():
    acc = make_acc(batch_size=200, linger_ms=FAR)
    in_flight, _ = send(acc, TP1)
    acc.flushing = 1
    (flying,) = drain_all(acc)[0][TP1]
    acc.flushing = 0
    queued = fill_batch(acc) + [send(acc, value=b"open")[0]]
    acc.buffer_memory = acc._appended_bytes - acc._completed_bytes  # the buffer is exactly full now
    with pytest.raises(KafkaTimeoutError):
        send(acc, max_block_s=0)

    error = UnknownServerError("producer closed")
    acc.abort_all(error)

    for future in queued:
        assert future.exception(timeout=0) is error
    assert not in_flight.done(), "batches in flight are left to their request"
    assert drain_all(acc) == ({}, None)
    assert acc.incomplete() == [flying]
    send(acc, max_block_s=0)  # the aborted batches' bytes were released: no wait for space


# ---------------------------------------------------------------- threads


def test_concurrent_appends_while_draining_resolve_every_record_once_in_order():
    acc = make_acc(batch_size=2_048, linger_ms=0, buffer_memory=64 * 1024)
    tps = [TopicPartition("load", p) for p in range(4)]
    per_thread = 20_000
    sent = {name: [] for name in ("a", "b")}
    appenders_done = threading.Event()
    errors = []
    drained = set()  # the batches themselves: ids of freed batches get reused
    contents = defaultdict(list)  # tp -> values in offset order
    next_offset = defaultdict(int)

    def append_all(name):
        try:
            out = sent[name]
            for i in range(per_thread):
                tp = tps[i % 4]
                value = f"{name}{i}".encode()
                out.append((tp, value, send(acc, tp, value=value, max_block_s=30.0)[0]))
        except Exception as exc:
            errors.append(exc)

    def drain_and_complete():
        try:
            while True:
                finished = appenders_done.is_set()
                ready, _ = drain_all(acc)
                for tp, batches in ready.items():
                    for batch in batches:
                        assert batch not in drained, "a batch was drained twice"
                        drained.add(batch)
                        contents[tp].extend(values_of(batch))
                        acc.complete(batch, next_offset[tp], -1, None)
                        next_offset[tp] += batch.builder.record_count
                if finished and not ready:
                    return
                if not ready:
                    time.sleep(0.0005)  # idle poll; completion does not depend on it
        except Exception as exc:
            errors.append(exc)

    appenders = [threading.Thread(target=append_all, args=(name,)) for name in sent]
    drainer = threading.Thread(target=drain_and_complete)
    drainer.start()
    for t in appenders:
        t.start()
    for t in appenders:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in appenders)
    appenders_done.set()
    drainer.join(timeout=60)
    assert not drainer.is_alive()
    assert errors == []

    for tp in tps:
        assert len(contents[tp]) == 2 * per_thread // 4
    for records in sent.values():
        last_offset = defaultdict(lambda: -1)
        for tp, value, future in records:
            meta = future.result(timeout=0)
            assert (meta.topic, meta.partition) == tp
            assert contents[tp][meta.offset] == value, "offset does not point at this record"
            assert meta.offset > last_offset[tp], "a thread's records went out of append order"
            last_offset[tp] = meta.offset
    assert acc.incomplete() == []


def test_drain_caps_batches_per_partition_for_idempotent_requests() -> None:
    acc = make_acc(batch_size=128)
    for _ in range(20):
        fill_batch(acc)
    ready, _ = acc.drain(time.monotonic(), set(), NO_CAP, max_batches=5)
    assert len(ready[TP0]) == 5, "a request holds no more batches than the broker's duplicate window"
    rest, _ = acc.drain(time.monotonic(), set(), NO_CAP)
    assert len(rest[TP0]) > 5
