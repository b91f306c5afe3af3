"""The JDBC connectors on real processes: PostgreSQL -> JDBC source -> topic -> JDBC sink -> PostgreSQL.

A ``caudal connect standalone`` worker against a ``caudal dev`` node runs a
``timestamp+incrementing`` source on one PostgreSQL table and an upserting
sink into another, both with JsonConverter schemas, as a Kafka Connect user
would configure Confluent's connectors. The copy must follow inserts and
updates. PostgreSQL comes from tests/support/postgres.py; if it cannot start,
the test fails saying what to install.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
import sqlalchemy as sa
from connect_workers import ConnectWorker, rest
from nodes import wait_until
from postgres import PostgresServer, PostgresUnavailable, running_postgres

from caudal.client import Consumer, TopicPartition

JSON = {"value.converter": "org.apache.kafka.connect.json.JsonConverter", "value.converter.schemas.enable": "true"}


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running_postgres())
        except PostgresUnavailable as exc:
            pytest.fail(f"PostgreSQL 15 is needed for this test and could not be started: {exc}", pytrace=False)
        yield server


@pytest.fixture
def database(postgres: PostgresServer) -> Iterator[sa.Engine]:
    engine = sa.create_engine(postgres.url)
    try:
        yield engine
    finally:
        engine.dispose()


def _rows(engine: sa.Engine, table: str) -> list[tuple[Any, ...]]:
    """The table's rows, timestamps at the millisecond precision Connect's Timestamp carries."""
    if not sa.inspect(engine).has_table(table):
        return []
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(sa.text(
            f"SELECT id, item, qty, date_trunc('milliseconds', updated_at) FROM {table} ORDER BY id"))]


def _execute(engine: sa.Engine, statement: str) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text(statement))


def _read_values(bootstrap: str, topic: str, expected: int) -> list[dict[str, Any]]:
    consumer = Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    got: list = []
    try:
        consumer.assign([TopicPartition(topic, 0)])
        wait_until(lambda: got.extend(consumer.poll(timeout_ms=200)) or len(got) >= expected, 30,
                   what=f"{expected} records in {topic}")
    finally:
        consumer.close()
    return [json.loads(r.value) for r in got]


def test_jdbc_source_and_sink_copy_inserts_and_updates_between_postgres_tables(
    dev_node, postgres: PostgresServer, database: sa.Engine, tmp_path: Path,
) -> None:
    _execute(database, "CREATE TABLE orders (id SERIAL PRIMARY KEY, item TEXT NOT NULL, qty INTEGER NOT NULL, "
                       "updated_at TIMESTAMP NOT NULL DEFAULT clock_timestamp())")
    _execute(database, "INSERT INTO orders (item, qty) VALUES ('apple', 1), ('pear', 2), ('plum', 3)")
    source = {
        "name": "pg-source", "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
        "connection.url": postgres.jdbc_url, "mode": "timestamp+incrementing", "incrementing.column.name": "id",
        "timestamp.column.name": "updated_at", "table.whitelist": "orders", "topic.prefix": "pg-",
        "poll.interval.ms": "200", **JSON,
    }
    sink = {
        "name": "pg-sink", "connector.class": "JdbcSink", "topics": "pg-orders",
        "connection.url": f"postgresql://127.0.0.1:{postgres.port}/postgres", "connection.user": "postgres",
        "table.name.format": "orders_copy", "insert.mode": "upsert", "pk.mode": "record_value", "pk.fields": "id",
        "auto.create": "true", **JSON,
    }
    worker_dir = tmp_path / "connect"
    worker_dir.mkdir()
    worker = ConnectWorker(worker_dir, dev_node.bootstrap, [source, sink]).run()
    try:
        wait_until(lambda: len(_rows(database, "orders")) == 3 and _rows(database, "orders_copy") == _rows(
            database, "orders"), 60, interval_s=0.2, what="the copy of the first rows")

        _execute(database, "UPDATE orders SET qty = 20, updated_at = clock_timestamp() WHERE item = 'pear'")
        _execute(database, "INSERT INTO orders (item, qty) VALUES ('fig', 4)")
        wait_until(lambda: _rows(database, "orders_copy") == _rows(database, "orders"), 60, interval_s=0.2,
                   what="the copy to follow an update and an insert")
        assert [(r[1], r[2]) for r in _rows(database, "orders_copy")] == [
            ("apple", 1), ("pear", 20), ("plum", 3), ("fig", 4)]

        def committed_offset() -> Optional[dict[str, Any]]:
            status, body = rest(worker.url, "GET", "/connectors/pg-source/offsets")
            found = body["offsets"] if status == 200 else []
            return next((o for o in found if o["offset"].get("incrementing") == 4), None)

        offset = wait_until(committed_offset, 30, what="the source offset to be committed")
        assert offset["partition"] == {"table": "orders"}
        assert set(offset["offset"]) == {"incrementing", "timestamp", "timestamp_nanos"}
        status, body = rest(worker.url, "GET", "/connectors/pg-sink/status")
        assert status == 200 and [t["state"] for t in body["tasks"]] == ["RUNNING"]
    finally:
        worker.stop()

    values = _read_values(dev_node.bootstrap, "pg-orders", 5)
    assert [(v["payload"]["item"], v["payload"]["qty"]) for v in values] == [
        ("apple", 1), ("pear", 2), ("plum", 3), ("pear", 20), ("fig", 4)], "the update travels as its own record"
    fields = {f["field"]: f for f in values[0]["schema"]["fields"]}
    assert values[0]["schema"]["name"] == "orders"
    assert fields["id"]["type"] == "int32" and fields["item"] == {"type": "string", "optional": False, "field": "item"}
    assert fields["updated_at"]["name"] == "org.apache.kafka.connect.data.Timestamp"
