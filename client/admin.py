"""The blocking AdminClient: topics, partitions, configs and cluster description.

Results of batch operations come back like confluent-kafka's: a dict of
already-completed ``concurrent.futures.Future`` per topic, whose ``result()``
returns None or raises the typed error for that topic, so one bad topic does
not hide the outcome of the others.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from typing import Any, Iterable, Optional

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
from caudal.common.errors import error_for
from caudal.common.metadata import TOPIC_RESOURCE
from caudal.v1 import broker_pb2 as pb

ALTER_SET = 0
ALTER_DELETE = 1


def _future(code: int, message: str, value: object = None) -> "concurrent.futures.Future[Any]":
    f: concurrent.futures.Future[Any] = concurrent.futures.Future()
    if code:
        f.set_exception(error_for(code, message))
    else:
        f.set_result(value)
    return f


class AdminClient:
    """Cluster administration over any broker (admin requests are forwarded to the controller)."""

    def __init__(self, **options: Any) -> None:
        self.config: AdminConfig = build_config(AdminConfig, options)
        self._io = IOThread(f"caudal-admin-io-{id(self):x}")
        self._conns = Connections()
        self._metadata = MetadataManager(self._conns, parse_bootstrap(self.config.bootstrap_servers), self.config.request_timeout_ms / 1000)

    def _call(self, method: str, request: object) -> Any:
        return self._io.run(self._metadata.call_any(method, request), self.config.request_timeout_ms / 1000 + 5)

    def create_topics(
        self, new_topics: Iterable[NewTopic], timeout_ms: Optional[int] = None, validate_only: bool = False
    ) -> dict[str, "concurrent.futures.Future[None]"]:
        request = pb.CreateTopicsRequest(timeout_ms=timeout_ms or self.config.request_timeout_ms, validate_only=validate_only)
        for t in new_topics:
            request.topics.add(
                name=t.name, num_partitions=t.num_partitions, replication_factor=t.replication_factor,
                configs={k: str(v) for k, v in t.config.items()},
            )
        response = self._call("CreateTopics", request)
        return {r.name: _future(r.error_code, r.error_message) for r in response.results}

    def delete_topics(self, topics: Iterable[str], timeout_ms: Optional[int] = None) -> dict[str, "concurrent.futures.Future[None]"]:
        request = pb.DeleteTopicsRequest(names=list(topics), timeout_ms=timeout_ms or self.config.request_timeout_ms)
        response = self._call("DeleteTopics", request)
        return {r.name: _future(r.error_code, r.error_message) for r in response.results}

    def create_partitions(self, new_counts: dict[str, int], validate_only: bool = False) -> dict[str, "concurrent.futures.Future[None]"]:
        request = pb.CreatePartitionsRequest(validate_only=validate_only)
        for name, count in new_counts.items():
            request.topics.add(name=name, count=count)
        response = self._call("CreatePartitions", request)
        return {r.name: _future(r.error_code, r.error_message) for r in response.results}

    def list_topics(self, include_internal: bool = False) -> list[str]:
        response = self._call("Metadata", pb.MetadataRequest(all_topics=True))
        return sorted(t.name for t in response.topics if include_internal or not t.is_internal)

    def describe_topics(self, topics: Optional[Iterable[str]] = None) -> dict[str, TopicDescription]:
        """Descriptions of ``topics`` (all when None); an unknown topic raises its typed error."""
        names = list(topics) if topics is not None else []
        response = self._call("Metadata", pb.MetadataRequest(topics=names, all_topics=not names))
        out = {}
        for t in response.topics:
            if t.error_code:
                raise error_for(t.error_code, t.error_message)
            partitions = [
                PartitionInfo(p.partition, p.leader, list(p.replicas), list(p.isr), p.leader_epoch) for p in t.partitions
            ]
            out[t.name] = TopicDescription(t.name, str(uuid.UUID(bytes=t.topic_id)), t.is_internal, partitions)
        return out

    def describe_cluster(self) -> ClusterDescription:
        r = self._call("DescribeCluster", pb.DescribeClusterRequest())
        if r.error_code:
            raise error_for(r.error_code, r.error_message)
        brokers = [BrokerMetadata(b.node_id, b.host, b.port, b.rack or None) for b in r.brokers]
        return ClusterDescription(r.cluster_id, r.controller_id, brokers)

    def describe_configs(self, topics: Iterable[str]) -> dict[str, dict[str, ConfigEntry]]:
        request = pb.DescribeConfigsRequest(
            resources=[pb.ConfigResource(resource_type=TOPIC_RESOURCE, resource_name=t) for t in topics]
        )
        response = self._call("DescribeConfigs", request)
        out = {}
        for res in response.results:
            if res.error_code:
                raise error_for(res.error_code, res.error_message)
            out[res.resource_name] = {
                c.name: ConfigEntry(c.name, c.value, c.is_default, c.source, c.read_only, c.is_sensitive) for c in res.configs
            }
        return out

    def incremental_alter_configs(
        self, changes: dict[str, dict[str, Optional[str]]], validate_only: bool = False
    ) -> dict[str, "concurrent.futures.Future[None]"]:
        """``{topic: {key: value, key2: None}}`` sets ``key`` and removes the override of ``key2``."""
        request = pb.AlterConfigsRequest(validate_only=validate_only)
        for topic, configs in changes.items():
            res = request.resources.add(resource_type=TOPIC_RESOURCE, resource_name=topic)
            for name, value in configs.items():
                if value is None:
                    res.configs.add(name=name, op=ALTER_DELETE)
                else:
                    res.configs.add(name=name, op=ALTER_SET, value=str(value))
        response = self._call("AlterConfigs", request)
        return {r.resource_name: _future(r.error_code, r.error_message) for r in response.results}

    def close(self) -> None:
        self._io.run(self._conns.close(), 10)
        self._io.stop()

    def __enter__(self) -> "AdminClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
