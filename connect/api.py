"""The connector API: what a connector author writes, with Kafka Connect's lifecycle and names.

A connector is a plain Python class. A :class:`SourceConnector` splits its work
into task configs and its :class:`SourceTask` ``poll()``s records from the
outside world, each tagged with a *source partition* and *source offset* (where
it came from, e.g. a file name and a byte position) that the worker stores
once the record is acknowledged, so a restarted task resumes there. A
:class:`SinkConnector`'s :class:`SinkTask` receives records from topics in
``put()`` and makes them durable in ``flush()``; the worker commits the
consumer offsets only after that. Values are Python objects (str, bytes,
numbers, bools, lists, dicts for structs); a :class:`Schema` may describe them,
as Kafka Connect's schemas do, for converters that carry one (JsonConverter
with ``schemas.enable``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Callable, ClassVar, Optional

from caudal.connect.config_def import ConfigDef


class ConnectError(Exception):
    """A connector or task failed; its message is reported in the status ``trace``."""


class RetriableError(ConnectError):
    """A failure worth retrying (within ``errors.retry.timeout``), like Kafka's RetriableException."""


class Type(str, Enum):
    """Kafka Connect's schema types, with their JSON names."""

    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    FLOAT32 = "float"
    FLOAT64 = "double"
    BOOLEAN = "boolean"
    STRING = "string"
    BYTES = "bytes"
    ARRAY = "array"
    MAP = "map"
    STRUCT = "struct"


@dataclass(frozen=True)
class Field:
    name: str
    schema: "Schema"


@dataclass(frozen=True)
class Schema:
    """The shape of a key or value; a struct's value is a dict keyed by field name."""

    type: Type
    optional: bool = False
    name: Optional[str] = None
    version: Optional[int] = None
    doc: Optional[str] = None
    fields: tuple[Field, ...] = ()
    key_schema: Optional["Schema"] = None
    value_schema: Optional["Schema"] = None

    def field(self, name: str) -> Optional[Field]:
        return next((f for f in self.fields if f.name == name), None)


Header = tuple[str, Any]


@dataclass(slots=True)
class ConnectRecord:
    """What transforms and converters see. Treat records as values: ``new_record`` gives a changed
    copy. (Not frozen: a frozen dataclass costs microseconds per record to build.)"""

    topic: str
    kafka_partition: Optional[int]
    key: Any
    value: Any
    timestamp: Optional[int] = None
    headers: tuple[Header, ...] = ()
    key_schema: Optional[Schema] = None
    value_schema: Optional[Schema] = None

    def new_record(self, **changes: Any) -> "ConnectRecord":
        return replace(self, **changes)


@dataclass(slots=True)
class SourceRecord(ConnectRecord):
    """A record from a source task; ``source_partition``/``source_offset`` are JSON-able dicts."""

    source_partition: dict[str, Any] = field(default_factory=dict)
    source_offset: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SinkRecord(ConnectRecord):
    """A record delivered to a sink task, with where it was read from."""

    kafka_offset: int = -1


class OffsetStorageReader(ABC):
    """Lets a source task find where it left off (the last committed source offset per partition)."""

    @abstractmethod
    def offset(self, partition: dict[str, Any]) -> Optional[dict[str, Any]]: ...


@dataclass
class SourceTaskContext:
    offset_storage_reader: OffsetStorageReader
    config: dict[str, str]


@dataclass
class SinkTaskContext:
    """A sink task's handle on its consumer: where to rewind, what to pause, when to commit."""

    config: dict[str, str]
    assignment: Callable[[], set[tuple[str, int]]]
    pause: Callable[..., None]
    resume: Callable[..., None]
    requested_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    commit_requested: bool = False

    def offset(self, offsets: dict[tuple[str, int], int]) -> None:
        """Rewind (or skip) the consumer to these offsets before the next ``put``."""
        self.requested_offsets.update(offsets)

    def request_commit(self) -> None:
        self.commit_requested = True


class Task(ABC):
    """A unit of work a worker runs; configs are strings as in Kafka's properties."""

    def version(self) -> str:
        return "1.0"

    @abstractmethod
    def start(self, config: dict[str, str]) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...


class SourceTask(Task):
    context: SourceTaskContext

    def initialize(self, context: SourceTaskContext) -> None:
        self.context = context

    @abstractmethod
    def poll(self) -> Optional[list[SourceRecord]]:
        """New records, or None/[] when there are none right now (the worker calls again)."""

    def commit(self) -> None:
        """Called after the worker committed the offsets of the records acknowledged so far."""

    def commit_record(self, record: SourceRecord, metadata: Any) -> None:
        """Called once ``record`` is acknowledged by the cluster (``metadata`` is its RecordMetadata),
        on the task's own thread, in the order the records were polled."""


class SinkTask(Task):
    context: SinkTaskContext

    def initialize(self, context: SinkTaskContext) -> None:
        self.context = context

    def open(self, partitions: list[tuple[str, int]]) -> None:
        """Partitions newly assigned to this task."""

    def close(self, partitions: list[tuple[str, int]]) -> None:
        """Partitions taken away (flush what you hold for them)."""

    @abstractmethod
    def put(self, records: list[SinkRecord]) -> None: ...

    def flush(self, offsets: dict[tuple[str, int], int]) -> None:
        """Make everything ``put`` so far durable; the worker commits ``offsets`` after this returns."""

    def pre_commit(self, offsets: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """The offsets safe to commit (default: flush, then all of them)."""
        self.flush(offsets)
        return offsets


class Connector(ABC):
    """Configures and splits a job into tasks. ``CONFIG_DEF`` declares the connector's own keys."""

    CONFIG_DEF: ClassVar[ConfigDef] = ConfigDef()

    def version(self) -> str:
        return "1.0"

    def config(self) -> ConfigDef:
        return self.CONFIG_DEF

    @abstractmethod
    def start(self, config: dict[str, str]) -> None: ...

    @abstractmethod
    def task_class(self) -> type[Task]: ...

    @abstractmethod
    def task_configs(self, max_tasks: int) -> list[dict[str, str]]: ...

    def stop(self) -> None:
        """Release what ``start`` acquired."""


class SourceConnector(Connector):
    """A connector whose tasks read from outside and write to topics."""


class SinkConnector(Connector):
    """A connector whose tasks read from topics and write outside."""
