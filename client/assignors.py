"""Consumer-group partition assignors, run by the group leader client.

In Kafka's classic group protocol the coordinator does not choose who consumes what:
it elects one member leader, hands it every member's subscription, and relays the
leader's answer. The algorithm therefore lives in the client, and every client in a
group (ours, Java's, librdkafka's) must agree on what a protocol name means. Each
assignor here follows the Kafka assignor of the same name, is pure, and sorts member
ids so any leader computes the same result from the same JoinGroup answers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

from caudal.client.structs import TopicPartition
from caudal.common.errors import InvalidConfigError

__all__ = [
    "CooperativeStickyAssignor",
    "PartitionAssignor",
    "RangeAssignor",
    "RoundRobinAssignor",
    "StickyAssignor",
    "Subscription",
    "assignor_for",
]

Assignment = dict[str, list[TopicPartition]]


@dataclass(frozen=True)
class Subscription:
    """What a member sent in JoinGroup: sticky assignors need its current partitions."""

    topics: tuple[str, ...]
    owned_partitions: tuple[TopicPartition, ...] = ()
    generation_id: int = -1
    """Generation in which ``owned_partitions`` were assigned (-1 unknown): it settles
    which of two members claiming one partition really holds it."""
    user_data: bytes = b""
    rack: str = ""


class PartitionAssignor(Protocol):
    """A strategy members advertise by name; the group runs one that every member supports."""

    name: str
    """The protocol name sent in JoinGroup, shared with Kafka clients."""
    supports_cooperative: bool
    """True when results never hand a partition over before its owner has revoked it."""

    def assign(
        self, partitions_per_topic: dict[str, int], subscriptions: dict[str, Subscription]
    ) -> Assignment: ...


def _subscribers(
    partitions_per_topic: dict[str, int], subscriptions: dict[str, Subscription]
) -> dict[str, list[str]]:
    """Sorted member ids per existing topic: a topic missing from metadata has nothing to give."""
    subscribers: dict[str, list[str]] = defaultdict(list)
    for member in sorted(subscriptions):
        for topic in sorted(set(subscriptions[member].topics)):
            if topic in partitions_per_topic:
                subscribers[topic].append(member)
    return subscribers


def _result(members: dict[str, Subscription], assigned: dict[str, set[TopicPartition]]) -> Assignment:
    """Every member gets an entry, so the leader sends each one an answer, empty or not."""
    return {member: sorted(assigned.get(member, ())) for member in members}


class RangeAssignor:
    """Kafka's default before 3.0: co-partitioned topics land on the same member."""

    name = "range"
    supports_cooperative = False

    def assign(
        self, partitions_per_topic: dict[str, int], subscriptions: dict[str, Subscription]
    ) -> Assignment:
        assigned: dict[str, set[TopicPartition]] = defaultdict(set)
        for topic, members in _subscribers(partitions_per_topic, subscriptions).items():
            per_member, extra = divmod(partitions_per_topic[topic], len(members))
            for i, member in enumerate(members):
                start = i * per_member + min(i, extra)
                length = per_member + (1 if i < extra else 0)
                assigned[member].update(TopicPartition(topic, p) for p in range(start, start + length))
        return _result(subscriptions, assigned)


class RoundRobinAssignor:
    """Spreads all partitions evenly when subscriptions match, unlike Range's per-topic split."""

    name = "roundrobin"
    supports_cooperative = False

    def assign(
        self, partitions_per_topic: dict[str, int], subscriptions: dict[str, Subscription]
    ) -> Assignment:
        members = sorted(subscriptions)
        assigned: dict[str, set[TopicPartition]] = defaultdict(set)
        i = 0
        for topic, topic_members in sorted(_subscribers(partitions_per_topic, subscriptions).items()):
            subscribed = set(topic_members)
            for partition in range(partitions_per_topic[topic]):
                # Terminates: the topic has at least one subscriber.
                while members[i] not in subscribed:
                    i = (i + 1) % len(members)
                assigned[members[i]].add(TopicPartition(topic, partition))
                i = (i + 1) % len(members)
        return _result(subscriptions, assigned)


def _owners(
    partitions_per_topic: dict[str, int], subscriptions: dict[str, Subscription]
) -> dict[TopicPartition, str]:
    """Who holds each existing partition now; a stale member (lower generation) may still
    list a partition that has since moved, so the newest generation wins (ties: smaller id)."""
    owners: dict[TopicPartition, str] = {}
    for member in sorted(subscriptions):
        generation = subscriptions[member].generation_id
        for tp in subscriptions[member].owned_partitions:
            if not 0 <= tp.partition < partitions_per_topic.get(tp.topic, 0):
                continue
            holder = owners.get(tp)
            if holder is None or generation > subscriptions[holder].generation_id:
                owners[tp] = member
    return owners


class StickyAssignor:
    """Balanced like RoundRobin, but a rebalance moves as few partitions as it can, so
    members keep their caches, state stores and in-flight work across membership changes."""

    name = "sticky"
    supports_cooperative = False

    def assign(
        self, partitions_per_topic: dict[str, int], subscriptions: dict[str, Subscription]
    ) -> Assignment:
        subscribers = _subscribers(partitions_per_topic, subscriptions)
        eligible = {topic: set(members) for topic, members in subscribers.items()}
        all_partitions = [
            TopicPartition(topic, p)
            for topic in sorted(subscribers)
            for p in range(partitions_per_topic[topic])
        ]
        owners = _owners(partitions_per_topic, subscriptions)
        assigned: dict[str, set[TopicPartition]] = {member: set() for member in subscriptions}
        for tp, member in owners.items():
            if member in eligible.get(tp.topic, ()):
                assigned[member].add(tp)
        kept = {member: frozenset(tps) for member, tps in assigned.items()}

        # With identical subscriptions a balanced result never gives anyone more than
        # ceil(n / m), so the excess must move; with differing ones no single share
        # exists and the balancing loop below decides what moves.
        if len({frozenset(s.topics).intersection(eligible) for s in subscriptions.values()}) == 1:
            share = -(-len(all_partitions) // len(subscriptions))
            for member, tps in assigned.items():
                assigned[member] = set(sorted(tps)[:share])

        taken = set().union(*assigned.values())
        for tp in all_partitions:
            if tp not in taken:
                member = min(subscribers[tp.topic], key=lambda m: (len(assigned[m]), m))
                assigned[member].add(tp)

        self._balance(assigned, eligible, kept)
        return _result(subscriptions, assigned)

    @staticmethod
    def _balance(
        assigned: dict[str, set[TopicPartition]],
        eligible: dict[str, set[str]],
        kept: dict[str, frozenset[TopicPartition]],
    ) -> None:
        """Move partitions from fuller to emptier eligible members until no move can
        narrow a gap of 2 or more; a donor gives up partitions it did not own before
        first, so the moves undo this round's choices rather than members' old work."""
        # Each move turns counts (c, d) with d <= c - 2 into (c - 1, d + 1), lowering the
        # sum of squared counts by at least 2, so the passes end after O(n^2) moves.
        moved = True
        while moved:
            moved = False
            for donor in sorted(assigned, key=lambda m: (-len(assigned[m]), m)):
                for tp in sorted(assigned[donor], key=lambda tp: (tp in kept[donor], tp)):
                    limit = len(assigned[donor]) - 2
                    receivers = [m for m in eligible[tp.topic] if len(assigned[m]) <= limit]
                    if receivers:
                        receiver = min(receivers, key=lambda m: (len(assigned[m]), m))
                        assigned[donor].remove(tp)
                        assigned[receiver].add(tp)
                        moved = True


class CooperativeStickyAssignor:
    """Sticky, made safe for incremental cooperative rebalancing (KIP-429): members keep
    consuming through a rebalance, so a partition is only given out once nobody holds it."""

    name = "cooperative-sticky"
    supports_cooperative = True

    def assign(
        self, partitions_per_topic: dict[str, int], subscriptions: dict[str, Subscription]
    ) -> Assignment:
        # A partition moving between members is left out this round: its owner's result
        # lacks it, so the owner revokes it and rejoins, and the next round hands it out.
        # Ownership ignores the owner's subscription: it consumes until it has revoked.
        owners = _owners(partitions_per_topic, subscriptions)
        sticky = StickyAssignor().assign(partitions_per_topic, subscriptions)
        return {
            member: [tp for tp in tps if owners.get(tp, member) == member] for member, tps in sticky.items()
        }


_ASSIGNORS: dict[str, type[PartitionAssignor]] = {
    key: cls
    for cls in (RangeAssignor, RoundRobinAssignor, StickyAssignor, CooperativeStickyAssignor)
    for key in (cls.name, f"org.apache.kafka.clients.consumer.{cls.__name__}")
}


def assignor_for(name: str) -> PartitionAssignor:
    """The assignor for a ``partition.assignment.strategy`` entry; Java class names are
    accepted so configurations written for Kafka's Java client work unchanged."""
    try:
        return _ASSIGNORS[name]()
    except KeyError:
        valid = ", ".join(sorted(_ASSIGNORS))
        raise InvalidConfigError(f"unknown partition assignor {name!r}; valid names: {valid}") from None
