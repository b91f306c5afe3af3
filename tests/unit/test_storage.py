"""The RocksDB store: key layout, range reads and the group committer (real RocksDB)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from caudal.broker.storage import (
    CF_INDEX,
    CF_LOG,
    CF_META,
    DeleteRange,
    Store,
    log_key,
    offset_of_key,
    partition_key,
    prefix_end,
)
from caudal.common.errors import StorageError

TOPIC = bytes(range(16))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "db")
    yield s
    s.close()


def test_key_layout_orders_partitions_then_offsets():
    p0, p1 = partition_key(TOPIC, 0), partition_key(TOPIC, 1)
    assert len(p0) == 20 and p0 < p1 <= prefix_end(p0)
    keys = [log_key(p0, o) for o in (0, 1, 255, 256, 2**40)]
    assert keys == sorted(keys)
    assert all(k < prefix_end(p0) for k in keys)
    assert offset_of_key(log_key(p1, 123456789)) == 123456789
    assert prefix_end(b"a\xff\xff") == b"b"
    with pytest.raises(ValueError):
        partition_key(b"short", 0)


def test_reads(store):
    pk = partition_key(TOPIC, 3)
    other = partition_key(TOPIC, 4)
    store.write_now([(CF_LOG, log_key(pk, o), b"v%d" % o) for o in range(0, 100, 10)], sync=True)
    store.write_now([(CF_LOG, log_key(other, 0), b"other")], sync=False)
    end = prefix_end(pk)

    assert store.get(CF_LOG, log_key(pk, 30)) == b"v30"
    assert store.get(CF_LOG, log_key(pk, 31)) is None
    assert store.get(CF_META, log_key(pk, 30)) is None  # column families are separate
    assert [offset_of_key(k) for k, _ in store.items(CF_LOG, log_key(pk, 25), log_key(pk, 60))] == [30, 40, 50]
    assert [offset_of_key(k) for k, _ in store.items_reversed(CF_LOG, log_key(pk, 70), end)] == [90, 80, 70]
    # The floor: the entry at or before the key starts the scan; the partition bounds hold.
    floor = store.items_from_floor(CF_LOG, log_key(pk, 35), log_key(pk, 0), log_key(pk, 60))
    assert [v for _, v in floor] == [b"v30", b"v40", b"v50"]
    floor = store.items_from_floor(CF_LOG, log_key(pk, 5), log_key(pk, 10), end)
    assert next(floor)[1] == b"v10"
    assert store.last(CF_LOG, pk, end)[1] == b"v90"
    assert store.first(CF_LOG, pk, end)[1] == b"v0"
    assert store.first(CF_LOG, log_key(pk, 91), end) is None
    assert store.last(CF_LOG, partition_key(TOPIC, 9), prefix_end(partition_key(TOPIC, 9))) is None


def test_iterators_survive_garbage_collection(store):
    """rocksdict borrows the upper bound from its ReadOptions: the store keeps it alive."""
    import gc

    pk = partition_key(TOPIC, 0)
    store.write_now([(CF_LOG, log_key(pk, o), b"x") for o in range(10)], sync=False)
    it = store.items(CF_LOG, log_key(pk, 2), prefix_end(pk))
    floor = store.items_from_floor(CF_LOG, log_key(pk, 2), pk, prefix_end(pk))
    gc.collect()
    _ = [bytes(64) for _ in range(10_000)]
    assert len(list(it)) == 8
    assert len(list(floor)) == 8


def test_commit_applies_puts_deletes_and_range_deletes_in_order(store):
    pk = partition_key(TOPIC, 0)

    async def main():
        await asyncio.gather(
            store.commit([(CF_LOG, log_key(pk, o), b"a") for o in range(10)], sync=False),
            store.commit([(CF_LOG, log_key(pk, 3), b"b"), (CF_LOG, log_key(pk, 4), None)], sync=False),
            store.commit([DeleteRange(CF_LOG, log_key(pk, 6), log_key(pk, 9))], sync=True),
            store.commit([(CF_LOG, log_key(pk, 7), b"c")], sync=False),
        )

    asyncio.run(main())
    got = {offset_of_key(k): v for k, v in store.items(CF_LOG, pk, prefix_end(pk))}
    assert got == {0: b"a", 1: b"a", 2: b"a", 3: b"b", 5: b"a", 7: b"c", 9: b"a"}


def test_group_commit_groups_concurrent_commits(store):
    pk = partition_key(TOPIC, 0)
    committer = store.committer

    async def main():
        futs = [store.commit([(CF_LOG, log_key(pk, i), b"v" * 1000)], sync=True) for i in range(500)]
        await asyncio.gather(*futs)

    asyncio.run(main())
    assert committer.commits == 500
    assert 1 <= committer.writes < 50  # submitted in one loop turn: a handful of groups at most
    assert committer.syncs == committer.writes
    assert len(list(store.items(CF_LOG, pk, prefix_end(pk)))) == 500


def test_unsynced_commits_are_not_synced(store):
    async def main():
        await asyncio.gather(*(store.commit([(CF_META, b"k%d" % i, b"v")], sync=False) for i in range(20)))

    asyncio.run(main())
    assert store.committer.syncs == 0 and store.committer.writes >= 1


def test_empty_commit_is_a_barrier(store):
    async def main():
        first = store.commit([(CF_META, b"k", b"v")], sync=False)
        await store.commit((), sync=True)
        assert first.done()

    asyncio.run(main())
    assert store.committer.syncs == 1


def test_invalid_ops_fail_fast_without_touching_the_group(store):
    async def main():
        good = store.commit([(CF_META, b"good", b"v")], sync=False)
        with pytest.raises(StorageError):
            store.commit([(CF_META, b"x", b"v"), ("nope", b"k", b"v")], sync=False)
        with pytest.raises(TypeError):
            store.commit([(CF_META, b"y", bytearray(b"v"))], sync=False)
        await good

    asyncio.run(main())
    assert store.get(CF_META, b"good") == b"v"
    assert store.get(CF_META, b"x") is None


def test_write_failure_fails_waiters_and_takes_the_store_offline(tmp_path):
    offline: list[tuple[StorageError, str]] = []
    store = Store(tmp_path / "db", on_offline=lambda exc: offline.append((exc, threading.current_thread().name)))
    store._db.close()  # every later RocksDB write now fails

    async def main():
        futs = [store.commit([(CF_META, b"k%d" % i, b"v")], sync=True) for i in range(5)]
        results = await asyncio.gather(*futs, return_exceptions=True)
        assert all(isinstance(r, StorageError) for r in results)
        with pytest.raises(StorageError):
            await store.commit([(CF_META, b"later", b"v")], sync=False)

    asyncio.run(main())
    assert store.failed is not None
    assert [(exc, thread) for exc, thread in offline] == [(store.failed, "caudal-group-commit")], "told once, by the writer"
    assert store.committer._thread.is_alive()  # the writer thread survived the failures
    store.committer.close()
    assert not store.committer._thread.is_alive()


def test_close_drains_pending_commits(tmp_path):
    path = tmp_path / "db"
    store = Store(path)
    pk = partition_key(TOPIC, 0)

    async def main():
        futs = [store.commit([(CF_LOG, log_key(pk, i), b"v")], sync=False) for i in range(100)]
        store.close()
        await asyncio.gather(*futs)
        with pytest.raises(StorageError):
            store.commit([(CF_LOG, b"k", b"v")], sync=False)

    asyncio.run(main())
    reopened = Store(path)
    try:
        assert len(list(reopened.items(CF_LOG, pk, prefix_end(pk)))) == 100
    finally:
        reopened.close()


def test_unsynced_commit_survives_kill_9(tmp_path):
    """A commit acknowledged without fsync is in the WAL (OS page cache): a process crash keeps it."""
    path = tmp_path / "db"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from caudal.broker.storage import Store, CF_META, CF_INDEX
        store = Store({str(path)!r})
        async def main():
            await store.commit([(CF_META, b"unsynced", b"yes"), (CF_INDEX, b"i", b"")], sync=False)
        asyncio.run(main())
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    store = Store(path)
    try:
        assert store.get(CF_META, b"unsynced") == b"yes"
        assert store.get(CF_INDEX, b"i") == b""
    finally:
        store.close()


def test_store_creates_column_families_and_reopens(tmp_path):
    path = tmp_path / "nested" / "db"
    store = Store(path)
    store.write_now([(CF_META, b"k", b"v")], sync=True)
    store.close()
    store.close()  # idempotent
    assert os.path.isdir(path)
    store = Store(path)
    try:
        assert store.get(CF_META, b"k") == b"v"
    finally:
        store.close()
