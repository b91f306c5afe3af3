"""Zigzag varints, as Kafka's record format (and protobuf ``sint``) encodes them.

Both directions run once per record on the clients' hot paths, so besides the
general encoder and decoder there are lookup tables for the one- and two-byte
values that lengths and deltas almost always are: indexing a tuple or list is
far cheaper in CPython than the zigzag arithmetic.
"""

from __future__ import annotations

from caudal.common.errors import CorruptRecordError, InvalidRecordError

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def encode_varint(value: int) -> bytes:
    """Zigzag varint/varlong bytes of a signed 64-bit value."""
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise InvalidRecordError(f"value {value} does not fit a 64-bit varlong")
    zz = ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while zz > 0x7F:
        out.append((zz & 0x7F) | 0x80)
        zz >>= 7
    out.append(zz)
    return bytes(out)


SMALL_CACHE_SIZE = 8192
ENCODED_SMALL: tuple[bytes, ...] = tuple(
    bytes((i << 1,)) if i < 64 else bytes(((i << 1) & 0x7F | 0x80, i >> 6)) for i in range(SMALL_CACHE_SIZE)
)
"""Encoded bytes of 0 .. SMALL_CACHE_SIZE-1 (at most two bytes each): lengths, small
deltas. Index with a non-negative int; use ``encode_varint`` above the table."""
NULL_LENGTH = encode_varint(-1)


def decode_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the zigzag varint at ``pos``; IndexError past the end."""
    shift = 0
    result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise CorruptRecordError(f"varint longer than 10 bytes at position {pos}")


def size_of_varint(value: int) -> int:
    zz = (value << 1) ^ (value >> 63)
    size = 1
    while zz > 0x7F:
        zz >>= 7
        size += 1
    return size


DECODED_SMALL: list[int] = [(z >> 1) ^ -(z & 1) for z in range(128)]
DECODED_SMALL += [(z >> 1) ^ -(z & 1) for z in range(1 << 14)]
"""Decoded value of a one- or two-byte varint, indexed by its bytes b0 (and b1): one
byte b0 < 0x80 at index b0; two bytes b0 >= 0x80, b1 < 0x80 at index b0 + (b1 << 7),
which is 128 + the 14-bit zigzag value. A list, because CPython indexes lists of ints
much faster than it evaluates the zigzag arithmetic."""
