"""Metadata batches for unit tests that drive a broker's replica manager without a controller."""

from __future__ import annotations

from caudal.v1 import metadata_pb2 as md

TOPIC_ID = b"t" * 16


def one_partition_cluster(version: int, leader: int, leader_epoch: int) -> md.MetadataBatch:
    """Brokers 1-3, topic ``orders`` (id ``TOPIC_ID``) with one partition on all three, led by ``leader``."""
    records = [
        md.MetadataRecord(broker_registration=md.BrokerRegistrationRecord(broker_id=b, broker_epoch=1, host="h", port=9000 + b))
        for b in (1, 2, 3)
    ]
    records.append(md.MetadataRecord(topic=md.TopicRecord(name="orders", topic_id=TOPIC_ID)))
    records.append(md.MetadataRecord(partition=md.PartitionRecord(
        topic_id=TOPIC_ID, partition=0, replicas=[1, 2, 3], isr=[1, 2, 3], leader=leader,
        leader_epoch=leader_epoch, partition_epoch=version,
    )))
    return md.MetadataBatch(version=version, records=records, snapshot=True)
