"""One partition as this broker hosts it: its log, leadership and high watermark.

The high watermark (HW) is the first offset not yet safe to expose: consumers
read only below it. With replicas it is the minimum log end offset over the
ISR; a replica set of one (``caudal dev``, RF 1) makes it the leader's durable
end offset. Fetches waiting for data park a future here and are woken when the
HW moves. Owned by the broker's asyncio loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from caudal.broker.log import PartitionLog
from caudal.common.errors import NotLeaderOrFollowerError
from caudal.common.record_batch import BatchHeader
from caudal.common.topic_config import TopicConfig


@dataclass
class AppendOutcome:
    """Where a produced payload landed."""

    base_offset: int
    log_append_time: int
    log_start_offset: int


class Partition:
    """A hosted replica of ``topic``-``index``; ``is_leader`` says whether it takes writes."""

    def __init__(self, topic: str, index: int, log: PartitionLog, broker_id: int) -> None:
        self.topic = topic
        self.index = index
        self.log = log
        self.broker_id = broker_id
        self.leader = -1
        self.leader_epoch = -1
        self.replicas: list[int] = []
        self.isr: list[int] = []
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def is_leader(self) -> bool:
        return self.leader == self.broker_id

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    def update_leadership(self, leader: int, leader_epoch: int, replicas: list[int], isr: list[int]) -> None:
        self.leader, self.leader_epoch, self.replicas, self.isr = leader, leader_epoch, list(replicas), list(isr)

    def update_config(self, config: TopicConfig) -> None:
        self.log.config = config

    async def append_as_leader(self, payload: bytes, headers: list[BatchHeader]) -> AppendOutcome:
        """Append a validated producer payload and wait until it is durable per the topic's flush policy."""
        if not self.is_leader:
            raise NotLeaderOrFollowerError(f"Broker {self.broker_id} is not the leader of {self.topic}-{self.index}")
        result = await self.log.append(payload, headers, self.leader_epoch)
        self.advance_high_watermark()
        return AppendOutcome(result.base_offset, result.log_append_time, result.log_start_offset)

    def advance_high_watermark(self) -> None:
        # A replica set of one: everything durable on the leader is committed.
        if self.isr == [self.broker_id] or len(self.replicas) <= 1:
            new_hw = self.log.durable_end_offset
            if new_hw > self.log.high_watermark:
                self.log.update_high_watermark(new_hw)
                self._wake()

    def register_waiter(self, waiter: asyncio.Future[None]) -> None:
        self._waiters.append(waiter)

    def unregister_waiter(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)
