"""Kafka codec framing: round trips, and byte compatibility with independent implementations."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import struct

import kafka.codec
import lz4.frame
import pytest
import snappy
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from caudal.common.compression import CompressionType, compress, decompress
from caudal.common.errors import CorruptRecordError, UnsupportedCompressionTypeError

CODECS = list(CompressionType)
COMPRESSED = [c for c in CompressionType if c != CompressionType.NONE]

# Larger than one xerial block (32 KiB) and one LZ4 block (64 KiB), partly compressible.
BIG = os.urandom(40_000) + b"kafka record " * 20_000


def test_codec_ids_and_names():
    assert [int(c) for c in CompressionType] == [0, 1, 2, 3, 4]
    for name, codec in [("none", 0), ("gzip", 1), ("snappy", 2), ("lz4", 3), ("zstd", 4), ("ZSTD", 4), (None, 0)]:
        assert CompressionType.from_name(name) == codec
    assert CompressionType.LZ4.kafka_name == "lz4"
    with pytest.raises(UnsupportedCompressionTypeError):
        CompressionType.from_name("brotli")


@pytest.mark.parametrize("codec", [5, 6, 7, -1])
def test_unknown_codec_ids_are_typed_errors(codec):
    with pytest.raises(UnsupportedCompressionTypeError):
        compress(codec, b"x")
    with pytest.raises(UnsupportedCompressionTypeError):
        decompress(codec, b"x")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("data", [b"", b"a", BIG], ids=["empty", "one", "big"])
def test_round_trip(codec, data):
    out = compress(codec, data)
    assert isinstance(out, bytes)
    assert decompress(codec, out) == data
    assert decompress(codec, memoryview(out)) == data


@settings(max_examples=200, deadline=None)
@given(codec=st.sampled_from(CODECS), data=st.binary(max_size=3000))
def test_round_trip_property(codec, data):
    assert decompress(codec, compress(codec, data)) == data


# ------------------------------------------------------------------------------ snappy


def test_snappy_is_xerial_framed_like_java():
    out = compress(CompressionType.SNAPPY, BIG)
    assert out[:8] == b"\x82SNAPPY\x00"
    assert struct.unpack(">ii", out[8:16]) == (1, 1)
    pos, chunks = 16, []
    while pos < len(out):
        (length,) = struct.unpack_from(">i", out, pos)
        chunks.append(snappy.decompress(out[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    assert pos == len(out)
    assert [len(c) for c in chunks[:-1]] == [32 * 1024] * (len(chunks) - 1)
    assert b"".join(chunks) == BIG


def test_snappy_interoperates_with_kafka_python():
    assert kafka.codec.snappy_decode(compress(CompressionType.SNAPPY, BIG)) == BIG
    assert decompress(CompressionType.SNAPPY, kafka.codec.snappy_encode(BIG)) == BIG


def test_snappy_accepts_raw_blocks_and_concatenated_streams():
    assert decompress(CompressionType.SNAPPY, snappy.compress(BIG)) == BIG
    two = compress(CompressionType.SNAPPY, b"first ") + compress(CompressionType.SNAPPY, b"second")
    assert decompress(CompressionType.SNAPPY, two) == b"first second"


def test_snappy_header_only_is_empty():
    assert compress(CompressionType.SNAPPY, b"") == b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    assert decompress(CompressionType.SNAPPY, compress(CompressionType.SNAPPY, b"")) == b""


# ------------------------------------------------------------------------------ lz4


def test_lz4_frame_matches_kafka_lz4_block_output_stream():
    out = compress(CompressionType.LZ4, BIG)
    # magic, FLG 0x60 (version 1 + independent blocks), BD 0x40 (64 KiB), header checksum
    assert out[:7] == b"\x04\x22\x4d\x18\x60\x40\x82"
    assert out[-4:] == b"\x00\x00\x00\x00"
    assert lz4.frame.decompress(out) == BIG  # checks the header checksum too
    pos, total = 7, 0
    while True:
        (size,) = struct.unpack_from("<I", out, pos)
        if size == 0:
            break
        stored = size & 0x7FFFFFFF
        assert stored <= 64 * 1024
        pos += 4 + stored
        total += 1
    assert pos == len(out) - 4
    assert total == -(-len(BIG) // (64 * 1024))


def test_lz4_stores_incompressible_blocks_raw():
    data = os.urandom(1000)
    out = compress(CompressionType.LZ4, data)
    (size,) = struct.unpack_from("<I", out, 7)
    assert size == 0x80000000 | len(data)
    assert out[11 : 11 + len(data)] == data


@pytest.mark.parametrize(
    "options",
    [
        {"block_linked": False},  # what kafka-python writes
        {"block_linked": True, "block_size": lz4.frame.BLOCKSIZE_MAX64KB},
        {"content_checksum": True, "store_size": True},
        {"block_checksum": True},
    ],
)
def test_lz4_decodes_any_valid_frame(options):
    assert decompress(CompressionType.LZ4, lz4.frame.compress(BIG, **options)) == BIG


def test_lz4_interoperates_with_kafka_python():
    assert kafka.codec.lz4_decode(compress(CompressionType.LZ4, BIG)) == BIG
    assert decompress(CompressionType.LZ4, kafka.codec.lz4_encode(BIG)) == BIG


# ------------------------------------------------------------------------------ gzip, zstd


def test_gzip_is_standard():
    assert gzip.decompress(compress(CompressionType.GZIP, BIG)) == BIG
    members = gzip.compress(b"one ") + gzip.compress(b"two")
    assert decompress(CompressionType.GZIP, members) == b"one two"


def test_zstd_is_a_standard_frame():
    out = compress(CompressionType.ZSTD, BIG)
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(out)) as reader:
        assert reader.read() == BIG
    # zstd-jni streams (what Java writes) carry no content size; several frames may follow each other.
    buf = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(buf, closefd=False) as writer:
        writer.write(BIG)
    assert decompress(CompressionType.ZSTD, buf.getvalue()) == BIG
    frames = zstandard.ZstdCompressor().compress(b"ab") + zstandard.ZstdCompressor().compress(b"cd")
    assert decompress(CompressionType.ZSTD, frames) == b"abcd"
    assert decompress(CompressionType.ZSTD, kafka.codec.zstd_encode(BIG)) == BIG


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("codec", COMPRESSED)
def test_corrupt_input_is_a_corrupt_record_error(codec):
    good = compress(codec, BIG)
    for bad in (b"", b"garbage!" * 3, good[: len(good) // 2], good[:-3]):
        with pytest.raises(CorruptRecordError):
            decompress(codec, bad)


def test_xerial_block_overrunning_the_data_is_corrupt():
    header = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    with pytest.raises(CorruptRecordError):
        decompress(CompressionType.SNAPPY, header + struct.pack(">i", 100) + b"abc")
    with pytest.raises(CorruptRecordError):
        decompress(CompressionType.SNAPPY, header + b"\x00\x00")


@settings(max_examples=300, deadline=None)
@given(codec=st.sampled_from(COMPRESSED), data=st.binary(max_size=200))
def test_garbage_never_escapes_as_an_untyped_error(codec, data):
    with contextlib.suppress(CorruptRecordError):
        decompress(codec, data)
