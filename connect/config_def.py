"""Kafka's ConfigDef in Python: typed config keys, Kafka's parsing rules and its validate JSON.

Connect users write configs as strings (properties files, REST bodies) and get
back, from ``PUT /connector-plugins/{type}/config/validate``, Kafka's
*ConfigInfos* document. Tools and UIs built for Kafka Connect read that
document, so this module reproduces ``org.apache.kafka.common.config.ConfigDef``
closely enough that the same input gives the same parsed values, the same
error messages (``Invalid value X for configuration Y: reason``) and the same
JSON: strings are trimmed, lists split on commas, ``true``/``false`` are
case-insensitive, integers are range-checked like Java's ``int``/``short``/
``long``, passwords print as ``[hidden]`` and values are rendered with Java's
``toString``. Class-typed keys hold a dotted class name (caudal maps Kafka's
class names to its own implementations, so nothing is imported here).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence


class ConfigType(str, Enum):
    """The value types of a config key, with Kafka's names (as printed in the validate JSON)."""

    BOOLEAN = "BOOLEAN"
    STRING = "STRING"
    INT = "INT"
    SHORT = "SHORT"
    LONG = "LONG"
    DOUBLE = "DOUBLE"
    LIST = "LIST"
    CLASS = "CLASS"
    PASSWORD = "PASSWORD"


class Importance(str, Enum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class Width(str, Enum):
    """How wide a UI should draw the value field (Kafka's ConfigDef.Width)."""

    NONE = "NONE"
    SHORT = "SHORT"
    MEDIUM = "MEDIUM"
    LONG = "LONG"


class _NoDefault(Enum):
    NO_DEFAULT = "NO_DEFAULT"


NO_DEFAULT = _NoDefault.NO_DEFAULT
"""The default of a required key: leaving it out is an error."""


class ConfigException(Exception):
    """A config value is invalid or missing; the message is Kafka's wording."""

    @classmethod
    def invalid(cls, name: str, value: Any, reason: Optional[str] = None) -> "ConfigException":
        """Kafka's ``ConfigException(name, value, message)``."""
        suffix = "" if reason is None else f": {reason}"
        return cls(f"Invalid value {format_value(value)} for configuration {name}{suffix}")


@dataclass(frozen=True, repr=False)
class Password:
    """A secret config value; it never shows up in logs, reprs or the validate JSON."""

    value: str

    def __repr__(self) -> str:
        return "[hidden]"

    __str__ = __repr__


def _java_double(value: float) -> str:
    """Java's ``Double.toString``: plain between 10^-3 and 10^7, else ``d.dddE±n``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(value)  # Python's shortest repr is plain (and ends in ".0") in this range
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    power = int(exponent) + len(digits) - 1
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{power}"


def format_value(value: Any) -> str:
    """A value as Kafka prints it in messages (Java's ``toString``: null, true, [a, b], 1.0E10)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def to_config_string(value: Any, type: Optional[ConfigType]) -> Optional[str]:
    """Kafka's ``ConfigDef.convertToString``: a parsed value back to its config-string form."""
    if value is None:
        return None
    if type is ConfigType.LIST:
        return ",".join(format_value(v) for v in value)
    return format_value(value)


# Java's String.trim() strips every char <= U+0020; \s in Java regexes is ASCII-only.
_JAVA_TRIM = "".join(map(chr, range(0x21)))
_LIST_SEPARATOR = re.compile(r"[ \t\n\x0b\f\r]*,[ \t\n\x0b\f\r]*")
_JAVA_INTEGER = re.compile(r"[+-]?[0-9]+")
_JAVA_DOUBLE = re.compile(r"[+-]?(?:NaN|Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?)")
_CLASS_NAME = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
_INTEGER_BITS = {ConfigType.SHORT: 16, ConfigType.INT: 32, ConfigType.LONG: 64}
_INTEGER_KIND = {
    ConfigType.SHORT: "a 16-bit integer (short)",
    ConfigType.INT: "a 32-bit integer",
    ConfigType.LONG: "a 64-bit integer (long)",
}


def _class_of(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _parse_integer(name: str, value: Any, kind: ConfigType) -> int:
    if isinstance(value, str):
        text = value.strip(_JAVA_TRIM)
        if not _JAVA_INTEGER.fullmatch(text):
            raise ConfigException.invalid(name, value, f"Not a number of type {kind.value}")
        number = int(text)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise ConfigException.invalid(
            name, value, f"Expected value to be {_INTEGER_KIND[kind]}, but it was a {_class_of(value)}"
        )
    bound = 1 << (_INTEGER_BITS[kind] - 1)
    if not -bound <= number < bound:
        raise ConfigException.invalid(name, value, f"Not a number of type {kind.value}")
    return number


def _parse_double(name: str, value: Any) -> float:
    if isinstance(value, str):
        text = value.strip(_JAVA_TRIM)
        if not _JAVA_DOUBLE.fullmatch(text):
            raise ConfigException.invalid(name, value, "Not a number of type DOUBLE")
        return float(text.rstrip("fFdD"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ConfigException.invalid(name, value, f"Expected value to be a double, but it was a {_class_of(value)}")


def _parse_text(name: str, value: Any, kind: ConfigType) -> Any:
    """BOOLEAN, STRING, PASSWORD, LIST and CLASS: the types given as text (or already typed)."""
    text = value.strip(_JAVA_TRIM) if isinstance(value, str) else None
    if kind is ConfigType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise ConfigException.invalid(name, value, "Expected value to be either true or false")
    if kind is ConfigType.LIST:
        if isinstance(value, (list, tuple)):
            return list(value)
        if text is None:
            raise ConfigException.invalid(name, value, "Expected a comma separated list.")
        return _LIST_SEPARATOR.split(text) if text else []
    if kind is ConfigType.CLASS:
        if isinstance(value, type):
            return f"{value.__module__}.{value.__qualname__}"
        if text is None:
            raise ConfigException.invalid(name, value, "Expected a Class instance or class name.")
        if not _CLASS_NAME.fullmatch(text):
            raise ConfigException.invalid(name, value, f"Class {value} could not be found.")
        return text
    if kind is ConfigType.PASSWORD and isinstance(value, Password):
        return value
    if text is None:
        raise ConfigException.invalid(name, value, f"Expected value to be a string, but it was a {_class_of(value)}")
    return Password(text) if kind is ConfigType.PASSWORD else text


def parse_value(name: str, value: Any, type: ConfigType) -> Any:
    """Kafka's ``ConfigDef.parseType``: a string (or an already-typed value) to the key's type.

    None stays None. INT/SHORT/LONG are Python ints within Java's ranges,
    DOUBLE a float, BOOLEAN a bool, LIST a list of str, CLASS a dotted name,
    PASSWORD a :class:`Password`.
    """
    type = ConfigType(type)
    if value is None:
        return None
    if type in _INTEGER_BITS:
        return _parse_integer(name, value, type)
    if type is ConfigType.DOUBLE:
        return _parse_double(name, value)
    return _parse_text(name, value, type)


# ---- validators ----------------------------------------------------------------------

Validator = Callable[[str, Any], None]
"""Called with a key's name and parsed value; raises :class:`ConfigException` when the value is bad."""


class Range:
    """A numeric bound (``Range.at_least(1)``, ``Range.between(0, 100)``)."""

    def __init__(self, minimum: Optional[float], maximum: Optional[float]) -> None:
        self.minimum = minimum
        self.maximum = maximum

    @classmethod
    def at_least(cls, minimum: float) -> "Range":
        return cls(minimum, None)

    @classmethod
    def between(cls, minimum: float, maximum: float) -> "Range":
        return cls(minimum, maximum)

    def __call__(self, name: str, value: Any) -> None:
        if value is None:
            raise ConfigException.invalid(name, None, "Value must be non-null")
        if self.minimum is not None and value < self.minimum:
            raise ConfigException.invalid(name, value, f"Value must be at least {format_value(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigException.invalid(name, value, f"Value must be no more than {format_value(self.maximum)}")

    def __str__(self) -> str:
        if self.maximum is None:
            return f"[{format_value(self.minimum)},...]"
        return f"[{format_value(self.minimum)},...,{format_value(self.maximum)}]"


class ValidString:
    """One of a fixed set of strings; case-sensitive (``in_``) or not (``in_ignore_case``) as in Kafka."""

    def __init__(self, values: Sequence[str], case_sensitive: bool) -> None:
        self.case_sensitive = case_sensitive
        self.values = tuple(values) if case_sensitive else tuple(v.upper() for v in values)

    @classmethod
    def in_(cls, *values: str) -> "ValidString":
        return cls(values, case_sensitive=True)

    @classmethod
    def in_ignore_case(cls, *values: str) -> "ValidString":
        return cls(values, case_sensitive=False)

    def __call__(self, name: str, value: Any) -> None:
        if self.case_sensitive:
            if value not in self.values:
                raise ConfigException.invalid(name, value, f"String must be one of: {', '.join(self.values)}")
        elif not isinstance(value, str) or value.upper() not in self.values:
            raise ConfigException.invalid(
                name, value, f"String must be one of (case insensitive): {', '.join(self.values)}"
            )

    def __str__(self) -> str:
        listed = f"[{', '.join(self.values)}]"
        return listed if self.case_sensitive else f"(case insensitive) {listed}"


class ValidList:
    """A list whose every item is one of a fixed set of strings (case-sensitive)."""

    def __init__(self, values: Sequence[str]) -> None:
        self.item = ValidString.in_(*values)

    @classmethod
    def in_(cls, *values: str) -> "ValidList":
        return cls(values)

    def __call__(self, name: str, value: Any) -> None:
        if value is None:
            raise ConfigException(f"Configuration '{name}' values must not be null.")
        for item in value:
            self.item(name, item)

    def __str__(self) -> str:
        return str(self.item)


class NonEmptyString:
    """Rejects ""; None (no value) is left to the key's default/required handling."""

    def __call__(self, name: str, value: Any) -> None:
        if isinstance(value, str) and not value:
            raise ConfigException.invalid(name, value, "String must be non-empty")

    def __str__(self) -> str:
        return "non-empty string"


class NonEmptyStringWithoutControlChars:
    """Kafka's rule for connector names: not empty and no ISO control characters."""

    def __call__(self, name: str, value: Any) -> None:
        if value is None:
            return
        if not value:
            raise ConfigException.invalid(name, value, "String may not be empty")
        controls = [ord(c) for c in value if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F]
        if controls:
            raise ConfigException.invalid(
                name, value,
                "String may not contain control sequences but had the following ASCII chars: "
                + ", ".join(map(str, controls)),
            )

    def __str__(self) -> str:
        return "non-empty string without ISO control characters"


class Recommender(Protocol):
    """Suggests values for a key (and whether to show it) given the other parsed values."""

    def valid_values(self, name: str, parsed: Mapping[str, Any]) -> list[Any]: ...

    def visible(self, name: str, parsed: Mapping[str, Any]) -> bool: ...


# ---- keys, values and the definition ---------------------------------------------------


@dataclass(frozen=True)
class ConfigKey:
    """One defined key; ``default`` is already parsed to ``type`` (or is :data:`NO_DEFAULT`)."""

    name: str
    type: ConfigType
    default: Any
    importance: Importance
    documentation: str
    validator: Optional[Validator] = None
    group: Optional[str] = None
    order_in_group: int = -1
    width: Width = Width.NONE
    display_name: Optional[str] = None
    dependents: tuple[str, ...] = ()
    recommender: Optional[Recommender] = None

    @property
    def required(self) -> bool:
        return self.default is NO_DEFAULT


@dataclass
class ConfigValue:
    """The outcome of validating one key: its parsed value (None if unparseable) and error messages."""

    name: str
    value: Any = None
    recommended_values: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    visible: bool = True


def _missing(name: str) -> str:
    return f'Missing required configuration "{name}" which has no default value.'


def _fresh(value: Any) -> Any:
    """A list default is copied so callers may mutate what ``parse`` returns."""
    return list(value) if isinstance(value, list) else value


class ConfigDef:
    """A set of config keys, defined with :meth:`define` (chainable) and used to parse and validate."""

    def __init__(self) -> None:
        self._keys: dict[str, ConfigKey] = {}

    def define(
        self,
        name: str,
        type: ConfigType,
        default: Any = NO_DEFAULT,
        validator: Optional[Validator] = None,
        importance: Importance = Importance.MEDIUM,
        documentation: str = "",
        group: Optional[str] = None,
        order_in_group: int = -1,
        display_name: Optional[str] = None,
        *,
        width: Width = Width.NONE,
        dependents: Sequence[str] = (),
        recommender: Optional[Recommender] = None,
    ) -> "ConfigDef":
        """Add a key. The default is parsed and validated now, so a bad one fails at definition time."""
        if name in self._keys:
            raise ConfigException(f"Configuration {name} is defined twice.")
        type = ConfigType(type)
        if default is not NO_DEFAULT:
            default = parse_value(name, default, type)
            if validator is not None:
                validator(name, default)
        self._keys[name] = ConfigKey(
            name=name, type=type, default=default, importance=Importance(importance),
            documentation=documentation, validator=validator, group=group, order_in_group=order_in_group,
            width=Width(width), display_name=name if display_name is None else display_name,
            dependents=tuple(dependents), recommender=recommender,
        )
        return self

    @property
    def keys(self) -> Mapping[str, ConfigKey]:
        """The keys in definition order (read-only)."""
        return MappingProxyType(self._keys)

    def names(self) -> list[str]:
        return list(self._keys)

    def groups(self) -> list[str]:
        """The distinct group names, in the order their first key was defined."""
        return list(dict.fromkeys(k.group for k in self._keys.values() if k.group is not None))

    def merge(self, other: "ConfigDef") -> "ConfigDef":
        """A new definition with this one's keys and then ``other``'s.

        A key ``other`` also defines takes ``other``'s definition, as Kafka's
        herder lets a connector's own ConfigDef win over the common one.
        """
        merged = ConfigDef()
        merged._keys = {**self._keys, **other._keys}
        return merged

    def _undefined_dependents(self) -> list[str]:
        named = (d for key in self._keys.values() for d in key.dependents)
        return list(dict.fromkeys(d for d in named if d not in self._keys))

    def parse(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """Every defined key's typed value (given or default); unknown keys are left out.

        Raises :class:`ConfigException` at the first bad or missing value.
        """
        undefined = self._undefined_dependents()
        if undefined:
            raise ConfigException(
                "Some configurations in are referred in the dependents, but not defined: " + ",".join(undefined)
            )
        parsed: dict[str, Any] = {}
        for key in self._keys.values():
            if key.name in props:
                value = parse_value(key.name, props[key.name], key.type)
            elif key.required:
                raise ConfigException(_missing(key.name))
            else:
                value = _fresh(key.default)
            if key.validator is not None:
                key.validator(key.name, value)
            parsed[key.name] = value
        return parsed

    def validate(self, props: Mapping[str, Any]) -> dict[str, ConfigValue]:
        """Every key's :class:`ConfigValue`, collecting all errors instead of raising.

        As in Kafka, a value that fails to parse becomes None and the key's
        validator still runs on it (so e.g. a Range reports "must be non-null"
        too), and recommenders see every parsed value.
        """
        values = {name: ConfigValue(name) for name in self._keys}
        for name in self._undefined_dependents():
            values[name] = ConfigValue(name, errors=[f"{name} is referred in the dependents, but not defined."],
                                       visible=False)
        parsed: dict[str, Any] = {}
        for key in self._keys.values():
            config = values[key.name]
            value = None
            if key.name in props:
                try:
                    value = parse_value(key.name, props[key.name], key.type)
                except ConfigException as exc:
                    config.errors.append(str(exc))
            elif key.required:
                config.errors.append(_missing(key.name))
            else:
                value = _fresh(key.default)
            if key.validator is not None:
                try:
                    key.validator(key.name, value)
                except ConfigException as exc:
                    config.errors.append(str(exc))
            config.value = parsed[key.name] = value
        for key in self._keys.values():
            if key.recommender is not None:
                config = values[key.name]
                try:
                    config.recommended_values = list(key.recommender.valid_values(key.name, parsed))
                    config.visible = key.recommender.visible(key.name, parsed)
                except ConfigException as exc:
                    config.errors.append(str(exc))
        return values

    def validate_response(self, connector_class: str, props: Mapping[str, Any]) -> dict[str, Any]:
        """Kafka's ConfigInfos JSON (the body of ``PUT /connector-plugins/{type}/config/validate``)."""
        values = self.validate(props)
        configs = [{"definition": None, "value": _value_info(v, None)} for n, v in values.items() if n not in self._keys]
        configs += [
            {"definition": _key_info(key), "value": _value_info(values[key.name], key.type)}
            for key in self._keys.values()
        ]
        return {
            "name": connector_class,
            "error_count": sum(len(v.errors) for v in values.values()),
            "groups": self.groups(),
            "configs": configs,
        }


def _key_info(key: ConfigKey) -> dict[str, Any]:
    """Kafka's ConfigKeyInfo."""
    return {
        "name": key.name,
        "type": key.type.value,
        "required": key.required,
        "default_value": None if key.required else to_config_string(key.default, key.type),
        "importance": key.importance.value,
        "documentation": key.documentation,
        "group": key.group,
        "width": key.width.value,
        "display_name": key.display_name,
        "dependents": list(key.dependents),
        "order": key.order_in_group,
    }


def _value_info(value: ConfigValue, type: Optional[ConfigType]) -> dict[str, Any]:
    """Kafka's ConfigValueInfo; a LIST key's recommended values are rendered one item each."""
    item_type = ConfigType.STRING if type is ConfigType.LIST else type
    return {
        "name": value.name,
        "value": to_config_string(value.value, type),
        "recommended_values": [to_config_string(v, item_type) for v in value.recommended_values],
        "errors": list(value.errors),
        "visible": value.visible,
    }


def originals_with_prefix(config: Mapping[str, Any], prefix: str) -> dict[str, str]:
    """Kafka's ``originalsWithPrefix``: every key under ``prefix``, prefix stripped, values as strings."""
    return {key[len(prefix):]: str(value) for key, value in config.items() if key.startswith(prefix)}
