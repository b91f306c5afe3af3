"""Kafka's compression codecs, byte-compatible with the Java client.

A RecordBatch v2 names its codec in attribute bits 0-2 and compresses the whole
records section as one unit. Producers compress, consumers decompress; the broker
stores and serves the compressed bytes untouched, so what matters here is that our
bytes are exactly what Java Kafka writes and reads:

- gzip: a standard gzip member (RFC 1952); several members are accepted.
- snappy: the xerial ``SnappyOutputStream`` framing Java Kafka writes, i.e. the
  16-byte header ``\\x82SNAPPY\\x00`` + version 1 + compatible version 1 (big-endian
  int32s), then for each 32 KiB of input a big-endian int32 length and a raw snappy
  block. Decompression also accepts plain raw snappy (what some non-Java clients
  send, and what xerial's reader falls back to) and concatenated xerial streams.
- lz4: the LZ4 frame format as Kafka's ``Lz4BlockOutputStream`` writes it: version 1,
  independent 64 KiB blocks, no checksums, no content size. The Java reader rejects
  linked-block frames (cramjam's default frame encoder produces those), so the frame
  is assembled here from raw LZ4 blocks. Decompression accepts any valid LZ4 frame.
- zstd: a standard zstd frame (Kafka's default level 3); several frames are accepted.

All work is done by ``cramjam`` (Rust, releases the GIL); this module only frames.
"""

from __future__ import annotations

import struct
from enum import IntEnum

import cramjam

from caudal.common.errors import CorruptRecordError, UnsupportedCompressionTypeError

__all__ = ["CompressionType", "compress", "decompress"]


class CompressionType(IntEnum):
    """Kafka's codec ids, as stored in RecordBatch attribute bits 0-2."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4

    @classmethod
    def from_name(cls, name: str | None) -> CompressionType:
        """The codec for a Kafka ``compression.type`` value ("none", "gzip", "snappy", "lz4", "zstd")."""
        key = "none" if name is None else name.strip().lower()
        try:
            return _BY_NAME[key]
        except KeyError:
            raise UnsupportedCompressionTypeError(f"unknown compression type {name!r}") from None

    @property
    def kafka_name(self) -> str:
        """The lower-case name Kafka uses in ``compression.type``."""
        return self.name.lower()


_BY_NAME: dict[str, CompressionType] = {c.name.lower(): c for c in CompressionType}

# xerial snappy-java framing (SnappyCodec.MAGIC_HEADER, version 1, compatible 1).
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_HEADER_LEN = len(_XERIAL_HEADER)
_XERIAL_BLOCK = 32 * 1024  # SnappyOutputStream.DEFAULT_BLOCK_SIZE

# LZ4 frame: magic 0x184D2204 (LE), FLG 0x60 (version 1, independent blocks, no
# checksums, no content size), BD 0x40 (64 KiB max block), header checksum 0x82.
_LZ4_FRAME_HEADER = b"\x04\x22\x4d\x18\x60\x40\x82"
_LZ4_BLOCK = 64 * 1024
_LZ4_UNCOMPRESSED = 0x80000000
_LZ4_END_MARK = b"\x00\x00\x00\x00"

_ZSTD_LEVEL = 3  # zstd-jni / Kafka default
_GZIP_LEVEL = 6  # java.util.zip default (Deflater.DEFAULT_COMPRESSION)

_pack_be32 = struct.Struct(">i").pack
_pack_le32 = struct.Struct("<I").pack
_unpack_be32_from = struct.Struct(">i").unpack_from


def compress(codec: int, data: bytes) -> bytes:
    """Compress ``data`` with ``codec`` exactly as the Java client would frame it."""
    if codec == CompressionType.NONE:
        return bytes(data)
    if codec == CompressionType.LZ4:
        return _lz4_compress(data)
    if codec == CompressionType.ZSTD:
        return bytes(cramjam.zstd.compress(data, level=_ZSTD_LEVEL))
    if codec == CompressionType.SNAPPY:
        return _snappy_compress(data)
    if codec == CompressionType.GZIP:
        return bytes(cramjam.gzip.compress(data, level=_GZIP_LEVEL))
    raise UnsupportedCompressionTypeError(f"unknown compression codec id {codec}")


def decompress(codec: int, data: bytes) -> bytes:
    """Decompress ``data`` written with ``codec``; malformed input raises CorruptRecordError."""
    if codec == CompressionType.NONE:
        return bytes(data)
    try:
        if codec == CompressionType.LZ4:
            return bytes(cramjam.lz4.decompress(data))
        if codec == CompressionType.ZSTD:
            return bytes(cramjam.zstd.decompress(data))
        if codec == CompressionType.SNAPPY:
            return _snappy_decompress(data)
        if codec == CompressionType.GZIP:
            return bytes(cramjam.gzip.decompress(data))
    except cramjam.DecompressionError as exc:
        name = CompressionType(codec).kafka_name
        raise CorruptRecordError(f"cannot decompress {name} data: {exc}") from None
    raise UnsupportedCompressionTypeError(f"unknown compression codec id {codec}")


def _snappy_compress(data: bytes) -> bytes:
    view = memoryview(data)
    parts = [_XERIAL_HEADER]
    append = parts.append
    compress_raw = cramjam.snappy.compress_raw
    for start in range(0, len(view), _XERIAL_BLOCK):
        block = compress_raw(view[start : start + _XERIAL_BLOCK])
        append(_pack_be32(len(block)))
        append(bytes(block))
    return b"".join(parts)


def _snappy_decompress(data: bytes) -> bytes:
    view = memoryview(data)
    if len(view) < _XERIAL_HEADER_LEN or view[:8] != _XERIAL_MAGIC:
        return bytes(cramjam.snappy.decompress_raw(view))
    decompress_raw = cramjam.snappy.decompress_raw
    parts = []
    pos = _XERIAL_HEADER_LEN
    end = len(view)
    while pos < end:
        if view[pos : pos + 8] == _XERIAL_MAGIC:
            # snappy-java's reader accepts concatenated streams: skip the repeated header.
            pos += _XERIAL_HEADER_LEN
            continue
        if pos + 4 > end:
            raise CorruptRecordError("truncated xerial snappy block length")
        (length,) = _unpack_be32_from(view, pos)
        pos += 4
        if length < 0 or pos + length > end:
            raise CorruptRecordError(f"xerial snappy block of {length} bytes overruns the data")
        parts.append(bytes(decompress_raw(view[pos : pos + length])))
        pos += length
    return b"".join(parts)


def _lz4_compress(data: bytes) -> bytes:
    view = memoryview(data)
    parts = [_LZ4_FRAME_HEADER]
    append = parts.append
    compress_block = cramjam.lz4.compress_block
    for start in range(0, len(view), _LZ4_BLOCK):
        chunk = view[start : start + _LZ4_BLOCK]
        block = compress_block(chunk, store_size=False)
        if len(block) < len(chunk):
            append(_pack_le32(len(block)))
            append(bytes(block))
        else:  # incompressible: store as-is, like Lz4BlockOutputStream
            append(_pack_le32(len(chunk) | _LZ4_UNCOMPRESSED))
            append(chunk.tobytes())
    append(_LZ4_END_MARK)
    return b"".join(parts)
