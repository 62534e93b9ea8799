"""The runtime's verbs, with runc's semantics: create, start, state, kill, delete, run,
exec, list, pause, resume, and Slipway's own ``steps``."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from simulator.runtime import spec as speclib
from simulator.runtime.cgroups import CgroupLayout, CgroupManager
from simulator.runtime.state import (
    ContainerState,
    StateError,
    StateStore,
    alive,
    process_start_time,
)
from simulator.runtime.steplog import StepLog


class RuntimeFailure(Exception):
    """A verb failed; the message is printed as the runtime's error."""


def status_of(store: StateStore, state: ContainerState) -> str:
    if store.exit_status(state.id) is not None or not alive(state):
        return "stopped"
    if _cgroups(state).frozen():
        return "paused"
    return "running" if state.started else "created"


def _cgroups(state: ContainerState, step: StepLog | None = None) -> CgroupManager:
    return CgroupManager(CgroupLayout.detect(), state.cgroups_path, state.id, step)


def oci_state(store: StateStore, container_id: str) -> dict:
    state = store.load(container_id)
    status = status_of(store, state)
    result = {
        "ociVersion": state.config.get("ociVersion", "1.0.2"),
        "id": state.id,
        "pid": state.pid if status != "stopped" else 0,
        "status": status,
        "bundle": state.bundle,
        "rootfs": state.rootfs,
        "created": state.created,
        "owner": state.owner,
    }
    if state.annotations:
        result["annotations"] = state.annotations
    exit_status = store.exit_status(container_id)
    if status == "stopped" and exit_status is None and state.shim_pid:
        exit_status = _await_exit_status(store, state)
    if status == "stopped" and exit_status:
        result["exitStatus"] = exit_status["exitCode"]
        result["oomKilled"] = exit_status["oomKilled"]
    return result


def _await_exit_status(
    store: StateStore, state: ContainerState, timeout: float = 5.0
) -> dict | None:
    """The init is gone but its shim may not have recorded how yet: give it a moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exit_status = store.exit_status(state.id)
        if exit_status is not None or process_start_time(state.shim_pid) is None:
            return exit_status
        time.sleep(0.01)
    return store.exit_status(state.id)


# -- create and start --------------------------------------------------------------------


def create(
    store: StateStore,
    container_id: str,
    bundle: str,
    pid_file: str | None = None,
    console_socket: str | None = None,
) -> int:
    """Create the container under a new shim, stopped before its program runs."""
    from simulator.runtime import shim as shimlib

    bundle = os.path.abspath(bundle)
    spec = _load_spec(bundle)
    if spec["process"].get("terminal") and console_socket:
        _check_console_socket(console_socket)
    store.make_dir(container_id)
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:
        # Detach twice so the shim belongs to no session or parent of the caller's.
        try:
            os.close(read_end)
            os.setsid()
            if os.fork():
                os._exit(0)
            _run_shim(store, container_id, spec, bundle, console_socket, write_end, shimlib)
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(first, 0)
    with os.fdopen(read_end, "rb") as f:
        raw = f.readline()  # not EOF: the container's init holds a copy of the pipe
    try:
        reply = json.loads(raw)
    except ValueError:
        reply = {"ok": False, "error": "the shim died while creating the container"}
    if not reply.get("ok"):
        _remove_dir(store, container_id)
        raise RuntimeFailure(reply.get("error", "create failed"))
    if pid_file:
        _write_pid_file(pid_file, reply["pid"])
    return 0


def _run_shim(store, container_id, spec, bundle, console_socket, report_fd, shimlib) -> None:  # noqa: ANN001
    devnull = os.open(os.devnull, os.O_RDWR)
    log = os.open(
        store.path(container_id, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640
    )
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    shim = shimlib.Shim(store, container_id, spec, bundle, console_socket)
    try:
        state = shim.create()
        store.save(state)
    except BaseException as e:  # noqa: BLE001 - reported to the caller
        os.write(report_fd, json.dumps({"ok": False, "error": _message(e)}).encode() + b"\n")
        os.close(report_fd)
        return
    os.write(report_fd, json.dumps({"ok": True, "pid": state.pid}).encode() + b"\n")
    os.close(report_fd)
    try:
        shim.serve()
    except BaseException:  # noqa: BLE001 - the shim logs and goes on exiting
        import traceback

        traceback.print_exc()


def _message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e) or type(e).__name__


def _load_spec(bundle: str) -> dict:
    try:
        return speclib.load(bundle)
    except speclib.SpecError as e:
        raise RuntimeFailure(str(e)) from None


def _check_console_socket(path: str) -> None:
    if not os.path.exists(path):
        raise RuntimeFailure(f"--console-socket {path}: no such file or directory")


def _write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def start(store: StateStore, container_id: str) -> int:
    from simulator.runtime import shim as shimlib

    state = store.load(container_id)
    status = status_of(store, state)
    if status == "stopped":
        raise RuntimeFailure("cannot start a container that has stopped")
    if status != "created":
        raise RuntimeFailure(f"cannot start an already {status} container")
    reply = shimlib.request(store, container_id, {"op": "start"})
    if not reply.get("ok"):
        raise RuntimeFailure(reply.get("error", "start failed"))
    return 0


# -- kill, delete, pause -----------------------------------------------------------------


def parse_signal(text: str) -> int:
    name = text.upper()
    if name.isdigit():
        number = int(name)
        if 0 < number < 65:
            return number
    else:
        if not name.startswith("SIG"):
            name = "SIG" + name
        try:
            return int(signal.Signals[name])
        except KeyError:
            pass
    raise RuntimeFailure(f"unknown signal {text!r}")


def kill(store: StateStore, container_id: str, sig: str = "SIGTERM") -> int:
    number = parse_signal(sig)
    state = store.load(container_id)
    if status_of(store, state) == "stopped":
        raise RuntimeFailure("container not running")
    os.kill(state.pid, number)
    return 0


def delete(store: StateStore, container_id: str, force: bool = False) -> int:
    state = store.load(container_id)
    status = status_of(store, state)
    if status in ("running", "paused") and not force:
        raise RuntimeFailure(
            f"cannot delete container {container_id} that is not stopped: {status}"
        )
    cgroups = _cgroups(state)
    if status != "stopped":
        if status == "paused":
            cgroups.freeze(False)
        try:
            os.kill(state.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _wait_gone(state.pid, state.pid_start)
    for pid in cgroups.pids():  # anything that escaped a pid namespace of its own
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if state.shim_pid:
        _wait_gone(state.shim_pid, None)
    cgroups.destroy()
    _remove_dir(store, container_id)
    return 0


def _wait_gone(pid: int, start: int | None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = process_start_time(pid)
        if now is None or (start is not None and now != start):
            return
        time.sleep(0.005)


def _remove_dir(store: StateStore, container_id: str) -> None:
    # The state directory is flat: a few files and sockets. (shutil would cost start-up.)
    directory = store.dir(container_id)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass


def pause(store: StateStore, container_id: str, frozen: bool) -> int:
    state = store.load(container_id)
    status = status_of(store, state)
    if frozen and status != "running":
        raise RuntimeFailure(f"container not running: {status}")
    if not frozen and status != "paused":
        raise RuntimeFailure("container not paused")
    _cgroups(state, StepLog(store.path(container_id, "steps.jsonl"))).freeze(frozen)
    return 0


# -- run: create and start in the foreground, without a shim -----------------------------


def run(
    store: StateStore,
    container_id: str,
    bundle: str,
    detach: bool = False,
    pid_file: str | None = None,
    console_socket: str | None = None,
) -> int:
    if detach:
        create(store, container_id, bundle, pid_file, console_socket)
        try:
            start(store, container_id)
        except RuntimeFailure:
            delete(store, container_id, force=True)
            raise
        return 0
    from simulator.runtime.launcher import LaunchError, launch

    bundle = os.path.abspath(bundle)
    spec = _load_spec(bundle)
    store.make_dir(container_id)
    step = StepLog(store.path(container_id, "steps.jsonl"))
    launched = None
    try:
        try:
            launched = launch(
                container_id,
                spec,
                bundle,
                step,
                seccomp_cache=store.seccomp_cache,
            )
        except (LaunchError, OSError, speclib.SpecError) as e:
            raise RuntimeFailure(_message(e)) from None
        state = ContainerState.launched(container_id, spec, bundle, launched.pid, started=True)
        store.save(state)
        if pid_file:
            _write_pid_file(pid_file, launched.pid)
        forwarded = _forward_signals(launched.pid)
        try:
            launched.start()
        except LaunchError as e:
            raise RuntimeFailure(str(e)) from None
        finally:
            launched.sync.close()
        if launched.master is not None:
            from simulator.runtime.console import proxy

            proxy(launched.master, launched.pid)
        _, status = _waitpid_retry(launched.pid)
        for signum in forwarded:
            signal.signal(signum, signal.SIG_DFL)
        return (
            os.waitstatus_to_exitcode(status)
            if not os.WIFSIGNALED(status)
            else 128 + os.WTERMSIG(status)
        )
    except BaseException:
        if launched is not None:
            try:
                os.kill(launched.pid, signal.SIGKILL)
                _waitpid_retry(launched.pid)
            except ChildProcessError:
                pass
        raise
    finally:
        step.close()
        if launched is not None:
            launched.cgroups.destroy()
        _remove_dir(store, container_id)


def _waitpid_retry(pid: int) -> tuple[int, int]:
    while True:
        try:
            return os.waitpid(pid, 0)
        except InterruptedError:
            continue


_FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def _forward_signals(pid: int) -> list[int]:
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in _FORWARDED:
        signal.signal(signum, forward)
    return list(_FORWARDED)


# -- exec --------------------------------------------------------------------------------


class ExecOptions:
    """What ``exec`` was asked to run, and how."""

    def __init__(
        self,
        args: list[str],
        tty: bool = False,
        cwd: str | None = None,
        env: list[str] | None = None,
        user: str | None = None,
        detach: bool = False,
        pid_file: str | None = None,
    ) -> None:
        self.args = args
        self.tty = tty
        self.cwd = cwd
        self.env = env
        self.user = user
        self.detach = detach
        self.pid_file = pid_file


def exec_(store: StateStore, container_id: str, opts: ExecOptions) -> int:
    from simulator.runtime.execute import exec_in_container

    state = store.load(container_id)
    status = status_of(store, state)
    if status not in ("running", "created"):
        raise RuntimeFailure(f"cannot exec in a {status} container")
    if status == "created" and not state.started:
        raise RuntimeFailure("cannot exec in a container that has not been started")
    return exec_in_container(store, state, opts)


# -- list and steps ----------------------------------------------------------------------


def list_(store: StateStore, fmt: str = "table", quiet: bool = False) -> str:
    rows = []
    for container_id in store.ids():
        try:
            rows.append(oci_state(store, container_id))
        except StateError:
            continue
    if quiet:
        return "\n".join(r["id"] for r in rows)
    if fmt == "json":
        return json.dumps(rows)
    table = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    for r in rows:
        table.append([r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]])
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    return "\n".join(
        "".join(cell.ljust(widths[i] + 3) if i < 5 else cell for i, cell in enumerate(row)).rstrip()
        for row in table
    )


def steps(store: StateStore, container_id: str, as_json: bool = False) -> str:
    from simulator.runtime.steplog import format_steps, read

    store.load(container_id)
    entries = read(store.path(container_id, "steps.jsonl"))
    return json.dumps(entries) if as_json else format_steps(entries)


def write_error(message: str) -> None:
    sys.stderr.write(f"slipway-runtime: {message}\n")
