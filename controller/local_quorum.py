"""A one-node metadata quorum: a checksummed, fsynced journal file.

``caudal dev`` runs the controller in combined mode with a single voter, so
there is nobody to replicate to; this quorum appends each
:class:`MetadataBatch` to ``metadata.journal`` and fsyncs before the change is
applied, then replays the journal on start. It has the same interface the
Raft quorum offers (``append`` then ``apply``), so the controller logic above
it is identical in both modes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from pathlib import Path
from typing import Callable

import crc32c

from caudal.v1 import metadata_pb2 as md

log = logging.getLogger(__name__)

_FRAME = struct.Struct(">II")  # payload length, CRC-32C of the payload


class LocalQuorum:
    """Durable single-voter metadata log; owned by the process's asyncio loop."""

    def __init__(self, data_dir: Path, apply: Callable[[md.MetadataBatch], None]) -> None:
        self._path = Path(data_dir) / "metadata.journal"
        self._apply = apply
        self._file = None
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
                if len(payload) != length or crc32c.crc32c(payload) != crc:
                    log.warning("event=journal_truncated path=%s at=%d", self._path, pos)
                    break
                batch = md.MetadataBatch.FromString(payload)
                self._apply(batch)
                self.version = batch.version
                pos += _FRAME.size + length
            valid_end = pos
        self._file = open(self._path, "ab")
        self._file.truncate(valid_end)
        log.info("event=metadata_replayed version=%d", self.version)

    async def append(self, records: list[md.MetadataRecord]) -> md.MetadataBatch:
        """Make ``records`` durable as the next version, then apply them."""
        batch = md.MetadataBatch(version=self.version + 1, records=records)
        payload = batch.SerializeToString()
        frame = _FRAME.pack(len(payload), crc32c.crc32c(payload)) + payload
        await asyncio.to_thread(self._write, frame)
        self.version = batch.version
        self._apply(batch)
        return batch

    def _write(self, frame: bytes) -> None:
        assert self._file is not None
        self._file.write(frame)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
