"""Cluster administration: topics, partitions, configs, the cluster description and consumer groups.

:class:`AIOAdminClient` is the implementation, on the caller's asyncio loop;
:class:`AdminClient` runs the very same coroutines on its private I/O thread
for blocking callers. Batch operations return a future per topic (or group), like
confluent-kafka's: ``result()`` (or ``await``) returns None or raises the typed
error for that name, so one bad name does not hide the outcome of the others.

Group operations other than listing must reach the group's coordinator, which
moves with the leadership of its ``__consumer_offsets`` partition; they go
through :class:`_GroupCoordinators`, which finds it, and retry retriable errors
for up to ``request_timeout_ms`` like Kafka's admin client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import uuid
from typing import Any, Awaitable, Callable, Iterable, Mapping, Optional, TypeVar, Union

from caudal.client._transport import Connections, parse_bootstrap
from caudal.client.cluster import MetadataManager
from caudal.client.config import AdminConfig, build_config
from caudal.client.consumer_coordinator import PROTOCOL_TYPE, decode_assignment
from caudal.client.io_thread import IOThread
from caudal.client.structs import (
    BrokerMetadata,
    ClusterDescription,
    ConfigEntry,
    ConsumerGroupDescription,
    ConsumerGroupListing,
    MemberDescription,
    NewTopic,
    OffsetAndMetadata,
    PartitionInfo,
    QuorumInfo,
    TopicDescription,
    TopicPartition,
)
from caudal.common.errors import (
    CaudalError,
    ErrorCode,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    UnknownMemberIdError,
    error_for,
)
from caudal.common.metadata import TOPIC_RESOURCE
from caudal.v1 import broker_pb2 as pb

log = logging.getLogger(__name__)

T = TypeVar("T")
F = TypeVar("F")
V = TypeVar("V")
Outcomes = dict[str, Optional[CaudalError]]

ALTER_SET = 0
ALTER_DELETE = 1
RETRY_BACKOFF_S = 0.1
"""Pause between attempts of a retriable group or offsets request (Kafka's retry.backoff.ms default)."""
_COORDINATOR_MOVED = {ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_NOT_AVAILABLE}


def _outcomes(results: Iterable[Any]) -> Outcomes:
    """Per-name error (None on success) from results carrying ``name``/``resource_name`` and an error code."""
    out: Outcomes = {}
    for r in results:
        name = getattr(r, "name", "") or getattr(r, "resource_name", "")
        out[name] = error_for(r.error_code, r.error_message) if r.error_code else None
    return out


def _by_topic(items: Iterable[tuple[TopicPartition, V]]) -> dict[str, list[tuple[int, V]]]:
    """``(tp, value)`` pairs grouped per topic, in topic and partition order, to build per-topic request lists."""
    out: dict[str, list[tuple[int, V]]] = {}
    for tp, value in sorted(items, key=lambda item: item[0]):
        out.setdefault(tp.topic, []).append((tp.partition, value))
    return out


async def _retrying(attempt: Callable[[], Awaitable[T]], timeout_s: float, what: str) -> T:
    """Repeat ``attempt`` while it fails with a retriable error, for at most ``timeout_s`` in all.

    The whole loop, in-flight RPCs included, is bounded so a blocking caller's wait
    (request_timeout_ms plus a margin) always outlasts it.
    """
    last: Optional[CaudalError] = None
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    return await attempt()
                except CaudalError as exc:
                    if not exc.retriable:
                        raise
                    last = exc
                    log.debug("event=admin_retry what=%r error=%s", what, exc.code.name)
                    await asyncio.sleep(RETRY_BACKOFF_S)
    except TimeoutError:
        raise KafkaTimeoutError(f"{what} did not succeed within {timeout_s:.1f}s (last error: {last})") from None


async def _each(names: Iterable[str], fn: Callable[[str], Awaitable[T]]) -> dict[str, T]:
    """``fn`` run concurrently once per distinct name (groups may have different coordinators), keyed by name."""
    ids = list(dict.fromkeys(names))
    return dict(zip(ids, await asyncio.gather(*(fn(n) for n in ids)), strict=True))


class _GroupCoordinators:
    """Each group's coordinator, and requests sent to it.

    DescribeGroups, OffsetFetch, OffsetCommit and DeleteGroups are answered only by the
    coordinator, the leader of the group's ``__consumer_offsets`` partition. A
    NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE answer (leadership moved, or the offsets
    topic is still being created on first use) drops the cached node, so the retry
    looks it up again.
    """

    def __init__(self, metadata: MetadataManager, timeout_s: float) -> None:
        self._metadata = metadata
        self._timeout_s = timeout_s
        self._nodes: dict[str, BrokerMetadata] = {}

    async def _find(self, group_id: str) -> BrokerMetadata:
        node = self._nodes.get(group_id)
        if node is None:
            r = await self._metadata.call_any("FindCoordinator", pb.FindCoordinatorRequest(key=group_id))
            if r.error_code:
                raise error_for(r.error_code, r.error_message)
            node = self._nodes[group_id] = BrokerMetadata(r.node_id, r.host, r.port, None)
        return node

    async def call(
        self, group_id: str, method: str, request: object, outcome: Callable[[Any], Any] = lambda response: response
    ) -> tuple[Any, BrokerMetadata]:
        """The coordinator's response and node; ``outcome`` picks the part carrying the group's error code."""

        async def attempt() -> tuple[Any, BrokerMetadata]:
            node = await self._find(group_id)
            try:
                response = await self._metadata.conns.call(f"{node.host}:{node.port}", method, request, self._timeout_s)
            except CaudalError:
                self._nodes.pop(group_id, None)
                raise
            result = outcome(response)
            if result.error_code in _COORDINATOR_MOVED:
                self._nodes.pop(group_id, None)
            if result.error_code:
                raise error_for(result.error_code, result.error_message)
            return response, node

        return await _retrying(attempt, self._timeout_s, f"{method} for group {group_id}")


class AIOAdminClient:
    """Cluster administration over any broker, on the running asyncio loop."""

    def __init__(self, **options: Any) -> None:
        self.config: AdminConfig = build_config(AdminConfig, options)
        self._conns = Connections()
        self._timeout_s = self.config.request_timeout_ms / 1000
        self._metadata = MetadataManager(self._conns, parse_bootstrap(self.config.bootstrap_servers), self._timeout_s)
        self._groups = _GroupCoordinators(self._metadata, self._timeout_s)

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

    async def describe_metadata_quorum(self) -> QuorumInfo:
        r = await self._call("DescribeQuorum", pb.DescribeQuorumRequest())
        return QuorumInfo(r.leader_id, r.raft_term, r.commit_index, r.metadata_version)

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

    async def list_offsets(self, specs: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Offsets from each partition's leader for a spec per partition (Kafka's ListOffsets).

        A spec is ``LATEST`` (-1: the log end), ``EARLIEST`` (-2: the log start) or a
        timestamp in ms (the first offset whose timestamp is at or after it, -1 when
        none is). Partitions that do not exist are left out; leaderless ones are retried.
        """
        wanted = dict(specs)

        async def attempt() -> dict[TopicPartition, int]:
            cluster = await self._metadata.refresh({tp.topic for tp in wanted})
            requests: dict[str, list[tuple[TopicPartition, int]]] = {}
            for tp, spec in wanted.items():
                count = cluster.partition_counts.get(tp.topic)
                if tp.topic in cluster.topic_errors or (count is not None and tp.partition >= count):
                    continue  # the partition does not exist
                address = cluster.leader_address(tp)
                if address is None:
                    raise LeaderNotAvailableError(f"no leader for {tp.topic}-{tp.partition}")
                requests.setdefault(address, []).append((tp, spec))
            responses = await asyncio.gather(*(
                self._conns.call(address, "ListOffsets", pb.ListOffsetsRequest(topics=[
                    pb.ListOffsetsTopic(topic=t, partitions=[pb.ListOffsetsPartition(partition=p, timestamp=ts) for p, ts in parts])
                    for t, parts in _by_topic(items).items()
                ]), self._timeout_s)
                for address, items in requests.items()
            ))
            out: dict[TopicPartition, int] = {}
            for response in responses:
                for t in response.topics:
                    for p in t.partitions:
                        if p.error_code:
                            raise error_for(p.error_code, p.error_message)
                        out[TopicPartition(t.topic, p.partition)] = p.offset
            return out

        return await _retrying(attempt, self._timeout_s, "ListOffsets")

    # ---- consumer groups ----------------------------------------------------------

    async def list_consumer_groups(self, states: Optional[Iterable[str]] = None) -> list[ConsumerGroupListing]:
        """Every consumer group of the cluster (optionally only those in ``states``), by group id.

        A broker lists only the groups it coordinates, so every broker is asked. Groups
        of other protocols (Connect workers) are left out, as Kafka's admin does.
        """
        cluster = await self._metadata.refresh()
        request = pb.ListGroupsRequest(states_filter=list(states or ()))
        responses = await asyncio.gather(*(self._list_groups_on(address, request) for address in cluster.any_address()))
        listings = {
            g.group_id: ConsumerGroupListing(g.group_id, not g.protocol_type, g.group_state)
            for response in responses for g in response.groups if g.protocol_type in ("", PROTOCOL_TYPE)
        }
        return [listings[g] for g in sorted(listings)]

    async def _list_groups_on(self, address: str, request: pb.ListGroupsRequest) -> pb.ListGroupsResponse:
        async def attempt() -> pb.ListGroupsResponse:
            response = await self._conns.call(address, "ListGroups", request, self._timeout_s)
            if response.error_code:
                raise error_for(response.error_code, response.error_message)
            return response

        return await _retrying(attempt, self._timeout_s, f"ListGroups on {address}")

    async def describe_consumer_groups(self, group_ids: Iterable[str]) -> dict[str, ConsumerGroupDescription]:
        """State, members and their decoded assignments; a group that does not exist is described as ``Dead``."""
        return await _each(group_ids, self._describe_group)

    async def _describe_group(self, group_id: str) -> ConsumerGroupDescription:
        response, coordinator = await self._groups.call(
            group_id, "DescribeGroups", pb.DescribeGroupsRequest(groups=[group_id]), lambda r: r.groups[0]
        )
        g = response.groups[0]
        consumer = g.protocol_type == PROTOCOL_TYPE
        members = [
            MemberDescription(
                m.member_id, m.group_instance_id or None, m.client_id, m.client_host,
                decode_assignment(m.member_assignment) if consumer else [],
            )
            for m in g.members
        ]
        return ConsumerGroupDescription(group_id, not g.protocol_type, members, g.protocol_data, g.group_state, coordinator)

    async def list_consumer_group_offsets(
        self, group_id: str, partitions: Optional[Iterable[TopicPartition]] = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """The group's committed offsets (of ``partitions``, or all); partitions without one are left out."""
        request = pb.OffsetFetchRequest(group_id=group_id, topics=[
            pb.OffsetFetchTopic(name=t, partitions=[p for p, _ in parts])
            for t, parts in _by_topic((tp, None) for tp in partitions or ()).items()
        ])
        response, _ = await self._groups.call(group_id, "OffsetFetch", request)
        out = {}
        for t in response.topics:
            for p in t.partitions:
                if p.error_code:
                    raise error_for(p.error_code, p.error_message)
                if p.committed_offset >= 0:
                    out[TopicPartition(t.name, p.partition)] = OffsetAndMetadata(p.committed_offset, p.metadata, p.committed_leader_epoch)
        return out

    async def alter_consumer_group_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, Union[OffsetAndMetadata, int]]
    ) -> None:
        """Commit ``offsets`` for the group from outside it (generation -1, no member id).

        Only allowed while the group has no active members, as in Kafka: live consumers
        own their positions and would overwrite (or be confused by) the change.
        """
        committed = ((tp, v if isinstance(v, OffsetAndMetadata) else OffsetAndMetadata(v)) for tp, v in offsets.items())
        request = pb.OffsetCommitRequest(group_id=group_id, generation_id=-1, topics=[
            pb.OffsetCommitTopic(name=t, partitions=[
                pb.OffsetCommitPartition(
                    partition=p, committed_offset=om.offset, committed_metadata=om.metadata, committed_leader_epoch=om.leader_epoch,
                )
                for p, om in parts
            ])
            for t, parts in _by_topic(committed).items()
        ])
        try:
            response, _ = await self._groups.call(group_id, "OffsetCommit", request)
        except UnknownMemberIdError:
            raise UnknownMemberIdError(
                f"the offsets of group '{group_id}' can only be altered while it is inactive, but it has active members"
            ) from None
        for t in response.topics:
            for p in t.partitions:
                if p.error_code:
                    raise error_for(p.error_code, f"{t.name}-{p.partition}: {p.error_message}")

    async def delete_consumer_groups_outcomes(self, group_ids: Iterable[str]) -> Outcomes:
        return await _each(group_ids, self._delete_group)

    async def _delete_group(self, group_id: str) -> Optional[CaudalError]:
        try:
            await self._groups.call(group_id, "DeleteGroups", pb.DeleteGroupsRequest(groups=[group_id]), lambda r: r.results[0])
        except CaudalError as e:
            return e
        return None

    async def delete_consumer_groups(self, group_ids: Iterable[str]) -> dict[str, "asyncio.Future[None]"]:
        """Delete groups without members, with their committed offsets (NON_EMPTY_GROUP otherwise)."""
        return _async_futures(await self.delete_consumer_groups_outcomes(group_ids))

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

    def describe_metadata_quorum(self) -> QuorumInfo:
        return self._run(self._aio.describe_metadata_quorum())

    def describe_configs(self, topics: Iterable[str]) -> dict[str, dict[str, ConfigEntry]]:
        return self._run(self._aio.describe_configs(topics))

    def list_offsets(self, specs: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """See :meth:`AIOAdminClient.list_offsets`: spec ``LATEST`` (-1), ``EARLIEST`` (-2) or a timestamp in ms."""
        return self._run(self._aio.list_offsets(specs))

    def list_consumer_groups(self, states: Optional[Iterable[str]] = None) -> list[ConsumerGroupListing]:
        return self._run(self._aio.list_consumer_groups(states))

    def describe_consumer_groups(self, group_ids: Iterable[str]) -> dict[str, ConsumerGroupDescription]:
        return self._run(self._aio.describe_consumer_groups(group_ids))

    def list_consumer_group_offsets(
        self, group_id: str, partitions: Optional[Iterable[TopicPartition]] = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        return self._run(self._aio.list_consumer_group_offsets(group_id, partitions))

    def alter_consumer_group_offsets(self, group_id: str, offsets: Mapping[TopicPartition, Union[OffsetAndMetadata, int]]) -> None:
        """Commit ``offsets`` for a group that has no active members (UNKNOWN_MEMBER_ID otherwise)."""
        self._run(self._aio.alter_consumer_group_offsets(group_id, offsets))

    def delete_consumer_groups(self, group_ids: Iterable[str]) -> dict[str, "concurrent.futures.Future[None]"]:
        return _concurrent_futures(self._run(self._aio.delete_consumer_groups_outcomes(group_ids)))

    def close(self) -> None:
        self._io.run(self._aio.close(), 10)
        self._io.stop()

    def __enter__(self) -> "AdminClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
