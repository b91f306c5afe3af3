"""The broker's idempotent-producer checks (Kafka's ProducerStateManager rules)."""

from __future__ import annotations

from itertools import pairwise

import pytest
from caudal.broker.producer_state import (
    NUM_BATCHES_TO_RETAIN,
    BatchMetadata,
    ProducerEntry,
    ProducerStateTable,
    increment_sequence,
    next_sequence,
)
from caudal.common.errors import CaudalError, ErrorCode, OutOfOrderSequenceError
from caudal.common.record_batch import (
    BatchHeader,
    Record,
    build_batch,
    build_batch_from_records,
    parse_header,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KAFKA_RETAIN = 5
"""These tests pin Kafka's window (five batches); the broker's own is ``NUM_BATCHES_TO_RETAIN``."""


INT32_MAX = (1 << 31) - 1
PID = 1000
OTHER_PID = 2000


def batch(
    pid: int, epoch: int, seq: int, count: int = 1, base_offset: int = 0, *, transactional: bool = False
) -> BatchHeader:
    """The header of a real RecordBatch v2 of ``count`` records, as a producer sends it."""
    raw = build_batch(
        [(1_000 + i, None, b"v%d" % i, ()) for i in range(count)],
        base_offset=base_offset,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        is_transactional=transactional,
    )
    return parse_header(raw)


def plain(count: int = 1) -> BatchHeader:
    """A batch without a producer id (acks-only, non-idempotent producer)."""
    return parse_header(build_batch([(1_000 + i, None, b"v", ()) for i in range(count)]))


def control(pid: int, epoch: int, base_offset: int = 0) -> BatchHeader:
    """A transaction marker as the broker writes it: control bit set, no sequence."""
    raw = build_batch_from_records(
        [Record(base_offset, 1_000, b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00", ())],
        attributes=0x30,  # transactional | control
        producer_id=pid,
        producer_epoch=epoch,
    )
    header = parse_header(raw)
    assert header.is_control
    return header


class Leader:
    """A partition leader's produce path: check, then append at the log end and record."""

    def __init__(self) -> None:
        self.table = ProducerStateTable(retain=KAFKA_RETAIN)
        self.log: list[BatchHeader] = []
        self.leo = 0

    def produce(self, headers: list[BatchHeader]) -> tuple[int, bool]:
        """(base offset answered, appended?)."""
        duplicate = self.table.check(headers)
        if duplicate is not None:
            return duplicate, False
        base = self.leo
        self.append(headers)
        return base, True

    def append(self, headers: list[BatchHeader]) -> None:
        """Append without checking, as a follower or log recovery would see it."""
        for header in headers:
            appended = header._replace(base_offset=self.leo)
            self.log.append(appended)
            self.table.record(appended)
            self.leo = appended.next_offset


def error_code(exc: pytest.ExceptionInfo[CaudalError]) -> ErrorCode:
    return exc.value.code


# ----------------------------------------------------------------- single batches


def test_first_batch_of_a_new_producer_must_start_at_sequence_zero() -> None:
    leader = Leader()
    with pytest.raises(OutOfOrderSequenceError, match="must start at sequence 0, got 7"):
        leader.table.check([batch(PID, 0, 7)])
    assert leader.produce([batch(PID, 0, 0, count=3)]) == (0, True)
    assert leader.table.entry(PID) == ProducerEntry(0, (BatchMetadata(0, 2, 0, 2),))
    assert PID in leader.table and len(leader.table) == 1


def test_in_order_sequences_are_accepted() -> None:
    leader = Leader()
    leader.append([plain(4)])  # someone else's records move the offsets
    seq = 0
    for count in (1, 3, 2, 5, 1, 4, 2):
        assert leader.table.check([batch(PID, 0, seq, count)]) is None
        leader.append([batch(PID, 0, seq, count)])
        seq += count
    entry = leader.table.entry(PID)
    assert entry is not None
    assert len(entry.batches) == KAFKA_RETAIN, "only the last five batches are retained"
    assert entry.last_seq == seq - 1
    assert [(m.first_seq, m.last_seq) for m in entry.batches] == [(4, 5), (6, 10), (11, 11), (12, 15), (16, 17)]
    assert [(m.base_offset, m.last_offset) for m in entry.batches] == [(8, 9), (10, 14), (15, 15), (16, 19), (20, 21)]


def _seven_batches() -> tuple[Leader, list[tuple[BatchHeader, int]]]:
    """A leader with seven batches of PID appended, interleaved with another producer's."""
    leader = Leader()
    sent: list[tuple[BatchHeader, int]] = []
    seq = 0
    for i, count in enumerate((2, 1, 3, 1, 2, 4, 1)):
        header = batch(PID, 3, seq, count)
        if i == 0:
            header = batch(PID, 3, 0, count)
        offset, appended = leader.produce([header])
        assert appended
        sent.append((header, offset))
        seq += count
        leader.produce([batch(OTHER_PID, 0, i, 1)])
    return leader, sent


@pytest.mark.parametrize("newest", range(1, KAFKA_RETAIN + 1))
def test_a_retry_of_each_of_the_last_five_batches_is_a_duplicate_with_its_original_offset(newest: int) -> None:
    leader, sent = _seven_batches()
    header, offset = sent[-newest]
    before = leader.table.snapshot()
    assert leader.table.check([header]) == offset
    # A retry from a producer is sent again with base offset 0: the leader's assignment does not matter.
    assert leader.produce([header._replace(base_offset=0)]) == (offset, False)
    assert leader.table.snapshot() == before


def test_a_retry_of_the_sixth_newest_batch_is_out_of_order_not_a_duplicate() -> None:
    leader, sent = _seven_batches()
    for header, _ in sent[: -KAFKA_RETAIN]:
        with pytest.raises(OutOfOrderSequenceError, match=r"expected sequence 14, got \d+"):
            leader.table.check([header])


def test_a_retry_with_a_different_sequence_range_is_not_a_duplicate() -> None:
    leader, sent = _seven_batches()
    header, _ = sent[-1]  # sequences 13..13
    with pytest.raises(OutOfOrderSequenceError, match="expected sequence 14, got 13"):
        leader.table.check([batch(PID, 3, header.base_sequence, count=2)])


def test_gaps_and_reorderings_are_rejected_with_expected_and_got() -> None:
    leader = Leader()
    leader.produce([batch(PID, 0, 0, count=5)])
    with pytest.raises(OutOfOrderSequenceError, match="expected sequence 5, got 6") as exc:
        leader.table.check([batch(PID, 0, 6)])
    assert error_code(exc) is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    with pytest.raises(OutOfOrderSequenceError, match="expected sequence 5, got 3"):
        leader.table.check([batch(PID, 0, 3, count=2)])
    assert leader.produce([batch(PID, 0, 5)]) == (5, True)


def test_a_lower_epoch_is_fenced() -> None:
    leader = Leader()
    leader.produce([batch(PID, 4, 0, count=2)])
    for header in (batch(PID, 3, 2), batch(PID, 3, 0, count=2), batch(PID, 0, 0)):
        with pytest.raises(CaudalError, match="has been fenced") as exc:
            leader.table.check([header])
        assert error_code(exc) is ErrorCode.INVALID_PRODUCER_EPOCH
        assert not exc.value.retriable


def test_a_new_epoch_must_restart_at_sequence_zero_and_forgets_the_old_batches() -> None:
    leader = Leader()
    old = batch(PID, 0, 0, count=3)
    leader.produce([old])
    leader.produce([batch(PID, 0, 3)])
    with pytest.raises(OutOfOrderSequenceError, match="new epoch 1 .*must start at sequence 0, got 4"):
        leader.table.check([batch(PID, 1, 4)])
    assert leader.produce([batch(PID, 1, 0, count=2)]) == (4, True)
    assert leader.table.entry(PID) == ProducerEntry(1, (BatchMetadata(0, 1, 4, 5),))
    with pytest.raises(CaudalError) as exc:  # the old epoch's retry: a zombie
        leader.table.check([old])
    assert error_code(exc) is ErrorCode.INVALID_PRODUCER_EPOCH
    assert leader.table.check([batch(PID, 1, 0, count=2)]) == 4


def test_sequences_wrap_around_after_int32_max() -> None:
    assert increment_sequence(INT32_MAX, 1) == 0
    assert increment_sequence(INT32_MAX - 1, 3) == 1
    assert increment_sequence(5, 3) == 8
    assert next_sequence(INT32_MAX) == 0 and next_sequence(-1) == 0 and next_sequence(41) == 42

    leader = Leader()
    leader.append([batch(PID, 2, INT32_MAX - 2, count=3)])  # read back from the log: ends at int32 max
    assert leader.table.entry(PID).last_seq == INT32_MAX  # type: ignore[union-attr]
    with pytest.raises(OutOfOrderSequenceError, match=f"expected sequence 0, got {INT32_MAX}"):
        leader.table.check([batch(PID, 2, INT32_MAX)])
    assert leader.produce([batch(PID, 2, 0, count=2)]) == (3, True)

    leader = Leader()
    leader.append([batch(PID, 2, INT32_MAX - 3, count=2)])
    spanning = batch(PID, 2, INT32_MAX - 1, count=4)  # sequences int32max-1, int32max, 0, 1
    assert leader.produce([spanning]) == (2, True)
    assert leader.table.entry(PID).batches[-1] == BatchMetadata(INT32_MAX - 1, 1, 2, 5)  # type: ignore[union-attr]
    assert leader.table.check([spanning]) == 2, "a retry across the wrap is still recognised"
    assert leader.produce([batch(PID, 2, 2)]) == (6, True)


# ----------------------------------------------------------- multi-batch payloads


def test_a_payload_of_new_batches_is_checked_cumulatively() -> None:
    leader = Leader()
    leader.produce([batch(PID, 0, 0, count=2)])
    payload = [batch(PID, 0, 2, count=3), batch(PID, 0, 5), batch(OTHER_PID, 0, 0), batch(PID, 0, 6, count=2)]
    assert leader.table.check(payload) is None
    with pytest.raises(OutOfOrderSequenceError, match="batch 1 expected sequence 5, got 6"):
        leader.table.check([batch(PID, 0, 2, count=3), batch(PID, 0, 6)])
    with pytest.raises(OutOfOrderSequenceError, match="batch 1 expected sequence 3, got 0"):
        leader.table.check([batch(PID, 0, 2), batch(PID, 0, 0)])  # reorder inside a payload
    # A new epoch inside a payload: cumulative too.
    assert leader.table.check([batch(PID, 1, 0, count=2), batch(PID, 1, 2)]) is None
    with pytest.raises(CaudalError) as exc:
        leader.table.check([batch(PID, 1, 0), batch(PID, 0, 2)])
    assert error_code(exc) is ErrorCode.INVALID_PRODUCER_EPOCH
    assert leader.produce(payload) == (2, True)
    assert leader.table.entry(PID).last_seq == 7  # type: ignore[union-attr]


def test_a_payload_repeating_the_previous_batch_of_the_same_payload_is_rejected() -> None:
    leader = Leader()
    leader.produce([batch(PID, 0, 0, count=2)])
    with pytest.raises(OutOfOrderSequenceError, match="earlier batches of the payload are new"):
        leader.table.check([batch(PID, 0, 2, count=2), batch(PID, 0, 2, count=2)])


def test_a_payload_of_retries_answers_with_the_first_original_offset() -> None:
    leader, sent = _seven_batches()
    retry = [header for header, _ in sent[-3:]]
    assert leader.table.check(retry) == sent[-3][1]
    assert leader.table.check(retry[1:]) == sent[-2][1]
    # Retries of two producers in one payload, each consecutive.
    other = leader.table.entry(OTHER_PID)
    assert other is not None
    last_other = batch(OTHER_PID, 0, other.batches[-1].first_seq)
    assert leader.table.check([retry[-1], last_other]) == sent[-1][1]


def test_retries_that_are_not_consecutive_in_the_log_are_rejected() -> None:
    leader, sent = _seven_batches()
    with pytest.raises(OutOfOrderSequenceError, match="does not follow the previous retried batch"):
        leader.table.check([sent[-3][0], sent[-1][0]])
    with pytest.raises(OutOfOrderSequenceError, match="does not follow the previous retried batch"):
        leader.table.check([sent[-1][0], sent[-2][0]])


@pytest.mark.parametrize("kind", ["retry-then-new", "new-then-retry", "retry-then-gap", "retry-then-plain"])
def test_a_payload_mixing_retries_and_other_batches_is_out_of_order(kind: str) -> None:
    leader, sent = _seven_batches()
    last, _ = sent[-1]
    new = batch(PID, 3, 14)
    payload = {
        "retry-then-new": [last, new],
        "new-then-retry": [new, last],
        "retry-then-gap": [last, batch(PID, 3, 20)],
        "retry-then-plain": [last, plain()],
    }[kind]
    before = leader.table.snapshot()
    with pytest.raises(OutOfOrderSequenceError):
        leader.table.check(payload)
    assert leader.table.snapshot() == before


# ------------------------------------------------- non-idempotent and control batches


def test_batches_without_a_producer_id_are_ignored() -> None:
    leader = Leader()
    assert leader.table.check([plain(3), plain(1)]) is None
    assert leader.produce([plain(3), plain(1)]) == (0, True)
    assert len(leader.table) == 0 and leader.table.snapshot() == {}
    leader.produce([batch(PID, 0, 0)])
    assert leader.table.check([plain(), batch(PID, 0, 1), plain()]) is None
    with pytest.raises(OutOfOrderSequenceError):
        leader.table.check([plain(), batch(PID, 0, 5)])


def test_transactional_batches_follow_the_idempotent_rules() -> None:
    leader = Leader()
    leader.produce([batch(PID, 0, 0, count=2, transactional=True)])
    assert leader.table.check([batch(PID, 0, 0, count=2, transactional=True)]) == 0
    with pytest.raises(OutOfOrderSequenceError, match="expected sequence 2, got 3"):
        leader.table.check([batch(PID, 0, 3, transactional=True)])
    assert leader.produce([batch(PID, 0, 2, transactional=True)]) == (2, True)


def test_control_batches_are_not_checked_and_only_move_the_epoch() -> None:
    leader = Leader()
    leader.produce([batch(PID, 0, 0, count=2, transactional=True)])
    assert leader.table.check([control(PID, 0)]) is None, "no sequence rules for a marker"
    leader.append([control(PID, 0)])
    assert leader.table.entry(PID) == ProducerEntry(0, (BatchMetadata(0, 1, 0, 1),)), "a marker retains no batch"
    assert leader.table.check([batch(PID, 0, 2, transactional=True)]) is None
    # An abort marker written with a bumped epoch (Kafka's coordinator epoch bump).
    leader.append([control(PID, 1)])
    assert leader.table.entry(PID) == ProducerEntry(1, ())
    with pytest.raises(OutOfOrderSequenceError, match="expected sequence 0, got 2"):
        leader.table.check([batch(PID, 1, 2, transactional=True)])
    assert leader.produce([batch(PID, 1, 0, transactional=True)]) == (4, True)
    with pytest.raises(CaudalError) as exc:
        leader.table.check([batch(PID, 0, 2, transactional=True)])
    assert error_code(exc) is ErrorCode.INVALID_PRODUCER_EPOCH


# ------------------------------------------------------------ purity and replay


def test_check_never_mutates_the_table() -> None:
    leader, sent = _seven_batches()
    before = leader.table.snapshot()
    payloads: list[list[BatchHeader]] = [
        [batch(PID, 3, 14, count=2), batch(PID, 3, 16)],  # new
        [batch(PID, 4, 0)],  # new epoch
        [batch(PID + 1, 0, 0)],  # new producer
        [sent[-2][0], sent[-1][0]],  # retries
        [batch(PID, 3, 15)],  # gap
        [batch(PID, 2, 14)],  # fenced
    ]
    for payload in payloads:
        try:
            leader.table.check(payload)
        except CaudalError:
            pass
        assert leader.table.snapshot() == before
    assert leader.table == ProducerStateTable.rebuild(leader.log, KAFKA_RETAIN)


def test_rebuild_from_the_log_equals_the_incremental_table() -> None:
    leader, _ = _seven_batches()
    leader.produce([plain(2)])
    leader.append([control(OTHER_PID, 0)])
    leader.produce([batch(PID, 4, 0, count=3)])
    rebuilt = ProducerStateTable.rebuild(leader.log, KAFKA_RETAIN)
    assert rebuilt == leader.table and rebuilt.snapshot() == leader.table.snapshot()
    assert rebuilt != ProducerStateTable() and rebuilt != "not a table"
    # After a truncation the table is the replay of the remaining prefix.
    prefix = leader.log[:5]
    truncated = ProducerStateTable()
    for header in prefix:
        truncated.record(header)
    leader.table.clear()
    assert len(leader.table) == 0 and leader.table.entry(PID) is None
    leader.table.record_all(prefix)
    assert leader.table == truncated == ProducerStateTable.rebuild(prefix, KAFKA_RETAIN)
    assert "ProducerStateTable" in repr(truncated)


# --------------------------------------------------------------- the property


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_retrying_producer_gets_each_batch_appended_exactly_once(data: st.DataObject) -> None:
    """A producer with retries (of any of its last five batches, of older ones, or after a
    gap) and epoch bumps: the first send of every batch is appended, every retry of the
    last five is answered with its original offset, nothing else is ever accepted."""
    leader = Leader()
    epoch = 0
    next_seq = 0
    if data.draw(st.booleans(), label="start near int32 max"):
        start = INT32_MAX - data.draw(st.integers(0, 12), label="distance to int32 max")
        leader.append([batch(PID, epoch, start, count=1)])  # state restored from the log
        next_seq = increment_sequence(start, 1)
    # The producer's appended batches in this epoch: (header as sent, original base offset).
    appended: list[tuple[BatchHeader, int]] = []
    if leader.log:
        appended.append((leader.log[0], 0))
    stale: list[BatchHeader] = []  # batches of earlier epochs
    last_appended: tuple[int, list[tuple[BatchHeader, int]]] = (epoch, appended)  # the table's current epoch
    other_seq = 0

    steps = data.draw(st.lists(
        st.sampled_from(["new", "retry", "old-retry", "gap", "other", "bump", "zombie"]), min_size=1, max_size=40,
    ), label="steps")
    for step in steps:
        before = leader.table.snapshot()
        if step == "new":
            sizes = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3), label="batch sizes")
            payload = []
            for size in sizes:
                payload.append(batch(PID, epoch, next_seq, size))
                next_seq = increment_sequence(next_seq, size)
            offset, was_appended = leader.produce(payload)
            assert was_appended, "the first send of a batch is appended"
            last_appended = (epoch, appended)
            for header in payload:
                appended.append((header, offset))
                offset += header.last_offset_delta + 1
        elif step == "retry" and appended:
            recent = appended[-KAFKA_RETAIN:]
            start_index = data.draw(st.integers(0, len(recent) - 1), label="retry from")
            length = data.draw(st.integers(1, len(recent) - start_index), label="retried batches")
            run = recent[start_index : start_index + length]
            assert leader.produce([header for header, _ in run]) == (run[0][1], False)
        elif step == "old-retry" and len(appended) > KAFKA_RETAIN:
            header, _ = data.draw(st.sampled_from(appended[:-KAFKA_RETAIN]), label="old batch")
            with pytest.raises(OutOfOrderSequenceError, match=f"expected sequence {next_seq}, got"):
                leader.produce([header])
        elif step == "gap":
            gap = data.draw(st.integers(1, 50), label="gap")
            payload = [batch(PID, epoch, increment_sequence(next_seq, gap), data.draw(st.integers(1, 3)))]
            if appended and data.draw(st.booleans(), label="after a retry"):
                payload.insert(0, appended[-1][0])
            with pytest.raises(OutOfOrderSequenceError):
                leader.produce(payload)
        elif step == "other":
            leader.produce([batch(OTHER_PID, 0, other_seq, 2)])
            other_seq += 2
        elif step == "bump":
            stale.extend(header for header, _ in appended)
            epoch += 1
            next_seq = 0
            appended = []
            with pytest.raises(OutOfOrderSequenceError, match="must start at sequence 0"):
                leader.produce([batch(PID, epoch, 1)])
        elif step == "zombie" and stale:
            header = data.draw(st.sampled_from(stale), label="zombie batch")
            known = leader.table.entry(PID)
            if known is None or header.producer_epoch >= known.epoch:
                continue  # the table learns of a new epoch only from that epoch's first batch
            with pytest.raises(CaudalError) as exc:
                leader.produce([header])
            assert error_code(exc) is ErrorCode.INVALID_PRODUCER_EPOCH
        else:
            continue
        if step not in ("new", "other"):
            assert leader.table.snapshot() == before, f"{step}: nothing appended, nothing changed"

    entry = leader.table.entry(PID)
    table_epoch, table_batches = last_appended
    expected_batches = tuple(
        BatchMetadata(h.base_sequence, increment_sequence(h.base_sequence, h.last_offset_delta), o,
                      o + h.last_offset_delta)
        for h, o in table_batches[-KAFKA_RETAIN:]
    )
    if entry is not None:
        assert entry == ProducerEntry(table_epoch, expected_batches)
    else:
        assert not table_batches
    assert ProducerStateTable.rebuild(leader.log, KAFKA_RETAIN) == leader.table
    # Every batch of the producer is in the log once: sequences strictly follow each other per epoch.
    seqs = [(h.producer_epoch, h.base_sequence, h.last_offset_delta) for h in leader.log if h.producer_id == PID]
    for (e0, s0, d0), (e1, s1, _) in pairwise(seqs):
        assert (e1 == e0 and s1 == increment_sequence(s0, d0 + 1)) or (e1 > e0 and s1 == 0)


def test_the_broker_window_covers_a_full_producer_request() -> None:
    from caudal.client.sender import IDEMPOTENCE_WINDOW_BATCHES

    assert ProducerStateTable().retain == NUM_BATCHES_TO_RETAIN >= IDEMPOTENCE_WINDOW_BATCHES >= KAFKA_RETAIN
