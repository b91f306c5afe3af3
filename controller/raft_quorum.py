"""The replicated metadata log: a pysyncobj Raft group of the controllers.

This is the only module that imports pysyncobj. The Raft log's entries are
serialized :class:`MetadataBatch` protos applied through one
``@replicated apply(cmd: bytes)`` method (pysyncobj numbers replicated methods
by sorted name, so there must never be a second one). Each batch names the
metadata version it was decided against (``expected_version``); ``apply``
drops a batch whose decision is stale, so a controller that briefly believes
it leads (pysyncobj's leader flag can lag) can never apply a decision twice or
on top of a state it did not see.

Threads: pysyncobj runs its own tick thread, which calls ``apply`` and keeps a
Raft-side :class:`MetadataImage` — the state its snapshots capture. Every
applied batch is handed to the asyncio loop with ``call_soon_threadsafe``, in
log order; the loop keeps its own image from those batches. Snapshots are
written by our own serializer as a MetadataBatch snapshot (no pickled domain
objects) next to pysyncobj's own envelope of the last two log entries.

Durability: the journal and term/vote files survive a process crash (mmap);
they are not fsynced, so a simultaneous power loss of a quorum may lose the
newest entries (pysyncobj limitation, noted in DESIGN.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

from caudal.common.errors import NotControllerError, RequestTimedOutError
from caudal.common.metadata import MetadataImage
from caudal.controller.quorum import StaleDecisionError
from caudal.v1 import metadata_pb2 as md

log = logging.getLogger(__name__)

_LEN = struct.Struct(">I")
REJECTED = -1


@dataclass(frozen=True)
class RaftPeer:
    """A quorum member: node id and Raft address (``host:port``)."""

    node_id: int
    address: str


def parse_peers(peers: str) -> list[RaftPeer]:
    """``"1@h:9093,2@h:9094"`` → peers; the format of ``caudal controller --peers``."""
    out = []
    for item in peers.split(","):
        item = item.strip()
        if not item:
            continue
        node, _, address = item.partition("@")
        if not address or ":" not in address:
            raise ValueError(f"peer {item!r} is not ID@HOST:PORT")
        out.append(RaftPeer(int(node), address))
    return out


class _MetadataLog(SyncObj):
    """The SyncObj; its only replicated method is ``apply``. Runs on pysyncobj's thread.

    ``image`` is the Raft-side state: changed only by ``apply`` and by loading a
    snapshot, both on pysyncobj's thread, and captured by ``_write_snapshot``.
    """

    def __init__(
        self, self_address: str, partners: list[str], data_dir: Path, publish: Callable[[md.MetadataBatch], None]
    ) -> None:
        self.image = MetadataImage()
        self._publish = publish
        conf = SyncObjConf(
            journalFile=str(data_dir / "raft.journal"),
            fullDumpFile=str(data_dir / "raft.snapshot"),
            useFork=False,
            serializer=self._write_snapshot,
            deserializer=self._read_snapshot,
            raftMinTimeout=0.4,
            raftMaxTimeout=1.4,
            commandsWaitLeader=False,
            # Re-resolve peer names quickly: a rescheduled member (Kubernetes pod) comes back
            # under the same name with a new address.
            dnsCacheTime=2.0,
            dnsFailCacheTime=2.0,
            # Listen on the --raft address only (pysyncobj's default is every interface),
            # like the Controller API on --listen: Raft is not exposed on other networks.
            bindAddress=self_address,
        )
        super().__init__(self_address, partners, conf)

    @replicated
    def apply(self, cmd: bytes) -> int:
        batch = md.MetadataBatch.FromString(cmd)
        if batch.expected_version != self.image.version:
            return REJECTED
        batch.version = self.image.version + 1
        self.image.apply_batch(batch)
        self._publish(batch)
        return batch.version

    def _write_snapshot(self, path: str, raft_envelope: tuple) -> None:
        image = self.image
        snapshot = md.MetadataBatch(version=image.version, records=image.snapshot_records(), snapshot=True).SerializeToString()
        envelope = pickle.dumps(raft_envelope)  # pysyncobj's own (last entries, cluster) tuple
        with open(path, "wb") as f:
            f.write(_LEN.pack(len(snapshot)) + snapshot + envelope)
            f.flush()
            os.fsync(f.fileno())

    def _read_snapshot(self, path: str) -> tuple:
        with open(path, "rb") as f:
            data = f.read()
        (length,) = _LEN.unpack_from(data, 0)
        batch = md.MetadataBatch.FromString(data[4 : 4 + length])
        image = MetadataImage()
        image.apply_batch(batch)
        self.image = image
        self._publish(batch)
        log.info("event=raft_snapshot_loaded version=%d", image.version)
        return pickle.loads(data[4 + length :])


class RaftQuorum:
    """Controller-side handle on the Raft group; ``append`` and state queries from the loop."""

    def __init__(
        self,
        node_id: int,
        raft_address: str,
        peers: list[RaftPeer],
        data_dir: Path,
        publish: Callable[[md.MetadataBatch], None],
    ) -> None:
        self.node_id = node_id
        self.raft_address = raft_address
        self.peers = [p for p in peers if p.node_id != node_id]
        self.data_dir = Path(data_dir)
        self._publish = publish
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log: _MetadataLog | None = None

    # ---- lifecycle -------------------------------------------------------------

    def open(self) -> None:
        """Start the Raft node; committed entries are replayed through ``publish`` as they apply."""
        self._loop = asyncio.get_running_loop()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = _MetadataLog(self.raft_address, [p.address for p in self.peers], self.data_dir, self._applied)
        log.info("event=raft_started node=%d raft=%s peers=%s", self.node_id, self.raft_address, [p.address for p in self.peers])

    def close(self) -> None:
        if self._log is not None:
            self._log.destroy()
            self._log = None

    # ---- replication -----------------------------------------------------------

    async def append(self, records: list[md.MetadataRecord], expected_version: int, timeout_s: float = 10.0) -> int:
        """Commit ``records`` decided at ``expected_version``; returns the new version.

        NOT_CONTROLLER when this node does not lead; :class:`StaleDecisionError` when
        the metadata changed since the decision (the caller decides again).
        """
        assert self._log is not None and self._loop is not None
        if not self.is_leader():
            raise NotControllerError(f"controller {self.node_id} is not the active controller (leader: {self.leader_id()})")
        cmd = md.MetadataBatch(records=records, expected_version=expected_version).SerializeToString()
        loop = self._loop
        fut: asyncio.Future[tuple[object, int]] = loop.create_future()

        def done(result: object, error: int) -> None:  # pysyncobj's thread
            loop.call_soon_threadsafe(_settle, fut, (result, error))

        self._log.apply(cmd, callback=done)
        try:
            result, error = await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            raise RequestTimedOutError(f"metadata change not committed within {timeout_s} s") from None
        if error != FAIL_REASON.SUCCESS:
            raise NotControllerError(f"metadata change not committed: {_FAILURES.get(error, error)}")
        if result == REJECTED:
            raise StaleDecisionError()
        return int(result)  # type: ignore[arg-type]

    def _applied(self, batch: md.MetadataBatch) -> None:
        """pysyncobj's thread: hand a committed batch (or a loaded snapshot) to the loop, in log order."""
        copy = md.MetadataBatch()
        copy.CopyFrom(batch)
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._publish, copy)
        except RuntimeError:  # the loop is closed: shutting down
            pass

    # ---- state -----------------------------------------------------------------

    def is_leader(self) -> bool:
        return self._log is not None and self._log._isLeader()

    def leader_id(self) -> int:
        """Node id of the Raft leader as this node sees it, -1 if unknown."""
        if self._log is None:
            return -1
        leader = self._log._getLeader()
        if leader is None:
            return -1
        if leader == self._log.selfNode:
            return self.node_id
        address = getattr(leader, "address", str(leader))
        return next((p.node_id for p in self.peers if p.address == address), -1)

    def status(self) -> dict:
        return self._log.getStatus() if self._log is not None else {}


_FAILURES = {
    FAIL_REASON.QUEUE_FULL: "queue full",
    FAIL_REASON.MISSING_LEADER: "no leader",
    FAIL_REASON.DISCARDED: "discarded",
    FAIL_REASON.NOT_LEADER: "not leader",
    FAIL_REASON.LEADER_CHANGED: "leader changed",
    FAIL_REASON.REQUEST_DENIED: "denied",
    FAIL_REASON.UNKNOWN_OUTCOME: "unknown outcome",
}


def _settle(fut: "asyncio.Future[tuple[object, int]]", value: tuple[object, int]) -> None:
    if not fut.done():
        fut.set_result(value)
