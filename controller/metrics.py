"""Controller metrics, computed from the metadata image when Prometheus scrapes.

Named after Kafka's controller metrics: exactly one quorum member reports an
active controller count of 1; offline partitions, fenced brokers and the Raft
term and commit index tell the quorum's health.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from caudal.controller.controller import Controller


class ControllerCollector(Collector):
    def __init__(self, controller: "Controller") -> None:
        self.controller = controller

    def collect(self) -> Iterator[GaugeMetricFamily]:
        c = self.controller
        image = c.image
        status = c.quorum_status()
        partitions = [p for t in image.topics.values() for p in t.partitions.values()]
        yield _gauge("caudal_controller_active_controller_count", "1 on the active controller (Kafka ActiveControllerCount)", int(c.active))
        yield _gauge("caudal_controller_offline_partitions_count", "Partitions without a leader (Kafka OfflinePartitionsCount)", sum(p.leader < 0 for p in partitions))
        yield _gauge("caudal_controller_global_partition_count", "Partitions in the cluster (Kafka GlobalPartitionCount)", len(partitions))
        yield _gauge("caudal_controller_global_topic_count", "Topics in the cluster (Kafka GlobalTopicCount)", len(image.topics))
        yield _gauge("caudal_controller_fenced_broker_count", "Registered brokers that are fenced (Kafka FencedBrokerCount)", sum(b.fenced for b in image.brokers.values()))
        yield _gauge("caudal_controller_active_broker_count", "Registered brokers that are unfenced (Kafka ActiveBrokerCount)", sum(not b.fenced for b in image.brokers.values()))
        yield _gauge("caudal_controller_metadata_version", "Metadata batches applied on this member", image.version)
        yield _gauge("caudal_controller_raft_term", "Current Raft term", int(status.get("raft_term", 0)))
        yield _gauge("caudal_controller_raft_commit_index", "Raft commit index", int(status.get("commit_idx", 0)))


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc)
    g.add_metric([], value)
    return g


def register(controller: "Controller") -> ControllerCollector:
    collector = ControllerCollector(controller)
    REGISTRY.register(collector)
    return collector
