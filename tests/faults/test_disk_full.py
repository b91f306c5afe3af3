"""A full disk on a broker (fault matrix F11).

Writes to one broker's data dir start failing with ENOSPC (an LD_PRELOAD shim, see
``tests/support/storage_faults.c``). Nothing that failed to be written is ever
acknowledged; the broker's store goes offline and it hands its leaderships and ISR
places over (controlled shutdown), but the process stays up. Producing goes on
through the other replicas; once the disk has room again, the broker starts over
by itself, catches up and rejoins every ISR. First the leader's disk fills, then a
follower's.
"""

from __future__ import annotations


from invariants import assert_load_survived
from load import ProducerLoad
from nodes import wait_until
from replicas import in_sync_on_every_broker, replicated_topic
from storage_faults import BrokerDisk

from caudal.client import AdminClient
from caudal.local_cluster import LocalCluster, NodeProcess

PARTITIONS = 3
HANDOVER_S = 45
"""The controlled shutdown's own bound (30 s) plus room to spare."""


def _partitions(admin: AdminClient, topic: str):  # noqa: ANN202 - the admin client's partition descriptions
    return admin.describe_topics([topic])[topic].partitions


def test_a_full_disk_takes_its_broker_out_until_space_is_freed_and_the_others_carry_on(
    disks: tuple[LocalCluster, dict[int, BrokerDisk]],
) -> None:
    cluster, disk_of = disks
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        replicated_topic(admin, "full", PARTITIONS)
        load = ProducerLoad(cluster.bootstrap, "full", rate=300).start()
        wait_until(lambda: load.acked_count() > 300, 30, what="acknowledgements before the disk fills")
        for role in ("leader", "follower"):
            _fill_disk_then_free_it(cluster, disk_of, admin, load, role)
        assert_load_survived(cluster, admin, "full", PARTITIONS, load.stop())


def _fill_disk_then_free_it(
    cluster: LocalCluster, disk_of: dict[int, BrokerDisk], admin: AdminClient, load: ProducerLoad, role: str
) -> None:
    """Fill the disk of partition 0's ``role``; it must step out while the rest carry on; then free
    the disk, and it must come back by itself."""
    p0 = _partitions(admin, "full")[0]
    victim = p0.leader if role == "leader" else next(r for r in p0.replicas if r != p0.leader)
    node, disk = cluster.brokers[victim], disk_of[victim]
    offline_before, waiting_before = _count(node, "event=storage_offline"), _count(node, "event=storage_waiting")
    disk.fill()
    wait_until(lambda: _count(node, "event=storage_waiting") > waiting_before, HANDOVER_S, what=f"the {role} with the full disk to step out")
    assert _count(node, "event=storage_offline") > offline_before
    wait_until(
        lambda: all(p.leader not in (-1, victim) and victim not in p.isr for p in _partitions(admin, "full")),
        30, what=f"leaders and ISRs without broker {victim}",
    )
    acked = load.acked_count()
    wait_until(lambda: load.acked_count() > acked + 100, 30, what=f"acknowledgements without broker {victim}")
    assert node.running, f"broker {victim} must stay up while its disk is full"
    writable_before = _count(node, "event=storage_writable")
    disk.free()
    wait_until(lambda: _count(node, "event=storage_writable") > writable_before, 20, what=f"broker {victim} to see its disk writable")
    wait_until(lambda: in_sync_on_every_broker(cluster, "full"), 40, what=f"broker {victim} back in every ISR by itself")
    assert node.running


def _count(node: NodeProcess, event: str) -> int:
    return node.log_path.read_text(errors="replace").count(event)
