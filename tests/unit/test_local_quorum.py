"""The single-voter metadata journal: durable appends, replay on open, torn tails cut off."""

from __future__ import annotations

import asyncio

import pytest

from caudal.controller.local_quorum import LocalQuorum
from caudal.controller.quorum import StaleDecisionError
from caudal.v1 import metadata_pb2 as md

FRAME_HEADER = 8  # payload length + CRC-32C


def topic(name: str) -> md.MetadataRecord:
    return md.MetadataRecord(topic=md.TopicRecord(name=name, topic_id=name.encode().ljust(16, b"\0")))


class Journal:
    """A LocalQuorum on ``data_dir`` plus what it published, reopened at will."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.path = data_dir / "metadata.journal"
        self.quorum = None
        self.published: list[md.MetadataBatch] = []
        self.reopen()

    def reopen(self) -> None:
        if self.quorum is not None:
            self.quorum.close()
        self.published = []
        self.quorum = LocalQuorum(1, self.data_dir, self.published.append)
        self.quorum.open()

    def append(self, *names: str) -> int:
        return asyncio.run(self.quorum.append([topic(n) for n in names], self.quorum.version))

    def close(self) -> None:
        self.quorum.close()

    def versions(self) -> list[int]:
        return [b.version for b in self.published]

    def names(self) -> list[list[str]]:
        return [[r.topic.name for r in b.records] for b in self.published]


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "controller")
    yield j
    j.close()


def test_fresh_journal_starts_at_version_zero(journal):
    assert journal.quorum.version == 0
    assert journal.published == []
    assert journal.path.exists() and journal.path.stat().st_size == 0


def test_append_publishes_the_next_version(journal):
    assert journal.append("a") == 1
    assert journal.append("b", "c") == 2
    assert journal.versions() == [1, 2]
    assert journal.names() == [["a"], ["b", "c"]]
    assert journal.quorum.version == 2


def test_appends_survive_reopen(journal):
    for name in ("a", "b", "c"):
        journal.append(name)
    before = list(journal.published)

    journal.reopen()

    assert journal.published == before
    assert journal.quorum.version == 3
    assert journal.append("d") == 4


def test_stale_decision_is_rejected_and_not_written(journal):
    journal.append("a")
    size = journal.path.stat().st_size
    with pytest.raises(StaleDecisionError):
        asyncio.run(journal.quorum.append([topic("late")], expected_version=0))
    assert journal.quorum.version == 1
    assert journal.path.stat().st_size == size
    journal.reopen()
    assert journal.names() == [["a"]]


def _truncate_mid_payload(data, last):
    return data[:-3]


def _truncate_in_frame_header(data, last):
    return data[: last + 5]


def _flip_last_payload_byte(data, last):
    return data[:-1] + bytes([data[-1] ^ 0x40])


def _flip_crc_byte(data, last):
    i = last + 5
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def _zero_filled_tail(data, last):
    # A crash after the file grew but before the new frame's blocks were written
    # leaves zeros where the frame should be (common on ext4/XFS writeback).
    return data + bytes(16)


@pytest.mark.parametrize(
    ("damage", "kept"),
    [
        (_truncate_mid_payload, 2),
        (_truncate_in_frame_header, 2),
        (_flip_last_payload_byte, 2),
        (_flip_crc_byte, 2),
        (_zero_filled_tail, 3),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_damaged_tail_is_cut_off_and_appends_continue(journal, damage, kept):
    ends = [0]
    for name in ("a", "b", "c"):
        journal.append(name)
        ends.append(journal.path.stat().st_size)
    journal.close()
    journal.path.write_bytes(damage(journal.path.read_bytes(), ends[2]))

    journal.reopen()

    assert journal.versions() == list(range(1, kept + 1))
    assert journal.quorum.version == kept
    assert journal.path.stat().st_size == ends[kept], "the damaged tail must be cut off the file"

    assert journal.append("after") == kept + 1
    journal.reopen()
    assert journal.versions() == list(range(1, kept + 2))
    assert journal.names() == [[n] for n in ["a", "b", "c"][:kept]] + [["after"]]
