"""Where source connectors' offsets live, keyed exactly as Kafka Connect keys them.

A source task tags each record with a *source partition* and *source offset*;
once the record is acknowledged the worker stores the offset here, and a
restarted task asks for it (through :meth:`OffsetStore.reader`) to resume.
Entries are stored in Kafka's serialized form: the key is the JSON
``["<connector>",{<partition>}]`` and the value the JSON of the offset, both
compact and with sorted object keys, so a partition always maps to the same
key bytes. That is what Kafka's worker writes to ``connect-offsets``, so the
same keys work in standalone mode's file (:class:`FileOffsetStore`,
``offset.storage.file.filename``) and in a compacted offsets topic (a store
built on :class:`MemoryOffsetStore`, whose :meth:`~MemoryOffsetStore.apply`
takes serialized entries as read from such a topic).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol, Union

from caudal.connect.api import ConnectError, OffsetStorageReader

Partition = dict[str, Any]
Offset = dict[str, Any]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def offset_key(connector: str, partition: Partition) -> str:
    """Kafka's offsets-topic key for ``partition`` of ``connector``: ``["name",{"filename":"a.txt"}]``."""
    try:
        return _dumps([connector, partition])
    except (TypeError, ValueError) as exc:
        raise ConnectError(f"Source partition {partition!r} of connector {connector} is not JSON: {exc}") from exc


def parse_key(key: str) -> tuple[str, Partition]:
    """The connector name and source partition of an :func:`offset_key`; ValueError if it is not one."""
    decoded = json.loads(key)
    if not (isinstance(decoded, list) and len(decoded) == 2
            and isinstance(decoded[0], str) and isinstance(decoded[1], dict)):
        raise ValueError(f"not a [connector, partition] key: {key}")
    return decoded[0], decoded[1]


def serialize(connector: str, offsets: list[tuple[Partition, Optional[Offset]]]) -> dict[str, Optional[str]]:
    """``(partition, offset)`` pairs as serialized entries; an offset of None becomes None (a tombstone)."""
    entries: dict[str, Optional[str]] = {}
    for partition, offset in offsets:
        try:
            entries[offset_key(connector, partition)] = None if offset is None else _dumps(offset)
        except (TypeError, ValueError) as exc:
            raise ConnectError(f"Source offset {offset!r} of connector {connector} is not JSON: {exc}") from exc
    return entries


class OffsetStore(Protocol):
    """What the worker and the offsets REST endpoints need from an offset backing store."""

    def get(self, connector: str, partition: Partition) -> Optional[Offset]:
        """The stored offset of one source partition, or None."""
        ...

    def put(self, connector: str, offsets: list[tuple[Partition, Optional[Offset]]]) -> None:
        """Store these offsets together; an offset of None deletes the partition's entry."""
        ...

    def all(self, connector: str) -> list[tuple[Partition, Offset]]:
        """Every stored ``(partition, offset)`` of the connector."""
        ...

    def reader(self, connector: str) -> OffsetStorageReader:
        """The connector's view, handed to its source tasks."""
        ...


class _ConnectorOffsets(OffsetStorageReader):
    """An :class:`OffsetStorageReader` that reads one connector's entries of a store."""

    def __init__(self, store: OffsetStore, connector: str) -> None:
        self._store = store
        self._connector = connector

    def offset(self, partition: Partition) -> Optional[Offset]:
        return self._store.get(self._connector, partition)


class MemoryOffsetStore:
    """Offsets in a dict of serialized entries; subclasses make a new map durable in :meth:`_persist`.

    Every change builds the new map, persists it and only then publishes it,
    under one lock, so readers never see an entry that failed to be stored.
    """

    def __init__(self, entries: Optional[Mapping[str, str]] = None) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, str] = dict(entries or {})

    def get(self, connector: str, partition: Partition) -> Optional[Offset]:
        key = offset_key(connector, partition)
        with self._lock:
            value = self._entries.get(key)
        return None if value is None else json.loads(value)

    def put(self, connector: str, offsets: list[tuple[Partition, Optional[Offset]]]) -> None:
        self.apply(serialize(connector, offsets))

    def apply(self, entries: Mapping[str, Optional[str]]) -> None:
        """Store serialized entries (a None value deletes its key), as they appear in an offsets topic."""
        with self._lock:
            updated = dict(self._entries)
            for key, value in entries.items():
                if value is None:
                    updated.pop(key, None)
                else:
                    updated[key] = value
            self._persist(updated)
            self._entries = updated

    def all(self, connector: str) -> list[tuple[Partition, Offset]]:
        with self._lock:
            entries = list(self._entries.items())
        found = []
        for key, value in entries:
            name, partition = parse_key(key)
            if name == connector:
                found.append((partition, json.loads(value)))
        return found

    def reader(self, connector: str) -> OffsetStorageReader:
        return _ConnectorOffsets(self, connector)

    def _persist(self, entries: dict[str, str]) -> None:
        """Make ``entries`` (the whole new map) durable; called under the lock before it is published."""


class FileOffsetStore(MemoryOffsetStore):
    """Standalone mode's store: the whole map in one JSON file, replaced atomically on every put.

    The file is a JSON object from key to value (both the serialized strings),
    so it can be read by people and by tools. A put writes a temporary file in
    the same directory, fsyncs it, renames it over the old one and fsyncs the
    directory: after a crash the file holds either the old map or the new one.
    """

    def __init__(self, path: Union[str, os.PathLike[str]]) -> None:
        self.path = Path(path)
        super().__init__(self._load())

    def _load(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConnectError(f"Cannot read offsets file {self.path}: {exc}") from exc
        if not text.strip():  # Kafka also starts empty from an empty file
            return {}
        try:
            entries = json.loads(text)
            if not isinstance(entries, dict):
                raise ValueError("not a JSON object")
            for key, value in entries.items():
                parse_key(key)
                if not isinstance(value, str):
                    raise ValueError(f"the value of {key} is not a string")
                json.loads(value)
        except ValueError as exc:
            raise ConnectError(f"Offsets file {self.path} is corrupt: {exc}") from exc
        return entries

    def _persist(self, entries: dict[str, str]) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(entries, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            os.unlink(temp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
