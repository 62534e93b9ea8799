"""Start a container's init process: cgroups, namespaces, root filesystem, then wait for start.

``launch()`` runs in the process that will be the container's parent (the shim, or the
runtime itself for a foreground ``run``). It changes that process's pid namespace for
children, so such a process launches one container only.
"""

from __future__ import annotations

import array
import fcntl
import json
import os
import socket
import struct
import termios

from simulator import linux
from simulator.runtime import process as proc
from simulator.runtime.cgroups import CgroupLayout, CgroupManager
from simulator.runtime.mounts import RootfsBuilder
from simulator.runtime.steplog import StepLog

PARENT_PIDNS_ANNOTATION = "org.slipway.pidns.parent"


class LaunchError(Exception):
    """The container could not be created; the message is for the user."""


class Launched:
    """A container's init, set up and waiting for ``start``."""

    __slots__ = ("pid", "sync", "cgroups", "master", "console")

    def __init__(self, pid: int, sync: socket.socket, cgroups: CgroupManager) -> None:
        self.pid = pid
        self.sync = sync
        self.cgroups = cgroups
        self.master: int | None = None
        self.console: str | None = None

    def start(self) -> None:
        """Let the init process execute the container's program; raise if it can't."""
        _send(self.sync, {"type": "start"})
        message, _ = _recv(self.sync)
        if message is not None:
            raise LaunchError(message.get("message", "the container failed to start"))


def _send(sock: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.send(data)


def _recv(sock: socket.socket) -> tuple[dict | None, list[int]]:
    """One message and any descriptors it carried; (None, []) at EOF."""
    data, ancdata, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(array.array("i", payload[:usable]))
    if not data:
        return None, fds
    return json.loads(data), fds


# As runc: whatever the spec's device rules say, the default devices, the container's
# ptys and mknod itself stay allowed, and so does each device the spec creates.
IMPLICIT_DEVICE_RULES: list[dict] = [
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    *(
        {"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
        for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2))
    ),
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
]


def _with_implicit_devices(linux_cfg: dict) -> dict:
    resources = dict(linux_cfg.get("resources") or {})
    rules = list(resources.get("devices") or [])
    if rules:
        rules += IMPLICIT_DEVICE_RULES
        for dev in linux_cfg.get("devices") or []:
            if dev["type"] in ("c", "b"):
                rules.append(
                    {
                        "allow": True,
                        "type": dev["type"],
                        "major": dev["major"],
                        "minor": dev["minor"],
                        "access": "rwm",
                    }
                )
        resources["devices"] = rules
    return resources


def _write_maps(pid: int, linux_cfg: dict, step) -> None:  # noqa: ANN001
    for key, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        lines = "".join(
            f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux_cfg.get(key) or []
        )
        if lines:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(lines)
            step("namespace", f"wrote {name}: " + lines.strip().replace("\n", "; "))


def preflight(spec: dict, bundle: str) -> None:
    """Checks that need the filesystem, made before anything touches the kernel."""
    root = spec["root"]["path"]
    rootfs = root if root.startswith("/") else os.path.join(bundle, root)
    if os.path.islink(rootfs.rstrip("/")) or not os.path.isdir(rootfs):
        raise LaunchError(f"root.path: invalid rootfs {rootfs}: not a directory, or a symlink")
    for i, mount in enumerate(spec.get("mounts") or []):
        options = mount.get("options") or []
        if mount.get("type") != "bind" and "bind" not in options and "rbind" not in options:
            continue
        source = mount.get("source") or ""
        if not source:
            raise LaunchError(f"mounts[{i}].source: a bind mount needs a source")
        path = source if source.startswith("/") else os.path.join(bundle, source)
        if not os.path.exists(path):
            raise LaunchError(f"mounts[{i}].source: {source}: no such file or directory")


def launch(
    container_id: str,
    spec: dict,
    bundle: str,
    step: StepLog,
    stdio: tuple[int, int, int] | None = None,
    seccomp_cache: str | None = None,
) -> Launched:
    """Create the container's init process, stopped just before it runs the program."""
    preflight(spec, bundle)
    linux_cfg = spec.get("linux") or {}
    layout = CgroupLayout.detect()
    cgroups = CgroupManager(layout, linux_cfg.get("cgroupsPath") or "", container_id, step)
    program = None
    if linux_cfg.get("seccomp"):
        from simulator.runtime.seccomp import SeccompError, program_for

        try:
            program = program_for(linux_cfg["seccomp"], seccomp_cache)
        except (SeccompError, OSError, ValueError) as e:
            raise LaunchError(f"linux.seccomp: {e}") from None
    namespaces = linux_cfg.get("namespaces") or []
    new = [ns["type"] for ns in namespaces if not ns.get("path")]
    join_fds: dict[str, int] = {}
    opened: list[int] = []
    try:
        for i, ns in enumerate(namespaces):
            if ns.get("path"):
                try:
                    fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
                except OSError as e:
                    raise LaunchError(
                        f"linux.namespaces[{i}].path: {ns['path']}: {e.strerror}"
                    ) from None
                join_fds[ns["type"]] = fd
                opened.append(fd)
        cgroups.create(_with_implicit_devices(linux_cfg))
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    try:
        return _launch(container_id, spec, bundle, step, stdio, program, cgroups, new, join_fds)
    except BaseException:
        cgroups.destroy()
        raise
    finally:
        for fd in opened:
            os.close(fd)


def _launch(
    container_id: str,
    spec: dict,
    bundle: str,
    step: StepLog,
    stdio: tuple[int, int, int] | None,
    program: bytes | None,
    cgroups: CgroupManager,
    new: list[str],
    join_fds: dict[str, int],
) -> Launched:
    linux_cfg = spec.get("linux") or {}
    annotations = spec.get("annotations") or {}
    parent_pidns = annotations.get(PARENT_PIDNS_ANNOTATION)
    # A new pid namespace under a given parent, or owned by a new user namespace, is made
    # by a short-lived helper; see _helper().
    use_helper = "pid" in new and bool(parent_pidns or "user" in new)
    if "pid" in join_fds:
        linux.setns(join_fds["pid"], linux.CLONE_NEWPID)
        step("namespace", "the init process will join an existing pid namespace (setns)")
    elif "pid" in new and not use_helper:
        linux.unshare(linux.CLONE_NEWPID)
        step("namespace", "created a new pid namespace (unshare CLONE_NEWPID)")
    elif parent_pidns:
        try:
            fd = os.open(parent_pidns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise LaunchError(
                f"annotations[{PARENT_PIDNS_ANNOTATION!r}]: {parent_pidns}: {e.strerror}"
            ) from None
        try:
            linux.setns(fd, linux.CLONE_NEWPID)
        finally:
            os.close(fd)
        step("namespace", f"entered the parent pid namespace {parent_pidns} (setns)")
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # Every message from the other side carries its sender's PID, translated to ours.
    parent_sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    root = spec["root"]["path"]
    rootfs = root if root.startswith("/") else os.path.join(bundle, root)
    init_args = (child_sock, spec, bundle, rootfs, step, stdio, program, cgroups, new, join_fds)
    try:
        first = os.fork()
    except BaseException:
        parent_sock.close()
        child_sock.close()
        raise
    if first == 0:
        parent_sock.close()
        if use_helper:
            _helper(child_sock, "user" in new, init_args)
        else:
            _run_init(init_args, userns_ready=False)
        os._exit(1)
    child_sock.close()
    helper = first if use_helper else None
    pid = 0 if use_helper else first
    launched = Launched(pid=pid, sync=parent_sock, cgroups=cgroups)
    try:
        while True:
            message, fds, sender = _recv_from(parent_sock)
            if message is None:
                raise LaunchError("the container's init process exited during set-up")
            kind = message["type"]
            if kind == "hello":
                launched.pid = pid = sender
                if helper is not None:
                    os.waitpid(helper, 0)
                    helper = None
                step("process", f"the container's init process is host PID {pid}")
                # Moving a process between cgroups can wait for an RCU grace period:
                # do it from here while the init builds its root filesystem.
                try:
                    cgroups.join(pid)
                    _send(parent_sock, {"type": "joined"})
                except (ProcessLookupError, BrokenPipeError):
                    pass  # the init already failed: its error message is waiting for us
            elif kind == "userns":
                _write_maps(sender, linux_cfg, step)
                step("namespace", "created a new user namespace (unshare CLONE_NEWUSER)")
                _send(parent_sock, {"type": "ok"})
            elif kind == "console":
                launched.master = fds[0]
                launched.console = message.get("path")
                size = spec["process"].get("consoleSize")
                if size:
                    set_winsize(launched.master, size["height"], size["width"])
            elif kind == "ready":
                return launched
            elif kind == "error":
                raise LaunchError(message["message"])
    except BaseException:
        parent_sock.close()
        if launched.master is not None:
            os.close(launched.master)
        for victim in (pid, helper):
            if victim:
                try:
                    os.kill(victim, 9)
                except ProcessLookupError:
                    pass
                os.waitpid(victim, 0)
        raise


def _recv_from(sock: socket.socket) -> tuple[dict | None, list[int], int]:
    """Like _recv, plus the sender's PID from its SCM_CREDENTIALS."""
    data, ancdata, _, _ = sock.recvmsg(
        65536, socket.CMSG_SPACE(4 * 4) + socket.CMSG_SPACE(struct.calcsize("3i"))
    )
    fds: list[int] = []
    sender = 0
    for level, kind, payload in ancdata:
        if level != socket.SOL_SOCKET:
            continue
        if kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(array.array("i", payload[:usable]))
        elif kind == socket.SCM_CREDENTIALS:
            sender = struct.unpack("3i", payload[: struct.calcsize("3i")])[0]
    if not data:
        return None, fds, sender
    return json.loads(data), fds, sender


def _run_init(init_args: tuple, userns_ready: bool) -> None:
    """The container's init: set up, report errors to the parent, never return."""
    sync = init_args[0]
    try:
        _send(sync, {"type": "hello"})
        _init(*init_args, userns_ready=userns_ready)
    except BaseException as e:  # noqa: BLE001 - anything here must reach the parent
        if os.environ.get("SLIPWAY_RUNTIME_DEBUG"):
            import traceback

            traceback.print_exc()
        try:
            _send(sync, {"type": "error", "message": _describe_error(e)})
        except OSError:
            pass
    os._exit(1)


def _helper(sync: socket.socket, with_userns: bool, init_args: tuple) -> None:
    """Make the new pid namespace, then the init inside it as our parent's child.

    A process can't move itself into a new pid namespace, and /proc/PID/ns/pid_for_children
    can't be opened before the namespace has an init. So the helper unshares (a user
    namespace first, if asked, so that it owns the pid namespace), then clones the init
    with CLONE_PARENT: the init becomes PID 1 of the new namespace and a direct child of
    the shim, which can wait for it. The helper then exits.
    """
    try:
        if with_userns:
            linux.unshare(linux.CLONE_NEWUSER)
            _send(sync, {"type": "userns"})
            if _recv(sync)[0] is None:
                os._exit(1)
        linux.unshare(linux.CLONE_NEWPID)
        if linux.fork_with_flags(linux.CLONE_PARENT) == 0:
            _run_init(init_args, userns_ready=with_userns)
    except BaseException as e:  # noqa: BLE001
        try:
            _send(
                sync,
                {"type": "error", "message": f"creating the pid namespace: {_describe_error(e)}"},
            )
        except OSError:
            pass
    os._exit(0)


def _describe_error(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        if e.filename and str(e.filename) not in e.strerror:
            return f"{e.filename}: {e.strerror}"
        return e.strerror
    return str(e) or type(e).__name__


def _init(
    sync: socket.socket,
    spec: dict,
    bundle: str,
    rootfs: str,
    step: StepLog,
    stdio: tuple[int, int, int] | None,
    program: bytes | None,
    cgroups: CgroupManager,
    new: list[str],
    join_fds: dict[str, int],
    userns_ready: bool = False,
) -> None:
    """The container's init process, from fork to the wait for ``start``."""
    process = spec["process"]
    if stdio is not None:
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target)
    os.setsid()
    seen: set[str] = set()
    # Join the namespaces named by path: the user namespace first, so the rest are
    # joined with its privileges.
    order = ["user", "ipc", "uts", "network", "cgroup", "mount"]
    for kind in order:
        if kind in join_fds:
            linux.setns(join_fds[kind], linux.NAMESPACE_FLAGS[kind])
            step("namespace", f"joined the existing {kind} namespace (setns)")
    in_userns = "user" in new or "user" in join_fds
    if "user" in new:
        if not userns_ready:
            linux.unshare(linux.CLONE_NEWUSER)
            _send(sync, {"type": "userns"})
            _expect(sync, "ok", seen)
            step("namespace", "created a new user namespace (unshare CLONE_NEWUSER)")
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    if "cgroup" in new:
        _expect(sync, "joined", seen)  # the cgroup namespace is rooted where the init is
    flags = 0
    names = []
    for kind in ("mount", "uts", "ipc", "network", "cgroup"):
        if kind in new:
            flags |= linux.NAMESPACE_FLAGS[kind]
            names.append(kind)
    if flags:
        linux.unshare(flags)
        step("namespace", f"created new {', '.join(names)} namespaces (unshare)")
    if "network" in new:
        linux.set_link_up("lo")
        step("network", "brought up the loopback interface lo")
    if spec.get("hostname") and ("uts" in new or "uts" in join_fds):
        linux.sethostname(spec["hostname"])
        step("hostname", f"set the hostname to {spec['hostname']}")
    cgroup_dirs = []
    for h in cgroups.layout.v1:
        name = os.path.basename(h.mountpoint)
        cgroup_dirs.append((name, cgroups.dirs[",".join(h.controllers)]))
    builder = RootfsBuilder(
        spec, bundle, rootfs, step, cgroup_dirs, cgroups.v2_dir, in_userns=in_userns
    )
    builder.prepare()
    console = None
    if process.get("terminal"):
        master, console = builder.open_console()
        _send(sync, {"type": "console", "path": console}, [master])
        os.close(master)
    builder.pivot()
    builder.finish()
    if console:
        slave = os.open(console, os.O_RDWR | os.O_CLOEXEC)
        for target in (0, 1, 2):
            os.dup2(slave, target)
        os.close(slave)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    proc.close_other_fds()
    proc.apply_rlimits(process, step)
    no_new_privs = bool(process.get("noNewPrivileges"))
    if program and not no_new_privs:
        proc.load_seccomp(program, step)  # needs CAP_SYS_ADMIN without no_new_privs
    proc.drop_privileges(process, step)
    if no_new_privs:
        proc.set_no_new_privs(step)
    env = process.get("env") or []
    try:
        os.chdir(process["cwd"])
    except OSError as e:
        raise proc.ProcessError(
            f"chdir to cwd ({process['cwd']!r}) set in config.json failed: {e.strerror}"
        ) from None
    path = proc.lookup(process["args"], env, process["cwd"])
    _expect(sync, "joined", seen)
    _send(sync, {"type": "ready"})
    message, _ = _recv(sync)
    if message is None or message.get("type") != "start":
        os._exit(1)
    if program and no_new_privs:
        proc.load_seccomp(program, step)
    step("exec", "executing " + json.dumps(process["args"]))
    step.close()
    proc.exec_program(path, process["args"], env)


def _expect(sync: socket.socket, kind: str, seen: set[str]) -> None:
    """Wait for the parent's message ``kind``; remember others that arrive first."""
    while kind not in seen:
        message, _ = _recv(sync)
        if message is None:
            os._exit(1)  # the parent is gone: nobody will start this container
        seen.add(message["type"])


def set_winsize(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
