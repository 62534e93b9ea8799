"""System endpoints: ``/_ping``, ``/version``, ``/info``, ``/events``, ``/auth``,
``/system/df``, and Slipway's ``/slipway/api-log``."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.engine.api import Filters, parse_unix_time
from simulator.engine.events import Subscription
from simulator.engine.server import (
    BadRequest,
    Request,
    Response,
    Router,
    StreamResponse,
    Unauthorized,
    go_json,
    json_response,
    parse_version,
)
from simulator.images.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN
from simulator.volumes import VolumeNotFound, VolumeUsage

if TYPE_CHECKING:
    from simulator.engine.daemon import Engine

RUNTIME_NAME = "slipway"
RUNTIME_VERSION = "0.1.0"
DISK_USAGE_KINDS = ("container", "image", "volume", "build-cache")  # /system/df's types
# Docker's names for the filesystem under its storage driver (``Backing Filesystem``).
_BACKING_FILESYSTEMS = {
    "ext2": "extfs",
    "ext3": "extfs",
    "ext4": "extfs",
    "xfs": "xfs",
    "btrfs": "btrfs",
    "tmpfs": "tmpfs",
    "overlay": "overlayfs",
    "zfs": "zfs",
    "f2fs": "f2fs",
    "nfs": "nfs",
}
_GO_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}
_AUTH_FIELDS = ("username", "password", "auth", "email", "serveraddress", "identitytoken")


def add_routes(router: Router[Engine]) -> None:
    router.get("/_ping", ping)
    router.head("/_ping", ping)
    router.get("/version", version)
    router.get("/info", info)
    router.get("/events", events)
    router.post("/auth", auth)
    router.get("/system/df", disk_usage)
    router.get("/slipway/api-log", api_log)


async def ping(engine: Engine, request: Request) -> Response:
    """``/_ping``: OK, and the headers a client negotiates with."""
    headers = [
        ("Builder-Version", "1"),
        ("Cache-Control", "no-cache, no-store, must-revalidate"),
        ("Docker-Experimental", "false"),
        ("Pragma", "no-cache"),
        ("Swarm", engine.swarm_state()),
    ]
    if request.method == "HEAD":
        return Response(200, b"", "text/plain; charset=utf-8", headers)
    return Response(200, b"OK", "text/plain; charset=utf-8", headers)


async def version(engine: Engine, request: Request) -> Response:
    from simulator.engine.daemon import API_VERSION, DOCKER_VERSION, MIN_API_VERSION, PLATFORM_NAME

    details = {
        "ApiVersion": API_VERSION,
        "Arch": _go_architecture(),
        "BuildTime": _build_time(),
        "Experimental": "false",
        "GitCommit": _git_commit(),
        "GoVersion": _language_version(),
        "KernelVersion": platform.release(),
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
    }
    return json_response(
        {
            "Platform": {"Name": PLATFORM_NAME},
            "Components": [
                {"Name": "Engine", "Version": DOCKER_VERSION, "Details": details},
                {
                    "Name": f"{RUNTIME_NAME}-runtime",
                    "Version": RUNTIME_VERSION,
                    "Details": {"GitCommit": _git_commit()},
                },
            ],
            "Version": DOCKER_VERSION,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": details["GitCommit"],
            "GoVersion": details["GoVersion"],
            "Os": "linux",
            "Arch": details["Arch"],
            "KernelVersion": details["KernelVersion"],
            "BuildTime": details["BuildTime"],
        }
    )


async def info(engine: Engine, request: Request) -> Response:
    return json_response(await asyncio.to_thread(system_info, engine))


def system_info(engine: Engine) -> dict[str, Any]:
    """``/info``: every field ``docker info`` prints, as Docker 28 fills them."""
    from simulator.engine.daemon import DOCKER_VERSION
    from simulator.runtime.cgroups import CgroupLayout

    layout = CgroupLayout.detect()
    cgroup_version = "2" if layout.mode == "v2" else "1"
    containers = engine.container_counts()
    os_release = _os_release()
    mirrors = [_with_slash(mirror) for mirror in engine.config.mirrors]
    insecure_cidrs, insecure_names = _insecure_registries(engine.config.insecure_registries)
    index_configs: dict[str, Any] = {
        DEFAULT_DOMAIN: {
            "Name": DEFAULT_DOMAIN,
            "Mirrors": mirrors,
            "Secure": True,
            "Official": True,
        }
    }
    for name in insecure_names:
        index_configs[name] = {"Name": name, "Mirrors": [], "Secure": False, "Official": False}
    memory = layout.version_of("memory") is not None
    cpu = layout.version_of("cpu") is not None
    return {
        "ID": engine.id,
        "Containers": containers.total,
        "ContainersRunning": containers.running,
        "ContainersPaused": containers.paused,
        "ContainersStopped": containers.stopped,
        "Images": len(engine.images.images()),
        "Driver": "overlay2",
        "DriverStatus": [
            ["Backing Filesystem", _backing_filesystem(engine.config.layer_root)],
            ["Supports d_type", "true"],
            ["Using metacopy", "false"],
            ["Native Overlay Diff", "true"],
            ["userxattr", "false"],
        ],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null", "overlay"],
            "Authorization": None,
            "Log": ["json-file"],
        },
        "MemoryLimit": memory,
        "SwapLimit": memory and _swap_limit(layout),
        "KernelMemoryTCP": False,
        "CpuCfsPeriod": cpu,
        "CpuCfsQuota": cpu,
        "CPUShares": cpu,
        "CPUSet": layout.version_of("cpuset") is not None,
        "PidsLimit": layout.version_of("pids") is not None,
        "OomKillDisable": layout.version_of("memory") == 1,
        "IPv4Forwarding": _read("/proc/sys/net/ipv4/ip_forward").strip() == "1",
        "Debug": False,
        "NFd": _open_files(),
        "NGoroutines": threading.active_count(),
        "SystemTime": _go_time(datetime.now().astimezone()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "NEventsListener": engine.events.listener_count,
        "KernelVersion": platform.release(),
        "OperatingSystem": os_release.get("PRETTY_NAME", "Linux"),
        "OSVersion": os_release.get("VERSION_ID", ""),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": f"https://{LEGACY_DEFAULT_DOMAIN}/v1/",
        "RegistryConfig": {
            "InsecureRegistryCIDRs": [*insecure_cidrs, "::1/128", "127.0.0.0/8"],
            "IndexConfigs": index_configs,
            "Mirrors": mirrors,
        },
        "NCPU": len(os.sched_getaffinity(0)),
        "MemTotal": _memory_total(),
        "GenericResources": None,
        "DockerRootDir": str(engine.data_root),
        "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
        "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
        "Name": engine.config.name,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": DOCKER_VERSION,
        "Runtimes": {RUNTIME_NAME: {"path": f"{sys.executable} -m simulator.runtime"}},
        "DefaultRuntime": RUNTIME_NAME,
        "Swarm": engine.swarm_info(),
        "LiveRestoreEnabled": False,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": f"{RUNTIME_NAME}-runtime {RUNTIME_VERSION}"},
        "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=no-new-privileges"],
        "CDISpecDirs": [],
        "Warnings": _warnings(layout, memory),
    }


async def events(engine: Engine, request: Request) -> StreamResponse:
    """``/events``: past events from ``since``, then live ones until ``until`` (or for as
    long as the client stays), each as a JSON line."""
    since = parse_unix_time(request.arg("since"))
    until = parse_unix_time(request.arg("until"))
    if since is not None and until is not None and until < since:
        raise BadRequest(
            f"`since` time ({request.arg('since')}) cannot be after `until` time "
            f"({request.arg('until')})"
        )
    filters = Filters.of(request)
    subscription = engine.events.subscribe(filters.fields, since, until)
    return StreamResponse(_event_lines(subscription, until))


async def _event_lines(subscription: Subscription, until: int | None) -> AsyncIterator[bytes]:
    try:
        for event in subscription.past:
            yield go_json(event.to_api())
        if until is not None and until <= time.time_ns():
            return  # only past events were asked for
        while True:
            timeout = None if until is None else max(0.0, (until - time.time_ns()) / 1e9)
            event = await subscription.next(timeout)
            if event is None:
                return
            yield go_json(event.to_api())
    finally:
        subscription.close()


async def auth(engine: Engine, request: Request) -> Response:
    """``/auth`` (docker login): check that the registry answers. Registries that want
    credentials check them when they are used, on pull and push."""
    from simulator.images.registry_client import RegistryClient, RegistryError, registry_url

    body = await request.json()
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest(
            f"invalid JSON: json: cannot unmarshal {_go_kind(body)} into Go value of type "
            "registry.AuthConfig"
        )
    for key in _AUTH_FIELDS:
        if key in body and not isinstance(body[key], str):
            raise BadRequest(
                f"invalid JSON: json: cannot unmarshal {_go_kind(body[key])} into Go struct "
                f"field AuthConfig.{key} of type string"
            )
    server = body.get("serveraddress", "") or DEFAULT_DOMAIN
    server = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if server in (DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN, f"registry-1.{DEFAULT_DOMAIN}"):
        if engine.config.offline or not engine.config.mirrors:
            url = registry_url(DEFAULT_DOMAIN)
        else:
            url = engine.config.mirrors[0]
    else:
        url = registry_url(server, engine.config.insecure_registries)

    def check() -> None:
        RegistryClient(url).ping()

    try:
        await asyncio.to_thread(check)
    except (RegistryError, ValueError) as error:
        raise Unauthorized(f"login attempt to {url}/v2/ failed: {error}") from None
    return json_response({"IdentityToken": "", "Status": "Login Succeeded"})


async def disk_usage(engine: Engine, request: Request) -> Response:
    """``/system/df``: what images, containers, volumes and the build cache take, or only the
    kinds that ``type`` names (API 1.42 and later)."""
    kinds = set(DISK_USAGE_KINDS)
    if request.version_at_least("1.42") and request.has_arg("type"):
        kinds = set(request.args("type"))
        for kind in request.args("type"):
            if kind not in DISK_USAGE_KINDS:
                raise BadRequest(f"unknown object type: {kind}")
    usage = await asyncio.to_thread(system_disk_usage, engine, kinds, request.api_version)
    return json_response(usage)


def system_disk_usage(engine: Engine, kinds: set[str], api_version: str) -> dict[str, Any]:
    """The answer of ``/system/df`` in moby's shape: a kind not asked for is null."""
    from simulator.build.executor import cache_of
    from simulator.engine.api.images import disk_usage_images

    legacy = parse_version(api_version) < parse_version("1.42")
    layers_size, images = 0, None
    if "image" in kinds:
        layers_size, images = disk_usage_images(engine, api_version)
    cache = None
    if "build-cache" in kinds:
        cache = [record.to_api(legacy_parent=legacy) for record in cache_of(engine).records()]
    usage: dict[str, Any] = {
        "LayersSize": layers_size,
        "Images": images,
        "Containers": _disk_usage_containers(engine) if "container" in kinds else None,
        "Volumes": _disk_usage_volumes(engine) if "volume" in kinds else None,
        "BuildCache": cache,
    }
    builder_size = sum(record["Size"] for record in cache or [])
    if legacy and builder_size:
        usage["BuilderSize"] = builder_size  # moby's old total, for clients before 1.42
    return usage


def _disk_usage_containers(engine: Engine) -> list[dict[str, Any]]:
    """Every container's summary with its sizes: ``SizeRw``, what it wrote, and
    ``SizeRootFs``, that and its image."""
    from simulator.engine.api.containers import summary_of
    from simulator.engine.containers import manager_of

    manager = manager_of(engine)
    summaries = []
    for container in manager.store.all():
        sizes = manager.sizes(container)
        summaries.append(summary_of(container, sizes, manager.network_settings(container)))
    return summaries


def _disk_usage_volumes(engine: Engine) -> list[dict[str, Any]]:
    """The local volumes without driver options (as moby counts them), each with its size
    and the number of containers that use it."""
    from simulator.engine.containers import manager_of

    store = manager_of(engine).volumes
    volumes = []
    for volume in store.list():
        if volume.Options:
            continue
        try:
            usage = VolumeUsage(store.usage(volume.Name), len(store.references(volume.Name)))
        except VolumeNotFound:  # removed meanwhile
            continue
        volumes.append(volume.to_api(usage))
    return volumes


async def api_log(engine: Engine, request: Request) -> Response:
    """``/slipway/api-log``: the engine's recent requests (``after=ID``, ``limit=N``)."""
    after = request.int_arg("after", 0)
    limit = request.int_arg("limit", -1)
    return json_response(engine.api_log.entries(after, None if limit < 0 else limit))


# Facts about the host


def _read(path: str) -> str:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return ""


def _os_release() -> dict[str, str]:
    values = {}
    for line in (_read("/etc/os-release") or _read("/usr/lib/os-release")).splitlines():
        key, separator, value = line.partition("=")
        if separator:
            values[key.strip()] = value.strip().strip('"')
    return values


def _memory_total() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _swap_limit(layout: Any) -> bool:
    hierarchy = layout.v1_for("memory")
    if hierarchy is not None:
        return Path(hierarchy.mountpoint, "memory.memsw.limit_in_bytes").exists()
    return layout.v2 is not None


def _warnings(layout: Any, memory: bool) -> list[str]:
    warnings = []
    if not memory:
        warnings.append("WARNING: No memory limit support")
    elif not _swap_limit(layout):
        warnings.append("WARNING: No swap limit support")
    return warnings


def _backing_filesystem(path: Path) -> str:
    """The type of the filesystem that holds ``path``, in Docker's words."""
    target = path.absolute()
    while not target.exists() and target != target.parent:
        target = target.parent
    best, best_type = "", "unknown"
    for line in _read("/proc/self/mountinfo").splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mountpoint = fields[4].replace("\\040", " ")
        inside = str(target) == mountpoint or str(target).startswith(mountpoint.rstrip("/") + "/")
        if inside and len(mountpoint) >= len(best):
            best, best_type = mountpoint, right.split()[0]
    return _BACKING_FILESYSTEMS.get(best_type, best_type)


def _open_files() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _insecure_registries(entries: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Docker's split of --insecure-registry values into CIDRs and registry names."""
    import ipaddress

    cidrs, names = [], []
    for entry in entries:
        try:
            cidrs.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            names.append(entry)
    return cidrs, names


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _go_architecture() -> str:
    machine = platform.machine()
    return _GO_ARCHITECTURES.get(machine, machine)


def _go_time(moment: datetime) -> str:
    """A time as Go's RFC3339Nano writes it."""
    text = moment.isoformat(timespec="microseconds")
    head, dot, rest = text.partition(".")
    digits, offset = rest[:6], rest[6:]
    fraction = digits.rstrip("0")
    if offset == "+00:00":
        offset = "Z"
    return f"{head}{'.' + fraction if fraction else ''}{offset}"


def _build_time() -> str:
    """When this engine's code was last changed: the newest of its modules."""
    package = Path(__file__).resolve().parents[1]
    newest = max(path.stat().st_mtime for path in package.rglob("*.py"))
    return _go_time(datetime.fromtimestamp(newest, UTC)).replace("Z", "+00:00")


def _git_commit() -> str:
    """The commit the code was checked out at, read from .git without running git."""
    root = Path(__file__).resolve().parents[3]
    head = _read(str(root / ".git" / "HEAD")).strip()
    if head.startswith("ref: "):
        reference = head[5:]
        head = _read(str(root / ".git" / reference)).strip()
        if not head:
            for line in _read(str(root / ".git" / "packed-refs")).splitlines():
                if line.endswith(" " + reference):
                    head = line.split()[0]
    return head[:7] if head else "unknown"


def _language_version() -> str:
    info = sys.version_info
    return f"python{info.major}.{info.minor}.{info.micro}"


def _go_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str):
        return "string"
    return "null"
