"""A consumer's group work: subscription, assignment, committed offsets.

Builds on :class:`GroupMember` with the "consumer" protocol: each member sends
its subscription (topics plus the partitions it owns, so sticky assignors can
keep them) for every assignor it is configured with, the group leader runs the
chosen assignor over the group's subscriptions and current partition counts,
and every member receives its partitions. Offsets are committed to and fetched
from the coordinator. Runs on the client's I/O loop.
"""

from __future__ import annotations

import logging
import re
from typing import Iterable, Optional

from caudal.client.assignors import PartitionAssignor, Subscription, assignor_for
from caudal.client.cluster import MetadataManager
from caudal.client.config import ConsumerConfig
from caudal.client.group_member import GroupMember, Joined, MembershipConfig
from caudal.client.structs import OffsetAndMetadata, TopicPartition
from caudal.common.errors import CaudalError, ErrorCode, InvalidConfigError, error_for
from caudal.v1 import broker_pb2 as pb

log = logging.getLogger(__name__)

PROTOCOL_TYPE = "consumer"


def encode_subscription(subscription: Subscription) -> bytes:
    message = pb.ConsumerProtocolSubscription(
        topics=sorted(subscription.topics), user_data=subscription.user_data,
        generation_id=subscription.generation_id, rack_id=subscription.rack,
        owned_partitions=_by_topic(subscription.owned_partitions),
    )
    return message.SerializeToString()


def decode_subscription(data: bytes) -> Subscription:
    message = pb.ConsumerProtocolSubscription.FromString(data)
    owned = tuple(TopicPartition(t.topic, p) for t in message.owned_partitions for p in t.partitions)
    return Subscription(tuple(message.topics), owned, message.generation_id, message.user_data, message.rack_id)


def encode_assignment(partitions: Iterable[TopicPartition]) -> bytes:
    return pb.ConsumerProtocolAssignment(assigned_partitions=_by_topic(partitions)).SerializeToString()


def decode_assignment(data: bytes) -> list[TopicPartition]:
    message = pb.ConsumerProtocolAssignment.FromString(data)
    return sorted(TopicPartition(t.topic, p) for t in message.assigned_partitions for p in t.partitions)


def _by_topic(partitions: Iterable[TopicPartition]) -> list[pb.TopicPartitions]:
    grouped: dict[str, list[int]] = {}
    for tp in partitions:
        grouped.setdefault(tp.topic, []).append(tp.partition)
    return [pb.TopicPartitions(topic=t, partitions=sorted(ps)) for t, ps in sorted(grouped.items())]


class ConsumerCoordinator:
    """Subscription and group membership of one consumer."""

    def __init__(self, config: ConsumerConfig, metadata: MetadataManager) -> None:
        if not config.group_id:
            raise InvalidConfigError("a consumer group needs group_id")
        self.config = config
        self.metadata = metadata
        self.assignors: list[PartitionAssignor] = [assignor_for(n) for n in config.assignor_names]
        self.cooperative = all(a.supports_cooperative for a in self.assignors)
        """Kafka's rule: rebalance incrementally only when every configured assignor can."""
        self.member = GroupMember(
            MembershipConfig(
                group_id=config.group_id, group_instance_id=config.group_instance_id,
                client_id=config.resolved_client_id, session_timeout_ms=config.session_timeout_ms,
                rebalance_timeout_ms=config.max_poll_interval_ms, heartbeat_interval_ms=config.heartbeat_interval_ms,
                retry_backoff_ms=config.retry_backoff_ms, request_timeout_ms=config.request_timeout_ms,
            ),
            metadata,
            PROTOCOL_TYPE,
        )
        self.topics: set[str] = set()
        self.pattern: Optional[re.Pattern[str]] = None
        self.owned: list[TopicPartition] = []
        self._seen_counts: Optional[dict[str, int]] = None
        """Partition count per subscribed topic at the last check, to notice topics appearing or growing."""

    def subscribe(self, topics: Iterable[str], pattern: Optional[str]) -> None:
        self.topics = set(topics)
        self.pattern = re.compile(pattern) if pattern else None
        self.member.rejoin_needed = True

    async def refresh_subscription(self) -> None:
        """Re-match the pattern and watch partition counts; a change asks for a rebalance.

        A subscribed topic that does not exist yet counts as 0 partitions, so its
        creation is a change like any other (the members rejoin and it is assigned).
        """
        cluster = await (self.metadata.refresh_all() if self.pattern is not None else self.metadata.refresh(self.topics))
        if self.pattern is not None:
            matched = {t for t in cluster.partition_counts if self.pattern.fullmatch(t) and not t.startswith("__")}
            if matched != self.topics:
                log.info("event=pattern_subscription_changed group=%s topics=%s", self.config.group_id, sorted(matched))
                self.topics = matched
                self.member.rejoin_needed = True
        counts = {t: cluster.partition_counts.get(t, 0) for t in self.topics}
        if self._seen_counts is not None and counts != self._seen_counts:
            self.member.rejoin_needed = True
        self._seen_counts = counts

    @property
    def waiting_for_topics(self) -> bool:
        """True while a subscribed topic does not exist (worth checking metadata more often)."""
        return any(n == 0 for n in (self._seen_counts or {}).values())

    async def rebalance(self) -> list[TopicPartition]:
        """Join the group and return this member's partitions for the new generation."""
        await self.refresh_subscription()
        subscription = Subscription(tuple(sorted(self.topics)), tuple(self.owned), self.member.generation_id)
        metadata = encode_subscription(subscription)
        protocols = [(a.name, metadata) for a in self.assignors]
        joined: Joined = await self.member.join(protocols, self._assign, self.config.max_poll_interval_ms / 1000)
        self.owned = decode_assignment(joined.assignment)
        return list(self.owned)

    async def _assign(self, protocol: str, members: list[tuple[str, bytes]]) -> dict[str, bytes]:
        subscriptions = {member_id: decode_subscription(data) for member_id, data in members}
        topics = set().union(*(s.topics for s in subscriptions.values()))
        cluster = await self.metadata.refresh(topics)
        counts = {t: cluster.partition_counts[t] for t in topics if t in cluster.partition_counts}
        assignor = next(a for a in self.assignors if a.name == protocol)
        assignment = assignor.assign(counts, subscriptions)
        log.info("event=group_assignment group=%s protocol=%s members=%d partitions=%d", self.config.group_id, protocol, len(members), sum(counts.values()))
        return {member_id: encode_assignment(parts) for member_id, parts in assignment.items()}

    # ---- offsets ---------------------------------------------------------------------

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """OffsetCommit for this generation; a rebalance that moved on makes it fail (Kafka's CommitFailed)."""
        member = self.member
        request = pb.OffsetCommitRequest(
            group_id=self.config.group_id, generation_id=member.generation_id, member_id=member.member_id,
            group_instance_id=self.config.group_instance_id or "",
        )
        grouped: dict[str, pb.OffsetCommitTopic] = {}
        for tp, om in sorted(offsets.items()):
            topic = grouped.get(tp.topic) or grouped.setdefault(tp.topic, request.topics.add(name=tp.topic))
            topic.partitions.add(
                partition=tp.partition, committed_offset=om.offset, committed_metadata=om.metadata,
                committed_leader_epoch=om.leader_epoch,
            )

        async def attempt() -> None:
            response = await member.call("OffsetCommit", request)
            if response.error_code:
                if response.error_code in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION):
                    member.reset()
                elif response.error_code == ErrorCode.REBALANCE_IN_PROGRESS:
                    member.rejoin_needed = True
                raise error_for(response.error_code, response.error_message)
            for t in response.topics:
                for p in t.partitions:
                    if p.error_code:
                        raise error_for(p.error_code, p.error_message)

        await member.retrying(attempt, self.config.request_timeout_ms / 1000)

    async def committed(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, Optional[OffsetAndMetadata]]:
        """The group's committed offsets for ``partitions`` (None where nothing is committed)."""
        grouped: dict[str, list[int]] = {}
        for tp in partitions:
            grouped.setdefault(tp.topic, []).append(tp.partition)
        request = pb.OffsetFetchRequest(
            group_id=self.config.group_id, topics=[pb.OffsetFetchTopic(name=t, partitions=ps) for t, ps in grouped.items()]
        )

        async def attempt() -> pb.OffsetFetchResponse:
            response = await self.member.call("OffsetFetch", request)
            if response.error_code:
                raise error_for(response.error_code, response.error_message)
            return response

        response = await self.member.retrying(attempt, self.config.request_timeout_ms / 1000)
        out: dict[TopicPartition, Optional[OffsetAndMetadata]] = {}
        for t in response.topics:
            for p in t.partitions:
                if p.error_code:
                    raise error_for(p.error_code, p.error_message)
                tp = TopicPartition(t.name, p.partition)
                out[tp] = OffsetAndMetadata(p.committed_offset, p.metadata, p.committed_leader_epoch) if p.committed_offset >= 0 else None
        return out

    async def leave(self) -> None:
        try:
            await self.member.leave("the consumer is being closed")
        except CaudalError as exc:
            log.debug("event=leave_failed group=%s error=%s", self.config.group_id, exc.code.name)
