"""Log compaction (``cleanup.policy=compact``): the pure part, with no I/O.

Kafka's cleaner in two passes. :func:`build_key_map` reads the log once and maps
every key to the offset of its latest record; :func:`clean_batch` then filters one
stored batch against that map. :meth:`caudal.broker.log.PartitionLog.compact`
chooses the segments, feeds them through here and writes each rewritten segment
atomically. Everything here is a function of its arguments, so it is safe on any
thread and tested without RocksDB.

Rules (Kafka's): a keyed record survives only if it is the latest for its key; the
latest record of a key is a tombstone (null value) that still survives until it is
older than ``delete.retention.ms`` (``tombstone_horizon_ms``), so consumers get to
see the delete; keyless records always survive; control batches (transaction
markers) are kept untouched. A batch that loses records is re-encoded with the
survivors at their original offsets, keeping its base offset, last offset delta,
producer fields, leader epoch, attributes and codec, with a fresh CRC-32C; a batch
that loses every record is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable

from caudal.common.record_batch import build_batch_from_records, decode_records, parse_header


def build_key_map(batches: Iterable[tuple[int, bytes]], upto: int) -> dict[bytes, int]:
    """Key -> offset of its latest record among records below ``upto`` in ``batches``.

    ``batches`` are (base offset, stored bytes) in offset order; control batches and
    keyless records are ignored.
    """
    latest: dict[bytes, int] = {}
    for _, batch in batches:
        header, records = decode_records(batch, check_crc=False)
        if header.is_control:
            continue
        for record in records:
            if record.offset >= upto:
                return latest
            if record.key is not None:
                latest[record.key] = record.offset
    return latest


def clean_segment(
    batches: Iterable[tuple[int, bytes]], key_map: dict[bytes, int], tombstone_horizon_ms: int
) -> tuple[list[tuple[int, bytes | None]], int]:
    """Clean one segment's (base offset, bytes) batches with :func:`clean_batch`.

    Returns the changes as (base offset, new bytes, or None to delete the batch) and
    the segment's size afterwards; no changes means the segment is already clean.
    """
    changes: list[tuple[int, bytes | None]] = []
    size = 0
    for base, batch in batches:
        cleaned = clean_batch(batch, key_map, tombstone_horizon_ms)
        if cleaned is not batch:
            changes.append((base, cleaned))
        if cleaned is not None:
            size += len(cleaned)
    return changes, size


def clean_batch(batch: bytes, key_map: dict[bytes, int], tombstone_horizon_ms: int) -> bytes | None:
    """Filter one stored batch: the same object if nothing goes, None if everything goes,
    else the re-encoded batch of the survivors (offsets preserved).

    A record goes when a later record has its key (``key_map``), or when it is the
    latest for its key, a tombstone, and its timestamp is below ``tombstone_horizon_ms``.
    """
    header = parse_header(batch)
    if header.is_control:
        return batch
    _, records = decode_records(batch)
    kept = []
    for record in records:
        key = record.key
        if key is not None:
            if key_map.get(key, record.offset) > record.offset:
                continue
            if record.value is None and record.timestamp < tombstone_horizon_ms:
                continue
        kept.append(record)
    if len(kept) == len(records):
        return batch
    if not kept:
        return None
    return build_batch_from_records(
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
