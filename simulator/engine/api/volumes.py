"""``/volumes``: list, create, inspect, remove and prune, over the engine's local volume store
(simulator.volumes), with Docker's events."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from simulator.engine.api import Filters
from simulator.engine.server import BadRequest, Request, Response, Router, json_response
from simulator.volumes import VolumeStore

if TYPE_CHECKING:
    from simulator.engine.daemon import Engine

_LIST_FILTERS = ("name", "label", "dangling", "driver")
_PRUNE_FILTERS = ("label", "label!", "all")


def add_routes(router: Router[Engine]) -> None:
    router.get("/volumes", list_volumes)
    router.post("/volumes/create", create_volume)
    router.post("/volumes/prune", prune_volumes)
    router.get("/volumes/{name}", inspect_volume)
    router.delete("/volumes/{name}", remove_volume)


def _store(engine: Engine) -> VolumeStore:
    """The store the container manager uses, so that in-use checks see its containers."""
    from simulator.engine.containers import manager_of

    return manager_of(engine).volumes


def _filters(request: Request, accepted: tuple[str, ...]) -> dict[str, list[str]]:
    filters = Filters.of(request)
    filters.validate(accepted)
    return {key: filters.get(key) for key in accepted if filters.contains(key)}


async def list_volumes(engine: Engine, request: Request) -> Response:
    filters = _filters(request, _LIST_FILTERS)
    volumes = await asyncio.to_thread(_store(engine).list, filters)
    return json_response({"Volumes": [v.to_api() for v in volumes], "Warnings": []})


async def create_volume(engine: Engine, request: Request) -> Response:
    body = await request.json()
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest(
            f"invalid JSON: json: cannot unmarshal {_go_kind(body)} into Go value of type "
            "volume.CreateOptions"
        )
    name = _text(body, "Name")
    driver = _text(body, "Driver") or "local"
    options = _mapping(body, "DriverOpts")
    labels = _mapping(body, "Labels")
    volume = await asyncio.to_thread(_store(engine).create, name or None, driver, options, labels)
    engine.events.publish("volume", "create", volume.Name, {"driver": volume.Driver})
    return json_response(volume.to_api(), status=201)


async def inspect_volume(engine: Engine, request: Request) -> Response:
    volume = await asyncio.to_thread(_store(engine).get, request.params["name"])
    return json_response(volume.to_api())


async def remove_volume(engine: Engine, request: Request) -> Response:
    name = request.params["name"]
    await asyncio.to_thread(_store(engine).remove, name, request.flag("force"))
    engine.events.publish("volume", "destroy", name, {"driver": "local"})
    return Response(204)


async def prune_volumes(engine: Engine, request: Request) -> Response:
    filters = _filters(request, _PRUNE_FILTERS)
    names, reclaimed = await asyncio.to_thread(_store(engine).prune, filters)
    for name in names:
        engine.events.publish("volume", "destroy", name, {"driver": "local"})
    engine.events.publish("volume", "prune", "", {"reclaimed": str(reclaimed)})
    return json_response({"VolumesDeleted": names, "SpaceReclaimed": reclaimed})


def _go_kind(value: Any) -> str:
    """How Go's JSON decoder names a JSON value's kind in its errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "value")


def _member(body: dict[str, Any], key: str) -> Any:
    """The body's value for a field, its name matched as Go's decoder does (case-insensitively;
    the last of several wins)."""
    found = None
    for name, value in body.items():
        if name.lower() == key.lower():
            found = value
    return found


def _text(body: dict[str, Any], key: str) -> str:
    value = _member(body, key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(
            f"invalid JSON: json: cannot unmarshal {_go_kind(value)} into Go struct field "
            f"CreateOptions.{key} of type string"
        )
    return value


def _mapping(body: dict[str, Any], key: str) -> dict[str, str] | None:
    value = _member(body, key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(
            f"invalid JSON: json: cannot unmarshal {_go_kind(value)} into Go struct field "
            f"CreateOptions.{key} of type map[string]string"
        )
    for item in value.values():
        if item is not None and not isinstance(item, str):
            raise BadRequest(
                f"invalid JSON: json: cannot unmarshal {_go_kind(item)} into Go struct field "
                f"CreateOptions.{key} of type string"
            )
    return {name: item or "" for name, item in value.items()}  # null is Go's zero string
