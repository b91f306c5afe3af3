"""Kafka RecordBatch v2 (magic 2): the one byte format records travel in.

The producer encodes a batch once (``BatchBuilder``); the broker only checks framing
and the CRC-32C (``validate_batches``) and rewrites the 8-byte base offset and the
leader epoch in place (``set_base_offset`` / ``assign_offsets``), which the CRC does
not cover, so no record is ever decoded or re-encoded on the broker's hot path; the
consumer decodes (``decode_records`` / ``decode_all``). The bytes are exactly Kafka's,
so batches written by Java or kafka-python clients are valid here and vice versa.

Layout (big-endian; ``BATCH_OVERHEAD`` = 61 header bytes)::

    baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8
    crc uint32 (CRC-32C of attributes..end) | attributes int16 | lastOffsetDelta int32
    baseTimestamp int64 | maxTimestamp int64 | producerId int64 | producerEpoch int16
    baseSequence int32 | recordCount int32 | records (compressed as a whole if codec != 0)

Attributes: bits 0-2 codec, bit 3 timestamp type (1 = LogAppendTime), bit 4
transactional, bit 5 control batch. Each record's own bytes, and the per-record
loops that write and read them, are in :mod:`caudal.common.record_codec`.

This module is pure (no I/O, no clocks) and safe to call from any thread.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from crc32c import crc32c

from caudal.common.compression import CompressionType, compress, decompress
from caudal.common.errors import (
    CorruptRecordError,
    InvalidRecordError,
    UnsupportedCompressionTypeError,
)
from caudal.common.record_codec import Header, Record, append_record, decode_section, encode_record, record_size_upper_bound

__all__ = [
    "BATCH_OVERHEAD", "MAGIC", "NO_PARTITION_LEADER_EPOCH", "NO_PRODUCER_ID", "NO_SEQUENCE",
    "TIMESTAMP_CREATE_TIME", "TIMESTAMP_LOG_APPEND_TIME", "BatchBuilder", "BatchHeader", "Record",
    "assign_offsets", "build_batch", "build_batch_from_records", "decode_all", "decode_batch_into", "decode_records",
    "iter_batches", "parse_header", "record_size_upper_bound", "set_base_offset", "set_log_append_time",
    "validate_batch", "validate_batches", "with_base_offset",
]

Buffer = bytes | bytearray | memoryview

MAGIC = 2
BATCH_OVERHEAD = 61
NO_PRODUCER_ID = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1
TIMESTAMP_CREATE_TIME = 0
TIMESTAMP_LOG_APPEND_TIME = 1

_HEADER = struct.Struct(">qiibIhiqqqhii")
# Everything the CRC covers in the header: attributes .. recordCount.
_CRC_PART = struct.Struct(">hiqqqhii")
# baseOffset .. crc, written once the CRC is known.
_PREFIX = struct.Struct(">qiibI")
_unpack_header = _HEADER.unpack_from
_pack_int64_into = struct.Struct(">q").pack_into
_pack_int32_into = struct.Struct(">i").pack_into
_pack_int16_into = struct.Struct(">h").pack_into
_pack_uint32_into = struct.Struct(">I").pack_into
_pack_int64 = struct.Struct(">q").pack
_pack_int32 = struct.Struct(">i").pack

_LOG_OVERHEAD = 12  # baseOffset + batchLength: bytes not counted in batchLength
_MIN_BATCH_LENGTH = BATCH_OVERHEAD - _LOG_OVERHEAD
_CRC_OFFSET = 17
_ATTRIBUTES_OFFSET = 21
_MAX_TIMESTAMP_OFFSET = 35
_LEADER_EPOCH_OFFSET = 12

_CODEC_MASK = 0x07
_TIMESTAMP_TYPE_MASK = 0x08
_TRANSACTIONAL_MASK = 0x10
_CONTROL_MASK = 0x20
_MAX_CODEC = max(CompressionType)

_INT32_MAX = (1 << 31) - 1


_new_tuple = tuple.__new__


class BatchHeader(NamedTuple):
    """The 61-byte RecordBatch v2 header, field for field (see the module docstring)."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Total bytes of the batch, header included."""
        return self.batch_length + _LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> CompressionType:
        """The codec; UnsupportedCompressionTypeError for ids Kafka does not define."""
        return _codec(self.attributes & _CODEC_MASK)

    @property
    def timestamp_type(self) -> int:
        """TIMESTAMP_CREATE_TIME (0) or TIMESTAMP_LOG_APPEND_TIME (1)."""
        return (self.attributes & _TIMESTAMP_TYPE_MASK) >> 3

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & _TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & _CONTROL_MASK)


def _codec(codec_id: int) -> CompressionType:
    if codec_id > _MAX_CODEC:
        raise UnsupportedCompressionTypeError(f"unknown compression codec id {codec_id} in batch attributes")
    return CompressionType(codec_id)


# ---------------------------------------------------------------------------- framing


def parse_header(buf: Buffer, pos: int = 0) -> BatchHeader:
    """The header of the batch at ``pos``; checks framing and magic, not the CRC.

    Raises CorruptRecordError when fewer than 61 bytes remain, the magic is not 2, or
    batchLength is too small or runs past the end of ``buf``.
    """
    remaining = len(buf) - pos
    if pos < 0 or remaining < BATCH_OVERHEAD:
        raise CorruptRecordError(
            f"truncated batch at position {pos}: {max(remaining, 0)} bytes, a header needs {BATCH_OVERHEAD}"
        )
    header: BatchHeader = _new_tuple(BatchHeader, _unpack_header(buf, pos))
    if header[3] != MAGIC:
        raise CorruptRecordError(f"unsupported record batch magic {header[3]} at position {pos} (expected {MAGIC})")
    batch_length = header[1]
    if batch_length < _MIN_BATCH_LENGTH:
        raise CorruptRecordError(
            f"batch length {batch_length} at position {pos} is below the minimum {_MIN_BATCH_LENGTH}"
        )
    if batch_length + _LOG_OVERHEAD > remaining:
        raise CorruptRecordError(
            f"truncated batch at position {pos}: needs {batch_length + _LOG_OVERHEAD} bytes, {remaining} present"
        )
    return header


def _check_crc(buf: Buffer, pos: int, header: BatchHeader) -> None:
    computed = crc32c(memoryview(buf)[pos + _ATTRIBUTES_OFFSET : pos + _LOG_OVERHEAD + header[1]])
    if computed != header[4]:
        raise CorruptRecordError(
            f"CRC-32C mismatch in batch at position {pos}: stored 0x{header[4]:08x}, computed 0x{computed:08x}"
        )


def validate_batch(buf: Buffer, pos: int = 0) -> BatchHeader:
    """Check the batch at ``pos`` completely without decoding records; return its header.

    Framing and magic (CorruptRecordError), then the CRC-32C over attributes..end
    (CorruptRecordError), then the codec id (UnsupportedCompressionTypeError), then
    the record count and lastOffsetDelta (InvalidRecordError: at least one record, and
    lastOffsetDelta >= recordCount - 1 so offsets assigned from it cannot overlap).
    """
    header = parse_header(buf, pos)
    _check_crc(buf, pos, header)
    if header[5] & _CODEC_MASK > _MAX_CODEC:
        raise UnsupportedCompressionTypeError(
            f"unknown compression codec id {header[5] & _CODEC_MASK} in batch at position {pos}"
        )
    count = header[12]
    if count < 1:
        raise InvalidRecordError(f"batch at position {pos} has record count {count}; at least 1 is required")
    if header[6] < count - 1:
        raise InvalidRecordError(
            f"batch at position {pos} has lastOffsetDelta {header[6]} for {count} records"
        )
    return header


def iter_batches(buf: Buffer) -> Iterator[tuple[int, BatchHeader]]:
    """Walk concatenated batches, yielding (start position, header); framing only, no CRC.

    A truncated trailing batch, or trailing garbage, raises CorruptRecordError.
    """
    pos = 0
    end = len(buf)
    while pos < end:
        header = parse_header(buf, pos)
        yield pos, header
        pos += header[1] + _LOG_OVERHEAD


def validate_batches(buf: Buffer) -> list[BatchHeader]:
    """The broker's single check of a Produce payload: one or more complete, valid batches.

    Every batch gets ``validate_batch`` (framing, magic 2, CRC-32C, codec, count); an
    empty payload is an InvalidRecordError. No record is decoded.
    """
    end = len(buf)
    if end == 0:
        raise InvalidRecordError("empty record set: a produce payload needs at least one batch")
    headers = []
    pos = 0
    while pos < end:
        header = validate_batch(buf, pos)
        headers.append(header)
        pos += header[1] + _LOG_OVERHEAD
    return headers


def set_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int, leader_epoch: int | None = None) -> None:
    """Rewrite, in place, the base offset (and leader epoch) of the batch at ``pos``.

    Neither field is covered by the CRC, so the batch stays valid.
    """
    _pack_int64_into(buf, pos, base_offset)
    if leader_epoch is not None:
        _pack_int32_into(buf, pos + _LEADER_EPOCH_OFFSET, leader_epoch)


def with_base_offset(buf: Buffer, base_offset: int, partition_leader_epoch: int | None = None) -> bytes:
    """A copy of the single batch ``buf`` with its base offset (and leader epoch) rewritten."""
    if len(buf) < BATCH_OVERHEAD:
        raise CorruptRecordError(f"truncated batch: {len(buf)} bytes, a header needs {BATCH_OVERHEAD}")
    view = memoryview(buf)
    if partition_leader_epoch is None:
        return b"".join((_pack_int64(base_offset), view[8:]))
    return b"".join((_pack_int64(base_offset), view[8:12], _pack_int32(partition_leader_epoch), view[16:]))


def set_log_append_time(buf: bytearray | memoryview, pos: int, timestamp: int) -> None:
    """Stamp the batch at ``pos`` as LogAppendTime ``timestamp`` in place, recomputing its CRC.

    What Kafka's broker does for topics with ``message.timestamp.type=LogAppendTime``:
    attribute bit 3 set and maxTimestamp = the append time, which every record then
    reports. One CRC pass over the batch; records are not touched.
    """
    header = parse_header(buf, pos)
    _pack_int16_into(buf, pos + _ATTRIBUTES_OFFSET, header[5] | _TIMESTAMP_TYPE_MASK)
    _pack_int64_into(buf, pos + _MAX_TIMESTAMP_OFFSET, timestamp)
    end = pos + _LOG_OVERHEAD + header[1]
    _pack_uint32_into(buf, pos + _CRC_OFFSET, crc32c(memoryview(buf)[pos + _ATTRIBUTES_OFFSET : end]))


def assign_offsets(buf: Buffer, base_offset: int, partition_leader_epoch: int | None = None) -> tuple[bytes, int]:
    """Give every batch of a concatenated payload consecutive offsets from ``base_offset``.

    Returns the rewritten copy and the next offset (the log end offset after appending it).
    Each batch keeps its own offset span (lastOffsetDelta + 1). Framing is checked, not CRCs.
    """
    out = bytearray(buf)
    next_offset = base_offset
    for pos, header in iter_batches(out):
        set_base_offset(out, pos, next_offset, partition_leader_epoch)
        next_offset += header[6] + 1
    return bytes(out), next_offset


def _assemble(
    records: bytes | bytearray,
    compression: int,
    attributes: int,
    last_offset_delta: int,
    timestamps: tuple[int, int],
    producer: tuple[int, int, int],
    record_count: int,
    base_offset: int,
    partition_leader_epoch: int,
) -> bytes:
    """Compress the records section, then write header and CRC around it.

    ``timestamps`` is (base, max); ``producer`` is (producer id, epoch, base sequence).
    """
    if compression:
        records = compress(compression, records)
    try:
        crc_part = _CRC_PART.pack(
            (attributes & ~_CODEC_MASK) | compression, last_offset_delta, *timestamps, *producer, record_count
        )
        crc = crc32c(records, crc32c(crc_part))
        prefix = _PREFIX.pack(base_offset, _MIN_BATCH_LENGTH + len(records), partition_leader_epoch, MAGIC, crc)
    except struct.error as exc:
        raise InvalidRecordError(f"batch header field out of range: {exc}") from None
    return b"".join((prefix, crc_part, records))


# ---------------------------------------------------------------------------- encoding


class BatchBuilder:
    """Accumulates one producer batch and encodes it once with ``build()``.

    Owned by a single producer task (not thread-safe). Records are encoded as they are
    appended into one uncompressed bytearray, so ``size_in_bytes()`` is exact for the
    uncompressed batch and costs nothing; compression and the CRC happen in ``build()``.
    Offset deltas are 0, 1, 2...; the base timestamp is the first record's timestamp.
    """

    __slots__ = (
        "_compression", "_producer", "_attributes", "_base_offset", "_partition_leader_epoch",
        "_buf", "_count", "_base_timestamp", "_max_timestamp",
    )

    def __init__(
        self,
        compression: int = CompressionType.NONE,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = -1,
        base_sequence: int = NO_SEQUENCE,
        is_transactional: bool = False,
        base_offset: int = 0,
        partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    ) -> None:
        self._compression = _codec(int(compression))
        self._producer = (producer_id, producer_epoch, base_sequence)
        self._attributes = _TRANSACTIONAL_MASK if is_transactional else 0
        self._base_offset = base_offset
        self._partition_leader_epoch = partition_leader_epoch
        self._buf = bytearray()
        self._count = 0
        self._base_timestamp = 0
        self._max_timestamp = 0

    @property
    def record_count(self) -> int:
        return self._count

    def set_producer_state(self, producer_id: int, producer_epoch: int, base_sequence: int) -> None:
        """Stamp the idempotent producer's id, epoch and first sequence before ``build()``.

        The producer numbers a batch when it first sends it, not when it opens it,
        so that sequences follow the order batches actually leave in.
        """
        self._producer = (producer_id, producer_epoch, base_sequence)

    @property
    def compression(self) -> CompressionType:
        return self._compression

    def size_in_bytes(self) -> int:
        """Exact size of the batch if built uncompressed now (an upper estimate when compressed)."""
        return BATCH_OVERHEAD + len(self._buf)

    def append(self, timestamp: int, key: bytes | None, value: bytes | None, headers: Iterable[Header] = ()) -> int:
        """Add a record; returns its offset delta (its index in the batch)."""
        delta = self._count
        if delta:
            if timestamp > self._max_timestamp:
                self._max_timestamp = timestamp
            timestamp_delta = timestamp - self._base_timestamp
        else:
            self._base_timestamp = self._max_timestamp = timestamp
            timestamp_delta = 0
        if headers:
            self._buf += encode_record(delta, timestamp_delta, key, value, headers)
        else:
            try:
                append_record(self._buf, delta, timestamp_delta, key, value)
            except OverflowError:  # the compiled loop's int64 arguments
                raise InvalidRecordError(f"value {timestamp_delta} does not fit a 64-bit varlong") from None
        self._count = delta + 1
        return delta

    def build(self) -> bytes:
        """The complete batch: records compressed as a whole, header and CRC-32C written."""
        count = self._count
        if not count:
            raise InvalidRecordError("cannot build a record batch with no records")
        return _assemble(
            self._buf,
            self._compression,
            self._attributes,
            count - 1,
            (self._base_timestamp, self._max_timestamp),
            self._producer,
            count,
            self._base_offset,
            self._partition_leader_epoch,
        )


def build_batch(
    records: Iterable[tuple[int, bytes | None, bytes | None, Iterable[Header]]],
    compression: int = CompressionType.NONE,
    base_offset: int = 0,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = NO_SEQUENCE,
    is_transactional: bool = False,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
) -> bytes:
    """One batch of (timestamp, key, value, headers) records with consecutive offsets."""
    builder = BatchBuilder(
        compression, producer_id, producer_epoch, base_sequence, is_transactional, base_offset, partition_leader_epoch
    )
    append = builder.append
    for timestamp, key, value, headers in records:
        append(timestamp, key, value, headers)
    return builder.build()


def build_batch_from_records(
    records: Sequence[Record],
    base_offset: int | None = None,
    compression: int = CompressionType.NONE,
    *,
    attributes: int = 0,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = NO_SEQUENCE,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    last_offset: int | None = None,
) -> bytes:
    """A batch holding ``records`` at their own absolute offsets (gaps preserved).

    For the log compactor: ``base_offset`` defaults to the first record's offset; pass
    the original batch's base offset, ``attributes`` (timestamp type, transactional and
    control bits are kept; the codec bits come from ``compression``) and producer fields
    to keep them, and ``last_offset`` to keep the original lastOffsetDelta as Kafka does
    so the producer's sequence range survives cleaning. Record timestamps are written
    as given; the batch's max timestamp is their maximum.
    """
    if not records:
        raise InvalidRecordError("cannot build a record batch with no records")
    first = records[0]
    if base_offset is None:
        base_offset = first.offset
    base_timestamp = first.timestamp
    max_timestamp = base_timestamp
    parts = []
    previous = -1
    for offset, timestamp, key, value, headers in records:
        delta = offset - base_offset
        if delta <= previous or delta > _INT32_MAX:
            raise InvalidRecordError(
                f"record offset {offset} is not increasing within a batch based at {base_offset}"
            )
        previous = delta
        if timestamp > max_timestamp:
            max_timestamp = timestamp
        parts.append(encode_record(delta, timestamp - base_timestamp, key, value, headers))
    last_delta = previous if last_offset is None else last_offset - base_offset
    if not previous <= last_delta <= _INT32_MAX:
        raise InvalidRecordError(f"last offset {last_offset} is before the batch's last record")
    return _assemble(
        b"".join(parts),
        _codec(int(compression)),
        attributes,
        last_delta,
        (base_timestamp, max_timestamp),
        (producer_id, producer_epoch, base_sequence),
        len(parts),
        base_offset,
        partition_leader_epoch,
    )


# ---------------------------------------------------------------------------- decoding


def decode_batch_into(
    records: list, buf: Buffer, pos: int = 0, *, check_crc: bool = True, record_type: type = Record, prefix: tuple = ()
) -> BatchHeader:
    """Append the records of the batch at ``pos`` to ``records``; return its header.

    Each record is ``record_type(*prefix, offset, timestamp, key, value, headers)``, so a
    consumer can build its own record tuples (with topic and partition in ``prefix``)
    in the decoding loop itself instead of copying every decoded record once more.
    """
    header = parse_header(buf, pos)
    start = pos + BATCH_OVERHEAD
    end = pos + _LOG_OVERHEAD + header[1]
    if check_crc:
        _check_crc(buf, pos, header)
    count = header[12]
    if count < 0:
        raise CorruptRecordError(f"negative record count {count} in batch at position {pos}")
    attributes = header[5]
    codec = attributes & _CODEC_MASK
    if codec:
        data = decompress(_codec(codec), memoryview(buf)[start:end])
        start = 0
        end = len(data)
    elif type(buf) is bytes:
        data = buf
    else:
        data = bytes(buf[start:end])
        start = 0
        end = len(data)
    first = len(records)
    decode_section(records, data, start, end, count, header[0], header[7], record_type, prefix)
    if attributes & _TIMESTAMP_TYPE_MASK:  # LogAppendTime: the broker's time for every record
        append_time = header[8]
        records[first:] = [r._replace(timestamp=append_time) for r in records[first:]]
    return header


def decode_records(buf: Buffer, pos: int = 0, *, check_crc: bool = True) -> tuple[BatchHeader, list[Record]]:
    """Header and records of the batch at ``pos``, decompressed, with absolute offsets.

    Timestamps are baseTimestamp + delta, or maxTimestamp for every record of a
    LogAppendTime batch. ``check_crc`` verifies the CRC-32C first (Kafka's check.crcs).
    A batch with zero records (kept by compaction) decodes to an empty list.
    """
    records: list[Record] = []
    header = decode_batch_into(records, buf, pos, check_crc=check_crc)
    return header, records


def decode_all(buf: Buffer, *, check_crc: bool = True) -> list[Record]:
    """Every record of concatenated batches, in order (see ``decode_records``)."""
    if type(buf) is not bytes:
        buf = bytes(buf)
    records: list[Record] = []
    pos = 0
    end = len(buf)
    while pos < end:
        pos += decode_batch_into(records, buf, pos, check_crc=check_crc)[1] + _LOG_OVERHEAD
    return records
