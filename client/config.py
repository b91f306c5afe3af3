"""Typed client configurations: Kafka's option names in snake_case, Kafka's defaults.

A config is a frozen dataclass built from the keyword arguments a user passes
to ``Producer(...)`` / ``Consumer(...)``; an unknown option or a bad value
fails at construction with a clear message instead of being ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional, TypeVar

from caudal.common.compression import CompressionType
from caudal.common.errors import InvalidConfigError

C = TypeVar("C")


def build_config(cls: type[C], options: dict[str, Any]) -> C:
    """Construct ``cls`` from user options, naming unknown ones in the error."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidConfigError(f"Unknown {cls.__name__} option(s): {', '.join(unknown)}")
    config = cls(**options)
    config.validate()  # type: ignore[attr-defined]
    return config


def _default_client_id(kind: str) -> str:
    return f"caudal-{kind}-{os.getpid()}"


@dataclass(frozen=True)
class ProducerConfig:
    """Producer options (Kafka ``ProducerConfig`` names and defaults)."""

    bootstrap_servers: str | list[str] = "localhost:9092"
    client_id: str = ""
    acks: Any = "all"
    """``"all"``/-1: the full ISR has the batch; 1: the leader has it; 0: no answer awaited."""
    linger_ms: int = 5
    batch_size: int = 16384
    compression_type: Optional[str] = None
    retries: int = 2147483647
    delivery_timeout_ms: int = 120000
    request_timeout_ms: int = 30000
    retry_backoff_ms: int = 100
    max_in_flight_requests_per_connection: int = 5
    enable_idempotence: bool = True
    buffer_memory: int = 33554432
    max_block_ms: int = 60000
    max_request_size: int = 1048576
    partitioner: Optional[Callable[[bytes | None, list[int], list[int]], int]] = None
    """``partitioner(key_bytes, all_partitions, available_partitions) -> partition``
    (kafka-python's signature); default murmur2 for keys, sticky for null keys."""

    def validate(self) -> None:
        if self.acks not in ("all", -1, "-1", 0, "0", 1, "1"):
            raise InvalidConfigError(f"acks must be all, -1, 0 or 1, got {self.acks!r}")
        if self.compression_type not in (None, "none", "gzip", "snappy", "lz4", "zstd"):
            raise InvalidConfigError(f"compression_type must be none, gzip, snappy, lz4 or zstd, got {self.compression_type!r}")
        for name in ("linger_ms", "retries", "retry_backoff_ms", "max_block_ms"):
            if getattr(self, name) < 0:
                raise InvalidConfigError(f"{name} must be >= 0")
        for name in ("batch_size", "request_timeout_ms", "delivery_timeout_ms", "buffer_memory", "max_request_size"):
            if getattr(self, name) <= 0:
                raise InvalidConfigError(f"{name} must be > 0")
        if not 1 <= self.max_in_flight_requests_per_connection:
            raise InvalidConfigError("max_in_flight_requests_per_connection must be >= 1")
        if self.delivery_timeout_ms < self.linger_ms + self.request_timeout_ms:
            raise InvalidConfigError("delivery_timeout_ms should be >= linger_ms + request_timeout_ms")

    @property
    def acks_value(self) -> int:
        return -1 if self.acks in ("all", -1, "-1") else int(self.acks)

    @property
    def compression(self) -> CompressionType:
        return CompressionType.from_name(self.compression_type or "none")

    @property
    def resolved_client_id(self) -> str:
        return self.client_id or _default_client_id("producer")


@dataclass(frozen=True)
class ConsumerConfig:
    """Consumer options (Kafka ``ConsumerConfig`` names and defaults)."""

    bootstrap_servers: str | list[str] = "localhost:9092"
    client_id: str = ""
    group_id: Optional[str] = None
    group_instance_id: Optional[str] = None
    auto_offset_reset: str = "latest"
    enable_auto_commit: bool = True
    auto_commit_interval_ms: int = 5000
    fetch_min_bytes: int = 1
    fetch_max_bytes: int = 52428800
    fetch_max_wait_ms: int = 500
    max_partition_fetch_bytes: int = 1048576
    max_poll_records: int = 500
    max_poll_interval_ms: int = 300000
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 3000
    request_timeout_ms: int = 30000
    retry_backoff_ms: int = 100
    isolation_level: str = "read_uncommitted"
    check_crcs: bool = True
    partition_assignment_strategy: tuple[str, ...] | list[str] = ("range", "cooperative-sticky")
    """Assignor names in preference order (Kafka's default: range, then cooperative-sticky)."""
    metadata_max_age_ms: int = 300000
    """How often a pattern subscription is re-matched and partition counts are re-checked."""

    def validate(self) -> None:
        if self.group_instance_id is not None and not self.group_id:
            raise InvalidConfigError("group_instance_id needs group_id")
        if not self.assignor_names:
            raise InvalidConfigError("partition_assignment_strategy must name at least one assignor")
        if not 0 < self.heartbeat_interval_ms < self.session_timeout_ms:
            raise InvalidConfigError("heartbeat_interval_ms must be > 0 and lower than session_timeout_ms")
        for name in ("auto_commit_interval_ms", "max_poll_interval_ms", "metadata_max_age_ms"):
            if getattr(self, name) <= 0:
                raise InvalidConfigError(f"{name} must be > 0")
        if self.auto_offset_reset not in ("earliest", "latest", "none"):
            raise InvalidConfigError(f"auto_offset_reset must be earliest, latest or none, got {self.auto_offset_reset!r}")
        if self.isolation_level not in ("read_uncommitted", "read_committed"):
            raise InvalidConfigError(f"isolation_level must be read_uncommitted or read_committed, got {self.isolation_level!r}")
        for name in ("max_poll_records", "fetch_max_bytes", "max_partition_fetch_bytes", "request_timeout_ms"):
            if getattr(self, name) <= 0:
                raise InvalidConfigError(f"{name} must be > 0")
        if self.fetch_max_wait_ms < 0 or self.fetch_min_bytes < 0:
            raise InvalidConfigError("fetch_max_wait_ms and fetch_min_bytes must be >= 0")

    @property
    def resolved_client_id(self) -> str:
        return self.client_id or _default_client_id("consumer")

    @property
    def assignor_names(self) -> list[str]:
        strategy = self.partition_assignment_strategy
        return [strategy] if isinstance(strategy, str) else list(strategy)


@dataclass(frozen=True)
class AdminConfig:
    """AdminClient options."""

    bootstrap_servers: str | list[str] = "localhost:9092"
    client_id: str = ""
    request_timeout_ms: int = 30000

    def validate(self) -> None:
        if self.request_timeout_ms <= 0:
            raise InvalidConfigError("request_timeout_ms must be > 0")


__all__ = ["AdminConfig", "ConsumerConfig", "ProducerConfig", "build_config"]
