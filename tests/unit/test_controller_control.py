"""Controller decisions as pure functions: records out, image changed only by replay."""

from __future__ import annotations

import itertools

import pytest

from caudal.common.errors import ErrorCode, InvalidReplicationFactorError
from caudal.common.metadata import BrokerState, MetadataImage
from caudal.controller import control, election
from caudal.controller.control import ControllerDefaults
from caudal.controller.placement import assign_replicas, rack_alternating
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import metadata_pb2 as md


def _ids():
    counter = itertools.count(1)
    return lambda: next(counter).to_bytes(16, "big")


def _image(brokers: int = 3, racks: str = "") -> MetadataImage:
    """Registered, unfenced brokers, as the controller leaves them after their first heartbeats."""
    image = MetadataImage()
    for b in range(1, brokers + 1):
        rack = racks[(b - 1) % len(racks)] if racks else ""
        registered = election.register_broker(image, b, "127.0.0.1", 9000 + b, rack, b"x", live=False)
        _apply(image, registered)
        _apply(image, election.unfence_broker(image, b, registered.response))
    return image


def _apply(image: MetadataImage, result: control.ControllerResult) -> None:
    image.apply_batch(md.MetadataBatch(version=image.version + 1, records=result.records))


def _create(image, *topics, validate_only=False, defaults=ControllerDefaults()):
    request = pb.CreateTopicsRequest(topics=list(topics), validate_only=validate_only)
    return control.create_topics(image, request, _ids(), defaults)


def test_create_topic_records_and_replay() -> None:
    image = _image(3)
    result = _create(image, pb.CreatableTopic(name="events", num_partitions=6, replication_factor=3, configs={"retention.ms": "1000"}))
    assert [r.error_code for r in result.response.results] == [0]
    assert image.topics == {}, "deciding does not mutate the image"
    _apply(image, result)
    topic = image.topics["events"]
    assert len(topic.partitions) == 6
    assert topic.config.retention_ms == 1000 and topic.overrides == {"retention.ms": "1000"}
    leaders = [p.leader for p in topic.partitions.values()]
    assert sorted(leaders) == [1, 1, 2, 2, 3, 3], "leadership spreads evenly"
    for p in topic.partitions.values():
        assert len(set(p.replicas)) == 3 and p.isr == p.replicas and p.leader == p.replicas[0]


@pytest.mark.parametrize(
    "topic, code",
    [
        (pb.CreatableTopic(name="", num_partitions=1, replication_factor=1), ErrorCode.INVALID_TOPIC_EXCEPTION),
        (pb.CreatableTopic(name="x" * 250, num_partitions=1), ErrorCode.INVALID_TOPIC_EXCEPTION),
        (pb.CreatableTopic(name="a b", num_partitions=1), ErrorCode.INVALID_TOPIC_EXCEPTION),
        (pb.CreatableTopic(name=".", num_partitions=1), ErrorCode.INVALID_TOPIC_EXCEPTION),
        (pb.CreatableTopic(name="p0", num_partitions=0, replication_factor=1), ErrorCode.INVALID_PARTITIONS),
        (pb.CreatableTopic(name="rf", num_partitions=1, replication_factor=4), ErrorCode.INVALID_REPLICATION_FACTOR),
        (pb.CreatableTopic(name="rf0", num_partitions=1, replication_factor=0), ErrorCode.INVALID_REPLICATION_FACTOR),
        (pb.CreatableTopic(name="c", num_partitions=1, replication_factor=1, configs={"bogus": "1"}), ErrorCode.INVALID_CONFIG),
        (pb.CreatableTopic(name="c2", num_partitions=1, replication_factor=1, configs={"segment.bytes": "1"}), ErrorCode.INVALID_CONFIG),
        (
            pb.CreatableTopic(name="isr", num_partitions=1, replication_factor=2, configs={"min.insync.replicas": "3"}),
            ErrorCode.INVALID_CONFIG,
        ),
    ],
)
def test_create_topic_rejections(topic, code) -> None:
    image = _image(3)
    result = _create(image, topic)
    assert result.response.results[0].error_code == code
    assert result.response.results[0].error_message
    assert result.records == []


def test_create_validates_each_topic_alone_and_detects_duplicates() -> None:
    image = _image(1)
    _apply(image, _create(image, pb.CreatableTopic(name="old", num_partitions=1, replication_factor=1)))
    result = _create(
        image,
        pb.CreatableTopic(name="old", num_partitions=1, replication_factor=1),
        pb.CreatableTopic(name="new", num_partitions=2, replication_factor=1),
        pb.CreatableTopic(name="new", num_partitions=2, replication_factor=1),
    )
    codes = [r.error_code for r in result.response.results]
    assert codes == [ErrorCode.TOPIC_ALREADY_EXISTS, 0, ErrorCode.INVALID_REQUEST]
    _apply(image, result)
    assert set(image.topics) == {"old", "new"}


def test_defaults_and_validate_only() -> None:
    image = _image(2)
    result = _create(image, pb.CreatableTopic(name="d", num_partitions=-1, replication_factor=-1), validate_only=True)
    assert result.records == []
    r = result.response.results[0]
    assert (r.error_code, r.num_partitions, r.replication_factor) == (0, 1, 2), "RF defaults to min(3, live brokers)"


def test_delete_create_partitions_alter_configs() -> None:
    image = _image(3)
    _apply(image, _create(image, pb.CreatableTopic(name="t", num_partitions=2, replication_factor=2)))
    grow = control.create_partitions(image, pb.CreatePartitionsRequest(topics=[pb.CreatePartitionsTopic(name="t", count=5)]))
    _apply(image, grow)
    assert sorted(image.topics["t"].partitions) == [0, 1, 2, 3, 4]
    assert all(len(p.replicas) == 2 for p in image.topics["t"].partitions.values())
    shrink = control.create_partitions(image, pb.CreatePartitionsRequest(topics=[pb.CreatePartitionsTopic(name="t", count=3)]))
    assert shrink.response.results[0].error_code == ErrorCode.INVALID_PARTITIONS

    alter = pb.AlterConfigsRequest(resources=[pb.AlterConfigsResource(resource_type=2, resource_name="t", configs=[
        pb.AlterableConfig(name="cleanup.policy", op=0, value="compact"),
    ])])
    _apply(image, control.alter_configs(image, alter))
    assert image.topics["t"].config.compacted
    unset = pb.AlterConfigsRequest(resources=[pb.AlterConfigsResource(resource_type=2, resource_name="t", configs=[
        pb.AlterableConfig(name="cleanup.policy", op=1),
    ])])
    _apply(image, control.alter_configs(image, unset))
    assert not image.topics["t"].config.compacted and image.topics["t"].overrides == {}
    bad = pb.AlterConfigsRequest(resources=[pb.AlterConfigsResource(resource_type=2, resource_name="t", configs=[
        pb.AlterableConfig(name="retention.ms", op=0, value="x"),
    ])])
    result = control.alter_configs(image, bad)
    assert result.response.results[0].error_code == ErrorCode.INVALID_CONFIG and result.records == []

    deleted = control.delete_topics(image, pb.DeleteTopicsRequest(names=["t", "t", "ghost"]))
    assert [r.error_code for r in deleted.response.results] == [0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
    _apply(image, deleted)
    assert image.topics == {} and image.topics_by_id == {}


def test_snapshot_records_rebuild_the_same_image() -> None:
    image = _image(3)
    _apply(image, _create(image, pb.CreatableTopic(name="a", num_partitions=3, replication_factor=3, configs={"retention.ms": "5"})))
    _apply(image, _create(image, pb.CreatableTopic(name="b", num_partitions=1, replication_factor=1)))
    copy = MetadataImage()
    copy.apply_batch(md.MetadataBatch(version=image.version, records=image.snapshot_records()))
    assert copy.version == image.version
    assert copy.brokers == image.brokers
    for name, topic in image.topics.items():
        other = copy.topics[name]
        assert (other.topic_id, other.partitions, other.overrides, other.config) == (
            topic.topic_id, topic.partitions, topic.overrides, topic.config
        )


def test_rack_aware_placement_spreads_replicas() -> None:
    brokers = [BrokerState(i, 1, "h", 1, rack, False) for i, rack in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]]
    assert rack_alternating(brokers) == [1, 3, 5, 2, 4, 6]
    for replicas in assign_replicas(brokers, 12, 3):
        racks = {next(b.rack for b in brokers if b.broker_id == r) for r in replicas}
        assert len(racks) == 3, "three replicas on three racks"
    with pytest.raises(InvalidReplicationFactorError):
        assign_replicas(brokers, 1, 7)
