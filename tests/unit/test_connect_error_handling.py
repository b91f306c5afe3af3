"""errors.tolerance, retries and dead-letter-queue context, without a cluster."""

from __future__ import annotations

import pytest

from caudal.connect.api import RetriableError
from caudal.connect.error_handling import ConsumedRecord, ErrorHandler, ErrorPolicy, Stage, ToleranceExceeded


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _failing(times: int, error: type[Exception]):  # noqa: ANN202 - step factory
    calls = []

    def step() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error("boom")
        return "ok"

    return step, calls


def test_success_runs_the_step_once() -> None:
    step, calls = _failing(0, ValueError)
    assert ErrorHandler(ErrorPolicy(), "c", 0).execute(Stage.TRANSFORMATION, "T", step) == (True, "ok")
    assert len(calls) == 1


def test_non_retriable_failure_is_not_retried_and_fails_the_task_without_tolerance() -> None:
    step, calls = _failing(1, ValueError)
    with pytest.raises(ToleranceExceeded, match="TRANSFORMATION"):
        ErrorHandler(ErrorPolicy(), "c", 0).execute(Stage.TRANSFORMATION, "T", step)
    assert len(calls) == 1


def test_retriable_failures_are_retried_until_success() -> None:
    step, calls = _failing(2, RetriableError)
    handler = ErrorHandler(ErrorPolicy(retry_timeout_ms=10_000, retry_delay_max_ms=1), "c", 0)
    assert handler.execute(Stage.TASK_PUT, "Sink", step) == (True, "ok")
    assert len(calls) == 3


def test_retries_stop_at_the_retry_timeout_then_tolerance_decides() -> None:
    clock = FakeClock()
    step, calls = _failing(100, RetriableError)
    handler = ErrorHandler(ErrorPolicy(tolerate_all=True, retry_timeout_ms=0), "c", 0, clock=clock)
    assert handler.execute(Stage.TASK_PUT, "Sink", step) == (False, None)
    assert len(calls) == 1 and handler.skipped == 1


def test_tolerated_failure_goes_to_the_dead_letter_queue_with_kafkas_context_headers() -> None:
    sent = []
    policy = ErrorPolicy(tolerate_all=True, dlq_topic="dlq", dlq_context_headers=True)
    handler = ErrorHandler(policy, "my-sink", 3, dlq_send=lambda *args: sent.append(args))
    original = ConsumedRecord("orders", 2, 41, b"k", b"bad", (("h", b"1"),))
    step, _ = _failing(1, ValueError)
    assert handler.execute(Stage.VALUE_CONVERTER, "JsonConverter", step, consumed=original) == (False, None)
    ((topic, key, value, headers),) = sent
    assert (topic, key, value) == ("dlq", b"k", b"bad")
    h = dict(headers)
    assert h["h"] == b"1"
    assert h["__connect.errors.topic"] == b"orders" and h["__connect.errors.partition"] == b"2"
    assert h["__connect.errors.offset"] == b"41" and h["__connect.errors.task.id"] == b"3"
    assert h["__connect.errors.stage"] == b"VALUE_CONVERTER" and h["__connect.errors.class.name"] == b"JsonConverter"
    assert h["__connect.errors.exception.class.name"] == b"builtins.ValueError"
    assert h["__connect.errors.exception.message"] == b"boom" and b"Traceback" in h["__connect.errors.exception.stacktrace"]
    assert handler.dlq_records == 1


def test_policy_reads_kafkas_keys() -> None:
    policy = ErrorPolicy.from_config({
        "errors.tolerance": "all", "errors.retry.timeout": "-1", "errors.log.enable": "true",
        "errors.deadletterqueue.topic.name": " dlq ", "errors.deadletterqueue.context.headers.enable": "TRUE",
    })
    assert policy == ErrorPolicy(True, -1, 60_000, True, False, "dlq", True)
