from __future__ import annotations

import pytest

from caudal.common.errors import InvalidConfigError, InvalidTopicError
from caudal.common.topic_config import TopicConfig, validate_topic_name


def test_kafka_defaults() -> None:
    c = TopicConfig()
    assert c.retention_ms == 604_800_000 and c.retention_bytes == -1
    assert c.segment_bytes == 1_073_741_824 and c.max_message_bytes == 1_048_588
    assert c.cleanup_policy == ("delete",) and c.sync_writes and not c.unclean_leader_election_enable


def test_parse_and_render_overrides() -> None:
    c = TopicConfig.from_dict({"cleanup.policy": "compact,delete", "retention.ms": "-1", "log.flush.policy": "replication"})
    assert c.compacted and c.deletes and not c.sync_writes and c.retention_ms == -1
    assert c.overrides() == {"cleanup.policy": "compact,delete", "retention.ms": "-1", "log.flush.policy": "replication"}
    assert TopicConfig.from_dict(c.overrides()) == c
    assert c.as_dict()["segment.bytes"] == "1073741824"


@pytest.mark.parametrize(
    "configs",
    [{"nope": "1"}, {"retention.ms": "1.5"}, {"retention.ms": "-2"}, {"segment.bytes": "10"},
     {"cleanup.policy": ""}, {"message.timestamp.type": "Now"}, {"unclean.leader.election.enable": "yes"}],
)
def test_bad_configs(configs) -> None:
    with pytest.raises(InvalidConfigError):
        TopicConfig.from_dict(configs)


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 250, "with space", "slash/y", "ümlaut"])
def test_bad_topic_names(name) -> None:
    with pytest.raises(InvalidTopicError):
        validate_topic_name(name)


@pytest.mark.parametrize("name", ["a", "a.b_c-D9", "a" * 249, "__consumer_offsets"])
def test_good_topic_names(name) -> None:
    validate_topic_name(name)
