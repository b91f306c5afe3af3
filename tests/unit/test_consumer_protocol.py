"""The consumer protocol bytes carried in JoinGroup/SyncGroup round-trip exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from caudal.client.assignors import Subscription
from caudal.client.consumer_coordinator import (
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from caudal.client.structs import TopicPartition

topics = st.text(alphabet="abcxyz-._", min_size=1, max_size=8)
partitions = st.lists(st.builds(TopicPartition, topics, st.integers(0, 1000)), unique=True, max_size=20)


@given(st.lists(topics, unique=True, max_size=5), partitions, st.integers(-1, 10**6), st.binary(max_size=16))
def test_subscription_round_trip(names: list[str], owned: list[TopicPartition], generation: int, user_data: bytes) -> None:
    sub = Subscription(tuple(sorted(names)), tuple(sorted(owned)), generation, user_data, "rack-a")
    back = decode_subscription(encode_subscription(sub))
    assert back == sub


@given(partitions)
def test_assignment_round_trip_is_sorted(assigned: list[TopicPartition]) -> None:
    assert decode_assignment(encode_assignment(assigned)) == sorted(assigned)


def test_empty_assignment_bytes_mean_no_partitions() -> None:
    assert decode_assignment(b"") == []
