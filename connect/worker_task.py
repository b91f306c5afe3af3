"""The worker side of one task: the loop between a connector's task and the cluster.

Each task runs in its own thread (connector code is ordinary blocking Python)
with its own producer or consumer, as Kafka Connect does.

* :class:`WorkerSourceTask`: ``poll()`` → transforms → converters → producer.
  A source offset is committed only once its record — and every record
  polled before it — is acknowledged by the cluster, so a restart resumes
  after the last record known to be stored (at-least-once). Acknowledgements
  are tracked per poll and producer batch, not per record
  (:mod:`caudal.connect.submitted_records`).
* :class:`WorkerSinkTask`: consumer (group ``connect-<connector>``) →
  converters → transforms → ``put()``; consumer offsets are committed after
  ``pre_commit``/``flush``, so nothing is committed that the sink has not made
  durable. Records that fail conversion, transformation or ``put`` go through
  the connector's error policy (and its dead letter queue).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from typing import Any, Callable, Optional

from caudal.client import Consumer, Producer, TopicPartition
from caudal.client.structs import ConsumerRebalanceListener
from caudal.connect.api import (
    SinkRecord,
    SinkTask,
    SinkTaskContext,
    SourceRecord,
    SourceTask,
    SourceTaskContext,
    Task,
)
from caudal.connect.connect_configs import bootstrap_servers
from caudal.connect.converters import Converter
from caudal.connect.error_handling import ConsumedRecord, ErrorHandler, Stage
from caudal.connect.herder import State
from caudal.connect.offset_store import OffsetStore
from caudal.connect.submitted_records import SubmittedPoll, SubmittedRecords
from caudal.connect.transforms import TransformationChain

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500
PAUSED_WAIT_S = 0.1


def header_bytes(value: Any) -> Optional[bytes]:
    """A header value on the wire: bytes as they are, text as UTF-8, anything else as JSON."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()


class WorkerTask:
    """State, failure trace and thread shared by source and sink tasks."""

    def __init__(
        self, connector: str, task_id: int, task: Task, config: dict[str, str], worker_config: dict[str, Any],
        key_converter: Converter, value_converter: Converter, transforms: TransformationChain, errors: ErrorHandler,
    ) -> None:
        self.connector, self.task_id, self.task, self.config = connector, task_id, task, config
        self.worker_config = worker_config
        self.key_converter, self.value_converter, self.transforms, self.errors = key_converter, value_converter, transforms, errors
        self.state = State.UNASSIGNED
        self.trace: Optional[str] = None
        self.stopping = errors.stopping
        self.paused = threading.Event()
        self.records = 0
        self._thread = threading.Thread(target=self._main, name=f"connect-{connector}-{task_id}", daemon=True)

    @property
    def flush_interval_s(self) -> float:
        return int(self.worker_config.get("offset.flush.interval.ms", 60_000)) / 1000

    @property
    def bootstrap(self) -> str:
        return bootstrap_servers(self.worker_config)

    def start(self, paused: bool = False) -> None:
        if paused:
            self.paused.set()
        self._thread.start()

    def _main(self) -> None:
        try:
            self.execute()
            if self.state is not State.FAILED:
                self.state = State.UNASSIGNED
        except Exception as exc:
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        self.state = State.FAILED
        self.trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error("event=task_failed connector=%s task=%d error=%r", self.connector, self.task_id, str(exc))

    def execute(self) -> None:
        raise NotImplementedError

    def running_state(self) -> State:
        return State.PAUSED if self.paused.is_set() else State.RUNNING

    def stop(self, timeout_s: float) -> None:
        """Ask the loop to finish (commit, stop the task, close its client) and wait for it."""
        self.stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def status(self, worker_id: str) -> dict[str, Any]:
        state = self.state if self.state in (State.FAILED, State.UNASSIGNED) else self.running_state()
        out: dict[str, Any] = {"id": self.task_id, "state": state.value, "worker_id": worker_id}
        if self.trace:
            out["trace"] = self.trace
        return out

    def transform(self, record: Any, where: str, consumed: Optional[ConsumedRecord] = None) -> Any:
        if not self.transforms.stages:
            return record
        ok, transformed = self.errors.execute(Stage.TRANSFORMATION, where, lambda: self.transforms.apply(record), record, consumed)
        return transformed if ok else None


class WorkerSourceTask(WorkerTask):
    def __init__(self, *args: Any, offsets: OffsetStore, ensure_topic: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offsets = offsets
        self.ensure_topic = ensure_topic
        self._topics: set[str] = set()
        self.submitted = SubmittedRecords()
        self._wants_commit_record = type(self.task).commit_record is not SourceTask.commit_record

    def execute(self) -> None:
        task: SourceTask = self.task  # type: ignore[assignment]
        producer = Producer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, client_id=f"connector-producer-{self.connector}-{self.task_id}")
        try:
            task.initialize(SourceTaskContext(self.offsets.reader(self.connector), self.config))
            task.start(self.config)
            self.state = State.RUNNING
            next_flush = time.monotonic() + self.flush_interval_s
            while not self.stopping.is_set():
                self._settle()
                if self.paused.is_set():
                    self.stopping.wait(PAUSED_WAIT_S)
                    continue
                records = task.poll()
                if records:
                    self._send_poll(producer, records)
                if time.monotonic() >= next_flush:
                    self.commit_offsets()
                    next_flush = time.monotonic() + self.flush_interval_s
            producer.flush(self.flush_interval_s)
            self.commit_offsets()
        finally:
            try:
                task.stop()
            finally:
                producer.close()

    def _send_poll(self, producer: Producer, records: list[SourceRecord]) -> None:
        """Transform, convert and send one poll's records; the poll is tracked as a whole."""
        poll = SubmittedPoll(keep_records=self._wants_commit_record)
        name = type(self.task).__name__
        transforming = bool(self.transforms.stages)
        key_from, value_from = self.key_converter.from_connect, self.value_converter.from_connect
        for record in records:
            poll.track(record.source_partition, record.source_offset)
            transformed = self.transform(record, name) if transforming else record
            if transformed is None:
                continue
            topic = transformed.topic
            try:
                key = key_from(topic, transformed.key_schema, transformed.key)
                value = value_from(topic, transformed.value_schema, transformed.value)
            except Exception:
                converted = self._convert_under_policy(record, transformed)
                if converted is None:
                    continue
                key, value = converted
            if topic not in self._topics:
                self.ensure_topic(topic)
                self._topics.add(topic)
            headers = transformed.headers
            future = producer.send(
                topic, value, key=key, headers=[(k, header_bytes(v)) for k, v in headers] if headers else None,
                partition=transformed.kafka_partition, timestamp_ms=transformed.timestamp,
            )
            poll.sent(future.batch)
            if poll.records is not None:
                poll.records.append((record, future))
        self.submitted.submit(poll)

    def _convert_under_policy(self, record: SourceRecord, transformed: Any) -> Optional[tuple[Any, Any]]:
        """Convert again through the error policy (retries, tolerance, logging) once the plain
        attempt failed; converters are pure, so repeating the key's conversion is harmless."""
        ok_key, key = self.errors.execute(
            Stage.KEY_CONVERTER, type(self.key_converter).__name__,
            lambda: self.key_converter.from_connect(transformed.topic, transformed.key_schema, transformed.key), record,
        )
        ok_value, value = self.errors.execute(
            Stage.VALUE_CONVERTER, type(self.value_converter).__name__,
            lambda: self.value_converter.from_connect(transformed.topic, transformed.value_schema, transformed.value), record,
        )
        return (key, value) if ok_key and ok_value else None

    def _settle(self) -> None:
        """Account for the polls the cluster has answered: a lost batch fails the task unless
        errors are tolerated, delivered records reach ``commit_record``, offsets become committable."""
        for poll in self.submitted.settle():
            for error, count in poll.failures():
                if not self.errors.policy.tolerate_all:
                    raise error
                log.warning("event=source_records_dropped connector=%s task=%d records=%d error=%r", self.connector, self.task_id, count, str(error))
            self.records += poll.delivered()
            for record, future in poll.records or ():
                if future.batch.error is None:
                    self.task.commit_record(record, future.get())  # type: ignore[attr-defined]
            self.submitted.acknowledge(poll)

    def commit_offsets(self) -> None:
        self._settle()
        offsets = self.submitted.take_committable()
        if offsets:
            self.offsets.put(self.connector, offsets)
            self.task.commit()  # type: ignore[attr-defined]


class _SinkRebalance(ConsumerRebalanceListener):
    """Tells the sink task about partitions it gains and commits what it flushed before they go."""

    def __init__(self, owner: "WorkerSinkTask") -> None:
        self.owner = owner

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.owner.sink.open([(tp.topic, tp.partition) for tp in assigned])

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.owner.commit({(tp.topic, tp.partition) for tp in revoked})
        self.owner.sink.close([(tp.topic, tp.partition) for tp in revoked])


class WorkerSinkTask(WorkerTask):
    def __init__(self, *args: Any, dlq_producer: Callable[[], Producer], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink: SinkTask = self.task  # type: ignore[assignment]
        self.positions: dict[tuple[str, int], int] = {}
        self.consumer: Optional[Consumer] = None
        self._dlq_producer = dlq_producer

    def execute(self) -> None:
        consumer = self.consumer = Consumer(
            bootstrap_servers=self.bootstrap, group_id=f"connect-{self.connector}", enable_auto_commit=False,
            auto_offset_reset="earliest", client_id=f"connector-consumer-{self.connector}-{self.task_id}",
        )
        try:
            context = SinkTaskContext(
                self.config, assignment=lambda: {(tp.topic, tp.partition) for tp in consumer.assignment()},
                pause=lambda *tps: consumer.pause(*(TopicPartition(*tp) for tp in tps)),
                resume=lambda *tps: consumer.resume(*(TopicPartition(*tp) for tp in tps)),
            )
            self.sink.initialize(context)
            self.sink.start(self.config)
            topics = [t.strip() for t in self.config.get("topics", "").split(",") if t.strip()]
            if topics:
                consumer.subscribe(topics, listener=_SinkRebalance(self))
            else:
                consumer.subscribe(pattern=self.config["topics.regex"], listener=_SinkRebalance(self))
            self.state = State.RUNNING
            next_commit = time.monotonic() + self.flush_interval_s
            while not self.stopping.is_set():
                paused = self.paused.is_set()
                if paused:
                    consumer.pause(*consumer.assignment())
                elif consumer.paused():
                    consumer.resume(*consumer.paused())
                self._deliver(consumer.poll(timeout_ms=PAUSED_WAIT_S * 1000 if paused else POLL_TIMEOUT_MS))
                for (topic, partition), offset in context.requested_offsets.items():
                    consumer.seek(TopicPartition(topic, partition), offset)
                    self.positions[(topic, partition)] = offset
                context.requested_offsets.clear()
                if time.monotonic() >= next_commit or context.commit_requested:
                    context.commit_requested = False
                    self.commit(None)
                    next_commit = time.monotonic() + self.flush_interval_s
            self.commit(None)
        finally:
            try:
                self.sink.stop()
            finally:
                consumer.close(autocommit=False)

    def _deliver(self, consumed: list) -> None:
        batch: list[tuple[SinkRecord, ConsumedRecord]] = []
        for r in consumed:
            original = ConsumedRecord(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers), r.timestamp)
            self.positions[(r.topic, r.partition)] = r.offset + 1
            record = self._to_sink_record(original)
            if record is not None:
                batch.append((record, original))
        if not batch:
            return
        ok, _ = self.errors.execute(Stage.TASK_PUT, type(self.sink).__name__, lambda: self.sink.put([b[0] for b in batch]))
        if ok:
            self.records += len(batch)
            return
        for record, original in batch:  # find the bad records one by one, so only they are skipped
            ok, _ = self.errors.execute(Stage.TASK_PUT, type(self.sink).__name__, lambda rec=record: self.sink.put([rec]), record, original)
            self.records += ok

    def _to_sink_record(self, original: ConsumedRecord) -> Optional[SinkRecord]:
        ok_key, key = self.errors.execute(
            Stage.KEY_CONVERTER, type(self.key_converter).__name__,
            lambda: self.key_converter.to_connect(original.topic, original.key), original, original,
        )
        if not ok_key:
            return None
        ok_value, value = self.errors.execute(
            Stage.VALUE_CONVERTER, type(self.value_converter).__name__,
            lambda: self.value_converter.to_connect(original.topic, original.value), original, original,
        )
        if not ok_value:
            return None
        record = SinkRecord(
            topic=original.topic, kafka_partition=original.partition, key=key[1], value=value[1],
            timestamp=original.timestamp, headers=original.headers, key_schema=key[0], value_schema=value[0],
            kafka_offset=original.offset,
        )
        return self.transform(record, type(self.sink).__name__, original)

    def send_to_dlq(self, topic: str, key: Optional[bytes], value: Optional[bytes], headers: list[tuple[str, Optional[bytes]]]) -> None:
        self._dlq_producer().send(topic, value, key=key, headers=headers).result(30)

    def commit(self, only: Optional[set[tuple[str, int]]]) -> None:
        """pre_commit (flush) what was delivered, then commit those consumer offsets."""
        positions = {tp: o for tp, o in self.positions.items() if only is None or tp in only}
        if not positions or self.consumer is None:
            return
        safe = self.sink.pre_commit(dict(positions))
        if safe:
            self.consumer.commit({TopicPartition(t, p): o for (t, p), o in safe.items()})
