"""Leadership, ISR and broker-lifecycle decisions: records out, image changed only by replay."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caudal.common.errors import (
    BrokerIdNotRegisteredError,
    DuplicateBrokerRegistrationError,
    ErrorCode,
    InvalidRequestError,
    StaleBrokerEpochError,
    UnknownServerError,
)
from caudal.common.metadata import MetadataImage, PartitionState, partition_record
from caudal.controller import control, election
from caudal.controller.control import ControllerResult
from caudal.v1 import broker_pb2 as pb
from caudal.v1 import controller_pb2 as cpb
from caudal.v1 import metadata_pb2 as md

# ---------------------------------------------------------------------------
# helpers


def _apply(image: MetadataImage, result: ControllerResult) -> ControllerResult:
    image.apply_batch(md.MetadataBatch(version=image.version + 1, records=result.records))
    return result


def _snapshot(image: MetadataImage) -> list[bytes]:
    return [r.SerializeToString(deterministic=True) for r in image.snapshot_records()] + [str(image.version).encode()]


def _copy(image: MetadataImage) -> MetadataImage:
    copy = MetadataImage()
    copy.apply_batch(md.MetadataBatch(version=image.version, records=image.snapshot_records()))
    return copy


def _decide(image: MetadataImage, fn, *args, **kwargs) -> ControllerResult:
    """Call a decision and check it left the image untouched."""
    before = _snapshot(image)
    result = fn(image, *args, **kwargs)
    assert _snapshot(image) == before, f"{fn.__name__} mutated the image"
    return result


def _register(image: MetadataImage, b: int, rack: str = "") -> int:
    result = _apply(image, election.register_broker(image, b, "127.0.0.1", 9000 + b, rack, bytes([b]), live=False))
    _apply(image, election.unfence_broker(image, b, result.response))
    return result.response


def _create(image: MetadataImage, name: str, partitions: int = 3, rf: int = 3, **configs: str) -> None:
    ids = itertools.count(len(image.topics) + 1)
    request = pb.CreateTopicsRequest(
        topics=[pb.CreatableTopic(name=name, num_partitions=partitions, replication_factor=rf, configs=configs)]
    )
    result = _apply(image, control.create_topics(image, request, lambda: next(ids).to_bytes(16, "big")))
    assert result.response.results[0].error_code == 0, result.response.results[0].error_message


def _image(brokers: int = 3, unclean: bool = False, partitions: int = 3) -> MetadataImage:
    """Brokers 1..n unfenced and topic ``t`` (RF 3): t-0 [1,2,3], t-1 [2,3,1], t-2 [3,1,2] with 3 brokers."""
    image = MetadataImage()
    for b in range(1, brokers + 1):
        _register(image, b)
    configs = {"unclean.leader.election.enable": "true"} if unclean else {}
    _create(image, "t", partitions, 3, **configs)
    return image


def _p(image: MetadataImage, index: int, topic: str = "t") -> PartitionState:
    return image.topics[topic].partitions[index]


def _epoch(image: MetadataImage, b: int) -> int:
    return image.brokers[b].broker_epoch


def _alter(
    image: MetadataImage, index: int, new_isr: list[int] | None = None, topic: str = "t", **overrides
) -> cpb.AlterPartitionRequest:
    p = _p(image, index, topic)
    fields = dict(
        broker_id=p.leader,
        broker_epoch=_epoch(image, p.leader) if p.leader in image.brokers else 0,
        topic_id=image.topics[topic].topic_id,
        partition=index,
        leader_epoch=p.leader_epoch,
        partition_epoch=p.partition_epoch,
        new_isr=new_isr or [],
    )
    fields.update(overrides)
    return cpb.AlterPartitionRequest(**fields)


def _elect(image: MetadataImage, election_type: int, *targets: tuple[str, list[int]]) -> ControllerResult:
    request = cpb.ElectLeadersRequest(
        election_type=election_type, topics=[pb.TopicPartitions(topic=t, partitions=ps) for t, ps in targets]
    )
    return _decide(image, election.elect_leaders, request)


def _kinds(result: ControllerResult) -> list[str]:
    return [r.WhichOneof("record") for r in result.records]


def _set_partition(image: MetadataImage, index: int, **changes) -> None:
    """Force a partition state through a raw record (for states only failures produce)."""
    p = _p(image, index)
    state = PartitionState(
        changes.get("replicas", p.replicas),
        changes.get("isr", p.isr),
        changes.get("leader", p.leader),
        changes.get("leader_epoch", p.leader_epoch + 1),
        changes.get("partition_epoch", p.partition_epoch + 1),
    )
    _apply(image, ControllerResult([partition_record(image.topics["t"].topic_id, index, state)], None))


def test_setup() -> None:
    image = _image()
    assert [_p(image, i).replicas for i in range(3)] == [[1, 2, 3], [2, 3, 1], [3, 1, 2]]
    assert all(not b.fenced for b in image.brokers.values())


# ---------------------------------------------------------------------------
# fence_broker


def test_fence_leader_elects_next_isr_member_and_bumps_epochs() -> None:
    image = _image()
    result = _apply(image, _decide(image, election.fence_broker, 1))
    assert result.records[0].fence_broker.broker_id == 1
    assert result.records[0].fence_broker.broker_epoch == _epoch(image, 1)
    assert _kinds(result) == ["fence_broker", "partition", "partition", "partition"]
    assert image.brokers[1].fenced
    p0 = _p(image, 0)
    assert (p0.leader, p0.isr, p0.leader_epoch, p0.partition_epoch) == (2, [2, 3], 1, 1), "next in replica order"
    for i in (1, 2):  # follower partitions: ISR shrinks, leader (and its epoch) unchanged
        p = _p(image, i)
        assert 1 not in p.isr and p.leader == p.replicas[0]
        assert (p.leader_epoch, p.partition_epoch) == (0, 1)


def test_fence_prefers_replica_order_not_isr_order() -> None:
    image = _image()
    _set_partition(image, 0, isr=[1, 3, 2], leader_epoch=0, partition_epoch=0)
    _apply(image, election.fence_broker(image, 1))
    assert _p(image, 0).leader == 2


def test_fence_last_isr_member_takes_partition_offline_and_keeps_it_in_isr() -> None:
    image = _image()
    _apply(image, election.fence_broker(image, 2))
    _apply(image, election.fence_broker(image, 3))
    assert [_p(image, i).isr for i in range(3)] == [[1], [1], [1]]
    epochs = [_p(image, i).leader_epoch for i in range(3)]
    _apply(image, election.fence_broker(image, 1))
    for i in range(3):
        p = _p(image, i)
        assert p.leader == -1 and p.isr == [1], "the last ISR member stays for a later clean election"
        assert p.leader_epoch == epochs[i] + 1, "going offline is a leader change"


def test_fence_without_unclean_never_leaves_the_isr() -> None:
    image = _image()
    _apply(image, election.alter_partition(image, _alter(image, 0, [1])))
    _apply(image, election.fence_broker(image, 1))
    p = _p(image, 0)
    assert (p.leader, p.isr) == (-1, [1]), "live replicas 2 and 3 are out of sync: no unclean election by default"


def test_fence_with_unclean_topic_elects_first_live_replica_outside_isr() -> None:
    image = _image(unclean=True)
    _apply(image, election.alter_partition(image, _alter(image, 0, [1])))
    before = _p(image, 0)
    _apply(image, election.fence_broker(image, 1))
    p = _p(image, 0)
    assert (p.leader, p.isr) == (2, [2])
    assert (p.leader_epoch, p.partition_epoch) == (before.leader_epoch + 1, before.partition_epoch + 1)


def test_fence_with_unclean_topic_and_no_live_replica_goes_offline() -> None:
    image = _image(unclean=True)
    _apply(image, election.fence_broker(image, 2))
    _apply(image, election.fence_broker(image, 3))
    _apply(image, election.fence_broker(image, 1))
    assert all(_p(image, i).leader == -1 for i in range(3))


def test_fence_unknown_or_already_fenced_broker_gives_no_records() -> None:
    image = _image()
    assert election.fence_broker(image, 42).records == []
    _apply(image, election.fence_broker(image, 1))
    assert election.fence_broker(image, 1).records == []


def test_fence_broker_without_replicas_only_fences() -> None:
    image = _image(4, partitions=1)  # t-0 on [1,2,3]
    assert _kinds(election.fence_broker(image, 4)) == ["fence_broker"]


def test_fence_emits_no_record_for_unchanged_partitions() -> None:
    image = _image()
    _apply(image, election.alter_partition(image, _alter(image, 0, [1, 2])))  # 3 out of t-0's ISR
    result = election.fence_broker(image, 3)
    changed = {r.partition.partition for r in result.records if r.HasField("partition")}
    assert changed == {1, 2}


# ---------------------------------------------------------------------------
# unfence_broker, register_broker, should_unfence


def test_unfence_restores_leadership_of_offline_partitions() -> None:
    image = _image()
    for b in (2, 3, 1):
        _apply(image, election.fence_broker(image, b))
    before = [_p(image, i) for i in range(3)]
    result = _apply(image, _decide(image, election.unfence_broker, 1, _epoch(image, 1)))
    assert _kinds(result) == ["unfence_broker", "partition", "partition", "partition"]
    assert not image.brokers[1].fenced
    for i in range(3):
        p = _p(image, i)
        assert (p.leader, p.isr) == (1, [1])
        assert (p.leader_epoch, p.partition_epoch) == (before[i].leader_epoch + 1, before[i].partition_epoch + 1)


def test_unfence_does_not_add_followers_back_to_the_isr() -> None:
    image = _image()
    _apply(image, election.fence_broker(image, 3))
    before = [_p(image, i) for i in range(3)]
    result = _apply(image, election.unfence_broker(image, 3, _epoch(image, 3)))
    assert _kinds(result) == ["unfence_broker"]
    assert [_p(image, i) for i in range(3)] == before, "ISR expansion is the leader's job (AlterPartition)"


def test_unfence_offline_partition_of_unclean_topic_takes_replica_outside_isr() -> None:
    for unclean in (False, True):
        image = _image(unclean=unclean)
        for b in (1, 2, 3):
            _apply(image, election.fence_broker(image, b))
        assert _p(image, 0).isr == [3]
        _apply(image, election.unfence_broker(image, 2, _epoch(image, 2)))
        p = _p(image, 0)
        assert (p.leader, p.isr) == ((2, [2]) if unclean else (-1, [3]))


def test_unfence_stale_unknown_and_already_unfenced() -> None:
    image = _image()
    _apply(image, election.fence_broker(image, 1))
    with pytest.raises(StaleBrokerEpochError):
        election.unfence_broker(image, 1, _epoch(image, 1) - 1)
    with pytest.raises(BrokerIdNotRegisteredError):
        election.unfence_broker(image, 42, 1)
    assert election.unfence_broker(image, 2, _epoch(image, 2)).records == []


def test_registration_is_fenced_until_caught_up() -> None:
    image = MetadataImage()
    image.version = 10
    result = _decide(image, election.register_broker, 1, "h", 9092, "r1", b"inc", live=False)
    assert result.response == 11, "the epoch is the metadata version that registers it"
    assert _kinds(result) == ["broker_registration"]
    reg = result.records[0].broker_registration
    assert (reg.broker_id, reg.broker_epoch, reg.host, reg.port, reg.rack, reg.fenced, reg.incarnation_id) == (
        1, 11, "h", 9092, "r1", True, b"inc",
    )
    _apply(image, result)
    assert image.brokers[1].fenced
    assert not election.should_unfence(image, 1, 11, 10), "not yet caught up with its own registration"
    assert election.should_unfence(image, 1, 11, 11)
    assert election.should_unfence(image, 1, 11, 500)
    assert not election.should_unfence(image, 1, 10, 500), "stale epoch"
    assert not election.should_unfence(image, 2, 11, 500), "unknown broker"
    _apply(image, election.unfence_broker(image, 1, 11))
    assert not election.should_unfence(image, 1, 11, 500), "already unfenced"


def test_reregistration_of_the_same_incarnation_returns_the_existing_epoch() -> None:
    image = _image()
    epoch = _epoch(image, 1)
    assert image.brokers[1].incarnation_id == bytes([1])
    for live in (True, False):  # a retried request, whether or not the session is still valid
        result = election.register_broker(image, 1, "h", 1, "", bytes([1]), live=live)
        assert (result.records, result.response) == ([], epoch)
    _apply(image, election.fence_broker(image, 1))
    result = election.register_broker(image, 1, "h", 1, "", bytes([1]), live=False)
    assert (result.records, result.response) == ([], epoch), "stays fenced; its heartbeats unfence it"
    # the caller may state the registered incarnation explicitly
    result = election.register_broker(image, 1, "h", 1, "", b"same", live=True, registered_incarnation=b"same")
    assert (result.records, result.response) == ([], epoch)


def test_new_incarnation_of_a_live_broker_is_a_duplicate() -> None:
    image = _image()
    with pytest.raises(DuplicateBrokerRegistrationError):
        election.register_broker(image, 1, "h", 1, "", b"other", live=True)
    with pytest.raises(DuplicateBrokerRegistrationError):
        election.register_broker(image, 1, "h", 1, "", b"other", live=True, registered_incarnation=bytes([1]))


def test_unknown_incarnation_counts_as_a_new_one() -> None:
    image = _image()
    raw = md.BrokerRegistrationRecord(broker_id=1, broker_epoch=_epoch(image, 1), host="h", port=1, fenced=False)
    _apply(image, ControllerResult([md.MetadataRecord(broker_registration=raw)], None))
    assert image.brokers[1].incarnation_id == b""
    with pytest.raises(DuplicateBrokerRegistrationError):
        election.register_broker(image, 1, "h", 1, "", b"", live=True)
    result = election.register_broker(image, 1, "h", 1, "", b"", live=False)
    assert result.response == image.version + 1


def test_new_incarnation_of_a_dead_unfenced_broker_hands_its_partitions_over() -> None:
    image = _image()
    old = _epoch(image, 1)
    result = _apply(image, _decide(image, election.register_broker, 1, "h2", 2, "", b"new", live=False))
    assert result.response == image.version and result.response > old
    assert _kinds(result) == ["broker_registration", "partition", "partition", "partition"]
    b = image.brokers[1]
    assert (b.broker_epoch, b.fenced, b.host, b.port) == (result.response, True, "h2", 2)
    assert _p(image, 0).leader == 2 and all(1 not in _p(image, i).isr for i in range(3))
    assert election.fence_broker(image, 1).records == [], "already fenced"


def test_new_incarnation_of_a_fenced_broker_only_registers() -> None:
    image = _image()
    _apply(image, election.fence_broker(image, 1))
    for live in (False, True):  # a fenced registration has no valid session (Kafka): never a duplicate
        result = election.register_broker(image, 1, "h", 1, "", b"new", live=live)
        assert _kinds(result) == ["broker_registration"]
        assert result.response == image.version + 1


# ---------------------------------------------------------------------------
# alter_partition


def test_alter_partition_shrink_and_expand() -> None:
    image = _image()
    result = _apply(image, _decide(image, election.alter_partition, _alter(image, 0, [1, 2])))
    assert result.response.error_code == 0
    p = _p(image, 0)
    assert (p.isr, p.leader, p.leader_epoch, p.partition_epoch) == ([1, 2], 1, 0, 1)
    assert result.response.partition == result.records[0].partition
    assert list(result.response.partition.isr) == [1, 2]
    result = _apply(image, election.alter_partition(image, _alter(image, 0, [1, 2, 3])))
    assert result.response.error_code == 0
    assert (_p(image, 0).isr, _p(image, 0).partition_epoch, _p(image, 0).leader_epoch) == ([1, 2, 3], 2, 0)


def test_alter_partition_unchanged_isr_gives_no_record() -> None:
    image = _image()
    result = election.alter_partition(image, _alter(image, 0, [3, 2, 1]))
    assert result.records == [] and result.response.error_code == 0
    assert result.response.partition.partition_epoch == 0


def test_alter_partition_may_keep_a_fenced_member_but_not_add_one() -> None:
    image = _image()
    raw_fence = md.FenceBrokerRecord(broker_id=2, broker_epoch=_epoch(image, 2))
    _apply(image, ControllerResult([md.MetadataRecord(fence_broker=raw_fence)], None))  # 2 fenced, still in ISRs
    assert image.brokers[2].fenced and 2 in _p(image, 0).isr
    result = _apply(image, election.alter_partition(image, _alter(image, 0, [1, 2])))
    assert result.response.error_code == 0 and _p(image, 0).isr == [1, 2]
    _apply(image, election.fence_broker(image, 3))
    result = election.alter_partition(image, _alter(image, 0, [1, 2, 3]))
    assert result.response.error_code == ErrorCode.INELIGIBLE_REPLICA and result.records == []


@pytest.mark.parametrize(
    "case, code",
    [
        ("unknown topic", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("unknown partition", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("stale broker epoch", ErrorCode.STALE_BROKER_EPOCH),
        ("unknown broker", ErrorCode.STALE_BROKER_EPOCH),
        ("not leader", ErrorCode.NOT_LEADER_OR_FOLLOWER),
        ("old leader epoch", ErrorCode.FENCED_LEADER_EPOCH),
        ("future leader epoch", ErrorCode.FENCED_LEADER_EPOCH),
        ("old partition epoch", ErrorCode.INVALID_UPDATE_VERSION),
        ("future partition epoch", ErrorCode.INVALID_UPDATE_VERSION),
        ("isr without leader", ErrorCode.INELIGIBLE_REPLICA),
        ("empty isr", ErrorCode.INELIGIBLE_REPLICA),
        ("isr not a replica", ErrorCode.INELIGIBLE_REPLICA),
        ("duplicate member", ErrorCode.INELIGIBLE_REPLICA),
        ("add fenced broker", ErrorCode.INELIGIBLE_REPLICA),
    ],
)
def test_alter_partition_rejections_leave_no_records(case: str, code: ErrorCode) -> None:
    image = _image(4)
    _apply(image, election.alter_partition(image, _alter(image, 0, [1, 2])))  # partition epoch 1
    _apply(image, election.fence_broker(image, 4))
    p = _p(image, 0)
    overrides = {
        "unknown topic": dict(topic_id=b"\x00" * 16),
        "unknown partition": dict(partition=7),
        "stale broker epoch": dict(broker_epoch=_epoch(image, 1) - 1),
        "unknown broker": dict(broker_id=42),
        "not leader": dict(broker_id=2, broker_epoch=_epoch(image, 2)),
        "old leader epoch": dict(leader_epoch=p.leader_epoch - 1),
        "future leader epoch": dict(leader_epoch=p.leader_epoch + 1),
        "old partition epoch": dict(partition_epoch=p.partition_epoch - 1),
        "future partition epoch": dict(partition_epoch=p.partition_epoch + 1),
        "isr without leader": dict(new_isr=[2, 3]),
        "empty isr": dict(new_isr=[]),
        "isr not a replica": dict(new_isr=[1, 2, 4]),
        "duplicate member": dict(new_isr=[1, 2, 2]),
        "add fenced broker": dict(new_isr=[1, 2, 3]),
    }[case]
    if case == "isr not a replica":
        _apply(image, election.unfence_broker(image, 4, _epoch(image, 4)))  # live, but not a replica of t-0
    elif case == "add fenced broker":
        _apply(image, election.fence_broker(image, 3))
        p = _p(image, 0)
    overrides.setdefault("new_isr", [1, 2, 3])
    result = _decide(image, election.alter_partition, _alter(image, 0, **overrides))
    assert result.records == []
    assert result.response.error_code == code, result.response.error_message
    assert result.response.error_message
    if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        assert not result.response.HasField("partition")
    else:
        assert result.response.partition == partition_record(image.topics["t"].topic_id, 0, p).partition


def test_alter_partition_from_a_deposed_leader_is_rejected() -> None:
    image = _image()
    stale = _alter(image, 0, [1, 2])
    _apply(image, election.fence_broker(image, 1))
    _apply(image, election.unfence_broker(image, 1, _epoch(image, 1)))
    assert election.alter_partition(image, stale).response.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    # broker 2 leads now; a request built on the epochs broker 1 knew is fenced
    late = _alter(image, 0, [2, 3], broker_id=2, broker_epoch=_epoch(image, 2), leader_epoch=0, partition_epoch=0)
    assert election.alter_partition(image, late).response.error_code == ErrorCode.FENCED_LEADER_EPOCH
    behind = _alter(image, 0, [2, 3], partition_epoch=0)
    assert election.alter_partition(image, behind).response.error_code == ErrorCode.INVALID_UPDATE_VERSION


# ---------------------------------------------------------------------------
# elect_leaders, preferred_leader_rebalance


def _failover(image: MetadataImage) -> None:
    """Broker 1 bounces and rejoins every ISR: t-0 led by 2, preferred replica 1 back in sync."""
    _apply(image, election.fence_broker(image, 1))
    _apply(image, election.unfence_broker(image, 1, _epoch(image, 1)))
    for i in range(3):
        p = _p(image, i)
        _apply(image, election.alter_partition(image, _alter(image, i, p.isr + [1])))


def test_preferred_election() -> None:
    image = _image()
    _failover(image)
    before = _p(image, 0)
    assert before.leader == 2
    result = _apply(image, _elect(image, election.PREFERRED_ELECTION, ("t", [0, 1])))
    codes = {r.partition: r.error_code for r in result.response.results}
    assert codes == {0: 0, 1: ErrorCode.ELECTION_NOT_NEEDED}
    p = _p(image, 0)
    assert (p.leader, p.isr, p.leader_epoch, p.partition_epoch) == (
        1, before.isr, before.leader_epoch + 1, before.partition_epoch + 1,
    )


def test_preferred_leader_not_available() -> None:
    image = _image()
    _apply(image, election.fence_broker(image, 1))
    result = _elect(image, election.PREFERRED_ELECTION, ("t", [0]))
    assert [r.error_code for r in result.response.results] == [ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE]
    _apply(image, election.unfence_broker(image, 1, _epoch(image, 1)))  # live, but not back in the ISR
    result = _elect(image, election.PREFERRED_ELECTION, ("t", [0]))
    assert [r.error_code for r in result.response.results] == [ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE]
    assert result.records == []


def test_unclean_election() -> None:
    image = _image()  # the topic does NOT enable unclean election: an admin may still force one
    _apply(image, election.alter_partition(image, _alter(image, 0, [1])))
    _apply(image, election.fence_broker(image, 1))
    before = _p(image, 0)
    assert before.leader == -1
    result = _apply(image, _elect(image, election.UNCLEAN_ELECTION, ("t", [0, 1])))
    codes = {r.partition: r.error_code for r in result.response.results}
    assert codes == {0: 0, 1: ErrorCode.ELECTION_NOT_NEEDED}
    p = _p(image, 0)
    assert (p.leader, p.isr, p.leader_epoch, p.partition_epoch) == (
        2, [2], before.leader_epoch + 1, before.partition_epoch + 1,
    )


def test_unclean_election_prefers_a_live_isr_member() -> None:
    image = _image()
    _set_partition(image, 0, leader=-1, isr=[1, 3])
    _apply(image, election.fence_broker(image, 1))
    result = _apply(image, _elect(image, election.UNCLEAN_ELECTION, ("t", [0])))
    assert result.response.results[0].error_code == 0
    assert (_p(image, 0).leader, _p(image, 0).isr) == (3, [3])


def test_unclean_election_without_live_replicas() -> None:
    image = _image()
    for b in (1, 2, 3):
        _apply(image, election.fence_broker(image, b))
    result = _elect(image, election.UNCLEAN_ELECTION, ("t", [0]))
    assert [r.error_code for r in result.response.results] == [ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE]
    assert result.records == []


def test_elect_leaders_request_shapes() -> None:
    image = _image()
    result = _elect(image, election.PREFERRED_ELECTION, ("nope", [0]), ("t", [9]), ("t", [0, 0]), ("gone", []))
    got = [(r.topic, r.partition, r.error_code) for r in result.response.results]
    assert got == [
        ("nope", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("t", 9, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("t", 0, ErrorCode.ELECTION_NOT_NEEDED),
        ("gone", -1, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]
    assert all(r.error_message for r in result.response.results)
    result = _elect(image, election.PREFERRED_ELECTION, ("t", []))
    assert [(r.partition, r.error_code) for r in result.response.results] == [
        (0, ErrorCode.ELECTION_NOT_NEEDED), (1, ErrorCode.ELECTION_NOT_NEEDED), (2, ErrorCode.ELECTION_NOT_NEEDED),
    ], "an empty partition list means all of the topic's partitions"
    result = _elect(image, 7, ("t", [0]))
    assert [r.error_code for r in result.response.results] == [ErrorCode.INVALID_REQUEST]
    assert _elect(image, 7).response.results == []


def test_elect_all_reports_only_changed_partitions() -> None:
    image = _image()
    _create(image, "u", 2, 3)
    _failover(image)
    _apply(image, election.fence_broker(image, 3))  # t-2's preferred replica: not available
    result = _apply(image, _elect(image, election.PREFERRED_ELECTION))
    got = [(r.topic, r.partition, r.error_code) for r in result.response.results]
    assert all(code == 0 for _, _, code in got)
    assert ("t", 0) in {(t, p) for t, p, _ in got}
    assert len(result.records) == len(got)
    assert _elect(image, election.PREFERRED_ELECTION).response.results == [], "nothing left to change"


def test_preferred_leader_rebalance() -> None:
    image = _image(4, partitions=4)
    for b in (1, 2):
        _apply(image, election.fence_broker(image, b))
        _apply(image, election.unfence_broker(image, b, _epoch(image, b)))
    for i in range(4):
        p = _p(image, i)
        missing = [r for r in p.replicas if r not in p.isr and r != 2]  # 2 stays out of sync
        if missing:
            _apply(image, election.alter_partition(image, _alter(image, i, p.isr + missing)))
    result = _apply(image, _decide(image, election.preferred_leader_rebalance))
    assert result.response is None and result.records
    for i in range(4):
        p = _p(image, i)
        if p.replicas[0] == 2:
            assert p.leader != 2, "the preferred replica is not in the ISR"
        else:
            assert p.leader == p.replicas[0]
    assert election.preferred_leader_rebalance(image).records == []


# ---------------------------------------------------------------------------
# controlled_shutdown


def test_controlled_shutdown_moves_every_leadership() -> None:
    image = _image(4, partitions=8)
    led = [i for i in range(8) if _p(image, i).leader == 1]
    assert led
    before = {i: _p(image, i) for i in range(8)}
    result = _apply(image, _decide(image, election.controlled_shutdown, 1, _epoch(image, 1)))
    assert result.response == 0
    assert not list(image.partitions_led_by(1))
    for i in range(8):
        p, old = _p(image, i), before[i]
        assert 1 not in p.isr
        if i in led:
            assert p.leader == [r for r in old.replicas if r != 1][0]
            assert p.leader_epoch == old.leader_epoch + 1
        elif 1 in old.isr:
            assert (p.leader, p.leader_epoch) == (old.leader, old.leader_epoch)
        assert p.partition_epoch == old.partition_epoch + (1 in old.isr)
    assert not image.brokers[1].fenced, "fencing is the heartbeat's job once nothing is left"


def test_controlled_shutdown_reports_the_remainder() -> None:
    image = _image()
    _apply(image, election.alter_partition(image, _alter(image, 0, [1])))  # 1 alone in t-0's ISR
    _apply(image, election.fence_broker(image, 2))  # t-1: 2 led [2,3,1] -> 3 leads
    _apply(image, election.fence_broker(image, 3))  # t-1 and t-2 now led by 1, ISR [1]
    result = _apply(image, election.controlled_shutdown(image, 1, _epoch(image, 1)))
    assert result.response == 3
    assert result.records == []
    assert all(_p(image, i).leader == 1 for i in range(3))


def test_controlled_shutdown_keeps_last_isr_member_of_offline_partition() -> None:
    image = _image()
    _set_partition(image, 0, leader=-1, isr=[2])
    _apply(image, election.fence_broker(image, 3))
    before = _p(image, 0)
    _apply(image, election.controlled_shutdown(image, 2, _epoch(image, 2)))
    assert _p(image, 0) == before


def test_controlled_shutdown_stale_and_unknown() -> None:
    image = _image()
    with pytest.raises(StaleBrokerEpochError):
        election.controlled_shutdown(image, 1, _epoch(image, 1) + 1)
    with pytest.raises(BrokerIdNotRegisteredError):
        election.controlled_shutdown(image, 42, 1)


# ---------------------------------------------------------------------------
# allocate_producer_ids


def test_producer_id_blocks_never_overlap() -> None:
    image = _image()
    seen: set[int] = set()
    for n, b in enumerate([1, 2, 3, 1, 2]):
        result = _apply(image, _decide(image, election.allocate_producer_ids, b, _epoch(image, b), block_size=10 + n))
        first, count = result.response
        block = set(range(first, first + count))
        assert count == 10 + n and not (block & seen)
        seen |= block
        rec = result.records[0].producer_ids
        assert (rec.broker_id, rec.broker_epoch, rec.next_producer_id) == (b, _epoch(image, b), first + count)
        assert image.next_producer_id == first + count
    assert seen == set(range(len(seen))), "blocks are contiguous"
    assert election.allocate_producer_ids(image, 1, _epoch(image, 1)).response[1] == election.DEFAULT_PRODUCER_ID_BLOCK


def test_producer_ids_errors() -> None:
    image = _image()
    with pytest.raises(StaleBrokerEpochError):
        election.allocate_producer_ids(image, 1, _epoch(image, 1) - 1)
    with pytest.raises(StaleBrokerEpochError):
        election.allocate_producer_ids(image, 42, 1)
    with pytest.raises(InvalidRequestError):
        election.allocate_producer_ids(image, 1, _epoch(image, 1), block_size=0)
    image.next_producer_id = election.MAX_PRODUCER_ID - 5
    with pytest.raises(UnknownServerError):
        election.allocate_producer_ids(image, 1, _epoch(image, 1), block_size=10)


# ---------------------------------------------------------------------------
# replay


def test_records_replayed_into_a_copy_give_the_same_image() -> None:
    image = _image(4, unclean=True, partitions=6)
    steps = [
        lambda i: election.fence_broker(i, 1),
        lambda i: election.alter_partition(i, _alter(i, 1, [x for x in _p(i, 1).isr if x != 3] or _p(i, 1).isr)),
        lambda i: election.fence_broker(i, 2),
        lambda i: election.unfence_broker(i, 1, _epoch(i, 1)),
        lambda i: election.elect_leaders(i, cpb.ElectLeadersRequest(election_type=1)),
        lambda i: election.register_broker(i, 3, "h", 3, "", b"new", live=False),
        lambda i: election.controlled_shutdown(i, 4, _epoch(i, 4)),
        lambda i: election.allocate_producer_ids(i, 4, _epoch(i, 4)),
        lambda i: election.preferred_leader_rebalance(i),
    ]
    for step in steps:
        copy = _copy(image)
        result = step(image)
        _apply(image, result)
        _apply(copy, result)
        assert _snapshot(copy) == _snapshot(image)


# ---------------------------------------------------------------------------
# property: random operation sequences keep the invariants


def _check_invariants(image: MetadataImage, before: dict[tuple[str, int], PartitionState]) -> None:
    for topic in image.topics.values():
        for index, p in topic.partitions.items():
            assert p.isr, f"{topic.name}-{index}: empty ISR"
            assert set(p.isr) <= set(p.replicas), f"{topic.name}-{index}: ISR {p.isr} outside replicas {p.replicas}"
            assert len(set(p.isr)) == len(p.isr)
            if p.leader != -1:
                assert p.leader in p.isr, f"{topic.name}-{index}: leader {p.leader} not in ISR {p.isr}"
                assert not image.brokers[p.leader].fenced, f"{topic.name}-{index}: fenced leader {p.leader}"
            old = before.get((topic.name, index))
            if old is None:
                continue
            assert p.leader_epoch >= old.leader_epoch and p.partition_epoch >= old.partition_epoch
            if p.leader != old.leader:
                assert p.leader_epoch > old.leader_epoch, f"{topic.name}-{index}: leader changed without epoch bump"
            if (p.leader, p.isr) != (old.leader, old.isr):
                assert p.partition_epoch > old.partition_epoch, f"{topic.name}-{index}: change without partition epoch bump"


def _states(image: MetadataImage) -> dict[tuple[str, int], PartitionState]:
    return {
        (t.name, i): PartitionState(list(p.replicas), list(p.isr), p.leader, p.leader_epoch, p.partition_epoch)
        for t in image.topics.values()
        for i, p in t.partitions.items()
    }


OPS = ["fence", "unfence", "reregister", "alter", "elect", "rebalance", "shutdown", "producer_ids"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(brokers=st.integers(3, 5), data=st.data())
def test_random_operations_keep_invariants(brokers: int, data: st.DataObject) -> None:
    image = MetadataImage()
    for b in range(1, brokers + 1):
        _register(image, b)
    _create(image, "a", 3, 3)
    _create(image, "u", 2, 3, **{"unclean.leader.election.enable": "true"})
    log = [md.MetadataBatch(version=image.version, records=image.snapshot_records())]
    incarnations = itertools.count(100)
    pick_broker = st.integers(1, brokers + 1)  # brokers + 1 is never registered
    for _ in range(data.draw(st.integers(1, 30), label="steps")):
        op = data.draw(st.sampled_from(OPS), label="op")
        before = _states(image)
        snapshot = _snapshot(image)
        result: ControllerResult | None = None
        b = data.draw(pick_broker, label="broker")
        state = image.brokers.get(b)
        epoch = (state.broker_epoch if state else 1) - data.draw(st.sampled_from([0, 0, 0, 1]), label="stale")
        try:
            if op == "fence":
                result = election.fence_broker(image, b)
            elif op == "unfence":
                result = election.unfence_broker(image, b, epoch)
            elif op == "reregister":
                result = election.register_broker(image, b, "h", b, "", bytes([next(incarnations)]), live=False)
            elif op == "shutdown":
                result = election.controlled_shutdown(image, b, epoch)
            elif op == "producer_ids":
                result = election.allocate_producer_ids(image, b, epoch)
                assert result.response[0] == image.next_producer_id
            elif op == "rebalance":
                result = election.preferred_leader_rebalance(image)
            elif op == "elect":
                kind = data.draw(st.sampled_from([0, 1]), label="type")
                targets = data.draw(st.sampled_from([[], [("a", [0, 1, 2])], [("u", [0, 1])]]), label="targets")
                result = election.elect_leaders(image, cpb.ElectLeadersRequest(
                    election_type=kind, topics=[pb.TopicPartitions(topic=t, partitions=ps) for t, ps in targets]
                ))
                assert all(r.error_code == 0 for r in result.response.results) or targets
            elif op == "alter":
                name = data.draw(st.sampled_from(["a", "u"]), label="topic")
                index = data.draw(st.integers(0, len(image.topics[name].partitions) - 1), label="partition")
                p = image.topics[name].partitions[index]
                sender = p.leader if p.leader != -1 else b
                isr = data.draw(st.lists(st.sampled_from(p.replicas), unique=True), label="isr")
                if data.draw(st.booleans(), label="with leader") and sender not in isr:
                    isr.insert(0, sender)
                request = cpb.AlterPartitionRequest(
                    broker_id=sender,
                    broker_epoch=image.brokers[sender].broker_epoch if sender in image.brokers else 0,
                    topic_id=image.topics[name].topic_id,
                    partition=index,
                    leader_epoch=p.leader_epoch - data.draw(st.sampled_from([0, 0, 1]), label="le"),
                    partition_epoch=p.partition_epoch - data.draw(st.sampled_from([0, 0, 1]), label="pe"),
                    new_isr=isr,
                )
                result = election.alter_partition(image, request)
                if result.response.error_code:
                    assert result.records == []
        except (StaleBrokerEpochError, BrokerIdNotRegisteredError):
            assert op in ("unfence", "shutdown", "producer_ids")
            assert epoch != (state.broker_epoch if state else None)
            continue
        assert _snapshot(image) == snapshot, f"{op} mutated the image"
        assert result is not None
        batch = md.MetadataBatch(version=image.version + 1, records=result.records)
        image.apply_batch(batch)
        log.append(batch)
        _check_invariants(image, before)
        if op == "shutdown":
            assert result.response == sum(1 for _ in image.partitions_led_by(b)), "the remainder is what it still leads"
    replayed = MetadataImage()
    for batch in log:
        replayed.apply_batch(batch)
    assert _snapshot(replayed) == _snapshot(image), "replaying the log rebuilds the same image"

