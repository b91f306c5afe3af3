"""The deployment files agree with the code they deploy.

``Dockerfile``, ``.dockerignore``, ``k8s/`` and ``k8s/monitoring/`` are checked
against caudal itself, without a cluster or a container engine:

- each StatefulSet's container command is expanded the way the kubelet does
  (``$(VAR)`` from the container's env, downward API and ConfigMap), run through
  the real ``/bin/sh`` wrapper with a stand-in ``caudal`` that prints its argv, and
  parsed with ``caudal.cli.build_parser()``: only flags the CLI accepts, node id =
  ordinal + 1, advertised addresses = the pods' stable DNS names;
- ports agree between container ports, arguments, probes, Services, annotations,
  the ServiceMonitor and the plain Prometheus scrape config (whose relabelling is
  evaluated for each pod);
- (the dashboard and alert rules are checked in ``test_monitoring_files.py``);
- each kustomization lists every manifest beside it.
"""

from __future__ import annotations

import copy

import inspect
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from manifests import K8S, container_of, generated_configmaps, kube_expand, load_docs, load_objects, manifest_files, pod_command

from caudal.cli import build_parser

ROOT = K8S.parent
MONITORING = K8S / "monitoring"
NAMESPACE = "caudal-test"



# ---- loading ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict]:
    return load_objects()


@pytest.fixture(scope="module")
def configmaps(objects) -> dict[str, dict[str, str]]:
    maps = generated_configmaps(K8S)
    for (kind, name), doc in objects.items():
        if kind == "ConfigMap":
            maps[name] = doc.get("data", {})
    return maps


CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
"""Prometheus-operator resources: no upstream schema; their fields are checked by the tests below."""


@pytest.mark.parametrize("version", ["1.28", "1.30", "1.33"])
def test_manifests_validate_against_the_kubernetes_schema_strictly(objects, configmaps, version: str) -> None:
    import kubernetes_validate

    checked = 0
    for (kind, _name), doc in objects.items():
        if kind in CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    for name, data in configmaps.items():
        generated = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
        kubernetes_validate.validate(generated, version, strict=True)
    assert checked >= 7
    broken = copy.deepcopy(next(doc for (kind, _), doc in objects.items() if kind == "StatefulSet"))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def _statefulsets(objects) -> dict[str, dict]:
    return {name: doc for (kind, name), doc in objects.items() if kind == "StatefulSet"}


def _component(sts: dict) -> str:
    return sts["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]


def _sts_by_component(objects, component: str) -> dict:
    (sts,) = [s for s in _statefulsets(objects).values() if _component(s) == component]
    return sts


def _ports(container: dict) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def _selects(selector: dict, labels: dict) -> bool:
    """A label selector (matchLabels and matchExpressions) matches these labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value, op = labels.get(expr["key"]), expr["operator"]
        if op == "In" and value not in expr["values"]:
            return False
        if op == "NotIn" and value in expr["values"]:
            return False
        if op == "Exists" and value is None:
            return False
        if op == "DoesNotExist" and value is not None:
            return False
    return True


# ---- kubelet expansion and the container command -----------------------------------


@pytest.fixture(scope="module")
def fake_caudal(tmp_path_factory) -> Path:
    """A ``caudal`` on PATH that prints its arguments, NUL-separated."""
    bin_dir = tmp_path_factory.mktemp("bin")
    fake = bin_dir / "caudal"
    fake.write_text('#!/bin/sh\nprintf "%s\\0" "$@"\n')
    fake.chmod(0o755)
    return bin_dir


def runcontainer_of(sts: dict, ordinal: int, configmaps: dict, fake_bin: Path, zone: str | None = None,
                  pod_name: str | None = None) -> subprocess.CompletedProcess:
    """Run the container's command + args as the kubelet would, with ``caudal`` faked."""
    argv, env = pod_command(sts, ordinal, configmaps, NAMESPACE, zone, pod_name)
    run_env = {**env, "PATH": f"{fake_bin}:/usr/bin:/bin"}
    return subprocess.run(argv, env=run_env, capture_output=True, text=True, timeout=30, check=False)


def caudal_args(sts: dict, ordinal: int, configmaps: dict, fake_bin: Path, zone: str | None = None):
    proc = runcontainer_of(sts, ordinal, configmaps, fake_bin, zone)
    assert proc.returncode == 0, proc.stderr
    argv = proc.stdout.split("\0")[:-1]
    return build_parser().parse_args(argv)  # exits (fails the test) on any flag the CLI does not accept


def _fqdn(sts: dict, ordinal: int, domain: str) -> str:
    return f"{sts['metadata']['name']}-{ordinal}.{sts['spec']['serviceName']}.{NAMESPACE}.svc.{domain}"


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


# ---- container commands ---------------------------------------------------------------


def test_kube_expand_follows_the_kubelet_rules() -> None:
    env = {"A": "x", "EMPTY": ""}
    assert kube_expand("$(A).$(EMPTY).$(MISSING)", env) == "x..$(MISSING)"
    assert kube_expand("$$(A) $((n + 1)) ${A} \"$@\" $", env) == "$(A) $((n + 1)) ${A} \"$@\" $"


def test_controller_command_parses_with_the_cli(objects, configmaps, fake_caudal) -> None:
    sts = _sts_by_component(objects, "controller")
    ports = _ports(container_of(sts))
    domain = configmaps["caudal-config"]["CLUSTER_DOMAIN"]
    replicas = sts["spec"]["replicas"]
    from caudal.controller.raft_quorum import parse_peers

    for ordinal in range(replicas):
        args = caudal_args(sts, ordinal, configmaps, fake_caudal)
        fqdn = _fqdn(sts, ordinal, domain)
        assert args.command == "controller"
        assert args.node_id == ordinal + 1
        assert _split(args.listen) == (fqdn, ports["api"])
        assert _split(args.raft) == (fqdn, ports["raft"])
        assert args.metrics_port == ports["metrics"]
        assert args.session_timeout_ms == int(configmaps["caudal-config"]["CAUDAL_SESSION_TIMEOUT_MS"])
        assert not args.cluster_id or args.cluster_id == configmaps["caudal-config"]["CAUDAL_CLUSTER_ID"]
        peers = parse_peers(args.peers)
        assert {p.node_id: p.address for p in peers} == {
            i + 1: f"{_fqdn(sts, i, domain)}:{ports['raft']}" for i in range(replicas)
        }, "--peers must list every member, node id = ordinal + 1, at its Raft address"
        assert f"{args.node_id}@{args.raft}" in args.peers.split(",")


def test_broker_command_parses_with_the_cli(objects, configmaps, fake_caudal) -> None:
    sts = _sts_by_component(objects, "broker")
    controllers = _sts_by_component(objects, "controller")
    ports = _ports(container_of(sts))
    domain = configmaps["caudal-config"]["CLUSTER_DOMAIN"]
    controller_listeners = [
        caudal_args(controllers, i, configmaps, fake_caudal).listen for i in range(controllers["spec"]["replicas"])
    ]
    for ordinal in range(sts["spec"]["replicas"]):
        args = caudal_args(sts, ordinal, configmaps, fake_caudal, zone="zone-b")
        assert args.command == "broker"
        assert args.node_id == ordinal + 1
        # the broker advertises its --listen host: it must be the pod's stable DNS name
        assert _split(args.listen) == (_fqdn(sts, ordinal, domain), ports["client"])
        assert args.controllers.split(",") == controller_listeners
        assert args.metrics_port == ports["metrics"]
        assert args.rack == "zone-b"
        assert args.replica_lag_time_max_ms == int(configmaps["caudal-config"]["CAUDAL_REPLICA_LAG_TIME_MAX_MS"])
        assert args.retention_check_interval_ms == int(configmaps["caudal-config"]["CAUDAL_RETENTION_CHECK_INTERVAL_MS"])
    # without the zone label on the pod (no PodTopologyLabelsAdmission), no rack
    assert caudal_args(sts, 0, configmaps, fake_caudal).rack == ""


def test_data_dir_is_inside_the_persistent_volume(objects, configmaps, fake_caudal) -> None:
    for sts in _statefulsets(objects).values():
        args = caudal_args(sts, 0, configmaps, fake_caudal)
        claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
        mounts = {m["mountPath"]: m["name"] for m in container_of(sts)["volumeMounts"]}
        data_dir = Path(args.data_dir)
        owning = [Path(p) for p, name in mounts.items() if name in claims and data_dir.is_relative_to(Path(p))]
        assert owning, f"{sts['metadata']['name']}: --data-dir {data_dir} is not on a PersistentVolumeClaim"
        assert all(data_dir != p for p in owning), "use a folder inside the volume (lost+found lives at its root)"


def test_node_id_wrapper_refuses_a_pod_name_without_ordinal(objects, configmaps, fake_caudal) -> None:
    for sts in _statefulsets(objects).values():
        proc = runcontainer_of(sts, 0, configmaps, fake_caudal, pod_name=sts["metadata"]["name"])
        assert proc.returncode != 0 and proc.stdout == "", "must not start caudal with a made-up node id"
        assert "node id" in proc.stderr


def test_statefulsets_shape(objects) -> None:
    for name, sts in _statefulsets(objects).items():
        spec, pod = sts["spec"], sts["spec"]["template"]
        assert spec["podManagementPolicy"] == "Parallel"
        assert spec["replicas"] == 3
        assert _selects(spec["selector"], pod["metadata"]["labels"])
        affinity = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert [t["podAffinityTerm"]["topologyKey"] for t in affinity] == ["kubernetes.io/hostname"]
        assert all(_selects(t["podAffinityTerm"]["labelSelector"], pod["metadata"]["labels"]) for t in affinity)
        spread = pod["spec"]["topologySpreadConstraints"]
        assert [c["topologyKey"] for c in spread] == ["topology.kubernetes.io/zone"]
        assert all(_selects(c["labelSelector"], pod["metadata"]["labels"]) for c in spread)
        container = container_of(sts)
        assert container["image"] in {i["name"] for i in yaml.safe_load((K8S / "kustomization.yaml").read_text())["images"]}
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{name}: {kind}"


def test_broker_grace_period_covers_controlled_shutdown_and_startup_covers_registration(objects) -> None:
    from caudal.broker.lifecycle import CONTROLLED_SHUTDOWN_TIMEOUT_S
    from caudal.broker.server import READY_TIMEOUT_S

    sts = _sts_by_component(objects, "broker")
    assert sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= CONTROLLED_SHUTDOWN_TIMEOUT_S + 30
    startup = container_of(sts)["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= READY_TIMEOUT_S + 30


def test_pods_run_as_the_image_user(objects) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\d+)(?::(\d+))?\s*$", dockerfile, re.MULTILINE)
    assert users, "the image must set a numeric non-root USER"
    uid, gid = users[-1]
    for sts in _statefulsets(objects).values():
        security = sts["spec"]["template"]["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True
        assert str(security["runAsUser"]) == uid != "0"
        assert str(security["fsGroup"]) == (gid or uid)


# ---- ports: Services, probes, annotations ------------------------------------------------


def _health_services(module_name: str) -> set[str]:
    """Service names the node marks SERVING in grpc.health.v1 (read from its source)."""
    import importlib

    source = inspect.getsource(importlib.import_module(module_name))
    names = set(re.findall(r'\.set\(\s*"([^"]*)"\s*,\s*health_pb2\.HealthCheckResponse\.SERVING', source))
    assert names, f"{module_name} sets no health status"
    return names


def test_probes_use_grpc_health_on_the_listen_port(objects, configmaps, fake_caudal) -> None:
    served = {"controller": _health_services("caudal.controller.main"), "broker": _health_services("caudal.broker.server")}
    for sts in _statefulsets(objects).values():
        listen_port = _split(caudal_args(sts, 0, configmaps, fake_caudal).listen)[1]
        container = container_of(sts)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            grpc = container[probe]["grpc"]
            assert grpc["port"] == listen_port, f"{probe} must probe the gRPC port"
            assert grpc.get("service", "") in served[_component(sts)], f"{probe}: the server never reports {grpc.get('service')!r}"


def test_headless_services_match_the_statefulsets(objects) -> None:
    for sts in _statefulsets(objects).values():
        svc = objects[("Service", sts["spec"]["serviceName"])]
        assert svc["spec"]["clusterIP"] == "None"
        assert svc["spec"]["publishNotReadyAddresses"] is True
        assert _selects({"matchLabels": svc["spec"]["selector"]}, sts["spec"]["template"]["metadata"]["labels"])
        ports = _ports(container_of(sts))
        assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == ports
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in (p["name"], ports[p["name"]])


def test_bootstrap_service_reaches_the_broker_client_port(objects) -> None:
    broker = _sts_by_component(objects, "broker")
    clients = [
        svc for (kind, _), svc in objects.items()
        if kind == "Service" and svc["spec"].get("clusterIP") != "None"
        and _selects({"matchLabels": svc["spec"]["selector"]}, broker["spec"]["template"]["metadata"]["labels"])
    ]
    assert len(clients) == 1, "one client-facing Service for the brokers"
    ports = _ports(container_of(broker))
    for p in clients[0]["spec"]["ports"]:
        assert p["targetPort"] in ("client", ports["client"])
        assert "metrics" not in p["name"], "scraping through the bootstrap Service would double-count brokers"


def test_disruption_budgets_cover_each_statefulset(objects) -> None:
    pdbs = [doc for (kind, _), doc in objects.items() if kind == "PodDisruptionBudget"]
    for sts in _statefulsets(objects).values():
        labels = sts["spec"]["template"]["metadata"]["labels"]
        (pdb,) = [p for p in pdbs if _selects(p["spec"]["selector"], labels)]
        assert pdb["spec"]["maxUnavailable"] == 1


def test_scrape_annotations_point_at_the_metrics_port(objects, configmaps, fake_caudal) -> None:
    for sts in _statefulsets(objects).values():
        annotations = sts["spec"]["template"]["metadata"]["annotations"]
        args = caudal_args(sts, 0, configmaps, fake_caudal)
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == args.metrics_port == _ports(container_of(sts))["metrics"]
        assert annotations["prometheus.io/path"] == "/metrics"  # prometheus-client's start_http_server


def test_service_monitor_scrapes_each_headless_service_once(objects) -> None:
    (sm,) = load_docs(MONITORING / "servicemonitor.yaml")
    selected = [
        svc for (kind, _), svc in objects.items() if kind == "Service" and _selects(sm["spec"]["selector"], svc["metadata"]["labels"])
    ]
    headless = {sts["spec"]["serviceName"] for sts in _statefulsets(objects).values()}
    assert {s["metadata"]["name"] for s in selected} == headless
    for endpoint in sm["spec"]["endpoints"]:
        for svc in selected:
            assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
        _check_relabel_sources(objects, [r["sourceLabels"] for r in endpoint.get("relabelings", [])])


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _pod_meta_labels(sts: dict, ordinal: int, port_name: str, port: int) -> dict[str, str]:
    """The __meta_kubernetes_* labels of Prometheus's pod-role discovery for one container port."""
    meta = sts["spec"]["template"]["metadata"]
    labels = {
        "__address__": f"10.0.0.{ordinal + 10}:{port}",
        "__metrics_path__": "/metrics",
        "__meta_kubernetes_namespace": NAMESPACE,
        "__meta_kubernetes_pod_name": f"{sts['metadata']['name']}-{ordinal}",
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_pod_container_port_number": str(port),
    }
    for key, value in meta.get("labels", {}).items():
        labels[f"__meta_kubernetes_pod_label_{_sanitize(key)}"] = value
    for key, value in meta.get("annotations", {}).items():
        labels[f"__meta_kubernetes_pod_annotation_{_sanitize(key)}"] = value
    return labels


def _relabel(labels: dict[str, str], rules: list[dict]) -> dict[str, str] | None:
    """Prometheus relabelling, actions keep/drop/replace (enough for the shipped config)."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(s, "") for s in rule.get("source_labels", []))
        regex = re.compile(rule.get("regex", "(.*)"))
        action = rule.get("action", "replace")
        m = regex.fullmatch(value)
        if action == "keep" and not m:
            return None
        if action == "drop" and m:
            return None
        if action == "replace" and m:
            replacement = re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", rule.get("replacement", "$1"))
            labels[rule["target_label"]] = m.expand(replacement)
        assert action in ("keep", "drop", "replace"), f"unsupported relabel action {action}"
    return labels


def test_plain_scrape_config_yields_one_target_per_pod_at_its_metrics_port(objects) -> None:
    config = yaml.safe_load((MONITORING / "prometheus" / "scrape-config.yaml").read_text())
    (job,) = config["scrape_configs"]
    assert [sd["role"] for sd in job["kubernetes_sd_configs"]] == ["pod"]
    _check_relabel_sources(objects, [r.get("source_labels", []) for r in job["relabel_configs"]])
    for sts in _statefulsets(objects).values():
        ports = _ports(container_of(sts))
        for ordinal in range(sts["spec"]["replicas"]):
            targets = [
                t for name, port in ports.items()
                if (t := _relabel(_pod_meta_labels(sts, ordinal, name, port), job["relabel_configs"])) is not None
            ]
            assert len(targets) == 1, "the pod role yields a target per container port: keep exactly one"
            (target,) = targets
            assert target["__address__"] == f"10.0.0.{ordinal + 10}:{ports['metrics']}"
            assert target["__metrics_path__"] == "/metrics"
            assert target["namespace"] == NAMESPACE
            assert target["pod"] == f"{sts['metadata']['name']}-{ordinal}"
            assert target["component"] == _component(sts)


def _check_relabel_sources(objects, source_lists: list[list[str]]) -> None:
    """Every pod label/annotation a relabelling reads is set on both pod templates."""
    for sts in _statefulsets(objects).values():
        meta = _pod_meta_labels(sts, 0, "metrics", 0)
        for sources in source_lists:
            for source in sources:
                if source.startswith(("__meta_kubernetes_pod_label_", "__meta_kubernetes_pod_annotation_")):
                    assert source in meta, f"{sts['metadata']['name']} has no pod label/annotation for {source}"


# ---- kustomizations --------------------------------------------------------------------


@pytest.mark.parametrize("directory", [K8S, MONITORING], ids=["k8s", "k8s/monitoring"])
def test_kustomization_lists_every_manifest(directory: Path) -> None:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    resources = set(kustomization.get("resources", []))
    generated = set()
    for gen in kustomization.get("configMapGenerator", []):
        generated |= set(gen.get("envs", []))
        generated |= {spec.rpartition("=")[2] for spec in gen.get("files", [])}
    for name in resources | generated:
        assert (directory / name).is_file(), f"{directory.name}/kustomization.yaml lists missing {name}"
    manifests = {str(p.relative_to(directory)) for p in manifest_files() if p.parent == directory}
    assert manifests == resources, "every manifest in the folder, and only those, is a resource"
    for name in resources:
        for doc in load_docs(directory / name):
            assert "namespace" not in doc["metadata"], f"{name}: manifests stay namespace-agnostic"


def test_every_manifest_belongs_to_a_kustomization() -> None:
    listed = set()
    for kustomization_path in K8S.rglob("kustomization.yaml"):
        kustomization = yaml.safe_load(kustomization_path.read_text())
        listed |= {(kustomization_path.parent / r).resolve() for r in kustomization.get("resources", [])}
    assert {p.resolve() for p in manifest_files()} <= listed


# ---- the image -------------------------------------------------------------------------


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _docker_pattern(pattern: str) -> re.Pattern:
    """A .dockerignore pattern (Go's filepath.Match plus ``**``): ``*`` and ``?`` stay within a folder."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] in "*?":
            out, i = out + ("[^/]*" if pattern[i] == "*" else "[^/]"), i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _ignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule: excluded when the path or a parent folder matches; later ``!`` lines re-include."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _docker_pattern(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not negate
    return ignored


def test_docker_context_keeps_everything_pip_install_needs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = _dockerignore_patterns()
    needed = ["pyproject.toml", pyproject["project"]["readme"]]
    for source_dir in pyproject["tool"]["setuptools"]["package-dir"].values():
        for path in (ROOT / source_dir).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".so":  # .so: built by pip here
                needed.append(str(path.relative_to(ROOT)))
    assert len(needed) > 10
    hidden = [p for p in needed if _ignored(p, patterns)]
    assert not hidden, f".dockerignore hides files the build needs: {hidden[:10]}"
    assert not _ignored("broker/log.py", ["*.py"]) and _ignored("log.py", ["*.py"])  # * stays in its folder
    for heavy in (".git", "tests", "k8s", "broker/__pycache__", "caudal.egg-info"):
        assert _ignored(heavy, patterns), f"{heavy} should stay out of the build context"


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM\s", text, flags=re.MULTILINE)[1:]
    assert len(stages) >= 2, "build in one stage, run in another, so no build tooling remains"
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.MULTILINE)
    assert base and base.group(1) == "python:3.11-slim"
    assert all(stage.split()[0] == "${PYTHON_IMAGE}" for stage in stages)
    final = stages[-1]
    entrypoint = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", final, re.MULTILINE)
    assert entrypoint and json.loads(entrypoint.group(1)) == ["caudal"]
    assert re.search(r"^USER\s+[1-9]\d*", final, re.MULTILINE), "run as a non-root numeric user"
    assert not re.search(r"apt-get install|build-essential|gcc", final), "no build tools in the runtime image"
    assert re.search(r"pip install \.", text), "the image installs this repository with pip"
