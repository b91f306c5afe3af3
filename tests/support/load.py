"""A bounded background producer for fault tests: what it sent, what was acknowledged, what failed."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from caudal.client import Producer


@dataclass
class LoadResult:
    acked: dict[tuple[int, int], bytes] = field(default_factory=dict)
    errors: list[Exception] = field(default_factory=list)
    sent: int = 0


class ProducerLoad:
    """Sends numbered records to ``topic`` until stopped or ``max_records``/``max_seconds`` is reached."""

    def __init__(self, bootstrap: str, topic: str, max_records: int = 200_000, max_seconds: float = 120, rate: float = 2000, **options) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.max_records, self.max_seconds, self.rate = max_records, max_seconds, rate
        self.options = {"acks": "all", "linger_ms": 2, "request_timeout_ms": 3000, "delivery_timeout_ms": 60_000, **options}
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"load-{topic}", daemon=True)

    def start(self) -> "ProducerLoad":
        self._thread.start()
        return self

    def _done(self, value: bytes):  # noqa: ANN202 - callback factory
        def cb(err: Exception | None, md) -> None:  # noqa: ANN001
            with self._lock:
                if err is not None:
                    self.result.errors.append(err)
                else:
                    self.result.acked[(md.partition, md.offset)] = value

        return cb

    def _run(self) -> None:
        producer = Producer(bootstrap_servers=self.bootstrap, **self.options)
        start = time.monotonic()
        try:
            for i in range(self.max_records):
                if self._stop.is_set() or time.monotonic() - start > self.max_seconds:
                    break
                value = f"r{i:08d}".encode()
                producer.send(self.topic, value=value, key=str(i % 97).encode(), on_delivery=self._done(value))
                self.result.sent += 1
                ahead = (i + 1) / self.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
            producer.flush(timeout=90)
        finally:
            producer.close(timeout=10)

    def stop(self, timeout_s: float = 120) -> LoadResult:
        self._stop.set()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the load producer did not finish in time"
        return self.result

    def acked_count(self) -> int:
        with self._lock:
            return len(self.result.acked)

    def acked_so_far(self) -> dict[tuple[int, int], bytes]:
        """A copy of the acknowledgements received until now."""
        with self._lock:
            return dict(self.result.acked)
