"""MirrorMaker 2's MirrorCheckpointConnector: consumer group offsets of the source, translated for the target.

A consumer that fails over to the target cluster must resume its group on
the remote topics at the offsets matching what it committed in the source.
The tasks read the offset syncs MirrorSourceConnector publishes (upstream
offset → downstream offset) into an :class:`OffsetSyncStore`, and every
``emit.checkpoints.interval.seconds`` translate each assigned group's
committed source offsets with MM2's rule: take the newest sync at or below
the committed offset; the committed offset is that sync's downstream offset
if it is exactly the synced record, else one past it (records between two
syncs are not mapped, so one past the synced record is the furthest point
known to be safe), never beyond the remote partition's end. Changed
translations are emitted as *checkpoints* to ``<source>.checkpoints.internal``
in the target; with ``sync.group.offsets.enabled`` they are also committed
to the same group in the target, but only while that group has no active
members there (live consumers own their positions) and only forwards.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, TypeVar

from caudal.client import AdminClient, Consumer, OffsetAndMetadata, TopicPartition
from caudal.client.fetcher import LATEST
from caudal.client.groups_command import INACTIVE_STATES
from caudal.common.errors import CaudalError, UnknownMemberIdError
from caudal.connect.api import SourceConnector, SourceRecord, SourceTask, Task
from caudal.connect.config_def import ConfigDef, ConfigType, Importance
from caudal.connect.mirror_common import (
    BYTES_SCHEMA,
    MIRROR_CONFIG_DEF,
    TASK_COUNT,
    TASK_INDEX,
    Checkpoint,
    Every,
    MirrorConfig,
    NameFilter,
    OffsetSync,
    create_compacted_topic,
    owned_groups,
    regex_list,
    split_list,
    task_slot,
)

import caudal

log = logging.getLogger(__name__)
T = TypeVar("T")

GROUPS = "groups"
GROUPS_EXCLUDE = "groups.exclude"
EMIT_CHECKPOINTS_INTERVAL = "emit.checkpoints.interval.seconds"
SYNC_GROUP_OFFSETS_ENABLED = "sync.group.offsets.enabled"
SYNC_GROUP_OFFSETS_INTERVAL = "sync.group.offsets.interval.seconds"
REFRESH_GROUPS_INTERVAL = "refresh.groups.interval.seconds"
TASK_ASSIGNED_GROUPS = "task.assigned.groups"

SYNC_HISTORY = 64
"""Offset syncs kept per partition (MM2 keeps 64 too), spaced ever wider into the past."""
POLL_TIMEOUT_MS = 500

CONFIG_DEF = MIRROR_CONFIG_DEF.merge(
    ConfigDef()
    .define(GROUPS, ConfigType.LIST, ".*", regex_list, Importance.HIGH,
            "Consumer groups to replicate. Supports comma-separated group IDs and regexes.")
    .define(GROUPS_EXCLUDE, ConfigType.LIST, "console-consumer-.*,connect-.*,__.*", regex_list, Importance.HIGH,
            "Exclude groups. Supports comma-separated group IDs and regexes.")
    .define(EMIT_CHECKPOINTS_INTERVAL, ConfigType.LONG, 60, importance=Importance.LOW,
            documentation="Frequency of checkpoints; 0 or less turns them off.")
    .define(SYNC_GROUP_OFFSETS_ENABLED, ConfigType.BOOLEAN, False, importance=Importance.LOW,
            documentation="Whether to periodically write the translated offsets to __consumer_offsets topic in "
                          "target cluster, as long as no active consumers in that group are connected to the target cluster")
    .define(SYNC_GROUP_OFFSETS_INTERVAL, ConfigType.LONG, 60, importance=Importance.LOW,
            documentation="Frequency of consumer group offset sync.")
    .define(REFRESH_GROUPS_INTERVAL, ConfigType.LONG, 600, importance=Importance.LOW,
            documentation="Frequency of group refresh; 0 or less turns it off.")
)


def replicated_groups(admin: AdminClient, groups: NameFilter) -> list[str]:
    return [listing.group_id for listing in admin.list_consumer_groups() if groups.accepts(listing.group_id)]


class MirrorCheckpointConnector(SourceConnector):
    """Kafka's ``org.apache.kafka.connect.mirror.MirrorCheckpointConnector``."""

    CONFIG_DEF = CONFIG_DEF

    def version(self) -> str:
        return caudal.__version__

    def task_class(self) -> type[Task]:
        return MirrorCheckpointTask

    def start(self, config: dict[str, str]) -> None:
        parsed = self.CONFIG_DEF.parse(config)
        mirror = MirrorConfig.from_parsed(parsed)
        with AdminClient(bootstrap_servers=mirror.target_bootstrap) as target:
            create_compacted_topic(target, mirror.checkpoints_topic)
        with AdminClient(bootstrap_servers=mirror.source_bootstrap) as source:
            create_compacted_topic(source, mirror.offset_syncs_topic)  # the tasks read it, whoever starts first
            self._groups = replicated_groups(source, NameFilter.of(parsed[GROUPS], parsed[GROUPS_EXCLUDE]))

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        """``max_tasks`` tasks even if there are fewer groups now: tasks take on new groups themselves."""
        return [
            {TASK_ASSIGNED_GROUPS: ",".join(owned_groups(self._groups, i, max_tasks)), TASK_INDEX: str(i), TASK_COUNT: str(max_tasks)}
            for i in range(max_tasks)
        ]


@dataclass
class OffsetSyncStore:
    """The offset syncs of each source partition, newest first, thinned so that recent offsets translate
    precisely and old ones still translate (less precisely, but never past the true position)."""

    history: int = SYNC_HISTORY
    _syncs: dict[TopicPartition, list[OffsetSync]] = field(default_factory=dict)

    def add(self, sync: OffsetSync) -> None:
        tp = TopicPartition(sync.topic, sync.partition)
        syncs = self._syncs.get(tp, [])
        if syncs and not (sync.upstream > syncs[0].upstream and sync.downstream > syncs[0].downstream):
            syncs = []  # a rewind (a re-copy after a restart, a recreated topic): older syncs may mislead
        self._syncs[tp] = thinned([sync, *syncs], self.history)

    def translate(self, tp: TopicPartition, committed: int) -> Optional[int]:
        """MM2's rule (see the module doc); None when no sync is at or below ``committed``."""
        for sync in self._syncs.get(tp, ()):
            if sync.upstream <= committed:
                return sync.downstream + (0 if committed == sync.upstream else 1)
        return None


def thinned(syncs: list[OffsetSync], capacity: int) -> list[OffsetSync]:
    """At most ``capacity`` of ``syncs`` (newest first): the newest, then each older one at least 2^k offsets
    behind the newest (k counting those kept), and always the oldest, so nothing translatable becomes untranslatable."""
    newest = syncs[0]
    kept = [newest]
    for sync in syncs[1:-1]:
        if len(kept) < capacity - 1 and newest.upstream - sync.upstream >= 1 << (len(kept) - 1):
            kept.append(sync)
    if len(syncs) > 1:
        kept.append(syncs[-1])
    return kept


def checkpoints(
    group: str, committed: Mapping[TopicPartition, OffsetAndMetadata], mirror: MirrorConfig,
    store: OffsetSyncStore, ends: Mapping[TopicPartition, int],
) -> list[Checkpoint]:
    """The group's translatable committed offsets of replicated topics whose remote partition exists
    (``ends``: the remote partitions' end offsets)."""
    out = []
    for tp, om in sorted(committed.items()):
        remote = TopicPartition(mirror.remote_topic(tp.topic), tp.partition)
        downstream = store.translate(tp, om.offset) if mirror.replicates(tp.topic) and remote in ends else None
        if downstream is not None:
            out.append(Checkpoint(group, remote.topic, remote.partition, om.offset, min(downstream, ends[remote]), om.metadata))
    return out


def offsets_to_sync(
    state: str, latest: Mapping[TopicPartition, Checkpoint], current: Mapping[TopicPartition, OffsetAndMetadata]
) -> dict[TopicPartition, OffsetAndMetadata]:
    """What to commit for a group in the target: nothing while it has active members (state not Empty or
    Dead), else the checkpoints ahead of what the group already committed there."""
    if state not in INACTIVE_STATES:
        return {}
    return {
        tp: OffsetAndMetadata(cp.downstream, cp.metadata) for tp, cp in latest.items()
        if tp not in current or current[tp].offset < cp.downstream
    }


class MirrorCheckpointTask(SourceTask):
    """Translates the committed offsets of its groups (``task.assigned.groups``, plus new ones it finds)."""

    def __init__(self) -> None:
        self._closing = contextlib.ExitStack()

    def start(self, config: dict[str, str]) -> None:
        parsed = CONFIG_DEF.parse(config)
        self._config = MirrorConfig.from_parsed(parsed)
        self._slot = task_slot(config)
        self._group_filter = NameFilter.of(parsed[GROUPS], parsed[GROUPS_EXCLUDE])
        self._groups = split_list(config.get(TASK_ASSIGNED_GROUPS, ""))
        self._emit = Every(parsed[EMIT_CHECKPOINTS_INTERVAL], due_now=True)
        self._sync = Every(parsed[SYNC_GROUP_OFFSETS_INTERVAL] if parsed[SYNC_GROUP_OFFSETS_ENABLED] else 0, due_now=True)
        self._refresh = Every(parsed[REFRESH_GROUPS_INTERVAL])
        self._store = OffsetSyncStore()
        self._latest: dict[str, dict[TopicPartition, Checkpoint]] = {}
        self._syncs_partition = TopicPartition(self._config.offset_syncs_topic, 0)
        with contextlib.ExitStack() as stack:
            self._source = stack.enter_context(AdminClient(bootstrap_servers=self._config.source_bootstrap))
            self._target = stack.enter_context(AdminClient(bootstrap_servers=self._config.target_bootstrap))
            self._syncs_consumer = stack.enter_context(Consumer(
                bootstrap_servers=self._config.source_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False,
                client_id=f"mirror-checkpoint-{self._config.source_alias}-{self._slot[0]}",
            ))
            self._syncs_consumer.assign([self._syncs_partition])
            self._syncs_end = self._syncs_consumer.end_offsets([self._syncs_partition]).get(self._syncs_partition, 0)
            self._closing = stack.pop_all()
        self._caught_up = False

    def poll(self) -> Optional[list[SourceRecord]]:
        for r in self._syncs_consumer.poll(timeout_ms=POLL_TIMEOUT_MS):
            if r.key is not None and r.value is not None:  # tombstones say nothing about offsets
                self._store.add(OffsetSync.decode(r.key, r.value))
        # Translating with a partly read sync history would emit needlessly imprecise checkpoints.
        self._caught_up = self._caught_up or self._syncs_consumer.position(self._syncs_partition) >= self._syncs_end
        if not self._caught_up:
            return None
        if self._refresh.due():
            _guarded(self._refresh_groups)
        records = _guarded(self._emit_checkpoints) if self._emit.due() else None
        if self._sync.due():
            _guarded(self._sync_group_offsets)
        return records or None

    def _refresh_groups(self) -> None:
        self._groups = owned_groups(replicated_groups(self._source, self._group_filter), *self._slot)
        self._latest = {group: self._latest[group] for group in self._groups if group in self._latest}

    def _emit_checkpoints(self) -> list[SourceRecord]:
        committed = {group: self._source.list_consumer_group_offsets(group) for group in self._groups}
        remote = {
            TopicPartition(self._config.remote_topic(tp.topic), tp.partition)
            for offsets in committed.values() for tp in offsets if self._config.replicates(tp.topic)
        }
        ends = self._target.list_offsets(dict.fromkeys(remote, LATEST)) if remote else {}
        records = []
        for group, offsets in committed.items():
            latest = self._latest.setdefault(group, {})
            for checkpoint in checkpoints(group, offsets, self._config, self._store, ends):
                if latest.get(checkpoint.remote_partition) != checkpoint:
                    latest[checkpoint.remote_partition] = checkpoint
                    records.append(self._record(checkpoint))
        return records

    def _record(self, checkpoint: Checkpoint) -> SourceRecord:
        return SourceRecord(
            topic=self._config.checkpoints_topic, kafka_partition=0, key=checkpoint.key(), value=checkpoint.value(),
            key_schema=BYTES_SCHEMA, value_schema=BYTES_SCHEMA,
            source_partition={"group": checkpoint.group, "topic": checkpoint.topic, "partition": checkpoint.partition},
            source_offset={"offset": 0},
        )

    def _sync_group_offsets(self) -> None:
        groups = [group for group, latest in self._latest.items() if latest]
        if not groups:
            return
        described = self._target.describe_consumer_groups(groups)
        for group in groups:
            latest = self._latest[group]
            current = self._target.list_consumer_group_offsets(group, list(latest))
            offsets = offsets_to_sync(described[group].state, latest, current)
            if not offsets:
                continue
            try:
                self._target.alter_consumer_group_offsets(group, offsets)
                log.info("event=mirror_group_offsets_synced group=%s partitions=%d", group, len(offsets))
            except UnknownMemberIdError:
                log.info("event=mirror_group_offsets_skipped group=%s reason=active_members", group)

    def stop(self) -> None:
        self._closing.close()


def _guarded(action: Callable[[], T]) -> Optional[T]:
    """``action()``, or None if the cluster failed it: the next interval tries again."""
    try:
        return action()
    except CaudalError as exc:
        log.warning("event=mirror_checkpoint_failed action=%s error=%r", action.__name__, str(exc))
        return None
