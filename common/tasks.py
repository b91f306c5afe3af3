"""Small asyncio helpers every process uses: stopping tasks, timed waits, and stopping on signals."""

from __future__ import annotations

import asyncio
import signal
from typing import TypeVar

T = TypeVar("T")


async def cancel_and_wait(*tasks: "asyncio.Task[object] | None") -> None:
    """Cancel ``tasks`` and wait until each has finished unwinding."""
    live = [t for t in tasks if t is not None]
    for task in live:
        task.cancel()
    for task in live:
        try:
            await task
        except asyncio.CancelledError:
            pass


async def wait_or_time_out(fut: "asyncio.Future[T]", timeout_s: float) -> T:
    """Await ``fut``, a future only the caller resolves; after ``timeout_s`` it fails with TimeoutError.

    The data path's waits (a parked fetch, an ``acks=all`` produce, a request on a
    session) use this instead of ``asyncio.wait_for``, which wraps the future in a
    second one and so wakes the waiting task one loop iteration later.
    """
    timer = asyncio.get_running_loop().call_later(timeout_s, _time_out, fut)
    try:
        return await fut
    finally:
        timer.cancel()


def _time_out(fut: "asyncio.Future[object]") -> None:
    if not fut.done():
        fut.set_exception(asyncio.TimeoutError())


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (Ctrl-C, ``kill``, Kubernetes), for a clean shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
