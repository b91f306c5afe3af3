"""Broker metrics in Prometheus form, named after Kafka's well-known ones.

Counters and the request-latency histogram are updated per request or per
partition of a request, never per record; log levels (sizes, offsets, high
watermarks) are read from the hosted partitions when Prometheus scrapes, so
they cost nothing on the data path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from caudal.broker.replica_manager import ReplicaManager

MESSAGES_IN = Counter("caudal_broker_messages_in", "Records appended by producers (Kafka MessagesInPerSec)", ["topic"])
BYTES_IN = Counter("caudal_broker_bytes_in", "Record batch bytes appended by producers (Kafka BytesInPerSec)", ["topic"])
BYTES_OUT = Counter("caudal_broker_bytes_out", "Record batch bytes returned to fetchers (Kafka BytesOutPerSec)", ["topic"])
REQUEST_ERRORS = Counter("caudal_broker_request_errors", "Partition-level errors returned, by API and Kafka error code", ["api", "error"])
ISR_SHRINKS = Counter("caudal_broker_isr_shrinks", "ISR shrinks requested by this broker as leader (Kafka IsrShrinksPerSec)")
ISR_EXPANDS = Counter("caudal_broker_isr_expands", "ISR expansions requested by this broker as leader (Kafka IsrExpandsPerSec)")
REQUEST_LATENCY = Histogram(
    "caudal_broker_request_duration_seconds",
    "Time from receiving a request to sending its response, by API (Kafka TotalTimeMs)",
    ["api"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


class PartitionCollector(Collector):
    """Per-partition log gauges, computed at scrape time from the replica manager."""

    def __init__(self, replicas: "ReplicaManager") -> None:
        self.replicas = replicas

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["topic", "partition"]
        size = GaugeMetricFamily("caudal_log_size_bytes", "Bytes stored for the partition on this broker (Kafka Log Size)", labels=labels)
        end = GaugeMetricFamily("caudal_log_end_offset", "Next offset to be assigned (Kafka LogEndOffset)", labels=labels)
        start = GaugeMetricFamily("caudal_log_start_offset", "Earliest offset still stored (Kafka LogStartOffset)", labels=labels)
        hw = GaugeMetricFamily("caudal_partition_high_watermark", "Offset below which records are committed", labels=labels)
        lag = GaugeMetricFamily(
            "caudal_replica_lag_messages", "Leader's log end minus the follower's, per follower (Kafka ReplicaLag)",
            labels=[*labels, "replica"],
        )
        leaders = GaugeMetricFamily("caudal_broker_leader_count", "Partitions this broker leads (Kafka LeaderCount)")
        hosted = GaugeMetricFamily("caudal_broker_partition_count", "Partition replicas on this broker (Kafka PartitionCount)")
        under = GaugeMetricFamily(
            "caudal_broker_under_replicated_partitions", "Led partitions whose ISR is smaller than the replica set (Kafka UnderReplicatedPartitions)"
        )
        under_min = GaugeMetricFamily(
            "caudal_broker_under_min_isr_partitions", "Led partitions whose ISR is below min.insync.replicas (Kafka UnderMinIsrPartitionCount)"
        )
        led = urp = umi = 0
        partitions = list(self.replicas.partitions.values())
        for p in partitions:
            key = [p.topic, str(p.index)]
            size.add_metric(key, p.log.size_bytes)
            end.add_metric(key, p.log.log_end_offset)
            start.add_metric(key, p.log.log_start_offset)
            hw.add_metric(key, p.high_watermark)
            if p.is_leader:
                led += 1
                urp += len(p.isr) < len(p.replicas)
                umi += len(p.isr) < p.min_isr
                for replica, progress in (p.replica_state.followers.items() if p.replica_state else ()):
                    lag.add_metric([*key, str(replica)], max(0, p.log.log_end_offset - max(progress.leo, 0)))
        leaders.add_metric([], led)
        hosted.add_metric([], len(partitions))
        under.add_metric([], urp)
        under_min.add_metric([], umi)
        yield from (size, end, start, hw, lag, leaders, hosted, under, under_min)


def register_partition_collector(replicas: "ReplicaManager") -> PartitionCollector:
    collector = PartitionCollector(replicas)
    REGISTRY.register(collector)
    return collector
