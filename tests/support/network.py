"""Network partitions between the nodes of a local cluster, on one loopback and without privileges.

:func:`with_network` puts a proxy in front of every broker listener and every
controller API listener before the cluster starts: brokers advertise their proxy
(``--advertised-listener``) and reach the controllers through theirs
(``--controllers``), so every connection between nodes, and from clients, passes
through one. A proxy learns which node opened each connection from the kernel's
socket table (``/proc/net/tcp`` and the node's open files), so a partition cuts
exactly the links between two groups of nodes while clients still reach everyone.

Two kinds of cut:

- ``hold``: packets are dropped, connections stay open. Nothing passes either way;
  what was sent is delivered once the partition heals, as TCP retransmission
  would deliver it. A connection opened meanwhile gets no answer either.
- ``reject``: links are reset and new ones refused, as a firewall sending resets.

Raft traffic between controllers is not proxied: partitioning the quorum itself
is the controller tests' business.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from caudal.client.io_thread import IOThread
from caudal.local_cluster import LocalCluster, NodeProcess, free_port

CHUNK = 65536
MODES = ("hold", "reject")


@dataclass(eq=False)
class _Link:
    """One proxied connection: ``source`` node (None for a client) to ``target`` node."""

    source: str | None
    target: str
    writers: list[asyncio.StreamWriter]
    open: asyncio.Event = field(default_factory=asyncio.Event)


class Network:
    """The proxies of one cluster and the partitions currently in force. Use as a context manager."""

    def __init__(self, nodes: dict[str, NodeProcess]) -> None:
        self.nodes = nodes
        self._io = IOThread("network")
        self._servers: list[asyncio.AbstractServer] = []
        self._links: set[_Link] = set()
        self._cuts: dict[frozenset[str], str] = {}

    def front(self, target: str, target_port: int) -> int:
        """Start a proxy for node ``target`` listening on ``target_port``; returns the proxy's port."""
        port = free_port()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(target, target_port, port, reader, writer)

        self._servers.append(self._io.run(asyncio.start_server(serve, "127.0.0.1", port), 10))
        return port

    @contextmanager
    def partitioned(self, side_a: Iterable[str], side_b: Iterable[str], mode: str = "hold") -> Iterator[None]:
        """Cut every link between a node of ``side_a`` and a node of ``side_b`` until the block ends."""
        assert mode in MODES, mode
        pairs = [frozenset((a, b)) for a in side_a for b in side_b]
        self._io.run(self._cut(pairs, mode), 10)
        try:
            yield
        finally:
            self._io.run(self._heal(pairs), 10)

    async def _cut(self, pairs: list[frozenset[str]], mode: str) -> None:
        for pair in pairs:
            self._cuts[pair] = mode
        for link in list(self._links):
            self._apply(link)

    async def _heal(self, pairs: list[frozenset[str]]) -> None:
        for pair in pairs:
            self._cuts.pop(pair, None)
        for link in list(self._links):
            self._apply(link)

    def _apply(self, link: _Link) -> None:
        mode = self._cuts.get(frozenset((link.source, link.target))) if link.source else None
        if mode == "reject":
            for writer in link.writers:
                writer.transport.abort()
        elif mode == "hold":
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
        pumps = [asyncio.ensure_future(_pump(client_reader, server_writer, link)), asyncio.ensure_future(_pump(server_reader, client_writer, link))]
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


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link) -> None:
    """Copy ``reader`` to ``writer``; while the link is held, data waits here (and TCP pushes back)."""
    try:
        while data := await reader.read(CHUNK):
            await link.open.wait()
            writer.write(data)
            await writer.drain()
    except OSError:
        pass


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
