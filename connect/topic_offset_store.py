"""Distributed mode's source-offset store: the compacted ``offset.storage.topic``.

Every worker reads the whole topic (a :class:`TopicLog`) into the same map the
standalone store keeps, so a task that moves to another worker resumes from
the offsets its previous worker committed. Keys and values are Kafka's JSON
forms (``["<connector>", {partition}]`` → offset), written with the connector's
key so one connector's offsets stay in order on one partition.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from caudal.connect.offset_store import MemoryOffsetStore, Offset, Partition, serialize
from caudal.connect.topic_log import TopicLog


class TopicOffsetStore(MemoryOffsetStore):
    def __init__(self, log: TopicLog) -> None:
        super().__init__()
        self.log = log
        log.on_change = self._read

    def _read(self, key: str, value: Optional[Any]) -> None:
        self.apply({key: None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)})

    def put(self, connector: str, offsets: list[tuple[Partition, Optional[Offset]]]) -> None:
        """Write to the topic; returns once this worker has read the writes back into its map."""
        for key, value in serialize(connector, offsets).items():
            self.log.write(key, None if value is None else json.loads(value))
