"""murmur2 equals Kafka's Java Utils.murmur2; the sticky partitioner follows KIP-480."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner import murmur2 as kafka_python_murmur2

from caudal.client.config import ProducerConfig, build_config
from caudal.client.producer import ProducerCore
from caudal.common.partitioner import StickyPartitioner, murmur2, partition_for_key, to_positive

# org.apache.kafka.common.utils.UtilsTest#testMurmur2
JAVA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("data", "expected"), JAVA_VECTORS)
def test_murmur2_matches_kafka_java_test_vectors(data, expected):
    assert murmur2(data) == expected


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_murmur2_agrees_with_kafka_python(data):
    theirs = kafka_python_murmur2(data)
    ours = murmur2(data)
    assert -(1 << 31) <= ours < (1 << 31)
    assert ours & 0xFFFFFFFF == theirs & 0xFFFFFFFF
    assert to_positive(ours) == theirs & 0x7FFFFFFF


def test_murmur2_accepts_buffers():
    assert murmur2(bytearray(b"foobar")) == murmur2(memoryview(b"foobar")) == -790332482


def test_to_positive_is_not_abs():
    assert to_positive(-(1 << 31)) == 0
    assert to_positive(-1) == 0x7FFFFFFF
    assert to_positive(5) == 5


@settings(max_examples=200, deadline=None)
@given(key=st.binary(max_size=40), partitions=st.integers(1, 1000))
def test_partition_for_key_is_kafkas_default_partitioner(key, partitions):
    expected = (kafka_python_murmur2(key) & 0x7FFFFFFF) % partitions
    assert partition_for_key(key, partitions) == expected


def test_partition_for_key_rejects_no_partitions():
    with pytest.raises(ValueError):
        partition_for_key(b"k", 0)


# ------------------------------------------------------------------------------ sticky


def test_sticky_partition_stays_until_its_batch_closes():
    sp = StickyPartitioner(random.Random(7))
    first = sp.partition("t", 6)
    assert all(sp.partition("t", 6) == first for _ in range(50))
    nxt = sp.on_new_batch("t", 6, first)
    assert nxt != first
    assert sp.partition("t", 6) == nxt


def test_report_about_a_stale_partition_changes_nothing():
    sp = StickyPartitioner(random.Random(1))
    current = sp.partition("t", 4)
    other = (current + 1) % 4
    assert sp.on_new_batch("t", 4, other) == current
    assert sp.partition("t", 4) == current


def test_topics_are_independent():
    sp = StickyPartitioner(random.Random(3))
    a = sp.partition("a", 100)
    b = sp.partition("b", 100)
    sp.on_new_batch("a", 100, a)
    assert sp.partition("b", 100) == b


def test_single_partition_is_always_chosen():
    sp = StickyPartitioner(random.Random(0))
    assert sp.partition("t", 1) == 0
    assert sp.on_new_batch("t", 1, 0) == 0


def test_available_partitions_are_preferred():
    sp = StickyPartitioner(random.Random(11))
    seen = set()
    current = sp.partition("t", 10, available=[2, 5])
    for _ in range(40):
        seen.add(current)
        nxt = sp.on_new_batch("t", 10, current, available=[2, 5])
        assert nxt != current  # two available: always switch to the other one
        current = nxt
    assert seen == {2, 5}
    assert sp.on_new_batch("t", 10, current, available=[7]) == 7


def test_no_available_partition_falls_back_to_all():
    sp = StickyPartitioner(random.Random(5))
    p = sp.partition("t", 3, available=[])
    assert 0 <= p < 3


def test_rotation_covers_all_partitions_and_is_seeded():
    def sequence(seed):
        sp = StickyPartitioner(random.Random(seed))
        p = sp.partition("t", 5)
        out = [p]
        for _ in range(200):
            p = sp.on_new_batch("t", 5, p)
            out.append(p)
        return out

    seq = sequence(42)
    assert seq == sequence(42)
    assert set(seq) == set(range(5))
    assert all(x != y for x, y in zip(seq, seq[1:], strict=False))


def test_shrunk_partition_count_picks_again():
    sp = StickyPartitioner(random.Random(9))
    while sp.partition("t", 10) < 3:
        sp.on_new_batch("t", 10, sp.partition("t", 10))
    assert sp.partition("t", 3) < 3


def test_null_key_records_fill_a_batch_before_the_sticky_partition_moves():
    """KIP-480 as Kafka's producer applies it: the record that would open a new batch moves the
    sticky partition first, so every batch but the open one is full (not one record per partition)."""
    core = ProducerCore(build_config(ProducerConfig, {"bootstrap_servers": "127.0.0.1:1", "batch_size": 1000}))
    for _ in range(500):
        core.enqueue("t", b"x" * 100, None, None, None, None, None, 100)
    batches = core.acc.incomplete()
    full = [b for b in batches if b.size >= 1000]
    assert len(batches) - len(full) == 1, "only the batch being filled is not full"
    assert sum(b.builder.record_count for b in batches) == 500
    assert len({b.tp.partition for b in batches}) > 1, "the sticky partition moved on as batches filled"
