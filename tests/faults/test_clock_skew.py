"""Wall-clock jumps on a partition leader (fault matrix F13).

An NTP step, a resumed VM or a hand-set date moves a machine's wall clock by
minutes. Record timestamps and retention follow the wall clock; nothing that
decides which replicas are in sync may. The leader here runs under libfaketime
(``apt-get install faketime``), whose offset file steps its wall clock ahead and
back by ten to thirty minutes, while its monotonic clock runs on.
The jumps land while the topic is idle, when followers fetch least often (every
``replica.fetch.wait.max.ms``), so a leader timing their lag on the wall clock
would drop any it looks at before their next fetch. That race makes this test
catch such a leader only in some runs (1 of 5 while it was written); the
deterministic check of the same wiring is ``tests/unit/test_lag_clock.py``.
No ISR may change, and ``acks=all`` writes before and after must all be kept.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from invariants import Acks, assert_acks_stored_once
from nodes import running, wait_until
from reading import read_to_end
from replicas import assert_replicas_identical

from caudal.client import AdminClient, NewTopic, Producer
from caudal.local_cluster import LocalCluster, NodeProcess

PARTITIONS = 3
LAG_TIME_MAX_MS = 2000
"""The leader looks for lagging followers every half of this."""
WINDOW_S = 3.0
"""How long each jump is watched: the offset file is read at least once a second, then two looks."""
FAKETIME = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), None)
"""Debian's libfaketime, under the machine's multiarch directory."""


def _isr_changes(node: NodeProcess, since: int) -> list[str]:
    text = node.log_path.read_bytes()[since:].decode(errors="replace")
    return [line for line in text.splitlines() if "event=isr_" in line]


def _watch(node: NodeProcess, since: int, offset: str) -> None:
    """Watch the leader's log for ``WINDOW_S`` after its clock moved to ``offset``: no ISR change."""
    until = time.monotonic() + WINDOW_S
    wait_until(lambda: _isr_changes(node, since) or time.monotonic() >= until, WINDOW_S + 5, what=f"the jump to {offset} to be watched")
    assert not _isr_changes(node, since), f"a wall-clock jump to {offset} moved ISRs: {_isr_changes(node, since)[:3]}"


def _produce(bootstrap: str, prefix: str) -> Acks:
    with Producer(bootstrap_servers=bootstrap, acks="all") as producer:
        futures = [(f"{prefix}{i}".encode(), producer.send("skew", value=f"{prefix}{i}".encode(), key=str(i).encode())) for i in range(100)]
        producer.flush()
        return {(md.partition, md.offset): value for value, md in ((v, f.result(timeout=30)) for v, f in futures)}


def test_wall_clock_jumps_on_the_leader_change_no_isr(tmp_path: Path) -> None:
    assert FAKETIME is not None, "libfaketime is missing: apt-get install faketime (.ci/run does)"
    cluster = LocalCluster(tmp_path / "cluster", 3, 3, broker_args=["--replica-lag-time-max-ms", str(LAG_TIME_MAX_MS)])
    offsets = {}
    for node_id, node in cluster.brokers.items():
        offsets[node_id] = tmp_path / f"broker-{node_id}.faketime"
        offsets[node_id].write_text("+0\n")
        node.env = {
            "LD_PRELOAD": str(FAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(offsets[node_id]),
            "FAKETIME_CACHE_DURATION": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
    with running(cluster), AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        admin.create_topics([NewTopic("skew", PARTITIONS, 3, config={"min.insync.replicas": "2"})])["skew"].result()
        wait_until(lambda: all(len(p.isr) == 3 for p in admin.describe_topics(["skew"])["skew"].partitions), 20, what="every follower in the ISR")
        before = _produce(cluster.bootstrap, "b")
        leader = admin.describe_topics(["skew"])["skew"].partitions[0].leader
        node = cluster.brokers[leader]
        since = node.log_path.stat().st_size
        for offset in ("+10m", "+20m", "-10m", "+10m", "+20m"):  # steps of +10, +10, -30, +20, +10 minutes
            offsets[leader].write_text(f"{offset}\n")
            _watch(node, since, offset)
        after = _produce(cluster.bootstrap, "a")
        assert all(len(p.isr) == 3 for p in admin.describe_topics(["skew"])["skew"].partitions)
        topic_id = uuid.UUID(admin.describe_topics(["skew"])["skew"].topic_id).bytes
        assert_acks_stored_once(read_to_end(cluster.bootstrap, "skew", PARTITIONS), before, after)
    assert_replicas_identical(cluster, topic_id, PARTITIONS, min_hw=1)
