"""MirrorMaker 2's MirrorSourceConnector: copy topics from a source cluster into ``<alias>.<topic>`` of the target.

The connector owns the remote topics: it creates each with the source's
partition count and topic configs, adds partitions when the source grows and
keeps the configs in sync, every ``refresh.topics.interval.seconds``. Its
tasks consume their source partitions with manual assignment (no consumer
group: the position is the task's source offset, stored by the worker once
the copy is acknowledged) and emit each record with its key, value, headers
and timestamp unchanged to the same partition number of the remote topic.

Remote offsets differ from upstream ones (the target may hold older data, a
record may be copied twice after a crash), so tasks publish *offset syncs*
— upstream offset → downstream offset, learnt from the acknowledgement of the
copy — to ``mm2-offset-syncs.<target>.internal`` in the source cluster,
which MirrorCheckpointConnector uses to translate consumer group offsets. A
sync per record would double the write load, so, as MM2 does, a partition
gets one when the mapping changes shape (first record, offsets no longer
advance in step) or when the last one is ``offset.lag.max`` records behind;
the newest position of every partition is also published each time the
worker commits offsets, so a caught-up consumer translates exactly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from caudal.client import (
    AdminClient,
    Consumer,
    ConsumerRecord,
    NewTopic,
    Producer,
    RecordMetadata,
    TopicPartition,
)
from caudal.common.errors import (
    CaudalError,
    InvalidPartitionsError,
    TopicAlreadyExistsError,
)
from caudal.connect.api import SourceConnector, SourceRecord, SourceTask, Task
from caudal.connect.config_def import ConfigDef, ConfigType, Importance, Range
from caudal.connect.mirror_common import (
    BYTES_SCHEMA,
    MIRROR_CONFIG_DEF,
    OPERATION_TIMEOUT_S,
    TASK_COUNT,
    TASK_INDEX,
    Every,
    MirrorConfig,
    OffsetSync,
    create_compacted_topic,
    decode_partitions,
    encode_partitions,
    owned_partitions,
    task_slot,
)

import caudal

log = logging.getLogger(__name__)

SYNC_TOPIC_CONFIGS_ENABLED = "sync.topic.configs.enabled"
REFRESH_TOPICS_INTERVAL = "refresh.topics.interval.seconds"
OFFSET_LAG_MAX = "offset.lag.max"
TASK_ASSIGNED_PARTITIONS = "task.assigned.partitions"

EXCLUDED_TOPIC_CONFIGS = frozenset({
    "follower.replication.throttled.replicas", "leader.replication.throttled.replicas",
    "message.timestamp.difference.max.ms", "message.timestamp.type", "unclean.leader.election.enable",
    "min.insync.replicas",
})
"""MM2's default ``config.properties.exclude``: settings that describe a cluster rather than the data."""
POLL_TIMEOUT_MS = 500
MAX_POLL_RECORDS = 2000

CONFIG_DEF = MIRROR_CONFIG_DEF.merge(
    ConfigDef()
    .define(SYNC_TOPIC_CONFIGS_ENABLED, ConfigType.BOOLEAN, True, importance=Importance.LOW,
            documentation="Whether to periodically configure remote topics to match their corresponding upstream topics.")
    .define(REFRESH_TOPICS_INTERVAL, ConfigType.LONG, 600, importance=Importance.LOW,
            documentation="Frequency of topic refresh (and of topic config sync); 0 or less turns it off.")
    .define(OFFSET_LAG_MAX, ConfigType.LONG, 100, Range.at_least(0), Importance.LOW,
            "How out-of-sync a remote partition can be before an offset sync is emitted.")
)


def source_partitions(config: MirrorConfig, admin: AdminClient) -> dict[str, int]:
    """The source topics to replicate, with their partition counts."""
    return {
        name: len(topic.partitions) for name, topic in admin.describe_topics().items()
        if not topic.is_internal and config.replicates(name)
    }


def mirror_topics(
    config: MirrorConfig, source: AdminClient, target: AdminClient, partitions: Mapping[str, int], sync_configs: bool
) -> None:
    """Make the remote topics of ``partitions`` (source topic → partition count) exist in the target with at
    least as many partitions and, with ``sync_configs``, the source topics' own settings.

    Safe to run concurrently with itself (the connector and a task may both find
    a new topic): losing a creation race is not an error.
    """
    if not partitions:
        return
    upstream = {config.remote_topic(topic): topic for topic in partitions}
    existing = {name: len(t.partitions) for name, t in target.describe_topics().items() if name in upstream}
    wanted: dict[str, dict[str, str]] = {}
    if sync_configs:
        wanted = {
            topic: {name: entry.value for name, entry in entries.items()
                    if not entry.is_default and name not in EXCLUDED_TOPIC_CONFIGS}
            for topic, entries in source.describe_configs(partitions).items()
        }
    created = [
        NewTopic(remote, partitions[topic], -1, wanted.get(topic, {}))
        for remote, topic in upstream.items() if remote not in existing
    ]
    if created:
        for name, future in target.create_topics(created).items():
            with contextlib.suppress(TopicAlreadyExistsError):
                future.result(OPERATION_TIMEOUT_S)
                log.info("event=mirror_topic_created topic=%s partitions=%d", name, partitions[upstream[name]])
    grown = {remote: partitions[upstream[remote]] for remote, count in existing.items() if count < partitions[upstream[remote]]}
    if grown:
        for name, future in target.create_partitions(grown).items():
            with contextlib.suppress(InvalidPartitionsError):  # another refresh grew it first
                future.result(OPERATION_TIMEOUT_S)
                log.info("event=mirror_topic_grown topic=%s partitions=%d", name, grown[name])
    if wanted and existing:
        current = target.describe_configs(existing)
        changes: dict[str, dict[str, Optional[str]]] = {}
        for remote in existing:
            changed = {name: value for name, value in wanted[upstream[remote]].items()
                       if name not in current[remote] or current[remote][name].value != value}
            if changed:
                changes[remote] = dict(changed)
        if changes:
            for future in target.incremental_alter_configs(changes).values():
                future.result(OPERATION_TIMEOUT_S)
            log.info("event=mirror_topic_configs_synced topics=%s", sorted(changes))


class MirrorSourceConnector(SourceConnector):
    """Kafka's ``org.apache.kafka.connect.mirror.MirrorSourceConnector``."""

    CONFIG_DEF = CONFIG_DEF

    def __init__(self) -> None:
        self._closing = contextlib.ExitStack()
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def version(self) -> str:
        return caudal.__version__

    def task_class(self) -> type[Task]:
        return MirrorSourceTask

    def start(self, config: dict[str, str]) -> None:
        parsed = self.CONFIG_DEF.parse(config)
        self._config = MirrorConfig.from_parsed(parsed)
        self._sync_configs: bool = parsed[SYNC_TOPIC_CONFIGS_ENABLED]
        with contextlib.ExitStack() as stack:
            self._source = stack.enter_context(AdminClient(bootstrap_servers=self._config.source_bootstrap))
            self._target = stack.enter_context(AdminClient(bootstrap_servers=self._config.target_bootstrap))
            create_compacted_topic(self._source, self._config.offset_syncs_topic)
            self._partitions = self._refresh()
            self._closing = stack.pop_all()
        interval_s = parsed[REFRESH_TOPICS_INTERVAL]
        if interval_s > 0:
            self._thread = threading.Thread(target=self._refresh_loop, args=(interval_s,), daemon=True,
                                            name=f"mirror-source-refresh-{self._config.source_alias}")
            self._thread.start()

    def _refresh(self) -> list[TopicPartition]:
        """Bring the remote topics up to date; the replicated source partitions."""
        partitions = source_partitions(self._config, self._source)
        mirror_topics(self._config, self._source, self._target, partitions, self._sync_configs)
        return [TopicPartition(topic, p) for topic, count in sorted(partitions.items()) for p in range(count)]

    def _refresh_loop(self, interval_s: float) -> None:
        while not self._stopping.wait(interval_s):
            try:
                self._refresh()
            except CaudalError as exc:
                log.warning("event=mirror_refresh_failed source=%s error=%r", self._config.source_alias, str(exc))

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        """``max_tasks`` tasks even if there are fewer partitions now: tasks take on new partitions themselves."""
        return [
            {TASK_ASSIGNED_PARTITIONS: encode_partitions(owned_partitions(self._partitions, i, max_tasks)),
             TASK_INDEX: str(i), TASK_COUNT: str(max_tasks)}
            for i in range(max_tasks)
        ]

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(OPERATION_TIMEOUT_S)
        self._closing.close()


@dataclass
class PartitionState:
    """MM2's rule for one partition: does the copy of ``upstream`` at ``downstream`` need an offset sync?

    Translation uses the newest sync at or below a committed offset and adds 1
    past it, so a sync is needed when upstream and downstream offsets stop
    advancing in step (a gap: compacted or aborted upstream records, duplicate
    copies downstream) and when translation from the last sync would be
    ``max_lag`` or more records short.
    """

    max_lag: int
    last_sync_downstream: Optional[int] = None
    previous: tuple[int, int] = (0, 0)

    def update(self, upstream: int, downstream: int) -> bool:
        sync = (
            self.last_sync_downstream is None
            or upstream - downstream != self.previous[0] - self.previous[1]
            or downstream - (self.last_sync_downstream + 1) >= self.max_lag
        )
        if sync:
            self.last_sync_downstream = downstream
        self.previous = (upstream, downstream)
        return sync


@dataclass
class OffsetSyncs:
    """Offset syncs of a task waiting to be published: *pending* ones go out at the next chance, all of them
    (the rule already keeps them few, and each one is history translation can use), *delayed* ones (the
    newest position of partitions that did not need a sync) when the worker commits.

    The worker calls ``commit_record`` (hence :meth:`record`), ``poll`` and ``commit``
    all on the task's thread, so no lock is needed.
    """

    max_lag: int
    _states: dict[tuple[str, int], PartitionState] = field(default_factory=dict)
    _pending: list[OffsetSync] = field(default_factory=list)
    _delayed: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)

    def record(self, topic: str, partition: int, upstream: int, downstream: int) -> None:
        """Called for every copied record, so it builds nothing unless a sync is due."""
        key = (topic, partition)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = PartitionState(self.max_lag)
        if state.update(upstream, downstream):
            self._pending.append(OffsetSync(topic, partition, upstream, downstream))
            self._delayed.pop(key, None)
        else:
            self._delayed[key] = (upstream, downstream)

    def promote_delayed(self) -> None:
        self._pending += [OffsetSync(t, p, u, d) for (t, p), (u, d) in self._delayed.items()]
        self._delayed.clear()

    def take(self) -> list[OffsetSync]:
        out, self._pending = self._pending, []
        return out


class MirrorSourceTask(SourceTask):
    """Copies its source partitions (from ``task.assigned.partitions``, plus new ones it finds) to the target."""

    def __init__(self) -> None:
        self._closing = contextlib.ExitStack()

    def start(self, config: dict[str, str]) -> None:
        parsed = CONFIG_DEF.parse(config)
        self._config = MirrorConfig.from_parsed(parsed)
        self._slot = task_slot(config)
        self._sync_configs: bool = parsed[SYNC_TOPIC_CONFIGS_ENABLED]
        self._refresh = Every(parsed[REFRESH_TOPICS_INTERVAL])
        self._offset_syncs = OffsetSyncs(parsed[OFFSET_LAG_MAX])
        self._routes: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
        """Per source partition: its remote topic and its source partition dict (one lookup per record)."""
        name = f"mirror-source-{self._config.source_alias}-{self._slot[0]}"
        source = self._config.source_bootstrap
        with contextlib.ExitStack() as stack:
            self._source = stack.enter_context(AdminClient(bootstrap_servers=source))
            self._target = stack.enter_context(AdminClient(bootstrap_servers=self._config.target_bootstrap))
            self._consumer = stack.enter_context(Consumer(
                bootstrap_servers=source, auto_offset_reset="earliest", enable_auto_commit=False,
                max_poll_records=MAX_POLL_RECORDS, client_id=name,
            ))
            self._producer = Producer(bootstrap_servers=source, acks="all", client_id=f"{name}-offset-syncs")
            stack.callback(self._producer.close, OPERATION_TIMEOUT_S)
            self._assign(decode_partitions(config.get(TASK_ASSIGNED_PARTITIONS, "")))
            self._closing = stack.pop_all()

    def _assign(self, partitions: list[TopicPartition]) -> None:
        """Consume exactly ``partitions``; new ones resume after their stored source offset (or from the start)."""
        new = [tp for tp in partitions if tp not in self._routes]
        self._routes = {
            tp: self._routes.get(tp) or (self._config.remote_topic(tp.topic),
                                         {"cluster": self._config.source_alias, "topic": tp.topic, "partition": tp.partition})
            for tp in partitions
        }
        self._consumer.assign(partitions)
        for tp in new:
            stored = self.context.offset_storage_reader.offset(self._routes[tp][1])
            if stored is not None:
                self._consumer.seek(tp, int(stored["offset"]) + 1)
        log.info("event=mirror_source_assigned task=%d partitions=%d new=%d", self._slot[0], len(partitions), len(new))

    def _discover(self) -> None:
        """Take on the partitions of this task that appeared since (or left)."""
        counts = source_partitions(self._config, self._source)
        mine = owned_partitions((TopicPartition(t, p) for t, n in sorted(counts.items()) for p in range(n)), *self._slot)
        if set(mine) == set(self._routes):
            return
        new_topics = {tp.topic for tp in mine if tp not in self._routes}
        mirror_topics(self._config, self._source, self._target, {t: counts[t] for t in new_topics}, self._sync_configs)
        self._assign(mine)

    def poll(self) -> Optional[list[SourceRecord]]:
        self._publish_offset_syncs()
        if self._refresh.due():
            try:
                self._discover()
            except CaudalError as exc:
                log.warning("event=mirror_discover_failed task=%d error=%r", self._slot[0], str(exc))
        return [self._convert(r) for r in self._consumer.poll(timeout_ms=POLL_TIMEOUT_MS)] or None

    def _convert(self, r: ConsumerRecord) -> SourceRecord:
        remote, source_partition = self._routes[(r.topic, r.partition)]
        return SourceRecord(
            topic=remote, kafka_partition=r.partition, key=r.key, value=r.value, timestamp=r.timestamp,
            headers=tuple(r.headers) if r.headers else (), key_schema=BYTES_SCHEMA, value_schema=BYTES_SCHEMA,
            source_partition=source_partition, source_offset={"offset": r.offset},
        )

    def commit_record(self, record: SourceRecord, metadata: RecordMetadata) -> None:
        source = record.source_partition
        self._offset_syncs.record(source["topic"], source["partition"], record.source_offset["offset"], metadata.offset)

    def commit(self) -> None:
        self._offset_syncs.promote_delayed()
        self._publish_offset_syncs()

    def _publish_offset_syncs(self) -> None:
        for sync in self._offset_syncs.take():
            self._producer.send(self._config.offset_syncs_topic, sync.value(), key=sync.key(), partition=0,
                                on_delivery=_log_failed_sync)

    def stop(self) -> None:
        self._closing.close()


def _log_failed_sync(error: Optional[Exception], metadata: Any) -> None:
    """A lost offset sync only makes translation less precise until the next one."""
    if error is not None:
        log.warning("event=offset_sync_failed error=%r", str(error))
