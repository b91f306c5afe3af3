"""Connector lookup, the FileStream connectors and the source-offset stores."""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

import caudal
from caudal.connect import offset_store as offset_store_module
from caudal.connect import plugins as plugins_module
from caudal.connect.api import (
    ConnectError,
    Connector,
    SinkRecord,
    SinkTask,
    SourceConnector,
    SourceRecord,
    SourceTask,
    SourceTaskContext,
    Task,
    Type,
)
from caudal.connect.config_def import ConfigException
from caudal.connect.file_connectors import (
    FileStreamSinkConnector,
    FileStreamSinkTask,
    FileStreamSourceConnector,
    FileStreamSourceTask,
)
from caudal.connect.offset_store import FileOffsetStore, MemoryOffsetStore, offset_key
from caudal.connect.plugins import connector_class, connector_type, plugins

# ---- connectors for the lookup tests ----------------------------------------------------


class _NoopSourceTask(SourceTask):
    def start(self, config: dict[str, str]) -> None:
        pass

    def poll(self) -> Optional[list[SourceRecord]]:
        return None

    def stop(self) -> None:
        pass


class EchoSource(SourceConnector):
    def version(self) -> str:
        return "7.7"

    def start(self, config: dict[str, str]) -> None:
        pass

    def task_class(self) -> type[Task]:
        return _NoopSourceTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return [{}]


class Outer:
    class InnerSink(FileStreamSinkConnector):
        pass


class NeitherSourceNorSink(Connector):
    def start(self, config: dict[str, str]) -> None:
        pass

    def task_class(self) -> type[Task]:
        return _NoopSourceTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return []


class NotAConnector:
    pass


HERE = __name__


def _use_entry_points(monkeypatch: pytest.MonkeyPatch, **entries: str) -> None:
    points = importlib.metadata.EntryPoints(
        importlib.metadata.EntryPoint(name, value, plugins_module.ENTRY_POINT_GROUP) for name, value in entries.items()
    )
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: points.select(**kw))


# ---- plugins ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("org.apache.kafka.connect.file.FileStreamSourceConnector", FileStreamSourceConnector),
        ("org.apache.kafka.connect.file.FileStreamSinkConnector", FileStreamSinkConnector),
        ("FileStreamSource", FileStreamSourceConnector),
        ("FileStreamSourceConnector", FileStreamSourceConnector),
        ("FileStreamSink", FileStreamSinkConnector),
        (" FileStreamSinkConnector ", FileStreamSinkConnector),
        ("caudal.connect.file_connectors.FileStreamSourceConnector", FileStreamSourceConnector),
        ("caudal.connect.file_connectors:FileStreamSinkConnector", FileStreamSinkConnector),
        (f"{HERE}.EchoSource", EchoSource),
        (f"{HERE}:EchoSource", EchoSource),
        (f"{HERE}.Outer.InnerSink", Outer.InnerSink),
        (f"{HERE}:Outer.InnerSink", Outer.InnerSink),
    ],
)
def test_connector_class_by_kafka_name_alias_and_dotted_path(name: str, expected: type) -> None:
    assert connector_class(name) is expected


def test_bundled_connectors_resolve_without_package_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    _use_entry_points(monkeypatch)
    assert connector_class("FileStreamSource") is FileStreamSourceConnector
    assert [p["class"] for p in plugins()] == [
        "io.confluent.connect.jdbc.JdbcSinkConnector",
        "io.confluent.connect.jdbc.JdbcSourceConnector",
        "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "org.apache.kafka.connect.mirror.MirrorCheckpointConnector",
        "org.apache.kafka.connect.mirror.MirrorSourceConnector",
    ]


def test_entry_point_connectors_by_entry_name_and_qualified_name(monkeypatch: pytest.MonkeyPatch) -> None:
    _use_entry_points(monkeypatch, echo=f"{HERE}:EchoSource")
    assert connector_class("echo") is EchoSource
    assert connector_class(f"{HERE}.EchoSource") is EchoSource


def test_plugins_lists_bundled_and_entry_point_connectors_sorted(monkeypatch: pytest.MonkeyPatch) -> None:
    _use_entry_points(
        monkeypatch,
        echo=f"{HERE}:EchoSource",
        FileStreamSource="caudal.connect.file_connectors:FileStreamSourceConnector",
        inner=f"{HERE}:Outer.InnerSink",
    )
    listed = plugins()
    assert listed == sorted(
        [
            {"class": "io.confluent.connect.jdbc.JdbcSinkConnector", "type": "sink", "version": caudal.__version__},
            {"class": "io.confluent.connect.jdbc.JdbcSourceConnector", "type": "source", "version": caudal.__version__},
            {"class": "org.apache.kafka.connect.file.FileStreamSinkConnector", "type": "sink",
             "version": caudal.__version__},
            {"class": "org.apache.kafka.connect.file.FileStreamSourceConnector", "type": "source",
             "version": caudal.__version__},
            {"class": "org.apache.kafka.connect.mirror.MirrorCheckpointConnector", "type": "source",
             "version": caudal.__version__},
            {"class": "org.apache.kafka.connect.mirror.MirrorSourceConnector", "type": "source",
             "version": caudal.__version__},
            {"class": f"{HERE}.EchoSource", "type": "source", "version": "7.7"},
            {"class": f"{HERE}.Outer.InnerSink", "type": "sink", "version": caudal.__version__},
        ],
        key=lambda p: p["class"],
    )
    for plugin in listed:  # every listed class name is accepted back
        assert connector_type(connector_class(plugin["class"])) == plugin["type"]


def test_installed_metadata_registers_the_bundled_connectors() -> None:
    registered = {e.name: e.value for e in importlib.metadata.entry_points(group=plugins_module.ENTRY_POINT_GROUP)}
    if not registered:
        pytest.skip("package metadata predates the caudal.connectors entry points (reinstall to refresh)")
    assert registered["FileStreamSource"] == "caudal.connect.file_connectors:FileStreamSourceConnector"
    assert registered["FileStreamSink"] == "caudal.connect.file_connectors:FileStreamSinkConnector"


def test_broken_entry_point_is_an_error_when_named_and_skipped_in_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    _use_entry_points(monkeypatch, broken="caudal_no_such_module_xyz:Thing", echo=f"{HERE}:EchoSource")
    with pytest.raises(ConnectError, match="Failed to load connector broken"):
        connector_class("broken")
    assert f"{HERE}.EchoSource" in [p["class"] for p in plugins()]


@pytest.mark.parametrize(
    "name, message",
    [
        ("NoSuchConnector", "Failed to find any class that implements Connector and which name matches NoSuchConnector"),
        ("org.apache.kafka.connect.file.Nope", "which name matches org.apache.kafka.connect.file.Nope"),
        ("caudal_no_such_module_xyz.Thing", "which name matches caudal_no_such_module_xyz.Thing"),
        (f"{HERE}.Missing", f"which name matches {HERE}.Missing"),
        ("", "which name matches"),
        (f"{HERE}.NotAConnector", "not a Connector subclass"),
        (f"{HERE}.HERE", "not a Connector subclass"),
        ("caudal.connect.api.SourceConnector", "abstract"),
        (f"{HERE}.NeitherSourceNorSink", "neither a SourceConnector nor a SinkConnector"),
    ],
)
def test_connector_class_errors(name: str, message: str) -> None:
    with pytest.raises(ConnectError, match=message.replace(".", r"\.")):
        connector_class(name)


def test_unknown_connector_error_lists_the_available_ones() -> None:
    with pytest.raises(ConnectError, match="available connectors are: .*FileStreamSourceConnector"):
        connector_class("Nope")


@pytest.mark.parametrize("body", ["raise RuntimeError('boom')", "import caudal_missing_dependency_xyz"])
def test_a_module_that_fails_to_import_is_reported_as_such(
    body: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "caudal_failing_plugin_mod.py").write_text(body + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "caudal_failing_plugin_mod", raising=False)
    with pytest.raises(ConnectError, match="Failed to import module caudal_failing_plugin_mod"):
        connector_class("caudal_failing_plugin_mod.Connector")


def test_connector_type() -> None:
    assert connector_type(FileStreamSourceConnector) == "source"
    assert connector_type(FileStreamSinkConnector) == "sink"
    with pytest.raises(ConnectError):
        connector_type(NeitherSourceNorSink)


# ---- FileStreamSource -------------------------------------------------------------------


def _source_task(
    path: Optional[Path], store: Optional[MemoryOffsetStore] = None, **extra: str
) -> FileStreamSourceTask:
    config = {"topic": "lines", **({"file": str(path)} if path is not None else {}), **extra}
    task = FileStreamSourceTask()
    task.idle_wait_s = 0.05
    task.initialize(SourceTaskContext((store or MemoryOffsetStore()).reader("file-source"), config))
    task.start(config)
    return task


def _values(records: Optional[list[SourceRecord]]) -> list[Any]:
    return [r.value for r in records or []]


def test_source_connector_config_and_single_task() -> None:
    connector = FileStreamSourceConnector()
    props = {"name": "s", "file": "/tmp/x", "topic": "t", "tasks.max": "4"}
    connector.start(props)
    assert connector.task_configs(4) == [props]
    assert connector.task_class() is FileStreamSourceTask
    assert connector.version() == caudal.__version__
    parsed = FileStreamSourceConnector.CONFIG_DEF.parse({"topic": "t"})
    assert parsed == {"file": None, "topic": "t", "batch.size": 2000}
    with pytest.raises(ConfigException, match="topic"):
        FileStreamSourceConnector().start({"file": "/tmp/x"})
    with pytest.raises(ConfigException, match="batch.size"):
        FileStreamSourceConnector().start({"topic": "t", "batch.size": "0"})


def test_source_reads_lines_with_byte_positions(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes("héllo\nworld\r\nthird\rfourth\n".encode())
    task = _source_task(path)
    records = task.poll()
    assert records is not None
    assert _values(records) == ["héllo", "world", "third", "fourth"]
    assert [r.source_offset for r in records] == [{"position": 7}, {"position": 14}, {"position": 20}, {"position": 27}]
    first = records[0]
    assert (first.topic, first.kafka_partition, first.key) == ("lines", None, None)
    assert first.value_schema is not None and first.value_schema.type is Type.STRING
    assert first.source_partition == {"filename": str(path)}
    assert task.poll() is None
    task.stop()


def test_source_holds_back_a_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"one\ntw")
    task = _source_task(path)
    assert _values(task.poll()) == ["one"]
    assert task.poll() is None
    with path.open("ab") as f:
        f.write(b"o\r")  # a trailing \r may still become \r\n
    assert task.poll() is None
    with path.open("ab") as f:
        f.write(b"\nthree\n")
    records = task.poll()
    assert _values(records) == ["two", "three"]
    assert records is not None and records[0].source_offset == {"position": 9}
    task.stop()


def test_source_batch_size_limits_each_poll(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text("".join(f"line{i}\n" for i in range(5)))
    task = _source_task(path, **{"batch.size": "2"})
    assert [_values(task.poll()) for _ in range(3)] == [["line0", "line1"], ["line2", "line3"], ["line4"]]
    assert task.poll() is None
    task.stop()


def test_source_resumes_from_the_stored_offset(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text("a\nb\nc\n")
    store = MemoryOffsetStore()
    first = _source_task(path, store)
    records = first.poll()
    assert records is not None
    first.stop()
    store.put("file-source", [(records[1].source_partition, records[1].source_offset)])
    resumed = _source_task(path, store)
    assert _values(resumed.poll()) == ["c"]
    resumed.stop()


def test_source_rejects_a_stored_offset_that_is_not_a_position(tmp_path: Path) -> None:
    store = MemoryOffsetStore()
    store.put("file-source", [({"filename": str(tmp_path / "in.txt")}, {"position": "12"})])
    with pytest.raises(ConnectError, match="not a byte position"):
        _source_task(tmp_path / "in.txt", store)


def test_source_waits_for_the_file_to_appear(tmp_path: Path) -> None:
    path = tmp_path / "later.txt"
    task = _source_task(path)
    started = time.monotonic()
    assert task.poll() is None
    assert time.monotonic() - started >= 0.04  # waited, not a busy loop
    path.write_text("finally\n")
    assert _values(task.poll()) == ["finally"]
    task.stop()


def test_stop_unblocks_a_waiting_poll(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text("")
    task = _source_task(path)
    task.idle_wait_s = 30.0
    result: list[Any] = []
    poller = threading.Thread(target=lambda: result.append(task.poll()))
    poller.start()
    time.sleep(0.2)
    started = time.monotonic()
    task.stop()
    poller.join(timeout=5)
    assert not poller.is_alive()
    assert time.monotonic() - started < 1.0
    assert result == [None]
    assert task.poll() is None  # after stop, poll returns at once


def test_default_idle_wait_is_bounded() -> None:
    assert 0 < FileStreamSourceTask.idle_wait_s <= 1.0


def test_source_reads_stdin_without_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as stdin, os.fdopen(write_fd, "wb") as writer:
        monkeypatch.setattr(sys, "stdin", stdin)
        task = _source_task(None)
        assert task.poll() is None  # nothing written yet: no blocking read
        writer.write(b"from stdin\n")
        writer.flush()
        records = task.poll()
        assert _values(records) == ["from stdin"]
        assert records is not None
        assert (records[0].source_partition, records[0].source_offset) == ({"filename": None}, {"position": None})
        task.stop()


# ---- FileStreamSink -----------------------------------------------------------------------


def _sink_record(value: Any, offset: int) -> SinkRecord:
    return SinkRecord(topic="t", kafka_partition=0, key=None, value=value, kafka_offset=offset)


def test_sink_connector_config_and_single_task() -> None:
    connector = FileStreamSinkConnector()
    props = {"name": "k", "file": "/tmp/out", "topics": "a,b"}
    connector.start(props)
    assert connector.task_configs(3) == [props]
    assert connector.task_class() is FileStreamSinkTask
    assert FileStreamSinkConnector.CONFIG_DEF.parse({}) == {"file": None}


def test_sink_appends_values_as_lines_and_flushes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.txt"
    path.write_text("existing\n")
    task: SinkTask = FileStreamSinkTask()
    task.start({"file": str(path), "topics": "t"})
    task.put([_sink_record("one", 0), _sink_record(2, 1), _sink_record({"k": 1}, 2)])
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    task.flush({("t", 0): 3})
    assert synced
    assert path.read_text() == "existing\none\n2\n{'k': 1}\n"
    task.stop()


def test_sink_writes_to_stdout_without_file(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    task = FileStreamSinkTask()
    task.start({"topics": "t"})
    task.put([_sink_record("to stdout", 0)])
    task.flush({})
    task.stop()
    assert out.getvalue() == "to stdout\n" and not out.closed


# ---- offset stores ------------------------------------------------------------------------


def test_offset_keys_and_values_are_kafkas_json_form(tmp_path: Path) -> None:
    assert offset_key("conn", {"z": 1, "filename": "a b"}) == '["conn",{"filename":"a b","z":1}]'
    path = tmp_path / "offsets.json"
    FileOffsetStore(path).put("conn", [({"filename": "x"}, {"position": 3, "a": True})])
    assert json.loads(path.read_text()) == {'["conn",{"filename":"x"}]': '{"a":true,"position":3}'}


def test_file_offset_store_round_trips_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "offsets.json"
    store = FileOffsetStore(path)
    assert store.get("c", {"f": 1}) is None and store.all("c") == []
    store.put("c", [({"f": 1}, {"pos": 10}), ({"f": 2}, {"pos": 20})])
    store.put("other", [({"f": 1}, {"pos": 99})])
    store.put("c", [({"f": 2}, None), ({"f": 1}, {"pos": 11})])
    reopened = FileOffsetStore(path)
    assert reopened.get("c", {"f": 1}) == {"pos": 11}
    assert reopened.get("c", {"f": 2}) is None
    assert reopened.all("c") == [({"f": 1}, {"pos": 11})]
    assert reopened.all("other") == [({"f": 1}, {"pos": 99})]
    assert os.listdir(path.parent) == ["offsets.json"]  # no temp files left behind


def test_file_offset_store_replaces_the_file_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "offsets.json"
    store = FileOffsetStore(path)
    store.put("c", [({"f": 1}, {"pos": 1})])
    before = path.read_bytes()
    inode = path.stat().st_ino

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(offset_store_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk on fire"):
        store.put("c", [({"f": 1}, {"pos": 2})])
    assert path.read_bytes() == before
    assert store.get("c", {"f": 1}) == {"pos": 1}  # a failed put is not published
    assert os.listdir(tmp_path) == ["offsets.json"]
    monkeypatch.undo()
    store.put("c", [({"f": 1}, {"pos": 3})])
    assert path.stat().st_ino != inode  # replaced, not rewritten in place
    assert os.listdir(tmp_path) == ["offsets.json"]


@pytest.mark.parametrize(
    "content",
    ["{not json", "[1, 2]", '{"plain-key": "{}"}', '{"[\\"c\\",{}]": 5}', '{"[\\"c\\",{}]": "{oops"}'],
)
def test_corrupt_offsets_file_names_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "offsets.json"
    path.write_text(content)
    with pytest.raises(ConnectError, match=f"Offsets file {path} is corrupt"):
        FileOffsetStore(path)


def test_empty_offsets_file_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "offsets.json"
    path.write_text("")
    assert FileOffsetStore(path).all("c") == []


def test_file_offset_store_is_thread_safe(tmp_path: Path) -> None:
    path = tmp_path / "offsets.json"
    store = FileOffsetStore(path)

    def writer(n: int) -> None:
        for i in range(10):
            store.put("c", [({"writer": n, "i": i}, {"pos": i})])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(FileOffsetStore(path).all("c")) == 40


def test_memory_offset_store() -> None:
    store = MemoryOffsetStore()
    store.put("c", [({"p": 1}, {"o": [1, 2]})])
    got = store.get("c", {"p": 1})
    assert got == {"o": [1, 2]}
    assert got is not None
    got["o"].append(3)  # callers get copies
    assert store.get("c", {"p": 1}) == {"o": [1, 2]}
    store.apply({offset_key("c", {"p": 2}): '{"o":5}', offset_key("c", {"p": 1}): None})
    assert store.all("c") == [({"p": 2}, {"o": 5})]
    assert store.all("nobody") == []
    with pytest.raises(ConnectError, match="not JSON"):
        store.put("c", [({"p": object()}, {"o": 1})])
    with pytest.raises(ConnectError, match="not JSON"):
        store.put("c", [({"p": 3}, {"o": object()})])
    assert MemoryOffsetStore({offset_key("c", {"p": 9}): "{}"}).get("c", {"p": 9}) == {}


def test_reader_is_bound_to_one_connector_and_sees_later_puts() -> None:
    store = MemoryOffsetStore()
    reader = store.reader("a")
    assert reader.offset({"filename": "f"}) is None
    store.put("a", [({"filename": "f"}, {"position": 4})])
    store.put("b", [({"filename": "g"}, {"position": 8})])
    assert reader.offset({"filename": "f"}) == {"position": 4}
    assert reader.offset({"filename": "g"}) is None
    assert store.reader("b").offset({"filename": "g"}) == {"position": 8}
    store.put("a", [({"filename": "f"}, None)])
    assert reader.offset({"filename": "f"}) is None
