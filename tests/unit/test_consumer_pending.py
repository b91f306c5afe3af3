"""Fetched batches wait undecoded until ``poll`` needs their records."""

from __future__ import annotations

import pytest

from caudal.client.consumer import _Pending
from caudal.common.errors import CorruptRecordError
from caudal.common.record_batch import BatchBuilder, iter_batches

PREFIX = ("t", 0)


def _batch(base_offset: int, count: int) -> bytes:
    builder = BatchBuilder(base_offset=base_offset)
    for i in range(count):
        builder.append(1000 + i, None, f"v{base_offset + i}".encode())
    return builder.build()


def _queue(pending: _Pending, data: bytes, first_wanted: int = 0) -> None:
    for pos, _ in iter_batches(data):
        pending.batches.append((data, pos, first_wanted))


def test_only_the_batches_needed_are_decoded() -> None:
    pending = _Pending(epoch=1)
    _queue(pending, _batch(0, 10) + _batch(10, 10) + _batch(20, 10))
    pending.decode(5, PREFIX, check_crc=True)
    assert [r.offset for r in pending.records] == list(range(10)) and len(pending.batches) == 2
    pending.index = 10
    pending.decode(15, PREFIX, check_crc=True)
    assert [r.offset for r in pending.records] == list(range(10, 30)) and not pending.batches
    assert pending.records[0].topic == "t" and pending.records[0].value == b"v10"


def test_records_before_the_wanted_offset_are_dropped() -> None:
    pending = _Pending(epoch=1)
    _queue(pending, _batch(0, 10), first_wanted=7)
    pending.decode(10, PREFIX, check_crc=True)
    assert [r.offset for r in pending.records] == [7, 8, 9]


def test_a_corrupt_batch_stays_queued_and_raises_every_time() -> None:
    good, bad = _batch(0, 3), bytearray(_batch(3, 3))
    bad[-1] ^= 0xFF  # the CRC no longer matches
    pending = _Pending(epoch=1)
    _queue(pending, good + bytes(bad))
    pending.decode(3, PREFIX, check_crc=True)
    pending.index = 3
    for _ in range(2):
        with pytest.raises(CorruptRecordError):
            pending.decode(3, PREFIX, check_crc=True)
        assert len(pending.batches) == 1 and pending.index == len(pending.records)
    assert not pending.exhausted()
