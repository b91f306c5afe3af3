"""Connect workers for tests: a standalone worker process and a tiny REST client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from caudal.local_cluster import NodeProcess, free_port


def _properties(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


class ConnectWorker(NodeProcess):
    """A ``caudal connect standalone`` process; ``url`` is its REST address once ready."""

    def __init__(self, tmp: Path, bootstrap: str, connectors: list[dict[str, str]], name: str = "worker",
                 **worker_config: str) -> None:
        worker = _properties(tmp / f"{name}.properties", {
            "bootstrap.servers": bootstrap,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "offset.storage.file.filename": str(tmp / f"{name}.offsets"),
            "offset.flush.interval.ms": "500",
            "listeners": f"http://127.0.0.1:{free_port()}",
            **worker_config,
        })
        files = [str(_properties(tmp / f"{c['name']}.properties", c)) for c in connectors]
        super().__init__(name, ["connect", "standalone", str(worker), *files], tmp / f"{name}.log")

    def run(self) -> "ConnectWorker":
        self.start()
        self.wait_ready()
        return self

    @property
    def url(self) -> str:
        return self.address


def rest(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}{path}", data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None
