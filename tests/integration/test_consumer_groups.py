"""Consumer groups against a real ``caudal dev`` node: sharing, rebalancing, committed offsets."""

from __future__ import annotations

import asyncio

import pytest
from group_members import MemberProcess, MemberThread
from nodes import wait_until

from caudal.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition
from caudal.client.aio import AIOConsumer
from caudal.common.errors import CaudalError, ErrorCode

SESSION_TIMEOUT_S = 6.0


def _topic(bootstrap: str, name: str, partitions: int) -> None:
    with AdminClient(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic(name, num_partitions=partitions)])[name].result(30)


def _produce(bootstrap: str, topic: str, count: int, partitions: int) -> None:
    with Producer(bootstrap_servers=bootstrap, linger_ms=2) as producer:
        for i in range(count):
            producer.send(topic, f"v{i}".encode(), partition=i % partitions)
        producer.flush(30)


def _partitions(topic: str, count: int) -> set[TopicPartition]:
    return {TopicPartition(topic, p) for p in range(count)}


def _balanced(members: list[MemberThread], everything: set[TopicPartition], each: int):
    """True once every member holds ``each`` partitions and together they hold all, disjointly."""
    held = [m.snapshot()[0] for m in members]
    return all(len(h) == each for h in held) and set().union(*held) == everything and sum(map(len, held)) == len(everything)


def _stop_all(members: list[MemberThread]) -> None:
    for member in members:
        member.stop()
    for member in members:
        assert member.error is None, member.error


def test_three_members_share_six_partitions_and_survivors_take_over_after_a_leave(dev_node) -> None:
    _topic(dev_node.bootstrap, "shared", 6)
    _produce(dev_node.bootstrap, "shared", 600, 6)
    members = [MemberThread(dev_node.bootstrap, "g-share", ["shared"]).start() for _ in range(3)]
    try:
        wait_until(lambda: _balanced(members, _partitions("shared", 6), 2), 30, what="2 partitions per member")
        members[0].stop()
        wait_until(lambda: _balanced(members[1:], _partitions("shared", 6), 3), SESSION_TIMEOUT_S, what="survivors take over")
    finally:
        _stop_all(members)
    offsets = [(r.partition, r.offset) for m in members for r in m.snapshot()[1]]
    assert set(offsets) == {(i % 6, i // 6) for i in range(600)}


def test_a_killed_member_is_replaced_within_the_session_timeout(dev_node, tmp_path) -> None:
    _topic(dev_node.bootstrap, "killed", 4)
    survivor = MemberThread(dev_node.bootstrap, "g-kill", ["killed"]).start()
    victim = MemberProcess(dev_node.bootstrap, "g-kill", "killed", tmp_path / "victim.log")
    try:
        wait_until(lambda: len(victim.assignment()) == 2 and len(survivor.snapshot()[0]) == 2, 30, what="2 + 2")
        victim.kill9()
        wait_until(
            lambda: survivor.snapshot()[0] == _partitions("killed", 4), SESSION_TIMEOUT_S + 5, what="survivor holds all 4"
        )
    finally:
        victim.kill9()
        _stop_all([survivor])


def test_committed_offsets_resume_exactly(dev_node) -> None:
    _topic(dev_node.bootstrap, "resume", 3)
    _produce(dev_node.bootstrap, "resume", 300, 3)
    options = dict(bootstrap_servers=dev_node.bootstrap, group_id="g-resume", auto_offset_reset="earliest", enable_auto_commit=False)
    first = Consumer(**options)
    taken = []
    try:
        first.subscribe(["resume"])
        for _ in range(200):
            taken += first.poll(timeout_ms=100, max_records=7)
            if len(taken) >= 100:
                break
        first.commit()
        committed = {tp: first.committed(tp) for tp in _partitions("resume", 3)}
    finally:
        first.close()
    positions = _next_offsets(taken)
    for tp in _partitions("resume", 3):
        if tp in positions:
            assert committed[tp] == positions[tp]
        else:  # assigned but nothing returned yet: its position (0) is committed, or none was resolved
            assert committed[tp] in (None, 0)
    second = Consumer(**options)
    rest = []
    try:
        second.subscribe(["resume"])
        for _ in range(300):
            rest += second.poll(timeout_ms=100)
            if len(taken) + len(rest) >= 300:
                break
    finally:
        second.close()
    seen = [(r.partition, r.offset) for r in taken + rest]
    assert len(seen) == len(set(seen)) == 300, "a committed record was delivered again or one was lost"


def _next_offsets(records: list) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for r in records:
        out[TopicPartition(r.topic, r.partition)] = r.offset + 1
    return out


def test_static_member_restart_causes_no_rebalance(dev_node) -> None:
    _topic(dev_node.bootstrap, "static", 4)
    options = dict(session_timeout_ms=10_000)
    a = MemberThread(dev_node.bootstrap, "g-static", ["static"], group_instance_id="a", **options).start()
    b = MemberThread(dev_node.bootstrap, "g-static", ["static"], group_instance_id="b", **options).start()
    try:
        wait_until(lambda: _balanced([a, b], _partitions("static", 4), 2), 30, what="2 + 2")
        before = _describe(dev_node.bootstrap, "g-static")
        held_by_a = a.snapshot()[0]
        a.stop()
        again = MemberThread(dev_node.bootstrap, "g-static", ["static"], group_instance_id="a", **options).start()
        try:
            wait_until(lambda: again.snapshot()[0] == held_by_a, 10, what="restarted static member gets its partitions back")
            after = _describe(dev_node.bootstrap, "g-static")
            assert ("revoked", sorted(b.snapshot()[0])) not in b.listener.events
            assert [e for e in b.listener.events if e[0] != "assigned"] == []
            assert len([e for e in b.listener.events if e[0] == "assigned"]) == 1
        finally:
            again.stop()
    finally:
        _stop_all([a, b])
    assert after.state == before.state == "Stable"
    assert {m.group_instance_id for m in after.members} == {"a", "b"}


def _describe(bootstrap: str, group: str):
    with AdminClient(bootstrap_servers=bootstrap) as admin:
        return admin.describe_consumer_groups([group])[group]


def test_cooperative_sticky_moves_only_what_must_move(dev_node) -> None:
    _topic(dev_node.bootstrap, "coop", 6)
    options = dict(partition_assignment_strategy=["cooperative-sticky"])
    first = [MemberThread(dev_node.bootstrap, "g-coop", ["coop"], **options).start() for _ in range(2)]
    third = None
    try:
        wait_until(lambda: _balanced(first, _partitions("coop", 6), 3), 30, what="3 + 3")
        held = [m.snapshot()[0] for m in first]
        third = MemberThread(dev_node.bootstrap, "g-coop", ["coop"], **options).start()
        wait_until(lambda: _balanced(first + [third], _partitions("coop", 6), 2), 30, what="2 + 2 + 2")
        for member, before in zip(first, held):
            revoked = [tp for event, tps in member.listener.events if event == "revoked" for tp in tps]
            assert len(revoked) == 1 and set(revoked) <= before, member.listener.events
            assert member.snapshot()[0] <= before, "a member got a partition it did not own before"
    finally:
        _stop_all(first + ([third] if third else []))


def test_member_that_stops_polling_leaves_the_group(dev_node) -> None:
    _topic(dev_node.bootstrap, "stall", 2)
    options = dict(max_poll_interval_ms=2000)
    busy, stuck = (MemberThread(dev_node.bootstrap, "g-stall", ["stall"], **options).start() for _ in range(2))
    try:
        wait_until(lambda: _balanced([busy, stuck], _partitions("stall", 2), 1), 30, what="1 + 1")
        stuck.paused.set()
        wait_until(lambda: busy.snapshot()[0] == _partitions("stall", 2), 15, what="busy member takes both")
        stuck.paused.clear()
        wait_until(lambda: _balanced([busy, stuck], _partitions("stall", 2), 1), 15, what="the stalled member rejoins")
    finally:
        _stop_all([busy, stuck])
    first_assigned = stuck.listener.events[0]
    assert first_assigned[0] == "assigned" and ("lost", first_assigned[1]) in stuck.listener.events


def test_pattern_subscription_picks_up_new_topics(dev_node) -> None:
    _topic(dev_node.bootstrap, "orders-eu", 1)
    consumer = Consumer(
        bootstrap_servers=dev_node.bootstrap, group_id="g-pattern", auto_offset_reset="earliest", metadata_max_age_ms=300
    )
    try:
        consumer.subscribe(pattern=r"orders-.*")
        wait_until(lambda: consumer.poll(timeout_ms=50) is not None and consumer.assignment() == {TopicPartition("orders-eu", 0)}, 20)
        _topic(dev_node.bootstrap, "orders-us", 2)
        _topic(dev_node.bootstrap, "payments", 1)
        want = {TopicPartition("orders-eu", 0), TopicPartition("orders-us", 0), TopicPartition("orders-us", 1)}
        wait_until(lambda: consumer.poll(timeout_ms=50) is not None and consumer.assignment() == want, 20, what="new topic")
        assert consumer.subscription() == {"orders-eu", "orders-us"}
    finally:
        consumer.close()


def test_commit_from_an_old_generation_is_rejected(dev_node) -> None:
    _topic(dev_node.bootstrap, "fenced", 2)
    _produce(dev_node.bootstrap, "fenced", 10, 2)
    old = Consumer(bootstrap_servers=dev_node.bootstrap, group_id="g-fenced", auto_offset_reset="earliest",
                   enable_auto_commit=False, max_poll_interval_ms=1500, heartbeat_interval_ms=300)
    other = None
    try:
        old.subscribe(["fenced"])
        wait_until(lambda: old.poll(timeout_ms=100) is not None and len(old.assignment()) == 2, 20)
        other = MemberThread(dev_node.bootstrap, "g-fenced", ["fenced"]).start()
        wait_until(lambda: len(other.snapshot()[0]) == 2, 20, what="the old member is dropped after its poll timeout")
        with pytest.raises(CaudalError) as info:
            old.commit({TopicPartition("fenced", 0): 5})
        assert info.value.code in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION)
    finally:
        old.close(autocommit=False)
        if other is not None:
            _stop_all([other])


def test_asyncio_consumer_group_commits_and_resumes(dev_node) -> None:
    _topic(dev_node.bootstrap, "aio-group", 2)
    _produce(dev_node.bootstrap, "aio-group", 40, 2)

    async def consume(limit: int) -> list:
        got: list = []
        async with AIOConsumer(bootstrap_servers=dev_node.bootstrap, group_id="g-aio", auto_offset_reset="earliest",
                               enable_auto_commit=False) as consumer:
            consumer.subscribe(["aio-group"])
            for _ in range(200):
                got += await consumer.poll(timeout_ms=100, max_records=limit - len(got))
                if len(got) >= limit:
                    break
            await consumer.commit()
            assert await consumer.committed(TopicPartition("aio-group", 0)) is not None
        return got

    first = asyncio.run(consume(25))
    second = asyncio.run(consume(15))
    seen = [(r.partition, r.offset) for r in first + second]
    assert len(first) == 25 and len(second) == 15
    assert len(set(seen)) == 40


def test_a_subscribed_topic_created_later_is_assigned(dev_node) -> None:
    member = MemberThread(dev_node.bootstrap, "g-later", ["later"]).start()
    try:
        wait_until(lambda: member.listener.events, 20, what="the first (empty) assignment")
        assert member.snapshot()[0] == set()
        _topic(dev_node.bootstrap, "later", 2)
        _produce(dev_node.bootstrap, "later", 10, 2)
        wait_until(lambda: len(member.snapshot()[1]) == 10, 15, what="records of the topic created after subscribe")
    finally:
        _stop_all([member])
