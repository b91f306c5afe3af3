"""The controller: decides metadata changes and commits them through the quorum.

Handlers in :mod:`~caudal.controller.control` and :mod:`~caudal.controller.election`
decide; this class serialises the decisions (one at a time, each against the
image the previous one produced), commits their records through the quorum
and retries a decision the quorum rejects as stale. Committed batches arrive
through ``_on_commit`` in log order, on every quorum member; they update the
loop-side image and are streamed to watching brokers.

Only the active controller (the Raft leader) decides; the others answer
NOT_CONTROLLER. The active one also watches broker heartbeats, fences brokers
whose session expired (electing new leaders for their partitions), unfences
brokers that caught up, and moves leadership back to preferred replicas.
Owned by the process's asyncio loop; the request/response types are the
``caudal.v1`` protos, so the gRPC servicer and the in-process broker of
``caudal dev`` call the very same methods.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from typing import AsyncIterator, Callable, TypeVar

from caudal.common.errors import CaudalError, NotControllerError, StaleBrokerEpochError
from caudal.common.metadata import MetadataImage
from caudal.common.tasks import cancel_and_wait
from caudal.controller import control, election
from caudal.controller.control import ControllerDefaults, ControllerResult
from caudal.controller.liveness import DEFAULT_SESSION_TIMEOUT_MS, BrokerLiveness
from caudal.controller.quorum import Quorum, StaleDecisionError
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import controller_pb2 as cpb
from caudal.v1 import metadata_pb2 as md

log = logging.getLogger(__name__)

T = TypeVar("T")
MetadataListener = Callable[[md.MetadataBatch], None]

HISTORY_BATCHES = 2000
"""Recent batches kept for watchers that reconnect; one further behind gets a snapshot."""
DUTY_INTERVAL_S = 0.1
REBALANCE_INTERVAL_S = 30.0
"""How often the active controller moves leadership back to preferred replicas
(Kafka's ``leader.imbalance.check.interval.seconds`` is 300; brokers here come back faster)."""
DECISION_ATTEMPTS = 10


class Controller:
    """One quorum member's controller."""

    def __init__(
        self,
        node_id: int,
        quorum_factory: Callable[[Callable[[md.MetadataBatch], None]], Quorum],
        defaults: ControllerDefaults = ControllerDefaults(),
        session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS,
        cluster_id: str = "",
        clock: Callable[[], int] = lambda: int(time.monotonic() * 1000),
    ) -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.defaults = defaults
        self.session_timeout_ms = session_timeout_ms
        self.image = MetadataImage()
        self.liveness = BrokerLiveness()
        self._clock = clock
        self._quorum = quorum_factory(self._on_commit)
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._history: collections.deque[md.MetadataBatch] = collections.deque(maxlen=HISTORY_BATCHES)
        self._listeners: list[MetadataListener] = []
        self._active = False
        self._duties: asyncio.Task[None] | None = None
        self._last_rebalance = 0.0

    # ---- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._quorum.open()
        self._track_leadership()
        self._duties = asyncio.create_task(self._run_duties(), name=f"controller-{self.node_id}-duties")

    async def stop(self) -> None:
        await cancel_and_wait(self._duties)
        self._quorum.close()

    @property
    def active(self) -> bool:
        return self._active

    def quorum_status(self) -> dict:
        """The Raft member's own view (term, commit index, ...), for DescribeQuorum and metrics."""
        return self._quorum.status()

    @property
    def active_controller_id(self) -> int:
        """The active controller's node id as far as this member knows (-1: none)."""
        return self.node_id if self._active else self._quorum.leader_id()

    def subscribe(self, listener: MetadataListener) -> None:
        """In-process subscription: the current image as a snapshot batch, then every committed batch."""
        listener(md.MetadataBatch(version=self.image.version, records=self.image.snapshot_records(), snapshot=True))
        self._listeners.append(listener)

    # ---- committing ----------------------------------------------------------------

    def _on_commit(self, batch: md.MetadataBatch) -> None:
        """A committed batch (or loaded snapshot), in log order, on the loop."""
        if batch.snapshot:
            image = MetadataImage()
            image.apply_batch(batch)
            self.image = image
            self._history.clear()
        elif batch.version <= self.image.version:
            return
        else:
            self.image.apply_batch(batch)
        self._history.append(batch)
        for listener in self._listeners:
            listener(batch)
        self._changed.set()
        self._changed = asyncio.Event()

    def _require_active(self) -> None:
        if not self._active or not self._quorum.is_leader():
            raise NotControllerError(
                f"controller {self.node_id} is not the active controller (active: {self._quorum.leader_id()})"
            )

    async def _commit(self, decide: Callable[[MetadataImage], ControllerResult[T]]) -> T:
        """Decide against the current image and commit; decide again if the image moved meanwhile."""
        async with self._lock:
            for _ in range(DECISION_ATTEMPTS):
                self._require_active()
                version = self.image.version
                result = decide(self.image)
                if not result.records:
                    return result.response
                try:
                    await self._quorum.append(result.records, version)
                    return result.response
                except StaleDecisionError:
                    changed = self._changed
                    if self.image.version == version:
                        try:
                            await asyncio.wait_for(changed.wait(), 2.0)
                        except asyncio.TimeoutError:
                            pass
            raise NotControllerError("metadata kept changing under the decision; try again")

    # ---- active-controller duties ----------------------------------------------------

    async def _run_duties(self) -> None:
        while True:
            try:
                await self._duty_round()
            except asyncio.CancelledError:
                raise
            except CaudalError as e:
                log.info("event=controller_duty_deferred node=%d reason=%s", self.node_id, e)
            except Exception:
                log.exception("event=controller_duty_failed node=%d", self.node_id)
            await asyncio.sleep(DUTY_INTERVAL_S)

    def _track_leadership(self) -> None:
        leader = self._quorum.is_leader()
        if leader and not self._active:
            self.liveness.reset(self.image, self._clock())
            self._active = True
            self._last_rebalance = time.monotonic()
            log.info("event=became_active_controller node=%d version=%d", self.node_id, self.image.version)
        elif not leader and self._active:
            self._active = False
            log.info("event=resigned_active_controller node=%d", self.node_id)

    async def _duty_round(self) -> None:
        self._track_leadership()
        if not self._active:
            return
        for broker_id in self.liveness.expired(self.image, self._clock(), self.session_timeout_ms):
            log.warning("event=broker_session_expired broker=%d", broker_id)
            await self._commit(lambda image, b=broker_id: election.fence_broker(image, b))
        if time.monotonic() - self._last_rebalance >= REBALANCE_INTERVAL_S:
            self._last_rebalance = time.monotonic()
            await self._commit(election.preferred_leader_rebalance)

    # ---- broker lifecycle ----------------------------------------------------------

    async def register_broker(self, request: cpb.RegisterBrokerRequest) -> cpb.RegisterBrokerResponse:
        try:
            self._require_active()
            broker = self.image.brokers.get(request.broker_id)
            live = broker is not None and not broker.fenced and self.liveness.has_valid_session(
                request.broker_id, broker.broker_epoch, self._clock(), self.session_timeout_ms
            )
            epoch = await self._commit(
                lambda image: election.register_broker(
                    image, request.broker_id, request.host, request.port, request.rack, request.incarnation_id,
                    live=live, registered_incarnation=broker.incarnation_id if broker is not None else None,
                )
            )
        except CaudalError as e:
            return cpb.RegisterBrokerResponse(error_code=int(e.code), error_message=e.message, hint=self._hint())
        self.liveness.heartbeat(request.broker_id, epoch, self._clock())
        log.info("event=broker_registered broker=%d epoch=%d addr=%s:%d", request.broker_id, epoch, request.host, request.port)
        return cpb.RegisterBrokerResponse(broker_epoch=epoch, cluster_id=self.cluster_id, controller_id=self.node_id)

    async def broker_heartbeat(self, request: cpb.BrokerHeartbeatRequest) -> cpb.BrokerHeartbeatResponse:
        try:
            self._require_active()
            broker = self.image.brokers.get(request.broker_id)
            if broker is None or broker.broker_epoch != request.broker_epoch:
                raise StaleBrokerEpochError(
                    f"broker {request.broker_id} epoch {request.broker_epoch} is not the registered one; register again"
                )
            self.liveness.heartbeat(request.broker_id, request.broker_epoch, self._clock())
            if request.want_fence:
                if not broker.fenced:
                    await self._commit(lambda image: election.fence_broker(image, request.broker_id))
            elif broker.fenced and election.should_unfence(
                self.image, request.broker_id, request.broker_epoch, request.metadata_version
            ):
                await self._commit(lambda image: election.unfence_broker(image, request.broker_id, request.broker_epoch))
                log.info("event=broker_unfenced broker=%d epoch=%d", request.broker_id, request.broker_epoch)
        except CaudalError as e:
            return cpb.BrokerHeartbeatResponse(error_code=int(e.code), error_message=e.message, hint=self._hint())
        current = self.image.brokers.get(request.broker_id)
        return cpb.BrokerHeartbeatResponse(fenced=current is None or current.fenced, controller_id=self.node_id)

    async def controlled_shutdown(self, request: cpb.ControlledShutdownRequest) -> cpb.ControlledShutdownResponse:
        try:
            self._require_active()
            remaining = await self._commit(
                lambda image: election.controlled_shutdown(image, request.broker_id, request.broker_epoch)
            )
        except CaudalError as e:
            return cpb.ControlledShutdownResponse(error_code=int(e.code), error_message=e.message, hint=self._hint())
        return cpb.ControlledShutdownResponse(remaining_leaderships=remaining)

    async def alter_partition(self, request: cpb.AlterPartitionRequest) -> cpb.AlterPartitionResponse:
        try:
            self._require_active()
            return await self._commit(lambda image: election.alter_partition(image, request))
        except CaudalError as e:
            return cpb.AlterPartitionResponse(error_code=int(e.code), error_message=e.message, hint=self._hint())

    async def allocate_producer_ids(self, request: cpb.AllocateProducerIdsRequest) -> cpb.AllocateProducerIdsResponse:
        try:
            self._require_active()
            first, count = await self._commit(
                lambda image: election.allocate_producer_ids(image, request.broker_id, request.broker_epoch)
            )
        except CaudalError as e:
            return cpb.AllocateProducerIdsResponse(error_code=int(e.code), error_message=e.message, hint=self._hint())
        return cpb.AllocateProducerIdsResponse(first_producer_id=first, count=count)

    async def watch_metadata(self, request: cpb.WatchMetadataRequest) -> AsyncIterator[md.MetadataBatch]:
        """Batches after ``from_version``: the recent ones from history, else one snapshot; then live."""
        queue: asyncio.Queue[md.MetadataBatch] = asyncio.Queue()
        self._listeners.append(queue.put_nowait)
        try:
            last = request.from_version
            history = [b for b in self._history if b.version > last]
            # A watcher starting from nothing gets the image, not a replay of every past state.
            if last != self.image.version and (last == 0 or not history or history[0].version != last + 1 or history[0].snapshot):
                snapshot = md.MetadataBatch(version=self.image.version, records=self.image.snapshot_records(), snapshot=True)
                history = [snapshot]
            for batch in history:
                last = batch.version
                yield batch
            while True:
                batch = await queue.get()
                if batch.snapshot or batch.version > last:
                    last = batch.version
                    yield batch
        finally:
            self._listeners.remove(queue.put_nowait)

    async def describe_quorum(self, request: pb.DescribeQuorumRequest) -> pb.DescribeQuorumResponse:
        status = self.quorum_status()
        return pb.DescribeQuorumResponse(
            node_id=self.node_id,
            leader_id=self._quorum.leader_id(),
            raft_term=int(status.get("raft_term", 0)),
            commit_index=int(status.get("commit_idx", 0)),
            metadata_version=self.image.version,
        )

    def _hint(self) -> cpb.NotControllerHint:
        return cpb.NotControllerHint(controller_id=self._quorum.leader_id())

    # ---- admin ---------------------------------------------------------------------

    async def create_topics(self, request: pb.CreateTopicsRequest) -> pb.CreateTopicsResponse:
        try:
            response = await self._commit(
                lambda image: control.create_topics(image, request, lambda: uuid.uuid4().bytes, self.defaults)
            )
        except CaudalError as e:
            return pb.CreateTopicsResponse(
                results=[pb.CreateTopicResult(name=t.name, error_code=int(e.code), error_message=e.message) for t in request.topics]
            )
        for r in response.results:
            log.info("event=create_topic topic=%s error=%d partitions=%d", r.name, r.error_code, r.num_partitions)
        return response

    async def delete_topics(self, request: pb.DeleteTopicsRequest) -> pb.DeleteTopicsResponse:
        try:
            return await self._commit(lambda image: control.delete_topics(image, request))
        except CaudalError as e:
            return pb.DeleteTopicsResponse(
                results=[pb.DeleteTopicResult(name=n, error_code=int(e.code), error_message=e.message) for n in request.names]
            )

    async def create_partitions(self, request: pb.CreatePartitionsRequest) -> pb.CreatePartitionsResponse:
        try:
            return await self._commit(lambda image: control.create_partitions(image, request))
        except CaudalError as e:
            return pb.CreatePartitionsResponse(
                results=[pb.DeleteTopicResult(name=t.name, error_code=int(e.code), error_message=e.message) for t in request.topics]
            )

    async def alter_configs(self, request: pb.AlterConfigsRequest) -> pb.AlterConfigsResponse:
        try:
            return await self._commit(lambda image: control.alter_configs(image, request))
        except CaudalError as e:
            return pb.AlterConfigsResponse(
                results=[
                    pb.AlterConfigsResult(
                        resource_type=r.resource_type, resource_name=r.resource_name, error_code=int(e.code), error_message=e.message
                    )
                    for r in request.resources
                ]
            )

    async def elect_leaders(self, request: cpb.ElectLeadersRequest) -> cpb.ElectLeadersResponse:
        try:
            return await self._commit(lambda image: election.elect_leaders(image, request))
        except CaudalError as e:
            return cpb.ElectLeadersResponse(
                results=[
                    cpb.ElectLeadersResult(topic=t.topic, partition=p, error_code=int(e.code), error_message=e.message)
                    for t in request.topics
                    for p in t.partitions
                ]
            )


