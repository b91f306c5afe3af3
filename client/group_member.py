"""Membership of one client in a group: Kafka's AbstractCoordinator on gRPC.

Finds the group's coordinator, joins (JoinGroup, then SyncGroup — the leader
member computes every member's assignment, as in Kafka's classic protocol),
keeps the membership alive with heartbeats and leaves on close. The protocol
payloads are opaque bytes here: the consumer puts its subscription and
partition assignment in them (``consumer_coordinator``), Connect workers their
connector and task assignments. Runs on the client's I/O loop; the flags
``rejoin_needed`` and ``membership_lost`` are read by the polling thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from caudal.client.cluster import MetadataManager
from caudal.common.errors import (
    CaudalError,
    CoordinatorNotAvailableError,
    ErrorCode,
    KafkaTimeoutError,
    error_for,
)
from caudal.v1 import broker_pb2 as pb

log = logging.getLogger(__name__)

Assign = Callable[[str, list[tuple[str, bytes]]], Awaitable[dict[str, bytes]]]
"""The leader's assignment: (protocol name, [(member id, metadata)]) -> member id -> assignment bytes."""

_COORDINATOR_GONE = {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS}
_MEMBERSHIP_GONE = {ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION}
JOIN_EXTRA_S = 5.0
"""Added to the rebalance timeout for a JoinGroup call, which the coordinator holds until the rebalance completes."""


@dataclass(frozen=True)
class MembershipConfig:
    """The group options every member kind shares (Kafka's names, snake_case)."""

    group_id: str
    group_instance_id: str | None
    client_id: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    heartbeat_interval_ms: int
    retry_backoff_ms: int
    request_timeout_ms: int


@dataclass(frozen=True)
class Joined:
    """The outcome of a completed rebalance for this member."""

    generation_id: int
    member_id: str
    protocol_name: str
    leader: bool
    assignment: bytes


class GroupMember:
    """One member's view of its group: identity, generation and the coordinator's address."""

    def __init__(self, config: MembershipConfig, metadata: MetadataManager, protocol_type: str) -> None:
        self.config = config
        self.metadata = metadata
        self.protocol_type = protocol_type
        self.member_id = ""
        self.generation_id = -1
        self.protocol_name = ""
        self.coordinator: str | None = None
        self.rejoin_needed = True
        self.membership_lost = False
        """Set when the coordinator no longer knows this member (session expired, fenced)."""
        self.joining = False
        self.last_poll = time.monotonic()

    # ---- coordinator ----------------------------------------------------------------

    async def _find_coordinator(self) -> str:
        if self.coordinator is not None:
            return self.coordinator
        response = await self.metadata.call_any("FindCoordinator", pb.FindCoordinatorRequest(key=self.config.group_id))
        if response.error_code:
            raise error_for(response.error_code, response.error_message)
        self.coordinator = f"{response.host}:{response.port}"
        log.debug("event=coordinator_found group=%s coordinator=%s", self.config.group_id, self.coordinator)
        return self.coordinator

    async def call(self, method: str, request: Any, timeout_s: float | None = None) -> Any:
        """Send one request to the coordinator; coordinator loss clears the cached address and raises."""
        address = await self._find_coordinator()
        try:
            response = await self.metadata.conns.call(
                address, method, request, timeout_s or self.config.request_timeout_ms / 1000
            )
        except CaudalError:
            self.coordinator = None
            raise
        if response.error_code in _COORDINATOR_GONE:
            self.coordinator = None
        return response

    async def retrying(self, attempt: Callable[[], Awaitable[Any]], timeout_s: float) -> Any:
        """Run ``attempt`` until it succeeds or fails with a non-retriable error, within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return await attempt()
            except CaudalError as exc:
                if not exc.retriable or time.monotonic() + self.config.retry_backoff_ms / 1000 > deadline:
                    raise
                log.debug("event=group_retry group=%s error=%s", self.config.group_id, exc.code.name)
                await asyncio.sleep(self.config.retry_backoff_ms / 1000)

    # ---- join ------------------------------------------------------------------------

    async def join(self, protocols: list[tuple[str, bytes]], assign: Assign, timeout_s: float) -> Joined:
        """JoinGroup + SyncGroup until this member has an assignment for a stable generation."""
        self.joining = True
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise KafkaTimeoutError(f"joining group {self.config.group_id} did not finish in {timeout_s:.1f}s")
                joined = await self.retrying(lambda: self._join_once(protocols, assign), remaining)
                if joined is not None:
                    self.rejoin_needed = False
                    self.membership_lost = False
                    return joined
        finally:
            self.joining = False

    async def _join_once(self, protocols: list[tuple[str, bytes]], assign: Assign) -> Joined | None:
        """One JoinGroup/SyncGroup round; None when the group moved on and the member must join again."""
        cfg = self.config
        response = await self.call(
            "JoinGroup",
            pb.JoinGroupRequest(
                group_id=cfg.group_id, session_timeout_ms=cfg.session_timeout_ms,
                rebalance_timeout_ms=cfg.rebalance_timeout_ms, member_id=self.member_id,
                group_instance_id=cfg.group_instance_id or "", protocol_type=self.protocol_type,
                protocols=[pb.JoinGroupProtocol(name=n, metadata=m) for n, m in protocols], client_id=cfg.client_id,
            ),
            cfg.rebalance_timeout_ms / 1000 + JOIN_EXTRA_S,
        )
        if response.error_code:
            return self._join_error(response.error_code, response.error_message)
        self.member_id, self.generation_id, self.protocol_name = response.member_id, response.generation_id, response.protocol_name
        leader = response.leader == self.member_id
        assignments: dict[str, bytes] = {}
        if leader and not response.skip_assignment:
            assignments = await assign(response.protocol_name, [(m.member_id, m.metadata) for m in response.members])
        sync = await self.call(
            "SyncGroup",
            pb.SyncGroupRequest(
                group_id=cfg.group_id, generation_id=self.generation_id, member_id=self.member_id,
                group_instance_id=cfg.group_instance_id or "", protocol_type=self.protocol_type,
                protocol_name=self.protocol_name,
                assignments=[pb.SyncGroupAssignment(member_id=m, assignment=a) for m, a in assignments.items()],
            ),
        )
        if sync.error_code:
            return self._join_error(sync.error_code, sync.error_message)
        log.info(
            "event=group_joined group=%s member=%s generation=%d protocol=%s leader=%s",
            cfg.group_id, self.member_id, self.generation_id, self.protocol_name, leader,
        )
        return Joined(self.generation_id, self.member_id, self.protocol_name, leader, sync.assignment)

    def _join_error(self, code: int, message: str) -> None:
        if code in _MEMBERSHIP_GONE:
            self.reset()
            return None
        if code == ErrorCode.REBALANCE_IN_PROGRESS:
            return None
        if code in _COORDINATOR_GONE:
            raise CoordinatorNotAvailableError(message or ErrorCode(code).name)
        raise error_for(code, message)

    def reset(self) -> None:
        """Forget the member id and generation (the coordinator no longer knows them)."""
        self.member_id, self.generation_id = "", -1
        self.rejoin_needed = True

    # ---- liveness ----------------------------------------------------------------------

    async def heartbeat_loop(self) -> None:
        """Heartbeat every ``heartbeat_interval_ms`` while in a generation; leave when polling stalls."""
        cfg = self.config
        while True:
            await asyncio.sleep(cfg.heartbeat_interval_ms / 1000)
            if self.joining or self.generation_id < 0:
                continue
            if (time.monotonic() - self.last_poll) * 1000 > cfg.rebalance_timeout_ms:
                log.warning(
                    "event=poll_timeout group=%s member=%s max_poll_interval_ms=%d",
                    cfg.group_id, self.member_id, cfg.rebalance_timeout_ms,
                )
                await self.leave("consumer poll timeout has expired")
                continue
            try:
                response = await self.call(
                    "Heartbeat",
                    pb.HeartbeatRequest(
                        group_id=cfg.group_id, generation_id=self.generation_id, member_id=self.member_id,
                        group_instance_id=cfg.group_instance_id or "",
                    ),
                )
            except CaudalError as exc:
                log.debug("event=heartbeat_failed group=%s error=%s", cfg.group_id, exc.code.name)
                continue
            if response.error_code == ErrorCode.REBALANCE_IN_PROGRESS:
                self.rejoin_needed = True
            elif response.error_code in _MEMBERSHIP_GONE or response.error_code == ErrorCode.FENCED_INSTANCE_ID:
                log.warning("event=membership_lost group=%s member=%s error=%s", cfg.group_id, self.member_id, ErrorCode(response.error_code).name)
                self.reset()
                self.membership_lost = True

    async def leave(self, reason: str) -> None:
        """LeaveGroup so the others rebalance now; static members stay (their session keeps their place)."""
        member_id = self.member_id
        self.reset()
        self.membership_lost = True
        if not member_id or self.config.group_instance_id:
            return
        try:
            await self.call(
                "LeaveGroup",
                pb.LeaveGroupRequest(group_id=self.config.group_id, members=[pb.LeaveGroupMember(member_id=member_id, reason=reason)]),
            )
            log.info("event=group_left group=%s member=%s reason=%s", self.config.group_id, member_id, reason)
        except CaudalError as exc:
            log.debug("event=leave_failed group=%s error=%s", self.config.group_id, exc.code.name)
