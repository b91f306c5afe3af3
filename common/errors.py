"""Kafka-style error codes and the typed exceptions that carry them.

Every RPC response carries an ``error_code`` (Kafka's numeric code) and an
``error_message``; the SDK turns a non-zero code back into the exception class
registered for it, so callers can catch ``NotLeaderOrFollowerError`` rather than
parse strings. ``retriable`` follows Kafka's ``RetriableException`` hierarchy:
the producer and consumer retry only those.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Kafka's protocol error codes (same numbers as ``org.apache.kafka.common.protocol.Errors``)."""

    UNKNOWN_SERVER_ERROR = -1
    NONE = 0
    OFFSET_OUT_OF_RANGE = 1
    CORRUPT_MESSAGE = 2
    UNKNOWN_TOPIC_OR_PARTITION = 3
    INVALID_FETCH_SIZE = 4
    LEADER_NOT_AVAILABLE = 5
    NOT_LEADER_OR_FOLLOWER = 6
    REQUEST_TIMED_OUT = 7
    BROKER_NOT_AVAILABLE = 8
    REPLICA_NOT_AVAILABLE = 9
    MESSAGE_TOO_LARGE = 10
    NETWORK_EXCEPTION = 13
    COORDINATOR_LOAD_IN_PROGRESS = 14
    COORDINATOR_NOT_AVAILABLE = 15
    NOT_COORDINATOR = 16
    INVALID_TOPIC_EXCEPTION = 17
    RECORD_LIST_TOO_LARGE = 18
    NOT_ENOUGH_REPLICAS = 19
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20
    INVALID_REQUIRED_ACKS = 21
    ILLEGAL_GENERATION = 22
    INCONSISTENT_GROUP_PROTOCOL = 23
    INVALID_GROUP_ID = 24
    UNKNOWN_MEMBER_ID = 25
    INVALID_SESSION_TIMEOUT = 26
    REBALANCE_IN_PROGRESS = 27
    INVALID_TIMESTAMP = 32
    UNSUPPORTED_VERSION = 35
    TOPIC_ALREADY_EXISTS = 36
    INVALID_PARTITIONS = 37
    INVALID_REPLICATION_FACTOR = 38
    INVALID_REPLICA_ASSIGNMENT = 39
    INVALID_CONFIG = 40
    NOT_CONTROLLER = 41
    INVALID_REQUEST = 42
    POLICY_VIOLATION = 44
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45
    DUPLICATE_SEQUENCE_NUMBER = 46
    INVALID_PRODUCER_EPOCH = 47
    KAFKA_STORAGE_ERROR = 56
    UNKNOWN_PRODUCER_ID = 59
    NON_EMPTY_GROUP = 68
    GROUP_ID_NOT_FOUND = 69
    FENCED_LEADER_EPOCH = 74
    UNKNOWN_LEADER_EPOCH = 75
    UNSUPPORTED_COMPRESSION_TYPE = 76
    STALE_BROKER_EPOCH = 77
    OFFSET_NOT_AVAILABLE = 78
    PREFERRED_LEADER_NOT_AVAILABLE = 80
    GROUP_MAX_SIZE_REACHED = 81
    FENCED_INSTANCE_ID = 82
    ELIGIBLE_LEADERS_NOT_AVAILABLE = 83
    ELECTION_NOT_NEEDED = 84
    INVALID_RECORD = 87
    INVALID_UPDATE_VERSION = 95
    UNKNOWN_TOPIC_ID = 100
    DUPLICATE_BROKER_REGISTRATION = 101
    BROKER_ID_NOT_REGISTERED = 102
    INELIGIBLE_REPLICA = 107


RETRIABLE: frozenset[ErrorCode] = frozenset(
    {
        ErrorCode.CORRUPT_MESSAGE,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.LEADER_NOT_AVAILABLE,
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.REPLICA_NOT_AVAILABLE,
        ErrorCode.NETWORK_EXCEPTION,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode.NOT_CONTROLLER,
        ErrorCode.KAFKA_STORAGE_ERROR,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.OFFSET_NOT_AVAILABLE,
        ErrorCode.UNKNOWN_TOPIC_ID,
        ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
        ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE,
        ErrorCode.ELECTION_NOT_NEEDED,
    }
)


class CaudalError(Exception):
    """Base of every error caudal raises on purpose; ``code`` is the Kafka error code."""

    code: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR

    def __init__(self, message: str = "") -> None:
        super().__init__(f"{self.code.name}: {message}" if message else self.code.name)
        self.message = message

    @property
    def retriable(self) -> bool:
        """True when the same request may succeed if sent again (Kafka's RetriableException)."""
        return self.code in RETRIABLE


class UnknownServerError(CaudalError):
    code = ErrorCode.UNKNOWN_SERVER_ERROR


class OffsetOutOfRangeError(CaudalError):
    code = ErrorCode.OFFSET_OUT_OF_RANGE


class NoOffsetForPartitionError(OffsetOutOfRangeError):
    """Client-side: a partition has no position and ``auto_offset_reset`` is ``none``."""


class CorruptRecordError(CaudalError):
    code = ErrorCode.CORRUPT_MESSAGE


class UnknownTopicOrPartitionError(CaudalError):
    code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


class LeaderNotAvailableError(CaudalError):
    code = ErrorCode.LEADER_NOT_AVAILABLE


class NotLeaderOrFollowerError(CaudalError):
    code = ErrorCode.NOT_LEADER_OR_FOLLOWER


class RequestTimedOutError(CaudalError):
    code = ErrorCode.REQUEST_TIMED_OUT


class BrokerNotAvailableError(CaudalError):
    code = ErrorCode.BROKER_NOT_AVAILABLE


class MessageTooLargeError(CaudalError):
    code = ErrorCode.MESSAGE_TOO_LARGE


class NetworkError(CaudalError):
    code = ErrorCode.NETWORK_EXCEPTION


class InvalidTopicError(CaudalError):
    code = ErrorCode.INVALID_TOPIC_EXCEPTION


class RecordListTooLargeError(CaudalError):
    code = ErrorCode.RECORD_LIST_TOO_LARGE


class NotEnoughReplicasError(CaudalError):
    code = ErrorCode.NOT_ENOUGH_REPLICAS


class InvalidRequiredAcksError(CaudalError):
    code = ErrorCode.INVALID_REQUIRED_ACKS


class CoordinatorLoadInProgressError(CaudalError):
    code = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS


class CoordinatorNotAvailableError(CaudalError):
    code = ErrorCode.COORDINATOR_NOT_AVAILABLE


class NotCoordinatorError(CaudalError):
    code = ErrorCode.NOT_COORDINATOR


class InconsistentGroupProtocolError(CaudalError):
    code = ErrorCode.INCONSISTENT_GROUP_PROTOCOL


class InvalidGroupIdError(CaudalError):
    code = ErrorCode.INVALID_GROUP_ID


class UnknownMemberIdError(CaudalError):
    code = ErrorCode.UNKNOWN_MEMBER_ID


class IllegalGenerationError(CaudalError):
    code = ErrorCode.ILLEGAL_GENERATION


class InvalidSessionTimeoutError(CaudalError):
    code = ErrorCode.INVALID_SESSION_TIMEOUT


class RebalanceInProgressError(CaudalError):
    code = ErrorCode.REBALANCE_IN_PROGRESS


class NonEmptyGroupError(CaudalError):
    code = ErrorCode.NON_EMPTY_GROUP


class GroupIdNotFoundError(CaudalError):
    code = ErrorCode.GROUP_ID_NOT_FOUND


class GroupMaxSizeReachedError(CaudalError):
    code = ErrorCode.GROUP_MAX_SIZE_REACHED


class FencedInstanceIdError(CaudalError):
    code = ErrorCode.FENCED_INSTANCE_ID


class InvalidTimestampError(CaudalError):
    code = ErrorCode.INVALID_TIMESTAMP


class TopicAlreadyExistsError(CaudalError):
    code = ErrorCode.TOPIC_ALREADY_EXISTS


class InvalidPartitionsError(CaudalError):
    code = ErrorCode.INVALID_PARTITIONS


class InvalidReplicationFactorError(CaudalError):
    code = ErrorCode.INVALID_REPLICATION_FACTOR


class InvalidConfigError(CaudalError):
    code = ErrorCode.INVALID_CONFIG


class NotControllerError(CaudalError):
    code = ErrorCode.NOT_CONTROLLER


class InvalidRequestError(CaudalError):
    code = ErrorCode.INVALID_REQUEST


class OutOfOrderSequenceError(CaudalError):
    code = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


class StorageError(CaudalError):
    code = ErrorCode.KAFKA_STORAGE_ERROR


class UnsupportedCompressionTypeError(CaudalError):
    code = ErrorCode.UNSUPPORTED_COMPRESSION_TYPE


class InvalidRecordError(CaudalError):
    code = ErrorCode.INVALID_RECORD


class FencedLeaderEpochError(CaudalError):
    code = ErrorCode.FENCED_LEADER_EPOCH


class StaleBrokerEpochError(CaudalError):
    code = ErrorCode.STALE_BROKER_EPOCH


class DuplicateBrokerRegistrationError(CaudalError):
    code = ErrorCode.DUPLICATE_BROKER_REGISTRATION


class BrokerIdNotRegisteredError(CaudalError):
    code = ErrorCode.BROKER_ID_NOT_REGISTERED


class InvalidUpdateVersionError(CaudalError):
    code = ErrorCode.INVALID_UPDATE_VERSION


class IneligibleReplicaError(CaudalError):
    code = ErrorCode.INELIGIBLE_REPLICA


class PreferredLeaderNotAvailableError(CaudalError):
    code = ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE


class EligibleLeadersNotAvailableError(CaudalError):
    code = ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE


class ElectionNotNeededError(CaudalError):
    code = ErrorCode.ELECTION_NOT_NEEDED


class KafkaTimeoutError(CaudalError):
    """Raised client-side when an operation does not finish within its configured time."""

    code = ErrorCode.REQUEST_TIMED_OUT


_BY_CODE: dict[ErrorCode, type[CaudalError]] = {}
for _cls in CaudalError.__subclasses__():
    _BY_CODE.setdefault(_cls.code, _cls)


def error_for(code: int, message: str = "") -> CaudalError:
    """The typed exception for a wire error code (a generic CaudalError for codes without a class)."""
    try:
        ec = ErrorCode(code)
    except ValueError:
        ec = ErrorCode.UNKNOWN_SERVER_ERROR
    cls = _BY_CODE.get(ec)
    if cls is None:
        err = CaudalError.__new__(CaudalError)
        err.code = ec
        CaudalError.__init__(err, message)
        return err
    return cls(message)
