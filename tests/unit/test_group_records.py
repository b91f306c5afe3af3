"""The __consumer_offsets record codec: Kafka's byte layout, old versions, and corrupt input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caudal.broker.group_records import (
    OFFSETS_TOPIC,
    OFFSETS_TOPIC_PARTITIONS,
    CommittedOffset,
    GroupKey,
    OffsetKey,
    StoredGroup,
    StoredMember,
    coordinator_partition,
    decode_group,
    decode_key,
    decode_offset,
    encode_group,
    encode_key,
    encode_offset,
)
from caudal.common.errors import CorruptRecordError

INT32_MAX = (1 << 31) - 1
int32s = st.integers(-(1 << 31), INT32_MAX)
int64s = st.integers(-(1 << 63), (1 << 63) - 1)
texts = st.text(max_size=20)  # includes non-ASCII and astral characters
blobs = st.binary(max_size=40)

offset_keys = st.builds(OffsetKey, texts, texts, int32s)
group_keys = st.builds(GroupKey, texts)
committed_offsets = st.builds(
    CommittedOffset, offset=int64s, leader_epoch=int32s, metadata=texts, commit_timestamp=int64s
)
members = st.builds(StoredMember, texts, st.none() | texts, texts, texts, int32s, int32s, blobs, blobs)
groups = st.builds(
    StoredGroup, texts, int32s, st.none() | texts, st.none() | texts, int64s, st.lists(members, max_size=4).map(tuple)
)


# Hand encoders for the tests' own bytes, independent of the module under test.
def s16(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def b32(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


MEMBER = StoredMember("m-1", "static-1", "client", "/10.0.0.1", 60_000, 10_000, b"sub", b"asg")
GROUP = StoredGroup("consumer", 7, "range", "m-1", 1_700_000_000_000, (MEMBER,))


def test_topic_constants() -> None:
    assert OFFSETS_TOPIC == "__consumer_offsets"
    assert OFFSETS_TOPIC_PARTITIONS == 50


# --- coordinator_partition ---------------------------------------------------


# partitions = Integer.MAX_VALUE makes the result |hashCode| itself. Values checked against a real JVM.
@pytest.mark.parametrize(
    ("group", "abs_hash"),
    [
        ("", 0),
        ("a", 97),
        ("abc", 96354),
        ("hello", 99162322),
        ("group", 98629247),
        ("polygenelubricants", 0),  # hashCode == Integer.MIN_VALUE; Utils.abs maps it to 0
        ("my-group", 1906497762),  # hashCode == -1906497762
        ("h\u00e9llo", 103094734),
        ("\U0001f600", 1772899),  # two UTF-16 surrogates 0xD83D, 0xDE00, not the code point 0x1F600
        ("gr\u00fcppe-\U0001f600", 1039948164),  # hashCode == -1039948164
    ],
)
def test_coordinator_partition_uses_java_string_hash(group: str, abs_hash: int) -> None:
    assert coordinator_partition(group, INT32_MAX) == abs_hash


@pytest.mark.parametrize(
    ("group", "partition"),
    [("", 0), ("a", 47), ("group", 47), ("my-group", 12), ("polygenelubricants", 0), ("gr\u00fcppe-\U0001f600", 14)],
)
def test_coordinator_partition_default_matches_kafka(group: str, partition: int) -> None:
    # "my-group" is negative: Kafka's Utils.abs gives 12, masking with 0x7fffffff would give 36.
    assert coordinator_partition(group) == partition


@given(st.text(), st.integers(1, 1000))
def test_coordinator_partition_in_range(group: str, partitions: int) -> None:
    assert 0 <= coordinator_partition(group, partitions) < partitions


def test_coordinator_partition_rejects_no_partitions() -> None:
    with pytest.raises(ValueError):
        coordinator_partition("g", 0)


# --- exact bytes -------------------------------------------------------------


def test_offset_key_bytes() -> None:
    expected = bytes.fromhex("0001 0002 6731 0003 746f70 00000005")  # version, "g1", "top", 5
    assert encode_key(OffsetKey("g1", "top", 5)) == expected
    assert decode_key(expected) == OffsetKey("g1", "top", 5)


def test_group_key_bytes() -> None:
    assert encode_key(GroupKey("g1")) == bytes.fromhex("0002 0002 6731")


def test_offset_value_bytes() -> None:
    expected = bytes.fromhex(
        "0003"  # version
        "000000000000002a"  # offset 42
        "00000007"  # leader epoch 7
        "0002 6d64"  # metadata "md"
        "00000000000003e8"  # commit timestamp 1000
    )
    value = CommittedOffset(offset=42, leader_epoch=7, metadata="md", commit_timestamp=1000)
    assert encode_offset(value) == expected
    assert decode_offset(expected) == value


def test_group_value_bytes() -> None:
    expected = (
        struct.pack(">h", 3)
        + s16("consumer")
        + struct.pack(">i", 7)
        + s16("range")
        + s16("m-1")
        + struct.pack(">qi", 1_700_000_000_000, 1)
        + s16("m-1")
        + s16("static-1")
        + s16("client")
        + s16("/10.0.0.1")
        + struct.pack(">ii", 60_000, 10_000)
        + b32(b"sub")
        + b32(b"asg")
    )
    assert encode_group(GROUP) == expected


# --- round trips --------------------------------------------------------------


@given(offset_keys | group_keys)
def test_key_round_trip(key: OffsetKey | GroupKey) -> None:
    assert decode_key(encode_key(key)) == key


@given(committed_offsets)
def test_offset_round_trip(value: CommittedOffset) -> None:
    assert decode_offset(encode_offset(value)) == value


@given(groups)
def test_group_round_trip(value: StoredGroup) -> None:
    assert decode_group(encode_group(value)) == value


def test_group_round_trip_with_nulls_and_no_members() -> None:
    empty = StoredGroup("", 0, None, None, -1, ())
    assert decode_group(encode_group(empty)) == empty
    member = StoredMember("\u00fc-\U0001f600", None, "", "", 0, 0, b"", b"")
    group = StoredGroup("consumer", 1, None, None, 5, (member,))
    assert decode_group(encode_group(group)) == group


# --- older versions -----------------------------------------------------------


def test_decode_offset_key_version_0() -> None:
    data = struct.pack(">h", 0) + s16("g") + s16("t") + struct.pack(">i", 3)
    assert decode_key(data) == OffsetKey("g", "t", 3)


def test_decode_offset_value_version_0_and_2() -> None:
    body = struct.pack(">q", 10) + s16("meta") + struct.pack(">q", 99)
    expected = CommittedOffset(offset=10, leader_epoch=-1, metadata="meta", commit_timestamp=99, expire_timestamp=-1)
    assert decode_offset(struct.pack(">h", 0) + body) == expected
    assert decode_offset(struct.pack(">h", 2) + body) == expected


def test_decode_offset_value_version_1_keeps_expire_timestamp() -> None:
    data = struct.pack(">hq", 1, 10) + s16("") + struct.pack(">qq", 99, 500)
    assert decode_offset(data) == CommittedOffset(offset=10, metadata="", commit_timestamp=99, expire_timestamp=500)


def _old_group(version: int) -> bytes:
    data = struct.pack(">h", version) + s16("consumer") + struct.pack(">i", 4) + s16(None) + s16("m")
    if version >= 2:
        data += struct.pack(">q", 123)
    data += struct.pack(">i", 1) + s16("m") + s16("cid") + s16("/h")
    if version >= 1:
        data += struct.pack(">i", 300)
    return data + struct.pack(">i", 30) + b32(b"s") + b32(b"a")


@pytest.mark.parametrize(
    ("version", "rebalance_timeout", "state_timestamp"), [(0, 30, -1), (1, 300, -1), (2, 300, 123)]
)
def test_decode_old_group_versions(version: int, rebalance_timeout: int, state_timestamp: int) -> None:
    member = StoredMember("m", None, "cid", "/h", rebalance_timeout, 30, b"s", b"a")
    assert decode_group(_old_group(version)) == StoredGroup("consumer", 4, None, "m", state_timestamp, (member,))


# --- malformed input ----------------------------------------------------------

VALID = [
    (decode_key, encode_key(OffsetKey("g\u00e9", "t", 1))),
    (decode_key, encode_key(GroupKey("g"))),
    (decode_offset, encode_offset(CommittedOffset(1, 2, "m", 3))),
    (decode_offset, struct.pack(">hq", 1, 10) + s16("x") + struct.pack(">qq", 99, 500)),
    (decode_group, encode_group(GROUP)),
    (decode_group, _old_group(0)),
]


@pytest.mark.parametrize(("decode", "data"), VALID)
def test_every_truncation_is_corrupt(decode, data: bytes) -> None:
    decode(data)
    for end in range(len(data)):
        with pytest.raises(CorruptRecordError):
            decode(data[:end])


@given(groups)
def test_every_truncation_of_a_group_is_corrupt(value: StoredGroup) -> None:
    data = encode_group(value)
    for end in range(len(data)):
        with pytest.raises(CorruptRecordError):
            decode_group(data[:end])


@pytest.mark.parametrize(("decode", "data"), VALID)
def test_trailing_bytes_are_corrupt(decode, data: bytes) -> None:
    with pytest.raises(CorruptRecordError, match="trailing"):
        decode(data + b"\x00")


@pytest.mark.parametrize(
    ("decode", "version"),
    [
        (decode_key, 3),
        (decode_key, -1),
        (decode_offset, 4),
        (decode_offset, -1),
        (decode_group, 4),
        (decode_group, 0x7FFF),
    ],
)
def test_unknown_version_is_corrupt(decode, version: int) -> None:
    data = struct.pack(">h", version) + bytes(64)
    with pytest.raises(CorruptRecordError, match=f"unknown version {version}"):
        decode(data)


@pytest.mark.parametrize(
    ("decode", "data", "problem"),
    [
        (decode_key, struct.pack(">hh", 2, -1), "null where a string is required"),
        (decode_key, struct.pack(">hh", 2, -2), "negative string length"),
        (decode_key, struct.pack(">hh", 2, 2) + b"\xff\xfe", "not UTF-8"),
        (decode_group, _old_group(0)[:-10] + struct.pack(">i", -1), "negative bytes length"),
        (
            decode_group,
            struct.pack(">h", 3) + s16("c") + struct.pack(">ihhqi", 1, -1, -1, 0, -1),
            "negative array count",
        ),
    ],
)
def test_malformed_fields_are_corrupt(decode, data: bytes, problem: str) -> None:
    with pytest.raises(CorruptRecordError, match=problem):
        decode(data)


def test_encoding_refuses_what_it_cannot_represent() -> None:
    with pytest.raises(ValueError, match="expire timestamp"):
        encode_offset(CommittedOffset(offset=1, expire_timestamp=5))
    with pytest.raises(ValueError, match="int16"):
        encode_key(GroupKey("x" * 0x8000))
