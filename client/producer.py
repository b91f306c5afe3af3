"""Producers: ``send`` returns a future of RecordMetadata.

Both producers share :class:`ProducerCore`: it picks the partition (murmur2 of
the key, sticky for null keys, or a custom partitioner) and encodes the record
into the partition's open batch; the :class:`Sender` task does all network
work. :class:`Producer` is for blocking code: ``send`` runs in the caller's
thread and the sender on a private I/O thread. :class:`AIOProducer` (in
``caudal.client.aio``) runs the sender on the caller's own loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Iterable, Optional

from caudal.client._transport import Connections, parse_bootstrap
from caudal.client.accumulator import DeliveryCallback, FutureRecordMetadata, RecordAccumulator
from caudal.client.cluster import MetadataManager
from caudal.client.config import ProducerConfig, build_config
from caudal.client.io_thread import IOThread
from caudal.client.sender import Sender
from caudal.client.structs import TopicPartition
from caudal.common.errors import CaudalError, InvalidRequestError, KafkaTimeoutError, UnknownTopicOrPartitionError
from caudal.common.partitioner import StickyPartitioner, partition_for_key

log = logging.getLogger(__name__)

Header = tuple[str, Optional[bytes]]

WAKE_SLACK_S = 0.001
"""A batch may wait this much past its ready time for the sender's own next look."""


class ProducerCore:
    """Routing and batching shared by the blocking and the asyncio producer."""

    def __init__(self, config: ProducerConfig) -> None:
        self.config = config
        self.conns = Connections()
        self.metadata = MetadataManager(self.conns, parse_bootstrap(config.bootstrap_servers), config.request_timeout_ms / 1000)
        self.acc = RecordAccumulator(config.batch_size, config.linger_ms, config.compression, config.buffer_memory, config.delivery_timeout_ms)
        self.sender = Sender(config, self.acc, self.metadata)
        self.closed = False
        self._sticky = StickyPartitioner()
        self._tps: dict[str, list[TopicPartition]] = {}
        self._max_block_s = config.max_block_ms / 1000

    def cached_partition_count(self, topic: str, partition: Optional[int] = None) -> int | None:
        """The cached partition count, or None when it is unknown or too small for ``partition``."""
        count = self.metadata.cluster.partition_counts.get(topic)
        if count is None or (partition is not None and partition >= count):
            return None
        return count

    async def partition_count(self, topic: str, partition: Optional[int] = None) -> int:
        """The topic's partition count, refreshing metadata for up to ``max_block_ms`` until the topic
        exists and, for an explicit ``partition``, has it (a topic that just grew, as in Kafka)."""
        deadline = time.monotonic() + self._max_block_s
        backoff = self.config.retry_backoff_ms / 1000
        last: Exception | None = None
        while True:
            try:
                cluster = await self.metadata.refresh([topic])
            except CaudalError as e:
                last = e
            else:
                count = cluster.partition_counts.get(topic)
                if count is not None and (partition is None or partition < count):
                    return count
                last = cluster.topic_errors.get(topic, last)
                if count is not None:
                    last = UnknownTopicOrPartitionError(f"Partition {partition} of topic {topic} with partition count {count}")
            if time.monotonic() + backoff >= deadline:
                raise KafkaTimeoutError(f"Topic {topic} not present in metadata after {self.config.max_block_ms} ms ({last})")
            await asyncio.sleep(backoff)

    def enqueue(
        self,
        topic: str,
        value: Optional[bytes],
        key: Optional[bytes],
        headers: Optional[Iterable[Header]],
        partition: Optional[int],
        timestamp_ms: Optional[int],
        on_delivery: Optional[DeliveryCallback],
        count: int,
    ) -> tuple[FutureRecordMetadata, float | None]:
        """Encode a record into its partition's batch; returns its future and, when it opened
        or filled a batch, the time that batch becomes sendable (the caller wakes the sender)."""
        if self.closed:
            raise InvalidRequestError("Cannot send after the producer is closed.")
        if type(value) is not bytes and value is not None and not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"value must be bytes or None, got {type(value).__name__}")
        if type(key) is not bytes and key is not None and not isinstance(key, (bytes, bytearray)):
            raise TypeError(f"key must be bytes or None, got {type(key).__name__}")
        tps = self._tps.get(topic)
        if tps is None or len(tps) != count:
            tps = self._tps[topic] = [TopicPartition(topic, p) for p in range(count)]
        if partition is None:
            partition = self._choose_partition(topic, key, count, tps)
        elif not 0 <= partition < count:
            raise UnknownTopicOrPartitionError(f"Partition {partition} of topic {topic} with partition count {count} is not present in metadata.")
        timestamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        future, ready_at = self.acc.append(tps[partition], timestamp, key, value, headers or (), self._max_block_s)
        if on_delivery is not None:
            future.add_callback(on_delivery)
        return future, ready_at

    def _choose_partition(self, topic: str, key: Optional[bytes], count: int, tps: list[TopicPartition]) -> int:
        if self.config.partitioner is not None:
            all_partitions = list(range(count))
            return self.config.partitioner(key, all_partitions, all_partitions)
        if key is not None:
            return partition_for_key(key, count)
        partition = self._sticky.partition(topic, count)
        if not self.acc.has_room(tps[partition]):
            # As Kafka's producer does: a record that would open a new batch moves the sticky
            # partition first, and the new batch fills up before the next move. (Moving after
            # opening it left one record per batch across every partition of the topic.)
            partition = self._sticky.on_new_batch(topic, count, partition)
        return partition

    def abort_unsent(self) -> None:
        self.acc.abort_all(KafkaTimeoutError("producer closed before the record was sent"))


class Producer:
    """Thread-safe Kafka-style producer. Options are Kafka's names in snake_case."""

    def __init__(self, **options: Any) -> None:
        self.config: ProducerConfig = build_config(ProducerConfig, options)
        self._io = IOThread(f"caudal-producer-io-{id(self):x}")
        self._core = ProducerCore(self.config)
        self._sender = self._core.sender
        self._sender_task = self._io.run(self._start_sender())

    async def _start_sender(self) -> "asyncio.Task[None]":
        return asyncio.ensure_future(self._sender.run())

    def send(
        self,
        topic: str,
        value: Optional[bytes] = None,
        key: Optional[bytes] = None,
        headers: Optional[Iterable[Header]] = None,
        partition: Optional[int] = None,
        timestamp_ms: Optional[int] = None,
        on_delivery: Optional[DeliveryCallback] = None,
    ) -> FutureRecordMetadata:
        """Queue a record; the future resolves when the broker acknowledges it (per ``acks``)."""
        core = self._core
        count = core.cached_partition_count(topic, partition) or self._io.run(core.partition_count(topic, partition))
        future, ready_at = core.enqueue(topic, value, key, headers, partition, timestamp_ms, on_delivery, count)
        if ready_at is not None:
            sender = self._sender
            if sender.wake_at > ready_at + WAKE_SLACK_S:
                sender.wake_at = 0.0
                self._io.call_soon(sender.wakeup)
        return future

    def partitions_for(self, topic: str) -> set[int]:
        core = self._core
        return set(range(core.cached_partition_count(topic) or self._io.run(core.partition_count(topic))))

    def flush(self, timeout: Optional[float] = None) -> None:
        """Send everything queued now and wait until each is acknowledged or failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        acc = self._core.acc
        acc.flushing += 1
        try:
            self._io.call_soon(self._sender.wakeup)
            for batch in acc.incomplete():
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not batch.result.event.wait(remaining):
                    raise KafkaTimeoutError(f"flush did not complete within {timeout} s")
        finally:
            acc.flushing -= 1

    def close(self, timeout: Optional[float] = None) -> None:
        """Flush, then stop the I/O thread; records still unsent at the timeout fail."""
        if self._core.closed:
            return
        self._core.closed = True
        try:
            self.flush(timeout)
        except KafkaTimeoutError:
            log.warning("event=producer_close_timeout unsent_batches=%d", len(self._core.acc.incomplete()))
        self._core.abort_unsent()
        self._io.run(self._shutdown(), timeout=10)
        self._io.stop()

    async def _shutdown(self) -> None:
        self._sender_task.cancel()
        await self._core.conns.close()

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
