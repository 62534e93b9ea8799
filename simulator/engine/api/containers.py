"""The Engine API's container endpoints: create, list, inspect, start, stop, kill, restart,
wait, attach, logs, remove, prune and rename, over simulator.engine.containers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.cli.formatting import container_state_name, container_status_text
from simulator.engine.api import Filters, parse_time_filter
from simulator.engine.container_spec import CreateError
from simulator.engine.containers import (
    ZERO_TIME,
    Container,
    ContainerError,
    ContainerManager,
    NotModified,
    manager_of,
    parse_rfc3339,
)
from simulator.engine.execs import DEFAULT_DETACH_KEYS, DetachKeys, parse_detach_keys
from simulator.engine.server import (
    BadRequest,
    Hijack,
    Request,
    Response,
    Router,
    StreamResponse,
    empty_response,
    json_response,
)

if TYPE_CHECKING:
    from simulator.engine.daemon import Engine

_LIST_FILTERS = ("id", "name", "status", "label", "ancestor", "exited", "before", "since")
_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
_FOLLOW_POLL_SECONDS = 0.1
_WAIT_SLICE_SECONDS = 1.0

# NetworkSettings of a container the engine has no network record of (networking is off)
_NO_NETWORK_SETTINGS: dict[str, Any] = {
    "Bridge": "",
    "SandboxID": "",
    "SandboxKey": "",
    "Ports": {},
    "HairpinMode": False,
    "LinkLocalIPv6Address": "",
    "LinkLocalIPv6PrefixLen": 0,
    "SecondaryIPAddresses": None,
    "SecondaryIPv6Addresses": None,
    "EndpointID": "",
    "Gateway": "",
    "GlobalIPv6Address": "",
    "GlobalIPv6PrefixLen": 0,
    "IPAddress": "",
    "IPPrefixLen": 0,
    "IPv6Gateway": "",
    "MacAddress": "",
    "Networks": {},
}

log = logging.getLogger("simulator.engine.api.containers")


def add_routes(router: Router[Engine]) -> None:
    router.post("/containers/create", create_container)
    router.get("/containers/json", list_containers)
    router.post("/containers/prune", prune_containers)
    router.get("/containers/{id}/json", inspect_container)
    router.post("/containers/{id}/start", start_container)
    router.post("/containers/{id}/stop", stop_container)
    router.post("/containers/{id}/kill", kill_container)
    router.post("/containers/{id}/pause", pause_container)
    router.get("/containers/{id}/top", top_container)
    router.post("/containers/{id}/unpause", unpause_container)
    router.post("/containers/{id}/restart", restart_container)
    router.post("/containers/{id}/wait", wait_container)
    router.post("/containers/{id}/attach", attach_container)
    router.post("/containers/{id}/resize", resize_container)
    router.get("/containers/{id}/logs", container_logs)
    router.post("/containers/{id}/rename", rename_container)
    router.delete("/containers/{id}", remove_container)


def _manager(engine: Engine) -> ContainerManager:
    return manager_of(engine)


async def _call(function: Any, *arguments: Any) -> Any:
    """Blocking container work in a thread (errors carry their HTTP status)."""
    return await asyncio.to_thread(function, *arguments)


async def _lifecycle(function: Any, *arguments: Any) -> Response:
    """A start or stop: 204, or 304 when there was nothing to do."""
    try:
        await asyncio.to_thread(function, *arguments)
    except NotModified:
        return empty_response(304)
    return empty_response(204)


# -- create, list, inspect ---------------------------------------------------------------


async def create_container(engine: Engine, request: Request) -> Response:
    body = await request.json()
    if request.body.is_empty:  # dockerd decodes the body even when none was sent
        raise BadRequest("invalid JSON: got EOF while reading request body")
    manager = _manager(engine)
    container = await _call(manager.create, body, request.arg("name"))
    return json_response({"Id": container.id, "Warnings": []}, 201)


def _state_name(container: Container) -> str:
    return container_state_name(
        container.running or container.restarting,
        paused=container.paused,
        restarting=container.restarting,
        removing=container.status == "removing",
        dead=container.status == "dead",
        started_at=parse_rfc3339(container.started_at),
    )


def _command(container: Container) -> str:
    """The summary's Command: the path, then the arguments, those with a space in quotes."""
    args = [f"'{arg}'" if " " in arg else arg for arg in container.args]
    return " ".join([container.path, *args]).strip()


def _port_list(ports: dict[str, Any]) -> list[dict[str, Any]]:
    """``Ports`` of a container summary, from NetworkSettings.Ports: each host binding, and
    each exposed port without one."""
    listed: list[dict[str, Any]] = []
    for key, bindings in ports.items():
        number, _, protocol = key.partition("/")
        if not bindings:
            listed.append({"PrivatePort": int(number), "Type": protocol})
        for binding in bindings or []:
            listed.append(
                {
                    "IP": binding["HostIp"],
                    "PrivatePort": int(number),
                    "PublicPort": int(binding["HostPort"]),
                    "Type": protocol,
                }
            )
    return listed


def summary_of(
    container: Container, sizes: tuple[int, int] | None, network: dict[str, Any]
) -> dict[str, Any]:
    """A container's entry in ``GET /containers/json``; ``sizes`` are SizeRw and SizeRootFs."""
    host = container.host_config
    summary: dict[str, Any] = {
        "Id": container.id,
        "Names": [container.name],
        "Image": container.config.get("Image") or container.image_id,
        "ImageID": container.image_id,
        "Command": _command(container),
        "Created": int(parse_rfc3339(container.created) or 0),
        "Ports": _port_list(network.get("Ports") or {}),
        "Labels": container.config.get("Labels") or {},
        "State": _state_name(container),
        "Status": container_status_text(
            container.running or container.restarting,
            paused=container.paused,
            restarting=container.restarting,
            removing=container.status == "removing",
            dead=container.status == "dead",
            started_at=parse_rfc3339(container.started_at),
            finished_at=parse_rfc3339(container.finished_at),
            exit_code=container.exit_code,
        ),
        "HostConfig": {"NetworkMode": host.get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": network.get("Networks") or {}},
        "Mounts": container.mounts,
    }
    if sizes is not None:
        summary["SizeRw"], summary["SizeRootFs"] = sizes
    return summary


def _matches(container: Container, filters: Filters, engine: Engine) -> bool:
    if not filters.fuzzy_match("id", container.id):
        return False
    names = filters.get("name")
    if names and not any(_name_matches(name, container.name) for name in names):
        return False
    if not filters.exact_match("status", _state_name(container)):
        return False
    if not filters.match_kv_list("label", container.config.get("Labels") or {}):
        return False
    exited = filters.get("exited")
    if exited and (container.status != "exited" or str(container.exit_code) not in exited):
        return False
    ancestors = filters.get("ancestor")
    if ancestors:
        found = False
        for ancestor in ancestors:
            try:
                image = engine.images.get(ancestor)
            except Exception:
                continue
            if image.id == container.image_id:
                found = True
        if not found:
            return False
    return True


def _name_matches(pattern: str, name: str) -> bool:
    """Docker matches a name filter as a regular expression against "/name"."""
    try:
        return re.search(pattern, name) is not None
    except re.error:
        raise BadRequest(f"error parsing regexp: {pattern}") from None


def _created_bound(manager: ContainerManager, filters: Filters, key: str) -> str | None:
    """The Created time of the container a ``before`` or ``since`` filter names."""
    values = filters.get(key)
    if not values:
        return None
    return manager.store.get(values[0]).created


async def list_containers(engine: Engine, request: Request) -> Response:
    manager = _manager(engine)
    filters = Filters.of(request)
    filters.validate(_LIST_FILTERS)
    for status in filters.get("status"):
        if status not in _STATUSES:
            raise BadRequest(f"invalid filter 'status={status}'")
    show_all = request.flag("all")
    limit = request.int_arg("limit", -1)
    containers = manager.store.all()
    before = _created_bound(manager, filters, "before")
    since = _created_bound(manager, filters, "since")
    if before is not None or since is not None:
        show_all = True
        containers = [
            c
            for c in containers
            if (before is None or c.created < before) and (since is None or c.created > since)
        ]
    if limit > 0:
        show_all = True
    selected = [
        c
        for c in containers
        if (show_all or c.running or filters.contains("status")) and _matches(c, filters, engine)
    ]
    if limit > 0:
        selected = selected[:limit]
    with_size = request.flag("size")

    def summaries() -> list[dict[str, Any]]:
        return [
            summary_of(c, manager.sizes(c) if with_size else None, manager.network_settings(c))
            for c in selected
        ]

    return json_response(await asyncio.to_thread(summaries))


def _inspect(
    container: Container, sizes: tuple[int, int] | None, log_path: str, network: dict[str, Any]
) -> dict[str, Any]:
    config = dict(container.config)
    config.setdefault("Hostname", "")
    if not config.get("Hostname"):
        config["Hostname"] = container.id[:12]
    state = {
        "Status": _state_name(container),
        "Running": container.running or container.restarting,
        "Paused": container.paused,
        "Restarting": container.restarting,
        "OOMKilled": container.oom_killed,
        "Dead": container.status == "dead",
        "Pid": container.pid,
        "ExitCode": container.exit_code,
        "Error": container.error,
        "StartedAt": container.started_at,
        "FinishedAt": container.finished_at,
    }
    body: dict[str, Any] = {
        "Id": container.id,
        "Created": container.created,
        "Path": container.path,
        "Args": container.args,
        "State": state,
        "Image": container.image_id,
        "ResolvConfPath": container.network_files.get("/etc/resolv.conf", ""),
        "HostnamePath": container.network_files.get("/etc/hostname", ""),
        "HostsPath": container.network_files.get("/etc/hosts", ""),
        "LogPath": log_path,
        "Name": container.name,
        "RestartCount": container.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": container.host_config,
        "GraphDriver": {"Data": None, "Name": "overlay2"},
        "Mounts": container.mounts,
        "Config": config,
        "NetworkSettings": network or _NO_NETWORK_SETTINGS,
    }
    if sizes is not None:
        body["SizeRw"], body["SizeRootFs"] = sizes
    return body


async def inspect_container(engine: Engine, request: Request) -> Response:
    manager = _manager(engine)
    container = manager.store.get(request.params["id"])
    sizes = await _call(manager.sizes, container) if request.flag("size") else None
    legacy_aliases = not request.version_at_least("1.45")
    network = await _call(manager.network_settings, container, legacy_aliases)
    body = _inspect(container, sizes, str(manager.log_path(container)), network)
    body["ExecIDs"] = manager.execs.ids_of(container.id) or None
    return json_response(body)


# -- lifecycle ----------------------------------------------------------------------------


def _stop_options(request: Request) -> tuple[int | None, str]:
    timeout = request.int_arg("t", 0) if request.has_arg("t") else None
    return timeout, request.arg("signal")


async def start_container(engine: Engine, request: Request) -> Response:
    return await _lifecycle(_manager(engine).start, request.params["id"])


async def stop_container(engine: Engine, request: Request) -> Response:
    timeout, stop_signal = _stop_options(request)
    return await _lifecycle(_manager(engine).stop, request.params["id"], timeout, stop_signal)


async def restart_container(engine: Engine, request: Request) -> Response:
    timeout, stop_signal = _stop_options(request)
    await _call(_manager(engine).restart, request.params["id"], timeout, stop_signal)
    return empty_response(204)


async def kill_container(engine: Engine, request: Request) -> Response:
    await _call(_manager(engine).kill, request.params["id"], request.arg("signal"))
    return empty_response(204)


async def resize_container(engine: Engine, request: Request) -> Response:
    height, width = request.int_arg("h", 0), request.int_arg("w", 0)
    await _call(_manager(engine).resize, request.params["id"], height, width)
    return empty_response(200)


async def top_container(engine: Engine, request: Request) -> Response:
    ps_args = request.arg("ps_args") or "-ef"
    return json_response(await _call(_manager(engine).top, request.params["id"], ps_args))


async def pause_container(engine: Engine, request: Request) -> Response:
    await _call(_manager(engine).pause, request.params["id"])
    return empty_response(204)


async def unpause_container(engine: Engine, request: Request) -> Response:
    await _call(_manager(engine).unpause, request.params["id"])
    return empty_response(204)


async def wait_container(engine: Engine, request: Request) -> StreamResponse:
    manager = _manager(engine)
    wait = manager.wait_condition(request.params["id"], request.arg("condition"))

    async def result() -> AsyncIterator[bytes]:
        # Short waits, so that no worker thread outlives a client that went away.
        while (container := await asyncio.to_thread(wait, _WAIT_SLICE_SECONDS)) is None:
            pass
        body = {"Error": None, "StatusCode": container.exit_code}
        yield json.dumps(body).encode() + b"\n"

    return StreamResponse(result())


async def remove_container(engine: Engine, request: Request) -> Response:
    manager = _manager(engine)
    await _call(manager.remove, request.params["id"], request.flag("force"), request.flag("v"))
    return empty_response(204)


async def prune_containers(engine: Engine, request: Request) -> Response:
    filters = Filters.of(request)
    filters.validate(("label", "label!", "until"))
    until = parse_time_filter(filters.get("until")[0]) if filters.get("until") else None

    def chosen(container: Container) -> bool:
        labels = container.config.get("Labels") or {}
        if not filters.match_kv_list("label", labels):
            return False
        for unwanted in filters.get("label!"):
            key, has_value, value = unwanted.partition("=")
            if key in labels and (not has_value or labels[key] == value):
                return False
        created = parse_rfc3339(container.created) or 0.0
        return until is None or created < until

    deleted, reclaimed = await _call(_manager(engine).prune, chosen)
    return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


async def rename_container(engine: Engine, request: Request) -> Response:
    await _call(_manager(engine).rename, request.params["id"], request.arg("name"))
    return empty_response(204)


# -- attach and logs -------------------------------------------------------------------------


async def attach_container(engine: Engine, request: Request) -> Hijack:
    detach_text = request.arg("detachKeys")
    try:
        detach_keys = parse_detach_keys(detach_text) if detach_text else DEFAULT_DETACH_KEYS
    except ValueError:
        raise BadRequest(f"Invalid detach keys ({detach_text}) provided") from None
    manager = _manager(engine)
    container = manager.store.get(request.params["id"])
    try:
        await _call(manager.prepare, container.id)
    except (ContainerError, CreateError) as error:
        # Docker's attach makes no task: the start that follows reports the failure.
        log.info("attach to %s: no task yet: %s", container.id, error)
    manager.event(container, "attach")
    sock_path = manager.runtime_root / container.id / "shim.sock"
    wants = {
        "op": "attach",
        "stdin": request.flag("stdin"),
        "stdout": request.flag("stdout"),
        "stderr": request.flag("stderr"),
        "stdin_once": bool(container.config.get("StdinOnce")),
    }
    stream = request.flag("stream")
    tty = bool(container.config.get("Tty"))
    # As dockerd: the end of the client's input ends the attach, unless it only closes a
    # StdinOnce container's stdin; with a terminal, the detach keys end it too.
    input_ends_attach = wants["stdin"] and (tty or not wants["stdin_once"])

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not stream:
            return
        try:
            shim_reader, shim_writer = await asyncio.open_unix_connection(str(sock_path))
        except OSError as error:
            log.info("attach to %s: no shim to attach to: %s", container.id, error)
            return
        detach = DetachKeys(detach_keys) if tty and wants["stdin"] else None
        to_client = from_client = None
        try:
            shim_writer.write(json.dumps(wants).encode() + b"\n")
            await shim_writer.drain()
            answer = await shim_reader.readline()
            if not answer:
                log.info("attach to %s: the shim closed the connection", container.id)
                return
            to_client = asyncio.create_task(_copy(shim_reader, writer))
            from_client = asyncio.create_task(_attach_input(reader, shim_writer, detach))
            await asyncio.wait({to_client, from_client}, return_when=asyncio.FIRST_COMPLETED)
            log.debug(
                "attach to %s: %s ended first",
                container.id,
                "the client's input" if from_client.done() else "the container's output",
            )
            if from_client.done():
                if from_client.result() == "detach":
                    manager.event(container, "detach")
                    return
                if input_ends_attach:
                    return
            await to_client
        finally:
            for task in (to_client, from_client):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, OSError):
                        await task
            shim_writer.close()

    content_type = (
        "application/vnd.docker.raw-stream"
        if tty
        else ("application/vnd.docker.multiplexed-stream")
    )
    return Hijack(relay, content_type=content_type)


async def _copy(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            target.write(data)
            await target.drain()
    except (ConnectionError, OSError):
        pass


async def _attach_input(
    reader: asyncio.StreamReader, shim: asyncio.StreamWriter, detach: DetachKeys | None
) -> str:
    """Copy the client's input to the shim: "detach" once the detach keys are typed (they
    never reach the container), "eof" when the input ends (passed on as a half-close)."""
    try:
        while data := await reader.read(65536):
            detached = False
            if detach is not None:
                data, detached = detach.feed(data)
            if data:
                shim.write(data)
                await shim.drain()
            if detached:
                return "detach"
        if shim.can_write_eof():
            shim.write_eof()
    except (ConnectionError, OSError):
        pass
    return "eof"


def _frame(stream: str, data: bytes, tty: bool) -> bytes:
    if tty:
        return data
    return struct.pack(">BxxxL", 1 if stream == "stdout" else 2, len(data)) + data


def _log_entries(path: Path, position: int) -> tuple[list[dict[str, Any]], int]:
    """The complete json-file entries from ``position`` on, and where the next one starts."""
    try:
        with open(path, "rb") as file:
            file.seek(position)
            data = file.read()
    except FileNotFoundError:
        return [], position
    end = data.rfind(b"\n") + 1
    entries = []
    for line in data[:end].splitlines():
        with contextlib.suppress(ValueError):
            entries.append(json.loads(line))
    return entries, position + end


async def container_logs(engine: Engine, request: Request) -> StreamResponse:
    manager = _manager(engine)
    container = manager.store.get(request.params["id"])
    want_stdout = request.flag("stdout")
    want_stderr = request.flag("stderr")
    if not want_stdout and not want_stderr:
        raise BadRequest("You must choose at least one stream")
    tty = bool(container.config.get("Tty"))
    timestamps = request.flag("timestamps")
    follow = request.flag("follow")
    since = parse_time_filter(request.arg("since")) if request.arg("since") else 0.0
    until = parse_time_filter(request.arg("until")) if request.arg("until") else None
    tail_text = request.arg("tail", "all")
    tail = -1 if tail_text in ("", "all") else _tail_count(tail_text)
    path = manager.log_path(container)

    def render(entry: dict[str, Any]) -> bytes | None:
        stream = entry.get("stream", "stdout")
        if (stream == "stdout" and not want_stdout) or (stream == "stderr" and not want_stderr):
            return None
        moment = parse_rfc3339(entry.get("time", ZERO_TIME)) or 0.0
        if moment < since or (until is not None and moment > until):
            return None
        text = entry.get("log", "")
        if timestamps:
            text = f"{entry.get('time', ZERO_TIME)} {text}"
        return _frame(stream, text.encode(), tty)

    entries, position = await asyncio.to_thread(_log_entries, path, 0)
    if tail >= 0:
        entries = entries[len(entries) - tail :] if tail else []

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal position
        for entry in entries:
            chunk = render(entry)
            if chunk:
                yield chunk
        if not follow:
            return
        while True:
            running = container.running or container.status == "created" and container.task
            more, position = await asyncio.to_thread(_log_entries, path, position)
            for entry in more:
                chunk = render(entry)
                if chunk:
                    yield chunk
            if not running or container.id not in {c.id for c in manager.store.all()}:
                return
            if until is not None and time.time() > until:
                return
            await asyncio.sleep(_FOLLOW_POLL_SECONDS)

    content_type = (
        "application/vnd.docker.raw-stream"
        if tty
        else ("application/vnd.docker.multiplexed-stream")
    )
    return StreamResponse(chunks(), content_type=content_type)


def _tail_count(text: str) -> int:
    try:
        return max(int(text), -1)
    except ValueError:
        raise BadRequest(f'failed to parse tail "{text}"') from None
