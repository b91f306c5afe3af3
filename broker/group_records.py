"""Codec of the records the group coordinator keeps in ``__consumer_offsets``.

Committed offsets and group metadata are not kept in a side database: they are
records in a compacted internal topic. That gives them the topic's replication
for free, compaction keeps only the latest value per key, and when leadership
of an offsets partition moves, the next coordinator rebuilds its state by
reading that partition from the start. The layout is Apache Kafka's own
(classic, non-flexible encoding, big-endian), so Kafka tooling that decodes
``__consumer_offsets`` can read what caudal writes; caudal reads Kafka's classic
versions (0..3), not the flexible version 4 that newer Kafka can write.

Pure functions only: no I/O, no clocks. A tombstone (a key with a null value,
written when a group or an offset is deleted) is the caller's business.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from caudal.common.errors import CorruptRecordError

OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_TOPIC_PARTITIONS = 50  # Kafka's offsets.topic.num.partitions default

_OFFSET_KEY_VERSION = 1
_GROUP_KEY_VERSION = 2
_OFFSET_VALUE_VERSION = 3
_GROUP_VALUE_VERSION = 3
_INT32_MIN = -(1 << 31)


def coordinator_partition(group_id: str, partitions: int = OFFSETS_TOPIC_PARTITIONS) -> int:
    """The offsets partition, hence the coordinator, that owns ``group_id``.

    Kafka's ``Utils.abs(groupId.hashCode()) % partitions``, reproduced exactly so a
    group lands on the same partition as in Kafka: Java's ``String.hashCode`` runs
    over UTF-16 code units (astral characters count as two surrogates) with int32
    overflow, and ``Utils.abs`` maps ``Integer.MIN_VALUE`` to 0 instead of itself.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be positive, got {partitions}")
    units = group_id.encode("utf-16-be", "surrogatepass")  # Java strings may hold lone surrogates
    h = 0
    for (unit,) in struct.iter_unpack(">H", units):
        h = (31 * h + unit) & 0xFFFFFFFF
    if h >= 1 << 31:
        h -= 1 << 32
    return (0 if h == _INT32_MIN else abs(h)) % partitions


@dataclass(frozen=True)
class OffsetKey:
    """Key of a committed offset: one per (group, topic, partition), so compaction keeps the latest commit."""

    group: str
    topic: str
    partition: int


@dataclass(frozen=True)
class GroupKey:
    """Key of a group's metadata: one per group."""

    group: str


@dataclass(frozen=True)
class CommittedOffset:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = 0
    expire_timestamp: int = -1  # only value version 1 carries it (pre-KIP-211 retention); -1 otherwise


@dataclass(frozen=True)
class StoredMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True)
class StoredGroup:
    protocol_type: str
    generation_id: int
    protocol_name: str | None
    leader: str | None
    current_state_timestamp: int
    members: tuple[StoredMember, ...]


def _string(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > 0x7FFF:
        raise ValueError(f"string of {len(raw)} UTF-8 bytes exceeds Kafka's int16 length prefix")
    return struct.pack(">h", len(raw)) + raw


def _nullable_string(value: str | None) -> bytes:
    return struct.pack(">h", -1) if value is None else _string(value)


def _bytes(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


class _Reader:
    """Cursor over one record, shared by every decoder so all malformed input fails the same way.

    Each failure is a CorruptRecordError naming the record kind and byte offset:
    a coordinator loading a partition must be able to tell a bad record from a bug.
    """

    def __init__(self, data: bytes, kind: str) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._kind = kind

    def _fail(self, problem: str) -> CorruptRecordError:
        return CorruptRecordError(f"{self._kind}: {problem} at byte {self._pos} of {len(self._data)}")

    def _take(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise self._fail(f"truncated, needs {n} more bytes")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def _int(self, fmt: str) -> int:
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]

    def int16(self) -> int:
        return self._int(">h")

    def int32(self) -> int:
        return self._int(">i")

    def int64(self) -> int:
        return self._int(">q")

    def version(self, newest: int) -> int:
        version = self.int16()
        if not 0 <= version <= newest:
            raise self._fail(f"unknown version {version} (known: 0..{newest})")
        return version

    def nullable_string(self) -> str | None:
        length = self.int16()
        if length == -1:
            return None
        if length < 0:
            raise self._fail(f"negative string length {length}")
        raw = self._take(length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._fail(f"string is not UTF-8 ({exc.reason})") from None

    def string(self) -> str:
        value = self.nullable_string()
        if value is None:
            raise self._fail("null where a string is required")
        return value

    def _size(self, what: str) -> int:
        size = self.int32()
        if size < 0:
            raise self._fail(f"negative {what} {size}")
        return size

    def blob(self) -> bytes:
        return self._take(self._size("bytes length"))

    def count(self) -> int:
        return self._size("array count")

    def done(self) -> None:
        """Reject trailing bytes: they mean the record is not the version it claims."""
        if self._pos != len(self._data):
            raise self._fail(f"{len(self._data) - self._pos} trailing bytes")


def encode_key(key: OffsetKey | GroupKey) -> bytes:
    """Offset keys as key version 1, group keys as key version 2 (the version tells them apart)."""
    if isinstance(key, GroupKey):
        return struct.pack(">h", _GROUP_KEY_VERSION) + _string(key.group)
    version = struct.pack(">h", _OFFSET_KEY_VERSION)
    return version + _string(key.group) + _string(key.topic) + struct.pack(">i", key.partition)


def decode_key(data: bytes) -> OffsetKey | GroupKey:
    """Key versions 0 and 1 are offset keys (same layout), version 2 is a group key."""
    r = _Reader(data, "offsets topic key")
    if r.version(_GROUP_KEY_VERSION) == _GROUP_KEY_VERSION:
        key: OffsetKey | GroupKey = GroupKey(r.string())
    else:
        key = OffsetKey(r.string(), r.string(), r.int32())
    r.done()
    return key


def encode_offset(value: CommittedOffset) -> bytes:
    """OffsetCommitValue version 3; refuses an expire timestamp rather than silently dropping it."""
    if value.expire_timestamp != -1:
        raise ValueError("OffsetCommitValue version 3 has no expire timestamp; it must be -1")
    head = struct.pack(">hqi", _OFFSET_VALUE_VERSION, value.offset, value.leader_epoch)
    return head + _string(value.metadata) + struct.pack(">q", value.commit_timestamp)


def decode_offset(data: bytes) -> CommittedOffset:
    """OffsetCommitValue versions 0..3; fields a version lacks take Kafka's defaults (-1)."""
    r = _Reader(data, "offset commit value")
    version = r.version(_OFFSET_VALUE_VERSION)
    value = CommittedOffset(  # keyword arguments evaluate in order, so this reads the fields in wire order
        offset=r.int64(),
        leader_epoch=r.int32() if version >= 3 else -1,
        metadata=r.string(),
        commit_timestamp=r.int64(),
        expire_timestamp=r.int64() if version == 1 else -1,
    )
    r.done()
    return value


def encode_group(value: StoredGroup) -> bytes:
    """GroupMetadataValue version 3 (the newest classic layout: static membership's group_instance_id)."""
    parts = [
        struct.pack(">h", _GROUP_VALUE_VERSION),
        _string(value.protocol_type),
        struct.pack(">i", value.generation_id),
        _nullable_string(value.protocol_name),
        _nullable_string(value.leader),
        struct.pack(">qi", value.current_state_timestamp, len(value.members)),
    ]
    for m in value.members:
        parts += [
            _string(m.member_id),
            _nullable_string(m.group_instance_id),
            _string(m.client_id),
            _string(m.client_host),
            struct.pack(">ii", m.rebalance_timeout_ms, m.session_timeout_ms),
            _bytes(m.subscription),
            _bytes(m.assignment),
        ]
    return b"".join(parts)


def _read_member(r: _Reader, version: int) -> StoredMember:
    member_id = r.string()
    instance_id = r.nullable_string() if version >= 3 else None
    client_id, client_host = r.string(), r.string()
    rebalance_timeout = r.int32() if version >= 1 else None
    session_timeout = r.int32()
    # Version 0 predates a separate rebalance timeout; Kafka falls back to the session timeout.
    if rebalance_timeout is None:
        rebalance_timeout = session_timeout
    return StoredMember(
        member_id, instance_id, client_id, client_host, rebalance_timeout, session_timeout, r.blob(), r.blob()
    )


def decode_group(data: bytes) -> StoredGroup:
    """GroupMetadataValue versions 0..3; v0 lacks rebalance timeouts, v0-1 the state timestamp (-1), v0-2 instance ids."""
    r = _Reader(data, "group metadata value")
    version = r.version(_GROUP_VALUE_VERSION)
    protocol_type, generation_id = r.string(), r.int32()
    protocol_name, leader = r.nullable_string(), r.nullable_string()
    current_state_timestamp = r.int64() if version >= 2 else -1
    members = tuple(_read_member(r, version) for _ in range(r.count()))
    r.done()
    return StoredGroup(protocol_type, generation_id, protocol_name, leader, current_state_timestamp, members)
