"""A compacted topic used as a replicated key-value log by distributed workers (Kafka's KafkaBasedLog).

Distributed Connect keeps connector configs, source offsets and statuses in
three compacted topics. Every worker reads each topic from the beginning in a
background thread and keeps the latest value per key; writes go through a
producer with acks=all, and :meth:`TopicLog.write` returns only after the
worker has read its own write back, so a REST call that changed something can
answer from the local view. Keys are strings, values JSON (None = tombstone).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable, Optional

from caudal.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition
from caudal.common.errors import KafkaTimeoutError, TopicAlreadyExistsError

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 30.0
POLL_MS = 200


class TopicLog:
    """Latest JSON value per key of one compacted topic, kept current by a reader thread."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, replication_factor: int,
                 on_change: Callable[[str, Optional[Any]], None] = lambda key, value: None) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.partitions, self.replication_factor = partitions, replication_factor
        self.on_change = on_change
        self.values: dict[str, Any] = {}
        self._positions: dict[int, int] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._producer: Optional[Producer] = None
        self._thread = threading.Thread(target=self._read, name=f"topic-log-{topic}", daemon=True)

    def start(self) -> None:
        """Create the topic if needed, then read it to its end before returning."""
        self._ensure_topic()
        self._producer = Producer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0)
        consumer = Consumer(bootstrap_servers=self.bootstrap, auto_offset_reset="earliest")
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        self._consumer = consumer
        self._thread.start()
        self._wait_for({tp.partition: end for tp, end in ends.items()})

    def _ensure_topic(self) -> None:
        with AdminClient(bootstrap_servers=self.bootstrap) as admin:
            if self.topic in admin.list_topics(include_internal=True):
                self.partitions = len(admin.describe_topics([self.topic])[self.topic].partitions)
                return
            live = len(admin.describe_cluster().brokers)
            factor = min(self.replication_factor, live) if self.replication_factor > 0 else -1
            try:
                admin.create_topics([NewTopic(self.topic, self.partitions, factor, config={"cleanup.policy": "compact"})])[self.topic].result(30)
                log.info("event=connect_topic_created topic=%s partitions=%d replication_factor=%d", self.topic, self.partitions, factor)
            except TopicAlreadyExistsError:
                pass

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                records = self._consumer.poll(timeout_ms=POLL_MS)
                for r in records:
                    key = r.key.decode() if r.key is not None else ""
                    value = json.loads(r.value) if r.value is not None else None
                    with self._cond:
                        if value is None:
                            self.values.pop(key, None)
                        else:
                            self.values[key] = value
                    self.on_change(key, value)
                if records:
                    with self._cond:
                        for r in records:
                            self._positions[r.partition] = r.offset + 1
                        self._cond.notify_all()
        except Exception:
            log.exception("event=topic_log_reader_failed topic=%s", self.topic)
        finally:
            self._consumer.close(autocommit=False)

    def _wait_for(self, positions: dict[int, int]) -> None:
        def caught_up() -> bool:
            return all(self._positions.get(p, 0) >= end for p, end in positions.items() if end > 0)

        with self._cond:
            if not self._cond.wait_for(caught_up, READ_TIMEOUT_S):
                raise KafkaTimeoutError(f"{self.topic} not read back within {READ_TIMEOUT_S} s")

    def write(self, key: str, value: Optional[Any], partition: Optional[int] = None) -> None:
        """Write and wait until this worker has read the write back."""
        assert self._producer is not None
        data = json.dumps(value, separators=(",", ":")).encode() if value is not None else None
        metadata = self._producer.send(self.topic, data, key=key.encode(), partition=partition).result(READ_TIMEOUT_S)
        self._wait_for({metadata.partition: metadata.offset + 1})

    def get(self, key: str) -> Optional[Any]:
        with self._cond:
            return self.values.get(key)

    def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        with self._cond:
            return [(k, v) for k, v in self.values.items() if k.startswith(prefix)]

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self._producer is not None:
            self._producer.close()
