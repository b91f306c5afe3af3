"""Converters: the boundary between Connect data (schema + Python value) and the bytes in a topic.

Topics written by caudal's Connect workers are read by Kafka Connect workers and
the other way round, and users pick converters by Kafka's class names in
``key.converter``/``value.converter``. So the converters here are Kafka's three
everyday ones with Kafka's names, configs and wire formats: ``StringConverter``,
``ByteArrayConverter`` and ``JsonConverter``, whose ``schemas.enable`` envelope
``{"schema": ..., "payload": ...}`` is byte-for-byte the JSON Kafka writes (bytes
as base64, maps with non-string keys as ``[key, value]`` pairs). Where Kafka would
write ``"schema": null`` for a value that has no schema, caudal infers one from
the Python value, so that schema-aware readers still get a usable schema.

Converters, transformations and predicates are all plugins named by a class name
in a config; :func:`load_class` and :func:`parse_config` are the two rules they
share (Kafka class name, short name or Python path; config errors as
:class:`ConnectError`).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import importlib
import json
import math
from collections.abc import Mapping
from dataclasses import replace
from functools import reduce
from typing import Any, Optional, Protocol, TypeVar

from caudal.connect.api import ConnectError, Field, Schema, Type
from caudal.connect.config_def import (
    ConfigDef,
    ConfigException,
    ConfigType,
    Importance,
    format_value,
)

T = TypeVar("T")


class DataError(ConnectError):
    """Data does not fit its schema or the converter (Kafka's DataException)."""


# ---- plugins -------------------------------------------------------------------------


def load_class(class_name: str, builtins: Mapping[str, type[T]], kind: str) -> type[T]:
    """The class a config names: a Kafka class name from ``builtins``, its short name, or a Python path.

    A Python path is ``package.module:Class`` or ``package.module.Class``.
    """
    name = class_name.strip()
    short = {java.rsplit(".", 1)[-1]: cls for java, cls in builtins.items()}
    found = builtins.get(name) or short.get(name)
    if found is not None:
        return found
    module_name, _, attr = name.partition(":") if ":" in name else name.rpartition(".")
    reason = "not a known class name or a Python path (package.module:Class)"
    if module_name and attr:
        try:
            candidate = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            reason = str(exc)
        else:
            if isinstance(candidate, type):
                return candidate
            reason = f"{attr} is not a class"
    raise ConnectError(
        f"Unknown {kind} class '{class_name}' ({reason}); valid built-in ones are "
        f"{', '.join(builtins)} (or their short names), or a Python path package.module:Class"
    )


def parse_config(definition: ConfigDef, props: Mapping[str, Any], plugin: str) -> dict[str, Any]:
    """``props`` parsed by a plugin's ConfigDef; a bad or missing value is a :class:`ConnectError`."""
    try:
        return definition.parse(props)
    except ConfigException as exc:
        raise ConnectError(f"Invalid {plugin} configuration: {exc}") from exc


# ---- the protocol and the simple converters ------------------------------------------


class Converter(Protocol):
    """Turns a record's key or value into bytes for a topic and back (Kafka's Converter)."""

    def configure(self, config: Mapping[str, str], is_key: bool) -> None: ...

    def from_connect(self, topic: str, schema: Optional[Schema], value: Any) -> Optional[bytes]: ...

    def to_connect(self, topic: str, data: Optional[bytes]) -> tuple[Optional[Schema], Any]: ...


OPTIONAL_STRING_SCHEMA = Schema(Type.STRING, optional=True)
OPTIONAL_BYTES_SCHEMA = Schema(Type.BYTES, optional=True)


class StringConverter:
    """Values as text in ``converter.encoding`` (UTF8); non-strings are written as Java's toString writes them.

    As in Java, characters the encoding cannot hold become ``?`` and undecodable
    bytes become U+FFFD rather than failing the record.
    """

    CONFIG_DEF = ConfigDef().define(
        "converter.encoding", ConfigType.STRING, "UTF8", importance=Importance.HIGH,
        documentation="The name of the character encoding used to convert between strings and bytes.",
    )

    def __init__(self) -> None:
        self.encoding = "UTF8"

    def configure(self, config: Mapping[str, str], is_key: bool) -> None:
        encoding = parse_config(self.CONFIG_DEF, config, "StringConverter")["converter.encoding"]
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise ConnectError(f"Invalid StringConverter configuration: unknown converter.encoding {encoding!r}") from exc
        self.encoding = encoding

    def from_connect(self, topic: str, schema: Optional[Schema], value: Any) -> Optional[bytes]:
        if value is None:
            return None
        text = value if isinstance(value, str) else format_value(value)
        return text.encode(self.encoding, errors="replace")

    def to_connect(self, topic: str, data: Optional[bytes]) -> tuple[Optional[Schema], Any]:
        return OPTIONAL_STRING_SCHEMA, None if data is None else bytes(data).decode(self.encoding, errors="replace")


class ByteArrayConverter:
    """Passes bytes through unchanged; anything but bytes (or a non-BYTES schema) is a :class:`DataError`."""

    def configure(self, config: Mapping[str, str], is_key: bool) -> None:
        """There is nothing to configure."""

    def from_connect(self, topic: str, schema: Optional[Schema], value: Any) -> Optional[bytes]:
        if schema is not None and schema.type is not Type.BYTES:
            raise DataError(f"Invalid schema type for ByteArrayConverter: {schema.type.name}")
        if value is None:
            return None
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise DataError(f"ByteArrayConverter is not compatible with objects of type {type(value).__name__}")
        return bytes(value)

    def to_connect(self, topic: str, data: Optional[bytes]) -> tuple[Optional[Schema], Any]:
        return OPTIONAL_BYTES_SCHEMA, data


# ---- schemas and values ----------------------------------------------------------------

INT_BITS: Mapping[Type, int] = {Type.INT8: 8, Type.INT16: 16, Type.INT32: 32, Type.INT64: 64}
FLOAT_TYPES = (Type.FLOAT32, Type.FLOAT64)


def _mismatch(expected: Type, value: Any) -> DataError:
    return DataError(f"Invalid type for {expected.name}: {type(value).__name__} ({value!r:.80})")


def check_primitive(expected: Type, value: Any) -> Any:
    """``value`` as a value of the primitive type ``expected`` (not BYTES), or a :class:`DataError`.

    Integers must fit the type's width; floats accept ints (returned as float);
    bools are never numbers.
    """
    if isinstance(value, bool):
        if expected is Type.BOOLEAN:
            return value
    elif expected in INT_BITS and isinstance(value, int):
        bound = 1 << (INT_BITS[expected] - 1)
        if not -bound <= value < bound:
            raise DataError(f"Value {value} is out of range for {expected.name}")
        return value
    elif expected in FLOAT_TYPES and isinstance(value, (int, float)):
        return float(value)
    elif expected is Type.STRING and isinstance(value, str):
        return value
    raise _mismatch(expected, value)


_NULL_SCHEMA = Schema(Type.STRING, optional=True)
"""What a lone None infers to; it merges with any other schema (making it optional)."""


def _unify(a: Schema, b: Schema) -> Schema:
    """One schema for values inferred as ``a`` and ``b`` (list items, map entries), or a DataError."""
    if a == b:
        return a
    if a == _NULL_SCHEMA or b == _NULL_SCHEMA:
        return replace(b if a == _NULL_SCHEMA else a, optional=True)
    if a.type is not b.type:
        raise DataError(f"Cannot infer one schema for values of types {a.type.name} and {b.type.name}")
    merged = replace(a, optional=a.optional or b.optional)
    if a.type is Type.STRUCT:
        names = dict.fromkeys([f.name for f in a.fields] + [f.name for f in b.fields])
        return replace(merged, fields=tuple(Field(n, _unify(_field_schema(a, n), _field_schema(b, n))) for n in names))
    if a.type is Type.ARRAY:
        return replace(merged, value_schema=_unify(_part(a.value_schema), _part(b.value_schema)))
    if a.type is Type.MAP:
        return replace(merged, key_schema=_unify(_part(a.key_schema), _part(b.key_schema)),
                       value_schema=_unify(_part(a.value_schema), _part(b.value_schema)))
    return merged


def _field_schema(schema: Schema, name: str) -> Schema:
    """A struct field's schema; a field one value lacks is null there."""
    found = schema.field(name)
    return _NULL_SCHEMA if found is None else found.schema


def _part(schema: Optional[Schema]) -> Schema:
    if schema is None:
        raise DataError("Array and map schemas need their item schemas")
    return schema


def _infer_all(values: Any) -> Schema:
    schemas = [infer_schema(v) for v in values]
    return reduce(_unify, schemas) if schemas else _NULL_SCHEMA


_PYTHON_TYPES: tuple[tuple[type | tuple[type, ...], Type], ...] = (
    (bool, Type.BOOLEAN), (int, Type.INT64), (float, Type.FLOAT64), (str, Type.STRING),
    ((bytes, bytearray, memoryview), Type.BYTES), ((list, tuple), Type.ARRAY), (Mapping, Type.MAP),
)


def python_type(value: Any) -> Type:
    """The schema type of a non-None Python value (Kafka's ``ConnectSchema.schemaType``); dicts are maps."""
    for python_type, schema_type in _PYTHON_TYPES:
        if isinstance(value, python_type):
            return schema_type
    raise DataError(f"Python type {type(value).__name__} does not have a corresponding schema type")


def infer_schema(value: Any) -> Schema:
    """A schema for a Python value: dicts with str keys become structs (fields in insertion order).

    bool→boolean, int→int64, float→double, str→string, bytes→bytes, list→array
    of its items' common type (optional string when empty), None→optional
    string; a dict with other keys becomes a map. Anything else is a DataError.
    """
    if value is None:
        return _NULL_SCHEMA
    kind = python_type(value)
    if kind is Type.ARRAY:
        return Schema(kind, value_schema=_infer_all(value))
    if kind is Type.MAP and all(isinstance(k, str) for k in value):
        return Schema(Type.STRUCT, fields=tuple(Field(k, infer_schema(v)) for k, v in value.items()))
    if kind is Type.MAP:
        return Schema(kind, key_schema=_infer_all(value.keys()), value_schema=_infer_all(value.values()))
    return Schema(kind)


def schema_to_json(schema: Schema) -> dict[str, Any]:
    """Kafka's JSON form of a schema (``JsonConverter.asJsonSchema``), keys in Kafka's order."""
    out: dict[str, Any] = {"type": schema.type.value}
    if schema.type is Type.STRUCT:
        out["fields"] = [{**schema_to_json(f.schema), "field": f.name} for f in schema.fields]
    elif schema.type is Type.ARRAY:
        out["items"] = schema_to_json(_part(schema.value_schema))
    elif schema.type is Type.MAP:
        out["keys"] = schema_to_json(_part(schema.key_schema))
        out["values"] = schema_to_json(_part(schema.value_schema))
    out["optional"] = schema.optional
    for key in ("name", "version", "doc"):
        if getattr(schema, key) is not None:
            out[key] = getattr(schema, key)
    return out


def schema_from_json(node: Any) -> Optional[Schema]:
    """A schema from Kafka's JSON form (``JsonConverter.asConnectSchema``); JSON null is no schema."""
    return None if node is None else _schema(node)


def _schema(node: Any) -> Schema:
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        raise DataError("Schema must contain 'type' field")
    try:
        schema_type = Type(node["type"])
    except ValueError:
        raise DataError(f"Unknown schema type: {node['type']}") from None
    version = node.get("version")
    schema = Schema(
        schema_type,
        optional=node.get("optional") is True,
        name=node["name"] if isinstance(node.get("name"), str) else None,
        version=version if isinstance(version, int) and not isinstance(version, bool) else None,
        doc=node["doc"] if isinstance(node.get("doc"), str) else None,
    )
    if schema_type is Type.STRUCT:
        if not isinstance(node.get("fields"), list):
            raise DataError('Struct schema\'s "fields" argument is not an array.')
        return replace(schema, fields=tuple(map(_field_from_json, node["fields"])))
    if schema_type is Type.ARRAY:
        return replace(schema, value_schema=_required_schema(node, "items", "Array schema did not specify the element type"))
    if schema_type is Type.MAP:
        return replace(
            schema,
            key_schema=_required_schema(node, "keys", "Map schema did not specify the key type"),
            value_schema=_required_schema(node, "values", "Map schema did not specify the value type"),
        )
    return schema


def _field_from_json(node: Any) -> Field:
    if not isinstance(node, dict) or not isinstance(node.get("field"), str):
        raise DataError("Struct schema's field name not specified properly")
    return Field(node["field"], _schema(node))


def _required_schema(node: dict[str, Any], key: str, missing: str) -> Schema:
    if node.get(key) is None:
        raise DataError(missing)
    return _schema(node[key])


def value_to_json(schema: Optional[Schema], value: Any) -> Any:
    """A Connect value as JSON-able Python (Kafka's ``convertToJson``); no schema means inferring types."""
    if value is None:
        if schema is not None and not schema.optional:
            raise DataError("Conversion error: null value for field that is required and has no default value")
        return None
    kind = python_type(value) if schema is None else schema.type
    if kind is Type.BYTES:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _mismatch(kind, value)
        return base64.b64encode(value).decode("ascii")
    if kind is Type.ARRAY:
        if not isinstance(value, (list, tuple)):
            raise _mismatch(kind, value)
        return [value_to_json(schema and schema.value_schema, v) for v in value]
    if kind in (Type.MAP, Type.STRUCT) and not isinstance(value, Mapping):
        raise _mismatch(kind, value)
    if kind is Type.STRUCT:
        assert schema is not None  # without a schema a dict is a map
        unknown = [k for k in value if schema.field(k) is None]
        if unknown:
            raise DataError(f"Struct value has fields {unknown} that are not in its schema")
        return {f.name: value_to_json(f.schema, value.get(f.name)) for f in schema.fields}
    if kind is Type.MAP:
        key_schema, value_schema = (None, None) if schema is None else (schema.key_schema, schema.value_schema)
        as_object = all(isinstance(k, str) for k in value) if key_schema is None else key_schema.type is Type.STRING
        if as_object:
            return {check_primitive(Type.STRING, k): value_to_json(value_schema, v) for k, v in value.items()}
        return [[value_to_json(key_schema, k), value_to_json(value_schema, v)] for k, v in value.items()]
    checked = check_primitive(kind, value)
    if kind in FLOAT_TYPES and not math.isfinite(checked):
        raise DataError(f"JSON cannot represent the {kind.name} value {checked}")
    return checked


def value_from_json(schema: Optional[Schema], node: Any) -> Any:
    """A parsed JSON value converted by its schema (Kafka's ``convertToConnect``); no schema: as parsed."""
    if schema is None:
        return node
    if node is None:
        if not schema.optional:
            raise DataError(f"Invalid null value for required {schema.type.name} field")
        return None
    kind = schema.type
    if kind is Type.BYTES:
        if not isinstance(node, str):
            raise _mismatch(kind, node)
        try:
            return base64.b64decode(node, validate=True)
        except binascii.Error as exc:
            raise DataError(f"Invalid base64 for a BYTES value: {exc}") from exc
    if kind is Type.ARRAY:
        if not isinstance(node, list):
            raise DataError(f"Arrays should be encoded as JSON arrays, but found {type(node).__name__}")
        return [value_from_json(schema.value_schema, v) for v in node]
    if kind is Type.STRUCT:
        if not isinstance(node, dict):
            raise DataError(f"Structs should be encoded as JSON objects, but found {type(node).__name__}")
        return {f.name: value_from_json(f.schema, node.get(f.name)) for f in schema.fields}
    if kind is Type.MAP:
        return _map_from_json(schema, node)
    return check_primitive(kind, node)


def _map_from_json(schema: Schema, node: Any) -> dict[Any, Any]:
    key_schema = _part(schema.key_schema)
    if key_schema.type is Type.STRING:
        if not isinstance(node, dict):
            raise DataError(f"Maps with string fields should be encoded as JSON objects, but found {type(node).__name__}")
        entries = list(node.items())
    elif not isinstance(node, list):
        raise DataError(f"Maps with non-string fields should be encoded as JSON array of tuples, but found {type(node).__name__}")
    else:
        entries = node
    result: dict[Any, Any] = {}
    for entry in entries:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise DataError(f"Found invalid map entry instead of array tuple: {entry!r:.80}")
        key = value_from_json(key_schema, entry[0])
        try:
            result[key] = value_from_json(schema.value_schema, entry[1])
        except TypeError as exc:  # unhashable key (an array or struct)
            raise DataError(f"Map keys of type {key_schema.type.name} are not supported") from exc
    return result


# ---- JsonConverter ---------------------------------------------------------------------

ENVELOPE_ERROR = (
    'JsonConverter with schemas.enable requires "schema" and "payload" fields and may not contain additional fields.'
    " If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration."
)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class JsonConverter:
    """Kafka's JsonConverter: with ``schemas.enable`` (the default) every value travels in the schema envelope."""

    CONFIG_DEF = ConfigDef().define(
        "schemas.enable", ConfigType.BOOLEAN, True, importance=Importance.HIGH,
        documentation="Include schemas within each of the serialized values and keys.",
    )

    def __init__(self) -> None:
        self.schemas_enable = True

    def configure(self, config: Mapping[str, str], is_key: bool) -> None:
        self.schemas_enable = parse_config(self.CONFIG_DEF, config, "JsonConverter")["schemas.enable"]

    def from_connect(self, topic: str, schema: Optional[Schema], value: Any) -> Optional[bytes]:
        if schema is None and value is None:
            return None
        if self.schemas_enable:
            schema = infer_schema(value) if schema is None else schema
            document = {"schema": schema_to_json(schema), "payload": value_to_json(schema, value)}
        else:
            document = value_to_json(schema, value)
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")

    def to_connect(self, topic: str, data: Optional[bytes]) -> tuple[Optional[Schema], Any]:
        if data is None:
            return None, None
        try:
            document = json.loads(data, parse_constant=_reject_constant)
        except ValueError as exc:  # includes bad UTF-8
            raise DataError(f"Converting byte[] to Kafka Connect data failed due to serialization error: {exc}") from exc
        if not self.schemas_enable:
            return None, document
        if not isinstance(document, dict) or document.keys() != {"schema", "payload"}:
            raise DataError(ENVELOPE_ERROR)
        schema = schema_from_json(document["schema"])
        return schema, value_from_json(schema, document["payload"])


# ---- by name ---------------------------------------------------------------------------

CONVERTERS: Mapping[str, type[Converter]] = {
    "org.apache.kafka.connect.storage.StringConverter": StringConverter,
    "org.apache.kafka.connect.converters.ByteArrayConverter": ByteArrayConverter,
    "org.apache.kafka.connect.json.JsonConverter": JsonConverter,
}


def converter_for(class_name: str, config: Mapping[str, str], is_key: bool) -> Converter:
    """A configured converter; ``config`` is its sub-config (``value.converter.`` already stripped)."""
    converter = load_class(class_name, CONVERTERS, "converter")()
    converter.configure(config, is_key)
    return converter
