"""``caudal connect standalone`` against a real node: FileStream round trips, errors and the DLQ, REST."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from caudal.client import AdminClient, Consumer, NewTopic, Producer, TopicPartition
from connect_workers import ConnectWorker, rest
from nodes import wait_until
from prometheus_client.parser import text_string_to_metric_families

from caudal.local_cluster import free_port


@pytest.fixture
def worker_dir(tmp_path) -> Path:
    (tmp_path / "connect").mkdir()
    return tmp_path / "connect"


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_filestream_source_to_sink_round_trip_and_resume(dev_node, worker_dir) -> None:
    source_file, sink_file = worker_dir / "in.txt", worker_dir / "out.txt"
    source_file.write_text("".join(f"line {i} \u00e9\n" for i in range(2000)))
    connectors = [
        {"name": "file-in", "connector.class": "FileStreamSource", "file": str(source_file), "topic": "lines"},
        {"name": "file-out", "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
         "file": str(sink_file), "topics": "lines"},
    ]
    worker = ConnectWorker(worker_dir, dev_node.bootstrap, connectors).run()
    try:
        wait_until(lambda: len(_lines(sink_file)) >= 2000, 60, what="the sink file to fill")
        assert _lines(sink_file) == _lines(source_file)
        status, names = rest(worker.url, "GET", "/connectors")
        assert (status, names) == (200, ["file-in", "file-out"])
        status, body = rest(worker.url, "GET", "/connectors/file-in/status")
        assert status == 200 and body["connector"]["state"] == "RUNNING" and body["type"] == "source"
        assert [t["state"] for t in body["tasks"]] == ["RUNNING"]
    finally:
        worker.stop()
    with open(source_file, "a") as f:
        f.write("".join(f"more {i}\n" for i in range(500)))
    worker = ConnectWorker(worker_dir, dev_node.bootstrap, connectors).run()
    try:
        wait_until(lambda: len(_lines(sink_file)) >= 2500, 60, what="the new lines")
        status, offsets = rest(worker.url, "GET", "/connectors/file-in/offsets")
        assert status == 200 and offsets["offsets"][0]["partition"] == {"filename": str(source_file)}
    finally:
        worker.stop()
    assert _lines(sink_file) == _lines(source_file), "lines lost or copied twice across the restart"


def test_sink_errors_go_to_the_dead_letter_queue_with_context_headers(dev_node, worker_dir) -> None:
    with AdminClient(bootstrap_servers=dev_node.bootstrap) as admin:
        admin.create_topics([NewTopic("events", 1)])["events"].result(30)
    values = [b'{"ok": 1}', b"not json", b'{"ok": 2}', b"{broken", b'{"ok": 3}']
    with Producer(bootstrap_servers=dev_node.bootstrap) as producer:
        for v in values:
            producer.send("events", v)
        producer.flush(30)
    sink_file = worker_dir / "good.txt"
    base = {"connector.class": "FileStreamSink", "topics": "events",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter", "value.converter.schemas.enable": "false"}
    tolerant = {**base, "name": "tolerant", "file": str(sink_file), "errors.tolerance": "all",
                "errors.deadletterqueue.topic.name": "events-dlq", "errors.deadletterqueue.topic.replication.factor": "1",
                "errors.deadletterqueue.context.headers.enable": "true"}
    strict = {**base, "name": "strict", "file": str(worker_dir / "strict.txt")}
    worker = ConnectWorker(worker_dir, dev_node.bootstrap, [tolerant, strict]).run()
    try:
        wait_until(lambda: len(_lines(sink_file)) >= 3, 60, what="the good records")
        assert _lines(sink_file) == ["{'ok': 1}", "{'ok': 2}", "{'ok': 3}"]

        def failed() -> dict | None:
            status, body = rest(worker.url, "GET", "/connectors/strict/status")
            return body if body["tasks"] and body["tasks"][0]["state"] == "FAILED" else None

        body = wait_until(failed, 60, what="the strict sink to fail")
        assert "VALUE_CONVERTER" in body["tasks"][0]["trace"] and "trace" in body["tasks"][0]
    finally:
        worker.stop()
    dead = _read_topic(dev_node.bootstrap, "events-dlq", 2)
    assert [r.value for r in dead] == [b"not json", b"{broken"]
    headers = dict(dead[0].headers)
    assert headers["__connect.errors.topic"] == b"events" and headers["__connect.errors.offset"] == b"1"
    assert headers["__connect.errors.stage"] == b"VALUE_CONVERTER"
    assert headers["__connect.errors.connector.name"] == b"tolerant"
    assert b"Error" in headers["__connect.errors.exception.class.name"]


def _read_topic(bootstrap: str, topic: str, expected: int) -> list:
    consumer = Consumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    got: list = []
    try:
        consumer.assign([TopicPartition(topic, 0)])
        wait_until(lambda: got.extend(consumer.poll(timeout_ms=200)) or len(got) >= expected, 30, what=f"{expected} records")
    finally:
        consumer.close()
    return got


def test_rest_api_manages_connectors(dev_node, worker_dir) -> None:
    worker = ConnectWorker(worker_dir, dev_node.bootstrap, []).run()
    source = worker_dir / "rest-in.txt"
    source.write_text("a\nb\n")
    config = {"connector.class": "FileStreamSource", "file": str(source), "topic": "rest-lines"}
    try:
        assert rest(worker.url, "GET", "/connectors") == (200, [])
        status, info = rest(worker.url, "POST", "/connectors", {"name": "rest-in", "config": config})
        assert status == 201 and info["name"] == "rest-in" and info["tasks"] == [{"connector": "rest-in", "task": 0}]
        assert rest(worker.url, "POST", "/connectors", {"name": "rest-in", "config": config})[0] == 409
        assert rest(worker.url, "PUT", "/connectors/rest-in/pause")[0] == 202
        wait_until(lambda: rest(worker.url, "GET", "/connectors/rest-in/status")[1]["tasks"][0]["state"] == "PAUSED", 10)
        assert rest(worker.url, "PUT", "/connectors/rest-in/resume")[0] == 202
        rewind = {"offsets": [{"partition": {"filename": str(source)}, "offset": {"position": 0}}]}
        status, body = rest(worker.url, "PATCH", "/connectors/rest-in/offsets", rewind)
        assert status == 400 and "STOPPED" in body["message"]
        assert rest(worker.url, "PUT", "/connectors/rest-in/stop")[0] == 204
        status, body = rest(worker.url, "PATCH", "/connectors/rest-in/offsets", rewind)
        assert status == 200 and "altered" in body["message"]
        assert rest(worker.url, "GET", "/connectors/rest-in/offsets")[1]["offsets"] == rewind["offsets"]
        status, body = rest(worker.url, "DELETE", "/connectors/rest-in/offsets")
        assert status == 200 and "reset" in body["message"]
        status, infos = rest(worker.url, "PUT", "/connector-plugins/FileStreamSource/config/validate",
                             {"connector.class": "FileStreamSource", "name": "x"})
        assert status == 200 and infos["error_count"] >= 1
        assert any(c["value"]["name"] == "topic" and c["value"]["errors"] for c in infos["configs"])
        status, body = rest(worker.url, "GET", "/connectors/ghost")
        assert (status, body) == (404, {"error_code": 404, "message": "Connector ghost not found"})
        assert rest(worker.url, "DELETE", "/connectors/rest-in")[0] == 204
        assert rest(worker.url, "GET", "/connectors") == (200, [])
        status, plugins = rest(worker.url, "GET", "/connector-plugins")
        assert {"org.apache.kafka.connect.file.FileStreamSourceConnector", "org.apache.kafka.connect.file.FileStreamSinkConnector"} <= {
            p["class"] for p in plugins}
    finally:
        worker.stop()


def test_worker_metrics_report_task_states_and_records(dev_node, worker_dir) -> None:
    port = free_port()
    source = worker_dir / "metrics-in.txt"
    source.write_text("".join(f"m{i}\n" for i in range(50)))
    connector = {"name": "metered", "connector.class": "FileStreamSource", "file": str(source), "topic": "metered"}
    worker = ConnectWorker(worker_dir, dev_node.bootstrap, [connector], **{"metrics.port": str(port)}).run()

    def samples() -> dict[tuple[str, tuple], float]:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body) for s in family.samples}

    try:
        def written() -> dict | None:
            found = samples()
            key = ("caudal_connect_task_records_total", (("connector", "metered"), ("kind", "source"), ("task", "0")))
            return found if found.get(key) == 50 else None

        found = wait_until(written, 30, what="50 records counted")
        assert found[("caudal_connect_connector_status", (("connector", "metered"), ("state", "RUNNING")))] == 1
        assert found[("caudal_connect_task_status", (("connector", "metered"), ("state", "RUNNING"), ("task", "0")))] == 1
        assert found[("caudal_connect_task_status", (("connector", "metered"), ("state", "FAILED"), ("task", "0")))] == 0
        assert found[("caudal_connect_task_record_errors_total", (("connector", "metered"), ("task", "0")))] == 0
    finally:
        worker.stop()
