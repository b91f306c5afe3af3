"""The client's only gRPC module: channels to brokers and RPC error mapping.

One :class:`Connections` per client instance holds a grpc.aio channel per
broker address and turns transport failures into Kafka-style retriable errors
(``NetworkError``, ``RequestTimedOutError``), so the producer and consumer
retry logic sees one error vocabulary. Owned by the client's I/O loop.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, TypeVar

import grpc

from caudal.common.errors import InvalidRequestError, NetworkError, RequestTimedOutError, UnknownServerError
from caudal.common.grpc_options import GRPC_OPTIONS
from caudal.v1 import broker_pb2_grpc

R = TypeVar("R")


def parse_bootstrap(bootstrap_servers: str | list[str]) -> list[str]:
    """``"h1:9092,h2:9092"`` or a list → ``["h1:9092", "h2:9092"]`` (port 9092 when omitted)."""
    items = bootstrap_servers.split(",") if isinstance(bootstrap_servers, str) else list(bootstrap_servers)
    out = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        out.append(item if ":" in item.rsplit("]", 1)[-1] else f"{item}:9092")
    if not out:
        raise InvalidRequestError("bootstrap_servers is empty")
    return out


class Connections:
    """Lazily opened channels, one per ``host:port``."""

    def __init__(self) -> None:
        self._stubs: dict[str, broker_pb2_grpc.BrokerStub] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}

    def stub(self, address: str) -> broker_pb2_grpc.BrokerStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = grpc.aio.insecure_channel(address, options=GRPC_OPTIONS)
            self._channels[address] = channel
            stub = self._stubs[address] = broker_pb2_grpc.BrokerStub(channel)
        return stub

    async def call(self, address: str, method: str, request: Any, timeout_s: float) -> Any:
        """Invoke ``Broker.<method>`` on ``address``; transport failures become typed errors."""
        rpc: Callable[..., Awaitable[Any]] = getattr(self.stub(address), method)
        try:
            return await rpc(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as e:
            raise _map_rpc_error(address, method, e) from None

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()


def _map_rpc_error(address: str, method: str, e: grpc.aio.AioRpcError) -> Exception:
    code = e.code()
    detail = f"{method} to {address} failed: {code.name} {e.details() or ''}".strip()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return RequestTimedOutError(detail)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN):
        return NetworkError(detail)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return InvalidRequestError(detail)
    return UnknownServerError(detail)
