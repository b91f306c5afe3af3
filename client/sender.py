"""The producer's network half: drains ready batches and sends Produce requests.

Runs as one task on the client's I/O loop. Batches are grouped by partition
leader into one request per broker; at most
``max_in_flight_requests_per_connection`` requests are outstanding per broker
and only one batch per partition is in flight, so a retried batch cannot be
overtaken by a later one. Retriable errors (leader moved, broker down, timeout)
refresh metadata and retry with ``retry_backoff_ms`` until the batch's
``delivery_timeout_ms`` expires; anything else fails the batch's futures.
"""

from __future__ import annotations

import asyncio
import logging
import time

from caudal.client.accumulator import ProducerBatch, RecordAccumulator
from caudal.client.cluster import MetadataManager
from caudal.client.config import ProducerConfig
from caudal.client.structs import TopicPartition
from caudal.common.errors import CaudalError, KafkaTimeoutError, error_for
from caudal.v1 import broker_pb2 as pb

log = logging.getLogger(__name__)


class Sender:
    """Owns in-flight requests; ``wakeup`` (loop thread only) makes it look for ready batches."""

    def __init__(self, config: ProducerConfig, accumulator: RecordAccumulator, metadata: MetadataManager) -> None:
        self.config = config
        self.acc = accumulator
        self.metadata = metadata
        self.acks = config.acks_value
        self.timeout_s = config.request_timeout_ms / 1000
        self._wake = asyncio.Event()
        self._in_flight_tps: set[TopicPartition] = set()
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def wakeup(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            batches, delay = self.acc.drain(time.monotonic(), self._in_flight_tps)
            if batches:
                await self._dispatch(batches)
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _dispatch(self, batches: list[ProducerBatch]) -> None:
        by_leader: dict[str, list[ProducerBatch]] = {}
        unrouted = []
        cluster = self.metadata.cluster
        for batch in batches:
            address = cluster.leader_address(batch.tp)
            if address is None:
                unrouted.append(batch)
            else:
                by_leader.setdefault(address, []).append(batch)
        for batch in unrouted:
            self._in_flight_tps.add(batch.tp)
            self._spawn(self._retry_later(batch, None))
        for address, group in by_leader.items():
            for batch in group:
                self._in_flight_tps.add(batch.tp)
            slot = self._slots.setdefault(address, asyncio.Semaphore(self.config.max_in_flight_requests_per_connection))
            await slot.acquire()
            self._spawn(self._send(address, group, slot))

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("event=sender_task_failed", exc_info=t.exception())
            self.wakeup()

        task.add_done_callback(done)

    def _request(self, batches: list[ProducerBatch]) -> pb.ProduceRequest:
        request = pb.ProduceRequest(acks=self.acks, timeout_ms=self.config.request_timeout_ms)
        by_topic: dict[str, pb.TopicProduceData] = {}
        for batch in batches:
            t = by_topic.get(batch.tp.topic)
            if t is None:
                t = by_topic[batch.tp.topic] = request.topics.add(topic=batch.tp.topic)
            t.partitions.add(partition=batch.tp.partition, records=batch.payload())
        return request

    async def _send(self, address: str, batches: list[ProducerBatch], slot: asyncio.Semaphore) -> None:
        try:
            for batch in batches:
                batch.attempts += 1
            request = self._request(batches)
            if self.acks == 0:
                self._spawn(self._fire_and_forget(address, request))
                for batch in batches:
                    self._finish(batch, -1, -1, None)
                return
            try:
                response = await self.metadata.conns.call(address, "Produce", request, self.timeout_s)
            except CaudalError as e:
                for batch in batches:
                    await self._retry_or_fail(batch, e)
                return
            results = {(t.topic, p.partition): p for t in response.topics for p in t.partitions}
            for batch in batches:
                r = results.get((batch.tp.topic, batch.tp.partition))
                if r is None:
                    await self._retry_or_fail(batch, error_for(-1, "partition missing from the Produce response"))
                elif r.error_code:
                    await self._retry_or_fail(batch, error_for(r.error_code, r.error_message))
                else:
                    self._finish(batch, r.base_offset, r.log_append_time, None)
        finally:
            slot.release()

    async def _fire_and_forget(self, address: str, request: pb.ProduceRequest) -> None:
        try:
            await self.metadata.conns.call(address, "Produce", request, self.timeout_s)
        except CaudalError as e:
            log.debug("event=acks0_send_failed address=%s error=%s", address, e)

    async def _retry_or_fail(self, batch: ProducerBatch, error: CaudalError) -> None:
        if not error.retriable or batch.attempts > self.config.retries:
            self._finish(batch, -1, -1, error)
            return
        await self._retry_later(batch, error)

    async def _retry_later(self, batch: ProducerBatch, error: CaudalError | None) -> None:
        """Back off, refresh metadata, then put the batch back at the head of its partition."""
        if time.monotonic() >= batch.deadline:
            self._finish(
                batch, -1, -1,
                KafkaTimeoutError(
                    f"Expiring batch for {batch.tp.topic}-{batch.tp.partition}: delivery_timeout_ms="
                    f"{self.config.delivery_timeout_ms} elapsed (last error: {error})"
                ),
            )
            return
        await asyncio.sleep(self.config.retry_backoff_ms / 1000)
        try:
            await self.metadata.refresh([batch.tp.topic])
        except CaudalError as e:
            log.debug("event=metadata_refresh_failed error=%s", e)
        if batch.attempts == 0:
            batch.attempts = 1
        self._in_flight_tps.discard(batch.tp)
        self.acc.reenqueue(batch)

    def _finish(self, batch: ProducerBatch, base_offset: int, log_append_time: int, error: Exception | None) -> None:
        self._in_flight_tps.discard(batch.tp)
        self.acc.complete(batch, base_offset, log_append_time, error)
