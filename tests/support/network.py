"""Network partitions between the nodes of a local cluster, on one loopback and without privileges.

:func:`with_network` puts a proxy in front of every broker listener and every
controller API listener before the cluster starts: brokers advertise their proxy
(``--advertised-listener``) and reach the controllers through theirs
(``--controllers``), so every connection between nodes, and from clients, passes
through one. A proxy learns which node opened each connection from the kernel's
socket table (``/proc/net/tcp`` and the node's open files), so a partition cuts
exactly the links between two groups of nodes while clients still reach everyone.

Two kinds of cut (:meth:`Network.partitioned`):

- ``hold``: packets are dropped, connections stay open. Nothing passes either way;
  what was sent is delivered once the partition heals, as TCP retransmission
  would deliver it. A connection opened meanwhile gets no answer either.
- ``reject``: links are reset and new ones refused, as a firewall sending resets.

And slow links (:meth:`Network.delayed`): every chunk arrives a fixed delay plus
jitter after it was sent, in order, as over a long-distance link.

Raft traffic between controllers is not proxied: partitioning the quorum itself
is the controller tests' business.
"""

from __future__ import annotations

import asyncio
import os
import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ContextManager, Iterable, Iterator

from caudal.client.io_thread import IOThread
from caudal.local_cluster import LocalCluster, NodeProcess, free_port

CHUNK = 65536
MODES = ("hold", "reject")


@dataclass(frozen=True)
class _Fault:
    """What happens to a link: ``mode`` is "hold", "reject" or "delay"."""

    mode: str
    delay_s: float = 0.0
    jitter_s: float = 0.0


@dataclass(eq=False)
class _Link:
    """One proxied connection: ``source`` node (None for a client) to ``target`` node."""

    source: str | None
    target: str
    writers: list[asyncio.StreamWriter]
    open: asyncio.Event = field(default_factory=asyncio.Event)
    fault: _Fault | None = None


class Network:
    """The proxies of one cluster and the faults (cuts, delays) currently in force. Use as a context manager."""

    def __init__(self, nodes: dict[str, NodeProcess]) -> None:
        self.nodes = nodes
        self._io = IOThread("network")
        self._servers: list[asyncio.AbstractServer] = []
        self._links: set[_Link] = set()
        self._faults: dict[frozenset[str], _Fault] = {}
        self._random = random.Random(7)

    def front(self, target: str, target_port: int) -> int:
        """Start a proxy for node ``target`` listening on ``target_port``; returns the proxy's port."""
        port = free_port()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(target, target_port, port, reader, writer)

        self._servers.append(self._io.run(asyncio.start_server(serve, "127.0.0.1", port), 10))
        return port

    def partitioned(self, side_a: Iterable[str], side_b: Iterable[str], mode: str = "hold") -> ContextManager[None]:
        """Cut every link between a node of ``side_a`` and a node of ``side_b`` until the block ends."""
        assert mode in MODES, mode
        return self._faulty(side_a, side_b, _Fault(mode))

    def delayed(self, side_a: Iterable[str], side_b: Iterable[str], delay_s: float, jitter_s: float = 0.0) -> ContextManager[None]:
        """Delay every link between ``side_a`` and ``side_b`` by ``delay_s`` ± ``jitter_s`` each way, in order."""
        return self._faulty(side_a, side_b, _Fault("delay", delay_s, jitter_s))

    @contextmanager
    def _faulty(self, side_a: Iterable[str], side_b: Iterable[str], fault: _Fault) -> Iterator[None]:
        pairs = [frozenset((a, b)) for a in side_a for b in side_b if a != b]
        self._io.run(self._set(pairs, fault), 10)
        try:
            yield
        finally:
            self._io.run(self._set(pairs, None), 10)

    async def _set(self, pairs: list[frozenset[str]], fault: _Fault | None) -> None:
        for pair in pairs:
            if fault is None:
                self._faults.pop(pair, None)
            else:
                self._faults[pair] = fault
        for link in list(self._links):
            self._apply(link)

    def _apply(self, link: _Link) -> None:
        link.fault = self._faults.get(frozenset((link.source, link.target))) if link.source else None
        if link.fault is not None and link.fault.mode == "reject":
            for writer in link.writers:
                writer.transport.abort()
        elif link.fault is not None and link.fault.mode == "hold":
            link.open.clear()
        else:
            link.open.set()

    async def _serve(
        self, target: str, target_port: int, port: int, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        source = self._node_of(client_writer.get_extra_info("peername")[1], port)
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.transport.abort()
            return
        link = _Link(source, target, [client_writer, server_writer])
        self._links.add(link)
        self._apply(link)
        pumps = [
            asyncio.ensure_future(_pump(client_reader, server_writer, link, self._random)),
            asyncio.ensure_future(_pump(server_reader, client_writer, link, self._random)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._links.discard(link)
            for pump in pumps:
                pump.cancel()
            for writer in link.writers:
                writer.transport.abort()

    def _node_of(self, peer_port: int, proxy_port: int) -> str | None:
        """The node whose socket is the other end of ``peer_port`` -> ``proxy_port``, or None (a client)."""
        inode = _socket_inode(peer_port, proxy_port)
        if inode is None:
            return None
        wanted = f"socket:[{inode}]"
        for name, node in self.nodes.items():
            if not node.running:
                continue
            fd_dir = f"/proc/{node.pid}/fd"
            try:
                fds = os.listdir(fd_dir)
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"{fd_dir}/{fd}") == wanted:
                        return name
                except OSError:
                    continue
        return None

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            for link in list(self._links):
                for writer in link.writers:
                    writer.transport.abort()

        self._io.run(close(), 10)
        self._io.stop()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link, rng: random.Random) -> None:
    """Copy ``reader`` to ``writer``. While the link is held, data waits here (and TCP pushes
    back); while it is delayed, each chunk is written when it is due, never before an earlier one."""
    loop = asyncio.get_running_loop()
    due = 0.0
    try:
        while data := await reader.read(CHUNK):
            await link.open.wait()
            fault = link.fault
            if fault is not None and fault.mode == "delay":
                due = max(due, loop.time() + fault.delay_s + rng.uniform(-fault.jitter_s, fault.jitter_s))
            if due > loop.time():
                loop.call_at(due, _write_unless_closed, writer, data)
            else:
                writer.write(data)
                await writer.drain()
    except OSError:
        pass


def _write_unless_closed(writer: asyncio.StreamWriter, data: bytes) -> None:
    if not writer.is_closing():
        writer.write(data)


def _socket_inode(local_port: int, remote_port: int) -> int | None:
    """Inode of the socket bound to ``local_port`` and connected to ``remote_port``.

    gRPC opens dual-stack IPv6 sockets, so a connection to 127.0.0.1 may be listed in
    ``tcp6`` (as ``::ffff:127.0.0.1``) rather than ``tcp``.
    """
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as table:
            next(table)
            for row in table:
                fields = row.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if int(local.rsplit(":", 1)[1], 16) == local_port and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                    return int(inode)
    return None


def with_network(cluster: LocalCluster) -> Network:
    """Route every broker's and controller's API traffic of ``cluster`` (not started yet) through proxies."""
    nodes = {node.name: node for node in cluster.nodes()}
    network = Network(nodes)
    controller_proxies = []
    for node in cluster.controllers.values():
        controller_proxies.append(f"127.0.0.1:{network.front(node.name, _listen_port(node))}")
    for node in cluster.brokers.values():
        proxy = network.front(node.name, _listen_port(node))
        at = node.args.index("--controllers") + 1
        node.args[at] = ",".join(controller_proxies)
        node.args += ["--advertised-listener", f"127.0.0.1:{proxy}"]
    return network


def _listen_port(node: NodeProcess) -> int:
    return int(node.args[node.args.index("--listen") + 1].rsplit(":", 1)[1])
