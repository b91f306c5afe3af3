"""The pure parts of the MirrorMaker 2 connectors: naming, filtering, spreading, record formats, offset rules."""

from __future__ import annotations

import struct

import pytest

from caudal.client import OffsetAndMetadata, TopicPartition
from caudal.connect.config_def import ConfigException
from caudal.connect.mirror_checkpoint import (
    MirrorCheckpointConnector,
    OffsetSyncStore,
    checkpoints,
    offsets_to_sync,
    thinned,
)
from caudal.connect.mirror_common import (
    Checkpoint,
    Every,
    MirrorConfig,
    NameFilter,
    OffsetSync,
    decode_partitions,
    encode_partitions,
    owned_groups,
    owned_partitions,
    task_slot,
)
from caudal.connect.mirror_source import MirrorSourceConnector, OffsetSyncs, PartitionState
from caudal.connect.plugins import connector_class

CLUSTERS = {"source.cluster.bootstrap.servers": "a:1", "target.cluster.bootstrap.servers": "b:2"}


def mirror(**overrides: str) -> MirrorConfig:
    return MirrorConfig.from_parsed(MirrorSourceConnector.CONFIG_DEF.parse({**CLUSTERS, **overrides}))


# ---- configs ------------------------------------------------------------------------------------


def test_defaults_are_mirrormaker2s() -> None:
    source = MirrorSourceConnector.CONFIG_DEF.parse(CLUSTERS)
    assert source["source.cluster.alias"] == "source" and source["target.cluster.alias"] == "target"
    assert source["topics"] == [".*"] and source["topics.exclude"] == [r".*[\-\.]internal", r".*\.replica", "__.*"]
    assert source["replication.policy.separator"] == "."
    assert (source["sync.topic.configs.enabled"], source["refresh.topics.interval.seconds"], source["offset.lag.max"]) == (True, 600, 100)
    checkpoint = MirrorCheckpointConnector.CONFIG_DEF.parse(CLUSTERS)
    assert checkpoint["groups"] == [".*"] and checkpoint["groups.exclude"] == ["console-consumer-.*", "connect-.*", "__.*"]
    assert (checkpoint["emit.checkpoints.interval.seconds"], checkpoint["sync.group.offsets.enabled"],
            checkpoint["sync.group.offsets.interval.seconds"]) == (60, False, 60)


def test_cluster_addresses_are_required_and_regexes_must_compile() -> None:
    with pytest.raises(ConfigException, match="source.cluster.bootstrap.servers"):
        MirrorSourceConnector.CONFIG_DEF.parse({"target.cluster.bootstrap.servers": "b:2"})
    with pytest.raises(ConfigException, match="Invalid value .* for configuration groups: Invalid regex"):
        MirrorCheckpointConnector.CONFIG_DEF.parse({**CLUSTERS, "groups": "billing,(unclosed"})


def test_connectors_resolve_by_dotted_path() -> None:
    assert connector_class("caudal.connect.mirror.MirrorSourceConnector") is MirrorSourceConnector
    assert connector_class("caudal.connect.mirror:MirrorCheckpointConnector") is MirrorCheckpointConnector


# ---- naming and filtering -----------------------------------------------------------------------


def test_remote_and_internal_topic_names() -> None:
    default = mirror()
    assert default.remote_topic("orders") == "source.orders"
    assert default.offset_syncs_topic == "mm2-offset-syncs.target.internal"
    assert default.checkpoints_topic == "source.checkpoints.internal"
    custom = mirror(**{"source.cluster.alias": "us", "target.cluster.alias": "eu", "replication.policy.separator": "_"})
    assert custom.remote_topic("orders") == "us_orders"
    assert (custom.offset_syncs_topic, custom.checkpoints_topic) == ("mm2-offset-syncs_eu_internal", "us_checkpoints_internal")


def test_default_filter_skips_internal_and_cyclic_topics() -> None:
    config = mirror()
    replicated = ["orders", "orders.v2", "source.orders", "my-internal-data"]
    skipped = [
        "orders.internal", "orders-internal", "orders.replica", "__consumer_offsets", ".hidden",
        "mm2-offset-syncs.target.internal", "source.checkpoints.internal",
        "target.orders", "other.target.orders",  # came from the target: copying them back would loop
    ]
    assert [t for t in replicated + skipped if config.replicates(t)] == replicated


def test_topic_lists_match_whole_names() -> None:
    config = mirror(topics="orders, pay.*", **{"topics.exclude": "payroll"})
    assert [t for t in ["orders", "orders2", "my-orders", "payments", "payroll"] if config.replicates(t)] == ["orders", "payments"]
    assert not mirror(topics="").replicates("orders")


def test_group_filter() -> None:
    groups = NameFilter.of([".*"], ["console-consumer-.*", "connect-.*", "__.*"])
    assert [g for g in ["billing", "console-consumer-1", "connect-sink", "__x", "my-connect-app"] if groups.accepts(g)] == [
        "billing", "my-connect-app"]


# ---- spreading work over tasks ------------------------------------------------------------------


def test_partitions_spread_evenly_and_stay_put_when_topics_appear() -> None:
    partitions = [TopicPartition(t, p) for t, n in [("a", 6), ("b", 1), ("c", 3)] for p in range(n)]
    slices = [owned_partitions(partitions, i, 3) for i in range(3)]
    assert sorted(tp for s in slices for tp in s) == sorted(partitions)
    for topic, each in (("a", 2), ("c", 1)):
        assert [sum(tp.topic == topic for tp in s) for s in slices] == [each] * 3
    grown = partitions + [TopicPartition("a", 6)] + [TopicPartition("d", p) for p in range(4)]
    assert all(set(owned_partitions(grown, i, 3)) >= set(slices[i]) for i in range(3))
    assert owned_partitions(partitions, 0, 1) == partitions


def test_groups_spread_over_tasks() -> None:
    groups = [f"group-{i}" for i in range(30)]
    slices = [owned_groups(groups, i, 4) for i in range(4)]
    assert sorted(g for s in slices for g in s) == sorted(groups) and all(slices)


def test_assigned_partitions_round_trip_with_dashes_in_names() -> None:
    partitions = [TopicPartition("my-topic-1", 0), TopicPartition("x", 12)]
    assert encode_partitions(partitions) == "my-topic-1-0,x-12"
    assert decode_partitions(encode_partitions(partitions)) == partitions and decode_partitions("") == []


def test_task_slot() -> None:
    assert task_slot({"task.index": "1", "task.count": "3"}) == (1, 3)
    with pytest.raises(ValueError):
        task_slot({"task.index": "3", "task.count": "3"})


def test_every_is_due_once_per_interval_and_never_when_off() -> None:
    now = [100.0]
    every = Every(10, clock=lambda: now[0])
    assert not every.due()
    now[0] = 110.0
    assert every.due() and not every.due()
    assert Every(5, due_now=True, clock=lambda: now[0]).due()
    assert not Every(0, due_now=True, clock=lambda: now[0]).due() and not Every(-1, due_now=True).due()


# ---- MM2's record formats -----------------------------------------------------------------------


def test_offset_sync_bytes_are_mm2s() -> None:
    sync = OffsetSync("orders", 2, 10, 7)
    assert sync.key() == b"\x00\x06orders" + b"\x00\x00\x00\x02"
    assert sync.value() == struct.pack(">q", 10) + struct.pack(">q", 7)
    assert OffsetSync.decode(sync.key(), sync.value()) == sync


def test_checkpoint_bytes_are_mm2s() -> None:
    checkpoint = Checkpoint("g", "source.orders", 1, 57, 56, "m")
    assert checkpoint.key() == b"\x00\x01g" + b"\x00\x0dsource.orders" + b"\x00\x00\x00\x01"
    assert checkpoint.value() == b"\x00\x00" + struct.pack(">qq", 57, 56) + b"\x00\x01m"
    assert Checkpoint.decode(checkpoint.key(), checkpoint.value()) == checkpoint
    with pytest.raises(ValueError, match="version 1"):
        Checkpoint.decode(checkpoint.key(), b"\x00\x01" + checkpoint.value()[2:])


# ---- when to emit an offset sync ----------------------------------------------------------------


def test_offset_sync_on_first_record_lag_and_gap_changes() -> None:
    state = PartitionState(max_lag=3)
    steps = [
        ((0, 0), True),   # the first record of this task's lifetime
        ((1, 1), False), ((2, 2), False), ((3, 3), False),
        ((4, 4), True),   # translation from (0, 0) would say 1: three short
        ((5, 5), False),
        ((7, 6), True),   # upstream 6 is gone (compacted): the offsets no longer advance in step
        ((8, 7), False),
        ((9, 9), True),   # a duplicate downstream
        ((10, 10), False),
    ]
    assert [state.update(*offsets) for offsets, _ in steps] == [expected for _, expected in steps]
    every = PartitionState(max_lag=0)
    assert all(every.update(i, i) for i in range(5))


def test_offset_syncs_are_pending_or_delayed_until_commit() -> None:
    syncs = OffsetSyncs(max_lag=20)
    for offset in range(50):
        syncs.record("orders", 0, offset, offset + 5)
    syncs.record("audit", 1, 0, 0)
    assert syncs.take() == [OffsetSync("orders", 0, u, u + 5) for u in (0, 21, 42)] + [OffsetSync("audit", 1, 0, 0)]
    assert syncs.take() == []
    syncs.promote_delayed()  # the worker committed: the newest position of each partition goes out
    assert syncs.take() == [OffsetSync("orders", 0, 49, 54)]
    syncs.record("orders", 0, 50, 55)
    syncs.record("orders", 0, 150, 155)  # a gap: due now, and it replaces the delayed one
    syncs.promote_delayed()
    assert syncs.take() == [OffsetSync("orders", 0, 150, 155)]


# ---- translating committed offsets --------------------------------------------------------------

TP = TopicPartition("orders", 0)


def store_of(*pairs: tuple[int, int]) -> OffsetSyncStore:
    store = OffsetSyncStore()
    for upstream, downstream in pairs:
        store.add(OffsetSync(TP.topic, TP.partition, upstream, downstream))
    return store


def test_translation_uses_the_newest_sync_at_or_below_the_committed_offset() -> None:
    store = store_of((0, 0), (10, 12), (20, 25))
    assert [store.translate(TP, c) for c in (0, 5, 10, 15, 20, 99)] == [0, 1, 12, 13, 25, 26]
    assert store_of((5, 5)).translate(TP, 3) is None, "before the first sync nothing is known"
    assert store.translate(TopicPartition("orders", 1), 10) is None


def test_a_rewound_sync_forgets_older_ones() -> None:
    store = store_of((0, 0), (30, 40), (15, 45))  # upstream went back: a re-copy after a restart
    assert (store.translate(TP, 20), store.translate(TP, 14)) == (46, None)


def test_sync_history_is_bounded_and_never_translates_past_the_truth() -> None:
    store = OffsetSyncStore()
    for i in range(10_000):
        store.add(OffsetSync(TP.topic, TP.partition, i * 100, i * 100 + 7))
    history = thinned([OffsetSync(TP.topic, 0, u, u) for u in range(10_000, -1, -1)], 64)
    assert len(history) <= 64 and history[0].upstream == 10_000 and history[-1].upstream == 0
    for committed in (0, 1, 50, 9_999, 123_456, 999_900, 999_950):
        translated = store.translate(TP, committed)
        assert translated is not None and translated <= committed + 7
    assert store.translate(TP, 999_900) == 999_907 and store.translate(TP, 999_850) == 999_808


def test_checkpoints_translate_replicated_topics_and_stop_at_the_remote_end() -> None:
    store = store_of((0, 0), (100, 100))
    store.add(OffsetSync("internal-data.internal", 0, 0, 0))
    committed = {
        TP: OffsetAndMetadata(150, "meta"),
        TopicPartition("orders", 1): OffsetAndMetadata(3),  # no sync for this partition yet
        TopicPartition("internal-data.internal", 0): OffsetAndMetadata(1),  # not replicated
        TopicPartition("gone", 0): OffsetAndMetadata(1),  # no remote partition
    }
    ends = {TopicPartition("source.orders", 0): 101, TopicPartition("source.orders", 1): 9,
            TopicPartition("source.internal-data.internal", 0): 5}
    assert checkpoints("billing", committed, mirror(), store, ends) == [Checkpoint("billing", "source.orders", 0, 150, 101, "meta")]


def test_group_offsets_are_synced_only_forward_and_only_to_inactive_groups() -> None:
    a, b = TopicPartition("source.orders", 0), TopicPartition("source.orders", 1)
    latest = {a: Checkpoint("g", a.topic, 0, 10, 8, "m"), b: Checkpoint("g", b.topic, 1, 20, 18)}
    assert offsets_to_sync("Stable", latest, {}) == {}
    assert offsets_to_sync("Dead", latest, {}) == {a: OffsetAndMetadata(8, "m"), b: OffsetAndMetadata(18)}
    assert offsets_to_sync("Empty", latest, {a: OffsetAndMetadata(9), b: OffsetAndMetadata(3)}) == {b: OffsetAndMetadata(18)}
