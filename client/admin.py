"""Cluster administration: topics, partitions, configs and the cluster description.

:class:`AIOAdminClient` is the implementation, on the caller's asyncio loop;
:class:`AdminClient` runs the very same coroutines on its private I/O thread
for blocking callers. Batch operations return a future per topic, like
confluent-kafka's: ``result()`` (or ``await``) returns None or raises the typed
error for that topic, so one bad topic does not hide the outcome of the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from typing import Any, Awaitable, Callable, Iterable, Optional, TypeVar

from caudal.client._transport import Connections, parse_bootstrap
from caudal.client.cluster import MetadataManager
from caudal.client.config import AdminConfig, build_config
from caudal.client.io_thread import IOThread
from caudal.client.structs import (
    BrokerMetadata,
    ClusterDescription,
    ConfigEntry,
    NewTopic,
    PartitionInfo,
    TopicDescription,
)
from caudal.common.errors import CaudalError, error_for
from caudal.common.metadata import TOPIC_RESOURCE
from caudal.v1 import broker_pb2 as pb

T = TypeVar("T")
F = TypeVar("F")
Outcomes = dict[str, Optional[CaudalError]]

ALTER_SET = 0
ALTER_DELETE = 1


def _outcomes(results: Iterable[Any]) -> Outcomes:
    """Per-name error (None on success) from results carrying ``name``/``resource_name`` and an error code."""
    out: Outcomes = {}
    for r in results:
        name = getattr(r, "name", "") or getattr(r, "resource_name", "")
        out[name] = error_for(r.error_code, r.error_message) if r.error_code else None
    return out


class AIOAdminClient:
    """Cluster administration over any broker, on the running asyncio loop."""

    def __init__(self, **options: Any) -> None:
        self.config: AdminConfig = build_config(AdminConfig, options)
        self._conns = Connections()
        self._metadata = MetadataManager(self._conns, parse_bootstrap(self.config.bootstrap_servers), self.config.request_timeout_ms / 1000)

    async def _call(self, method: str, request: object) -> Any:
        return await self._metadata.call_any(method, request)

    # Each batch operation has an ``_outcomes`` coroutine shared with the blocking client.

    async def create_topics_outcomes(self, new_topics: Iterable[NewTopic], timeout_ms: Optional[int] = None, validate_only: bool = False) -> Outcomes:
        request = pb.CreateTopicsRequest(timeout_ms=timeout_ms or self.config.request_timeout_ms, validate_only=validate_only)
        for t in new_topics:
            request.topics.add(
                name=t.name, num_partitions=t.num_partitions, replication_factor=t.replication_factor,
                configs={k: str(v) for k, v in t.config.items()},
            )
        return _outcomes((await self._call("CreateTopics", request)).results)

    async def delete_topics_outcomes(self, topics: Iterable[str], timeout_ms: Optional[int] = None) -> Outcomes:
        request = pb.DeleteTopicsRequest(names=list(topics), timeout_ms=timeout_ms or self.config.request_timeout_ms)
        return _outcomes((await self._call("DeleteTopics", request)).results)

    async def create_partitions_outcomes(self, new_counts: dict[str, int], validate_only: bool = False) -> Outcomes:
        request = pb.CreatePartitionsRequest(validate_only=validate_only)
        for name, count in new_counts.items():
            request.topics.add(name=name, count=count)
        return _outcomes((await self._call("CreatePartitions", request)).results)

    async def incremental_alter_configs_outcomes(
        self, changes: dict[str, dict[str, Optional[str]]], validate_only: bool = False
    ) -> Outcomes:
        request = pb.AlterConfigsRequest(validate_only=validate_only)
        for topic, configs in changes.items():
            res = request.resources.add(resource_type=TOPIC_RESOURCE, resource_name=topic)
            for name, value in configs.items():
                if value is None:
                    res.configs.add(name=name, op=ALTER_DELETE)
                else:
                    res.configs.add(name=name, op=ALTER_SET, value=str(value))
        return _outcomes((await self._call("AlterConfigs", request)).results)

    async def create_topics(self, new_topics: Iterable[NewTopic], timeout_ms: Optional[int] = None, validate_only: bool = False) -> dict[str, "asyncio.Future[None]"]:
        return _async_futures(await self.create_topics_outcomes(new_topics, timeout_ms, validate_only))

    async def delete_topics(self, topics: Iterable[str], timeout_ms: Optional[int] = None) -> dict[str, "asyncio.Future[None]"]:
        return _async_futures(await self.delete_topics_outcomes(topics, timeout_ms))

    async def create_partitions(self, new_counts: dict[str, int], validate_only: bool = False) -> dict[str, "asyncio.Future[None]"]:
        return _async_futures(await self.create_partitions_outcomes(new_counts, validate_only))

    async def incremental_alter_configs(
        self, changes: dict[str, dict[str, Optional[str]]], validate_only: bool = False
    ) -> dict[str, "asyncio.Future[None]"]:
        """``{topic: {key: value, key2: None}}`` sets ``key`` and removes the override of ``key2``."""
        return _async_futures(await self.incremental_alter_configs_outcomes(changes, validate_only))

    async def list_topics(self, include_internal: bool = False) -> list[str]:
        response = await self._call("Metadata", pb.MetadataRequest(all_topics=True))
        return sorted(t.name for t in response.topics if include_internal or not t.is_internal)

    async def describe_topics(self, topics: Optional[Iterable[str]] = None) -> dict[str, TopicDescription]:
        """Descriptions of ``topics`` (all when None); an unknown topic raises its typed error."""
        names = list(topics) if topics is not None else []
        response = await self._call("Metadata", pb.MetadataRequest(topics=names, all_topics=not names))
        out = {}
        for t in response.topics:
            if t.error_code:
                raise error_for(t.error_code, t.error_message)
            partitions = [
                PartitionInfo(p.partition, p.leader, list(p.replicas), list(p.isr), p.leader_epoch) for p in t.partitions
            ]
            out[t.name] = TopicDescription(t.name, str(uuid.UUID(bytes=t.topic_id)), t.is_internal, partitions)
        return out

    async def describe_cluster(self) -> ClusterDescription:
        r = await self._call("DescribeCluster", pb.DescribeClusterRequest())
        if r.error_code:
            raise error_for(r.error_code, r.error_message)
        brokers = [BrokerMetadata(b.node_id, b.host, b.port, b.rack or None) for b in r.brokers]
        return ClusterDescription(r.cluster_id, r.controller_id, brokers)

    async def describe_configs(self, topics: Iterable[str]) -> dict[str, dict[str, ConfigEntry]]:
        request = pb.DescribeConfigsRequest(
            resources=[pb.ConfigResource(resource_type=TOPIC_RESOURCE, resource_name=t) for t in topics]
        )
        response = await self._call("DescribeConfigs", request)
        out = {}
        for res in response.results:
            if res.error_code:
                raise error_for(res.error_code, res.error_message)
            out[res.resource_name] = {
                c.name: ConfigEntry(c.name, c.value, c.is_default, c.source, c.read_only, c.is_sensitive) for c in res.configs
            }
        return out

    async def close(self) -> None:
        await self._conns.close()

    async def __aenter__(self) -> "AIOAdminClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _futures(outcomes: Outcomes, new_future: Callable[[], F]) -> dict[str, F]:
    """Completed futures (asyncio's or concurrent's) carrying each outcome."""
    out = {}
    for name, error in outcomes.items():
        fut = new_future()
        if error is None:
            fut.set_result(None)  # type: ignore[attr-defined]
        else:
            fut.set_exception(error)  # type: ignore[attr-defined]
        out[name] = fut
    return out


def _async_futures(outcomes: Outcomes) -> dict[str, "asyncio.Future[None]"]:
    return _futures(outcomes, asyncio.get_running_loop().create_future)


def _concurrent_futures(outcomes: Outcomes) -> dict[str, "concurrent.futures.Future[None]"]:
    return _futures(outcomes, concurrent.futures.Future)


class AdminClient:
    """Blocking cluster administration: the :class:`AIOAdminClient` coroutines on a private I/O thread."""

    def __init__(self, **options: Any) -> None:
        self._io = IOThread(f"caudal-admin-io-{id(self):x}")
        self._aio = AIOAdminClient(**options)
        self.config = self._aio.config

    def _run(self, coro: Awaitable[T]) -> T:
        return self._io.run(coro, self.config.request_timeout_ms / 1000 + 5)  # type: ignore[arg-type]

    def create_topics(
        self, new_topics: Iterable[NewTopic], timeout_ms: Optional[int] = None, validate_only: bool = False
    ) -> dict[str, "concurrent.futures.Future[None]"]:
        return _concurrent_futures(self._run(self._aio.create_topics_outcomes(new_topics, timeout_ms, validate_only)))

    def delete_topics(self, topics: Iterable[str], timeout_ms: Optional[int] = None) -> dict[str, "concurrent.futures.Future[None]"]:
        return _concurrent_futures(self._run(self._aio.delete_topics_outcomes(topics, timeout_ms)))

    def create_partitions(self, new_counts: dict[str, int], validate_only: bool = False) -> dict[str, "concurrent.futures.Future[None]"]:
        return _concurrent_futures(self._run(self._aio.create_partitions_outcomes(new_counts, validate_only)))

    def incremental_alter_configs(
        self, changes: dict[str, dict[str, Optional[str]]], validate_only: bool = False
    ) -> dict[str, "concurrent.futures.Future[None]"]:
        """``{topic: {key: value, key2: None}}`` sets ``key`` and removes the override of ``key2``."""
        return _concurrent_futures(self._run(self._aio.incremental_alter_configs_outcomes(changes, validate_only)))

    def list_topics(self, include_internal: bool = False) -> list[str]:
        return self._run(self._aio.list_topics(include_internal))

    def describe_topics(self, topics: Optional[Iterable[str]] = None) -> dict[str, TopicDescription]:
        return self._run(self._aio.describe_topics(topics))

    def describe_cluster(self) -> ClusterDescription:
        return self._run(self._aio.describe_cluster())

    def describe_configs(self, topics: Iterable[str]) -> dict[str, dict[str, ConfigEntry]]:
        return self._run(self._aio.describe_configs(topics))

    def close(self) -> None:
        self._io.run(self._aio.close(), 10)
        self._io.stop()

    def __enter__(self) -> "AdminClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
