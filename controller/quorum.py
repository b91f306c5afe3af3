"""What the controller needs from its metadata log, whichever kind it is.

``caudal dev`` uses the single-voter :class:`~caudal.controller.local_quorum.LocalQuorum`;
``caudal controller`` uses the Raft :class:`~caudal.controller.raft_quorum.RaftQuorum`.
Both commit a batch of records only if the metadata is still at the version the
records were decided against, and publish every committed batch (or a loaded
snapshot) to the controller in log order.
"""

from __future__ import annotations

from typing import Protocol

from caudal.v1 import metadata_pb2 as md


class StaleDecisionError(Exception):
    """The metadata moved on between deciding and committing; decide again."""


class Quorum(Protocol):
    node_id: int

    def open(self) -> None: ...

    async def append(self, records: list[md.MetadataRecord], expected_version: int) -> int: ...

    def is_leader(self) -> bool: ...

    def leader_id(self) -> int: ...

    def status(self) -> dict: ...

    def close(self) -> None: ...
