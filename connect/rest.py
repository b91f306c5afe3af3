"""Kafka Connect's REST API on aiohttp, so existing curl commands and tooling work unchanged.

Paths, methods, status codes and JSON bodies are Kafka's (its RootResource,
ConnectorsResource and ConnectorPluginsResource); each endpoint is a thin
translation to one :class:`~caudal.connect.herder.Herder` call, because the
herder, not the HTTP layer, owns connector state. Every failure leaves as
Kafka's ``{"error_code", "message"}`` body -- the herder's ConnectRestError,
bad client input, unknown routes and wrong methods, and our own bugs (500,
logged) -- so clients that parse errors keep working and nothing a client
sends can take the worker down. ``connect/openapi.yaml`` documents this same
surface; the unit tests hold the two together.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import socket
from typing import Any, Awaitable, Callable, Optional
from urllib.parse import quote, urlsplit

from aiohttp import hdrs, web
from caudal.connect.herder import ConnectRestError, Herder, TargetState

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# KIP-980: the initial_state a create request may carry, and the target state it asks for.
_INITIAL_STATES = {"RUNNING": TargetState.STARTED, "PAUSED": TargetState.PAUSED, "STOPPED": TargetState.STOPPED}


def _reply(status: int, body: Any = None, headers: Optional[dict[str, str]] = None) -> web.Response:
    """The one place an answer becomes a response: JSON, or no content when there is no body (204)."""
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.json_response(body, status=status, headers=headers)


def _error(status: int, message: str, headers: Optional[dict[str, str]] = None) -> web.Response:
    return _reply(status, {"error_code": status, "message": message}, headers)


def _bad_request(message: str) -> ConnectRestError:
    return ConnectRestError(400, message)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into Kafka's error body; aiohttp's own 404/405/413 included."""
    try:
        return await handler(request)
    except ConnectRestError as err:
        return _error(err.status, err.message)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        allow = {hdrs.ALLOW: err.headers[hdrs.ALLOW]} if hdrs.ALLOW in err.headers else None
        return _error(err.status, f"HTTP {err.status} {err.reason}", allow)
    except Exception as err:
        log.exception("event=rest_error method=%s path=%s error=%r", request.method, request.path, err)
        return _error(500, str(err) or type(err).__name__)


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except (ValueError, RecursionError) as err:
        raise _bad_request(f"Request body is not valid JSON: {err}") from err


def _string_map(value: Any, what: str) -> dict[str, str]:
    """A JSON object of config values. Scalars become strings, as Kafka's Jackson
    mapping to ``Map<String, String>`` does, so ``"tasks.max": 1`` keeps working."""
    if not isinstance(value, dict):
        raise _bad_request(f"{what} must be a JSON object")
    config = {}
    for key, item in value.items():
        if isinstance(item, bool):
            config[key] = "true" if item else "false"
        elif isinstance(item, (str, int, float)):
            config[key] = str(item)
        else:
            raise _bad_request(f"{what}: the value of {key!r} must be a string, number or boolean")
    return config


def _with_name(name: str, config: dict[str, str]) -> dict[str, str]:
    """Kafka's checkAndPutConnectorConfigName: ``config["name"]`` defaults to the name and must agree with it."""
    included = config.setdefault("name", name)
    if included != name:
        raise _bad_request(f"Connector name configuration ({included}) doesn't match connector name in the URL ({name})")
    return config


def _initial_state(value: Any) -> Optional[TargetState]:
    if value is None:
        return None
    state = _INITIAL_STATES.get(value.upper()) if isinstance(value, str) else None
    if state is None:
        raise _bad_request(f"initial_state must be one of {', '.join(_INITIAL_STATES)}, got {value!r}")
    return state


def _flag(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise _bad_request(f"Query parameter {name} must be true or false, got {raw!r}")
    return raw.lower() == "true"


def _plugin_stem(plugin: str) -> str:
    """Kafka's normalizedPluginName: ``FileStreamSourceConnector`` and ``FileStreamSource`` are one plugin."""
    suffix = "Connector"
    return plugin[: -len(suffix)] if plugin.endswith(suffix) and len(plugin) > len(suffix) else plugin


def _version() -> str:
    try:
        return importlib.metadata.version("caudal")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _herder_call(call: Callable[..., Awaitable[Any]], status: int = 200) -> Handler:
    """An endpoint that is one herder call on the path's connector (and task), answered with ``status``."""

    async def handler(request: web.Request) -> web.Response:
        args: list[Any] = [request.match_info["connector"]]
        if "task" in request.match_info:
            args.append(int(request.match_info["task"]))
        return _reply(status, await call(*args))

    return handler


def _connector_url(request: web.Request, name: str) -> str:
    return f"{request.url.origin()}/connectors/{quote(name, safe='')}"


class _Endpoints:
    """The endpoints that parse a body or query, or shape the herder's answer, before :func:`_reply`."""

    def __init__(self, herder: Herder) -> None:
        self.herder = herder
        self.version = _version()

    async def server_info(self, request: web.Request) -> web.Response:
        cluster_id = getattr(self.herder, "cluster_id", None) or ""
        return _reply(200, {"version": self.version, "commit": "", "kafka_cluster_id": cluster_id})

    async def list_connectors(self, request: web.Request) -> web.Response:
        names = await self.herder.connectors()
        if "expand" not in request.query:
            return _reply(200, names)
        lookups = {"status": self.herder.connector_status, "info": self.herder.connector_info}
        kinds = [kind for kind in request.query.getall("expand") if kind in lookups]  # Kafka ignores unknown ones
        expanded = {}
        for name in names:
            try:
                expanded[name] = {kind: await lookups[kind](name) for kind in kinds}
            except ConnectRestError as err:
                if err.status != 404:
                    raise
                # Deleted since it was listed: Kafka leaves it out.
        return _reply(200, expanded)

    async def create_connector(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise _bad_request("Request body must be a JSON object with name and config")
        name = body.get("name")
        if not isinstance(name, (str, type(None))):
            raise _bad_request("Connector name must be a string")
        name = (name or "").strip()
        if not name:
            raise _bad_request("Connector name must be provided")
        config = _with_name(name, _string_map(body.get("config"), "Connector configuration"))
        info = await self.herder.create_connector(name, config, _initial_state(body.get("initial_state")))
        return _reply(201, info, {hdrs.LOCATION: _connector_url(request, name)})

    async def put_connector_config(self, request: web.Request) -> web.Response:
        name = request.match_info["connector"]
        config = _with_name(name, _string_map(await _json_body(request), "Connector configuration"))
        created, info = await self.herder.put_connector_config(name, config)
        if created:
            return _reply(201, info, {hdrs.LOCATION: _connector_url(request, name)})
        return _reply(200, info)

    async def restart_connector(self, request: web.Request) -> web.Response:
        include_tasks = _flag(request, "includeTasks", False)
        only_failed = _flag(request, "onlyFailed", False)
        status = await self.herder.restart_connector(request.match_info["connector"], include_tasks, only_failed)
        return _reply(204) if status is None else _reply(202, status)

    async def alter_offsets(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        offsets = body.get("offsets") if isinstance(body, dict) else None
        if not isinstance(offsets, list) or not offsets:
            raise _bad_request("Partitions / offsets need to be provided for an alter offsets request")
        for entry in offsets:
            well_formed = (
                isinstance(entry, dict)
                and isinstance(entry.get("partition"), dict)
                and isinstance(entry.get("offset"), (dict, type(None)))
            )
            if not well_formed:
                raise _bad_request('Each offset must be {"partition": {...}, "offset": {...} or null}')
        message = await self.herder.alter_offsets(request.match_info["connector"], offsets)
        return _reply(200, {"message": message})

    async def reset_offsets(self, name: str) -> dict[str, str]:
        """The herder's reset, answered as Kafka's ``{"message"}`` body (routed through :func:`_herder_call`)."""
        return {"message": await self.herder.reset_offsets(name)}

    async def plugins(self, request: web.Request) -> web.Response:
        return _reply(200, self.herder.plugins(_flag(request, "connectorsOnly", True)))

    async def validate(self, request: web.Request) -> web.Response:
        plugin = request.match_info["pluginName"]
        config = _string_map(await _json_body(request), "Connector configuration")
        included = config.get("connector.class")
        if included is not None and not _plugin_stem(included).endswith(_plugin_stem(plugin)):
            raise _bad_request(f"Included connector type {included} does not match request type {plugin}")
        return _reply(200, await self.herder.validate(plugin, config))


def build_app(herder: Herder) -> web.Application:
    """The aiohttp application serving Kafka Connect's REST API for ``herder``."""
    api = _Endpoints(herder)

    def target(state: TargetState, status: int) -> Handler:
        return _herder_call(lambda name: herder.set_target_state(name, state), status)

    connector = "/connectors/{connector}"
    task = connector + r"/tasks/{task:-?\d+}"
    routes: dict[str, dict[str, Handler]] = {
        "/": {"GET": api.server_info},
        "/connectors": {"GET": api.list_connectors, "POST": api.create_connector},
        connector: {"GET": _herder_call(herder.connector_info), "DELETE": _herder_call(herder.delete_connector, 204)},
        connector + "/config": {"GET": _herder_call(herder.connector_config), "PUT": api.put_connector_config},
        connector + "/status": {"GET": _herder_call(herder.connector_status)},
        connector + "/restart": {"POST": api.restart_connector},
        connector + "/pause": {"PUT": target(TargetState.PAUSED, 202)},
        connector + "/resume": {"PUT": target(TargetState.STARTED, 202)},
        connector + "/stop": {"PUT": target(TargetState.STOPPED, 204)},
        connector + "/tasks": {"GET": _herder_call(herder.task_configs)},
        task + "/status": {"GET": _herder_call(herder.task_status)},
        task + "/restart": {"POST": _herder_call(herder.restart_task, 204)},
        connector + "/offsets": {
            "GET": _herder_call(herder.offsets),
            "PATCH": api.alter_offsets,
            "DELETE": _herder_call(api.reset_offsets),
        },
        "/connector-plugins": {"GET": api.plugins},
        "/connector-plugins/{pluginName}/config/validate": {"PUT": api.validate},
    }
    app = web.Application(middlewares=[_errors])
    for path, methods in routes.items():
        # Jersey matches a path with or without a trailing slash; so do we (without a redirect).
        for variant in dict.fromkeys([path, path.rstrip("/") + "/"]):
            resource = app.router.add_resource(variant)
            for method, handler in methods.items():
                resource.add_route(method, handler)
    return app


def _parse_listener(listener: str) -> tuple[str, int]:
    """Kafka's ``listeners`` entry ``http://host:port`` as a bind address; an empty host is every interface."""
    parts = urlsplit(listener.strip())
    if parts.scheme.lower() != "http":
        raise ValueError(f"listener {listener!r}: only http:// listeners are supported")
    try:
        port = parts.port
    except ValueError as err:
        raise ValueError(f"listener {listener!r}: invalid port") from err
    if port is None:
        raise ValueError(f"listener {listener!r}: a port is required")
    return parts.hostname or "", port


def _bind(host: str, port: int) -> socket.socket:
    # One socket per listener, so port 0 yields one port, not one per address family.
    return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class RestServer:
    """Serves the REST API for a herder on Kafka-style ``listeners`` until stopped."""

    def __init__(self, herder: Herder, listeners: list[str]) -> None:
        if not listeners:
            raise ValueError("at least one listener is required")
        self._herder = herder
        self._addresses = [_parse_listener(listener) for listener in listeners]
        self._runner: Optional[web.AppRunner] = None

    async def start(self) -> list[str]:
        """Bind every listener and serve; returns the bound ``http://host:port`` URLs, in listener order."""
        if self._runner is not None:
            raise RuntimeError("RestServer already started")
        sockets: list[socket.socket] = []
        try:
            for host, port in self._addresses:
                sockets.append(_bind(host, port))
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        runner = web.AppRunner(build_app(self._herder))
        await runner.setup()
        try:
            for sock in sockets:
                await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            for sock in sockets:
                sock.close()
            raise
        self._runner = runner
        urls = [_url(sock) for sock in sockets]
        log.info("event=rest_listening urls=%s", ",".join(urls))
        return urls

    async def stop(self) -> None:
        """Stop listening and finish in-flight requests; a no-op when not started."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("event=rest_stopped")
