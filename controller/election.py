"""Partition leadership, ISR and broker-lifecycle decisions, as pure functions.

Kafka's ``ReplicationControlManager`` / ``PartitionChangeBuilder`` rules in the
:mod:`caudal.controller.control` style: each function reads a
:class:`MetadataImage`, never mutates it, and returns a
:class:`ControllerResult` — the records to commit and the response to send once
they are committed. A ``PartitionRecord`` always carries a partition's full new
state; no record is emitted for a partition that does not change.

Epoch rules (principle 6): any leader change (including to -1, offline) bumps
``leader_epoch`` so followers truncate and stale leaders are rejected; every
change bumps ``partition_epoch`` so a leader's AlterPartition based on an older
state is rejected (INVALID_UPDATE_VERSION).

Leaders come from the ISR among unfenced brokers, in replica order (so the
preferred replica wins when eligible); outside the ISR only when the topic sets
``unclean.leader.election.enable=true`` or an admin asks for an unclean election
(principle 7: unclean election is off by default).

Errors: functions whose response has an error field (AlterPartition,
ElectLeaders) report errors there and return no records; the others raise the
typed :class:`CaudalError` (the caller turns it into the RPC's error code) and
decide nothing.
"""

from __future__ import annotations

from typing import Callable, Iterator

from caudal.common.errors import (
    BrokerIdNotRegisteredError,
    CaudalError,
    DuplicateBrokerRegistrationError,
    ElectionNotNeededError,
    EligibleLeadersNotAvailableError,
    FencedLeaderEpochError,
    IneligibleReplicaError,
    InvalidRequestError,
    InvalidUpdateVersionError,
    NotLeaderOrFollowerError,
    PreferredLeaderNotAvailableError,
    StaleBrokerEpochError,
    UnknownServerError,
    UnknownTopicOrPartitionError,
)
from caudal.common.metadata import BrokerState, MetadataImage, PartitionState, TopicState, partition_record
from caudal.controller.control import ControllerResult
from caudal.v1 import controller_pb2
from caudal.v1 import metadata_pb2 as md

NO_LEADER = -1
PREFERRED_ELECTION = 0
UNCLEAN_ELECTION = 1
DEFAULT_PRODUCER_ID_BLOCK = 1000
"""Kafka's ``ProducerIdManager`` hands out blocks of 1000 ids per request."""
MAX_PRODUCER_ID = 2**63 - 1

Live = Callable[[int], bool]


# ---------------------------------------------------------------------------
# helpers


def _unfenced(image: MetadataImage) -> Live:
    return lambda b: (s := image.brokers.get(b)) is not None and not s.fenced


def _partitions(image: MetadataImage) -> Iterator[tuple[TopicState, int, PartitionState]]:
    """Every partition in a deterministic order (topic name, partition index)."""
    for name in sorted(image.topics):
        topic = image.topics[name]
        for index in sorted(topic.partitions):
            yield topic, index, topic.partitions[index]


def _change(before: PartitionState, leader: int, isr: list[int]) -> PartitionState | None:
    """The new state with epochs bumped, or None when nothing changes (no-op records are not emitted)."""
    if leader == before.leader and isr == before.isr:
        return None
    return PartitionState(
        list(before.replicas),
        list(isr),
        leader,
        before.leader_epoch + (1 if leader != before.leader else 0),
        before.partition_epoch + 1,
    )


def _elect(p: PartitionState, isr: list[int], live: Live, unclean: bool) -> tuple[int, list[int]]:
    """Kafka's leader choice: the first live ISR member in replica order.

    With ``unclean`` and no live ISR member, the first live replica outside the
    ISR leads and becomes the whole ISR (it may lack committed records; that is
    the data loss the topic accepted). Otherwise the partition goes offline.
    """
    for r in p.replicas:
        if r in isr and live(r):
            return r, isr
    if unclean:
        for r in p.replicas:
            if live(r):
                return r, [r]
    return NO_LEADER, isr


def _check_epoch(image: MetadataImage, broker_id: int, broker_epoch: int, unknown: type[CaudalError]) -> BrokerState:
    broker = image.brokers.get(broker_id)
    if broker is None:
        raise unknown(f"Broker {broker_id} is not registered.")
    if broker.broker_epoch != broker_epoch:
        raise StaleBrokerEpochError(
            f"Broker {broker_id} epoch {broker_epoch} is not the registered epoch {broker.broker_epoch}."
        )
    return broker


def _without(image: MetadataImage, broker_id: int) -> list[md.MetadataRecord]:
    """Partition records taking ``broker_id`` out of service (fenced or re-registered).

    It leaves every ISR it is in except as the last member: Kafka keeps the last
    ISR member so that, when it returns, a clean election is still possible (the
    partition is offline meanwhile). Partitions it led get a new leader.
    """
    base = _unfenced(image)
    live: Live = lambda b: b != broker_id and base(b)  # noqa: E731
    records = []
    for topic, index, p in _partitions(image):
        if broker_id not in p.isr and p.leader != broker_id:
            continue
        isr = [b for b in p.isr if b != broker_id] if len(p.isr) > 1 else list(p.isr)
        leader = p.leader
        if leader == broker_id:
            leader, isr = _elect(p, isr, live, topic.config.unclean_leader_election_enable)
        new = _change(p, leader, isr)
        if new is not None:
            records.append(partition_record(topic.topic_id, index, new))
    return records


# ---------------------------------------------------------------------------
# broker lifecycle


def fence_broker(image: MetadataImage, broker_id: int) -> ControllerResult[None]:
    """Fence a broker whose session expired (or that asked to be fenced on shutdown).

    A FenceBrokerRecord for its current epoch, plus a PartitionRecord for every
    partition it leaves: it drops out of ISRs (kept as the last member, leaving
    the partition offline), and partitions it led get a new leader from the
    remaining live ISR — or, with unclean election enabled on the topic, from
    live replicas outside it. Unknown or already fenced brokers give no records.
    """
    broker = image.brokers.get(broker_id)
    if broker is None or broker.fenced:
        return ControllerResult([], None)
    fence = md.MetadataRecord(fence_broker=md.FenceBrokerRecord(broker_id=broker_id, broker_epoch=broker.broker_epoch))
    return ControllerResult([fence, *_without(image, broker_id)], None)


def unfence_broker(image: MetadataImage, broker_id: int, broker_epoch: int) -> ControllerResult[None]:
    """Unfence a broker that caught up with metadata (see :func:`should_unfence`).

    Kafka's ``handleBrokerUnfenced``: besides the UnfenceBrokerRecord, every
    partition without a leader is re-elected with the broker live again, so
    offline partitions whose ISR holds it get it back as leader (epochs bumped),
    and offline partitions of unclean topics may take it as a replica outside
    the ISR. Followers rejoin ISRs later through their leader's AlterPartition.

    Raises BrokerIdNotRegisteredError / StaleBrokerEpochError; an already
    unfenced broker gives no records.
    """
    broker = _check_epoch(image, broker_id, broker_epoch, BrokerIdNotRegisteredError)
    if not broker.fenced:
        return ControllerResult([], None)
    base = _unfenced(image)
    live: Live = lambda b: b == broker_id or base(b)  # noqa: E731
    records = [md.MetadataRecord(unfence_broker=md.UnfenceBrokerRecord(broker_id=broker_id, broker_epoch=broker_epoch))]
    for topic, index, p in _partitions(image):
        if p.leader != NO_LEADER:
            continue
        leader, isr = _elect(p, p.isr, live, topic.config.unclean_leader_election_enable)
        new = _change(p, leader, isr)
        if new is not None:
            records.append(partition_record(topic.topic_id, index, new))
    return ControllerResult(records, None)


def register_broker(
    image: MetadataImage,
    broker_id: int,
    host: str,
    port: int,
    rack: str,
    incarnation_id: bytes,
    *,
    live: bool,
    registered_incarnation: bytes | None = None,
) -> ControllerResult[int]:
    """Register a broker process; the response is its broker epoch.

    ``live`` says whether the broker id's *currently registered* epoch still has
    a valid heartbeat session on the active controller — compute it as
    ``liveness.has_valid_session(broker_id, image.brokers[broker_id].broker_epoch, now_ms)``
    (False when the id is not registered). Kafka's rule
    (``BrokerHeartbeatManager.hasValidSession``, which is false for fenced
    brokers): while the registration is unfenced and its session valid, a
    registration with a different incarnation id is a second process with the
    same id and gets DUPLICATE_BROKER_REGISTRATION (raised); the new process
    retries and succeeds once the old session expires and it is fenced.

    ``registered_incarnation`` overrides the incarnation id of the current
    registration, which is otherwise ``BrokerState.incarnation_id``. An empty id
    (a registration replayed from before incarnation ids were kept) is unknown:
    every registration then counts as a new incarnation.

    - same incarnation again (a retried request): the existing epoch, no records;
    - otherwise: a new epoch (``image.version + 1``, so epochs only grow),
      registered FENCED — a heartbeat unfences it once it has caught up with
      metadata (:func:`should_unfence`). If the previous registration was still
      unfenced, its partitions are handed over as for :func:`fence_broker`: a
      restarted process must not keep leaderships it lost with its memory.
    """
    existing = image.brokers.get(broker_id)
    if existing is not None:
        known = registered_incarnation if registered_incarnation is not None else existing.incarnation_id
        if known and known == incarnation_id:
            return ControllerResult([], existing.broker_epoch)
        if live and not existing.fenced:
            raise DuplicateBrokerRegistrationError(
                f"Another broker is registered with broker id {broker_id} and its session has not expired."
            )
    epoch = image.version + 1
    records = [
        md.MetadataRecord(
            broker_registration=md.BrokerRegistrationRecord(
                broker_id=broker_id,
                broker_epoch=epoch,
                host=host,
                port=port,
                rack=rack,
                fenced=True,
                incarnation_id=incarnation_id,
            )
        )
    ]
    if existing is not None and not existing.fenced:
        records.extend(_without(image, broker_id))
    return ControllerResult(records, epoch)


def should_unfence(image: MetadataImage, broker_id: int, broker_epoch: int, broker_metadata_version: int) -> bool:
    """True when a heartbeat should unfence this broker (then call :func:`unfence_broker`).

    Kafka unfences a broker only once it has replayed metadata at least up to
    the offset that registered it, so it knows the current leaders before it is
    given any. Its epoch *is* that version. False for unknown, stale or already
    unfenced brokers.
    """
    broker = image.brokers.get(broker_id)
    return (
        broker is not None
        and broker.broker_epoch == broker_epoch
        and broker.fenced
        and broker_metadata_version >= broker_epoch
    )


def controlled_shutdown(image: MetadataImage, broker_id: int, broker_epoch: int) -> ControllerResult[int]:
    """Move work off a broker that is about to stop; the response is what it still leads.

    Each partition it leads goes to the first other live ISR member (epochs
    bumped) and it leaves that ISR; it also leaves every ISR it follows in where
    other members remain. Partitions with no other eligible ISR member stay led
    by it (moving them would take them offline early) and are counted: 0 means
    the broker can stop without making anything unavailable.

    Raises BrokerIdNotRegisteredError / StaleBrokerEpochError.
    """
    _check_epoch(image, broker_id, broker_epoch, BrokerIdNotRegisteredError)
    base = _unfenced(image)
    live: Live = lambda b: b != broker_id and base(b)  # noqa: E731
    records = []
    remaining = 0
    for topic, index, p in _partitions(image):
        if broker_id not in p.isr and p.leader != broker_id:
            continue
        others = [b for b in p.isr if b != broker_id]
        leader, isr = p.leader, list(p.isr)
        if p.leader == broker_id:
            candidate, _ = _elect(p, others, live, unclean=False)
            if candidate == NO_LEADER:
                remaining += 1
                continue
            leader, isr = candidate, others
        elif others:
            isr = others
        new = _change(p, leader, isr)
        if new is not None:
            records.append(partition_record(topic.topic_id, index, new))
    return ControllerResult(records, remaining)


def allocate_producer_ids(
    image: MetadataImage, broker_id: int, broker_epoch: int, block_size: int = DEFAULT_PRODUCER_ID_BLOCK
) -> ControllerResult[tuple[int, int]]:
    """Hand a broker the next block of producer ids; the response is (first id, count).

    The block is taken from ``image.next_producer_id`` and the record advances
    it, so once committed no later call can hand out an overlapping block (two
    decisions against the same image are prevented by the log's
    expected-version check). Raises StaleBrokerEpochError for an unknown broker
    or a stale epoch (Kafka's ``checkBrokerEpoch``).
    """
    _check_epoch(image, broker_id, broker_epoch, StaleBrokerEpochError)
    if block_size < 1:
        raise InvalidRequestError(f"Producer id block size must be positive, got {block_size}.")
    first = image.next_producer_id
    if first > MAX_PRODUCER_ID - block_size:
        raise UnknownServerError("The producer id space is exhausted.")
    next_id = first + block_size
    record = md.MetadataRecord(
        producer_ids=md.ProducerIdsRecord(broker_id=broker_id, broker_epoch=broker_epoch, next_producer_id=next_id)
    )
    return ControllerResult([record], (first, block_size))


# ---------------------------------------------------------------------------
# AlterPartition


def alter_partition(
    image: MetadataImage, request: controller_pb2.AlterPartitionRequest
) -> ControllerResult[controller_pb2.AlterPartitionResponse]:
    """Kafka's AlterPartition: a leader shrinks or expands its partition's ISR.

    Checked in order: the partition exists (UNKNOWN_TOPIC_OR_PARTITION); the
    sender's broker epoch is current (STALE_BROKER_EPOCH) and it is the leader
    (NOT_LEADER_OR_FOLLOWER); its leader epoch (FENCED_LEADER_EPOCH) and
    partition epoch (INVALID_UPDATE_VERSION) are the current ones, so a decision
    based on an older state is never applied; the new ISR contains the leader,
    is a duplicate-free subset of the replicas, and each added member is an
    unfenced broker (INELIGIBLE_REPLICA). Success: the new ISR with
    ``partition_epoch + 1`` (leader epoch unchanged); an unchanged ISR gives no
    record. The response carries the partition's state whenever it is known.
    """
    topic = image.topics_by_id.get(request.topic_id)
    p = topic.partitions.get(request.partition) if topic is not None else None
    if topic is None or p is None:
        unknown = f"Unknown partition {request.partition} of topic id {request.topic_id.hex()}."
        return _alter_error(UnknownTopicOrPartitionError(unknown))
    current = partition_record(topic.topic_id, request.partition, p).partition
    try:
        _check_epoch(image, request.broker_id, request.broker_epoch, StaleBrokerEpochError)
        if p.leader != request.broker_id:
            raise NotLeaderOrFollowerError(f"Broker {request.broker_id} is not the leader (leader is {p.leader}).")
        if request.leader_epoch != p.leader_epoch:
            raise FencedLeaderEpochError(f"Leader epoch {request.leader_epoch} is not the current {p.leader_epoch}.")
        if request.partition_epoch != p.partition_epoch:
            raise InvalidUpdateVersionError(
                f"Partition epoch {request.partition_epoch} is not the current {p.partition_epoch}."
            )
        new_isr = list(request.new_isr)
        _validate_isr(image, p, new_isr)
    except CaudalError as e:
        return _alter_error(e, current)
    if set(new_isr) == set(p.isr):
        return ControllerResult([], controller_pb2.AlterPartitionResponse(partition=current))
    new = PartitionState(list(p.replicas), new_isr, p.leader, p.leader_epoch, p.partition_epoch + 1)
    record = partition_record(topic.topic_id, request.partition, new)
    return ControllerResult([record], controller_pb2.AlterPartitionResponse(partition=record.partition))


def _validate_isr(image: MetadataImage, p: PartitionState, new_isr: list[int]) -> None:
    if p.leader not in new_isr:
        raise IneligibleReplicaError(f"The new ISR {new_isr} does not contain the leader {p.leader}.")
    if len(set(new_isr)) != len(new_isr):
        raise IneligibleReplicaError(f"The new ISR {new_isr} has duplicates.")
    outside = [b for b in new_isr if b not in p.replicas]
    if outside:
        raise IneligibleReplicaError(f"Brokers {outside} are not replicas of the partition ({p.replicas}).")
    live = _unfenced(image)
    ineligible = [b for b in new_isr if b not in p.isr and not live(b)]
    if ineligible:
        raise IneligibleReplicaError(f"Brokers {ineligible} are fenced or unregistered and cannot join the ISR.")


def _alter_error(
    e: CaudalError, current: md.PartitionRecord | None = None
) -> ControllerResult[controller_pb2.AlterPartitionResponse]:
    response = controller_pb2.AlterPartitionResponse(error_code=int(e.code), error_message=e.message)
    if current is not None:
        response.partition.CopyFrom(current)
    return ControllerResult([], response)


# ---------------------------------------------------------------------------
# ElectLeaders


def _elect_one(image: MetadataImage, p: PartitionState, election_type: int) -> PartitionState:
    """The partition's state after the election, or the per-partition error (raised)."""
    live = _unfenced(image)
    if election_type == PREFERRED_ELECTION:
        preferred = p.replicas[0] if p.replicas else NO_LEADER
        if p.leader == preferred:
            raise ElectionNotNeededError("The preferred replica is already the leader.")
        if preferred == NO_LEADER or preferred not in p.isr or not live(preferred):
            raise PreferredLeaderNotAvailableError(f"The preferred replica {preferred} is not live and in the ISR.")
        new = _change(p, preferred, p.isr)
    elif election_type == UNCLEAN_ELECTION:
        if p.leader != NO_LEADER:
            raise ElectionNotNeededError(f"The partition has a leader ({p.leader}).")
        leader, isr = _elect(p, p.isr, live, unclean=True)
        if leader == NO_LEADER:
            raise EligibleLeadersNotAvailableError("No replica of the partition is live.")
        new = _change(p, leader, isr)
    else:
        raise InvalidRequestError(f"Unknown election type {election_type}.")
    assert new is not None  # the leader changes in every successful branch
    return new


def elect_leaders(
    image: MetadataImage, request: controller_pb2.ElectLeadersRequest
) -> ControllerResult[controller_pb2.ElectLeadersResponse]:
    """Kafka's ElectLeaders (kafka-leader-election).

    Preferred (type 0): the first replica leads if it is live and in the ISR
    (ELECTION_NOT_NEEDED when it already leads, PREFERRED_LEADER_NOT_AVAILABLE
    otherwise). Unclean (type 1), only for partitions without a leader: a live
    ISR member if any, else any live replica, which becomes the whole ISR
    (ELECTION_NOT_NEEDED with a leader, ELIGIBLE_LEADERS_NOT_AVAILABLE with no
    live replica); an admin may ask for it whatever the topic's config says.

    Named partitions get one result each (duplicates once; a topic with an
    empty partition list means all its partitions). An empty topic list means
    every partition, and then, as in Kafka, only the partitions whose leader
    changes are reported.
    """
    records: list[md.MetadataRecord] = []
    results: list[controller_pb2.ElectLeadersResult] = []
    everything = len(request.topics) == 0
    if everything:
        targets = [(topic.name, index) for topic, index, _ in _partitions(image)]
    else:
        targets = []
        for tp in request.topics:
            topic = image.topics.get(tp.topic)
            indexes = list(tp.partitions) or (sorted(topic.partitions) if topic is not None else [NO_LEADER])
            targets.extend((tp.topic, i) for i in indexes)
        targets = list(dict.fromkeys(targets))
    for name, index in targets:
        result = controller_pb2.ElectLeadersResult(topic=name, partition=index)
        try:
            topic = image.topics.get(name)
            p = topic.partitions.get(index) if topic is not None else None
            if topic is None or p is None:
                raise UnknownTopicOrPartitionError(f"Partition {name}-{index} does not exist.")
            new = _elect_one(image, p, request.election_type)
        except CaudalError as e:
            if not everything:
                result.error_code, result.error_message = int(e.code), e.message
                results.append(result)
            continue
        records.append(partition_record(topic.topic_id, index, new))
        results.append(result)
    return ControllerResult(records, controller_pb2.ElectLeadersResponse(results=results))


def preferred_leader_rebalance(image: MetadataImage) -> ControllerResult[None]:
    """Kafka's ``auto.leader.rebalance.enable``: give leadership back to preferred replicas.

    After failures leadership piles up on the survivors; wherever the preferred
    replica is live and in the ISR but not leading, it takes over again (leader
    epoch bumped). Unlike Kafka this ignores
    ``leader.imbalance.per.broker.percentage`` and moves every such partition.
    """
    result = elect_leaders(image, controller_pb2.ElectLeadersRequest(election_type=PREFERRED_ELECTION))
    return ControllerResult(result.records, None)
