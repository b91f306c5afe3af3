"""What fault tests check on the records read back: no acknowledged record lost, none stored twice."""

from __future__ import annotations

from caudal.client import ConsumerRecord

Acks = dict[tuple[int, int], bytes]
"""(partition, offset) -> value, as each acknowledgement reported it."""


def assert_acks_stored_once(records: dict[int, list[ConsumerRecord]], *acks: Acks) -> None:
    """Each acknowledged value is stored at the offset its ack gave; no value is stored
    twice (the producers are idempotent); each partition reads back in offset order."""
    stored = {(r.partition, r.offset): r.value for recs in records.values() for r in recs}
    for acked in acks:
        missing = [k for k, v in acked.items() if stored.get(k) != v]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged records lost or changed, e.g. {missing[:3]}"
    values = [r.value for recs in records.values() for r in recs]
    assert len(values) == len(set(values)), f"{len(values) - len(set(values))} records were written twice"
    for recs in records.values():
        offsets = [r.offset for r in recs]
        assert offsets == sorted(set(offsets)), "each partition reads back in offset order"
