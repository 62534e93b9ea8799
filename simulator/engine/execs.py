"""Exec instances (``docker exec``): their store, their lifecycle, and the running of each one
in its container through the runtime's ``exec``; also Docker's detach keys, which attach
shares.

An exec runs as ``python -m simulator.runtime exec --process FILE`` with the container's
whole security profile (its namespaces, cgroup, capabilities, seccomp filter and
no_new_privs): the process file only says what to run, where, and as whom. The runtime stays
the process's parent and exits with its status; its own errors go to a ``--log`` file. It
writes the process's PID to a pipe (``--pid-file /proc/self/fd/N``): a PID says the process
started, the end of the pipe without one that it did not. A terminal's master comes back
over ``--console-socket``, as runc hands it to containerd.
"""

from __future__ import annotations

import array
import base64
import contextlib
import json
import logging
import os
import secrets
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.engine.container_spec import (
    _BOOL,
    _STRING,
    _STRINGS,
    CreateError,
    _decode,
    _GoType,
    _struct,
    _uint,
    process_env,
    resolve_user,
)
from simulator.engine.containers import (
    Container,
    ContainerError,
    NoSuchContainer,
    _runtime_command,
)
from simulator.runtime.launcher import set_winsize

if TYPE_CHECKING:
    from simulator.engine.containers import ContainerManager

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q
FORGET_AFTER_SECONDS = 600.0  # dockerd's exec GC drops ended execs after 5 to 10 minutes
START_TIMEOUT_SECONDS = 60.0
RESIZE_WAIT_SECONDS = 10.0  # as dockerd: how long a resize waits for the exec to start
EXIT_CODE_NOT_INVOKABLE = 126
EXIT_CODE_NOT_FOUND = 127
EXIT_CODE_UNKNOWN = 128
# Control keys as Docker names them (moby/term's ASCII table): "ctrl-@" is 0 ... "ctrl-_" 31.
_CONTROL_KEYS = {
    f"ctrl-{name}": code for code, name in enumerate("@abcdefghijklmnopqrstuvwxyz[\\]^_")
}
_CONSOLE_SIZE = _GoType("[2]uint", "array", _uint("uint", 64), length=2)
_EXEC_OPTIONS = _struct(
    "container.ExecOptions",
    ("User", _STRING),
    ("Privileged", _BOOL),
    ("Tty", _BOOL),
    ("ConsoleSize", _CONSOLE_SIZE),
    ("AttachStdin", _BOOL),
    ("AttachStderr", _BOOL),
    ("AttachStdout", _BOOL),
    ("Detach", _BOOL),
    ("DetachKeys", _STRING),
    ("Env", _STRINGS),
    ("WorkingDir", _STRING),
    ("Cmd", _STRINGS),
)
_EXEC_START_OPTIONS = _struct(
    "container.ExecStartOptions",
    ("Detach", _BOOL),
    ("Tty", _BOOL),
    ("ConsoleSize", _CONSOLE_SIZE),
)

log = logging.getLogger("simulator.engine.execs")


# -- detach keys -------------------------------------------------------------------------


def parse_detach_keys(text: str) -> bytes:
    """Docker's detach key syntax (moby/term's ToBytes): comma-separated keys, each one
    character, ``ctrl-<x>`` for x in ``a-z @ [ \\ ] ^ _``, or ``DEL``. ValueError if not."""
    codes = bytearray()
    for key in text.split(","):
        raw = key.encode()
        if len(raw) == 1:
            codes += raw
        elif key in _CONTROL_KEYS:
            codes.append(_CONTROL_KEYS[key])
        elif key == "DEL":
            codes.append(127)
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(codes)


class DetachKeys:
    """Watches a terminal's input for the detach sequence, as dockerd's escape proxy does:
    the keys of a partial match are held back, and let through (followed by the key that
    broke the match) when the sequence goes another way."""

    def __init__(self, keys: bytes = DEFAULT_DETACH_KEYS) -> None:
        self.keys = keys or DEFAULT_DETACH_KEYS
        self._matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """What to pass on of ``data``, and whether the whole sequence was typed (then what
        came after it is dropped)."""
        passed = bytearray()
        for byte in data:
            if byte == self.keys[self._matched]:
                self._matched += 1
                if self._matched == len(self.keys):
                    self._matched = 0
                    return bytes(passed), True
                continue
            passed += self.keys[: self._matched]
            passed.append(byte)
            self._matched = 0
        return bytes(passed), False


# -- exec instances ----------------------------------------------------------------------


class ExecError(ContainerError):
    """An exec request that fails, with the HTTP status Docker answers it with."""


class ExecStartError(ExecError):
    """A process that could not start; ``exit_code`` is the one dockerd records for it."""

    def __init__(self, message: str, status: int, exit_code: int) -> None:
        super().__init__(message, status)
        self.exit_code = exit_code


class NoSuchExec(ExecError):
    status = 404

    def __init__(self, exec_id: str) -> None:
        super().__init__(f"No such exec instance: {exec_id}")


@dataclass
class ExecIO:
    """The engine's ends of a started exec's stdio: a pipe to its stdin (or the terminal's
    master), and pipes from its stdout and stderr (or the master, as stdout)."""

    stdin: int | None = None
    outputs: dict[int, str] = field(default_factory=dict)  # fd -> "stdout" or "stderr"
    master: int | None = None
    _closed: bool = field(default=False, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def close(self) -> None:
        """Close every descriptor (once)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in {self.stdin, self.master, *self.outputs} - {None}:
                with contextlib.suppress(OSError):
                    os.close(fd)  # type: ignore[arg-type]

    def close_stdin(self) -> None:
        """End the process's input: close the stdin pipe (a terminal keeps its master)."""
        with self._lock:
            if self._closed or self.stdin is None or self.stdin == self.master:
                return
            with contextlib.suppress(OSError):
                os.close(self.stdin)
            self.stdin = None


@dataclass
class ExecInstance:
    """One exec, as ``GET /exec/{id}/json`` shows it."""

    id: str
    container_id: str
    entrypoint: str
    args: list[str]
    tty: bool
    open_stdin: bool
    open_stdout: bool
    open_stderr: bool
    detach_keys: bytes  # as the client gave them; empty for the default
    env: list[str]
    user: str
    working_dir: str
    console_size: tuple[int, int] | None
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    ended_at: float = 0.0
    io: ExecIO | None = None
    started: threading.Event = field(default_factory=threading.Event)  # started or failed
    ended: threading.Event = field(default_factory=threading.Event)
    end_callbacks: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def command_line(self) -> str:
        """``sh -c exit 3``, as the exec_create and exec_start events name it."""
        return f"{self.entrypoint} {' '.join(self.args)}"

    def when_ended(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from any thread) once the exec has ended, or now if it has."""
        self.end_callbacks.append(callback)
        if self.ended.is_set():
            callback()

    def to_api(self) -> dict[str, Any]:
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": self.tty,
                "entrypoint": self.entrypoint,
                "arguments": self.args,
                "privileged": False,
                "user": self.user,
            },
            "OpenStdin": self.open_stdin,
            "OpenStderr": self.open_stderr,
            "OpenStdout": self.open_stdout,
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": _go_bytes(self.detach_keys),
            "Pid": self.pid,
        }


def terminal_size(height: int, width: int) -> tuple[int, int]:
    """A size a terminal can take (its rows and columns are 16-bit)."""
    return min(height, 0xFFFF), min(width, 0xFFFF)


def _go_bytes(data: bytes) -> str:
    """A Go []byte as encoding/json writes it: base64."""
    return base64.b64encode(data).decode("ascii")


def decode_exec_options(body: Any) -> dict[str, Any]:
    """An exec create body as dockerd decodes it (Go's errors for wrong types)."""
    return _decode({} if body is None else body, _EXEC_OPTIONS, "", ())


def decode_exec_start(body: Any) -> dict[str, Any]:
    """An exec start body as dockerd decodes it."""
    return _decode({} if body is None else body, _EXEC_START_OPTIONS, "", ())


class ExecManager:
    """The execs of one engine's containers. Thread-safe; blocking calls run in threads."""

    def __init__(self, containers: ContainerManager) -> None:
        self.containers = containers
        self.directory = containers.runtime_root / ".execs"  # short: a socket lives there
        self._lock = threading.Lock()
        self._execs: dict[str, ExecInstance] = {}

    # -- create, inspect ---------------------------------------------------------------

    def create(self, reference: str, body: Any) -> ExecInstance:
        """POST /containers/{id}/exec."""
        options = decode_exec_options(body)
        container = self._active_container(reference)
        if not options["Cmd"]:
            raise ExecError("No exec command specified", 400)
        texts = [*options["Cmd"], *(options["Env"] or []), options["User"], options["WorkingDir"]]
        if any("\0" in text for text in texts):
            raise ExecError("invalid exec configuration: a string holds a NUL byte", 400)
        if options["Privileged"]:
            raise ExecError(
                "privileged exec is not allowed: it would give the process every capability",
                403,
            )
        user = options["User"] or container.config.get("User") or ""
        if options["User"]:
            self._resolve_user(container, user, status=400)  # dockerd checks it early
        keys = b""
        if options["DetachKeys"]:
            try:
                keys = parse_detach_keys(options["DetachKeys"])
            except ValueError:
                raise ExecError(
                    f"Invalid escape keys ({options['DetachKeys']}) provided", 400
                ) from None
        size = options["ConsoleSize"]
        instance = ExecInstance(
            id=secrets.token_hex(32),
            container_id=container.id,
            entrypoint=options["Cmd"][0],
            args=list(options["Cmd"][1:]),
            tty=options["Tty"],
            open_stdin=options["AttachStdin"],
            open_stdout=options["AttachStdout"],
            open_stderr=options["AttachStderr"],
            detach_keys=keys,
            env=list(options["Env"] or []),
            user=user,
            working_dir=options["WorkingDir"] or container.config.get("WorkingDir") or "",
            console_size=terminal_size(size[0], size[1]) if size and any(size) else None,
        )
        with self._lock:
            self._forget_old()
            self._execs[instance.id] = instance
        self.containers.event(
            container, f"exec_create: {instance.command_line}", {"execID": instance.id}
        )
        return instance

    def get(self, exec_id: str) -> ExecInstance:
        """The exec, while its container exists; NoSuchExec otherwise."""
        with self._lock:
            instance = self._execs.get(exec_id)
        if instance is None:
            raise NoSuchExec(exec_id)
        try:
            self.containers.store.get(instance.container_id)
        except NoSuchContainer:
            raise NoSuchExec(exec_id) from None
        return instance

    def startable(self, exec_id: str) -> ExecInstance:
        """The exec, if its container is running (dockerd's ExecExists)."""
        with self._lock:
            instance = self._execs.get(exec_id)
        if instance is None:
            raise NoSuchExec(exec_id)
        self._active_container(instance.container_id)
        return instance

    def ids_of(self, container_id: str) -> list[str]:
        """The container's execs that have not ended (inspect's ExecIDs)."""
        with self._lock:
            return [
                instance.id
                for instance in self._execs.values()
                if instance.container_id == container_id and instance.exit_code is None
            ]

    def _active_container(self, reference: str) -> Container:
        container = self.containers.store.get(reference)
        if not container.running:
            raise ExecError(f"container {container.id} is not running", 409)
        if container.paused:
            raise ExecError(
                f"Container {reference} is paused, unpause the container before exec", 409
            )
        if container.restarting:
            raise ExecError(
                f"Container {container.id} is restarting, wait until the container is running",
                409,
            )
        return container

    def _resolve_user(self, container: Container, user: str, status: int) -> Any:
        rootfs = self.containers.store.directory(container.id) / "rootfs"
        group_add = container.host_config.get("GroupAdd") or []
        try:
            return resolve_user(str(rootfs), user, group_add)
        except CreateError as error:
            raise ExecError(error.message, status) from None

    def _forget_old(self) -> None:
        """Drop execs that ended long ago (call with the lock held)."""
        horizon = time.monotonic() - FORGET_AFTER_SECONDS
        for exec_id, instance in list(self._execs.items()):
            if instance.ended.is_set() and instance.ended_at < horizon:
                del self._execs[exec_id]

    # -- start -------------------------------------------------------------------------

    def start(
        self, exec_id: str, console_size: tuple[int, int] | None, *, attached: bool
    ) -> ExecIO:
        """Run the exec. Returns its stdio once the process has started; ``attached`` says
        whether a client will relay it (else it reads nothing and its output is dropped).
        A process that can't start raises ExecError in dockerd's words, with the exit code
        (126, 127 or 128) recorded."""
        instance = self.startable(exec_id)
        with self._lock:
            if instance.exit_code is not None:
                raise ExecError(f"exec command {exec_id} has already run", 409)
            if instance.running:
                raise ExecError(f"exec command {exec_id} is already running", 409)
            instance.running = True
        container = self.containers.store.get(instance.container_id)
        self.containers.event(
            container, f"exec_start: {instance.command_line}", {"execID": instance.id}
        )
        try:
            return self._spawn(instance, container, console_size or instance.console_size, attached)
        except ExecStartError as error:
            self._ended(instance, error.exit_code)
            raise
        except BaseException:
            self._ended(instance, EXIT_CODE_UNKNOWN)
            raise

    def _process_file(self, instance: ExecInstance, container: Container) -> dict[str, Any]:
        """The OCI process the runtime runs: what, where, and as whom."""
        user = self._resolve_user(container, instance.user, status=500)
        hostname = container.config.get("Hostname") or container.id[:12]
        env = process_env(
            {"Tty": instance.tty, "Env": container.config.get("Env")}, hostname, user.home
        )
        process: dict[str, Any] = {
            "terminal": instance.tty,
            "args": [instance.entrypoint, *instance.args],
            "env": _replace_or_append(env, instance.env),
            "cwd": instance.working_dir or "/",
            "user": {
                "uid": user.uid,
                "gid": user.gid,
                "additionalGids": list(user.additional_gids),
            },
        }
        if instance.tty and instance.console_size:
            height, width = instance.console_size
            process["consoleSize"] = {"height": height, "width": width}
        return process

    def _spawn(
        self,
        instance: ExecInstance,
        container: Container,
        console_size: tuple[int, int] | None,
        attached: bool,
    ) -> ExecIO:
        instance.console_size = console_size
        self.directory.mkdir(mode=0o700, exist_ok=True)
        paths = _ExecPaths(self.directory, instance.id)
        paths.process.write_text(json.dumps(self._process_file(instance, container)))
        io = ExecIO()
        listener: socket.socket | None = None
        child_ends: list[int] = []
        pid_read, pid_write = os.pipe()
        child_ends.append(pid_write)
        stdio: list[int] = []
        process: subprocess.Popen[bytes] | None = None
        try:
            arguments = ["exec", "--process", str(paths.process)]
            arguments += ["--pid-file", f"/proc/self/fd/{pid_write}"]
            if instance.tty:
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                listener.bind(str(paths.console))
                listener.listen(1)
                arguments += ["--console-socket", str(paths.console)]
                stdio = [_null(os.O_RDONLY), _null(os.O_WRONLY), _null(os.O_WRONLY)]
            else:
                stdio = self._pipes(instance, io, attached)
            child_ends += stdio
            command = _runtime_command(self.containers.runtime_root, "--log", str(paths.log))
            process = subprocess.Popen(
                [*command, *arguments, container.id],
                stdin=stdio[0],
                stdout=stdio[1],
                stderr=stdio[2],
                pass_fds=(pid_write,),
                start_new_session=True,
            )
            for fd in child_ends:
                os.close(fd)
            child_ends = []
            pid = _read_pid(pid_read, process)
            if pid is None:
                process.wait()
                raise _start_error(paths.log_text())
            if listener is not None:
                io.master = _receive_console(listener)
                io.stdin = io.master
                io.outputs = {io.master: "stdout"}
        except BaseException:
            for fd in child_ends:
                os.close(fd)
            if process is not None and process.poll() is None:
                process.kill()  # it started the process but could not hand it over
                process.wait()
            os.close(pid_read)
            io.close()
            paths.remove()
            raise
        finally:
            if listener is not None:
                listener.close()
                paths.console.unlink(missing_ok=True)
        with self._lock:
            instance.pid = pid
            instance.io = io
        instance.started.set()
        threading.Thread(
            target=self._wait,
            args=(instance, process, pid_read, paths),
            name=f"exec-{instance.id[:12]}",
            daemon=True,
        ).start()
        return io

    def _pipes(self, instance: ExecInstance, io: ExecIO, attached: bool) -> list[int]:
        """The runtime's (and so the process's) stdin, stdout and stderr without a terminal;
        the engine's ends go into ``io``."""
        stdio = []
        if attached and instance.open_stdin:
            child, io.stdin = os.pipe()
            stdio.append(child)
        else:
            stdio.append(_null(os.O_RDONLY))
        for name, wanted in (("stdout", instance.open_stdout), ("stderr", instance.open_stderr)):
            if attached and wanted:
                engine_end, child = os.pipe()
                io.outputs[engine_end] = name
                stdio.append(child)
            else:
                stdio.append(_null(os.O_WRONLY))
        for fd in [io.stdin, *io.outputs]:
            if fd is not None:
                os.set_blocking(fd, False)
        return stdio

    def _wait(
        self,
        instance: ExecInstance,
        process: subprocess.Popen[bytes],
        pid_read: int,
        paths: _ExecPaths,
    ) -> None:
        code = process.wait()
        os.close(pid_read)
        if code < 0:  # the runtime itself was killed
            code = 128 - code
        paths.remove()
        self._ended(instance, code)
        container = self._container_or_none(instance.container_id)
        if container is not None:
            self.containers.event(
                container, "exec_die", {"execID": instance.id, "exitCode": str(code)}
            )

    def _ended(self, instance: ExecInstance, code: int) -> None:
        with self._lock:
            instance.running = False
            instance.exit_code = code
            instance.ended_at = time.monotonic()
        instance.started.set()
        instance.ended.set()
        for callback in list(instance.end_callbacks):
            try:
                callback()
            except Exception:
                log.exception("exec %s: an end callback failed", instance.id)

    def _container_or_none(self, container_id: str) -> Container | None:
        try:
            return self.containers.store.get(container_id)
        except NoSuchContainer:
            return None

    # -- resize, container hooks -------------------------------------------------------

    def resize(self, exec_id: str, height: int, width: int) -> None:
        """Set the size of the exec's terminal (nothing to do without one); waits a while
        for an exec that is being started, as dockerd does."""
        instance = self.startable(exec_id)
        if not instance.started.wait(RESIZE_WAIT_SECONDS):
            raise ExecError("timeout waiting for exec session ready", 500)
        io = instance.io
        if io is None or instance.exit_code is not None:
            raise ExecError("exec process is not started", 400)
        if io.master is not None:
            try:
                set_winsize(io.master, *terminal_size(height, width))
            except OSError as error:
                raise ExecError(f"cannot resize the exec's terminal: {error}", 500) from None

    def discard(self, io: ExecIO) -> None:
        """Nobody relays the exec's stdio any more: stop its input, and read its output away
        until it ends (in a thread of its own), so that it never blocks on a full pipe or
        terminal; then close everything."""
        io.close_stdin()
        if not io.outputs:
            io.close()
            return
        threading.Thread(target=_drain, args=(io,), name="exec-drain", daemon=True).start()

    def container_stopped(self, container_id: str) -> None:
        """The container exited: its execs that never started are gone (its running ones
        end with it, and keep their exit code)."""
        with self._lock:
            for exec_id, instance in list(self._execs.items()):
                if instance.container_id == container_id and not instance.started.is_set():
                    del self._execs[exec_id]

    def container_removed(self, container_id: str) -> None:
        """The container is removed: forget its execs (any still running went with its
        processes)."""
        with self._lock:
            for exec_id, instance in list(self._execs.items()):
                if instance.container_id == container_id:
                    del self._execs[exec_id]


@dataclass(frozen=True)
class _ExecPaths:
    """An exec's files: the process for the runtime, its error log, its console socket."""

    directory: Path
    exec_id: str

    @property
    def process(self) -> Path:
        return self.directory / f"{self.exec_id}.json"

    @property
    def log(self) -> Path:
        return self.directory / f"{self.exec_id}.log"

    @property
    def console(self) -> Path:
        return self.directory / f"{self.exec_id}.sock"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def remove(self) -> None:
        for path in (self.process, self.log, self.console):
            path.unlink(missing_ok=True)


def _drain(io: ExecIO) -> None:
    open_fds = set(io.outputs)
    try:
        while open_fds:
            ready, _, _ = select.select(list(open_fds), [], [])
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: the terminal's last user went away
                    data = b""
                if not data:
                    open_fds.discard(fd)
    except (OSError, ValueError):  # closed under us
        pass
    finally:
        io.close()


def _null(flags: int) -> int:
    return os.open(os.devnull, flags | os.O_CLOEXEC)


def _replace_or_append(env: list[str], overrides: list[str]) -> list[str]:
    """dockerd's ReplaceOrAppendEnvValues: ``NAME=value`` replaces or appends, ``NAME``
    alone unsets."""
    result = list(env)
    for override in overrides:
        name, equals, _ = override.partition("=")
        names = [item.partition("=")[0] for item in result]
        if not equals:
            result = [item for item, key in zip(result, names, strict=True) if key != name]
        elif name in names:
            result[names.index(name)] = override
        else:
            result.append(override)
    return result


def _read_pid(pid_read: int, process: subprocess.Popen[bytes]) -> int | None:
    """The PID the runtime writes once the process has started; None if the runtime ended
    without one (it failed), or did not answer in time (then it is killed)."""
    ready, _, _ = select.select([pid_read], [], [], START_TIMEOUT_SECONDS)
    if not ready:
        process.kill()
        return None
    text = os.read(pid_read, 64).strip()
    return int(text) if text.isdigit() else None


def _receive_console(listener: socket.socket) -> int:
    """The terminal master the runtime sent to its ``--console-socket`` (before its PID)."""
    listener.settimeout(10)
    connection, _ = listener.accept()
    with connection:
        fds = array.array("i")
        _, ancillary, _, _ = connection.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not fds:
        raise ExecError("the runtime sent no terminal", 500)
    master = fds[0]
    os.set_inheritable(master, False)
    os.set_blocking(master, False)
    return master


def _start_error(runtime_log: str) -> ExecStartError:
    """The runtime's failure in dockerd's words, with the status and exit code dockerd
    gives it (its setExitCodeFromError)."""
    text = runtime_log.strip().splitlines()[-1] if runtime_log.strip() else "exec failed"
    text = text.removeprefix("slipway-runtime: ")
    message = f"OCI runtime exec failed: {text}: unknown"
    lowered = message.lower()
    if "permission denied" in lowered:
        return ExecStartError(message, 400, EXIT_CODE_NOT_INVOKABLE)
    if "is a directory" in lowered:
        return ExecStartError(message + ": permission denied", 400, EXIT_CODE_NOT_INVOKABLE)
    if "not a directory" in lowered:
        message += (
            ": Are you trying to mount a directory onto a file (or vice-versa)? Check if the "
            "specified host path exists and is the expected type"
        )
        return ExecStartError(message, 400, EXIT_CODE_NOT_FOUND)
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return ExecStartError(message, 400, EXIT_CODE_NOT_FOUND)
    return ExecStartError(message, 500, EXIT_CODE_UNKNOWN)
