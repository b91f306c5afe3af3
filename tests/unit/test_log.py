"""PartitionLog on real RocksDB: offsets, reads, recovery, segments, retention, ListOffsets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest

from caudal.broker.log import PartitionLog
from caudal.broker.storage import CF_INDEX, CF_LOG, Store, partition_key, prefix_end
from caudal.common.errors import (
    InvalidRecordError,
    MessageTooLargeError,
    OffsetOutOfRangeError,
    StorageError,
    UnknownTopicOrPartitionError,
)
from caudal.common.record_batch import TIMESTAMP_LOG_APPEND_TIME, build_batch, decode_all, iter_batches, validate_batches
from caudal.common.topic_config import TopicConfig

TOPIC = bytes.fromhex("00112233445566778899aabbccddeeff")


class Clock:
    """Deterministic millisecond clock."""

    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def batch(n: int = 1, ts: int = 1000, key: bytes | None = None, size: int = 10) -> bytes:
    return build_batch([(ts + i, key, b"x" * size, ()) for i in range(n)])


def payload_of(*batches: bytes) -> tuple[bytes, list]:
    payload = b"".join(batches)
    return payload, validate_batches(payload)


async def append(plog: PartitionLog, *batches: bytes, epoch: int = 0):
    payload, headers = payload_of(*batches)
    return await plog.append(payload, headers, epoch)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "db")
    yield s
    s.close()


@contextlib.contextmanager
def reopened(path) -> Iterator[Store]:
    """The store at ``path`` opened afresh, as a restarted broker opens it; closed afterwards."""
    store = Store(path)
    try:
        yield store
    finally:
        store.close()


def open_log(store, config=None, clock=None, partition=0) -> PartitionLog:
    return PartitionLog.open(store, TOPIC, partition, config or TopicConfig(), clock or Clock())


def offsets_of(data: bytes) -> list[int]:
    return [r.offset for r in decode_all(data)]


def test_concurrent_appends_get_contiguous_ordered_offsets(store):
    plog = open_log(store)

    async def main():
        tasks = [asyncio.ensure_future(append(plog, batch(1 + i % 4))) for i in range(60)]
        await asyncio.sleep(0)  # every task ran up to its first await
        assert plog.log_end_offset == sum(1 + i % 4 for i in range(60))  # assigned before any write
        assert plog.durable_end_offset < plog.log_end_offset
        return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    expected = 0
    for i, r in enumerate(results):
        assert r.base_offset == expected
        assert r.last_offset == expected + i % 4
        assert r.log_append_time == -1 and r.log_start_offset == 0
        expected = r.last_offset + 1
    assert plog.log_end_offset == plog.durable_end_offset == expected
    data = plog.read(0, 10**9, plog.log_end_offset)
    assert offsets_of(data) == list(range(expected))
    assert len(validate_batches(data)) == 60  # stored whole, CRCs still valid after the rewrite


def test_append_rewrites_offsets_and_leader_epoch_of_every_batch(store):
    plog = open_log(store)
    asyncio.run(append(plog, batch(2), batch(3), epoch=7))
    headers = validate_batches(plog.read(0, 10**6, 5))
    assert [(h.base_offset, h.last_offset, h.partition_leader_epoch) for h in headers] == [(0, 1, 7), (2, 4, 7)]


def test_group_commit_batches_many_appends_into_few_writes(store):
    plog = open_log(store)
    committer = store.committer

    async def main():
        await asyncio.gather(*(append(plog, batch(1)) for _ in range(300)))

    asyncio.run(main())
    assert committer.commits == 300
    assert committer.writes <= 30  # far fewer RocksDB writes than appends
    assert committer.syncs == committer.writes  # log.flush.policy=sync (the default)


def test_replication_flush_policy_does_not_fsync(store):
    plog = open_log(store, TopicConfig.from_dict({"log.flush.policy": "replication"}))
    asyncio.run(append(plog, batch(3)))
    assert store.committer.syncs == 0 and plog.durable_end_offset == 3


def test_read_returns_the_batch_containing_the_offset_and_respects_bounds(store):
    plog = open_log(store)
    b = [batch(5, size=100) for _ in range(4)]  # offsets 0-4, 5-9, 10-14, 15-19
    asyncio.run(append(plog, *b))
    size = len(b[0])

    assert offsets_of(plog.read(7, 10**6, 20))[0] == 5  # the batch containing 7 starts at 5
    assert offsets_of(plog.read(5, 10**6, 20))[0] == 5
    assert len(plog.read(0, 2 * size, 20)) == 2 * size  # stops at max_bytes on a batch boundary
    assert len(plog.read(0, 2 * size + 1, 20)) == 2 * size  # never a partial batch
    assert len(plog.read(0, 1, 20)) == size  # at least one whole batch (KIP-74)
    assert offsets_of(plog.read(0, 10**6, 10)) == list(range(10))  # max_offset is exclusive (the HW)
    assert plog.read(10, 10**6, 10) == b""  # at the upper bound: nothing yet
    assert plog.read(20, 10**6, 20) == b""  # at the log end
    with pytest.raises(OffsetOutOfRangeError, match="fetch offset 21 is out of range.*log end offset 20"):
        plog.read(21, 10**6, 20)
    with pytest.raises(OffsetOutOfRangeError):
        plog.read(-1, 10**6, 20)


def test_batches_are_readable_up_to_the_log_end_while_they_are_being_written(store):
    plog = open_log(store)
    asyncio.run(append(plog, batch(2, size=50)))  # offsets 0-1, durable

    async def main():
        b = [batch(3, size=50), batch(4, size=50)]  # offsets 2-4 and 5-8
        pending = [plog.append(*payload_of(x), 0) for x in b]
        assert plog.durable_end_offset == 2 and plog.log_end_offset == 9
        before = plog.read(0, 10**6, plog.log_end_offset)
        assert offsets_of(before) == list(range(9))  # stored batch, then the two still in flight
        assert offsets_of(plog.read(2, 10**6, 9)) == list(range(2, 9))
        assert offsets_of(plog.read(5, 10**6, 9)) == list(range(5, 9))
        assert offsets_of(plog.read(0, 1, 9)) == [0, 1]  # max_bytes still counts whole batches
        assert offsets_of(plog.read(2, 10**6, 5)) == [2, 3, 4]  # max_offset still bounds
        stored = plog.read(0, 10**6, 2)
        assert offsets_of(stored) == [0, 1] and before.startswith(stored)
        await asyncio.gather(*pending)
        assert plog.durable_end_offset == 9
        return before

    before = asyncio.run(main())
    assert plog.read(0, 10**6, 9) == before  # the same bytes once they are stored


def test_reads_stay_inside_their_partition(store):
    p0, p1 = open_log(store, partition=0), open_log(store, partition=1)

    async def main():
        await append(p0, batch(2, key=b"p0"))
        await append(p1, batch(3, key=b"p1"))

    asyncio.run(main())
    assert {r.key for r in decode_all(p0.read(0, 10**6, 10))} == {b"p0"}
    assert offsets_of(p1.read(1, 10**6, 10)) == [0, 1, 2]


def test_recovery_after_reopen_without_checkpoint(tmp_path):
    path = tmp_path / "db"
    clock = Clock()
    config = TopicConfig.from_dict({"segment.bytes": "300"})
    store = Store(path)
    plog = open_log(store, config, clock)

    async def main():
        for i in range(10):
            clock.now += 10
            await append(plog, batch(2, ts=clock.now, size=50), epoch=i // 4)
        plog.update_high_watermark(plog.durable_end_offset)

    asyncio.run(main())
    before = (plog.log_start_offset, plog.log_end_offset, plog.segments, plog.read(0, 10**9, 20))
    epochs = [plog.end_offset_for_epoch(e) for e in range(4)]
    by_time = plog.offset_for_timestamp(clock.now - 15)
    assert by_time is not None and len(plog.segments) > 1
    store.close()  # a crash: no flush(), no HW checkpoint

    with reopened(path) as store:
        again = open_log(store, config, Clock(clock.now))
        assert (again.log_start_offset, again.log_end_offset, again.segments, again.read(0, 10**9, 20)) == before
        assert again.durable_end_offset == again.log_end_offset == 20
        assert [again.end_offset_for_epoch(e) for e in range(4)] == epochs
        assert 0 <= again.high_watermark <= 20
        assert again.offset_for_timestamp(clock.now - 15) == by_time
        r = asyncio.run(append(again, batch(1), epoch=2))
        assert r.base_offset == 20


def test_high_watermark_checkpoint_and_clamping(tmp_path):
    path = tmp_path / "db"
    clock = Clock()
    store = Store(path)
    plog = open_log(store, clock=clock)

    async def main():
        await append(plog, batch(10))
        assert plog.update_high_watermark(4) == 4
        assert plog.update_high_watermark(99) == 10  # clamped to the log end offset
        await plog.flush()

    asyncio.run(main())
    store.close()
    with reopened(path) as store:
        assert open_log(store).high_watermark == 10


def test_segments_roll_by_bytes(store):
    plog = open_log(store, TopicConfig.from_dict({"segment.bytes": "250"}))
    size = len(batch(1, size=40))

    async def main():
        for _ in range(7):
            await append(plog, batch(1, size=40))

    asyncio.run(main())
    per_segment = 250 // size
    segs = plog.segments
    assert [s.size_bytes for s in segs[:-1]] == [per_segment * size] * (len(segs) - 1)
    assert all(a.end_offset == b.base_offset for a, b in zip(segs, segs[1:]))
    assert segs[0].base_offset == 0 and segs[-1].end_offset == 7
    assert sum(s.size_bytes for s in segs) == plog.size_bytes == 7 * size


def test_oversized_batch_gets_its_own_segment_and_max_message_bytes_is_enforced(store):
    plog = open_log(store, TopicConfig.from_dict({"segment.bytes": "100", "max.message.bytes": "500"}))

    async def main():
        await append(plog, batch(1, size=10))
        await append(plog, batch(1, size=200))
        with pytest.raises(MessageTooLargeError):
            await append(plog, batch(1, size=600))

    asyncio.run(main())
    assert [(s.base_offset, s.end_offset) for s in plog.segments] == [(0, 1), (1, 2)]
    assert plog.log_end_offset == 2  # the rejected append assigned nothing


def test_segments_roll_by_time(store):
    clock = Clock()
    plog = open_log(store, TopicConfig.from_dict({"segment.ms": "1000"}), clock)

    async def main():
        await append(plog, batch(1))
        clock.now += 999
        await append(plog, batch(1))
        clock.now += 1
        await append(plog, batch(1))

    asyncio.run(main())
    assert [(s.base_offset, s.end_offset) for s in plog.segments] == [(0, 2), (2, 3)]
    assert plog.segments[1].created_ms == clock.now


def _log_with_segments(store, clock, extra_config=None, count=5) -> PartitionLog:
    """``count`` closed segments of one batch each (timestamps 1000, 2000, ...) plus an active one."""
    config = TopicConfig.from_dict({"segment.bytes": "100", **(extra_config or {})})
    plog = open_log(store, config, clock)

    async def main():
        for i in range(count + 1):
            await append(plog, batch(2, ts=(i + 1) * 1000, size=60))
        plog.update_high_watermark(plog.durable_end_offset)

    asyncio.run(main())
    assert len(plog.segments) == count + 1
    return plog


def test_retention_by_time_deletes_whole_closed_segments(store):
    clock = Clock()
    plog = _log_with_segments(store, clock, {"retention.ms": "10000"})
    pkey = partition_key(TOPIC, 0)

    async def main():
        assert plog.enforce_retention(12_000) == 1  # only ts=1000 is more than 10 s old
        assert plog.enforce_retention(12_000) == 0
        assert plog.enforce_retention(10**9) == 4  # everything closed, never the active one
        await plog.flush()

    asyncio.run(main())
    assert plog.log_start_offset == 10 and len(plog.segments) == 1
    assert plog.log_end_offset == 12
    with pytest.raises(OffsetOutOfRangeError, match="log start offset 10"):
        plog.read(0, 10**6, 12)
    assert offsets_of(plog.read(10, 10**6, 12)) == [10, 11]
    assert [k[-8:] for k, _ in store.items(CF_LOG, pkey, prefix_end(pkey))] == [(10).to_bytes(8, "big")]
    assert len(list(store.items(CF_INDEX, pkey, prefix_end(pkey)))) == 1  # only the active batch's entry
    assert plog.offset_for_timestamp(0) == (10, 6000)


def test_retention_by_bytes_keeps_the_newest_segments(store):
    clock = Clock()
    seg_size = len(batch(2, size=60))
    plog = _log_with_segments(store, clock, {"retention.bytes": str(3 * seg_size), "retention.ms": "-1"})

    async def main():
        deleted = plog.enforce_retention(clock.now)
        await plog.flush()
        return deleted

    assert asyncio.run(main()) == 3
    assert plog.size_bytes == 3 * seg_size and plog.log_start_offset == 6


def test_retention_never_deletes_above_the_high_watermark_or_for_compact_only(store):
    clock = Clock()
    plog = _log_with_segments(store, clock, {"retention.ms": "1"})

    async def main():
        plog.update_high_watermark(4)
        assert plog.enforce_retention(10**9) == 2
        compact_only = open_log(store, TopicConfig.from_dict({"cleanup.policy": "compact", "retention.ms": "1"}), clock, 1)
        await append(compact_only, batch(1))
        assert compact_only.enforce_retention(10**9) == 0

    asyncio.run(main())
    assert plog.log_start_offset == 4


def test_retention_survives_reopen(tmp_path):
    clock = Clock()
    store = Store(tmp_path / "db")
    plog = _log_with_segments(store, clock, {"retention.ms": "1"})

    async def main():
        plog.enforce_retention(10**9)
        await plog.flush()

    asyncio.run(main())
    segments = plog.segments
    store.close()
    store = Store(tmp_path / "db")
    try:
        again = open_log(store, plog.config, clock)
        assert again.segments == segments and again.log_start_offset == 10
    finally:
        store.close()


def test_offset_for_timestamp(store):
    plog = open_log(store)

    async def main():
        await append(plog, build_batch([(100, None, b"a", ()), (300, None, b"b", ())]))  # 0, 1
        await append(plog, build_batch([(200, None, b"c", ()), (250, None, b"d", ())]))  # 2, 3 (late)
        await append(plog, build_batch([(400, None, b"e", ()), (350, None, b"f", ())]))  # 4, 5

    asyncio.run(main())
    assert plog.offset_for_timestamp(0) == (0, 100)
    assert plog.offset_for_timestamp(100) == (0, 100)
    assert plog.offset_for_timestamp(101) == (1, 300)
    assert plog.offset_for_timestamp(250) == (1, 300)  # earliest offset, not the closest timestamp
    assert plog.offset_for_timestamp(301) == (4, 400)
    assert plog.offset_for_timestamp(400) == (4, 400)
    assert plog.offset_for_timestamp(401) is None


def test_offset_for_timestamp_across_segments_with_out_of_order_timestamps(store):
    plog = open_log(store, TopicConfig.from_dict({"segment.bytes": "100"}))

    async def main():
        for ts in (5000, 1000, 6000, 3000):  # one batch of two records (ts, ts+1) per segment
            await append(plog, batch(2, ts=ts, size=40))

    asyncio.run(main())
    assert len(plog.segments) == 4
    assert plog.offset_for_timestamp(900) == (0, 5000)
    assert plog.offset_for_timestamp(5001) == (1, 5001)
    assert plog.offset_for_timestamp(5002) == (4, 6000)
    assert plog.offset_for_timestamp(6001) == (5, 6001)
    assert plog.offset_for_timestamp(6002) is None


def test_truncate_to(tmp_path):
    path = tmp_path / "db"
    store = Store(path)
    plog = open_log(store, TopicConfig.from_dict({"segment.bytes": "200"}))

    async def main():
        for i in range(6):  # batches of 3 at 0, 3, 6, ...; epochs 0,0,1,1,2,2
            await append(plog, batch(3, ts=1000 * (i + 1), size=30), epoch=i // 2)
        plog.update_high_watermark(18)
        await plog.truncate_to(10)  # inside the batch 9-11: that batch goes too
        assert plog.log_end_offset == plog.durable_end_offset == 9
        assert plog.high_watermark == 9
        assert offsets_of(plog.read(0, 10**6, 100)) == list(range(9))
        assert plog.offset_for_timestamp(3500) is None
        assert plog.end_offset_for_epoch(1) == (1, 9) and plog.end_offset_for_epoch(2) == (-1, -1)
        r = await append(plog, batch(1, ts=500), epoch=3)
        assert r.base_offset == 9
        assert plog.end_offset_for_epoch(1) == (1, 9)
        await plog.truncate_to(9)

    asyncio.run(main())
    segments = plog.segments
    assert segments[-1].end_offset == 9
    assert sum(s.size_bytes for s in segments) == len(plog.read(0, 10**6, 100))
    store.close()
    with reopened(path) as store:
        again = open_log(store, plog.config)
        assert again.segments == segments and again.log_end_offset == 9
        assert again.end_offset_for_epoch(1) == (1, 9) and again.latest_epoch == 1


def test_truncate_inside_a_segment_keeps_segment_sizes_exact(store):
    plog = open_log(store, TopicConfig.from_dict({"segment.bytes": str(2 * len(batch(3, size=30)))}))

    async def main():
        for i in range(6):
            await append(plog, batch(3, ts=1000 * (i + 1), size=30))
        assert [(s.base_offset, s.end_offset) for s in plog.segments] == [(0, 6), (6, 12), (12, 18)]
        await plog.truncate_to(4)

    asyncio.run(main())
    assert [(s.base_offset, s.end_offset, s.size_bytes) for s in plog.segments] == [(0, 3, len(batch(3, size=30)))]
    assert plog.offset_for_timestamp(1000) == (0, 1000)
    assert plog.offset_for_timestamp(1003) is None
    # The truncated batches' timestamps (2000+) no longer shadow new, older-stamped ones.
    asyncio.run(append(plog, batch(1, ts=1500)))
    assert plog.offset_for_timestamp(1003) == (3, 1500)


def test_truncate_below_log_start_empties_the_log(store):
    clock = Clock()
    plog = _log_with_segments(store, clock, {"retention.ms": "1"})

    async def main():
        plog.enforce_retention(10**9)
        await plog.truncate_to(3)
        assert (plog.log_start_offset, plog.log_end_offset, plog.high_watermark) == (3, 3, 3)
        assert plog.read(3, 100, 3) == b""
        assert (await append(plog, batch(1))).base_offset == 3

    asyncio.run(main())
    pkey = partition_key(TOPIC, 0)
    assert offsets_of(b"".join(v for _, v in store.items(CF_LOG, pkey, prefix_end(pkey)))) == [3]


def test_delete_drops_the_partition_and_leaves_others(tmp_path):
    path = tmp_path / "db"
    store = Store(path)
    p0, p1 = open_log(store, partition=0), open_log(store, partition=1)

    async def main():
        await append(p0, batch(3))
        await append(p1, batch(2))
        p0.delete()
        with pytest.raises(UnknownTopicOrPartitionError):
            p0.read(0, 100, 3)
        with pytest.raises(UnknownTopicOrPartitionError):
            await append(p0, batch(1))
        await store.commit((), True)

    asyncio.run(main())
    store.close()
    with reopened(path) as store:
        assert open_log(store, partition=0).log_end_offset == 0
        assert open_log(store, partition=1).log_end_offset == 2


def test_leader_epoch_cache(store):
    plog = open_log(store)

    async def main():
        await append(plog, batch(2), epoch=1)  # 0-1
        await append(plog, batch(2), epoch=1)  # 2-3
        await append(plog, batch(2), epoch=3)  # 4-5
        await append(plog, batch(1), epoch=6)  # 6

    asyncio.run(main())
    assert plog.latest_epoch == 6
    assert plog.end_offset_for_epoch(0) == (0, 0)  # before the first epoch: its start
    assert plog.end_offset_for_epoch(1) == (1, 4)
    assert plog.end_offset_for_epoch(2) == (1, 4)  # unknown epoch: the one before it
    assert plog.end_offset_for_epoch(3) == (3, 6)
    assert plog.end_offset_for_epoch(6) == (6, 7)
    assert plog.end_offset_for_epoch(7) == (-1, -1)


def test_divergence_offset_is_where_leader_and_follower_logs_agree(store):
    """KIP-279: the follower truncates to the smaller end of the epoch both know; when it
    does not know the leader's epoch, to the end of its own epoch below it, then asks again."""
    plog = open_log(store)

    async def main():
        await append(plog, batch(100), epoch=0)  # 0-99
        await append(plog, batch(50), epoch=3)  # 100-149, an epoch the new leader never had

    asyncio.run(main())
    assert plog.divergence_offset(0, 131) == 100  # epoch 0 ends at 100 here, before the leader's end
    assert plog.divergence_offset(0, 80) == 80  # the leader's epoch 0 ended earlier
    assert plog.divergence_offset(2, 200) == 100  # no epoch 2 here: back to the end of epoch 0, ask again
    assert plog.divergence_offset(3, 120) == 120
    assert plog.divergence_offset(3, 500) == 150  # never past this log's end
    assert plog.divergence_offset(-1, 40) == 40  # the leader knows no epoch at or below ours


def test_append_replica_keeps_leader_offsets(store):
    leader = open_log(store, partition=0)
    follower = open_log(store, partition=1)

    async def main():
        await append(leader, batch(2), batch(3), epoch=4)
        data = leader.read(0, 10**6, 5)
        await follower.append_replica(data, validate_batches(data))
        assert follower.log_end_offset == 5 and follower.latest_epoch == 4
        with pytest.raises(InvalidRecordError, match="overlaps"):
            await follower.append_replica(data, validate_batches(data))

    asyncio.run(main())
    assert follower.read(0, 10**6, 5) == leader.read(0, 10**6, 5)


def test_a_replicated_batch_is_in_the_log_before_its_write_is_awaited(store):
    """A follower promoted while its fetched batches are being written starts the new
    epoch after them, not in front of them."""
    leader = open_log(store, partition=0)
    follower = open_log(store, partition=1)

    async def main():
        await append(leader, batch(2), batch(3), epoch=4)
        data = leader.read(0, 10**6, 5)
        written = follower.append_replica(data, validate_batches(data))
        follower.assign_leader_epoch(5)
        await written
        assert follower.end_offset_for_epoch(4) == (4, 5)
        assert follower.end_offset_for_epoch(5) == (5, 5)

    asyncio.run(main())


def test_truncating_at_the_log_end_drops_an_epoch_that_never_got_a_batch(tmp_path):
    """A replica promoted and demoted before appending anything holds an epoch its new
    leader never had; the leader answers with where its own earlier epoch ends, the log
    end here, and the truncation there must forget the empty epoch or the exchange repeats."""
    path = tmp_path / "db"
    store = Store(path)
    plog = open_log(store)

    async def main():
        await append(plog, batch(3), epoch=0)
        plog.assign_leader_epoch(1)
        assert plog.latest_epoch == 1
        await plog.truncate_to(3)

    asyncio.run(main())
    assert plog.log_end_offset == 3 and plog.latest_epoch == 0
    assert plog.end_offset_for_epoch(0) == (0, 3)
    store.close()
    with reopened(path) as store:
        assert open_log(store).latest_epoch == 0


def test_a_truncation_no_longer_wanted_once_writes_settle_leaves_the_log_alone(store):
    plog = open_log(store)

    async def main():
        await append(plog, batch(3), epoch=0)
        await append(plog, batch(2), epoch=1)
        await plog.truncate_to(3, still_wanted=lambda: False)
        await plog.restart_at(100, still_wanted=lambda: False)

    asyncio.run(main())
    assert plog.log_end_offset == 5 and plog.latest_epoch == 1
    assert offsets_of(plog.read(0, 10**6, 5)) == list(range(5))


def test_storage_failure_takes_the_log_offline(tmp_path):
    store = Store(tmp_path / "db")
    plog = open_log(store)

    async def main():
        await append(plog, batch(1))
        store._db.close()  # RocksDB now fails every write
        with pytest.raises(StorageError):
            await append(plog, batch(1))
        with pytest.raises(StorageError, match="offline"):
            await append(plog, batch(1))

    asyncio.run(main())
    assert plog.durable_end_offset == 1
    store.committer.close()


def test_payload_must_match_headers(store):
    plog = open_log(store)
    payload, headers = payload_of(batch(1), batch(1))

    async def main():
        with pytest.raises(InvalidRecordError):
            await plog.append(payload, headers[:1], 0)

    asyncio.run(main())
    assert plog.log_end_offset == 0
    assert [pos for pos, _ in iter_batches(payload)] == [0, len(payload) // 2]


def test_log_append_time_stamps_batches(tmp_path) -> None:
    store = Store(tmp_path / "db")
    try:
        config = TopicConfig.from_dict({"message.timestamp.type": "LogAppendTime"})
        plog = PartitionLog.open(store, b"\x01" * 16, 0, config, lambda: 5_000)
        payload = build_batch([(1_000, b"k", b"v", ()), (1_001, b"k2", b"v2", ())])

        async def go():
            return await plog.append(payload, validate_batches(payload), 3)

        result = asyncio.run(go())
        assert result.log_append_time == 5_000
        stored = plog.read(0, 1 << 20, plog.log_end_offset)
        header = validate_batches(stored)[0]
        assert header.timestamp_type == TIMESTAMP_LOG_APPEND_TIME and header.partition_leader_epoch == 3
        assert [r.timestamp for r in decode_all(stored)] == [5_000, 5_000]
        assert plog.offset_for_timestamp(4_000) == (0, 5_000)
    finally:
        store.close()


def test_restart_at_moves_an_empty_or_short_log_past_its_end(tmp_path) -> None:
    store = Store(tmp_path / "db")
    try:
        plog = PartitionLog.open(store, b"\x02" * 16, 0, TopicConfig(), lambda: 1_000)
        payload = build_batch([(1, None, b"a", ()), (2, None, b"b", ())])

        async def go():
            await plog.append(payload, validate_batches(payload), 0)
            await plog.restart_at(50)

        asyncio.run(go())
        assert (plog.log_start_offset, plog.log_end_offset, plog.high_watermark) == (50, 50, 50)
        assert plog.read(50, 1 << 20, 50) == b""
        again = PartitionLog.open(store, b"\x02" * 16, 0, TopicConfig(), lambda: 1_000)
        assert (again.log_start_offset, again.log_end_offset) == (50, 50)
    finally:
        store.close()
