"""Choosing a partition for a record, exactly as Kafka's Java producer does.

Keyed records go to ``toPositive(murmur2(key)) % numPartitions`` with Kafka's murmur2
(``org.apache.kafka.common.utils.Utils.murmur2``): any Kafka client, Kafka Streams or
a Connect sink that co-partitions by key must agree with us byte for byte, so this is
a port, not a look-alike. Records without a key use the sticky partitioner of KIP-480
(Kafka 2.4+): stay on one partition until its batch is sent or full, so null-key
traffic forms large batches instead of one tiny batch per partition.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence

__all__ = ["StickyPartitioner", "murmur2", "partition_for_key", "to_positive"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data``: a signed 32-bit int, equal to Java's ``Utils.murmur2``."""
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK32
        k ^= k >> 24
        k = (k * _M) & _MASK32
        h = ((h * _M) & _MASK32) ^ k
    tail = length & 3
    if tail:
        base = length - tail
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h ^= data[base]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


def to_positive(h: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit (not abs(), which differs for MIN_VALUE)."""
    return h & 0x7FFFFFFF


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-null ``key``."""
    if num_partitions <= 0:
        raise ValueError(f"num_partitions must be positive, got {num_partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


class StickyPartitioner:
    """KIP-480 sticky partition choice for records with a null key.

    Per topic it remembers one partition and returns it until the producer reports,
    through ``on_new_batch``, that the batch for that partition was closed (sent or
    full); then it moves to another random partition, different from the previous one
    whenever there is a choice, preferring partitions that currently have a leader
    (``available``). Owned by one producer (not thread-safe); pass a seeded
    ``random.Random`` for deterministic tests.
    """

    __slots__ = ("_rng", "_sticky")

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()
        self._sticky: dict[str, int] = {}

    def partition(self, topic: str, num_partitions: int, available: Sequence[int] | None = None) -> int:
        """The current sticky partition of ``topic``, choosing one on first use."""
        current = self._sticky.get(topic)
        if current is None or current >= num_partitions:
            return self._choose(topic, num_partitions, available, current)
        return current

    def on_new_batch(
        self, topic: str, num_partitions: int, prev_partition: int, available: Sequence[int] | None = None
    ) -> int:
        """A batch for ``prev_partition`` was closed: move on if it was the sticky one.

        Returns the sticky partition afterwards. A report about a partition that is no
        longer the sticky one (already moved on) changes nothing, as in Kafka.
        """
        current = self._sticky.get(topic)
        if current is None or current == prev_partition:
            return self._choose(topic, num_partitions, available, current)
        return current

    def _choose(self, topic: str, num_partitions: int, available: Sequence[int] | None, previous: int | None) -> int:
        if num_partitions <= 0:
            raise ValueError(f"num_partitions must be positive, got {num_partitions}")
        candidates = [p for p in available if 0 <= p < num_partitions] if available else []
        if not candidates:
            candidates = range(num_partitions)
        if len(candidates) > 1 and previous in candidates:
            # Uniform over the others without building a list of them (a batch closes often
            # and a topic may have thousands of partitions).
            pick = self._rng.randrange(len(candidates) - 1)
            chosen = candidates[pick + (pick >= candidates.index(previous))]
        else:
            chosen = candidates[self._rng.randrange(len(candidates))]
        self._sticky[topic] = chosen
        return chosen
