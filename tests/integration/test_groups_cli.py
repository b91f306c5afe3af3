"""``caudal groups``, ``caudal consume --group`` and the AdminClient group operations against a real node.

Groups are made by real consumers (in this process or in ``caudal consume``
subprocesses); the CLI runs as a subprocess, like a user would run it, and its
tables are checked for Kafka's column names and alignment.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from group_members import MemberThread
from nodes import wait_until

from caudal.client import AdminClient, Consumer, ConsumerGroupListing, NewTopic, Producer, TopicPartition
from caudal.common.errors import UnknownMemberIdError

OFFSETS_HEADER = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]
STATE_HEADER = ["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"]
DEADLINE_S = 30.0


def groups(node, *args: str) -> subprocess.CompletedProcess[str]:
    """``caudal groups ARGS --bootstrap-server NODE`` as a subprocess."""
    command = [sys.executable, "-m", "caudal", "groups", *args, "--bootstrap-server", node.bootstrap]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def table(stdout: str, header: list[str]) -> list[list[str]]:
    """The rows of a printed table, cut at the columns' name positions: a cell out of line breaks the match."""
    lines = stdout.splitlines()
    assert lines[0].split() == " ".join(header).split(), lines[0]
    starts = [lines[0].index(name) for name in header]
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        assert all(cells) and " ".join(cells).split() == line.split(), f"cells out of their columns: {line!r}"
        rows.append(cells)
    return rows


def create_topic(admin: AdminClient, name: str, partitions: int) -> None:
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result()


def produce(node, topic: str, counts: dict[int, int], prefix: str = "v") -> list[bytes]:
    """``counts[p]`` records to partition ``p``; returns the values sent."""
    values = []
    with Producer(bootstrap_servers=node.bootstrap) as producer:
        futures = []
        for partition, n in counts.items():
            for i in range(n):
                value = f"{prefix}{partition}-{i}".encode()
                values.append(value)
                futures.append(producer.send(topic, value=value, partition=partition))
        producer.flush()
        for f in futures:
            f.result()
    return values


def consume_all_and_commit(node, group: str, topic: str, expected: int) -> None:
    """Join ``group``, read ``expected`` records, commit and leave (the group is then Empty)."""
    consumer = Consumer(bootstrap_servers=node.bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        consumer.subscribe([topic])
        received = []
        deadline = time.monotonic() + DEADLINE_S
        while len(received) < expected:
            assert time.monotonic() < deadline, f"got {len(received)} of {expected} records"
            received += consumer.poll(timeout_ms=200)
        assert len(received) == expected
        consumer.commit()
    finally:
        consumer.close()


def committed(admin: AdminClient, group: str) -> dict[tuple[str, int], int]:
    return {(tp.topic, tp.partition): om.offset for tp, om in admin.list_consumer_group_offsets(group).items()}


def reset(node, *args: str) -> list[list[str]]:
    r = groups(node, "reset-offsets", "--group", "g", *args)
    assert r.returncode == 0, r.stderr
    return table(r.stdout, ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"])


def test_describe_reset_and_delete_an_inactive_group(dev_node) -> None:
    with AdminClient(bootstrap_servers=dev_node.bootstrap) as admin:
        create_topic(admin, "t", 2)
        produce(dev_node, "t", {0: 10, 1: 6})
        consume_all_and_commit(dev_node, "g", "t", 16)
        produce(dev_node, "t", {0: 4}, prefix="late")

        r = groups(dev_node, "list")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["g"]
        assert table(groups(dev_node, "list", "--state").stdout, ["GROUP", "STATE"]) == [["g", "Empty"]]
        assert admin.list_consumer_groups() == [ConsumerGroupListing("g", False, "Empty")]

        r = groups(dev_node, "describe", "g")
        assert r.returncode == 0, r.stderr
        assert "Consumer group 'g' has no active members." in r.stderr
        assert table(r.stdout, OFFSETS_HEADER) == [
            ["g", "t", "0", "10", "14", "4", "-", "-", "-"],
            ["g", "t", "1", "6", "6", "0", "-", "-", "-"],
        ]
        coordinator = admin.describe_consumer_groups(["g"])["g"].coordinator
        assert coordinator.id == 1 and coordinator.port == int(dev_node.bootstrap.rsplit(":", 1)[1])
        r = groups(dev_node, "describe", "g", "--state")
        [row] = table(r.stdout, STATE_HEADER)
        assert row[:2] == ["g", f"{coordinator.host}:{coordinator.port} (1)"] and row[3:] == ["Empty", "0"]
        assert table(groups(dev_node, "describe", "g", "--members").stdout, ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]) == []

        before = committed(admin, "g")
        assert before == {("t", 0): 10, ("t", 1): 6}
        assert reset(dev_node, "--topic", "t", "--to-earliest") == [["g", "t", "0", "0"], ["g", "t", "1", "0"]]
        assert committed(admin, "g") == before, "a dry run changes nothing"
        assert reset(dev_node, "--topic", "t", "--to-earliest", "--execute") == [["g", "t", "0", "0"], ["g", "t", "1", "0"]]
        assert committed(admin, "g") == {("t", 0): 0, ("t", 1): 0}

        reset(dev_node, "--all-topics", "--to-offset", "12", "--execute")
        assert committed(admin, "g") == {("t", 0): 12, ("t", 1): 6}, "an offset past the log end is clamped to it"
        assert reset(dev_node, "--topic", "t:0", "--shift-by", "-8", "--execute") == [["g", "t", "0", "4"]]
        assert committed(admin, "g") == {("t", 0): 4, ("t", 1): 6}
        reset(dev_node, "--topic", "t", "--shift-by", "-100", "--execute")
        assert committed(admin, "g") == {("t", 0): 0, ("t", 1): 0}, "shifting before the log start is clamped to it"
        reset(dev_node, "--topic", "t", "--shift-by", "100", "--execute")
        assert committed(admin, "g") == {("t", 0): 14, ("t", 1): 6}
        reset(dev_node, "--topic", "t", "--to-datetime", "2000-01-01T00:00:00Z", "--execute")
        assert committed(admin, "g") == {("t", 0): 0, ("t", 1): 0}
        reset(dev_node, "--topic", "t", "--to-datetime", "2999-01-01T00:00:00.000", "--execute")
        assert committed(admin, "g") == {("t", 0): 14, ("t", 1): 6}, "no record that late: the log end"
        reset(dev_node, "--topic", "t:1", "--to-earliest", "--execute")
        assert reset(dev_node, "--all-topics", "--to-latest") == [["g", "t", "0", "14"], ["g", "t", "1", "6"]]

        r = groups(dev_node, "reset-offsets", "--group", "g", "--topic", "ghost", "--to-earliest")
        assert r.returncode == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in r.stderr
        r = groups(dev_node, "reset-offsets", "--group", "g", "--topic", "t:7", "--to-earliest")
        assert r.returncode == 1 and "no partition 7" in r.stderr

        r = groups(dev_node, "delete", "--group", "g")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "Deletion of requested consumer groups ('g') was successful."
        r = groups(dev_node, "describe", "g")
        assert r.returncode == 0 and "Consumer group 'g' does not exist." in r.stderr and r.stdout == ""
        assert groups(dev_node, "list").stdout == ""
        r = groups(dev_node, "delete", "--group", "g")
        assert r.returncode == 1 and "* Group 'g' could not be deleted due to: GROUP_ID_NOT_FOUND" in r.stderr


def test_console_consumer_with_a_group_resumes_after_its_committed_offsets(dev_node) -> None:
    with AdminClient(bootstrap_servers=dev_node.bootstrap) as admin:
        create_topic(admin, "events", 2)
    sent = produce(dev_node, "events", {0: 5, 1: 5})
    command = [
        sys.executable, "-m", "caudal", "consume", "events", "--group", "g2", "--from-beginning",
        "--max-messages", "4", "--timeout-ms", "20000", "--bootstrap-server", dev_node.bootstrap,
    ]
    runs = []
    for _ in range(2):
        r = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "Processed a total of 4 messages" in r.stderr
        runs.append(r.stdout.split())
    first, second = runs
    assert len(first) == len(second) == 4
    assert not set(first) & set(second), "the second run continues after the offsets the first committed on close"
    assert set(first + second) <= {v.decode() for v in sent}

    r = groups(dev_node, "describe", "g2")
    rows = table(r.stdout, OFFSETS_HEADER)
    assert sum(int(row[3]) for row in rows) == 8
    assert sum(int(row[5]) for row in rows) == 2


def test_admin_and_cli_describe_an_active_group(dev_node) -> None:
    partitions = [TopicPartition("a", p) for p in range(3)]
    with AdminClient(bootstrap_servers=dev_node.bootstrap) as admin:
        create_topic(admin, "a", 3)
        members = [MemberThread(dev_node.bootstrap, "active", ["a"], client_id=f"member-{i}") for i in range(2)]
        try:
            for m in members:
                m.start()

            def stable():
                d = admin.describe_consumer_groups(["active"])["active"]
                assigned = sorted(tp for m in d.members for tp in m.assignment)
                return d if d.state == "Stable" and len(d.members) == 2 and assigned == partitions else None

            d = wait_until(stable, DEADLINE_S, interval_s=0.2, what="a stable group of two members")
            assert not d.is_simple_consumer_group and d.partition_assignor
            assert sorted(m.client_id for m in d.members) == ["member-0", "member-1"]
            assert all(m.host.startswith("/") and m.member_id.startswith(m.client_id) for m in d.members)
            assert ConsumerGroupListing("active", False, "Stable") in admin.list_consumer_groups()
            assert [g.group_id for g in admin.list_consumer_groups(["Empty"])] == []

            r = groups(dev_node, "describe", "active", "--members")
            rows = table(r.stdout, ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"])
            assert sorted((row[1], row[3], row[4]) for row in rows) == sorted(
                (m.member_id, m.client_id, str(len(m.assignment))) for m in d.members
            )
            r = groups(dev_node, "describe", "active")
            assert "no active members" not in r.stderr
            owners = {(row[1], int(row[2])): row[6] for row in table(r.stdout, OFFSETS_HEADER)}
            assert owners == {(tp.topic, tp.partition): m.member_id for m in d.members for tp in m.assignment}
            r = groups(dev_node, "describe", "active", "--state")
            [row] = table(r.stdout, STATE_HEADER)
            assert row[2:] == [d.partition_assignor, "Stable", "2"]

            r = groups(dev_node, "reset-offsets", "--group", "active", "--all-topics", "--to-earliest", "--execute")
            assert r.returncode == 1
            assert "Assignments can only be reset if the group 'active' is inactive, but the current state is Stable." in r.stderr
            with pytest.raises(UnknownMemberIdError, match="inactive"):
                admin.alter_consumer_group_offsets("active", {partitions[0]: 0})
            r = groups(dev_node, "delete", "--group", "active")
            assert r.returncode == 1 and "NON_EMPTY_GROUP" in r.stderr
        finally:
            for m in members:
                m.stop()
        assert [m.error for m in members] == [None, None]
