"""Malformed and invalid requests get Kafka error codes; the node keeps serving and loses nothing."""

from __future__ import annotations

import grpc
import pytest
from caudal.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition
from caudal.common.errors import (
    ErrorCode,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidTopicError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from caudal.common.grpc_options import GRPC_OPTIONS
from caudal.common.record_batch import build_batch
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import broker_pb2_grpc


@pytest.fixture
def stub(dev_node):
    channel = grpc.insecure_channel(dev_node.bootstrap, options=GRPC_OPTIONS)
    yield broker_pb2_grpc.BrokerStub(channel)
    channel.close()


@pytest.fixture
def topic(dev_node) -> str:
    with AdminClient(bootstrap_servers=dev_node.bootstrap) as admin:
        admin.create_topics([NewTopic("orders", num_partitions=2, config={"max.message.bytes": "2000"})])["orders"].result()
    with Producer(bootstrap_servers=dev_node.bootstrap) as producer:
        for i in range(5):
            producer.send("orders", value=f"kept-{i}".encode(), partition=0).result(timeout=10)
    return "orders"


def _produce(stub, topic: str, partition: int, records: bytes, acks: int = -1) -> pb.PartitionProduceResponse:
    request = pb.ProduceRequest(acks=acks, timeout_ms=5000)
    request.topics.add(topic=topic).partitions.add(partition=partition, records=records)
    return stub.Produce(request, timeout=10).topics[0].partitions[0]


def _still_serving(dev_node, topic: str) -> None:
    """The five records written before the bad input are all there, and new writes work."""
    consumer = Consumer(bootstrap_servers=dev_node.bootstrap, auto_offset_reset="earliest")
    try:
        consumer.assign([TopicPartition(topic, 0)])
        got = []
        for _ in range(50):
            got += consumer.poll(timeout_ms=200)
            if len(got) >= 5:
                break
        assert [r.value for r in got] == [f"kept-{i}".encode() for i in range(5)]
    finally:
        consumer.close()


def test_corrupt_batches_are_rejected_without_harm(dev_node, stub, topic) -> None:
    good = build_batch([(1000, b"k", b"v", ())])
    flipped = bytearray(good)
    flipped[-1] ^= 0xFF
    bad_magic = bytearray(good)
    bad_magic[16] = 1
    cases = {
        "crc": bytes(flipped),
        "magic": bytes(bad_magic),
        "truncated": good[:-3],
        "garbage": b"\x00\x01garbage-bytes-that-are-no-batch" * 3,
        "empty": b"",
    }
    for name, payload in cases.items():
        r = _produce(stub, topic, 0, payload)
        assert r.error_code == ErrorCode.CORRUPT_MESSAGE, name
        assert r.error_message, name
    _still_serving(dev_node, topic)


def test_oversize_batch_gets_message_too_large(dev_node, stub, topic) -> None:
    r = _produce(stub, topic, 0, build_batch([(1000, None, b"x" * 5000, ())]))
    assert r.error_code == ErrorCode.MESSAGE_TOO_LARGE
    assert "max.message.bytes=2000" in r.error_message
    _still_serving(dev_node, topic)


def test_unknown_topic_partition_and_acks(dev_node, stub, topic) -> None:
    batch = build_batch([(1000, None, b"v", ())])
    assert _produce(stub, "nope", 0, batch).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert _produce(stub, topic, 7, batch).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert _produce(stub, topic, 0, batch, acks=2).error_code == ErrorCode.INVALID_REQUIRED_ACKS
    _still_serving(dev_node, topic)


def test_fetch_out_of_range_and_unknown(dev_node, stub, topic) -> None:
    request = pb.FetchRequest(max_wait_ms=0, max_bytes=1 << 20)
    t = request.topics.add(topic=topic)
    t.partitions.add(partition=0, fetch_offset=999)
    t.partitions.add(partition=0, fetch_offset=-5)
    request.topics.add(topic="missing").partitions.add(partition=0, fetch_offset=0)
    response = stub.Fetch(request, timeout=10)
    codes = [p.error_code for tr in response.topics for p in tr.partitions]
    assert codes == [ErrorCode.OFFSET_OUT_OF_RANGE, ErrorCode.OFFSET_OUT_OF_RANGE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
    _still_serving(dev_node, topic)


def test_unparseable_request_bytes(dev_node, topic) -> None:
    channel = grpc.insecure_channel(dev_node.bootstrap)
    try:
        call = channel.unary_unary("/caudal.v1.Broker/Produce", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            call(b"\xff\xff\xff\xff not a protobuf", timeout=10)
        assert info.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNKNOWN)
    finally:
        channel.close()
    _still_serving(dev_node, topic)


@pytest.mark.parametrize(
    "new_topic, error",
    [
        (NewTopic(""), InvalidTopicError),
        (NewTopic("a" * 250), InvalidTopicError),
        (NewTopic("has space"), InvalidTopicError),
        (NewTopic(".."), InvalidTopicError),
        (NewTopic("zero", num_partitions=0), InvalidPartitionsError),
        (NewTopic("neg", num_partitions=-3), InvalidPartitionsError),
        (NewTopic("cfg", config={"retention.mss": "1"}), InvalidConfigError),
        (NewTopic("cfg2", config={"retention.ms": "soon"}), InvalidConfigError),
        (NewTopic("cfg3", config={"cleanup.policy": "forever"}), InvalidConfigError),
    ],
    ids=lambda v: getattr(v, "__name__", None) or getattr(v, "name", "")[:12],
)
def test_invalid_topic_requests(dev_node, new_topic, error) -> None:
    with AdminClient(bootstrap_servers=dev_node.bootstrap) as admin:
        with pytest.raises(error) as info:
            admin.create_topics([new_topic])[new_topic.name].result()
        assert info.value.message
        assert new_topic.name not in admin.list_topics()


def test_admin_errors_and_changes(dev_node, topic) -> None:
    with AdminClient(bootstrap_servers=dev_node.bootstrap) as admin:
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(topic)])[topic].result()
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topics(["never-was"])["never-was"].result()
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.describe_topics(["never-was"])
        with pytest.raises(InvalidPartitionsError):
            admin.create_partitions({topic: 1})[topic].result()
        with pytest.raises(InvalidConfigError):
            admin.incremental_alter_configs({topic: {"retention.ms": "-7"}})[topic].result()

        admin.create_partitions({topic: 4})[topic].result()
        assert len(admin.describe_topics([topic])[topic].partitions) == 4
        admin.incremental_alter_configs({topic: {"retention.ms": "60000", "max.message.bytes": None}})[topic].result()
        configs = admin.describe_configs([topic])[topic]
        assert configs["retention.ms"].value == "60000" and not configs["retention.ms"].is_default
        assert configs["max.message.bytes"].is_default

        admin.delete_topics([topic])[topic].result()
        assert topic not in admin.list_topics()
        with pytest.raises(UnknownTopicOrPartitionError):
            admin.delete_topics([topic])[topic].result()
        admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result()
    consumer = Consumer(bootstrap_servers=dev_node.bootstrap, auto_offset_reset="earliest")
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        assert consumer.end_offsets([tp])[tp] == 0, "a re-created topic starts empty"
    finally:
        consumer.close()


def test_producer_sees_partitions_added_after_it_first_wrote(dev_node, topic) -> None:
    with Producer(bootstrap_servers=dev_node.bootstrap, max_block_ms=2000) as producer:
        assert producer.send(topic, b"first", partition=0).result(10).partition == 0
        with AdminClient(bootstrap_servers=dev_node.bootstrap) as admin:
            admin.create_partitions({topic: 3})[topic].result()
        assert producer.send(topic, b"new", partition=2).result(10).partition == 2, "the cached count was refreshed"
        with pytest.raises(KafkaTimeoutError, match="Partition 7 of topic"):
            producer.send(topic, b"nowhere", partition=7)
