"""The Connect REST server speaks Kafka's API: real HTTP against the real RestServer.

Users point their existing curl commands and tooling at caudal, so each route is
checked for Kafka's status codes and JSON shapes, and every response body seen
here is validated against ``connect/openapi.yaml`` for its status; the doc and
the router must also list exactly the same operations. The herder behind the
server is a small in-memory implementation of the Herder protocol (scaffolding,
not the thing under test), so the checks are about the HTTP translation.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import logging
import re
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import aiohttp
import jsonschema
import pytest
import yaml

from caudal.connect.herder import ConnectRestError, State, TargetState, not_found
from caudal.connect.rest import RestServer, build_app

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "connect" / "openapi.yaml").read_text())

SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
FILE_SOURCE = {"connector.class": "FileStreamSource", "tasks.max": "2", "topic": "lines", "file": "/tmp/in.txt"}


class FakeHerder:
    """An in-memory herder with Kafka's semantics for what the REST tests touch."""

    worker_id = "127.0.0.1:8083"
    PLUGINS = [
        {"class": SINK, "type": "sink", "version": "3.7.0"},
        {"class": SOURCE, "type": "source", "version": "3.7.0"},
    ]
    OTHER_PLUGINS = [{"class": "org.apache.kafka.connect.json.JsonConverter", "type": "converter", "version": "3.7.0"}]

    def __init__(self, cluster_id: Optional[str] = "fake-cluster") -> None:
        if cluster_id is not None:
            self.cluster_id = cluster_id
        self._configs: dict[str, dict[str, str]] = {}
        self._targets: dict[str, TargetState] = {}
        self._offsets: dict[str, dict[str, tuple[dict, dict]]] = {}
        self.failed: dict[tuple[str, int], str] = {}  # (connector, task) -> trace

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def _resolve(connector_class: str) -> Optional[str]:
        for plugin in FakeHerder.PLUGINS:
            simple = plugin["class"].rsplit(".", 1)[-1]
            if connector_class in (plugin["class"], simple, simple.removesuffix("Connector")):
                return plugin["class"]
        return None

    def _errors(self, config: dict[str, str]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {"connector.class": [], "tasks.max": [], "name": []}
        if not config.get("name"):
            errors["name"].append("Missing required configuration \"name\" which has no default value.")
        resolved = self._resolve(config.get("connector.class", ""))
        if resolved is None:
            errors["connector.class"].append(f"Class {config.get('connector.class')} could not be found.")
        if not config.get("tasks.max", "1").isdigit() or int(config.get("tasks.max", "1")) < 1:
            errors["tasks.max"].append("Value must be at least 1")
        return errors

    def _check(self, config: dict[str, str]) -> None:
        messages = [f"{key}: {msg}" for key, msgs in self._errors(config).items() for msg in msgs]
        if messages:
            raise ConnectRestError(
                400,
                f"Connector configuration is invalid and contains the following {len(messages)} error(s):\n"
                + "\n".join(messages),
            )

    def _known(self, name: str) -> dict[str, str]:
        if name not in self._configs:
            raise not_found(name)
        return self._configs[name]

    def _type(self, name: str) -> str:
        return "sink" if self._resolve(self._configs[name]["connector.class"]) == SINK else "source"

    def _task_ids(self, name: str) -> list[int]:
        if self._targets[name] is TargetState.STOPPED:
            return []  # Kafka drops a stopped connector's task configs
        return list(range(int(self._configs[name].get("tasks.max", "1"))))

    def _state(self, name: str) -> State:
        return {TargetState.STARTED: State.RUNNING, TargetState.PAUSED: State.PAUSED, TargetState.STOPPED: State.STOPPED}[
            self._targets[name]
        ]

    def _task_state(self, name: str, task: int) -> dict[str, Any]:
        state = {"id": task, "state": self._state(name), "worker_id": self.worker_id}
        if (name, task) in self.failed:
            state.update(state=State.FAILED, trace=self.failed[name, task])
        return state

    def _require_stopped(self, name: str) -> None:
        self._known(name)
        if self._targets[name] is not TargetState.STOPPED:
            raise ConnectRestError(
                400,
                "Connectors must be in the STOPPED state before their offsets can be modified. This can be done "
                f"for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint",
            )

    # -- the Herder protocol ---------------------------------------------------

    async def connectors(self) -> list[str]:
        return sorted(self._configs)

    async def connector_info(self, name: str) -> dict[str, Any]:
        config = self._known(name)
        tasks = [{"connector": name, "task": task} for task in self._task_ids(name)]
        return {"name": name, "config": dict(config), "tasks": tasks, "type": self._type(name)}

    async def create_connector(self, name: str, config: dict[str, str], initial_state: Optional[TargetState]) -> dict[str, Any]:
        if name in self._configs:
            raise ConnectRestError(409, f"Connector {name} already exists")
        self._check(config)
        self._configs[name] = dict(config)
        self._targets[name] = initial_state or TargetState.STARTED
        self._offsets[name] = {}
        return await self.connector_info(name)

    async def put_connector_config(self, name: str, config: dict[str, str]) -> tuple[bool, dict[str, Any]]:
        if name not in self._configs:
            return True, await self.create_connector(name, config, None)
        self._check(config)
        self._configs[name] = dict(config)
        return False, await self.connector_info(name)

    async def delete_connector(self, name: str) -> None:
        self._known(name)
        del self._configs[name], self._targets[name]  # offsets survive, as in Kafka

    async def connector_config(self, name: str) -> dict[str, str]:
        return dict(self._known(name))

    async def connector_status(self, name: str) -> dict[str, Any]:
        self._known(name)
        return {
            "name": name,
            "connector": {"state": self._state(name), "worker_id": self.worker_id},
            "tasks": [self._task_state(name, task) for task in self._task_ids(name)],
            "type": self._type(name),
        }

    async def task_configs(self, name: str) -> list[dict[str, Any]]:
        config = self._known(name)
        return [
            {"id": {"connector": name, "task": task}, "config": {**config, "task.class": "FileStreamSourceTask"}}
            for task in self._task_ids(name)
        ]

    async def task_status(self, name: str, task_id: int) -> dict[str, Any]:
        self._known(name)
        if task_id not in self._task_ids(name):
            raise ConnectRestError(404, f"No status found for task {name}-{task_id}")
        return self._task_state(name, task_id)

    async def restart_task(self, name: str, task_id: int) -> None:
        await self.task_status(name, task_id)
        self.failed.pop((name, task_id), None)

    async def restart_connector(self, name: str, include_tasks: bool, only_failed: bool) -> Optional[dict[str, Any]]:
        status = await self.connector_status(name)
        if not include_tasks and not only_failed:
            return None
        if not only_failed:
            status["connector"]["state"] = State.RESTARTING
        for task in status["tasks"]:
            if include_tasks and (not only_failed or task["state"] == State.FAILED):
                task.update(state=State.RESTARTING)
                task.pop("trace", None)
                self.failed.pop((name, task["id"]), None)
        return status

    async def set_target_state(self, name: str, state: TargetState) -> None:
        self._known(name)
        self._targets[name] = state

    async def offsets(self, name: str) -> dict[str, Any]:
        self._known(name)
        return {"offsets": [{"partition": p, "offset": o} for p, o in self._offsets[name].values()]}

    async def alter_offsets(self, name: str, offsets: list[dict[str, Any]]) -> str:
        self._require_stopped(name)
        for entry in offsets:
            key = json.dumps(entry["partition"], sort_keys=True)
            if entry.get("offset") is None:
                self._offsets[name].pop(key, None)
            else:
                self._offsets[name][key] = (entry["partition"], entry["offset"])
        return "The offsets for this connector have been altered successfully"

    async def reset_offsets(self, name: str) -> str:
        self._require_stopped(name)
        self._offsets[name].clear()
        return "The offsets for this connector have been reset successfully"

    def plugins(self, connectors_only: bool = True) -> list[dict[str, str]]:
        return self.PLUGINS if connectors_only else self.PLUGINS + self.OTHER_PLUGINS

    async def validate(self, plugin: str, config: dict[str, str]) -> dict[str, Any]:
        config = {"connector.class": plugin, **config}
        errors = self._errors(config)
        configs = [
            {
                "definition": {
                    "name": key, "type": "STRING", "required": True, "default_value": None, "importance": "HIGH",
                    "documentation": "", "group": "Common", "order": order, "width": "LONG",
                    "display_name": key, "dependents": [],
                },
                "value": {"name": key, "value": config.get(key), "recommended_values": [], "errors": errs, "visible": True},
            }
            for order, (key, errs) in enumerate(errors.items(), 1)
        ]
        return {
            "name": self._resolve(plugin) or plugin,
            "error_count": sum(len(errs) for errs in errors.values()),
            "groups": ["Common"],
            "configs": configs,
        }


class RacingHerder(FakeHerder):
    """Lists a connector that is deleted before its status can be read, as a concurrent DELETE would."""

    async def connectors(self) -> list[str]:
        return ["gone", *await super().connectors()]


class BrokenHerder(FakeHerder):
    """A herder with a bug: the server must answer 500 in Kafka's shape and keep serving."""

    async def task_configs(self, name: str) -> list[dict[str, Any]]:
        raise RuntimeError("task store is on fire")


# -- OpenAPI as JSON Schema ------------------------------------------------------


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema object -> JSON Schema: component refs to $defs, ``nullable`` to a null alternative."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {"$ref": node["$ref"].replace("#/components/schemas/", "#/$defs/")}
    schema = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    return {"anyOf": [schema, {"type": "null"}]} if node.get("nullable") else schema


DEFS = _json_schema(SPEC["components"]["schemas"])
OPERATIONS = {(path, method.upper()) for path, item in SPEC["paths"].items() for method in item if method != "parameters"}


def _template(path: str) -> Optional[str]:
    """The documented path template a concrete request path falls under."""
    path = path.split("?", 1)[0]
    path = path.rstrip("/") or "/"
    for template in SPEC["paths"]:
        if re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)), path):
            return template
    return None


def _validate(schema: dict, body: Any) -> None:
    jsonschema.validate(body, {**_json_schema(schema), "$defs": DEFS}, cls=jsonschema.Draft202012Validator)


def _check_conformance(method: str, path: str, status: int, body: Any) -> None:
    """The response is documented for its operation and status, and its body matches the schema."""
    template = _template(path)
    operation = SPEC["paths"][template].get(method.lower()) if template else None
    if operation is None:
        assert status in (404, 405), f"{method} {path} is not documented but answered {status}"
        _validate({"$ref": "#/components/schemas/ErrorMessage"}, body)
        return
    responses = operation["responses"]
    response = responses.get(str(status)) or (responses.get("default") if status >= 400 else None)
    assert response is not None, f"{method} {template} answered undocumented status {status}"
    if "$ref" in response:
        response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        assert body is None, f"{method} {template} {status} should have no body"
    else:
        _validate(schema, body)


# -- running the real server -------------------------------------------------


class Client:
    """Real HTTP to the server; every answer is checked against the OpenAPI doc."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def call(self, method: str, path: str, *, body: Any = None, data: Any = None) -> tuple[int, Any, Any]:
        """Send ``body`` as JSON (or ``data`` as raw bytes); returns status, parsed reply and headers."""
        async with self.session.request(method, path, json=body, data=data) as response:
            text = await response.text()
            if response.status in (202, 204) and text == "":
                reply = None
            else:
                assert response.content_type == "application/json"
                reply = json.loads(text)
            if response.status >= 400:
                assert reply == {"error_code": response.status, "message": reply["message"]}
            _check_conformance(method, path, response.status, reply)
            return response.status, reply, response.headers


def run(scenario: Callable[[Client], Awaitable[None]], herder: Optional[FakeHerder] = None) -> None:
    async def main() -> None:
        server = RestServer(herder or FakeHerder(), ["http://127.0.0.1:0"])
        [url] = await server.start()
        try:
            async with aiohttp.ClientSession(url) as session:
                await scenario(Client(session))
        finally:
            await server.stop()

    asyncio.run(main())


async def _create(client: Client, name: str = "src", **overrides: Any) -> dict:
    status, info, _ = await client.call("POST", "/connectors", body={"name": name, "config": {**FILE_SOURCE, **overrides}})
    assert status == 201
    return info


# -- routes ------------------------------------------------------------------


def test_root_reports_version_commit_and_cluster_id():
    async def scenario(client: Client) -> None:
        status, body, _ = await client.call("GET", "/")
        assert status == 200
        assert body == {"version": importlib.metadata.version("caudal"), "commit": "", "kafka_cluster_id": "fake-cluster"}

    async def without_cluster_id(client: Client) -> None:
        assert (await client.call("GET", "/"))[1]["kafka_cluster_id"] == ""

    run(scenario)
    run(without_cluster_id, FakeHerder(cluster_id=None))


def test_connector_lifecycle():
    async def scenario(client: Client) -> None:
        assert (await client.call("GET", "/connectors"))[:2] == (200, [])
        status, info, headers = await client.call("POST", "/connectors", body={"name": "src", "config": FILE_SOURCE})
        assert status == 201
        assert headers["Location"].endswith("/connectors/src")
        assert info == {
            "name": "src",
            "config": {**FILE_SOURCE, "name": "src"},
            "tasks": [{"connector": "src", "task": 0}, {"connector": "src", "task": 1}],
            "type": "source",
        }
        assert (await client.call("GET", "/connectors"))[:2] == (200, ["src"])
        assert (await client.call("GET", "/connectors/src"))[:2] == (200, info)
        assert (await client.call("GET", "/connectors/src/config"))[:2] == (200, info["config"])

        status, updated, _ = await client.call("PUT", "/connectors/src/config", body={**FILE_SOURCE, "tasks.max": "1"})
        assert status == 200 and updated["tasks"] == [{"connector": "src", "task": 0}]
        status, created, headers = await client.call("PUT", "/connectors/other/config", body=FILE_SOURCE)
        assert status == 201 and created["name"] == "other" and created["config"]["name"] == "other"
        assert headers["Location"].endswith("/connectors/other")

        status, body, _ = await client.call("GET", "/connectors/src/status")
        assert status == 200
        assert body == {
            "name": "src",
            "connector": {"state": "RUNNING", "worker_id": "127.0.0.1:8083"},
            "tasks": [{"id": 0, "state": "RUNNING", "worker_id": "127.0.0.1:8083"}],
            "type": "source",
        }
        status, tasks, _ = await client.call("GET", "/connectors/src/tasks")
        assert status == 200 and [task["id"] for task in tasks] == [{"connector": "src", "task": 0}]
        assert tasks[0]["config"]["task.class"] == "FileStreamSourceTask"
        assert (await client.call("GET", "/connectors/src/tasks/0/status"))[:2] == (
            200,
            {"id": 0, "state": "RUNNING", "worker_id": "127.0.0.1:8083"},
        )

        assert (await client.call("DELETE", "/connectors/src"))[:2] == (204, None)
        assert (await client.call("GET", "/connectors/src"))[:2] == (
            404,
            {"error_code": 404, "message": "Connector src not found"},
        )
        assert (await client.call("GET", "/connectors"))[1] == ["other"]

    run(scenario)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/connectors/ghost"),
        ("DELETE", "/connectors/ghost"),
        ("GET", "/connectors/ghost/config"),
        ("GET", "/connectors/ghost/status"),
        ("GET", "/connectors/ghost/tasks"),
        ("GET", "/connectors/ghost/tasks/0/status"),
        ("POST", "/connectors/ghost/tasks/0/restart"),
        ("POST", "/connectors/ghost/restart"),
        ("PUT", "/connectors/ghost/pause"),
        ("PUT", "/connectors/ghost/resume"),
        ("PUT", "/connectors/ghost/stop"),
        ("GET", "/connectors/ghost/offsets"),
        ("DELETE", "/connectors/ghost/offsets"),
    ],
)
def test_unknown_connector_is_404_on_every_connector_route(method, path):
    async def scenario(client: Client) -> None:
        assert (await client.call(method, path))[:2] == (404, {"error_code": 404, "message": "Connector ghost not found"})

    run(scenario)


def test_create_errors_and_kafka_leniencies():
    async def scenario(client: Client) -> None:
        await _create(client)
        status, body, _ = await client.call("POST", "/connectors", body={"name": "src", "config": FILE_SOURCE})
        assert (status, body["message"]) == (409, "Connector src already exists")

        async def rejected(**request: Any) -> str:
            status, body, _ = await client.call("POST", "/connectors", **request)
            assert status == 400, body
            return body["message"]

        assert "name must be provided" in await rejected(body={"config": FILE_SOURCE})
        assert "name must be provided" in await rejected(body={"name": "  ", "config": FILE_SOURCE})
        assert "doesn't match" in await rejected(body={"name": "a", "config": {**FILE_SOURCE, "name": "b"}})
        assert "configuration must be a JSON object" in await rejected(body={"name": "a"})
        assert "could not be found" in await rejected(body={"name": "a", "config": {"connector.class": "Nope"}})
        assert "not valid JSON" in await rejected(data=b"{not json")
        assert "not valid JSON" in await rejected(data=b"")
        assert "not valid JSON" in await rejected(data=b"[" * 100_000)
        assert "JSON object" in await rejected(body=["name", "config"])
        assert "must be a string" in await rejected(body={"name": 7, "config": FILE_SOURCE})
        assert "'topic'" in await rejected(body={"name": "a", "config": {**FILE_SOURCE, "topic": ["x"]}})
        assert "initial_state" in await rejected(body={"name": "a", "config": FILE_SOURCE, "initial_state": "ASLEEP"})

        # Jackson's Map<String, String> takes numbers and booleans; so do we. The name is trimmed.
        status, info, _ = await client.call(
            "POST",
            "/connectors",
            body={"name": " numeric ", "config": {**FILE_SOURCE, "tasks.max": 1, "flag": True}, "initial_state": "paused"},
        )
        assert status == 201 and info["name"] == "numeric"
        assert info["config"]["tasks.max"] == "1" and info["config"]["flag"] == "true"
        assert (await client.call("GET", "/connectors/numeric/status"))[1]["connector"]["state"] == "PAUSED"
        stopped = await client.call("POST", "/connectors", body={"name": "st", "config": FILE_SOURCE, "initial_state": "STOPPED"})
        assert stopped[1]["tasks"] == []

        status, body, _ = await client.call("PUT", "/connectors/src/config", body={**FILE_SOURCE, "name": "other"})
        assert status == 400 and body["message"] == (
            "Connector name configuration (other) doesn't match connector name in the URL (src)"
        )
        assert (await client.call("PUT", "/connectors/src/config", data=b"nope"))[0] == 400
        assert (await client.call("PUT", "/connectors/src/config", body={**FILE_SOURCE, "tasks.max": "0"}))[0] == 400

    run(scenario)


def test_expand_status_and_info():
    async def scenario(client: Client) -> None:
        info = await _create(client, "a")
        await _create(client, "b", **{"tasks.max": "1"})
        status, body, _ = await client.call("GET", "/connectors?expand=status")
        assert status == 200 and set(body) == {"a", "b"}
        assert set(body["a"]) == {"status"} and body["a"]["status"]["name"] == "a"
        body = (await client.call("GET", "/connectors?expand=info"))[1]
        assert body["a"] == {"info": info}
        body = (await client.call("GET", "/connectors?expand=status&expand=info"))[1]
        assert set(body["b"]) == {"status", "info"} and body["b"]["status"]["tasks"][0]["id"] == 0
        assert (await client.call("GET", "/connectors?expand=bogus"))[1] == {"a": {}, "b": {}}

    async def racing(client: Client) -> None:
        await _create(client, "a")
        assert (await client.call("GET", "/connectors"))[1] == ["gone", "a"]
        assert set((await client.call("GET", "/connectors?expand=status"))[1]) == {"a"}

    run(scenario)
    run(racing, RacingHerder())


def test_restart_connector_and_tasks():
    herder = FakeHerder()

    async def scenario(client: Client) -> None:
        await _create(client)
        assert (await client.call("POST", "/connectors/src/restart"))[:2] == (204, None)
        assert (await client.call("POST", "/connectors/src/restart?includeTasks=false&onlyFailed=false"))[0] == 204

        status, body, _ = await client.call("POST", "/connectors/src/restart?includeTasks=true")
        assert status == 202
        assert body["connector"]["state"] == "RESTARTING"
        assert [task["state"] for task in body["tasks"]] == ["RESTARTING", "RESTARTING"]

        herder.failed["src", 1] = "java.lang.RuntimeException: boom"
        task = (await client.call("GET", "/connectors/src/tasks/1/status"))[1]
        assert task == {"id": 1, "state": "FAILED", "worker_id": "127.0.0.1:8083", "trace": "java.lang.RuntimeException: boom"}
        status, body, _ = await client.call("POST", "/connectors/src/restart?includeTasks=TRUE&onlyFailed=True")
        assert status == 202
        assert body["connector"]["state"] == "RUNNING"
        assert [task["state"] for task in body["tasks"]] == ["RUNNING", "RESTARTING"]

        status, body, _ = await client.call("POST", "/connectors/src/restart?includeTasks=yes")
        assert status == 400 and "includeTasks" in body["message"]
        assert (await client.call("POST", "/connectors/src/restart?onlyFailed=1"))[0] == 400

        herder.failed["src", 0] = "trace"
        assert (await client.call("POST", "/connectors/src/tasks/0/restart"))[:2] == (204, None)
        assert (await client.call("GET", "/connectors/src/tasks/0/status"))[1]["state"] == "RUNNING"
        status, body, _ = await client.call("POST", "/connectors/src/tasks/9/restart")
        assert (status, body["message"]) == (404, "No status found for task src-9")
        assert (await client.call("GET", "/connectors/src/tasks/-1/status"))[0] == 404

    run(scenario, herder)


def test_pause_resume_stop():
    async def scenario(client: Client) -> None:
        await _create(client)

        async def state() -> str:
            return (await client.call("GET", "/connectors/src/status"))[1]["connector"]["state"]

        assert (await client.call("PUT", "/connectors/src/pause"))[:2] == (202, None)
        assert await state() == "PAUSED"
        assert (await client.call("PUT", "/connectors/src/resume"))[:2] == (202, None)
        assert await state() == "RUNNING"
        assert (await client.call("PUT", "/connectors/src/stop"))[:2] == (204, None)
        assert await state() == "STOPPED"
        assert (await client.call("GET", "/connectors/src/status"))[1]["tasks"] == []

    run(scenario)


def test_offsets_get_alter_reset():
    async def scenario(client: Client) -> None:
        await _create(client)
        assert (await client.call("GET", "/connectors/src/offsets"))[:2] == (200, {"offsets": []})
        entry = {"partition": {"filename": "/tmp/in.txt"}, "offset": {"position": 42}}

        status, body, _ = await client.call("PATCH", "/connectors/src/offsets", body={"offsets": [entry]})
        assert status == 400 and "STOPPED" in body["message"]
        assert (await client.call("DELETE", "/connectors/src/offsets"))[0] == 400

        await client.call("PUT", "/connectors/src/stop")
        status, body, _ = await client.call("PATCH", "/connectors/src/offsets", body={"offsets": [entry]})
        assert (status, body) == (200, {"message": "The offsets for this connector have been altered successfully"})
        assert (await client.call("GET", "/connectors/src/offsets"))[1] == {"offsets": [entry]}

        erase = {"partition": {"filename": "/tmp/in.txt"}, "offset": None}
        assert (await client.call("PATCH", "/connectors/src/offsets", body={"offsets": [erase]}))[0] == 200
        assert (await client.call("GET", "/connectors/src/offsets"))[1] == {"offsets": []}

        for bad in ({}, {"offsets": []}, {"offsets": "x"}, {"offsets": [{"offset": {}}]}, {"offsets": [{"partition": {}, "offset": 3}]}, [1]):
            assert (await client.call("PATCH", "/connectors/src/offsets", body=bad))[0] == 400, bad
        assert (await client.call("PATCH", "/connectors/src/offsets", data=b"{"))[0] == 400

        await client.call("PATCH", "/connectors/src/offsets", body={"offsets": [entry]})
        status, body, _ = await client.call("DELETE", "/connectors/src/offsets")
        assert (status, body) == (200, {"message": "The offsets for this connector have been reset successfully"})
        assert (await client.call("GET", "/connectors/src/offsets"))[1] == {"offsets": []}

    run(scenario)


def test_connector_plugins():
    async def scenario(client: Client) -> None:
        assert (await client.call("GET", "/connector-plugins"))[:2] == (200, FakeHerder.PLUGINS)
        assert (await client.call("GET", "/connector-plugins?connectorsOnly=true"))[1] == FakeHerder.PLUGINS
        body = (await client.call("GET", "/connector-plugins?connectorsOnly=false"))[1]
        assert body == FakeHerder.PLUGINS + FakeHerder.OTHER_PLUGINS
        assert (await client.call("GET", "/connector-plugins?connectorsOnly=maybe"))[0] == 400

    run(scenario)


def test_validate_config():
    async def scenario(client: Client) -> None:
        path = "/connector-plugins/FileStreamSourceConnector/config/validate"
        status, body, _ = await client.call("PUT", path, body={**FILE_SOURCE, "name": "v"})
        assert status == 200 and body["name"] == SOURCE and body["error_count"] == 0
        status, body, _ = await client.call("PUT", path, body={"name": "v", "tasks.max": 0})
        assert status == 200 and body["error_count"] == 1
        [tasks_max] = [config for config in body["configs"] if config["definition"]["name"] == "tasks.max"]
        assert tasks_max["value"] == {
            "name": "tasks.max", "value": "0", "recommended_values": [], "errors": ["Value must be at least 1"], "visible": True,
        }
        full_name = f"/connector-plugins/{SOURCE}/config/validate"
        assert (await client.call("PUT", full_name, body={**FILE_SOURCE, "connector.class": SOURCE}))[0] == 200
        # As in Kafka, the included class may be shorter than the path's only if it still ends the same.
        assert (await client.call("PUT", full_name, body=FILE_SOURCE))[0] == 400

        status, body, _ = await client.call("PUT", path, body={"connector.class": SINK})
        assert status == 400
        assert body["message"] == f"Included connector type {SINK} does not match request type FileStreamSourceConnector"
        assert (await client.call("PUT", path, data=b"not json"))[0] == 400
        assert (await client.call("PUT", path, body=["tasks.max"]))[0] == 400

    run(scenario)


def test_routing_errors_have_kafkas_shape_and_trailing_slashes_match():
    async def scenario(client: Client) -> None:
        assert (await client.call("GET", "/nope"))[:2] == (404, {"error_code": 404, "message": "HTTP 404 Not Found"})
        assert (await client.call("GET", "/connectors/src/tasks/zero/status"))[0] == 404
        status, body, headers = await client.call("POST", "/connectors/src/status")
        assert (status, body) == (405, {"error_code": 405, "message": "HTTP 405 Method Not Allowed"})
        assert headers["Allow"] == "GET"
        assert (await client.call("DELETE", "/"))[0] == 405

        await _create(client)
        assert (await client.call("GET", "/connectors/"))[:2] == (200, ["src"])
        assert (await client.call("GET", "/connectors/src/status/"))[0] == 200
        assert (await client.call("GET", "/connector-plugins/"))[0] == 200

    run(scenario)


def test_a_herder_bug_is_a_logged_500_and_the_server_keeps_serving(caplog):
    async def scenario(client: Client) -> None:
        await _create(client)
        status, body, _ = await client.call("GET", "/connectors/src/tasks")
        assert (status, body) == (500, {"error_code": 500, "message": "task store is on fire"})
        assert (await client.call("GET", "/connectors/src"))[0] == 200

    with caplog.at_level(logging.ERROR, logger="caudal.connect.rest"):
        run(scenario, BrokenHerder())
    [record] = [r for r in caplog.records if r.getMessage().startswith("event=rest_error")]
    assert "path=/connectors/src/tasks" in record.getMessage()
    assert record.exc_info is not None and "\n" not in record.getMessage()


# -- conformance with connect/openapi.yaml -------------------------------------


def test_every_served_route_is_documented_and_every_documented_route_is_served():
    served = {
        (route.resource.canonical.rstrip("/") or "/", route.method)
        for route in build_app(FakeHerder()).router.routes()
    }
    assert served == OPERATIONS

    examples = {"connector": "sweep", "task": "0", "pluginName": "FileStreamSource"}

    async def scenario(client: Client) -> None:
        await _create(client, "sweep")
        # Altering offsets needs a stopped connector, and every other operation an existing one.
        last = [
            ("/connectors/{connector}/stop", "PUT"),
            ("/connectors/{connector}/offsets", "PATCH"),
            ("/connectors/{connector}/offsets", "DELETE"),
            ("/connectors/{connector}", "DELETE"),
        ]
        for template, method in sorted(OPERATIONS, key=lambda op: (last.index(op) if op in last else -1, op)):
            path = re.sub(r"\{(\w+)\}", lambda m: examples[m.group(1)], template)
            operation = SPEC["paths"][template][method.lower()]
            example = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("example")
            status, body, _ = await client.call(method, path, body=example)
            assert 200 <= status < 300, (method, path, status, body)

    run(scenario)


# -- listeners -----------------------------------------------------------------


@pytest.mark.parametrize("listener", ["https://:8443", "http://localhost", "http://:port", "8083"])
def test_bad_listeners_are_rejected(listener):
    with pytest.raises(ValueError):
        RestServer(FakeHerder(), [listener])


def test_listeners_bind_every_interface_or_one_and_stop_releases_them():
    async def main() -> None:
        server = RestServer(FakeHerder(), ["http://:0", "HTTP://127.0.0.1:0"])
        urls = await server.start()
        assert urls[0].startswith("http://0.0.0.0:") and urls[1].startswith("http://127.0.0.1:")
        with pytest.raises(RuntimeError):
            await server.start()
        port = int(urls[0].rsplit(":", 1)[1])
        async with aiohttp.ClientSession() as session:
            for url in (f"http://127.0.0.1:{port}", urls[1]):
                async with session.get(url + "/") as response:
                    assert response.status == 200
        await server.stop()
        await server.stop()
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(urls[1] + "/")

    asyncio.run(main())
