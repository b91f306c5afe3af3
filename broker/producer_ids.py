"""Hands out producer ids to idempotent producers (Kafka's InitProducerId).

The controller allocates ids in blocks, one broker at a time, through the
replicated metadata log, so no two brokers ever hand out the same id; this
broker serves InitProducerId from its current block and asks for the next when
it runs out. Owned by the broker's asyncio loop.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Protocol

from caudal.common.errors import error_for
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import controller_pb2 as cpb


class ProducerIdLink(Protocol):
    async def allocate_producer_ids(self, request: cpb.AllocateProducerIdsRequest) -> cpb.AllocateProducerIdsResponse: ...


class ProducerIdManager:
    """The broker's current block of producer ids."""

    def __init__(self, broker_id: int, link: ProducerIdLink, broker_epoch: Callable[[], int]) -> None:
        self.broker_id = broker_id
        self.link = link
        self.broker_epoch = broker_epoch
        self._next = 0
        self._end = 0
        self._lock = asyncio.Lock()

    async def init_producer_id(self, request: pb.InitProducerIdRequest) -> pb.InitProducerIdResponse:
        """A fresh producer id at epoch 0 (transactional ids arrive with transactions)."""
        async with self._lock:
            if self._next >= self._end:
                response = await self.link.allocate_producer_ids(
                    cpb.AllocateProducerIdsRequest(broker_id=self.broker_id, broker_epoch=self.broker_epoch())
                )
                if response.error_code:
                    err = error_for(response.error_code, response.error_message)
                    return pb.InitProducerIdResponse(error_code=int(err.code), error_message=err.message, producer_id=-1)
                self._next, self._end = response.first_producer_id, response.first_producer_id + response.count
            producer_id = self._next
            self._next += 1
        return pb.InitProducerIdResponse(producer_id=producer_id, producer_epoch=0)
