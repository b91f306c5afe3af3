"""Client configuration, bootstrap parsing and the cluster-metadata cache (pure, no network)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from caudal.client._transport import parse_bootstrap
from caudal.client.cluster import ClusterMetadata
from caudal.client.config import AdminConfig, ConsumerConfig, ProducerConfig, build_config
from caudal.client.structs import TopicPartition
from caudal.common.compression import CompressionType
from caudal.common.errors import (
    CaudalError,
    ErrorCode,
    InvalidConfigError,
    InvalidRequestError,
    InvalidTopicError,
    UnknownServerError,
    UnknownTopicOrPartitionError,
)
from caudal.v1 import broker_pb2 as pb

# ---------------------------------------------------------------- build_config: defaults


def _defaults(cls, expected):
    config = build_config(cls, {})
    assert {name: getattr(config, name) for name in expected} == expected


def test_producer_defaults_are_kafkas():
    _defaults(
        ProducerConfig,
        {
            "bootstrap_servers": "localhost:9092",
            "acks": "all",
            "linger_ms": 5,
            "batch_size": 16384,
            "compression_type": None,
            "retries": 2147483647,
            "delivery_timeout_ms": 120000,
            "request_timeout_ms": 30000,
            "retry_backoff_ms": 100,
            "max_in_flight_requests_per_connection": 5,
            "enable_idempotence": True,
            "buffer_memory": 33554432,
            "max_block_ms": 60000,
            "max_request_size": 1048576,
            "partitioner": None,
        },
    )
    config = build_config(ProducerConfig, {})
    assert config.acks_value == -1
    assert config.compression is CompressionType.NONE


def test_consumer_defaults_are_kafkas():
    _defaults(
        ConsumerConfig,
        {
            "group_id": None,
            "auto_offset_reset": "latest",
            "enable_auto_commit": True,
            "auto_commit_interval_ms": 5000,
            "fetch_min_bytes": 1,
            "fetch_max_bytes": 52428800,
            "fetch_max_wait_ms": 500,
            "max_partition_fetch_bytes": 1048576,
            "max_poll_records": 500,
            "max_poll_interval_ms": 300000,
            "session_timeout_ms": 45000,
            "heartbeat_interval_ms": 3000,
            "request_timeout_ms": 30000,
            "isolation_level": "read_uncommitted",
            "check_crcs": True,
        },
    )


def test_admin_defaults():
    _defaults(AdminConfig, {"bootstrap_servers": "localhost:9092", "request_timeout_ms": 30000})


@pytest.mark.parametrize(("cls", "kind"), [(ProducerConfig, "producer"), (ConsumerConfig, "consumer")])
def test_client_id_defaults_to_kind_and_pid(cls, kind):
    assert build_config(cls, {}).resolved_client_id == f"caudal-{kind}-{os.getpid()}"
    assert build_config(cls, {"client_id": "mine"}).resolved_client_id == "mine"


def test_configs_are_frozen():
    config = build_config(ProducerConfig, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.linger_ms = 10  # type: ignore[misc]


# ---------------------------------------------------------------- build_config: rejection


@pytest.mark.parametrize("cls", [ProducerConfig, ConsumerConfig, AdminConfig])
def test_unknown_options_are_named(cls):
    with pytest.raises(InvalidConfigError) as info:
        build_config(cls, {"request_timeout_ms": 1000, "lingerms": 5, "bootstrap.servers": "x"})
    message = str(info.value)
    assert cls.__name__ in message
    assert "bootstrap.servers, lingerms" in message
    assert "request_timeout_ms" not in message


def _rejects(cls, options, mentions):
    with pytest.raises(InvalidConfigError) as info:
        build_config(cls, options)
    assert mentions in str(info.value)


@pytest.mark.parametrize(
    ("acks", "value"), [("all", -1), (-1, -1), ("-1", -1), (0, 0), ("0", 0), (1, 1), ("1", 1)]
)
def test_acks_accepted_forms(acks, value):
    assert build_config(ProducerConfig, {"acks": acks}).acks_value == value


@pytest.mark.parametrize("acks", [2, "2", "leader", None, "ALL"])
def test_acks_invalid(acks):
    _rejects(ProducerConfig, {"acks": acks}, "acks")


@pytest.mark.parametrize(
    ("name", "codec"),
    [("none", CompressionType.NONE), ("gzip", CompressionType.GZIP), ("snappy", CompressionType.SNAPPY),
     ("lz4", CompressionType.LZ4), ("zstd", CompressionType.ZSTD)],
)
def test_compression_type_accepted(name, codec):
    assert build_config(ProducerConfig, {"compression_type": name}).compression is codec


@pytest.mark.parametrize("name", ["brotli", "GZIP", ""])
def test_compression_type_invalid(name):
    _rejects(ProducerConfig, {"compression_type": name}, "compression_type")


@pytest.mark.parametrize(
    ("options", "mentions"),
    [
        ({"linger_ms": -1}, "linger_ms"),
        ({"retries": -1}, "retries"),
        ({"retry_backoff_ms": -1}, "retry_backoff_ms"),
        ({"max_block_ms": -1}, "max_block_ms"),
        ({"batch_size": 0}, "batch_size"),
        ({"request_timeout_ms": 0}, "request_timeout_ms"),
        ({"delivery_timeout_ms": 0}, "delivery_timeout_ms"),
        ({"buffer_memory": 0}, "buffer_memory"),
        ({"max_request_size": 0}, "max_request_size"),
        ({"max_in_flight_requests_per_connection": 0}, "max_in_flight_requests_per_connection"),
        ({"delivery_timeout_ms": 30_004, "linger_ms": 5, "request_timeout_ms": 30_000}, "delivery_timeout_ms"),
    ],
)
def test_producer_rejects_bad_values(options, mentions):
    _rejects(ProducerConfig, options, mentions)


def test_delivery_timeout_may_equal_linger_plus_request_timeout():
    config = build_config(ProducerConfig, {"delivery_timeout_ms": 30_005, "linger_ms": 5, "request_timeout_ms": 30_000})
    assert config.delivery_timeout_ms == 30_005


def test_zero_linger_and_max_block_are_allowed():
    config = build_config(ProducerConfig, {"linger_ms": 0, "max_block_ms": 0})
    assert (config.linger_ms, config.max_block_ms) == (0, 0)


@pytest.mark.parametrize("reset", ["earliest", "latest", "none"])
def test_auto_offset_reset_accepted(reset):
    assert build_config(ConsumerConfig, {"auto_offset_reset": reset}).auto_offset_reset == reset


@pytest.mark.parametrize("level", ["read_uncommitted", "read_committed"])
def test_isolation_level_accepted(level):
    assert build_config(ConsumerConfig, {"isolation_level": level}).isolation_level == level


@pytest.mark.parametrize(
    ("options", "mentions"),
    [
        ({"auto_offset_reset": "smallest"}, "auto_offset_reset"),
        ({"isolation_level": "read_dirty"}, "isolation_level"),
        ({"max_poll_records": 0}, "max_poll_records"),
        ({"fetch_max_bytes": 0}, "fetch_max_bytes"),
        ({"max_partition_fetch_bytes": 0}, "max_partition_fetch_bytes"),
        ({"request_timeout_ms": 0}, "request_timeout_ms"),
        ({"fetch_max_wait_ms": -1}, "fetch_max_wait_ms"),
        ({"fetch_min_bytes": -1}, "fetch_min_bytes"),
    ],
)
def test_consumer_rejects_bad_values(options, mentions):
    _rejects(ConsumerConfig, options, mentions)


def test_admin_rejects_non_positive_request_timeout():
    _rejects(AdminConfig, {"request_timeout_ms": 0}, "request_timeout_ms")


# ---------------------------------------------------------------- parse_bootstrap


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("h1:9093", ["h1:9093"]),
        ("h1", ["h1:9092"]),
        ("h1:9093,h2, h3:1 ", ["h1:9093", "h2:9092", "h3:1"]),
        ("h1,,h2,", ["h1:9092", "h2:9092"]),
        (["h1", " h2:7 "], ["h1:9092", "h2:7"]),
        (("h1",), ["h1:9092"]),
        ("[::1]:9093", ["[::1]:9093"]),
        ("[::1]", ["[::1]:9092"]),
    ],
)
def test_parse_bootstrap(given, expected):
    assert parse_bootstrap(given) == expected


@pytest.mark.parametrize("given", ["", " , ,", [], ["", "  "]])
def test_parse_bootstrap_rejects_empty(given):
    with pytest.raises(InvalidRequestError, match="bootstrap_servers is empty"):
        parse_bootstrap(given)


# ---------------------------------------------------------------- ClusterMetadata


def _partition(index, leader, epoch=0):
    return pb.PartitionMetadata(partition=index, leader=leader, leader_epoch=epoch, replicas=[1, 2], isr=[1, 2])


def _response(topics, brokers=((1, "b1", 9092), (2, "b2", 9093))):
    return pb.MetadataResponse(
        brokers=[pb.BrokerInfo(node_id=i, host=h, port=p) for i, h, p in brokers],
        cluster_id="cid",
        controller_id=2,
        topics=topics,
    )


def _topic(name, *leaders):
    return pb.TopicMetadata(name=name, partitions=[_partition(i, leader) for i, leader in enumerate(leaders)])


def _topic_error(name, code, message="nope"):
    return pb.TopicMetadata(name=name, error_code=int(code), error_message=message)


def test_update_records_brokers_counts_and_leaders():
    cluster = ClusterMetadata()
    cluster.update(_response([_topic("orders", 1, 2, 1), _topic("audit", 2)]))

    assert cluster.brokers == {1: "b1:9092", 2: "b2:9093"}
    assert (cluster.cluster_id, cluster.controller_id) == ("cid", 2)
    assert cluster.partition_counts == {"orders": 3, "audit": 1}
    assert cluster.leader_address(TopicPartition("orders", 1)) == "b2:9093"
    assert cluster.leader_address(TopicPartition("orders", 2)) == "b1:9092"
    assert cluster.leader_address(TopicPartition("audit", 0)) == "b2:9093"
    assert sorted(cluster.any_address()) == ["b1:9092", "b2:9093"]
    assert cluster.topic_errors == {}


@pytest.mark.parametrize(
    "tp", [TopicPartition("orders", 0), TopicPartition("orders", 1), TopicPartition("orders", 9), TopicPartition("other", 0)],
    ids=["leader-minus-one", "leader-not-a-known-broker", "unknown-partition", "unknown-topic"],
)
def test_no_leader_address(tp):
    cluster = ClusterMetadata()
    cluster.update(_response([_topic("orders", -1, 7)]))
    assert cluster.leader_address(tp) is None


def test_leader_moves_on_the_next_update():
    cluster = ClusterMetadata()
    cluster.update(_response([_topic("orders", 1)]))
    cluster.update(_response([_topic("orders", 2)]))
    assert cluster.leader_address(TopicPartition("orders", 0)) == "b2:9093"


def test_a_broker_behind_on_metadata_cannot_bring_back_an_older_leader():
    cluster = ClusterMetadata()
    tp = TopicPartition("orders", 0)
    cluster.update(_response([pb.TopicMetadata(name="orders", topic_id=b"t1", partitions=[_partition(0, 1, epoch=4)])]))
    cluster.update(_response([pb.TopicMetadata(name="orders", topic_id=b"t1", partitions=[_partition(0, 2, epoch=5)])]))
    cluster.update(_response([pb.TopicMetadata(name="orders", topic_id=b"t1", partitions=[_partition(0, 1, epoch=4)])]))
    assert cluster.leader_address(tp) == "b2:9093"
    assert cluster.leader_epochs[tp] == 5
    cluster.update(_response([pb.TopicMetadata(name="orders", topic_id=b"t1", partitions=[_partition(0, 1, epoch=6)])]))
    assert cluster.leader_address(tp) == "b1:9092"


def test_a_topic_created_again_under_the_same_name_starts_its_leader_epochs_over():
    cluster = ClusterMetadata()
    tp = TopicPartition("orders", 0)
    cluster.update(_response([pb.TopicMetadata(name="orders", topic_id=b"old", partitions=[_partition(0, 1, epoch=9)])]))
    cluster.update(_response([pb.TopicMetadata(name="orders", topic_id=b"new", partitions=[_partition(0, 2, epoch=0)])]))
    assert cluster.leader_address(tp) == "b2:9093"
    assert (cluster.topic_ids["orders"], cluster.leader_epochs[tp]) == (b"new", 0)


def test_broker_list_is_replaced_not_merged():
    cluster = ClusterMetadata()
    cluster.update(_response([_topic("orders", 1)]))
    cluster.update(_response([_topic("orders", 1)], brokers=[(2, "b2", 9093)]))
    assert cluster.brokers == {2: "b2:9093"}
    assert cluster.leader_address(TopicPartition("orders", 0)) is None


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, UnknownTopicOrPartitionError),
        (ErrorCode.INVALID_TOPIC_EXCEPTION, InvalidTopicError),
        (4242, UnknownServerError),
    ],
    ids=["unknown-topic", "invalid-topic", "unknown-code"],
)
def test_topic_errors_become_typed_exceptions(code, cls):
    cluster = ClusterMetadata()
    cluster.update(_response([_topic("orders", 1), _topic_error("ghost", code, "no such topic")]))

    err = cluster.topic_errors["ghost"]
    assert type(err) is cls and isinstance(err, CaudalError)
    assert err.message == "no such topic"
    assert "ghost" not in cluster.partition_counts
    assert cluster.partition_counts == {"orders": 1}


def test_topic_error_forgets_the_count_and_a_later_success_clears_the_error():
    cluster = ClusterMetadata()
    cluster.update(_response([_topic("orders", 1, 1)]))
    cluster.update(_response([_topic_error("orders", ErrorCode.LEADER_NOT_AVAILABLE)]))
    assert "orders" not in cluster.partition_counts
    assert cluster.topic_errors["orders"].retriable

    cluster.update(_response([_topic("orders", 2, 2, 2)]))
    assert cluster.topic_errors == {}
    assert cluster.partition_counts == {"orders": 3}


def test_topics_missing_from_a_response_are_kept():
    cluster = ClusterMetadata()
    cluster.update(_response([_topic("orders", 1), _topic("audit", 2)]))
    cluster.update(_response([_topic("audit", 1)]))
    assert cluster.partition_counts == {"orders": 1, "audit": 1}
    assert cluster.leader_address(TopicPartition("orders", 0)) == "b1:9092"
