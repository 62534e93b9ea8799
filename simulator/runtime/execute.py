"""Run another process inside a running container: join its namespaces and cgroups, take
the same privileges as its init, then execute."""

from __future__ import annotations

import copy
import fcntl
import os
import termios

from simulator import linux
from simulator.runtime import process as proc
from simulator.runtime.cgroups import CgroupLayout, CgroupManager
from simulator.runtime.state import ContainerState, StateStore
from simulator.runtime.steplog import StepLog

_TIOCGPTPEER = 0x5441
_TIOCSPTLCK = 0x40045431
_JOIN_ORDER = ("user", "ipc", "uts", "network", "cgroup", "mount")


class ExecFailure(Exception):
    pass


def _same_namespace(pid: int, name: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/{name}").st_ino == os.stat(f"/proc/self/ns/{name}").st_ino
    except FileNotFoundError:
        return True


def exec_in_container(store: StateStore, state: ContainerState, opts) -> int:  # noqa: ANN001
    from simulator.runtime.container import RuntimeFailure

    spec = state.config
    process = copy.deepcopy(spec["process"])
    process["args"] = opts.args
    process["terminal"] = opts.tty
    if opts.cwd:
        process["cwd"] = opts.cwd
    if opts.env:
        names = {item.split("=", 1)[0] for item in opts.env}
        process["env"] = [e for e in process.get("env") or [] if e.split("=", 1)[0] not in names]
        process["env"] += opts.env
    if opts.user:
        uid, _, gid = opts.user.partition(":")
        try:
            process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        except ValueError:
            raise RuntimeFailure(f"--user {opts.user!r}: expected UID[:GID]") from None
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
            raise RuntimeFailure(f"exec failed: {error}")
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
    os.chdir(process["cwd"])
    path = proc.lookup(process["args"], env, process["cwd"])
    step("exec", "exec joined the container and runs " + " ".join(process["args"]))
    step.close()
    if program and no_new_privs:
        linux.load_seccomp_bpf(program)
    proc.exec_program(path, process["args"], env)
