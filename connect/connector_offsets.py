"""Connector offsets for the REST API (KIP-875), the same in standalone and distributed mode.

A source connector's offsets are the source partitions/offsets in the worker's
offset store; a sink connector's are its consumer group's (``connect-<name>``)
committed offsets, shown in Kafka's ``{"kafka_topic", "kafka_partition"}`` /
``{"kafka_offset"}`` form. Changing either requires the connector to be STOPPED.
"""

from __future__ import annotations

import asyncio
from typing import Any

from caudal.client import AdminClient, TopicPartition
from caudal.common.errors import CaudalError, ErrorCode
from caudal.connect.herder import ConnectRestError
from caudal.connect.offset_store import OffsetStore

ALTERED_SOURCE = "The offsets for this connector have been altered successfully"
ALTERED_SINK = (
    "The Connect framework-managed offsets for this connector have been altered successfully. However, if this "
    "connector manages offsets externally, they will need to be manually altered in the system that the connector uses."
)
RESET = "The offsets for this connector have been reset successfully"


def stopped_required(name: str) -> ConnectRestError:
    return ConnectRestError(
        400, "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the "
        f"specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint",
    )


def _group(name: str) -> str:
    return f"connect-{name}"


async def read(store: OffsetStore, bootstrap: str, name: str, kind: str) -> dict[str, Any]:
    if kind == "source":
        return {"offsets": [{"partition": p, "offset": o} for p, o in store.all(name)]}

    def committed() -> list[dict[str, Any]]:
        with AdminClient(bootstrap_servers=bootstrap) as admin:
            offsets = admin.list_consumer_group_offsets(_group(name))
        return [
            {"partition": {"kafka_topic": tp.topic, "kafka_partition": tp.partition}, "offset": {"kafka_offset": om.offset}}
            for tp, om in sorted(offsets.items())
        ]

    return {"offsets": await asyncio.to_thread(committed)}


async def alter(store: OffsetStore, bootstrap: str, name: str, kind: str, offsets: list[dict[str, Any]]) -> str:
    if kind == "source":
        await asyncio.to_thread(store.put, name, [(o["partition"], o.get("offset")) for o in offsets])
        return ALTERED_SOURCE
    try:
        changes = {
            TopicPartition(o["partition"]["kafka_topic"], int(o["partition"]["kafka_partition"])): int(o["offset"]["kafka_offset"])
            for o in offsets if o.get("offset") is not None
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ConnectRestError(400, f"Invalid sink connector offsets: {exc}") from None

    def apply() -> None:
        with AdminClient(bootstrap_servers=bootstrap) as admin:
            admin.alter_consumer_group_offsets(_group(name), changes)

    await asyncio.to_thread(apply)
    return ALTERED_SINK


async def reset(store: OffsetStore, bootstrap: str, name: str, kind: str) -> str:
    if kind == "source":
        await asyncio.to_thread(store.put, name, [(p, None) for p, _ in store.all(name)])
        return RESET

    def delete_group() -> None:
        with AdminClient(bootstrap_servers=bootstrap) as admin:
            for future in admin.delete_consumer_groups([_group(name)]).values():
                try:
                    future.result(30)
                except CaudalError as exc:
                    if exc.code != ErrorCode.GROUP_ID_NOT_FOUND:  # a group that never committed has nothing to reset
                        raise

    await asyncio.to_thread(delete_group)
    return RESET
