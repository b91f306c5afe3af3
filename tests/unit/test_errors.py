"""Wire error codes become typed exceptions with Kafka's codes and retriability."""

from __future__ import annotations

import pytest

from caudal.common import errors
from caudal.common.errors import RETRIABLE, CaudalError, ErrorCode, error_for

FAILURE_CODES = [c for c in ErrorCode if c is not ErrorCode.NONE]


@pytest.mark.parametrize("code", FAILURE_CODES, ids=lambda c: c.name)
def test_every_code_maps_to_an_exception_with_that_code(code):
    err = error_for(int(code), "details here")
    assert isinstance(err, CaudalError)
    assert err.code is code
    assert err.retriable is (code in RETRIABLE)
    assert err.message == "details here"
    assert str(err) == f"{code.name}: details here"
    with pytest.raises(CaudalError) as info:
        raise err
    assert info.value is err


WIRE_CLASSES = [cls for cls in CaudalError.__subclasses__() if cls is not errors.KafkaTimeoutError]


@pytest.mark.parametrize("cls", WIRE_CLASSES, ids=lambda c: c.__name__)
def test_every_exception_class_is_what_its_code_decodes_to(cls):
    assert type(error_for(int(cls.code))) is cls


def test_generic_errors_do_not_change_the_base_class_code():
    err = error_for(int(ErrorCode.INVALID_FETCH_SIZE))
    assert type(err) is CaudalError and err.code is ErrorCode.INVALID_FETCH_SIZE
    assert CaudalError.code is ErrorCode.UNKNOWN_SERVER_ERROR
    assert CaudalError("x").code is ErrorCode.UNKNOWN_SERVER_ERROR


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (ErrorCode.NOT_LEADER_OR_FOLLOWER, errors.NotLeaderOrFollowerError),
        (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, errors.UnknownTopicOrPartitionError),
        (ErrorCode.REQUEST_TIMED_OUT, errors.RequestTimedOutError),  # not the client-side KafkaTimeoutError
        (ErrorCode.OFFSET_OUT_OF_RANGE, errors.OffsetOutOfRangeError),  # not NoOffsetForPartitionError
        (ErrorCode.TOPIC_ALREADY_EXISTS, errors.TopicAlreadyExistsError),
        (ErrorCode.INVALID_CONFIG, errors.InvalidConfigError),
        (ErrorCode.UNKNOWN_SERVER_ERROR, errors.UnknownServerError),
    ],
    ids=lambda v: v.name if isinstance(v, ErrorCode) else None,
)
def test_well_known_codes(code, cls):
    assert type(error_for(int(code))) is cls


@pytest.mark.parametrize("code", [9999, -2, 255, 12])
def test_unknown_numeric_codes_become_unknown_server_error(code):
    err = error_for(code, "what")
    assert type(err) is errors.UnknownServerError
    assert err.code is ErrorCode.UNKNOWN_SERVER_ERROR
    assert not err.retriable and err.message == "what"


# Kafka's exception hierarchy (org.apache.kafka.common.errors): subclasses of
# RetriableException, directly or through InvalidMetadataException, versus ApiException.
KAFKA_RETRIABLE = {
    ErrorCode.NOT_LEADER_OR_FOLLOWER: True,
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: True,
    ErrorCode.NETWORK_EXCEPTION: True,
    ErrorCode.REQUEST_TIMED_OUT: True,
    ErrorCode.NOT_ENOUGH_REPLICAS: True,
    ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE: True,  # extends InvalidMetadataException
    ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE: True,  # extends InvalidMetadataException
    ErrorCode.ELECTION_NOT_NEEDED: True,  # extends InvalidMetadataException
    ErrorCode.BROKER_NOT_AVAILABLE: False,
    ErrorCode.STALE_BROKER_EPOCH: False,
    ErrorCode.INVALID_UPDATE_VERSION: False,
    ErrorCode.INELIGIBLE_REPLICA: False,
    ErrorCode.MESSAGE_TOO_LARGE: False,
    ErrorCode.INVALID_CONFIG: False,
    ErrorCode.TOPIC_ALREADY_EXISTS: False,
    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER: False,
}


@pytest.mark.parametrize(("code", "retriable"), KAFKA_RETRIABLE.items(), ids=lambda v: v.name if isinstance(v, ErrorCode) else None)
def test_retriability_follows_kafkas_exception_hierarchy(code, retriable):
    assert error_for(int(code)).retriable is retriable


def test_client_timeout_is_retriable_request_timed_out():
    err = errors.KafkaTimeoutError("slow")
    assert err.code is ErrorCode.REQUEST_TIMED_OUT and err.retriable
