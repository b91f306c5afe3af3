"""The event loop caudal runs its own asyncio code on: uvloop, where it is installed.

grpc.aio completes every message on its poller thread and hands it to the loop
thread as a cross-thread wake-up plus a callback; a replicated produce request
takes about eight such messages on the leader and four in the client. uvloop
(libuv) does the wake-ups, callbacks and timers in C. Measured on the replicated
data path (3 brokers, RF=3, acks=all, 1,000 records/s, BENCHMARKS.md): end-to-end
p50 3.63–3.70 → 3.19–3.53 ms with the synced WAL and 3.27–3.33 → 2.72–2.97 ms
with ``log.flush.policy=replication``, about two thirds of the gain in the client.

Servers (broker, controller, dev node, Connect worker) run on it, and so does the
SDK's private I/O thread; an application's own loop (``caudal.client.aio``) is
left as the application made it. Where uvloop is not available (Windows) the
standard loop is used.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency wherever it builds
    uvloop = None

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new loop of the fastest kind available."""
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a loop from :func:`new_event_loop`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
