"""errors.tolerance, retries, error logging and the dead letter queue, as Kafka Connect does them.

Every step a record goes through (poll, convert, transform, put, produce) runs
through :meth:`ErrorHandler.execute`: a :class:`RetriableError` is retried
with exponential backoff (capped at ``errors.retry.delay.max.ms``) until
``errors.retry.timeout`` runs out; then, with ``errors.tolerance=none`` the
failure stops the task (FAILED, with the trace in its status), with ``all``
the record is skipped — logged if ``errors.log.enable``, and for sinks written
with its original bytes to ``errors.deadletterqueue.topic.name``, with Kafka's
``__connect.errors.*`` headers when context headers are enabled.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Mapping, Optional, TypeVar

from caudal.connect.api import ConnectError, RetriableError

log = logging.getLogger(__name__)

T = TypeVar("T")
INITIAL_RETRY_DELAY_MS = 300


class Stage(str, Enum):
    """Kafka's ``__connect.errors.stage`` values."""

    KAFKA_CONSUME = "KAFKA_CONSUME"
    KEY_CONVERTER = "KEY_CONVERTER"
    VALUE_CONVERTER = "VALUE_CONVERTER"
    HEADER_CONVERTER = "HEADER_CONVERTER"
    TRANSFORMATION = "TRANSFORMATION"
    TASK_PUT = "TASK_PUT"
    TASK_POLL = "TASK_POLL"
    KAFKA_PRODUCE = "KAFKA_PRODUCE"


class ToleranceExceeded(ConnectError):
    """A failure that ``errors.tolerance`` does not allow: the task stops."""


@dataclass(frozen=True)
class ErrorPolicy:
    """The ``errors.*`` settings of one connector."""

    tolerate_all: bool = False
    retry_timeout_ms: int = 0
    retry_delay_max_ms: int = 60_000
    log_enabled: bool = False
    log_include_messages: bool = False
    dlq_topic: str = ""
    dlq_context_headers: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> "ErrorPolicy":
        def flag(key: str) -> bool:
            return str(config.get(key, "false")).strip().lower() == "true"

        return cls(
            tolerate_all=str(config.get("errors.tolerance", "none")).strip().lower() == "all",
            retry_timeout_ms=int(config.get("errors.retry.timeout", 0)),
            retry_delay_max_ms=int(config.get("errors.retry.delay.max.ms", 60_000)),
            log_enabled=flag("errors.log.enable"),
            log_include_messages=flag("errors.log.include.messages"),
            dlq_topic=str(config.get("errors.deadletterqueue.topic.name", "")).strip(),
            dlq_context_headers=flag("errors.deadletterqueue.context.headers.enable"),
        )


@dataclass(frozen=True)
class ConsumedRecord:
    """The original record as read from a topic: what the dead letter queue receives."""

    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: tuple[tuple[str, Optional[bytes]], ...] = ()
    timestamp: Optional[int] = None


DlqSend = Callable[[str, Optional[bytes], Optional[bytes], list[tuple[str, Optional[bytes]]]], None]
"""``send(topic, key, value, headers)``: hands a record to the producer (the worker's DLQ producer)."""


def dlq_headers(record: ConsumedRecord, connector: str, task_id: int, stage: Stage, where: str, exc: BaseException) -> list[tuple[str, bytes]]:
    """Kafka's DeadLetterQueueReporter context headers."""
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    pairs = [
        ("__connect.errors.topic", record.topic),
        ("__connect.errors.partition", str(record.partition)),
        ("__connect.errors.offset", str(record.offset)),
        ("__connect.errors.connector.name", connector),
        ("__connect.errors.task.id", str(task_id)),
        ("__connect.errors.stage", stage.value),
        ("__connect.errors.class.name", where),
        ("__connect.errors.exception.class.name", f"{type(exc).__module__}.{type(exc).__qualname__}"),
        ("__connect.errors.exception.message", str(exc)),
        ("__connect.errors.exception.stacktrace", trace),
    ]
    return [(k, v.encode()) for k, v in pairs]


class ErrorHandler:
    """Runs one step under the connector's error policy; counts what it tolerated."""

    def __init__(
        self, policy: ErrorPolicy, connector: str, task_id: int, dlq_send: Optional[DlqSend] = None,
        stopping: Optional[threading.Event] = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.connector = connector
        self.task_id = task_id
        self.dlq_send = dlq_send
        self.stopping = stopping or threading.Event()
        self.clock = clock
        self.errors = 0
        self.skipped = 0
        self.dlq_records = 0

    def execute(self, stage: Stage, where: str, step: Callable[[], T], record: Any = None,
                consumed: Optional[ConsumedRecord] = None) -> tuple[bool, Optional[T]]:
        """(True, result) when ``step`` succeeded; (False, None) when it failed and was tolerated.

        The deadline is worked out only after a first retriable failure, so the per-record
        path is a bare call.
        """
        try:
            return True, step()
        except RetriableError as exc:
            error: Exception = exc
        except Exception as exc:
            return self._failed(stage, where, exc, record, consumed)
        deadline = self.clock() + self.policy.retry_timeout_ms / 1000
        delay_ms = INITIAL_RETRY_DELAY_MS
        while self.policy.retry_timeout_ms < 0 or self.clock() + delay_ms / 1000 <= deadline:
            if self.stopping.wait(delay_ms / 1000):
                raise ToleranceExceeded(f"task stopped while retrying {stage.value}") from error
            delay_ms = min(delay_ms * 2, self.policy.retry_delay_max_ms)
            try:
                return True, step()
            except RetriableError as exc:
                error = exc
            except Exception as exc:
                return self._failed(stage, where, exc, record, consumed)
        return self._failed(stage, where, error, record, consumed)

    def _failed(self, stage: Stage, where: str, exc: Exception, record: Any,
                consumed: Optional[ConsumedRecord]) -> tuple[bool, None]:
        self.errors += 1
        if self.policy.log_enabled:
            shown = f" record={record!r}" if self.policy.log_include_messages and record is not None else ""
            log.error(
                "event=connect_record_error connector=%s task=%d stage=%s class=%s error=%r%s",
                self.connector, self.task_id, stage.value, where, str(exc), shown,
            )
        if not self.policy.tolerate_all:
            raise ToleranceExceeded(f"Tolerance exceeded in error handler at stage {stage.value} ({where}): {exc}") from exc
        self.skipped += 1
        if consumed is not None and self.policy.dlq_topic and self.dlq_send is not None:
            headers = list(consumed.headers)
            if self.policy.dlq_context_headers:
                headers += dlq_headers(consumed, self.connector, self.task_id, stage, where, exc)
            self.dlq_send(self.policy.dlq_topic, consumed.key, consumed.value, headers)
            self.dlq_records += 1
        return False, None
