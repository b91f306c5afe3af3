"""Incremental cooperative assignment of Connect work (KIP-415, Kafka's IncrementalCooperativeAssignor).

The property that matters most is this: no connector or task is ever in two members' sets at once, and
nothing a member runs is handed to another member in the same round.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caudal.connect.incremental_assignor import AssignorState, Plan, WorkerLoad, assign, from_json, to_json

CONNECTORS = [f"c{i}" for i in range(4)]
TASKS = [(c, i) for c in CONNECTORS for i in range(3)]


def load(connectors: tuple[str, ...] = (), tasks: tuple[tuple[str, int], ...] = ()) -> WorkerLoad:
    return WorkerLoad(frozenset(connectors), frozenset(tasks))


def spread(assignments: dict[str, WorkerLoad], kind: str) -> int:
    counts = [len(getattr(a, kind)) for a in assignments.values()]
    return max(counts) - min(counts)


def everything(assignments: dict[str, WorkerLoad]) -> WorkerLoad:
    return WorkerLoad(frozenset(c for a in assignments.values() for c in a.connectors),
                      frozenset(t for a in assignments.values() for t in a.tasks))


def nothing_revoked(plan: Plan) -> bool:
    return all(r.is_empty for r in plan.revocations.values())


def check_round(owned: dict[str, WorkerLoad], connectors: list[str], tasks: list[tuple[str, int]], plan: Plan) -> None:
    """The safety rules every round must keep, whatever the input."""
    assert set(plan.assignments) == set(owned)
    for kind in ("connectors", "tasks"):
        holders = Counter(item for a in plan.assignments.values() for item in getattr(a, kind))
        assert all(n == 1 for n in holders.values()), f"{kind} in two members' sets: {holders}"
    for member, new in plan.assignments.items():
        assert new.connectors <= set(connectors) and new.tasks <= set(tasks)
        assert plan.revocations[member] == owned[member] - new
        for other, theirs in owned.items():
            if other != member:
                assert (new & theirs).is_empty, f"{other}'s running work handed to {member} in the same round"


def settle(owned: dict[str, WorkerLoad], state: AssignorState, rounds: int = 4) -> dict[str, WorkerLoad]:
    """Apply plans, with members running exactly their new sets, until the assignment stops changing."""
    for _ in range(rounds):
        plan = assign(owned, CONNECTORS, TASKS, state, now=0.0, max_delay_ms=0)
        check_round(owned, CONNECTORS, TASKS, plan)
        if plan.assignments == owned:
            return owned
        owned = plan.assignments
    raise AssertionError("assignment did not settle")


def three_balanced(state: AssignorState) -> dict[str, WorkerLoad]:
    return settle({"a": WorkerLoad(), "b": WorkerLoad(), "c": WorkerLoad()}, state)


def test_first_round_splits_evenly_without_revocations() -> None:
    state = AssignorState()
    plan = assign({"a": WorkerLoad(), "b": WorkerLoad()}, CONNECTORS, TASKS, state, now=0.0, max_delay_ms=0)
    assert plan.assignments["a"].connectors == {"c0", "c2"}
    assert plan.assignments["b"].connectors == {"c1", "c3"}
    assert len(plan.assignments["a"].tasks) == len(plan.assignments["b"].tasks) == 6
    assert nothing_revoked(plan) and plan.delay_ms == 0
    assert state.previous == plan.assignments and not state.revoked_last_round


def test_joining_member_gets_work_only_after_its_owners_released_it() -> None:
    state = AssignorState()
    two = settle({"a": WorkerLoad(), "b": WorkerLoad()}, state)
    owned = {**two, "c": WorkerLoad()}

    first = assign(owned, CONNECTORS, TASKS, state, now=0.0, max_delay_ms=0)
    check_round(owned, CONNECTORS, TASKS, first)
    assert first.assignments["c"].is_empty
    assert not first.revocations["a"].is_empty and not first.revocations["b"].is_empty
    assert state.revoked_last_round
    freed = first.revocations["a"] | first.revocations["b"]

    second = assign(first.assignments, CONNECTORS, TASKS, state, now=0.0, max_delay_ms=0)
    check_round(first.assignments, CONNECTORS, TASKS, second)
    assert nothing_revoked(second)
    assert second.assignments["c"] == freed
    assert spread(second.assignments, "connectors") <= 1 and spread(second.assignments, "tasks") == 0
    assert not state.revoked_last_round


def test_dead_member_work_moves_to_survivors_at_once_without_delay() -> None:
    state = AssignorState()
    three = three_balanced(state)
    survivors = {m: three[m] for m in ("a", "b")}
    plan = assign(survivors, CONNECTORS, TASKS, state, now=0.0, max_delay_ms=0)
    check_round(survivors, CONNECTORS, TASKS, plan)
    assert nothing_revoked(plan) and plan.delay_ms == 0
    assert plan.assignments["a"] | plan.assignments["b"] == WorkerLoad(frozenset(CONNECTORS), frozenset(TASKS))
    assert plan.assignments["a"] - three["a"] | plan.assignments["b"] - three["b"] == three["c"]


def test_lost_work_is_held_until_the_scheduled_rebalance() -> None:
    state = AssignorState()
    three = three_balanced(state)
    survivors = {m: three[m] for m in ("a", "b")}

    held = assign(survivors, CONNECTORS, TASKS, state, now=10.0, max_delay_ms=3000)
    assert held.assignments == survivors and held.delay_ms == 3000
    assert state.lost == three["c"] and state.delay_deadline == 13.0

    still = assign(survivors, CONNECTORS, TASKS, state, now=11.5, max_delay_ms=3000)
    assert still.assignments == survivors and still.delay_ms == 1500

    due = assign(survivors, CONNECTORS, TASKS, state, now=13.0, max_delay_ms=3000)
    check_round(survivors, CONNECTORS, TASKS, due)
    assert nothing_revoked(due) and due.delay_ms == 0
    assert due.assignments["a"] | due.assignments["b"] == survivors["a"] | survivors["b"] | three["c"]
    assert state.lost.is_empty and state.delay_deadline is None


def test_member_back_within_the_delay_keeps_its_work() -> None:
    state = AssignorState()
    three = three_balanced(state)
    assign({m: three[m] for m in ("a", "b")}, CONNECTORS, TASKS, state, now=10.0, max_delay_ms=3000)

    plan = assign(three, CONNECTORS, TASKS, state, now=11.0, max_delay_ms=3000)
    assert plan.assignments == three and nothing_revoked(plan) and plan.delay_ms == 0
    assert state.lost.is_empty and state.delay_deadline is None


def test_new_member_takes_the_held_lost_work() -> None:
    state = AssignorState()
    three = three_balanced(state)
    assign({m: three[m] for m in ("a", "b")}, CONNECTORS, TASKS, state, now=10.0, max_delay_ms=3000)

    owned = {"a": three["a"], "b": three["b"], "d": WorkerLoad()}
    plan = assign(owned, CONNECTORS, TASKS, state, now=11.0, max_delay_ms=3000)
    check_round(owned, CONNECTORS, TASKS, plan)
    assert plan.assignments["d"] == three["c"]
    assert nothing_revoked(plan) and plan.delay_ms == 0
    assert state.lost.is_empty and state.delay_deadline is None


def test_missing_work_with_every_member_present_is_not_held() -> None:
    """Nobody left, so nobody can come back for it: a member missed its assignment, as Kafka assumes."""
    state = AssignorState()
    three = three_balanced(state)
    owned = {**three, "c": three["c"] - load(tasks=(min(three["c"].tasks),))}
    plan = assign(owned, CONNECTORS, TASKS, state, now=0.0, max_delay_ms=3000)
    assert plan.delay_ms == 0 and state.delay_deadline is None
    assert min(three["c"].tasks) in plan.assignments["c"].tasks


def test_deleted_connector_is_revoked() -> None:
    state = AssignorState()
    owned = {"a": load(("c0", "gone"), (("c0", 0), ("gone", 0))), "b": load(("c1",), (("c1", 0),))}
    plan = assign(owned, ["c0", "c1"], [("c0", 0), ("c1", 0)], state, now=0.0, max_delay_ms=0)
    assert plan.revocations["a"] == load(("gone",), (("gone", 0),))
    assert plan.assignments["a"] == load(("c0",), (("c0", 0),))
    assert plan.revocations["b"].is_empty and plan.assignments["b"] == owned["b"]


def test_duplicated_task_is_revoked_from_both_owners_then_assigned_fresh() -> None:
    state = AssignorState()
    owned = {"a": load(("c0",), (("c0", 0),)), "b": load(("c1",), (("c0", 0), ("c1", 0)))}
    connectors, tasks = ["c0", "c1"], [("c0", 0), ("c1", 0)]
    plan = assign(owned, connectors, tasks, state, now=0.0, max_delay_ms=0)
    check_round(owned, connectors, tasks, plan)
    assert plan.revocations == {"a": load(tasks=(("c0", 0),)), "b": load(tasks=(("c0", 0),))}
    assert all(("c0", 0) not in a.tasks for a in plan.assignments.values())

    after = assign(plan.assignments, connectors, tasks, state, now=0.0, max_delay_ms=0)
    assert nothing_revoked(after)
    assert sum(("c0", 0) in a.tasks for a in after.assignments.values()) == 1


def test_balance_revocations_never_happen_in_two_consecutive_rounds() -> None:
    state = AssignorState()
    tasks = [("c0", i) for i in range(6)]
    first = assign({"a": load(tasks=tuple(tasks)), "b": WorkerLoad()}, [], tasks, state, now=0.0, max_delay_ms=0)
    assert len(first.revocations["a"].tasks) == 3 and state.revoked_last_round

    owned = {**first.assignments, "c": WorkerLoad()}
    second = assign(owned, [], tasks, state, now=0.0, max_delay_ms=0)
    check_round(owned, [], tasks, second)
    assert spread(second.assignments, "tasks") == 2, "still uneven, which a revocation would fix"
    assert nothing_revoked(second) and not state.revoked_last_round

    third = assign(second.assignments, [], tasks, state, now=0.0, max_delay_ms=0)
    assert len(third.revocations["a"].tasks) == 1 and state.revoked_last_round
    fourth = assign(third.assignments, [], tasks, state, now=0.0, max_delay_ms=0)
    assert nothing_revoked(fourth) and spread(fourth.assignments, "tasks") == 0


def test_a_round_needs_a_member() -> None:
    with pytest.raises(ValueError):
        assign({}, CONNECTORS, TASKS, AssignorState(), now=0.0, max_delay_ms=0)


def test_json_shape_round_trips() -> None:
    value = load(("b", "a"), (("b", 1), ("a", 10), ("a", 2)))
    encoded = to_json(value)
    assert encoded == {"connectors": ["a", "b"], "tasks": [["a", 2], ["a", 10], ["b", 1]]}
    assert from_json(encoded) == value
    assert from_json({}) == WorkerLoad()


# ---- properties ------------------------------------------------------------------------------

ANY_CONNECTORS = [f"c{i}" for i in range(6)]
ANY_TASKS = [(c, i) for c in ANY_CONNECTORS for i in range(4)]
MEMBERS = [f"m{i}" for i in range(6)]
loads = st.builds(WorkerLoad, st.frozensets(st.sampled_from(ANY_CONNECTORS)), st.frozensets(st.sampled_from(ANY_TASKS)))


@st.composite
def configs(draw: st.DrawFn) -> tuple[list[str], list[tuple[str, int]]]:
    connectors = draw(st.lists(st.sampled_from(ANY_CONNECTORS), unique=True))
    return connectors, [(c, i) for c in connectors for i in range(draw(st.integers(0, 4)))]


@settings(max_examples=300, deadline=None)
@given(
    members=st.lists(st.sampled_from(MEMBERS), min_size=1, unique=True),
    config=configs(),
    data=st.data(),
    previous=st.dictionaries(st.sampled_from(MEMBERS), loads, max_size=4),
    revoked_last_round=st.booleans(),
)
def test_any_start_stays_safe_and_settles_balanced(
    members: list[str],
    config: tuple[list[str], list[tuple[str, int]]],
    data: st.DataObject,
    previous: dict[str, WorkerLoad],
    revoked_last_round: bool,
) -> None:
    connectors, tasks = config
    owned = {m: data.draw(loads, label=f"owned[{m}]") for m in members}
    state = AssignorState(previous=previous, revoked_last_round=revoked_last_round)
    for _ in range(4):
        balance_revoke_allowed = not state.revoked_last_round
        plan = assign(owned, connectors, tasks, state, now=0.0, max_delay_ms=0)
        check_round(owned, connectors, tasks, plan)
        holders = Counter(item for o in owned.values() for item in [*o.connectors, *o.tasks])
        for_balance = [
            item for r in plan.revocations.values() for item in [*r.connectors, *r.tasks]
            if holders[item] == 1 and (item in connectors or item in tasks)
        ]
        assert balance_revoke_allowed or not for_balance
        assert state.revoked_last_round == bool(for_balance)
        owned = plan.assignments
    assert nothing_revoked(plan) and plan.delay_ms == 0
    assert everything(owned) == WorkerLoad(frozenset(connectors), frozenset(tasks))
    assert spread(owned, "connectors") <= 1 and spread(owned, "tasks") <= 1


@settings(max_examples=200, deadline=None)
@given(data=st.data(), max_delay_ms=st.sampled_from([0, 2000]))
def test_membership_and_config_churn_never_runs_anything_twice(data: st.DataObject, max_delay_ms: int) -> None:
    """Members come and go, and some come back still running old work (zombies). Configs change too."""
    state = AssignorState()
    last_given: dict[str, WorkerLoad] = {}
    now = 0.0
    for step in range(8):
        members = data.draw(st.lists(st.sampled_from(MEMBERS), min_size=1, unique=True), label=f"members@{step}")
        owned = {m: last_given.get(m, WorkerLoad()) if data.draw(st.booleans(), label=f"keeps[{m}]@{step}") else WorkerLoad()
                 for m in members}
        connectors, tasks = data.draw(configs(), label=f"config@{step}")
        now += data.draw(st.floats(0, 3), label=f"elapsed@{step}")
        plan = assign(owned, connectors, tasks, state, now, max_delay_ms)
        check_round(owned, connectors, tasks, plan)
        assert (everything(plan.assignments) & state.lost).is_empty
        assert (plan.delay_ms > 0) == (not state.lost.is_empty) == (state.delay_deadline is not None)
        if max_delay_ms == 0:
            assert plan.delay_ms == 0
        last_given.update(plan.assignments)
