"""Distributed mode: workers that share connectors and tasks through a group and three topics.

``caudal connect distributed worker.properties`` — Kafka's connect-distributed.
Workers with the same ``group.id`` join one group through the group
coordinator (protocol type ``connect``); its leader spreads connectors and
tasks round-robin over the members, so when a worker dies its share moves to
the survivors once its session times out. The cluster's state lives in
compacted topics every worker reads (Kafka's key formats):

* ``config.storage.topic``: ``connector-<n>`` {"properties"}, ``task-<n>-<i>``
  {"properties"}, ``commit-<n>`` {"tasks"}, ``target-state-<n>`` {"state"},
  ``restart-connector-<n>`` {"include_tasks", "only_failed"};
* ``offset.storage.topic``: source offsets, ``["<n>", {partition}]`` → offset;
* ``status.storage.topic``: ``status-connector-<n>``, ``status-task-<n>-<i>``.

Writes through REST go to the group leader (other workers forward them), the
worker running a connector publishes its task configs, and every worker
rejoins when the set of connectors or tasks changes.

Rebalancing follows ``connect.protocol``: ``sessioned``/``compatible`` (the
default) are incremental cooperative (KIP-415, :mod:`caudal.connect.incremental_assignor`):
each worker reports what it runs, keeps it running through the rebalance and
stops only what the leader revokes, which moves in a follow-up round. ``eager``
stops all work before every rebalance and deals it out again round-robin; the
group falls back to it while any worker asks for it (a rolling upgrade).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Optional

import aiohttp
from caudal.client._transport import Connections, parse_bootstrap
from caudal.client.cluster import MetadataManager
from caudal.client.group_member import GroupMember, MembershipConfig
from caudal.connect import connector_offsets
from caudal.connect.herder import ConnectRestError, State, TargetState, not_found
from caudal.connect.incremental_assignor import AssignorState, WorkerLoad, assign, from_json, to_json
from caudal.connect.standalone import PluginQueries, check_valid, connector_definition
from caudal.connect.topic_log import TopicLog
from caudal.connect.worker import Worker

log = logging.getLogger(__name__)

PROTOCOL_TYPE = "connect"
EAGER = "default"
PROTOCOLS = {"eager": [EAGER], "compatible": ["compatible", EAGER], "sessioned": ["sessioned", "compatible", EAGER]}
"""Group protocols a worker offers per ``connect.protocol``, preferred first (Kafka's names)."""
LOOP_TICK_S = 0.25
FORWARD_TIMEOUT_S = 60


def assign_round_robin(members: list[str], connectors: list[str], tasks: list[tuple[str, int]]) -> dict[str, WorkerLoad]:
    """Eager protocol: connectors, then tasks, dealt over the members in order — each worker gets an even share."""
    dealt: dict[str, tuple[list[str], list[tuple[str, int]]]] = {m: ([], []) for m in members}
    for i, name in enumerate(sorted(connectors)):
        dealt[members[i % len(members)]][0].append(name)
    for i, task in enumerate(sorted(tasks)):
        dealt[members[(i + len(connectors)) % len(members)]][1].append(task)
    return {m: WorkerLoad(frozenset(c), frozenset(t)) for m, (c, t) in dealt.items()}


class DistributedHerder(PluginQueries):
    """The Herder of one member of a distributed Connect cluster."""

    def __init__(self, worker: Worker, config: dict[str, Any], configs: TopicLog, statuses: TopicLog) -> None:
        self.worker = worker
        self.worker_id = worker.worker_id
        self.config = config
        self.configs = configs
        self.statuses = statuses
        self.url = ""
        self.leader_url = ""
        self.cluster_id = ""
        self.assignment = WorkerLoad()
        self._protocols = PROTOCOLS[str(config.get("connect.protocol", "sessioned")).lower()]
        self._max_delay_ms = int(config.get("scheduled.rebalance.max.delay.ms", 0))
        self._eager = self._protocols == [EAGER]
        """Stop everything before the next join: this worker or, last round, the group chose eager."""
        self._assignor = AssignorState()
        self._led_generation = -1
        self._rejoin_at: Optional[float] = None
        self._conns = Connections()
        metadata = MetadataManager(self._conns, parse_bootstrap(worker.bootstrap), 30)
        self.member = GroupMember(
            MembershipConfig(
                group_id=str(config["group.id"]), group_instance_id=None, client_id=f"connect-{config['group.id']}",
                session_timeout_ms=int(config.get("session.timeout.ms", 10_000)),
                rebalance_timeout_ms=int(config.get("rebalance.timeout.ms", 60_000)),
                heartbeat_interval_ms=int(config.get("heartbeat.interval.ms", 3000)),
                retry_backoff_ms=100, request_timeout_ms=30_000,
            ),
            metadata, PROTOCOL_TYPE,
        )
        self._changed = asyncio.Event()
        self._joined = asyncio.Event()
        self._running_configs: dict[str, dict[str, str]] = {}
        self._handled_restarts: dict[str, Any] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._http: Optional[aiohttp.ClientSession] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    # ---- lifecycle ---------------------------------------------------------------------

    def on_config_change(self, key: str, value: Optional[Any]) -> None:
        """Config-topic reader thread: a new or removed connector or task set means a rebalance."""
        if key.startswith(("connector-", "commit-")):
            self.member.rejoin_needed = True
        if self._loop is not None:  # before start() the first join reads the whole topic anyway
            self._loop.call_soon_threadsafe(self._changed.set)

    async def start(self, url: str) -> None:
        self.url = url
        self.worker_id = self.worker.worker_id
        self._loop = asyncio.get_running_loop()
        self._http = aiohttp.ClientSession()
        self._tasks = [asyncio.ensure_future(self.member.heartbeat_loop()), asyncio.ensure_future(self._run())]
        await asyncio.wait_for(self._joined.wait(), self.member.config.rebalance_timeout_ms / 1000)

    async def _run(self) -> None:
        while True:
            self.member.last_poll = time.monotonic()
            try:
                if self._rejoin_at is not None and time.monotonic() >= self._rejoin_at:
                    self._rejoin_at = None
                    self.member.rejoin_needed = True
                if self.member.rejoin_needed or self.member.membership_lost:
                    await self._rebalance()
                await self._reconcile()
            except Exception:
                log.exception("event=herder_loop_error worker=%s", self.worker_id)
            try:
                await asyncio.wait_for(self._changed.wait(), LOOP_TICK_S)
            except asyncio.TimeoutError:
                pass
            self._changed.clear()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self.worker.stop)
        await self.member.leave("the worker is shutting down")
        await self._conns.close()
        if self._http is not None:
            await self._http.close()

    # ---- rebalancing ---------------------------------------------------------------------

    async def _rebalance(self) -> None:
        """Join the group, then stop what this worker no longer owns and remember what it runs now.

        Eager (or after the session was lost, when others may already run this worker's share):
        everything stops before the join. Cooperative: work keeps running through the join;
        whatever the leader revoked stops afterwards, and the worker rejoins at once so the
        follow-up round can hand it to its new owner."""
        if self._eager or self.member.membership_lost:
            for name in list(self.worker.connectors):
                await asyncio.to_thread(self.worker.stop_connector, name)
            self._running_configs.clear()
            self.assignment = WorkerLoad()
        self.member.membership_lost = False
        metadata = json.dumps({"url": self.url, **to_json(self.assignment)}).encode()
        joined = await self.member.join([(name, metadata) for name in self._protocols], self._assign,
                                        float(self.member.config.rebalance_timeout_ms) / 1000)
        assignment = json.loads(joined.assignment or b"{}")
        granted = from_json(assignment)
        revoked = self.assignment - granted
        await self._stop(revoked)
        self.assignment = granted
        self.leader_url = assignment.get("leader_url", "")
        self._eager = self._protocols == [EAGER] or joined.protocol_name == EAGER
        delay_ms = int(assignment.get("delay", 0))
        if not revoked.is_empty:
            self.member.rejoin_needed = True
        elif delay_ms > 0:
            self._rejoin_at = time.monotonic() + delay_ms / 1000
        self._joined.set()
        log.info("event=connect_assignment worker=%s generation=%d protocol=%s leader=%s connectors=%s tasks=%s revoked=%s delay_ms=%d",
                 self.worker_id, joined.generation_id, joined.protocol_name, joined.leader, sorted(granted.connectors),
                 sorted(granted.tasks), to_json(revoked), delay_ms)

    async def _stop(self, work: WorkerLoad) -> None:
        """Stop revoked tasks, then revoked connectors (a connector whose tasks stay here leaves them running)."""
        for name, task_id in sorted(work.tasks):
            await asyncio.to_thread(self.worker.stop_task, name, task_id)
        for name in sorted(work.connectors):
            keep_tasks = any(task[0] == name for task in self.assignment.tasks - work.tasks)
            await asyncio.to_thread(self.worker.stop_connector, name, keep_tasks)
            self._running_configs.pop(name, None)

    async def _assign(self, protocol: str, members: list[tuple[str, bytes]]) -> dict[str, bytes]:
        reported = {member_id: json.loads(data) for member_id, data in members}
        connectors = self._connector_names()
        tasks = [(name, i) for name in connectors for i in range(self._task_count(name))]
        delay_ms = 0
        if protocol == EAGER:
            plan = assign_round_robin(sorted(reported), connectors, tasks)
        else:
            if self._led_generation != self.member.generation_id - 1:
                self._assignor = AssignorState()  # another worker led meanwhile: what this one remembers is stale
            owned = {member_id: from_json(value) for member_id, value in reported.items()}
            result = assign(owned, connectors, tasks, self._assignor, time.monotonic(), self._max_delay_ms)
            plan, delay_ms = result.assignments, result.delay_ms
        self._led_generation = self.member.generation_id
        return {m: json.dumps({**to_json(load), "leader_url": self.url, "delay": delay_ms}).encode() for m, load in plan.items()}

    @property
    def is_leader(self) -> bool:
        return bool(self.leader_url) and self.leader_url == self.url

    # ---- running this worker's share -----------------------------------------------------

    def _connector_names(self) -> list[str]:
        return sorted(k[len("connector-"):] for k, _ in self.configs.items("connector-"))

    def _connector_config(self, name: str) -> Optional[dict[str, str]]:
        value = self.configs.get(f"connector-{name}")
        return dict(value["properties"]) if value else None

    def _target(self, name: str) -> TargetState:
        value = self.configs.get(f"target-state-{name}")
        return TargetState(value["state"]) if value else TargetState.STARTED

    def _task_count(self, name: str) -> int:
        value = self.configs.get(f"commit-{name}")
        return int(value["tasks"]) if value else 0

    def _task_config(self, name: str, task_id: int) -> Optional[dict[str, str]]:
        value = self.configs.get(f"task-{name}-{task_id}")
        return dict(value["properties"]) if value else None

    async def _reconcile(self) -> None:
        """Start, restart, pause or stop what this worker was assigned, as the config topic now says."""
        for name in sorted(self.assignment.connectors):
            config = self._connector_config(name)
            if config is None:
                continue
            target = self._target(name)
            runtime = self.worker.connectors.get(name)
            if runtime is None or self._running_configs.get(name) != config or runtime.target is not target or self._restart_asked(name):
                if runtime is not None:  # tasks restart by themselves if their configs change
                    await asyncio.to_thread(self.worker.stop_connector, name, True)
                runtime = await asyncio.to_thread(self.worker.start_connector, name, config, target)
                self._running_configs[name] = config
                await self._publish_tasks(name, runtime.task_configs)
                self._write_status(f"status-connector-{name}", self.worker.connector_status(name))
        for name, task_id in sorted(self.assignment.tasks):
            task_config = self._task_config(name, task_id)
            if task_config is None or self._connector_config(name) is None:
                continue
            target = self._target(name)
            task = self.worker.tasks.get((name, task_id))
            if task is not None and task.config == task_config and not self._restart_asked(name, task_id):
                await asyncio.to_thread(self.worker.set_paused, name, target is TargetState.PAUSED)
            else:
                if task is not None:
                    await asyncio.to_thread(self.worker.stop_task, name, task_id)
                if target is not TargetState.STOPPED:
                    await asyncio.to_thread(self._start_task, name, task_id, task_config, target)
            status = self.worker.task_status(name, task_id)
            if status is not None and self.statuses.get(f"status-task-{name}-{task_id}") != status:
                self._write_status(f"status-task-{name}-{task_id}", status)

    def _start_task(self, name: str, task_id: int, task_config: dict[str, str], target: TargetState) -> None:
        config = self._connector_config(name) or {}
        runtime = self.worker.connectors.get(name)
        if runtime is None or (name not in self.assignment.connectors and runtime.config != config):
            # The connector runs elsewhere: tasks still need its class, and its current config
            # (converters, transforms, error policy), which may have changed since the last task here.
            self.worker.start_connector(name, config, TargetState.STOPPED)
        self.worker.start_task(name, task_id, task_config, target)

    def _restart_asked(self, name: str, task_id: Optional[int] = None) -> bool:
        request = self.configs.get(f"restart-connector-{name}")
        key = f"{name}-{task_id}"
        if request is None or self._handled_restarts.get(key) == request:
            return False
        self._handled_restarts[key] = request
        only_task = request.get("task")
        if task_id is None:
            return only_task is None and (not request.get("only_failed") or self.worker.connectors[name].state is State.FAILED)
        if only_task is not None:
            return only_task == task_id
        if not request.get("include_tasks"):
            return False
        status = self.worker.task_status(name, task_id) or {}
        return not request.get("only_failed") or status.get("state") == State.FAILED.value

    async def _publish_tasks(self, name: str, task_configs: list[dict[str, str]]) -> None:
        """The connector's worker publishes its task configs when they changed; every worker then rebalances."""
        current = [self._task_config(name, i) for i in range(self._task_count(name))]
        if current == task_configs:
            return
        for i, task_config in enumerate(task_configs):
            await asyncio.to_thread(self.configs.write, f"task-{name}-{i}", {"properties": task_config})
        await asyncio.to_thread(self.configs.write, f"commit-{name}", {"tasks": len(task_configs)})

    def _write_status(self, key: str, status: dict[str, Any]) -> None:
        self._loop.run_in_executor(None, self.statuses.write, key, status)

    # ---- forwarding ----------------------------------------------------------------------

    async def _forward(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send a write to the leader's REST API (Kafka forwards them too)."""
        if not self.leader_url:
            raise ConnectRestError(409, "Cannot complete request because of a conflicting operation (e.g. worker rebalance)")
        assert self._http is not None
        async with self._http.request(method, f"{self.leader_url}{path}", json=body,
                                      timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)) as response:
            payload = await response.json(content_type=None) if response.content_length != 0 else None
            if response.status >= 400:
                raise ConnectRestError(response.status, (payload or {}).get("message", response.reason or ""))
            return response.status, payload

    async def _write(self, key: str, value: Optional[Any]) -> None:
        await asyncio.to_thread(self.configs.write, key, value)

    # ---- the Herder contract ----------------------------------------------------------------

    def _require(self, name: str) -> dict[str, str]:
        config = self._connector_config(name)
        if config is None:
            raise not_found(name)
        return config

    async def connectors(self) -> list[str]:
        return self._connector_names()

    async def connector_info(self, name: str) -> dict[str, Any]:
        config = self._require(name)
        return {"name": name, "config": config, "type": self._kind(name),
                "tasks": [{"connector": name, "task": i} for i in range(self._task_count(name))]}

    async def create_connector(self, name: str, config: dict[str, str], initial_state: Optional[TargetState]) -> dict[str, Any]:
        if not self.is_leader:
            body: dict[str, Any] = {"name": name, "config": config}
            if initial_state is not None:
                body["initial_state"] = initial_state.value
            return (await self._forward("POST", "/connectors", body))[1]
        if self._connector_config(name) is not None:
            raise ConnectRestError(409, f"Connector {name} already exists")
        config = {**config, "name": name}
        check_valid(config)
        await self._write(f"target-state-{name}", {"state": (initial_state or TargetState.STARTED).value})
        await self._write(f"connector-{name}", {"properties": config})
        return await self.connector_info(name)

    async def put_connector_config(self, name: str, config: dict[str, str]) -> tuple[bool, dict[str, Any]]:
        if not self.is_leader:
            status, info = await self._forward("PUT", f"/connectors/{name}/config", config)
            return status == 201, info
        config = {**config, "name": name}
        check_valid(config)
        created = self._connector_config(name) is None
        await self._write(f"connector-{name}", {"properties": config})
        return created, await self.connector_info(name)

    async def delete_connector(self, name: str) -> None:
        if not self.is_leader:
            await self._forward("DELETE", f"/connectors/{name}")
            return
        self._require(name)
        for i in range(self._task_count(name)):
            await self._write(f"task-{name}-{i}", None)
        await self._write(f"commit-{name}", None)
        await self._write(f"target-state-{name}", None)
        await self._write(f"connector-{name}", None)

    async def connector_config(self, name: str) -> dict[str, str]:
        return self._require(name)

    async def connector_status(self, name: str) -> dict[str, Any]:
        info = await self.connector_info(name)
        connector = self.statuses.get(f"status-connector-{name}") or {"state": State.UNASSIGNED.value, "worker_id": ""}
        tasks = []
        for i in range(self._task_count(name)):
            status = self.statuses.get(f"status-task-{name}-{i}") or {"state": State.UNASSIGNED.value, "worker_id": ""}
            tasks.append({**status, "id": i})
        return {"name": name, "connector": connector, "tasks": tasks, "type": info["type"]}

    async def task_configs(self, name: str) -> list[dict[str, Any]]:
        self._require(name)
        return [{"id": {"connector": name, "task": i}, "config": self._task_config(name, i) or {}} for i in range(self._task_count(name))]

    async def task_status(self, name: str, task_id: int) -> dict[str, Any]:
        status = await self.connector_status(name)
        if not 0 <= task_id < len(status["tasks"]):
            raise ConnectRestError(404, f"Task {name}-{task_id} not found")
        return status["tasks"][task_id]

    async def restart_task(self, name: str, task_id: int) -> None:
        await self._request_restart(name, True, False, task_id)

    async def _request_restart(self, name: str, include_tasks: bool, only_failed: bool, task_id: Optional[int] = None) -> None:
        if not self.is_leader:
            if task_id is None:
                await self._forward("POST", f"/connectors/{name}/restart?includeTasks={str(include_tasks).lower()}&onlyFailed={str(only_failed).lower()}")
            else:
                await self._forward("POST", f"/connectors/{name}/tasks/{task_id}/restart")
            return
        self._require(name)
        await self._write(f"restart-connector-{name}", {"include_tasks": include_tasks, "only_failed": only_failed,
                                                      "task": task_id, "at": time.time()})

    async def restart_connector(self, name: str, include_tasks: bool, only_failed: bool) -> Optional[dict[str, Any]]:
        await self._request_restart(name, include_tasks, only_failed)
        return await self.connector_status(name) if include_tasks else None

    async def set_target_state(self, name: str, state: TargetState) -> None:
        if not self.is_leader:
            verb = {TargetState.PAUSED: "pause", TargetState.STARTED: "resume", TargetState.STOPPED: "stop"}[state]
            await self._forward("PUT", f"/connectors/{name}/{verb}")
            return
        self._require(name)
        await self._write(f"target-state-{name}", {"state": state.value})

    def _kind(self, name: str) -> str:
        return "sink" if connector_definition(self._require(name)["connector.class"])[1] else "source"

    async def offsets(self, name: str) -> dict[str, Any]:
        return await connector_offsets.read(self.worker.offsets, self.worker.bootstrap, name, self._kind(name))

    async def alter_offsets(self, name: str, offsets: list[dict[str, Any]]) -> str:
        if self._target(name) is not TargetState.STOPPED:
            raise connector_offsets.stopped_required(name)
        return await connector_offsets.alter(self.worker.offsets, self.worker.bootstrap, name, self._kind(name), offsets)

    async def reset_offsets(self, name: str) -> str:
        if self._target(name) is not TargetState.STOPPED:
            raise connector_offsets.stopped_required(name)
        return await connector_offsets.reset(self.worker.offsets, self.worker.bootstrap, name, self._kind(name))
