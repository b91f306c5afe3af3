"""Confluent's JDBC sink connector: struct records written as table rows, with Confluent's keys.

A user's ``JdbcSinkConnector`` properties run unchanged. Each record's value
is a struct (a dict; its schema, when the converter carries one, types the
columns, else the Python values do) and becomes a row of the table
``table.name.format`` names (``${topic}`` by default). ``insert.mode`` is
``insert``, ``upsert`` (``INSERT ... ON CONFLICT (pk) DO UPDATE`` on PostgreSQL
and SQLite) or ``update``; ``pk.mode`` says where the primary key comes from:
``none``, ``kafka`` (topic, partition, offset), ``record_key`` (the key, or
fields of a struct key) or ``record_value`` (fields of the value), narrowed by
``pk.fields``. ``auto.create`` creates a missing table with that primary key,
``auto.evolve`` adds missing columns (nullable, so existing rows stay valid),
and with ``delete.enabled`` a tombstone deletes the row of its key.

``put`` only converts and checks records (so a bad record fails alone, where
``errors.tolerance`` can skip it) and buffers them; ``flush`` writes the buffer
in one transaction, so the consumer offsets the worker commits after it cover
exactly what is in the database. Once ``batch.size`` records wait, the task
asks the worker to commit soon, which bounds the buffer. Writes go in runs of
up to ``batch.size`` rows through one executemany each, in record order.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional

import sqlalchemy as sa
from caudal.connect.api import (
    ConnectError,
    Schema,
    SinkConnector,
    SinkRecord,
    SinkTask,
    Task,
    Type,
)
from caudal.connect.config_def import (
    ConfigDef,
    ConfigException,
    ConfigType,
    Importance,
    Range,
    ValidString,
)
from caudal.connect.converters import infer_schema
from caudal.connect.jdbc_dialect import (
    CONNECTION_CONFIG_DEF,
    create_engine,
    reflect_table,
    split_table_name,
    sql_type,
    to_sql_value,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateColumn

import caudal

log = logging.getLogger(__name__)

INSERT_MODE_CONFIG = "insert.mode"
INSERT, UPSERT, UPDATE, DELETE = "insert", "upsert", "update", "delete"
PK_MODE_CONFIG = "pk.mode"
PK_NONE, PK_KAFKA, PK_RECORD_KEY, PK_RECORD_VALUE = "none", "kafka", "record_key", "record_value"
PK_FIELDS_CONFIG = "pk.fields"
FIELDS_WHITELIST_CONFIG = "fields.whitelist"
TABLE_NAME_FORMAT_CONFIG = "table.name.format"
AUTO_CREATE_CONFIG = "auto.create"
AUTO_EVOLVE_CONFIG = "auto.evolve"
BATCH_SIZE_CONFIG = "batch.size"
DELETE_ENABLED_CONFIG = "delete.enabled"

KAFKA_PK_DEFAULTS = ("__connect_topic", "__connect_partition", "__connect_offset")
KAFKA_PK_SCHEMAS = (Schema(Type.STRING), Schema(Type.INT32), Schema(Type.INT64))
RECORD_KEY_DEFAULT = "__connect_key"
_NULL_SCHEMA = Schema(Type.STRING, optional=True)
"""The column type of a schemaless field that is null in a whole run (as the converters infer None)."""


@dataclass(frozen=True)
class _Write:
    """One record as a row operation: ``kind`` on ``table`` with the columns of ``row``."""

    table: str
    kind: str
    row: dict[str, Any]
    key: tuple[str, ...]
    schemas: Mapping[str, Optional[Schema]]
    """Each column's Connect schema, None where the record had none."""

    @property
    def shape(self) -> tuple[str, str, tuple[str, ...]]:
        """Writes of the same shape go to the database in one executemany."""
        return self.table, self.kind, tuple(self.row)


class JdbcSinkTask(SinkTask):
    """Buffers records as row operations and writes them on ``flush``, in one transaction."""

    def start(self, config: dict[str, str]) -> None:
        parsed = _parse(config)
        self._insert_mode: str = parsed[INSERT_MODE_CONFIG]
        self._pk_mode: str = parsed[PK_MODE_CONFIG]
        self._pk_fields: list[str] = parsed[PK_FIELDS_CONFIG]
        self._fields: set[str] = set(parsed[FIELDS_WHITELIST_CONFIG])
        self._table_format: str = parsed[TABLE_NAME_FORMAT_CONFIG]
        self._auto_create: bool = parsed[AUTO_CREATE_CONFIG]
        self._auto_evolve: bool = parsed[AUTO_EVOLVE_CONFIG]
        self._batch_size: int = parsed[BATCH_SIZE_CONFIG]
        self._delete_enabled: bool = parsed[DELETE_ENABLED_CONFIG]
        self._engine = create_engine(parsed)
        self._tables: dict[str, sa.Table] = {}
        self._buffer: list[_Write] = []

    def put(self, records: list[SinkRecord]) -> None:
        writes = [self._write(record) for record in records]  # all or nothing: a bad record buffers none
        self._buffer.extend(writes)
        if len(self._buffer) >= self._batch_size:
            self.context.request_commit()

    def flush(self, offsets: dict[tuple[str, int], int]) -> None:
        if not self._buffer:
            return
        try:
            with self._engine.begin() as connection:
                for run in _runs(self._buffer, self._batch_size):
                    self._execute(connection, run)
        except (sa.exc.SQLAlchemyError, ConnectError) as exc:
            self._tables.clear()  # tables created or altered in the transaction were rolled back with it
            if isinstance(exc, ConnectError):
                raise
            raise ConnectError(f"Failed to write {len(self._buffer)} records to the database: {exc}") from exc
        self._buffer.clear()

    def stop(self) -> None:
        engine: Optional[sa.Engine] = getattr(self, "_engine", None)
        if engine is not None:
            engine.dispose()

    # ---- records to rows ---------------------------------------------------------------------

    def _write(self, record: SinkRecord) -> _Write:
        table = self._table_format.replace("${topic}", record.topic)
        key = self._primary_key(record)
        schemas = {name: schema for name, (schema, _) in key.items()}
        row = {name: to_sql_value(schema, value, name) for name, (schema, value) in key.items()}
        if record.value is None:
            if not self._delete_enabled:
                raise ConnectError(
                    f"{record.topic}-{record.kafka_partition}@{record.kafka_offset} is a tombstone (null value), "
                    f"which needs {DELETE_ENABLED_CONFIG}=true"
                )
            return _Write(table, DELETE, row, tuple(key), schemas)
        for name, (schema, value) in _struct_fields(record.value, record.value_schema, "value", record).items():
            if name not in key and (not self._fields or name in self._fields):
                schemas[name] = schema
                row[name] = to_sql_value(schema, value, name)
        return _Write(table, self._insert_mode, row, tuple(key), schemas)

    def _primary_key(self, record: SinkRecord) -> dict[str, tuple[Optional[Schema], Any]]:
        """The key columns of ``record`` per ``pk.mode``: name → (schema or None, value)."""
        if self._pk_mode == PK_KAFKA:
            names = self._pk_fields or KAFKA_PK_DEFAULTS
            values = (record.topic, record.kafka_partition, record.kafka_offset)
            return {name: (schema, value) for name, schema, value in zip(names, KAFKA_PK_SCHEMAS, values, strict=True)}
        if self._pk_mode == PK_RECORD_KEY:
            if record.key is None:
                raise ConnectError(f"{record.topic}-{record.kafka_partition}@{record.kafka_offset} has a null key, "
                                   f"but {PK_MODE_CONFIG}={PK_RECORD_KEY}")
            if isinstance(record.key, Mapping):
                return _selected(_struct_fields(record.key, record.key_schema, "key", record), self._pk_fields, "key")
            return {(self._pk_fields or [RECORD_KEY_DEFAULT])[0]: (record.key_schema, record.key)}
        if self._pk_mode == PK_RECORD_VALUE:
            if record.value is None:
                raise ConnectError(f"{record.topic}-{record.kafka_partition}@{record.kafka_offset} has a null value, "
                                   f"but {PK_MODE_CONFIG}={PK_RECORD_VALUE}")
            fields = _struct_fields(record.value, record.value_schema, "value", record)
            return _selected(fields, self._pk_fields, "value")
        return {}

    # ---- rows to the database --------------------------------------------------------------

    def _execute(self, connection: sa.Connection, run: list[_Write]) -> None:
        first = run[0]
        if first.kind == DELETE:
            table = self._known_table(connection, first.table)
            if table is not None:  # else there is nothing to delete
                where = [table.c[k] == sa.bindparam(k) for k in first.key]
                connection.execute(sa.delete(table).where(*where), [w.row for w in run])
            return
        table = self._ensure_table(connection, run)
        values = [c for c in first.row if c not in first.key]
        if first.kind == INSERT:
            connection.execute(sa.insert(table), [w.row for w in run])
        elif first.kind == UPSERT:
            connection.execute(self._upsert(connection, table, first.key, values), [w.row for w in run])
        elif values:  # an UPDATE with nothing to set is no write
            # An UPDATE's bind parameters may not be named like the columns it sets.
            where = [table.c[k] == sa.bindparam(f"key_{k}") for k in first.key]
            statement = sa.update(table).where(*where).values({c: sa.bindparam(f"value_{c}") for c in values})
            connection.execute(statement, [
                {**{f"key_{k}": w.row[k] for k in w.key}, **{f"value_{c}": w.row[c] for c in values}} for w in run
            ])

    def _upsert(self, connection: sa.Connection, table: sa.Table, key: tuple[str, ...], values: list[str]) -> sa.Executable:
        insert: Optional[Callable[[sa.Table], Any]] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(
            connection.dialect.name)
        if insert is None:
            raise ConnectError(f"{INSERT_MODE_CONFIG}={UPSERT} is not supported on {connection.dialect.name}")
        statement = insert(table)
        if not values:
            return statement.on_conflict_do_nothing(index_elements=list(key))
        return statement.on_conflict_do_update(index_elements=list(key),
                                               set_={c: statement.excluded[c] for c in values})

    def _known_table(self, connection: sa.Connection, name: str) -> Optional[sa.Table]:
        """The table as last seen (cached until a flush fails), None if there is none."""
        cached = self._tables.get(name)
        return cached if cached is not None else reflect_table(connection, name)

    def _ensure_table(self, connection: sa.Connection, run: list[_Write]) -> sa.Table:
        """The run's table, created (``auto.create``) or given its missing columns (``auto.evolve``)."""
        name, first = run[0].table, run[0]
        table = self._known_table(connection, name)
        if table is None:
            if not self._auto_create:
                raise ConnectError(f"Table {name} is missing and {AUTO_CREATE_CONFIG} is disabled")
            schema, table_name = split_table_name(name)
            table = sa.Table(table_name, sa.MetaData(), *_columns(run, list(first.row), creating=True), schema=schema)
            table.create(connection)
            log.info("event=jdbc_sink_table_created table=%s columns=%s", name, list(table.c.keys()))
        missing = [c for c in first.row if c not in table.c]
        if missing:
            if not self._auto_evolve:
                raise ConnectError(f"Table {name} is missing columns {missing} and {AUTO_EVOLVE_CONFIG} is disabled")
            quoted = connection.dialect.identifier_preparer.format_table(table)
            for column in _columns(run, missing, creating=False):
                ddl = CreateColumn(column).compile(dialect=connection.dialect)
                connection.execute(sa.text(f"ALTER TABLE {quoted} ADD COLUMN {ddl}"))
            log.info("event=jdbc_sink_table_evolved table=%s added=%s", name, missing)
            table = reflect_table(connection, name)
            assert table is not None
        self._tables[name] = table
        return table


def _columns(run: list[_Write], names: list[str], creating: bool) -> list[sa.Column[Any]]:
    """Columns for ``names``, typed by the records' schemas (else their values). A new table gets
    the key as its primary key and NOT NULL where the schema is not optional; columns added to an
    existing table are nullable, so its rows stay valid."""
    first = run[0]
    columns = []
    for name in names:
        declared = first.schemas[name]
        key = creating and name in first.key
        nullable = not key and (not creating or declared is None or declared.optional)
        columns.append(sa.Column(name, sql_type(declared or _inferred(run, name), name), primary_key=key,
                                 nullable=nullable))
    return columns


def _inferred(run: list[_Write], name: str) -> Schema:
    """A schemaless column's schema, from its first non-null value in the run."""
    value = next((w.row[name] for w in run if w.row[name] is not None), None)
    return _NULL_SCHEMA if value is None else infer_schema(value)


def _runs(writes: list[_Write], size: int) -> Iterator[list[_Write]]:
    """Consecutive writes of one shape, at most ``size`` at a time, in order."""
    for _, same in itertools.groupby(writes, key=lambda w: w.shape):
        group = list(same)
        for start in range(0, len(group), size):
            yield group[start : start + size]


def _struct_fields(
    value: Any, schema: Optional[Schema], what: str, record: SinkRecord,
) -> dict[str, tuple[Optional[Schema], Any]]:
    """A struct's fields as name → (schema or None, value); anything but a struct is an error."""
    if not isinstance(value, Mapping) or (schema is not None and schema.type is not Type.STRUCT):
        raise ConnectError(
            f"{record.topic}-{record.kafka_partition}@{record.kafka_offset}: the JDBC sink needs a struct {what}, "
            f"got {type(value).__name__}"
        )
    if schema is None:
        return {str(name): (None, field) for name, field in value.items()}
    return {f.name: (f.schema, value.get(f.name)) for f in schema.fields}


def _selected(
    fields: dict[str, tuple[Optional[Schema], Any]], names: list[str], what: str,
) -> dict[str, tuple[Optional[Schema], Any]]:
    """``pk.fields`` of a struct (all of its fields when empty)."""
    missing = [name for name in names if name not in fields]
    if missing:
        raise ConnectError(f"{PK_FIELDS_CONFIG} {missing} not found in the record {what} (fields: {list(fields)})")
    return {name: fields[name] for name in names} if names else fields


def _parse(config: dict[str, str]) -> dict[str, Any]:
    """The connector's config, with the rules Confluent checks across keys; modes lower-cased."""
    try:
        parsed = JdbcSinkConnector.CONFIG_DEF.parse(config)
    except ConfigException as exc:
        raise ConnectError(f"Invalid JdbcSinkConnector configuration: {exc}") from exc
    parsed[INSERT_MODE_CONFIG] = mode = parsed[INSERT_MODE_CONFIG].lower()
    parsed[PK_MODE_CONFIG] = pk_mode = parsed[PK_MODE_CONFIG].lower()
    if mode in (UPSERT, UPDATE) and pk_mode == PK_NONE:
        raise ConnectError(f"{INSERT_MODE_CONFIG}={mode} needs a primary key: set {PK_MODE_CONFIG}")
    if parsed[DELETE_ENABLED_CONFIG] and pk_mode != PK_RECORD_KEY:
        raise ConnectError(f"{DELETE_ENABLED_CONFIG}=true needs {PK_MODE_CONFIG}={PK_RECORD_KEY}")
    if pk_mode == PK_KAFKA and parsed[PK_FIELDS_CONFIG] and len(parsed[PK_FIELDS_CONFIG]) != 3:
        raise ConnectError(f"{PK_MODE_CONFIG}={PK_KAFKA} needs exactly 3 {PK_FIELDS_CONFIG} (topic, partition, "
                           f"offset columns), got {parsed[PK_FIELDS_CONFIG]}")
    return parsed


class JdbcSinkConnector(SinkConnector):
    """Confluent's ``io.confluent.connect.jdbc.JdbcSinkConnector``."""

    CONFIG_DEF = CONNECTION_CONFIG_DEF.merge(
        ConfigDef()
        .define(INSERT_MODE_CONFIG, ConfigType.STRING, INSERT, ValidString.in_ignore_case(INSERT, UPSERT, UPDATE),
                Importance.HIGH, "insert, upsert (insert or update by primary key) or update", "Writes")
        .define(BATCH_SIZE_CONFIG, ConfigType.INT, 3000, Range.at_least(1), Importance.MEDIUM,
                "How many records to write in one statement batch", "Writes")
        .define(DELETE_ENABLED_CONFIG, ConfigType.BOOLEAN, False, importance=Importance.MEDIUM,
                documentation=f"Whether a tombstone deletes the row of its key (needs {PK_MODE_CONFIG}=record_key)",
                group="Writes")
        .define(TABLE_NAME_FORMAT_CONFIG, ConfigType.STRING, "${topic}", importance=Importance.MEDIUM,
                documentation="The destination table; ${topic} stands for the record's topic", group="Data Mapping")
        .define(PK_MODE_CONFIG, ConfigType.STRING, PK_NONE,
                ValidString.in_ignore_case(PK_NONE, PK_KAFKA, PK_RECORD_KEY, PK_RECORD_VALUE), Importance.HIGH,
                "Where the primary key comes from: none, kafka, record_key or record_value", "Data Mapping")
        .define(PK_FIELDS_CONFIG, ConfigType.LIST, "", importance=Importance.MEDIUM,
                documentation="The primary key's fields (kafka: the 3 column names; record_key/record_value: "
                "fields of the struct, all when empty)", group="Data Mapping")
        .define(FIELDS_WHITELIST_CONFIG, ConfigType.LIST, "", importance=Importance.MEDIUM,
                documentation="The value fields to write (all when empty)", group="Data Mapping")
        .define(AUTO_CREATE_CONFIG, ConfigType.BOOLEAN, False, importance=Importance.MEDIUM,
                documentation="Whether to create a missing table (CREATE TABLE with the primary key)", group="DDL Support")
        .define(AUTO_EVOLVE_CONFIG, ConfigType.BOOLEAN, False, importance=Importance.MEDIUM,
                documentation="Whether to add missing columns (ALTER TABLE ... ADD, nullable)", group="DDL Support")
    )

    def version(self) -> str:
        return caudal.__version__

    def start(self, config: dict[str, str]) -> None:
        _parse(config)
        self._config = dict(config)

    def task_class(self) -> type[Task]:
        return JdbcSinkTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return [dict(self._config) for _ in range(max_tasks)]
