"""The deployment's YAML files in tests, and what the kubelet would run from them.

``load_objects`` reads every manifest under ``k8s/``; ``generated_configmaps``
builds the ConfigMaps kustomize would generate; ``pod_command`` expands a
StatefulSet pod's container command, args and environment exactly as the
kubelet does (envFrom, env in order, downward API, ``$(VAR)`` expansion), so
tests can run the real command line.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

K8S = Path(__file__).resolve().parents[2] / "k8s"


def load_docs(path: Path) -> list[dict]:
    """Every non-empty YAML document of ``path``."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _is_manifest(doc: object) -> bool:
    return isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc


def manifest_files() -> dict[Path, list[dict]]:
    out = {}
    for path in sorted(K8S.rglob("*.yaml")):
        docs = load_docs(path)
        if any(_is_manifest(d) for d in docs) and path.name != "kustomization.yaml":
            out[path] = docs
    return out


def load_objects() -> dict[tuple[str, str], dict]:
    objects = {}
    for docs in manifest_files().values():
        for doc in docs:
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in objects, f"{key} defined twice"
            objects[key] = doc
    return objects


def _env_file(path: Path) -> dict[str, str]:
    """A kustomize ``envs:`` file: KEY=VALUE lines, # comments."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        out[key] = value
    return out


def generated_configmaps(kustomization_dir: Path) -> dict[str, dict[str, str]]:
    kustomization = yaml.safe_load((kustomization_dir / "kustomization.yaml").read_text())
    out = {}
    for gen in kustomization.get("configMapGenerator", []):
        data = {}
        for env in gen.get("envs", []):
            data.update(_env_file(kustomization_dir / env))
        for literal in gen.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        for spec in gen.get("files", []):
            key, _, name = spec.rpartition("=")
            data[key or Path(name).name] = (kustomization_dir / name).read_text()
        out[gen["name"]] = data
    return out


def kube_expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion (k8s third_party/forked/golang/expansion).

    ``$$`` is a literal ``$``; ``$(NAME)`` is replaced when NAME is defined and kept
    as written otherwise; any other ``$`` is kept. So shell syntax like ``$((n + 1))``,
    ``${VAR}`` and ``"$@"`` reaches the shell untouched.
    """
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env[name] if name in env else text[i : end + 1])
                    i = end + 1
                    continue
            out.append("$" + nxt)
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def container_env(container: dict, pod_name: str, pod_labels: dict, configmaps: dict, namespace: str) -> dict[str, str]:
    """The environment the kubelet gives the container: envFrom, then env in order."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        assert ref in configmaps, f"envFrom names ConfigMap {ref!r}, which the kustomization does not create"
        env.update(configmaps[ref])
    field_values = {"metadata.name": pod_name, "metadata.namespace": namespace}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = kube_expand(var["value"], env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            m = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
            if m:
                env[var["name"]] = pod_labels.get(m.group(1), "")  # a missing label reads as ""
            else:
                assert path in field_values, f"unexpected fieldRef {path}"
                env[var["name"]] = field_values[path]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            assert ref["key"] in configmaps[ref["name"]], f"ConfigMap {ref['name']} has no key {ref['key']}"
            env[var["name"]] = configmaps[ref["name"]][ref["key"]]
        else:
            raise AssertionError(f"unexpected env source {source}")
    return env


def container_of(sts: dict) -> dict:
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    return container


def pod_command(sts: dict, ordinal: int, configmaps: dict, namespace: str, zone: str | None = None,
                pod_name: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of ``sts``'s pod ``ordinal`` (HOSTNAME = pod name, as in a pod)."""
    container = container_of(sts)
    pod_name = pod_name or f"{sts['metadata']['name']}-{ordinal}"
    labels = dict(sts["spec"]["template"]["metadata"]["labels"])
    if zone is not None:
        labels["topology.kubernetes.io/zone"] = zone
    env = container_env(container, pod_name, labels, configmaps, namespace)
    argv = [kube_expand(a, env) for a in container.get("command", []) + container.get("args", [])]
    script_at = 2 if argv[:2] == ["/bin/sh", "-c"] else -1  # the script's own $((...)) is shell syntax
    for i, arg in enumerate(argv):
        assert i == script_at or "$(" not in arg, f"unresolved variable in {arg!r}"
    return argv, {**env, "HOSTNAME": pod_name}
