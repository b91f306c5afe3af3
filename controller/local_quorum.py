"""A one-node metadata quorum: a checksummed, fsynced journal file.

``caudal dev`` runs the controller in combined mode with a single voter, so
there is nobody to replicate to; this quorum appends each
:class:`MetadataBatch` to ``metadata.journal`` and fsyncs before the change is
published, then replays the journal on start. It keeps the contract of the
Raft quorum (decisions carry the version they were made at; committed batches
are published in order), so the controller above it is identical in both modes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from pathlib import Path
from typing import BinaryIO, Callable

import crc32c

from caudal.controller.quorum import StaleDecisionError
from caudal.v1 import metadata_pb2 as md

log = logging.getLogger(__name__)

_FRAME = struct.Struct(">II")  # payload length, CRC-32C of the payload


class LocalQuorum:
    """Durable single-voter metadata log; owned by the process's asyncio loop."""

    def __init__(self, node_id: int, data_dir: Path, publish: Callable[[md.MetadataBatch], None]) -> None:
        self.node_id = node_id
        self._path = Path(data_dir) / "metadata.journal"
        self._publish = publish
        self._file: BinaryIO | None = None
        self.version = 0

    def open(self) -> None:
        """Replay the journal; a torn last frame (crash mid-write) is cut off."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        valid_end = 0
        if self._path.exists():
            data = self._path.read_bytes()
            pos = 0
            while pos + _FRAME.size <= len(data):
                length, crc = _FRAME.unpack_from(data, pos)
                payload = data[pos + _FRAME.size : pos + _FRAME.size + length]
                # A batch always has a version, so an empty payload is a zero-filled tail, not a frame.
                if not length or len(payload) != length or crc32c.crc32c(payload) != crc:
                    log.warning("event=journal_truncated path=%s at=%d", self._path, pos)
                    break
                batch = md.MetadataBatch.FromString(payload)
                self._publish(batch)
                self.version = batch.version
                pos += _FRAME.size + length
            valid_end = pos
        self._file = open(self._path, "ab")
        self._file.truncate(valid_end)
        log.info("event=metadata_replayed version=%d", self.version)

    async def append(self, records: list[md.MetadataRecord], expected_version: int) -> int:
        """Make ``records`` durable as the next version, then publish them."""
        if expected_version != self.version:
            raise StaleDecisionError()
        batch = md.MetadataBatch(version=self.version + 1, records=records, expected_version=expected_version)
        payload = batch.SerializeToString()
        frame = _FRAME.pack(len(payload), crc32c.crc32c(payload)) + payload
        await asyncio.to_thread(self._write, frame)
        self.version = batch.version
        self._publish(batch)
        return batch.version

    def _write(self, frame: bytes) -> None:
        assert self._file is not None
        self._file.write(frame)
        self._file.flush()
        os.fsync(self._file.fileno())

    def is_leader(self) -> bool:
        return True

    def leader_id(self) -> int:
        return self.node_id

    def status(self) -> dict:
        return {"raft_term": 0, "commit_idx": self.version}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
