"""A Connect worker: runs connectors and their tasks, and reports their state.

The worker knows nothing about where configurations come from (that is the
herder's job, standalone or distributed); given a connector's config it
instantiates the connector, starts it, asks it for task configs and runs each
task in a :class:`~caudal.connect.worker_task.WorkerTask` with the converters,
transforms and error policy the config names (connector-level
``key.converter``/``value.converter`` override the worker's, with their
``key.converter.*`` settings).
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Optional

from caudal.client import AdminClient, NewTopic, Producer
from caudal.common.errors import TopicAlreadyExistsError
from caudal.connect.api import ConnectError, Connector, SinkConnector
from caudal.connect.config_def import originals_with_prefix
from caudal.connect.connect_configs import bootstrap_servers
from caudal.connect.converters import Converter, converter_for
from caudal.connect.error_handling import ErrorHandler, ErrorPolicy
from caudal.connect.herder import State, TargetState
from caudal.connect.offset_store import OffsetStore
from caudal.connect.plugins import connector_class
from caudal.connect.transforms import TransformationChain
from caudal.connect.worker_task import WorkerSinkTask, WorkerSourceTask, WorkerTask

log = logging.getLogger(__name__)

TASK_CLASS_KEY = "task.class"


@dataclass
class ConnectorRuntime:
    """A started connector: its instance, config, state and (when FAILED) trace."""

    name: str
    config: dict[str, str]
    instance: Optional[Connector] = None
    state: State = State.UNASSIGNED
    trace: Optional[str] = None
    target: TargetState = TargetState.STARTED
    task_configs: list[dict[str, str]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "sink" if isinstance(self.instance, SinkConnector) else "source"


class Worker:
    """Connectors and tasks of one worker process; thread-safe for the herder's calls."""

    def __init__(self, worker_id: str, config: dict[str, Any], offsets: OffsetStore) -> None:
        self.worker_id = worker_id
        self.config = config
        self.offsets = offsets
        self.connectors: dict[str, ConnectorRuntime] = {}
        self.tasks: dict[tuple[str, int], WorkerTask] = {}
        self._lock = threading.RLock()
        self._dlq_producer: Optional[Producer] = None
        self._known_topics: set[str] = set()
        self._shared_lock = threading.Lock()
        """Guards what task threads share (the DLQ producer, known topics); separate from ``_lock``,
        which the herder may hold while it waits for tasks."""

    @property
    def bootstrap(self) -> str:
        return bootstrap_servers(self.config)

    # ---- connectors ------------------------------------------------------------------

    def start_connector(self, name: str, config: dict[str, str], target: TargetState) -> ConnectorRuntime:
        """Instantiate and start ``name``; a connector that fails to start is FAILED with its trace."""
        with self._lock:
            runtime = ConnectorRuntime(name, dict(config), target=target)
            self.connectors[name] = runtime
            try:
                runtime.instance = connector_class(config["connector.class"])()
                if target is not TargetState.STOPPED:
                    runtime.instance.start(dict(config))
                    max_tasks = int(config.get("tasks.max", "1"))
                    runtime.task_configs = [
                        {**config, **tc, TASK_CLASS_KEY: runtime.instance.task_class().__qualname__}
                        for tc in runtime.instance.task_configs(max_tasks)[:max_tasks]
                    ]
                runtime.state = {TargetState.STARTED: State.RUNNING, TargetState.PAUSED: State.PAUSED,
                                 TargetState.STOPPED: State.STOPPED}[target]
            except Exception as exc:
                runtime.state = State.FAILED
                runtime.trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                log.error("event=connector_failed connector=%s error=%r", name, str(exc))
            log.info("event=connector_started connector=%s state=%s tasks=%d", name, runtime.state.value, len(runtime.task_configs))
            return runtime

    def stop_connector(self, name: str, keep_tasks: bool = False) -> None:
        """Stop the tasks, then the connector. With ``keep_tasks`` (a distributed worker whose connector
        moves elsewhere or restarts while its tasks stay here) the tasks keep running and a stopped
        runtime stays behind, so later tasks of the connector can still be started on this worker."""
        if not keep_tasks:
            self.stop_tasks(name)
        with self._lock:
            runtime = self.connectors.pop(name, None)
            if keep_tasks and runtime is not None and runtime.instance is not None:
                self.connectors[name] = ConnectorRuntime(name, runtime.config, runtime.instance, State.STOPPED,
                                                         target=TargetState.STOPPED)
        if runtime is not None and runtime.instance is not None and runtime.state not in (State.FAILED, State.STOPPED):
            try:
                runtime.instance.stop()
            except Exception:
                log.exception("event=connector_stop_failed connector=%s", name)

    # ---- tasks -----------------------------------------------------------------------

    def start_task(self, name: str, task_id: int, task_config: dict[str, str], target: TargetState) -> WorkerTask:
        with self._lock:
            runtime = self.connectors[name]
            assert runtime.instance is not None
            task = runtime.instance.task_class()()
            connector_config = runtime.config
            policy = ErrorPolicy.from_config(connector_config)
            errors = ErrorHandler(policy, name, task_id)
            common = dict(
                key_converter=self._converter(connector_config, "key.converter", True),
                value_converter=self._converter(connector_config, "value.converter", False),
                transforms=TransformationChain.from_config(connector_config), errors=errors,
            )
            if runtime.kind == "sink":
                worker_task: WorkerTask = WorkerSinkTask(name, task_id, task, task_config, self.config, dlq_producer=self._dlq, **common)
                errors.dlq_send = worker_task.send_to_dlq  # type: ignore[attr-defined]
                if policy.dlq_topic:
                    self.ensure_topic(policy.dlq_topic, int(connector_config.get("errors.deadletterqueue.topic.replication.factor", "3")))
            else:
                worker_task = WorkerSourceTask(name, task_id, task, task_config, self.config, offsets=self.offsets,
                                               ensure_topic=self.ensure_topic, **common)
            self.tasks[(name, task_id)] = worker_task
            worker_task.start(paused=target is TargetState.PAUSED)
            log.info("event=task_started connector=%s task=%d", name, task_id)
            return worker_task

    def stop_task(self, name: str, task_id: int) -> None:
        """Stop one task (to restart it, or because it moved to another worker)."""
        timeout_s = int(self.config.get("task.shutdown.graceful.timeout.ms", 5000)) / 1000
        with self._lock:
            task = self.tasks.pop((name, task_id), None)
        if task is not None:
            task.stop(timeout_s + 30)
            log.info("event=task_stopped connector=%s task=%d", name, task_id)

    def stop_tasks(self, name: str) -> None:
        timeout_s = int(self.config.get("task.shutdown.graceful.timeout.ms", 5000)) / 1000
        with self._lock:
            tasks = [(key, t) for key, t in self.tasks.items() if key[0] == name]
            for key, _ in tasks:
                del self.tasks[key]
        for _, task in tasks:
            task.stopping.set()
        for key, task in tasks:
            task.stop(timeout_s + 30)
            log.info("event=task_stopped connector=%s task=%d", *key)

    def set_paused(self, name: str, paused: bool) -> None:
        with self._lock:
            runtime = self.connectors.get(name)
            if runtime is not None and runtime.state in (State.RUNNING, State.PAUSED):
                runtime.state = State.PAUSED if paused else State.RUNNING
                runtime.target = TargetState.PAUSED if paused else TargetState.STARTED
            for (connector, _), task in self.tasks.items():
                if connector == name:
                    (task.paused.set if paused else task.paused.clear)()

    # ---- plumbing --------------------------------------------------------------------

    def _converter(self, connector_config: dict[str, str], key: str, is_key: bool) -> Converter:
        """The connector's own converter if it names one, else the worker's, each with its sub-config."""
        source = connector_config if connector_config.get(key) else self.config
        class_name = source.get(key)
        if not class_name:
            raise ConnectError(f"Missing required configuration \"{key}\" which has no default value.")
        return converter_for(str(class_name), originals_with_prefix(source, f"{key}."), is_key)

    def _dlq(self) -> Producer:
        with self._shared_lock:
            if self._dlq_producer is None:
                self._dlq_producer = Producer(bootstrap_servers=self.bootstrap, acks="all", client_id=f"{self.worker_id}-dlq")
            return self._dlq_producer

    def ensure_topic(self, topic: str, replication_factor: int = -1) -> None:
        """Create a topic a connector writes to (a source's topic, a dead letter queue) on first use,
        as Kafka's brokers auto-create them; an explicit factor is capped at the live brokers."""
        with self._shared_lock:
            if topic in self._known_topics:
                return
        with AdminClient(bootstrap_servers=self.bootstrap) as admin:
            if topic in admin.list_topics():
                with self._shared_lock:
                    self._known_topics.add(topic)
                return
            live = len(admin.describe_cluster().brokers)
            factor = min(replication_factor, live) if replication_factor > 0 else -1
            if 0 < factor < replication_factor:
                log.warning("event=dlq_replication_capped topic=%s asked=%d brokers=%d", topic, replication_factor, live)
            try:
                admin.create_topics([NewTopic(topic, -1, factor)])[topic].result(30)
                log.info("event=topic_created topic=%s replication_factor=%d", topic, factor)
            except TopicAlreadyExistsError:
                pass
        with self._shared_lock:
            self._known_topics.add(topic)

    def stop(self) -> None:
        for name in list(self.connectors):
            self.stop_connector(name)
        if self._dlq_producer is not None:
            self._dlq_producer.close()

    # ---- status ----------------------------------------------------------------------

    def connector_status(self, name: str) -> dict[str, Any]:
        runtime = self.connectors[name]
        out: dict[str, Any] = {"state": runtime.state.value, "worker_id": self.worker_id}
        if runtime.trace:
            out["trace"] = runtime.trace
        return out

    def task_status(self, name: str, task_id: int) -> Optional[dict[str, Any]]:
        task = self.tasks.get((name, task_id))
        return task.status(self.worker_id) if task is not None else None
