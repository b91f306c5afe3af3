"""One record's bytes inside a RecordBatch v2: the per-record loops of the clients.

``record_batch`` frames, checksums and compresses whole batches; this module
encodes one record onto a batch being built and decodes the records section of a
batch. These loops run once per record on the producer's and the consumer's hot
paths, so they are written for CPython speed (precomputed varint tables, local
names, inline one- and two-byte varints), and each has a compiled twin in
``_record_codec.c``, used when pip could build it (a C compiler at install time).
The Python loops are the reference and the fallback; the tests run both.

Record layout (varints are zigzag-encoded, protobuf ``sint``)::

    length varint | attributes int8 | timestampDelta varlong | offsetDelta varint
    | keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
    | headerCount varint | headers: keyLength varint, utf-8 key, valueLength varint (-1 = null), value

Pure (no I/O, no clocks) and safe to call from any thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from caudal.common.errors import CorruptRecordError
from caudal.common.varint import DECODED_SMALL as _VARINT_VALUE
from caudal.common.varint import ENCODED_SMALL as _VARINT
from caudal.common.varint import NULL_LENGTH as _NULL_LENGTH
from caudal.common.varint import SMALL_CACHE_SIZE as _VARINT_CACHE_SIZE
from caudal.common.varint import decode_varint as _decode_varint
from caudal.common.varint import encode_varint as _encode_varint
from caudal.common.varint import size_of_varint as _size_of_varint

try:
    from caudal.common._record_codec import append_record as _compiled_append_record
    from caudal.common._record_codec import decode_section as _compiled_decode_section
except ImportError:  # built only where a C compiler was found at install time
    _compiled_append_record = _compiled_decode_section = None

Header = tuple[str, bytes | None]

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


# ---------------------------------------------------------------------------- encoding


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


def encode_record(
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
    buf += encode_record(offset_delta, timestamp_delta, key, value, ())


append_record = _append_record if _compiled_append_record is None else _compiled_append_record
"""Appends one header-less record to a batch being built: in C when the module was built
(about three times as fast as encoding it in Python), else through ``encode_record``."""


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
