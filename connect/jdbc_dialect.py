"""What the JDBC source and sink share: connection settings, engines, and Connect <-> SQL types and values.

Users come with Confluent JDBC connector configs, so ``connection.url`` takes
the JDBC URLs they already have (``jdbc:postgresql://host:5432/db?user=u``,
``jdbc:sqlite:/path/db.sqlite``) as well as SQLAlchemy URLs, and
``connection.user``/``connection.password`` override what the URL says. All
SQL goes through SQLAlchemy Core so the same code runs on PostgreSQL (through
psycopg 3) and SQLite.

Types follow Confluent's mapping: integer columns by width, floating and
decimal columns as FLOAT64, text as STRING, and date/time columns as Connect's
logical ``Timestamp``/``Date``/``Time`` (epoch milliseconds, epoch days,
milliseconds of the day), which is what Kafka converters and sinks expect. Like
Confluent's default ``db.timezone=UTC``, a timestamp without a time zone is
taken as UTC, and PostgreSQL sessions run in UTC so that comparisons between
such columns and the bound offsets agree.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from decimal import Decimal
from typing import Any, Mapping, Optional
from urllib.parse import parse_qsl, unquote, urlsplit

import sqlalchemy as sa
from caudal.connect.api import ConnectError, Schema, Type
from caudal.connect.config_def import (
    NO_DEFAULT,
    ConfigDef,
    ConfigType,
    Importance,
    NonEmptyString,
    Password,
)

CONNECTION_URL_CONFIG = "connection.url"
CONNECTION_USER_CONFIG = "connection.user"
CONNECTION_PASSWORD_CONFIG = "connection.password"

CONNECTION_CONFIG_DEF = (
    ConfigDef()
    .define(CONNECTION_URL_CONFIG, ConfigType.STRING, NO_DEFAULT, NonEmptyString(), Importance.HIGH,
            "JDBC connection URL (jdbc:postgresql://host:port/db, jdbc:sqlite:/path) or SQLAlchemy URL "
            "(postgresql+psycopg://user@host:port/db, sqlite:////path)", "Database")
    .define(CONNECTION_USER_CONFIG, ConfigType.STRING, None, importance=Importance.HIGH,
            documentation="JDBC connection user.", group="Database")
    .define(CONNECTION_PASSWORD_CONFIG, ConfigType.PASSWORD, None, importance=Importance.HIGH,
            documentation="JDBC connection password.", group="Database")
)
"""The connection keys both connectors define."""

TIMESTAMP_SCHEMA = Schema(Type.INT64, name="org.apache.kafka.connect.data.Timestamp", version=1)
DATE_SCHEMA = Schema(Type.INT32, name="org.apache.kafka.connect.data.Date", version=1)
TIME_SCHEMA = Schema(Type.INT32, name="org.apache.kafka.connect.data.Time", version=1)

EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DATE = EPOCH.date()
_MILLISECOND = dt.timedelta(milliseconds=1)


# ---- connections -------------------------------------------------------------------------


def _jdbc_postgres_url(rest: str) -> sa.URL:
    """``postgresql://host:port/db?user=u&password=p&k=v`` (the part after ``jdbc:``); other
    parameters go to libpq as they are (``sslmode`` and the like)."""
    parts = urlsplit(rest)
    query = dict(parse_qsl(parts.query))
    return sa.URL.create(
        "postgresql+psycopg",
        username=query.pop("user", None) or (unquote(parts.username) if parts.username else None),
        password=query.pop("password", None) or (unquote(parts.password) if parts.password else None),
        host=parts.hostname or "localhost", port=parts.port,
        database=parts.path.lstrip("/") or None, query=query,
    )


def engine_url(url: str, user: Optional[str] = None, password: Optional[str] = None) -> sa.URL:
    """The SQLAlchemy URL for a ``connection.url``; ``user``/``password`` replace the URL's own."""
    url = url.strip()
    if url.startswith("jdbc:postgresql:"):
        parsed = _jdbc_postgres_url(url[len("jdbc:"):])
    elif url.startswith("jdbc:sqlite:"):
        path = url[len("jdbc:sqlite:"):]
        parsed = sa.URL.create("sqlite", database=None if path in ("", ":memory:") else path)
    elif url.startswith("jdbc:"):
        raise ConnectError(f"Unsupported JDBC URL {url}: caudal's JDBC connectors speak PostgreSQL and SQLite")
    else:
        try:
            parsed = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise ConnectError(f"Invalid connection.url {url}: {exc}") from exc
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")  # the driver caudal installs
    if user:
        parsed = parsed.set(username=user)
    if password:
        parsed = parsed.set(password=password)
    return parsed


def create_engine(config: Mapping[str, Any]) -> sa.Engine:
    """An engine for the parsed connection keys of ``config``; nothing connects until it is used."""
    password: Optional[Password] = config[CONNECTION_PASSWORD_CONFIG]
    url = engine_url(config[CONNECTION_URL_CONFIG], config[CONNECTION_USER_CONFIG],
                     password.value if password is not None else None)
    connect_args = {"options": "-c timezone=UTC"} if url.get_backend_name() == "postgresql" else {}
    try:
        engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise ConnectError(f"Cannot use connection.url {config[CONNECTION_URL_CONFIG]}: {exc}") from exc
    if url.get_backend_name() == "sqlite":
        _begin_explicitly(engine)
    return engine


def _begin_explicitly(engine: sa.Engine) -> None:
    """SQLAlchemy's recipe for transactional DDL on SQLite: Python's sqlite3 runs CREATE and ALTER
    TABLE outside any transaction, so a sink flush that fails would keep the tables it made; with an
    explicit BEGIN they roll back with the rows."""

    @sa.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def split_table_name(name: str) -> tuple[Optional[str], str]:
    """``schema.table`` or ``table`` as (schema, table); a leading catalog (``db.schema.table``) is
    dropped, as the connection already chose the database."""
    parts = name.split(".")
    return (parts[-2] if len(parts) > 1 else None), parts[-1]


def reflect_table(connection: sa.Connection, name: str) -> Optional[sa.Table]:
    """The table called ``name`` (``schema.table`` allowed) as the database describes it, None if absent."""
    schema, table = split_table_name(name)
    try:
        return sa.Table(table, sa.MetaData(), schema=schema, autoload_with=connection)
    except sa.exc.NoSuchTableError:
        return None


# ---- timestamps ----------------------------------------------------------------------------


def utc_naive(value: dt.datetime) -> dt.datetime:
    """A datetime as naive UTC: aware ones converted, naive ones taken as UTC already."""
    return value if value.tzinfo is None else value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def comparable(expression: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """A timestamp expression the database compares by instant.

    SQLite stores timestamps as text and compares the text, so
    ``2024-01-01 10:00:00`` (what ``CURRENT_TIMESTAMP`` writes) sorts before
    ``2024-01-01 10:00:00.000000`` (how a bound datetime is written) although
    they are the same instant; ``julianday`` compares them by time instead
    (to the millisecond, SQLite's precision).
    """
    return sa.func.julianday(expression) if dialect == "sqlite" else expression


# ---- SQL -> Connect ------------------------------------------------------------------------

_BY_PYTHON_TYPE: Mapping[type, Schema] = {
    bool: Schema(Type.BOOLEAN), int: Schema(Type.INT64), float: Schema(Type.FLOAT64), Decimal: Schema(Type.FLOAT64),
    str: Schema(Type.STRING), bytes: Schema(Type.BYTES),
    dt.datetime: TIMESTAMP_SCHEMA, dt.date: DATE_SCHEMA, dt.time: TIME_SCHEMA,
}
"""Connect schemas of the Python values drivers return; anything else travels as its text."""
_STRING = Schema(Type.STRING)


def column_schema(sql_type: sa.types.TypeEngine[Any], optional: bool, dialect: str) -> Schema:
    """The Connect schema of a column: integers by declared width (SQLite's INTEGER holds 64 bits),
    everything else by the Python type the driver returns for it."""
    if isinstance(sql_type, sa.SmallInteger):
        schema = Schema(Type.INT16)
    elif isinstance(sql_type, sa.BigInteger) or (isinstance(sql_type, sa.Integer) and dialect == "sqlite"):
        schema = Schema(Type.INT64)
    elif isinstance(sql_type, sa.Integer):
        schema = Schema(Type.INT32)
    else:
        try:
            schema = _BY_PYTHON_TYPE.get(sql_type.python_type, _STRING)
        except NotImplementedError:  # a type SQLAlchemy does not know (NullType, some dialect types)
            schema = _STRING
    return replace(schema, optional=optional)


def schema_of_value(value: Any) -> Schema:
    """The optional Connect schema of a value of a column whose type is unknown (a query's column)."""
    return replace(_BY_PYTHON_TYPE.get(type(value), _STRING), optional=True)


def to_connect_value(schema: Schema, value: Any) -> Any:
    """A value from the database as the Connect value ``schema`` describes."""
    if value is None:
        return None
    if schema.name == TIMESTAMP_SCHEMA.name:
        return (utc_naive(value) - EPOCH) // _MILLISECOND
    if schema.name == DATE_SCHEMA.name:
        return (value - _EPOCH_DATE).days
    if schema.name == TIME_SCHEMA.name:
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 1000 + value.microsecond // 1000
    if schema.type in (Type.INT8, Type.INT16, Type.INT32, Type.INT64):
        return int(value)
    if schema.type is Type.FLOAT64:
        return float(value)
    if schema.type is Type.BOOLEAN:
        return bool(value)
    if schema.type is Type.BYTES:
        return bytes(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)


# ---- Connect -> SQL ------------------------------------------------------------------------

_SQL_TYPES: Mapping[Type, type[sa.types.TypeEngine[Any]]] = {
    Type.INT8: sa.SmallInteger, Type.INT16: sa.SmallInteger, Type.INT32: sa.Integer, Type.INT64: sa.BigInteger,
    Type.FLOAT32: sa.Float, Type.FLOAT64: sa.Double, Type.BOOLEAN: sa.Boolean, Type.STRING: sa.Text,
    Type.BYTES: sa.LargeBinary,
}
_SQL_LOGICAL_TYPES: Mapping[Optional[str], type[sa.types.TypeEngine[Any]]] = {
    TIMESTAMP_SCHEMA.name: sa.DateTime, DATE_SCHEMA.name: sa.Date, TIME_SCHEMA.name: sa.Time,
}


def sql_type(schema: Schema, column: str) -> sa.types.TypeEngine[Any]:
    """The column type ``auto.create``/``auto.evolve`` give a field; structs, arrays and maps have none."""
    found = _SQL_LOGICAL_TYPES.get(schema.name) or _SQL_TYPES.get(schema.type)
    if found is None:
        raise ConnectError(f"Field {column} has schema type {schema.type.name}, which has no SQL column type")
    return found()


def to_sql_value(schema: Optional[Schema], value: Any, column: str) -> Any:
    """A Connect value as the driver takes it: logical dates and times become Python ones.

    Without a schema the value must be a primitive; structs, arrays and maps
    do not fit in a column.
    """
    if value is None:
        return None
    if schema is None:
        if isinstance(value, (bool, int, float, str, bytes)):
            return value
        raise ConnectError(f"Field {column} holds a {type(value).__name__}, which does not fit in a column")
    if schema.name == TIMESTAMP_SCHEMA.name:
        return EPOCH + value * _MILLISECOND
    if schema.name == DATE_SCHEMA.name:
        return _EPOCH_DATE + dt.timedelta(days=value)
    if schema.name == TIME_SCHEMA.name:
        return (EPOCH + value * _MILLISECOND).time()
    if schema.type in (Type.STRUCT, Type.ARRAY, Type.MAP):
        raise ConnectError(f"Field {column} has schema type {schema.type.name}, which does not fit in a column")
    return value
