"""Side-by-side benchmark: caudal against NATS JetStream, same machine, same run (issue #8).

Why: issue #8 sets caudal's speed targets as multiples of NATS JetStream measured
here, and numbers taken on different days or machines do not compare. This
script runs both systems one after the other in one invocation, with the same
100-byte messages and the same measuring method, and prints one table with
the caudal/NATS ratio of each workload. It is not part of the test suite: run
it by hand and copy the table (with its header) into BENCHMARKS.md.

    python tests/bench/side_by_side.py [--messages 200000] [--latency-messages 10000] [--skip-cluster]

What it does:

* finds ``nats-server`` or installs the Debian package (``apt-get``, with sudo
  when not root), and installs ``nats-py`` with pip when it is missing;
* single node: ``caudal dev`` against one JetStream server (R1); then, unless
  ``--skip-cluster``, a 3-controller 3-broker caudal cluster (RF=3, acks=all)
  against a 3-node JetStream cluster (R3). Every server runs from its own temp
  dir on free loopback ports, only while its own workloads run (so the other
  system's idle processes do not share the CPUs), and is stopped by PID on the
  way out, also on errors, Ctrl-C and SIGTERM;
* workloads: producer throughput, consumer throughput (reading what the
  producer wrote) and end-to-end latency p50/p99 at 1,000 msg/s. caudal's
  producer and e2e sides are ``caudal bench produce|e2e`` run as subprocesses
  (their summary lines parsed), its consumer side is the SDK in this process
  (see ``caudal_consume``); NATS's side is ``nats_runner.py`` beside this file,
  which copies those clocks (see its docstring).

Every loop is bounded by a message count and a deadline; a workload that fails
or comes up short shows in the table and its reason is printed below it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import Callable, Iterator

from caudal.client import Consumer, TopicPartition
from caudal.local_cluster import LocalCluster, NodeProcess, free_port

RECORD_SIZE = 100
E2E_RATE = 1000.0
SERVER_PATHS = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")
"""Where apt puts ``nats-server``; /usr/sbin is not on a non-root user's PATH."""

PRODUCE_SUMMARY = re.compile(r"^(\d+) records sent, ([\d.]+) records/sec .* ms 50th", re.M)
E2E_SUMMARY = re.compile(r"(\d+) records received of \d+, end-to-end latency: ([\d.]+) ms 50th, [\d.]+ ms 95th, ([\d.]+) ms 99th")


@dataclass
class Measurement:
    """One cell of the table: msg/s or ms, or None with the reason the run gave none."""

    value: float | None = None
    problem: str = ""


@dataclass
class Row:
    workload: str
    unit: str
    caudal: Measurement
    nats: Measurement


@dataclass(frozen=True)
class Setup:
    """One caudal/NATS pair: how many replicas and which acks caudal's producers use."""

    name: str
    replicas: int
    acks: str


def progress(text: str) -> None:
    """Progress goes to stderr so stdout is just the header and the table."""
    print(text, file=sys.stderr, flush=True)


# --- tools -------------------------------------------------------------------


def find_nats_server() -> str | None:
    return shutil.which("nats-server", path=os.pathsep.join([os.environ.get("PATH", ""), *SERVER_PATHS]))


def install_nats() -> str:
    """``nats-server`` from the Debian package and ``nats-py`` from PyPI, unless already here."""
    server = find_nats_server()
    if server is None:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        apt = [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
        progress("installing nats-server (apt-get)")
        if subprocess.run([*apt, "install", "-y", "-qq", "nats-server"], timeout=600).returncode != 0:
            subprocess.run([*apt, "update", "-qq"], check=True, timeout=600)
            subprocess.run([*apt, "install", "-y", "-qq", "nats-server"], check=True, timeout=600)
        server = find_nats_server()
        if server is None:
            raise SystemExit("nats-server installed but not found on PATH or in " + ", ".join(SERVER_PATHS))
    if importlib.util.find_spec("nats") is None:
        progress("installing nats-py (pip)")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "nats-py"], check=True, timeout=600)
        importlib.invalidate_caches()
    return server


def load_nats_runner() -> ModuleType:
    """Imported only now: it imports nats-py, which ``install_nats`` may just have installed."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    return importlib.import_module("nats_runner")


# --- caudal ------------------------------------------------------------------


@contextlib.contextmanager
def caudal_dev(data_dir: Path) -> Iterator[str]:
    """``caudal dev`` on a free port; yields its bootstrap address and stops it by PID."""
    node = NodeProcess("dev", ["dev", "--data-dir", str(data_dir / "dev"), "--port", str(free_port())], data_dir / "dev.log")
    try:
        node.start()
        yield node.wait_ready()
    finally:
        node.stop()


@contextlib.contextmanager
def caudal_cluster(data_dir: Path) -> Iterator[str]:
    """3 controllers + 3 brokers as processes; yields the brokers' bootstrap list."""
    cluster = LocalCluster(data_dir, controllers=3, brokers=3)
    try:
        yield cluster.start().bootstrap
    finally:
        cluster.stop()


def caudal_bench(mode: str, bootstrap: str, options: list[str], pattern: re.Pattern[str], timeout_s: float) -> tuple[re.Match[str], str]:
    """Run ``caudal bench MODE``: its summary line matched by ``pattern``, and a problem if it exited non-zero."""
    command = [sys.executable, "-m", "caudal", "bench", mode, "--bootstrap-server", bootstrap, *options]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    last_lines = " / ".join((done.stdout + done.stderr).strip().splitlines()[-2:])
    match = pattern.search(done.stdout)
    if match is None:
        raise RuntimeError(f"no summary line from caudal bench {mode} (exit {done.returncode}): {last_lines}")
    return match, "" if done.returncode == 0 else f"caudal bench {mode} exited {done.returncode}: {last_lines}"


def short(count: int, expected: int) -> str:
    return "" if count >= expected else f"only {count} of {expected} messages"


def consumed(count: int, payload_bytes: int, seconds: float, expected: int) -> Measurement:
    """A consumer's rate; the payload bytes it read must add up to its message count."""
    problem = short(count, expected)
    if not problem and payload_bytes != count * RECORD_SIZE:
        problem = f"read {payload_bytes} payload bytes for {count} messages of {RECORD_SIZE}"
    return Measurement(count / seconds if count else 0.0, problem)


def caudal_consume(bootstrap: str, topic: str, messages: int, timeout_s: float) -> tuple[int, int, float]:
    """Read ``topic`` from the start: (records, value bytes, seconds from the first poll to the last).

    In-process rather than ``caudal bench consume``, whose clock starts when the first
    poll returns and so leaves that poll's records out of the time (a whole small run);
    here, as in ``nats_runner.fetch_throughput``, the first fetch is timed too. The
    consumer settings are ``caudal bench consume``'s, and both sides touch every value.
    """
    consumer = Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", max_poll_records=10_000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        for tp in partitions:
            consumer.position(tp)
        count = value_bytes = 0
        start = time.perf_counter()
        deadline = start + timeout_s
        while count < messages and time.perf_counter() < deadline:
            records = consumer.poll(timeout_ms=200)
            count += len(records)
            value_bytes += sum(len(r.value or b"") for r in records)
        return count, value_bytes, time.perf_counter() - start
    finally:
        consumer.close()


def run_caudal(bootstrap: str, setup: Setup, messages: int, latency_messages: int) -> dict[str, Measurement]:
    """Produce, consume and e2e on one caudal node or cluster (produce and e2e by ``caudal bench``)."""
    common = ["--replication-factor", str(setup.replicas), "--record-size", str(RECORD_SIZE), "--acks", setup.acks]
    budget = throughput_budget_s(messages)

    def produce() -> dict[str, Measurement]:
        options = ["--topic", "sbs-produce", "--num-records", str(messages), *common]
        m, failed = caudal_bench("produce", bootstrap, options, PRODUCE_SUMMARY, budget)
        return {"produce": Measurement(float(m.group(2)), short(int(m.group(1)), messages) or failed)}

    def consume() -> dict[str, Measurement]:
        return {"consume": consumed(*caudal_consume(bootstrap, "sbs-produce", messages, budget), messages)}

    def e2e() -> dict[str, Measurement]:
        options = ["--topic", "sbs-e2e", "--num-records", str(latency_messages), "--throughput", str(E2E_RATE), "--linger-ms", "0", *common]
        m, failed = caudal_bench("e2e", bootstrap, options, E2E_SUMMARY, latency_budget_s(latency_messages))
        problem = short(int(m.group(1)), latency_messages) or failed
        return {"p50": Measurement(float(m.group(2)), problem), "p99": Measurement(float(m.group(3)), problem)}

    name = f"caudal {setup.name}"
    return {
        **measured(f"{name}: produce", ["produce"], produce),
        **measured(f"{name}: consume", ["consume"], consume),
        **measured(f"{name}: e2e", ["p50", "p99"], e2e),
    }


# --- NATS --------------------------------------------------------------------


def run_nats(runner: ModuleType, urls: list[str], setup: Setup, messages: int, latency_messages: int) -> dict[str, Measurement]:
    """The same workloads on JetStream through ``nats_runner``."""
    r, budget = setup.replicas, throughput_budget_s(messages)

    def rate(key: str, result: tuple[int, float]) -> dict[str, Measurement]:
        count, seconds = result
        return {key: Measurement(count / seconds if count else 0.0, short(count, messages))}

    def e2e() -> dict[str, Measurement]:
        latencies = sorted(asyncio.run(runner.e2e_latencies(urls, "e2e", r, latency_messages, E2E_RATE, RECORD_SIZE)))
        if not latencies:
            raise RuntimeError("no message received")
        problem = short(len(latencies), latency_messages)
        return {"p50": Measurement(percentile(latencies, 0.5), problem), "p99": Measurement(percentile(latencies, 0.99), problem)}

    name = f"NATS R{r}"
    return {
        **measured(f"{name}: publish_async", ["publish_async"], lambda: rate(
            "publish_async", asyncio.run(runner.publish_async_throughput(urls, "produce_async", r, messages, RECORD_SIZE, budget)))),
        **measured(f"{name}: js.publish + gather", ["produce"], lambda: rate(
            "produce", asyncio.run(runner.publish_throughput(urls, "produce", r, messages, RECORD_SIZE, budget)))),
        **measured(f"{name}: pull fetch", ["consume"], lambda: {
            "consume": consumed(*asyncio.run(runner.fetch_throughput(urls, "produce", messages, budget)), messages)}),
        **measured(f"{name}: e2e", ["p50", "p99"], e2e),
    }


def percentile(ordered: list[float], q: float) -> float:
    """The same rank rule as ``caudal bench`` (``s[int(q * n)]``), so the two columns agree."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- measuring and reporting -------------------------------------------------


def throughput_budget_s(messages: int) -> float:
    """Deadline for one throughput run: generous (500 msg/s) but bounded."""
    return 60 + messages / 500


def latency_budget_s(messages: int) -> float:
    return 60 + messages / E2E_RATE


def measured(what: str, keys: list[str], run: Callable[[], dict[str, Measurement]]) -> dict[str, Measurement]:
    """Run one workload; a failure becomes empty cells with its reason instead of ending the run."""
    progress(f"{what} ...")
    try:
        results = run()
    except Exception as e:  # any failure of one workload is reported, the others still run
        results = {key: Measurement(None, f"{what}: {type(e).__name__}: {e}".strip()[:400]) for key in keys}
    for key, m in results.items():
        value = "failed" if m.value is None else f"{m.value:,.2f}"
        progress(f"{what} {key}: {value}" + (f" ({m.problem})" if m.problem else ""))
    return results


def cell(m: Measurement, unit: str) -> str:
    if m.value is None:
        return "failed"
    text = f"{m.value:,.0f} {unit}" if unit == "msg/s" else f"{m.value:.2f} {unit}"
    return text + (" *" if m.problem else "")


def ratio(row: Row) -> str:
    c, n = row.caudal.value, row.nats.value
    return f"{c / n:.2f}" if c is not None and n else "—"


def rows_for(setup: Setup, caudal: dict[str, Measurement], nats: dict[str, Measurement], publish_batch: int) -> list[Row]:
    r = setup.replicas
    producer = f"acks={setup.acks}" + (f" RF={r}" if r > 1 else "")
    return [
        Row(f"{setup.name}: produce msg/s, caudal {producer} vs NATS R{r} publish_async", "msg/s", caudal["produce"], nats["publish_async"]),
        Row(f"{setup.name}: produce msg/s, caudal {producer} vs NATS R{r} js.publish ×{publish_batch} gather", "msg/s", caudal["produce"], nats["produce"]),
        Row(f"{setup.name}: consume msg/s (caudal consumer vs NATS pull fetch)", "msg/s", caudal["consume"], nats["consume"]),
        Row(f"{setup.name}: e2e p50 at 1,000 msg/s, caudal {producer} vs NATS R{r} push (lower is better)", "ms", caudal["p50"], nats["p50"]),
        Row(f"{setup.name}: e2e p99 at 1,000 msg/s, caudal {producer} vs NATS R{r} push (lower is better)", "ms", caudal["p99"], nats["p99"]),
    ]


def header(server: str) -> list[str]:
    """Command, date and machine, so a table pasted into BENCHMARKS.md says where it came from."""
    model = next(
        (line.split(":", 1)[1].strip() for line in _output(["lscpu"]).splitlines() if line.startswith("Model name:")), "unknown CPU"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"command: python {shlex.join(sys.argv)}",
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"machine: nproc {len(os.sched_getaffinity(0))}, {model}, {platform.system()} {platform.release()}, load average at start {load}",
        f"software: caudal {importlib.metadata.version('caudal')}, {_output([server, '--version']).strip()}, "
        f"nats-py {importlib.metadata.version('nats-py')}, Python {platform.python_version()}",
        f"messages: {RECORD_SIZE} bytes; * = see the notes below the table",
    ]


def _output(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return ""


def table(rows: list[Row]) -> list[str]:
    lines = ["| workload | caudal | NATS | caudal/NATS |", "|---|---|---|---|"]
    lines += [f"| {r.workload} | {cell(r.caudal, r.unit)} | {cell(r.nats, r.unit)} | {ratio(r)} |" for r in rows]
    notes = []
    for r in rows:
        for side, m in (("caudal", r.caudal), ("NATS", r.nats)):
            if m.problem and f"{side}: {m.problem}" not in notes:
                notes.append(f"{side}: {m.problem}")
    return lines + ([""] + [f"note — {n}" for n in notes] if notes else [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000, help="messages per throughput workload (default 200000)")
    parser.add_argument("--latency-messages", type=int, default=10_000, help="messages per e2e latency run (default 10000)")
    parser.add_argument("--skip-cluster", action="store_true", help="only the single-node pair (caudal dev vs NATS R1)")
    args = parser.parse_args()

    def terminated(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(143)  # unwinds the context managers, which stop every server by PID

    signal.signal(signal.SIGTERM, terminated)
    server = install_nats()
    runner = load_nats_runner()
    top = header(server)
    setups = [Setup("1 node", 1, "1")] + ([] if args.skip_cluster else [Setup("3 nodes", 3, "all")])
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp:
        for setup in setups:
            data = Path(tmp) / f"r{setup.replicas}"
            start_caudal = caudal_dev if setup.replicas == 1 else caudal_cluster
            progress(f"starting caudal ({setup.name})")
            with start_caudal(data / "caudal") as bootstrap:
                caudal = run_caudal(bootstrap, setup, args.messages, args.latency_messages)
            progress(f"starting NATS JetStream ({setup.name})")
            with runner.jetstream(server, data / "nats", setup.replicas) as urls:
                nats = run_nats(runner, urls, setup, args.messages, args.latency_messages)
            rows += rows_for(setup, caudal, nats, runner.PUBLISH_BATCH)
    print("\n".join([*top, "", *table(rows)]))
    return 0 if all(m.value is not None and not m.problem for r in rows for m in (r.caudal, r.nats)) else 1


if __name__ == "__main__":
    sys.exit(main())
