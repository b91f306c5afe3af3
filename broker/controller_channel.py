"""The broker's connection to the controller quorum, over gRPC.

Brokers are configured with every controller's address. Requests go to the
controller that answered last as active; a NOT_CONTROLLER answer or an
unreachable controller moves on to the next address, so a controller failover
costs a broker a few retries, not a restart. The methods and their proto types
are the Controller's own, which lets ``caudal dev`` hand the broker the
in-process Controller instead of this channel.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Callable

import grpc

from caudal.common.errors import ErrorCode, NetworkError, NotControllerError, RequestTimedOutError
from caudal.common.grpc_options import GRPC_OPTIONS
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import controller_pb2 as cpb
from caudal.v1 import controller_pb2_grpc
from caudal.v1 import metadata_pb2 as md

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = 0.1
NOT_CONTROLLER = int(ErrorCode.NOT_CONTROLLER)
MEMBERSHIP_TIMEOUT_S = 2.0
"""Per-attempt timeout of heartbeats and other broker-lifecycle calls: well under the
session timeout, so a paused or partitioned controller costs a retry, not the session."""
ADMIN_TIMEOUT_S = 5.0


class ControllerChannel:
    """Rotating gRPC client for the quorum; owned by the broker's asyncio loop."""

    def __init__(self, addresses: list[str], attempt_budget_s: float = 15.0) -> None:
        if not addresses:
            raise ValueError("at least one controller address is needed")
        self.addresses = addresses
        self.attempt_budget_s = attempt_budget_s
        self.cluster_id = ""
        self.active_controller_id = -1
        self._current = 0
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _stub(self, address: str) -> controller_pb2_grpc.ControllerStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(address, options=GRPC_OPTIONS)
        return controller_pb2_grpc.ControllerStub(channel)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def _call(
        self, method: str, request: object, not_controller: Callable[[object], bool], timeout_s: float = MEMBERSHIP_TIMEOUT_S
    ) -> object:
        """Call ``method`` on the active controller, rotating through addresses until one accepts."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.attempt_budget_s
        last = ""
        while True:
            address = self.addresses[self._current]
            try:
                response = await getattr(self._stub(address), method)(request, timeout=timeout_s)
            except grpc.aio.AioRpcError as e:
                last = f"{address}: {e.code().name} {e.details() or ''}"
            else:
                if not not_controller(response):
                    return response
                last = f"{address}: not the active controller"
            self._current = (self._current + 1) % len(self.addresses)
            if loop.time() >= deadline:
                raise NotControllerError(f"no active controller answered {method} within {self.attempt_budget_s} s ({last})")
            await asyncio.sleep(RETRY_BACKOFF_S)

    async def register_broker(self, request: cpb.RegisterBrokerRequest) -> cpb.RegisterBrokerResponse:
        response = await self._call("RegisterBroker", request, _error_is_not_controller)
        if response.cluster_id:
            self.cluster_id = response.cluster_id
        self.active_controller_id = response.controller_id
        return response

    async def broker_heartbeat(self, request: cpb.BrokerHeartbeatRequest) -> cpb.BrokerHeartbeatResponse:
        response = await self._call("BrokerHeartbeat", request, _error_is_not_controller)
        if not response.error_code:
            self.active_controller_id = response.controller_id
        return response

    async def controlled_shutdown(self, request: cpb.ControlledShutdownRequest) -> cpb.ControlledShutdownResponse:
        return await self._call("ControlledShutdown", request, _error_is_not_controller)

    async def alter_partition(self, request: cpb.AlterPartitionRequest) -> cpb.AlterPartitionResponse:
        return await self._call("AlterPartition", request, _error_is_not_controller)

    async def allocate_producer_ids(self, request: cpb.AllocateProducerIdsRequest) -> cpb.AllocateProducerIdsResponse:
        return await self._call("AllocateProducerIds", request, _error_is_not_controller)

    async def describe_quorum(self, request: pb.DescribeQuorumRequest) -> pb.DescribeQuorumResponse:
        """The active controller's view of the quorum (a follower's term and commit index may lag)."""
        return await self._call("DescribeQuorum", request, lambda r: r.leader_id != r.node_id)

    async def create_topics(self, request: pb.CreateTopicsRequest) -> pb.CreateTopicsResponse:
        return await self._call("CreateTopics", request, _any_result_not_controller, ADMIN_TIMEOUT_S)

    async def delete_topics(self, request: pb.DeleteTopicsRequest) -> pb.DeleteTopicsResponse:
        return await self._call("DeleteTopics", request, _any_result_not_controller, ADMIN_TIMEOUT_S)

    async def create_partitions(self, request: pb.CreatePartitionsRequest) -> pb.CreatePartitionsResponse:
        return await self._call("CreatePartitions", request, _any_result_not_controller, ADMIN_TIMEOUT_S)

    async def alter_configs(self, request: pb.AlterConfigsRequest) -> pb.AlterConfigsResponse:
        return await self._call("AlterConfigs", request, _any_result_not_controller, ADMIN_TIMEOUT_S)

    async def watch_metadata(self, request: cpb.WatchMetadataRequest) -> AsyncIterator[md.MetadataBatch]:
        """One stream from the current controller; ends (raises NetworkError) when it breaks."""
        address = self.addresses[self._current]
        try:
            async for batch in self._stub(address).WatchMetadata(request):
                yield batch
        except grpc.aio.AioRpcError as e:
            self._current = (self._current + 1) % len(self.addresses)
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise RequestTimedOutError(f"metadata stream from {address} timed out") from None
            raise NetworkError(f"metadata stream from {address} broke: {e.code().name}") from None


def _error_is_not_controller(response: object) -> bool:
    return getattr(response, "error_code", 0) == NOT_CONTROLLER


def _any_result_not_controller(response: object) -> bool:
    return any(r.error_code == NOT_CONTROLLER for r in getattr(response, "results", ()))
