"""Consumer-group lag, computed by the cluster itself for the groups each broker coordinates.

Lag is what Kafka users watch most and what managed Kafka often leaves to an
extra exporter. Here every coordinator knows its groups' committed offsets, so
it only needs each partition's end offset (the high watermark, what a
read-uncommitted consumer can reach): taken locally for partitions led here,
asked from the leader with one ListOffsets per broker otherwise. End offsets
are refreshed in the background every ``refresh_interval_s``; the Prometheus
collector only reads the last values, so a scrape never waits on the network.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Iterator

import grpc
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from caudal.broker.replica_manager import LATEST_TIMESTAMP
from caudal.common.grpc_options import GRPC_OPTIONS
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import broker_pb2_grpc

if TYPE_CHECKING:
    from caudal.broker.group_coordinator import GroupCoordinator

log = logging.getLogger(__name__)

REFRESH_INTERVAL_S = 5.0
LIST_OFFSETS_TIMEOUT_S = 5.0


class GroupLag(Collector):
    """End offsets of the partitions the local groups committed for, and the lag gauges from them."""

    def __init__(self, coordinator: "GroupCoordinator", refresh_interval_s: float = REFRESH_INTERVAL_S) -> None:
        self.coordinator = coordinator
        self.replicas = coordinator.replicas
        self.refresh_interval_s = refresh_interval_s
        self.end_offsets: dict[tuple[str, int], int] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("event=group_lag_refresh_failed broker=%d", self.replicas.broker_id)
            await asyncio.sleep(self.refresh_interval_s)

    async def refresh(self) -> None:
        wanted = {key for group in list(self.coordinator.groups.values()) for key in group.offsets}
        image = self.replicas.image
        ends: dict[tuple[str, int], int] = {}
        remote: dict[int, list[tuple[str, int]]] = {}
        for topic, index in wanted:
            partition = self.replicas.partitions.get((topic, index))
            if partition is not None and partition.is_leader:
                ends[(topic, index)] = partition.high_watermark
                continue
            state = image.topics[topic].partitions.get(index) if topic in image.topics else None
            if state is not None and state.leader in image.brokers:
                remote.setdefault(state.leader, []).append((topic, index))
        for leader, keys in remote.items():
            ends.update(await self._list_latest(leader, keys))
        self.end_offsets = ends

    async def _list_latest(self, leader: int, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        broker = self.replicas.image.brokers[leader]
        address = f"{broker.host}:{broker.port}"
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(address, options=GRPC_OPTIONS)
        request = pb.ListOffsetsRequest()
        by_topic: dict[str, pb.ListOffsetsTopic] = {}
        for topic, index in keys:
            t = by_topic.get(topic) or by_topic.setdefault(topic, request.topics.add(topic=topic))
            t.partitions.add(partition=index, timestamp=LATEST_TIMESTAMP)
        try:
            response = await broker_pb2_grpc.BrokerStub(channel).ListOffsets(request, timeout=LIST_OFFSETS_TIMEOUT_S)
        except grpc.aio.AioRpcError as e:
            log.debug("event=group_lag_list_offsets_failed broker=%d leader=%d code=%s", self.replicas.broker_id, leader, e.code().name)
            return {}
        return {(t.topic, p.partition): p.offset for t in response.topics for p in t.partitions if not p.error_code}

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["group", "topic", "partition"]
        committed = GaugeMetricFamily(
            "caudal_consumer_group_committed_offset", "The group's committed offset (the next record it will read)", labels=labels
        )
        lag = GaugeMetricFamily("caudal_consumer_group_lag", "Partition end offset minus the group's committed offset", labels=labels)
        total = GaugeMetricFamily("caudal_consumer_group_lag_sum", "The group's lag summed over its partitions", labels=["group"])
        members = GaugeMetricFamily("caudal_consumer_group_members", "Members of the group right now", labels=["group"])
        ends = self.end_offsets
        for group in list(self.coordinator.groups.values()):
            members.add_metric([group.group_id], len(group.members))
            group_total = 0
            for (topic, index), offset in list(group.offsets.items()):
                key = [group.group_id, topic, str(index)]
                committed.add_metric(key, offset.offset)
                end = ends.get((topic, index))
                if end is not None:
                    behind = max(0, end - offset.offset)
                    lag.add_metric(key, behind)
                    group_total += behind
            total.add_metric([group.group_id], group_total)
        yield from (committed, lag, total, members)
