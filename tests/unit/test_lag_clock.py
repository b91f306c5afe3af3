"""Follower lag is measured on the monotonic clock, so wall-clock steps move no ISR."""

from __future__ import annotations

import asyncio

from metadata_records import TOPIC_ID, one_partition_cluster

from caudal.broker.replica_manager import ReplicaManager
from caudal.broker.storage import Store

LEADER = 1
LAG_TIME_MAX_MS = 30_000


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_a_wall_clock_step_does_not_make_followers_lag_but_time_passing_does(tmp_path) -> None:
    wall, monotonic = Clock(1_800_000_000_000), Clock(5_000)
    store = Store(tmp_path / "db")

    async def main() -> None:
        replicas = ReplicaManager(LEADER, store, clock=wall, lag_clock=monotonic)
        replicas.apply_metadata(one_partition_cluster(1, LEADER, 0))
        partition = replicas.partition_by_id(TOPIC_ID, 0)
        for follower in (2, 3):
            partition.on_follower_fetch(follower, 0)
        for step in (10 * 60_000, -20 * 60_000):  # ten minutes ahead, then ten behind where it started
            wall.now += step
            monotonic.now += 1
            assert partition.isr_after_shrink(LAG_TIME_MAX_MS) is None
        monotonic.now += LAG_TIME_MAX_MS + 1
        assert partition.isr_after_shrink(LAG_TIME_MAX_MS) == [LEADER]

    try:
        asyncio.run(main())
    finally:
        store.close()
