"""Consumers: ``poll`` returns lists of ConsumerRecord.

Both consumers share :class:`ConsumerCore`: positions (the next offset ``poll``
returns per partition), the records decoded but not yet returned, and the
:class:`Fetcher` that keeps fetches in flight ahead of the positions. Decoding
happens when records are taken (in the polling thread, not on the I/O loop),
drops records below the position (a fetch starts at the batch that contains
the fetch offset) and hands out at most ``max_poll_records``. :class:`Consumer`
is for blocking code (fetcher on a private I/O thread); :class:`AIOConsumer`
(in ``caudal.client.aio``) runs everything on the caller's loop.
With a ``group_id``, ``subscribe`` makes the consumer a group member: the
steps that keep its assignment current (rebalance listener calls, commits
before revocation, joining, resuming from committed offsets) are written once
in :meth:`ConsumerCore.maintain_group` as a generator of I/O steps, which the
blocking consumer runs on its I/O thread and the asyncio one awaits. Without a
``group_id`` a consumer uses manual ``assign``.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import threading
import time
from typing import (
    Any,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Mapping,
    Optional,
    Union,
)

from caudal.client._transport import Connections, parse_bootstrap
from caudal.client.cluster import MetadataManager
from caudal.client.config import ConsumerConfig, build_config
from caudal.client.consumer_coordinator import ConsumerCoordinator
from caudal.client.fetcher import EARLIEST, LATEST, CompletedFetch, Fetcher
from caudal.client.io_thread import IOThread
from caudal.client.structs import (
    ConsumerRebalanceListener,
    ConsumerRecord,
    OffsetAndMetadata,
    TopicPartition,
)
from caudal.common.errors import CaudalError, InvalidRequestError, KafkaTimeoutError
from caudal.common.record_batch import decode_batch_into, iter_batches

log = logging.getLogger(__name__)

MISSING_TOPIC_RECHECK_MS = 500
"""How soon to look again for a subscribed topic that does not exist yet."""
GroupSteps = Generator[Awaitable[Any], Any, None]
"""I/O steps of a group operation: each yielded awaitable is run by the driver, its result sent back."""
Offsets = Mapping[TopicPartition, Union[OffsetAndMetadata, int]]


class _Pending:
    """Records of one partition fetched but not yet returned by ``poll``, and the fetched bytes
    they came from (released to the fetcher's prefetch budget once all are returned).

    Batches stay as fetched bytes until ``poll`` needs their records, so only about
    ``max_poll_records`` decoded records are alive at a time. Decoding a whole 1 MiB fetch
    at once kept ~10,000 records alive across garbage collections; as tuple subclasses they
    stay tracked, reach the collector's older generations and made its full passes cost a
    fifth of the consumer's time."""

    __slots__ = ("epoch", "records", "index", "nbytes", "batches", "next_offset")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.records: list[ConsumerRecord] = []
        self.index = 0
        self.nbytes = 0
        self.batches: collections.deque[tuple[bytes, int, int]] = collections.deque()
        """Undecoded batches: (fetched bytes, batch position, first offset wanted from it)."""
        self.next_offset: int | None = None
        """The offset after the last batch queued here: a later fetch's data starts there."""

    def decode(self, wanted: int, prefix: tuple[str, int], check_crc: bool) -> None:
        """Decode queued batches until ``wanted`` records are ready (or no batch is left). A batch
        that fails to decode stays queued, so every ``poll`` raises at the same position."""
        records = self.records
        if self.index and self.index >= len(records):
            records.clear()
            self.index = 0
        while len(records) - self.index < wanted and self.batches:
            data, pos, first_wanted = self.batches[0]
            first = len(records)
            try:
                header = decode_batch_into(records, data, pos, check_crc=check_crc, record_type=ConsumerRecord, prefix=prefix)
            except Exception:
                del records[first:]
                raise
            self.batches.popleft()
            if header.base_offset < first_wanted:  # the fetch began inside this batch: drop what was returned
                skip = first
                while skip < len(records) and records[skip].offset < first_wanted:
                    skip += 1
                del records[first:skip]

    def exhausted(self) -> bool:
        return self.index >= len(self.records) and not self.batches


class ConsumerCore:
    """Assignment, positions and decoding shared by the blocking and asyncio consumers.

    Owned by the polling thread (blocking) or the loop (asyncio). Methods that
    must reach the fetcher return its coroutine; the caller runs it on the
    fetcher's loop. ``schedule`` hands a plain call to that loop.
    """

    def __init__(self, config: ConsumerConfig, notify: Callable[[], None], schedule: Callable[..., None]) -> None:
        self.config = config
        self.conns = Connections()
        self.metadata = MetadataManager(self.conns, parse_bootstrap(config.bootstrap_servers), config.request_timeout_ms / 1000)
        self.fetcher = Fetcher(config, self.metadata, notify)
        self.positions: dict[TopicPartition, Optional[int]] = {}
        self.paused: set[TopicPartition] = set()
        self.closed = False
        self._schedule = schedule
        self._epochs: dict[TopicPartition, int] = {}
        self._pending: dict[TopicPartition, _Pending] = {}
        self.group = ConsumerCoordinator(config, self.metadata) if config.group_id else None
        self.subscribed = False
        self.listener: Any = ConsumerRebalanceListener()
        self._next_auto_commit = 0.0
        self._next_metadata_check = 0.0

    def assign(self, partitions: Iterable[TopicPartition], start: Mapping[TopicPartition, int] = {}) -> Coroutine[Any, Any, None]:
        """Read exactly ``partitions``; kept ones keep their position, ``start`` sets new ones
        (others start per ``auto_offset_reset``)."""
        parts = [TopicPartition(*tp) for tp in partitions]
        previous = self.positions
        self.positions = {tp: previous.get(tp, start.get(tp)) for tp in parts}
        for tp in parts:
            self._epochs[tp] = self._epochs.get(tp, 0) + 1
        self._pending = {tp: r for tp, r in self._pending.items() if tp in self.positions}
        return self.fetcher.assign({tp: (self.positions[tp], self._epochs[tp]) for tp in parts})

    def assigned(self, partition: TopicPartition) -> TopicPartition:
        tp = TopicPartition(*partition)
        if tp not in self.positions:
            raise InvalidRequestError(f"{tp.topic}-{tp.partition} is not assigned to this consumer")
        return tp

    def seek(self, partition: TopicPartition, offset: int) -> Coroutine[Any, Any, None]:
        """Make the next ``poll`` for ``partition`` start at ``offset``."""
        if offset < 0:
            raise InvalidRequestError(f"seek offset must be >= 0, got {offset}")
        tp = self.assigned(partition)
        self.positions[tp] = offset
        self._epochs[tp] += 1
        self._pending.pop(tp, None)
        return self.fetcher.seek(tp, offset, self._epochs[tp])

    def targets(self, partitions: Iterable[TopicPartition]) -> list[TopicPartition]:
        """The partitions a seek_to_* call means (every assigned one when none is named)."""
        return [TopicPartition(*tp) for tp in partitions] or list(self.positions)

    def set_paused(self, partitions: Iterable[TopicPartition], paused: bool) -> Coroutine[Any, Any, None]:
        tps = [TopicPartition(*tp) for tp in partitions]
        if paused:
            self.paused.update(tps)
        else:
            self.paused.difference_update(tps)
        return self.fetcher.set_paused(tps, paused)

    def check_open(self) -> None:
        if self.closed:
            raise InvalidRequestError("Consumer is closed")

    # ---- group membership ----------------------------------------------------------

    def require_group(self, what: str) -> ConsumerCoordinator:
        if self.group is None:
            raise InvalidRequestError(f"{what} needs a group_id (a consumer without one uses assign())")
        return self.group

    def subscribe(self, topics: Iterable[str] | None, pattern: str | None, listener: Any) -> None:
        """Join the group for ``topics`` (or every topic matching ``pattern``) on the next poll."""
        group = self.require_group("subscribe()")
        if (topics is None) == (pattern is None):
            raise InvalidRequestError("subscribe() takes either topics or pattern")
        if self.positions and not self.subscribed:
            raise InvalidRequestError("subscribe() cannot be mixed with assign() on one consumer")
        if isinstance(topics, str):
            topics = [topics]
        group.subscribe(topics or (), pattern)
        self.subscribed = True
        self._next_metadata_check = time.monotonic() + self.config.metadata_max_age_ms / 1000
        if listener is not None:
            self.listener = listener

    def commit_offsets(self, offsets: Offsets | None) -> dict[TopicPartition, OffsetAndMetadata]:
        """What ``commit()`` sends: the given offsets, or every assigned partition's position."""
        if offsets is None:
            return {tp: OffsetAndMetadata(pos) for tp, pos in self.positions.items() if pos is not None}
        return {
            TopicPartition(*tp): om if isinstance(om, OffsetAndMetadata) else OffsetAndMetadata(int(om))
            for tp, om in offsets.items()
        }

    def auto_commit_due(self, now: float) -> dict[TopicPartition, OffsetAndMetadata]:
        """Positions to commit now under ``enable_auto_commit`` (empty when not due)."""
        if not (self.config.enable_auto_commit and self.group is not None and self.positions) or now < self._next_auto_commit:
            return {}
        self._next_auto_commit = now + self.config.auto_commit_interval_ms / 1000
        return self.commit_offsets(None)

    def maintain_group(self, now: float) -> GroupSteps:
        """Keep the group assignment current: handle lost membership, rejoin when asked, resume
        new partitions from their committed offsets; listener callbacks run here, in ``poll``."""
        group = self.group
        if group is None or not self.subscribed:
            return
        member = group.member
        member.last_poll = now
        if now >= self._next_metadata_check:
            yield group.refresh_subscription()
            self._schedule_metadata_check(now)
        if member.membership_lost:
            member.membership_lost = False
            lost = list(self.positions)
            group.owned = []
            yield self.assign([])
            if lost:
                yield from self._notify("on_partitions_lost", lost)
        if not member.rejoin_needed:
            return
        if not group.cooperative and self.positions:
            yield from self._revoke(list(self.positions))
            group.owned = []
        assigned = yield group.rebalance()
        self._schedule_metadata_check(now)
        owned = set(self.positions)
        keep = set(assigned)
        revoked = [tp for tp in self.positions if tp not in keep]
        added = [tp for tp in assigned if tp not in owned]
        if revoked:
            yield from self._revoke(revoked)
            member.rejoin_needed = True  # the freed partitions go out in a follow-up rebalance (KIP-429)
        committed = (yield group.committed(added)) if added else {}
        start = {tp: om.offset for tp, om in committed.items() if om is not None}
        yield self.assign(assigned, start)
        self._next_auto_commit = now + self.config.auto_commit_interval_ms / 1000
        yield from self._notify("on_partitions_assigned", added if group.cooperative else list(assigned))

    def _schedule_metadata_check(self, now: float) -> None:
        """Next pattern/partition-count check: ``metadata_max_age_ms``, or soon while a topic is missing."""
        assert self.group is not None
        interval_ms = self.config.metadata_max_age_ms
        if self.group.waiting_for_topics:
            interval_ms = min(interval_ms, MISSING_TOPIC_RECHECK_MS)
        self._next_metadata_check = now + interval_ms / 1000

    def _revoke(self, revoked: list[TopicPartition]) -> GroupSteps:
        """Commit what was consumed (auto-commit), tell the listener, then stop reading ``revoked``."""
        group = self.group
        assert group is not None
        gone = set(revoked)
        if self.config.enable_auto_commit:
            offsets = {tp: om for tp, om in self.commit_offsets(None).items() if tp in gone}
            if offsets:
                yield quietly(group.commit(offsets), "commit before revocation")
        yield from self._notify("on_partitions_revoked", revoked)
        yield self.assign([tp for tp in self.positions if tp not in gone])

    def _notify(self, callback: str, partitions: list[TopicPartition]) -> GroupSteps:
        result = getattr(self.listener, callback)(sorted(partitions))
        if inspect.isawaitable(result):
            yield result

    def close_group(self) -> GroupSteps:
        """On close: commit positions (auto-commit), then leave so the others rebalance at once."""
        group = self.group
        if group is None:
            return
        if self.config.enable_auto_commit and self.positions:
            yield quietly(group.commit(self.commit_offsets(None)), "commit on close")
        if self.subscribed:
            yield group.leave()

    def take(self, limit: int) -> list[ConsumerRecord]:
        """Up to ``limit`` records across partitions, advancing their positions."""
        self.absorb()
        out: list[ConsumerRecord] = []
        check = self.config.check_crcs
        for tp, pending in list(self._pending.items()):
            if tp in self.paused:
                continue
            pending.decode(limit - len(out), (tp.topic, tp.partition), check)
            chunk = pending.records[pending.index : pending.index + limit - len(out)]
            if chunk:
                pending.index += len(chunk)
                out.extend(chunk)
                self.positions[tp] = chunk[-1].offset + 1
            if pending.exhausted():
                del self._pending[tp]
                self._schedule(self.fetcher.consumed, tp, pending.epoch, pending.nbytes)
            if len(out) >= limit:
                break
        return out

    def absorb(self) -> None:
        """Decode every completed fetch into per-partition pending records."""
        completed = self.fetcher.completed
        while completed:
            self._absorb_one(completed.popleft())

    def _absorb_one(self, fetch: CompletedFetch) -> None:
        tp = fetch.tp
        if self._epochs.get(tp) != fetch.epoch:
            return
        if fetch.error is not None:
            raise fetch.error
        if fetch.reset_offset is not None:
            if self.positions.get(tp) is None or tp not in self._pending:
                self.positions[tp] = fetch.reset_offset
            return
        pending = self._pending.get(tp)
        if pending is None:
            pending = self._pending[tp] = _Pending(fetch.epoch)
        start = pending.next_offset if pending.next_offset is not None else (self.positions.get(tp) or 0)
        for pos, header in iter_batches(fetch.data):
            if header.next_offset <= start or header.is_control:
                continue
            pending.batches.append((fetch.data, pos, start))
            pending.next_offset = max(pending.next_offset or 0, header.next_offset)
        pending.nbytes += len(fetch.data)
        if self.positions.get(tp) is None:
            pending.decode(1, (tp.topic, tp.partition), self.config.check_crcs)
            if pending.index < len(pending.records):
                self.positions[tp] = pending.records[pending.index].offset

    async def partitions_for_topic(self, topic: str) -> set[int]:
        cluster = await self.metadata.refresh([topic])
        count = cluster.partition_counts.get(topic)
        if count is None:
            raise cluster.topic_errors.get(topic) or KafkaTimeoutError(f"no metadata for topic {topic}")
        return set(range(count))

    async def topics(self) -> set[str]:
        return set((await self.metadata.refresh()).partition_counts)

    async def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, Optional[int]]:
        """Earliest offset whose timestamp is >= the given one, per partition (None if there is none)."""
        out: dict[TopicPartition, Optional[int]] = {}
        for tp, ts in timestamps.items():
            offset = (await self.fetcher.list_offsets([tp], ts))[tp]
            out[tp] = offset if offset >= 0 else None
        return out


def next_step(steps: GroupSteps, result: Any, error: BaseException | None) -> Optional[Awaitable[Any]]:
    """Hand the last step's result (or error) back to a group operation; its next step, or None when done."""
    try:
        return steps.throw(error) if error is not None else steps.send(result)
    except StopIteration:
        return None


async def quietly(step: Awaitable[Any], what: str) -> None:
    """Run a best-effort step (a commit on the way out of a generation); failures are logged."""
    try:
        await step
    except CaudalError as exc:
        log.warning("event=group_step_failed step=%r error=%s", what, exc)


class Consumer:
    """Kafka-style blocking consumer; not thread-safe (one thread polls), like Kafka's."""

    def __init__(self, *topics: str, **options: Any) -> None:
        self.config: ConsumerConfig = build_config(ConsumerConfig, options)
        self._io = IOThread(f"caudal-consumer-io-{id(self):x}")
        self._data_ready = threading.Event()
        self._core = ConsumerCore(self.config, self._data_ready.set, self._io.call_soon)
        self._fetch_task = self._io.run(self._start(self._core.fetcher.run()))
        self._heartbeat_task: asyncio.Task[None] | None = None
        if topics:
            self.subscribe(list(topics))

    @staticmethod
    async def _start(coro: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
        return asyncio.ensure_future(coro)

    def _run(self, coro: Awaitable[Any]) -> Any:
        return self._io.run(coro, self.config.request_timeout_ms / 1000 + 5)  # type: ignore[arg-type]

    def _drive(self, steps: GroupSteps) -> None:
        """Run a group operation's I/O steps on the I/O thread, one after another."""
        timeout = self.config.max_poll_interval_ms / 1000 + self.config.request_timeout_ms / 1000
        step = next_step(steps, None, None)
        while step is not None:
            try:
                result, error = self._io.run(_awaited(step), timeout), None
            except Exception as exc:
                result, error = None, exc
            step = next_step(steps, result, error)

    # ---- assignment ------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] | None = None, pattern: str | None = None, listener: Any = None) -> None:
        """Join ``group_id`` for ``topics`` (or a regex ``pattern``); partitions come on the next ``poll``."""
        self._core.subscribe(topics, pattern, listener)
        if self._heartbeat_task is None:
            assert self._core.group is not None
            self._heartbeat_task = self._io.run(self._start(self._core.group.member.heartbeat_loop()))

    def subscription(self) -> set[str]:
        return set(self._core.group.topics) if self._core.group is not None and self._core.subscribed else set()

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (no group); positions start per ``auto_offset_reset``."""
        self._run(self._core.assign(partitions))

    def assignment(self) -> set[TopicPartition]:
        return set(self._core.positions)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._run(self._core.partitions_for_topic(topic))

    def topics(self) -> set[str]:
        return self._run(self._core.topics())

    # ---- positions -------------------------------------------------------------

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make the next ``poll`` for ``partition`` start at ``offset``."""
        self._run(self._core.seek(partition, offset))

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp, offset in self.beginning_offsets(self._core.targets(partitions)).items():
            self.seek(tp, offset)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        for tp, offset in self.end_offsets(self._core.targets(partitions)).items():
            self.seek(tp, offset)

    def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, Optional[int]]:
        return self._run(self._core.offsets_for_times(timestamps))

    def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return self._run(self._core.fetcher.list_offsets(list(partitions), EARLIEST))

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return self._run(self._core.fetcher.list_offsets(list(partitions), LATEST))

    def position(self, partition: TopicPartition) -> int:
        """The offset of the next record ``poll`` returns for ``partition`` (resolving a reset if needed)."""
        tp = self._core.assigned(partition)
        deadline = time.monotonic() + self.config.request_timeout_ms / 1000 + 5
        while self._core.positions[tp] is None:
            self._wait_for_data(0.05)
            self._core.absorb()
            if time.monotonic() > deadline:
                raise KafkaTimeoutError(f"position of {tp.topic}-{tp.partition} not resolved in time")
        return self._core.positions[tp]  # type: ignore[return-value]

    def pause(self, *partitions: TopicPartition) -> None:
        self._run(self._core.set_paused(partitions, True))

    def resume(self, *partitions: TopicPartition) -> None:
        self._run(self._core.set_paused(partitions, False))

    def paused(self) -> set[TopicPartition]:
        return set(self._core.paused)

    # ---- polling ---------------------------------------------------------------

    def poll(self, timeout_ms: int = 0, max_records: Optional[int] = None) -> list[ConsumerRecord]:
        """Records after each partition's position, waiting up to ``timeout_ms`` for the first."""
        self._core.check_open()
        limit = max_records or self.config.max_poll_records
        now = time.monotonic()
        deadline = now + timeout_ms / 1000
        self._drive(self._core.maintain_group(now))
        self._auto_commit(now)
        while True:
            records = self._core.take(limit)
            if records:
                return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._wait_for_data(remaining)

    def _wait_for_data(self, wait_s: float) -> None:
        if not self._core.fetcher.completed:
            self._data_ready.wait(wait_s)
        self._data_ready.clear()

    def _auto_commit(self, now: float) -> None:
        offsets = self._core.auto_commit_due(now)
        if offsets:
            assert self._core.group is not None
            self._io.submit(quietly(self._core.group.commit(offsets), "auto-commit"))

    # ---- offsets ----------------------------------------------------------------

    def commit(self, offsets: Offsets | None = None, asynchronous: bool = False) -> None:
        """Commit ``offsets`` (default: every assigned partition's position) for the group."""
        group = self._core.require_group("commit()")
        commit = group.commit(self._core.commit_offsets(offsets))
        if asynchronous:
            self._io.submit(quietly(commit, "commit"))
        else:
            self._run(commit)

    def commit_async(self, offsets: Offsets | None = None, callback: Callable[[dict, Optional[Exception]], None] | None = None) -> None:
        """Commit without waiting; ``callback(offsets, error)`` runs on the I/O thread when done."""
        group = self._core.require_group("commit_async()")
        chosen = self._core.commit_offsets(offsets)
        future = self._io.submit(group.commit(chosen))
        if callback is not None:
            future.add_done_callback(lambda f: callback(chosen, f.exception()))

    def committed(self, partition: TopicPartition, metadata: bool = False) -> Union[int, OffsetAndMetadata, None]:
        """The group's committed offset for ``partition`` (None when nothing is committed)."""
        group = self._core.require_group("committed()")
        found = self._run(group.committed([TopicPartition(*partition)])).get(TopicPartition(*partition))
        if found is None or metadata:
            return found
        return found.offset

    def close(self, autocommit: bool = True) -> None:
        """Commit (with auto-commit), leave the group and release connections."""
        if self._core.closed:
            return
        self._core.closed = True
        try:
            if autocommit:
                self._drive(self._core.close_group())
            elif self._core.group is not None and self._core.subscribed:
                self._run(self._core.group.leave())
        except (CaudalError, TimeoutError) as e:
            log.debug("event=consumer_close_error error=%s", e)
        try:
            self._io.run(self._shutdown(), timeout=10)
        except (CaudalError, TimeoutError) as e:
            log.debug("event=consumer_close_error error=%s", e)
        self._io.stop()

    async def _shutdown(self) -> None:
        self._fetch_task.cancel()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        await self._core.conns.close()

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> "Consumer":
        return self

    def __next__(self) -> ConsumerRecord:
        while True:
            records = self.poll(timeout_ms=1000, max_records=1)
            if records:
                return records[0]


async def _awaited(step: Awaitable[Any]) -> Any:
    return await step
