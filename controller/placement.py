"""Replica placement: which brokers hold each partition's replicas.

Kafka's rack-aware round robin: brokers are interleaved by rack so that
consecutive replicas of a partition land on different racks, the starting
broker rotates per partition so leadership spreads evenly, and no broker ever
holds two replicas of one partition.
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Sequence

from caudal.common.errors import InvalidReplicationFactorError
from caudal.common.metadata import BrokerState


def rack_alternating(brokers: Sequence[BrokerState]) -> list[int]:
    """Broker ids ordered r1b1, r2b1, r3b1, r1b2, ... so neighbours sit on different racks."""
    by_rack: dict[str, list[int]] = {}
    for b in sorted(brokers, key=lambda b: b.broker_id):
        by_rack.setdefault(b.rack, []).append(b.broker_id)
    racks = [by_rack[r] for r in sorted(by_rack)]
    return [bid for group in zip_longest(*racks) for bid in group if bid is not None]


def assign_replicas(
    brokers: Sequence[BrokerState], num_partitions: int, replication_factor: int, first_partition: int = 0, start: int = 0
) -> list[list[int]]:
    """Replica lists for partitions ``first_partition .. first_partition+num_partitions-1``.

    ``start`` rotates the first leader, so that topics created one after the
    other do not all put partition 0 on the same broker.
    """
    ordered = rack_alternating(brokers)
    if replication_factor < 1:
        raise InvalidReplicationFactorError("Replication factor must be larger than 0.")
    if replication_factor > len(ordered):
        raise InvalidReplicationFactorError(
            f"Replication factor: {replication_factor} larger than available brokers: {len(ordered)}."
        )
    n = len(ordered)
    return [
        [ordered[(start + p + r) % n] for r in range(replication_factor)]
        for p in range(first_partition, first_partition + num_partitions)
    ]
