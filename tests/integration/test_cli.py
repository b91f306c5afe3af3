"""The ``caudal`` command-line tools against a real node, with Kafka-shaped output."""

from __future__ import annotations

import subprocess
import sys

import pytest


def caudal(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "caudal", *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )


def test_topics_produce_consume_roundtrip(dev_node) -> None:
    b = ["--bootstrap-server", dev_node.bootstrap]
    r = caudal("topics", "create", "clicks", "--partitions", "3", "--config", "retention.ms=3600000", *b)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Created topic clicks."

    r = caudal("topics", "create", "clicks", *b)
    assert r.returncode == 1 and "TOPIC_ALREADY_EXISTS" in r.stderr
    assert caudal("topics", "create", "clicks", "--if-not-exists", *b).returncode == 0

    r = caudal("topics", "list", *b)
    assert r.stdout.split() == ["clicks"]

    r = caudal("topics", "describe", "clicks", *b)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Topic: clicks\tTopicId: ")
    assert "\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=3600000" in lines[0]
    assert lines[1:] == [f"\tTopic: clicks\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1" for p in range(3)]

    r = caudal("produce", "clicks", "--key-separator", ":", *b, stdin="alice:home\nbob:cart\nalice:checkout\n")
    assert r.returncode == 0, r.stderr

    r = caudal("consume", "clicks", "--from-beginning", "--max-messages", "3", "--print-key", "--timeout-ms", "10000", *b)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == ["alice\tcheckout", "alice\thome", "bob\tcart"]
    assert "Processed a total of 3 messages" in r.stderr
    alice = [line for line in r.stdout.splitlines() if line.startswith("alice")]
    assert alice == ["alice\thome", "alice\tcheckout"], "one key keeps its order on its partition"

    r = caudal("topics", "alter", "clicks", "--partitions", "4", "--config", "retention.ms=60000", *b)
    assert r.returncode == 0, r.stderr
    assert "PartitionCount: 4" in caudal("topics", "describe", "clicks", *b).stdout

    r = caudal("topics", "delete", "clicks", *b)
    assert r.stdout.strip() == "Deleted topic clicks."
    assert caudal("topics", "list", *b).stdout.strip() == ""


def test_cli_errors_are_clear(dev_node) -> None:
    b = ["--bootstrap-server", dev_node.bootstrap]
    r = caudal("topics", "create", "bad/name", *b)
    assert r.returncode == 1 and "INVALID_TOPIC_EXCEPTION" in r.stderr
    r = caudal("topics", "create", "x", "--config", "nonsense", *b)
    assert r.returncode != 0 and "key=value" in r.stderr
    r = caudal("topics", "describe", "ghost", *b)
    assert r.returncode == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in r.stderr


def test_bench_produce_prints_perf_test_summary(dev_node) -> None:
    r = caudal("bench", "produce", "--num-records", "2000", "--bootstrap-server", dev_node.bootstrap, timeout=120)
    assert r.returncode == 0, r.stderr
    summary = r.stdout.strip().splitlines()[-1]
    assert summary.startswith("2000 records sent, ")
    assert "records/sec" in summary and "ms 50th" in summary and "ms 99.9th." in summary


@pytest.mark.parametrize("client", ["blocking", "asyncio"])
def test_bench_e2e_receives_every_record_and_prints_latency_percentiles(dev_node, client: str) -> None:
    topic = f"e2e-{client}"
    r = caudal(
        "bench", "e2e", "--topic", topic, "--num-records", "300", "--throughput", "300", "--acks", "all",
        "--client", client, "--bootstrap-server", dev_node.bootstrap, timeout=120,
    )
    assert r.returncode == 0, r.stderr + r.stdout
    summary = r.stdout.strip().splitlines()[-1]
    assert summary.startswith("300 records received of 300, end-to-end latency: "), summary
    p50, p99 = (float(summary.split(f" ms {q}")[0].rsplit(" ", 1)[1]) for q in ("50th", "99th"))
    assert 0 < p50 <= p99, summary
    r = caudal("consume", topic, "--from-beginning", "--max-messages", "300", "--timeout-ms", "10000", "--bootstrap-server", dev_node.bootstrap)
    assert r.returncode == 0 and "Processed a total of 300 messages" in r.stderr, r.stderr


def test_bench_consume_as_a_group_splits_the_records_between_members(dev_node) -> None:
    b = ("--bootstrap-server", dev_node.bootstrap)
    r = caudal("bench", "produce", "--topic", "bg", "--partitions", "4", "--num-records", "4000", *b, timeout=120)
    assert r.returncode == 0, r.stderr
    r = caudal("bench", "consume", "--topic", "bg", "--num-records", "4000", "--group", "bench", "--members", "2", *b, timeout=180)
    assert r.returncode == 0, r.stderr + r.stdout
    group_line = next(line for line in r.stdout.splitlines() if line.startswith("group=bench"))
    per_member = [int(n) for n in group_line.split("records.per.member=[")[1].rstrip("]").split(",")]
    assert sum(per_member) == 4000 and all(n > 0 for n in per_member), group_line
    assert r.stdout.strip().splitlines()[-1].split(", ")[4] == "4000"


def test_status_shows_cluster_health_and_group_lag(dev_node) -> None:
    b = ("--bootstrap-server", dev_node.bootstrap)
    assert caudal("topics", "create", "st", "--partitions", "2", "--config", "min.insync.replicas=1", *b).returncode == 0
    assert caudal("produce", "st", *b, stdin="a\nb\nc\nd\ne\n").returncode == 0
    r = caudal("consume", "st", "--group", "readers", "--from-beginning", "--max-messages", "2", *b)
    assert r.returncode == 0, r.stderr
    r = caudal("status", *b)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Cluster ID: " in out and "Controllers: active controller 1," in out
    assert "Brokers: 1 live" in out
    assert "offline: 0, under-replicated: 0, under-min-isr: 0" in out
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("readers"))
    assert row == ["readers", "Empty", "0", "3"], out
