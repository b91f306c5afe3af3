"""The Grafana dashboard and the alert rules query only what caudal exports.

Every metric a dashboard panel or an alert rule queries must be one that
``caudal.broker.metrics`` / ``caudal.controller.metrics`` (or prometheus-client's
process collector) exports, with the labels it has, and counters and histograms
are only read through ``rate``/``increase``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from manifests import load_docs as _docs

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "k8s" / "monitoring"

# Labels Prometheus attaches to every caudal series: the target labels of the
# ServiceMonitor / scrape config, and `le` on histogram buckets.
TARGET_LABELS = {"namespace", "pod", "component", "instance", "job", "service", "endpoint", "container"}
# Series that alert rules may use although caudal does not export them.
EXTERNAL_METRICS = {
    "up": {"labels": set()},  # Prometheus's own scrape health series
    "kubelet_volume_stats_available_bytes": {"labels": {"persistentvolumeclaim"}},  # kubelet
    "kubelet_volume_stats_capacity_bytes": {"labels": {"persistentvolumeclaim"}},  # kubelet
}
RATE_FUNCTIONS = {"rate", "irate", "increase"}


# ---- metrics: what the code exports ---------------------------------------------------


def _fake_replica_manager() -> SimpleNamespace:
    """The attributes PartitionCollector reads: one led partition with one follower."""
    follower = SimpleNamespace(leo=3)
    partition = SimpleNamespace(
        topic="t", index=0, log=SimpleNamespace(size_bytes=100, log_end_offset=5, log_start_offset=0),
        high_watermark=3, is_leader=True, isr=[1], replicas=[1, 2], min_isr=2,
        replica_state=SimpleNamespace(followers={2: follower}),
    )
    return SimpleNamespace(partitions={("t", 0): partition})


def _fake_group_lag():
    """A GroupLag over one group with one committed offset and a known end offset."""
    from caudal.broker.group_lag import GroupLag

    group = SimpleNamespace(group_id="g", members={"m": None}, offsets={("t", 0): SimpleNamespace(offset=1)})
    lag = GroupLag(SimpleNamespace(replicas=SimpleNamespace(), groups={"g": group}))
    lag.end_offsets = {("t", 0): 4}
    return lag


def _fake_controller() -> SimpleNamespace:
    """The attributes ControllerCollector reads, for an empty cluster."""
    image = SimpleNamespace(topics={}, brokers={}, version=0)
    return SimpleNamespace(image=image, active=True, quorum_status=dict)


_SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "summary": ["", "_sum", "_count"],
             "gauge": [""], "info": ["_info"], "unknown": [""], "stateset": [""], "gaugehistogram": ["_bucket", "_gsum", "_gcount"]}


@pytest.fixture(scope="module")
def exported() -> dict[str, dict]:
    """Sample name -> {type, labels, values (label -> seen values)} for everything caudal serves."""
    import caudal.broker.metrics as broker_metrics
    import caudal.broker.service  # noqa: F401  (labels the request histogram per API at import)
    import caudal.controller.metrics as controller_metrics
    from prometheus_client import (
        CollectorRegistry,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
    )
    from prometheus_client.metrics import MetricWrapperBase

    out: dict[str, dict] = {}

    def add(family, labelnames=()) -> None:
        labels = set(labelnames)
        values: dict[str, set] = {}
        for sample in family.samples:
            labels |= set(sample.labels) - {"le", "quantile"}
            for k, v in sample.labels.items():
                values.setdefault(k, set()).add(v)
        for suffix in _SUFFIXES[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            out[family.name + suffix] = {"type": family.type, "labels": labels | extra, "values": values}

    for module in (broker_metrics, controller_metrics):
        for obj in vars(module).values():
            if isinstance(obj, MetricWrapperBase):
                for family in obj.collect():
                    add(family, getattr(obj, "_labelnames", ()))
    for collector in (
        broker_metrics.PartitionCollector(_fake_replica_manager()),
        _fake_group_lag(),
        controller_metrics.ControllerCollector(_fake_controller()),
        # the default collectors every caudal process also serves (process_*, python_*)
        ProcessCollector(registry=CollectorRegistry()), PlatformCollector(registry=CollectorRegistry()),
        GCCollector(registry=CollectorRegistry()),
    ):
        for family in collector.collect():
            add(family)
    assert "caudal_broker_messages_in_total" in out and "caudal_controller_raft_term" in out
    return out


# ---- metrics: what the dashboard and the rules query ------------------------------------

_KEYWORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
}
_LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def _matching(text: str, start: int, open_: str, close: str) -> int:
    """Index of the bracket closing the one at ``start`` (string literals skipped)."""
    depth, i = 0, start
    while i < len(text):
        if text[i] == '"':
            i = text.index('"', i + 1)
        elif text[i] == open_:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise AssertionError(f"unbalanced {open_} in {text!r}")


def promql_references(expr: str) -> tuple[list[dict], set[str]]:
    """Metric selectors in ``expr`` (name, matchers, enclosing function) and grouping labels."""
    refs, grouping = [], set()
    i = 0
    while i < len(expr):
        c = expr[i]
        if c == '"':
            i = expr.index('"', i + 1) + 1
            continue
        if c == "[":
            i = expr.index("]", i) + 1
            continue
        m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(expr, i)
        if not m or (i > 0 and (expr[i - 1].isalnum() or expr[i - 1] in "._$")):
            i += 1
            continue
        word, end = m.group(0), m.end()
        rest = expr[end:].lstrip()
        if word in _LABEL_LIST_KEYWORDS and rest.startswith("("):  # group_left's list is optional
            open_at = expr.index("(", end)
            close_at = _matching(expr, open_at, "(", ")")
            grouping |= {w.strip() for w in expr[open_at + 1 : close_at].split(",") if w.strip()}
            i = close_at + 1
            continue
        if word in _KEYWORDS or rest.startswith("("):
            i = end
            continue
        matchers = {}
        if rest.startswith("{"):
            open_at = expr.index("{", end)
            close_at = _matching(expr, open_at, "{", "}")
            for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', expr[open_at + 1 : close_at]):
                matchers[label] = (op, value)
            end = close_at + 1
        refs.append({"name": word, "matchers": matchers, "function": _enclosing_function(expr, i)})
        i = end
    return refs, grouping


def _enclosing_function(expr: str, pos: int) -> str | None:
    depth = 0
    for j in range(pos - 1, -1, -1):
        if expr[j] == ")":
            depth += 1
        elif expr[j] == "(":
            if depth == 0:
                m = re.search(r"([a-zA-Z_]\w*)\s*$", expr[:j])
                return m.group(1) if m else None
            depth -= 1
    return None


def _dashboard() -> dict:
    return json.loads((MONITORING / "grafana-dashboard.json").read_text())


def _alert_rules() -> list[dict]:
    rules = yaml.safe_load((MONITORING / "prometheus" / "caudal-alerts.rules.yaml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    exprs = []
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            exprs.append(target["expr"])
    return exprs


def _check_expr(expr: str, exported: dict[str, dict]) -> list[str]:
    problems = []
    refs, grouping = promql_references(expr)
    if not refs:
        problems.append(f"no metric in {expr!r}")
    known_labels = set(TARGET_LABELS) | {"le"}
    for ref in refs:
        name = ref["name"]
        info = exported.get(name) or EXTERNAL_METRICS.get(name)
        if info is None:
            problems.append(f"{name} is not exported by caudal (in {expr!r})")
            continue
        labels = info["labels"] | TARGET_LABELS
        known_labels |= labels
        for label, (op, value) in ref["matchers"].items():
            if label not in labels:
                problems.append(f"{name} has no label {label!r}")
            seen = info.get("values", {}).get(label)
            if op == "=" and seen and value not in seen:
                problems.append(f"{name}{{{label}={value!r}}} never occurs (values: {sorted(seen)})")
        cumulative = info.get("type") in ("counter", "histogram")
        if cumulative and ref["function"] not in RATE_FUNCTIONS:
            problems.append(f"{name} is cumulative: read it through rate()/increase(), not {ref['function']}()")
        if info.get("type") == "gauge" and ref["function"] in RATE_FUNCTIONS:
            problems.append(f"{name} is a gauge: {ref['function']}() of it is meaningless")
    for label in grouping - known_labels:
        problems.append(f"grouping by {label!r}, which no metric in {expr!r} has")
    return problems


def test_promql_reference_extraction() -> None:
    refs, grouping = promql_references(
        'histogram_quantile(0.99, sum by (le, pod) (rate(a_bucket{namespace="$ns", api="P"}[$__rate_interval]))) '
        "/ on (pod) group_left max(b) > 0"
    )
    assert [(r["name"], r["function"]) for r in refs] == [("a_bucket", "rate"), ("b", "max")]
    assert refs[0]["matchers"] == {"namespace": ("=", "$ns"), "api": ("=", "P")}
    assert grouping == {"le", "pod"}


def test_dashboard_queries_only_exported_metrics(exported) -> None:
    problems = [p for expr in _dashboard_exprs() for p in _check_expr(expr, exported)]
    assert not problems, "\n".join(problems)


def test_alert_rules_query_only_exported_metrics(exported) -> None:
    problems = [p for rule in _alert_rules() for p in _check_expr(rule["expr"], exported)]
    assert not problems, "\n".join(problems)


def test_dashboard_variables_and_layout(exported) -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variables["namespace"]["query"]["query"])
    assert m and m.group(1) in exported and m.group(2) in TARGET_LABELS
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        if panel["type"] in ("row", "text"):
            continue
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            for var in re.findall(r"\$(\w+)", target["expr"]):
                assert var in variables or var.startswith("__"), f"{panel['title']}: undefined ${var}"
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for needed in ("produce latency", "fetch latency", "isr", "replica lag", "raft term", "raft commit index",
                   "messages in", "bytes in", "bytes out", "offline partitions", "under-min-isr", "active controllers",
                   "consumer lag per group", "consumer lag per partition"):
        assert needed in titles, f"the dashboard lacks a {needed!r} panel"


def test_alert_rules_cover_the_cluster_health_signals() -> None:
    rules = {r["alert"]: r for r in _alert_rules()}
    for rule in rules.values():
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]
    exprs = {name: " ".join(r["expr"].split()) for name, r in rules.items()}
    required = [
        "caudal_controller_active_controller_count) != 1",
        "caudal_controller_offline_partitions_count) > 0",
        "caudal_broker_under_min_isr_partitions) > 0",
        "caudal_broker_under_replicated_partitions) > 0",
        "caudal_controller_fenced_broker_count) > 0",
        "deriv(caudal_consumer_group_lag_sum[10m])) > 0",
    ]
    for fragment in required:
        assert any(fragment in e for e in exprs.values()), f"no alert on {fragment}"
    (urp,) = [r for r in rules.values() if "under_replicated" in r["expr"]]
    assert urp["for"] == "5m"


def test_prometheus_rule_matches_the_plain_rule_file() -> None:
    (rule,) = _docs(MONITORING / "prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["spec"] == yaml.safe_load((MONITORING / "prometheus" / "caudal-alerts.rules.yaml").read_text())
