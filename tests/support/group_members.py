"""Consumer-group members for tests: each polls in its own thread, as an application would.

A group rebalance needs every member to keep polling (a member rejoins from
``poll``), so tests cannot poll members one after another from one thread.
A :class:`MemberThread` owns one :class:`caudal.client.Consumer`, polls it in a
bounded loop and records what it received and which partitions it held; a
:class:`MemberProcess` runs one in a separate Python process so a test can
kill -9 it. Every thread is joined and every process is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from caudal.client import Consumer, TopicPartition
from caudal.client.structs import ConsumerRebalanceListener

MAX_MEMBER_SECONDS = 120.0


class RecordingListener(ConsumerRebalanceListener):
    """Remembers every callback, in order, as (event, sorted partitions)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, list[TopicPartition]]] = []

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.events.append(("revoked", list(revoked)))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.events.append(("assigned", list(assigned)))

    def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
        self.events.append(("lost", list(lost)))


class MemberThread:
    """One group member polling in the background until ``stop``."""

    def __init__(self, bootstrap: str, group: str, topics: list[str], commit_each_poll: bool = False, **options) -> None:
        self.options = {
            "bootstrap_servers": bootstrap, "group_id": group, "auto_offset_reset": "earliest",
            "session_timeout_ms": 6000, "heartbeat_interval_ms": 500, **options,
        }
        self.topics = topics
        self.commit_each_poll = commit_each_poll
        self.listener = RecordingListener()
        self.records: list = []
        self.assignment: set[TopicPartition] = set()
        self.error: BaseException | None = None
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"member-{group}", daemon=True)

    def start(self) -> "MemberThread":
        self._thread.start()
        return self

    def _run(self) -> None:
        consumer = Consumer(**self.options)
        deadline = time.monotonic() + MAX_MEMBER_SECONDS
        try:
            consumer.subscribe(self.topics, listener=self.listener)
            while not self._stop.is_set() and time.monotonic() < deadline:
                if self.paused.is_set():
                    self._stop.wait(0.05)
                    continue
                records = consumer.poll(timeout_ms=100)
                if records and self.commit_each_poll:
                    consumer.commit()
                with self._lock:
                    self.records.extend(records)
                    self.assignment = consumer.assignment()
        except BaseException as exc:  # surfaced to the test through .error
            self.error = exc
        finally:
            consumer.close()

    def snapshot(self) -> tuple[set[TopicPartition], list]:
        with self._lock:
            return set(self.assignment), list(self.records)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError("group member thread did not stop")


_MEMBER_MAIN = r"""
import json, sys, time
from caudal.client import Consumer
bootstrap, group, topic, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
consumer = Consumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                    session_timeout_ms=6000, heartbeat_interval_ms=500, enable_auto_commit=False)
consumer.subscribe([topic])
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    records = consumer.poll(timeout_ms=100)
    print(json.dumps({"assignment": sorted([tp.topic, tp.partition] for tp in consumer.assignment()),
                      "offsets": [[r.partition, r.offset] for r in records]}), flush=True)
consumer.close()
"""


class MemberProcess:
    """A group member in its own process (so it can be kill -9'd); reports what it holds on stdout."""

    def __init__(self, bootstrap: str, group: str, topic: str, log_path: Path) -> None:
        self.log_path = log_path
        self._out = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MEMBER_MAIN, bootstrap, group, topic, str(MAX_MEMBER_SECONDS)],
            stdout=self._out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def lines(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def assignment(self) -> set[TopicPartition]:
        lines = self.lines()
        return {TopicPartition(t, p) for t, p in lines[-1]["assignment"]} if lines else set()

    def kill9(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._out.close()
