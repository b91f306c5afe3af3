"""Hosts this broker's partitions and serves Produce, Fetch and ListOffsets on them.

The replica manager follows the metadata image: when a batch of metadata
records is applied it opens logs for partitions newly assigned here, updates
leadership and configs, and deletes the data of partitions whose topic is gone.
Request handling is per partition and never decodes records: a produce payload
is validated (framing + CRC-32C) and appended as bytes; a fetch returns stored
batch bytes. A fetch that finds no data parks until a high watermark it waits
on moves or ``max_wait_ms`` passes. Owned by the broker's asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from caudal.broker.log import PartitionLog
from caudal.broker.partition import AppendOutcome, Partition, park
from caudal.broker.storage import Store
from caudal.broker.metrics import BYTES_IN, BYTES_OUT, MESSAGES_IN, REQUEST_ERRORS
from caudal.common.errors import (
    CaudalError,
    ErrorCode,
    CorruptRecordError,
    InvalidRequiredAcksError,
    MessageTooLargeError,
    NotLeaderOrFollowerError,
    UnknownServerError,
    UnknownTopicOrPartitionError,
)
from caudal.common.metadata import MetadataImage
from caudal.common.record_batch import validate_batches
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import metadata_pb2 as md

log = logging.getLogger(__name__)

DEFAULT_PARTITION_MAX_BYTES = 1_048_576
DEFAULT_PRODUCE_TIMEOUT_MS = 30_000
DEFAULT_FETCH_MAX_BYTES = 52_428_800
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2


def error_fields(exc: BaseException, api: str) -> tuple[int, str]:
    """Kafka error code + message for an exception; unexpected ones are logged, never raised."""
    if isinstance(exc, CaudalError):
        REQUEST_ERRORS.labels(api, exc.code.name).inc()
        return int(exc.code), exc.message
    log.exception("event=unexpected_error api=%s", api, exc_info=exc)
    REQUEST_ERRORS.labels(api, ErrorCode.UNKNOWN_SERVER_ERROR.name).inc()
    return int(UnknownServerError.code), f"{type(exc).__name__}: {exc}"


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)


def _monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


class ReplicaManager:
    """Registry of hosted partitions plus the produce/fetch/list-offsets paths."""

    def __init__(
        self, broker_id: int, store: Store, clock: Callable[[], int] = _wall_clock_ms, lag_clock: Callable[[], int] = _monotonic_ms
    ) -> None:
        self.broker_id = broker_id
        self.store = store
        self.clock = clock
        """Wall-clock ms, for what users read as dates: LogAppendTime stamps, segment age, retention."""
        self.lag_clock = lag_clock
        """Monotonic ms, for how long a follower has lagged: a wall-clock step (NTP, a resumed
        VM, a hand-set date) must not take followers out of the ISR or put them back."""
        self.image = MetadataImage()
        self.partitions: dict[tuple[str, int], Partition] = {}
        self._by_id: dict[tuple[bytes, int], Partition] = {}
        self._background: set[asyncio.Future[object]] = set()
        self.serving = False
        """False until this broker's registration is current (unfenced): a restarting broker
        must not act on leaderships from metadata it has not fully caught up with."""
        self._metadata_changed = asyncio.Event()
        self.on_leadership_change: Callable[[], None] = lambda: None
        """Called after metadata changed which partitions this broker leads or follows
        (the replica fetchers and the ISR manager re-read ``partitions``)."""

    # ---- metadata ------------------------------------------------------------

    def apply_metadata(self, batch: md.MetadataBatch) -> None:
        """Apply a committed metadata batch and reconcile hosted partitions with it."""
        touched: set[str] | None = None
        if batch.snapshot:
            image = MetadataImage()
            image.apply_batch(batch)
            self.image = image
        elif batch.version <= self.image.version:
            return
        else:
            touched = self.image.topics_touched_by(batch)
            self.image.apply_batch(batch)
        self._reconcile(touched)
        self._metadata_changed.set()
        self._metadata_changed = asyncio.Event()

    async def wait_for_metadata(self, condition: Callable[[MetadataImage], bool], timeout_s: float) -> bool:
        """Wait until this broker's metadata satisfies ``condition`` (e.g. a topic just created
        through it exists), so a client that changed something reads its own write here."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not condition(self.image):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._metadata_changed.wait(), remaining)
            except asyncio.TimeoutError:
                return False
        return True

    def _reconcile(self, topics: set[str] | None) -> None:
        """Open, drop and update hosted partitions of ``topics`` (every topic when None) as the image says."""
        if topics is not None and not topics:
            return
        wanted = {}
        for topic in self.image.topics.values() if topics is None else filter(None, map(self.image.topics.get, topics)):
            for index, state in topic.partitions.items():
                if self.broker_id in state.replicas:
                    wanted[(topic.name, index)] = (topic, state)
        for key in [k for k in self.partitions if topics is None or k[0] in topics]:
            topic_state = wanted.get(key)
            if topic_state is None or topic_state[0].topic_id != self.partitions[key].topic_id:
                self._drop(key)
        for key, (topic, state) in wanted.items():
            partition = self.partitions.get(key)
            if partition is None:
                plog = PartitionLog.open(self.store, topic.topic_id, key[1], topic.config, self.clock)
                partition = Partition(topic.name, key[1], topic.topic_id, plog, self.broker_id, self.lag_clock)
                self.partitions[key] = partition
                self._by_id[(topic.topic_id, key[1])] = partition
                log.info("event=partition_opened broker=%d topic=%s partition=%d leo=%d", self.broker_id, key[0], key[1], plog.log_end_offset)
            partition.update_config(topic.config)
            if partition.update_state(state.leader, state.leader_epoch, state.partition_epoch, state.replicas, state.isr):
                log.info(
                    "event=partition_role broker=%d topic=%s partition=%d role=%s leader=%d leader_epoch=%d",
                    self.broker_id, key[0], key[1], "leader" if partition.is_leader else "follower", state.leader, state.leader_epoch,
                )
        self.on_leadership_change()

    def _drop(self, key: tuple[str, int]) -> None:
        partition = self.partitions.pop(key)
        self._by_id.pop((partition.topic_id, partition.index), None)
        partition.resign(NotLeaderOrFollowerError(f"{key[0]}-{key[1]} is no longer hosted on broker {self.broker_id}"))
        partition.log.delete()
        log.info("event=partition_deleted broker=%d topic=%s partition=%d", self.broker_id, key[0], key[1])

    def partition_by_id(self, topic_id: bytes, index: int) -> Partition | None:
        return self._by_id.get((topic_id, index))

    def leader_partition(self, topic: str, index: int) -> Partition:
        """The partition if this broker leads it, else the Kafka error a client acts on."""
        if not self.serving:
            raise NotLeaderOrFollowerError(f"Broker {self.broker_id} is starting and not serving partitions yet")
        partition = self.partitions.get((topic, index))
        if partition is None:
            t = self.image.topics.get(topic)
            if t is None or index not in t.partitions:
                raise UnknownTopicOrPartitionError(f"This server does not host this topic-partition: {topic}-{index}")
            raise NotLeaderOrFollowerError(f"Broker {self.broker_id} is not a replica of {topic}-{index}")
        if not partition.is_leader:
            raise NotLeaderOrFollowerError(
                f"Broker {self.broker_id} is not the leader of {topic}-{index} (leader is {partition.leader})"
            )
        return partition

    # ---- produce -------------------------------------------------------------

    async def produce(self, request: pb.ProduceRequest) -> pb.ProduceResponse:
        """Append every partition's payload concurrently so they share one group commit."""
        if request.acks not in (0, 1, -1):
            err = InvalidRequiredAcksError(f"acks must be 0, 1 or -1 (all), got {request.acks}")
            return self._produce_error_response(request, int(err.code), err.message)
        slots: list[tuple[pb.PartitionProduceResponse, Awaitable[AppendOutcome]]] = []
        response = pb.ProduceResponse()
        timeout_s = (request.timeout_ms if request.timeout_ms > 0 else DEFAULT_PRODUCE_TIMEOUT_MS) / 1000
        for t in request.topics:
            tr = response.topics.add(topic=t.topic)
            for p in t.partitions:
                pr = tr.partitions.add(partition=p.partition, base_offset=-1, log_append_time=-1, log_start_offset=-1)
                try:
                    slots.append((pr, self._append(t.topic, p.partition, p.records, request.acks, timeout_s)))
                except Exception as exc:  # validation errors are raised before the append starts
                    pr.error_code, pr.error_message = error_fields(exc, "Produce")
        if request.acks == 0:
            for _, append in slots:
                self._supervise(asyncio.ensure_future(append))
            return pb.ProduceResponse()
        if len(slots) > 1:  # start every append before waiting for any
            slots = [(pr, asyncio.ensure_future(append)) for pr, append in slots]
        for pr, append in slots:
            try:
                outcome = await append
                pr.base_offset, pr.log_append_time, pr.log_start_offset = outcome.base_offset, outcome.log_append_time, outcome.log_start_offset
            except Exception as exc:
                pr.error_code, pr.error_message = error_fields(exc, "Produce")
        return response

    def _append(self, topic: str, index: int, payload: bytes, acks: int, timeout_s: float) -> Awaitable[AppendOutcome]:
        partition = self.leader_partition(topic, index)
        if not payload:
            raise CorruptRecordError("The produce request carries no record batch")
        headers = validate_batches(payload)
        limit = partition.log.config.max_message_bytes
        for h in headers:
            if h.size > limit:
                raise MessageTooLargeError(
                    f"The record batch is {h.size} bytes, larger than max.message.bytes={limit} of topic {topic}"
                )
        MESSAGES_IN.labels(topic).inc(sum(h.record_count for h in headers))
        BYTES_IN.labels(topic).inc(len(payload))
        return partition.append_as_leader(payload, headers, acks, timeout_s)

    def _supervise(self, fut: "asyncio.Future[object]") -> None:
        self._background.add(fut)

        def done(f: "asyncio.Future[object]") -> None:
            self._background.discard(f)
            if not f.cancelled() and f.exception() is not None:
                error_fields(f.exception(), "Produce")

        fut.add_done_callback(done)

    @staticmethod
    def _produce_error_response(request: pb.ProduceRequest, code: int, message: str) -> pb.ProduceResponse:
        response = pb.ProduceResponse()
        for t in request.topics:
            tr = response.topics.add(topic=t.topic)
            for p in t.partitions:
                tr.partitions.add(partition=p.partition, error_code=code, error_message=message, base_offset=-1)
        return response

    # ---- fetch ---------------------------------------------------------------

    async def fetch(self, request: pb.FetchRequest) -> pb.FetchResponse:
        """Return available data at once, or park until ``min_bytes`` arrive or ``max_wait_ms`` passes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0, request.max_wait_ms) / 1000
        min_bytes = max(1, request.min_bytes)
        while True:
            response, size, errors, watched = self._read(request)
            remaining = deadline - loop.time()
            if size >= min_bytes or errors or remaining <= 0 or not watched:
                return response
            await park([p.hw_waiters for p in watched], remaining)

    def _read(self, request: pb.FetchRequest) -> tuple[pb.FetchResponse, int, bool, list[Partition]]:
        max_bytes = request.max_bytes if request.max_bytes > 0 else DEFAULT_FETCH_MAX_BYTES
        response = pb.FetchResponse()
        size = 0
        errors = False
        watched = []
        for t in request.topics:
            tr = response.topics.add(topic=t.topic)
            for p in t.partitions:
                pr = tr.partitions.add(partition=p.partition, high_watermark=-1, last_stable_offset=-1, log_start_offset=-1)
                try:
                    partition = self.leader_partition(t.topic, p.partition)
                    hw = partition.high_watermark
                    pr.high_watermark = pr.last_stable_offset = hw
                    pr.log_start_offset = partition.log.log_start_offset
                    part_max = p.partition_max_bytes if p.partition_max_bytes > 0 else DEFAULT_PARTITION_MAX_BYTES
                    budget = min(part_max, max_bytes - size)
                    if p.fetch_offset == hw or (budget <= 0 and size > 0):
                        watched.append(partition)
                        continue
                    data = partition.log.read(p.fetch_offset, max(budget, 1), hw)
                    if not data:
                        watched.append(partition)
                    pr.records = data
                    size += len(data)
                    if data:
                        BYTES_OUT.labels(t.topic).inc(len(data))
                except Exception as exc:
                    pr.error_code, pr.error_message = error_fields(exc, "Fetch")
                    errors = True
        return response, size, errors, watched

    # ---- list offsets --------------------------------------------------------

    def list_offsets(self, request: pb.ListOffsetsRequest) -> pb.ListOffsetsResponse:
        response = pb.ListOffsetsResponse()
        for t in request.topics:
            tr = response.topics.add(topic=t.topic)
            for p in t.partitions:
                pr = tr.partitions.add(partition=p.partition, timestamp=-1, offset=-1)
                try:
                    partition = self.leader_partition(t.topic, p.partition)
                    if p.timestamp == LATEST_TIMESTAMP:
                        pr.offset = partition.high_watermark
                    elif p.timestamp == EARLIEST_TIMESTAMP:
                        pr.offset = partition.log.log_start_offset
                    else:
                        found = partition.log.offset_for_timestamp(p.timestamp)
                        if found is not None and found[0] < partition.high_watermark:
                            pr.offset, pr.timestamp = found
                except Exception as exc:
                    pr.error_code, pr.error_message = error_fields(exc, "ListOffsets")
        return response

    # ---- housekeeping --------------------------------------------------------

    async def checkpoint(self) -> None:
        """Write every log's high watermark and wait for all pending writes (clean shutdown).
        All logs flush at once, so their checkpoints share one group commit and one sync
        instead of one sync per partition."""
        await asyncio.gather(*(partition.log.flush() for partition in list(self.partitions.values())))

    def run_log_maintenance(self) -> None:
        """Retention and compaction on every hosted log (called periodically)."""
        now = self.clock()
        for partition in list(self.partitions.values()):
            try:
                if partition.log.config.deletes:
                    partition.log.enforce_retention(now)
                if partition.log.config.compacted:
                    partition.log.compact(now)
            except Exception:
                log.exception("event=log_maintenance_failed topic=%s partition=%d", partition.topic, partition.index)
