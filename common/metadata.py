"""The cluster metadata image: brokers, topics, partitions and configs.

Both sides replay the same ``MetadataRecord`` stream into this class: the
controller to decide (create topics, elect leaders), brokers to know what they
lead and to answer Metadata requests. It is pure (no I/O, no clock) so a restart
is a replay and tests drive it with records alone. Owned by one thread at a
time: the controller's apply path or the broker's asyncio loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

from caudal.common.topic_config import TopicConfig
from caudal.v1 import metadata_pb2 as md

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4


@dataclass
class BrokerState:
    """A registered broker as the controller knows it."""

    broker_id: int
    broker_epoch: int
    host: str
    port: int
    rack: str
    fenced: bool
    incarnation_id: bytes = b""
    """Random id of the broker process that registered this epoch (a restart gets a new one)."""


@dataclass
class PartitionState:
    """Placement and leadership of one partition; ``leader`` is -1 when offline."""

    replicas: list[int]
    isr: list[int]
    leader: int
    leader_epoch: int
    partition_epoch: int


@dataclass
class TopicState:
    """A topic: its id, partitions (index = partition number) and config overrides."""

    name: str
    topic_id: bytes
    partitions: dict[int, PartitionState] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)
    config: TopicConfig = field(default_factory=TopicConfig)

    @property
    def is_internal(self) -> bool:
        return self.name.startswith("__")


class MetadataImage:
    """Replayable cluster metadata; ``version`` counts the batches applied."""

    def __init__(self) -> None:
        self.version = 0
        self.brokers: dict[int, BrokerState] = {}
        self.topics_by_id: dict[bytes, TopicState] = {}
        self.topics: dict[str, TopicState] = {}
        self.next_producer_id = 0

    def apply_batch(self, batch: md.MetadataBatch) -> None:
        """Apply one atomic change; its version must follow the current one."""
        for record in batch.records:
            self.replay(record)
        self.version = batch.version

    def topics_touched_by(self, batch: md.MetadataBatch) -> set[str] | None:
        """Names of the topics ``batch`` creates, changes or removes, worked out before it is
        applied (a removal names its topic by id only); None when a record refers to a topic
        this image does not know, so the caller must look at everything.

        Lets a broker reconcile only what a change touches: with 100k partitions a full
        pass per change made each topic creation cost a walk over the whole cluster."""
        names: set[str] = set()
        created: dict[bytes, str] = {}
        for record in batch.records:
            kind = record.WhichOneof("record")
            if kind == "topic":
                names.add(record.topic.name)
                created[record.topic.topic_id] = record.topic.name
            elif kind in ("partition", "remove_topic"):
                topic_id = getattr(record, kind).topic_id
                known = self.topics_by_id.get(topic_id)
                name = created.get(topic_id) or (known.name if known is not None else None)
                if name is None:
                    return None
                names.add(name)
            elif kind == "config" and record.config.resource_type == TOPIC_RESOURCE:
                names.add(record.config.resource_name)
        return names

    def replay(self, record: md.MetadataRecord) -> None:
        """Apply one record; unknown or stale references are ignored (replay never fails)."""
        kind = record.WhichOneof("record")
        if kind == "broker_registration":
            r = record.broker_registration
            self.brokers[r.broker_id] = BrokerState(r.broker_id, r.broker_epoch, r.host, r.port, r.rack, r.fenced, r.incarnation_id)
        elif kind == "topic":
            r = record.topic
            topic = TopicState(r.name, r.topic_id)
            self.topics[r.name] = topic
            self.topics_by_id[r.topic_id] = topic
        elif kind == "partition":
            r = record.partition
            topic = self.topics_by_id.get(r.topic_id)
            if topic is not None:
                topic.partitions[r.partition] = PartitionState(
                    list(r.replicas), list(r.isr), r.leader, r.leader_epoch, r.partition_epoch
                )
        elif kind == "config":
            self._replay_config(record.config)
        elif kind == "remove_topic":
            topic = self.topics_by_id.pop(record.remove_topic.topic_id, None)
            if topic is not None:
                self.topics.pop(topic.name, None)
        elif kind in ("fence_broker", "unfence_broker"):
            r = getattr(record, kind)
            broker = self.brokers.get(r.broker_id)
            if broker is not None and broker.broker_epoch == r.broker_epoch:
                broker.fenced = kind == "fence_broker"
        elif kind == "producer_ids":
            self.next_producer_id = max(self.next_producer_id, record.producer_ids.next_producer_id)

    def _replay_config(self, r: md.ConfigRecord) -> None:
        if r.resource_type != TOPIC_RESOURCE:
            return
        topic = self.topics.get(r.resource_name)
        if topic is None:
            return
        if r.deleted:
            topic.overrides.pop(r.name, None)
        else:
            topic.overrides[r.name] = r.value
        topic.config = TopicConfig.from_dict(topic.overrides)

    def live_brokers(self) -> list[BrokerState]:
        """Unfenced brokers, by id: the ones that may hold new replicas."""
        return sorted((b for b in self.brokers.values() if not b.fenced), key=lambda b: b.broker_id)

    def partitions_led_by(self, broker_id: int) -> Iterator[tuple[TopicState, int, PartitionState]]:
        for topic in self.topics.values():
            for index, partition in topic.partitions.items():
                if partition.leader == broker_id:
                    yield topic, index, partition

    def snapshot_records(self) -> list[md.MetadataRecord]:
        """Records that rebuild this image from empty (for snapshots and far-behind watchers)."""
        out: list[md.MetadataRecord] = []
        for b in sorted(self.brokers.values(), key=lambda b: b.broker_id):
            out.append(
                md.MetadataRecord(
                    broker_registration=md.BrokerRegistrationRecord(
                        broker_id=b.broker_id, broker_epoch=b.broker_epoch, host=b.host, port=b.port, rack=b.rack,
                        fenced=b.fenced, incarnation_id=b.incarnation_id,
                    )
                )
            )
        for topic in self.topics.values():
            out.append(md.MetadataRecord(topic=md.TopicRecord(name=topic.name, topic_id=topic.topic_id)))
            out.extend(config_records(topic.name, topic.overrides.items()))
            for index, p in sorted(topic.partitions.items()):
                out.append(partition_record(topic.topic_id, index, p))
        if self.next_producer_id:
            out.append(md.MetadataRecord(producer_ids=md.ProducerIdsRecord(next_producer_id=self.next_producer_id)))
        return out


def partition_record(topic_id: bytes, index: int, p: PartitionState) -> md.MetadataRecord:
    return md.MetadataRecord(
        partition=md.PartitionRecord(
            topic_id=topic_id,
            partition=index,
            replicas=p.replicas,
            isr=p.isr,
            leader=p.leader,
            leader_epoch=p.leader_epoch,
            partition_epoch=p.partition_epoch,
        )
    )


def config_records(topic: str, items: Iterable[tuple[str, str]], deleted: bool = False) -> list[md.MetadataRecord]:
    return [
        md.MetadataRecord(
            config=md.ConfigRecord(resource_type=TOPIC_RESOURCE, resource_name=topic, name=k, value=v, deleted=deleted)
        )
        for k, v in items
    ]
