"""Finding connector classes by the names users write in ``connector.class``.

Kafka users write Java class names (``org.apache.kafka.connect.file.FileStreamSourceConnector``,
``io.confluent.connect.jdbc.JdbcSourceConnector``) or Kafka's short aliases (``FileStreamSource``,
``JdbcSource``); Python users write a dotted
path (``pkg.mod.Class`` or ``pkg.mod:Class``) or the name their package
registered under the ``caudal.connectors`` entry-point group, which is how a
pip-installed connector becomes visible without configuring ``plugin.path``.
The bundled connectors are known directly, so they resolve even when the
installed package metadata predates their entry points.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import logging
from typing import Any

from caudal.connect.api import ConnectError, Connector, SinkConnector, SourceConnector
from caudal.connect.file_connectors import (
    FileStreamSinkConnector,
    FileStreamSourceConnector,
)
from caudal.connect.jdbc_sink import JdbcSinkConnector
from caudal.connect.jdbc_source import JdbcSourceConnector
from caudal.connect.mirror import MirrorCheckpointConnector, MirrorSourceConnector

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "caudal.connectors"

_JAVA_PACKAGES: dict[str, tuple[type[Connector], ...]] = {
    "org.apache.kafka.connect.file": (FileStreamSourceConnector, FileStreamSinkConnector),
    "io.confluent.connect.jdbc": (JdbcSourceConnector, JdbcSinkConnector),
    "org.apache.kafka.connect.mirror": (MirrorSourceConnector, MirrorCheckpointConnector),
}
_BUNDLED: dict[str, type[Connector]] = {
    f"{package}.{cls.__name__}": cls for package, classes in _JAVA_PACKAGES.items() for cls in classes
}
"""The bundled connectors by their Java class name (Kafka's or Confluent's), which is what
``/connector-plugins`` reports."""


def _aliases(kafka_name: str) -> list[str]:
    """Kafka's aliases of a plugin: its simple name, and that name without a ``Connector`` suffix."""
    simple = kafka_name.rsplit(".", 1)[-1]
    return [kafka_name, simple, simple.removesuffix("Connector")]


_BUNDLED_NAMES = {alias: cls for name, cls in _BUNDLED.items() for alias in _aliases(name)}


def connector_type(cls: type[Connector]) -> str:
    """``"source"`` or ``"sink"``, as ``/connector-plugins`` reports it."""
    if issubclass(cls, SourceConnector):
        return "source"
    if issubclass(cls, SinkConnector):
        return "sink"
    raise ConnectError(f"{_qualified_name(cls)} is neither a SourceConnector nor a SinkConnector")


def _qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _checked(found: Any, name: str) -> type[Connector]:
    """``found`` if it is a concrete source or sink connector class, else a ConnectError saying why."""
    if not (isinstance(found, type) and issubclass(found, Connector)):
        raise ConnectError(f"Connector class {name} resolves to {found!r}, which is not a Connector subclass")
    if inspect.isabstract(found):
        raise ConnectError(f"Connector class {name} is abstract and cannot be instantiated")
    connector_type(found)
    return found


def _entry_points() -> importlib.metadata.EntryPoints:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _import(name: str) -> Any:
    """The object a dotted path names: ``pkg.mod:Outer.Inner`` or ``pkg.mod.Outer.Inner``; None if none.

    Without a colon the longest importable module prefix is taken. An error
    raised while importing an existing module (a bug, a missing dependency) is
    reported as such rather than as "not found".
    """
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        splits = [(module_name, attribute.split("."))]
    else:
        parts = name.split(".")
        splits = [(".".join(parts[:i]), parts[i:]) for i in range(len(parts) - 1, 0, -1)]
    for module_name, attributes in splits:
        try:
            found: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
                continue  # this prefix is not a module; try a shorter one
            raise ConnectError(f"Failed to import module {module_name} for connector class {name}: {exc}") from exc
        except Exception as exc:
            raise ConnectError(f"Failed to import module {module_name} for connector class {name}: {exc!r}") from exc
        for attribute in attributes:
            found = getattr(found, attribute, None)
        return found
    return None


def connector_class(name: str) -> type[Connector]:
    """The connector class ``name`` refers to (a Kafka name or alias, an entry-point name or a dotted path)."""
    name = name.strip()
    if name in _BUNDLED_NAMES:
        return _BUNDLED_NAMES[name]
    entry = next(iter(_entry_points().select(name=name)), None)
    if entry is not None:
        try:
            loaded = entry.load()
        except Exception as exc:
            raise ConnectError(f"Failed to load connector {name} ({entry.value}): {exc!r}") from exc
        return _checked(loaded, name)
    found = _import(name) if name and all(part.isidentifier() for part in name.replace(":", ".").split(".")) else None
    if found is None:
        known = sorted({*_BUNDLED, *(entry.name for entry in _entry_points())})
        raise ConnectError(
            f"Failed to find any class that implements Connector and which name matches {name}, "
            f"available connectors are: {', '.join(known)}"
        )
    return _checked(found, name)


def _describe(class_name: str, cls: type[Connector]) -> dict[str, str]:
    return {"class": class_name, "type": connector_type(cls), "version": str(cls().version())}


def plugins() -> list[dict[str, str]]:
    """``GET /connector-plugins``: the bundled and entry-point connectors, sorted by class name.

    Bundled connectors are listed by their Kafka class name, others by their
    Python qualified name (which :func:`connector_class` accepts). An entry
    point that fails to load or instantiate is logged and left out, as Kafka
    leaves out plugins it cannot load.
    """
    described = {cls: _describe(name, cls) for name, cls in _BUNDLED.items()}
    for entry in _entry_points():
        try:
            cls = _checked(entry.load(), entry.name)
            if cls not in described:
                described[cls] = _describe(_qualified_name(cls), cls)
        except Exception as exc:
            log.warning("event=connector_plugin_skipped entry_point=%r value=%r error=%r", entry.name, entry.value, exc)
    return sorted(described.values(), key=lambda plugin: plugin["class"])
