"""The engine: its configuration, its stores (images now; containers, volumes and networks as
they come), its event bus and API log, and the serving of its Engine API on unix sockets."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from simulator.engine.events import EventBus
from simulator.engine.server import ApiServer, RequestRecord, Router
from simulator.images.store import ImageStore
from simulator.snapshots.overlay import DEFAULT_LAYER_ROOT

API_VERSION = "1.50"  # the newest Engine API version served (Docker 28)
MIN_API_VERSION = "1.41"
DOCKER_VERSION = "28.2.2"  # the Docker Engine release whose API this engine speaks
PLATFORM_NAME = "Slipway Engine"
DEFAULT_HOST = "unix:///var/run/docker.sock"
API_LOG_SIZE = 1000
WORKER_THREADS = 64  # blocking work (pulls, waits) runs in threads; a few may wait long
ENGINE_ID_FILE = "engine-id"

log = logging.getLogger("simulator.engine")


class ConfigError(ValueError):
    """An engine configuration that can't work; the message says why."""


class ContainerCounts(NamedTuple):
    """The container counts ``/info`` reports."""

    total: int = 0
    running: int = 0
    paused: int = 0
    stopped: int = 0


@dataclass(frozen=True)
class EngineConfig:
    """How an engine is started (``python -m simulator.engine`` flags)."""

    data_root: Path
    layer_root: Path = DEFAULT_LAYER_ROOT
    content_root: Path | None = None  # blobs; by default ``<layer root>-content``
    hosts: tuple[str, ...] = (DEFAULT_HOST,)
    mirrors: tuple[str, ...] = ()  # docker.io mirrors: http://127.0.0.1:5000/
    insecure_registries: tuple[str, ...] = ()  # host:port or CIDR, spoken to in plain HTTP
    offline: bool = False  # never go past the mirrors to Docker Hub
    name: str = field(default_factory=socket.gethostname)
    api_log_size: int = API_LOG_SIZE
    cgroup_parent: str | None = None  # containers' cgroups go under it; /slipway/<engine ID>
    allowed_bind_roots: tuple[str, ...] = ()  # host directories a bind mount may come from

    def socket_paths(self) -> list[Path]:
        """The unix socket of each ``unix://`` host; ConfigError for any other kind."""
        paths = []
        for host in self.hosts:
            scheme, separator, rest = host.partition("://")
            if not separator or scheme != "unix" or not rest.startswith("/"):
                raise ConfigError(f"unsupported host {host!r}: only unix:///PATH is served")
            paths.append(Path(rest))
        return paths


class ApiLog:
    """The engine's last ``size`` requests, for the UI's "REST call behind each command".
    A request is logged when its answer starts, so a stream or an attach session shows while
    it is open (its ``duration_ms`` is null until it ends). Each entry has a rising ``id``:
    a reader asks for what came after the last one it saw."""

    def __init__(self, size: int = API_LOG_SIZE) -> None:
        self._lock = threading.Lock()
        self._calls: deque[tuple[int, RequestRecord]] = deque(maxlen=size)
        self._ids = itertools.count(1)

    def record(self, request: RequestRecord) -> int:
        with self._lock:
            call_id = next(self._ids)
            self._calls.append((call_id, request))
        return call_id

    def entries(self, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The calls with an id above ``after``, oldest first; the last ``limit`` of them.
        Each is ``{id, time, method, path, query, status, duration_ms}``."""
        with self._lock:
            calls = [(call_id, record) for call_id, record in self._calls if call_id > after]
        if limit is not None and limit >= 0:
            calls = calls[len(calls) - limit :] if limit else []
        return [_api_call(call_id, record) for call_id, record in calls]


def _api_call(call_id: int, record: RequestRecord) -> dict[str, Any]:
    moment = datetime.fromtimestamp(record.started, UTC)
    return {
        "id": call_id,
        "time": moment.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "method": record.method,
        "path": record.path,
        "query": record.query,
        "status": record.status,
        "duration_ms": record.duration_ms,
    }


def _no_containers() -> ContainerCounts:
    return ContainerCounts()


def _no_containers_of_image(image_id: str) -> Sequence[tuple[str, bool]]:
    return ()


def _swarm_inactive() -> dict[str, Any]:
    return {
        "NodeID": "",
        "NodeAddr": "",
        "LocalNodeState": "inactive",
        "ControlAvailable": False,
        "Error": "",
        "RemoteManagers": None,
    }


class Engine:
    """One engine: what it holds and how it is reached.

    The parts that later packages bring plug in here. Until they do, the engine answers as a
    Docker with none of them would:

    - ``container_counts()``: the containers module sets it (``/info`` counts);
    - ``containers_of_image(image_id)``: ``(container ID, running)`` for each container of an
      image, consulted by ``rmi`` and ``image prune``;
    - ``swarm_info()``: the ``Swarm`` object of ``/info``; ``swarm_state()`` its
      LocalNodeState, for the ``Swarm`` header of ``/_ping``.
    """

    def __init__(self, config: EngineConfig) -> None:
        config.socket_paths()  # check the hosts before anything is made
        self.config = config
        self.data_root = config.data_root.absolute()
        self.data_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.id = _load_engine_id(self.data_root / ENGINE_ID_FILE)
        self.events = EventBus()
        self.api_log = ApiLog(config.api_log_size)
        self.container_counts: Callable[[], ContainerCounts] = _no_containers
        self.containers_of_image: Callable[[str], Sequence[tuple[str, bool]]] = (
            _no_containers_of_image
        )
        self.swarm_info: Callable[[], dict[str, Any]] = _swarm_inactive
        self.images = ImageStore(
            self.data_root,
            config.layer_root,
            config.content_root,
            containers_using=lambda image_id: self.containers_of_image(image_id),
        )
        self._stopping: asyncio.Event | None = None
        self._server: ApiServer[Engine] | None = None

    @property
    def mirrors(self) -> dict[str, list[str]]:
        """Registry mirrors by domain, as pull takes them."""
        return {"docker.io": list(self.config.mirrors)} if self.config.mirrors else {}

    def swarm_state(self) -> str:
        return str(self.swarm_info().get("LocalNodeState", "inactive"))

    def router(self) -> Router[Engine]:
        """Every route of the Engine API this engine serves."""
        from simulator.engine import api

        router: Router[Engine] = Router(MIN_API_VERSION, API_VERSION)
        api.add_routes(router)
        return router

    def default_headers(self) -> list[tuple[str, str]]:
        """What Docker sends on every response."""
        return [
            ("Api-Version", API_VERSION),
            ("Ostype", "linux"),
            ("Server", f"Docker/{DOCKER_VERSION} (linux)"),
        ]

    # Serving

    async def start(self) -> None:
        """Listen on every configured socket."""
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(WORKER_THREADS, "engine-worker"))
        self._stopping = asyncio.Event()
        server: ApiServer[Engine] = ApiServer(
            self.router(),
            self,
            default_headers=self.default_headers(),
            on_request=self._log_request,
        )
        self._server = server
        # The container manager takes over containers that outlived a previous engine
        # (live restore) and answers /info's counts from the first request on.
        from simulator.build.executor import cache_of
        from simulator.engine.containers import manager_of

        await asyncio.to_thread(manager_of, self)
        # The build cache holds layers from the start, before any build, prune or df.
        await asyncio.to_thread(cache_of, self)
        try:
            for path in self.config.socket_paths():
                await server.listen_unix(path)
                log.info("API listening on %s", path)
        except BaseException:
            await server.close()
            # An engine refused at start-up leaves no runtime directory it made for nothing.
            manager = getattr(self, "containers", None)
            if manager is not None:
                with contextlib.suppress(OSError):
                    manager.runtime_root.rmdir()
            raise
        # Networks: bridges, rules and DNS in the engine's namespace (the node's), made in
        # the background once the sockets listen (so an engine refused at start-up changes
        # nothing there); the /networks endpoints await ``networks_ready``.
        self.networks_ready = asyncio.ensure_future(asyncio.to_thread(self._start_networks))

    def _start_networks(self) -> None:
        from simulator.engine.containers import manager_of
        from simulator.network import engine_networks

        networks = None
        try:
            self.networks = networks = engine_networks(self.data_root, self.events.publish)
        except Exception:
            log.exception("the networks did not start")
            raise
        finally:  # containers waiting to start go on, with or without networks
            manager_of(self).networks_started(networks)

    async def serve(self) -> None:
        """Serve until stop() (or SIGTERM or SIGINT), then close every connection."""
        await self.start()
        assert self._stopping is not None
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, self.stop)
        try:
            await self._stopping.wait()
        finally:
            for signal_number in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signal_number)
            await self.close()

    def stop(self) -> None:
        if self._stopping is not None:
            log.info("stopping")
            self._stopping.set()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None
        manager = getattr(self, "containers", None)
        if manager is not None:
            await asyncio.to_thread(manager.release_cgroup_parent)
        ready = getattr(self, "networks_ready", None)
        if ready is not None:
            await asyncio.wait([ready])
        networks = getattr(self, "networks", None)
        if networks is not None:
            await asyncio.to_thread(networks.close)
        build_cache = getattr(self, "build_cache", None)
        if build_cache is not None:
            await asyncio.to_thread(build_cache.flush)

    def _log_request(self, request: RequestRecord) -> None:
        self.api_log.record(request)
        log.debug(
            "%s %s%s -> %d",
            request.method,
            request.path,
            f"?{request.query}" if request.query else "",
            request.status,
        )


def _load_engine_id(path: Path) -> str:
    """The engine's ID (a UUID, as Docker 23+ keeps in its data root), made once."""
    try:
        text = path.read_text().strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    engine_id = str(uuid.uuid4())
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as file:
        file.write(engine_id + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.rename(temporary, path)
    return engine_id
