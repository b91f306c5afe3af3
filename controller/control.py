"""Admin decisions of the controller, as pure functions.

Each handler reads the current :class:`MetadataImage`, validates a request
and returns a :class:`ControllerResult`: the metadata records to append to the
controller log and the response to send once they are committed. Nothing here
mutates the image — records change state only when replayed (Kafka's
``ControllerResult(records, response)`` pattern), so a failed append leaves no
trace and every node replays the very same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

from caudal.common.errors import (
    CaudalError,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidRequestError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from caudal.common.metadata import (
    BROKER_RESOURCE,
    TOPIC_RESOURCE,
    MetadataImage,
    PartitionState,
    config_records,
    partition_record,
)
from caudal.common.topic_config import TopicConfig, validate_topic_name
from caudal.controller.placement import assign_replicas
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import metadata_pb2 as md

T = TypeVar("T")

MAX_PARTITIONS = 10_000
ALTER_SET = 0
ALTER_DELETE = 1


@dataclass
class ControllerResult(Generic[T]):
    """Records to commit, and the response to return once they are committed."""

    records: list[md.MetadataRecord]
    response: T


@dataclass(frozen=True)
class ControllerDefaults:
    """Cluster-wide defaults for requests that leave a value unset (-1)."""

    num_partitions: int = 1
    """Kafka's ``num.partitions``."""
    default_replication_factor: int = 3
    """Capped at the number of live brokers, so a one-node cluster gets RF 1."""
    topic_config: dict[str, str] = field(default_factory=dict)
    """Cluster-level topic config overrides stored with every new topic."""


def create_topics(
    image: MetadataImage,
    request: pb.CreateTopicsRequest,
    new_topic_id: Callable[[], bytes],
    defaults: ControllerDefaults = ControllerDefaults(),
) -> ControllerResult[pb.CreateTopicsResponse]:
    """Validate each topic on its own; valid ones get records, invalid ones an error."""
    records: list[md.MetadataRecord] = []
    results = []
    seen: set[str] = set()
    live = image.live_brokers()
    start = len(image.topics)
    for t in request.topics:
        result = pb.CreateTopicResult(name=t.name)
        try:
            if t.name in seen:
                raise InvalidRequestError(f"Topic '{t.name}' appears more than once in the request")
            seen.add(t.name)
            validate_topic_name(t.name)
            if t.name in image.topics:
                raise TopicAlreadyExistsError(f"Topic '{t.name}' already exists.")
            partitions = defaults.num_partitions if t.num_partitions == -1 else t.num_partitions
            if partitions < 1:
                raise InvalidPartitionsError("Number of partitions was set to an invalid non-positive value.")
            if partitions > MAX_PARTITIONS:
                raise InvalidPartitionsError(f"Number of partitions {partitions} exceeds the limit of {MAX_PARTITIONS}.")
            rf = t.replication_factor
            if rf == -1:
                rf = max(1, min(defaults.default_replication_factor, len(live)))
            overrides = {**defaults.topic_config, **dict(t.configs)}
            config = TopicConfig.from_dict(overrides)
            if config.min_insync_replicas > rf and "min.insync.replicas" in t.configs:
                raise InvalidConfigError(
                    f"min.insync.replicas ({config.min_insync_replicas}) cannot exceed the replication factor ({rf})"
                )
            assignment = assign_replicas(live, partitions, rf, start=start)
        except CaudalError as e:
            result.error_code, result.error_message = int(e.code), e.message
            results.append(result)
            continue
        start += 1
        result.num_partitions, result.replication_factor = partitions, rf
        if not request.validate_only:
            topic_id = new_topic_id()
            result.topic_id = topic_id
            records.append(md.MetadataRecord(topic=md.TopicRecord(name=t.name, topic_id=topic_id)))
            records.extend(config_records(t.name, sorted(overrides.items())))
            records.extend(_new_partitions(topic_id, 0, assignment))
        results.append(result)
    return ControllerResult(records, pb.CreateTopicsResponse(results=results))


def _new_partitions(topic_id: bytes, first: int, assignment: list[list[int]]) -> list[md.MetadataRecord]:
    """Records of brand-new partitions: every replica in sync, the first one leading, epochs 0."""
    return [
        partition_record(topic_id, first + i, PartitionState(replicas, list(replicas), replicas[0], 0, 0))
        for i, replicas in enumerate(assignment)
    ]


def delete_topics(image: MetadataImage, request: pb.DeleteTopicsRequest) -> ControllerResult[pb.DeleteTopicsResponse]:
    records = []
    results = []
    seen: set[str] = set()
    for name in request.names:
        topic = image.topics.get(name)
        if topic is None or name in seen:
            results.append(
                pb.DeleteTopicResult(
                    name=name,
                    error_code=int(UnknownTopicOrPartitionError.code),
                    error_message=f"Topic '{name}' does not exist.",
                )
            )
            continue
        seen.add(name)
        records.append(md.MetadataRecord(remove_topic=md.RemoveTopicRecord(topic_id=topic.topic_id)))
        results.append(pb.DeleteTopicResult(name=name))
    return ControllerResult(records, pb.DeleteTopicsResponse(results=results))


def create_partitions(
    image: MetadataImage, request: pb.CreatePartitionsRequest
) -> ControllerResult[pb.CreatePartitionsResponse]:
    """Grow topics to ``count`` partitions (Kafka never shrinks a topic)."""
    records = []
    results = []
    live = image.live_brokers()
    for t in request.topics:
        result = pb.DeleteTopicResult(name=t.name)
        try:
            topic = image.topics.get(t.name)
            if topic is None:
                raise UnknownTopicOrPartitionError(f"Topic '{t.name}' does not exist.")
            current = len(topic.partitions)
            if t.count <= current:
                raise InvalidPartitionsError(
                    f"Topic currently has {current} partitions, {t.count} would not be an increase."
                )
            if t.count > MAX_PARTITIONS:
                raise InvalidPartitionsError(f"Number of partitions {t.count} exceeds the limit of {MAX_PARTITIONS}.")
            rf = len(topic.partitions[0].replicas)
            assignment = assign_replicas(live, t.count - current, rf, first_partition=current)
        except CaudalError as e:
            result.error_code, result.error_message = int(e.code), e.message
            results.append(result)
            continue
        if not request.validate_only:
            records.extend(_new_partitions(topic.topic_id, current, assignment))
        results.append(result)
    return ControllerResult(records, pb.CreatePartitionsResponse(results=results))


def alter_configs(image: MetadataImage, request: pb.AlterConfigsRequest) -> ControllerResult[pb.AlterConfigsResponse]:
    """Kafka's IncrementalAlterConfigs for topics: SET and DELETE per key, validated as a whole."""
    records = []
    results = []
    for res in request.resources:
        result = pb.AlterConfigsResult(resource_type=res.resource_type, resource_name=res.resource_name)
        try:
            if res.resource_type == BROKER_RESOURCE:
                raise InvalidRequestError("Broker configs are static: set them on the command line.")
            if res.resource_type != TOPIC_RESOURCE:
                raise InvalidRequestError(f"Unsupported resource type {res.resource_type}.")
            topic = image.topics.get(res.resource_name)
            if topic is None:
                raise UnknownTopicOrPartitionError(f"Topic '{res.resource_name}' does not exist.")
            merged = dict(topic.overrides)
            changes = []
            for c in res.configs:
                if c.op == ALTER_SET:
                    merged[c.name] = c.value
                    changes.extend(config_records(topic.name, [(c.name, c.value)]))
                elif c.op == ALTER_DELETE:
                    if c.name not in TopicConfig().as_dict():
                        raise InvalidConfigError(f"Unknown topic config name: {c.name}")
                    merged.pop(c.name, None)
                    changes.extend(config_records(topic.name, [(c.name, "")], deleted=True))
                else:
                    raise InvalidRequestError(f"Unknown config operation {c.op}.")
            TopicConfig.from_dict(merged)
        except CaudalError as e:
            result.error_code, result.error_message = int(e.code), e.message
            results.append(result)
            continue
        if not request.validate_only:
            records.extend(changes)
        results.append(result)
    return ControllerResult(records, pb.AlterConfigsResponse(results=results))
