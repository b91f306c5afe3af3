"""The group coordinator: serves the consumer-group APIs for the groups this broker owns.

A group belongs to partition ``coordinator_partition(group_id)`` of the compacted
internal topic ``__consumer_offsets``, and the leader of that partition is its
coordinator. Group metadata and committed offsets are written to that partition
as records (acks=all) before they take effect, so they replicate with it; when
leadership moves, the new leader replays the partition and carries on with the
same generations, members and offsets. Membership rules live in the pure
:class:`~caudal.broker.group.Group`; this shell keeps one future per waiting
JoinGroup/SyncGroup, persists what the state machine asks for, and runs the
timer that expires sessions and completes delayed joins. Owned by the broker's
asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Awaitable, Callable

from caudal.broker.group import Effects, Group, GroupConfig, GroupState, JoinRequest, JoinResult, SyncResult
from caudal.broker.group_records import (
    OFFSETS_TOPIC,
    OFFSETS_TOPIC_PARTITIONS,
    CommittedOffset,
    GroupKey,
    OffsetKey,
    coordinator_partition,
    decode_group,
    decode_key,
    decode_offset,
    encode_group,
    encode_key,
    encode_offset,
)
from caudal.broker.partition import Partition
from caudal.broker.replica_manager import ReplicaManager, error_fields
from caudal.common.errors import (
    CaudalError,
    CoordinatorNotAvailableError,
    ErrorCode,
    InvalidGroupIdError,
    InvalidRequestError,
    NotCoordinatorError,
    NotLeaderOrFollowerError,
    UnknownTopicOrPartitionError,
)
from caudal.common.record_batch import build_batch, decode_records, iter_batches, validate_batches
from caudal.v1 import broker_pb2 as pb

log = logging.getLogger(__name__)

OFFSETS_TOPIC_REPLICATION_FACTOR = 3
"""Kafka's ``offsets.topic.replication.factor``; capped by the number of live brokers."""
OFFSETS_TOPIC_CONFIGS = {"cleanup.policy": "compact", "segment.bytes": "104857600"}
OFFSET_METADATA_MAX_BYTES = 4096
"""Kafka's ``offset.metadata.max.bytes``."""
OFFSET_METADATA_TOO_LARGE = 12
WRITE_TIMEOUT_S = 5.0
"""Kafka's ``offsets.commit.timeout.ms``."""
MAX_TIMER_SLEEP_S = 1.0
OFFSETS_RETENTION_CHECK_INTERVAL_MS = 600_000
"""Kafka's ``offsets.retention.check.interval.ms``."""
LOAD_CHUNK_BYTES = 1 << 20
GROUP_COORDINATOR_KEY = 0

CreateTopics = Callable[[pb.CreateTopicsRequest], Awaitable[pb.CreateTopicsResponse]]


def steady_epoch_clock() -> Callable[[], int]:
    """Epoch milliseconds that never step: the wall clock read once, then advanced by the
    monotonic clock. Session, rebalance and join deadlines run on it, so a wall-clock step
    (NTP, a resumed VM, a hand-set date) expires no member; the times it writes (offset
    commits, group records) are still dates, off only by the steps since the broker started."""
    offset = time.time() - time.monotonic()
    return lambda: int((offset + time.monotonic()) * 1000)


def _new_member_id(client_id: str) -> str:
    return f"{client_id or 'member'}-{uuid.uuid4()}"


class GroupCoordinator:
    """Group membership and offsets for the ``__consumer_offsets`` partitions led here."""

    def __init__(
        self,
        replicas: ReplicaManager,
        create_topics: CreateTopics,
        config: GroupConfig = GroupConfig(),
        offsets_partitions: int = OFFSETS_TOPIC_PARTITIONS,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.replicas = replicas
        self.config = config
        self.offsets_partitions = offsets_partitions
        self.clock = clock or steady_epoch_clock()
        self._next_expiry_check = self.clock() + OFFSETS_RETENTION_CHECK_INTERVAL_MS
        self.groups: dict[str, Group] = {}
        self._create_topics = create_topics
        self._loaded: dict[int, int] = {}
        """Offsets partition -> the leader epoch its groups were loaded at."""
        self._joins: dict[tuple[str, str], asyncio.Future[JoinResult]] = {}
        self._syncs: dict[tuple[str, str], asyncio.Future[SyncResult]] = {}
        self._wakeup = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    # ---- ownership and loading ---------------------------------------------------

    def _partition_count(self) -> int:
        topic = self.replicas.image.topics.get(OFFSETS_TOPIC)
        return len(topic.partitions) if topic is not None and topic.partitions else self.offsets_partitions

    def _owned(self, group_id: str) -> tuple[Partition, Group | None]:
        """The offsets partition of ``group_id`` (led here and loaded) and the group, if it exists."""
        if not group_id:
            raise InvalidGroupIdError("The group id must not be empty")
        index = coordinator_partition(group_id, self._partition_count())
        try:
            partition = self.replicas.leader_partition(OFFSETS_TOPIC, index)
        except (NotLeaderOrFollowerError, UnknownTopicOrPartitionError):
            raise NotCoordinatorError(f"Broker {self.replicas.broker_id} is not the coordinator of group {group_id}") from None
        if self._loaded.get(index) != partition.leader_epoch:
            self._load(index, partition)
        return partition, self.groups.get(group_id)

    def _load(self, index: int, partition: Partition) -> None:
        """Replay one offsets partition into groups (newest value per key wins; tombstones delete)."""
        self._unload(index)
        stored: dict[str, bytes | None] = {}
        offsets: dict[str, dict[tuple[str, int], CommittedOffset]] = {}
        plog = partition.log
        position, end = plog.log_start_offset, plog.log_end_offset
        while position < end:
            data = plog.read(position, LOAD_CHUNK_BYTES, end)
            if not data:
                break
            for pos, header in iter_batches(data):
                for record in decode_records(data, pos)[1]:
                    if record.key is None:
                        continue
                    key = decode_key(record.key)
                    if isinstance(key, GroupKey):
                        stored[key.group] = record.value
                    elif record.value is None:
                        offsets.get(key.group, {}).pop((key.topic, key.partition), None)
                    else:
                        offsets.setdefault(key.group, {})[(key.topic, key.partition)] = decode_offset(record.value)
                position = header.next_offset
        now = self.clock()
        for group_id in stored.keys() | offsets.keys():
            value = stored.get(group_id)
            if value is None and not offsets.get(group_id):
                continue
            self.groups[group_id] = Group.from_stored(
                group_id, decode_group(value) if value is not None else None, offsets.get(group_id, {}),
                self.config, _new_member_id, now,
            )
        self._loaded[index] = partition.leader_epoch
        log.info(
            "event=offsets_partition_loaded broker=%d partition=%d leader_epoch=%d groups=%d",
            self.replicas.broker_id, index, partition.leader_epoch, len(self.groups_of(index)),
        )

    def groups_of(self, index: int) -> list[Group]:
        count = self._partition_count()
        return [g for gid, g in self.groups.items() if coordinator_partition(gid, count) == index]

    def _unload(self, index: int) -> None:
        """Coordinatorship of this partition's groups moved away: answer their waiters and forget them."""
        self._loaded.pop(index, None)
        for group in self.groups_of(index):
            self._deliver(group.group_id, group.shutdown())
            del self.groups[group.group_id]

    def _check_ownership(self) -> None:
        for index, epoch in list(self._loaded.items()):
            partition = self.replicas.partitions.get((OFFSETS_TOPIC, index))
            if partition is None or not partition.is_leader or partition.leader_epoch != epoch:
                self._unload(index)
                log.info("event=offsets_partition_unloaded broker=%d partition=%d", self.replicas.broker_id, index)

    def on_leadership_change(self) -> None:
        """Called when metadata changed this broker's leaderships: re-check owned groups now."""
        self._wakeup.set()

    # ---- writes ----------------------------------------------------------------

    async def _write(self, partition: Partition, records: list[tuple[bytes, bytes | None]]) -> None:
        now = self.clock()
        batch = build_batch([(now, key, value, ()) for key, value in records])
        await partition.append_as_leader(batch, validate_batches(batch), -1, WRITE_TIMEOUT_S)

    async def _settle(self, group: Group, effects: Effects) -> ErrorCode:
        """Persist the group if the state machine asks for it, then answer the waiters it names."""
        error = ErrorCode.NONE
        if effects.persist:
            try:
                partition, _ = self._owned(group.group_id)
                await self._write(partition, [(encode_key(GroupKey(group.group_id)), encode_group(group.to_stored(self.clock())))])
            except CaudalError as exc:
                error = exc.code
                log.warning("event=group_store_failed group=%s error=%s", group.group_id, exc.code.name)
                effects.syncs = {m: SyncResult(error=exc.code) for m in effects.syncs}
        self._deliver(group.group_id, effects)
        self._wakeup.set()
        return error

    def _deliver(self, group_id: str, effects: Effects) -> None:
        for waiters, results in ((self._joins, effects.joins), (self._syncs, effects.syncs)):
            for member_id, result in results.items():
                fut = waiters.pop((group_id, member_id), None)
                if fut is not None and not fut.done():
                    fut.set_result(result)

    def _spawn(self, work: Awaitable[object]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _expire_offsets(self, now: int) -> None:
        """Tombstone the offsets of groups that stayed empty past the retention; drop groups left with none."""
        for group in list(self.groups.values()):
            expired = group.expired_offsets(now, self.config.offsets_retention_ms)
            if not expired:
                continue
            try:
                partition, _ = self._owned(group.group_id)
                gone = len(expired) == len(group.offsets)
                tombstones = [(encode_key(OffsetKey(group.group_id, t, p)), None) for t, p in expired]
                await self._write(partition, tombstones + ([(encode_key(GroupKey(group.group_id)), None)] if gone else []))
            except CaudalError as exc:
                log.warning("event=offsets_expiry_failed group=%s error=%s", group.group_id, exc.code.name)
                continue
            for key in expired:
                group.offsets.pop(key, None)
            if gone and group.is_empty:
                self.groups.pop(group.group_id, None)
            log.info("event=offsets_expired broker=%d group=%s partitions=%d", self.replicas.broker_id, group.group_id, len(expired))

    @staticmethod
    def _register(waiters: dict, key: tuple[str, str]) -> asyncio.Future:
        """A future for a member's pending response; a retried request replaces the older one."""
        fut = asyncio.get_running_loop().create_future()
        old = waiters.get(key)
        if old is not None and not old.done():
            old.cancel()
        waiters[key] = fut
        return fut

    @staticmethod
    async def _await(waiters: dict, key: tuple[str, str], fut: asyncio.Future) -> object:
        try:
            return await fut
        finally:
            if waiters.get(key) is fut:
                del waiters[key]

    # ---- the timer ----------------------------------------------------------------

    async def run(self) -> None:
        """Expire sessions, complete delayed joins and drop groups whose partition moved away."""
        while True:
            self._wakeup.clear()
            self._check_ownership()
            now = self.clock()
            deadlines = []
            for group in list(self.groups.values()):
                deadline = group.next_deadline()
                if deadline is not None and deadline <= now:
                    self._spawn(self._settle(group, group.tick(now)))
                    deadline = group.next_deadline()
                if deadline is not None:
                    deadlines.append(deadline)
            if now >= self._next_expiry_check:
                self._next_expiry_check = now + OFFSETS_RETENTION_CHECK_INTERVAL_MS
                self._spawn(self._expire_offsets(now))
            sleep_s = min([MAX_TIMER_SLEEP_S] + [max(0.0, (d - now) / 1000) for d in deadlines])
            try:
                await asyncio.wait_for(self._wakeup.wait(), max(sleep_s, 0.005))
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        for index in list(self._loaded):
            self._unload(index)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # ---- FindCoordinator --------------------------------------------------------

    async def find_coordinator(self, request: pb.FindCoordinatorRequest) -> pb.FindCoordinatorResponse:
        try:
            if request.key_type != GROUP_COORDINATOR_KEY:
                raise InvalidRequestError(f"Unsupported coordinator key type {request.key_type} (0 = group)")
            if not request.key:
                raise InvalidGroupIdError("The group id must not be empty")
            image = self.replicas.image
            if OFFSETS_TOPIC not in image.topics:
                await self._create_offsets_topic()
            topic = self.replicas.image.topics.get(OFFSETS_TOPIC)
            if topic is None:
                raise CoordinatorNotAvailableError(f"{OFFSETS_TOPIC} is being created")
            state = topic.partitions.get(coordinator_partition(request.key, len(topic.partitions)))
            broker = self.replicas.image.brokers.get(state.leader) if state is not None else None
            if broker is None or broker.fenced:
                raise CoordinatorNotAvailableError(f"The coordinator of group {request.key} has no live leader yet")
            return pb.FindCoordinatorResponse(node_id=broker.broker_id, host=broker.host, port=broker.port)
        except Exception as exc:
            code, message = error_fields(exc, "FindCoordinator")
            return pb.FindCoordinatorResponse(error_code=code, error_message=message, node_id=-1)

    async def _create_offsets_topic(self) -> None:
        live = len(self.replicas.image.live_brokers())
        request = pb.CreateTopicsRequest(topics=[pb.CreatableTopic(
            name=OFFSETS_TOPIC, num_partitions=self.offsets_partitions,
            replication_factor=max(1, min(OFFSETS_TOPIC_REPLICATION_FACTOR, live)), configs=OFFSETS_TOPIC_CONFIGS,
        )])
        response = await self._create_topics(request)
        for result in response.results:
            if result.error_code and result.error_code != ErrorCode.TOPIC_ALREADY_EXISTS:
                log.warning("event=offsets_topic_create_failed error=%s", result.error_message)
                return
        if await self.replicas.wait_for_metadata(lambda image: OFFSETS_TOPIC in image.topics, WRITE_TIMEOUT_S):
            log.info("event=offsets_topic_created broker=%d partitions=%d", self.replicas.broker_id, self.offsets_partitions)

    # ---- membership -----------------------------------------------------------------

    async def join_group(self, request: pb.JoinGroupRequest, client_host: str) -> pb.JoinGroupResponse:
        try:
            _, group = self._owned(request.group_id)
        except Exception as exc:
            code, message = error_fields(exc, "JoinGroup")
            return pb.JoinGroupResponse(error_code=code, error_message=message, member_id=request.member_id, generation_id=-1)
        created = group is None
        if group is None:
            group = self.groups[request.group_id] = Group(request.group_id, self.config, _new_member_id, self.clock())
        join = JoinRequest(
            member_id=request.member_id, group_instance_id=request.group_instance_id or None,
            client_id=request.client_id, client_host=client_host, session_timeout_ms=request.session_timeout_ms,
            rebalance_timeout_ms=request.rebalance_timeout_ms or request.session_timeout_ms,
            protocol_type=request.protocol_type, protocols=[(p.name, p.metadata) for p in request.protocols],
        )
        member_id, immediate, effects = group.join(join, self.clock())
        if created and immediate is not None and immediate.error:
            del self.groups[group.group_id]  # a rejected first join leaves no empty group behind
            return _join_response(immediate)
        if immediate is not None:
            error = await self._settle(group, effects)
            if error:
                immediate = JoinResult(error=error, member_id=member_id)
            return _join_response(immediate)
        key = (group.group_id, member_id)
        waiting = self._register(self._joins, key)
        await self._settle(group, effects)
        return _join_response(await self._await(self._joins, key, waiting))

    async def sync_group(self, request: pb.SyncGroupRequest) -> pb.SyncGroupResponse:
        try:
            _, group = self._owned(request.group_id)
            if group is None:
                return pb.SyncGroupResponse(error_code=int(ErrorCode.UNKNOWN_MEMBER_ID), error_message="Unknown group")
        except Exception as exc:
            code, message = error_fields(exc, "SyncGroup")
            return pb.SyncGroupResponse(error_code=code, error_message=message)
        assignments = {a.member_id: a.assignment for a in request.assignments}
        immediate, effects = group.sync(
            request.member_id, request.group_instance_id or None, request.generation_id, assignments, self.clock()
        )
        key = (group.group_id, request.member_id)
        waiting = self._register(self._syncs, key) if immediate is None else None
        error = await self._settle(group, effects)
        result = await self._await(self._syncs, key, waiting) if waiting is not None else immediate
        if error and immediate is not None:
            result = SyncResult(error=error)
        return pb.SyncGroupResponse(
            error_code=int(result.error), error_message=_message(result.error),
            protocol_type=result.protocol_type or "", protocol_name=result.protocol_name or "", assignment=result.assignment,
        )

    async def heartbeat(self, request: pb.HeartbeatRequest) -> pb.HeartbeatResponse:
        try:
            _, group = self._owned(request.group_id)
        except Exception as exc:
            code, message = error_fields(exc, "Heartbeat")
            return pb.HeartbeatResponse(error_code=code, error_message=message)
        if group is None:
            code = ErrorCode.UNKNOWN_MEMBER_ID
        else:
            code = group.heartbeat(request.member_id, request.group_instance_id or None, request.generation_id, self.clock())
        return pb.HeartbeatResponse(error_code=int(code), error_message=_message(code))

    async def leave_group(self, request: pb.LeaveGroupRequest) -> pb.LeaveGroupResponse:
        try:
            _, group = self._owned(request.group_id)
        except Exception as exc:
            code, message = error_fields(exc, "LeaveGroup")
            return pb.LeaveGroupResponse(error_code=code, error_message=message)
        response = pb.LeaveGroupResponse()
        named = [(m.member_id, m.group_instance_id or None) for m in request.members]
        if group is None:
            codes = [ErrorCode.UNKNOWN_MEMBER_ID] * len(named)
        else:
            codes, effects = group.leave(named, self.clock())
            await self._settle(group, effects)
        for (member_id, instance_id), code in zip(named, codes):
            response.members.add(
                member_id=member_id, group_instance_id=instance_id or "", error_code=int(code), error_message=_message(code)
            )
        return response

    # ---- offsets ---------------------------------------------------------------------

    async def offset_commit(self, request: pb.OffsetCommitRequest) -> pb.OffsetCommitResponse:
        response = pb.OffsetCommitResponse()
        try:
            partition, group = self._owned(request.group_id)
            if group is None:
                if request.generation_id >= 0 or request.member_id:
                    return _commit_error(response, ErrorCode.UNKNOWN_MEMBER_ID, f"Group {request.group_id} has no members")
                group = self.groups[request.group_id] = Group(request.group_id, self.config, _new_member_id, self.clock())
            code = group.validate_offset_commit(request.member_id, request.group_instance_id or None, request.generation_id)
            if code:
                return _commit_error(response, code, _message(code))
        except Exception as exc:
            code, message = error_fields(exc, "OffsetCommit")
            response.error_code, response.error_message = code, message
            return response
        now = self.clock()
        accepted: dict[tuple[str, int], CommittedOffset] = {}
        records = []
        topics = self.replicas.image.topics
        for t in request.topics:
            tr = response.topics.add(name=t.name)
            for p in t.partitions:
                pr = tr.partitions.add(partition=p.partition)
                topic = topics.get(t.name)
                if topic is None or p.partition not in topic.partitions:
                    pr.error_code = int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                    pr.error_message = f"Topic-partition {t.name}-{p.partition} does not exist"
                elif len(p.committed_metadata.encode()) > OFFSET_METADATA_MAX_BYTES:
                    pr.error_code = OFFSET_METADATA_TOO_LARGE
                    pr.error_message = f"Offset metadata is larger than offset.metadata.max.bytes={OFFSET_METADATA_MAX_BYTES}"
                elif p.committed_offset < 0:
                    pr.error_code = int(ErrorCode.INVALID_REQUEST)
                    pr.error_message = f"Committed offset must be >= 0, got {p.committed_offset}"
                else:
                    value = CommittedOffset(p.committed_offset, p.committed_leader_epoch, p.committed_metadata, now)
                    accepted[(t.name, p.partition)] = value
                    records.append((encode_key(OffsetKey(group.group_id, t.name, p.partition)), encode_offset(value)))
        if records:
            try:
                await self._write(partition, records)
                group.offsets.update(accepted)
            except Exception as exc:
                code, message = error_fields(exc, "OffsetCommit")
                for tr in response.topics:
                    for pr in tr.partitions:
                        if (tr.name, pr.partition) in accepted:
                            pr.error_code, pr.error_message = code, message
        return response

    async def offset_fetch(self, request: pb.OffsetFetchRequest) -> pb.OffsetFetchResponse:
        response = pb.OffsetFetchResponse()
        try:
            _, group = self._owned(request.group_id)
        except Exception as exc:
            response.error_code, response.error_message = error_fields(exc, "OffsetFetch")
            return response
        offsets = group.offsets if group is not None else {}
        wanted: dict[str, list[int]] = {}
        if request.topics:
            for t in request.topics:
                wanted.setdefault(t.name, []).extend(t.partitions)
        else:
            for topic, index in sorted(offsets):
                wanted.setdefault(topic, []).append(index)
        for topic, indexes in wanted.items():
            tr = response.topics.add(name=topic)
            for index in indexes:
                committed = offsets.get((topic, index))
                if committed is None:
                    tr.partitions.add(partition=index, committed_offset=-1, committed_leader_epoch=-1)
                else:
                    tr.partitions.add(
                        partition=index, committed_offset=committed.offset,
                        committed_leader_epoch=committed.leader_epoch, metadata=committed.metadata,
                    )
        return response

    # ---- group admin --------------------------------------------------------------

    def list_groups(self, request: pb.ListGroupsRequest) -> pb.ListGroupsResponse:
        self._check_ownership()
        states = {s.lower() for s in request.states_filter}
        response = pb.ListGroupsResponse()
        for group_id in sorted(self.groups):
            group = self.groups[group_id]
            if states and group.state.value.lower() not in states:
                continue
            response.groups.add(group_id=group_id, protocol_type=group.protocol_type or "", group_state=group.state.value)
        return response

    def describe_groups(self, request: pb.DescribeGroupsRequest) -> pb.DescribeGroupsResponse:
        response = pb.DescribeGroupsResponse()
        for group_id in request.groups:
            described = response.groups.add(group_id=group_id)
            try:
                _, group = self._owned(group_id)
            except Exception as exc:
                described.error_code, described.error_message = error_fields(exc, "DescribeGroups")
                continue
            if group is None:
                described.group_state = GroupState.DEAD.value
                continue
            described.group_state = group.state.value
            described.protocol_type = group.protocol_type or ""
            described.protocol_data = group.protocol_name or ""
            described.generation_id = group.generation_id
            described.leader = group.leader_id or ""
            for member in group.members.values():
                metadata = dict(member.protocols).get(group.protocol_name or "", b"")
                described.members.add(
                    member_id=member.member_id, group_instance_id=member.group_instance_id or "",
                    client_id=member.client_id, client_host=member.client_host,
                    member_metadata=metadata, member_assignment=member.assignment,
                )
        return response

    async def delete_groups(self, request: pb.DeleteGroupsRequest) -> pb.DeleteGroupsResponse:
        response = pb.DeleteGroupsResponse()
        for group_id in request.groups:
            result = response.results.add(group_id=group_id)
            try:
                partition, group = self._owned(group_id)
                if group is None or (group.is_empty and not group.offsets and group.generation_id == 0):
                    result.error_code, result.error_message = int(ErrorCode.GROUP_ID_NOT_FOUND), f"Group {group_id} does not exist"
                    continue
                if not group.is_empty:
                    result.error_code = int(ErrorCode.NON_EMPTY_GROUP)
                    result.error_message = f"Group {group_id} still has {len(group.members)} members"
                    continue
                tombstones = [(encode_key(OffsetKey(group_id, t, p)), None) for t, p in group.offsets]
                await self._write(partition, tombstones + [(encode_key(GroupKey(group_id)), None)])
                self.groups.pop(group_id, None)
                log.info("event=group_deleted broker=%d group=%s", self.replicas.broker_id, group_id)
            except Exception as exc:
                result.error_code, result.error_message = error_fields(exc, "DeleteGroups")
        return response


def _message(code: ErrorCode) -> str:
    return "" if code == ErrorCode.NONE else code.name


def _commit_error(response: pb.OffsetCommitResponse, code: ErrorCode, message: str) -> pb.OffsetCommitResponse:
    response.error_code, response.error_message = int(code), message
    return response


def _join_response(result: JoinResult) -> pb.JoinGroupResponse:
    response = pb.JoinGroupResponse(
        error_code=int(result.error), error_message=_message(result.error), generation_id=result.generation_id,
        protocol_type=result.protocol_type or "", protocol_name=result.protocol_name or "",
        leader=result.leader, skip_assignment=result.skip_assignment, member_id=result.member_id,
    )
    for member_id, instance_id, metadata in result.members:
        response.members.add(member_id=member_id, group_instance_id=instance_id or "", metadata=metadata)
    return response
