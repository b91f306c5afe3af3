"""MirrorMaker 2 on Connect (KIP-382): the connectors that copy topics and consumer group offsets between clusters.

This is the one name users write: ``connector.class=caudal.connect.mirror.MirrorSourceConnector``
(or ``MirrorCheckpointConnector``), with MM2's config keys. Run both on a
worker of the *target* cluster with ``key.converter`` and ``value.converter``
set to ``org.apache.kafka.connect.converters.ByteArrayConverter``, so records
are copied byte for byte. The implementation is split by connector:
:mod:`caudal.connect.mirror_source`, :mod:`caudal.connect.mirror_checkpoint`
and what both share, :mod:`caudal.connect.mirror_common`.
"""

from caudal.connect.mirror_checkpoint import (
    MirrorCheckpointConnector,
    MirrorCheckpointTask,
)
from caudal.connect.mirror_common import Checkpoint, MirrorConfig, OffsetSync
from caudal.connect.mirror_source import MirrorSourceConnector, MirrorSourceTask

__all__ = [
    "Checkpoint",
    "MirrorCheckpointConnector",
    "MirrorCheckpointTask",
    "MirrorConfig",
    "MirrorSourceConnector",
    "MirrorSourceTask",
    "OffsetSync",
]
