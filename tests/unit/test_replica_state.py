"""High watermark and ISR rules of a partition leader."""

from __future__ import annotations

from caudal.broker.replica_state import LeaderReplicaState


def test_high_watermark_is_the_minimum_over_the_isr_and_never_goes_back() -> None:
    s = LeaderReplicaState(1, [1, 2, 3], now_ms=0)
    assert s.high_watermark(10, [1, 2, 3], 1, current_hw=0) == 0, "followers have not fetched yet"
    s.on_follower_fetch(2, 7, leader_leo=10, now_ms=1)
    s.on_follower_fetch(3, 9, leader_leo=10, now_ms=1)
    assert s.high_watermark(10, [1, 2, 3], 1, current_hw=0) == 7
    assert s.high_watermark(10, [1, 3], 1, current_hw=7) == 9, "a member outside the ISR does not hold the HW back"
    assert s.high_watermark(10, [1, 2, 3], 1, current_hw=9) == 9, "the HW never moves backwards"


def test_high_watermark_waits_while_the_isr_is_below_min_isr() -> None:
    s = LeaderReplicaState(1, [1, 2, 3], now_ms=0)
    assert s.high_watermark(10, [1], 2, current_hw=4) == 4
    assert s.high_watermark(10, [1], 1, current_hw=4) == 10


def test_caught_up_time_follows_kafka_rules() -> None:
    s = LeaderReplicaState(1, [1, 2], now_ms=0)
    s.on_follower_fetch(2, 100, leader_leo=100, now_ms=1_000)  # at the leader's end: caught up now
    assert s.followers[2].last_caught_up_ms == 1_000
    s.on_follower_fetch(2, 150, leader_leo=200, now_ms=2_000)  # behind now, but past where the leader was last time
    assert s.followers[2].last_caught_up_ms == 1_000
    s.on_follower_fetch(2, 200, leader_leo=260, now_ms=3_000)  # reached the previous fetch's leader end
    assert s.followers[2].last_caught_up_ms == 2_000
    s.on_follower_fetch(2, 210, leader_leo=400, now_ms=40_000)  # fell behind
    assert s.lagging([1, 2], now_ms=40_000, lag_time_max_ms=30_000) == [2]
    assert s.lagging([1, 2], now_ms=31_000, lag_time_max_ms=30_000) == []


def test_joining_needs_the_hw_the_epoch_start_and_a_recent_fetch() -> None:
    s = LeaderReplicaState(1, [1, 2, 3], now_ms=0)
    s.on_follower_fetch(2, 50, leader_leo=60, now_ms=1_000)
    assert s.can_join_isr(2, [1, 3], high_watermark=50, epoch_start_offset=40, now_ms=1_000, lag_time_max_ms=30_000)
    assert not s.can_join_isr(2, [1, 3], high_watermark=51, epoch_start_offset=40, now_ms=1_000, lag_time_max_ms=30_000)
    assert not s.can_join_isr(2, [1, 3], high_watermark=50, epoch_start_offset=55, now_ms=1_000, lag_time_max_ms=30_000)
    assert not s.can_join_isr(2, [1, 2, 3], high_watermark=50, epoch_start_offset=40, now_ms=1_000, lag_time_max_ms=30_000)
    assert not s.can_join_isr(2, [1, 3], high_watermark=50, epoch_start_offset=40, now_ms=60_000, lag_time_max_ms=30_000), (
        "progress from a follower that stopped fetching does not count"
    )
    assert not s.can_join_isr(9, [1], high_watermark=0, epoch_start_offset=0, now_ms=0, lag_time_max_ms=30_000)
