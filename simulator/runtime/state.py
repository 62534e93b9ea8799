"""The runtime's state directory: one folder per container, written atomically.

``<root>/<id>/state.json`` holds what the runtime knows of a container, ``exit.json`` its
exit status once its shim has seen it exit, ``steps.jsonl`` its step log, and
``shim.sock`` the shim's control socket.
"""

from __future__ import annotations

import json
import os
import time

DEFAULT_ROOT = "/run/slipway-runtime"
_ID_PUNCTUATION = frozenset("_+-.")


class StateError(Exception):
    """A request that the container's state doesn't allow; the message is runc's."""


class ContainerState:
    """What the runtime records of one container (a plain class: the runtime's start-up
    can't afford to import dataclasses)."""

    __slots__ = (
        "id",
        "bundle",
        "rootfs",
        "pid",
        "pid_start",  # the init's start time in clock ticks, to notice a reused PID
        "created",
        "owner",
        "started",
        "cgroups_path",
        "annotations",
        "shim_pid",
        "log_path",
        "config",
    )

    def __init__(
        self,
        id: str,  # noqa: A002 - the OCI name
        bundle: str,
        rootfs: str,
        pid: int,
        pid_start: int,
        created: str,
        owner: str,
        started: bool,
        cgroups_path: str,
        annotations: dict | None = None,
        shim_pid: int = 0,
        log_path: str = "",
        config: dict | None = None,
    ) -> None:
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.pid = pid
        self.pid_start = pid_start
        self.created = created
        self.owner = owner
        self.started = started
        self.cgroups_path = cgroups_path
        self.annotations = annotations or {}
        self.shim_pid = shim_pid
        self.log_path = log_path
        self.config = config or {}

    @classmethod
    def launched(
        cls,
        container_id: str,
        spec: dict,
        bundle: str,
        pid: int,
        started: bool,
        shim_pid: int = 0,
        log_path: str = "",
    ) -> ContainerState:
        """The record of a container whose init (``pid``) was just set up from ``spec``."""
        return cls(
            id=container_id,
            bundle=bundle,
            rootfs=os.path.join(bundle, spec["root"]["path"]),
            pid=pid,
            pid_start=process_start_time(pid) or 0,
            created=rfc3339_nano(),
            owner="root" if os.getuid() == 0 else str(os.getuid()),
            started=started,
            cgroups_path=(spec.get("linux") or {}).get("cgroupsPath") or "",
            annotations=spec.get("annotations") or {},
            shim_pid=shim_pid,
            log_path=log_path,
            config=spec,
        )

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


def rfc3339_nano(ns: int | None = None) -> str:
    """A UTC time with nanoseconds, as Docker and runc write them."""
    ns = time.time_ns() if ns is None else ns
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def check_id(container_id: str) -> None:
    valid = (
        all(c.isalnum() or c in _ID_PUNCTUATION for c in container_id) and container_id.isascii()
    )
    if not container_id or not valid or container_id in (".", ".."):
        raise StateError(f"invalid id format: {container_id!r}")


def write_json_atomic(path: str, data: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


class StateStore:
    """The containers under one ``--root``."""

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = root

    @property
    def seccomp_cache(self) -> str:
        """Where compiled seccomp filters are kept, shared by the containers of this root."""
        return os.path.join(self.root, ".seccomp-cache")

    def dir(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def path(self, container_id: str, name: str) -> str:
        return os.path.join(self.root, container_id, name)

    def exists(self, container_id: str) -> bool:
        return os.path.isdir(self.dir(container_id))

    def make_dir(self, container_id: str) -> str:
        check_id(container_id)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        directory = self.dir(container_id)
        try:
            os.mkdir(directory, 0o711)
        except FileExistsError:
            raise StateError(f"container with id exists: {container_id}") from None
        return directory

    def save(self, state: ContainerState) -> None:
        write_json_atomic(self.path(state.id, "state.json"), state.to_dict())

    def load(self, container_id: str) -> ContainerState:
        check_id(container_id)
        try:
            with open(self.path(container_id, "state.json")) as f:
                data = json.load(f)
        except (FileNotFoundError, NotADirectoryError):
            raise StateError(f"container does not exist: {container_id}") from None
        except ValueError:
            raise StateError(f"container {container_id}: state.json is unreadable") from None
        return ContainerState(**data)

    def exit_status(self, container_id: str) -> dict | None:
        try:
            with open(self.path(container_id, "exit.json")) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def ids(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [n for n in names if os.path.isfile(self.path(n, "state.json"))]


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, or None when the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data[data.rindex(b")") + 2 :].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])


def alive(state: ContainerState) -> bool:
    return state.pid > 0 and process_start_time(state.pid) == state.pid_start
