"""The asyncio SDK: AIOProducer, AIOConsumer, AIOAdminClient.

Same option names and semantics as the blocking clients, and the same code:
the producer and consumer cores, the sender and the fetcher, here running on
the caller's own event loop instead of a private I/O thread. Create them
inside a running loop; ``start()`` (or ``async with``) begins the background
tasks and ``stop()`` ends them.

    async with AIOProducer(bootstrap_servers="localhost:9092") as producer:
        md = await producer.send_and_wait("events", b"v", key=b"k")
    async with AIOConsumer(bootstrap_servers="localhost:9092", auto_offset_reset="earliest") as consumer:
        consumer.assign([TopicPartition("events", 0)])
        async for record in consumer:
            ...
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, AsyncIterator, Iterable, Optional

from caudal.client.accumulator import DeliveryCallback, FutureRecordMetadata
from caudal.client.admin import AIOAdminClient
from caudal.client.config import ConsumerConfig, ProducerConfig, build_config
from caudal.client.consumer import ConsumerCore, GroupSteps, Offsets, next_step, quietly
from caudal.client.fetcher import EARLIEST, LATEST
from caudal.client.producer import Header, ProducerCore
from caudal.client.structs import (
    ConsumerRecord,
    OffsetAndMetadata,
    RecordMetadata,
    TopicPartition,
)
from caudal.common.errors import CaudalError, InvalidRequestError, KafkaTimeoutError

log = logging.getLogger(__name__)

__all__ = ["AIOAdminClient", "AIOConsumer", "AIOProducer"]


class AIOProducer:
    """asyncio producer; idempotent and ``acks="all"`` by default, like :class:`Producer`."""

    def __init__(self, **options: Any) -> None:
        self.config: ProducerConfig = build_config(ProducerConfig, options)
        self._core = ProducerCore(self.config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._core.sender.run())

    async def send(
        self,
        topic: str,
        value: Optional[bytes] = None,
        key: Optional[bytes] = None,
        headers: Optional[Iterable[Header]] = None,
        partition: Optional[int] = None,
        timestamp_ms: Optional[int] = None,
        on_delivery: Optional[DeliveryCallback] = None,
    ) -> "asyncio.Future[RecordMetadata]":
        """Queue a record; the returned future resolves when the broker acknowledges it."""
        if self._task is None:
            raise InvalidRequestError("call start() (or use `async with`) before send()")
        core = self._core
        count = core.cached_partition_count(topic, partition) or await core.partition_count(topic, partition)
        future, ready_at = core.enqueue(topic, value, key, headers, partition, timestamp_ms, on_delivery, count)
        if ready_at is not None:
            core.sender.wakeup()
        return _awaitable(future)

    async def send_and_wait(self, topic: str, value: Optional[bytes] = None, **kwargs: Any) -> RecordMetadata:
        return await (await self.send(topic, value, **kwargs))

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self._core.cached_partition_count(topic) or await self._core.partition_count(topic)))

    async def flush(self, timeout: Optional[float] = None) -> None:
        """Send everything queued now and wait until each is acknowledged or failed."""
        acc = self._core.acc
        acc.flushing += 1
        try:
            self._core.sender.wakeup()
            waits = [_batch_done(batch.result) for batch in acc.incomplete()]
            if waits:
                try:
                    await asyncio.wait_for(asyncio.gather(*waits), timeout)
                except asyncio.TimeoutError:
                    raise KafkaTimeoutError(f"flush did not complete within {timeout} s") from None
        finally:
            acc.flushing -= 1

    async def stop(self, timeout: Optional[float] = None) -> None:
        """Flush, then stop the sender; records still unsent at the timeout fail."""
        if self._core.closed:
            return
        self._core.closed = True
        if self._task is not None:
            try:
                await self.flush(timeout)
            except KafkaTimeoutError:
                pass
            self._task.cancel()
        self._core.abort_unsent()
        await self._core.conns.close()

    close = stop

    async def __aenter__(self) -> "AIOProducer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _awaitable(future: FutureRecordMetadata) -> "asyncio.Future[RecordMetadata]":
    """An asyncio future settled by the record's delivery (on this loop)."""
    loop = asyncio.get_running_loop()
    out: asyncio.Future[RecordMetadata] = loop.create_future()

    def settle(err: Optional[Exception], metadata: Optional[RecordMetadata]) -> None:
        loop.call_soon_threadsafe(_set, out, err, metadata)

    future.add_callback(settle)
    return out


def _set(fut: "asyncio.Future[Any]", err: Optional[Exception], value: Any) -> None:
    if not fut.done():
        if err is not None:
            fut.set_exception(err)
        else:
            fut.set_result(value)


def _batch_done(result: Any) -> "asyncio.Future[None]":
    loop = asyncio.get_running_loop()
    out: asyncio.Future[None] = loop.create_future()
    result.on_complete(lambda: loop.call_soon_threadsafe(_set, out, None, None))
    return out


class AIOConsumer:
    """asyncio consumer (``getmany``, ``getone``, ``async for``); group member after ``subscribe``."""

    def __init__(self, **options: Any) -> None:
        self.config: ConsumerConfig = build_config(ConsumerConfig, options)
        self._data = asyncio.Event()
        self._core = ConsumerCore(self.config, self._data.set, _call_now)
        self._task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._commits: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._core.fetcher.run())

    def subscribe(self, topics: Iterable[str] | None = None, pattern: str | None = None, listener: Any = None) -> None:
        """Join ``group_id`` for ``topics`` (or a regex ``pattern``); the listener's methods may be async."""
        self._core.subscribe(topics, pattern, listener)
        if self._heartbeat_task is None:
            assert self._core.group is not None
            self._heartbeat_task = asyncio.ensure_future(self._core.group.member.heartbeat_loop())

    def subscription(self) -> set[str]:
        return set(self._core.group.topics) if self._core.group is not None and self._core.subscribed else set()

    @staticmethod
    async def _drive(steps: GroupSteps) -> None:
        """Await a group operation's I/O steps in order (see ``ConsumerCore.maintain_group``)."""
        step = next_step(steps, None, None)
        while step is not None:
            try:
                result, error = await step, None
            except Exception as exc:
                result, error = None, exc
            step = next_step(steps, result, error)

    async def assign(self, partitions: Iterable[TopicPartition]) -> None:
        await self._core.assign(partitions)

    def assignment(self) -> set[TopicPartition]:
        return set(self._core.positions)

    async def partitions_for_topic(self, topic: str) -> set[int]:
        return await self._core.partitions_for_topic(topic)

    async def seek(self, partition: TopicPartition, offset: int) -> None:
        await self._core.seek(partition, offset)

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp, offset in (await self.beginning_offsets(self._core.targets(partitions))).items():
            await self.seek(tp, offset)

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        for tp, offset in (await self.end_offsets(self._core.targets(partitions))).items():
            await self.seek(tp, offset)

    async def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._core.fetcher.list_offsets(list(partitions), EARLIEST)

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return await self._core.fetcher.list_offsets(list(partitions), LATEST)

    async def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, Optional[int]]:
        return await self._core.offsets_for_times(timestamps)

    async def position(self, partition: TopicPartition) -> int:
        tp = self._core.assigned(partition)
        deadline = asyncio.get_running_loop().time() + self.config.request_timeout_ms / 1000 + 5
        while self._core.positions[tp] is None:
            await self._wait_for_data(deadline)
            self._core.absorb()
        return self._core.positions[tp]  # type: ignore[return-value]

    async def pause(self, *partitions: TopicPartition) -> None:
        await self._core.set_paused(partitions, True)

    async def resume(self, *partitions: TopicPartition) -> None:
        await self._core.set_paused(partitions, False)

    async def poll(self, timeout_ms: int = 0, max_records: Optional[int] = None) -> list[ConsumerRecord]:
        """Records after each partition's position, waiting up to ``timeout_ms`` for the first."""
        self._core.check_open()
        if self._task is None:
            raise InvalidRequestError("call start() (or use `async with`) before polling")
        limit = max_records or self.config.max_poll_records
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
        now = time.monotonic()
        await self._drive(self._core.maintain_group(now))
        offsets = self._core.auto_commit_due(now)
        if offsets:
            assert self._core.group is not None
            commit = asyncio.ensure_future(quietly(self._core.group.commit(offsets), "auto-commit"))
            self._commits.add(commit)  # the loop keeps only a weak reference to a task
            commit.add_done_callback(self._commits.discard)
        while True:
            records = self._core.take(limit)
            if records or asyncio.get_running_loop().time() >= deadline:
                return records
            await self._wait_for_data(deadline, raise_on_timeout=False)

    async def getmany(self, timeout_ms: int = 0, max_records: Optional[int] = None) -> dict[TopicPartition, list[ConsumerRecord]]:
        """aiokafka's shape: records grouped by partition."""
        out: dict[TopicPartition, list[ConsumerRecord]] = {}
        for r in await self.poll(timeout_ms, max_records):
            out.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
        return out

    async def getone(self) -> ConsumerRecord:
        while True:
            records = await self.poll(timeout_ms=1000, max_records=1)
            if records:
                return records[0]

    def __aiter__(self) -> AsyncIterator[ConsumerRecord]:
        return self

    async def __anext__(self) -> ConsumerRecord:
        return await self.getone()

    async def _wait_for_data(self, deadline: float, raise_on_timeout: bool = True) -> None:
        remaining = deadline - asyncio.get_running_loop().time()
        if not self._core.fetcher.completed:
            try:
                await asyncio.wait_for(self._data.wait(), max(0.0, remaining))
            except asyncio.TimeoutError:
                if raise_on_timeout:
                    raise KafkaTimeoutError("no data within the request timeout") from None
        self._data.clear()

    async def commit(self, offsets: Offsets | None = None) -> None:
        """Commit ``offsets`` (default: every assigned partition's position) for the group."""
        group = self._core.require_group("commit()")
        await group.commit(self._core.commit_offsets(offsets))

    async def committed(self, partition: TopicPartition, metadata: bool = False) -> int | OffsetAndMetadata | None:
        """The group's committed offset for ``partition`` (None when nothing is committed)."""
        group = self._core.require_group("committed()")
        found = (await group.committed([TopicPartition(*partition)])).get(TopicPartition(*partition))
        return found if found is None or metadata else found.offset

    async def stop(self) -> None:
        """Commit (with auto-commit), leave the group, stop fetching."""
        if self._core.closed:
            return
        self._core.closed = True
        try:
            await self._drive(self._core.close_group())
        except CaudalError as exc:
            log.debug("event=consumer_close_error error=%s", exc)
        for task in (self._task, self._heartbeat_task):
            if task is not None:
                task.cancel()
        await self._core.conns.close()

    close = stop

    async def __aenter__(self) -> "AIOConsumer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _call_now(fn: Any, *args: Any) -> None:
    """The asyncio consumer's fetcher shares its loop: calls need no hand-off."""
    fn(*args)
