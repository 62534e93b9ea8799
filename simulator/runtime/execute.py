"""Run another process inside a running container: join its namespaces and cgroups, take
the same privileges as its init, then execute.

As runc's exec, it takes the process from the command line or from a ``--process`` file (of
which only what the process runs, and as whom, is used: its capabilities, seccomp filter,
rlimits and no_new_privs are always the container's own), and hands a terminal's master to
``--console-socket`` instead of relaying it.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import struct
import termios
from typing import Any

from simulator import linux
from simulator.runtime import process as proc
from simulator.runtime.cgroups import CgroupLayout, CgroupManager
from simulator.runtime.container import ExecOptions, RuntimeFailure
from simulator.runtime.launcher import set_winsize
from simulator.runtime.shim import _send_console
from simulator.runtime.state import ContainerState, StateStore
from simulator.runtime.steplog import StepLog

_TIOCGPTPEER = 0x5441
_TIOCSPTLCK = 0x40045431
_TIOCGPTN = 0x80045430
_JOIN_ORDER = ("user", "ipc", "uts", "network", "cgroup", "mount")


class ExecFailure(Exception):
    pass


class ExecRequest(ExecOptions):
    """ExecOptions, plus what runc's exec also takes: supplementary groups, the terminal's
    size, a socket to hand the terminal's master to, and (from a ``--process`` file) the
    whole environment instead of additions to the container's."""

    def __init__(
        self,
        args: list[str],
        *,
        full_env: list[str] | None = None,
        additional_gids: list[int] | None = None,
        console_size: tuple[int, int] | None = None,
        console_socket: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(args, **options)
        self.full_env = full_env
        self.additional_gids = additional_gids
        self.console_size = console_size
        self.console_socket = console_socket

    @classmethod
    def from_process_file(cls, path: str, **options: Any) -> ExecRequest:
        """The request a ``--process`` file (an OCI process object) describes."""
        try:
            with open(path) as file:
                process = json.load(file)
        except (OSError, ValueError) as error:
            raise RuntimeFailure(f"--process {path}: {error}") from None
        if not isinstance(process, dict):
            raise RuntimeFailure(f"--process {path}: not a JSON object")
        args = process.get("args")
        if not args or not all(isinstance(arg, str) for arg in args):
            raise RuntimeFailure(f"--process {path}: args must be a list of strings")
        user = process.get("user")  # none: the container's own
        size = process.get("consoleSize")
        try:
            user_text = f"{int(user['uid'])}:{int(user.get('gid', 0))}" if user else None
            gids = [int(g) for g in user.get("additionalGids") or []] if user else None
            console_size = (int(size["height"]), int(size["width"])) if size else None
        except (TypeError, ValueError, KeyError, AttributeError):
            raise RuntimeFailure(f"--process {path}: malformed user or consoleSize") from None
        return cls(
            args,
            tty=bool(process.get("terminal")),
            cwd=process.get("cwd") or None,
            full_env=[str(item) for item in process.get("env") or []],
            user=user_text,
            additional_gids=gids,
            console_size=console_size,
            **options,
        )


def _same_namespace(pid: int, name: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/{name}").st_ino == os.stat(f"/proc/self/ns/{name}").st_ino
    except FileNotFoundError:
        return True


def exec_in_container(store: StateStore, state: ContainerState, opts: ExecRequest) -> int:
    spec = state.config
    process = copy.deepcopy(spec["process"])
    process["args"] = opts.args
    process["terminal"] = opts.tty
    if opts.cwd:
        process["cwd"] = opts.cwd
    if opts.full_env is not None:
        process["env"] = opts.full_env
    elif opts.env:
        names = {item.split("=", 1)[0] for item in opts.env}
        process["env"] = [e for e in process.get("env") or [] if e.split("=", 1)[0] not in names]
        process["env"] += opts.env
    if opts.user:
        uid, _, gid = opts.user.partition(":")
        try:
            process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        except ValueError:
            raise RuntimeFailure(f"--user {opts.user!r}: expected UID[:GID]") from None
        if opts.additional_gids:
            process["user"]["additionalGids"] = opts.additional_gids
    linux_cfg = spec.get("linux") or {}
    program = None
    if linux_cfg.get("seccomp"):
        from simulator.runtime.seccomp import program_for

        program = program_for(linux_cfg["seccomp"], store.seccomp_cache)
    step = StepLog(store.path(state.id, "steps.jsonl"))
    cgroups = CgroupManager(CgroupLayout.detect(), state.cgroups_path, state.id)
    pid = state.pid
    kinds = {ns["type"] for ns in linux_cfg.get("namespaces") or []}
    fds: dict[str, int] = {}
    master = slave = None
    try:
        for kind in (*_JOIN_ORDER, "pid"):
            name = linux.NAMESPACE_PROC_NAMES[kind]
            if kind in kinds and not _same_namespace(pid, name):
                fds[kind] = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        if opts.tty:
            master = os.open(
                f"/proc/{pid}/root/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC
            )
            fcntl.ioctl(master, _TIOCSPTLCK, b"\0\0\0\0")
            slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
            if opts.console_size is not None:
                set_winsize(master, *opts.console_size)
        if "pid" in fds:
            linux.setns(fds["pid"], linux.CLONE_NEWPID)
        err_r, err_w = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                os.close(err_r)
                _child(process, cgroups, fds, slave, program, step)
            except BaseException as e:  # noqa: BLE001
                os.write(err_w, (str(e) or type(e).__name__).encode())
            os._exit(255)
        os.close(err_w)
        if slave is not None:
            os.close(slave)
            slave = None
        with os.fdopen(err_r, "rb") as f:
            error = f.read().decode()
        if error:
            os.waitpid(child, 0)
            raise RuntimeFailure(f"exec failed: unable to start container process: {error}")
        if master is not None and opts.console_socket:
            _send_console(opts.console_socket, master, _pty_name(master))
            os.close(master)
            master = None
        if opts.pid_file:
            with open(opts.pid_file, "w") as f:
                f.write(str(child))
        if opts.detach:
            if master is not None:
                os.close(master)
                master = None
            return 0
        if master is not None:
            from simulator.runtime.console import proxy

            proxy(master, child)
            master = None
        _, status = os.waitpid(child, 0)
        return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    finally:
        step.close()
        for fd in fds.values():
            os.close(fd)
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)


def _pty_name(master: int) -> str:
    number = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0\0\0\0"))[0]
    return f"/dev/pts/{number}"


def _child(
    process: dict, cgroups: CgroupManager, fds: dict[str, int], slave, program, step
) -> None:  # noqa: ANN001
    cgroups.join(0)
    for kind in _JOIN_ORDER:
        if kind in fds:
            linux.setns(fds[kind], linux.NAMESPACE_FLAGS[kind])
    if slave is not None:
        os.setsid()
        for target in (0, 1, 2):
            os.dup2(slave, target)
        os.close(slave)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    proc.close_other_fds()
    proc.apply_rlimits(process, lambda *_: None)
    no_new_privs = bool(process.get("noNewPrivileges"))
    if program and not no_new_privs:
        linux.load_seccomp_bpf(program)
    proc.drop_privileges(process, lambda *_: None)
    if no_new_privs:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    env = process.get("env") or []
    try:
        os.chdir(process["cwd"])
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise proc.ProcessError(
            f'chdir to cwd ("{process["cwd"]}") set in config.json failed: {reason}'
        ) from None
    path = proc.lookup(process["args"], env, process["cwd"])
    step("exec", "exec joined the container and runs " + " ".join(process["args"]))
    step.close()
    if program and no_new_privs:
        linux.load_seccomp_bpf(program)
    try:
        proc.exec_program(path, process["args"], env)
    except OSError as error:  # in runc's words: exec: "/etc": permission denied
        reason = (error.strerror or str(error)).lower()
        raise proc.ProcessError(f'exec: "{process["args"][0]}": {reason}') from None
