"""caudal's own processes and the SDK's I/O thread run on uvloop wherever it is installed."""

from __future__ import annotations

import asyncio

import uvloop

from caudal.client.io_thread import IOThread
from caudal.common import event_loop


async def _loop_kind() -> type:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


def test_servers_run_their_main_coroutine_on_uvloop() -> None:
    assert event_loop.run(_loop_kind()) is uvloop.Loop


def test_the_sdk_io_thread_runs_on_uvloop() -> None:
    io = IOThread("test-io")
    try:
        assert io.run(_loop_kind(), timeout=10) is uvloop.Loop
    finally:
        io.stop()

