"""The cluster id and node id stamped into a data dir (Kafka's ``meta.properties``).

A data dir belongs to one cluster and one node for life: starting a node on a
data dir of another node or cluster is refused instead of silently mixing logs.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from pathlib import Path

META_FILE = "meta.properties"


def cluster_id_for(peers: str) -> str:
    """A cluster id every controller of one quorum derives alike from its ``--peers`` list."""
    canonical = ",".join(sorted(p.strip() for p in peers.split(",") if p.strip()))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()[:16]).decode().rstrip("=")


def load_or_create(data_dir: Path, node_id: int, cluster_id: str | None = None) -> str:
    """The data dir's cluster id, creating ``meta.properties`` on first use."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / META_FILE
    if path.exists():
        props = dict(
            line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#")
        )
        if int(props.get("node.id", node_id)) != node_id:
            raise SystemExit(f"{path} belongs to node {props['node.id']}, not node {node_id}")
        if cluster_id and props.get("cluster.id") != cluster_id:
            raise SystemExit(f"{path} belongs to cluster {props.get('cluster.id')}, not {cluster_id}")
        return props["cluster.id"]
    cluster_id = cluster_id or base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path.write_text(f"version=1\nnode.id={node_id}\ncluster.id={cluster_id}\n")
    return cluster_id
