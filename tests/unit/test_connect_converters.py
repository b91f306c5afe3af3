"""Converters: Kafka's wire formats (JsonConverter's envelope above all), round trips and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caudal.connect.api import ConnectError, Field, Schema, Type
from caudal.connect.converters import (
    ENVELOPE_ERROR,
    OPTIONAL_BYTES_SCHEMA,
    OPTIONAL_STRING_SCHEMA,
    ByteArrayConverter,
    DataError,
    JsonConverter,
    StringConverter,
    converter_for,
    infer_schema,
)


def json_converter(schemas_enable: bool = True, is_key: bool = False) -> JsonConverter:
    converter = JsonConverter()
    converter.configure({"schemas.enable": str(schemas_enable).lower()}, is_key)
    return converter


def struct(*fields: tuple[str, Schema], **kwargs: Any) -> Schema:
    return Schema(Type.STRUCT, fields=tuple(Field(name, schema) for name, schema in fields), **kwargs)


INT64 = Schema(Type.INT64)
OPTIONAL_STRING = Schema(Type.STRING, optional=True)

# ---- JsonConverter: Kafka's bytes ----------------------------------------------------------


def test_envelope_matches_what_kafka_prints() -> None:
    data = json_converter().from_connect("t", struct(("id", INT64)), {"id": 1})
    kafka = '{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false},"payload":{"id":1}}'
    assert data is not None and json.loads(data) == json.loads(kafka)
    assert data == kafka.encode()  # compact, and keys in Kafka's order


KAFKA_RECORD = {
    "schema": {
        "type": "struct",
        "fields": [
            {"type": "int32", "optional": False, "field": "id"},
            {"type": "string", "optional": True, "field": "name"},
            {"type": "array", "items": {"type": "int64", "optional": False}, "optional": True, "field": "tags"},
            {"type": "map", "keys": {"type": "string", "optional": False},
             "values": {"type": "double", "optional": False}, "optional": False, "field": "scores"},
            {"type": "map", "keys": {"type": "int32", "optional": False},
             "values": {"type": "string", "optional": False}, "optional": False, "field": "by_id"},
            {"type": "bytes", "optional": False, "field": "blob"},
            {"type": "float", "optional": False, "field": "ratio"},
            {"type": "boolean", "optional": False, "field": "ok"},
        ],
        "optional": False,
        "name": "com.example.User",
        "version": 2,
        "doc": "a user",
    },
    "payload": {"id": 7, "name": None, "tags": [1, 2], "scores": {"a": 1.5}, "by_id": [[1, "x"]],
                "blob": "AAEC", "ratio": 0.5, "ok": True},
}


def test_reads_kafka_envelope_and_writes_it_back_unchanged() -> None:
    converter = json_converter()
    schema, value = converter.to_connect("t", json.dumps(KAFKA_RECORD).encode())
    assert schema is not None and schema.name == "com.example.User" and schema.version == 2 and schema.doc == "a user"
    assert [f.name for f in schema.fields] == ["id", "name", "tags", "scores", "by_id", "blob", "ratio", "ok"]
    assert schema.field("ratio").schema.type is Type.FLOAT32
    assert schema.field("by_id").schema.key_schema == Schema(Type.INT32)
    assert value == {"id": 7, "name": None, "tags": [1, 2], "scores": {"a": 1.5}, "by_id": {1: "x"},
                     "blob": b"\x00\x01\x02", "ratio": 0.5, "ok": True}
    assert json.loads(converter.from_connect("t", schema, value)) == KAFKA_RECORD


def test_inferred_schema_for_a_schemaless_value() -> None:
    value = {"id": 1, "name": "a", "score": 2.5, "ok": True, "raw": b"\xff", "tags": ["x"], "none": None,
             "empty": [], "counts": {1: 2}}
    data = json_converter().from_connect("t", None, value)
    document = json.loads(data)
    assert document["schema"] == {
        "type": "struct",
        "fields": [
            {"type": "int64", "optional": False, "field": "id"},
            {"type": "string", "optional": False, "field": "name"},
            {"type": "double", "optional": False, "field": "score"},
            {"type": "boolean", "optional": False, "field": "ok"},
            {"type": "bytes", "optional": False, "field": "raw"},
            {"type": "array", "items": {"type": "string", "optional": False}, "optional": False, "field": "tags"},
            {"type": "string", "optional": True, "field": "none"},
            {"type": "array", "items": {"type": "string", "optional": True}, "optional": False, "field": "empty"},
            {"type": "map", "keys": {"type": "int64", "optional": False},
             "values": {"type": "int64", "optional": False}, "optional": False, "field": "counts"},
        ],
        "optional": False,
    }
    assert document["payload"]["raw"] == "/w==" and document["payload"]["counts"] == [[1, 2]]
    assert json_converter().to_connect("t", data)[1] == value


def test_inference_merges_list_items_and_rejects_mixed_types() -> None:
    schema = infer_schema([{"a": None}, {"a": 1, "b": "x"}])
    assert schema.value_schema == struct(("a", Schema(Type.INT64, optional=True)), ("b", OPTIONAL_STRING))
    with pytest.raises(DataError, match="INT64 and STRING"):
        infer_schema([1, "x"])
    with pytest.raises(DataError, match="corresponding schema type"):
        json_converter().from_connect("t", None, {"a": object()})


def test_plain_json_without_schemas() -> None:
    converter = json_converter(schemas_enable=False)
    assert converter.from_connect("t", None, {"a": [1, 2.5, "é"]}) == '{"a":[1,2.5,"é"]}'.encode()
    assert converter.from_connect("t", None, b"\x01") == b'"AQ=="'
    assert converter.from_connect("t", None, {1: "a"}) == b'[[1,"a"]]'
    assert converter.to_connect("t", b'{"a": [1, null]}') == (None, {"a": [1, None]})
    # A schema still shapes the JSON, it just is not sent.
    assert converter.from_connect("t", struct(("b", Schema(Type.BYTES))), {"b": b"\x00"}) == b'{"b":"AA=="}'


def test_schemas_enable_defaults_to_true() -> None:
    converter = JsonConverter()
    converter.configure({}, False)
    assert json.loads(converter.from_connect("t", None, 5)) == {"schema": {"type": "int64", "optional": False}, "payload": 5}


def test_tombstones() -> None:
    for converter in (json_converter(), json_converter(schemas_enable=False)):
        assert converter.from_connect("t", None, None) is None
        assert converter.to_connect("t", None) == (None, None)
    optional = Schema(Type.STRING, optional=True)
    data = json_converter().from_connect("t", optional, None)
    assert json.loads(data) == {"schema": {"type": "string", "optional": True}, "payload": None}
    assert json_converter().to_connect("t", data) == (optional, None)
    with pytest.raises(DataError, match="null value for field that is required"):
        json_converter().from_connect("t", Schema(Type.STRING), None)


# ---- JsonConverter: errors -----------------------------------------------------------------


@pytest.mark.parametrize("data", [b'{"a": 1}', b'{"schema": null}', b'{"schema": null, "payload": 1, "x": 2}', b"[1]", b"3"])
def test_schemas_enable_requires_the_envelope(data: bytes) -> None:
    with pytest.raises(DataError) as info:
        json_converter().to_connect("t", data)
    assert str(info.value) == ENVELOPE_ERROR
    assert str(info.value).startswith(
        'JsonConverter with schemas.enable requires "schema" and "payload" fields and may not contain additional fields.'
    )


def test_envelope_with_null_schema_is_schemaless() -> None:
    assert json_converter().to_connect("t", b'{"schema": null, "payload": {"a": 1}}') == (None, {"a": 1})


@pytest.mark.parametrize("data", [b"{", b"\xff", b"NaN", b"", b'{"schema": null, "payload": Infinity}'])
def test_invalid_json(data: bytes) -> None:
    with pytest.raises(DataError, match="serialization error"):
        json_converter().to_connect("t", data)


def envelope(schema: dict[str, Any], payload: Any) -> bytes:
    return json.dumps({"schema": schema, "payload": payload}).encode()


@pytest.mark.parametrize(
    ("schema", "payload", "message"),
    [
        ({"type": "int8", "optional": False}, 128, "out of range for INT8"),
        ({"type": "int16", "optional": False}, -32769, "out of range for INT16"),
        ({"type": "int32", "optional": False}, 2**31, "out of range for INT32"),
        ({"type": "int64", "optional": False}, 2**63, "out of range for INT64"),
        ({"type": "int32", "optional": False}, "1", "Invalid type for INT32"),
        ({"type": "int32", "optional": False}, 1.5, "Invalid type for INT32"),
        ({"type": "int32", "optional": False}, True, "Invalid type for INT32"),
        ({"type": "boolean", "optional": False}, 1, "Invalid type for BOOLEAN"),
        ({"type": "string", "optional": False}, None, "Invalid null value for required STRING field"),
        ({"type": "bytes", "optional": False}, "not base64!", "Invalid base64"),
        ({"type": "struct", "fields": [], "optional": False}, [1], "Structs should be encoded as JSON objects"),
        ({"type": "array", "items": {"type": "int8"}, "optional": False}, {}, "Arrays should be encoded"),
        ({"type": "map", "keys": {"type": "string"}, "values": {"type": "int8"}}, [], "Maps with string fields"),
        ({"type": "map", "keys": {"type": "int8"}, "values": {"type": "int8"}}, {}, "Maps with non-string fields"),
        ({"type": "map", "keys": {"type": "int8"}, "values": {"type": "int8"}}, [[1]], "invalid map entry"),
        ({"type": "nope"}, 1, "Unknown schema type: nope"),
        ({"optional": True}, 1, "Schema must contain 'type' field"),
        ({"type": "struct", "fields": {}}, {}, '"fields" argument is not an array'),
        ({"type": "struct", "fields": [{"type": "int8"}]}, {}, "field name not specified properly"),
        ({"type": "array"}, [], "Array schema did not specify the element type"),
        ({"type": "map", "values": {"type": "int8"}}, {}, "Map schema did not specify the key type"),
        ({"type": "map", "keys": {"type": "int8"}}, {}, "Map schema did not specify the value type"),
    ],
)
def test_payload_that_does_not_fit_its_schema(schema: dict[str, Any], payload: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        json_converter().to_connect("t", envelope(schema, payload))


@pytest.mark.parametrize(
    ("schema", "value", "message"),
    [
        (Schema(Type.INT32), "1", "Invalid type for INT32"),
        (Schema(Type.INT8), 200, "out of range for INT8"),
        (Schema(Type.STRING), b"x", "Invalid type for STRING"),
        (Schema(Type.BYTES), "x", "Invalid type for BYTES"),
        (Schema(Type.FLOAT64), float("nan"), "cannot represent"),
        (Schema(Type.ARRAY, value_schema=INT64), 1, "Invalid type for ARRAY"),
        (struct(("id", INT64)), {"id": 1, "extra": 2}, "not in its schema"),
        (struct(("id", INT64)), {}, "null value for field that is required"),
        (struct(("id", INT64)), [1], "Invalid type for STRUCT"),
    ],
)
def test_value_that_does_not_fit_its_schema(schema: Schema, value: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        json_converter().from_connect("t", schema, value)


def test_bad_schemas_enable() -> None:
    with pytest.raises(ConnectError, match="schemas.enable"):
        JsonConverter().configure({"schemas.enable": "maybe"}, False)


# ---- JsonConverter: round trips ------------------------------------------------------------

PRIMITIVE_VALUES = {
    Type.INT8: st.integers(-(2**7), 2**7 - 1),
    Type.INT16: st.integers(-(2**15), 2**15 - 1),
    Type.INT32: st.integers(-(2**31), 2**31 - 1),
    Type.INT64: st.integers(-(2**63), 2**63 - 1),
    Type.FLOAT32: st.floats(allow_nan=False, allow_infinity=False, width=32),
    Type.FLOAT64: st.floats(allow_nan=False, allow_infinity=False),
    Type.BOOLEAN: st.booleans(),
    Type.STRING: st.text(max_size=8),
    Type.BYTES: st.binary(max_size=8),
}
names = st.text(min_size=1, max_size=6)
primitive_schemas = st.builds(Schema, st.sampled_from(list(PRIMITIVE_VALUES)), optional=st.booleans())
key_schemas = st.builds(Schema, st.sampled_from([Type.STRING, Type.INT32, Type.INT64]))


def composite_schemas(children: st.SearchStrategy[Schema], with_maps: bool) -> st.SearchStrategy[Schema]:
    options = [
        st.builds(lambda items, optional: Schema(Type.ARRAY, optional=optional, value_schema=items), children, st.booleans()),
        st.builds(
            lambda fields, optional, name: Schema(Type.STRUCT, optional=optional, name=name,
                                                  fields=tuple(Field(n, s) for n, s in fields)),
            st.lists(st.tuples(names, children), max_size=4, unique_by=lambda f: f[0]), st.booleans(),
            st.none() | st.just("com.example.Thing"),
        ),
    ]
    if with_maps:
        options.append(st.builds(lambda k, v: Schema(Type.MAP, key_schema=k, value_schema=v), key_schemas, children))
    return st.one_of(options)


def schemas(with_maps: bool = True) -> st.SearchStrategy[Schema]:
    return st.recursive(primitive_schemas, lambda children: composite_schemas(children, with_maps), max_leaves=8)


def values_for(schema: Schema) -> st.SearchStrategy[Any]:
    if schema.type in PRIMITIVE_VALUES:
        values = PRIMITIVE_VALUES[schema.type]
    elif schema.type is Type.ARRAY:
        values = st.lists(values_for(schema.value_schema), max_size=3)
    elif schema.type is Type.MAP:
        values = st.dictionaries(values_for(schema.key_schema), values_for(schema.value_schema), max_size=3)
    else:
        values = st.fixed_dictionaries({f.name: values_for(f.schema) for f in schema.fields})
    return st.none() | values if schema.optional else values


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_round_trip_with_schema(data: st.DataObject) -> None:
    schema = data.draw(schemas())
    value = data.draw(values_for(schema))
    converter = json_converter()
    assert converter.to_connect("t", converter.from_connect("t", schema, value)) == (schema, value)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_round_trip_with_inferred_schema(data: st.DataObject) -> None:
    value = data.draw(values_for(data.draw(schemas(with_maps=False))))
    converter = json_converter()
    encoded = converter.from_connect("t", None, value)
    schema, decoded = converter.to_connect("t", encoded)
    assert decoded == value
    assert value is None or schema == infer_schema(value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_round_trip_without_schemas(value: Any) -> None:
    converter = json_converter(schemas_enable=False)
    assert converter.to_connect("t", converter.from_connect("t", None, value)) == (None, value)


@given(json_values)
def test_schemaless_bytes_are_plain_json(value: Any) -> None:
    data = json_converter(schemas_enable=False).from_connect("t", None, value)
    assert data is None if value is None else json.loads(data) == value


# ---- StringConverter and ByteArrayConverter -----------------------------------------------


def string_converter(**config: str) -> StringConverter:
    converter = StringConverter()
    converter.configure(config, False)
    return converter


def test_string_converter_utf8_by_default() -> None:
    converter = string_converter()
    assert converter.from_connect("t", None, "héllo ☃") == "héllo ☃".encode()
    assert converter.to_connect("t", "héllo ☃".encode()) == (OPTIONAL_STRING_SCHEMA, "héllo ☃")
    assert converter.from_connect("t", None, None) is None
    assert converter.to_connect("t", None) == (OPTIONAL_STRING_SCHEMA, None)


def test_string_converter_encoding() -> None:
    converter = string_converter(**{"converter.encoding": "ISO-8859-1"})
    assert converter.from_connect("t", None, "é") == b"\xe9"
    assert converter.to_connect("t", b"\xe9") == (OPTIONAL_STRING_SCHEMA, "é")
    assert converter.from_connect("t", None, "☃") == b"?"  # unmappable, as Java's getBytes does
    with pytest.raises(ConnectError, match="converter.encoding"):
        string_converter(**{"converter.encoding": "no-such-charset"})


@pytest.mark.parametrize(("value", "text"), [(42, "42"), (True, "true"), (False, "false"), (1.5, "1.5"), (1e20, "1.0E20")])
def test_string_converter_writes_non_strings_as_java_to_string(value: Any, text: str) -> None:
    assert string_converter().from_connect("t", None, value) == text.encode()


@given(st.text())
def test_string_converter_round_trip(text: str) -> None:
    converter = string_converter()
    assert converter.to_connect("t", converter.from_connect("t", None, text)) == (OPTIONAL_STRING_SCHEMA, text)


def test_byte_array_converter() -> None:
    converter = ByteArrayConverter()
    converter.configure({}, True)
    assert converter.from_connect("t", None, b"\x00\xff") == b"\x00\xff"
    assert converter.from_connect("t", OPTIONAL_BYTES_SCHEMA, bytearray(b"ab")) == b"ab"
    assert converter.from_connect("t", None, None) is None
    assert converter.to_connect("t", b"\x01") == (OPTIONAL_BYTES_SCHEMA, b"\x01")
    assert converter.to_connect("t", None) == (OPTIONAL_BYTES_SCHEMA, None)


@pytest.mark.parametrize("value", ["text", 1, [1], {"a": b"x"}])
def test_byte_array_converter_rejects_non_bytes(value: Any) -> None:
    with pytest.raises(DataError, match="ByteArrayConverter is not compatible"):
        ByteArrayConverter().from_connect("t", None, value)


def test_byte_array_converter_rejects_other_schemas() -> None:
    with pytest.raises(DataError, match="Invalid schema type for ByteArrayConverter: STRING"):
        ByteArrayConverter().from_connect("t", Schema(Type.STRING), b"x")


# ---- converter_for ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("org.apache.kafka.connect.storage.StringConverter", StringConverter),
        ("org.apache.kafka.connect.converters.ByteArrayConverter", ByteArrayConverter),
        ("org.apache.kafka.connect.json.JsonConverter", JsonConverter),
        ("StringConverter", StringConverter),
        ("ByteArrayConverter", ByteArrayConverter),
        ("JsonConverter", JsonConverter),
        (" JsonConverter ", JsonConverter),
        ("caudal.connect.converters:JsonConverter", JsonConverter),
        ("caudal.connect.converters.StringConverter", StringConverter),
    ],
)
def test_converter_for_names(name: str, cls: type) -> None:
    assert type(converter_for(name, {}, False)) is cls


class UpperConverter:
    """A user converter, loaded by its Python path."""

    def configure(self, config: dict[str, str], is_key: bool) -> None:
        self.config, self.is_key = config, is_key

    def from_connect(self, topic: str, schema: Schema | None, value: Any) -> bytes | None:
        return None if value is None else str(value).upper().encode()

    def to_connect(self, topic: str, data: bytes | None) -> tuple[Schema | None, Any]:
        return None, data


def test_converter_for_configures_the_converter() -> None:
    converter = converter_for("org.apache.kafka.connect.json.JsonConverter", {"schemas.enable": "false"}, True)
    assert converter.from_connect("t", None, {"a": 1}) == b'{"a":1}'
    user = converter_for(f"{__name__}:UpperConverter", {"x": "1"}, True)
    assert isinstance(user, UpperConverter) and user.config == {"x": "1"} and user.is_key
    assert user.from_connect("t", None, "abc") == b"ABC"


@pytest.mark.parametrize(
    "name", ["AvroConverter", "io.confluent.connect.avro.AvroConverter", "caudal.connect.converters:Nope",
             "caudal.connect.converters:DataError.__name__", "caudal.connect.converters:INT_BITS", ""],
)
def test_converter_for_unknown(name: str) -> None:
    with pytest.raises(ConnectError) as info:
        converter_for(name, {}, False)
    message = str(info.value)
    assert "org.apache.kafka.connect.json.JsonConverter" in message and "StringConverter" in message
    assert "ByteArrayConverter" in message
