"""``caudal connect distributed``: workers share connectors; a killed worker's tasks move on, a joining one takes a share."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from connect_workers import rest
from nodes import wait_until

from caudal.client import AdminClient, Consumer, TopicPartition
from caudal.local_cluster import NodeProcess, free_port

SESSION_TIMEOUT_MS = 6000


class DistributedWorker(NodeProcess):
    def __init__(self, tmp: Path, bootstrap: str, name: str, protocol: str = "sessioned") -> None:
        props = tmp / f"{name}.properties"
        props.write_text("".join(f"{k}={v}\n" for k, v in {
            "bootstrap.servers": bootstrap, "group.id": "connect-cluster",
            "config.storage.topic": "connect-configs", "offset.storage.topic": "connect-offsets",
            "status.storage.topic": "connect-status", "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1", "status.storage.replication.factor": "1",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "offset.flush.interval.ms": "300", "session.timeout.ms": str(SESSION_TIMEOUT_MS), "heartbeat.interval.ms": "500",
            "listeners": f"http://127.0.0.1:{free_port()}", "connect.protocol": protocol,
        }.items()))
        super().__init__(name, ["connect", "distributed", str(props)], tmp / f"{name}.log")


def _values(bootstrap: str, topic: str) -> set[bytes]:
    """Every value in ``topic`` (empty until a source has created it)."""
    with AdminClient(bootstrap_servers=bootstrap) as admin:
        if topic not in admin.list_topics():
            return set()
    consumer = Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    seen: set[bytes] = set()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]
        wait_until(lambda: seen.update(r.value for r in consumer.poll(timeout_ms=200)) or consumer.position(tp) >= end, 30)
    finally:
        consumer.close()
    return seen


@pytest.mark.parametrize("protocol", ["sessioned", "eager"])
def test_tasks_of_a_killed_worker_resume_on_the_survivor(dev_node, tmp_path, protocol) -> None:
    workers = {name: DistributedWorker(tmp_path, dev_node.bootstrap, name, protocol) for name in ("w1", "w2")}
    files = {f"src-{i}": tmp_path / f"in-{i}.txt" for i in (1, 2)}
    for name, path in files.items():
        path.write_text("".join(f"{name} line {j}\n" for j in range(1000)))
    try:
        for worker in workers.values():
            worker.start()
        urls = {name: worker.wait_ready() for name, worker in workers.items()}
        for name, path in files.items():
            config = {"connector.class": "FileStreamSource", "file": str(path), "topic": "dist"}
            # 409 while the workers rebalance, as in Kafka: retry
            wait_until(lambda n=name, c=config: rest(urls["w2"], "POST", "/connectors", {"name": n, "config": c})[0] == 201,
                       30, interval_s=0.5, what=f"{name} created")
        expected = {f"{n} line {j}".encode() for n in files for j in range(1000)}
        wait_until(lambda: _values(dev_node.bootstrap, "dist") >= expected, 60, interval_s=0.5, what="both files in the topic")

        owners = {}
        for name in files:
            status = wait_until(lambda n=name: (s := rest(urls["w1"], "GET", f"/connectors/{n}/status")[1])["tasks"]
                                and s["tasks"][0]["state"] == "RUNNING" and s, 30, what=f"{name} task running")
            owners[name] = status["tasks"][0]["worker_id"]
        assert set(owners.values()) == {u.split("://")[1] for u in urls.values()}, "the two tasks run on different workers"
        victim = next(w for w, u in urls.items() if u.split("://")[1] == owners["src-1"])
        survivor = next(w for w in workers if w != victim)
        workers[victim].kill9()

        for name, path in files.items():
            with open(path, "a") as f:
                f.write("".join(f"{name} more {j}\n" for j in range(500)))
        expected |= {f"{n} more {j}".encode() for n in files for j in range(500)}
        wait_until(lambda: _values(dev_node.bootstrap, "dist") >= expected, SESSION_TIMEOUT_MS / 1000 + 40, interval_s=0.5,
                   what="the dead worker's task to resume on the survivor")
        status = rest(urls[survivor], "GET", "/connectors/src-1/status")[1]
        assert status["tasks"][0]["worker_id"] == urls[survivor].split("://")[1] and status["tasks"][0]["state"] == "RUNNING"
    finally:
        for worker in workers.values():
            worker.kill9()


def _task_events(worker: NodeProcess, event: str) -> list[tuple[str, int]]:
    """(connector, task) of each ``event=task_started``/``task_stopped`` line the worker logged."""
    found = re.findall(rf"event={event} connector=(\S+) task=(\d+)", worker.log_path.read_text())
    return [(name, int(task)) for name, task in found]


def _running_tasks(url: str, names: list[str]) -> dict[tuple[str, int], str]:
    """(connector, task) -> worker id of every RUNNING task, as the status API reports it."""
    out = {}
    for name in names:
        for task in rest(url, "GET", f"/connectors/{name}/status")[1]["tasks"]:
            if task["state"] == "RUNNING":
                out[(name, task["id"])] = task["worker_id"]
    return out


def test_a_joining_worker_takes_a_share_without_stopping_work_that_stays(dev_node, tmp_path) -> None:
    """Incremental cooperative rebalancing: when a third worker joins, the others stop only what
    moves to it; every other task keeps running (no stop, no restart)."""
    names = [f"coop-{i}" for i in range(4)]
    workers = {name: DistributedWorker(tmp_path, dev_node.bootstrap, name) for name in ("w1", "w2", "w3")}
    for name in names:
        (tmp_path / f"{name}.txt").write_text(f"{name} first\n")
    try:
        for name in ("w1", "w2"):
            workers[name].start()
        urls = {name: workers[name].wait_ready() for name in ("w1", "w2")}
        for name in names:
            config = {"connector.class": "FileStreamSource", "file": str(tmp_path / f"{name}.txt"), "topic": "coop"}
            wait_until(lambda n=name, c=config: rest(urls["w1"], "POST", "/connectors", {"name": n, "config": c})[0] in (201, 409)
                       and rest(urls["w1"], "GET", f"/connectors/{n}")[0] == 200, 30, interval_s=0.5, what=f"{name} created")
        before = wait_until(lambda: len(r := _running_tasks(urls["w1"], names)) == 4 and len(set(r.values())) == 2 and r,
                            60, interval_s=0.5, what="four tasks running on two workers")
        started_before = {w: _task_events(workers[w], "task_started") for w in ("w1", "w2")}

        workers["w3"].start()
        urls["w3"] = workers["w3"].wait_ready()
        w3_id = urls["w3"].split("://")[1]
        after = wait_until(lambda: len(r := _running_tasks(urls["w1"], names)) == 4 and w3_id in r.values() and r,
                           60, interval_s=0.5, what="the new worker runs a task")

        moved = {task for task, owner in after.items() if owner == w3_id}
        stayed = {task for task, owner in after.items() if owner != w3_id}
        assert stayed and all(after[task] == before[task] for task in stayed), "tasks that did not move stay where they were"
        for w in ("w1", "w2"):
            assert _task_events(workers[w], "task_started") == started_before[w], f"{w} restarted no task"
            assert set(_task_events(workers[w], "task_stopped")) <= moved, f"{w} stopped only tasks that moved"
        assert set(_task_events(workers["w3"], "task_started")) == moved
    finally:
        for worker in workers.values():
            worker.kill9()
