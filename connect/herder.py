"""What the REST API asks of a worker: Kafka Connect's Herder contract.

A herder owns the connectors' configurations and target states and answers
for them; the standalone herder keeps them in memory (from the properties
files it was started with, plus REST changes), the distributed herder in the
compacted config topic, forwarding writes to the group leader. The REST layer
(``connect/rest.py``) only translates HTTP to these calls and errors to
Kafka's ``{"error_code", "message"}`` bodies.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Optional, Protocol


class State(str, Enum):
    """Connector and task states as Kafka reports them."""

    UNASSIGNED = "UNASSIGNED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    RESTARTING = "RESTARTING"


class TargetState(str, Enum):
    """What the user asked a connector to be (``initial_state`` / pause / resume / stop)."""

    STARTED = "STARTED"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"


class ConnectRestError(Exception):
    """An error with the HTTP status the REST API returns (Kafka's ConnectRestException)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found(name: str) -> ConnectRestError:
    return ConnectRestError(404, f"Connector {name} not found")


class Herder(Protocol):
    """Every REST endpoint maps to one of these; JSON-able dicts in Kafka's shapes come back."""

    worker_id: str

    async def connectors(self) -> list[str]: ...

    async def connector_info(self, name: str) -> dict[str, Any]:
        """``{"name", "config", "tasks": [{"connector", "task"}], "type": "source"|"sink"}``."""

    async def create_connector(self, name: str, config: dict[str, str], initial_state: Optional[TargetState]) -> dict[str, Any]:
        """Create (409 if it exists; 400 with the validation errors if the config is invalid); returns the info."""

    async def put_connector_config(self, name: str, config: dict[str, str]) -> tuple[bool, dict[str, Any]]:
        """Create or update; returns (created, info)."""

    async def delete_connector(self, name: str) -> None: ...

    async def connector_config(self, name: str) -> dict[str, str]: ...

    async def connector_status(self, name: str) -> dict[str, Any]:
        """``{"name", "connector": {"state", "worker_id", "trace"?}, "tasks": [{"id", "state", "worker_id", "trace"?}], "type"}``."""

    async def task_configs(self, name: str) -> list[dict[str, Any]]:
        """``[{"id": {"connector", "task"}, "config": {...}}]``."""

    async def task_status(self, name: str, task_id: int) -> dict[str, Any]: ...

    async def restart_task(self, name: str, task_id: int) -> None: ...

    async def restart_connector(self, name: str, include_tasks: bool, only_failed: bool) -> Optional[dict[str, Any]]:
        """Without tasks: restart the connector and return None (204); with tasks: the status (202)."""

    async def set_target_state(self, name: str, state: TargetState) -> None:
        """pause (PAUSED), resume (STARTED), stop (STOPPED)."""

    async def offsets(self, name: str) -> dict[str, Any]:
        """``{"offsets": [{"partition": {...}, "offset": {...}}]}`` (KIP-875)."""

    async def alter_offsets(self, name: str, offsets: list[dict[str, Any]]) -> str:
        """PATCH; the connector must be STOPPED (else 400). Returns the success message."""

    async def reset_offsets(self, name: str) -> str:
        """DELETE; the connector must be STOPPED (else 400). Returns the success message."""

    def plugins(self, connectors_only: bool = True) -> list[dict[str, str]]:
        """``[{"class", "type", "version"}]``."""

    async def validate(self, plugin: str, config: dict[str, str]) -> dict[str, Any]:
        """Kafka's ConfigInfos JSON for ``PUT /connector-plugins/{plugin}/config/validate``."""
