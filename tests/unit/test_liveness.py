"""Broker heartbeat sessions on the active controller: injected time, no clock."""

from __future__ import annotations

import pytest

from caudal.common.errors import DuplicateBrokerRegistrationError
from caudal.common.metadata import MetadataImage
from caudal.controller import election
from caudal.controller.liveness import DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_SESSION_TIMEOUT_MS, BrokerLiveness
from caudal.v1 import metadata_pb2 as md


def _apply(image: MetadataImage, records: list[md.MetadataRecord]) -> None:
    image.apply_batch(md.MetadataBatch(version=image.version + 1, records=records))


def _image(brokers: int = 3, unfenced: bool = True) -> MetadataImage:
    """Brokers 1..n registered (fenced, as registration does) and then unfenced."""
    image = MetadataImage()
    for b in range(1, brokers + 1):
        result = election.register_broker(image, b, "127.0.0.1", 9000 + b, "", bytes([b]), live=False)
        _apply(image, result.records)
        if unfenced:
            _apply(image, election.unfence_broker(image, b, result.response).records)
    return image


def _epoch(image: MetadataImage, b: int) -> int:
    return image.brokers[b].broker_epoch


def test_defaults() -> None:
    assert DEFAULT_SESSION_TIMEOUT_MS == 6000
    assert DEFAULT_HEARTBEAT_INTERVAL_MS == 500
    assert DEFAULT_SESSION_TIMEOUT_MS // DEFAULT_HEARTBEAT_INTERVAL_MS >= 3, "several heartbeats fit in a session"


def test_reset_gives_every_unfenced_broker_a_fresh_grace_period() -> None:
    image = _image(3)
    _apply(image, election.fence_broker(image, 3).records)
    live = BrokerLiveness()
    live.reset(image, now_ms=10_000)
    assert live.last_heartbeat_ms(1, _epoch(image, 1)) == 10_000
    assert live.last_heartbeat_ms(2, _epoch(image, 2)) == 10_000
    assert live.last_heartbeat_ms(3, _epoch(image, 3)) is None, "fenced brokers get no session"
    assert live.expired(image, 10_000 + DEFAULT_SESSION_TIMEOUT_MS) == []
    assert live.expired(image, 10_000 + DEFAULT_SESSION_TIMEOUT_MS + 1) == [1, 2]


def test_reset_discards_previous_sessions() -> None:
    image = _image(2)
    live = BrokerLiveness()
    live.heartbeat(1, _epoch(image, 1), 0)
    live.heartbeat(7, 99, 0)
    live.reset(image, 50_000)
    assert live.last_heartbeat_ms(1, _epoch(image, 1)) == 50_000
    assert live.last_heartbeat_ms(7, 99) is None


def test_heartbeats_keep_a_broker_alive() -> None:
    image = _image(2)
    live = BrokerLiveness()
    live.reset(image, 0)
    for now in range(0, 20_000, DEFAULT_HEARTBEAT_INTERVAL_MS):
        assert live.heartbeat(1, _epoch(image, 1), now)
    assert live.expired(image, 20_000) == [2]


def test_expiry_boundary_is_strictly_older_than_timeout() -> None:
    image = _image(1)
    live = BrokerLiveness()
    live.heartbeat(1, _epoch(image, 1), 1000)
    assert live.expired(image, 1000 + 6000, session_timeout_ms=6000) == []
    assert live.has_valid_session(1, _epoch(image, 1), 7000, 6000)
    assert live.expired(image, 7001, session_timeout_ms=6000) == [1]
    assert not live.has_valid_session(1, _epoch(image, 1), 7001, 6000)
    assert live.expired(image, 1500, session_timeout_ms=100) == [1], "the timeout is a parameter"


def test_fenced_brokers_are_never_reported() -> None:
    image = _image(2)
    live = BrokerLiveness()
    live.reset(image, 0)
    _apply(image, election.fence_broker(image, 2).records)
    assert live.expired(image, 1_000_000) == [1]


def test_stale_epoch_heartbeat_is_ignored() -> None:
    image = _image(1)
    old = _epoch(image, 1)
    live = BrokerLiveness()
    live.heartbeat(1, old, 0)
    _apply(image, election.register_broker(image, 1, "h", 1, "", b"new", live=False).records)
    new = _epoch(image, 1)
    assert new > old
    assert live.heartbeat(1, new, 100)
    assert not live.heartbeat(1, old, 10_000), "an old incarnation cannot refresh the new session"
    assert live.last_heartbeat_ms(1, new) == 100
    assert live.last_heartbeat_ms(1, old) is None
    assert not live.has_valid_session(1, old, 100)


def test_time_never_goes_backwards_within_an_epoch() -> None:
    live = BrokerLiveness()
    live.heartbeat(1, 5, 1000)
    live.heartbeat(1, 5, 400)
    assert live.last_heartbeat_ms(1, 5) == 1000


def test_unknown_session_starts_a_grace_period_instead_of_fencing() -> None:
    image = _image(2)
    live = BrokerLiveness()  # never reset: e.g. a broker unfenced just before this controller took over
    assert live.expired(image, 100_000) == []
    assert live.last_heartbeat_ms(1, _epoch(image, 1)) == 100_000
    assert live.expired(image, 100_000 + DEFAULT_SESSION_TIMEOUT_MS + 1) == [1, 2]


def test_session_of_an_older_epoch_does_not_count_for_the_new_registration() -> None:
    image = _image(1)
    live = BrokerLiveness()
    live.heartbeat(1, _epoch(image, 1), 0)
    # re-registered (new epoch) and unfenced, but no heartbeat of the new epoch seen here yet
    result = election.register_broker(image, 1, "h", 1, "", b"new", live=False)
    _apply(image, result.records)
    _apply(image, election.unfence_broker(image, 1, result.response).records)
    assert live.expired(image, 50_000) == [], "grace period for the new epoch"
    assert live.expired(image, 50_000 + DEFAULT_SESSION_TIMEOUT_MS + 1) == [1]


def test_forget() -> None:
    image = _image(1)
    live = BrokerLiveness()
    live.heartbeat(1, _epoch(image, 1), 0)
    live.forget(1)
    live.forget(42)  # unknown ids are fine
    assert live.last_heartbeat_ms(1, _epoch(image, 1)) is None
    assert not live.has_valid_session(1, _epoch(image, 1), 0)


def test_next_expiry() -> None:
    image = _image(3)
    live = BrokerLiveness()
    assert live.next_expiry_ms(image) is None
    live.heartbeat(1, _epoch(image, 1), 1000)
    live.heartbeat(2, _epoch(image, 2), 400)
    assert live.next_expiry_ms(image, session_timeout_ms=6000) == 6401
    assert live.expired(image, 6400, 6000) == []  # and broker 3's grace period starts here
    assert 2 in live.expired(image, 6401, 6000)
    _apply(image, election.fence_broker(image, 2).records)
    assert live.next_expiry_ms(image, session_timeout_ms=6000) == 7001


def test_liveness_drives_duplicate_registration() -> None:
    """The ``live`` argument of register_broker comes from the session of the registered epoch."""
    image = _image(1)
    live = BrokerLiveness()
    live.heartbeat(1, _epoch(image, 1), 0)
    alive = live.has_valid_session(1, _epoch(image, 1), 1000)
    assert alive
    with pytest.raises(DuplicateBrokerRegistrationError):
        election.register_broker(image, 1, "h", 1, "", b"other", live=alive)
    alive = live.has_valid_session(1, _epoch(image, 1), 10_000)
    assert not alive
    assert election.register_broker(image, 1, "h", 1, "", b"other", live=alive).response == image.version + 1
