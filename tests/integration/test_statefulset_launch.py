"""The StatefulSets' pods, launched on this machine exactly as Kubernetes would run them.

Each pod is a real process started with its container's command, args and
environment as the kubelet expands them (``tests/support/manifests.py``), in a
private mount namespace where ``/etc/hosts`` maps the pods' stable DNS names
(and the bootstrap Service) to loopback addresses of their own and the pod's
volume is mounted where the manifest mounts its PersistentVolumeClaim. So the
ordinal → node id logic, every flag, the DNS-name listen/advertise addresses,
the Raft peer list and the data path are the shipped ones; only the network is
loopback. A client in the same kind of namespace then produces and consumes
through the bootstrap Service name and checks each broker's gRPC health
service, which the readiness probes use.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
from manifests import K8S, container_of, generated_configmaps, load_objects, pod_command
from nodes import wait_until

NAMESPACE = "caudal-local"
DOMAIN = "cluster.local"
READY_TIMEOUT_S = 60

_ISOLATE = textwrap.dedent("""\
    set -eu
    mount --bind "$CAUDAL_TEST_HOSTS" /etc/hosts
    if [ -n "${CAUDAL_TEST_VOLUME:-}" ]; then
      mount -t tmpfs tmpfs "$(dirname "$CAUDAL_TEST_MOUNT")"
      mkdir -p "$CAUDAL_TEST_MOUNT"
      mount --bind "$CAUDAL_TEST_VOLUME" "$CAUDAL_TEST_MOUNT"
    fi
    exec "$@"
""")


class Pod:
    """One pod: a process in its own mount namespace, stopped by its PID."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.log_path = name, log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", _ISOLATE, name, *argv],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")
        return "event=ready" in self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _fqdn(sts: dict, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}.{sts['spec']['serviceName']}.{NAMESPACE}.svc.{DOMAIN}"


@pytest.fixture
def pods(tmp_path) -> Iterator[dict[str, object]]:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.fail("launching the pods needs root and unshare(1), to give each its own /etc/hosts and volume")
    objects = load_objects()
    configmaps = generated_configmaps(K8S)
    statefulsets = {doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: doc
                    for (kind, _name), doc in objects.items() if kind == "StatefulSet"}
    hosts = {}
    for base, component in ((10, "controller"), (20, "broker")):
        for ordinal in range(statefulsets[component]["spec"]["replicas"]):
            hosts[_fqdn(statefulsets[component], ordinal)] = f"127.0.0.{base + ordinal + 1}"
    bootstrap_host = f"caudal-bootstrap.{NAMESPACE}.svc.{DOMAIN}"
    hosts[bootstrap_host] = hosts[_fqdn(statefulsets["broker"], 0)]
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text("127.0.0.1 localhost\n" + "".join(f"{ip} {name}\n" for name, ip in hosts.items()))
    shim = tmp_path / "bin" / "caudal"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m caudal "$@"\n')
    shim.chmod(0o755)

    started: list[Pod] = []
    try:
        for component in ("controller", "broker"):
            sts = statefulsets[component]
            mount = next(m["mountPath"] for m in container_of(sts)["volumeMounts"] if m["name"] == "data")
            for ordinal in range(sts["spec"]["replicas"]):
                argv, env = pod_command(sts, ordinal, configmaps, NAMESPACE)
                volume = tmp_path / "volumes" / f"{sts['metadata']['name']}-{ordinal}"
                volume.mkdir(parents=True)
                env.update(PATH=f"{shim.parent}:/usr/bin:/bin", CAUDAL_TEST_HOSTS=str(hosts_file),
                           CAUDAL_TEST_VOLUME=str(volume), CAUDAL_TEST_MOUNT=mount)
                started.append(Pod(env["HOSTNAME"], argv, env, tmp_path / f"{env['HOSTNAME']}.log"))
        wait_until(lambda: all(p.ready() for p in started), READY_TIMEOUT_S, interval_s=0.2, what="every pod ready")
        yield {"hosts": hosts_file, "bootstrap": f"{bootstrap_host}:9092",
               "brokers": [_fqdn(statefulsets["broker"], i) for i in range(statefulsets["broker"]["spec"]["replicas"])],
               "pods": started, "volumes": tmp_path / "volumes"}
    finally:
        for pod in reversed(started):
            pod.stop()


_CLIENT = textwrap.dedent("""\
    import sys
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from caudal.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition
    bootstrap, brokers = sys.argv[1], sys.argv[2].split(",")
    for host in brokers:
        with grpc.insecure_channel(f"{host}:9092") as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
            assert status == health_pb2.HealthCheckResponse.SERVING, (host, status)
    with AdminClient(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic("k8s", 3, 3, config={"min.insync.replicas": "2"})])["k8s"].result(30)
        leaders = {p.leader for p in admin.describe_topics(["k8s"])["k8s"].partitions}
    with Producer(bootstrap_servers=bootstrap, acks="all") as producer:
        for i in range(300):
            producer.send("k8s", f"r{i}".encode(), partition=i % 3)
        producer.flush(60)
    consumer = Consumer(bootstrap_servers=bootstrap, group_id="k8s-readers", auto_offset_reset="earliest")
    seen = set()
    consumer.subscribe(["k8s"])
    for _ in range(300):
        seen.update(r.value for r in consumer.poll(timeout_ms=200))
        if len(seen) == 300:
            break
    consumer.close()
    print(f"consumed={len(seen)} leaders={sorted(leaders)}")
""")


def test_pods_launched_as_the_statefulsets_describe_serve_clients(pods) -> None:
    env = {**os.environ, "CAUDAL_TEST_HOSTS": str(pods["hosts"])}
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", _ISOLATE, "client",
         sys.executable, "-c", _CLIENT, pods["bootstrap"], ",".join(pods["brokers"])],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "consumed=300 leaders=[1, 2, 3]" in result.stdout, result.stdout + result.stderr[-2000:]
    for pod in pods["pods"]:
        data = pods["volumes"] / pod.name / "data"
        assert data.is_dir() and any(data.iterdir()), f"{pod.name} wrote nothing to its volume"
    node_ids = {pod.name: _logged_node(pod) for pod in pods["pods"]}
    assert node_ids == {f"caudal-{kind}-{i}": i + 1 for kind in ("controller", "broker") for i in range(3)}


def _logged_node(pod: Pod) -> int:
    """The node id the process started with, from its one-line ready event (``node=broker-2``)."""
    for line in pod.log_path.read_text().splitlines():
        if "event=ready" in line and " node=" in line:
            return int(line.split(" node=")[1].split()[0].rsplit("-", 1)[-1])
    raise AssertionError(f"{pod.name}: no ready line with a node id")
