"""Process wiring for a broker: storage, replica manager, gRPC server, membership, maintenance.

The gRPC server, the replica manager, the controller link and the maintenance
task all run on one asyncio loop; RocksDB writes leave it only through the
store's group-commit writer thread.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client.core import REGISTRY
from prometheus_client.registry import Collector

from caudal.broker.group import GroupConfig
from caudal.broker.group_coordinator import GroupCoordinator
from caudal.broker.group_lag import GroupLag
from caudal.broker.isr_manager import DEFAULT_REPLICA_LAG_TIME_MAX_MS, IsrManager
from caudal.broker.leader_fetch import LeaderFetch, ReplicationService
from caudal.broker.lifecycle import BrokerLifecycle, ControllerLink
from caudal.broker.metrics import register_partition_collector
from caudal.broker.producer_ids import ProducerIdManager
from caudal.broker.replica_fetcher import ReplicaFetcherManager
from caudal.broker.replica_manager import ReplicaManager
from caudal.broker.service import BrokerService, ControllerClient
from caudal.broker.storage import Store
from caudal.common.errors import StorageError
from caudal.common.grpc_options import GRPC_OPTIONS
from caudal.common.tasks import cancel_and_wait
from caudal.v1 import broker_pb2_grpc, replication_pb2_grpc

log = logging.getLogger(__name__)

DEFAULT_MAINTENANCE_INTERVAL_MS = 300_000
"""Kafka's ``log.retention.check.interval.ms``."""
READY_TIMEOUT_S = 60.0


class BrokerServer:
    """One broker node; ``start`` binds, joins the cluster and serves; ``stop`` hands off and closes."""

    def __init__(
        self,
        node_id: int,
        host: str,
        port: int,
        data_dir: Path,
        rack: str = "",
        maintenance_interval_ms: int = DEFAULT_MAINTENANCE_INTERVAL_MS,
        replica_lag_time_max_ms: int = DEFAULT_REPLICA_LAG_TIME_MAX_MS,
        group_config: GroupConfig = GroupConfig(),
        advertised_listener: str | None = None,
    ) -> None:
        self.node_id = node_id
        self.host = host
        self.port = port
        self.rack = rack
        self.data_dir = Path(data_dir)
        self.maintenance_interval_ms = maintenance_interval_ms
        self.replica_lag_time_max_ms = replica_lag_time_max_ms
        self.group_config = group_config
        self.advertised_listener = advertised_listener
        """``host:port`` clients and other brokers are told to use, when it differs from the bound
        address (NAT, proxies, Kubernetes Services) — Kafka's ``advertised.listeners``."""
        self.on_storage_offline: Callable[[], None] = lambda: None
        """Called on the loop when a failed write (disk full, I/O error) takes the store offline.
        Like a Kafka broker whose only log dir fails, the process should then stop: its
        controlled shutdown moves leaderships away, and a restart once the disk is usable
        again brings it back."""
        self.fetchers: ReplicaFetcherManager | None = None
        self.isr: IsrManager | None = None
        self._isr_task: asyncio.Task[None] | None = None
        self.store: Store | None = None
        self.replicas: ReplicaManager | None = None
        self.lifecycle: BrokerLifecycle | None = None
        self._server: grpc.aio.Server | None = None
        self._service: BrokerService | None = None
        self._health = health.aio.HealthServicer()
        self._maintenance: asyncio.Task[None] | None = None
        self._collector: Collector | None = None
        self.groups: GroupCoordinator | None = None
        self._groups_task: asyncio.Task[None] | None = None
        self.group_lag: GroupLag | None = None
        self._lag_task: asyncio.Task[None] | None = None

    async def start(self, controller: ControllerClient, link: ControllerLink) -> int:
        """Open storage, bind the port, register and wait to be unfenced; returns the bound port."""
        loop = asyncio.get_running_loop()
        self.store = Store(self.data_dir / "log", on_offline=lambda exc: loop.call_soon_threadsafe(self._storage_offline, exc))
        self.replicas = ReplicaManager(self.node_id, self.store)
        self._collector = register_partition_collector(self.replicas)
        self.isr = IsrManager(self.replicas, link, self._broker_epoch, self.replica_lag_time_max_ms)
        self.fetchers = ReplicaFetcherManager(self.replicas, self._broker_epoch)
        self.groups = GroupCoordinator(self.replicas, controller.create_topics, self.group_config)
        self.replicas.on_leadership_change = self._leadership_changed
        self._server = grpc.aio.server(options=GRPC_OPTIONS)
        producer_ids = ProducerIdManager(self.node_id, link, self._broker_epoch)
        self._service = BrokerService(self.replicas, controller, producer_ids, self.groups)
        broker_pb2_grpc.add_BrokerServicer_to_server(self._service, self._server)
        replication_pb2_grpc.add_ReplicationServicer_to_server(
            ReplicationService(LeaderFetch(self.replicas, self.isr)), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self.port = self._server.add_insecure_port(f"{self.host}:{self.port}")
        await self._server.start()
        adv_host, adv_port = self.host, self.port
        if self.advertised_listener:
            adv_host, _, port_text = self.advertised_listener.rpartition(":")
            adv_port = int(port_text)
        self.lifecycle = BrokerLifecycle(self.node_id, adv_host, adv_port, self.rack, link, self.replicas)
        await self.lifecycle.start()
        await asyncio.wait_for(self.lifecycle.unfenced.wait(), READY_TIMEOUT_S)
        self._maintenance = asyncio.create_task(self._maintain(), name="log-maintenance")
        self._isr_task = asyncio.create_task(self.isr.run(), name="isr-expiration")
        self._groups_task = asyncio.create_task(self.groups.run(), name="group-coordinator")
        self.group_lag = GroupLag(self.groups)
        REGISTRY.register(self.group_lag)
        self._lag_task = asyncio.create_task(self.group_lag.run(), name="group-lag")
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self._health.set("caudal.v1.Broker", health_pb2.HealthCheckResponse.SERVING)
        return self.port

    def _leadership_changed(self) -> None:
        assert self.fetchers is not None and self.groups is not None
        self.fetchers.update()
        self.groups.on_leadership_change()

    def _storage_offline(self, error: StorageError) -> None:
        log.error("event=storage_offline broker=%d error=%s", self.node_id, error.message)
        self.on_storage_offline()

    @property
    def storage_failed(self) -> bool:
        """Whether a failed write took this broker's store offline."""
        return self.store is not None and self.store.failed is not None

    def _broker_epoch(self) -> int:
        return self.lifecycle.broker_epoch if self.lifecycle is not None else -1

    async def _maintain(self) -> None:
        assert self.replicas is not None
        while True:
            await asyncio.sleep(self.maintenance_interval_ms / 1000)
            self.replicas.run_log_maintenance()

    async def stop(self, grace_s: float = 2.0) -> None:
        """Controlled shutdown: stop following, move leaderships away, stop serving, close storage.

        Following stops first so that leaders, once the controller has taken this broker
        out of their ISRs, do not add it back while it is on its way out (KIP-841).
        """
        if self.fetchers is not None:
            await self.fetchers.stop()
        if self.lifecycle is not None:
            await self.lifecycle.controlled_shutdown()
            await self.lifecycle.stop()
        await cancel_and_wait(self._maintenance, self._isr_task, self._groups_task, self._lag_task)
        if self.group_lag is not None:
            REGISTRY.unregister(self.group_lag)
            await self.group_lag.close()
        if self.groups is not None:
            await self.groups.stop()
        if self.isr is not None:
            await self.isr.stop()
        if self._server is not None:
            await self._health.enter_graceful_shutdown()
            if self._service is not None:
                self._service.sessions.close()
            await self._server.stop(grace_s)
        if self.replicas is not None:
            try:
                await self.replicas.checkpoint()
            except StorageError as exc:  # an offline store keeps what it synced; nothing more can be written
                log.error("event=checkpoint_failed broker=%d error=%s", self.node_id, exc.message)
        if self._collector is not None:
            REGISTRY.unregister(self._collector)
            self._collector = None
        if self.store is not None:
            self.store.close()
        log.info("event=broker_stopped broker=%d", self.node_id)
