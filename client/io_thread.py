"""The background thread that runs a client's asyncio loop.

The blocking SDK (Producer, Consumer, AdminClient) keeps every network
operation on one private asyncio loop running in a daemon thread, so there is
a single I/O owner per client (no lock-ordering hazards between a heartbeat
thread and user threads) and the asyncio API can reuse the same coroutines.
User threads hand work over with :meth:`run` (wait for a result) or
:meth:`call_soon` (fire and forget).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Callable, Coroutine, TypeVar

from caudal.common import event_loop

T = TypeVar("T")


class IOThread:
    """A started asyncio loop in a daemon thread; ``stop`` joins it."""

    def __init__(self, name: str) -> None:
        self.loop = event_loop.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result in the calling thread."""
        return self.submit(coro).result(timeout)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
