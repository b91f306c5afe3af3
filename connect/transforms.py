"""Single message transforms (SMTs): per-record changes configured in the connector config, as in Kafka.

Users move connector configs between Kafka Connect and caudal, so the
transformations here have Kafka's class names (``InsertField$Value``), config
keys and behaviour, including the awkward parts users rely on: tombstones pass
through untouched, ``$Key``/``$Value`` variants pick the half of the record to
change, values with a schema get a new schema, Cast narrows numbers the way
Java casts do, routers use Java regex and date-format syntax.
:class:`TransformationChain` builds the chain from ``transforms``/``predicates``
exactly as Kafka's ConnectorConfig does.

Struct values are dicts keyed by field name (see :mod:`caudal.connect.api`);
a value without a schema must be a dict for the field-level transforms.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Optional, Protocol

from caudal.connect.api import (
    ConnectError,
    ConnectRecord,
    Field,
    Schema,
    SinkRecord,
    Type,
)
from caudal.connect.config_def import (
    ConfigDef,
    ConfigException,
    ConfigType,
    Importance,
    NonEmptyString,
    format_value,
    originals_with_prefix,
    parse_value,
)
from caudal.connect.converters import (
    FLOAT_TYPES,
    INT_BITS,
    DataError,
    check_primitive,
    load_class,
    parse_config,
    python_type,
)
from caudal.connect.predicates import Predicate, java_regex, predicate_for, valid_regex


class Transformation(Protocol):
    """Kafka's Transformation: ``apply`` returns the changed record, or None to drop it."""

    def configure(self, props: Mapping[str, str]) -> None: ...

    def apply(self, record: ConnectRecord) -> Optional[ConnectRecord]: ...

    def close(self) -> None: ...


# ---- key or value --------------------------------------------------------------------


@dataclass(frozen=True)
class RecordPart:
    """The half of a record a ``$Key`` or ``$Value`` transformation works on."""

    value_attr: str
    schema_attr: str

    def get(self, record: ConnectRecord) -> tuple[Optional[Schema], Any]:
        return getattr(record, self.schema_attr), getattr(record, self.value_attr)

    def put(self, record: ConnectRecord, schema: Optional[Schema], value: Any) -> ConnectRecord:
        return record.new_record(**{self.schema_attr: schema, self.value_attr: value})


KEY = RecordPart("key", "key_schema")
VALUE = RecordPart("value", "value_schema")


class NothingToClose:
    """The built-in transformations hold no resources, so their ``close`` does nothing."""

    def close(self) -> None:
        """Nothing to release."""


class PartTransformation(NothingToClose, ABC):
    """A transformation of a record's key or value; subclasses set ``part`` (the ``$Key``/``$Value`` variants).

    A null key or value passes through unchanged, as in Kafka (a tombstone stays a tombstone).
    """

    part: ClassVar[RecordPart]
    CONFIG_DEF: ClassVar[ConfigDef]

    def _parse(self, props: Mapping[str, str]) -> dict[str, Any]:
        return parse_config(self.CONFIG_DEF, props, type(self).__name__)

    @abstractmethod
    def configure(self, props: Mapping[str, str]) -> None: ...

    @abstractmethod
    def transform(self, record: ConnectRecord, schema: Optional[Schema], value: Any) -> tuple[Optional[Schema], Any]:
        """The new schema and value for a non-null key/value."""

    def apply(self, record: ConnectRecord) -> ConnectRecord:
        schema, value = self.part.get(record)
        if value is None:
            return record
        return self.part.put(record, *self.transform(record, schema, value))


def _fields(schema: Optional[Schema], value: Any, purpose: str) -> Mapping[str, Any]:
    """A struct value (with a schema) or a map (without), which a field-level transformation needs."""
    if schema is None and not isinstance(value, Mapping):
        raise DataError(f"Only Map objects supported in absence of schema for [{purpose}], found: {type(value).__name__}")
    if schema is not None and (schema.type is not Type.STRUCT or not isinstance(value, Mapping)):
        raise DataError(f"Only Struct objects supported for [{purpose}], found: {type(value).__name__}")
    return value


def _string(name: str, documentation: str, default: Any = None, **kwargs: Any) -> dict[str, Any]:
    return dict(name=name, type=ConfigType.STRING, default=default, importance=Importance.MEDIUM,
                documentation=documentation, **kwargs)


def _config_def(*keys: dict[str, Any]) -> ConfigDef:
    definition = ConfigDef()
    for key in keys:
        definition.define(**key)
    return definition


# ---- InsertField -----------------------------------------------------------------------

TIMESTAMP_SCHEMA = Schema(Type.INT64, name="org.apache.kafka.connect.data.Timestamp", version=1)
"""Kafka's Timestamp logical type; caudal's values are epoch milliseconds."""


@dataclass(frozen=True)
class _Insertion:
    name: str
    optional: bool
    schema: Schema
    value_of: Callable[[ConnectRecord], Any]


def _sink_offset(record: ConnectRecord) -> int:
    if not isinstance(record, SinkRecord):
        raise DataError(f"Only SinkRecord supported for [field insertion], found: {type(record).__name__}")
    return record.kafka_offset


class InsertField(PartTransformation):
    """Adds the record's topic, partition, offset, timestamp and/or a static value as fields.

    A field name ending in ``!`` is required in the new schema, ``?`` (or no suffix) optional.
    """

    CONFIG_DEF = _config_def(
        _string("topic.field", "Field name for the record topic. Suffix with ! / ? for required / optional."),
        _string("partition.field", "Field name for the record partition."),
        _string("offset.field", "Field name for the record offset (sink connectors only)."),
        _string("timestamp.field", "Field name for the record timestamp."),
        _string("static.field", "Field name for a static data field."),
        _string("static.value", "The static field value, if a static field name is configured."),
    )

    def configure(self, props: Mapping[str, str]) -> None:
        config = self._parse(props)
        static_value = config["static.value"]
        sources: list[tuple[str, Schema, Callable[[ConnectRecord], Any]]] = [
            ("topic.field", Schema(Type.STRING), lambda r: r.topic),
            ("partition.field", Schema(Type.INT32), lambda r: r.kafka_partition),
            ("offset.field", Schema(Type.INT64), _sink_offset),
            ("timestamp.field", TIMESTAMP_SCHEMA, lambda r: r.timestamp),
            ("static.field", Schema(Type.STRING), lambda r: static_value),
        ]
        self.insertions = [
            _Insertion(spec[:-1] if spec[-1] in "!?" else spec, not spec.endswith("!"), schema, value_of)
            for key, schema, value_of in sources
            if (spec := config[key])
        ]

    def transform(self, record: ConnectRecord, schema: Optional[Schema], value: Any) -> tuple[Optional[Schema], Any]:
        updated = dict(_fields(schema, value, "field insertion"))
        if schema is None:
            for insertion in self.insertions:
                inserted = insertion.value_of(record)
                if inserted is not None:
                    updated[insertion.name] = inserted
            return None, updated
        new_fields = []
        for insertion in self.insertions:
            if schema.field(insertion.name) is not None:
                raise DataError(f"Cannot insert field {insertion.name!r}: the schema already has a field of that name")
            inserted = insertion.value_of(record)
            if inserted is None and not insertion.optional:
                raise DataError(f'Invalid value: null used for required field: "{insertion.name}"')
            updated[insertion.name] = inserted
            new_fields.append(Field(insertion.name, replace(insertion.schema, optional=insertion.optional)))
        return replace(schema, fields=schema.fields + tuple(new_fields)), updated


class InsertFieldKey(InsertField):
    part = KEY


class InsertFieldValue(InsertField):
    part = VALUE


# ---- ReplaceField ----------------------------------------------------------------------


def _rename_mappings(name: str, value: Any) -> None:
    for mapping in value:
        if len(mapping.split(":")) != 2:
            raise ConfigException.invalid(name, value, f"Invalid rename mapping: {mapping}")


class ReplaceField(PartTransformation):
    """Keeps (``include``), drops (``exclude``) and renames (``renames=a:b,c:d``) fields.

    The deprecated ``whitelist``/``blacklist`` are read when ``include``/``exclude`` are not set.
    """

    CONFIG_DEF = _config_def(
        dict(name="exclude", type=ConfigType.LIST, default="", importance=Importance.MEDIUM,
             documentation="Fields to exclude. This takes precedence over the fields to include."),
        dict(name="include", type=ConfigType.LIST, default="", importance=Importance.MEDIUM,
             documentation="Fields to include. If specified, only these fields will be used."),
        dict(name="renames", type=ConfigType.LIST, default="", validator=_rename_mappings,
             importance=Importance.MEDIUM, documentation="Field rename mappings, e.g. foo:bar,abc:xyz."),
    )
    DEPRECATED = {"whitelist": "include", "blacklist": "exclude"}

    def configure(self, props: Mapping[str, str]) -> None:
        translated = dict(props)
        for old, new in self.DEPRECATED.items():
            if old in props:
                translated.setdefault(new, props[old])
        config = self._parse(translated)
        self.exclude = set(config["exclude"])
        self.include = set(config["include"])
        self.renames = dict(mapping.split(":") for mapping in config["renames"])

    def _keeps(self, name: str) -> bool:
        return name not in self.exclude and (not self.include or name in self.include)

    def transform(self, record: ConnectRecord, schema: Optional[Schema], value: Any) -> tuple[Optional[Schema], Any]:
        fields = _fields(schema, value, "field replacement")
        if schema is None:
            return None, {self.renames.get(n, n): v for n, v in fields.items() if self._keeps(n)}
        kept = [f for f in schema.fields if self._keeps(f.name)]
        new_schema = replace(schema, fields=tuple(Field(self.renames.get(f.name, f.name), f.schema) for f in kept))
        return new_schema, {self.renames.get(f.name, f.name): fields.get(f.name) for f in kept}


class ReplaceFieldKey(ReplaceField):
    part = KEY


class ReplaceFieldValue(ReplaceField):
    part = VALUE


# ---- MaskField -------------------------------------------------------------------------


def _non_empty_list(name: str, value: Any) -> None:
    if not value:
        raise ConfigException.invalid(name, value, "Empty list")


_EMPTY: Mapping[Type, Callable[[], Any]] = {
    **{t: int for t in INT_BITS}, **{t: float for t in FLOAT_TYPES},
    Type.BOOLEAN: bool, Type.STRING: str, Type.BYTES: bytes, Type.ARRAY: list, Type.MAP: dict,
}


def _type_of(schema: Optional[Schema], value: Any) -> Type:
    """The type of a non-null value: its schema's, else what Kafka infers from the value's class."""
    return python_type(value) if schema is None else schema.type


def _parse_number(text: str, target: Type) -> int | float:
    """Text as a number of an integer or floating-point type, parsed as Java parses it."""
    try:
        if target in INT_BITS:
            return check_primitive(target, parse_value("value", text, ConfigType.LONG))
        return parse_value("value", text, ConfigType.DOUBLE)
    except (ConfigException, DataError) as exc:
        raise DataError(f"Unable to convert {text} to {target.name}") from exc


class MaskField(PartTransformation):
    """Replaces ``fields`` with ``replacement`` (parsed to the field's type) or the type's empty value.

    Empty values are Kafka's: 0, 0.0, false, "", and empty lists and maps (and b"" for bytes).
    """

    CONFIG_DEF = _config_def(
        dict(name="fields", type=ConfigType.LIST, validator=_non_empty_list, importance=Importance.HIGH,
             documentation="Names of fields to mask."),
        _string("replacement", "Custom value replacement, applied to all 'fields' values (numeric or "
                "non-empty string values only).", validator=NonEmptyString()),
    )

    def configure(self, props: Mapping[str, str]) -> None:
        config = self._parse(props)
        self.fields = set(config["fields"])
        self.replacement: Optional[str] = config["replacement"]

    def _masked(self, schema: Optional[Schema], value: Any) -> Any:
        if value is None:
            return None
        kind = _type_of(schema, value)
        if self.replacement is None:
            if kind not in _EMPTY:
                raise DataError(f"Cannot mask value of type: {kind.name}")
            return _EMPTY[kind]()
        if kind is Type.STRING:
            return self.replacement
        if kind not in INT_BITS and kind not in FLOAT_TYPES:
            raise DataError(f"Cannot mask value of type {kind.name} with custom replacement.")
        return _parse_number(self.replacement, kind)

    def transform(self, record: ConnectRecord, schema: Optional[Schema], value: Any) -> tuple[Optional[Schema], Any]:
        fields = _fields(schema, value, "mask fields")
        updated = dict(fields)
        for name in self.fields & fields.keys():
            field = None if schema is None else schema.field(name)
            updated[name] = self._masked(None if field is None else field.schema, fields[name])
        return schema, updated


class MaskFieldKey(MaskField):
    part = KEY


class MaskFieldValue(MaskField):
    part = VALUE


# ---- Cast ------------------------------------------------------------------------------

CAST_OUTPUT_TYPES = (*INT_BITS, *FLOAT_TYPES, Type.BOOLEAN, Type.STRING)
CAST_INPUT_TYPES = (*CAST_OUTPUT_TYPES, Type.BYTES)


def _cast_type(text: str) -> Type:
    try:
        cast_type = Type[text.strip().upper()]
    except KeyError:
        raise ConnectError(f"Invalid Cast configuration: Invalid type found in casting spec: {text.strip()}") from None
    if cast_type not in CAST_OUTPUT_TYPES:
        raise ConnectError(
            f"Invalid Cast configuration: Cast transformation does not support casting to {cast_type.name}; "
            f"supported types are {', '.join(t.name for t in CAST_OUTPUT_TYPES)}"
        )
    return cast_type


def _java_narrow(value: int | float, bits: int) -> int:
    """Java's ``(byte)``/``(short)``/``(int)``/``(long)`` of a number: truncate, saturate floats, wrap."""
    if isinstance(value, float):
        bound = 1 << (63 if bits == 64 else 31)
        value = 0 if math.isnan(value) else -bound if value <= -bound else bound - 1 if value >= bound - 1 else int(value)
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _round32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def float32(value: float) -> float:
    """A float rounded to 32 bits, as the shortest decimal that rounds back (the number Java prints for a float)."""
    try:
        rounded = _round32(value)
    except OverflowError:
        return math.copysign(math.inf, value)
    if not math.isfinite(rounded):
        return rounded
    # 9 significant digits always identify a float32, so this finds one.
    return next(s for s in (float(f"{rounded:.{d}g}") for d in range(1, 10)) if _round32(s) == rounded)


def _check_cast_input(source: Type) -> None:
    if source not in CAST_INPUT_TYPES:
        raise DataError(
            f"Cast transformation does not support casting from {source.name}; "
            f"supported types are {', '.join(t.name for t in CAST_INPUT_TYPES)}"
        )


def _cast(value: Any, source: Type, target: Type) -> Any:
    """Kafka Cast's ``castValueToType`` for a non-null value of type ``source``."""
    _check_cast_input(source)
    if target is Type.STRING:
        return base64.b64encode(value).decode("ascii") if source is Type.BYTES else format_value(value)
    if source is Type.BYTES:
        raise DataError(f"Unexpected type in Cast transformation: {source.name} cannot be cast to {target.name}")
    if target is Type.BOOLEAN:
        return value.strip().lower() == "true" if isinstance(value, str) else value != 0
    number = _parse_number(value, target) if isinstance(value, str) else value
    if target in INT_BITS:
        return _java_narrow(int(number) if isinstance(number, bool) else number, INT_BITS[target])
    return float32(number) if target is Type.FLOAT32 else float(number)


class Cast(PartTransformation):
    """Casts fields (``spec=f1:int32,f2:string``) or the whole value (``spec=int64``) to another type.

    Numbers narrow as Java casts them (wrapping, truncating toward zero);
    strings parse as Java parses numbers (``true`` is the only true boolean);
    bytes cast to string as base64; anything cast to string is written as
    Java's toString writes it.
    """

    CONFIG_DEF = _config_def(
        dict(name="spec", type=ConfigType.LIST, validator=_non_empty_list, importance=Importance.HIGH,
             documentation="List of fields and the type to cast them to of the form field1:type,field2:type "
                           "to cast fields of Maps or Structs. A single type to cast the entire value."),
    )

    def configure(self, props: Mapping[str, str]) -> None:
        spec = self._parse(props)["spec"]
        whole_value: list[Type] = []
        self.casts: dict[str, Type] = {}
        for mapping in spec:
            parts = mapping.split(":")
            if len(parts) > 2:
                raise ConnectError(f"Invalid Cast configuration: Invalid cast mapping: {mapping}")
            if len(parts) == 1:
                whole_value.append(_cast_type(parts[0]))
            else:
                self.casts[parts[0].strip()] = _cast_type(parts[1])
        if whole_value and len(spec) > 1:
            raise ConnectError(
                "Invalid Cast configuration: Cast transformations that specify a type to cast the entire value "
                "to may only specify a single cast in their spec"
            )
        self.whole_value = whole_value[0] if whole_value else None

    def transform(self, record: ConnectRecord, schema: Optional[Schema], value: Any) -> tuple[Optional[Schema], Any]:
        if self.whole_value is not None:
            cast = _cast(value, _type_of(schema, value), self.whole_value)
            if schema is None:
                return None, cast
            return Schema(self.whole_value, optional=schema.optional, name=schema.name, version=schema.version,
                          doc=schema.doc), cast
        fields = _fields(schema, value, "cast types")
        updated = dict(fields)
        if schema is None:
            for name in self.casts.keys() & fields.keys():
                if fields[name] is not None:
                    updated[name] = _cast(fields[name], python_type(fields[name]), self.casts[name])
            return None, updated
        new_fields = []
        for field in schema.fields:
            target = self.casts.get(field.name)
            if target is None:
                new_fields.append(field)
                continue
            _check_cast_input(field.schema.type)
            if fields.get(field.name) is not None:
                updated[field.name] = _cast(fields[field.name], field.schema.type, target)
            new_fields.append(Field(field.name, Schema(target, optional=field.schema.optional)))
        return replace(schema, fields=tuple(new_fields)), updated


class CastKey(Cast):
    part = KEY


class CastValue(Cast):
    part = VALUE


# ---- routers and Filter ----------------------------------------------------------------


_DATE_FIELDS: Mapping[str, Callable[[datetime], str]] = {
    "yyyy": lambda t: f"{t.year:04d}",
    "yy": lambda t: f"{t.year % 100:02d}",
    "MM": lambda t: f"{t.month:02d}",
    "dd": lambda t: f"{t.day:02d}",
    "HH": lambda t: f"{t.hour:02d}",
    "mm": lambda t: f"{t.minute:02d}",
    "ss": lambda t: f"{t.second:02d}",
    "SSS": lambda t: f"{t.microsecond // 1000:03d}",
}
_DATE_TOKEN = re.compile(r"'([^']*)'|([A-Za-z])\2*|[^A-Za-z']+")


def java_date_format(pattern: str) -> Callable[[datetime], str]:
    """A formatter for a Java SimpleDateFormat pattern (yyyy, yy, MM, dd, HH, mm, ss, SSS, 'quoted text')."""
    pieces: list[str | Callable[[datetime], str]] = []
    position = 0
    while position < len(pattern):
        token = _DATE_TOKEN.match(pattern, position)
        if token is None:
            raise ConnectError(f"Unterminated quote in timestamp.format {pattern!r}")
        text = token.group()
        if token.group(2) is not None:
            if text not in _DATE_FIELDS:
                raise ConnectError(
                    f"Unsupported pattern {text!r} in timestamp.format {pattern!r}; supported: {', '.join(_DATE_FIELDS)}"
                )
            pieces.append(_DATE_FIELDS[text])
        else:
            pieces.append("'" if text == "''" else text if token.group(1) is None else token.group(1))
        position = token.end()
    return lambda t: "".join(piece if isinstance(piece, str) else piece(t) for piece in pieces)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class TimestampRouter(NothingToClose):
    """Routes a record to a topic named from its topic and timestamp (UTC), e.g. ``orders-20240131``."""

    CONFIG_DEF = _config_def(
        _string("topic.format", "Format string which can contain ${topic} and ${timestamp} as placeholders.",
                "${topic}-${timestamp}"),
        _string("timestamp.format", "Format string for the timestamp compatible with java.text.SimpleDateFormat.",
                "yyyyMMdd"),
    )

    def configure(self, props: Mapping[str, str]) -> None:
        config = parse_config(self.CONFIG_DEF, props, "TimestampRouter")
        self.topic_format: str = config["topic.format"]
        self.timestamp_format = java_date_format(config["timestamp.format"])

    def apply(self, record: ConnectRecord) -> ConnectRecord:
        if record.timestamp is None:
            raise DataError(f"Timestamp missing on record: {record}")
        stamp = self.timestamp_format(_EPOCH + timedelta(milliseconds=record.timestamp))
        return record.new_record(topic=self.topic_format.replace("${topic}", record.topic).replace("${timestamp}", stamp))


def java_replacement(replacement: str, pattern: re.Pattern[str]) -> str:
    """A Java ``Matcher`` replacement (``$1``, ``${name}``, ``\\$``) as a Python ``Match.expand`` template.

    As in Java, ``$12`` means group 12 only if the pattern has that many groups (else group 1 then "2").
    """
    template: list[str] = []
    position = 0
    while position < len(replacement):
        char = replacement[position]
        position += 1
        if char == "\\":
            if position == len(replacement):
                raise ValueError("character to be escaped is missing")
            template.append(replacement[position].replace("\\", "\\\\"))
            position += 1
        elif char != "$":
            template.append(char)
        elif replacement.startswith("{", position):
            end = replacement.find("}", position)
            name = replacement[position + 1:end] if end > 0 else ""
            if name not in pattern.groupindex:
                raise ValueError(f"No group with name {{{name}}}")
            template.append(f"\\g<{name}>")
            position = end + 1
        else:
            digits = re.match(r"[0-9]+", replacement[position:])
            if digits is None:
                raise ValueError("Illegal group reference")
            group = int(digits.group()[0])
            if group > pattern.groups:
                raise ValueError(f"No group {group}")
            taken = 1
            for digit in digits.group()[1:]:
                if group * 10 + int(digit) > pattern.groups:
                    break
                group, taken = group * 10 + int(digit), taken + 1
            template.append(f"\\g<{group}>")
            position += taken
    return "".join(template)


class RegexRouter(NothingToClose):
    """Renames the topic when the whole topic name matches ``regex`` (``replacement`` may use ``$1``)."""

    CONFIG_DEF = _config_def(
        dict(name="regex", type=ConfigType.STRING, validator=valid_regex, importance=Importance.HIGH,
             documentation="Regular expression to use for matching."),
        dict(name="replacement", type=ConfigType.STRING, importance=Importance.HIGH,
             documentation="Replacement string."),
    )

    def configure(self, props: Mapping[str, str]) -> None:
        config = parse_config(self.CONFIG_DEF, props, "RegexRouter")
        self.regex = java_regex(config["regex"])
        try:
            self.template = java_replacement(config["replacement"], self.regex)
        except ValueError as exc:
            raise ConnectError(f"Invalid RegexRouter configuration: replacement {config['replacement']!r}: {exc}") from exc

    def apply(self, record: ConnectRecord) -> ConnectRecord:
        match = self.regex.fullmatch(record.topic)
        return record if match is None else record.new_record(topic=match.expand(self.template))


class Filter(NothingToClose):
    """Drops every record; combined with a predicate it drops the records the predicate matches."""

    CONFIG_DEF = ConfigDef()

    def configure(self, props: Mapping[str, str]) -> None:
        """There is nothing to configure."""

    def apply(self, record: ConnectRecord) -> None:
        return None


# ---- by name, and the chain ------------------------------------------------------------

_PACKAGE = "org.apache.kafka.connect.transforms"
TRANSFORMS: Mapping[str, type[Transformation]] = {
    f"{_PACKAGE}.{name}": cls
    for name, cls in {
        "InsertField$Key": InsertFieldKey, "InsertField$Value": InsertFieldValue,
        "ReplaceField$Key": ReplaceFieldKey, "ReplaceField$Value": ReplaceFieldValue,
        "MaskField$Key": MaskFieldKey, "MaskField$Value": MaskFieldValue,
        "Cast$Key": CastKey, "Cast$Value": CastValue,
        "TimestampRouter": TimestampRouter, "RegexRouter": RegexRouter, "Filter": Filter,
    }.items()
}


def transform_for(class_name: str) -> Transformation:
    """A new, unconfigured transformation by Kafka class name, short name or Python path."""
    return load_class(class_name, TRANSFORMS, "transformation")()


@dataclass(frozen=True)
class TransformationStage:
    """One transformation of a chain, applied when its predicate (if any) holds, or fails when ``negate``."""

    transformation: Transformation
    predicate: Optional[Predicate] = None
    negate: bool = False

    def apply(self, record: ConnectRecord) -> Optional[ConnectRecord]:
        if self.predicate is not None and self.predicate.test(record) == self.negate:
            return record
        return self.transformation.apply(record)


def _aliases(config: Mapping[str, str], key: str) -> list[str]:
    try:
        aliases: list[str] = parse_value(key, config.get(key, ""), ConfigType.LIST)
        if len(set(aliases)) != len(aliases):
            raise ConfigException.invalid(key, aliases, "Duplicate alias provided.")
    except ConfigException as exc:
        raise ConnectError(str(exc)) from exc
    return [alias for alias in aliases if alias]


def _configured(kind: str, alias: str, config: Mapping[str, str], make: Callable[[str], Any]) -> Any:
    """The plugin ``<kind>s.<alias>.type`` names, configured with its ``<kind>s.<alias>.*`` keys."""
    prefix = f"{kind}s.{alias}."
    class_name = config.get(f"{prefix}type")
    if not class_name:
        raise ConnectError(f'Missing required configuration "{prefix}type" which has no default value.')
    plugin = make(class_name)
    try:
        plugin.configure(originals_with_prefix(config, prefix))
    except ConnectError as exc:
        raise ConnectError(f"{kind} {alias!r}: {exc}") from exc
    return plugin


class TransformationChain:
    """The connector's transformations in order; a stage returning None drops the record."""

    def __init__(self, stages: Iterable[TransformationStage] = ()) -> None:
        self.stages = list(stages)

    @classmethod
    def from_config(cls, config: Mapping[str, str]) -> "TransformationChain":
        """The chain ``transforms``/``transforms.<alias>.*`` and ``predicates``/``predicates.<alias>.*`` declare.

        Each plugin is configured with every key under its prefix (``type`` included), as Kafka's
        ``originalsWithPrefix`` passes them; every declared predicate is configured, used or not,
        and, as in Kafka, ``negate`` without a ``predicate`` has no effect.
        """
        predicates = {
            alias: _configured("predicate", alias, config, predicate_for)
            for alias in _aliases(config, "predicates")
        }
        stages = []
        for alias in _aliases(config, "transforms"):
            transformation = _configured("transform", alias, config, transform_for)
            predicate_alias = config.get(f"transforms.{alias}.predicate")
            if not predicate_alias:
                stages.append(TransformationStage(transformation))
                continue
            if predicate_alias not in predicates:
                raise ConnectError(
                    f"Transformation {alias!r} refers to predicate {predicate_alias!r}, "
                    "which is not declared in 'predicates'"
                )
            negate_key = f"transforms.{alias}.negate"
            try:
                negate = parse_value(negate_key, config.get(negate_key, "false"), ConfigType.BOOLEAN)
            except ConfigException as exc:
                raise ConnectError(str(exc)) from exc
            stages.append(TransformationStage(transformation, predicates[predicate_alias], negate))
        return cls(stages)

    def apply(self, record: ConnectRecord) -> Optional[ConnectRecord]:
        for stage in self.stages:
            transformed = stage.apply(record)
            if transformed is None:
                return None
            record = transformed
        return record

    def close(self) -> None:
        for stage in self.stages:
            stage.transformation.close()
