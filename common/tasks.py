"""Small asyncio helpers every process uses: stopping tasks, and stopping on signals."""

from __future__ import annotations

import asyncio
import signal


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


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (Ctrl-C, ``kill``, Kubernetes), for a clean shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
