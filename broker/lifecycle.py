"""A broker's membership in the cluster: register, heartbeat, follow metadata, shut down cleanly.

The same loop runs against the gRPC :class:`ControllerChannel` of a cluster
and against the in-process controller of ``caudal dev``. A broker registers
with a fresh incarnation id on every start and gets a new broker epoch; it
starts fenced and is unfenced by the controller once its heartbeats report it
has applied the metadata that registered it. A heartbeat answered with
STALE_BROKER_EPOCH (the controller fenced this incarnation) makes it register
again. Owned by the broker's asyncio loop; every task is supervised.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import AsyncIterator, Protocol

from caudal.broker.replica_manager import ReplicaManager
from caudal.common.errors import CaudalError, ErrorCode, error_for
from caudal.common.tasks import cancel_and_wait
from caudal.v1 import controller_pb2 as cpb
from caudal.v1 import metadata_pb2 as md

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_INTERVAL_MS = 500
"""Kafka's ``broker.heartbeat.interval.ms`` (2000) is tuned for 9 s sessions; caudal's session is 6 s."""
RETRY_BACKOFF_S = 0.2
CONTROLLED_SHUTDOWN_TIMEOUT_S = 30.0
FINAL_HEARTBEAT_TIMEOUT_S = 5.0


class ControllerLink(Protocol):
    """The controller calls a broker makes (gRPC channel or in-process controller)."""

    async def register_broker(self, request: cpb.RegisterBrokerRequest) -> cpb.RegisterBrokerResponse: ...

    async def broker_heartbeat(self, request: cpb.BrokerHeartbeatRequest) -> cpb.BrokerHeartbeatResponse: ...

    async def controlled_shutdown(self, request: cpb.ControlledShutdownRequest) -> cpb.ControlledShutdownResponse: ...

    async def alter_partition(self, request: cpb.AlterPartitionRequest) -> cpb.AlterPartitionResponse: ...

    async def allocate_producer_ids(self, request: cpb.AllocateProducerIdsRequest) -> cpb.AllocateProducerIdsResponse: ...

    def watch_metadata(self, request: cpb.WatchMetadataRequest) -> AsyncIterator[md.MetadataBatch]: ...


class BrokerLifecycle:
    """Registration, heartbeats and the metadata stream of one broker process."""

    def __init__(
        self,
        broker_id: int,
        host: str,
        port: int,
        rack: str,
        link: ControllerLink,
        replicas: ReplicaManager,
        heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS,
    ) -> None:
        self.broker_id = broker_id
        self.host, self.port, self.rack = host, port, rack
        self.link = link
        self.replicas = replicas
        self.heartbeat_interval_s = heartbeat_interval_ms / 1000
        self.incarnation_id = uuid.uuid4().bytes
        self.broker_epoch = -1
        self.fenced = True
        self.caught_up = asyncio.Event()
        self.unfenced = asyncio.Event()
        self._poke = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._shutting_down = False

    async def start(self) -> None:
        """Register (retrying until a controller accepts), then heartbeat and follow metadata."""
        await self._register()
        self._tasks = [
            asyncio.create_task(self._supervise(self._heartbeats), name=f"broker-{self.broker_id}-heartbeat"),
            asyncio.create_task(self._supervise(self._follow_metadata), name=f"broker-{self.broker_id}-metadata"),
        ]

    async def _register(self) -> None:
        request = cpb.RegisterBrokerRequest(
            broker_id=self.broker_id, host=self.host, port=self.port, rack=self.rack, incarnation_id=self.incarnation_id
        )
        while True:
            try:
                response = await self.link.register_broker(request)
            except CaudalError as e:
                log.info("event=register_retry broker=%d reason=%s", self.broker_id, e)
            else:
                if not response.error_code:
                    self.broker_epoch = response.broker_epoch
                    log.info("event=registered broker=%d epoch=%d", self.broker_id, self.broker_epoch)
                    return
                log.info(
                    "event=register_rejected broker=%d error=%s message=%s",
                    self.broker_id, ErrorCode(response.error_code).name, response.error_message,
                )
            await asyncio.sleep(RETRY_BACKOFF_S)

    async def _supervise(self, body) -> None:  # noqa: ANN001 - a coroutine function
        while True:
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except CaudalError as e:
                log.info("event=broker_task_retry broker=%d task=%s reason=%s", self.broker_id, body.__name__, e)
            except Exception:
                log.exception("event=broker_task_failed broker=%d task=%s", self.broker_id, body.__name__)
            await asyncio.sleep(RETRY_BACKOFF_S)

    async def _heartbeats(self) -> None:
        while True:
            response = await self.link.broker_heartbeat(
                cpb.BrokerHeartbeatRequest(
                    broker_id=self.broker_id,
                    broker_epoch=self.broker_epoch,
                    metadata_version=self.replicas.image.version,
                    want_fence=self._shutting_down,
                )
            )
            if response.error_code == ErrorCode.STALE_BROKER_EPOCH:
                log.warning("event=broker_epoch_stale broker=%d epoch=%d", self.broker_id, self.broker_epoch)
                await self._register()
            elif response.error_code:
                raise error_for(response.error_code, response.error_message)
            elif response.fenced != self.fenced:
                self.fenced = response.fenced
                self.replicas.serving = not self.fenced
                if self.fenced:
                    self.unfenced.clear()
                else:
                    self.unfenced.set()
                log.info("event=broker_%s broker=%d epoch=%d", "fenced" if self.fenced else "unfenced", self.broker_id, self.broker_epoch)
            try:
                await asyncio.wait_for(self._poke.wait(), self.heartbeat_interval_s)
            except asyncio.TimeoutError:
                pass
            self._poke.clear()

    async def _follow_metadata(self) -> None:
        request = cpb.WatchMetadataRequest(broker_id=self.broker_id, from_version=self.replicas.image.version)
        async for batch in self.link.watch_metadata(request):
            self.replicas.apply_metadata(batch)
            broker = self.replicas.image.brokers.get(self.broker_id)
            if broker is not None and broker.broker_epoch == self.broker_epoch and not self.caught_up.is_set():
                self.caught_up.set()
                self._poke.set()  # tell the controller now, not at the next heartbeat

    async def controlled_shutdown(self) -> None:
        """Ask the controller to hand every leadership to another in-sync replica before stopping.

        One accepted request moves everything that can move; partitions with no other
        in-sync replica stay led here until the broker is gone (then they go offline).
        """
        self._shutting_down = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONTROLLED_SHUTDOWN_TIMEOUT_S
        while loop.time() < deadline:
            try:
                response = await self.link.controlled_shutdown(
                    cpb.ControlledShutdownRequest(broker_id=self.broker_id, broker_epoch=self.broker_epoch)
                )
            except CaudalError as e:
                log.info("event=controlled_shutdown_retry broker=%d reason=%s", self.broker_id, e)
            else:
                if not response.error_code:
                    log.info(
                        "event=controlled_shutdown_done broker=%d unmovable_leaderships=%d",
                        self.broker_id, response.remaining_leaderships,
                    )
                    return
                log.info("event=controlled_shutdown_retry broker=%d error=%s", self.broker_id, ErrorCode(response.error_code).name)
            await asyncio.sleep(RETRY_BACKOFF_S)
        log.warning("event=controlled_shutdown_incomplete broker=%d", self.broker_id)

    async def stop(self) -> None:
        """Stop heartbeating; after a controlled shutdown, first ask once more to be fenced.

        A broker fenced on its way out has no live session left, so its next process
        registers at once instead of waiting out the session timeout (Kafka fences a
        broker whose controlled shutdown completed for the same reason).
        """
        await cancel_and_wait(*self._tasks)
        if not self._shutting_down or self.broker_epoch < 0:
            return
        request = cpb.BrokerHeartbeatRequest(
            broker_id=self.broker_id, broker_epoch=self.broker_epoch,
            metadata_version=self.replicas.image.version, want_fence=True,
        )
        try:
            response = await asyncio.wait_for(self.link.broker_heartbeat(request), FINAL_HEARTBEAT_TIMEOUT_S)
            log.info("event=fenced_for_shutdown broker=%d fenced=%s", self.broker_id, response.fenced)
        except (CaudalError, asyncio.TimeoutError) as e:
            log.info("event=final_heartbeat_failed broker=%d reason=%s", self.broker_id, e)
