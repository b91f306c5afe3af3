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

    record: length varint | attributes int8 | timestampDelta varlong
            | offsetDelta varint | keyLength varint (-1 = null) | key
            | valueLength varint (-1 = null) | value | headerCount varint
            | headers: keyLength varint, utf-8 key, valueLength varint (-1 = null), value

Varints are zigzag-encoded (protobuf ``sint``). Attributes: bits 0-2 codec, bit 3
timestamp type (1 = LogAppendTime), bit 4 transactional, bit 5 control batch.

This module is pure (no I/O, no clocks) and safe to call from any thread. The encoder
and decoder loops are written for CPython speed (precomputed varint tables, local
names, inline one- and two-byte varints) because they run once per record on the
clients' hot paths.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from crc32c import crc32c

from caudal.common.compression import CompressionType, compress, decompress
from caudal.common.varint import DECODED_SMALL as _VARINT_VALUE
from caudal.common.varint import ENCODED_SMALL as _VARINT
from caudal.common.varint import NULL_LENGTH as _NULL_LENGTH
from caudal.common.varint import SMALL_CACHE_SIZE as _VARINT_CACHE_SIZE
from caudal.common.varint import decode_varint as _decode_varint
from caudal.common.varint import encode_varint as _encode_varint
from caudal.common.varint import size_of_varint as _size_of_varint
from caudal.common.errors import (
    CorruptRecordError,
    InvalidRecordError,
    UnsupportedCompressionTypeError,
)

__all__ = [
    "BATCH_OVERHEAD", "MAGIC", "NO_PARTITION_LEADER_EPOCH", "NO_PRODUCER_ID", "NO_SEQUENCE",
    "TIMESTAMP_CREATE_TIME", "TIMESTAMP_LOG_APPEND_TIME", "BatchBuilder", "BatchHeader", "Record",
    "assign_offsets", "build_batch", "build_batch_from_records", "decode_all", "decode_batch_into", "decode_records",
    "iter_batches", "parse_header", "record_size_upper_bound", "set_base_offset", "set_log_append_time",
    "validate_batch", "validate_batches", "with_base_offset",
]

Buffer = bytes | bytearray | memoryview
Header = tuple[str, bytes | None]

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

# A varint needs at most 10 bytes (a varlong), plus 5 for the record length, 5 for
# the offset delta and 1 attribute byte: Kafka's DefaultRecord.MAX_RECORD_OVERHEAD.
_MAX_RECORD_OVERHEAD = 21

_new_tuple = tuple.__new__


class Record(NamedTuple):
    """One decoded record: absolute offset and timestamp, key/value (None = null), headers."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[Header] = ()


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


def record_size_upper_bound(key: bytes | None, value: bytes | None, headers: Iterable[Header] = ()) -> int:
    """Upper bound of the encoded size of one record (Kafka's DefaultRecord.sizeInUpperBound)."""
    size = _MAX_RECORD_OVERHEAD
    size += 1 if key is None else _size_of_varint(len(key)) + len(key)
    size += 1 if value is None else _size_of_varint(len(value)) + len(value)
    for h_key, h_value in headers:
        n = len(h_key.encode("utf-8"))
        size += _size_of_varint(n) + n
        size += 1 if h_value is None else _size_of_varint(len(h_value)) + len(h_value)
    return size + 5  # header count varint


def _encode_headers(headers: Iterable[Header]) -> bytes:
    parts = []
    count = 0
    for h_key, h_value in headers:
        count += 1
        raw = h_key.encode("utf-8")
        parts.append(_encode_varint(len(raw)))
        parts.append(raw)
        if h_value is None:
            parts.append(_NULL_LENGTH)
        else:
            parts.append(_encode_varint(len(h_value)))
            parts.append(h_value)
    parts.insert(0, _encode_varint(count))
    return b"".join(parts)


try:
    from caudal.common._record_codec import append_record as _compiled_append_record
    from caudal.common._record_codec import decode_section as _compiled_decode_section
except ImportError:  # built only where a C compiler was found at install time
    _compiled_append_record = _compiled_decode_section = None


def _encode_record(
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[Header],
) -> bytes:
    """One length-prefixed record (offset_delta >= 0). Hot path: small varints come from a table."""
    varint = _VARINT
    ts = varint[timestamp_delta] if 0 <= timestamp_delta < _VARINT_CACHE_SIZE else _encode_varint(timestamp_delta)
    od = varint[offset_delta] if offset_delta < _VARINT_CACHE_SIZE else _encode_varint(offset_delta)
    if key is None:
        key_len = _NULL_LENGTH
        key = b""
    else:
        n = len(key)
        key_len = varint[n] if n < _VARINT_CACHE_SIZE else _encode_varint(n)
    if value is None:
        value_len = _NULL_LENGTH
        value = b""
    else:
        n = len(value)
        value_len = varint[n] if n < _VARINT_CACHE_SIZE else _encode_varint(n)
    body = b"".join((b"\x00", ts, od, key_len, key, value_len, value, _encode_headers(headers) if headers else b"\x00"))
    n = len(body)
    return b"".join((varint[n] if n < _VARINT_CACHE_SIZE else _encode_varint(n), body))


def _append_record(buf: bytearray, offset_delta: int, timestamp_delta: int, key: bytes | None, value: bytes | None) -> None:
    buf += _encode_record(offset_delta, timestamp_delta, key, value, ())


append_record = _append_record if _compiled_append_record is None else _compiled_append_record
"""Appends one header-less record to a batch being built: in C when the module was built
(about three times as fast as encoding it in Python), else through ``_encode_record``."""


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
            self._buf += _encode_record(delta, timestamp_delta, key, value, headers)
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
        parts.append(_encode_record(delta, timestamp - base_timestamp, key, value, headers))
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


def _decode_headers(data: bytes, pos: int) -> tuple[tuple[Header, ...], int]:
    count, pos = _decode_varint(data, pos)
    if count < 0:
        raise CorruptRecordError(f"negative record header count {count}")
    headers = []
    for _ in range(count):
        n, pos = _decode_varint(data, pos)
        if n < 0:
            raise CorruptRecordError(f"negative record header key length {n}")
        h_key = data[pos : pos + n].decode("utf-8")
        pos += n
        n, pos = _decode_varint(data, pos)
        if n >= 0:
            h_value = data[pos : pos + n]
            pos += n
        elif n == -1:
            h_value = None
        else:
            raise CorruptRecordError(f"invalid record header value length {n}")
        headers.append((h_key, h_value))
    return tuple(headers), pos


def _decode_section(
    records: list,
    data: bytes,
    pos: int,
    end: int,
    count: int,
    base_offset: int,
    base_timestamp: int,
    record_type: type = Record,
    prefix: tuple = (),
) -> None:
    """Append the ``count`` records of data[pos:end] to ``records``. The consumer's hot loop.

    Varints of one or two bytes (-8192..8191: deltas, null markers, lengths of small
    keys, values and records) are decoded inline by table lookup; longer ones go
    through ``_decode_varint``. Records without headers share one empty tuple.
    """
    append = records.append
    new = _new_tuple
    read_varint = _decode_varint
    table = _VARINT_VALUE
    no_headers: tuple[Header, ...] = ()
    try:
        for _ in range(count):
            # length
            b = data[pos]
            if b < 0x80:
                length = table[b]
                pos += 1
            else:
                c = data[pos + 1]
                if c < 0x80:
                    length = table[b + (c << 7)]
                    pos += 2
                else:
                    length, pos = read_varint(data, pos)
            record_end = pos + length
            # attributes (unused, skipped), then timestampDelta
            b = data[pos + 1]
            if b < 0x80:
                timestamp_delta = table[b]
                pos += 2
            else:
                c = data[pos + 2]
                if c < 0x80:
                    timestamp_delta = table[b + (c << 7)]
                    pos += 3
                else:
                    timestamp_delta, pos = read_varint(data, pos + 1)
            # offsetDelta
            b = data[pos]
            if b < 0x80:
                offset_delta = table[b]
                pos += 1
            else:
                c = data[pos + 1]
                if c < 0x80:
                    offset_delta = table[b + (c << 7)]
                    pos += 2
                else:
                    offset_delta, pos = read_varint(data, pos)
            # key (length -1 is null)
            b = data[pos]
            if b < 0x80:
                n = table[b]
                pos += 1
            else:
                c = data[pos + 1]
                if c < 0x80:
                    n = table[b + (c << 7)]
                    pos += 2
                else:
                    n, pos = read_varint(data, pos)
            if n >= 0:
                key = data[pos : pos + n]
                pos += n
            elif n == -1:
                key = None
            else:
                raise CorruptRecordError(f"invalid record key length {n}")
            # value (length -1 is null: a tombstone)
            b = data[pos]
            if b < 0x80:
                n = table[b]
                pos += 1
            else:
                c = data[pos + 1]
                if c < 0x80:
                    n = table[b + (c << 7)]
                    pos += 2
                else:
                    n, pos = read_varint(data, pos)
            if n >= 0:
                value = data[pos : pos + n]
                pos += n
            elif n == -1:
                value = None
            else:
                raise CorruptRecordError(f"invalid record value length {n}")
            # headers
            if data[pos] == 0:
                headers = no_headers
                pos += 1
            else:
                headers, pos = _decode_headers(data, pos)
            if pos != record_end:
                raise CorruptRecordError(f"record length {length} does not match its contents")
            offset = base_offset + offset_delta
            append(new(record_type, (*prefix, offset, base_timestamp + timestamp_delta, key, value, headers)))
    except IndexError:
        raise CorruptRecordError("record data ends before the batch's record count is reached") from None
    except UnicodeDecodeError as exc:
        raise CorruptRecordError(f"record header key is not UTF-8: {exc}") from None
    if pos != end:
        raise CorruptRecordError(f"{end - pos} bytes left over after the batch's {count} records")


def _decode_section_compiled(
    records: list,
    data: bytes,
    pos: int,
    end: int,
    count: int,
    base_offset: int,
    base_timestamp: int,
    record_type: type = Record,
    prefix: tuple = (),
) -> None:
    """``_decode_section`` in C (``_record_codec.c``): its ValueErrors are corrupt batches."""
    try:
        _compiled_decode_section(records, data, pos, end, count, base_offset, base_timestamp, record_type, prefix)
    except ValueError as exc:
        raise CorruptRecordError(str(exc)) from None


decode_section = _decode_section if _compiled_decode_section is None else _decode_section_compiled
"""The records loop every decoder uses: the compiled one when it was built, else the Python one.

The compiled loop decodes about four times as many records a second and leaves records out of the cyclic
garbage collector's lists (they can hold no cycles), which matters most to
consumers keeping many records alive."""


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
