"""``caudal topics``: create, list, describe, alter and delete topics (like kafka-topics)."""

from __future__ import annotations

import argparse

from caudal.client.admin import AdminClient
from caudal.client.cli_common import add_bootstrap, fail, parse_kv
from caudal.client.structs import NewTopic
from caudal.common.errors import CaudalError, TopicAlreadyExistsError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("topics", help="create, list, describe, alter and delete topics")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create a topic")
    create.add_argument("topic")
    create.add_argument("--partitions", type=int, default=-1)
    create.add_argument("--replication-factor", type=int, default=-1)
    create.add_argument("--config", action="append", metavar="KEY=VALUE", help="topic config override (repeatable)")
    create.add_argument("--if-not-exists", action="store_true")

    lst = actions.add_parser("list", help="list topic names")
    lst.add_argument("--include-internal", action="store_true")

    describe = actions.add_parser("describe", help="show partitions, leaders, replicas and ISR")
    describe.add_argument("topic", nargs="*")
    describe.add_argument("--under-replicated-partitions", action="store_true")
    describe.add_argument("--unavailable-partitions", action="store_true")

    alter = actions.add_parser("alter", help="add partitions or change configs")
    alter.add_argument("topic")
    alter.add_argument("--partitions", type=int, help="new total partition count (can only grow)")
    alter.add_argument("--config", action="append", metavar="KEY=VALUE", help="set a config (repeatable)")
    alter.add_argument("--delete-config", action="append", metavar="KEY", help="remove a config override (repeatable)")

    delete = actions.add_parser("delete", help="delete a topic and its data")
    delete.add_argument("topic", nargs="+")

    for sub in (create, lst, describe, alter, delete):
        add_bootstrap(sub)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    admin = AdminClient(bootstrap_servers=args.bootstrap_server)
    try:
        return _ACTIONS[args.action](admin, args)
    except CaudalError as e:
        return fail(e)
    finally:
        admin.close()


def _create(admin: AdminClient, args: argparse.Namespace) -> int:
    topic = NewTopic(args.topic, args.partitions, args.replication_factor, parse_kv(args.config, "--config"))
    try:
        admin.create_topics([topic])[args.topic].result()
    except TopicAlreadyExistsError:
        if args.if_not_exists:
            return 0
        raise
    print(f"Created topic {args.topic}.")
    return 0


def _list(admin: AdminClient, args: argparse.Namespace) -> int:
    for name in admin.list_topics(include_internal=args.include_internal):
        print(name)
    return 0


def _describe(admin: AdminClient, args: argparse.Namespace) -> int:
    topics = admin.describe_topics(args.topic or None)
    configs = admin.describe_configs(list(topics)) if topics else {}
    for name in sorted(topics):
        d = topics[name]
        overrides = ",".join(f"{k}={c.value}" for k, c in sorted(configs[name].items()) if not c.is_default)
        rf = len(d.partitions[0].replicas) if d.partitions else 0
        if not (args.under_replicated_partitions or args.unavailable_partitions):
            print(
                f"Topic: {name}\tTopicId: {d.topic_id}\tPartitionCount: {len(d.partitions)}\t"
                f"ReplicationFactor: {rf}\tConfigs: {overrides}"
            )
        for p in d.partitions:
            if args.under_replicated_partitions and len(p.isr) >= len(p.replicas):
                continue
            if args.unavailable_partitions and p.leader >= 0:
                continue
            leader = str(p.leader) if p.leader >= 0 else "none"
            print(
                f"\tTopic: {name}\tPartition: {p.id}\tLeader: {leader}\t"
                f"Replicas: {','.join(map(str, p.replicas))}\tIsr: {','.join(map(str, p.isr))}"
            )
    return 0


def _alter(admin: AdminClient, args: argparse.Namespace) -> int:
    if args.partitions is None and not args.config and not args.delete_config:
        raise SystemExit("topics alter needs --partitions, --config or --delete-config")
    if args.partitions is not None:
        admin.create_partitions({args.topic: args.partitions})[args.topic].result()
        print(f"Topic {args.topic} now has {args.partitions} partitions.")
    changes: dict[str, str | None] = {**parse_kv(args.config, "--config")}
    changes.update({k: None for k in args.delete_config or []})
    if changes:
        admin.incremental_alter_configs({args.topic: changes})[args.topic].result()
        print(f"Completed updating config for topic {args.topic}.")
    return 0


def _delete(admin: AdminClient, args: argparse.Namespace) -> int:
    results = admin.delete_topics(args.topic)
    status = 0
    for name in args.topic:
        try:
            results[name].result()
            print(f"Deleted topic {name}.")
        except CaudalError as e:
            status = fail(e)
    return status


_ACTIONS = {"create": _create, "list": _list, "describe": _describe, "alter": _alter, "delete": _delete}
