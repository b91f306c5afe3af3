"""Log compaction: the pure cleaner, then PartitionLog.compact on real RocksDB."""

from __future__ import annotations

import asyncio

import pytest

from caudal.broker.log import PartitionLog
from caudal.broker.log_cleaner import build_key_map, clean_batch
from caudal.broker.storage import Store
from caudal.common.compression import CompressionType
from caudal.common.record_batch import (
    Record,
    build_batch,
    build_batch_from_records,
    decode_all,
    decode_records,
    validate_batches,
    with_base_offset,
)
from caudal.common.topic_config import TopicConfig

TOPIC = bytes.fromhex("0f" * 16)
NOW = 10_000_000


def stored(records: list[tuple[int, bytes | None, bytes | None]], base: int, **kw) -> bytes:
    """A batch as the log stores it: (timestamp, key, value) records from offset ``base``."""
    return build_batch([(ts, k, v, ()) for ts, k, v in records], base_offset=base, **kw)


# ---- the pure cleaner ---------------------------------------------------------


def test_key_map_holds_the_latest_offset_per_key_below_the_limit():
    batches = [
        (0, stored([(1, b"a", b"1"), (1, b"b", b"1"), (1, None, b"x")], 0)),
        (3, stored([(1, b"a", b"2"), (1, b"c", None)], 3)),
        (5, stored([(1, b"b", b"2")], 5)),
    ]
    assert build_key_map(batches, 100) == {b"a": 3, b"b": 5, b"c": 4}
    assert build_key_map(batches, 4) == {b"a": 3, b"b": 1}


def test_clean_batch_keeps_latest_records_at_their_offsets():
    batch = stored([(1, b"a", b"old"), (2, None, b"keyless"), (3, b"b", b"live"), (4, b"a", b"new")], 10,
                   producer_id=42, producer_epoch=3, base_sequence=7)
    batch = with_base_offset(batch, 10, 5)
    key_map = {b"a": 13, b"b": 12}
    cleaned = clean_batch(batch, key_map, 0)
    (header,) = validate_batches(cleaned)  # a fresh, correct CRC
    _, records = decode_records(cleaned)
    assert [(r.offset, r.key, r.value) for r in records] == [(11, None, b"keyless"), (12, b"b", b"live"), (13, b"a", b"new")]
    assert (header.base_offset, header.last_offset, header.record_count) == (10, 13, 3)
    assert (header.producer_id, header.producer_epoch, header.base_sequence, header.partition_leader_epoch) == (42, 3, 7, 5)


def test_clean_batch_unchanged_and_emptied_batches():
    batch = stored([(1, b"a", b"1"), (1, b"b", b"1")], 0)
    assert clean_batch(batch, {b"a": 0, b"b": 1}, 0) is batch
    assert clean_batch(batch, {b"a": 5, b"b": 6}, 0) is None


def test_clean_batch_drops_only_expired_tombstones():
    batch = stored([(100, b"old", None), (900, b"recent", None)], 0)
    key_map = {b"old": 0, b"recent": 1}
    _, records = decode_records(clean_batch(batch, key_map, 500))
    assert [r.key for r in records] == [b"recent"]
    assert clean_batch(batch, key_map, 50) is batch


def test_clean_batch_keeps_compression_and_control_batches():
    batch = stored([(1, b"a", b"v" * 100), (1, b"a", b"w" * 100)], 0, compression=CompressionType.GZIP)
    cleaned = clean_batch(batch, {b"a": 1}, 0)
    (header,) = validate_batches(cleaned)
    assert header.compression == CompressionType.GZIP
    assert [r.value for r in decode_all(cleaned)] == [b"w" * 100]
    control = build_batch_from_records([Record(0, 1, b"\x00\x00\x00\x00", b"", ())], 0, attributes=0x30)
    assert clean_batch(control, {b"\x00\x00\x00\x00": 9}, 0) is control


# ---- PartitionLog.compact -----------------------------------------------------


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "db")
    yield s
    s.close()


def compacted_log(store, **overrides: str) -> PartitionLog:
    config = TopicConfig.from_dict({"cleanup.policy": "compact", "segment.bytes": "200", **overrides})
    return PartitionLog.open(store, TOPIC, 0, config, Clock(NOW))


def fill(plog: PartitionLog, batches: list[list[tuple[int, bytes | None, bytes | None]]]) -> None:
    async def main():
        for records in batches:
            payload = stored(records, 0)
            await plog.append(payload, validate_batches(payload), 0)
        plog.update_high_watermark(plog.durable_end_offset)

    asyncio.run(main())


def compact(plog: PartitionLog, now: int = NOW) -> int:
    async def main():
        n = plog.compact(now)
        await plog.flush()
        return n

    return asyncio.run(main())


def everything(plog: PartitionLog) -> list[Record]:
    data = plog.read(plog.log_start_offset, 10**9, plog.log_end_offset)
    validate_batches(data)  # every batch, rewritten or not, is CRC-valid
    return decode_all(data)


def test_compaction_keeps_the_latest_record_per_key_with_original_offsets(tmp_path):
    store = Store(tmp_path / "db")
    plog = compacted_log(store)
    ts = NOW - 1000
    fill(plog, [
        [(ts, b"a", b"a0"), (ts, b"b", b"b0"), (ts, None, b"n0")],  # 0-2
        [(ts, b"a", b"a1"), (ts, b"c", b"c0")],  # 3-4
        [(ts, b"b", b"b1"), (ts, b"a", b"a2")],  # 5-6
        [(ts, b"c", b"c1")],  # 7 (possibly in the active segment: still counts for the key map)
    ])
    closed = plog.segments[:-1]
    assert closed, "the test needs closed segments"
    before = {r.offset: r for r in everything(plog)}

    assert compact(plog) == len([s for s in closed if s.end_offset <= 7])
    after = everything(plog)
    latest = {b"a": 6, b"b": 5, b"c": 7}
    closed_end = closed[-1].end_offset
    for r in after:
        assert r == before[r.offset]  # offsets, timestamps and values preserved
        if r.key is not None and r.offset < closed_end:
            assert latest[r.key] == r.offset
    assert {r.offset for r in after if r.offset >= closed_end} == {o for o in before if o >= closed_end}
    assert 2 in {r.offset for r in after}  # keyless records stay
    assert plog.size_bytes == len(plog.read(0, 10**9, plog.log_end_offset))
    assert plog.log_start_offset == 0 and plog.log_end_offset == 8
    assert compact(plog) == 0  # nothing left to clean

    segments = plog.segments
    store.close()
    store = Store(tmp_path / "db")
    try:
        again = compacted_log(store)
        assert again.segments == segments
        assert everything(again) == after
    finally:
        store.close()


def test_fetch_into_a_compacted_gap_starts_at_the_next_batch(store):
    plog = compacted_log(store, **{"segment.bytes": "100"})
    ts = NOW - 1000
    fill(plog, [
        [(ts, b"k", b"0"), (ts, b"j", b"1")],  # keeps only offset 1: a gap inside the batch
        [(ts, b"m", b"2")],  # superseded entirely: the batch disappears
        [(ts, b"k", b"3"), (ts, b"m", b"4")],
        [(ts, b"z", b"5")],
        [(ts, b"w", b"6")],
    ])
    compact(plog)
    assert [r.offset for r in everything(plog)] == [1, 3, 4, 5, 6]
    assert [r.offset for r in decode_all(plog.read(0, 10**6, 7))][:2] == [1, 3]  # the batch holding 0 still comes first
    assert [r.offset for r in decode_all(plog.read(2, 1, 7))] == [3, 4]  # 2 is gone: the next batch


def test_tombstones_are_dropped_only_after_delete_retention(store):
    plog = compacted_log(store, **{"delete.retention.ms": "1000", "segment.bytes": "100"})
    fill(plog, [
        [(NOW - 5000, b"old", b"v")],
        [(NOW - 4000, b"old", None)],  # a tombstone older than delete.retention.ms
        [(NOW - 500, b"new", b"v")],
        [(NOW - 400, b"new", None)],  # a recent tombstone
        [(NOW - 100, b"tail", b"v")],
    ])
    compact(plog)
    assert [(r.key, r.value) for r in everything(plog)] == [(b"new", None), (b"tail", b"v")]


def test_min_compaction_lag_leaves_recent_segments_alone(store):
    plog = compacted_log(store, **{"min.compaction.lag.ms": "1000", "segment.bytes": "100"})
    fill(plog, [
        [(NOW - 5000, b"k", b"1")],
        [(NOW - 200, b"k", b"2")],  # too recent: this segment and all after it are left alone
        [(NOW - 100, b"k", b"3")],
        [(NOW - 50, b"z", b"z")],
    ])
    assert compact(plog) == 1
    assert [r.value for r in everything(plog)] == [b"2", b"3", b"z"]


def test_records_above_the_high_watermark_do_not_supersede(store):
    plog = compacted_log(store, **{"segment.bytes": "100"})
    ts = NOW - 1000
    fill(plog, [[(ts, b"k", b"1")], [(ts, b"j", b"1")]])

    async def uncommitted():
        payload = stored([(ts, b"k", b"2")], 0)
        await plog.append(payload, validate_batches(payload), 0)  # HW stays at 2

    asyncio.run(uncommitted())
    assert compact(plog) == 0
    assert [r.value for r in everything(plog)] == [b"1", b"1", b"2"]


def test_compaction_is_a_no_op_for_delete_policy(store):
    plog = PartitionLog.open(store, TOPIC, 0, TopicConfig.from_dict({"segment.bytes": "100"}), Clock(NOW))
    fill(plog, [[(NOW - 1000, b"k", b"1")], [(NOW - 1000, b"k", b"2")], [(NOW, b"k", b"3")]])
    assert compact(plog) == 0
    assert len(everything(plog)) == 3


def test_a_pass_runs_again_only_when_a_segment_closed(store):
    plog = compacted_log(store, **{"delete.retention.ms": "3600000"})
    ts = NOW - 1000
    fill(plog, [[(ts, b"a", b"x" * 60)], [(ts, b"a", b"y" * 60)], [(ts, b"a", b"z" * 60)], [(ts, b"b", b"w" * 60)]])
    assert len(plog.segments) > 2
    assert compact(plog) >= 1
    assert compact(plog, NOW + 1) == 0, "nothing closed since the last pass"
    fill(plog, [[(ts, b"a", b"v" * 60)], [(ts, b"b", b"u" * 60)], [(ts, b"c", b"t" * 60)]])
    assert compact(plog, NOW + 2) >= 1, "a newly closed segment makes the log dirty again"
