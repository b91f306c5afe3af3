"""A real Prometheus scrapes a 3-broker cluster with the shipped scrape config and alert rules.

Debian's Prometheus has no Kubernetes service discovery, so the shipped job is
used with one change: its ``kubernetes_sd_configs`` become ``file_sd_configs``
whose targets carry the same ``__meta_kubernetes_*`` labels a pod would, and the
shipped relabelling turns them into the same ``namespace``/``pod``/``component``
labels. The test then asks Prometheus's HTTP API what a dashboard user and the
alert manager would see: lag for a lagging group, every dashboard query
answering, under-replicated partitions and pending alerts after a broker dies,
and under-replicated back to 0 after it returns.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from nodes import running, wait_until
from reading import read_all

from caudal.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition
from caudal.local_cluster import LocalCluster, free_port

MONITORING = Path(__file__).resolve().parents[2] / "k8s" / "monitoring"
NAMESPACE = "caudal"
PARTITIONS = 3
ALLOWED_EMPTY = {"Request errors"}
"""Dashboard panels with no series in a healthy run (no request has failed)."""


@pytest.fixture
def monitored(tmp_path) -> Iterator[LocalCluster]:
    with running(LocalCluster(tmp_path / "cluster", controllers=3, brokers=3, metrics=True)) as cluster:
        yield cluster


@pytest.fixture
def prometheus(tmp_path, monitored: LocalCluster) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "Prometheus is not installed: .ci/run installs Debian's prometheus package"
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps([_pod_target(name, port) for name, port in monitored.metrics_ports.items()]))
    shipped = yaml.safe_load((MONITORING / "prometheus" / "scrape-config.yaml").read_text())
    (job,) = shipped["scrape_configs"]
    job.pop("kubernetes_sd_configs")
    job.update(scrape_interval="1s", scrape_timeout="1s", file_sd_configs=[{"files": [str(targets)], "refresh_interval": "1s"}])
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(MONITORING / "prometheus" / "caudal-alerts.rules.yaml")],
        "scrape_configs": [job],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    with open(tmp_path / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url), 30, interval_s=0.2, what="Prometheus to start")
        wait_until(lambda: len(_query(url, 'up{job="caudal"} == 1')) == 6, 30, interval_s=0.5, what="all six targets up")
        yield url
    finally:
        proc.kill()
        proc.wait(10)


def _pod_target(name: str, port: int) -> dict:
    """What Kubernetes pod discovery would report for this node's metrics port."""
    component, ordinal = name.rsplit("-", 1)
    return {
        "targets": ["127.0.0.1"],
        "labels": {
            "__meta_kubernetes_namespace": NAMESPACE,
            "__meta_kubernetes_pod_name": f"caudal-{component}-{int(ordinal) - 1}",
            "__meta_kubernetes_pod_label_app_kubernetes_io_name": "caudal",
            "__meta_kubernetes_pod_label_app_kubernetes_io_component": component,
            "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
            "__meta_kubernetes_pod_annotation_prometheus_io_port": str(port),
            "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
            "__meta_kubernetes_pod_container_port_name": "metrics",
        },
    }


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _api(url: str, path: str, **params: str) -> dict:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}/api/v1/{path}?{query}", timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def _query(url: str, expr: str) -> list[dict]:
    return _api(url, "query", query=expr)["result"]


def _value(url: str, expr: str) -> float | None:
    result = _query(url, expr)
    return float(result[0]["value"][1]) if result else None


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$namespace", NAMESPACE).replace("$__rate_interval", "15s")
            out.append((panel["title"], expr))
    return out


def _pending_or_firing(url: str) -> set[str]:
    return {a["labels"]["alertname"] for a in _api(url, "alerts")["alerts"] if a["state"] in ("pending", "firing")}


def test_prometheus_sees_lag_dashboards_and_alerts(monitored: LocalCluster, prometheus: str) -> None:
    bootstrap = monitored.bootstrap
    with AdminClient(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic("orders", PARTITIONS, 3)])["orders"].result(30)
    with Producer(bootstrap_servers=bootstrap, linger_ms=2) as producer:
        for i in range(300):
            producer.send("orders", f"o{i}".encode(), partition=i % PARTITIONS)
        producer.flush(60)
    assert sum(len(records) for records in read_all(bootstrap, "orders", PARTITIONS, 300, timeout_s=30).values()) == 300
    consumer = Consumer(bootstrap_servers=bootstrap, group_id="billing")
    try:
        consumer.commit({TopicPartition("orders", p): 60 for p in range(PARTITIONS)})
    finally:
        consumer.close()

    lag = f'max by (group) (caudal_consumer_group_lag_sum{{namespace="{NAMESPACE}", group="billing"}})'
    wait_until(lambda: _value(prometheus, lag) == 3 * 40, 40, interval_s=0.5, what="the group's lag in Prometheus")

    def empty_panels() -> set[str] | None:
        empty = {title for title, expr in _dashboard_queries() if not _query(prometheus, expr)}
        return empty if empty <= ALLOWED_EMPTY else None

    try:
        wait_until(empty_panels, 40, interval_s=1, what="every dashboard query to return data")
    except TimeoutError:
        raise AssertionError(f"dashboard panels without data: {sorted({t for t, e in _dashboard_queries() if not _query(prometheus, e)})}") from None
    rules = [r for g in _api(prometheus, "rules")["groups"] for r in g["rules"]]
    assert rules and all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]

    with Producer(bootstrap_servers=bootstrap, linger_ms=2) as producer:
        for i in range(300):
            producer.send("orders", f"late{i}".encode(), partition=i % PARTITIONS)
        producer.flush(60)
    monitored.brokers[3].kill9()
    under = f'sum(caudal_broker_under_replicated_partitions{{namespace="{NAMESPACE}"}})'
    wait_until(lambda: (_value(prometheus, under) or 0) > 0, 60, interval_s=0.5, what="under-replicated partitions > 0")
    wait_until(
        lambda: {"CaudalUnderReplicatedPartitions", "CaudalTargetDown", "CaudalConsumerLagGrowing"} <= _pending_or_firing(prometheus),
        60, interval_s=0.5, what="the alerts for a dead broker and a growing lag",
    )
    status = subprocess.run(
        ["caudal", "status", "--bootstrap-server", monitored.brokers[1].address], capture_output=True, text=True, timeout=60
    )
    assert "Brokers: 2 live" in status.stdout and "under-replicated: 0," not in status.stdout, status.stdout

    monitored.brokers[3].start()
    monitored.brokers[3].wait_ready()
    wait_until(lambda: _value(prometheus, under) == 0, 90, interval_s=0.5, what="under-replicated partitions back to 0")
