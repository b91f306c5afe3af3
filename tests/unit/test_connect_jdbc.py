"""The JDBC source and sink connectors against real SQLite databases (files in tmp_path)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
import sqlalchemy as sa

from caudal.connect.api import (
    ConnectError,
    Field,
    Schema,
    SinkRecord,
    SinkTaskContext,
    SourceRecord,
    SourceTaskContext,
    Type,
)
from caudal.connect.converters import JsonConverter
from caudal.connect.jdbc_dialect import DATE_SCHEMA, TIMESTAMP_SCHEMA, engine_url
from caudal.connect.jdbc_sink import JdbcSinkConnector, JdbcSinkTask
from caudal.connect.jdbc_source import MAX_IDLE_WAIT_S, JdbcSourceConnector, JdbcSourceTask
from caudal.connect.offset_store import MemoryOffsetStore
from caudal.connect.plugins import connector_class

CONNECTOR = "jdbc"
T0 = dt.datetime(2024, 1, 1, 10, 0, 0)
T0_MS = int(T0.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[str, sa.Engine]]:
    """A SQLite file: its connection.url and an engine the test sets it up with."""
    path = tmp_path / "db.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        yield f"jdbc:sqlite:{path}", engine
    finally:
        engine.dispose()


def _sql(engine: sa.Engine, statement: str, *rows: dict[str, Any]) -> list[tuple[Any, ...]]:
    with engine.begin() as connection:
        result = connection.execute(sa.text(statement), list(rows) if rows else None)
        return [tuple(r) for r in result] if result.returns_rows else []


# ---- connection URLs -------------------------------------------------------------------------


def test_connection_urls_translate_jdbc_and_sqlalchemy_forms() -> None:
    url = engine_url("jdbc:postgresql://db.example:5433/shop?user=app&password=s3cret&sslmode=disable")
    assert (url.drivername, url.host, url.port, url.database) == ("postgresql+psycopg", "db.example", 5433, "shop")
    assert (url.username, url.password, dict(url.query)) == ("app", "s3cret", {"sslmode": "disable"})
    url = engine_url("jdbc:postgresql://db.example/shop", user="other", password="pw")
    assert (url.host, url.port, url.username, url.password) == ("db.example", None, "other", "pw")
    assert engine_url("jdbc:sqlite:/var/data/x.db").render_as_string() == "sqlite:////var/data/x.db"
    assert engine_url("postgresql://u@h:1/d").drivername == "postgresql+psycopg"
    assert engine_url("sqlite:////tmp/y.db").database == "/tmp/y.db"
    with pytest.raises(ConnectError, match="Unsupported JDBC URL"):
        engine_url("jdbc:mysql://h/d")


def test_connectors_resolve_by_confluent_names_and_aliases() -> None:
    for name in ("io.confluent.connect.jdbc.JdbcSourceConnector", "JdbcSourceConnector", "JdbcSource"):
        assert connector_class(name) is JdbcSourceConnector
    for name in ("io.confluent.connect.jdbc.JdbcSinkConnector", "JdbcSinkConnector", "JdbcSink"):
        assert connector_class(name) is JdbcSinkConnector


# ---- source ---------------------------------------------------------------------------------


class Source:
    """A JDBC source connector and its tasks, with the worker's offset bookkeeping."""

    def __init__(self, config: dict[str, str], store: Optional[MemoryOffsetStore] = None, max_tasks: int = 1) -> None:
        self.store = store or MemoryOffsetStore()
        self.connector = JdbcSourceConnector()
        self.connector.start(config)
        self.task_configs = self.connector.task_configs(max_tasks)
        self.task = self.start_task(self.task_configs[0])

    def start_task(self, config: dict[str, str]) -> JdbcSourceTask:
        task = JdbcSourceTask()
        task.initialize(SourceTaskContext(self.store.reader(CONNECTOR), config))
        try:
            task.start(config)
        except BaseException:
            task.stop()
            raise
        return task

    def poll(self) -> list[SourceRecord]:
        """One poll's records, whose offsets are then committed as the worker would."""
        records = self.task.poll() or []
        if records:
            self.store.put(CONNECTOR, [(r.source_partition, r.source_offset) for r in records])
        return records

    def read(self, count: int, timeout_s: float = 10.0) -> list[SourceRecord]:
        """Exactly ``count`` records, polling until they have come (a poll bringing more fails)."""
        deadline = time.monotonic() + timeout_s
        records: list[SourceRecord] = []
        while len(records) < count:
            assert time.monotonic() < deadline, f"only {len(records)} of {count} records after {timeout_s} s"
            records += self.poll()
        assert len(records) == count, [r.value for r in records]
        return records

    def close(self) -> None:
        self.task.stop()
        self.connector.stop()


@pytest.fixture
def sources() -> Iterator[list[Source]]:
    """Sources started by a test, stopped after it."""
    started: list[Source] = []
    try:
        yield started
    finally:
        for source in started:
            source.close()


def _source(sources: list[Source], url: str, store: Optional[MemoryOffsetStore] = None, max_tasks: int = 1,
            **config: str) -> Source:
    source = Source({"connection.url": url, "topic.prefix": "db-", "poll.interval.ms": "50", **config},
                    store, max_tasks)
    sources.append(source)
    return source


def _orders(engine: sa.Engine) -> None:
    _sql(engine, "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, qty INTEGER, "
                 "updated_at TIMESTAMP NOT NULL)")


def _insert_orders(engine: sa.Engine, *rows: tuple[int, str, dt.datetime]) -> None:
    _sql(engine, "INSERT INTO orders (id, item, qty, updated_at) VALUES (:id, :item, 1, :ts)",
         *({"id": i, "item": item, "ts": ts.isoformat(" ")} for i, item, ts in rows))


def test_bulk_mode_reads_every_row_each_interval_with_a_schema_from_the_columns(db, sources) -> None:
    url, engine = db
    _sql(engine, "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price NUMERIC, ok BOOLEAN, "
                 "seen TIMESTAMP, day DATE, blob BLOB, small SMALLINT, ratio REAL)")
    _sql(engine, "INSERT INTO things VALUES (1, 'a', 2.5, 1, '2024-01-01 10:00:00.250000', '2024-01-02', x'0102', 7, "
                 "0.5), (2, 'b', NULL, 0, NULL, NULL, NULL, NULL, NULL)")
    source = _source(sources, url, mode="bulk", **{"table.whitelist": "things"})
    first = source.read(2)
    assert [r.value for r in first] == [
        {"id": 1, "name": "a", "price": 2.5, "ok": True, "seen": T0_MS + 250, "day": 19724, "blob": b"\x01\x02",
         "small": 7, "ratio": 0.5},
        {"id": 2, "name": "b", "price": None, "ok": False, "seen": None, "day": None, "blob": None, "small": None,
         "ratio": None},
    ]
    schema = first[0].value_schema
    assert schema is not None and schema.type is Type.STRUCT and schema.name == "things"
    types = {f.name: f.schema for f in schema.fields}
    assert types["id"] == Schema(Type.INT64) and types["name"] == Schema(Type.STRING)
    assert types["price"] == Schema(Type.FLOAT64, optional=True) and types["ok"] == Schema(Type.BOOLEAN, optional=True)
    assert types["seen"].name == TIMESTAMP_SCHEMA.name and types["seen"].type is Type.INT64
    assert types["day"].name == DATE_SCHEMA.name and types["blob"].type is Type.BYTES
    assert types["small"].type is Type.INT16 and types["ratio"].type is Type.FLOAT64
    assert {(r.topic, r.key) for r in first} == {("db-things", None)}
    assert first[0].source_partition == {"table": "things"} and first[0].source_offset == {}
    _sql(engine, "DELETE FROM things WHERE id = 2")
    assert [r.value["id"] for r in source.read(1)] == [1], "bulk mode re-reads the table as it is now"


def test_incrementing_mode_catches_inserts_and_resumes_from_the_stored_offset(db, sources) -> None:
    url, engine = db
    _orders(engine)
    _insert_orders(engine, (1, "a", T0), (2, "b", T0))
    config = {"mode": "incrementing", "incrementing.column.name": "id", "table.whitelist": "orders"}
    source = _source(sources, url, **config)
    records = source.read(2)
    assert [r.value["item"] for r in records] == ["a", "b"]
    assert [r.source_offset for r in records] == [{"incrementing": 1}, {"incrementing": 2}]
    assert {r.topic for r in records} == {"db-orders"}
    _insert_orders(engine, (3, "c", T0))
    _sql(engine, "UPDATE orders SET item = 'a2' WHERE id = 1")
    assert [r.value["item"] for r in source.read(1)] == ["c"], "incrementing mode sees inserts, not updates"
    source.close()
    sources.remove(source)

    _insert_orders(engine, (4, "d", T0))
    resumed = _source(sources, url, source.store, **config)
    assert [r.value["item"] for r in resumed.read(1)] == ["d"]


def test_incrementing_column_defaults_to_the_integer_primary_key(db, sources) -> None:
    url, engine = db
    _orders(engine)
    _insert_orders(engine, (5, "e", T0))
    source = _source(sources, url, mode="incrementing", **{"table.whitelist": "orders"})
    assert [r.source_offset for r in source.read(1)] == [{"incrementing": 5}]


def test_timestamp_incrementing_mode_catches_inserts_and_updates_exactly_once(db, sources) -> None:
    url, engine = db
    _orders(engine)
    same = T0 + dt.timedelta(microseconds=123456)
    _insert_orders(engine, (1, "a", same), (2, "b", same), (3, "c", same), (4, "d", T0 + dt.timedelta(seconds=1)))
    config = {"mode": "timestamp+incrementing", "incrementing.column.name": "id", "timestamp.column.name": "updated_at",
              "table.whitelist": "orders", "batch.max.rows": "2"}
    source = _source(sources, url, **config)
    records = source.read(4)
    assert [r.value["id"] for r in records] == [1, 2, 3, 4], "rows sharing a timestamp across batches"
    assert records[0].source_offset == {"incrementing": 1, "timestamp": T0_MS + 123, "timestamp_nanos": 123456000}
    _sql(engine, "UPDATE orders SET item = 'b2', updated_at = :ts WHERE id = 2", {"ts": "2024-01-01 11:00:00"})
    _insert_orders(engine, (5, "e", T0 + dt.timedelta(hours=2)))
    assert [(r.value["id"], r.value["item"]) for r in source.read(2)] == [(2, "b2"), (5, "e")]
    source.close()
    sources.remove(source)

    _sql(engine, "UPDATE orders SET updated_at = :ts WHERE id = 1", {"ts": "2024-01-01 13:00:00"})
    resumed = _source(sources, url, source.store, **config)
    assert [r.value["id"] for r in resumed.read(1)] == [1]


def test_timestamps_written_by_sqlite_itself_compare_by_instant(db, sources) -> None:
    """CURRENT_TIMESTAMP-style text ('... 10:00:00') equals the bound offset ('... 10:00:00.000000')."""
    url, engine = db
    _orders(engine)
    _sql(engine, "INSERT INTO orders (id, item, updated_at) VALUES (1, 'a', '2024-01-01 10:00:00'), "
                 "(2, 'b', '2024-01-01 10:00:00'), (3, 'c', '2024-01-01 10:00:00')")
    source = _source(sources, url, mode="timestamp+incrementing", **{
        "incrementing.column.name": "id", "timestamp.column.name": "updated_at", "table.whitelist": "orders",
        "batch.max.rows": "1"})
    assert [r.value["id"] for r in source.read(3)] == [1, 2, 3]


def test_timestamp_mode_delivers_a_tie_bigger_than_a_batch_and_coalesces_columns(db, sources) -> None:
    url, engine = db
    _sql(engine, "CREATE TABLE events (id INTEGER PRIMARY KEY, created TIMESTAMP NOT NULL, modified TIMESTAMP)")
    rows = [{"id": i, "c": "2024-01-01 10:00:00", "m": None} for i in range(1, 6)]
    rows.append({"id": 6, "c": "2024-01-01 09:00:00", "m": "2024-01-01 12:00:00"})
    _sql(engine, "INSERT INTO events VALUES (:id, :c, :m)", *rows)
    source = _source(sources, url, mode="timestamp", **{
        "timestamp.column.name": "modified,created", "table.whitelist": "events", "batch.max.rows": "2"})
    records = source.read(6)
    assert sorted(r.value["id"] for r in records[:5]) == [1, 2, 3, 4, 5] and records[5].value["id"] == 6
    assert records[5].source_offset == {"timestamp": T0_MS + 2 * 3_600_000, "timestamp_nanos": 0}
    _sql(engine, "UPDATE events SET modified = '2024-01-01 12:30:00' WHERE id = 3")
    assert [r.value["id"] for r in source.read(1)] == [3]


def test_timestamp_delay_leaves_out_rows_younger_than_the_delay(db, sources) -> None:
    url, engine = db
    _orders(engine)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    _insert_orders(engine, (1, "old", now - dt.timedelta(hours=2)), (2, "young", now))
    source = _source(sources, url, mode="timestamp", **{
        "timestamp.column.name": "updated_at", "table.whitelist": "orders", "timestamp.delay.interval.ms": "3600000"})
    assert [r.value["item"] for r in source.read(1)] == ["old"]
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:  # several more queries (every 50 ms): the young row stays out
        assert source.poll() == []


def test_batch_max_rows_limits_a_poll_and_a_backlog_is_read_without_waiting_the_interval(db, sources) -> None:
    url, engine = db
    _orders(engine)
    _insert_orders(engine, *((i, f"item{i}", T0) for i in range(1, 6)))
    source = _source(sources, url, mode="incrementing", **{
        "table.whitelist": "orders", "batch.max.rows": "2", "poll.interval.ms": "600000"})
    sizes = [len(source.poll()) for _ in range(3)]
    assert sizes == [2, 2, 1]
    assert source.store.get(CONNECTOR, {"table": "orders"}) == {"incrementing": 5}


def test_query_mode_publishes_to_the_prefix_with_a_query_partition(db, sources) -> None:
    url, engine = db
    _orders(engine)
    _insert_orders(engine, (1, "a", T0), (2, "b", T0), (3, "c", T0))
    source = _source(sources, url, mode="incrementing", **{
        "query": "SELECT id, upper(item) AS item, qty * 10 AS total FROM orders WHERE id <> 2;",
        "incrementing.column.name": "id", "topic.prefix": "picked"})
    records = source.read(2)
    assert [r.value for r in records] == [{"id": 1, "item": "A", "total": 10}, {"id": 3, "item": "C", "total": 10}]
    assert {r.topic for r in records} == {"picked"}
    assert records[-1].source_partition == {"query": "query"} and records[-1].source_offset == {"incrementing": 3}
    schema = records[0].value_schema
    assert schema is not None and [(f.name, f.schema.type) for f in schema.fields] == [
        ("id", Type.INT64), ("item", Type.STRING), ("total", Type.INT64)]
    _insert_orders(engine, (4, "d", T0))
    assert [r.value["item"] for r in source.read(1)] == ["D"]


def test_tables_are_split_over_tasks_and_default_to_all_but_the_blacklist(db, sources) -> None:
    url, engine = db
    for name in ("a", "b", "c", "skip"):
        _sql(engine, f"CREATE TABLE {name} (id INTEGER PRIMARY KEY)")
        _sql(engine, f"INSERT INTO {name} VALUES (1)")
    source = _source(sources, url, max_tasks=2, mode="bulk", **{"table.blacklist": "skip"})
    assert sorted(c["tables"] for c in source.task_configs) == ["a,c", "b"]
    second = source.start_task(source.task_configs[1])
    try:
        assert {r.topic for r in second.poll() or []} == {"db-b"}
    finally:
        second.stop()


@pytest.mark.parametrize("config, message", [
    ({"mode": "bulk", "query": "SELECT 1", "table.whitelist": "orders"}, "Do not specify table filtering"),
    ({"mode": "timestamp", "table.whitelist": "orders"}, "needs timestamp.column.name"),
    ({"mode": "incrementing", "query": "SELECT id FROM orders"}, "needs incrementing.column.name"),
    ({"mode": "sometimes", "table.whitelist": "orders"}, "Invalid value sometimes for configuration mode"),
    ({"mode": "bulk", "table.whitelist": "a", "table.blacklist": "b"}, "exclusive"),
])
def test_source_config_errors(db, sources, config: dict[str, str], message: str) -> None:
    url, _ = db
    with pytest.raises(ConnectError, match=message):
        _source(sources, url, **config)


def test_source_task_start_checks_tables_columns_and_nullability(db, sources) -> None:
    url, engine = db
    _sql(engine, "CREATE TABLE loose (id INTEGER, ts TIMESTAMP)")
    with pytest.raises(ConnectError, match="Table missing does not exist"):
        _source(sources, url, mode="bulk", **{"table.whitelist": "missing"})
    with pytest.raises(ConnectError, match=r"Column\(s\) nope not found in loose"):
        _source(sources, url, mode="incrementing", **{"table.whitelist": "loose", "incrementing.column.name": "nope"})
    with pytest.raises(ConnectError, match="incrementing column id on loose because this column is nullable"):
        _source(sources, url, mode="incrementing", **{"table.whitelist": "loose", "incrementing.column.name": "id"})
    with pytest.raises(ConnectError, match=r"timestamp columns \[ts\] on loose because all of these"):
        _source(sources, url, mode="timestamp", **{"table.whitelist": "loose", "timestamp.column.name": "ts"})
    _sql(engine, "INSERT INTO loose VALUES (NULL, NULL), (1, NULL)")
    source = _source(sources, url, mode="incrementing", **{
        "table.whitelist": "loose", "incrementing.column.name": "id", "validate.non.null": "false"})
    assert [r.value["id"] for r in source.read(1)] == [1], "rows with a null incrementing value are left out"


def test_stop_unblocks_a_waiting_poll(db, sources) -> None:
    url, engine = db
    _orders(engine)
    source = _source(sources, url, mode="incrementing", **{"table.whitelist": "orders", "poll.interval.ms": "600000"})
    assert source.poll() == []  # the first query: nothing yet, the next one is due in 10 minutes
    returned = threading.Event()
    poller = threading.Thread(target=lambda: (source.task.poll(), returned.set()))
    poller.start()
    source.task.stop()
    poller.join(MAX_IDLE_WAIT_S / 2)
    assert returned.is_set(), "poll did not return when the task was stopped"


# ---- sink -----------------------------------------------------------------------------------


class Sink:
    """A JDBC sink task fed records of one topic-partition, with the worker's commit requests."""

    def __init__(self, config: dict[str, str]) -> None:
        connector = JdbcSinkConnector()
        connector.start(config)
        self.task = JdbcSinkTask()
        self.context = SinkTaskContext(connector.task_configs(1)[0], assignment=set,
                                       pause=lambda *_: None, resume=lambda *_: None)
        self.task.initialize(self.context)
        self.task.start(self.context.config)
        self.offset = 0

    def record(self, value: Any, key: Any = None, value_schema: Optional[Schema] = None,
               key_schema: Optional[Schema] = None, topic: str = "orders") -> SinkRecord:
        self.offset += 1
        return SinkRecord(topic=topic, kafka_partition=0, key=key, value=value, key_schema=key_schema,
                          value_schema=value_schema, kafka_offset=self.offset - 1)

    def write(self, *records: SinkRecord) -> None:
        self.task.put(list(records))
        self.task.flush({("orders", 0): self.offset})


@pytest.fixture
def sinks() -> Iterator[list[Sink]]:
    started: list[Sink] = []
    try:
        yield started
    finally:
        for sink in started:
            sink.task.stop()


def _sink(sinks: list[Sink], url: str, **config: str) -> Sink:
    sink = Sink({"connection.url": url, "topics": "orders", **config})
    sinks.append(sink)
    return sink


ORDER_SCHEMA = Schema(Type.STRUCT, name="orders", fields=(
    Field("id", Schema(Type.INT64)), Field("item", Schema(Type.STRING)), Field("qty", Schema(Type.INT32, optional=True)),
    Field("updated_at", TIMESTAMP_SCHEMA),
))


def _columns(engine: sa.Engine, table: str) -> dict[str, sa.types.TypeEngine[Any]]:
    return {c["name"]: c["type"] for c in sa.inspect(engine).get_columns(table)}


def test_sink_inserts_schemaless_structs_into_an_auto_created_table(db, sinks) -> None:
    url, engine = db
    sink = _sink(sinks, url, **{"auto.create": "true", "table.name.format": "copy_${topic}"})
    sink.write(sink.record({"id": 1, "item": "a", "price": 2.5, "ok": True, "blob": b"\x00"}),
               sink.record({"id": 2, "item": "b", "price": None, "ok": False, "blob": None}))
    assert _sql(engine, "SELECT id, item, price, ok, blob FROM copy_orders ORDER BY id") == [
        (1, "a", 2.5, 1, b"\x00"), (2, "b", None, 0, None)]
    types = _columns(engine, "copy_orders")
    assert isinstance(types["id"], sa.BigInteger) and isinstance(types["item"], sa.Text)
    assert isinstance(types["price"], sa.Float) and isinstance(types["ok"], sa.Boolean)


def test_sink_upserts_by_value_fields_with_schemas_and_logical_timestamps(db, sinks) -> None:
    url, engine = db
    sink = _sink(sinks, url, **{"auto.create": "true", "insert.mode": "upsert", "pk.mode": "record_value",
                               "pk.fields": "id"})
    sink.write(*(sink.record({"id": i, "item": f"v{i}", "qty": i, "updated_at": T0_MS}, value_schema=ORDER_SCHEMA)
                 for i in (1, 2)))
    sink.write(sink.record({"id": 2, "item": "first", "qty": None, "updated_at": T0_MS + 1}, value_schema=ORDER_SCHEMA),
               sink.record({"id": 2, "item": "last", "qty": None, "updated_at": T0_MS + 2}, value_schema=ORDER_SCHEMA),
               sink.record({"id": 3, "item": "v3", "qty": 3, "updated_at": T0_MS}, value_schema=ORDER_SCHEMA))
    assert _sql(engine, "SELECT id, item, qty, updated_at FROM orders ORDER BY id") == [
        (1, "v1", 1, "2024-01-01 10:00:00.000000"), (2, "last", None, "2024-01-01 10:00:00.002000"),
        (3, "v3", 3, "2024-01-01 10:00:00.000000")]
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("orders")["constrained_columns"] == ["id"]
    nullable = {c["name"]: c["nullable"] for c in inspector.get_columns("orders")}
    assert nullable == {"id": False, "item": False, "qty": True, "updated_at": False}


def test_sink_pk_mode_kafka_uses_topic_partition_and_offset(db, sinks) -> None:
    url, engine = db
    sink = _sink(sinks, url, **{"auto.create": "true", "pk.mode": "kafka"})
    sink.write(sink.record({"item": "a"}), sink.record({"item": "b"}))
    assert _sql(engine, "SELECT __connect_topic, __connect_partition, __connect_offset, item FROM orders") == [
        ("orders", 0, 0, "a"), ("orders", 0, 1, "b")]
    assert sa.inspect(engine).get_pk_constraint("orders")["constrained_columns"] == list(
        ("__connect_topic", "__connect_partition", "__connect_offset"))


def test_sink_pk_mode_record_key_with_primitive_and_struct_keys(db, sinks) -> None:
    url, engine = db
    primitive = _sink(sinks, url, **{"auto.create": "true", "insert.mode": "upsert", "pk.mode": "record_key",
                                    "table.name.format": "by_key"})
    primitive.write(primitive.record({"item": "a"}, key="k1"), primitive.record({"item": "b"}, key="k1"))
    assert _sql(engine, "SELECT __connect_key, item FROM by_key") == [("k1", "b")]
    struct = _sink(sinks, url, **{"auto.create": "true", "insert.mode": "upsert", "pk.mode": "record_key",
                                 "pk.fields": "region,id", "table.name.format": "by_struct"})
    key_schema = Schema(Type.STRUCT, fields=(Field("region", Schema(Type.STRING)), Field("id", Schema(Type.INT32)),
                                             Field("ignored", Schema(Type.STRING))))
    struct.write(struct.record({"item": "x"}, key={"region": "eu", "id": 7, "ignored": "?"}, key_schema=key_schema))
    assert _sql(engine, "SELECT region, id, item FROM by_struct") == [("eu", 7, "x")]


def test_sink_tombstones_delete_by_key_when_enabled(db, sinks) -> None:
    url, engine = db
    sink = _sink(sinks, url, **{"auto.create": "true", "insert.mode": "upsert", "pk.mode": "record_key",
                               "pk.fields": "id", "delete.enabled": "true"})
    sink.write(sink.record({"item": "a"}, key=1), sink.record({"item": "b"}, key=2), sink.record(None, key=1),
               sink.record(None, key=99))
    assert _sql(engine, "SELECT id, item FROM orders") == [(2, "b")]
    sink.write(sink.record(None, key=2), sink.record({"item": "again"}, key=2))
    assert _sql(engine, "SELECT id, item FROM orders") == [(2, "again")], "writes keep record order"
    strict = _sink(sinks, url, **{"pk.mode": "record_key", "pk.fields": "id"})
    with pytest.raises(ConnectError, match="tombstone"):
        strict.task.put([strict.record(None, key=2)])


def test_sink_auto_evolve_adds_nullable_columns_and_is_needed_for_them(db, sinks) -> None:
    url, engine = db
    _sql(engine, "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)")
    _sql(engine, "INSERT INTO orders VALUES (1, 'old')")
    fixed = _sink(sinks, url, **{"pk.mode": "record_value", "pk.fields": "id", "insert.mode": "upsert"})
    with pytest.raises(ConnectError, match=r"missing columns \['qty'\] and auto.evolve is disabled"):
        fixed.write(fixed.record({"id": 2, "item": "b", "qty": 3}))
    evolving = _sink(sinks, url, **{"pk.mode": "record_value", "pk.fields": "id", "insert.mode": "upsert",
                                   "auto.evolve": "true"})
    schema = Schema(Type.STRUCT, fields=(Field("id", Schema(Type.INT64)), Field("item", Schema(Type.STRING)),
                                         Field("qty", Schema(Type.INT32)), Field("day", DATE_SCHEMA)))
    evolving.write(evolving.record({"id": 2, "item": "b", "qty": 3, "day": 19724}, value_schema=schema))
    assert _sql(engine, "SELECT id, item, qty, day FROM orders ORDER BY id") == [
        (1, "old", None, None), (2, "b", 3, "2024-01-02")]
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("orders")}
    assert columns["qty"]["nullable"] and isinstance(columns["qty"]["type"], sa.Integer)
    assert isinstance(columns["day"]["type"], sa.Date)


def test_sink_forgets_a_table_created_by_a_failed_flush(db, sinks) -> None:
    url, engine = db
    sink = _sink(sinks, url, **{"auto.create": "true"})
    sink.task.put([sink.record({"id": 1}), sink.record({"id": 2, "extra": 3})])
    for _ in range(2):  # the second flush must not take the rolled-back table for an existing one
        with pytest.raises(ConnectError, match=r"missing columns \['extra'\] and auto.evolve is disabled"):
            sink.task.flush({})
        assert not sa.inspect(engine).has_table("orders")


def test_sink_needs_auto_create_for_a_missing_table(db, sinks) -> None:
    url, _ = db
    sink = _sink(sinks, url)
    with pytest.raises(ConnectError, match="Table orders is missing and auto.create is disabled"):
        sink.write(sink.record({"id": 1}))


def test_sink_flush_is_one_transaction_and_keeps_the_buffer_when_it_fails(db, sinks) -> None:
    url, engine = db
    _sql(engine, "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
    _sql(engine, "INSERT INTO orders VALUES (3, 'taken')")
    sink = _sink(sinks, url)
    sink.task.put([sink.record({"id": 1, "item": "a"}), sink.record({"id": 2, "item": "b"})])
    sink.task.put([sink.record({"id": 3, "item": "clash"})])
    with pytest.raises(ConnectError, match="Failed to write 3 records"):
        sink.task.flush({})
    assert _sql(engine, "SELECT id FROM orders") == [(3,)], "nothing of a failed flush is written"
    _sql(engine, "DELETE FROM orders")
    sink.task.flush({})
    assert _sql(engine, "SELECT id, item FROM orders ORDER BY id") == [(1, "a"), (2, "b"), (3, "clash")]


def test_sink_update_mode_changes_existing_rows_only(db, sinks) -> None:
    url, engine = db
    _sql(engine, "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
    _sql(engine, "INSERT INTO orders VALUES (1, 'a')")
    sink = _sink(sinks, url, **{"insert.mode": "update", "pk.mode": "record_value", "pk.fields": "id"})
    sink.write(sink.record({"id": 1, "item": "a2"}), sink.record({"id": 5, "item": "none"}))
    assert _sql(engine, "SELECT id, item FROM orders") == [(1, "a2")]


def test_sink_asks_for_a_commit_once_batch_size_records_wait(db, sinks) -> None:
    url, engine = db
    sink = _sink(sinks, url, **{"auto.create": "true", "batch.size": "3"})
    sink.task.put([sink.record({"id": i}) for i in range(2)])
    assert not sink.context.commit_requested
    sink.task.put([sink.record({"id": 2})])
    assert sink.context.commit_requested
    sink.task.flush({})
    assert _sql(engine, "SELECT count(*) FROM orders") == [(3,)]


def test_sink_rejects_values_that_are_not_flat_structs(db, sinks) -> None:
    url, _ = db
    sink = _sink(sinks, url, **{"auto.create": "true"})
    with pytest.raises(ConnectError, match="needs a struct value, got str"):
        sink.task.put([sink.record("plain text")])
    with pytest.raises(ConnectError, match="Field nested holds a dict"):
        sink.task.put([sink.record({"id": 1, "nested": {"a": 1}})])


@pytest.mark.parametrize("config, message", [
    ({"insert.mode": "upsert"}, "needs a primary key"),
    ({"delete.enabled": "true", "pk.mode": "record_value"}, "delete.enabled=true needs pk.mode=record_key"),
    ({"pk.mode": "kafka", "pk.fields": "a,b"}, "exactly 3 pk.fields"),
    ({"pk.mode": "everything"}, "Invalid value everything for configuration pk.mode"),
])
def test_sink_config_errors(db, config: dict[str, str], message: str) -> None:
    url, _ = db
    with pytest.raises(ConnectError, match=message):
        JdbcSinkConnector().start({"connection.url": url, **config})


def test_source_to_sink_through_the_json_converter_keeps_types(db, sources, sinks) -> None:
    """What the integration test does through a worker, in one process: table -> JSON -> table."""
    url, engine = db
    _orders(engine)
    _insert_orders(engine, (1, "a", T0 + dt.timedelta(milliseconds=5)), (2, "b", T0))
    source = _source(sources, url, mode="timestamp+incrementing", **{
        "incrementing.column.name": "id", "timestamp.column.name": "updated_at", "table.whitelist": "orders"})
    converter = JsonConverter()
    converter.configure({"schemas.enable": "true"}, is_key=False)
    sink = _sink(sinks, url, **{"auto.create": "true", "insert.mode": "upsert", "pk.mode": "record_value",
                               "pk.fields": "id", "table.name.format": "orders_copy"})
    for record in source.read(2):
        schema, value = converter.to_connect(record.topic, converter.from_connect(record.topic, record.value_schema,
                                                                                record.value))
        sink.task.put([sink.record(value, value_schema=schema)])
    sink.task.flush({})
    assert _sql(engine, "SELECT id, item, qty, updated_at FROM orders_copy ORDER BY id") == [
        (1, "a", 1, "2024-01-01 10:00:00.005000"), (2, "b", 1, "2024-01-01 10:00:00.000000")]
