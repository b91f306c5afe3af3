"""What the client knows about the cluster: brokers, partition counts, leaders.

:class:`ClusterMetadata` is a plain cache filled from Metadata responses;
:class:`MetadataManager` refreshes it over the network, trying every known
broker (then the bootstrap list) until one answers. Clients refresh when a
broker answers NOT_LEADER_OR_FOLLOWER or UNKNOWN_TOPIC_OR_PARTITION, or a
connection fails, then retry.

A broker cut off from the controller still answers Metadata, with the leaders
it last knew. So brokers that recently failed a request are asked last, and a
leader is only replaced by one of the same or a newer leader epoch (KIP-320):
once any broker has told the client about the new leader, the cut-off broker's
answers cannot send it back.
"""

from __future__ import annotations

import asyncio
from typing import Iterable

from caudal.client._transport import Connections
from caudal.client.structs import TopicPartition
from caudal.common.errors import CaudalError, NetworkError, error_for
from caudal.v1 import broker_pb2 as pb


class ClusterMetadata:
    """Cache of brokers, partition counts and leaders, keyed for the hot path."""

    def __init__(self) -> None:
        self.brokers: dict[int, str] = {}
        self.partition_counts: dict[str, int] = {}
        self.leaders: dict[TopicPartition, int] = {}
        self.leader_epochs: dict[TopicPartition, int] = {}
        self.topic_ids: dict[str, bytes] = {}
        self.topic_errors: dict[str, CaudalError] = {}
        self.cluster_id = ""
        self.controller_id = -1

    def update(self, response: pb.MetadataResponse) -> None:
        self.brokers = {b.node_id: f"{b.host}:{b.port}" for b in response.brokers}
        self.cluster_id, self.controller_id = response.cluster_id, response.controller_id
        for t in response.topics:
            if t.error_code:
                self.topic_errors[t.name] = error_for(t.error_code, t.error_message)
                self.partition_counts.pop(t.name, None)
                continue
            self.topic_errors.pop(t.name, None)
            if self.topic_ids.setdefault(t.name, t.topic_id) != t.topic_id:
                self._topic_recreated(t.name, t.topic_id)
            self.partition_counts[t.name] = len(t.partitions)
            for p in t.partitions:
                tp = TopicPartition(t.name, p.partition)
                if p.leader_epoch < self.leader_epochs.get(tp, -1):
                    continue  # from a broker behind on metadata: keep the newer leader
                self.leaders[tp] = p.leader
                self.leader_epochs[tp] = p.leader_epoch

    def _topic_recreated(self, name: str, topic_id: bytes) -> None:
        """A new topic under an old name: its leader epochs start over."""
        self.topic_ids[name] = topic_id
        for tp in [tp for tp in self.leader_epochs if tp.topic == name]:
            del self.leader_epochs[tp]

    def leader_address(self, tp: TopicPartition) -> str | None:
        leader = self.leaders.get(tp, -1)
        return self.brokers.get(leader) if leader >= 0 else None

    def any_address(self) -> list[str]:
        return list(self.brokers.values())


class MetadataManager:
    """Refreshes :class:`ClusterMetadata`; concurrent refresh requests share one RPC."""

    def __init__(self, conns: Connections, bootstrap: list[str], request_timeout_s: float) -> None:
        self.conns = conns
        self.bootstrap = bootstrap
        self.request_timeout_s = request_timeout_s
        self.cluster = ClusterMetadata()
        self.topics: set[str] = set()
        self._inflight: asyncio.Future[ClusterMetadata] | None = None

    async def refresh(self, topics: Iterable[str] = ()) -> ClusterMetadata:
        self.topics.update(topics)
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._refresh(pb.MetadataRequest(topics=sorted(self.topics))))
        return await asyncio.shield(self._inflight)

    async def refresh_all(self) -> ClusterMetadata:
        """Metadata of every topic in the cluster (pattern subscriptions match against it)."""
        return await self._refresh(pb.MetadataRequest(all_topics=True))

    async def _refresh(self, request: pb.MetadataRequest) -> ClusterMetadata:
        response = await self.call_any("Metadata", request)
        self.cluster.update(response)
        return self.cluster

    async def call_any(self, method: str, request: object) -> object:
        """Send an RPC to whichever broker answers first (admin requests and Metadata).

        Brokers are tried in the same order every time (a broker answers an admin change
        once its own metadata shows it, so the next request sees the change), except that
        those that recently failed a request go last.
        """
        last: Exception | None = None
        for address in self.conns.healthy_first(list(dict.fromkeys(self.cluster.any_address() + self.bootstrap))):
            try:
                return await self.conns.call(address, method, request, self.request_timeout_s)
            except CaudalError as e:
                last = e
        raise NetworkError(f"no broker answered {method} ({last})")
