"""Confluent's JDBC source connector: tables (or one query) polled into topics, with Confluent's keys.

A user's ``JdbcSourceConnector`` properties run unchanged: ``mode`` picks how
new rows are found, with Confluent's queries and source offsets, so offsets
stored by a Kafka Connect worker mean the same here:

* ``bulk`` re-reads everything every ``poll.interval.ms``;
* ``incrementing``: ``WHERE inc > ? ORDER BY inc``, offset ``{"incrementing": id}``
  (sees inserts, misses updates);
* ``timestamp``: ``WHERE ts > ? AND ts < now - delay ORDER BY ts``, offset
  ``{"timestamp": ms, "timestamp_nanos": ns}`` (sees updates, but rows
  sharing a timestamp are told apart only within one query);
* ``timestamp+incrementing``: ``WHERE ts < now - delay AND ((ts = ? AND inc > ?)
  OR ts > ?) ORDER BY ts, inc``, both offsets (sees inserts and updates exactly once).

Each query reads at most ``batch.max.rows`` rows (``LIMIT``) in a short
transaction, so no read transaction stays open while records travel to the
cluster. A full batch means a backlog, and that table is queried again at once;
otherwise it rests ``poll.interval.ms``. In ``timestamp`` mode a full batch is
completed with the rest of the rows sharing its last timestamp, since the next
query starts strictly after it. The upper bound ``now - timestamp.delay.interval.ms``
(the database's clock) leaves out rows whose transaction may not be committed yet.

Records carry a struct value whose schema comes from the table's columns (in
query mode, from the values of each batch), no key, and source partition
``{"table": name}`` or ``{"query": "query"}``. Tables are split over ``tasks.max``
tasks; a query is one task. A failed query is logged and retried at the next
interval, as Confluent retries; a bad config or a missing table or column
fails the task at start.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional

import sqlalchemy as sa
from caudal.connect.api import (
    ConnectError,
    Field,
    Schema,
    SourceConnector,
    SourceRecord,
    SourceTask,
    Task,
    Type,
)
from caudal.connect.config_def import (
    NO_DEFAULT,
    ConfigDef,
    ConfigException,
    ConfigType,
    Importance,
    Range,
    ValidString,
)
from caudal.connect.jdbc_dialect import (
    CONNECTION_CONFIG_DEF,
    EPOCH,
    column_schema,
    comparable,
    create_engine,
    reflect_table,
    schema_of_value,
    split_table_name,
    to_connect_value,
    utc_naive,
)

import caudal

log = logging.getLogger(__name__)

MODE_CONFIG = "mode"
BULK, INCREMENTING, TIMESTAMP, TIMESTAMP_INCREMENTING = "bulk", "incrementing", "timestamp", "timestamp+incrementing"
INCREMENTING_COLUMN_CONFIG = "incrementing.column.name"
TIMESTAMP_COLUMN_CONFIG = "timestamp.column.name"
VALIDATE_NON_NULL_CONFIG = "validate.non.null"
TABLE_WHITELIST_CONFIG = "table.whitelist"
TABLE_INCLUDE_LIST_CONFIG = "table.include.list"
TABLE_BLACKLIST_CONFIG = "table.blacklist"
TABLE_EXCLUDE_LIST_CONFIG = "table.exclude.list"
QUERY_CONFIG = "query"
TOPIC_PREFIX_CONFIG = "topic.prefix"
POLL_INTERVAL_MS_CONFIG = "poll.interval.ms"
BATCH_MAX_ROWS_CONFIG = "batch.max.rows"
TIMESTAMP_DELAY_INTERVAL_MS_CONFIG = "timestamp.delay.interval.ms"
TABLES_CONFIG = "tables"
"""The task config key holding the tables of one task (comma-separated), as Confluent names it."""

INCREMENTING_FIELD = "incrementing"
TIMESTAMP_FIELD = "timestamp"
TIMESTAMP_NANOS_FIELD = "timestamp_nanos"
TABLE_PARTITION_KEY = "table"
QUERY_PARTITION = {"query": "query"}

MAX_IDLE_WAIT_S = 1.0
"""The longest ``poll`` waits before returning empty-handed, so the worker gets to commit offsets,
pause and stop at least this often (it stops a task only between polls)."""
_ORDER_KEY = "caudal_order_key"
"""The label of the comparable timestamp selected next to a ``timestamp``-mode row."""
_QUERY_ALIAS = "caudal_query"


class JdbcSourceTask(SourceTask):
    """Polls its tables (or the query), each from where its stored offset says it got to."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._pending: collections.deque[SourceRecord] = collections.deque()

    def start(self, config: dict[str, str]) -> None:
        parsed = _parse(config)
        self._mode: str = parsed[MODE_CONFIG]
        self._batch_max_rows: int = parsed[BATCH_MAX_ROWS_CONFIG]
        self._interval_s = parsed[POLL_INTERVAL_MS_CONFIG] / 1000
        self._delay = dt.timedelta(milliseconds=parsed[TIMESTAMP_DELAY_INTERVAL_MS_CONFIG])
        self._engine = create_engine(parsed)
        self._dialect = self._engine.dialect.name
        query: str = parsed[QUERY_CONFIG]
        if not query and not config.get(TABLES_CONFIG):
            raise ConnectError(f"JdbcSourceTask needs a {QUERY_CONFIG} or its {TABLES_CONFIG}")
        try:
            with self._engine.connect() as connection:
                if query:
                    self._queriers = [self._query_querier(connection, parsed)]
                else:
                    self._queriers = [self._table_querier(connection, parsed, name.strip())
                                      for name in config[TABLES_CONFIG].split(",")]
        except sa.exc.SQLAlchemyError as exc:
            raise ConnectError(f"Cannot read the definition of the source tables or query: {exc}") from exc

    def poll(self) -> Optional[list[SourceRecord]]:
        if not self._pending:
            querier = min(self._queriers, key=lambda q: q.next_run)
            wait_s = querier.next_run - time.monotonic()
            if wait_s > 0:
                self._stopping.wait(min(wait_s, MAX_IDLE_WAIT_S))
                return None
            if self._stopping.is_set():
                return None
            self._run(querier)
        batch = [self._pending.popleft() for _ in range(min(self._batch_max_rows, len(self._pending)))]
        return batch or None

    def stop(self) -> None:
        self._stopping.set()
        engine: Optional[sa.Engine] = getattr(self, "_engine", None)
        if engine is not None:
            engine.dispose()

    # ---- queriers --------------------------------------------------------------------------

    def _table_querier(self, connection: sa.Connection, parsed: dict[str, Any], name: str) -> "_Querier":
        table = reflect_table(connection, name)
        if table is None:
            raise ConnectError(f"Table {name} does not exist")
        incrementing = parsed[INCREMENTING_COLUMN_CONFIG] or None
        if self._mode in (INCREMENTING, TIMESTAMP_INCREMENTING) and incrementing is None:
            incrementing = _autodetected_incrementing(table)
        timestamps: list[str] = parsed[TIMESTAMP_COLUMN_CONFIG]
        _check_columns(name, [c.name for c in table.columns], incrementing, timestamps)
        if parsed[VALIDATE_NON_NULL_CONFIG]:
            _check_non_null(name, table, incrementing, timestamps)
        schema = Schema(Type.STRUCT, name=split_table_name(name)[1], fields=tuple(
            Field(c.name, column_schema(c.type, c.nullable and not c.primary_key, self._dialect))
            for c in table.columns
        ))
        return self._querier({TABLE_PARTITION_KEY: name}, parsed[TOPIC_PREFIX_CONFIG] + table.name, table, schema,
                             incrementing, timestamps)

    def _query_querier(self, connection: sa.Connection, parsed: dict[str, Any]) -> "_Querier":
        """The query as a subquery (so conditions are added around it, whatever it contains)."""
        query = parsed[QUERY_CONFIG].strip().rstrip(";")
        probe = sa.text(f"SELECT * FROM ({query}) AS {_QUERY_ALIAS} WHERE 1 = 0")
        names = list(connection.execute(probe).keys())
        incrementing: Optional[str] = parsed[INCREMENTING_COLUMN_CONFIG] or None
        timestamps: list[str] = parsed[TIMESTAMP_COLUMN_CONFIG]
        _check_columns("the query", names, incrementing, timestamps)
        # Typed so that offsets bind and timestamps read as datetimes; the other columns keep the driver's values.
        typed: dict[str, sa.types.TypeEngine[Any]] = {name: sa.DateTime() for name in timestamps}
        if incrementing is not None:
            typed[incrementing] = sa.BigInteger()
        source = sa.text(query).columns(*(sa.column(n, typed.get(n)) for n in names)).subquery(_QUERY_ALIAS)
        return self._querier(QUERY_PARTITION, parsed[TOPIC_PREFIX_CONFIG], source, None, incrementing, timestamps)

    def _querier(
        self, partition: dict[str, Any], topic: str, source: sa.FromClause, schema: Optional[Schema],
        incrementing: Optional[str], timestamps: list[str],
    ) -> "_Querier":
        stored = self.context.offset_storage_reader.offset(partition) or {}
        return _Querier(partition, topic, source, schema, incrementing, timestamps, _Offset.parse(stored, partition))

    def _run(self, querier: "_Querier") -> None:
        """One query of ``querier``; its records join the pending ones and its next run is scheduled."""
        try:
            with self._engine.connect() as connection:
                rows, full = self._fetch(connection, querier)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("event=jdbc_source_query_failed partition=%s error=%r", querier.partition, str(exc))
            querier.next_run = time.monotonic() + self._interval_s
            return
        schema = querier.schema or _inferred_schema(rows, [c.name for c in querier.source.columns])
        for row in rows:
            mapping = row._mapping
            if self._mode != BULK:
                querier.offset = querier.offset.after(mapping, querier.incrementing, querier.timestamps)
            self._pending.append(SourceRecord(
                topic=querier.topic, kafka_partition=None, key=None, value_schema=schema,
                value={f.name: to_connect_value(f.schema, mapping[f.name]) for f in schema.fields},
                source_partition=querier.partition, source_offset=querier.offset.to_json(self._mode),
            ))
        querier.next_run = time.monotonic() + (0 if full else self._interval_s)

    def _fetch(self, connection: sa.Connection, querier: "_Querier") -> tuple[list[sa.Row[Any]], bool]:
        """The rows of the next query and whether the batch was full (more may be waiting)."""
        statement = sa.select(querier.source)
        if self._mode == BULK:
            return list(connection.execute(statement)), False
        conditions: list[sa.ColumnElement[bool]] = []
        order: list[sa.ColumnElement[Any]] = []
        last = querier.offset
        if querier.timestamps:
            timestamp = comparable(querier.timestamp_expression(), self._dialect)
            now = utc_naive(connection.execute(sa.select(sa.func.current_timestamp())).scalar_one())
            conditions.append(timestamp < self._bound(now - self._delay))
            statement = statement.add_columns(timestamp.label(_ORDER_KEY))
            order.append(timestamp)
        if querier.incrementing is not None:
            incrementing = querier.source.c[querier.incrementing]
            order.append(incrementing)
        if self._mode == INCREMENTING:
            conditions.append(incrementing.is_not(None) if last.incrementing is None else incrementing > last.incrementing)
        elif self._mode == TIMESTAMP and last.timestamp is not None:
            conditions.append(timestamp > self._bound(last.timestamp))
        elif self._mode == TIMESTAMP_INCREMENTING:
            conditions.append(incrementing.is_not(None) if last.timestamp is None or last.incrementing is None else sa.or_(
                sa.and_(timestamp == self._bound(last.timestamp), incrementing > last.incrementing),
                timestamp > self._bound(last.timestamp),
            ))
        rows = list(connection.execute(statement.where(*conditions).order_by(*order).limit(self._batch_max_rows)))
        full = len(rows) >= self._batch_max_rows
        if full and self._mode == TIMESTAMP:
            # The next query starts after the last timestamp: take all of its rows now.
            last_key = rows[-1]._mapping[_ORDER_KEY]
            rows = [r for r in rows if r._mapping[_ORDER_KEY] != last_key]
            rows += connection.execute(statement.where(timestamp == last_key)).all()
        return rows, full

    def _bound(self, value: dt.datetime) -> sa.ColumnElement[Any]:
        return comparable(sa.literal(value, sa.DateTime()), self._dialect)


@dataclass(frozen=True)
class _Offset:
    """Where a table's reading got to: Confluent's offset fields, with the timestamp as naive UTC."""

    incrementing: Optional[int] = None
    timestamp: Optional[dt.datetime] = None

    @classmethod
    def parse(cls, stored: dict[str, Any], partition: dict[str, Any]) -> "_Offset":
        incrementing = stored.get(INCREMENTING_FIELD)
        millis, nanos = stored.get(TIMESTAMP_FIELD), stored.get(TIMESTAMP_NANOS_FIELD)
        if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in (incrementing, millis, nanos)):
            raise ConnectError(f"Stored offset {stored} of {partition} is not a JDBC source offset")
        if millis is None:
            return cls(incrementing)
        # timestamp_nanos is the fraction of the second in nanoseconds (java.sql.Timestamp.getNanos).
        seconds = dt.timedelta(seconds=millis // 1000)
        fraction = dt.timedelta(microseconds=nanos // 1000) if nanos is not None else dt.timedelta(milliseconds=millis % 1000)
        return cls(incrementing, EPOCH + seconds + fraction)

    def after(self, row: Any, incrementing: Optional[str], timestamps: list[str]) -> "_Offset":
        stamp = next((row[name] for name in timestamps if row[name] is not None), None)
        return _Offset(
            row[incrementing] if incrementing is not None else None,
            utc_naive(stamp) if stamp is not None else None,
        )

    def to_json(self, mode: str) -> dict[str, Any]:
        """Confluent's offset document for ``mode`` (empty in bulk mode)."""
        offset: dict[str, Any] = {}
        if mode in (INCREMENTING, TIMESTAMP_INCREMENTING):
            offset[INCREMENTING_FIELD] = self.incrementing
        if mode in (TIMESTAMP, TIMESTAMP_INCREMENTING) and self.timestamp is not None:
            since_epoch = self.timestamp - EPOCH
            offset[TIMESTAMP_FIELD] = since_epoch // dt.timedelta(milliseconds=1)
            offset[TIMESTAMP_NANOS_FIELD] = self.timestamp.microsecond * 1000
        return offset


@dataclass
class _Querier:
    """One table, or the query, of a task: what it selects, where it got to, and when it runs next."""

    partition: dict[str, Any]
    topic: str
    source: sa.FromClause
    schema: Optional[Schema]
    """The table's struct schema; None for a query, whose schema is inferred from each batch."""
    incrementing: Optional[str]
    timestamps: list[str]
    offset: _Offset
    next_run: float = 0.0

    def timestamp_expression(self) -> sa.ColumnElement[Any]:
        """The timestamp column, or the COALESCE of the timestamp columns in the order given."""
        columns = [self.source.c[name] for name in self.timestamps]
        return columns[0] if len(columns) == 1 else sa.func.coalesce(*columns, type_=sa.DateTime())


def _inferred_schema(rows: list[sa.Row[Any]], names: list[str]) -> Schema:
    """A query's struct schema: each column typed by its first non-null value in the batch."""
    def first(name: str) -> Any:
        return next((row._mapping[name] for row in rows if row._mapping[name] is not None), None)

    return Schema(Type.STRUCT, fields=tuple(Field(name, schema_of_value(first(name))) for name in names))


def _autodetected_incrementing(table: sa.Table) -> str:
    """Confluent looks for an auto-increment column; here: the table's single integer primary key."""
    keys = list(table.primary_key.columns)
    if len(keys) != 1 or not isinstance(keys[0].type, sa.Integer):
        raise ConnectError(
            f"Table {table.name} has no single integer primary key to use as the incrementing column; "
            f"set {INCREMENTING_COLUMN_CONFIG}"
        )
    return keys[0].name


def _check_columns(where: str, names: list[str], incrementing: Optional[str], timestamps: list[str]) -> None:
    missing = [name for name in [*([incrementing] if incrementing else []), *timestamps] if name not in names]
    if missing:
        raise ConnectError(f"Column(s) {', '.join(missing)} not found in {where} (columns: {', '.join(names)})")


def _check_non_null(name: str, table: sa.Table, incrementing: Optional[str], timestamps: list[str]) -> None:
    """Confluent's ``validate.non.null``: a nullable incrementing column, or timestamps all nullable, fail."""
    def nullable(column: str) -> bool:
        return table.c[column].nullable and not table.c[column].primary_key

    if incrementing is not None and nullable(incrementing):
        raise ConnectError(
            f"Cannot make incremental queries using incrementing column {incrementing} on {name} because this "
            f"column is nullable."
        )
    if timestamps and all(nullable(c) for c in timestamps):
        raise ConnectError(
            f"Cannot make incremental queries using timestamp columns [{', '.join(timestamps)}] on {name} because "
            f"all of these columns are nullable."
        )


def _parse(config: dict[str, str]) -> dict[str, Any]:
    """The connector's config, with the rules Confluent checks across keys; aliases folded in."""
    try:
        parsed = JdbcSourceConnector.CONFIG_DEF.parse(config)
    except ConfigException as exc:
        raise ConnectError(f"Invalid JdbcSourceConnector configuration: {exc}") from exc
    parsed[TABLE_WHITELIST_CONFIG] = parsed[TABLE_INCLUDE_LIST_CONFIG] or parsed[TABLE_WHITELIST_CONFIG]
    parsed[TABLE_BLACKLIST_CONFIG] = parsed[TABLE_EXCLUDE_LIST_CONFIG] or parsed[TABLE_BLACKLIST_CONFIG]
    mode = parsed[MODE_CONFIG]
    if parsed[QUERY_CONFIG] and (parsed[TABLE_WHITELIST_CONFIG] or parsed[TABLE_BLACKLIST_CONFIG]):
        raise ConnectError(f"Do not specify table filtering parameters with {QUERY_CONFIG}")
    if parsed[TABLE_WHITELIST_CONFIG] and parsed[TABLE_BLACKLIST_CONFIG]:
        raise ConnectError(f"{TABLE_WHITELIST_CONFIG} and {TABLE_BLACKLIST_CONFIG} are exclusive")
    if mode in (TIMESTAMP, TIMESTAMP_INCREMENTING) and not parsed[TIMESTAMP_COLUMN_CONFIG]:
        raise ConnectError(f"Mode {mode} needs {TIMESTAMP_COLUMN_CONFIG}")
    if mode in (INCREMENTING, TIMESTAMP_INCREMENTING) and parsed[QUERY_CONFIG] and not parsed[INCREMENTING_COLUMN_CONFIG]:
        raise ConnectError(f"Mode {mode} with a {QUERY_CONFIG} needs {INCREMENTING_COLUMN_CONFIG}")
    # A mode uses only its own columns (Confluent ignores the others).
    if mode not in (TIMESTAMP, TIMESTAMP_INCREMENTING):
        parsed[TIMESTAMP_COLUMN_CONFIG] = []
    if mode not in (INCREMENTING, TIMESTAMP_INCREMENTING):
        parsed[INCREMENTING_COLUMN_CONFIG] = ""
    return parsed


class JdbcSourceConnector(SourceConnector):
    """Confluent's ``io.confluent.connect.jdbc.JdbcSourceConnector``."""

    CONFIG_DEF = CONNECTION_CONFIG_DEF.merge(
        ConfigDef()
        .define(MODE_CONFIG, ConfigType.STRING, NO_DEFAULT,
                ValidString.in_(BULK, TIMESTAMP, INCREMENTING, TIMESTAMP_INCREMENTING), Importance.HIGH,
                "How new rows are found: bulk (everything, each poll), incrementing (a strictly increasing "
                "column), timestamp (a last-modified column) or timestamp+incrementing (both)", "Mode")
        .define(INCREMENTING_COLUMN_CONFIG, ConfigType.STRING, "", importance=Importance.MEDIUM,
                documentation="The strictly incrementing column; empty means the table's single integer primary "
                "key", group="Mode")
        .define(TIMESTAMP_COLUMN_CONFIG, ConfigType.LIST, "", importance=Importance.MEDIUM,
                documentation="Timestamp column(s) telling when a row changed; several are COALESCEd in order",
                group="Mode")
        .define(VALIDATE_NON_NULL_CONFIG, ConfigType.BOOLEAN, True, importance=Importance.LOW,
                documentation="Fail at start if the incrementing column, or all timestamp columns, are nullable",
                group="Mode")
        .define(TABLE_WHITELIST_CONFIG, ConfigType.LIST, "", importance=Importance.MEDIUM,
                documentation="Tables to copy (all tables when empty and no query is given)", group="Database")
        .define(TABLE_INCLUDE_LIST_CONFIG, ConfigType.LIST, "", importance=Importance.MEDIUM,
                documentation=f"Newer name of {TABLE_WHITELIST_CONFIG}", group="Database")
        .define(TABLE_BLACKLIST_CONFIG, ConfigType.LIST, "", importance=Importance.MEDIUM,
                documentation="Tables not to copy when all tables are copied", group="Database")
        .define(TABLE_EXCLUDE_LIST_CONFIG, ConfigType.LIST, "", importance=Importance.MEDIUM,
                documentation=f"Newer name of {TABLE_BLACKLIST_CONFIG}", group="Database")
        .define(QUERY_CONFIG, ConfigType.STRING, "", importance=Importance.MEDIUM,
                documentation="A query to copy the result of, instead of tables", group="Mode")
        .define(TOPIC_PREFIX_CONFIG, ConfigType.STRING, NO_DEFAULT, importance=Importance.HIGH,
                documentation="Prefix of the topic names (a table's topic is prefix + table name; a query's "
                "topic is the prefix)", group="Connector")
        .define(POLL_INTERVAL_MS_CONFIG, ConfigType.INT, 5000, Range.at_least(1), Importance.HIGH,
                "How often to poll each table for new data", "Connector")
        .define(BATCH_MAX_ROWS_CONFIG, ConfigType.INT, 100, Range.at_least(1), Importance.LOW,
                "The most rows one query reads, and one poll returns", "Connector")
        .define(TIMESTAMP_DELAY_INTERVAL_MS_CONFIG, ConfigType.LONG, 0, Range.at_least(0), Importance.HIGH,
                "How long after its timestamp a row is copied, to let its transaction commit", "Connector")
    )

    def version(self) -> str:
        return caudal.__version__

    def start(self, config: dict[str, str]) -> None:
        parsed = _parse(config)
        self._config = dict(config)
        self._tables: list[str] = []
        if parsed[QUERY_CONFIG]:
            return
        self._tables = parsed[TABLE_WHITELIST_CONFIG] or self._all_tables(parsed)

    def _all_tables(self, parsed: dict[str, Any]) -> list[str]:
        engine = create_engine(parsed)
        try:
            names = sa.inspect(engine).get_table_names()
        except sa.exc.SQLAlchemyError as exc:
            raise ConnectError(f"Cannot list the database's tables: {exc}") from exc
        finally:
            engine.dispose()
        return [name for name in names if name not in parsed[TABLE_BLACKLIST_CONFIG]]

    def task_class(self) -> type[Task]:
        return JdbcSourceTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        """The query as one task; otherwise the tables in up to ``max_tasks`` round-robin groups."""
        if not self._tables:
            return [dict(self._config)] if self._config.get(QUERY_CONFIG, "").strip() else []
        groups = min(max_tasks, len(self._tables))
        return [{**self._config, TABLES_CONFIG: ",".join(self._tables[i::groups])} for i in range(groups)]
