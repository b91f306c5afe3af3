"""The gRPC ``caudal.v1.Broker`` servicer: decode, delegate, encode.

Data-path RPCs go to the :class:`ReplicaManager`; admin RPCs go to the
controller (in-process in ``caudal dev``). Metadata and configs are answered
from the broker's own metadata image. Any unexpected exception is turned into
an UNKNOWN_SERVER_ERROR response and logged, so client input can never take
the server down.
"""

from __future__ import annotations

import logging
from typing import AsyncIterator, Protocol

import grpc

from caudal.broker.group_coordinator import GroupCoordinator
from caudal.broker.metrics import REQUEST_LATENCY
from caudal.broker.producer_ids import ProducerIdManager
from caudal.broker.replica_manager import ReplicaManager
from caudal.broker.sessions import Sessions
from caudal.common.errors import InvalidRequestError, UnknownTopicOrPartitionError
from caudal.common.metadata import BROKER_RESOURCE, TOPIC_RESOURCE
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import broker_pb2_grpc

log = logging.getLogger(__name__)

METADATA_WAIT_S = 5.0
"""How long an admin change waits to show in this broker's metadata before answering,
so the client that made it can read its own write through the same broker."""

_PRODUCE_LATENCY = REQUEST_LATENCY.labels("Produce")
_FETCH_LATENCY = REQUEST_LATENCY.labels("Fetch")
_LIST_OFFSETS_LATENCY = REQUEST_LATENCY.labels("ListOffsets")


def client_host(peer: str) -> str:
    """Kafka's CLIENT-HOST form (``/127.0.0.1``) of a gRPC peer string (``ipv4:127.0.0.1:5000``)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return "/" + rest.rsplit(":", 1)[0].strip("[]")
    if kind == "ipv4":
        return "/" + rest.rsplit(":", 1)[0]
    return "/" + (rest or peer)


class ControllerClient(Protocol):
    """What the broker needs from the active controller."""

    cluster_id: str
    active_controller_id: int

    async def create_topics(self, request: pb.CreateTopicsRequest) -> pb.CreateTopicsResponse: ...

    async def delete_topics(self, request: pb.DeleteTopicsRequest) -> pb.DeleteTopicsResponse: ...

    async def create_partitions(self, request: pb.CreatePartitionsRequest) -> pb.CreatePartitionsResponse: ...

    async def alter_configs(self, request: pb.AlterConfigsRequest) -> pb.AlterConfigsResponse: ...

    async def describe_quorum(self, request: pb.DescribeQuorumRequest) -> pb.DescribeQuorumResponse: ...


class BrokerService(broker_pb2_grpc.BrokerServicer):
    """Thin servicer over the replica manager and the controller client."""

    def __init__(
        self, replicas: ReplicaManager, controller: ControllerClient, producer_ids: ProducerIdManager, groups: GroupCoordinator
    ) -> None:
        self.replicas = replicas
        self.controller = controller
        self.producer_ids = producer_ids
        self.groups = groups
        self.sessions = Sessions()

    async def Produce(self, request: pb.ProduceRequest, context: object) -> pb.ProduceResponse:
        with _PRODUCE_LATENCY.time():
            return await self.replicas.produce(request)

    async def Fetch(self, request: pb.FetchRequest, context: object) -> pb.FetchResponse:
        with _FETCH_LATENCY.time():
            return await self.replicas.fetch(request)

    async def ProduceSession(self, requests: AsyncIterator[pb.ProduceRequest], context: object) -> AsyncIterator[pb.ProduceResponse]:
        async for response in self.sessions.serve(requests, self._produce_in_session):
            yield response

    async def FetchSession(self, requests: AsyncIterator[pb.FetchRequest], context: object) -> AsyncIterator[pb.FetchResponse]:
        async for response in self.sessions.serve(requests, self._fetch_in_session):
            yield response

    async def _produce_in_session(self, request: pb.ProduceRequest) -> pb.ProduceResponse | None:
        response = await self.Produce(request, None)
        return None if request.acks == 0 else response

    async def _fetch_in_session(self, request: pb.FetchRequest) -> pb.FetchResponse:
        return await self.Fetch(request, None)

    async def ListOffsets(self, request: pb.ListOffsetsRequest, context: object) -> pb.ListOffsetsResponse:
        with _LIST_OFFSETS_LATENCY.time():
            return self.replicas.list_offsets(request)

    async def InitProducerId(self, request: pb.InitProducerIdRequest, context: object) -> pb.InitProducerIdResponse:
        return await self.producer_ids.init_producer_id(request)

    async def FindCoordinator(self, request: pb.FindCoordinatorRequest, context: object) -> pb.FindCoordinatorResponse:
        return await self.groups.find_coordinator(request)

    async def JoinGroup(self, request: pb.JoinGroupRequest, context: grpc.aio.ServicerContext) -> pb.JoinGroupResponse:
        return await self.groups.join_group(request, client_host(context.peer()))

    async def SyncGroup(self, request: pb.SyncGroupRequest, context: object) -> pb.SyncGroupResponse:
        return await self.groups.sync_group(request)

    async def Heartbeat(self, request: pb.HeartbeatRequest, context: object) -> pb.HeartbeatResponse:
        return await self.groups.heartbeat(request)

    async def LeaveGroup(self, request: pb.LeaveGroupRequest, context: object) -> pb.LeaveGroupResponse:
        return await self.groups.leave_group(request)

    async def OffsetCommit(self, request: pb.OffsetCommitRequest, context: object) -> pb.OffsetCommitResponse:
        return await self.groups.offset_commit(request)

    async def OffsetFetch(self, request: pb.OffsetFetchRequest, context: object) -> pb.OffsetFetchResponse:
        return await self.groups.offset_fetch(request)

    async def ListGroups(self, request: pb.ListGroupsRequest, context: object) -> pb.ListGroupsResponse:
        return self.groups.list_groups(request)

    async def DescribeGroups(self, request: pb.DescribeGroupsRequest, context: object) -> pb.DescribeGroupsResponse:
        return self.groups.describe_groups(request)

    async def DeleteGroups(self, request: pb.DeleteGroupsRequest, context: object) -> pb.DeleteGroupsResponse:
        return await self.groups.delete_groups(request)

    async def DescribeQuorum(self, request: pb.DescribeQuorumRequest, context: object) -> pb.DescribeQuorumResponse:
        return await self.controller.describe_quorum(request)

    async def Metadata(self, request: pb.MetadataRequest, context: object) -> pb.MetadataResponse:
        image = self.replicas.image
        response = pb.MetadataResponse(
            cluster_id=self.controller.cluster_id,
            controller_id=self.controller.active_controller_id,
            metadata_version=image.version,
            brokers=self._brokers(),
        )
        names = list(request.topics) if request.topics and not request.all_topics else sorted(image.topics)
        for name in names:
            topic = image.topics.get(name)
            if topic is None:
                response.topics.add(
                    name=name,
                    error_code=int(UnknownTopicOrPartitionError.code),
                    error_message=f"Topic '{name}' does not exist.",
                )
                continue
            tm = response.topics.add(name=name, topic_id=topic.topic_id, is_internal=topic.is_internal)
            for index in sorted(topic.partitions):
                p = topic.partitions[index]
                tm.partitions.add(
                    partition=index, leader=p.leader, leader_epoch=p.leader_epoch, replicas=p.replicas, isr=p.isr,
                    offline_replicas=[r for r in p.replicas if r not in image.brokers or image.brokers[r].fenced],
                )
        return response

    def _brokers(self) -> list[pb.BrokerInfo]:
        return [
            pb.BrokerInfo(node_id=b.broker_id, host=b.host, port=b.port, rack=b.rack)
            for b in self.replicas.image.live_brokers()
        ]

    async def DescribeCluster(self, request: pb.DescribeClusterRequest, context: object) -> pb.DescribeClusterResponse:
        return pb.DescribeClusterResponse(
            cluster_id=self.controller.cluster_id, controller_id=self.controller.active_controller_id, brokers=self._brokers()
        )

    async def CreateTopics(self, request: pb.CreateTopicsRequest, context: object) -> pb.CreateTopicsResponse:
        response = await self.controller.create_topics(request)
        created = {r.topic_id for r in response.results if not r.error_code and r.topic_id}
        await self.replicas.wait_for_metadata(lambda image: created <= image.topics_by_id.keys(), METADATA_WAIT_S)
        return response

    async def DeleteTopics(self, request: pb.DeleteTopicsRequest, context: object) -> pb.DeleteTopicsResponse:
        response = await self.controller.delete_topics(request)
        deleted = {r.name for r in response.results if not r.error_code}
        await self.replicas.wait_for_metadata(lambda image: not deleted & image.topics.keys(), METADATA_WAIT_S)
        return response

    async def CreatePartitions(self, request: pb.CreatePartitionsRequest, context: object) -> pb.CreatePartitionsResponse:
        response = await self.controller.create_partitions(request)
        ok = {r.name for r in response.results if not r.error_code}
        wanted = {t.name: t.count for t in request.topics if t.name in ok}
        await self.replicas.wait_for_metadata(
            lambda image: all(n in image.topics and len(image.topics[n].partitions) >= c for n, c in wanted.items()),
            METADATA_WAIT_S,
        )
        return response

    async def AlterConfigs(self, request: pb.AlterConfigsRequest, context: object) -> pb.AlterConfigsResponse:
        return await self.controller.alter_configs(request)

    async def DescribeConfigs(self, request: pb.DescribeConfigsRequest, context: object) -> pb.DescribeConfigsResponse:
        response = pb.DescribeConfigsResponse()
        for res in request.resources:
            result = response.results.add(resource_type=res.resource_type, resource_name=res.resource_name)
            if res.resource_type != TOPIC_RESOURCE:
                err = InvalidRequestError(
                    "Broker configs are static and set on the command line"
                    if res.resource_type == BROKER_RESOURCE
                    else f"Unsupported resource type {res.resource_type}"
                )
                result.error_code, result.error_message = int(err.code), err.message
                continue
            topic = self.replicas.image.topics.get(res.resource_name)
            if topic is None:
                result.error_code = int(UnknownTopicOrPartitionError.code)
                result.error_message = f"Topic '{res.resource_name}' does not exist."
                continue
            wanted = set(res.config_names)
            for name, value in sorted(topic.config.as_dict().items()):
                if wanted and name not in wanted:
                    continue
                overridden = name in topic.overrides
                result.configs.add(
                    name=name, value=value, is_default=not overridden,
                    source="DYNAMIC_TOPIC_CONFIG" if overridden else "DEFAULT_CONFIG",
                )
        return response
