"""Value types of the client SDK, named as in Kafka's Python clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional, Sequence


class TopicPartition(NamedTuple):
    """A topic name and partition number."""

    topic: str
    partition: int


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
