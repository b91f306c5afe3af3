"""The NATS JetStream half of ``tests/bench/side_by_side.py``.

Runs JetStream with file storage on loopback — one server (R1) or a 3-node
cluster (R3), each node with its own store dir, ports and log — and measures it
the way ``caudal bench`` measures caudal, so the two columns of the table mean
the same thing:

* publish throughput, two ways: ``js.publish`` calls awaited ``PUBLISH_BATCH`` at
  a time with ``asyncio.gather``, and nats-py's ``publish_async`` (a bounded
  window of pending PubAcks, 1.2–2× faster here); either way every message
  is acknowledged by the stream (after replication with R3), as acks=1/all are,
  and the clock runs from the first publish to the last ack;
* consume throughput: a pull consumer with ``AckPolicy.NONE`` (a Kafka consumer
  acks nothing per record either) fetching ``FETCH_BATCH`` at a time, timed from
  the first fetch to the last, as side_by_side.py times caudal's consumer;
* end-to-end latency: publishes at a fixed rate paced like caudal's Throttle,
  with ``perf_counter`` in the payload, read by a push subscriber in the same
  process (one clock).

It needs ``nats-py``, which side_by_side.py installs before importing this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck, StorageType, StreamConfig

from caudal.local_cluster import free_port

PUBLISH_BATCH = 1000
"""In-flight publishes per gather: 100, 1,000 and 5,000 measured within 10 % of each other here."""
FETCH_BATCH = 1000
"""Messages per pull request: 250, 1,000 and 10,000 measured the same here (10,000 is caudal's max_poll_records)."""
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
TIMESTAMP_BYTES = 24
"""``f"{perf_counter():24.6f}"`` at the start of each e2e payload, like ``caudal bench e2e``."""


@dataclass
class NatsNode:
    """One ``nats-server`` process, started from a config file and stopped by PID."""

    name: str
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, server: str) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [server, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def stop(self) -> None:
        """SIGTERM (JetStream flushes its store), SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def jetstream(server: str, data_dir: Path, nodes: int) -> Iterator[list[str]]:
    """Start ``nodes`` JetStream servers (1, or a cluster of 3) and yield their client URLs.

    Every node is stopped on the way out, also when starting or a workload fails.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    client_ports = [free_port() for _ in range(nodes)]
    route_ports = [free_port() for _ in range(nodes)]
    started: list[NatsNode] = []
    try:
        for i in range(nodes):
            name = f"nats-{i + 1}"
            config = data_dir / f"{name}.conf"
            text = (
                f'server_name: "{name}"\nlisten: "127.0.0.1:{client_ports[i]}"\n'
                f'jetstream {{ store_dir: "{data_dir / name}" }}\n'
            )
            if nodes > 1:
                routes = ", ".join(f'"nats://127.0.0.1:{p}"' for j, p in enumerate(route_ports) if j != i)
                text += f'cluster {{ name: "bench", listen: "127.0.0.1:{route_ports[i]}", routes: [{routes}] }}\n'
            config.write_text(text)
            node = NatsNode(name, config, data_dir / f"{name}.log")
            node.start(server)
            started.append(node)
        urls = [f"nats://127.0.0.1:{p}" for p in client_ports]
        asyncio.run(_wait_for_jetstream(urls, started))
        yield urls
    finally:
        for node in started:
            node.stop()


async def _wait_for_jetstream(urls: list[str], nodes: list[NatsNode]) -> None:
    """Block until every server answers and JetStream (with its meta leader, in a cluster) serves requests."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    for url, node in zip(urls, nodes, strict=True):
        while True:
            if node.proc is not None and node.proc.poll() is not None:
                raise RuntimeError(f"{node.name} exited:\n{node.log.read_text(errors='replace')[-2000:]}")
            try:
                nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False, error_cb=_quiet)
                try:
                    await nc.jetstream().account_info()
                    break
                finally:
                    await nc.close()
            except (NatsError, OSError, asyncio.TimeoutError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{node.name} not serving JetStream after {READY_TIMEOUT_S} s") from None
                await asyncio.sleep(0.2)


async def _quiet(_err: Exception) -> None:
    """Connection errors while a server starts are expected; nats-py would print each one."""


async def _connect(urls: list[str]) -> tuple[Client, JetStreamContext]:
    nc = await nats.connect(servers=urls, dont_randomize=True)
    return nc, nc.jetstream()


async def _create_stream(js: JetStreamContext, name: str, replicas: int) -> str:
    """A file-storage stream on subject ``name`` with a leader elected; returns the subject."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            await js.add_stream(StreamConfig(name=name, subjects=[name], storage=StorageType.FILE, num_replicas=replicas))
            info = await js.stream_info(name)
            if replicas == 1 or (info.cluster is not None and info.cluster.leader):
                return name
        except (NatsError, asyncio.TimeoutError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream {name} has no leader after {READY_TIMEOUT_S} s")
        await asyncio.sleep(0.2)


async def publish_throughput(
    urls: list[str], stream: str, replicas: int, messages: int, size: int, timeout_s: float
) -> tuple[int, float]:
    """Publish ``messages`` of ``size`` bytes to a new stream; returns (acked, seconds)."""
    nc, js = await _connect(urls)
    try:
        subject = await _create_stream(js, stream, replicas)
        payload = os.urandom(size)
        sent = 0
        start = time.perf_counter()
        deadline = start + timeout_s
        while sent < messages and time.perf_counter() < deadline:
            n = min(PUBLISH_BATCH, messages - sent)
            await asyncio.gather(*(js.publish(subject, payload, stream=stream) for _ in range(n)))
            sent += n
        return sent, time.perf_counter() - start
    finally:
        await nc.close()


async def publish_async_throughput(
    urls: list[str], stream: str, replicas: int, messages: int, size: int, timeout_s: float
) -> tuple[int, float]:
    """Like ``publish_throughput`` with nats-py's ``publish_async`` (its bounded window of pending acks)."""
    nc, js = await _connect(urls)
    try:
        subject = await _create_stream(js, stream, replicas)
        payload = os.urandom(size)
        acks: list[asyncio.Future[PubAck]] = []
        start = time.perf_counter()
        deadline = start + timeout_s
        for _ in range(messages):
            if time.perf_counter() > deadline:
                break
            acks.append(await js.publish_async(subject, payload, stream=stream))
        await asyncio.wait_for(asyncio.gather(*acks), max(1.0, deadline - time.perf_counter()))
        return len(acks), time.perf_counter() - start
    finally:
        await nc.close()


async def fetch_throughput(urls: list[str], stream: str, messages: int, timeout_s: float) -> tuple[int, int, float]:
    """Read ``stream`` from the start with a pull consumer: (messages, payload bytes, seconds).

    The clock runs from the first fetch to the last, and every payload is touched,
    as in side_by_side.caudal_consume.
    """
    nc, js = await _connect(urls)
    try:
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL)
        sub = await js.pull_subscribe(stream, durable="bench-fetch", stream=stream, config=config)
        count = payload_bytes = 0
        start = time.perf_counter()
        deadline = start + timeout_s
        while count < messages and time.perf_counter() < deadline:
            try:
                batch = await sub.fetch(FETCH_BATCH, timeout=1)
            except asyncio.TimeoutError:
                continue
            count += len(batch)
            payload_bytes += sum(len(m.data) for m in batch)
        return count, payload_bytes, time.perf_counter() - start
    finally:
        await nc.close()


async def e2e_latencies(
    urls: list[str], stream: str, replicas: int, messages: int, rate: float, size: int
) -> list[float]:
    """Publish at ``rate`` msg/s and return each message's publish-to-delivery latency (ms)."""
    nc, js = await _connect(urls)
    try:
        subject = await _create_stream(js, stream, replicas)
        latencies: list[float] = []
        received_all = asyncio.Event()

        async def on_msg(msg: Msg) -> None:
            latencies.append((time.perf_counter() - float(msg.data[:TIMESTAMP_BYTES])) * 1000)
            if len(latencies) >= messages:
                received_all.set()

        config = ConsumerConfig(ack_policy=AckPolicy.NONE)
        await js.subscribe(subject, stream=stream, cb=on_msg, config=config, deliver_policy=DeliverPolicy.NEW)
        pad = b"x" * max(0, size - TIMESTAMP_BYTES)
        start = time.perf_counter()
        deadline = start + messages / rate + 30
        for i in range(messages):
            if time.perf_counter() > deadline:
                break
            await js.publish(subject, f"{time.perf_counter():24.6f}".encode() + pad, stream=stream)
            ahead = (i + 1) / rate - (time.perf_counter() - start)
            if ahead > 0.0005:
                await asyncio.sleep(ahead)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(received_all.wait(), timeout=30)
        return latencies
    finally:
        await nc.close()
