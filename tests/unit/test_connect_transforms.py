"""SMTs, predicates and the transformation chain, checked against Kafka Connect's behaviour and config keys."""

from __future__ import annotations

import ctypes
import math
from typing import Any, Mapping, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caudal.connect.api import ConnectError, ConnectRecord, Field, Schema, SinkRecord, SourceRecord, Type
from caudal.connect.converters import DataError
from caudal.connect.predicates import HasHeaderKey, RecordIsTombstone, TopicNameMatches, predicate_for
from caudal.connect.transforms import (
    TIMESTAMP_SCHEMA,
    CastKey,
    CastValue,
    Filter,
    InsertFieldKey,
    InsertFieldValue,
    MaskFieldValue,
    RegexRouter,
    ReplaceFieldValue,
    TimestampRouter,
    Transformation,
    TransformationChain,
    float32,
    transform_for,
)

TS = 1_700_000_000_123  # 2023-11-14T22:13:20.123Z

ORDER = Schema(
    Type.STRUCT,
    name="com.example.Order",
    fields=(
        Field("id", Schema(Type.INT64)),
        Field("name", Schema(Type.STRING, optional=True)),
        Field("secret", Schema(Type.STRING)),
        Field("qty", Schema(Type.INT32)),
        Field("price", Schema(Type.FLOAT64)),
    ),
)
ORDER_VALUE = {"id": 7, "name": "pen", "secret": "s3cret", "qty": 3, "price": 1.5}
KEY_SCHEMA = Schema(Type.STRUCT, fields=(Field("id", Schema(Type.INT64)),))


def sink(value: Any = None, *, key: Any = None, topic: str = "orders", **kwargs: Any) -> SinkRecord:
    kwargs.setdefault("timestamp", TS)
    kwargs.setdefault("kafka_offset", 42)
    return SinkRecord(topic, 3, key, dict(ORDER_VALUE) if value is None else value, **kwargs)


def with_schema(**kwargs: Any) -> SinkRecord:
    return sink(value_schema=ORDER, key={"id": 7}, key_schema=KEY_SCHEMA, **kwargs)


def transform(class_name: str, props: Mapping[str, str]) -> Transformation:
    t = transform_for(class_name)
    t.configure(props)
    return t


def field_names(schema: Optional[Schema]) -> list[str]:
    assert schema is not None
    return [f.name for f in schema.fields]


# ---- InsertField ---------------------------------------------------------------------------

ALL_INSERTS = {
    "topic.field": "t!", "partition.field": "p", "offset.field": "o?", "timestamp.field": "ts",
    "static.field": "s", "static.value": "v",
}


def test_insert_field_schemaless() -> None:
    out = transform("org.apache.kafka.connect.transforms.InsertField$Value", ALL_INSERTS).apply(sink({"a": 1}))
    assert out.value == {"a": 1, "t": "orders", "p": 3, "o": 42, "ts": TS, "s": "v"}
    assert out.value_schema is None and out.key is None


def test_insert_field_with_schema_extends_the_schema() -> None:
    out = transform("InsertField$Value", ALL_INSERTS).apply(with_schema())
    assert out.value_schema.name == "com.example.Order"
    assert out.value_schema.fields[:5] == ORDER.fields
    assert out.value_schema.fields[5:] == (
        Field("t", Schema(Type.STRING)),
        Field("p", Schema(Type.INT32, optional=True)),
        Field("o", Schema(Type.INT64, optional=True)),
        Field("ts", Schema(Type.INT64, optional=True, name="org.apache.kafka.connect.data.Timestamp", version=1)),
        Field("s", Schema(Type.STRING, optional=True)),
    )
    assert out.value == {**ORDER_VALUE, "t": "orders", "p": 3, "o": 42, "ts": TS, "s": "v"}
    assert out.key_schema == KEY_SCHEMA and TIMESTAMP_SCHEMA.version == 1


def test_insert_field_key() -> None:
    t = transform("InsertField$Key", {"topic.field": "topic"})
    assert isinstance(t, InsertFieldKey)
    out = t.apply(with_schema())
    assert out.key == {"id": 7, "topic": "orders"} and field_names(out.key_schema) == ["id", "topic"]
    assert out.value == ORDER_VALUE and out.value_schema == ORDER


def test_insert_field_skips_nulls_schemaless_and_requires_them_when_marked() -> None:
    t = transform("InsertField$Value", {"timestamp.field": "ts", "static.field": "s"})
    assert t.apply(sink({"a": 1}, timestamp=None)).value == {"a": 1}
    out = t.apply(with_schema(timestamp=None))
    assert out.value["ts"] is None and out.value["s"] is None
    with pytest.raises(DataError, match="null used for required field"):
        transform("InsertField$Value", {"timestamp.field": "ts!"}).apply(with_schema(timestamp=None))


def test_insert_field_offset_only_for_sink_records() -> None:
    t = transform("InsertField$Value", {"offset.field": "o"})
    with pytest.raises(DataError, match="Only SinkRecord supported"):
        t.apply(SourceRecord("orders", 0, None, {"a": 1}))


def test_insert_field_passes_tombstones_and_rejects_non_maps() -> None:
    t = transform("InsertField$Value", {"topic.field": "t"})
    tombstone = sink({}).new_record(value=None)
    assert t.apply(tombstone) is tombstone
    with pytest.raises(DataError, match="Only Map objects supported in absence of schema"):
        t.apply(sink("text"))
    with pytest.raises(DataError, match="Only Struct objects supported"):
        t.apply(sink("text", value_schema=Schema(Type.STRING)))
    with pytest.raises(DataError, match="already has a field"):
        transform("InsertField$Value", {"topic.field": "id"}).apply(with_schema())


# ---- ReplaceField --------------------------------------------------------------------------


def test_replace_field_schemaless() -> None:
    t = transform("ReplaceField$Value", {"exclude": "secret", "renames": "name:title, qty:quantity"})
    assert t.apply(sink()).value == {"id": 7, "title": "pen", "quantity": 3, "price": 1.5}
    t = transform("ReplaceField$Value", {"include": "id,name,secret", "exclude": "secret"})
    assert t.apply(sink()).value == {"id": 7, "name": "pen"}


def test_replace_field_with_schema() -> None:
    t = transform("org.apache.kafka.connect.transforms.ReplaceField$Value",
                  {"include": "id,name,price", "renames": "price:cost"})
    assert isinstance(t, ReplaceFieldValue)
    out = t.apply(with_schema())
    assert out.value_schema.fields == (ORDER.fields[0], ORDER.fields[1], Field("cost", Schema(Type.FLOAT64)))
    assert out.value_schema.name == ORDER.name
    assert out.value == {"id": 7, "name": "pen", "cost": 1.5}


def test_replace_field_deprecated_names_and_key() -> None:
    assert transform("ReplaceField$Value", {"blacklist": "secret,qty,price"}).apply(sink()).value == {"id": 7, "name": "pen"}
    assert transform("ReplaceField$Value", {"whitelist": "id"}).apply(sink()).value == {"id": 7}
    # The new name wins when both are given.
    assert transform("ReplaceField$Value", {"include": "id", "whitelist": "name"}).apply(sink()).value == {"id": 7}
    out = transform("ReplaceField$Key", {"renames": "id:key_id"}).apply(with_schema())
    assert out.key == {"key_id": 7} and field_names(out.key_schema) == ["key_id"] and out.value == ORDER_VALUE


field_names_st = st.text(alphabet="abc_.", min_size=1, max_size=3)


@given(st.dictionaries(field_names_st, st.integers(), max_size=6), st.sets(field_names_st, max_size=3),
       st.sets(field_names_st, max_size=3))
def test_replace_field_include_exclude_property(value: dict[str, int], included: set[str], excluded: set[str]) -> None:
    t = transform("ReplaceField$Value", {"include": ",".join(included), "exclude": ",".join(excluded)})
    expected = {k: v for k, v in value.items() if k not in excluded and (not included or k in included)}
    assert t.apply(sink(value)).value == expected


@pytest.mark.parametrize("renames", ["a", "a:b:c", "a:b,c"])
def test_replace_field_bad_renames(renames: str) -> None:
    with pytest.raises(ConnectError, match="Invalid rename mapping"):
        transform("ReplaceField$Value", {"renames": renames})


# ---- MaskField -----------------------------------------------------------------------------


def test_mask_field_schemaless_uses_type_appropriate_empty_values() -> None:
    value = {"i": 5, "f": 2.5, "b": True, "s": "x", "l": [1], "m": {"k": 1}, "raw": b"x", "n": None, "keep": 1}
    out = transform("MaskField$Value", {"fields": "i,f,b,s,l,m,raw,n,missing"}).apply(sink(value))
    assert out.value == {"i": 0, "f": 0.0, "b": False, "s": "", "l": [], "m": {}, "raw": b"", "n": None, "keep": 1}
    assert type(out.value["f"]) is float and type(out.value["i"]) is int


def test_mask_field_with_schema_and_replacement() -> None:
    out = transform("MaskField$Value", {"fields": "secret,qty"}).apply(with_schema())
    assert out.value == {**ORDER_VALUE, "secret": "", "qty": 0} and out.value_schema == ORDER
    out = transform("MaskField$Value", {"fields": "secret,qty,price", "replacement": "100"}).apply(with_schema())
    assert out.value == {**ORDER_VALUE, "secret": "100", "qty": 100, "price": 100.0}
    out = transform("MaskField$Key", {"fields": "id", "replacement": "-1"}).apply(with_schema())
    assert out.key == {"id": -1} and out.value == ORDER_VALUE


@pytest.mark.parametrize(
    ("value", "replacement", "message"),
    [({"f": 1}, "abc", "Unable to convert abc to INT64"), ({"f": True}, "x", "Cannot mask value of type BOOLEAN"),
     ({"f": [1]}, "x", "Cannot mask value of type ARRAY")],
)
def test_mask_field_replacement_errors(value: dict[str, Any], replacement: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        transform("MaskField$Value", {"fields": "f", "replacement": replacement}).apply(sink(value))


def test_mask_field_int_replacement_range_follows_the_schema() -> None:
    schema = Schema(Type.STRUCT, fields=(Field("f", Schema(Type.INT8)),))
    with pytest.raises(DataError, match="Unable to convert 1000 to INT8"):
        transform("MaskField$Value", {"fields": "f", "replacement": "1000"}).apply(sink({"f": 1}, value_schema=schema))


@pytest.mark.parametrize(("props", "message"), [({}, 'Missing required configuration "fields"'),
                                                ({"fields": ""}, "Empty list"),
                                                ({"fields": "a", "replacement": ""}, "String must be non-empty")])
def test_mask_field_config_errors(props: dict[str, str], message: str) -> None:
    with pytest.raises(ConnectError, match=message):
        transform("MaskField$Value", props)
    assert isinstance(transform_for("MaskField$Value"), MaskFieldValue)


# ---- Cast ----------------------------------------------------------------------------------


def test_cast_fields_schemaless() -> None:
    t = transform("org.apache.kafka.connect.transforms.Cast$Value",
                  {"spec": "a:int8, b:string, c:boolean, d:float32, e:int64, f:FLOAT64, g:string, missing:int8"})
    out = t.apply(sink({"a": 300, "b": 1.5, "c": "TRUE", "d": 0.1, "e": "12", "f": 3, "g": b"\x00\x01", "h": "x"}))
    assert out.value == {"a": 44, "b": "1.5", "c": True, "d": 0.1, "e": 12, "f": 3.0, "g": "AAE=", "h": "x"}


def test_cast_fields_with_schema() -> None:
    out = transform("Cast$Value", {"spec": "qty:string,name:int32,price:int16"}).apply(
        with_schema(value={**ORDER_VALUE, "name": None})
    )
    assert out.value == {**ORDER_VALUE, "qty": "3", "name": None, "price": 1}
    assert out.value_schema.name == ORDER.name
    assert [f.schema for f in out.value_schema.fields] == [
        Schema(Type.INT64), Schema(Type.INT32, optional=True), Schema(Type.STRING), Schema(Type.STRING),
        Schema(Type.INT16),
    ]


def test_cast_whole_value_and_key() -> None:
    assert transform("Cast$Value", {"spec": "int32"}).apply(sink("42")).value == 42
    record = sink(True, value_schema=Schema(Type.BOOLEAN, optional=True, doc="flag"))
    out = transform("Cast$Value", {"spec": "string"}).apply(record)
    assert out.value == "true" and out.value_schema == Schema(Type.STRING, optional=True, doc="flag")
    t = transform("Cast$Key", {"spec": "id:string"})
    assert isinstance(t, CastKey)
    out = t.apply(with_schema())
    assert out.key == {"id": "7"} and out.key_schema.fields == (Field("id", Schema(Type.STRING)),)
    assert out.value == ORDER_VALUE


@pytest.mark.parametrize(
    ("value", "target", "expected"),
    [
        (2**31, "int32", -(2**31)), (-129, "int8", 127), (1e20, "int32", 2**31 - 1), (-1e20, "int64", -(2**63)),
        (1e20, "int8", -1), (-1.9, "int16", -1), (float("nan"), "int32", 0), (True, "int8", 1),
        (0, "boolean", False), (0.5, "boolean", True), ("yes", "boolean", False), (1e20, "string", "1.0E20"),
        (1e300, "float32", math.inf), (False, "float64", 0.0), ("1.5", "float32", 1.5),
    ],
)
def test_cast_follows_java(value: Any, target: str, expected: Any) -> None:
    assert transform("Cast$Value", {"spec": target}).apply(sink(value)).value == expected


@given(st.integers(-(2**70), 2**70))
def test_cast_narrows_like_c(value: int) -> None:
    for target, ctype in (("int8", ctypes.c_int8), ("int16", ctypes.c_int16), ("int32", ctypes.c_int32),
                          ("int64", ctypes.c_int64)):
        assert transform("Cast$Value", {"spec": target}).apply(sink(value)).value == ctype(value).value


@given(st.floats(allow_nan=False, width=32))
def test_float32_keeps_float32_values(value: float) -> None:
    assert ctypes.c_float(float32(value)).value == value


@pytest.mark.parametrize(
    ("value", "target", "message"),
    [("abc", "int32", "Unable to convert abc"), ("1_0", "int64", "Unable to convert"), ("300", "int8", "to INT8"),
     (b"x", "int32", "Unexpected type in Cast"), ([1], "string", "does not support casting from ARRAY"),
     ({"a": 1}, "int8", "does not support casting from MAP")],
)
def test_cast_data_errors(value: Any, target: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        transform("Cast$Value", {"spec": target}).apply(sink(value))


def test_cast_rejects_struct_fields_with_schema() -> None:
    schema = Schema(Type.STRUCT, fields=(Field("inner", KEY_SCHEMA),))
    with pytest.raises(DataError, match="does not support casting from STRUCT"):
        transform("Cast$Value", {"spec": "inner:string"}).apply(sink({"inner": None}, value_schema=schema))


@pytest.mark.parametrize(
    ("spec", "message"),
    [("a:date", "Invalid type found in casting spec: date"), ("a:bytes", "does not support casting to BYTES"),
     ("int8,a:int8", "may only specify a single cast"), ("a:b:int8", "Invalid cast mapping"),
     ("", "Empty list"), ("array", "does not support casting to ARRAY")],
)
def test_cast_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConnectError, match=message):
        transform("Cast$Value", {"spec": spec})
    assert isinstance(transform_for("Cast$Value"), CastValue)


# ---- routers -------------------------------------------------------------------------------


def test_timestamp_router() -> None:
    t = transform("org.apache.kafka.connect.transforms.TimestampRouter", {})
    assert isinstance(t, TimestampRouter)
    assert t.apply(sink()).topic == "orders-20231114"
    t = transform("TimestampRouter", {"topic.format": "${timestamp}.${topic}",
                                      "timestamp.format": "yyyy-MM-dd'T'HH:mm:ss.SSS'Z' ''yy"})
    out = t.apply(sink())
    assert out.topic == "2023-11-14T22:13:20.123Z '23.orders" and out.value == ORDER_VALUE
    assert transform("TimestampRouter", {}).apply(sink(timestamp=0)).topic == "orders-19700101"
    assert transform("TimestampRouter", {}).apply(sink(timestamp=-1)).topic == "orders-19691231"


def test_timestamp_router_errors() -> None:
    with pytest.raises(DataError, match="Timestamp missing"):
        transform("TimestampRouter", {}).apply(sink(timestamp=None))
    with pytest.raises(ConnectError, match="Unsupported pattern 'EEE'"):
        transform("TimestampRouter", {"timestamp.format": "EEE yyyy"})
    with pytest.raises(ConnectError, match="Unterminated quote"):
        transform("TimestampRouter", {"timestamp.format": "yyyy'x"})


@pytest.mark.parametrize(
    ("regex", "replacement", "topic", "expected"),
    [
        ("(.*)-raw", "$1-clean", "orders-raw", "orders-clean"),
        ("(.*)-raw", "$1-clean", "orders-raw-2", "orders-raw-2"),  # the whole name must match
        ("(.*)-raw", "$1-clean", "x", "x"),
        ("(?<base>[a-z]+)\\.(\\d+)", "${base}_$2", "orders.7", "orders_7"),
        ("(a)(b)", "$12", "ab", "a2"),  # only 2 groups: group 1, then a literal 2
        ("(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)", "$12", "abcdefghijkl", "l"),
        ("(.*)", "\\$1 \\\\ $0", "t", "$1 \\ t"),
        ("orders", "archive", "orders", "archive"),
    ],
)
def test_regex_router(regex: str, replacement: str, topic: str, expected: str) -> None:
    t = transform("RegexRouter", {"regex": regex, "replacement": replacement})
    assert isinstance(t, RegexRouter)
    assert t.apply(sink(topic=topic)).topic == expected


@pytest.mark.parametrize(
    ("props", "message"),
    [({"regex": "(a"}, "Invalid regex"), ({"regex": "", "replacement": "x"}, "String must be non-empty"),
     ({"regex": "(a)", "replacement": "$2"}, "No group 2"), ({"regex": "a", "replacement": "$"}, "Illegal group"),
     ({"regex": "a", "replacement": "${x}"}, "No group with name"), ({"regex": "a", "replacement": "\\"}, "escaped"),
     ({"replacement": "x"}, 'Missing required configuration "regex"')],
)
def test_regex_router_config_errors(props: dict[str, str], message: str) -> None:
    with pytest.raises(ConnectError, match=message):
        transform("RegexRouter", props)


# ---- predicates ----------------------------------------------------------------------------


def predicate(class_name: str, props: Mapping[str, str]) -> Any:
    p = predicate_for(class_name)
    p.configure(props)
    return p


def test_predicates() -> None:
    matches = predicate("org.apache.kafka.connect.transforms.predicates.TopicNameMatches", {"pattern": "ord.*"})
    assert isinstance(matches, TopicNameMatches)
    assert matches.test(sink(topic="orders")) and not matches.test(sink(topic="my-orders"))
    assert predicate("TopicNameMatches", {"pattern": "(?<p>a)b"}).test(sink(topic="ab"))
    has = predicate("HasHeaderKey", {"name": "trace"})
    assert isinstance(has, HasHeaderKey)
    assert has.test(sink(headers=(("x", 1), ("trace", None)))) and not has.test(sink(headers=(("x", 1),)))
    tombstone = predicate("org.apache.kafka.connect.transforms.predicates.RecordIsTombstone", {})
    assert isinstance(tombstone, RecordIsTombstone)
    assert tombstone.test(sink().new_record(value=None)) and not tombstone.test(sink())


@pytest.mark.parametrize(
    ("class_name", "props", "message"),
    [("TopicNameMatches", {}, 'Missing required configuration "pattern"'),
     ("TopicNameMatches", {"pattern": "[a"}, "Invalid regex"), ("HasHeaderKey", {"name": ""}, "non-empty")],
)
def test_predicate_config_errors(class_name: str, props: dict[str, str], message: str) -> None:
    with pytest.raises(ConnectError, match=message):
        predicate(class_name, props)


def test_unknown_predicate() -> None:
    with pytest.raises(ConnectError, match="org.apache.kafka.connect.transforms.predicates.TopicNameMatches"):
        predicate_for("org.apache.kafka.connect.transforms.predicates.Nope")


# ---- the chain -----------------------------------------------------------------------------


def test_empty_chain_is_identity() -> None:
    record = sink()
    assert TransformationChain.from_config({"name": "c"}).apply(record) is record
    assert TransformationChain.from_config({"transforms": ""}).stages == []


def test_chain_runs_in_order() -> None:
    base = {"transforms.insert.type": "InsertField$Value", "transforms.insert.static.field": "added",
            "transforms.insert.static.value": "x",
            "transforms.drop.type": "ReplaceField$Value", "transforms.drop.exclude": "added,secret"}
    assert "added" not in TransformationChain.from_config({**base, "transforms": "insert,drop"}).apply(sink()).value
    assert TransformationChain.from_config({**base, "transforms": "drop, insert"}).apply(sink()).value["added"] == "x"


FILTER_TOMBSTONES = {
    "transforms": "dropTombstones,route",
    "transforms.dropTombstones.type": "org.apache.kafka.connect.transforms.Filter",
    "transforms.dropTombstones.predicate": "isTombstone",
    "transforms.route.type": "RegexRouter", "transforms.route.regex": "(.*)",
    "transforms.route.replacement": "$1-routed", "transforms.route.predicate": "isOrders",
    "predicates": "isTombstone,isOrders",
    "predicates.isTombstone.type": "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
    "predicates.isOrders.type": "TopicNameMatches", "predicates.isOrders.pattern": "orders",
}


def test_filter_with_predicate_drops_only_matching_records() -> None:
    chain = TransformationChain.from_config(FILTER_TOMBSTONES)
    assert chain.apply(sink().new_record(value=None)) is None
    assert chain.apply(sink()).topic == "orders-routed"
    assert chain.apply(sink(topic="other")).topic == "other"
    assert isinstance(chain.stages[0].transformation, Filter)
    assert transform("Filter", {}).apply(sink()) is None


def test_negate() -> None:
    chain = TransformationChain.from_config({**FILTER_TOMBSTONES, "transforms.dropTombstones.negate": "true",
                                             "transforms.route.negate": "TRUE"})
    assert chain.apply(sink()) is None  # keeps only tombstones now
    tombstone = chain.apply(sink(topic="other").new_record(value=None))
    assert tombstone is not None and tombstone.topic == "other-routed"
    assert TransformationChain.from_config({**FILTER_TOMBSTONES, "transforms.route.negate": "false"}).apply(
        sink()).topic == "orders-routed"


class Upper:
    """A user transformation loaded by Python path, recording its lifecycle."""

    closed: list[str] = []

    def configure(self, props: Mapping[str, str]) -> None:
        self.props = dict(props)

    def apply(self, record: ConnectRecord) -> ConnectRecord:
        return record.new_record(topic=record.topic.upper() + self.props["suffix"])

    def close(self) -> None:
        Upper.closed.append(self.props["suffix"])


def test_user_transformations_and_close() -> None:
    Upper.closed.clear()
    chain = TransformationChain.from_config({
        "transforms": "a,b", "transforms.a.type": f"{__name__}:Upper", "transforms.a.suffix": "!",
        "transforms.b.type": f"{__name__}.Upper", "transforms.b.suffix": "?",
    })
    assert chain.apply(sink()).topic == "ORDERS!?"
    assert chain.stages[0].transformation.props == {"type": f"{__name__}:Upper", "suffix": "!"}
    chain.close()
    assert Upper.closed == ["!", "?"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"transforms": "a"}, 'Missing required configuration "transforms.a.type"'),
        ({"transforms": "a", "transforms.a.type": "Flatten$Value"}, "Unknown transformation class 'Flatten\\$Value'"),
        ({"transforms": "a", "transforms.a.type": "InsertField"}, "InsertField\\$Value"),
        ({"transforms": "a,a", "transforms.a.type": "Filter"}, "Duplicate alias"),
        ({"transforms": "a", "transforms.a.type": "Filter", "transforms.a.predicate": "p"}, "predicate 'p'"),
        ({"transforms": "a", "transforms.a.type": "Filter", "transforms.a.predicate": "p", "predicates": "p",
          "predicates.p.type": "RecordIsTombstone", "transforms.a.negate": "yes"}, "transforms.a.negate"),
        ({"transforms": "a", "transforms.a.type": "Filter", "predicates": "p"}, '"predicates.p.type"'),
        ({"predicates": "p", "predicates.p.type": "TopicNameMatches"}, "predicate 'p'.*pattern"),
        ({"predicates": "p", "predicates.p.type": "Nope"}, "Unknown predicate class"),
        ({"transforms": "r", "transforms.r.type": "RegexRouter", "transforms.r.regex": "x"},
         "transform 'r'.*RegexRouter.*replacement"),
    ],
)
def test_chain_config_errors(config: dict[str, str], message: str) -> None:
    with pytest.raises(ConnectError, match=message):
        TransformationChain.from_config(config)


def test_transform_for_names() -> None:
    assert isinstance(transform_for("org.apache.kafka.connect.transforms.InsertField$Value"), InsertFieldValue)
    assert isinstance(transform_for("InsertField$Key"), InsertFieldKey)
    assert isinstance(transform_for("caudal.connect.transforms:Filter"), Filter)
    with pytest.raises(ConnectError, match="org.apache.kafka.connect.transforms.Cast\\$Key"):
        transform_for("no.such.Module")
