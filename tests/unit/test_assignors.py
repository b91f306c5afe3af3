"""Consumer-group assignors: Kafka's Range, RoundRobin, Sticky and CooperativeSticky rules."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caudal.client.assignors import (
    CooperativeStickyAssignor,
    RangeAssignor,
    RoundRobinAssignor,
    StickyAssignor,
    Subscription,
    assignor_for,
)
from caudal.client.structs import TopicPartition
from caudal.common.errors import InvalidConfigError

ALL_ASSIGNORS = [RangeAssignor, RoundRobinAssignor, StickyAssignor, CooperativeStickyAssignor]


def tps(topic: str, *partitions: int) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in partitions]


def subs(*members: str, topics: tuple[str, ...] = ("t",)) -> dict[str, Subscription]:
    return {m: Subscription(topics) for m in members}


def rejoin(
    assignment: dict[str, list[TopicPartition]], subscriptions: dict[str, Subscription], generation: int
) -> dict[str, Subscription]:
    """The subscriptions the members of ``assignment`` send after receiving it in ``generation``."""
    return {
        m: Subscription(subscriptions[m].topics, tuple(owned), generation) for m, owned in assignment.items()
    }


def subscribed_partitions(partitions_per_topic, subscriptions) -> set[TopicPartition]:
    topics = {t for s in subscriptions.values() for t in s.topics if t in partitions_per_topic}
    return {TopicPartition(t, p) for t in topics for p in range(partitions_per_topic[t])}


def check_valid(partitions_per_topic, subscriptions, result, *, complete: bool = True) -> None:
    """No partition twice, only to subscribers, sorted lists, one entry per member;
    with ``complete`` every partition of a subscribed existing topic is assigned."""
    assert set(result) == set(subscriptions)
    counts = Counter(tp for owned in result.values() for tp in owned)
    assert all(n == 1 for n in counts.values())
    for member, owned in result.items():
        assert owned == sorted(owned)
        assert all(tp.topic in subscriptions[member].topics for tp in owned)
    expected = subscribed_partitions(partitions_per_topic, subscriptions)
    if complete:
        assert set(counts) == expected
    else:
        assert set(counts) <= expected


def test_range_splits_six_partitions_into_contiguous_pairs():
    result = RangeAssignor().assign({"t": 6}, subs("c", "a", "b"))
    assert result == {"a": tps("t", 0, 1), "b": tps("t", 2, 3), "c": tps("t", 4, 5)}


def test_range_gives_the_extra_partition_to_the_first_sorted_member():
    result = RangeAssignor().assign({"t": 7}, subs("m2", "m3", "m1"))
    assert result == {"m1": tps("t", 0, 1, 2), "m2": tps("t", 3, 4), "m3": tps("t", 5, 6)}


def test_roundrobin_cycles_members_across_two_topics():
    result = RoundRobinAssignor().assign({"a": 3, "b": 2}, subs("y", "x", topics=("a", "b")))
    assert result == {
        "x": [TopicPartition("a", 0), TopicPartition("a", 2), TopicPartition("b", 1)],
        "y": [TopicPartition("a", 1), TopicPartition("b", 0)],
    }


def test_roundrobin_skips_members_not_subscribed_to_the_topic():
    subscriptions = {"x": Subscription(("a",)), "y": Subscription(("a", "b"))}
    result = RoundRobinAssignor().assign({"a": 2, "b": 2}, subscriptions)
    assert result == {"x": tps("a", 0), "y": [TopicPartition("a", 1), *tps("b", 0, 1)]}


@pytest.mark.parametrize("assignor", ALL_ASSIGNORS)
def test_members_only_get_topics_they_subscribe_to(assignor):
    subscriptions = {
        "m1": Subscription(("a",)),
        "m2": Subscription(("b",)),
        "m3": Subscription(("a", "b")),
        "m4": Subscription(("c",)),
    }
    result = assignor().assign({"a": 5, "b": 4, "c": 3}, subscriptions)
    check_valid({"a": 5, "b": 4, "c": 3}, subscriptions, result)
    assert {tp.topic for tp in result["m1"]} <= {"a"}
    assert {tp.topic for tp in result["m2"]} <= {"b"}
    assert result["m4"] == tps("c", 0, 1, 2)


@pytest.mark.parametrize("assignor", ALL_ASSIGNORS)
def test_unknown_topics_are_ignored(assignor):
    subscriptions = {"m1": Subscription(("t", "missing")), "m2": Subscription(("missing",))}
    result = assignor().assign({"t": 2}, subscriptions)
    assert result == {"m1": tps("t", 0, 1), "m2": []}


@pytest.mark.parametrize("assignor", ALL_ASSIGNORS)
def test_empty_group_gets_empty_assignment(assignor):
    assert assignor().assign({"t": 3}, {}) == {}


def test_sticky_new_member_takes_only_three_partitions_from_a_balanced_group():
    first = StickyAssignor().assign({"t": 12}, subs("a", "b", "c"))
    assert [len(v) for v in first.values()] == [4, 4, 4]
    subscriptions = rejoin(first, subs("a", "b", "c"), 1) | {"d": Subscription(("t",))}
    second = StickyAssignor().assign({"t": 12}, subscriptions)
    check_valid({"t": 12}, subscriptions, second)
    assert all(len(owned) == 3 for owned in second.values())
    for member in "abc":  # each keeps 3 of its 4 and gives one up
        assert set(second[member]) < set(first[member])
    moved = {tp for m in "abc" for tp in first[m] if tp not in second[m]}
    assert moved == set(second["d"])


def test_sticky_removing_a_member_moves_only_its_partitions():
    first = StickyAssignor().assign({"t": 12}, subs("a", "b", "c"))
    subscriptions = rejoin({m: first[m] for m in "ac"}, subs("a", "c"), 1)
    second = StickyAssignor().assign({"t": 12}, subscriptions)
    check_valid({"t": 12}, subscriptions, second)
    for member in "ac":
        assert set(first[member]) <= set(second[member])
        assert len(second[member]) == 6
    assert set(second["a"]) - set(first["a"]) | set(second["c"]) - set(first["c"]) == set(first["b"])


def test_sticky_resolves_conflicting_claims_by_generation():
    subscriptions = {
        "a": Subscription(("t",), tuple(tps("t", 0, 1)), generation_id=4),
        "b": Subscription(("t",), tuple(tps("t", 1, 2)), generation_id=5),
        "c": Subscription(("t",), tuple(tps("t", 3)), generation_id=5),
    }
    result = StickyAssignor().assign({"t": 4}, subscriptions)
    # b's newer generation keeps t-1 although a sorts first.
    assert result == {"a": tps("t", 0), "b": tps("t", 1, 2), "c": tps("t", 3)}


def test_sticky_conflict_with_equal_generations_goes_to_smaller_member_id():
    subscriptions = {
        "b": Subscription(("t",), tuple(tps("t", 0)), generation_id=3),
        "a": Subscription(("t",), tuple(tps("t", 0)), generation_id=3),
    }
    assert StickyAssignor().assign({"t": 2}, subscriptions) == {"a": tps("t", 0), "b": tps("t", 1)}


def test_sticky_drops_owned_partitions_of_deleted_topics_and_unsubscribed_topics():
    subscriptions = {
        "a": Subscription(
            ("t",), (TopicPartition("gone", 0), TopicPartition("u", 0), TopicPartition("t", 9))
        ),
        "b": Subscription(("t", "u")),
    }
    result = StickyAssignor().assign({"t": 2, "u": 1}, subscriptions)
    check_valid({"t": 2, "u": 1}, subscriptions, result)
    assert result["a"] == tps("t", 0)
    assert result["b"] == [TopicPartition("t", 1), TopicPartition("u", 0)]


def test_cooperative_sticky_moves_partitions_to_a_new_member_in_two_rounds():
    assignor = CooperativeStickyAssignor()
    assert assignor.supports_cooperative
    first = StickyAssignor().assign({"t": 12}, subs("a", "b", "c"))
    round1_subs = rejoin(first, subs("a", "b", "c"), 1) | {"d": Subscription(("t",))}
    round1 = assignor.assign({"t": 12}, round1_subs)
    check_valid({"t": 12}, round1_subs, round1, complete=False)
    assert round1["d"] == []
    freed = set().union(*first.values()) - set().union(*round1.values())
    assert len(freed) == 3
    target = StickyAssignor().assign({"t": 12}, round1_subs)
    for member in "abc":
        assert set(first[member]) - set(round1[member]) == set(first[member]) - set(target[member])
        assert set(round1[member]) <= set(first[member])
    assert freed == set(target["d"])

    round2_subs = rejoin(round1, round1_subs, 2)
    round2 = assignor.assign({"t": 12}, round2_subs)
    check_valid({"t": 12}, round2_subs, round2)
    assert set(round2["d"]) == freed
    assert all(len(owned) == 3 for owned in round2.values())


def test_cooperative_sticky_holds_back_partitions_whose_owner_unsubscribed():
    subscriptions = {"a": Subscription(("u",), tuple(tps("t", 0))), "b": Subscription(("t",))}
    round1 = CooperativeStickyAssignor().assign({"t": 1}, subscriptions)
    assert round1 == {"a": [], "b": []}
    round2 = CooperativeStickyAssignor().assign({"t": 1}, rejoin(round1, subscriptions, 1))
    assert round2 == {"a": [], "b": tps("t", 0)}


@pytest.mark.parametrize(
    ("name", "assignor"),
    [
        ("range", RangeAssignor),
        ("roundrobin", RoundRobinAssignor),
        ("sticky", StickyAssignor),
        ("cooperative-sticky", CooperativeStickyAssignor),
        ("org.apache.kafka.clients.consumer.RangeAssignor", RangeAssignor),
        ("org.apache.kafka.clients.consumer.RoundRobinAssignor", RoundRobinAssignor),
        ("org.apache.kafka.clients.consumer.StickyAssignor", StickyAssignor),
        ("org.apache.kafka.clients.consumer.CooperativeStickyAssignor", CooperativeStickyAssignor),
    ],
)
def test_assignor_for_accepts_short_and_java_names(name, assignor):
    chosen = assignor_for(name)
    assert isinstance(chosen, assignor)
    assert chosen.supports_cooperative is (assignor is CooperativeStickyAssignor)


@pytest.mark.parametrize(
    "name", ["Range", "round-robin", "", "org.apache.kafka.clients.consumer.rangeassignor"]
)
def test_assignor_for_rejects_unknown_names_listing_valid_ones(name):
    with pytest.raises(InvalidConfigError) as err:
        assignor_for(name)
    for valid in (
        "range",
        "roundrobin",
        "sticky",
        "cooperative-sticky",
        "org.apache.kafka.clients.consumer.StickyAssignor",
    ):
        assert valid in err.value.message


TOPICS = ("a", "b", "c")
topic_counts = st.dictionaries(st.sampled_from((*TOPICS, "x")), st.integers(0, 12), min_size=1)
member_ids = st.lists(st.text("mnop", min_size=1, max_size=3), min_size=1, max_size=7, unique=True)


@st.composite
def groups(draw, *, identical: bool, with_owned: bool):
    """A topic metadata map and subscriptions; with ``with_owned`` members claim random
    (possibly stale, overlapping or vanished) partitions at random generations."""
    partitions_per_topic = draw(topic_counts)
    members = draw(member_ids)
    shared = tuple(draw(st.sets(st.sampled_from(TOPICS), min_size=1)))
    owned_pool = st.tuples(st.sampled_from(TOPICS), st.integers(0, 13)).map(lambda p: TopicPartition(*p))
    subscriptions = {}
    for member in members:
        topics = shared if identical else tuple(draw(st.sets(st.sampled_from(TOPICS), min_size=1)))
        owned = tuple(draw(st.lists(owned_pool, max_size=6))) if with_owned else ()
        subscriptions[member] = Subscription(topics, owned, draw(st.integers(-1, 3)))
    return partitions_per_topic, subscriptions


def counts_within_one_for_identical_subscriptions(subscriptions, result) -> bool:
    return all(
        abs(len(result[m]) - len(result[n])) <= 1
        for m in subscriptions
        for n in subscriptions
        if set(subscriptions[m].topics) == set(subscriptions[n].topics)
    )


@settings(max_examples=200, deadline=None)
@given(groups(identical=False, with_owned=False))
def test_range_property_assigns_each_partition_once_balanced_per_topic(group):
    partitions_per_topic, subscriptions = group
    result = RangeAssignor().assign(partitions_per_topic, subscriptions)
    check_valid(partitions_per_topic, subscriptions, result)
    for topic in partitions_per_topic:
        per_member = [
            sum(tp.topic == topic for tp in result[m])
            for m in subscriptions
            if topic in subscriptions[m].topics
        ]
        assert not per_member or max(per_member) - min(per_member) <= 1


@settings(max_examples=200, deadline=None)
@given(st.booleans().flatmap(lambda identical: groups(identical=identical, with_owned=False)))
def test_roundrobin_property_assigns_each_partition_once_balanced_when_identical(group):
    partitions_per_topic, subscriptions = group
    result = RoundRobinAssignor().assign(partitions_per_topic, subscriptions)
    check_valid(partitions_per_topic, subscriptions, result)
    if len({frozenset(s.topics) for s in subscriptions.values()}) == 1:
        assert max(map(len, result.values())) - min(map(len, result.values())) <= 1


@settings(max_examples=300, deadline=None)
@given(st.booleans().flatmap(lambda identical: groups(identical=identical, with_owned=True)))
def test_sticky_property_assigns_each_partition_once_and_balances_identical_members(group):
    partitions_per_topic, subscriptions = group
    result = StickyAssignor().assign(partitions_per_topic, subscriptions)
    check_valid(partitions_per_topic, subscriptions, result)
    assert counts_within_one_for_identical_subscriptions(subscriptions, result)
    # Stable: feeding the result back as owned partitions moves nothing.
    again = StickyAssignor().assign(partitions_per_topic, rejoin(result, subscriptions, 10))
    assert again == result


def held_by_another(subscriptions, member: str, tp: TopicPartition) -> bool:
    """Whether a member other than ``member`` holds ``tp``: among claimants the newest
    generation wins, ties going to the smaller member id."""
    claimants = [m for m, s in subscriptions.items() if tp in s.owned_partitions]
    return bool(claimants) and min(claimants, key=lambda m: (-subscriptions[m].generation_id, m)) != member


@settings(max_examples=300, deadline=None)
@given(groups(identical=True, with_owned=True))
def test_cooperative_sticky_property_hands_over_only_free_partitions_and_completes_next_round(group):
    partitions_per_topic, subscriptions = group
    round1 = CooperativeStickyAssignor().assign(partitions_per_topic, subscriptions)
    check_valid(partitions_per_topic, subscriptions, round1, complete=False)
    assert not any(held_by_another(subscriptions, m, tp) for m, owned in round1.items() for tp in owned)
    round2 = CooperativeStickyAssignor().assign(partitions_per_topic, rejoin(round1, subscriptions, 10))
    check_valid(partitions_per_topic, subscriptions, round2)
    assert counts_within_one_for_identical_subscriptions(subscriptions, round2)
    for member, owned in round2.items():  # what a member kept in round 1 stays with it
        assert set(round1[member]) <= set(owned)


@settings(max_examples=300, deadline=None)
@given(groups(identical=False, with_owned=True))
def test_cooperative_sticky_property_with_differing_subscriptions_completes_within_a_few_rounds(group):
    """Greedy balancing across differing subscriptions may move a partition again in the
    second round (Kafka then rebalances once more too), so only bounded rounds are promised."""
    partitions_per_topic, subscriptions = group
    owners = subscriptions
    for generation in range(10, 16):
        result = CooperativeStickyAssignor().assign(partitions_per_topic, owners)
        check_valid(partitions_per_topic, subscriptions, result, complete=False)
        assert not any(held_by_another(owners, m, tp) for m, owned in result.items() for tp in owned)
        owners = rejoin(result, subscriptions, generation)
        if sum(map(len, result.values())) == len(subscribed_partitions(partitions_per_topic, subscriptions)):
            break
    check_valid(partitions_per_topic, subscriptions, result)
    assert counts_within_one_for_identical_subscriptions(subscriptions, result)
