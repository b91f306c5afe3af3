"""The group coordinator's clock reads as a date but does not step with the wall clock."""

from __future__ import annotations

import time

import pytest

from caudal.broker import group_coordinator
from caudal.broker.group_coordinator import steady_epoch_clock


def test_it_starts_at_the_wall_clock_and_ignores_later_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = steady_epoch_clock()
    assert abs(clock() - time.time() * 1000) < 1000
    before = clock()
    real_time = time.time
    monkeypatch.setattr(group_coordinator.time, "time", lambda: real_time() + 600)  # the wall clock jumps ten minutes
    after = clock()
    assert 0 <= after - before < 1000


def test_it_follows_the_monotonic_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = steady_epoch_clock()
    before = clock()
    real_monotonic = time.monotonic
    monkeypatch.setattr(group_coordinator.time, "monotonic", lambda: real_monotonic() + 45)
    assert 45_000 <= clock() - before < 46_000
