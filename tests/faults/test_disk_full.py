"""A full disk on a broker (fault matrix F11).

Writes to one broker's data dir start failing with ENOSPC (an LD_PRELOAD shim, see
``tests/support/storage_faults.c``). Nothing that failed to be written is ever
acknowledged; the broker's store goes offline, and like a Kafka broker whose only
log dir fails it hands its leaderships over (controlled shutdown) and exits with
status 1. Producing goes on through the other replicas; once the disk has room
again, the restarted broker catches up and rejoins every ISR. First the leader's
disk fills, then a follower's.
"""

from __future__ import annotations


from invariants import assert_load_survived
from load import ProducerLoad
from nodes import wait_until
from replicas import all_in_sync
from storage_faults import BrokerDisk

from caudal.client import AdminClient, NewTopic
from caudal.local_cluster import LocalCluster

PARTITIONS = 3
HANDOVER_S = 45
"""The controlled shutdown's own bound (30 s) plus room for the exit."""


def _partitions(admin: AdminClient, topic: str):  # noqa: ANN202 - the admin client's partition descriptions
    return admin.describe_topics([topic])[topic].partitions


def test_a_full_disk_stops_its_broker_and_the_others_carry_on(disks: tuple[LocalCluster, dict[int, BrokerDisk]]) -> None:
    cluster, disk_of = disks
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        admin.create_topics([NewTopic("full", PARTITIONS, 3, config={"min.insync.replicas": "2"})])["full"].result()
        wait_until(lambda: all_in_sync(admin, "full"), 20, what="every follower in the ISR")
        load = ProducerLoad(cluster.bootstrap, "full", rate=300).start()
        wait_until(lambda: load.acked_count() > 300, 30, what="acknowledgements before the disk fills")
        for role in ("leader", "follower"):
            _fill_disk_then_free_it(cluster, disk_of, admin, load, role)
        assert_load_survived(cluster, admin, "full", PARTITIONS, load.stop())


def _fill_disk_then_free_it(
    cluster: LocalCluster, disk_of: dict[int, BrokerDisk], admin: AdminClient, load: ProducerLoad, role: str
) -> None:
    """Fill the disk of partition 0's ``role``; it must stop and the rest carry on; then free it and restart."""
    p0 = _partitions(admin, "full")[0]
    victim = p0.leader if role == "leader" else next(r for r in p0.replicas if r != p0.leader)
    node, disk = cluster.brokers[victim], disk_of[victim]
    disk.fill()
    wait_until(lambda: not node.running, HANDOVER_S, what=f"the {role} with the full disk to stop")
    assert node.proc is not None and node.proc.returncode == 1, f"broker {victim} exited with {node.proc.returncode}"
    assert "event=storage_offline" in node.log_tail(200)
    wait_until(
        lambda: all(p.leader not in (-1, victim) and victim not in p.isr for p in _partitions(admin, "full")),
        30, what=f"leaders and ISRs without broker {victim}",
    )
    acked = load.acked_count()
    wait_until(lambda: load.acked_count() > acked + 100, 30, what=f"acknowledgements without broker {victim}")
    disk.free()
    node.start()
    node.wait_ready()
    wait_until(lambda: all_in_sync(admin, "full"), 30, what=f"broker {victim} back in every ISR")
