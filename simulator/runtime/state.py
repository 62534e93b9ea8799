"""The runtime's state directory: one folder per container, written atomically.

``<root>/<id>/state.json`` holds what the runtime knows of a container, ``exit.json`` its
exit status once its shim has seen it exit, ``steps.jsonl`` its step log, and
``shim.sock`` the shim's control socket.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field

DEFAULT_ROOT = "/run/slipway-runtime"
_ID = re.compile(r"^[\w+\-.]+$")


class StateError(Exception):
    """A request that the container's state doesn't allow; the message is runc's."""


@dataclass
class ContainerState:
    id: str
    bundle: str
    rootfs: str
    pid: int
    pid_start: int  # the init's start time in clock ticks, to notice a reused PID
    created: str
    owner: str
    started: bool
    cgroups_path: str
    annotations: dict = field(default_factory=dict)
    shim_pid: int = 0
    log_path: str = ""
    config: dict = field(default_factory=dict)


def check_id(container_id: str) -> None:
    if not container_id or not _ID.match(container_id) or container_id in (".", ".."):
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
        write_json_atomic(self.path(state.id, "state.json"), asdict(state))

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
