"""Incremental cooperative assignment of connectors and tasks to Connect workers (KIP-415).

Kafka Connect's original "eager" protocol stopped every connector and task on every worker at each
rebalance, even when only one worker joined. This module follows Kafka's ``IncrementalCooperativeAssignor``
instead: work that is running and stays where it is keeps running through a rebalance. Only what moves
stops, and it moves in two steps. First the leader revokes it from its owner. The owner stops it and
rejoins. Then a later round hands it to its new worker. That is why no connector or task ever runs on two
workers at once.

The leader calls :func:`assign` and passes in what each member reports it is running. A worker that left
or died without revoking its work leaves that work "lost". With ``scheduled.rebalance.max.delay.ms`` set,
the leader holds lost work for that long, because a bounced worker usually comes back and can take its own
work again, which avoids moving it twice. If a new worker joins while work is held, the new worker gets it.
If nobody claims it before the deadline, it is spread over the members. With no delay, lost work moves as
soon as the group coordinator has expired the dead worker's session.

Everything here is pure. Nothing does I/O, and nothing reads the clock. The leader's memory between rounds
is the explicit :class:`AssignorState`, which :func:`assign` updates in place.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

Task = tuple[str, int]
T = TypeVar("T", bound=Hashable)


@dataclass(frozen=True)
class WorkerLoad:
    """The connectors and tasks one worker runs, or should run. Immutable, so plans and states can share it."""

    connectors: frozenset[str] = frozenset()
    tasks: frozenset[Task] = frozenset()

    @property
    def is_empty(self) -> bool:
        return not self.connectors and not self.tasks

    def __or__(self, other: WorkerLoad) -> WorkerLoad:
        return WorkerLoad(self.connectors | other.connectors, self.tasks | other.tasks)

    def __and__(self, other: WorkerLoad) -> WorkerLoad:
        return WorkerLoad(self.connectors & other.connectors, self.tasks & other.tasks)

    def __sub__(self, other: WorkerLoad) -> WorkerLoad:
        return WorkerLoad(self.connectors - other.connectors, self.tasks - other.tasks)


@dataclass
class AssignorState:
    """What the leader remembers between rounds. Lost work can only be detected by comparing with last round.

    A new leader starts with ``AssignorState()``. It cannot tell lost work from unassigned work, so it
    assigns whatever nobody runs straight away.
    """

    previous: dict[str, WorkerLoad] = field(default_factory=dict)
    """The assignment handed out last round, by member id. Revoked items are not in it."""
    revoked_last_round: bool = False
    """Whether last round revoked work for balance. Two rounds in a row never do, so revocations cannot loop."""
    delay_deadline: float | None = None
    """The monotonic time (seconds) after which held lost work is reassigned, or None when none is held."""
    lost: WorkerLoad = WorkerLoad()
    """Lost work being held until ``delay_deadline``, for its worker to come back or a new worker to take."""


@dataclass(frozen=True)
class Plan:
    """The outcome of one round, for every current member."""

    assignments: dict[str, WorkerLoad]
    """The full set each member should run after this round. It becomes ``AssignorState.previous``."""
    revocations: dict[str, WorkerLoad]
    """What each member owns but must stop, i.e. what it owns minus its new set. A member with a non-empty
    revocation stops that work and rejoins, so that a later round can hand the work to someone else."""
    delay_ms: int
    """If greater than 0, lost work is being held, and members should rejoin after this long (the
    scheduled rebalance)."""


def assign(
    owned: dict[str, WorkerLoad],
    connectors: list[str],
    tasks: list[Task],
    state: AssignorState,
    now: float,
    max_delay_ms: int,
) -> Plan:
    """Plan one rebalance round. ``state`` is updated in place for the next round.

    ``owned`` maps each current member id to what that member reports it is running. ``connectors`` and
    ``tasks`` are what the config says should exist. ``now`` is monotonic seconds. ``max_delay_ms`` is
    ``scheduled.rebalance.max.delay.ms``.

    Whatever a member owns stays with it, unless one of these applies:
    - It was deleted from the config.
    - Another member owns it too. It is then revoked from both and assigned fresh next round.
    - It is revoked for balance.
    Revoked work is never given to anyone in the same round. That is the cooperative guarantee.

    Work that nobody owns is handled in one of two ways:
    - Lost work (someone was given it last round) is held, or placed, as described in the module docstring.
    - Anything else is given to the least-loaded members. Connectors are balanced by connector count and
      tasks by task count.
    """
    if not owned:
        raise ValueError("a rebalance has at least one member: the leader itself")
    members = sorted(owned)
    configured = WorkerLoad(frozenset(connectors), frozenset(tasks))
    running = _union(owned.values())
    lost = ((_union(state.previous.values()) | state.lost) & configured) - running
    lost_to_place, recipients, delay_ms = _handle_lost(lost, owned, state, now, max_delay_ms)
    may_rebalance = not state.revoked_last_round

    connector_sets, connectors_rebalanced = _assign_kind(
        {m: owned[m].connectors for m in members}, configured.connectors, lost.connectors,
        lost_to_place.connectors, recipients, may_rebalance)
    task_sets, tasks_rebalanced = _assign_kind(
        {m: owned[m].tasks for m in members}, configured.tasks, lost.tasks, lost_to_place.tasks, recipients, may_rebalance)

    assignments = {m: WorkerLoad(frozenset(connector_sets[m]), frozenset(task_sets[m])) for m in members}
    state.previous = dict(assignments)
    state.revoked_last_round = connectors_rebalanced or tasks_rebalanced
    return Plan(assignments, {m: owned[m] - assignments[m] for m in members}, delay_ms)


def to_json(load: WorkerLoad) -> dict:
    """The JSON shape used in group metadata and assignments. It is sorted, so equal loads encode equally."""
    return {"connectors": sorted(load.connectors), "tasks": [[name, index] for name, index in sorted(load.tasks)]}


def from_json(value: dict) -> WorkerLoad:
    """Read :func:`to_json`'s shape. Missing keys mean nothing owned, as in a member's first join."""
    return WorkerLoad(
        frozenset(str(name) for name in value.get("connectors", [])),
        frozenset((str(name), int(index)) for name, index in value.get("tasks", [])),
    )


def _union(loads: Iterable[WorkerLoad]) -> WorkerLoad:
    out = WorkerLoad()
    for load in loads:
        out |= load
    return out


def _handle_lost(
    lost: WorkerLoad, owned: dict[str, WorkerLoad], state: AssignorState, now: float, max_delay_ms: int
) -> tuple[WorkerLoad, list[str], int]:
    """Decide, as Kafka's ``handleLostAssignments`` does, what lost work to place now and with whom.

    Returns three things: the lost work to place this round, the members it may go to, and the rejoin
    delay. Lost work that is not placed is held in ``state.lost``.

    Lost work is placed at once, and ``state`` is cleared, in these cases:
    - There is no delay.
    - No delay is pending and no previous member left. Then nobody can come back for the work; the member
      that was given it has probably just missed that assignment.
    - The deadline has passed.
    - New members with nothing yet are present. They get the work, as in Kafka. A member that comes back
      owning work is not a candidate.
    On first sight the work is held, even if new members are present. That keeps to Kafka's order.
    """
    everyone = sorted(owned)
    departed = not set(state.previous) <= set(owned)
    if lost.is_empty or max_delay_ms <= 0 or (state.delay_deadline is None and not departed):
        _stop_holding(state)
        return lost, everyone, 0
    if state.delay_deadline is None:
        state.delay_deadline = now + max_delay_ms / 1000
        state.lost = lost
        return WorkerLoad(), everyone, max_delay_ms
    if now >= state.delay_deadline:
        _stop_holding(state)
        return lost, everyone, 0
    newcomers = [m for m in everyone if m not in state.previous and owned[m].is_empty]
    if newcomers:
        _stop_holding(state)
        return lost, newcomers, 0
    state.lost = lost
    return WorkerLoad(), everyone, max(1, math.ceil((state.delay_deadline - now) * 1000))


def _stop_holding(state: AssignorState) -> None:
    state.delay_deadline = None
    state.lost = WorkerLoad()


def _assign_kind(
    owned: dict[str, frozenset[T]],
    configured: frozenset[T],
    lost: frozenset[T],
    lost_to_place: frozenset[T],
    lost_recipients: list[str],
    may_rebalance: bool,
) -> tuple[dict[str, set[T]], bool]:
    """Assign one kind of item, either connectors or tasks.

    Returns each member's new set, and whether anything was revoked for balance.

    Kafka balances each kind on its own. Connectors are cheap and tasks carry the load, so one count over
    both would let a worker end up with all the tasks.
    """
    holders = Counter(item for items in owned.values() for item in items)
    sets = {m: {item for item in items if item in configured and holders[item] == 1} for m, items in owned.items()}
    _fill(sets, lost_to_place, lost_recipients)
    _fill(sets, configured - holders.keys() - lost, sorted(sets))
    return sets, may_rebalance and _revoke_for_balance(sets, owned)


def _fill(sets: dict[str, set[T]], items: Iterable[T], recipients: list[str]) -> None:
    """Give each item, in sorted order, to the recipient that has the fewest so far. Ties go by member id."""
    heap = [(len(sets[m]), m) for m in recipients]
    heapq.heapify(heap)
    for item in sorted(items):
        count, member = heapq.heappop(heap)
        sets[member].add(item)
        heapq.heappush(heap, (count + 1, member))


def _revoke_for_balance(sets: dict[str, set[T]], owned: dict[str, frozenset[T]]) -> bool:
    """Trim members so that, once the freed items are handed out next round, counts differ by at most 1.

    Each member gets a target of ``floor(total / members)``. The ``total % members`` largest members get one
    more, with ties going by member id. Giving the extra slots to the largest members is what keeps the
    number of moves as small as possible. A member over its target gives up the excess. Items it was only
    just given this round go first, since nothing has started them. After those, its highest sorted items
    go. Trimming starts only when the spread is above 1, since filling empty slots alone cannot close it.

    Returns whether anything was removed.
    """
    counts = {m: len(items) for m, items in sets.items()}
    if max(counts.values()) - min(counts.values()) <= 1:
        return False
    base, extra = divmod(sum(counts.values()), len(counts))
    for rank, member in enumerate(sorted(counts, key=lambda m: (-counts[m], m))):
        excess = counts[member] - (base + (rank < extra))
        if excess > 0:
            victims = sorted(sets[member], key=lambda item: (item not in owned[member], item), reverse=True)[:excess]
            sets[member].difference_update(victims)
    return True
