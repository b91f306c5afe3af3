"""Read whole partitions back with a real consumer, bounded in time."""

from __future__ import annotations

import time
from collections import defaultdict

from caudal.client import Consumer, ConsumerRecord, TopicPartition


def read_all(bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 120) -> dict[int, list[ConsumerRecord]]:
    """Every record of ``partitions`` partitions from the beginning, until ``expected`` are read or time runs out."""
    by_partition: dict[int, list[ConsumerRecord]] = defaultdict(list)
    consumer = Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", max_poll_records=5000)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        count = 0
        while count < expected and time.monotonic() < deadline:
            for r in consumer.poll(timeout_ms=300):
                by_partition[r.partition].append(r)
                count += 1
    finally:
        consumer.close()
    return by_partition


def read_to_end(bootstrap: str, topic: str, partitions: int, timeout_s: float = 60) -> dict[int, list[ConsumerRecord]]:
    """Every record of ``partitions`` partitions from the beginning up to their end offsets now."""
    by_partition: dict[int, list[ConsumerRecord]] = defaultdict(list)
    consumer = Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", max_poll_records=5000)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end offsets {ends} within {timeout_s} s")
            for r in consumer.poll(timeout_ms=300):
                by_partition[r.partition].append(r)
    finally:
        consumer.close()
    return by_partition


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Partition -> its end offset (the high watermark) as a consumer sees it now."""
    consumer = Consumer(bootstrap_servers=bootstrap)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        consumer.close()
    return {tp.partition: end for tp, end in ends.items()}
