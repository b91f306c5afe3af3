"""``caudal status``: one screen of cluster health.

What an operator checks first when something is wrong: is there an active
controller, which brokers are up, are any partitions offline, under-replicated
or under ``min.insync.replicas``, and which consumer groups are behind. Every
number comes from the cluster through one broker; the exit status is 0 when
the cluster is healthy and 1 when any partition is offline or under min ISR,
so scripts and probes can use it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from caudal.client.admin import AdminClient
from caudal.client.cli_common import add_bootstrap, fail, print_table
from caudal.client.fetcher import LATEST
from caudal.client.structs import ClusterDescription, QuorumInfo, TopicDescription, TopicPartition
from caudal.common.errors import CaudalError

MAX_LISTED_PARTITIONS = 10
DEFAULT_MIN_INSYNC_REPLICAS = "1"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("status", help="one screen of cluster health: controllers, brokers, partitions, group lag")
    add_bootstrap(p)
    p.set_defaults(func=main)


@dataclass
class PartitionHealth:
    """Partitions in trouble, by kind (Kafka's offline / under-replicated / under-min-ISR)."""

    total: int = 0
    offline: list[TopicPartition] = field(default_factory=list)
    under_replicated: list[TopicPartition] = field(default_factory=list)
    under_min_isr: list[TopicPartition] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.offline and not self.under_min_isr


def partition_health(topics: dict[str, TopicDescription], min_isr: dict[str, int]) -> PartitionHealth:
    """Classify every partition: no leader = offline; ISR below the replica set = under-replicated;
    ISR below the topic's ``min.insync.replicas`` = under min ISR (acks=all writes fail there)."""
    health = PartitionHealth()
    for name, topic in sorted(topics.items()):
        for p in topic.partitions:
            health.total += 1
            tp = TopicPartition(name, p.id)
            if p.leader < 0:
                health.offline.append(tp)
            if len(p.isr) < len(p.replicas):
                health.under_replicated.append(tp)
            if len(p.isr) < min_isr.get(name, 1):
                health.under_min_isr.append(tp)
    return health


def main(args: argparse.Namespace) -> int:
    try:
        with AdminClient(bootstrap_servers=args.bootstrap_server) as admin:
            cluster = admin.describe_cluster()
            quorum = admin.describe_metadata_quorum()
            topics = admin.describe_topics()
            configs = admin.describe_configs(list(topics)) if topics else {}
            min_isr = {
                name: int(entries.get("min.insync.replicas").value if "min.insync.replicas" in entries else DEFAULT_MIN_INSYNC_REPLICAS)
                for name, entries in configs.items()
            }
            health = partition_health(topics, min_isr)
            _print_cluster(cluster, quorum, topics)
            _print_partitions(topics, health)
            _print_groups(admin)
    except CaudalError as e:
        return fail(e)
    return 0 if health.healthy else 1


def _print_cluster(cluster: ClusterDescription, quorum: QuorumInfo, topics: dict[str, TopicDescription]) -> None:
    print(f"Cluster ID: {cluster.cluster_id}")
    print(
        f"Controllers: active controller {quorum.leader_id}, raft term {quorum.raft_term}, "
        f"commit index {quorum.commit_index}, metadata version {quorum.metadata_version}"
    )
    leaders: dict[int, int] = {}
    for topic in topics.values():
        for p in topic.partitions:
            leaders[p.leader] = leaders.get(p.leader, 0) + 1
    print(f"Brokers: {len(cluster.brokers)} live")
    print_table(
        ["  ID", "ADDRESS", "RACK", "LEADERS"],
        [[f"  {b.id}", f"{b.host}:{b.port}", b.rack or "-", str(leaders.get(b.id, 0))] for b in sorted(cluster.brokers, key=lambda b: b.id)],
    )


def _print_partitions(topics: dict[str, TopicDescription], health: PartitionHealth) -> None:
    print(
        f"Topics: {len(topics)}, partitions: {health.total}, offline: {len(health.offline)}, "
        f"under-replicated: {len(health.under_replicated)}, under-min-isr: {len(health.under_min_isr)}"
    )
    for label, partitions in (("offline", health.offline), ("under-min-isr", health.under_min_isr),
                              ("under-replicated", health.under_replicated)):
        listed = ", ".join(f"{tp.topic}-{tp.partition}" for tp in partitions[:MAX_LISTED_PARTITIONS])
        if partitions:
            more = f" (and {len(partitions) - MAX_LISTED_PARTITIONS} more)" if len(partitions) > MAX_LISTED_PARTITIONS else ""
            print(f"  {label}: {listed}{more}")


def _print_groups(admin: AdminClient) -> None:
    listings = admin.list_consumer_groups()
    print(f"Consumer groups: {len(listings)}")
    if not listings:
        return
    descriptions = admin.describe_consumer_groups([g.group_id for g in listings])
    rows = []
    for listing in sorted(listings, key=lambda g: g.group_id):
        committed = admin.list_consumer_group_offsets(listing.group_id)
        ends = admin.list_offsets({tp: LATEST for tp in committed}) if committed else {}
        lag = sum(max(0, ends[tp] - om.offset) for tp, om in committed.items() if tp in ends)
        members = len(descriptions[listing.group_id].members)
        rows.append([f"  {listing.group_id}", listing.state, str(members), str(lag)])
    print_table(["  GROUP", "STATE", "MEMBERS", "LAG"], rows)
