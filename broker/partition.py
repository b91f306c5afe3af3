"""One partition as this broker hosts it: its log, its role, its high watermark.

As leader it takes producer appends, tracks its followers' progress
(:class:`LeaderReplicaState`) and moves the high watermark (HW) — the first
offset not yet committed on the whole ISR. Consumers read only below the HW
and ``acks=all`` producers are answered once the HW passes their batch. As
follower it only appends what its replica fetcher brings and takes the HW the
leader reports. Fetches waiting for data (consumers on the HW, followers on
the log end) park a future here and are woken when it moves. Owned by the
broker's asyncio loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable

from caudal.broker.log import PartitionLog
from caudal.broker.replica_state import FollowerProgress, LeaderReplicaState
from caudal.common.errors import NotEnoughReplicasError, NotLeaderOrFollowerError, RequestTimedOutError
from caudal.common.record_batch import BatchHeader
from caudal.common.tasks import wait_or_time_out
from caudal.common.topic_config import TopicConfig


@dataclass
class AppendOutcome:
    """Where a produced payload landed."""

    base_offset: int
    log_append_time: int
    log_start_offset: int


class _Waiters:
    """Futures parked until something moves; woken all at once."""

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[None]] = []

    def add(self, fut: "asyncio.Future[None]") -> None:
        self._futures.append(fut)

    def remove(self, fut: "asyncio.Future[None]") -> None:
        try:
            self._futures.remove(fut)
        except ValueError:
            pass

    def wake(self) -> None:
        futures, self._futures = self._futures, []
        for f in futures:
            if not f.done():
                f.set_result(None)


async def park(waiters: "list[_Waiters]", timeout_s: float) -> None:
    """Wait until any of ``waiters`` is woken, or ``timeout_s`` passes (long-poll fetches)."""
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    for w in waiters:
        w.add(fut)
    try:
        await wait_or_time_out(fut, timeout_s)
    except asyncio.TimeoutError:
        pass
    finally:
        for w in waiters:
            w.remove(fut)


class Partition:
    """A hosted replica of ``topic``-``index``."""

    def __init__(self, topic: str, index: int, topic_id: bytes, log: PartitionLog, broker_id: int, lag_clock: Callable[[], int]) -> None:
        self.topic = topic
        self.index = index
        self.topic_id = topic_id
        self.log = log
        self.broker_id = broker_id
        self.lag_clock = lag_clock
        """Monotonic ms for follower progress and lag (ISR changes)."""
        self.leader = -1
        self.leader_epoch = -1
        self.partition_epoch = -1
        self.replicas: list[int] = []
        self.isr: list[int] = []
        self.replica_state: LeaderReplicaState | None = None
        self.epoch_start_offset = 0
        self.isr_change_pending = False
        self.hw_waiters = _Waiters()
        self.append_waiters = _Waiters()
        self._acks: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def is_leader(self) -> bool:
        return self.leader == self.broker_id

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def min_isr(self) -> int:
        return self.log.config.min_insync_replicas

    def update_config(self, config: TopicConfig) -> None:
        self.log.config = config

    def update_state(self, leader: int, leader_epoch: int, partition_epoch: int, replicas: list[int], isr: list[int]) -> bool:
        """Apply the partition's metadata; returns True when this broker's role or leader changed."""
        changed = leader != self.leader or leader_epoch != self.leader_epoch
        self.replicas, self.isr, self.partition_epoch = list(replicas), list(isr), partition_epoch
        self.isr_change_pending = False
        if changed:
            was_leader = self.is_leader
            self.leader, self.leader_epoch = leader, leader_epoch
            if self.is_leader:
                self.replica_state = LeaderReplicaState(self.broker_id, self.replicas, self.lag_clock())
                self.epoch_start_offset = self.log.log_end_offset
                self.log.assign_leader_epoch(leader_epoch)
            else:
                self.replica_state = None
                if was_leader:
                    self._fail_acks(NotLeaderOrFollowerError(f"{self.topic}-{self.index}: leadership moved to {leader}"))
        elif self.is_leader and self.replica_state is not None:
            for r in self.replicas:
                if r != self.broker_id and r not in self.replica_state.followers:
                    self.replica_state.followers[r] = FollowerProgress(last_caught_up_ms=self.lag_clock())
        if self.is_leader:
            self.maybe_advance_high_watermark()
        return changed

    # ---- leader: appends and acks ---------------------------------------------------

    async def append_as_leader(self, payload: bytes, headers: list[BatchHeader], acks: int, timeout_s: float) -> AppendOutcome:
        """Append a validated producer payload; with ``acks=-1`` wait until the ISR has it."""
        if not self.is_leader:
            raise NotLeaderOrFollowerError(f"Broker {self.broker_id} is not the leader of {self.topic}-{self.index}")
        if acks == -1 and len(self.isr) < self.min_isr:
            raise NotEnoughReplicasError(
                f"{self.topic}-{self.index} has {len(self.isr)} in-sync replicas ({self.isr}), "
                f"fewer than min.insync.replicas={self.min_isr}"
            )
        written = self.log.append(payload, headers, self.leader_epoch)
        self.append_waiters.wake()  # followers fetch the batches while they are being written here
        result = await written
        self.maybe_advance_high_watermark()
        if acks == -1:
            await self._wait_committed(result.last_offset + 1, timeout_s)
        return AppendOutcome(result.base_offset, result.log_append_time, result.log_start_offset)

    async def _wait_committed(self, offset: int, timeout_s: float) -> None:
        if self.high_watermark >= offset:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (offset, fut)
        self._acks.append(entry)
        try:
            await wait_or_time_out(fut, timeout_s)
        except asyncio.TimeoutError:
            raise RequestTimedOutError(
                f"{self.topic}-{self.index}: not replicated to the ISR {self.isr} within {timeout_s:.1f} s"
            ) from None
        finally:
            if entry in self._acks:
                self._acks.remove(entry)

    def _fail_acks(self, error: Exception) -> None:
        acks, self._acks = self._acks, []
        for _, fut in acks:
            if not fut.done():
                fut.set_exception(error)

    def maybe_advance_high_watermark(self) -> None:
        """Leader: recompute the HW from the ISR's progress; wake consumers and acks=all producers."""
        if self.replica_state is None:
            return
        hw = self.replica_state.high_watermark(self.log.durable_end_offset, self.isr, self.min_isr, self.log.high_watermark)
        if hw > self.log.high_watermark:
            self.log.update_high_watermark(hw)
            self.hw_waiters.wake()
            if self._acks:
                done = [(o, f) for o, f in self._acks if o <= hw]
                self._acks = [(o, f) for o, f in self._acks if o > hw]
                for _, fut in done:
                    if not fut.done():
                        fut.set_result(None)

    # ---- leader: followers ------------------------------------------------------------

    def on_follower_fetch(self, replica_id: int, fetch_offset: int) -> None:
        assert self.replica_state is not None
        self.replica_state.on_follower_fetch(replica_id, fetch_offset, self.log.durable_end_offset, self.lag_clock())
        self.maybe_advance_high_watermark()

    def isr_after_expansion(self, eligible: Callable[[int], bool], lag_time_max_ms: int) -> list[int] | None:
        """The ISR with every eligible follower that caught up added, or None when nobody joins.

        ``eligible`` says whether a broker may join at all (registered and unfenced in
        the metadata this broker has), as the controller would otherwise reject the change.
        """
        if self.replica_state is None or self.isr_change_pending or len(self.isr) >= len(self.replicas):
            return None  # (asked on every follower fetch: the full-ISR case must cost nothing)
        now = self.lag_clock()
        state = self.replica_state
        joining = [
            r for r in self.replicas
            if r != self.broker_id
            and eligible(r)
            and state.can_join_isr(r, self.isr, self.high_watermark, self.epoch_start_offset, now, lag_time_max_ms)
        ]
        return [*self.isr, *joining] if joining else None

    def isr_after_shrink(self, lag_time_max_ms: int) -> list[int] | None:
        """The ISR without followers lagging past ``replica.lag.time.max.ms``, or None."""
        if self.replica_state is None or self.isr_change_pending:
            return None
        lagging = self.replica_state.lagging(self.isr, self.lag_clock(), lag_time_max_ms)
        return [r for r in self.isr if r not in lagging] if lagging else None

    # ---- follower ---------------------------------------------------------------------

    def follow_high_watermark(self, leader_hw: int) -> None:
        """Follower: take the leader's HW, capped at what this replica has."""
        hw = min(leader_hw, self.log.log_end_offset)
        if hw > self.log.high_watermark:
            self.log.update_high_watermark(hw)
            self.hw_waiters.wake()

    def resign(self, error: Exception) -> None:
        """The partition is going away here: fail parked acks."""
        self._fail_acks(error)
        self.hw_waiters.wake()
        self.append_waiters.wake()
