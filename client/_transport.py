"""The client's only gRPC module: channels to brokers and RPC error mapping.

One :class:`Connections` per client instance holds a grpc.aio channel per
broker address and turns transport failures into Kafka-style retriable errors
(``NetworkError``, ``RequestTimedOutError``), so the producer and consumer
retry logic sees one error vocabulary. Produce and Fetch, the data path, travel
in a :class:`Session` per broker (one long-lived stream, requests matched to
responses by correlation id) because a stream message costs half the CPU and
half the round trip of a unary call. Owned by the client's I/O loop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any, Awaitable, Callable, TypeVar

import grpc

from caudal.common.errors import CaudalError, InvalidRequestError, NetworkError, RequestTimedOutError, UnknownServerError
from caudal.common.grpc_options import GRPC_OPTIONS
from caudal.common.tasks import wait_or_time_out
from caudal.v1 import broker_pb2_grpc

log = logging.getLogger(__name__)

R = TypeVar("R")

SESSION_RPCS = {"Produce": "ProduceSession", "Fetch": "FetchSession"}
"""Methods sent through a session, and the streaming RPC that carries them."""

RECENT_FAILURE_S = 5.0
"""How long a broker that failed a request (no answer in time, connection broken) is asked last."""


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


class Session:
    """Requests of one kind to one broker over a single bidi stream.

    Each request gets a correlation id; a reader task hands every response to the
    request waiting for it. When the stream breaks, every waiting request fails with
    the mapped transport error and the session is done; a request that times out
    closes the session too (as Kafka's client drops a connection that timed out), so
    the next request starts on a fresh stream.
    """

    def __init__(self, address: str, method: str, call: Any) -> None:
        self.address = address
        self.method = method
        self._call = call
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._write_lock = asyncio.Lock()
        self._error: Exception | None = None
        self._reader = asyncio.ensure_future(self._read())

    @property
    def done(self) -> bool:
        return self._error is not None

    async def request(self, request: Any, timeout_s: float, answered: bool = True) -> Any:
        """Send ``request``; return its response, or None at once when the broker sends none."""
        if self._error is not None:
            raise self._error
        correlation_id = next(self._ids) & 0x7FFFFFFF
        request.correlation_id = correlation_id
        fut: asyncio.Future[Any] | None = None
        if answered:
            fut = self._waiting[correlation_id] = asyncio.get_running_loop().create_future()
        try:
            async with self._write_lock:
                if self._error is not None:  # failed while this request waited for the lock
                    raise self._error
                await self._call.write(request)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as e:
            self._abandon(correlation_id, fut)
            raise self._fail(e) from None
        except BaseException as e:  # the session's error, or a cancellation
            self._abandon(correlation_id, fut)
            if isinstance(e, asyncio.CancelledError) and self._error is not None:
                raise self._error from None  # the session was ended (and its call cancelled) mid-write
            raise
        if fut is None:
            return None
        try:
            return await wait_or_time_out(fut, timeout_s)
        except asyncio.TimeoutError:
            self._fail(NetworkError(f"{self.method} session to {self.address} dropped: a request got no response in time"))
            raise RequestTimedOutError(
                f"{self.method} to {self.address} got no response within {timeout_s:.1f} s"
            ) from None
        finally:
            self._waiting.pop(correlation_id, None)

    def _abandon(self, correlation_id: int, fut: asyncio.Future[Any] | None) -> None:
        """Forget a request that was never sent; its response future is not awaited."""
        self._waiting.pop(correlation_id, None)
        if fut is None:
            return
        if not fut.done():
            fut.cancel()
        elif not fut.cancelled():
            fut.exception()  # retrieved: the request raises the session's error instead

    async def _read(self) -> None:
        try:
            while True:
                response = await self._call.read()
                if response is grpc.aio.EOF:
                    self._fail(NetworkError(f"{self.method} session to {self.address} was closed by the broker"))
                    return
                fut = self._waiting.pop(response.correlation_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(response)
        except grpc.aio.AioRpcError as e:
            self._fail(e)

    def _fail(self, cause: Exception) -> Exception:
        """End the session: every waiting request fails with ``cause`` mapped to a client error."""
        if self._error is None:
            if isinstance(cause, grpc.aio.AioRpcError):
                self._error = _map_rpc_error(self.address, self.method, cause)
            elif isinstance(cause, CaudalError):
                self._error = cause
            else:
                self._error = NetworkError(f"{self.method} session to {self.address} failed: {cause!r}")
            log.debug("event=session_closed address=%s method=%s error=%s", self.address, self.method, self._error)
            waiting, self._waiting = self._waiting, {}
            for fut in waiting.values():
                if not fut.done():
                    fut.set_exception(self._error)
            self._call.cancel()
        return self._error

    async def close(self) -> None:
        self._fail(NetworkError(f"{self.method} session to {self.address} was closed by the client"))
        await asyncio.gather(self._reader, return_exceptions=True)


class Connections:
    """Lazily opened channels, one per ``host:port``, and a session per data-path method."""

    def __init__(self) -> None:
        self._stubs: dict[str, broker_pb2_grpc.BrokerStub] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._sessions: dict[tuple[str, str], Session] = {}
        self._failed_at: dict[str, float] = {}

    def healthy_first(self, addresses: list[str]) -> list[str]:
        """``addresses`` in their order, those that recently failed a request moved to the end.

        A broker cut off from the rest of the cluster may still be reachable, and answer
        Metadata with leaders it no longer knows are gone; its requests time out. Asking
        the others first is how a client learns where the partitions went.
        """
        now = time.monotonic()
        recent = {a for a, at in self._failed_at.items() if now - at < RECENT_FAILURE_S}
        return [a for a in addresses if a not in recent] + [a for a in addresses if a in recent]

    def stub(self, address: str) -> broker_pb2_grpc.BrokerStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = grpc.aio.insecure_channel(address, options=GRPC_OPTIONS)
            self._channels[address] = channel
            stub = self._stubs[address] = broker_pb2_grpc.BrokerStub(channel)
        return stub

    async def call(self, address: str, method: str, request: Any, timeout_s: float, answered: bool = True) -> Any:
        """Invoke ``Broker.<method>`` on ``address``; transport failures become typed errors.

        ``answered=False`` is for requests the broker does not answer (``acks=0``
        produce): it returns once the request is sent.
        """
        try:
            if method in SESSION_RPCS:
                return await self._session(address, method).request(request, timeout_s, answered)
            rpc: Callable[..., Awaitable[Any]] = getattr(self.stub(address), method)
            try:
                return await rpc(request, timeout=timeout_s)
            except grpc.aio.AioRpcError as e:
                raise _map_rpc_error(address, method, e) from None
        except (NetworkError, RequestTimedOutError):
            self._failed_at[address] = time.monotonic()
            raise

    def _session(self, address: str, method: str) -> Session:
        session = self._sessions.get((address, method))
        if session is None or session.done:
            call = getattr(self.stub(address), SESSION_RPCS[method])()
            session = self._sessions[(address, method)] = Session(address, method, call)
        return session

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()


_TRANSPORT_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
"""Statuses that mean the call or its connection broke, so the request may be retried.

Brokers never answer with INTERNAL; gRPC reports it for transport failures, notably
a message written to a stream the broker has just ended (grpc/grpc#36066): what a
client sees when a broker shuts down under it."""


def _map_rpc_error(address: str, method: str, e: grpc.aio.AioRpcError) -> Exception:
    code = e.code()
    detail = f"{method} to {address} failed: {code.name} {e.details() or ''}".strip()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return RequestTimedOutError(detail)
    if code in _TRANSPORT_CODES:
        return NetworkError(detail)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return InvalidRequestError(detail)
    return UnknownServerError(detail)
