"""``caudal groups``: list, describe and delete consumer groups and reset their offsets (like kafka-consumer-groups).

Output keeps Kafka's column names and notices (on stderr, as Kafka's tool prints
them) so scripts and runbooks written for ``kafka-consumer-groups.sh`` read it.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Optional

from caudal.client.admin import AdminClient
from caudal.client.cli_common import add_bootstrap, fail, print_table
from caudal.client.fetcher import EARLIEST, LATEST
from caudal.client.structs import ConsumerGroupDescription, MemberDescription, OffsetAndMetadata, TopicPartition
from caudal.common.errors import CaudalError

INACTIVE_STATES = ("Empty", "Dead")
"""States in which a group's offsets may be reset: no member owns a partition."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("groups", help="list, describe and delete consumer groups, reset their offsets")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    lst = actions.add_parser("list", help="list consumer group ids")
    lst.add_argument(
        "--state", nargs="?", const="", metavar="STATES",
        help="print each group's state too; with STATES (comma-separated, e.g. Stable,Empty) only groups in them",
    )

    describe = actions.add_parser("describe", help="show a group's offsets and lag, its members or its state")
    describe.add_argument("group", nargs="*")
    describe.add_argument("--all-groups", action="store_true", help="describe every consumer group")
    view = describe.add_mutually_exclusive_group()
    view.add_argument("--members", action="store_true", help="one row per member, with its partition count")
    view.add_argument("--state", action="store_true", help="coordinator, assignment strategy, state and member count")

    delete = actions.add_parser("delete", help="delete groups without active members, with their committed offsets")
    delete.add_argument("--group", action="append", required=True, help="group to delete (repeatable)")

    reset = actions.add_parser("reset-offsets", help="change an inactive group's committed offsets (dry run unless --execute)")
    reset.add_argument("--group", required=True)
    scope = reset.add_mutually_exclusive_group(required=True)
    scope.add_argument("--topic", action="append", metavar="TOPIC[:P,P]", help="topic, optionally only these partitions (repeatable)")
    scope.add_argument("--all-topics", action="store_true", help="every partition the group has committed offsets for")
    to = reset.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true")
    to.add_argument("--to-latest", action="store_true")
    to.add_argument("--to-offset", type=int, metavar="N")
    to.add_argument("--to-datetime", metavar="ISO8601", help="first offset at or after this time, e.g. 2024-05-01T12:00:00.000 (local time unless it has an offset)")
    to.add_argument("--shift-by", type=int, metavar="N", help="move the committed offset by N (negative: back)")
    run = reset.add_mutually_exclusive_group()
    run.add_argument("--dry-run", action="store_true", help="only show the new offsets (the default)")
    run.add_argument("--execute", action="store_true", help="commit the new offsets")

    for sub in (lst, describe, delete, reset):
        add_bootstrap(sub)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        with AdminClient(bootstrap_servers=args.bootstrap_server) as admin:
            return _ACTIONS[args.action](admin, args)
    except CaudalError as e:
        return fail(e)


def _cell(value: Optional[object]) -> str:
    return "-" if value is None else str(value)


def _list(admin: AdminClient, args: argparse.Namespace) -> int:
    states = [s.strip() for s in (args.state or "").split(",") if s.strip()]
    groups = admin.list_consumer_groups(states or None)
    if args.state is None:
        for g in groups:
            print(g.group_id)
    else:
        print_table(["GROUP", "STATE"], [[g.group_id, g.state] for g in groups])
    return 0


def _describe(admin: AdminClient, args: argparse.Namespace) -> int:
    group_ids = [g.group_id for g in admin.list_consumer_groups()] if args.all_groups else args.group
    if not group_ids and not args.all_groups:
        raise SystemExit("groups describe needs GROUP or --all-groups")
    descriptions = admin.describe_consumer_groups(group_ids)
    for n, group_id in enumerate(group_ids):
        d = descriptions[group_id]
        if n:
            print()
        if not _announce(d):
            continue
        if args.state:
            _print_state(d)
        elif args.members:
            _print_members(d)
        else:
            _print_offsets(admin, d)
    return 0


def _announce(d: ConsumerGroupDescription) -> bool:
    """Kafka's notice about the group's state, on stderr; False when the group does not exist."""
    if d.state == "Dead":
        print(f"Error: Consumer group '{d.group_id}' does not exist.", file=sys.stderr)
        return False
    if d.state == "Empty":
        print(f"Consumer group '{d.group_id}' has no active members.", file=sys.stderr)
    elif d.state != "Stable":
        print(f"Warning: Consumer group '{d.group_id}' is rebalancing.", file=sys.stderr)
    return True


def _member_cells(m: Optional[MemberDescription]) -> list[str]:
    return [m.member_id, m.host, m.client_id] if m is not None else ["-", "-", "-"]


def _print_offsets(admin: AdminClient, d: ConsumerGroupDescription) -> None:
    """One row per partition with a committed offset or an owner; members owning nothing get a row of their own."""
    committed = admin.list_consumer_group_offsets(d.group_id)
    owners = {tp: m for m in d.members for tp in m.assignment}
    partitions = sorted(set(committed) | set(owners))
    ends = admin.list_offsets({tp: LATEST for tp in partitions})
    rows = []
    for tp in partitions:
        current, end = committed.get(tp), ends.get(tp)
        lag = end - current.offset if current is not None and end is not None else None
        rows.append([
            d.group_id, tp.topic, str(tp.partition), _cell(current.offset if current else None), _cell(end), _cell(lag),
            *_member_cells(owners.get(tp)),
        ])
    rows += [[d.group_id, "-", "-", "-", "-", "-", *_member_cells(m)] for m in d.members if not m.assignment]
    header = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]
    print_table(header, rows)


def _print_members(d: ConsumerGroupDescription) -> None:
    rows = [[d.group_id, *_member_cells(m), str(len(m.assignment))] for m in d.members]
    print_table(["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"], rows)


def _print_state(d: ConsumerGroupDescription) -> None:
    c = d.coordinator
    row = [d.group_id, f"{c.host}:{c.port} ({c.id})", d.partition_assignor or "-", d.state, str(len(d.members))]
    print_table(["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"], [row])


def _delete(admin: AdminClient, args: argparse.Namespace) -> int:
    failed: dict[str, CaudalError] = {}
    results = admin.delete_consumer_groups(args.group)
    for group_id, future in results.items():
        try:
            future.result()
        except CaudalError as e:
            failed[group_id] = e
    deleted = ", ".join(f"'{g}'" for g in results if g not in failed)
    if not failed:
        print(f"Deletion of requested consumer groups ({deleted}) was successful.")
        return 0
    print("Error: Deletion of some consumer groups failed:", file=sys.stderr)
    for group_id, e in failed.items():
        print(f"* Group '{group_id}' could not be deleted due to: {e}", file=sys.stderr)
    if deleted:
        print(f"These consumer groups were deleted successfully: {deleted}")
    return 1


def _reset_offsets(admin: AdminClient, args: argparse.Namespace) -> int:
    state = admin.describe_consumer_groups([args.group])[args.group].state
    if state not in INACTIVE_STATES:
        print(
            f"Error: Assignments can only be reset if the group '{args.group}' is inactive, but the current state is {state}.",
            file=sys.stderr,
        )
        return 1
    committed = admin.list_consumer_group_offsets(args.group)
    chosen = sorted(committed) if args.all_topics else _named_partitions(admin, args.topic)
    starts = admin.list_offsets({tp: EARLIEST for tp in chosen})
    ends = admin.list_offsets({tp: LATEST for tp in chosen})
    partitions = [tp for tp in chosen if tp in starts and tp in ends]
    requested = _requested(admin, args, partitions, committed, starts, ends)
    new = {tp: min(max(requested[tp], starts[tp]), ends[tp]) for tp in partitions}
    if args.execute:
        admin.alter_consumer_group_offsets(args.group, new)
    print_table(
        ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
        [[args.group, tp.topic, str(tp.partition), str(offset)] for tp, offset in new.items()],
    )
    return 0


def _named_partitions(admin: AdminClient, specs: list[str]) -> list[TopicPartition]:
    """``TOPIC`` (every partition) or ``TOPIC:P,P`` arguments, checked against the topics' partitions."""
    named = [spec.partition(":") for spec in specs]
    described = admin.describe_topics(dict.fromkeys(topic for topic, _, _ in named))
    out: list[TopicPartition] = []
    for topic, _, listed in named:
        existing = [p.id for p in described[topic].partitions]
        try:
            wanted = [int(p) for p in listed.split(",")] if listed else existing
        except ValueError:
            raise SystemExit(f"--topic expects TOPIC or TOPIC:P,P, got {topic}:{listed}") from None
        unknown = sorted(set(wanted) - set(existing))
        if unknown:
            raise SystemExit(f"Error: topic {topic} has no partition {','.join(map(str, unknown))}")
        out += [TopicPartition(topic, p) for p in wanted]
    return sorted(set(out))


def _requested(
    admin: AdminClient,
    args: argparse.Namespace,
    partitions: list[TopicPartition],
    committed: dict[TopicPartition, OffsetAndMetadata],
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """The offset each scenario asks for, before clamping into the log's range."""
    if args.to_earliest:
        return starts
    if args.to_latest:
        return ends
    if args.to_offset is not None:
        return {tp: args.to_offset for tp in partitions}
    if args.shift_by is not None:
        missing = [f"{tp.topic}-{tp.partition}" for tp in partitions if tp not in committed]
        if missing:
            raise SystemExit(f"Error: Cannot shift offset for partition {missing[0]} since there is no current committed offset")
        return {tp: committed[tp].offset + args.shift_by for tp in partitions}
    found = admin.list_offsets({tp: _timestamp_ms(args.to_datetime) for tp in partitions})
    return {tp: found[tp] if found.get(tp, -1) >= 0 else ends[tp] for tp in partitions}


def _timestamp_ms(text: str) -> int:
    """ISO 8601 date-time to epoch ms; without a UTC offset it is local time, as in Kafka's tool."""
    try:
        return round(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        raise SystemExit(f"--to-datetime expects an ISO 8601 date-time like 2024-05-01T12:00:00.000, got {text!r}") from None


_ACTIONS = {"list": _list, "describe": _describe, "delete": _delete, "reset-offsets": _reset_offsets}
