"""The controller quorum and partition leadership survive controller and broker failures."""

from __future__ import annotations

import signal
import time

import grpc
import pytest
from nodes import wait_until
from quorum import active_controller, describe_quorum

from caudal.client import AdminClient, NewTopic
from caudal.common.errors import ErrorCode
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import controller_pb2_grpc


def _create(admin: AdminClient, name: str, partitions: int = 6) -> bool:
    try:
        admin.create_topics([NewTopic(name, partitions, 3)])[name].result()
        return True
    except Exception:
        return False


def test_killing_the_active_controller_elects_another(cluster) -> None:
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        assert _create(admin, "before")
        first = wait_until(lambda: active_controller(cluster), 10, what="an agreed active controller")
        cluster.controllers[first].kill9()
        started = time.monotonic()
        wait_until(lambda: _create(admin, "after"), 10, interval_s=0.2, what="topic creation after controller failover")
        assert time.monotonic() - started < 10
        second = wait_until(lambda: active_controller(cluster), 10, what="the survivors to agree on a leader")
        assert second != first
        assert set(admin.list_topics()) == {"before", "after"}


def test_killed_broker_loses_leaderships_and_isr_membership(cluster) -> None:
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        assert _create(admin, "events")
        victim = 2
        cluster.brokers[victim].kill9()
        started = time.monotonic()

        def moved() -> bool:
            parts = admin.describe_topics(["events"])["events"].partitions
            return all(p.leader not in (-1, victim) and victim not in p.isr for p in parts)

        wait_until(moved, 10, interval_s=0.2, what="every partition led by a live broker, the dead one out of every ISR")
        assert time.monotonic() - started < 10
        assert victim not in {b.id for b in admin.describe_cluster().brokers}

        cluster.brokers[victim].start()
        cluster.brokers[victim].wait_ready()
        wait_until(
            lambda: all(victim in p.isr for p in admin.describe_topics(["events"])["events"].partitions),
            30,
            what="the restarted broker back in every ISR",
        )


def test_full_quorum_restart_keeps_metadata(cluster) -> None:
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        for name in ("a", "b", "c"):
            assert _create(admin, name, partitions=2)
        admin.incremental_alter_configs({"a": {"retention.ms": "12345"}})["a"].result()
        admin.delete_topics(["b"])["b"].result()
        before = admin.describe_topics()
    for node in cluster.controllers.values():
        node.kill9()
    for node in cluster.controllers.values():
        node.start()
    for node in cluster.controllers.values():
        node.wait_ready()
    wait_until(lambda: active_controller(cluster), 20, what="the restarted quorum to elect a leader")
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        wait_until(lambda: _create(admin, "d", partitions=1), 20, interval_s=0.2, what="admin requests after the restart")
        after = admin.describe_topics()
        assert {n: (t.topic_id, len(t.partitions)) for n, t in after.items() if n != "d"} == {
            n: (t.topic_id, len(t.partitions)) for n, t in before.items()
        }
        assert admin.describe_configs(["a"])["a"]["retention.ms"].value == "12345"
        assert "b" not in after


@pytest.mark.slow
def test_paused_controller_steps_down_without_split_brain(cluster) -> None:
    leader = wait_until(lambda: active_controller(cluster), 10, what="an agreed active controller")
    old = cluster.controllers[leader]
    old.signal(signal.SIGSTOP)
    try:
        with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
            wait_until(lambda: _create(admin, "while-paused", 1), 15, interval_s=0.2, what="a new controller to take over")
    finally:
        old.signal(signal.SIGCONT)
    # The resumed controller must not accept writes as if it still led.
    old_address = cluster.controller_addresses[leader - 1]

    def stepped_down() -> bool:
        view = describe_quorum(old_address)
        return view is not None and view.leader_id not in (-1, leader)

    wait_until(stepped_down, 15, what="the resumed controller to follow the new leader")
    with grpc.insecure_channel(old_address) as channel:
        request = pb.CreateTopicsRequest(topics=[pb.CreatableTopic(name="split-brain", num_partitions=1, replication_factor=3)])
        result = controller_pb2_grpc.ControllerStub(channel).CreateTopics(request, timeout=5).results[0]
        assert result.error_code == ErrorCode.NOT_CONTROLLER
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        assert "split-brain" not in admin.list_topics()
    versions = wait_until(
        lambda: (vs := {describe_quorum(a).metadata_version for a in cluster.controller_addresses}) and len(vs) == 1 and vs,
        15,
        what="all three controllers to hold the same metadata version",
    )
    assert len(versions) == 1
