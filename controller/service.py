"""The gRPC ``caudal.v1.Controller`` servicer: every RPC is one Controller method."""

from __future__ import annotations

from typing import AsyncIterator

from caudal.controller.controller import Controller
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import controller_pb2 as cpb
from caudal.v1 import controller_pb2_grpc
from caudal.v1 import metadata_pb2 as md


class ControllerService(controller_pb2_grpc.ControllerServicer):
    """Thin: the request and response protos are the Controller's own types."""

    def __init__(self, controller: Controller) -> None:
        self.c = controller

    async def RegisterBroker(self, request: cpb.RegisterBrokerRequest, context: object) -> cpb.RegisterBrokerResponse:
        return await self.c.register_broker(request)

    async def BrokerHeartbeat(self, request: cpb.BrokerHeartbeatRequest, context: object) -> cpb.BrokerHeartbeatResponse:
        return await self.c.broker_heartbeat(request)

    async def WatchMetadata(self, request: cpb.WatchMetadataRequest, context: object) -> AsyncIterator[md.MetadataBatch]:
        async for batch in self.c.watch_metadata(request):
            yield batch

    async def AlterPartition(self, request: cpb.AlterPartitionRequest, context: object) -> cpb.AlterPartitionResponse:
        return await self.c.alter_partition(request)

    async def ControlledShutdown(self, request: cpb.ControlledShutdownRequest, context: object) -> cpb.ControlledShutdownResponse:
        return await self.c.controlled_shutdown(request)

    async def AllocateProducerIds(self, request: cpb.AllocateProducerIdsRequest, context: object) -> cpb.AllocateProducerIdsResponse:
        return await self.c.allocate_producer_ids(request)

    async def DescribeQuorum(self, request: pb.DescribeQuorumRequest, context: object) -> pb.DescribeQuorumResponse:
        return await self.c.describe_quorum(request)

    async def CreateTopics(self, request: pb.CreateTopicsRequest, context: object) -> pb.CreateTopicsResponse:
        return await self.c.create_topics(request)

    async def DeleteTopics(self, request: pb.DeleteTopicsRequest, context: object) -> pb.DeleteTopicsResponse:
        return await self.c.delete_topics(request)

    async def CreatePartitions(self, request: pb.CreatePartitionsRequest, context: object) -> pb.CreatePartitionsResponse:
        return await self.c.create_partitions(request)

    async def AlterConfigs(self, request: pb.AlterConfigsRequest, context: object) -> pb.AlterConfigsResponse:
        return await self.c.alter_configs(request)

    async def ElectLeaders(self, request: cpb.ElectLeadersRequest, context: object) -> cpb.ElectLeadersResponse:
        return await self.c.elect_leaders(request)
