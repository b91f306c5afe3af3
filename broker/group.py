"""The state machine of one consumer group: Kafka's classic group protocol (GroupCoordinator + GroupMetadata).

Members agree on a generation in two phases. **JoinGroup** moves the group to
PreparingRebalance and parks every member's join until all of them have rejoined
(or the rebalance timeout drops the laggards); completing that phase bumps the
generation, picks one protocol every member supports and a leader, and answers
each join - the leader's answer carries everybody's metadata. The leader
computes the assignment itself (the broker never understands it) and sends it
in **SyncGroup**; the followers' syncs wait for it, then every member gets its
share and the group is Stable. **Heartbeat** keeps a session alive and tells a
member to rejoin when a rebalance starts; a session that lapses removes the
member and starts a rebalance.

This module is pure - no sockets, clocks, threads or asyncio - so every rule can be
tested with an explicit ``now`` (ms). The asyncio shell (``group_coordinator``)
keeps one future per waiting member id. Every method returns the caller's own
answer directly (``None`` when it has to wait) plus :class:`Effects`: answers for
*other* waiting requests, and whether the group metadata must be written to
``__consumer_offsets``. There are no timers either: ``next_deadline`` says when
``tick`` has work to do.

Deliberate differences from Kafka: a new member is added at once (no
MEMBER_ID_REQUIRED round trip, KIP-394), so there are no pending members; there
is no pending-sync timeout (sessions cover a member that never syncs); members
that did not rejoin by the rebalance timeout are removed even when static;
LeaveGroup removes a static member only when its instance id is named; an offset
commit does not refresh the session; and a restarted static member is spared a
rebalance only when its protocols are byte-identical (Kafka: when the selected
protocol would not change), so a changed subscription always reaches the leader.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from caudal.broker.group_records import CommittedOffset, StoredGroup, StoredMember
from caudal.common.errors import ErrorCode

__all__ = ["Effects", "Group", "GroupConfig", "GroupState", "JoinRequest", "JoinResult", "Member", "SyncResult"]


class GroupState(str, Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True)
class GroupConfig:
    min_session_timeout_ms: int = 6000  # group.min.session.timeout.ms
    max_session_timeout_ms: int = 1_800_000  # group.max.session.timeout.ms
    initial_rebalance_delay_ms: int = 3000  # group.initial.rebalance.delay.ms
    max_size: int = 2**31 - 1  # group.max.size
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000  # offsets.retention.minutes = 10080


@dataclass
class JoinRequest:
    member_id: str  # "" for a new member
    group_instance_id: str | None  # static membership (KIP-345)
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str  # "consumer", "connect", ...
    protocols: list[tuple[str, bytes]]  # (name, metadata) in the member's preference order


@dataclass
class JoinResult:
    error: ErrorCode
    member_id: str
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)  # only in the leader's result
    skip_assignment: bool = False


@dataclass
class SyncResult:
    error: ErrorCode
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass
class Effects:
    joins: dict[str, JoinResult] = field(default_factory=dict)  # member id -> answer to its waiting JoinGroup
    syncs: dict[str, SyncResult] = field(default_factory=dict)  # member id -> answer to its waiting SyncGroup
    persist: bool = False  # generation, members or assignments changed: write the group record


@dataclass
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    awaiting_join: bool = False
    awaiting_sync: bool = False
    session_deadline: int = 0

    def metadata(self, protocol: str | None) -> bytes:
        return next((meta for name, meta in self.protocols if name == protocol), b"")

    def supports(self, protocol: str) -> bool:
        return any(name == protocol for name, _ in self.protocols)


def _protocols(req: object) -> list[tuple[str, bytes]] | None:
    """The request's protocols as (str, bytes) tuples, or None when the request is malformed.

    Decoding the wire is the shell's job, but a bad request must become an error code
    rather than an exception that would take the coordinator's state down with it.
    """
    if not (
        isinstance(req, JoinRequest)
        and isinstance(req.member_id, str)
        and isinstance(req.group_instance_id, str | None)
        and all(isinstance(v, str) for v in (req.client_id, req.client_host, req.protocol_type))
        and all(isinstance(v, int) for v in (req.session_timeout_ms, req.rebalance_timeout_ms))
        and isinstance(req.protocols, list | tuple)
    ):
        return None
    pairs = [tuple(p) for p in req.protocols if isinstance(p, list | tuple) and len(p) == 2]
    if len(pairs) != len(req.protocols) or not all(isinstance(n, str) and isinstance(m, bytes) for n, m in pairs):
        return None
    return pairs


class Group:
    """One consumer group; see the module docstring for the protocol and the contract with the shell."""

    def __init__(self, group_id: str, config: GroupConfig, new_member_id: Callable[[str], str], now: int = 0) -> None:
        self.group_id = group_id
        self.config = config
        self._new_member_id = new_member_id
        self.state = GroupState.EMPTY
        self.state_timestamp = now  # when the group entered its state: Kafka's currentStateTimestamp
        self.generation_id = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, Member] = {}  # insertion order is join order, which picks a new leader
        self.static_members: dict[str, str] = {}  # group instance id -> member id
        self.offsets: dict[tuple[str, int], CommittedOffset] = {}
        self._rebalance_started = 0
        # Kafka's InitialDelayedJoin: a group rebalancing from Empty waits for more members
        # to show up instead of completing with the first one and rebalancing again at once.
        self._initial_deadline: int | None = None
        self._joined_in_window = False

    @property
    def is_empty(self) -> bool:
        return not self.members

    def expired_offsets(self, now: int, retention_ms: int) -> list[tuple[str, int]]:
        """Offsets past ``offsets.retention.minutes`` (Kafka 2.1+, KIP-211): only an Empty group's
        offsets expire, counted from when the group became empty or the offset was committed,
        whichever is later — an active group keeps its offsets however old they are."""
        if self.state is not GroupState.EMPTY:
            return []
        return [
            key for key, committed in self.offsets.items()
            if max(committed.commit_timestamp, self.state_timestamp) + retention_ms <= now
        ]

    # ---- requests ------------------------------------------------------------------

    def join(self, req: JoinRequest, now: int) -> tuple[str, JoinResult | None, Effects]:
        """JoinGroup: the member id to wait on, the caller's answer if it needs no waiting, and the effects."""
        protocols = _protocols(req)
        asked = req.member_id if protocols is not None else ""
        error = self._join_error(req, protocols)
        if error is not ErrorCode.NONE:
            return asked, JoinResult(error, asked), Effects()
        if req.member_id:
            return self._rejoin(self.members[req.member_id], req, protocols, now)
        if req.group_instance_id in self.static_members:
            return self._replace_static(self.static_members[req.group_instance_id], req, protocols, now)
        member = Member(
            self._new_member_id(req.client_id), req.group_instance_id, req.client_id, req.client_host,
            req.session_timeout_ms, req.rebalance_timeout_ms, req.protocol_type, protocols,
        )
        self.members[member.member_id] = member
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        self._joined_in_window = True  # only read while a delayed initial join is pending
        return self._await_join(member, req, now, Effects())

    def sync(
        self, member_id: str, group_instance_id: str | None, generation_id: int, assignments: dict[str, bytes], now: int
    ) -> tuple[SyncResult | None, Effects]:
        """SyncGroup: followers wait for the leader's assignment; a Stable group answers from what it stored."""
        effects = Effects()
        error = self._member_error(member_id, group_instance_id, generation_id)
        if error is ErrorCode.NONE and self.state is GroupState.PREPARING_REBALANCE:
            error = ErrorCode.REBALANCE_IN_PROGRESS
        if error is not ErrorCode.NONE:
            return SyncResult(error), effects
        member = self.members[member_id]
        member.session_deadline = now + member.session_timeout_ms
        if self.state is GroupState.STABLE:
            return self._sync_result(member), effects
        if member_id != self.leader_id:
            member.awaiting_sync = True
            return None, effects
        given = assignments if isinstance(assignments, dict) else {}
        for m in self.members.values():
            value = given.get(m.member_id, b"")  # Kafka fills members the leader left out with b""
            m.assignment = value if isinstance(value, bytes) else b""
        self._transition(GroupState.STABLE, now)
        for m in self.members.values():
            if m.awaiting_sync:
                m.awaiting_sync = False
                effects.syncs[m.member_id] = self._sync_result(m)
        effects.persist = True
        return self._sync_result(member), effects

    def heartbeat(self, member_id: str, group_instance_id: str | None, generation_id: int, now: int) -> ErrorCode:
        """Keeps the session alive; REBALANCE_IN_PROGRESS is how members learn they must rejoin."""
        error = self._member_error(member_id, group_instance_id, generation_id)
        if error is not ErrorCode.NONE:
            return error
        member = self.members[member_id]
        member.session_deadline = now + member.session_timeout_ms
        if self.state is GroupState.PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave(self, members: list[tuple[str, str | None]], now: int) -> tuple[list[ErrorCode], Effects]:
        """LeaveGroup for each (member id, instance id); an empty member id removes a static member by instance."""
        effects = Effects()
        entries = list(members) if isinstance(members, list | tuple) else []
        if self.state is GroupState.DEAD:
            return [ErrorCode.COORDINATOR_NOT_AVAILABLE] * len(entries), effects
        codes = []
        removed = False
        for entry in entries:
            code, target = self._leaver(entry)
            if target is not None:
                self._remove(target, effects, ErrorCode.UNKNOWN_MEMBER_ID)
                removed = True
            codes.append(code)
        if removed:
            self._prepare_rebalance(now, effects)
            self._maybe_complete_join(now, effects)
        return codes, effects

    def validate_offset_commit(self, member_id: str, group_instance_id: str | None, generation_id: int) -> ErrorCode:
        """May this OffsetCommit be stored (Kafka's validateOffsetCommit)?

        Generation -1 from outside the group (admin client, manual assignment) may commit
        only while the group has no members: otherwise it would overwrite the positions of
        consumers that own those partitions. During CompletingRebalance the member's
        generation is valid but its partitions may already belong to someone else.
        """
        if self.state is GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if not isinstance(generation_id, int):
            return ErrorCode.INVALID_REQUEST
        if generation_id < 0 and self.is_empty:
            return ErrorCode.NONE
        if generation_id >= 0 or member_id or group_instance_id is not None:
            error = self._member_error(member_id, group_instance_id, generation_id)
            if error is not ErrorCode.NONE:
                return error
        elif self.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if self.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    # ---- time and lifecycle ----------------------------------------------------------

    def tick(self, now: int) -> Effects:
        """Expire lapsed sessions and finish a join phase whose delay or timeout ran out."""
        effects = Effects()
        if self.state is GroupState.DEAD:
            return effects
        # A member parked in JoinGroup cannot heartbeat, so only the rebalance timeout judges it.
        expired = [m.member_id for m in self.members.values() if not m.awaiting_join and now >= m.session_deadline]
        for member_id in expired:
            self._remove(member_id, effects, ErrorCode.UNKNOWN_MEMBER_ID)  # a still-waiting SyncGroup learns it is out
        if expired:
            self._prepare_rebalance(now, effects)
        self._maybe_complete_join(now, effects)
        return effects

    def next_deadline(self) -> int | None:
        """The earliest ``now`` at which ``tick`` may change something (None: nothing is timed)."""
        if self.state is GroupState.DEAD:
            return None
        deadlines = [m.session_deadline for m in self.members.values() if not m.awaiting_join]
        if self.state is GroupState.PREPARING_REBALANCE:
            deadlines.append(self._join_deadline())
        return min(deadlines, default=None)

    def shutdown(self) -> Effects:
        """Coordinatorship moved away: waiters must find the new coordinator and retry there."""
        effects = Effects()
        for m in self.members.values():
            if m.awaiting_join:
                effects.joins[m.member_id] = JoinResult(ErrorCode.NOT_COORDINATOR, m.member_id)
            if m.awaiting_sync:
                effects.syncs[m.member_id] = SyncResult(ErrorCode.NOT_COORDINATOR)
            m.awaiting_join = m.awaiting_sync = False
        self.state = GroupState.DEAD
        return effects

    def to_stored(self, now: int) -> StoredGroup:
        """The group record to persist.

        Its timestamp is when the group entered its current state (Kafka's currentStateTimestamp,
        which offset expiration of an Empty group counts from), not ``now``, the time of writing.
        """
        return StoredGroup(
            protocol_type=self.protocol_type or "",
            generation_id=self.generation_id,
            protocol_name=self.protocol_name,
            leader=self.leader_id,
            current_state_timestamp=self.state_timestamp,
            members=tuple(
                StoredMember(
                    m.member_id, m.group_instance_id, m.client_id, m.client_host, m.rebalance_timeout_ms,
                    m.session_timeout_ms, m.metadata(self.protocol_name), m.assignment,
                )
                for m in self.members.values()
            ),
        )

    @classmethod
    def from_stored(
        cls,
        group_id: str,
        stored: StoredGroup | None,
        offsets: dict[tuple[str, int], CommittedOffset],
        config: GroupConfig,
        new_member_id: Callable[[str], str],
        now: int,
    ) -> Group:
        """Rebuild a group from its last record; members get a full session to reach the new coordinator."""
        group = cls(group_id, config, new_member_id, now)
        group.offsets = dict(offsets)
        if stored is None:
            return group
        group.generation_id = stored.generation_id
        group.protocol_type = stored.protocol_type or None
        group.protocol_name = stored.protocol_name
        group.state_timestamp = stored.current_state_timestamp
        for s in stored.members:
            group.members[s.member_id] = Member(
                s.member_id, s.group_instance_id, s.client_id, s.client_host, s.session_timeout_ms,
                s.rebalance_timeout_ms, stored.protocol_type, [(stored.protocol_name or "", s.subscription)],
                assignment=s.assignment, session_deadline=now + s.session_timeout_ms,
            )
            if s.group_instance_id is not None:
                group.static_members[s.group_instance_id] = s.member_id
        if group.members:
            group.state = GroupState.STABLE
            group.leader_id = stored.leader if stored.leader in group.members else next(iter(group.members))
        return group

    # ---- join phase --------------------------------------------------------------------

    def _join_error(self, req: JoinRequest, protocols: list[tuple[str, bytes]] | None) -> ErrorCode:
        if protocols is None:
            return ErrorCode.INVALID_REQUEST
        if not self.config.min_session_timeout_ms <= req.session_timeout_ms <= self.config.max_session_timeout_ms:
            return ErrorCode.INVALID_SESSION_TIMEOUT
        if self.state is GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if req.member_id:
            error = self._member_error(req.member_id, req.group_instance_id, None)
            if error is not ErrorCode.NONE:
                return error
            replaced = req.member_id
        else:
            replaced = self.static_members.get(req.group_instance_id)
            if replaced is None and len(self.members) >= self.config.max_size:
                return ErrorCode.GROUP_MAX_SIZE_REACHED
        # Kafka's supportsProtocols, judged against the *other* members: a member may change
        # its own protocols as long as one of them is still shared by everybody else.
        others = [m for m in self.members.values() if m.member_id != replaced]
        if not req.protocol_type or not protocols:
            return ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        if others and (
            req.protocol_type != self.protocol_type
            or not any(all(m.supports(name) for m in others) for name, _ in protocols)
        ):
            return ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        return ErrorCode.NONE

    def _rejoin(
        self, member: Member, req: JoinRequest, protocols: list[tuple[str, bytes]], now: int
    ) -> tuple[str, JoinResult | None, Effects]:
        """A known member joins again: answered at once if nothing changed, else it triggers a rebalance.

        A leader rejoining a Stable group always rebalances: that is how a consumer leader
        reacts to changes the coordinator cannot see (new partitions of subscribed topics).
        In CompletingRebalance an unchanged rejoin just lost its JoinGroup response.
        """
        unchanged = member.protocols == protocols
        if unchanged and (
            self.state is GroupState.COMPLETING_REBALANCE
            or (self.state is GroupState.STABLE and member.member_id != self.leader_id)
        ):
            member.session_deadline = now + member.session_timeout_ms
            return member.member_id, self._join_result(member), Effects()
        member.protocol_type, member.protocols = req.protocol_type, protocols
        member.session_timeout_ms, member.rebalance_timeout_ms = req.session_timeout_ms, req.rebalance_timeout_ms
        return self._await_join(member, req, now, Effects())

    def _replace_static(
        self, old_id: str, req: JoinRequest, protocols: list[tuple[str, bytes]], now: int
    ) -> tuple[str, JoinResult | None, Effects]:
        """A static member restarted (KIP-345): a new member id takes over its instance id and its place.

        The old id is fenced so a zombie process cannot keep acting for the instance. If the
        group is Stable and nothing changed, the restart costs no rebalance: the member
        re-fetches its old assignment with SyncGroup. A static leader learns it leads but is
        told to skip the assignment (KIP-814), as a Stable group would not distribute it.
        """
        effects = Effects()
        old = self.members[old_id]
        if old.awaiting_join:
            effects.joins[old_id] = JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_id)
        if old.awaiting_sync:
            effects.syncs[old_id] = SyncResult(ErrorCode.FENCED_INSTANCE_ID)
        member = Member(
            self._new_member_id(req.client_id), req.group_instance_id, req.client_id, req.client_host,
            req.session_timeout_ms, req.rebalance_timeout_ms, req.protocol_type, protocols, assignment=old.assignment,
        )
        # Keep the old member's place: join order decides who leads after the current leader.
        self.members = {
            (member.member_id if k == old_id else k): (member if k == old_id else v) for k, v in self.members.items()
        }
        self.static_members[req.group_instance_id] = member.member_id
        if self.leader_id == old_id:
            self.leader_id = member.member_id
        if self.state is GroupState.STABLE and old.protocols == protocols:
            member.session_deadline = now + member.session_timeout_ms
            effects.persist = True
            skip = member.member_id == self.leader_id
            return member.member_id, self._join_result(member, skip_assignment=skip), effects
        return self._await_join(member, req, now, effects)

    def _await_join(
        self, member: Member, req: JoinRequest, now: int, effects: Effects
    ) -> tuple[str, JoinResult | None, Effects]:
        """Park the member's join in a rebalance, which its arrival may complete (then it is answered now)."""
        self.protocol_type = req.protocol_type  # validated: equal to the others', or nobody else is left
        self._prepare_rebalance(now, effects)
        member.awaiting_join = True
        self._maybe_complete_join(now, effects)
        return member.member_id, effects.joins.pop(member.member_id, None), effects

    def _prepare_rebalance(self, now: int, effects: Effects) -> None:
        """Enter PreparingRebalance; pending syncs are answered so their members rejoin."""
        if self.state is GroupState.PREPARING_REBALANCE:
            return
        for m in self.members.values():
            if m.awaiting_sync:
                m.awaiting_sync = False
                effects.syncs[m.member_id] = SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)
            m.assignment = b""
        from_empty = self.state is GroupState.EMPTY
        self._initial_deadline = now + self.config.initial_rebalance_delay_ms if from_empty else None
        self._joined_in_window = False
        self._rebalance_started = now
        self._transition(GroupState.PREPARING_REBALANCE, now)

    def _rebalance_timeout(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def _join_deadline(self) -> int:
        if self._initial_deadline is not None:
            return self._initial_deadline
        return self._rebalance_started + self._rebalance_timeout()

    def _maybe_complete_join(self, now: int, effects: Effects) -> None:
        """Complete the join phase once everyone rejoined, or the initial delay or rebalance timeout ran out.

        The initial delay works in windows, like Kafka's InitialDelayedJoin: when a window
        ends and someone joined during it, one more window follows, up to the rebalance
        timeout. A group starting from scratch therefore forms in one rebalance, not one
        per arriving consumer.
        """
        if self.state is not GroupState.PREPARING_REBALANCE:
            return
        if self.members and self._initial_deadline is not None:
            if now < self._initial_deadline:
                return
            if self._joined_in_window:
                self._joined_in_window = False
                cap = self._rebalance_started + max(self.config.initial_rebalance_delay_ms, self._rebalance_timeout())
                self._initial_deadline = min(self._initial_deadline + self.config.initial_rebalance_delay_ms, cap)
                if now < self._initial_deadline:
                    return
        elif not all(m.awaiting_join for m in self.members.values()) and now < self._join_deadline():
            return
        self._complete_join(now, effects)

    def _complete_join(self, now: int, effects: Effects) -> None:
        for member_id in [m.member_id for m in self.members.values() if not m.awaiting_join]:
            self._remove(member_id, effects, None)  # it never rejoined, so no request of it is waiting
        self.generation_id += 1
        self._initial_deadline = None
        if not self.members:
            self.protocol_name = self.leader_id = None
            self._transition(GroupState.EMPTY, now)
            effects.persist = True
            return
        self.protocol_name = self._select_protocol()
        if self.leader_id is None:
            self.leader_id = next(iter(self.members))
        self._transition(GroupState.COMPLETING_REBALANCE, now)
        for m in self.members.values():
            m.awaiting_join = False
            m.session_deadline = now + m.session_timeout_ms
            effects.joins[m.member_id] = self._join_result(m)

    def _select_protocol(self) -> str | None:
        """Kafka's vote: each member votes for its favourite protocol among those all members support.

        Ties go to the earlier choice of the longest-standing member, so the result is deterministic.
        """
        first, *rest = self.members.values()
        candidates = [name for name, _ in first.protocols if all(m.supports(name) for m in rest)]
        votes = Counter(next((n for n, _ in m.protocols if n in candidates), None) for m in self.members.values())
        return max(candidates, key=votes.__getitem__, default=None)

    # ---- helpers -----------------------------------------------------------------------

    def _transition(self, state: GroupState, now: int) -> None:
        self.state = state
        self.state_timestamp = now

    def _member_error(self, member_id: object, group_instance_id: object, generation_id: object) -> ErrorCode:
        """Kafka's validateCurrentMember, plus the group and generation checks SyncGroup and friends share.

        ``generation_id`` None skips the generation check (JoinGroup has none).
        """
        if self.state is GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if not (
            isinstance(member_id, str)
            and isinstance(group_instance_id, str | None)
            and isinstance(generation_id, int | None)
        ):
            return ErrorCode.INVALID_REQUEST
        if group_instance_id is not None:
            owner = self.static_members.get(group_instance_id)
            if owner is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if owner != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
        elif member_id not in self.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation_id is not None and generation_id != self.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        return ErrorCode.NONE

    def _leaver(self, entry: object) -> tuple[ErrorCode, str | None]:
        """The answer for one LeaveGroup entry and the member id to remove, if any."""
        if not (isinstance(entry, list | tuple) and len(entry) == 2):
            return ErrorCode.INVALID_REQUEST, None
        member_id, instance_id = entry
        if member_id == "" and isinstance(instance_id, str):
            target = self.static_members.get(instance_id)
            return (ErrorCode.NONE, target) if target is not None else (ErrorCode.UNKNOWN_MEMBER_ID, None)
        error = self._member_error(member_id, instance_id, None)
        if error is not ErrorCode.NONE:
            return error, None
        if instance_id is None and self.members[member_id].group_instance_id is not None:
            return ErrorCode.NONE, None  # a static identity outlives its process: only naming the instance removes it
        return ErrorCode.NONE, member_id

    def _remove(self, member_id: str, effects: Effects, answer: ErrorCode | None) -> None:
        """Drop a member; ``answer`` (if any) goes to its waiting join or sync."""
        member = self.members.pop(member_id)
        if answer is not None and member.awaiting_join:
            effects.joins[member_id] = JoinResult(answer, member_id)
        if answer is not None and member.awaiting_sync:
            effects.syncs[member_id] = SyncResult(answer)
        if member.group_instance_id is not None and self.static_members.get(member.group_instance_id) == member_id:
            del self.static_members[member.group_instance_id]
        if self.leader_id == member_id:
            self.leader_id = None  # the next completed join phase elects the longest-standing member

    def _join_result(self, member: Member, skip_assignment: bool = False) -> JoinResult:
        is_leader = member.member_id == self.leader_id
        return JoinResult(
            ErrorCode.NONE, member.member_id, self.generation_id, self.protocol_type, self.protocol_name,
            self.leader_id or "",
            [(m.member_id, m.group_instance_id, m.metadata(self.protocol_name)) for m in self.members.values()]
            if is_leader else [],
            skip_assignment,
        )

    def _sync_result(self, member: Member) -> SyncResult:
        return SyncResult(ErrorCode.NONE, member.assignment, self.protocol_type, self.protocol_name)
