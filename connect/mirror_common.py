"""What MirrorMaker 2's two connectors share: config keys, topic naming and filtering, task spreading, record formats.

MirrorMaker 2 (KIP-382) is a pair of Connect source connectors run on a worker
of the *target* cluster: :mod:`caudal.connect.mirror_source` copies topics
from the source cluster and records which upstream offset landed at which
downstream offset (*offset syncs*); :mod:`caudal.connect.mirror_checkpoint`
turns consumer groups' committed offsets in the source into offsets of the
target with those syncs. Both must agree on how a topic is named remotely
(``<source alias><separator><topic>``), which topics are replicated, where
the internal topics live and how their records are encoded, so that lives
here once. The record formats are MM2's binary ones (Kafka's protocol
``Struct`` encoding, big-endian), so tools written for MM2's internal topics
read caudal's too.

Kafka's connectors ask the worker to recompute task configs when topics or
groups appear; caudal's connector API has no such call, so work is spread
with :func:`task_for`, which depends only on a name, a partition and the task
count: a task finds the partitions (or groups) that appeared after it started
by applying the same rule, without any other task's assignment moving.
"""

from __future__ import annotations

import re
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from caudal.client import AdminClient, NewTopic, TopicPartition
from caudal.common.errors import TopicAlreadyExistsError
from caudal.connect.api import Schema, Type
from caudal.connect.config_def import (
    NO_DEFAULT,
    ConfigDef,
    ConfigException,
    ConfigType,
    Importance,
)

SOURCE_CLUSTER_ALIAS = "source.cluster.alias"
TARGET_CLUSTER_ALIAS = "target.cluster.alias"
SOURCE_BOOTSTRAP = "source.cluster.bootstrap.servers"
TARGET_BOOTSTRAP = "target.cluster.bootstrap.servers"
TOPICS = "topics"
TOPICS_EXCLUDE = "topics.exclude"
SEPARATOR = "replication.policy.separator"

TASK_INDEX = "task.index"
TASK_COUNT = "task.count"
"""Task config keys of caudal's own: which task this is, of how many (see :func:`task_for`)."""

BYTES_SCHEMA = Schema(Type.BYTES, optional=True)
"""Keys and values are copied as bytes: run both connectors with ``ByteArrayConverter``, as MM2 requires."""
OPERATION_TIMEOUT_S = 30.0
"""The longest the connectors wait for one cluster operation (a topic creation, a flush on close)."""


def compile_patterns(patterns: Sequence[str]) -> re.Pattern[str]:
    """MM2's pattern list: the regexes joined with ``|``, matched against the whole name (an empty list matches nothing)."""
    return re.compile("|".join(patterns)) if patterns else re.compile(r"(?!)")


def regex_list(name: str, value: Any) -> None:
    """Validator of a list of regexes (MM2's topics and groups filters)."""
    try:
        compile_patterns(value or [])
    except re.error as exc:
        raise ConfigException.invalid(name, value, f"Invalid regex: {exc}") from None


MIRROR_CONFIG_DEF = (
    ConfigDef()
    .define(SOURCE_CLUSTER_ALIAS, ConfigType.STRING, "source", importance=Importance.HIGH,
            documentation="Alias of source cluster; it prefixes the names of the remote topics.")
    .define(TARGET_CLUSTER_ALIAS, ConfigType.STRING, "target", importance=Importance.HIGH,
            documentation="Alias of target cluster; it names the offset-syncs topic.")
    .define(SOURCE_BOOTSTRAP, ConfigType.STRING, NO_DEFAULT, importance=Importance.HIGH,
            documentation="Bootstrap servers of the source cluster.")
    .define(TARGET_BOOTSTRAP, ConfigType.STRING, NO_DEFAULT, importance=Importance.HIGH,
            documentation="Bootstrap servers of the target cluster (the cluster the worker writes to).")
    .define(TOPICS, ConfigType.LIST, ".*", regex_list, Importance.HIGH,
            "Topics to replicate. Supports comma-separated topic names and regexes.")
    .define(TOPICS_EXCLUDE, ConfigType.LIST, r".*[\-\.]internal,.*\.replica,__.*", regex_list, Importance.HIGH,
            "List of topics and/or regexes that should not be replicated.")
    .define(SEPARATOR, ConfigType.STRING, ".", importance=Importance.LOW,
            documentation="Separator used in remote topic naming convention.")
)
"""The keys both connectors have, with MirrorMaker 2's names and defaults."""


@dataclass(frozen=True)
class NameFilter:
    """MM2's DefaultTopicFilter / DefaultGroupFilter: a name is taken when it fully matches an include
    regex and no exclude regex."""

    include: re.Pattern[str]
    exclude: re.Pattern[str]

    @classmethod
    def of(cls, include: Sequence[str], exclude: Sequence[str]) -> "NameFilter":
        return cls(compile_patterns(include), compile_patterns(exclude))

    def accepts(self, name: str) -> bool:
        return self.include.fullmatch(name) is not None and self.exclude.fullmatch(name) is None


@dataclass(frozen=True)
class MirrorConfig:
    """The parsed shared keys, with MM2's DefaultReplicationPolicy naming."""

    source_alias: str
    target_alias: str
    source_bootstrap: str
    target_bootstrap: str
    separator: str
    topics: NameFilter

    @classmethod
    def from_parsed(cls, parsed: Mapping[str, Any]) -> "MirrorConfig":
        return cls(
            parsed[SOURCE_CLUSTER_ALIAS], parsed[TARGET_CLUSTER_ALIAS], parsed[SOURCE_BOOTSTRAP],
            parsed[TARGET_BOOTSTRAP], parsed[SEPARATOR], NameFilter.of(parsed[TOPICS], parsed[TOPICS_EXCLUDE]),
        )

    def remote_topic(self, topic: str) -> str:
        """Where ``topic`` of the source cluster is copied to in the target: ``source.orders``."""
        return f"{self.source_alias}{self.separator}{topic}"

    @property
    def offset_syncs_topic(self) -> str:
        """In the source cluster, as in MM2: ``mm2-offset-syncs.<target>.internal``."""
        return f"mm2-offset-syncs{self.separator}{self.target_alias}{self.separator}internal"

    @property
    def checkpoints_topic(self) -> str:
        """In the target cluster: ``<source>.checkpoints.internal``."""
        return f"{self.source_alias}{self.separator}checkpoints{self.separator}internal"

    def is_internal(self, topic: str) -> bool:
        """Kafka's, Connect's and MM2's own topics, which are never replicated whatever the filter says."""
        return topic.startswith(("__", ".")) or topic.endswith(("-internal", ".internal", f"{self.separator}internal"))

    def is_cycle(self, topic: str) -> bool:
        """Whether ``topic`` came from the target cluster (``target.x``, ``other.target.x``): copying it
        back would loop forever between two clusters mirrored both ways."""
        while self.separator in topic:
            alias, topic = topic.split(self.separator, 1)
            if alias == self.target_alias:
                return True
        return False

    def replicates(self, topic: str) -> bool:
        return self.topics.accepts(topic) and not self.is_internal(topic) and not self.is_cycle(topic)


# ---- spreading work over tasks ----------------------------------------------------------------


def task_for(name: str, index: int, tasks: int) -> int:
    """The task that owns partition ``index`` of topic ``name`` (or group ``name``, index 0).

    A topic's partitions go round-robin from a start that depends on the name,
    so big topics spread evenly, and the owner of a partition never depends on
    which other topics or partitions exist.
    """
    return (zlib.crc32(name.encode()) + index) % tasks


def owned_partitions(partitions: Iterable[TopicPartition], task: int, tasks: int) -> list[TopicPartition]:
    """The partitions of task number ``task`` (of ``tasks``), in their given order."""
    return [tp for tp in partitions if task_for(tp.topic, tp.partition, tasks) == task]


def owned_groups(groups: Iterable[str], task: int, tasks: int) -> list[str]:
    """The consumer groups of task number ``task`` (of ``tasks``), in their given order."""
    return [group for group in groups if task_for(group, 0, tasks) == task]


def task_slot(config: Mapping[str, str]) -> tuple[int, int]:
    """``(index, count)`` of a task from its config."""
    index, count = int(config[TASK_INDEX]), int(config[TASK_COUNT])
    if not 0 <= index < count:
        raise ValueError(f"{TASK_INDEX}={index} is not below {TASK_COUNT}={count}")
    return index, count


def split_list(text: str) -> list[str]:
    """The items of a comma list in a task config (``task.assigned.groups``)."""
    return [item for item in (part.strip() for part in text.split(",")) if item]


def encode_partitions(partitions: Iterable[TopicPartition]) -> str:
    """MM2's ``task.assigned.partitions`` value: ``orders-0,orders-1``."""
    return ",".join(f"{tp.topic}-{tp.partition}" for tp in partitions)


def decode_partitions(text: str) -> list[TopicPartition]:
    return [TopicPartition(topic, int(partition)) for topic, _, partition in (item.rpartition("-") for item in split_list(text))]


def create_compacted_topic(admin: AdminClient, name: str) -> None:
    """Create one of MM2's internal topics unless it exists (one partition, compacted: only the latest record
    per key matters)."""
    try:
        admin.create_topics([NewTopic(name, 1, -1, {"cleanup.policy": "compact"})])[name].result(OPERATION_TIMEOUT_S)
    except TopicAlreadyExistsError:
        pass


class Every:
    """The clock of a periodic action: :meth:`due` is true once per ``interval_s``; never when it is 0 or less
    (MM2 turns an action off with a negative interval)."""

    def __init__(self, interval_s: float, due_now: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._next = clock() if due_now else clock() + interval_s

    def due(self) -> bool:
        now = self._clock()
        if self.interval_s <= 0 or now < self._next:
            return False
        self._next = now + self.interval_s
        return True


# ---- MM2's record formats -----------------------------------------------------------------------


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


class _Reader:
    """Reads Kafka protocol fields (INT16-length STRING, INT16/32/64) in order."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def _take(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self._data, self._at)
        self._at += struct.calcsize(fmt)
        return value

    def int16(self) -> int:
        return self._take(">h")

    def int32(self) -> int:
        return self._take(">i")

    def int64(self) -> int:
        return self._take(">q")

    def string(self) -> str:
        size = self.int16()
        text = self._data[self._at : self._at + size].decode()
        self._at += size
        return text


@dataclass(frozen=True, slots=True)
class OffsetSync:
    """Upstream record ``upstream`` of ``topic``-``partition`` was written at ``downstream`` in the remote topic.

    MM2's ``OffsetSync``: key ``{topic: STRING, partition: INT32}``, value
    ``{upstreamOffset: INT64, offset: INT64}``.
    """

    topic: str
    partition: int
    upstream: int
    downstream: int

    def key(self) -> bytes:
        return _string(self.topic) + struct.pack(">i", self.partition)

    def value(self) -> bytes:
        return struct.pack(">qq", self.upstream, self.downstream)

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> "OffsetSync":
        k, v = _Reader(key), _Reader(value)
        return cls(k.string(), k.int32(), v.int64(), v.int64())


CHECKPOINT_VERSION = 0


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Group ``group`` may resume remote ``topic``-``partition`` at ``downstream`` (its committed
    source offset was ``upstream``).

    MM2's ``Checkpoint``: key ``{group: STRING, topic: STRING, partition: INT32}``,
    value ``{version: INT16}`` then ``{upstreamOffset: INT64, offset: INT64, metadata: STRING}``.
    """

    group: str
    topic: str
    partition: int
    upstream: int
    downstream: int
    metadata: str = ""

    def key(self) -> bytes:
        return _string(self.group) + _string(self.topic) + struct.pack(">i", self.partition)

    def value(self) -> bytes:
        return struct.pack(">hqq", CHECKPOINT_VERSION, self.upstream, self.downstream) + _string(self.metadata)

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> "Checkpoint":
        k, v = _Reader(key), _Reader(value)
        group, topic, partition = k.string(), k.string(), k.int32()
        version = v.int16()
        if version != CHECKPOINT_VERSION:
            raise ValueError(f"unsupported checkpoint version {version}")
        return cls(group, topic, partition, v.int64(), v.int64(), v.string())

    @property
    def remote_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)
