"""Running a Connect worker: parse its properties, serve REST, run the herder until stopped."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any, Awaitable, Callable

from caudal.common import event_loop, logs
from caudal.common.server_process import tune_garbage_collector
from caudal.common.tasks import stop_on_signals
from caudal.connect.config_def import ConfigException
from caudal.connect.connect_configs import (
    DISTRIBUTED_CONFIG,
    STANDALONE_CONFIG,
    bootstrap_servers,
)
from caudal.connect.distributed import DistributedHerder
from caudal.connect.herder import ConnectRestError
from caudal.connect.metrics import register_worker_metrics
from caudal.connect.offset_store import FileOffsetStore
from caudal.connect.properties import load_properties
from caudal.connect.rest import RestServer
from caudal.connect.standalone import StandaloneHerder
from caudal.connect.topic_log import TopicLog
from caudal.connect.topic_offset_store import TopicOffsetStore
from caudal.connect.worker import Worker
from prometheus_client import start_http_server

log = logging.getLogger("caudal.connect")


def run(args: argparse.Namespace) -> int:
    logs.configure("connect", args.log_level)
    tune_garbage_collector()
    standalone = args.mode == "standalone"
    try:
        props = load_properties(args.worker_properties)
        config = (STANDALONE_CONFIG if standalone else DISTRIBUTED_CONFIG).parse(props)
        config.update({k: v for k, v in props.items() if k not in config})
        connectors = [load_properties(path) for path in args.connector_properties] if standalone else []
    except (OSError, ValueError, ConfigException) as exc:
        log.error("event=bad_worker_config error=%r", str(exc))
        return 1
    return event_loop.run(_run_standalone(config, connectors) if standalone else _run_distributed(config))


async def _run(herder: Any, config: dict[str, Any], mode: str, begin: Callable[[], Awaitable[int]]) -> int:
    """Serve REST (its address is the worker id), export metrics, ``begin`` the mode's work, run until
    SIGTERM/SIGINT, then stop the herder (and its connectors) before the REST listener."""
    stop = stop_on_signals()
    rest = RestServer(herder, list(config["listeners"]))
    try:
        urls = await rest.start()
        herder.worker.worker_id = herder.worker_id = urls[0].split("://", 1)[1]
        herder.url = urls[0]
        if int(config.get("metrics.port", -1)) >= 0:
            register_worker_metrics(herder)
            start_http_server(int(config["metrics.port"]))
        log.info("event=listening listen=%s mode=%s", urls[0], mode)
        status = await begin()
        if status == 0:
            await stop.wait()
            log.info("event=shutdown_requested")
        return status
    finally:
        await herder.stop()
        await rest.stop()


async def _run_distributed(config: dict[str, Any]) -> int:
    bootstrap = bootstrap_servers(config)
    offsets = TopicOffsetStore(TopicLog(bootstrap, str(config["offset.storage.topic"]), int(config["offset.storage.partitions"]),
                                        int(config["offset.storage.replication.factor"])))
    configs = TopicLog(bootstrap, str(config["config.storage.topic"]), 1, int(config["config.storage.replication.factor"]))
    statuses = TopicLog(bootstrap, str(config["status.storage.topic"]), int(config["status.storage.partitions"]),
                        int(config["status.storage.replication.factor"]))
    worker = Worker("", config, offsets)
    herder = DistributedHerder(worker, config, configs, statuses)
    configs.on_change = herder.on_config_change
    topic_logs = (offsets.log, configs, statuses)

    async def begin() -> int:
        for topic_log in topic_logs:
            await asyncio.to_thread(topic_log.start)
        await herder.start(herder.url)
        log.info("event=ready listen=%s mode=distributed group=%s", herder.url, config["group.id"])
        return 0

    try:
        return await _run(herder, config, "distributed", begin)
    finally:
        for topic_log in topic_logs:
            await asyncio.to_thread(topic_log.stop)


async def _run_standalone(config: dict[str, Any], connectors: list[dict[str, str]]) -> int:
    herder = StandaloneHerder(Worker("", config, FileOffsetStore(config["offset.storage.file.filename"])))

    async def begin() -> int:
        for connector in connectors:
            name = connector.get("name", "")
            try:
                await herder.create_connector(name, connector, None)
            except ConnectRestError as exc:
                log.error("event=connector_rejected connector=%s error=%r", name, exc.message)
                return 1
        log.info("event=ready listen=%s mode=standalone connectors=%d", herder.url, len(connectors))
        return 0

    return await _run(herder, config, "standalone", begin)
