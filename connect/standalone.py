"""Standalone mode: one worker, connector configs from files and the REST API, offsets in a file.

``caudal connect standalone worker.properties connector.properties...`` — the
same command line and file formats as Kafka's ``connect-standalone``. The
herder keeps connector configs in memory and runs everything on this worker;
REST calls change them as they would on a distributed cluster.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from caudal.connect import connector_offsets
from caudal.connect.api import SinkConnector
from caudal.connect.config_def import ConfigDef
from caudal.connect.connect_configs import (
    SINK_CONNECTOR_CONFIG,
    SOURCE_CONNECTOR_CONFIG,
    validate_sink_topics,
    validate_source,
)
from caudal.connect.herder import ConnectRestError, State, TargetState, not_found
from caudal.connect.plugins import connector_class, plugins
from caudal.connect.worker import ConnectorRuntime, Worker


def connector_definition(class_name: str) -> tuple[ConfigDef, bool]:
    """The full ConfigDef a connector is validated against (common keys + its own), and whether it is a sink."""
    cls = connector_class(class_name)
    sink = issubclass(cls, SinkConnector)
    return (SINK_CONNECTOR_CONFIG if sink else SOURCE_CONNECTOR_CONFIG).merge(cls.CONFIG_DEF), sink


def validation(class_name: str, config: dict[str, str]) -> dict[str, Any]:
    """Kafka's ConfigInfos for ``config``, including the sink-topics and source-DLQ rules."""
    definition, sink = connector_definition(class_name)
    infos = definition.validate_response(class_name, config)
    extra = validate_sink_topics(config) if sink else validate_source(config)
    if extra:
        key = next(c for c in infos["configs"] if c["value"]["name"] == ("topics" if sink else "name"))
        key["value"]["errors"].extend(extra)
        infos["error_count"] += len(extra)
    return infos


def check_valid(config: dict[str, str]) -> None:
    """400 with every validation error, in Kafka's wording, when ``config`` is not valid."""
    if not config.get("connector.class"):
        raise ConnectRestError(400, "Connector config is missing connector.class")
    try:
        infos = validation(config["connector.class"], config)
    except ConnectRestError:
        raise
    except Exception as exc:
        raise ConnectRestError(400, str(exc)) from None
    messages = [f"{c['value']['name']}: {e}" for c in infos["configs"] for e in c["value"]["errors"]]
    if messages:
        raise ConnectRestError(
            400, f"Connector configuration is invalid and contains the following {len(messages)} error(s):\n"
            + "\n".join(messages) + "\nYou can also find the above list of errors at the endpoint "
            "`/connector-plugins/{connectorType}/config/validate`",
        )


class PluginQueries:
    """The plugin endpoints, answered the same by every kind of herder."""

    def plugins(self, connectors_only: bool = True) -> list[dict[str, str]]:
        return plugins()

    async def validate(self, plugin: str, config: dict[str, str]) -> dict[str, Any]:
        try:
            return validation(plugin, config)
        except Exception as exc:
            raise ConnectRestError(400, str(exc)) from None


class StandaloneHerder(PluginQueries):
    """The Herder of a one-worker cluster (see ``connect/herder.py`` for the contract)."""

    def __init__(self, worker: Worker, cluster_id: str = "") -> None:
        self.worker = worker
        self.worker_id = worker.worker_id
        self.cluster_id = cluster_id
        self.url = ""
        self.configs: dict[str, dict[str, str]] = {}
        self.targets: dict[str, TargetState] = {}
        self._lock = asyncio.Lock()

    def _runtime(self, name: str) -> ConnectorRuntime:
        runtime = self.worker.connectors.get(name)
        if name not in self.configs or runtime is None:
            raise not_found(name)
        return runtime

    async def _start(self, name: str) -> None:
        config, target = self.configs[name], self.targets[name]
        runtime = await asyncio.to_thread(self.worker.start_connector, name, config, target)
        if runtime.state in (State.RUNNING, State.PAUSED):
            for task_id, task_config in enumerate(runtime.task_configs):
                await asyncio.to_thread(self.worker.start_task, name, task_id, task_config, target)

    async def _stop(self, name: str) -> None:
        await asyncio.to_thread(self.worker.stop_connector, name)

    # ---- connectors --------------------------------------------------------------------

    async def connectors(self) -> list[str]:
        return sorted(self.configs)

    async def connector_info(self, name: str) -> dict[str, Any]:
        runtime = self._runtime(name)
        return {
            "name": name, "config": dict(self.configs[name]), "type": runtime.kind,
            "tasks": [{"connector": name, "task": i} for i in range(len(runtime.task_configs))],
        }

    async def create_connector(self, name: str, config: dict[str, str], initial_state: Optional[TargetState]) -> dict[str, Any]:
        async with self._lock:
            if name in self.configs:
                raise ConnectRestError(409, f"Connector {name} already exists")
            config = {**config, "name": name}
            check_valid(config)
            self.configs[name] = config
            self.targets[name] = initial_state or TargetState.STARTED
            await self._start(name)
        return await self.connector_info(name)

    async def put_connector_config(self, name: str, config: dict[str, str]) -> tuple[bool, dict[str, Any]]:
        async with self._lock:
            config = {**config, "name": name}
            check_valid(config)
            created = name not in self.configs
            if not created:
                await self._stop(name)
            self.configs[name] = config
            self.targets.setdefault(name, TargetState.STARTED)
            await self._start(name)
        return created, await self.connector_info(name)

    async def delete_connector(self, name: str) -> None:
        async with self._lock:
            self._runtime(name)
            await self._stop(name)
            del self.configs[name], self.targets[name]

    async def connector_config(self, name: str) -> dict[str, str]:
        self._runtime(name)
        return dict(self.configs[name])

    async def connector_status(self, name: str) -> dict[str, Any]:
        runtime = self._runtime(name)
        tasks = [self.worker.task_status(name, i) for i in range(len(runtime.task_configs))]
        return {
            "name": name, "connector": self.worker.connector_status(name), "type": runtime.kind,
            "tasks": [t for t in tasks if t is not None],
        }

    async def task_configs(self, name: str) -> list[dict[str, Any]]:
        runtime = self._runtime(name)
        return [{"id": {"connector": name, "task": i}, "config": tc} for i, tc in enumerate(runtime.task_configs)]

    async def task_status(self, name: str, task_id: int) -> dict[str, Any]:
        self._runtime(name)
        status = self.worker.task_status(name, task_id)
        if status is None:
            raise ConnectRestError(404, f"Task {name}-{task_id} not found")
        return status

    async def restart_task(self, name: str, task_id: int) -> None:
        async with self._lock:
            runtime = self._runtime(name)
            if not 0 <= task_id < len(runtime.task_configs):
                raise ConnectRestError(404, f"Task {name}-{task_id} not found")
            await asyncio.to_thread(self._restart_task, name, task_id, runtime)

    def _restart_task(self, name: str, task_id: int, runtime: ConnectorRuntime) -> None:
        self.worker.stop_task(name, task_id)
        self.worker.start_task(name, task_id, runtime.task_configs[task_id], self.targets[name])

    async def restart_connector(self, name: str, include_tasks: bool, only_failed: bool) -> Optional[dict[str, Any]]:
        async with self._lock:
            runtime = self._runtime(name)
            if not include_tasks:
                if not only_failed or runtime.state is State.FAILED:
                    await self._stop(name)
                    await self._start(name)
                return None
            if only_failed:
                failed = [i for i in range(len(runtime.task_configs))
                          if (self.worker.task_status(name, i) or {}).get("state") == State.FAILED.value]
                if runtime.state is State.FAILED:
                    await self._stop(name)
                    await self._start(name)
                else:
                    for task_id in failed:
                        await asyncio.to_thread(self._restart_task, name, task_id, runtime)
            else:
                await self._stop(name)
                await self._start(name)
        return await self.connector_status(name)

    async def set_target_state(self, name: str, state: TargetState) -> None:
        async with self._lock:
            self._runtime(name)
            previous, self.targets[name] = self.targets[name], state
            if state is TargetState.STOPPED or previous is TargetState.STOPPED:
                await self._stop(name)
                await self._start(name)
            else:
                await asyncio.to_thread(self.worker.set_paused, name, state is TargetState.PAUSED)

    # ---- offsets (KIP-875) ------------------------------------------------------------

    async def offsets(self, name: str) -> dict[str, Any]:
        runtime = self._runtime(name)
        return await connector_offsets.read(self.worker.offsets, self.worker.bootstrap, name, runtime.kind)

    def _require_stopped(self, name: str) -> ConnectorRuntime:
        runtime = self._runtime(name)
        if self.targets[name] is not TargetState.STOPPED:
            raise connector_offsets.stopped_required(name)
        return runtime

    async def alter_offsets(self, name: str, offsets: list[dict[str, Any]]) -> str:
        async with self._lock:
            runtime = self._require_stopped(name)
            return await connector_offsets.alter(self.worker.offsets, self.worker.bootstrap, name, runtime.kind, offsets)

    async def reset_offsets(self, name: str) -> str:
        async with self._lock:
            runtime = self._require_stopped(name)
            return await connector_offsets.reset(self.worker.offsets, self.worker.bootstrap, name, runtime.kind)

    async def stop(self) -> None:
        await asyncio.to_thread(self.worker.stop)
