"""MetadataImage replay: stale or unknown references are ignored, never fatal."""

from __future__ import annotations

import copy

import pytest

from caudal.common.metadata import BROKER_RESOURCE, MetadataImage, config_records
from caudal.common.topic_config import TopicConfig
from caudal.v1 import metadata_pb2 as md

ORDERS_ID = b"o" * 16
AUDIT_ID = b"a" * 16


def broker(broker_id, epoch=10, fenced=False, rack=""):
    return md.MetadataRecord(
        broker_registration=md.BrokerRegistrationRecord(
            broker_id=broker_id, broker_epoch=epoch, host="h", port=9000 + broker_id, rack=rack, fenced=fenced
        )
    )


def topic(name, topic_id):
    return md.MetadataRecord(topic=md.TopicRecord(name=name, topic_id=topic_id))


def partition(topic_id, index, leader, replicas=(1, 2, 3), epoch=0):
    return md.MetadataRecord(
        partition=md.PartitionRecord(
            topic_id=topic_id, partition=index, replicas=replicas, isr=replicas, leader=leader,
            leader_epoch=epoch, partition_epoch=epoch,
        )
    )


def fence(broker_id, epoch):
    return md.MetadataRecord(fence_broker=md.FenceBrokerRecord(broker_id=broker_id, broker_epoch=epoch))


def unfence(broker_id, epoch):
    return md.MetadataRecord(unfence_broker=md.UnfenceBrokerRecord(broker_id=broker_id, broker_epoch=epoch))


def remove(topic_id):
    return md.MetadataRecord(remove_topic=md.RemoveTopicRecord(topic_id=topic_id))


def image_of(*records):
    image = MetadataImage()
    image.apply_batch(md.MetadataBatch(version=1, records=records))
    return image


def cluster():
    """Brokers 1-3 (2 fenced), topic orders (p0 led by 1, p1 by 2, p2 offline), topic audit (p0 led by 1)."""
    return image_of(
        broker(1), broker(2, fenced=True), broker(3),
        topic("orders", ORDERS_ID), partition(ORDERS_ID, 0, 1), partition(ORDERS_ID, 1, 2), partition(ORDERS_ID, 2, -1),
        topic("audit", AUDIT_ID), partition(AUDIT_ID, 0, 1),
    )


def state(image):
    """Everything an image holds, comparable with ==."""
    return copy.deepcopy((image.brokers, image.topics, image.topics_by_id, image.next_producer_id))


def test_apply_batch_sets_the_version():
    image = MetadataImage()
    image.apply_batch(md.MetadataBatch(version=7, records=[broker(1)]))
    assert image.version == 7 and set(image.brokers) == {1}


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(config_records("missing", [("retention.ms", "1000")])[0], id="config-unknown-topic"),
        pytest.param(partition(b"x" * 16, 0, 1), id="partition-unknown-topic"),
        pytest.param(remove(b"x" * 16), id="remove-unknown-topic"),
        pytest.param(fence(9, 10), id="fence-unknown-broker"),
        pytest.param(unfence(9, 10), id="unfence-unknown-broker"),
        pytest.param(fence(1, 9), id="fence-stale-epoch"),
        pytest.param(unfence(2, 9), id="unfence-stale-epoch"),
        pytest.param(fence(1, 11), id="fence-future-epoch"),
    ],
)
def test_records_with_unknown_or_stale_references_change_nothing(record):
    image = cluster()
    before = state(image)
    image.replay(record)
    assert state(image) == before


def test_fence_and_unfence_at_the_current_epoch():
    image = cluster()
    image.replay(fence(1, 10))
    image.replay(unfence(2, 10))
    assert image.brokers[1].fenced and not image.brokers[2].fenced


def test_fence_for_an_earlier_registration_is_ignored():
    image = cluster()
    image.replay(broker(1, epoch=20))
    image.replay(fence(1, 10))
    assert not image.brokers[1].fenced


def test_topic_config_overrides_set_and_delete():
    image = cluster()
    image.replay(config_records("orders", [("retention.ms", "1000")])[0])
    assert image.topics["orders"].overrides == {"retention.ms": "1000"}
    assert image.topics["orders"].config.retention_ms == 1000

    image.replay(config_records("orders", [("retention.ms", "")], deleted=True)[0])
    assert image.topics["orders"].overrides == {}
    assert image.topics["orders"].config == TopicConfig()


def test_broker_config_records_do_not_touch_topics():
    image = cluster()
    before = state(image)
    image.replay(
        md.MetadataRecord(
            config=md.ConfigRecord(resource_type=BROKER_RESOURCE, resource_name="orders", name="retention.ms", value="5")
        )
    )
    assert state(image) == before


def test_remove_topic_drops_both_indexes():
    image = cluster()
    image.replay(remove(ORDERS_ID))
    assert "orders" not in image.topics and ORDERS_ID not in image.topics_by_id
    assert set(image.topics) == {"audit"}


def test_recreated_topic_starts_without_partitions_or_overrides():
    image = cluster()
    image.replay(config_records("orders", [("retention.ms", "1000")])[0])
    image.replay(remove(ORDERS_ID))
    new_id = b"n" * 16
    image.replay(topic("orders", new_id))
    recreated = image.topics["orders"]
    assert recreated.topic_id == new_id and recreated.partitions == {} and recreated.overrides == {}


def _led(image, broker_id):
    return sorted((t.name, index) for t, index, _ in image.partitions_led_by(broker_id))


def test_partitions_led_by():
    image = cluster()
    assert _led(image, 1) == [("audit", 0), ("orders", 0)]
    assert _led(image, 2) == [("orders", 1)]
    assert _led(image, 3) == []
    assert _led(image, -1) == [("orders", 2)], "offline partitions are led by -1"
    led = {(t.name, i): p for t, i, p in image.partitions_led_by(1)}
    assert led[("orders", 0)] is image.topics["orders"].partitions[0]


def test_partitions_led_by_follows_leader_changes():
    image = cluster()
    image.replay(partition(ORDERS_ID, 0, 3, epoch=1))
    assert _led(image, 1) == [("audit", 0)]
    assert _led(image, 3) == [("orders", 0)]


def test_live_brokers_are_unfenced_and_sorted_by_id():
    image = image_of(broker(3), broker(1), broker(2, fenced=True), broker(5))
    assert [b.broker_id for b in image.live_brokers()] == [1, 3, 5]
    image.replay(fence(3, 10))
    image.replay(unfence(2, 10))
    assert [b.broker_id for b in image.live_brokers()] == [1, 2, 5]


def test_producer_id_blocks_never_go_backwards():
    image = MetadataImage()
    for next_id in (1000, 500, 2000):
        image.replay(md.MetadataRecord(producer_ids=md.ProducerIdsRecord(next_producer_id=next_id)))
    assert image.next_producer_id == 2000


def test_snapshot_records_rebuild_the_same_image():
    image = cluster()
    image.replay(config_records("audit", [("cleanup.policy", "compact")])[0])
    image.replay(md.MetadataRecord(producer_ids=md.ProducerIdsRecord(next_producer_id=4000)))
    rebuilt = image_of(*image.snapshot_records())
    assert state(rebuilt) == state(image)


def test_topics_touched_by_names_created_changed_and_removed_topics():
    image = cluster()
    new_id = b"n" * 16
    batch = md.MetadataBatch(version=2, records=[
        topic("new", new_id), partition(new_id, 0, 1),  # created in the same batch
        partition(ORDERS_ID, 1, 3, epoch=1),  # a leader change
        remove(AUDIT_ID),  # known by id only
        *config_records("orders", [("retention.ms", "1000")]),
        fence(3, 10),  # no topic
    ])
    assert image.topics_touched_by(batch) == {"new", "orders", "audit"}


def test_topics_touched_by_broker_changes_alone_is_empty():
    assert cluster().topics_touched_by(md.MetadataBatch(version=2, records=[fence(1, 10), broker(4)])) == set()


def test_topics_touched_by_an_unknown_topic_id_asks_for_everything():
    assert cluster().topics_touched_by(md.MetadataBatch(version=2, records=[partition(b"x" * 16, 0, 1)])) is None
