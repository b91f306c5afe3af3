"""Predicates: conditions that decide whether a transformation applies to a record (Kafka's KIP-585).

A connector config declares them under ``predicates`` and a transformation
refers to one with ``transforms.<alias>.predicate`` (optionally ``negate``); the
:class:`~caudal.connect.transforms.TransformationChain` evaluates them. The three
built-ins are Kafka's, with Kafka's class names and config keys, so existing
connector configs work unchanged. Their regexes are written for Java, so
:func:`java_regex` accepts Java's named-group syntax too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from caudal.connect.api import ConnectRecord
from caudal.connect.config_def import (
    ConfigDef,
    ConfigException,
    ConfigType,
    Importance,
    NonEmptyString,
)
from caudal.connect.converters import load_class, parse_config

_JAVA_NAMED_GROUP = re.compile(r"\\.|\(\?<(?=[A-Za-z])")


def java_regex(pattern: str) -> re.Pattern[str]:
    """A Java regex compiled for Python: ``(?<name>...)`` becomes ``(?P<name>...)``; bad ones raise ``re.error``."""
    return re.compile(_JAVA_NAMED_GROUP.sub(lambda m: "(?P<" if m.group() == "(?<" else m.group(), pattern))


def valid_regex(name: str, value: Any) -> None:
    """A ConfigDef validator: a non-empty, valid regex (Kafka's NonEmptyString + RegexValidator)."""
    NonEmptyString()(name, value)
    try:
        java_regex(value)
    except re.error as exc:
        raise ConfigException.invalid(name, value, f"Invalid regex: {exc}") from exc


class Predicate(Protocol):
    """A condition on a record (Kafka's ``org.apache.kafka.connect.transforms.predicates.Predicate``)."""

    def configure(self, props: Mapping[str, str]) -> None: ...

    def test(self, record: ConnectRecord) -> bool: ...


class TopicNameMatches:
    """True when the record's whole topic name matches ``pattern``."""

    CONFIG_DEF = ConfigDef().define(
        "pattern", ConfigType.STRING,
        validator=valid_regex, importance=Importance.MEDIUM,
        documentation="A Java regular expression for matching against the name of a record's topic.",
    )

    def configure(self, props: Mapping[str, str]) -> None:
        self.pattern = java_regex(parse_config(self.CONFIG_DEF, props, "TopicNameMatches")["pattern"])

    def test(self, record: ConnectRecord) -> bool:
        return record.topic is not None and self.pattern.fullmatch(record.topic) is not None


class HasHeaderKey:
    """True when the record has at least one header called ``name``."""

    CONFIG_DEF = ConfigDef().define(
        "name", ConfigType.STRING, validator=NonEmptyString(), importance=Importance.MEDIUM,
        documentation="The header name.",
    )

    def configure(self, props: Mapping[str, str]) -> None:
        self.name = parse_config(self.CONFIG_DEF, props, "HasHeaderKey")["name"]

    def test(self, record: ConnectRecord) -> bool:
        return any(key == self.name for key, _ in record.headers)


class RecordIsTombstone:
    """True when the record's value is null (a tombstone)."""

    CONFIG_DEF = ConfigDef()

    def configure(self, props: Mapping[str, str]) -> None:
        """There is nothing to configure."""

    def test(self, record: ConnectRecord) -> bool:
        return record.value is None


_PACKAGE = "org.apache.kafka.connect.transforms.predicates"
PREDICATES: Mapping[str, type[Predicate]] = {
    f"{_PACKAGE}.{cls.__name__}": cls for cls in (TopicNameMatches, HasHeaderKey, RecordIsTombstone)
}


def predicate_for(class_name: str) -> Predicate:
    """A new, unconfigured predicate by Kafka class name, short name or Python path."""
    return load_class(class_name, PREDICATES, "predicate")()

