"""Growth: producer throughput and memory against the partition count, and the controller at 10k topics.

Not a test: run it by hand and paste the tables into BENCHMARKS.md (the
performance issue's "Growth" item; target: 1,000 partitions lose at most 20 %
of the producer throughput of 1 partition).

    python tests/bench/growth.py partitions [--counts 1,100,1000] [--records 500000] [--keyed] [--rounds 1]
    python tests/bench/growth.py partitions --rounds 3 --fresh-node --keyed
    python tests/bench/growth.py partitions --bootstrap-server 127.0.0.1:9092 --broker-pid PID
    python tests/bench/growth.py controller [--topics 10000] [--partitions-per-topic 10] [--brokers 3] [--batch-topics 100]

``partitions`` starts one ``caudal dev`` node (free port, temp data dir) unless
``--bootstrap-server`` is given, warms the producer up on a 1-partition topic,
then for every count creates a fresh topic with that many partitions (RF 1)
and sends ``--records`` 100-byte records as fast as it can with acks=1 and
``caudal bench produce``'s other producer settings (linger 5 ms, 16 KiB
batches, idempotent), null keys (the sticky partitioner spreads the batches);
``--keyed`` adds the same run with keys spread over every partition (murmur2).
Throughput is from the first ``send()`` to the end of ``flush()``; the topic's
end offsets must add up to the record count. The node's RSS (VmRSS of its
PID) is read before the topic is created, after it is ready and after the
records are acknowledged; its CPU time (utime+stime) and this process's (the
producer's threads) are read around the send. RSS grows with every run on the
same node (nothing is deleted), so only the deltas compare; ``--fresh-node``
starts a new node per run, and with ``--rounds`` above 1 a summary gives the
medians and the RSS each partition beyond the first adds (fresh nodes only).
Runs on this shared 2-vCPU machine vary by ±20-40 %: use ``--rounds 3``.

``controller`` starts 3 controllers and ``--brokers`` brokers as processes
(``caudal.local_cluster.LocalCluster``), creates ``--topics`` topics of
``--partitions-per-topic`` partitions (RF 1) with ``--batch-topics`` topics
per CreateTopics request, and reports: the create time and rate (and how the
per-request latency grows: the curve table); the time from the last create's
return until every broker's Metadata lists the last topic (each broker is
asked directly over gRPC: the AdminClient sends Metadata to whichever broker
it knows, so it cannot be pinned to one); ``--probes`` single-topic creates
on the empty and on the full cluster (their latency, and the same spread to
every broker); one full Metadata (all topics) from a broker; the RSS of every
controller (the active one marked) and broker before and after; and how long
the cluster takes to stop (the brokers' controlled shutdown).

Every loop is bounded by a count and a deadline; every process started here is
stopped by its PID on the way out (also on errors, Ctrl-C and SIGTERM).
Progress goes to stderr; stdout is the machine header and the tables.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import shlex
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterator
from types import FrameType

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from nodes import DevNode, wait_until  # noqa: E402
from quorum import active_controller  # noqa: E402

from caudal.client import AdminClient, NewTopic, Producer, TopicPartition  # noqa: E402
from caudal.common.grpc_options import GRPC_OPTIONS  # noqa: E402
from caudal.local_cluster import LocalCluster  # noqa: E402
from caudal.v1 import broker_pb2 as pb  # noqa: E402
from caudal.v1 import broker_pb2_grpc  # noqa: E402

RECORD_SIZE = 100
SAMPLE_EVERY = 16
"""Every 16th send carries a delivery callback (as in ``caudal bench produce``) to catch failures."""
READY_TIMEOUT_S = 120.0
POLL_S = 0.01
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the machine and the processes ------------------------------------------


def machine_header() -> list[str]:
    """Command, date and machine, so a table pasted into BENCHMARKS.md says where it came from."""
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "unknown CPU")
    meminfo = Path("/proc/meminfo").read_text()
    total = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")), 0)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"command: python {shlex.join(sys.argv)}",
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        (f"machine: nproc {len(os.sched_getaffinity(0))}, {model}, {total / MIB:.1f} GiB RAM, "
         f"{platform.system()} {platform.release()}, load average at start {load}"),
        (f"software: caudal {importlib.metadata.version('caudal')}, Python {platform.python_version()}, "
         f"grpcio {importlib.metadata.version('grpcio')}"),
    ]


def rss_mib(pid: int | None) -> float | None:
    """VmRSS of ``pid`` in MiB (None without a PID or when the process is gone)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds used so far by ``pid`` (all its threads)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def fmt(value: float | None, spec: str = ",.1f") -> str:
    return "—" if value is None else format(value, spec)


def _terminated(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(143)  # unwinds the finally blocks, which stop every node by PID


# --- partitions mode ---------------------------------------------------------


@dataclass
class ProduceRun:
    partitions: int
    keyed: bool
    records: int
    seconds: float = 0.0
    acked: int = 0
    failures: int = 0
    first_failure: str = ""
    rss_before: float | None = None
    rss_created: float | None = None
    rss_after: float | None = None
    broker_cpu: float | None = None
    client_cpu: float = 0.0
    create_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


@contextlib.contextmanager
def dev_node(data_dir: Path) -> Iterator[DevNode]:
    """A ``caudal dev`` node on a free port; stopped by its PID on the way out."""
    node = DevNode(data_dir)
    try:
        yield node.start(READY_TIMEOUT_S)
    finally:
        node.stop()


def create_ready(admin: AdminClient, topic: str, partitions: int, replication_factor: int = 1) -> float:
    """Create ``topic`` and wait until every partition has a leader; seconds taken."""
    start = time.perf_counter()
    admin.create_topics([NewTopic(topic, partitions, replication_factor)])[topic].result()

    def led() -> bool:
        parts = admin.describe_topics([topic])[topic].partitions
        return len(parts) == partitions and all(p.leader >= 0 for p in parts)

    wait_until(led, READY_TIMEOUT_S, 0.05, what=f"leaders for all {partitions} partitions of {topic}")
    return time.perf_counter() - start


def produce(bootstrap: str, topic: str, records: int, keys: list[bytes] | None, run: ProduceRun) -> None:
    """Send ``records`` 100-byte records (keys cycled from ``keys``, or null) and flush; fills ``run``."""
    payload = os.urandom(RECORD_SIZE)
    failures: list[BaseException] = []

    def done(err: Exception | None, _md: object) -> None:
        if err is not None:
            failures.append(err)

    producer = Producer(bootstrap_servers=bootstrap, acks=1, linger_ms=5, batch_size=16384)
    try:
        producer.partitions_for(topic)  # metadata outside the clock, as a long-lived producer has it
        send = producer.send
        start = time.perf_counter()
        if keys is None:
            for i in range(records):
                if i % SAMPLE_EVERY == 0:
                    send(topic, payload, on_delivery=done)
                else:
                    send(topic, payload)
        else:
            nkeys = len(keys)
            for i in range(records):
                if i % SAMPLE_EVERY == 0:
                    send(topic, payload, keys[i % nkeys], on_delivery=done)
                else:
                    send(topic, payload, keys[i % nkeys])
        producer.flush(timeout=60 + records / 1000)
        run.seconds = time.perf_counter() - start
    finally:
        producer.close(timeout=30)
    run.failures = len(failures)
    run.first_failure = f"{type(failures[0]).__name__}: {failures[0]}" if failures else ""


def end_offsets(admin: AdminClient, topic: str, partitions: int) -> int:
    ends = admin.list_offsets({TopicPartition(topic, p): -1 for p in range(partitions)})
    return sum(ends.values())


def spread_keys(partitions: int) -> list[bytes]:
    """Enough distinct keys that murmur2 puts some on every partition (checked by the end offsets)."""
    return [b"key-%08d" % i for i in range(max(256, 8 * partitions))]


def one_run(bootstrap: str, pid: int | None, partitions: int, keyed: bool, records: int, tag: str) -> ProduceRun:
    run = ProduceRun(partitions, keyed, records)
    topic = f"growth-{tag}-p{partitions}-{'keyed' if keyed else 'null'}"
    with AdminClient(bootstrap_servers=bootstrap, request_timeout_ms=120_000) as admin:
        run.rss_before = rss_mib(pid)
        run.create_s = create_ready(admin, topic, partitions)
        time.sleep(1.0)
        run.rss_created = rss_mib(pid)
        cpu0, own0 = cpu_s(pid), time.process_time()
        produce(bootstrap, topic, records, spread_keys(partitions) if keyed else None, run)
        cpu1, run.client_cpu = cpu_s(pid), time.process_time() - own0
        run.broker_cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
        time.sleep(1.0)
        run.rss_after = rss_mib(pid)
        run.acked = end_offsets(admin, topic, partitions)
    return run


def partitions_mode(args: argparse.Namespace) -> int:
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    variants = [False, True] if args.keyed else [False]
    plan = [(r, c, k) for r in range(args.rounds) for k in variants for c in counts]
    runs: list[ProduceRun] = []
    with tempfile.TemporaryDirectory(prefix="growth-") as tmp, contextlib.ExitStack() as stack:
        node: DevNode | None = None
        if args.bootstrap_server:
            warm_up(args.bootstrap_server, args.warmup_records)
        for i, (r, count, keyed) in enumerate(plan):
            if args.bootstrap_server:
                bootstrap, pid = args.bootstrap_server, args.broker_pid
            else:
                if node is None or args.fresh_node:
                    stack.close()  # stops the previous node (fresh-node runs)
                    node = stack.enter_context(dev_node(Path(tmp) / f"dev-{i}"))
                    progress(f"started caudal dev pid {node.pid} at {node.bootstrap}")
                    warm_up(node.bootstrap, args.warmup_records)
                bootstrap, pid = node.bootstrap, node.pid
            progress(f"round {r + 1}: {count} partitions, {'keyed' if keyed else 'null keys'}, {args.records} records ...")
            run = one_run(bootstrap, pid, count, keyed, args.records, f"{int(time.time())}-r{r}")
            progress(
                f"  {run.rate:,.0f} records/s ({run.seconds:.1f} s), end offsets {run.acked}/{run.records}, "
                f"RSS {fmt(run.rss_before)} -> {fmt(run.rss_created)} -> {fmt(run.rss_after)} MiB, "
                f"CPU broker {fmt(run.broker_cpu, '.1f')} s, client {run.client_cpu:.1f} s, create {run.create_s:.2f} s"
                + (f", {run.failures} sampled failures, first: {run.first_failure}" if run.failures else "")
            )
            runs.append(run)
    print("\n".join(args.header))
    print(f"workload: {args.records:,} records of {RECORD_SIZE} bytes per run, acks=1, linger 5 ms, 16 KiB batches, "
          f"idempotent; one fresh RF=1 topic per run; {'a fresh node per run' if args.fresh_node else 'one node for all runs'}\n")
    print("\n".join(partitions_table(runs, args.rounds, args.fresh_node and not args.bootstrap_server)))
    return 0 if all(r.acked == r.records and not r.failures for r in runs) else 1


def warm_up(bootstrap: str, records: int) -> None:
    if records <= 0:
        return
    progress(f"warm-up: {records} records to a 1-partition topic")
    with AdminClient(bootstrap_servers=bootstrap) as admin:
        topic = f"growth-warmup-{int(time.time() * 1000)}"
        create_ready(admin, topic, 1)
    produce(bootstrap, topic, records, None, ProduceRun(1, False, records))


def partitions_table(runs: list[ProduceRun], rounds: int, fresh_node: bool) -> list[str]:
    def median(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    def same(count: int, keyed: bool) -> list[ProduceRun]:
        return [r for r in runs if r.partitions == count and r.keyed == keyed]

    baseline = {keyed: median([r.rate for r in same(1, keyed)]) for keyed in (False, True)}

    def relative(rate: float, keyed: bool) -> str:
        base = baseline[keyed]
        return f"{rate / base * 100:.0f} %" if base else "—"

    lines = [
        ("| partitions | keys | records/s | MB/s | vs 1 partition (median) | CPU s: broker / client | topic ready s "
         "| RSS before (MiB) | after create | after produce | Δ create / partition (KiB) | Δ total / partition (KiB) | end offsets |"),
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        d_create = None if r.rss_created is None or r.rss_before is None else (r.rss_created - r.rss_before) * 1024 / r.partitions
        d_total = None if r.rss_after is None or r.rss_before is None else (r.rss_after - r.rss_before) * 1024 / r.partitions
        ok = "ok" if r.acked == r.records and not r.failures else f"{r.acked}/{r.records}, {r.failures} failed: {r.first_failure}"
        lines.append(
            f"| {r.partitions:,} | {'keyed' if r.keyed else 'null'} | {r.rate:,.0f} | {r.rate * RECORD_SIZE / MIB:.1f} "
            f"| {relative(r.rate, r.keyed)} | {fmt(r.broker_cpu)} / {r.client_cpu:.1f} | {r.create_s:.2f} "
            f"| {fmt(r.rss_before)} | {fmt(r.rss_created)} | {fmt(r.rss_after)} | {fmt(d_create)} | {fmt(d_total)} | {ok} |"
        )
    if rounds > 1:
        lines += [
            "",
            ("| partitions | keys | runs | median records/s | vs 1 partition | median broker CPU s | median RSS after produce (MiB) "
             "| per partition beyond the first (KiB) |"),
            "|---:|---|---:|---:|---:|---:|---:|---:|",
        ]
        for keyed in sorted({r.keyed for r in runs}):
            one = median([r.rss_after for r in same(1, keyed)])
            for count in dict.fromkeys(r.partitions for r in runs):
                group = same(count, keyed)
                if not group:
                    continue
                rate, rss = median([r.rate for r in group]), median([r.rss_after for r in group])
                # only a fresh node per run makes RSS comparable across runs
                extra = None if not fresh_node or count == 1 or one is None or rss is None else (rss - one) * 1024 / (count - 1)
                lines.append(
                    f"| {count:,} | {'keyed' if keyed else 'null'} | {len(group)} | {fmt(rate, ',.0f')} | {relative(rate or 0.0, keyed)} "
                    f"| {fmt(median([r.broker_cpu for r in group]))} | {fmt(rss)} | {fmt(extra)} |"
                )
    return lines


# --- controller mode ---------------------------------------------------------


@dataclass
class Checkpoint:
    topics: int
    partitions: int
    elapsed_s: float
    batch_ms: list[float]
    rss: dict[str, float | None]


@dataclass
class Probes:
    """Single-topic creates: each one's latency, and when the last broker listed it after the create returned."""

    create_ms: list[float] = field(default_factory=list)
    spread_s: list[float | None] = field(default_factory=list)


@dataclass
class ControllerResult:
    requested: int
    created: int = 0
    errors: int = 0
    error_texts: list[str] = field(default_factory=list)
    create_s: float = 0.0
    batch_ms: list[float] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    propagation: dict[str, float | None] = field(default_factory=dict)
    probe_empty: Probes | None = None
    probe_full: Probes | None = None
    stop_s: float | None = None
    full_metadata: tuple[float, int, int] | None = None
    full_metadata_error: str = ""
    rss_before: dict[str, float | None] = field(default_factory=dict)
    rss_after: dict[str, float | None] = field(default_factory=dict)
    active: int | None = None
    stopped_early: str = ""


def node_rss(cluster: LocalCluster) -> dict[str, float | None]:
    return {n.name: rss_mib(n.pid) if n.running else None for n in [*cluster.controllers.values(), *cluster.brokers.values()]}


class BrokerProbe:
    """Metadata straight from one broker (its own view), over its own gRPC channel."""

    def __init__(self, name: str, address: str) -> None:
        self.name = name
        self.channel = grpc.insecure_channel(address, options=GRPC_OPTIONS)
        self.stub = broker_pb2_grpc.BrokerStub(self.channel)

    def knows(self, topic: str) -> bool:
        try:
            r = self.stub.Metadata(pb.MetadataRequest(topics=[topic]), timeout=5)
        except grpc.RpcError:
            return False
        return bool(r.topics) and r.topics[0].error_code == 0 and len(r.topics[0].partitions) > 0

    def all_topics(self, timeout_s: float) -> tuple[float, int, int]:
        """One Metadata for every topic: (seconds, response bytes, partitions listed)."""
        start = time.perf_counter()
        r = self.stub.Metadata(pb.MetadataRequest(all_topics=True), timeout=timeout_s)
        took = time.perf_counter() - start
        return took, r.ByteSize(), sum(len(t.partitions) for t in r.topics)

    def close(self) -> None:
        self.channel.close()


def propagation(probes: list[BrokerProbe], topic: str, since: float, timeout_s: float) -> dict[str, float | None]:
    """Seconds from ``since`` until each broker lists ``topic`` (None: not within ``timeout_s``)."""
    seen: dict[str, float | None] = {p.name: None for p in probes}
    deadline = since + timeout_s
    while time.perf_counter() < deadline and any(v is None for v in seen.values()):
        for p in probes:
            if seen[p.name] is None and p.knows(topic):
                seen[p.name] = time.perf_counter() - since
        if any(v is None for v in seen.values()):
            time.sleep(POLL_S)
    return seen


def probe_topics(admin: AdminClient, probes: list[BrokerProbe], prefix: str, partitions: int, count: int, timeout_s: float) -> Probes:
    """Create ``count`` topics one at a time (0.2 s apart), timing each create and its spread to every broker."""
    out = Probes()
    for i in range(count):
        name = f"{prefix}-{i}"
        start = time.perf_counter()
        admin.create_topics([NewTopic(name, partitions, 1)])[name].result()
        returned = time.perf_counter()
        out.create_ms.append((returned - start) * 1000)
        seen = propagation(probes, name, returned, timeout_s)
        out.spread_s.append(None if None in seen.values() else max(v for v in seen.values() if v is not None))
        time.sleep(0.2)
    return out


def create_all(admin: AdminClient, cluster: LocalCluster, args: argparse.Namespace, res: ControllerResult) -> str | None:
    """Create the topics in batches; returns the name of the last topic created."""
    total = args.topics
    batches = (total + args.batch_topics - 1) // args.batch_topics
    every = max(1, batches // args.curve_points)
    last: str | None = None
    start = time.perf_counter()
    deadline = start + args.max_create_s
    window: list[float] = []
    for b in range(batches):
        if time.perf_counter() > deadline:
            res.stopped_early = f"stopped after {args.max_create_s:.0f} s (--max-create-s) with {res.created} topics"
            break
        names = [f"g{i:06d}" for i in range(b * args.batch_topics, min(total, (b + 1) * args.batch_topics))]
        t0 = time.perf_counter()
        try:
            futures = admin.create_topics([NewTopic(n, args.partitions_per_topic, 1) for n in names], timeout_ms=args.request_timeout_ms)
        except Exception as e:  # reported with its text; a few are tolerated, then the run stops
            res.errors += len(names)
            res.error_texts.append(f"batch {b} ({names[0]}..): {type(e).__name__}: {e}")
            progress(f"  {res.error_texts[-1]}")
            if len(res.error_texts) >= args.max_errors:
                res.stopped_early = f"stopped after {len(res.error_texts)} failed requests"
                break
            continue
        ms = (time.perf_counter() - t0) * 1000
        res.batch_ms.append(ms)
        window.append(ms)
        for n, f in futures.items():
            err = f.exception()
            if err is None:
                res.created += 1
                last = n
            else:
                res.errors += 1
                if len(res.error_texts) < 10:
                    res.error_texts.append(f"{n}: {type(err).__name__}: {err}")
        if (b + 1) % every == 0 or b == batches - 1:
            cp = Checkpoint(res.created, res.created * args.partitions_per_topic, time.perf_counter() - start, window, node_rss(cluster))
            res.checkpoints.append(cp)
            window = []
            progress(
                f"  {cp.topics:,} topics / {cp.partitions:,} partitions in {cp.elapsed_s:.1f} s; "
                f"request median {statistics.median(cp.batch_ms):.0f} ms; "
                + ", ".join(f"{k} {fmt(v, '.0f')}" for k, v in cp.rss.items()) + " MiB"
            )
    res.create_s = time.perf_counter() - start
    return last


def controller_mode(args: argparse.Namespace) -> int:
    res = ControllerResult(args.topics)
    probes: list[BrokerProbe] = []
    with tempfile.TemporaryDirectory(prefix="growth-ctl-") as tmp:
        cluster = LocalCluster(Path(tmp), controllers=3, brokers=args.brokers)
        try:
            progress(f"starting 3 controllers + {args.brokers} brokers")
            cluster.start()
            res.active = wait_until(lambda: active_controller(cluster), 60, 0.05, what="an active controller")
            probes = [BrokerProbe(n.name, n.address) for n in cluster.brokers.values()]
            first_broker = next(iter(cluster.brokers.values())).address
            with AdminClient(bootstrap_servers=first_broker, request_timeout_ms=args.request_timeout_ms) as admin:
                wait_until(lambda: len(admin.describe_cluster().brokers) == args.brokers, 60, 0.1, what="every broker registered")
                time.sleep(2.0)
                res.rss_before = node_rss(cluster)
                progress(f"{args.probes} probe topics on the empty cluster")
                res.probe_empty = probe_topics(
                    admin, probes, "growth-probe-empty", args.partitions_per_topic, args.probes, args.propagation_timeout_s
                )
                progress(f"creating {args.topics:,} topics x {args.partitions_per_topic} partitions, {args.batch_topics} per request")
                last = create_all(admin, cluster, args, res)
                if last is not None:
                    res.propagation = propagation(probes, last, time.perf_counter(), args.propagation_timeout_s)
                    progress(f"  last topic {last} on every broker: {res.propagation}")
                try:
                    res.full_metadata = probes[0].all_topics(args.request_timeout_ms / 1000)
                except grpc.RpcError as e:
                    res.full_metadata_error = f"{e.code().name}: {e.details()}"
                progress(f"{args.probes} probe topics on the full cluster")
                try:
                    res.probe_full = probe_topics(
                        admin, probes, "growth-probe-full", args.partitions_per_topic, args.probes, args.propagation_timeout_s
                    )
                except Exception as e:  # reported, not fatal: the rest of the results still print
                    res.error_texts.append(f"probe on the full cluster: {type(e).__name__}: {e}")
                time.sleep(2.0)
                res.rss_after = node_rss(cluster)
                res.active = active_controller(cluster) or res.active
        finally:
            for p in probes:
                p.close()
            progress("stopping the cluster (controlled shutdown)")
            stopping = time.perf_counter()
            cluster.stop()
            res.stop_s = time.perf_counter() - stopping
    print("\n".join(args.header))
    print(f"cluster: 3 controllers + {args.brokers} brokers, all on this machine; RF 1; "
          f"{args.batch_topics} topics per CreateTopics request\n")
    print("\n".join(controller_tables(res, args)))
    return 0 if res.created == args.topics and not res.errors else 1


def _times(seen: dict[str, float | None]) -> str:
    if not seen:
        return "—"
    values = [v for v in seen.values() if v is not None]
    worst = "not seen" if len(values) < len(seen) else f"{max(values):.3f} s"
    each = ", ".join(f"{k} {fmt(v, '.3f')}" for k, v in seen.items())
    return f"max {worst} ({each})"


def _probes(p: Probes | None) -> str:
    if p is None or not p.create_ms:
        return "—"
    spread = [v for v in p.spread_s if v is not None]
    missed = len(p.spread_s) - len(spread)
    return (
        f"create median {statistics.median(p.create_ms):.0f} ms (max {max(p.create_ms):.0f}); "
        + (f"every broker +{statistics.median(spread):.3f} s median (max {max(spread):.3f})" if spread else "never on every broker")
        + (f", {missed} not seen within the deadline" if missed else "")
        + f"; {len(p.create_ms)} topics"
    )


def controller_tables(res: ControllerResult, args: argparse.Namespace) -> list[str]:
    ppt = args.partitions_per_topic
    parts = res.created * ppt
    rate = res.created / res.create_s if res.create_s else 0.0
    first = res.checkpoints[0].batch_ms if res.checkpoints else []
    last = res.checkpoints[-1].batch_ms if res.checkpoints else []
    lines = [
        "| what | result |",
        "|---|---|",
        f"| topics created | {res.created:,} of {res.requested:,} ({parts:,} partitions, {ppt} per topic, RF 1); {res.errors} errors |",
        f"| create time | {res.create_s:.1f} s: {rate:,.0f} topics/s, {rate * ppt:,.0f} partitions/s |",
        (f"| CreateTopics request ({args.batch_topics} topics), median first → last {100 // max(1, args.curve_points)} % "
         f"| {fmt(statistics.median(first) if first else None, '.0f')} ms → {fmt(statistics.median(last) if last else None, '.0f')} ms |"),
        f"| last topic listed by every broker, after its create returned | {_times(res.propagation)} |",
        f"| one more topic ({ppt} partitions), empty cluster: create; then listed by every broker | {_probes(res.probe_empty)} |",
        f"| one more topic ({ppt} partitions), full cluster: create; then listed by every broker | {_probes(res.probe_full)} |",
    ]
    if res.full_metadata:
        took, size, listed = res.full_metadata
        lines.append(f"| one Metadata of all topics from broker-1 | {took:.2f} s, {size / MIB:.1f} MiB, {listed:,} partitions |")
    elif res.full_metadata_error:
        lines.append(f"| one Metadata of all topics from broker-1 | failed: {res.full_metadata_error} |")
    for name in res.rss_before:
        active = " (active)" if res.active is not None and name == f"controller-{res.active}" else ""
        before, after = res.rss_before.get(name), res.rss_after.get(name)
        per = None if before is None or after is None or not parts else (after - before) * MIB / parts
        lines.append(f"| RSS {name}{active} | {fmt(before)} → {fmt(after)} MiB ({fmt(per, ',.0f')} bytes per partition) |")
    lines.append(f"| stopping the cluster (brokers' controlled shutdown, then controllers) | {fmt(res.stop_s, '.1f')} s |")
    if res.stopped_early:
        lines.append(f"| note | {res.stopped_early} |")
    lines += ["", "Curve (each row: the requests since the previous row):", ""]
    names = list(res.checkpoints[0].rss) if res.checkpoints else []
    lines.append("| topics | partitions | elapsed s | request median ms | request max ms | " + " | ".join(f"{n} RSS MiB" for n in names) + " |")
    lines.append("|---:|---:|---:|---:|---:|" + "---:|" * len(names))
    for cp in res.checkpoints:
        lines.append(
            f"| {cp.topics:,} | {cp.partitions:,} | {cp.elapsed_s:.1f} | {statistics.median(cp.batch_ms):.0f} | {max(cp.batch_ms):.0f} | "
            + " | ".join(fmt(cp.rss[n], ".0f") for n in names) + " |"
        )
    if res.error_texts:
        lines += ["", *(f"error — {t}" for t in res.error_texts)]
    return lines


# --- main --------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True)
    p = modes.add_parser("partitions", help="producer throughput and broker RSS for 1, 100, 1,000 partitions")
    p.add_argument("--counts", default="1,100,1000", help="partition counts, comma-separated (default 1,100,1000)")
    p.add_argument("--records", type=int, default=500_000, help="records per run (default 500000)")
    p.add_argument("--keyed", action="store_true", help="also run with keys spread over every partition")
    p.add_argument("--rounds", type=int, default=1, help="repeat every count this many times (default 1)")
    p.add_argument("--fresh-node", action="store_true", help="a new caudal dev node for every run (own node only)")
    p.add_argument("--warmup-records", type=int, default=20_000, help="sent to a 1-partition topic first (default 20000)")
    p.add_argument("--bootstrap-server", default=None, help="use this node instead of starting one")
    p.add_argument("--broker-pid", type=int, default=None, help="with --bootstrap-server: the node's PID, for RSS and CPU")
    c = modes.add_parser("controller", help="create many topics; create time, propagation, controller RSS")
    c.add_argument("--topics", type=int, default=10_000)
    c.add_argument("--partitions-per-topic", type=int, default=10)
    c.add_argument("--brokers", type=int, default=3, choices=[1, 2, 3])
    c.add_argument("--batch-topics", type=int, default=100, help="topics per CreateTopics request (default 100)")
    c.add_argument("--request-timeout-ms", type=int, default=60_000)
    c.add_argument("--max-create-s", type=float, default=900, help="stop creating after this long (default 900)")
    c.add_argument("--propagation-timeout-s", type=float, default=120)
    c.add_argument("--probes", type=int, default=5, help="single-topic creates timed on the empty and the full cluster (default 5)")
    c.add_argument("--max-errors", type=int, default=3, help="failed requests tolerated before stopping (default 3)")
    c.add_argument("--curve-points", type=int, default=10, help="rows in the curve table (default 10)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminated)
    args.header = machine_header()  # before the run: the load average is the machine's, not ours
    run: Callable[[argparse.Namespace], int] = partitions_mode if args.mode == "partitions" else controller_mode
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
