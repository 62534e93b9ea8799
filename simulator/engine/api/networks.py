"""``/networks``: list, inspect, create, remove, prune, connect and disconnect, over the
engine's network manager (simulator.network), which publishes Docker's network events."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from simulator.engine.api import Filters, parse_time_filter
from simulator.engine.server import (
    BadRequest,
    NotFound,
    Request,
    Response,
    Router,
    ServerError,
    empty_response,
    json_response,
)
from simulator.network import NetworkManager

if TYPE_CHECKING:
    from simulator.engine.daemon import Engine

_LIST_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")
_PRUNE_FILTERS = ("until", "label", "label!")


def add_routes(router: Router[Engine]) -> None:
    router.get("/networks", list_networks)
    router.get("/networks/", list_networks)
    router.post("/networks/create", create_network)
    router.post("/networks/prune", prune_networks)
    router.post("/networks/{id:.*}/connect", connect_network)
    router.post("/networks/{id:.*}/disconnect", disconnect_network)
    router.get("/networks/{id:.+}", inspect_network)
    router.delete("/networks/{id:.*}", remove_network)


async def _manager(engine: Engine) -> NetworkManager:
    """The engine's network manager, which it makes just after it starts listening: a
    request in the first instants waits for it."""
    ready = getattr(engine, "networks_ready", None)
    if ready is not None:
        await asyncio.shield(ready)
    manager = getattr(engine, "networks", None)
    if not isinstance(manager, NetworkManager):
        raise ServerError("networking is off: this engine runs in the host's own network namespace")
    return manager


async def list_networks(engine: Engine, request: Request) -> Response:
    filters = Filters.of(request)
    filters.validate(_LIST_FILTERS)
    chosen = {key: filters.get(key) for key in _LIST_FILTERS if filters.contains(key)}
    manager = await _manager(engine)
    networks = await asyncio.to_thread(manager.list, chosen)
    return json_response([n.to_api() for n in networks])


async def inspect_network(engine: Engine, request: Request) -> Response:
    verbose = request.arg("verbose")
    if verbose and verbose.lower() not in ("1", "t", "true", "0", "f", "false"):
        raise BadRequest(
            f'invalid value for verbose: {verbose}: strconv.ParseBool: parsing "{verbose}": '
            "invalid syntax"
        )
    reference = request.params["id"]
    scope = request.arg("scope")
    if scope and scope != "local":
        raise NotFound(f"network {reference} not found")
    manager = await _manager(engine)
    body = await asyncio.to_thread(manager.inspect, reference)
    return json_response(body)


async def create_network(engine: Engine, request: Request) -> Response:
    body = _object(await request.json(), "CreateRequest")
    ipam = body.get("IPAM")
    if ipam is not None and not isinstance(ipam, dict):
        raise BadRequest(_type_error(ipam, "CreateRequest.IPAM", "network.IPAM"))
    enable_ipv4 = _optional_bool(body, "EnableIPv4") if request.version_at_least("1.48") else None
    config_from = body.get("ConfigFrom") or {}
    manager = await _manager(engine)
    network = await asyncio.to_thread(
        manager.create,
        _text(body, "Name"),
        _text(body, "Driver"),
        options=_mapping(body, "Options"),
        labels=_mapping(body, "Labels"),
        ipam=ipam,
        internal=_flag(body, "Internal"),
        attachable=_flag(body, "Attachable"),
        ingress=_flag(body, "Ingress"),
        enable_ipv4=enable_ipv4,
        enable_ipv6=_optional_bool(body, "EnableIPv6"),
        config_only=_flag(body, "ConfigOnly"),
        config_from=config_from.get("Network", "") if isinstance(config_from, dict) else "",
    )
    return json_response({"Id": network.id, "Warning": ""}, status=201)


async def remove_network(engine: Engine, request: Request) -> Response:
    manager = await _manager(engine)
    await asyncio.to_thread(manager.remove, request.params["id"])
    return empty_response(204)


async def prune_networks(engine: Engine, request: Request) -> Response:
    filters = Filters.of(request)
    filters.validate(_PRUNE_FILTERS)
    until_values = filters.get("until")
    until = parse_time_filter(until_values[0]) if until_values else None
    labels = {key: filters.get(key) for key in ("label", "label!") if filters.contains(key)}
    manager = await _manager(engine)
    names = await asyncio.to_thread(manager.prune, labels, until)
    return json_response({"NetworksDeleted": names or None})


async def connect_network(engine: Engine, request: Request) -> Response:
    body = _object(await request.json(), "ConnectOptions")
    settings = body.get("EndpointConfig")
    if settings is not None and not isinstance(settings, dict):
        raise BadRequest(
            _type_error(settings, "ConnectOptions.EndpointConfig", "network.EndpointSettings")
        )
    manager = await _manager(engine)
    container_id = await asyncio.to_thread(_container_id, engine, _text(body, "Container"))
    await asyncio.to_thread(manager.connect, request.params["id"], container_id, settings)
    return Response(200)


async def disconnect_network(engine: Engine, request: Request) -> Response:
    body = _object(await request.json(), "DisconnectOptions")
    manager = await _manager(engine)
    container_id = await asyncio.to_thread(_container_id, engine, _text(body, "Container"))
    await asyncio.to_thread(
        manager.disconnect, request.params["id"], container_id, _flag(body, "Force")
    )
    return Response(200)


def _container_id(engine: Engine, reference: str) -> str:
    """The full ID of a container named or abbreviated; Docker's 404 when there is none."""
    from simulator.engine.containers import manager_of

    return manager_of(engine).store.get(reference).id


def _go_kind(value: Any) -> str:
    """How Go's JSON decoder names a JSON value's kind in its errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "value")


def _type_error(value: Any, field: str, go_type: str) -> str:
    return (
        f"invalid JSON: json: cannot unmarshal {_go_kind(value)} into Go struct field "
        f"{field} of type {go_type}"
    )


def _object(body: Any, struct: str) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadRequest(
            f"invalid JSON: json: cannot unmarshal {_go_kind(body)} into Go value of type "
            f"network.{struct}"
        )
    return body


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(_type_error(value, key, "string"))
    return value


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(_type_error(value, key, "bool"))
    return value


def _optional_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise BadRequest(_type_error(value, key, "bool"))
    return value


def _mapping(body: dict[str, Any], key: str) -> dict[str, str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadRequest(_type_error(value, key, "map[string]string"))
    return value
