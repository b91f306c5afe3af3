"""The controller front end: validates admin requests and commits their records.

Handlers in :mod:`caudal.controller.control` decide; this class serialises
those decisions (one at a time, so each sees the effect of the previous one),
appends their records through the quorum, and fans committed batches out to
subscribers (the co-located broker in ``caudal dev``; WatchMetadata streams in
a cluster). Owned by the process's asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Callable, Protocol

from caudal.common.metadata import MetadataImage
from caudal.controller import control
from caudal.controller.control import ControllerDefaults
from caudal.controller.local_quorum import LocalQuorum
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import metadata_pb2 as md

log = logging.getLogger(__name__)

MetadataListener = Callable[[md.MetadataBatch], None]


class Quorum(Protocol):
    version: int

    def open(self) -> None: ...

    async def append(self, records: list[md.MetadataRecord]) -> md.MetadataBatch: ...

    def close(self) -> None: ...


class Controller:
    """Cluster metadata owner for one quorum member."""

    def __init__(self, node_id: int, data_dir: Path, defaults: ControllerDefaults = ControllerDefaults()) -> None:
        self.node_id = node_id
        self.cluster_id = ""
        self.image = MetadataImage()
        self.defaults = defaults
        self._listeners: list[MetadataListener] = []
        self._quorum: Quorum = LocalQuorum(data_dir, self._on_commit)
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._quorum.open()

    def close(self) -> None:
        self._quorum.close()

    def subscribe(self, listener: MetadataListener) -> None:
        """Deliver the current image as one batch, then every committed batch after it."""
        listener(md.MetadataBatch(version=self.image.version, records=self.image.snapshot_records()))
        self._listeners.append(listener)

    def _on_commit(self, batch: md.MetadataBatch) -> None:
        self.image.apply_batch(batch)
        for listener in self._listeners:
            listener(batch)

    async def _commit(self, result: control.ControllerResult) -> None:
        if result.records:
            await self._quorum.append(result.records)

    async def create_topics(self, request: pb.CreateTopicsRequest) -> pb.CreateTopicsResponse:
        async with self._lock:
            result = control.create_topics(self.image, request, lambda: uuid.uuid4().bytes, self.defaults)
            await self._commit(result)
        for r in result.response.results:
            log.info("event=create_topic topic=%s error=%d partitions=%d", r.name, r.error_code, r.num_partitions)
        return result.response

    async def delete_topics(self, request: pb.DeleteTopicsRequest) -> pb.DeleteTopicsResponse:
        async with self._lock:
            result = control.delete_topics(self.image, request)
            await self._commit(result)
        return result.response

    async def create_partitions(self, request: pb.CreatePartitionsRequest) -> pb.CreatePartitionsResponse:
        async with self._lock:
            result = control.create_partitions(self.image, request)
            await self._commit(result)
        return result.response

    async def alter_configs(self, request: pb.AlterConfigsRequest) -> pb.AlterConfigsResponse:
        async with self._lock:
            result = control.alter_configs(self.image, request)
            await self._commit(result)
        return result.response

    async def register_broker(self, broker_id: int, host: str, port: int, rack: str, incarnation_id: bytes) -> int:
        async with self._lock:
            result = control.register_broker(self.image, broker_id, host, port, rack, incarnation_id)
            await self._commit(result)
        log.info("event=broker_registered broker=%d epoch=%d addr=%s:%d", broker_id, result.response, host, port)
        return result.response
