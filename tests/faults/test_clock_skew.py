"""Wall-clock steps on every broker (fault matrix F13).

An NTP step, a resumed VM or a hand-set date moves a machine's wall clock by
minutes. Record timestamps and retention follow the wall clock; nothing that
decides which replicas are in sync or which group members are alive may. The
brokers here run under libfaketime (``apt-get install faketime``), whose offset
file steps their wall clocks ahead and back by ten to thirty minutes while their
monotonic clocks run on. The steps land while the topic is idle, when followers
fetch least often, and while a group member heartbeats every 3 s: a leader timing
follower lag, or a coordinator timing sessions, on the wall clock would drop
whoever it looks at before their next fetch or heartbeat. While this test was
written, the group half caught a wall-clock coordinator at the first step in 3
of 3 runs; the ISR half, where the race is tighter, caught a wall-clock leader in
1 of 5. The deterministic checks are ``tests/unit/test_lag_clock.py`` and
``tests/unit/test_steady_epoch_clock.py``.
No ISR may change, no member may be dropped, and ``acks=all`` writes before and
after must all be kept.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from invariants import Acks, assert_acks_stored_once
from nodes import running, wait_until
from reading import read_to_end
from replicas import all_in_sync, assert_replicas_identical, replicated_topic

from caudal.client import AdminClient, Consumer, ConsumerRebalanceListener, Producer, TopicPartition
from caudal.local_cluster import LocalCluster

PARTITIONS = 3
LAG_TIME_MAX_MS = 2000
"""The leader looks for lagging followers every half of this."""
WINDOW_S = 3.0
"""How long each step is watched: the offset file is read at least once a second, then two looks."""
FAKETIME = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), None)
"""Debian's libfaketime, under the machine's multiarch directory."""


class Rebalances(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.assigned: list[list[TopicPartition]] = []
        self.taken: list[list[TopicPartition]] = []

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.assigned.append(assigned)

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.taken.append(revoked)

    def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
        self.taken.append(lost)


def _isr_changes(cluster: LocalCluster, since: dict[int, int]) -> list[str]:
    lines = []
    for node_id, node in cluster.brokers.items():
        text = node.log_path.read_bytes()[since[node_id]:].decode(errors="replace")
        lines += [line for line in text.splitlines() if "event=isr_" in line]
    return lines


def _watch(cluster: LocalCluster, since: dict[int, int], member: Consumer, rebalances: Rebalances, offset: str) -> None:
    """For ``WINDOW_S`` after the clocks moved to ``offset``: no ISR change, the member keeps its partitions."""
    until = time.monotonic() + WINDOW_S

    def settled() -> bool:
        member.poll(timeout_ms=100)  # rebalance callbacks run in poll
        return bool(_isr_changes(cluster, since) or rebalances.taken) or time.monotonic() >= until

    wait_until(settled, WINDOW_S + 10, interval_s=0, what=f"the step to {offset} to be watched")
    assert not _isr_changes(cluster, since), f"a wall-clock step to {offset} moved ISRs: {_isr_changes(cluster, since)[:3]}"
    assert not rebalances.taken, f"a wall-clock step to {offset} dropped the group member: {rebalances.taken}"


def _produce(bootstrap: str, prefix: str) -> Acks:
    with Producer(bootstrap_servers=bootstrap, acks="all") as producer:
        futures = [(f"{prefix}{i}".encode(), producer.send("skew", value=f"{prefix}{i}".encode(), key=str(i).encode())) for i in range(100)]
        producer.flush()
        return {(md.partition, md.offset): value for value, md in ((v, f.result(timeout=30)) for v, f in futures)}


def test_wall_clock_steps_move_no_isr_and_drop_no_group_member(tmp_path: Path) -> None:
    assert FAKETIME is not None, "libfaketime is missing: apt-get install faketime (.ci/run does)"
    cluster = LocalCluster(tmp_path / "cluster", 3, 3, broker_args=["--replica-lag-time-max-ms", str(LAG_TIME_MAX_MS)])
    offset_file = tmp_path / "faketime"
    offset_file.write_text("+0\n")
    for node in cluster.brokers.values():
        node.env = {
            "LD_PRELOAD": str(FAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(offset_file),
            "FAKETIME_CACHE_DURATION": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
    with running(cluster), AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        replicated_topic(admin, "skew", PARTITIONS)
        before = _produce(cluster.bootstrap, "b")
        rebalances = Rebalances()
        member = Consumer(bootstrap_servers=cluster.bootstrap, group_id="skew-readers", auto_offset_reset="earliest")
        try:
            member.subscribe(["skew"], listener=rebalances)
            wait_until(lambda: member.poll(timeout_ms=100) is not None and rebalances.assigned, 30, interval_s=0, what="the member's partitions")
            since = {node_id: node.log_path.stat().st_size for node_id, node in cluster.brokers.items()}
            for offset in ("+10m", "+20m", "-10m", "+10m", "+20m"):  # steps of +10, +10, -30, +20, +10 minutes
                offset_file.write_text(f"{offset}\n")
                _watch(cluster, since, member, rebalances, offset)
        finally:
            member.close()
        after = _produce(cluster.bootstrap, "a")
        assert all_in_sync(admin, "skew")
        topic_id = uuid.UUID(admin.describe_topics(["skew"])["skew"].topic_id).bytes
        assert_acks_stored_once(read_to_end(cluster.bootstrap, "skew", PARTITIONS), before, after)
    assert_replicas_identical(cluster, topic_id, PARTITIONS, min_hw=1)
