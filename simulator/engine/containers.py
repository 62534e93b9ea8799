"""The engine's containers: records kept atomically under data_root/containers/<id>/, names,
ID and name resolution, and the state machine driven through the OCI runtime's CLI."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.engine.container_spec import (
    CreateError,
    CreateRequest,
    build_spec,
    check_allowed,
    container_mounts,
    merge_image_config,
    parse_create_body,
    parse_signal,
    process_args,
)
from simulator.images.oci import ImageConfig
from simulator.images.reference import InvalidReference
from simulator.images.store import ImageNotFound
from simulator.network import NetworkError, NetworkManager
from simulator.snapshots.mount import Mount, unmount
from simulator.snapshots.overlay import SnapshotError
from simulator.volumes import ANONYMOUS_LABEL, VolumeStore

if TYPE_CHECKING:
    from simulator.build.executor import RunNetwork
    from simulator.engine.daemon import ContainerCounts, Engine

RECORD_FILE = "config.v2.json"
ZERO_TIME = "0001-01-01T00:00:00Z"
CGROUP_PARENT_ENV = "SLIPWAY_CGROUP_PARENT"  # until the engine has a flag for it
BIND_ROOTS_ENV = "SLIPWAY_ALLOWED_BIND_ROOTS"  # colon-separated
LOG_ANNOTATION = "org.slipway.log.path"
RUNTIME_ROOT_BASE = Path("/run/slipway")
_VALID_NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_ADJECTIVES = (
    "admiring adoring affectionate agitated amazing angry awesome blissful bold boring brave "
    "busy charming clever compassionate competent condescending confident cool cranky crazy "
    "dazzling determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic "
    "fervent festive flamboyant focused friendly frosty funny gallant gifted goofy gracious "
    "happy hardcore heuristic hopeful hungry infallible inspiring jolly jovial keen kind "
    "laughing loving lucid magical modest musing mystifying naughty nervous nice nifty "
    "nostalgic objective optimistic peaceful pedantic pensive practical priceless quirky "
    "quizzical relaxed reverent romantic sad serene sharp silly sleepy stoic strange stupefied "
    "suspicious sweet tender thirsty trusting upbeat vibrant vigilant vigorous wizardly "
    "wonderful xenodochial youthful zealous zen"
).split()
_SURNAMES = (
    "albattani allen almeida archimedes ardinghelli aryabhata austin babbage banach bardeen "
    "bartik bassi beaver bell bhabha bhaskara blackwell bohr booth borg bose boyd brahmagupta "
    "brattain brown buck burnell cannon carson cartwright cerf chandrasekhar chaplygin "
    "chatelet chatterjee chebyshev clarke cohen colden cori cray curie darwin davinci dewdney "
    "dhawan diffie dijkstra dirac driscoll dubinsky easley edison einstein elbakyan elgamal "
    "elion ellis engelbart euclid euler faraday feistel fermat fermi feynman franklin "
    "gagarin galileo galois ganguly gates gauss germain goldberg goldstine goldwasser golick "
    "goodall gould greider grothendieck haibt hamilton haslett hawking heisenberg hellman "
    "hermann herschel hertz heyrovsky hodgkin hofstadter hoover hopper hugle hypatia ishizaka "
    "jackson jang jennings jepsen johnson joliot jones kalam kapitsa kare keldysh keller "
    "kepler khayyam khorana kilby kirch knuth kowalevski lalande lamarr lamport leakey "
    "leavitt lederberg lehmann lewin lichterman liskov lovelace lumiere mahavira margulis "
    "matsumoto maxwell mayer mccarthy mcclintock mclean mcnulty meitner mendel mendeleev "
    "merkle mestorf mirzakhani montalcini moore morse moser murdock napier nash neumann "
    "newton nightingale nobel noether northcutt noyce panini pare pascal pasteur payne "
    "perlman pike poincare poitras proskuriakova ptolemy raman ramanujan rhodes ride ritchie "
    "robinson roentgen rosalind rubin saha sammet sanderson satoshi shamir shannon shaw "
    "shirley shockley shtern sinoussi snyder solomon spence stonebraker sutherland swanson "
    "swartz swirles taussig tesla tharp thompson torvalds tu turing varahamihira vaughan "
    "villani visvesvaraya volhard wescoff wilbur wiles williams williamson wilson wing wozniak "
    "wright wu yalow yonath zhukovsky"
).split()

log = logging.getLogger("simulator.engine.containers")


class ContainerError(Exception):
    """An error with the HTTP status Docker answers it with."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NoSuchContainer(ContainerError):
    status = 404

    def __init__(self, reference: str) -> None:
        super().__init__(f"No such container: {reference}")


class NotModified(ContainerError):
    status = 304


def now_rfc3339() -> str:
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}000Z"


def parse_rfc3339(text: str) -> float | None:
    """Unix seconds of an RFC 3339 time, or None for Go's zero time."""
    if not text or text.startswith("0001-"):
        return None
    main, _, rest = text.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(main).replace(tzinfo=UTC).timestamp()
    fraction = rest[:6]
    return seconds + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


@dataclass
class Container:
    """One container's record, as kept on disk."""

    id: str
    name: str  # with its leading "/"
    created: str
    image_id: str
    body: dict[str, Any]  # the create request's body, to rebuild the spec at each start
    config: dict[str, Any]  # the merged Config, as inspect shows it
    host_config: dict[str, Any]
    path: str
    args: list[str]
    mounts: list[dict[str, Any]] = field(default_factory=list)  # inspect's Mounts
    volumes: dict[str, str] = field(default_factory=dict)  # volume_key -> volume name
    status: str = "created"  # created, running, exited, removing, dead
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    restart_count: int = 0
    task: bool = False  # the runtime holds a task (created or running) for it
    paused: bool = False  # running, with its cgroup frozen
    restarting: bool = False  # exited, and its restart policy will start it again
    manually_stopped: bool = False  # stop, kill or rm: no restart policy applies
    exits: int = 0  # how many times it has exited, for wait's next-exit
    network_files: dict[str, str] = field(default_factory=dict)  # /etc/hosts ... -> file

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def short_name(self) -> str:
        return self.name.lstrip("/")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Container:
        return cls(**value)


class ContainerStore:
    """Container records under ``root``/<id>/config.v2.json, names and lookups. Thread-safe."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(mode=0o710, parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._containers: dict[str, Container] = {}
        for directory in sorted(self.root.iterdir()):
            record = directory / RECORD_FILE
            if record.is_file():
                try:
                    container = Container.from_json(json.loads(record.read_text()))
                except (ValueError, TypeError) as error:
                    log.warning("skipping unreadable container record %s: %s", record, error)
                    continue
                self._containers[container.id] = container

    def directory(self, container_id: str) -> Path:
        return self.root / container_id

    def all(self) -> list[Container]:
        """Every container, newest first."""
        with self.lock:
            found = list(self._containers.values())
        return sorted(found, key=lambda c: c.created, reverse=True)

    def save(self, container: Container) -> None:
        with self.lock:
            directory = self.directory(container.id)
            directory.mkdir(mode=0o710, exist_ok=True)
            temporary = directory / f".{RECORD_FILE}.tmp"
            with open(temporary, "w") as file:
                json.dump(container.to_json(), file)
                file.flush()
                os.fsync(file.fileno())
            os.rename(temporary, directory / RECORD_FILE)
            self._containers[container.id] = container

    def forget(self, container_id: str) -> None:
        with self.lock:
            self._containers.pop(container_id, None)

    def get(self, reference: str) -> Container:
        """By full ID, by name (with or without "/"), or by a unique ID prefix."""
        with self.lock:
            if reference in self._containers:
                return self._containers[reference]
            name = "/" + reference.lstrip("/")
            for container in self._containers.values():
                if container.name == name:
                    return container
            if reference and re.fullmatch(r"[0-9a-f]+", reference):
                matches = [c for i, c in self._containers.items() if i.startswith(reference)]
                if len(matches) > 1:
                    raise ContainerError(
                        f"multiple IDs found with provided prefix: {reference}", 400
                    )
                if matches:
                    return matches[0]
        raise NoSuchContainer(reference)

    def owner_of_name(self, name: str) -> Container | None:
        with self.lock:
            for container in self._containers.values():
                if container.name == name:
                    return container
        return None

    def check_name(self, name: str) -> str:
        """The name with its "/", if it is valid and free; Docker's errors otherwise."""
        if not _VALID_NAME.fullmatch(name):
            raise ContainerError(
                f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                400,
            )
        full = "/" + name.lstrip("/")
        owner = self.owner_of_name(full)
        if owner is not None:
            raise ContainerError(
                f'Conflict. The container name "{full}" is already in use by container '
                f'"{owner.id}". You have to remove (or rename) that container to be able to '
                "reuse that name.",
                409,
            )
        return full

    def generate_name(self) -> str:
        for attempt in range(10):
            name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_SURNAMES)}"
            if attempt > 0:
                name += str(secrets.randbelow(10))
            if self.owner_of_name("/" + name) is None:
                return "/" + name
        return "/" + secrets.token_hex(6)

    def new_id(self) -> str:
        while True:
            candidate = secrets.token_hex(32)
            if not candidate[:12].isdigit() and candidate not in self._containers:
                return candidate


def is_mount_point(path: Path) -> bool:
    """Whether something is mounted on ``path`` in this mount namespace, as
    /proc/self/mountinfo says: unlike os.path.ismount, this sees a bind mount of a directory
    of the same filesystem (a snapshot with no parent layer, as FROM scratch gives)."""
    target = os.path.abspath(path)
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == target:
                return True
    return False


def _task_error(runtime_message: str) -> ContainerError:
    """A runtime failure in dockerd's words; a missing or unrunnable program is the
    request's fault (400), from which the CLI makes exit status 127 or 126."""
    message = f"failed to create task for container: {runtime_message}"
    lowered = runtime_message.lower()
    bad_request = any(
        phrase in lowered
        for phrase in ("not found", "no such file or directory", "permission denied")
    )
    return ContainerError(message, 400 if bad_request else 500)


def runtime_root_for(data_root: Path) -> Path:
    """The runtime's state directory for an engine: short, because a shim's socket path
    (root/<64-hex ID>/shim.sock) must fit in AF_UNIX's 108 bytes."""
    digest = hashlib.sha256(str(data_root.absolute()).encode()).hexdigest()[:12]
    return RUNTIME_ROOT_BASE / digest


def _runtime_command(runtime_root: Path, *arguments: str) -> list[str]:
    return [sys.executable, "-m", "simulator.runtime", "--root", str(runtime_root), *arguments]


class ContainerManager:
    """Containers of one engine: create, start, stop, kill, wait, remove, with events."""

    def __init__(
        self,
        engine: Engine,
        *,
        cgroup_parent: str | None = None,
        allowed_bind_roots: Sequence[str] | None = None,
    ) -> None:
        self.engine = engine
        self.store = ContainerStore(engine.data_root / "containers")
        self.runtime_root = runtime_root_for(engine.data_root)
        self.runtime_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        volumes = getattr(engine, "volumes", None)
        if not isinstance(volumes, VolumeStore):
            volumes = VolumeStore(engine.data_root / "volumes")
            engine.volumes = volumes  # type: ignore[attr-defined]
        self.volumes: VolumeStore = volumes
        self.cgroup_parent = (
            cgroup_parent or os.environ.get(CGROUP_PARENT_ENV) or f"/slipway/{engine.id}"
        )
        roots = allowed_bind_roots
        if roots is None:
            roots = [root for root in os.environ.get(BIND_ROOTS_ENV, "").split(":") if root]
        self.allowed_bind_roots = list(roots)
        self.changed = threading.Condition(self.store.lock)
        self._removed: set[str] = set()
        self._locks: dict[str, threading.Lock] = {}
        # The engine's networks, which it starts once its sockets listen (networks_started);
        # None while they start, and for good when networking is off.
        self.networks: NetworkManager | None = None
        self._networks_settled = threading.Event()
        engine.container_counts = self.counts
        engine.containers_of_image = self.containers_of_image
        from simulator.engine.execs import ExecManager  # it builds on this module

        self.execs = ExecManager(self)
        self._recover()

    # -- hooks the engine consults ------------------------------------------------------

    def counts(self) -> ContainerCounts:
        """The counts /info reports."""
        from simulator.engine.daemon import ContainerCounts

        containers = self.store.all()
        running = sum(1 for c in containers if c.running and not c.paused)
        paused = sum(1 for c in containers if c.running and c.paused)
        stopped = len(containers) - running - paused
        return ContainerCounts(len(containers), running, paused, stopped)

    def containers_of_image(self, image_id: str) -> list[tuple[str, bool]]:
        """(ID, running) of each container made from the image: rmi and prune ask."""
        return [(c.id, c.running) for c in self.store.all() if c.image_id == image_id]

    # -- create -------------------------------------------------------------------------

    def create(self, body: Any, name: str = "") -> Container:
        """POST /containers/create: check, record, prepare the root filesystem and the
        volumes. Raises CreateError or ContainerError with Docker's status and words."""
        request = parse_create_body(body)
        check_allowed(request, self.allowed_bind_roots)
        log_config = request.host_config["LogConfig"]  # dockerd's defaults, as inspect shows
        log_config["Type"] = log_config["Type"] or "json-file"
        log_config["Config"] = log_config["Config"] or {}
        image_name = request.config["Image"]
        if not image_name and not (request.config["Entrypoint"] or request.config["Cmd"]):
            raise ContainerError("no command specified", 400)  # dockerd's check for no image
        try:
            image = self.engine.images.get(image_name)
        except InvalidReference as error:
            raise ContainerError(str(error), 400) from None
        config = merge_image_config(request, image.config)
        with self.store.lock:
            full_name = self.store.check_name(name) if name else self.store.generate_name()
            container_id = self.store.new_id()
            container = Container(
                id=container_id,
                name=full_name,
                created=now_rfc3339(),
                image_id=image.id,
                body=body,
                config=config,
                host_config=request.host_config,
                path=(process_args(config) or [""])[0],
                args=process_args(config)[1:],
                status="created",
            )
            self.store.save(container)  # reserves the name
        try:
            networks = self._network_manager()
            if networks is not None:
                self._configure_network(container, networks)
            self.engine.images.rootfs_mounts(container_id, image)
            (self.store.directory(container_id) / "rootfs").mkdir(exist_ok=True)
            for mount in container_mounts(request, image.config):
                if mount.type == "volume":
                    volume = self.volumes.create(
                        mount.source or None,
                        mount.driver or "local",
                        mount.driver_options or None,
                        mount.labels or None,
                        reference=container_id,
                    )
                    container.volumes[mount.volume_key] = volume.Name
                    container.mounts.append(
                        {
                            "Type": "volume",
                            "Name": volume.Name,
                            "Source": volume.Mountpoint,
                            "Destination": mount.destination,
                            "Driver": "local",
                            "Mode": "z",
                            "RW": not mount.read_only,
                            "Propagation": "",
                        }
                    )
                elif mount.type == "bind":
                    container.mounts.append(
                        {
                            "Type": "bind",
                            "Source": mount.source,
                            "Destination": mount.destination,
                            "Mode": "ro" if mount.read_only else "",
                            "RW": not mount.read_only,
                            "Propagation": mount.propagation or "rprivate",
                        }
                    )
                else:
                    container.mounts.append(
                        {
                            "Type": "tmpfs",
                            "Source": "",
                            "Destination": mount.destination,
                            "Mode": "",
                            "RW": not mount.read_only,
                            "Propagation": "",
                        }
                    )
            self.store.save(container)
        except BaseException:
            self._discard(container)
            raise
        self.event(container, "create")
        return container

    # -- networks -----------------------------------------------------------------------

    def networks_started(self, networks: NetworkManager | None) -> None:
        """The engine's network manager is up (None: networking is off). Containers that
        stopped while the engine was down give their networks back, removed ones are
        forgotten, and those made before networking get theirs recorded; then the creates
        and starts waiting for networks go on."""
        self.networks = networks
        try:
            if networks is not None:
                self._adopt_networks(networks)
        finally:
            self._networks_settled.set()

    def _adopt_networks(self, networks: NetworkManager) -> None:
        containers = {c.id: c for c in self.store.all()}
        for container_id in list(networks.sandboxes):
            container = containers.get(container_id)
            if container is None:
                networks.forget(container_id)
                continue
            with self._lock(container_id):
                if not container.running:
                    networks.release(container_id)
        for container in containers.values():
            if container.id not in networks.sandboxes:
                try:
                    self._configure_network(container, networks)
                except ContainerError as error:
                    log.warning("no network for container %s: %s", container.id, error)

    def _network_manager(self) -> NetworkManager | None:
        """The engine's networks, once they have started (None when networking is off)."""
        self._networks_settled.wait()
        return self.networks

    def _configure_network(self, container: Container, networks: NetworkManager) -> None:
        """Record what the container asks of the network (``docker create``)."""
        request = parse_create_body(container.body)
        host_config = dict(container.host_config)
        mode = host_config.get("NetworkMode") or "bridge"
        if mode.startswith("container:"):
            other = self.store.get(mode.partition(":")[2])
            if other.id == container.id:
                raise ContainerError("cannot join own network namespace", 500)
            host_config["NetworkMode"] = f"container:{other.id}"
        try:
            networks.configure(
                container.id,
                container.name,
                container.config,
                host_config,
                request.networking_config,
            )
        except NetworkError as error:
            raise ContainerError(error.message, error.status) from None

    def _start_network(self, container: Container) -> tuple[dict[str, str], dict[str, str]]:
        """The container's network made for a start: the namespace to join and the files to
        mount at /etc/hosts, /etc/hostname and /etc/resolv.conf (both empty when networking
        is off). Docker's errors, with nothing left held, when it can't be made."""
        networks = self._network_manager()
        if networks is None:
            return {}, {}
        if container.id not in networks.sandboxes:
            self._configure_network(container, networks)
        mode = container.host_config.get("NetworkMode") or "bridge"
        if mode.startswith("container:"):
            other = self._joinable(mode.partition(":")[2])
            container.config["Hostname"] = other.config.get("Hostname") or other.id[:12]
            container.config["Domainname"] = other.config.get("Domainname") or ""
        elif mode == "host" and not container.config.get("Hostname"):
            container.config["Hostname"] = os.uname().nodename  # as dockerd: the node's
        try:
            key = networks.prepare_sandbox(container.id)
        except NetworkError as error:
            message = f"failed to set up container networking: {error.message}"
            raise ContainerError(message, error.status) from None
        try:
            files = networks.write_files(container.id, self.store.directory(container.id))
        except BaseException:
            networks.release(container.id)
            raise
        container.network_files = files
        return {"network": key}, files

    def _joinable(self, reference: str) -> Container:
        """The container whose network namespace a ``container:NAME`` one joins."""
        other = self.store.get(reference)
        if other.restarting:
            raise ContainerError(
                f"cannot join network namespace of container: Container {reference} is "
                "restarting, wait until the container is running",
                409,
            )
        if not other.running:
            raise ContainerError(
                "cannot join network namespace of a non running container: container "
                f"{other.short_name} is {other.status}",
                409,
            )
        return other

    def _release_network(self, container: Container) -> None:
        """Give back what the container's network held while it ran. Never waits for the
        networks to start: until they have, there is nothing to give back yet (the engine
        releases the networks of stopped containers when they start)."""
        if self.networks is not None:
            self.networks.release(container.id)

    def build_network(self, container_id: str, network_mode: str) -> RunNetwork:
        """The network of a build's RUN container (the builder's NetworkProvider): the
        default bridge for ``default``, else the network ``network_mode`` names, ``host`` or
        ``none``. Its ``release`` gives everything back."""
        from simulator.build.executor import BuildError, RunNetwork, isolated_network

        networks = self._network_manager()
        mode = "bridge" if network_mode in ("", "default") else network_mode
        if networks is None or mode == "none":
            return isolated_network(container_id, mode)
        if mode.startswith("container:"):
            raise BuildError(f"network mode {mode} is not supported for a build", status=400)
        directory = self.engine.data_root / "build" / "network" / container_id

        def release() -> None:
            networks.forget(container_id)
            shutil.rmtree(directory, ignore_errors=True)

        try:
            networks.configure(
                container_id, container_id[:12], {"Hostname": container_id[:12]},
                {"NetworkMode": mode},
            )  # fmt: skip
            key = networks.prepare_sandbox(container_id)
            files = networks.write_files(container_id, directory)
        except NetworkError as error:
            release()
            raise BuildError(
                f"failed to set up container networking: {error.message}", status=error.status
            ) from None
        return RunNetwork(
            namespace_paths={"network": key},
            resolv_conf=files["/etc/resolv.conf"],
            hosts=files["/etc/hosts"],
            release=release,
        )

    def network_settings(self, container: Container, legacy_aliases: bool = False) -> dict:
        """``NetworkSettings`` of inspect ({} when the container has no network record)."""
        networks = self._network_manager()
        if networks is None or container.id not in networks.sandboxes:
            return {}
        try:
            return networks.settings(container.id, legacy_aliases)
        except NetworkError:  # removed meanwhile
            return {}

    # -- start --------------------------------------------------------------------------

    def _lock(self, container_id: str) -> threading.Lock:
        with self.store.lock:
            return self._locks.setdefault(container_id, threading.Lock())

    def prepare(self, reference: str) -> Container:
        """Give the container a runtime task (created, not started) so that attach can
        reach its shim before start. A no-op for a container that has one."""
        container = self.store.get(reference)
        with self._lock(container.id):
            if not container.task and container.status != "running":
                self._create_task(container)
        return container

    def start(self, reference: str, *, by_policy: bool = False) -> Container:
        """Start the container; ``by_policy`` when its restart policy does it. A container
        with AutoRemove (``--rm``) that fails to start is removed, as dockerd does (and as
        the CLI waits for)."""
        container = self.store.get(reference)
        try:
            self._start(container, by_policy)
        except (ContainerError, CreateError):
            auto_remove = container.host_config.get("AutoRemove")
            if (
                auto_remove
                and not container.running
                and container.status not in ("removing", "dead")
            ):
                try:
                    self.remove(container.id, force=True, volumes=True)
                except ContainerError as error:
                    log.warning("auto-remove of %s failed: %s", container.id, error)
            raise
        self.event(container, "start")
        self._watch(container)
        return container

    def _start(self, container: Container, by_policy: bool) -> None:
        with self._lock(container.id):
            if container.running:
                raise NotModified("container already started")
            if by_policy and (container.manually_stopped or container.id in self._removed):
                raise ContainerError("the container was stopped before its restart", 409)
            if container.status in ("removing", "dead"):
                raise ContainerError(f"container {container.id} is marked for removal", 409)
            if not container.task:
                try:
                    self._create_task(container)
                except (ContainerError, CreateError) as error:
                    container.error = str(error)
                    container.exit_code = 127 if error.status == 400 else 128
                    self.store.save(container)
                    raise
            result = self._runtime("start", container.id)
            if result.returncode != 0:
                error = _task_error(result.stderr.strip() or "the runtime failed")
                self._teardown_task(container)
                container.error = str(error)
                self.store.save(container)
                raise error
            state = self._runtime_state(container.id)
            with self.changed:
                container.status = "running"
                container.pid = int(state.get("pid") or 0)
                container.started_at = now_rfc3339()
                container.finished_at = ZERO_TIME
                container.exit_code = 0
                container.error = ""
                container.oom_killed = False
                if not by_policy:
                    container.manually_stopped = False
                    container.restart_count = 0
                self.store.save(container)

    def _create_task(self, container: Container) -> None:
        request = parse_create_body(container.body)
        image = self.engine.images.get(container.image_id)
        directory = self.store.directory(container.id)
        rootfs = directory / "rootfs"
        rootfs.mkdir(exist_ok=True)
        self._mount_rootfs(container.id, rootfs)
        try:
            namespaces, files = self._start_network(container)
            try:
                self._create_runtime_task(container, request, image.config, namespaces, files)
            except BaseException:
                self._release_network(container)
                raise
        except BaseException:
            self._unmount_rootfs(rootfs)
            raise
        container.task = True
        self.store.save(container)

    def _create_runtime_task(
        self,
        container: Container,
        request: CreateRequest,
        image_config: ImageConfig,
        namespaces: dict[str, str],
        files: dict[str, str],
    ) -> None:
        directory = self.store.directory(container.id)
        volume_mounts = {
            key: str(self.volumes.data_path(name)) for key, name in container.volumes.items()
        }
        spec = build_spec(
            request,
            image_config,
            str(directory / "rootfs"),
            container.id,
            allowed_bind_roots=self.allowed_bind_roots,
            hostname=container.config.get("Hostname") or container.id[:12],
            cgroups_path=f"{self.cgroup_parent}/{container.id}",
            volume_mounts=volume_mounts,
            resolv_conf_path=files.get("/etc/resolv.conf"),
            hosts_path=files.get("/etc/hosts"),
            hostname_path=files.get("/etc/hostname"),
            namespace_paths=namespaces,
            annotations={LOG_ANNOTATION: str(self.log_path(container))},
        )
        (directory / "config.json").write_text(json.dumps(spec))
        result = self._runtime("create", container.id, "--bundle", str(directory))
        if result.returncode != 0:
            raise _task_error(result.stderr.strip() or "the runtime failed")

    def _mount_rootfs(self, container_id: str, rootfs: Path) -> None:
        if is_mount_point(rootfs):
            return
        mounts: list[Mount] = self.engine.images.snapshots.mounts(container_id)
        for mount in mounts:
            mount.mount(rootfs)

    def _unmount_rootfs(self, rootfs: Path) -> None:
        while is_mount_point(rootfs):
            try:
                unmount(rootfs)
            except OSError as error:
                log.warning("cannot unmount %s: %s", rootfs, error)
                return

    def _teardown_task(self, container: Container) -> None:
        """Delete the runtime's task, give back its network and unmount the root
        filesystem."""
        self._runtime("delete", "--force", container.id)
        self._release_network(container)
        self._unmount_rootfs(self.store.directory(container.id) / "rootfs")
        container.task = False

    @contextlib.contextmanager
    def held_root_filesystem(self, reference: str) -> Iterator[tuple[Container, Path]]:
        """The container and its root filesystem, mounted, while nothing starts, stops or
        removes it (docker cp and export). Call it in a mount namespace of the caller's own:
        a root filesystem mounted here for a stopped container is seen there only, and goes
        with it."""
        container = self.store.get(reference)
        with self._lock(container.id):
            container = self.store.get(container.id)  # not removed meanwhile
            rootfs = self.store.directory(container.id) / "rootfs"
            self._mount_rootfs(container.id, rootfs)
            yield container, rootfs

    def size_rw(self, container: Container) -> int:
        """Bytes the container has written to its own layer, counted as Docker counts them."""
        try:
            return self.engine.images.snapshots.content_size(container.id)
        except (SnapshotError, OSError):
            return 0

    def sizes(self, container: Container) -> tuple[int, int]:
        """``SizeRw`` and ``SizeRootFs``: what the container wrote, and that plus its image."""
        size_rw = self.size_rw(container)
        try:
            image_size = self.engine.images.get(container.image_id).size
        except ImageNotFound:  # removed with --force while the container stays
            image_size = 0
        return size_rw, size_rw + image_size

    def log_path(self, container: Container) -> Path:
        return self.store.directory(container.id) / f"{container.id}-json.log"

    # -- exits --------------------------------------------------------------------------

    def _watch(self, container: Container) -> None:
        thread = threading.Thread(
            target=self._monitor, args=(container,), name=f"monitor-{container.id[:12]}"
        )
        thread.daemon = True
        thread.start()

    def _monitor(self, container: Container) -> None:
        """Hold an output-less attach on the shim: it closes when the container exits."""
        sock_path = self.runtime_root / container.id / "shim.sock"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(str(sock_path))
                request = {"op": "attach", "stdout": False, "stderr": False}
                client.sendall(json.dumps(request).encode() + b"\n")
                while client.recv(65536):
                    pass
        except OSError:
            pass
        state: dict[str, Any] = {}
        for _ in range(100):  # the shim writes the exit status before it lets clients go
            state = self._runtime_state(container.id)
            if state.get("status") == "stopped" or not state:
                break
            time.sleep(0.05)
        self._exited(container, state)

    def _exited(
        self, container: Container, state: dict[str, Any], *, recovering: bool = False
    ) -> None:
        """The container's init has exited: record it, and restart or remove it as its
        policy says (a restart in the background while the engine is still ``recovering``,
        since a start waits for the networks, which start after that)."""
        with self._lock(container.id):
            if container.status != "running":
                return
            self._teardown_task(container)
            with self.changed:
                container.status = "exited"
                container.paused = False
                container.pid = 0
                container.exit_code = int(state.get("exitStatus", 255) or 0)
                container.oom_killed = bool(state.get("oomKilled"))
                container.finished_at = now_rfc3339()
                container.exits += 1
                self.store.save(container)
                self.changed.notify_all()
        self.execs.container_stopped(container.id)
        attributes = {"exitCode": str(container.exit_code)}
        self.event(container, "die", attributes)
        if self._should_restart(container):
            if recovering:
                threading.Thread(
                    target=self._restart_by_policy, args=(container,), daemon=True
                ).start()
            else:
                self._restart_by_policy(container)
        elif container.host_config.get("AutoRemove"):
            try:
                self.remove(container.id, force=True, volumes=True)
            except ContainerError as error:
                log.warning("auto-remove of %s failed: %s", container.id, error)

    def _should_restart(self, container: Container) -> bool:
        policy = container.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if container.manually_stopped or container.id in self._removed:
            return False
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure":
            retries = int(policy.get("MaximumRetryCount") or 0)
            return container.exit_code != 0 and (not retries or container.restart_count < retries)
        return False

    def _restart_by_policy(self, container: Container) -> None:
        """Start it again after dockerd's back-off: 100 ms, doubling, at most a minute."""
        delay = min(0.1 * 2 ** min(container.restart_count, 10), 60.0)
        with self.changed:
            container.restarting = True
        time.sleep(delay)
        with self.changed:
            container.restarting = False
            if container.manually_stopped or container.id in self._removed:
                self.changed.notify_all()
                return
            container.restart_count += 1
        try:
            self.start(container.id, by_policy=True)
        except ContainerError as error:
            log.warning("restart of %s failed: %s", container.id, error)

    def _recover(self) -> None:
        """After a restart of the engine: containers whose task is gone have exited."""
        for container in self.store.all():
            if container.status == "running":
                state = self._runtime_state(container.id)
                if state.get("status") in ("running", "paused"):
                    container.paused = state.get("status") == "paused"
                    self._watch(container)
                else:
                    self._exited(container, state, recovering=True)

    # -- stop, kill, restart ------------------------------------------------------------

    def stop(self, reference: str, timeout: int | None = None, stop_signal: str = "") -> None:
        """The stop signal, then SIGKILL after ``timeout`` seconds (-1: wait for ever);
        NotModified if it isn't running."""
        container = self.store.get(reference)
        with self._lock(container.id):  # not while a restart policy is starting it
            if not container.running:
                container.manually_stopped = True  # and no restart policy brings it back
                raise NotModified("container already stopped")
        raw_signal = stop_signal or container.config.get("StopSignal") or "SIGTERM"
        number = parse_signal(raw_signal)
        if timeout is None:
            timeout = container.config.get("StopTimeout")
            timeout = 10 if timeout is None else timeout
        with self.changed:
            container.manually_stopped = True
        self._kill(container, number, thaw=True)
        exits = container.exits
        if not self._wait_exit(container, exits, None if timeout < 0 else timeout):
            self._kill(container, signal.SIGKILL)
            self._wait_exit(container, exits, 30)
        self.event(container, "stop")

    def kill(self, reference: str, raw_signal: str = "") -> None:
        """Send a signal (SIGKILL by default) to the container's init. Errors read as
        dockerd's kill route words them: ``cannot kill container: NAME: ...``."""
        try:
            number = parse_signal(raw_signal or "SIGKILL")
            if not (1 <= number <= 31 or signal.SIGRTMIN <= number <= signal.SIGRTMAX):
                raise ContainerError(f"the linux daemon does not support signal {number}", 400)
            container = self.store.get(reference)
            if not container.running:
                raise ContainerError(f"container {container.id} is not running", 409)
        except (ContainerError, CreateError) as error:
            message = f"cannot kill container: {reference}: {error}"
            raise ContainerError(message, error.status) from None
        with self.changed:
            container.manually_stopped = True
        self._kill(container, number)
        if number == signal.SIGKILL:
            self._wait_exit(container, container.exits, 30)

    def _kill(self, container: Container, number: int, thaw: bool = False) -> None:
        """Signal the container's init; ``thaw`` a paused one so that it can act on it."""
        self._runtime("kill", container.id, str(number))
        self.event(container, "kill", {"signal": str(number)})
        if container.paused and (thaw or number == signal.SIGKILL):
            self._runtime("resume", container.id)
            with self.changed:
                container.paused = False
                self.store.save(container)

    def pause(self, reference: str) -> None:
        container = self.store.get(reference)
        with self._lock(container.id):
            if not container.running:
                raise ContainerError(f"Container {container.id} is not running", 409)
            if container.paused:
                raise ContainerError(f"Container {container.id} is already paused", 409)
            result = self._runtime("pause", container.id)
            if result.returncode != 0:
                raise ContainerError(result.stderr.strip() or "cannot pause", 500)
            with self.changed:
                container.paused = True
                self.store.save(container)
        self.event(container, "pause")

    def unpause(self, reference: str) -> None:
        container = self.store.get(reference)
        with self._lock(container.id):
            if not container.running or not container.paused:
                raise ContainerError(f"Container {container.id} is not paused", 409)
            result = self._runtime("resume", container.id)
            if result.returncode != 0:
                raise ContainerError(result.stderr.strip() or "cannot unpause", 500)
            with self.changed:
                container.paused = False
                self.store.save(container)
        self.event(container, "unpause")

    def _wait_exit(self, container: Container, exits: int, timeout: float | None) -> bool:
        with self.changed:
            return self.changed.wait_for(
                lambda: container.exits > exits or not container.running, timeout
            )

    def restart(self, reference: str, timeout: int | None = None, stop_signal: str = "") -> None:
        """Stop (if running), then start."""
        container = self.store.get(reference)
        if container.running:
            with contextlib.suppress(NotModified):  # it may have exited meanwhile
                self.stop(container.id, timeout, stop_signal)
        with contextlib.suppress(NotModified):  # or its restart policy started it again
            self.start(container.id)
        self.event(container, "restart")

    def resize(self, reference: str, height: int, width: int) -> None:
        """Resize the container's terminal (a no-op without one)."""
        container = self.store.get(reference)
        if not container.task:
            raise ContainerError(f"Container {container.id} is not running", 409)
        self._shim_request(container, {"op": "resize", "height": height, "width": width})

    def _shim_request(self, container: Container, request: dict[str, Any]) -> None:
        sock_path = self.runtime_root / container.id / "shim.sock"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(5)
                client.connect(str(sock_path))
                client.sendall(json.dumps(request).encode() + b"\n")
                client.recv(4096)
        except OSError as error:
            raise ContainerError(f"Container {container.id} is not running: {error}", 409) from None

    def top(self, reference: str, ps_args: str = "-ef") -> dict[str, Any]:
        """``docker top``: the host's ``ps`` output, limited to the container's processes,
        as dockerd does it."""
        container = self.store.get(reference)
        if not container.running:
            raise ContainerError(f"container {container.id} is not running", 409)
        pids = self._cgroup_pids(container)
        result = subprocess.run(
            ["ps", *ps_args.split()], capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            # dockerd's words (the first line ps printed), but a 400 where dockerd says 500:
            # ps refused the request's own ps_args
            reason = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[0]
            raise ContainerError(f"ps: {reason}", 400)
        lines = result.stdout.splitlines()
        titles = lines[0].split() if lines else []
        if "PID" not in titles:
            raise ContainerError(f"Couldn't find PID field in ps output: {titles}", 500)
        pid_column = titles.index("PID")
        processes = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > pid_column and fields[pid_column].isdigit():
                if int(fields[pid_column]) in pids:
                    processes.append(fields)
        return {"Titles": titles, "Processes": processes}

    def release_cgroup_parent(self) -> None:
        """Remove the engine's cgroup parent, and the empty parents above it, in every
        hierarchy; cgroups that still hold containers (kept for live restore) stay."""
        parts = [part for part in self.cgroup_parent.split("/") if part]
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            for depth in range(len(parts), 0, -1):
                try:
                    (hierarchy.joinpath(*parts[:depth])).rmdir()
                except OSError:
                    break

    def _cgroup_pids(self, container: Container) -> set[int]:
        relative = f"{self.cgroup_parent}/{container.id}".lstrip("/")
        for hierarchy in ("", "pids", "memory", "cpu", "systemd"):
            procs = Path("/sys/fs/cgroup", hierarchy, relative, "cgroup.procs")
            if procs.is_file():
                return {int(pid) for pid in procs.read_text().split()}
        return {container.pid} if container.pid else set()

    # -- wait ---------------------------------------------------------------------------

    def wait_condition(self, reference: str, condition: str) -> Callable[[float], Container | None]:
        """A blocking function of a timeout: the container once ``condition`` holds, None
        if it doesn't yet. The starting point (the exits so far) is taken now, before the
        caller answers."""
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise ContainerError(f"invalid condition: {condition!r}", 400)
        container = self.store.get(reference)
        exits = container.exits

        def ready() -> bool:
            if container.id in self._removed or condition == "removed":
                return container.id in self._removed
            if condition == "next-exit":
                return container.exits > exits
            return container.status not in ("running", "removing")

        def wait(timeout: float) -> Container | None:
            with self.changed:
                return container if self.changed.wait_for(ready, timeout) else None

        return wait

    # -- remove, rename, prune ----------------------------------------------------------

    def remove(self, reference: str, force: bool = False, volumes: bool = False) -> None:
        """DELETE /containers/{id}: ``force`` kills a running one; ``volumes`` removes its
        anonymous volumes."""
        container = self.store.get(reference)
        if (container.running or container.restarting) and not force:
            if container.paused:
                problem = "container is paused and must be unpaused first"
            else:
                state = "restarting" if container.restarting else "running"
                problem = (
                    f"container is {state}: stop the container before removing or force remove"
                )
            # dockerd 28.2 names the container as the request did
            raise ContainerError(f'cannot remove container "{reference}": {problem}', 409)
        with self.changed:
            container.manually_stopped = True
        if container.running:
            self._kill(container, signal.SIGKILL)
            self._wait_exit(container, container.exits, 30)
        with self._lock(container.id):
            if container.id in self._removed:
                return
            with self.changed:
                container.status = "removing"
            self._teardown_task(container)
            self._discard(container, remove_anonymous=volumes)
        self.event(container, "destroy")

    def _discard(self, container: Container, remove_anonymous: bool = False) -> None:
        """Forget the container and everything it held on disk."""
        directory = self.store.directory(container.id)
        self._unmount_rootfs(directory / "rootfs")
        for name in container.volumes.values():
            self.volumes.release(name, container.id)
            if remove_anonymous:
                try:
                    volume = self.volumes.get(name)
                    if ANONYMOUS_LABEL in (volume.Labels or {}):
                        self.volumes.remove(name)
                except Exception as error:  # a volume that went or is used elsewhere stays
                    log.info("keeping volume %s: %s", name, error)
        try:
            self.engine.images.snapshots.remove(container.id)
        except Exception as error:
            log.debug("snapshot %s: %s", container.id, error)
        self._runtime("delete", "--force", container.id)
        if self.networks is not None:  # or the engine forgets it when its networks start
            self.networks.forget(container.id)
        with self.changed:
            self.store.forget(container.id)
            self._removed.add(container.id)
            self.changed.notify_all()
        self.execs.container_removed(container.id)
        if is_mount_point(directory / "rootfs"):
            log.warning("keeping %s: its root filesystem is still mounted", directory)
        else:
            shutil.rmtree(directory, ignore_errors=True)

    def rename(self, reference: str, new_name: str) -> None:
        """Give the container a new (free, valid) name; dockerd's words when it can't."""
        if not new_name:
            raise ContainerError("Neither old nor new names may be empty", 400)
        container = self.store.get(reference)
        wanted = new_name if new_name.startswith("/") else "/" + new_name
        if wanted == container.name:
            raise ContainerError("Renaming a container with the same name as its current name", 400)
        with self.store.lock:
            try:
                full = self.store.check_name(wanted)
            except ContainerError as error:
                message = f"Error when allocating new name: {error}"
                raise ContainerError(message, error.status) from None
            old = container.name
            container.name = full
            self.store.save(container)
        networks = self._network_manager()
        if networks is not None and container.id in networks.sandboxes:
            networks.rename(container.id, full)
        self.event(container, "rename", {"oldName": old})

    def prune(self, chosen: Callable[[Container], bool] | None = None) -> tuple[list[str], int]:
        """Remove every container that isn't running (and that ``chosen`` picks); the IDs
        removed, and the bytes their own layers held."""
        deleted = []
        reclaimed = 0
        for container in self.store.all():
            if chosen is not None and not chosen(container):
                continue
            if container.status in ("created", "exited", "dead"):
                size = self.size_rw(container)
                try:
                    self.remove(container.id)
                except ContainerError:
                    continue
                deleted.append(container.id)
                reclaimed += size
        self.engine.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed

    # -- helpers ------------------------------------------------------------------------

    def _runtime(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _runtime_command(self.runtime_root, *arguments),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    def _runtime_state(self, container_id: str) -> dict[str, Any]:
        result = self._runtime("state", container_id)
        if result.returncode != 0:
            return {}
        try:
            state = json.loads(result.stdout)
        except ValueError:
            return {}
        return state if isinstance(state, dict) else {}

    def event(self, container: Container, action: str, extra: dict[str, str] | None = None) -> None:
        """Publish a container event with Docker's attributes (labels, image, name)."""
        attributes = dict(container.config.get("Labels") or {})
        attributes.update(
            {"image": container.config.get("Image") or "", "name": container.short_name}
        )
        attributes.update(extra or {})
        self.engine.events.publish("container", action, container.id, attributes)


def manager_of(engine: Engine) -> ContainerManager:
    """The engine's container manager, made when the engine starts (or on first use)."""
    manager = getattr(engine, "containers", None)
    if not isinstance(manager, ContainerManager):
        config = engine.config
        manager = ContainerManager(
            engine,
            cgroup_parent=config.cgroup_parent,
            allowed_bind_roots=config.allowed_bind_roots or None,
        )
        engine.containers = manager  # type: ignore[attr-defined]
    return manager


__all__ = [
    "Container",
    "ContainerError",
    "ContainerManager",
    "ContainerStore",
    "CreateError",
    "NoSuchContainer",
    "NotModified",
    "manager_of",
    "parse_rfc3339",
]
