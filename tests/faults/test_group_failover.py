"""Killing a group's coordinator loses neither its committed offsets nor its members."""

from __future__ import annotations

from group_members import MemberThread
from nodes import wait_until

from caudal.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition
from caudal.client._transport import Connections
from caudal.client.io_thread import IOThread
from caudal.v1 import broker_pb2 as pb

PARTITIONS = 3
RECORDS = 300


def _coordinator(address: str, group: str) -> int:
    io = IOThread("find-coordinator")
    conns = Connections()
    try:
        response = io.run(conns.call(address, "FindCoordinator", pb.FindCoordinatorRequest(key=group), 10), 15)
        assert response.error_code == 0, response.error_message
        return response.node_id
    finally:
        io.run(conns.close(), 10)
        io.stop()


def test_committed_offsets_and_membership_survive_coordinator_kill(cluster) -> None:
    with AdminClient(bootstrap_servers=cluster.bootstrap) as admin:
        admin.create_topics([NewTopic("jobs", PARTITIONS, 3, config={"min.insync.replicas": "2"})])["jobs"].result(30)
    with Producer(bootstrap_servers=cluster.bootstrap, linger_ms=2) as producer:
        for i in range(RECORDS):
            producer.send("jobs", f"j{i}".encode(), partition=i % PARTITIONS)
        producer.flush(60)

    options = dict(bootstrap_servers=cluster.bootstrap, group_id="workers", auto_offset_reset="earliest", enable_auto_commit=False)
    first = Consumer(**options)
    taken = []
    try:
        first.subscribe(["jobs"])
        wait_until(lambda: taken.extend(first.poll(timeout_ms=100, max_records=10)) or len(taken) >= RECORDS // 2, 60,
                   what="half of the records")
        first.commit()
    finally:
        first.close()

    victim = _coordinator(cluster.brokers[1].address, "workers")
    watcher = MemberThread(cluster.bootstrap, "workers", ["jobs"], enable_auto_commit=False)
    cluster.brokers[victim].kill9()
    live = next(node.address for node_id, node in cluster.brokers.items() if node_id != victim)
    wait_until(lambda: _coordinator(live, "workers") != victim, 30, what="a new coordinator")

    watcher.start()
    try:
        wait_until(lambda: len(taken) + len(watcher.snapshot()[1]) >= RECORDS, 60, what="the rest of the records")
    finally:
        watcher.stop()
    assert watcher.error is None, watcher.error
    rest = watcher.snapshot()[1]
    seen = [(r.partition, r.offset) for r in taken + rest]
    assert len(seen) == len(set(seen)) == RECORDS, "committed records were delivered again, or records were lost"
    assert watcher.snapshot()[0] == {TopicPartition("jobs", p) for p in range(PARTITIONS)}
