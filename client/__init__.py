"""The caudal client SDK: Producer, Consumer and AdminClient with Kafka's names and defaults."""

from caudal.client.admin import AdminClient
from caudal.client.consumer import Consumer
from caudal.client.producer import Producer
from caudal.client.structs import (
    BrokerMetadata,
    ClusterDescription,
    ConfigEntry,
    ConsumerGroupDescription,
    ConsumerGroupListing,
    ConsumerRebalanceListener,
    ConsumerRecord,
    MemberDescription,
    NewTopic,
    OffsetAndMetadata,
    PartitionInfo,
    RecordMetadata,
    TopicDescription,
    TopicPartition,
)
from caudal.common import errors

__all__ = [
    "AdminClient",
    "BrokerMetadata",
    "ClusterDescription",
    "ConfigEntry",
    "Consumer",
    "ConsumerGroupDescription",
    "ConsumerGroupListing",
    "ConsumerRebalanceListener",
    "ConsumerRecord",
    "MemberDescription",
    "NewTopic",
    "OffsetAndMetadata",
    "PartitionInfo",
    "Producer",
    "RecordMetadata",
    "TopicDescription",
    "TopicPartition",
    "errors",
]
