"""Helpers for tests that look at the controller quorum directly over gRPC."""

from __future__ import annotations

import grpc

from caudal.local_cluster import LocalCluster
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import controller_pb2_grpc


def describe_quorum(address: str) -> pb.DescribeQuorumResponse | None:
    """One controller's view of the quorum, or None if it does not answer."""
    with grpc.insecure_channel(address) as channel:
        try:
            return controller_pb2_grpc.ControllerStub(channel).DescribeQuorum(pb.DescribeQuorumRequest(), timeout=2)
        except grpc.RpcError:
            return None


def active_controller(cluster: LocalCluster) -> int | None:
    """The node id every live controller agrees leads the quorum, or None while they disagree."""
    views = {
        node_id: describe_quorum(cluster.controller_addresses[node_id - 1])
        for node_id, node in cluster.controllers.items()
        if node.running
    }
    leaders = {v.leader_id for v in views.values() if v is not None}
    if len(leaders) == 1 and None not in views.values():
        leader = leaders.pop()
        return leader if leader in views else None
    return None
