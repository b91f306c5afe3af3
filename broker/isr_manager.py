"""Keeps each led partition's ISR true to its followers, through the controller.

The leader decides (a follower caught up: add it; a member lagged past
``replica.lag.time.max.ms``: remove it) and asks the controller with
AlterPartition, stamped with the leader epoch and partition epoch it saw; the
controller rejects a stale request, so a deposed leader cannot change the ISR.
One change per partition is in flight at a time. Owned by the broker's loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Protocol

from caudal.broker.metrics import ISR_EXPANDS, ISR_SHRINKS
from caudal.broker.partition import Partition
from caudal.broker.replica_manager import ReplicaManager
from caudal.common.errors import CaudalError, ErrorCode
from caudal.v1 import controller_pb2 as cpb

log = logging.getLogger(__name__)

DEFAULT_REPLICA_LAG_TIME_MAX_MS = 30_000
"""Kafka's ``replica.lag.time.max.ms``."""


class AlterPartitionLink(Protocol):
    async def alter_partition(self, request: cpb.AlterPartitionRequest) -> cpb.AlterPartitionResponse: ...


class IsrManager:
    """Expands ISRs on follower progress and shrinks them on a periodic lag check."""

    def __init__(
        self,
        replicas: ReplicaManager,
        link: AlterPartitionLink,
        broker_epoch: Callable[[], int],
        lag_time_max_ms: int = DEFAULT_REPLICA_LAG_TIME_MAX_MS,
    ) -> None:
        self.replicas = replicas
        self.link = link
        self.broker_epoch = broker_epoch
        self.lag_time_max_ms = lag_time_max_ms
        self._tasks: set[asyncio.Task[None]] = set()

    def maybe_expand(self, partition: Partition) -> None:
        new_isr = partition.isr_after_expansion(self._eligible, self.lag_time_max_ms)
        if new_isr is not None:
            ISR_EXPANDS.inc()
            self._submit(partition, new_isr, "expand")

    def _eligible(self, broker_id: int) -> bool:
        broker = self.replicas.image.brokers.get(broker_id)
        return broker is not None and not broker.fenced

    async def run(self) -> None:
        """Check for lagging followers every half lag time (Kafka's ISR expiration task)."""
        while True:
            await asyncio.sleep(self.lag_time_max_ms / 2000)
            for partition in list(self.replicas.partitions.values()):
                new_isr = partition.isr_after_shrink(self.lag_time_max_ms)
                if new_isr is not None:
                    ISR_SHRINKS.inc()
                    self._submit(partition, new_isr, "shrink")

    def _submit(self, partition: Partition, new_isr: list[int], why: str) -> None:
        partition.isr_change_pending = True
        request = cpb.AlterPartitionRequest(
            broker_id=partition.broker_id,
            broker_epoch=self.broker_epoch(),
            topic_id=partition.topic_id,
            partition=partition.index,
            leader_epoch=partition.leader_epoch,
            partition_epoch=partition.partition_epoch,
            new_isr=new_isr,
        )
        log.info("event=isr_%s topic=%s partition=%d from=%s to=%s", why, partition.topic, partition.index, partition.isr, new_isr)
        task = asyncio.create_task(self._alter(partition, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _alter(self, partition: Partition, request: cpb.AlterPartitionRequest) -> None:
        try:
            response = await self.link.alter_partition(request)
        except CaudalError as e:
            log.info("event=alter_partition_failed topic=%s partition=%d error=%s", partition.topic, partition.index, e)
            partition.isr_change_pending = False
            return
        if response.error_code:
            log.info(
                "event=alter_partition_rejected topic=%s partition=%d error=%s message=%s",
                partition.topic, partition.index, ErrorCode(response.error_code).name, response.error_message,
            )
            partition.isr_change_pending = False
            return
        p = response.partition
        if p.leader_epoch == partition.leader_epoch and p.partition_epoch > partition.partition_epoch:
            partition.update_state(p.leader, p.leader_epoch, p.partition_epoch, list(p.replicas), list(p.isr))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
