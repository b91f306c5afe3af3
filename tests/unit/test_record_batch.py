"""RecordBatch v2 codec: round trips, Kafka byte compatibility (via kafka-python), bad input."""

from __future__ import annotations

import contextlib
import gc
import shutil
import struct
import sysconfig

import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

from caudal.client.structs import ConsumerRecord
from caudal.common import record_batch, record_codec
from caudal.common.compression import CompressionType
from caudal.common.errors import (
    CaudalError,
    CorruptRecordError,
    InvalidRecordError,
    UnsupportedCompressionTypeError,
)
from caudal.common.record_batch import (
    BATCH_OVERHEAD,
    MAGIC,
    BatchBuilder,
    BatchHeader,
    Record,
    assign_offsets,
    build_batch,
    build_batch_from_records,
    decode_all,
    decode_records,
    iter_batches,
    parse_header,
    record_size_upper_bound,
    set_base_offset,
    set_log_append_time,
    validate_batch,
    validate_batches,
    with_base_offset,
)

DEFAULT_LOOPS = (record_batch.decode_section, record_batch.append_record)
DECODERS = {"python": record_codec._decode_section}
ENCODERS = {"python": record_codec._append_record}
if record_codec._compiled_decode_section is not None:
    DECODERS["compiled"] = record_codec._decode_section_compiled
    ENCODERS["compiled"] = record_codec._compiled_append_record


@pytest.fixture(scope="module", autouse=True, params=sorted(DECODERS))
def record_loops(request):
    """Every test here runs with each pair of records loops (the compiled ones and their Python
    fallbacks) in the places record_batch calls them."""
    record_batch.decode_section, record_batch.append_record = DECODERS[request.param], ENCODERS[request.param]
    yield request.param
    record_batch.decode_section, record_batch.append_record = DEFAULT_LOOPS

CODECS = list(CompressionType)
T0 = 1_700_000_000_000

# ------------------------------------------------------------------------------ strategies

payloads = st.one_of(
    st.none(),
    st.binary(max_size=120),
    st.integers(8000, 20_000).map(bytes),  # lengths needing three-byte varints
)
headers_st = st.lists(
    st.tuples(st.text(max_size=12), st.one_of(st.none(), st.binary(max_size=40))),
    max_size=3,
)
records_st = st.lists(
    st.tuples(
        st.integers(-(2**45), 2**45),  # timestamps: any order, so deltas of either sign
        payloads,
        payloads,
        headers_st,
    ),
    min_size=1,
    max_size=30,
)
producer_st = st.tuples(
    st.integers(-1, 2**63 - 1),
    st.integers(-1, 2**15 - 1),
    st.integers(-1, 2**31 - 1),
    st.booleans(),
)


def expected_records(records, base_offset=0):
    return [
        Record(base_offset + i, ts, key, value, tuple(headers))
        for i, (ts, key, value, headers) in enumerate(records)
    ]


def normalised(records):
    return [Record(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in records]


def reframe(batch, **fields):
    """Rewrite header fields of ``batch`` and recompute a valid CRC (to reach checks past the CRC)."""
    header = parse_header(batch)._replace(**fields)
    raw = bytearray(struct.pack(">qiibIhiqqqhii", *header) + batch[BATCH_OVERHEAD:])
    struct.pack_into(">I", raw, 17, crc32c(bytes(raw[21:])))
    return bytes(raw)


def simple_batch(n=3, codec=CompressionType.NONE, **kwargs):
    return build_batch([(T0 + i, b"k%d" % i, b"v%d" % i, [("h", b"x")]) for i in range(n)], codec, **kwargs)


# ------------------------------------------------------------------------------ round trips


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=records_st,
    codec=st.sampled_from(CODECS),
    producer=producer_st,
    base_offset=st.integers(0, 2**62),
    leader_epoch=st.integers(-1, 2**31 - 1),
)
def test_builder_round_trip(records, codec, producer, base_offset, leader_epoch):
    producer_id, producer_epoch, base_sequence, transactional = producer
    builder = BatchBuilder(codec, producer_id, producer_epoch, base_sequence, transactional, base_offset, leader_epoch)
    for i, (ts, key, value, headers) in enumerate(records):
        assert builder.append(ts, key, value, headers) == i
    assert builder.record_count == len(records)
    batch = builder.build()

    (header,) = validate_batches(batch)
    assert header == parse_header(batch) == validate_batch(batch)
    assert header.size == len(batch)
    assert header.magic == MAGIC
    assert header.compression == codec
    assert header.base_offset == base_offset
    assert header.partition_leader_epoch == leader_epoch
    assert header.record_count == len(records)
    assert header.last_offset_delta == len(records) - 1
    assert header.next_offset == base_offset + len(records)
    assert header.base_timestamp == records[0][0]
    assert header.max_timestamp == max(r[0] for r in records)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (
        producer_id,
        producer_epoch,
        base_sequence,
    )
    assert header.is_transactional is transactional
    assert not header.is_control
    assert header.timestamp_type == 0

    decoded_header, decoded = decode_records(batch)
    assert decoded_header == header
    assert decoded == expected_records(records, base_offset)
    if codec == CompressionType.NONE:
        assert builder.size_in_bytes() == len(batch)


@settings(max_examples=50, deadline=None)
@given(batches=st.lists(st.tuples(records_st, st.sampled_from(CODECS)), min_size=1, max_size=4))
def test_concatenated_batches_round_trip(batches):
    payload = b"".join(build_batch(records, codec) for records, codec in batches)
    assigned, next_offset = assign_offsets(payload, 1000, partition_leader_epoch=7)
    headers = validate_batches(assigned)
    assert [h.compression for h in headers] == [codec for _, codec in batches]
    assert all(h.partition_leader_epoch == 7 for h in headers)
    expected = []
    for records, _ in batches:
        expected += expected_records(records, 1000 + len(expected))
    assert decode_all(assigned) == expected
    assert decode_all(bytearray(assigned)) == expected
    assert next_offset == 1000 + len(expected)
    assert [pos for pos, _ in iter_batches(assigned)] == [0] + [
        sum(h.size for h in headers[: i + 1]) for i in range(len(headers) - 1)
    ]


@settings(max_examples=50, deadline=None)
@given(records=records_st, codec=st.sampled_from(CODECS), new_base=st.integers(0, 2**63 - 1))
def test_with_base_offset_keeps_crc_valid(records, codec, new_base):
    batch = build_batch(records, codec)
    moved = with_base_offset(batch, new_base)
    assert moved[8:] == batch[8:]
    assert validate_batch(moved).base_offset == new_base
    assert decode_records(moved)[1] == expected_records(records, new_base)

    fenced = with_base_offset(memoryview(batch), new_base, partition_leader_epoch=42)
    header = validate_batch(fenced)
    assert (header.base_offset, header.partition_leader_epoch, header.crc) == (new_base, 42, parse_header(batch).crc)


def test_set_base_offset_in_place_on_concatenated_payload():
    payload = bytearray(simple_batch(2) + simple_batch(3, CompressionType.LZ4))
    positions = [pos for pos, _ in iter_batches(payload)]
    set_base_offset(payload, positions[0], 10, 3)
    set_base_offset(memoryview(payload), positions[1], 12)
    first, second = validate_batches(payload)
    assert (first.base_offset, first.partition_leader_epoch) == (10, 3)
    assert (second.base_offset, second.partition_leader_epoch) == (12, -1)
    assert [r.offset for r in decode_all(payload)] == [10, 11, 12, 13, 14]


def test_many_records_use_multi_byte_varints():
    records = [(T0 + 37 * i - 5000, b"k" * (i % 300), bytes([i % 256]) * (i % 9000), []) for i in range(10_000)]
    for codec in (CompressionType.NONE, CompressionType.ZSTD):
        batch = build_batch(records, codec, base_offset=5)
        header, decoded = decode_records(batch)
        assert header.record_count == 10_000
        assert decoded == expected_records(records, 5)


def test_extreme_values_round_trip():
    records = [
        (2**62, None, b"", [("", None), ("ключ-🔑", b"")]),
        (-(2**62), b"", None, []),
        (0, b"\x00" * 70_000, b"\xff", [("k" * 200, b"v" * 9000)]),
    ]
    for codec in CODECS:
        batch = build_batch(records, codec, base_offset=2**63 - 10, producer_id=2**63 - 1)
        assert decode_records(batch)[1] == expected_records(records, 2**63 - 10)


def test_log_append_time_batches_use_max_timestamp_for_every_record():
    records = [Record(0, T0, b"a", b"1"), Record(1, T0 + 5, b"b", b"2")]
    batch = build_batch_from_records(records, attributes=0x08)
    header, decoded = decode_records(batch)
    assert header.timestamp_type == 1
    assert [r.timestamp for r in decoded] == [T0 + 5, T0 + 5]
    assert [r.value for r in decoded] == [b"1", b"2"]


def test_set_log_append_time_in_place():
    first = simple_batch(2)
    payload = bytearray(first + simple_batch(3, CompressionType.SNAPPY))
    set_log_append_time(payload, len(first), T0 + 999)
    headers = validate_batches(payload)
    assert [h.timestamp_type for h in headers] == [0, 1]
    assert headers[1].max_timestamp == T0 + 999
    assert headers[1].compression == CompressionType.SNAPPY
    assert [r.timestamp for r in decode_all(payload)] == [T0, T0 + 1] + [T0 + 999] * 3


def test_header_properties():
    batch = build_batch_from_records(
        [Record(100, T0, None, b"\x00\x00\x00\x01", ())], attributes=0x30, producer_id=9, producer_epoch=1
    )
    header = validate_batch(batch)
    assert isinstance(header, BatchHeader)
    assert header.is_control and header.is_transactional
    assert header.attributes == 0x30
    assert (header.last_offset, header.next_offset, header.size) == (100, 101, len(batch))


def test_builder_size_estimates():
    builder = BatchBuilder()
    assert builder.size_in_bytes() == BATCH_OVERHEAD
    builder.append(T0, b"key", b"v" * 100, [("h", b"x")])
    assert builder.size_in_bytes() == len(builder.build())
    assert record_size_upper_bound(b"key", b"v" * 100, [("h", b"x")]) >= builder.size_in_bytes() - BATCH_OVERHEAD
    assert builder.compression == CompressionType.NONE


def test_builder_rejects_empty_batches_and_bad_values():
    with pytest.raises(InvalidRecordError):
        BatchBuilder().build()
    with pytest.raises(UnsupportedCompressionTypeError):
        BatchBuilder(compression=6)
    builder = BatchBuilder()
    builder.append(0, None, None)
    with pytest.raises(InvalidRecordError):
        builder.append(2**64, None, None)  # timestamp delta beyond a varlong
    with pytest.raises(InvalidRecordError):
        build_batch([(2**63, None, None, [])])  # baseTimestamp beyond int64


# ------------------------------------------------------------------------------ compaction rebuild


def test_build_from_records_preserves_offset_gaps_and_last_offset():
    original = build_batch(
        [(T0 + i, b"k%d" % (i % 3), b"v%d" % i, []) for i in range(10)],
        CompressionType.GZIP,
        base_offset=500,
        producer_id=77,
        producer_epoch=2,
        base_sequence=40,
        is_transactional=True,
        partition_leader_epoch=4,
    )
    header, records = decode_records(original)
    kept = records[-3:]  # the latest record of each key, offsets 507..509
    kept = [kept[0], kept[2]]  # drop one more: a gap at 508
    rebuilt = build_batch_from_records(
        kept,
        header.base_offset,
        header.compression,
        attributes=header.attributes,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        partition_leader_epoch=header.partition_leader_epoch,
        last_offset=header.last_offset,
    )
    new_header, new_records = decode_records(rebuilt)
    assert [r.offset for r in new_records] == [507, 509]
    assert new_records == kept
    assert new_header.base_offset == 500
    assert new_header.last_offset == header.last_offset == 509
    assert new_header.record_count == 2
    assert new_header.is_transactional and new_header.compression == CompressionType.GZIP
    assert (new_header.producer_id, new_header.producer_epoch, new_header.base_sequence) == (77, 2, 40)
    assert validate_batch(rebuilt) == new_header


@settings(max_examples=50, deadline=None)
@given(records=records_st, codec=st.sampled_from(CODECS), producer=producer_st)
def test_rebuilding_every_record_reproduces_the_same_bytes(records, codec, producer):
    producer_id, producer_epoch, base_sequence, transactional = producer
    batch = build_batch(records, codec, 300, producer_id, producer_epoch, base_sequence, transactional, 9)
    header, decoded = decode_records(batch)
    rebuilt = build_batch_from_records(
        decoded,
        compression=header.compression,
        attributes=header.attributes,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        partition_leader_epoch=9,
    )
    assert rebuilt == batch


def test_build_from_records_rejects_bad_offsets():
    with pytest.raises(InvalidRecordError):
        build_batch_from_records([])
    with pytest.raises(InvalidRecordError):
        build_batch_from_records([Record(5, 0, None, b"", ()), Record(5, 0, None, b"", ())])
    with pytest.raises(InvalidRecordError):
        build_batch_from_records([Record(5, 0, None, b"", ())], base_offset=6)
    with pytest.raises(InvalidRecordError):
        build_batch_from_records([Record(5, 0, None, b"", ())], last_offset=4)


# ------------------------------------------------------------------------------ kafka-python compatibility

KAFKA_PYTHON_RECORDS = [
    (
        T0 + i,
        None if i % 4 == 0 else b"key-%d" % i,
        None if i == 5 else b"value %d " % i * 20,
        [("h1", b"x"), ("h2", None)] if i % 3 == 0 else [],
    )
    for i in range(40)
]


def kafka_python_batch(codec, producer=(-1, -1, -1), transactional=False):
    builder = DefaultRecordBatchBuilder(2, int(codec), transactional, *producer, batch_size=10**7)
    for i, (ts, key, value, headers) in enumerate(KAFKA_PYTHON_RECORDS):
        assert builder.append(i, ts, key, value, headers) is not None
    return bytes(builder.build())


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_batches_decode_identically(codec):
    theirs = kafka_python_batch(codec, producer=(123, 4, 56), transactional=True)
    header = validate_batch(theirs)
    assert header.compression == codec
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (123, 4, 56)
    assert header.is_transactional
    _, records = decode_records(theirs)
    assert records == expected_records(KAFKA_PYTHON_RECORDS)


@pytest.mark.parametrize("codec", CODECS)
def test_our_batches_decode_identically_in_kafka_python(codec):
    ours = build_batch(KAFKA_PYTHON_RECORDS, codec, base_offset=1000, producer_id=9, producer_epoch=1, base_sequence=0)
    batch = DefaultRecordBatch(ours)
    assert batch.validate_crc()
    assert batch.compression_type == codec
    assert (batch.base_offset, batch.last_offset_delta, batch.producer_id) == (1000, 39, 9)
    theirs = [Record(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in batch]
    assert theirs == expected_records(KAFKA_PYTHON_RECORDS, 1000)


def test_kafka_python_reads_our_concatenated_batches():
    payload, _ = assign_offsets(
        b"".join(build_batch(KAFKA_PYTHON_RECORDS, codec) for codec in CODECS), 0, partition_leader_epoch=1
    )
    memory = MemoryRecords(payload)
    theirs = []
    while memory.has_next():
        batch = memory.next_batch()
        assert batch.validate_crc()
        theirs += [Record(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in batch]
    assert theirs == decode_all(payload)
    assert len(theirs) == len(CODECS) * len(KAFKA_PYTHON_RECORDS)


@pytest.mark.parametrize("transactional", [False, True])
def test_uncompressed_bytes_are_identical_to_kafka_python(transactional):
    producer = (555, 3, 1000) if transactional else (-1, -1, -1)
    theirs = kafka_python_batch(CompressionType.NONE, producer, transactional)
    # kafka-python writes partition leader epoch 0 where Java writes -1; match it here.
    ours = build_batch(
        KAFKA_PYTHON_RECORDS, CompressionType.NONE, 0, *producer, transactional, partition_leader_epoch=0
    )
    assert ours == theirs


@settings(max_examples=100, deadline=None)
@given(records=records_st)
def test_uncompressed_bytes_are_identical_to_kafka_python_property(records):
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, batch_size=10**8)
    for i, (ts, key, value, headers) in enumerate(records):
        builder.append(i, ts, key, value, headers)
    assert build_batch(records, partition_leader_epoch=0) == bytes(builder.build())


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("codec", CODECS)
def test_any_flipped_byte_after_the_leader_epoch_is_detected(codec):
    batch = simple_batch(3, codec)
    for pos in range(8, len(batch)):
        if 12 <= pos < 16:
            continue  # partitionLeaderEpoch: outside the CRC by design (the broker rewrites it)
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(batch)
            bad[pos] ^= mask
            bad = bytes(bad)
            with pytest.raises(CorruptRecordError):
                validate_batch(bad)
            with pytest.raises(CorruptRecordError):
                validate_batches(bad)
            with pytest.raises(CorruptRecordError):
                decode_records(bad)


def test_wrong_magic():
    batch = bytearray(simple_batch())
    for magic in (0, 1, 3, -1):
        batch[16] = magic & 0xFF
        with pytest.raises(CorruptRecordError, match="magic"):
            parse_header(batch)
        with pytest.raises(CorruptRecordError, match="magic"):
            validate_batches(batch)


def test_truncated_batches():
    batch = simple_batch()
    for cut in (0, 1, 12, 60, 61, len(batch) - 1):
        with pytest.raises(CorruptRecordError):
            validate_batch(batch[:cut])
        with pytest.raises(CorruptRecordError):
            decode_records(batch[:cut])
    with pytest.raises(CorruptRecordError):
        list(iter_batches(batch + batch[:70]))
    with pytest.raises(CorruptRecordError):
        validate_batches(batch + batch[:10])
    with pytest.raises(CorruptRecordError):
        decode_all(batch + batch[:-1])
    with pytest.raises(CorruptRecordError):
        with_base_offset(batch[:20], 0)
    with pytest.raises(CorruptRecordError):
        parse_header(batch, pos=len(batch) + 5)


@pytest.mark.parametrize("length", [-1, 0, 48, 2**31 - 1, -(2**31)])
def test_garbage_batch_length(length):
    batch = bytearray(simple_batch())
    struct.pack_into(">i", batch, 8, length)
    with pytest.raises(CorruptRecordError):
        validate_batches(batch)
    with pytest.raises(CorruptRecordError):
        decode_all(batch)


@pytest.mark.parametrize("codec_bits", [5, 6, 7])
def test_unknown_codec_bits(codec_bits):
    batch = reframe(simple_batch(), attributes=codec_bits)
    with pytest.raises(UnsupportedCompressionTypeError):
        validate_batch(batch)
    with pytest.raises(UnsupportedCompressionTypeError):
        decode_records(batch)
    with pytest.raises(UnsupportedCompressionTypeError):
        _ = parse_header(batch).compression


def test_record_count_and_last_offset_delta_checks():
    batch = simple_batch(3)
    with pytest.raises(InvalidRecordError):
        validate_batch(reframe(batch, record_count=0))
    with pytest.raises(InvalidRecordError):
        validate_batch(reframe(batch, last_offset_delta=1))
    with pytest.raises(InvalidRecordError):
        validate_batches(b"")
    with pytest.raises(CorruptRecordError):
        decode_records(reframe(batch, record_count=4))  # claims more records than present
    with pytest.raises(CorruptRecordError):
        decode_records(reframe(batch, record_count=2))  # leaves bytes over
    with pytest.raises(CorruptRecordError):
        decode_records(reframe(batch, record_count=-1))


def batch_with_section(section, count=1, codec=0):
    """A batch whose records section is ``section`` verbatim, with a valid CRC."""
    template = parse_header(simple_batch(1))
    raw = struct.pack(
        ">qiibIhiqqqhii",
        *template._replace(batch_length=49 + len(section), attributes=codec, record_count=count),
    )
    return reframe(raw + section)


@pytest.mark.parametrize(
    "section",
    [
        pytest.param(b"\x08\x00\x00\x00\x03\x00\x00", id="negative key length"),
        pytest.param(b"\x08\x00\x00\x00\x00\x05\x00", id="negative value length"),
        pytest.param(b"\x0a\x00\x00\x00\x01\x01\x00", id="record length mismatch"),
        pytest.param(b"\x08\x00\x00\x00\x01\x01\x01", id="negative header count"),
        pytest.param(b"\x0e\x00\x00\x00\x01\x01\x02\x03\x00\x00", id="negative header key length"),
        pytest.param(b"\x0e\x00\x00\x00\x01\x01\x02\x00\x03\x00", id="bad header value length"),
        pytest.param(b"\x10\x00\x00\x00\x01\x01\x02\x02\xff\x01", id="non-utf8 header key"),
        pytest.param(b"\x08\x00" + b"\xff" * 11 + b"\x00", id="overlong varint"),
        pytest.param(b"\x08\x00\x00", id="truncated"),
    ],
)
def test_corrupt_record_fields_behind_a_valid_crc(section):
    batch = batch_with_section(section)
    validate_batch(batch)  # the broker's checks pass: records are not its business
    with pytest.raises(CorruptRecordError):
        decode_records(batch)


def test_undecompressable_section_behind_a_valid_crc():
    with pytest.raises(CorruptRecordError):
        decode_records(batch_with_section(b"not gzip at all", codec=1))


@settings(max_examples=500, deadline=None)
@given(section=st.binary(max_size=60), count=st.integers(-2, 5), codec=st.sampled_from(CODECS))
def test_fuzzed_record_sections_raise_only_typed_errors(section, count, codec):
    batch = batch_with_section(section, count, int(codec))
    with contextlib.suppress(CaudalError):
        decode_records(batch)
    with contextlib.suppress(CaudalError):
        validate_batches(batch)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_fuzzed_payloads_raise_only_typed_errors(data):
    for call in (validate_batches, decode_all, lambda b: list(iter_batches(b))):
        with contextlib.suppress(CaudalError):
            call(data)


def test_errors_carry_kafka_codes():
    with pytest.raises(CorruptRecordError) as excinfo:
        validate_batch(b"\x00" * 10)
    assert excinfo.value.code.name == "CORRUPT_MESSAGE"


# ------------------------------------------------------------------------------ the compiled loop


def test_the_compiled_loop_is_built_wherever_a_c_compiler_is():
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler):
        assert "compiled" in DECODERS, "pip install should have built caudal.common._record_codec"
        assert DEFAULT_LOOPS == (record_codec._decode_section_compiled, record_codec._compiled_append_record)


@settings(max_examples=300, deadline=None)
@given(
    offset_delta=st.integers(0, 2**31 - 1),
    timestamp_delta=st.integers(-(2**63), 2**63 - 1),
    key=st.one_of(st.none(), st.binary(max_size=300)),
    value=st.one_of(st.none(), st.binary(max_size=300), st.binary(min_size=8200, max_size=8300).map(bytearray)),
)
def test_both_loops_encode_a_record_to_the_same_bytes(offset_delta, timestamp_delta, key, value):
    encoded = set()
    for append in ENCODERS.values():
        buf = bytearray(b"earlier records")
        append(buf, offset_delta, timestamp_delta, key, value)
        encoded.add(bytes(buf))
    assert len(encoded) == 1


def test_the_compiled_encoder_rejects_what_is_not_bytes():
    for append in ENCODERS.values():
        with pytest.raises(TypeError):
            append(bytearray(), 0, 0, "text", None)


def _decode_with(name, batch, **kwargs):
    records = []
    DECODERS[name](records, *_section_args(batch), **kwargs)
    return records


def _section_args(batch):
    header = parse_header(batch)
    return batch, BATCH_OVERHEAD, len(batch), header.record_count, header.base_offset, header.base_timestamp


@settings(max_examples=200, deadline=None)
@given(records=records_st, base_offset=st.integers(0, 2**62))
def test_both_loops_decode_every_batch_to_equal_records(records, base_offset):
    batch = with_base_offset(build_batch(records), base_offset, 0)
    decoded = {name: _decode_with(name, batch, record_type=ConsumerRecord, prefix=("orders", 3)) for name in DECODERS}
    expected = [ConsumerRecord("orders", 3, *r) for r in expected_records(records, base_offset)]
    for name, got in decoded.items():
        assert [type(r) for r in got] == [ConsumerRecord] * len(records)
        assert [r._replace(headers=tuple(r.headers)) for r in got] == expected, name


def test_compiled_records_stay_out_of_the_garbage_collector():
    if "compiled" not in DECODERS:
        assert DEFAULT_LOOPS == (record_codec._decode_section, record_codec._append_record)
        return
    batch = simple_batch(3)
    for r in _decode_with("compiled", batch, record_type=ConsumerRecord, prefix=("orders", 0)):
        assert not gc.is_tracked(r) and not any(gc.is_tracked(h) for h in r.headers)
    tracked_prefix = (["not", "atomic"],)
    records = _decode_with("compiled", batch, record_type=tuple, prefix=tracked_prefix)
    assert all(gc.is_tracked(r) for r in records)  # a prefix that could form cycles keeps them tracked


@pytest.mark.parametrize("section", [
    b"\x08\x00\x00\x00\x03\x00\x00",
    b"\x08\x00\x00\x00\x00\x05\x00",
    b"\x0a\x00\x00\x00\x01\x01\x00",
    b"\x08\x00\x00\x00\x01\x01\x01",
    b"\x0e\x00\x00\x00\x01\x01\x02\x03\x00\x00",
    b"\x0e\x00\x00\x00\x01\x01\x02\x00\x03\x00",
    b"\x10\x00\x00\x00\x01\x01\x02\x02\xff\x01",
    b"\x08\x00" + b"\xff" * 11 + b"\x00",
    b"\x08\x00\x00",
])
def test_both_loops_reject_a_corrupt_record_with_the_same_message(section):
    batch = batch_with_section(section)
    messages = set()
    for name in DECODERS:
        with pytest.raises(CorruptRecordError) as excinfo:
            _decode_with(name, batch)
        messages.add(excinfo.value.message)
    assert len(messages) == 1, messages
