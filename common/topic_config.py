"""Typed topic configuration with Kafka's names and defaults.

Topic configs travel as ``dict[str, str]`` (exactly what users type after
``--config``) and are parsed once into a frozen :class:`TopicConfig`, so a bad
key or value is rejected with INVALID_CONFIG when the topic is created or
altered, never discovered later on the write path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Callable, Mapping

from caudal.common.errors import InvalidConfigError, InvalidTopicError

MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_TOPIC_CHARS = re.compile(r"^[a-zA-Z0-9._-]+$")

FLUSH_POLICY_SYNC = "sync"
FLUSH_POLICY_REPLICATION = "replication"


def validate_topic_name(name: str) -> None:
    """Apply Kafka's topic name rules (``org.apache.kafka.common.internals.Topic.validate``)."""
    if not name:
        raise InvalidTopicError("Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise InvalidTopicError(f"Topic name cannot be \"{name}\"")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicError(
            f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters, "
            f"topic name: {name[:40]}..."
        )
    if not _LEGAL_TOPIC_CHARS.match(name):
        raise InvalidTopicError(
            f"Topic name \"{name}\" is illegal, it contains a character other than "
            "ASCII alphanumerics, '.', '_' and '-'"
        )


def _long(minimum: int) -> Callable[[str, str], int]:
    def parse(key: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise InvalidConfigError(f"Invalid value {raw} for configuration {key}: Not a number of type LONG") from None
        if value < minimum:
            raise InvalidConfigError(f"Invalid value {raw} for configuration {key}: Value must be at least {minimum}")
        return value

    return parse


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(key: str, raw: str) -> str:
        if raw not in allowed:
            raise InvalidConfigError(
                f"Invalid value {raw} for configuration {key}: String must be one of: {', '.join(allowed)}"
            )
        return raw

    return parse


def _cleanup_policy(key: str, raw: str) -> tuple[str, ...]:
    parts = tuple(sorted({p.strip() for p in raw.split(",") if p.strip()}))
    if not parts or any(p not in ("delete", "compact") for p in parts):
        raise InvalidConfigError(
            f"Invalid value {raw} for configuration {key}: list must contain only delete and/or compact"
        )
    return parts


def _bool(key: str, raw: str) -> bool:
    if raw.lower() not in ("true", "false"):
        raise InvalidConfigError(f"Invalid value {raw} for configuration {key}: Expected value to be either true or false")
    return raw.lower() == "true"


@dataclass(frozen=True)
class TopicConfig:
    """A topic's effective configuration; field names are Kafka's keys with ``.`` → ``_``."""

    cleanup_policy: tuple[str, ...] = ("delete",)
    """``delete`` drops whole old segments, ``compact`` keeps the latest record per key."""
    retention_ms: int = 604_800_000
    """Age after which a closed segment is deleted; -1 keeps data forever."""
    retention_bytes: int = -1
    """Partition size above which the oldest closed segments are deleted; -1 means no limit."""
    segment_bytes: int = 1_073_741_824
    """The active segment rolls once it holds this many bytes."""
    segment_ms: int = 604_800_000
    """The active segment rolls once it is this old, so retention can act on quiet topics."""
    delete_retention_ms: int = 86_400_000
    """How long compaction keeps tombstones, so consumers can see deletes."""
    min_compaction_lag_ms: int = 0
    """A record stays uncompacted for at least this long."""
    max_message_bytes: int = 1_048_588
    """Largest record batch the broker accepts for this topic (MESSAGE_TOO_LARGE above it)."""
    min_insync_replicas: int = 1
    """Replicas that must have a batch before ``acks=all`` is answered."""
    message_timestamp_type: str = "CreateTime"
    """``CreateTime`` keeps the producer's timestamps; ``LogAppendTime`` stamps the broker's clock."""
    unclean_leader_election_enable: bool = False
    """Whether a replica outside the ISR may become leader (risking data loss)."""
    log_flush_policy: str = FLUSH_POLICY_SYNC
    """``sync`` fsyncs the write-ahead log before acknowledging (group-committed);
    ``replication`` relies on replicas for durability, as Kafka does."""

    @classmethod
    def from_dict(cls, configs: Mapping[str, str], base: "TopicConfig | None" = None) -> "TopicConfig":
        """Parse user-supplied ``key=value`` overrides on top of ``base`` (the defaults)."""
        values = {}
        for key, raw in configs.items():
            parser = _PARSERS.get(key)
            if parser is None:
                raise InvalidConfigError(f"Unknown topic config name: {key}")
            values[key.replace(".", "_")] = parser(key, str(raw).strip())
        start = base or cls()
        return cls(**{**{f.name: getattr(start, f.name) for f in fields(cls)}, **values})

    def overrides(self) -> dict[str, str]:
        """The ``key=value`` pairs that differ from Kafka's defaults, as kafka-topics shows them."""
        default = TopicConfig()
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                out[f.name.replace("_", ".")] = _render(value)
        return out

    def as_dict(self) -> dict[str, str]:
        """Every config with its effective value (DescribeConfigs)."""
        return {f.name.replace("_", "."): _render(getattr(self, f.name)) for f in fields(self)}

    @property
    def compacted(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def deletes(self) -> bool:
        return "delete" in self.cleanup_policy

    @property
    def sync_writes(self) -> bool:
        return self.log_flush_policy == FLUSH_POLICY_SYNC


def _render(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


_PARSERS: dict[str, Callable[[str, str], object]] = {
    "cleanup.policy": _cleanup_policy,
    "retention.ms": _long(-1),
    "retention.bytes": _long(-1),
    "segment.bytes": _long(14),
    "segment.ms": _long(1),
    "delete.retention.ms": _long(0),
    "min.compaction.lag.ms": _long(0),
    "max.message.bytes": _long(0),
    "min.insync.replicas": _long(1),
    "message.timestamp.type": _choice("CreateTime", "LogAppendTime"),
    "unclean.leader.election.enable": _bool,
    "log.flush.policy": _choice(FLUSH_POLICY_SYNC, FLUSH_POLICY_REPLICATION),
}
