"""Broker liveness on the active controller: who has heartbeated recently enough.

Kafka's KRaft controller keeps a heartbeat session per broker
(``BrokerHeartbeatManager``): a broker that has not heartbeated for
``broker.session.timeout.ms`` is fenced, so its partitions get new leaders. The
session is in-memory state of the *active* controller only — it is not in the
metadata log — so a newly active controller starts every unfenced broker with a
fresh grace period (:meth:`BrokerLiveness.reset`) instead of fencing the whole
cluster because it never heard from anyone.

Sessions are keyed by broker epoch (principle 6, fence with epochs): a heartbeat
from an older incarnation never keeps a newer registration alive.

Pure: the time is always passed in as ``now_ms`` (no clock, no I/O, no threads).
"""

from __future__ import annotations

from caudal.common.metadata import MetadataImage

DEFAULT_SESSION_TIMEOUT_MS = 6000
"""``broker.session.timeout.ms``: a broker silent for longer is fenced.

Kafka's default is 9000 ms; caudal uses 6000 ms (12 missed heartbeats) to fail
over faster while still tolerating a GC pause or a slow disk sync.
"""

DEFAULT_HEARTBEAT_INTERVAL_MS = 500
"""``broker.heartbeat.interval.ms``: how often brokers heartbeat (Kafka: 2000 ms)."""


class BrokerLiveness:
    """Last heartbeat time per broker and broker epoch.

    Owned by the controller's asyncio loop while it is the active controller;
    discarded (or :meth:`reset`) whenever it becomes active again.

    Invariant: at most one session per broker id, the one with the highest epoch
    heard of; its time never goes backwards.
    """

    def __init__(self) -> None:
        self._sessions: dict[int, tuple[int, int]] = {}  # broker id -> (broker epoch, last contact ms)

    def reset(self, image: MetadataImage, now_ms: int) -> None:
        """Start over on becoming the active controller.

        Every registered unfenced broker gets a full session starting now: the
        previous controller's heartbeat times are unknown here, and fencing
        brokers only because leadership moved would cause needless elections.
        Fenced brokers get no session until they heartbeat.
        """
        self._sessions = {b.broker_id: (b.broker_epoch, now_ms) for b in image.brokers.values() if not b.fenced}

    def heartbeat(self, broker_id: int, broker_epoch: int, now_ms: int) -> bool:
        """Record a heartbeat; False (ignored) when it comes from an older epoch.

        The caller validates ``broker_epoch`` against the image first
        (STALE_BROKER_EPOCH); this check only keeps a late heartbeat of a previous
        incarnation from refreshing the current one's session.
        """
        current = self._sessions.get(broker_id)
        if current is not None:
            epoch, last = current
            if broker_epoch < epoch:
                return False
            if broker_epoch == epoch:
                now_ms = max(now_ms, last)
        self._sessions[broker_id] = (broker_epoch, now_ms)
        return True

    def forget(self, broker_id: int) -> None:
        """Drop the session (the broker was unregistered or shut down cleanly)."""
        self._sessions.pop(broker_id, None)

    def last_heartbeat_ms(self, broker_id: int, broker_epoch: int) -> int | None:
        """When ``broker_epoch`` of the broker was last heard from, or None."""
        current = self._sessions.get(broker_id)
        if current is None or current[0] != broker_epoch:
            return None
        return current[1]

    def has_valid_session(
        self, broker_id: int, broker_epoch: int, now_ms: int, session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS
    ) -> bool:
        """Whether this epoch of the broker heartbeated within the session timeout.

        This is the ``live`` argument of :func:`caudal.controller.election.register_broker`:
        a new incarnation may not take over a broker id whose current epoch still
        has a valid session (Kafka's DUPLICATE_BROKER_REGISTRATION rule).
        """
        last = self.last_heartbeat_ms(broker_id, broker_epoch)
        return last is not None and now_ms - last <= session_timeout_ms

    def expired(
        self, image: MetadataImage, now_ms: int, session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS
    ) -> list[int]:
        """Unfenced brokers (by id) silent for longer than the session timeout: fence these.

        An unfenced broker this controller has no session for (for its current
        epoch) gets a grace period starting now rather than being fenced on
        sight — it may have been unfenced just before this controller took over.
        """
        out = []
        for broker in sorted(image.brokers.values(), key=lambda b: b.broker_id):
            if broker.fenced:
                continue
            session = self._sessions.get(broker.broker_id)
            if session is None or session[0] < broker.broker_epoch:
                self._sessions[broker.broker_id] = (broker.broker_epoch, now_ms)
                continue
            if now_ms - session[1] > session_timeout_ms:
                out.append(broker.broker_id)
        return out

    def next_expiry_ms(self, image: MetadataImage, session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS) -> int | None:
        """The earliest time at which :meth:`expired` can report an unfenced broker (to schedule the next check)."""
        deadlines = [
            session[1] + session_timeout_ms + 1
            for broker in image.brokers.values()
            if not broker.fenced and (session := self._sessions.get(broker.broker_id)) is not None
        ]
        return min(deadlines, default=None)
