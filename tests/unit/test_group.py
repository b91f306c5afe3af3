"""One consumer group's state machine: Kafka's classic JoinGroup/SyncGroup/Heartbeat/LeaveGroup rules."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caudal.broker.group import Effects, Group, GroupConfig, GroupState, JoinRequest, JoinResult, SyncResult
from caudal.broker.group_records import CommittedOffset
from caudal.common.errors import ErrorCode

SESSION = 10_000
REBALANCE = 30_000
DELAY = 3_000  # GroupConfig's default initial rebalance delay
RANGE = [("range", b"range-meta")]


def counter_ids():
    n = itertools.count(1)
    return lambda client_id: f"{client_id}-{next(n)}"


def new_group(**config) -> Group:
    return Group("g", GroupConfig(**config), counter_ids(), now=0)


def req(
    member_id="", client="c", protocols=RANGE, instance=None, session=SESSION, rebalance=REBALANCE, ptype="consumer"
) -> JoinRequest:
    return JoinRequest(member_id, instance, client, "/10.0.0.1", session, rebalance, ptype, list(protocols))


def settle(group: Group) -> tuple[int, Effects]:
    """Run the timer until the join phase completes, as the shell would; returns the time and the last effects."""
    effects = Effects()
    now = 0
    while group.state is GroupState.PREPARING_REBALANCE:
        now = group.next_deadline()
        effects = group.tick(now)
    return now, effects


def stable(n: int = 3, static: bool = False) -> tuple[Group, list[str], int]:
    """A Stable group of ``n`` members (the first is the leader) that all joined at 0; also the time it stabilised."""
    group = new_group()
    ids = [group.join(req(client=f"c{i}", instance=f"i{i}" if static else None), 0)[0] for i in range(n)]
    now, _ = settle(group)
    for member_id in ids[1:]:
        group.sync(member_id, group.members[member_id].group_instance_id, group.generation_id, {}, now)
    group.sync(ids[0], group.members[ids[0]].group_instance_id, group.generation_id, {m: m.encode() for m in ids}, now)
    assert group.state is GroupState.STABLE and group.leader_id == ids[0]
    return group, ids, now


def rejoin(group: Group, member_id: str, now: int, protocols=RANGE) -> tuple[str, JoinResult | None, Effects]:
    member = group.members[member_id]
    return group.join(req(member_id, member.client_id, protocols, member.group_instance_id), now)


# ---- a full round ---------------------------------------------------------------------------------------


def test_three_members_form_a_generation_after_the_initial_delay():
    group = new_group()
    a, immediate, effects = group.join(req(client="a"), 0)
    assert (immediate, effects) == (None, Effects())
    assert group.state is GroupState.PREPARING_REBALANCE and group.next_deadline() == DELAY
    b = group.join(req(client="b"), 1_000)[0]
    c = group.join(req(client="c"), 2_000)[0]
    assert group.tick(2_999) == Effects()
    # Newcomers arrived during the first window, so Kafka's InitialDelayedJoin waits one more.
    assert group.tick(DELAY) == Effects() and group.next_deadline() == 2 * DELAY
    effects = group.tick(2 * DELAY)

    assert group.state is GroupState.COMPLETING_REBALANCE and group.generation_id == 1
    assert set(effects.joins) == {a, b, c} and not effects.persist
    leader = effects.joins[a]
    assert (leader.error, leader.generation_id, leader.protocol_type, leader.protocol_name, leader.leader) == (
        ErrorCode.NONE, 1, "consumer", "range", a,
    )
    assert leader.members == [(m, None, b"range-meta") for m in (a, b, c)]
    assert effects.joins[b].members == [] and effects.joins[b].leader == a

    assert group.sync(b, None, 1, {}, 7_000) == (None, Effects())
    assert group.sync(c, None, 1, {}, 7_000) == (None, Effects())
    result, effects = group.sync(a, None, 1, {a: b"A", b: b"B"}, 7_000)
    assert result == SyncResult(ErrorCode.NONE, b"A", "consumer", "range")
    assert effects.syncs == {
        b: SyncResult(ErrorCode.NONE, b"B", "consumer", "range"),
        c: SyncResult(ErrorCode.NONE, b"", "consumer", "range"),  # left out by the leader
    }
    assert effects.persist and group.state is GroupState.STABLE
    assert group.sync(b, None, 1, {}, 8_000) == (SyncResult(ErrorCode.NONE, b"B", "consumer", "range"), Effects())


def test_initial_delay_is_capped_by_the_rebalance_timeout():
    group = new_group()
    group.join(req(client="a", rebalance=5_000), 0)
    group.join(req(client="b", rebalance=5_000), 2_000)
    assert group.tick(DELAY) == Effects() and group.next_deadline() == 5_000
    group.join(req(client="c", rebalance=5_000), 4_000)
    assert len(group.tick(5_000).joins) == 3  # a third window would end past 0 + 5000


def test_a_lone_member_waits_exactly_one_window():
    group = new_group()
    a = group.join(req(), 0)[0]
    assert group.tick(DELAY).joins[a].leader == a


def test_new_member_makes_the_others_rejoin():
    group, (a, b, c), now = stable()
    d, immediate, _ = group.join(req(client="d"), now + 1)
    assert immediate is None and group.state is GroupState.PREPARING_REBALANCE
    assert all(group.members[m].assignment == b"" for m in (a, b, c))
    assert group.heartbeat(a, None, 1, now + 2) is ErrorCode.REBALANCE_IN_PROGRESS
    assert rejoin(group, a, now + 3)[1] is None
    assert rejoin(group, b, now + 3)[1] is None
    # No initial delay outside Empty: the last rejoin completes the phase and is answered at once.
    _, result, effects = rejoin(group, c, now + 4)
    assert result.generation_id == 2 and result.leader == a
    assert set(effects.joins) == {a, b, d}
    assert group.heartbeat(a, None, 2, now + 5) is ErrorCode.NONE


def test_session_expiry_removes_a_member_and_starts_a_rebalance():
    group, (a, b, c), now = stable()
    assert group.next_deadline() == now + SESSION
    for member_id in (a, b):
        assert group.heartbeat(member_id, None, 1, now + 5_000) is ErrorCode.NONE
    assert group.tick(now + SESSION - 1) == Effects()
    group.tick(now + SESSION)
    assert set(group.members) == {a, b} and group.state is GroupState.PREPARING_REBALANCE
    assert group.heartbeat(c, None, 1, now + SESSION) is ErrorCode.UNKNOWN_MEMBER_ID
    rejoin(group, a, now + SESSION + 1)
    _, result, effects = rejoin(group, b, now + SESSION + 1)
    assert result.generation_id == 2 and set(effects.joins) == {a}


def test_rebalance_timeout_removes_a_member_that_does_not_rejoin():
    group, (a, b, c), now = stable()
    assert rejoin(group, a, now)[1] is None  # the leader rejoining forces a rebalance
    rejoin(group, b, now + 1_000)
    for t in (5_000, 14_000, 23_000):  # c stays alive but ignores REBALANCE_IN_PROGRESS
        assert group.heartbeat(c, None, 1, now + t) is ErrorCode.REBALANCE_IN_PROGRESS
    assert group.next_deadline() == now + REBALANCE
    effects = group.tick(now + REBALANCE)
    assert set(group.members) == {a, b} and set(effects.joins) == {a, b}
    assert effects.joins[a].members == [(a, None, b"range-meta"), (b, None, b"range-meta")]
    assert group.heartbeat(c, None, 1, now + REBALANCE) is ErrorCode.UNKNOWN_MEMBER_ID


def test_last_member_leaving_empties_the_group():
    group, (a,), _ = stable(1)
    codes, effects = group.leave([(a, None), ("ghost", None)], 50_000)
    assert codes == [ErrorCode.NONE, ErrorCode.UNKNOWN_MEMBER_ID]
    assert effects.persist and group.state is GroupState.EMPTY and group.is_empty
    assert (group.generation_id, group.leader_id, group.protocol_name) == (2, None, None)
    assert group.next_deadline() is None


def test_leave_answers_the_leavers_wait_and_may_complete_the_rebalance():
    group, (a, b, c), now = stable()
    rejoin(group, a, now)
    rejoin(group, b, now)
    codes, effects = group.leave([(b, None), (c, None)], now + 1)
    assert codes == [ErrorCode.NONE, ErrorCode.NONE]
    assert effects.joins[b].error is ErrorCode.UNKNOWN_MEMBER_ID
    assert effects.joins[a].error is ErrorCode.NONE and group.generation_id == 2  # a was the only one left


def test_leave_during_completing_rebalance_sends_waiting_syncs_back_to_join():
    group = new_group()
    a, b, c = (group.join(req(client=x), 0)[0] for x in "abc")
    now, _ = settle(group)
    group.sync(b, None, 1, {}, now)
    group.sync(c, None, 1, {}, now)
    _, effects = group.leave([(c, None)], now + 1)
    assert effects.syncs == {b: SyncResult(ErrorCode.REBALANCE_IN_PROGRESS), c: SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)}
    assert group.state is GroupState.PREPARING_REBALANCE


def test_follower_rejoin_with_the_same_metadata_is_answered_at_once():
    group, (a, b, _), now = stable()
    _, result, effects = rejoin(group, b, now + 1)
    assert result == JoinResult(ErrorCode.NONE, b, 1, "consumer", "range", a, [], False)
    assert effects == Effects() and group.state is GroupState.STABLE and group.generation_id == 1
    _, result, _ = rejoin(group, b, now + 2, protocols=[("range", b"new topics")])
    assert result is None and group.state is GroupState.PREPARING_REBALANCE


def test_lost_join_response_in_completing_rebalance_is_answered_again():
    group = new_group()
    a, b = (group.join(req(client=x), 0)[0] for x in "ab")
    now, _ = settle(group)
    _, result, _ = rejoin(group, a, now + 1)
    assert result.generation_id == 1 and len(result.members) == 2
    assert group.state is GroupState.COMPLETING_REBALANCE


# ---- static membership -------------------------------------------------------------------------------------


def test_static_member_restart_keeps_its_assignment_without_a_rebalance():
    group, (a, b, _), now = stable(static=True)
    new_b, result, effects = group.join(req(client="c1", instance="i1"), now + 1)
    assert new_b != b and effects.persist and group.state is GroupState.STABLE
    assert result == JoinResult(ErrorCode.NONE, new_b, 1, "consumer", "range", a, [], False)
    assert group.static_members["i1"] == new_b and b not in group.members
    assert group.heartbeat(b, "i1", 1, now + 2) is ErrorCode.FENCED_INSTANCE_ID
    assert group.sync(b, "i1", 1, {}, now + 2)[0].error is ErrorCode.FENCED_INSTANCE_ID
    assert group.validate_offset_commit(b, "i1", 1) is ErrorCode.FENCED_INSTANCE_ID
    assert group.sync(new_b, "i1", 1, {}, now + 2)[0].assignment == b.encode()


def test_static_leader_restart_keeps_leading_but_skips_the_assignment():
    group, (a, b, c), now = stable(static=True)
    new_a, result, _ = group.join(req(client="c0", instance="i0"), now + 1)
    assert group.leader_id == new_a and result.leader == new_a and result.skip_assignment
    assert [m for m, _, _ in result.members] == [new_a, b, c]


def test_static_restart_during_a_rebalance_fences_the_old_join():
    group, (a, b, _), now = stable(static=True)
    rejoin(group, a, now)
    rejoin(group, b, now)
    new_b, result, effects = group.join(req(client="c1", instance="i1"), now + 1)
    assert result is None and effects.joins == {b: JoinResult(ErrorCode.FENCED_INSTANCE_ID, b)}
    assert group.members[new_b].awaiting_join


def test_leave_removes_a_static_member_only_by_instance_id():
    group, (_, b, _), now = stable(static=True)
    assert group.leave([(b, None)], now)[0] == [ErrorCode.NONE]
    assert b in group.members and group.state is GroupState.STABLE
    assert group.leave([("other", "i1")], now)[0] == [ErrorCode.FENCED_INSTANCE_ID]
    assert group.leave([("", "i1")], now)[0] == [ErrorCode.NONE]
    assert b not in group.members and "i1" not in group.static_members


def test_joins_with_a_wrong_identity_are_refused():
    group, (a, _, _), now = stable(static=True)
    assert group.join(req("ghost"), now)[1].error is ErrorCode.UNKNOWN_MEMBER_ID
    assert group.join(req(a, instance="i1"), now)[1].error is ErrorCode.FENCED_INSTANCE_ID
    assert group.join(req(a, instance="unknown"), now)[1].error is ErrorCode.UNKNOWN_MEMBER_ID


# ---- protocols and limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preferences", "chosen"),
    [
        ([["range", "roundrobin"], ["roundrobin", "range"], ["roundrobin", "range"]], "roundrobin"),
        ([["range", "roundrobin"], ["roundrobin", "range"]], "range"),  # a tie: the first member's preference
        ([["sticky", "range"], ["range"]], "range"),  # sticky is not supported by everybody
    ],
)
def test_protocol_is_chosen_by_vote(preferences, chosen):
    group = new_group()
    for i, names in enumerate(preferences):
        group.join(req(client=f"c{i}", protocols=[(n, n.encode()) for n in names]), 0)
    _, effects = settle(group)
    assert group.protocol_name == chosen
    leader = effects.joins[group.leader_id]
    assert all(meta == chosen.encode() for _, _, meta in leader.members)


@pytest.mark.parametrize(
    "request_",
    [
        req(protocols=[("sticky", b"")]),  # shares no protocol with the members
        req(protocols=[]),
        req(ptype="connect"),
        req(ptype=""),
    ],
)
def test_inconsistent_group_protocol(request_):
    group, _, now = stable(2)
    assert group.join(request_, now)[1].error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert group.state is GroupState.STABLE


@pytest.mark.parametrize(
    ("session", "error"),
    [
        (5_999, ErrorCode.INVALID_SESSION_TIMEOUT),
        (6_000, None),
        (1_800_000, None),
        (1_800_001, ErrorCode.INVALID_SESSION_TIMEOUT),
    ],
)
def test_session_timeout_must_be_within_the_configured_range(session, error):
    member_id, result, _ = new_group().join(req(session=session), 0)
    assert (result.error if result else None) is error
    assert member_id == ("" if error else "c-1")


def test_group_max_size():
    group = new_group(max_size=2)
    group.join(req(instance="i0"), 0)
    group.join(req(), 0)
    assert group.join(req(), 0)[1] == JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, "")
    assert group.join(req(instance="i0"), 0)[1] is None  # a static restart does not grow the group


def test_malformed_input_is_an_error_not_an_exception():
    group, (a, b, _), now = stable()
    bad = req()
    bad.protocols = [("range",)]
    assert group.join(bad, now)[1].error is ErrorCode.INVALID_REQUEST
    assert group.join(None, now)[1].error is ErrorCode.INVALID_REQUEST
    assert group.heartbeat(["x"], None, 1, now) is ErrorCode.INVALID_REQUEST
    assert group.validate_offset_commit(a, None, "1") is ErrorCode.INVALID_REQUEST
    assert group.leave([("x",), None, (a, 7)], now)[0] == [ErrorCode.INVALID_REQUEST] * 3
    rejoin(group, b, now, protocols=[("range", b"changed")])
    rejoin(group, a, now)
    now, _ = settle(group)
    group.sync(a, None, 2, "not a dict", now)
    assert group.state is GroupState.STABLE and group.members[b].assignment == b""


# ---- validation of sync, heartbeat and commit ------------------------------------------------------------


def test_sync_validation():
    group, (a, b, _), now = stable()
    assert group.sync("ghost", None, 1, {}, now)[0].error is ErrorCode.UNKNOWN_MEMBER_ID
    assert group.sync(b, None, 0, {}, now)[0].error is ErrorCode.ILLEGAL_GENERATION
    assert group.sync(b, "i9", 1, {}, now)[0].error is ErrorCode.UNKNOWN_MEMBER_ID
    rejoin(group, a, now)
    assert group.sync(b, None, 1, {}, now)[0].error is ErrorCode.REBALANCE_IN_PROGRESS


def test_heartbeat_validation():
    assert new_group().heartbeat("ghost", None, 0, 0) is ErrorCode.UNKNOWN_MEMBER_ID
    group = new_group()
    a = group.join(req(), 0)[0]
    now, _ = settle(group)
    assert group.heartbeat(a, None, 1, now) is ErrorCode.NONE  # CompletingRebalance: waiting for the leader
    assert group.heartbeat(a, None, 0, now) is ErrorCode.ILLEGAL_GENERATION
    assert group.members[a].session_deadline == now + SESSION


def test_offset_commit_validation():
    empty = new_group()
    assert empty.validate_offset_commit("", None, -1) is ErrorCode.NONE
    assert empty.validate_offset_commit("ghost", None, 0) is ErrorCode.UNKNOWN_MEMBER_ID

    group = new_group()
    a = group.join(req(), 0)[0]
    settle(group)
    assert group.validate_offset_commit(a, None, 1) is ErrorCode.REBALANCE_IN_PROGRESS
    group.sync(a, None, 1, {a: b"A"}, DELAY)
    assert group.validate_offset_commit(a, None, 1) is ErrorCode.NONE
    assert group.validate_offset_commit(a, None, 0) is ErrorCode.ILLEGAL_GENERATION
    assert group.validate_offset_commit("", None, -1) is ErrorCode.UNKNOWN_MEMBER_ID  # the group has members
    group.shutdown()
    assert group.validate_offset_commit(a, None, 1) is ErrorCode.COORDINATOR_NOT_AVAILABLE


def test_members_commit_before_they_rejoin():
    group, (a, b), now = stable(2)
    rejoin(group, a, now)
    assert group.validate_offset_commit(b, None, 1) is ErrorCode.NONE  # PreparingRebalance, current generation


# ---- persistence and unloading ---------------------------------------------------------------------------


def test_stored_round_trip():
    group, (a, b, c), now = stable(static=True)
    stored = group.to_stored(now + 5)
    assert stored.current_state_timestamp == now  # when it became Stable
    assert [(m.member_id, m.subscription, m.assignment) for m in stored.members] == [
        (m, b"range-meta", m.encode()) for m in (a, b, c)
    ]
    offsets = {("t", 0): CommittedOffset(42)}
    loaded = Group.from_stored("g", stored, offsets, GroupConfig(), counter_ids(), 100_000)
    assert (loaded.state, loaded.generation_id, loaded.leader_id, loaded.protocol_name) == (
        GroupState.STABLE, 1, a, "range",
    )
    assert loaded.offsets == offsets and loaded.static_members == group.static_members
    assert loaded.members[b].session_deadline == 100_000 + SESSION
    assert loaded.to_stored(0) == stored
    assert loaded.sync(b, "i1", 1, {}, 100_001)[0].assignment == b.encode()
    _, result, _ = rejoin(loaded, c, 100_002)
    assert result.generation_id == 1  # same protocols: no rebalance after a coordinator move


def test_loading_a_missing_or_empty_group():
    fresh = Group.from_stored("g", None, {}, GroupConfig(), counter_ids(), 0)
    assert fresh.state is GroupState.EMPTY and fresh.generation_id == 0
    group, (a,), now = stable(1)
    group.leave([(a, None)], now)
    loaded = Group.from_stored("g", group.to_stored(now), {}, GroupConfig(), counter_ids(), now)
    assert loaded.state is GroupState.EMPTY and loaded.generation_id == 2 and loaded.protocol_type == "consumer"


def test_shutdown_answers_every_waiter_with_not_coordinator():
    group = new_group()
    a, b = (group.join(req(client=x), 0)[0] for x in "ab")
    effects = group.shutdown()
    assert effects.joins == {m: JoinResult(ErrorCode.NOT_COORDINATOR, m) for m in (a, b)}
    assert group.state is GroupState.DEAD and group.next_deadline() is None
    assert group.join(req(), 0)[1].error is ErrorCode.COORDINATOR_NOT_AVAILABLE

    group = new_group()
    a, b = (group.join(req(client=x), 0)[0] for x in "ab")
    now, _ = settle(group)
    group.sync(b, None, 1, {}, now)
    assert group.shutdown().syncs == {b: SyncResult(ErrorCode.NOT_COORDINATOR)}


# ---- random operation sequences ----------------------------------------------------------------------


INSTANCES = st.sampled_from([None, None, "i1", "i2"])
WHO = st.integers(0, 20)
GEN = st.integers(-2, 1)
JOIN = st.tuples(
    st.just("join"), WHO, st.booleans(), INSTANCES,
    st.sampled_from([[("range", b"1")], [("range", b"2"), ("rr", b"")], [("rr", b"")], [("sticky", b"")], []]),
    st.sampled_from([500, 1_000, 6_000, 6_000]), st.sampled_from([-1, 0, 2_000, 20_000]),
    st.sampled_from(["consumer", "consumer", "connect"]),
)
SYNC = st.tuples(st.just("sync"), WHO, INSTANCES, GEN, st.booleans())
TICK = st.tuples(st.just("tick"), st.integers(0, 8_000))
OPS = st.lists(
    st.one_of(  # a repeated branch is drawn more often
        JOIN, JOIN, JOIN, SYNC, SYNC, SYNC, TICK, TICK,
        st.tuples(st.just("heartbeat"), WHO, INSTANCES, GEN),
        st.tuples(st.just("commit"), WHO, INSTANCES, GEN),
        st.tuples(st.just("leave"), WHO, INSTANCES),
        st.tuples(st.just("move")),
    ),
    max_size=60,
)


class Model:
    """Plays the shell: tracks which requests are waiting, and checks the group only answers those."""

    def __init__(self) -> None:
        self.config = GroupConfig(min_session_timeout_ms=1_000)
        self.ids = counter_ids()
        self.group = Group("g", self.config, self.ids, 0)
        self.seen = ["", "ghost"]
        self.waiting_joins: set[str] = set()
        self.waiting_syncs: set[str] = set()
        self.generation = 0
        self.now = 0

    def absorb(self, effects: Effects) -> None:
        assert set(effects.joins) <= self.waiting_joins and set(effects.syncs) <= self.waiting_syncs
        self.waiting_joins -= set(effects.joins)
        self.waiting_syncs -= set(effects.syncs)

    def run(self, op: tuple) -> None:
        g, kind = self.group, op[0]
        pool = list(g.members) + self.seen  # current members first: most picks should hit one

        def pick(i: int) -> str:
            return pool[i % len(pool)]

        if kind == "join":
            _, who, new, instance, protocols, session, rebalance, ptype = op
            request = JoinRequest("" if new else pick(who), instance, "c", "h", session, rebalance, ptype, protocols)
            member_id, result, effects = g.join(request, self.now)
            self.absorb(effects)
            if result is None:
                self.waiting_joins.add(member_id)
            elif result.error is ErrorCode.NONE:
                assert result.generation_id == g.generation_id and not g.members[member_id].awaiting_join
            self.seen.append(member_id)
        elif kind == "sync":
            _, who, instance, gen, with_assignment = op
            assignments = {m: m.encode() for m in g.members} if with_assignment else {}
            member_id = pick(who)
            result, effects = g.sync(member_id, instance, g.generation_id + gen, assignments, self.now)
            self.absorb(effects)
            if result is None:
                self.waiting_syncs.add(member_id)
        elif kind == "heartbeat":
            g.heartbeat(pick(op[1]), op[2], g.generation_id + op[3], self.now)
        elif kind == "commit":
            g.validate_offset_commit(pick(op[1]), op[2], g.generation_id + op[3])
        elif kind == "leave":
            codes, effects = g.leave([(pick(op[1]), op[2])], self.now)
            assert len(codes) == 1
            self.absorb(effects)
        elif kind == "tick":
            self.now += op[1]
            self.absorb(g.tick(self.now))
            deadline = g.next_deadline()
            assert deadline is None or deadline > self.now  # the shell's timer never spins
        else:  # the coordinator moves away and back: waiters are answered, the record is reloaded
            self.absorb(g.shutdown())
            self.check()
            late = JoinRequest("", None, "c", "h", 6_000, 0, "consumer", [("range", b"")])
            assert g.join(late, self.now)[1].error is ErrorCode.COORDINATOR_NOT_AVAILABLE
            assert g.tick(self.now) == Effects() and g.next_deadline() is None
            self.group = Group.from_stored("g", g.to_stored(self.now), {}, self.config, self.ids, self.now)
        self.check()

    def check(self) -> None:
        g = self.group
        assert g.generation_id >= self.generation
        self.generation = g.generation_id
        assert g.leader_id is None or g.leader_id in g.members
        assert g.static_members == {m.group_instance_id: i for i, m in g.members.items() if m.group_instance_id}
        # A member removed while its sync waited gets no answer (its session is gone): forget it.
        self.waiting_syncs &= set(g.members)
        assert self.waiting_joins <= set(g.members)
        assert {i for i, m in g.members.items() if m.awaiting_join} == self.waiting_joins
        assert {i for i, m in g.members.items() if m.awaiting_sync} == self.waiting_syncs
        if g.state is GroupState.DEAD:
            return
        assert (g.state is GroupState.EMPTY) == g.is_empty
        if g.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            assert g.leader_id is not None and not self.waiting_joins
        if g.state is GroupState.STABLE:
            assert not self.waiting_syncs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_random_operations_never_raise_and_keep_the_invariants(ops):
    model = Model()
    for op in ops:
        model.run(op)


def test_only_an_empty_groups_offsets_expire_counted_from_when_it_became_empty() -> None:
    retention = 60_000
    group = Group("g", GroupConfig(initial_rebalance_delay_ms=0), lambda client: f"{client}-1", now=0)
    group.offsets[("t", 0)] = CommittedOffset(5, commit_timestamp=0)
    group.offsets[("t", 1)] = CommittedOffset(7, commit_timestamp=50_000)
    assert group.expired_offsets(retention, retention) == [("t", 0)]
    member_id, _, _ = group.join(
        JoinRequest("", None, "c", "/h", 10_000, 10_000, "consumer", [("range", b"")]), now=70_000
    )
    assert group.expired_offsets(10**9, retention) == [], "a group with members keeps its offsets"
    _, effects = group.leave([(member_id, None)], now=200_000)
    assert group.state is GroupState.EMPTY and effects.persist
    assert group.expired_offsets(200_000 + retention - 1, retention) == []
    assert sorted(group.expired_offsets(200_000 + retention, retention)) == [("t", 0), ("t", 1)]
