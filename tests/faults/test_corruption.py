"""Bit rot on a stopped replica (fault matrix F12).

A broker is killed and one bit in every 4 KiB of its RocksDB write-ahead log is
flipped (after a crash, its recent data lives there). Every WAL record carries a CRC, so on
restart RocksDB stops replaying at the first damaged record (point-in-time
recovery): the broker comes back with a short log. It must not serve that as the
truth: it follows the leaders, fetches what it lost, rejoins the ISRs and ends
byte-identical to the others, and no acknowledged record is lost.
"""

from __future__ import annotations

import re

from invariants import assert_load_survived
from load import ProducerLoad
from nodes import wait_until
from reading import end_offsets
from replicas import all_in_sync, replicated_topic
from storage_faults import BrokerDisk, flip_a_bit_every

from caudal.client import AdminClient
from caudal.local_cluster import LocalCluster

PARTITIONS = 3
OPENED = re.compile(r"event=partition_opened broker=\d+ topic=rot partition=(\d+) leo=(\d+)")


def test_bit_rot_in_a_stopped_replica_is_detected_and_fetched_again(disks: tuple[LocalCluster, dict[int, BrokerDisk]]) -> None:
    cluster, disk_of = disks
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        replicated_topic(admin, "rot", PARTITIONS)
        load = ProducerLoad(cluster.bootstrap, "rot", rate=500).start()
        wait_until(lambda: load.acked_count() > 1000, 30, what="acknowledgements before the stop")
        victim = admin.describe_topics(["rot"])["rot"].partitions[0].leader
        node, disk = cluster.brokers[victim], disk_of[victim]
        ends = end_offsets(cluster.bootstrap, "rot", PARTITIONS)  # every replica, the victim too, has at least this much
        node.kill9()  # stopped with everything in its write-ahead log
        assert sum(flip_a_bit_every(wal, 4096) for wal in disk.wals()) > 0
        node.start()
        node.wait_ready()
        reopened = {int(p): int(leo) for p, leo in OPENED.findall(node.log_tail(400))}
        assert all(reopened.get(p, end) < end for p, end in ends.items()), (
            f"the damaged replica came back with logs ending at {reopened}, not short of {ends}: the damage went unseen"
        )
        wait_until(lambda: all_in_sync(admin, "rot"), 30, what=f"broker {victim} back in every ISR")
        assert_load_survived(cluster, admin, "rot", PARTITIONS, load.stop())
