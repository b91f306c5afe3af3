"""The broker's RocksDB database: key layout, range reads and group-committed writes.

This is the only module that imports ``rocksdict``. One database per broker data dir,
opened in raw mode (bytes in, bytes out, nothing pickled) with three column families:

- ``log``:   partition key + 8-byte big-endian base offset -> one whole RecordBatch;
- ``index``: per-partition time index (see :mod:`caudal.broker.log`);
- ``meta``:  per-partition metadata (segment table, high watermark, leader epochs).

A partition key is the 16-byte topic id followed by the 4-byte big-endian partition,
so every partition's keys form one contiguous, ordered range and a fetch is a range
scan.

Writes go through a :class:`GroupCommitter`: callers on the asyncio loop add their
mutations to the *pending* RocksDB WriteBatch (built on the caller's thread), and one
dedicated writer thread repeatedly takes whatever is pending, writes it with a single
``db.write`` (synced if any waiter asked for it) and resolves all the waiters with one
``call_soon_threadsafe`` per loop. Durability therefore costs one fsync per group, not
per append, and commits land in RocksDB in exactly the order they were submitted.
A synced group is an unsynced ``db.write`` followed by ``flush_wal(sync=True)``
rather than one synced write: rocksdict holds the GIL through ``write`` but
releases it in ``flush_wal``, so the broker's loop keeps serving while the WAL
is fsynced instead of stalling for the whole sync.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, Union

from rocksdict import Options, Rdict, ReadOptions, WriteBatch, WriteOptions

from caudal.common.errors import StorageError

log = logging.getLogger(__name__)

CF_LOG = "log"
CF_INDEX = "index"
CF_META = "meta"
COLUMN_FAMILIES = (CF_LOG, CF_INDEX, CF_META)

TOPIC_ID_LEN = 16
PARTITION_KEY_LEN = TOPIC_ID_LEN + 4
LOG_KEY_LEN = PARTITION_KEY_LEN + 8

_U64 = struct.Struct(">Q")
_I32 = struct.Struct(">i")
_pack_u64 = _U64.pack
_unpack_u64 = _U64.unpack_from


def partition_key(topic_id: bytes, partition: int) -> bytes:
    """The fixed-width key prefix of one partition: topic id (16 bytes) + partition (4 bytes BE)."""
    if len(topic_id) != TOPIC_ID_LEN:
        raise ValueError(f"topic id must be {TOPIC_ID_LEN} bytes, got {len(topic_id)}")
    return topic_id + _I32.pack(partition)


def log_key(pkey: bytes, base_offset: int) -> bytes:
    """Key of the batch starting at ``base_offset`` in the ``log`` column family."""
    return pkey + _pack_u64(base_offset)


def offset_of_key(key: bytes) -> int:
    """The 8-byte big-endian offset that ends a log (or index) key."""
    return _unpack_u64(key, len(key) - 8)[0]


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix`` (exclusive upper bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        raise ValueError("a prefix of only 0xff bytes has no upper bound")
    return stripped[:-1] + bytes([stripped[-1] + 1])


class DeleteRange(NamedTuple):
    """A range-delete mutation: every key in ``[begin, end)`` of column family ``cf``."""

    cf: str
    begin: bytes
    end: bytes


# A mutation: (cf, key, value) puts, (cf, key, None) deletes, or a DeleteRange.
Op = Union[tuple[str, bytes, Union[bytes, None]], DeleteRange]
# Called on the loop when a commit's group is done: None on success, else the error.
CompletionCallback = Callable[[Union[StorageError, None]], None]
# Called once, on the writer thread, when a failed write takes the store offline.
OfflineCallback = Callable[[StorageError], None]

_KIND_PUT, _KIND_DELETE, _KIND_RANGE = 0, 1, 2


def _complete(entries: list[tuple[asyncio.Future[None], CompletionCallback | None]], exc: StorageError | None) -> None:
    """Runs on a waiter's loop: fire completion callbacks, then resolve the futures, in order."""
    for fut, callback in entries:
        if callback is not None:
            try:
                callback(exc)
            except Exception:
                log.exception("event=commit_callback_failed")
        if not fut.done():
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(StorageError(exc.message))


class GroupCommitter:
    """Batches concurrent commits into one RocksDB write (+ one WAL sync) per group.

    Ownership: ``commit`` is called on an asyncio loop thread; the mutations are added
    to the pending WriteBatch under a lock on that thread, so the writer thread's
    Python work per group is a swap, one ``db.write`` (a memtable insert and a WAL
    append, under the GIL), one ``flush_wal`` (the fsync, without the GIL) and one
    ``call_soon_threadsafe`` per loop. Invariants: groups are written in submission
    order, each group is one atomic WriteBatch, a group is synced if any of its
    commits asked for it, and after the first failed write every later commit fails
    with StorageError (no holes: the store is treated as offline, like a Kafka log dir).
    ``writes``, ``syncs`` and ``commits`` count db writes, synced writes and completed
    commits for metrics and tests. ``on_offline`` hears of the failure that takes the
    store offline, from the writer thread.
    """

    def __init__(self, db: Rdict, handles: dict[str, object], on_offline: OfflineCallback | None = None) -> None:
        self._db = db
        self._handles = handles
        self._on_offline = on_offline
        self._cond = threading.Condition(threading.Lock())
        self._batch = WriteBatch(raw_mode=True)
        self._waiters: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], CompletionCallback | None]]] = {}
        self._pending = 0
        self._need_sync = False
        self._poison: StorageError | None = None
        self._failed: StorageError | None = None
        self._closing = False
        self._sync_opts = WriteOptions()
        self._sync_opts.sync = True
        self._plain_opts = WriteOptions()
        self.writes = 0
        self.syncs = 0
        self.commits = 0
        self._thread = threading.Thread(target=self._run, name="caudal-group-commit", daemon=True)
        self._thread.start()

    @property
    def failed(self) -> StorageError | None:
        """The error that took the store offline, or None while it is healthy."""
        return self._failed

    def commit(self, ops: Iterable[Op], sync: bool, on_complete: CompletionCallback | None = None) -> asyncio.Future[None]:
        """Queue ``ops`` for the next group; the returned future resolves once they are written.

        Must be called on a running asyncio loop. ``sync=True`` makes the group's write
        fsync the WAL before any of its futures resolve. ``on_complete`` runs on the loop
        just before the future resolves, even if the awaiting task was cancelled. An
        empty ``ops`` is a barrier: it resolves after everything submitted before it.
        """
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        resolved = self._resolve(ops)
        with self._cond:
            if self._closing:
                raise StorageError("the store is closed")
            if self._poison is None:
                try:
                    self._apply(self._batch, resolved)
                except Exception as exc:  # the shared batch is now partial: fail the whole group
                    self._poison = StorageError(f"could not build write batch: {exc!r}")
            entries = self._waiters.get(loop)
            if entries is None:
                entries = self._waiters[loop] = []
            entries.append((fut, on_complete))
            self._pending += 1
            if sync:
                self._need_sync = True
            self._cond.notify()
        return fut

    def write_now(self, ops: Iterable[Op], sync: bool) -> None:
        """Write ``ops`` as one WriteBatch on the calling thread, bypassing the group queue.

        Not ordered with commits still in flight: for recovery and maintenance paths
        that own the keys they touch.
        """
        if self._failed is not None:
            raise StorageError(self._failed.message)
        batch = WriteBatch(raw_mode=True)
        self._apply(batch, self._resolve(ops))
        try:
            self._db.write(batch, self._sync_opts if sync else self._plain_opts)
        except Exception as exc:
            raise StorageError(f"RocksDB write failed: {exc}") from exc

    def close(self) -> None:
        """Write everything pending, resolve its waiters, and stop the writer thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        self._handles = {}  # column family handles keep the database (and its LOCK) alive

    def _resolve(self, ops: Iterable[Op]) -> list[tuple[int, object, bytes, bytes | None]]:
        """Validate every op before any touches the shared batch; return (kind, cf handle, key, value)."""
        out = []
        handles = self._handles
        for op in ops:
            cf, key, value = op
            handle = handles.get(cf)
            if handle is None:
                raise StorageError(f"unknown column family {cf!r}")
            is_range = type(op) is DeleteRange
            if type(key) is not bytes or (type(value) is not bytes and (is_range or value is not None)):
                raise TypeError(f"keys and values must be bytes, got {type(key).__name__}/{type(value).__name__}")
            if is_range:
                out.append((_KIND_RANGE, handle, key, value))
            elif value is None:
                out.append((_KIND_DELETE, handle, key, None))
            else:
                out.append((_KIND_PUT, handle, key, value))
        return out

    @staticmethod
    def _apply(batch: WriteBatch, resolved: list[tuple[int, object, bytes, bytes | None]]) -> None:
        for kind, handle, key, value in resolved:
            if kind == _KIND_PUT:
                batch.put(key, value, handle)
            elif kind == _KIND_DELETE:
                batch.delete(key, handle)
            else:
                batch.delete_range(key, value, handle)

    def _run(self) -> None:
        """Writer thread: one db.write per group; never dies on a write error."""
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                batch, waiters, sync, poison = self._batch, self._waiters, self._need_sync, self._poison
                count = self._pending
                self._batch = WriteBatch(raw_mode=True)
                self._waiters = {}
                self._pending = 0
                self._need_sync = False
                self._poison = None
            exc = poison or self._failed
            if exc is None:
                try:
                    if len(batch):
                        self._db.write(batch, self._plain_opts)
                        self.writes += 1
                    if sync:
                        self._db.flush_wal(True)
                        self.syncs += 1
                    self.commits += count
                except Exception as err:
                    exc = self._failed = StorageError(f"RocksDB write failed, store offline: {err}")
                    log.error("event=storage_write_failed error=%r", err)
                    if self._on_offline is not None:
                        try:
                            self._on_offline(exc)
                        except Exception:
                            log.exception("event=storage_offline_callback_failed")
            for loop, entries in waiters.items():
                try:
                    loop.call_soon_threadsafe(_complete, entries, exc)
                except RuntimeError:  # that loop is closed: nobody is left to wake
                    pass


def _upper_bound(end: bytes) -> ReadOptions:
    opts = ReadOptions()
    opts.set_iterate_upper_bound(end)
    return opts


def _keep_alive(items: Iterable[tuple[bytes, bytes]], opts: ReadOptions) -> Iterator[tuple[bytes, bytes]]:
    """Iterate ``items`` while holding ``opts``: rocksdict's iterator borrows the bound's
    memory from the ReadOptions, and reads garbage bounds once that object is freed."""
    yield from items
    del opts


class Store:
    """One broker's RocksDB database (column families ``log``, ``index``, ``meta``).

    Owned by the broker's asyncio loop: reads run on the caller's thread (RocksDB
    reads are thread-safe), writes go through ``commit`` (group-committed, ordered) or
    ``write_now`` (synchronous, for recovery). ``close`` drains pending commits, then
    closes the database.
    """

    def __init__(self, path: str | os.PathLike[str], on_offline: OfflineCallback | None = None) -> None:
        self.path = os.fspath(path)
        os.makedirs(self.path, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.create_missing_column_families(True)
        try:
            self._db = Rdict(
                self.path, options, column_families={name: Options(raw_mode=True) for name in COLUMN_FAMILIES}
            )
        except Exception as exc:
            raise StorageError(f"cannot open RocksDB at {self.path}: {exc}") from exc
        self._cfs = {name: self._db.get_column_family(name) for name in COLUMN_FAMILIES}
        handles = {name: self._db.get_column_family_handle(name) for name in COLUMN_FAMILIES}
        self.committer = GroupCommitter(self._db, handles, on_offline)
        self._closed = False

    @property
    def failed(self) -> StorageError | None:
        """The write failure that took the store offline (disk full, I/O error), or None."""
        return self.committer.failed

    def commit(self, ops: Iterable[Op], sync: bool, on_complete: CompletionCallback | None = None) -> asyncio.Future[None]:
        """Group-commit ``ops`` atomically; await the result (see :meth:`GroupCommitter.commit`)."""
        return self.committer.commit(ops, sync, on_complete)

    def write_now(self, ops: Iterable[Op], sync: bool) -> None:
        """Write ``ops`` atomically right now on this thread (see :meth:`GroupCommitter.write_now`)."""
        self.committer.write_now(ops, sync)

    def get(self, cf: str, key: bytes) -> bytes | None:
        """The value at ``key`` or None."""
        return self._cf(cf).get(key)

    def items(self, cf: str, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs with ``start <= key < end`` in key order."""
        opts = _upper_bound(end)
        return _keep_alive(self._cf(cf).items(from_key=start, read_opt=opts), opts)

    def items_reversed(self, cf: str, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs with ``start <= key < end`` in descending key order."""
        opts = _upper_bound(end)
        it = self._cf(cf).iter(opts)
        it.seek_to_last()
        while it.valid():
            key = it.key()
            if key < start:
                return
            yield key, it.value()
            it.prev()

    def items_from_floor(self, cf: str, key: bytes, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Like :meth:`items` over ``[start, end)``, but beginning at the last key <= ``key``.

        When no key in ``[start, key]`` exists, iteration begins at the first key >= ``key``.
        This is the fetch primitive: the batch *containing* an offset starts at or before it.
        """
        opts = _upper_bound(end)
        cf_db = self._cf(cf)
        it = cf_db.iter(opts)
        it.seek_for_prev(key)
        first = key
        if it.valid():
            found = it.key()
            if found >= start:
                first = found
        return _keep_alive(cf_db.items(from_key=max(first, start), read_opt=opts), opts)

    def last(self, cf: str, start: bytes, end: bytes) -> tuple[bytes, bytes] | None:
        """The entry with the greatest key in ``[start, end)``, or None."""
        opts = _upper_bound(end)
        it = self._cf(cf).iter(opts)
        it.seek_to_last()
        if it.valid():
            key = it.key()
            if key >= start:
                return key, it.value()
        return None

    def first(self, cf: str, start: bytes, end: bytes) -> tuple[bytes, bytes] | None:
        """The entry with the smallest key in ``[start, end)``, or None."""
        return next(self.items(cf, start, end), None)

    def _cf(self, cf: str) -> Rdict:
        try:
            return self._cfs[cf]
        except KeyError:
            raise StorageError(f"unknown column family {cf!r} or store closed") from None

    def close(self) -> None:
        """Drain pending commits (their futures still resolve), then close RocksDB. Idempotent.

        Iterators still open keep the database locked until they are garbage collected.
        An offline store (see :attr:`failed`) closes without raising: RocksDB reports its
        write error again on close, and what it synced before the error is what it keeps.
        """
        if self._closed:
            return
        self._closed = True
        self.committer.close()
        self._cfs = {}
        try:
            self._db.close()
        except Exception as exc:
            if self.failed is None:
                raise StorageError(f"closing RocksDB at {self.path} failed: {exc}") from exc
            log.warning("event=store_close_after_failure path=%s error=%s", self.path, exc)
