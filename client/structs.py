"""Value types of the client SDK, named as in Kafka's Python clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Sequence


class TopicPartition(NamedTuple):
    """A topic name and partition number."""

    topic: str
    partition: int


class OffsetAndMetadata(NamedTuple):
    """A committed position: the offset of the next record to read, plus free-form metadata."""

    offset: int
    metadata: str = ""
    leader_epoch: int = -1


class RecordMetadata(NamedTuple):
    """Where an acknowledged record was written."""

    topic: str
    partition: int
    offset: int
    """-1 when ``acks=0`` (the broker does not answer)."""
    timestamp: int
    """The record's timestamp, or the broker's append time for LogAppendTime topics."""
    serialized_key_size: int
    serialized_value_size: int


class ConsumerRecord(NamedTuple):
    """One record as the consumer returns it."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: Sequence[tuple[str, Optional[bytes]]]


@dataclass(frozen=True)
class NewTopic:
    """A topic to create; -1 leaves partitions / replication factor to the cluster default."""

    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BrokerMetadata:
    id: int
    host: str
    port: int
    rack: Optional[str]


@dataclass(frozen=True)
class PartitionInfo:
    id: int
    leader: int
    """-1 when the partition has no leader."""
    replicas: list[int]
    isr: list[int]
    leader_epoch: int = 0


@dataclass(frozen=True)
class TopicDescription:
    name: str
    topic_id: str
    is_internal: bool
    partitions: list[PartitionInfo]


@dataclass(frozen=True)
class ClusterDescription:
    cluster_id: str
    controller_id: int
    brokers: list[BrokerMetadata]


@dataclass(frozen=True)
class ConfigEntry:
    name: str
    value: str
    is_default: bool
    source: str
    read_only: bool = False
    is_sensitive: bool = False


class ConsumerRebalanceListener:
    """Callbacks around a consumer-group rebalance, called from ``poll`` (Kafka's interface).

    With eager assignors every rebalance revokes everything, then assigns the new
    set; with cooperative-sticky only the partitions that move are revoked and only
    the added ones are passed to ``on_partitions_assigned``. ``on_partitions_lost``
    means the consumer was dropped from the group (its partitions may already be
    someone else's, so do not commit for them).
    """

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Called before partitions are taken away; commit what was processed here."""

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Called once new partitions are assigned, before records of them are returned."""

    def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
        """Called when membership was lost; defaults to ``on_partitions_revoked`` as in Kafka."""
        self.on_partitions_revoked(lost)


@dataclass(frozen=True)
class ConsumerGroupListing:
    """One group as ListGroups reports it; ``is_simple_consumer_group`` means it never had members (offsets only)."""

    group_id: str
    is_simple_consumer_group: bool
    state: str
    """Kafka's group state name: Empty, PreparingRebalance, CompletingRebalance, Stable or Dead."""


@dataclass(frozen=True)
class MemberDescription:
    member_id: str
    group_instance_id: Optional[str]
    client_id: str
    host: str
    """The member's address as the coordinator saw it, like ``/127.0.0.1``."""
    assignment: list[TopicPartition]


@dataclass(frozen=True)
class ConsumerGroupDescription:
    group_id: str
    is_simple_consumer_group: bool
    members: list[MemberDescription]
    partition_assignor: str
    """The assignor the group chose (empty while it has no members)."""
    state: str
    """As in :class:`ConsumerGroupListing`; ``Dead`` for a group that does not exist."""
    coordinator: BrokerMetadata


@dataclass(frozen=True)
class QuorumInfo:
    """The controller quorum as its active member sees it (Kafka's Admin.describeMetadataQuorum)."""

    leader_id: int
    raft_term: int
    commit_index: int
    metadata_version: int
