"""Kafka's FileStreamSource and FileStreamSink connectors, with Kafka's config keys and behaviour.

They are the connectors of Kafka's quickstart, so a user's
``connect-file-source.properties`` and ``connect-file-sink.properties`` run
unchanged. The source tails a file line by line and stores the byte position
after each line as its source offset, so a restarted task resumes right after
the last acknowledged line (a partial last line is held back until its line
end arrives, so it is never emitted in two pieces). The sink appends each
record's value as a line and fsyncs on ``flush``, so the worker commits
consumer offsets only for lines that are on disk. Without ``file`` they use
stdin/stdout, as Kafka's do.
"""

from __future__ import annotations

import logging
import os
import re
import select
import sys
import threading
import time
from typing import Optional, TextIO

from caudal.connect.api import (
    ConnectError,
    Connector,
    Schema,
    SinkConnector,
    SinkRecord,
    SinkTask,
    SourceConnector,
    SourceRecord,
    SourceTask,
    Task,
    Type,
)
from caudal.connect.config_def import (
    NO_DEFAULT,
    ConfigDef,
    ConfigType,
    Importance,
    NonEmptyString,
    Range,
)

import caudal

log = logging.getLogger(__name__)

FILE_CONFIG = "file"
TOPIC_CONFIG = "topic"
TASK_BATCH_SIZE_CONFIG = "batch.size"
DEFAULT_TASK_BATCH_SIZE = 2000
FILENAME_FIELD = "filename"
POSITION_FIELD = "position"
VALUE_SCHEMA = Schema(Type.STRING)


class _SingleTaskConnector(Connector):
    """Validates its config on start and hands all of it to its one task: one stream makes one task."""

    def version(self) -> str:
        return caudal.__version__

    def start(self, config: dict[str, str]) -> None:
        self.CONFIG_DEF.parse(config)
        self._config = dict(config)

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return [dict(self._config)]


class FileStreamSourceTask(SourceTask):
    """Reads lines from a file (or stdin), resuming at the stored byte position."""

    idle_wait_s = 1.0
    """How long ``poll`` waits when there is no new line before returning None (Kafka waits 1 s)."""
    read_size = 64 * 1024
    # Kafka's line ends: \n, \r\n or a lone \r (which needs the next byte to tell it from \r\n).
    _LINE_END = re.compile(rb"\r\n|\n|\r(?=[^\n])")

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # held while reading, so stop() never closes the file under a read
        self._fd: Optional[int] = None
        self._missing_logged = False

    def start(self, config: dict[str, str]) -> None:
        parsed = FileStreamSourceConnector.CONFIG_DEF.parse(config)
        self._filename: Optional[str] = parsed[FILE_CONFIG] or None
        self._topic: str = parsed[TOPIC_CONFIG]
        self._batch_size: int = parsed[TASK_BATCH_SIZE_CONFIG]
        self._buffer = b""
        self._scan = 0  # where the next line starts in the buffer
        self._base = 0  # the stream position of buffer[0]
        # One partition dict for all records: the worker tracks positions by partition identity.
        self._source_partition = {FILENAME_FIELD: self._filename}
        if self._filename is not None:
            stored = self.context.offset_storage_reader.offset({FILENAME_FIELD: self._filename})
            position = (stored or {}).get(POSITION_FIELD, 0)
            if isinstance(position, bool) or not isinstance(position, int) or position < 0:
                raise ConnectError(f"Offset position {position!r} of {self._filename} is not a byte position")
            self._base = position

    def poll(self) -> Optional[list[SourceRecord]]:
        with self._lock:
            if self._stopping.is_set():
                return None
            records = self._read_lines() if self._open() else []
        if records:
            return records
        self._stopping.wait(self.idle_wait_s)
        return None

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self._fd is not None and self._filename is not None:
                os.close(self._fd)
            self._fd = None

    def _open(self) -> bool:
        """Open the stream at the resume position; False while the file does not exist yet."""
        if self._fd is not None:
            return True
        if self._filename is None:
            self._fd = sys.stdin.fileno()
            return True
        try:
            fd = os.open(self._filename, os.O_RDONLY)
        except FileNotFoundError:
            if not self._missing_logged:
                log.warning("event=file_source_waiting file=%r reason=not_found", self._filename)
                self._missing_logged = True
            return False
        except OSError as exc:
            raise ConnectError(f"Cannot open {self._filename}: {exc}") from exc
        os.lseek(fd, self._base, os.SEEK_SET)
        self._fd = fd
        return True

    def _read(self) -> bytes:
        """The bytes available now, without blocking (b"" if none)."""
        assert self._fd is not None
        if self._filename is None and not select.select([self._fd], [], [], 0)[0]:
            return b""
        try:
            return os.read(self._fd, self.read_size)
        except OSError as exc:
            raise ConnectError(f"Cannot read {self._filename or 'stdin'}: {exc}") from exc

    def _read_lines(self) -> list[SourceRecord]:
        records: list[SourceRecord] = []
        wanted = self._batch_size
        timestamp = int(time.time() * 1000)
        while len(records) < wanted:
            buffer, scan = self._buffer, self._scan
            for end in self._LINE_END.finditer(buffer, scan):
                records.append(self._record(buffer[scan : end.start()].decode("utf-8", errors="replace"), self._base + end.end(), timestamp))
                scan = end.end()
                if len(records) == wanted:
                    break
            self._scan = scan
            if len(records) == wanted:
                break
            chunk = self._read()
            if not chunk:
                break
            self._buffer = buffer[scan:] + chunk
            self._base += scan
            self._scan = 0
        return records

    def _record(self, line: str, position: int, timestamp: int) -> SourceRecord:
        # Like Kafka, stdin has no resumable position: its records carry a null one.
        return SourceRecord(
            topic=self._topic, kafka_partition=None, key=None, value=line, value_schema=VALUE_SCHEMA, timestamp=timestamp,
            source_partition=self._source_partition,
            source_offset={POSITION_FIELD: position if self._filename is not None else None},
        )


class FileStreamSourceConnector(_SingleTaskConnector, SourceConnector):
    """Kafka's ``org.apache.kafka.connect.file.FileStreamSourceConnector``."""

    CONFIG_DEF = (
        ConfigDef()
        .define(FILE_CONFIG, ConfigType.STRING, None, importance=Importance.HIGH,
                documentation="Source filename. If not specified, the standard input will be used")
        .define(TOPIC_CONFIG, ConfigType.STRING, NO_DEFAULT, NonEmptyString(), Importance.HIGH,
                "The topic to publish data to")
        .define(TASK_BATCH_SIZE_CONFIG, ConfigType.INT, DEFAULT_TASK_BATCH_SIZE, Range.at_least(1), Importance.LOW,
                "The maximum number of records the source task can read from the file each time it is polled")
    )

    def task_class(self) -> type[Task]:
        return FileStreamSourceTask


class FileStreamSinkTask(SinkTask):
    """Appends each record's value as a line to a file (or stdout)."""

    def start(self, config: dict[str, str]) -> None:
        filename = FileStreamSinkConnector.CONFIG_DEF.parse(config)[FILE_CONFIG]
        self._owned = bool(filename)
        try:
            self._out: TextIO = open(filename, "a", encoding="utf-8") if filename else sys.stdout
        except OSError as exc:
            raise ConnectError(f"Couldn't find or create file '{filename}' for FileStreamSinkTask: {exc}") from exc

    def put(self, records: list[SinkRecord]) -> None:
        for record in records:
            self._out.write(f"{record.value}\n")

    def flush(self, offsets: dict[tuple[str, int], int]) -> None:
        self._out.flush()
        if self._owned:
            os.fsync(self._out.fileno())

    def stop(self) -> None:
        if self._owned:
            self._out.close()


class FileStreamSinkConnector(_SingleTaskConnector, SinkConnector):
    """Kafka's ``org.apache.kafka.connect.file.FileStreamSinkConnector`` (``topics`` is the common sink key)."""

    CONFIG_DEF = ConfigDef().define(
        FILE_CONFIG, ConfigType.STRING, None, importance=Importance.HIGH,
        documentation="Destination filename. If not specified, the standard output will be used",
    )

    def task_class(self) -> type[Task]:
        return FileStreamSinkTask
