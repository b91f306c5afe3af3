"""Request sessions: many Produce or Fetch requests over one long-lived gRPC stream.

A unary call pays for a new HTTP/2 stream, headers and trailers every time; a
message on an open stream costs about half the CPU on each end and half the
round trip. Clients therefore keep one session per broker and tag each request
with a correlation id (Kafka's protocol header does the same on its TCP
connection). Requests are handled concurrently, as they arrive, and each
response goes back as soon as it is ready, so a parked long-poll fetch or an
``acks=all`` produce never holds up the requests behind it.

When the broker shuts down, open sessions stop taking requests, answer the ones
in flight and end, so the server does not sit out its grace period waiting for
clients to hang up. Owned by the broker's asyncio loop.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable, Protocol, TypeVar


class _Correlated(Protocol):
    correlation_id: int


Req = TypeVar("Req", bound=_Correlated)
Resp = TypeVar("Resp", bound=_Correlated)

_END = None
"""Queued when no more requests will come (the client finished, or the broker is closing)."""


class Sessions:
    """The broker's open sessions, so shutdown can end them."""

    def __init__(self) -> None:
        self._open: set[asyncio.Queue] = set()  # type: ignore[type-arg]
        self._closing = False

    def close(self) -> None:
        """Stop every session taking requests; each ends once its in-flight requests are answered."""
        self._closing = True
        for queue in self._open:
            queue.put_nowait(_END)

    async def serve(
        self, requests: AsyncIterator[Req], handle: Callable[[Req], Awaitable[Resp | None]]
    ) -> AsyncIterator[Resp]:
        """Answer ``requests`` with ``handle`` concurrently; yields responses in completion order.

        ``handle`` returning None sends nothing back (``acks=0``). A handler that raises
        ends the stream with that error, as a failing unary call would.
        """
        finished: asyncio.Queue[asyncio.Future[Resp | None] | None] = asyncio.Queue()
        running: set[asyncio.Future[Resp | None]] = set()

        async def read() -> None:
            try:
                async for request in requests:
                    correlation_id = request.correlation_id
                    task = asyncio.ensure_future(_answer(handle, request, correlation_id))
                    running.add(task)
                    task.add_done_callback(finished.put_nowait)
            finally:
                finished.put_nowait(_END)

        if self._closing:
            return
        self._open.add(finished)
        reader = asyncio.ensure_future(read())
        reading = True
        try:
            while reading or running:
                task = await finished.get()
                if task is _END:
                    reading = False
                    reader.cancel()
                    continue
                running.discard(task)
                response = task.result()
                if response is not None:
                    yield response
        finally:
            self._open.discard(finished)
            reader.cancel()
            if reader.done() and not reader.cancelled():
                reader.exception()  # the stream broke: the client sees that, nothing to log here
            for task in running:
                task.cancel()


async def _answer(handle: Callable[[Req], Awaitable[Resp | None]], request: Req, correlation_id: int) -> Resp | None:
    response = await handle(request)
    if response is not None:
        response.correlation_id = correlation_id
    return response
