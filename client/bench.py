"""``caudal bench produce|consume|e2e``: throughput and latency, like Kafka's perf tools.

``produce`` mirrors kafka-producer-perf-test (records, record size, throughput
cap, acks; progress every 5 s, then a summary with latency percentiles);
``consume`` mirrors kafka-consumer-perf-test (``--group G --members N`` runs N
group members, each in its own process, and sums their throughput); ``e2e``
sends at a fixed rate and measures send-to-poll latency in one process (one clock).

``e2e --client asyncio`` runs the same measurement with the asyncio SDK, the
producer and the consumer on one event loop, as an asyncio service would. The
blocking clients each hand every request and response between the caller's
thread and a private I/O thread; on a busy host those thread hand-offs are a
measurable share of the latency (BENCHMARKS.md), and the asyncio SDK has none.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from caudal.client.admin import AdminClient
from caudal.client.aio import AIOConsumer, AIOProducer
from caudal.client.cli_common import add_bootstrap, client_options, fail
from caudal.client.consumer import Consumer
from caudal.client.producer import Producer
from caudal.client.structs import ConsumerRebalanceListener, ConsumerRecord, NewTopic, TopicPartition
from caudal.common import event_loop
from caudal.common.errors import CaudalError, TopicAlreadyExistsError

PROGRESS_EVERY_S = 5.0
LATENCY_SAMPLE_EVERY = 16


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="measure producer, consumer and end-to-end performance")
    modes = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    for name, help_text in (
        ("produce", "producer throughput and ack latency"),
        ("consume", "consumer throughput"),
        ("e2e", "end-to-end latency at a fixed rate"),
    ):
        m = modes.add_parser(name, help=help_text)
        add_bootstrap(m)
        m.add_argument("--topic", default=f"caudal-bench-{name}")
        m.add_argument("--partitions", type=int, default=1, help="partitions when the topic is created (default 1)")
        m.add_argument("--replication-factor", type=int, default=-1)
        m.add_argument("--num-records", type=int, default=1_000_000 if name != "e2e" else 10_000)
        if name != "consume":
            m.add_argument("--record-size", type=int, default=100)
            m.add_argument("--throughput", type=float, default=-1 if name == "produce" else 1000, help="records/s cap; -1 = unlimited")
            m.add_argument("--acks", default="1" if name == "e2e" else "all", choices=["all", "-1", "0", "1"])
            m.add_argument("--linger-ms", type=int, default=0 if name == "e2e" else 5)
            m.add_argument("--batch-size", type=int, default=16384)
            m.add_argument("--compression-type", default=None, choices=["none", "gzip", "snappy", "lz4", "zstd"])
            m.add_argument("--producer-property", action="append", metavar="KEY=VALUE")
            if name == "e2e":
                m.add_argument(
                    "--client", default="blocking", choices=["blocking", "asyncio"],
                    help="blocking Producer/Consumer (default) or AIOProducer/AIOConsumer on one event loop",
                )
        else:
            m.add_argument("--timeout-ms", type=int, default=10_000, help="give up after this long without records")
            m.add_argument("--max-partition-fetch-bytes", type=int, default=1_048_576)
            m.add_argument("--group", default=None, help="consume as members of this consumer group (subscribe)")
            m.add_argument("--members", type=int, default=1, help="group members, one process each (with --group)")
        m.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        _ensure_topic(args)
        return {"produce": _produce, "consume": _consume, "e2e": _e2e}[args.mode](args)
    except CaudalError as e:
        return fail(e)


def _ensure_topic(args: argparse.Namespace) -> None:
    with AdminClient(bootstrap_servers=args.bootstrap_server) as admin:
        try:
            admin.create_topics([NewTopic(args.topic, args.partitions, args.replication_factor)])[args.topic].result()
        except TopicAlreadyExistsError:
            pass


def _producer_options(args: argparse.Namespace) -> dict[str, object]:
    options: dict[str, object] = {
        "bootstrap_servers": args.bootstrap_server, "acks": args.acks, "linger_ms": args.linger_ms,
        "batch_size": args.batch_size, "compression_type": args.compression_type,
    }
    options.update(client_options(args.producer_property, "--producer-property"))
    return options


def _producer(args: argparse.Namespace) -> Producer:
    return Producer(**_producer_options(args))


class Throttle:
    """Kafka's ThroughputThrottler: sleep whenever the sender is ahead of the target rate."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self.start = time.perf_counter()

    def ahead(self, sent: int) -> float:
        """Seconds to sleep before the next send; 0 when less than half a millisecond ahead."""
        if self.per_second <= 0:
            return 0.0
        ahead = sent / self.per_second - (time.perf_counter() - self.start)
        return ahead if ahead > 0.0005 else 0.0

    def wait(self, sent: int) -> None:
        ahead = self.ahead(sent)
        if ahead:
            time.sleep(ahead)


@dataclass
class Stats:
    """Latency samples (ms) and counters, printed in kafka-producer-perf-test's format."""

    start: float = field(default_factory=time.perf_counter)
    window_start: float = field(default_factory=time.perf_counter)
    latencies: list[float] = field(default_factory=list)
    window: list[float] = field(default_factory=list)
    window_records: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, latency_ms: float) -> None:
        with self.lock:
            self.latencies.append(latency_ms)
            self.window.append(latency_ms)

    def progress(self, sent: int, record_size: int) -> None:
        now = time.perf_counter()
        if now - self.window_start < PROGRESS_EVERY_S:
            return
        with self.lock:
            window, self.window = self.window, []
        n = sent - self.window_records
        elapsed = now - self.window_start
        print(_line(n, elapsed, record_size, window), flush=True)
        self.window_start, self.window_records = now, sent


def _line(n: int, elapsed: float, record_size: int, latencies: list[float]) -> str:
    rate = n / elapsed if elapsed > 0 else 0.0
    avg = statistics.fmean(latencies) if latencies else 0.0
    mx = max(latencies) if latencies else 0.0
    return (
        f"{n} records sent, {rate:.1f} records/sec ({rate * record_size / 1_048_576:.2f} MB/sec), "
        f"{avg:.2f} ms avg latency, {mx:.2f} ms max latency."
    )


def _percentiles(latencies: list[float]) -> str:
    if not latencies:
        return "no latency samples"
    s = sorted(latencies)

    def pct(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))]

    return f"{pct(0.5):.2f} ms 50th, {pct(0.95):.2f} ms 95th, {pct(0.99):.2f} ms 99th, {pct(0.999):.2f} ms 99.9th."


def _produce(args: argparse.Namespace) -> int:
    producer = _producer(args)
    payload = os.urandom(args.record_size)
    stats = Stats()
    throttle = Throttle(args.throughput)
    failures: list[Exception] = []

    def sampled(sent_at: float):  # noqa: ANN202 - callback factory
        def done(err: Exception | None, _md: object) -> None:
            if err is not None:
                failures.append(err)
            else:
                stats.record((time.perf_counter() - sent_at) * 1000)

        return done

    send, topic = producer.send, args.topic
    throttled = args.throughput > 0
    try:
        for i in range(args.num_records):
            if i % LATENCY_SAMPLE_EVERY == 0:
                send(topic, payload, on_delivery=sampled(time.perf_counter()))
                stats.progress(i, args.record_size)
            else:
                send(topic, payload)
            if throttled:
                throttle.wait(i + 1)
        producer.flush()
    finally:
        producer.close()
    elapsed = time.perf_counter() - stats.start
    print(_line(args.num_records, elapsed, args.record_size, stats.latencies)[:-1] + ", " + _percentiles(stats.latencies))
    if failures:
        print(f"{len(failures)} sampled sends failed, first: {failures[0]}")
        return 1
    return 0


def _consume(args: argparse.Namespace) -> int:
    if args.group:
        return _consume_group(args)
    consumer = _bench_consumer(args)
    try:
        tps = [TopicPartition(args.topic, p) for p in sorted(consumer.partitions_for_topic(args.topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        started_at = time.strftime("%Y-%m-%d %H:%M:%S")
        count, total_bytes, first, last = _drain(consumer, lambda own: own < args.num_records, args.timeout_ms)
    finally:
        consumer.close()
    return _consume_summary(started_at, count, total_bytes, last - first, args.num_records)


def _bench_consumer(args: argparse.Namespace, **options: object) -> Consumer:
    return Consumer(
        bootstrap_servers=args.bootstrap_server, auto_offset_reset="earliest", max_poll_records=10_000,
        max_partition_fetch_bytes=args.max_partition_fetch_bytes, **options,
    )


def _drain(
    consumer: Consumer, wanted: Callable[[int], bool], timeout_ms: int, on_records: Callable[[int], None] = lambda n: None
) -> tuple[int, int, float, float]:
    """Poll while ``wanted(records so far)`` and records keep coming: (records, bytes, first, last).

    ``first`` is when the poll that returned the first records began, so the time to fetch
    them counts (timing from its return would make the first batch free).
    """
    count = total_bytes = 0
    first = last = time.monotonic()
    idle_since = first
    while wanted(count):
        poll_started = time.monotonic()
        records = consumer.poll(timeout_ms=200)
        now = time.monotonic()
        if not records:
            if (now - idle_since) * 1000 > timeout_ms:
                break
            continue
        if not count:
            first = poll_started
        idle_since = last = now
        count += len(records)
        total_bytes += sum(len(r.value or b"") for r in records)
        on_records(len(records))
    return count, total_bytes, first, last


def _consume_summary(started_at: str, count: int, total_bytes: int, elapsed: float, expected: int) -> int:
    mb = total_bytes / 1_048_576
    if count < expected:
        print("WARNING: exiting before consuming the expected number of records: timeout exceeded.")
    print("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec")
    print(
        f"{started_at}, {time.strftime('%Y-%m-%d %H:%M:%S')}, {mb:.4f}, {mb / elapsed if elapsed else 0:.4f}, "
        f"{count}, {count / elapsed if elapsed else 0:.1f}"
    )
    return 0 if count >= expected else 1


def _consume_group(args: argparse.Namespace) -> int:
    """N members in N processes share the topic. Members hold their partitions paused until
    every one of them has some (so one early member does not read the whole topic alone);
    throughput counts from then to the last record."""
    ctx = multiprocessing.get_context("spawn")
    total = ctx.Value("q", 0)
    held = ctx.Array("i", args.members)
    results = ctx.Queue()
    started_at = time.strftime("%Y-%m-%d %H:%M:%S")
    launched = time.monotonic()
    members = [ctx.Process(target=_group_member, args=(args, i, held, total, results), daemon=True) for i in range(args.members)]
    for member in members:
        member.start()
    outcomes = [results.get(timeout=args.timeout_ms / 1000 + 120) for _ in members]
    for member in members:
        member.join(30)
    count = sum(o[0] for o in outcomes)
    total_bytes = sum(o[1] for o in outcomes)
    first = min(o[2] for o in outcomes)
    last = max(o[3] for o in outcomes)
    print(f"group={args.group} members={args.members} join.time.ms={(first - launched) * 1000:.0f} "
          f"records.per.member={[o[0] for o in outcomes]}")
    return _consume_summary(started_at, count, total_bytes, last - first, args.num_records)


def _group_member(args: argparse.Namespace, index: int, held: "Any", total: "Any", results: "Any") -> None:
    consumer = _bench_consumer(args, group_id=args.group, enable_auto_commit=False, session_timeout_ms=10_000)
    try:
        consumer.subscribe([args.topic], listener=_PauseNewPartitions(consumer))
        deadline = time.monotonic() + args.timeout_ms / 1000 + 60
        while time.monotonic() < deadline:
            consumer.poll(timeout_ms=50)
            held[index] = len(consumer.assignment())
            if all(held[:]):
                break
        start = time.monotonic()
        consumer.resume(*consumer.assignment())

        def add(n: int) -> None:
            with total.get_lock():
                total.value += n

        count, nbytes, _first, last = _drain(consumer, lambda _own: total.value < args.num_records, args.timeout_ms, add)
        results.put((count, nbytes, start, last if count else start))
    finally:
        consumer.close(autocommit=False)


class _PauseNewPartitions(ConsumerRebalanceListener):
    """Keeps assigned partitions paused until the member decides the whole group has formed."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.consumer.pause(*assigned)


class EndToEnd:
    """One e2e run's payloads, latencies and report, whichever client sends and polls.

    Each value starts with its send time (``perf_counter``, 24 ASCII bytes), so
    the latency is read off the record itself. Before the clock starts, the
    producer sends a warm-up record to each partition and waits for their
    acknowledgements, and only then does the consumer take its positions: at a
    fixed rate, every record sent while the producer is still connecting and
    fetching metadata queues behind that one-off start-up, which is not the
    latency being measured.
    """

    STAMP_BYTES = 24
    WARM_UP_KEY = b"caudal-bench-warm-up"

    def __init__(self, args: argparse.Namespace) -> None:
        self.wanted = args.num_records
        self.pad = b"x" * max(0, args.record_size - self.STAMP_BYTES)
        self.rate = args.throughput
        self.latencies: list[float] = []
        self.start()

    def start(self) -> None:
        """Start the clock: pacing, progress and the receive deadline count from here."""
        self.throttle = Throttle(self.rate)
        self.deadline = time.monotonic() + self.wanted / max(self.rate, 1) + 30
        self.last_progress = time.perf_counter()

    def value(self) -> bytes:
        return f"{time.perf_counter():{self.STAMP_BYTES}.6f}".encode() + self.pad

    def received(self, records: list[ConsumerRecord]) -> None:
        now = time.perf_counter()
        self.latencies.extend((now - float(r.value[: self.STAMP_BYTES])) * 1000 for r in records if r.key != self.WARM_UP_KEY)

    def receiving(self) -> bool:
        return len(self.latencies) < self.wanted and time.monotonic() < self.deadline

    def progress(self, sent: int) -> None:
        if time.perf_counter() - self.last_progress >= PROGRESS_EVERY_S:
            self.last_progress = time.perf_counter()
            print(f"{sent} records sent, {len(self.latencies)} received", flush=True)

    def report(self) -> int:
        lat = self.latencies
        print(f"{len(lat)} records received of {self.wanted}, end-to-end latency: {_percentiles(lat)} max {max(lat, default=0):.2f} ms.")
        return 0 if len(lat) == self.wanted else 1


def _e2e(args: argparse.Namespace) -> int:
    run = EndToEnd(args)
    if args.client == "asyncio":
        event_loop.run(_e2e_asyncio(args, run))
    else:
        _e2e_blocking(args, run)
    return run.report()


def _e2e_blocking(args: argparse.Namespace, run: EndToEnd) -> None:
    consumer = Consumer(bootstrap_servers=args.bootstrap_server, auto_offset_reset="latest", fetch_max_wait_ms=500)
    producer = _producer(args)
    try:
        tps = [TopicPartition(args.topic, p) for p in sorted(consumer.partitions_for_topic(args.topic))]
        for warm_up in [producer.send(args.topic, run.value(), key=run.WARM_UP_KEY, partition=tp.partition) for tp in tps]:
            warm_up.get(timeout=30)
        consumer.assign(tps)
        for tp in tps:
            consumer.position(tp)

        def consume() -> None:
            while run.receiving():
                run.received(consumer.poll(timeout_ms=100))

        run.start()
        reader = threading.Thread(target=consume, name="bench-e2e-consumer", daemon=True)
        reader.start()
        for i in range(args.num_records):
            producer.send(args.topic, run.value())
            run.throttle.wait(i + 1)
            run.progress(i + 1)
        producer.flush()
        reader.join()
    finally:
        producer.close()
        consumer.close()


async def _e2e_asyncio(args: argparse.Namespace, run: EndToEnd) -> None:
    async with AIOProducer(**_producer_options(args)) as producer, AIOConsumer(
        bootstrap_servers=args.bootstrap_server, auto_offset_reset="latest", fetch_max_wait_ms=500
    ) as consumer:
        tps = [TopicPartition(args.topic, p) for p in sorted(await consumer.partitions_for_topic(args.topic))]
        warm_ups = [await producer.send(args.topic, run.value(), key=run.WARM_UP_KEY, partition=tp.partition) for tp in tps]
        await asyncio.wait_for(asyncio.gather(*warm_ups), 30)
        await consumer.assign(tps)
        for tp in consumer.assignment():
            await consumer.position(tp)

        async def consume() -> None:
            while run.receiving():
                run.received(await consumer.poll(timeout_ms=100))

        run.start()
        reader = asyncio.ensure_future(consume())
        for i in range(args.num_records):
            await producer.send(args.topic, run.value())
            await asyncio.sleep(run.throttle.ahead(i + 1))
            run.progress(i + 1)
        await producer.flush()
        await reader
