"""Leader-side replica bookkeeping: follower progress, high watermark, ISR changes.

Pure (no I/O, times passed in), so the rules are unit-tested directly:

- A follower's log end offset (LEO) is the offset it asks the leader for.
- A follower is *caught up* at the time of a fetch that reached the leader's LEO,
  or at the time of its previous fetch if this one reached the LEO the leader had
  then (Kafka's ``lastCaughtUpTimeMs``, so a follower that keeps pace with a busy
  leader is never judged lagging).
- HW = min LEO over the ISR, leader included, and it only moves forward; it does
  not move while the ISR is smaller than ``min.insync.replicas`` (KIP-966), so a
  record is never committed on fewer replicas than the topic demands.
- An out-of-sync follower joins the ISR once its LEO reaches the HW and the start
  of the current leader epoch; an ISR member leaves once it has not been caught
  up for ``replica.lag.time.max.ms``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FollowerProgress:
    """What the leader knows of one follower of one partition."""

    leo: int = -1
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0
    last_fetch_leader_leo: int = -1


class LeaderReplicaState:
    """Followers' progress for one partition this broker leads (one leader epoch)."""

    def __init__(self, leader_id: int, replicas: list[int], now_ms: int) -> None:
        self.leader_id = leader_id
        self.followers = {r: FollowerProgress(last_caught_up_ms=now_ms) for r in replicas if r != leader_id}

    def on_follower_fetch(self, replica_id: int, fetch_offset: int, leader_leo: int, now_ms: int) -> None:
        """Record a follower fetch at ``fetch_offset`` while the leader's LEO is ``leader_leo``."""
        f = self.followers.get(replica_id)
        if f is None:
            return
        if fetch_offset >= leader_leo:
            f.last_caught_up_ms = now_ms
        elif fetch_offset >= f.last_fetch_leader_leo >= 0:
            f.last_caught_up_ms = max(f.last_caught_up_ms, f.last_fetch_ms)
        f.leo = fetch_offset
        f.last_fetch_ms = now_ms
        f.last_fetch_leader_leo = leader_leo

    def high_watermark(self, leader_leo: int, isr: list[int], min_isr: int, current_hw: int) -> int:
        """The HW after this fetch or append; never below ``current_hw``."""
        if len(isr) < min_isr:
            return current_hw
        leos = [leader_leo]
        for r in isr:
            if r != self.leader_id:
                f = self.followers.get(r)
                leos.append(f.leo if f is not None else -1)
        return max(current_hw, min(leos))

    def can_join_isr(
        self, replica_id: int, isr: list[int], high_watermark: int, epoch_start_offset: int, now_ms: int, lag_time_max_ms: int
    ) -> bool:
        """Whether an out-of-sync follower has caught up enough to join the ISR.

        It must also have fetched within ``replica.lag.time.max.ms``: progress recorded
        before a follower died must not bring it back.
        """
        f = self.followers.get(replica_id)
        return (
            f is not None
            and replica_id not in isr
            and f.leo >= high_watermark
            and f.leo >= epoch_start_offset
            and now_ms - f.last_fetch_ms <= lag_time_max_ms
        )

    def lagging(self, isr: list[int], now_ms: int, lag_time_max_ms: int) -> list[int]:
        """ISR followers not caught up within ``replica.lag.time.max.ms``."""
        return [
            r for r in isr
            if r != self.leader_id and (f := self.followers.get(r)) is not None and now_ms - f.last_caught_up_ms > lag_time_max_ms
        ]
