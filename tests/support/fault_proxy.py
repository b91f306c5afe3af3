"""A TCP proxy that loses responses on purpose, to test what clients do when a reply never comes.

The broker advertises the proxy's address (``--advertised-listener``), so every
connection a client opens goes through it. When armed, a client chunk of at
least ``min_request_bytes`` (a produce request carrying records, not an HTTP/2
ping) is forwarded to the broker — which acts on it — and then the connection
is cut before the broker's answer reaches the client. The client sees the
request fail and retries it. Choices come from a seeded random generator.
"""

from __future__ import annotations

import asyncio
import random
import threading

from caudal.client.io_thread import IOThread

CHUNK = 65536


class FaultProxy:
    """Forwards ``listen_port`` to ``target_port`` on 127.0.0.1; ``stop`` closes everything."""

    def __init__(self, listen_port: int, target_port: int, drop_ratio: float, min_request_bytes: int = 1024, seed: int = 7) -> None:
        self.listen_port, self.target_port = listen_port, target_port
        self.drop_ratio, self.min_request_bytes = drop_ratio, min_request_bytes
        self.dropped = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._io = IOThread("fault-proxy")
        self._server = self._io.run(asyncio.start_server(self._serve, "127.0.0.1", listen_port), 10)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        cut = asyncio.Event()

        async def upstream() -> None:
            while data := await client_reader.read(CHUNK):
                server_writer.write(data)
                await server_writer.drain()
                if len(data) >= self.min_request_bytes and self._roll():
                    cut.set()
                    return

        async def downstream() -> None:
            while data := await server_reader.read(CHUNK):
                if cut.is_set():
                    return
                client_writer.write(data)
                await client_writer.drain()

        up, down = asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())
        tasks = [up, down]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if cut.is_set():
                await asyncio.wait([down], timeout=5)  # the broker answers (so it acted); the answer is dropped
        except OSError:
            pass
        finally:
            for task in tasks:
                task.cancel()
            for writer in (client_writer, server_writer):
                writer.close()

    def heal(self) -> None:
        """Stop losing responses (the fault window is over)."""
        with self._lock:
            self.drop_ratio = 0.0

    def _roll(self) -> bool:
        with self._lock:
            if self._random.random() < self.drop_ratio:
                self.dropped += 1
                return True
            return False

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        self._io.run(close(), 10)
        self._io.stop()
