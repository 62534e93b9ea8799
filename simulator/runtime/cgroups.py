"""Container cgroups on cgroup v1, v2, or a hybrid of both.

``CgroupLayout.detect()`` reads /proc/self/mountinfo to find which controllers sit in which
hierarchy. ``CgroupManager`` creates a container's cgroup in every hierarchy, writes its
limits, moves processes in, reads OOM kills, and removes it. Every file it writes goes to
the step log.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable

# Options of a v1 cgroup mount that aren't controllers.
_V1_OPTIONS = frozenset({"rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode"})

# Controllers the runtime writes limits to. Other v1 hierarchies are joined but left alone.
MANAGED = ("memory", "cpu", "pids", "devices", "freezer", "cpuset")


class Hierarchy:
    """One mounted cgroup hierarchy."""

    __slots__ = ("mountpoint", "controllers", "root", "version")

    def __init__(self, mountpoint: str, controllers: tuple[str, ...], root: str, version: int):
        self.mountpoint = mountpoint
        self.controllers = controllers  # v1: e.g. ("cpu", "cpuacct") or ("name=systemd",)
        self.root = root  # the mount's root within the hierarchy, usually "/"
        self.version = version


class CgroupLayout:
    """Which hierarchy holds which controller on this host."""

    def __init__(self) -> None:
        self.v1: list[Hierarchy] = []
        self.v2: Hierarchy | None = None
        self.v2_controllers: tuple[str, ...] = ()

    @property
    def mode(self) -> str:
        if self.v1 and self.v2:
            return "hybrid"
        return "v1" if self.v1 else "v2"

    def v1_for(self, controller: str) -> Hierarchy | None:
        for h in self.v1:
            if controller in h.controllers:
                return h
        return None

    def version_of(self, controller: str) -> int | None:
        """Which version carries ``controller``: v1 wins where both could."""
        if self.v1_for(controller):
            return 1
        if self.v2 and controller in self.v2_controllers:
            return 2
        return None

    @classmethod
    def parse(
        cls, mountinfo: str, read_controllers: Callable[[str], str] | None = None
    ) -> CgroupLayout:
        """Build a layout from mountinfo text; ``read_controllers`` reads a v2 mount's list."""
        layout = cls()
        for line in mountinfo.splitlines():
            left, sep, right = line.partition(" - ")
            if not sep:
                continue
            fields, rfields = left.split(), right.split()
            if len(fields) < 5 or len(rfields) < 3:
                continue
            fstype, superopts = rfields[0], rfields[2]
            root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
            if fstype == "cgroup":
                controllers = tuple(
                    o
                    for o in superopts.split(",")
                    if o.startswith("name=") or ("=" not in o and o not in _V1_OPTIONS)
                )
                if controllers:
                    layout.v1.append(Hierarchy(mountpoint, controllers, root, 1))
            elif fstype == "cgroup2" and layout.v2 is None:
                layout.v2 = Hierarchy(mountpoint, (), root, 2)
        if layout.v2:
            reader = read_controllers or _read_text
            try:
                text = reader(os.path.join(layout.v2.mountpoint, "cgroup.controllers"))
            except OSError:
                text = ""
            layout.v2_controllers = tuple(text.split())
        return layout

    @classmethod
    def detect(cls) -> CgroupLayout:
        return cls.parse(_read_text("/proc/self/mountinfo"))


def _unescape(path: str) -> str:
    return (
        path.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def _read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def own_cgroups(text: str | None = None) -> dict[str, str]:
    """Map each v1 controller (and "" for v2) to the calling process's cgroup path."""
    if text is None:
        text = _read_text("/proc/self/cgroup")
    result: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            result[""] = path
        for c in controllers.split(","):
            if c:
                result[c] = path
    return result


def shares_to_weight(shares: int) -> int:
    """Convert cgroup v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000)."""
    if shares <= 0:
        return 100
    return 1 + ((max(shares, 2) - 2) * 9999) // 262142


StepFn = Callable[[str, str], None]


class CgroupManager:
    """One container's cgroup, across all hierarchies of ``layout``."""

    def __init__(
        self,
        layout: CgroupLayout,
        cgroups_path: str,
        container_id: str,
        step: StepFn | None = None,
        own: dict[str, str] | None = None,
    ) -> None:
        self.layout = layout
        self.step = step or (lambda kind, text: None)
        own = own_cgroups() if own is None else own
        self.dirs: dict[str, str] = {}  # hierarchy key -> absolute directory
        self.v2_dir: str | None = None
        for h in layout.v1:
            key = ",".join(h.controllers)
            base = own.get(h.controllers[0], "/")
            rel = _container_path(cgroups_path, container_id, base, h.root)
            self.dirs[key] = os.path.join(h.mountpoint, rel.lstrip("/"))
        if layout.v2:
            rel = _container_path(cgroups_path, container_id, own.get("", "/"), layout.v2.root)
            self.v2_dir = os.path.join(layout.v2.mountpoint, rel.lstrip("/"))

    # -- paths ---------------------------------------------------------------------------

    def dir_for(self, controller: str) -> str | None:
        """The directory that carries ``controller`` for this container."""
        h = self.layout.v1_for(controller)
        if h:
            return self.dirs[",".join(h.controllers)]
        if self.v2_dir and controller in self.layout.v2_controllers:
            return self.v2_dir
        return None

    def all_dirs(self) -> list[str]:
        dirs = list(self.dirs.values())
        if self.v2_dir:
            dirs.append(self.v2_dir)
        return dirs

    # -- writes --------------------------------------------------------------------------

    def _write(self, directory: str, name: str, value: str) -> None:
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, value.encode())
        except OSError as e:
            raise OSError(e.errno, f"writing {value!r} to {path}: {e.strerror}") from None
        finally:
            os.close(fd)
        self.step("cgroup", f"wrote {value} to {path}")

    def create(self, resources: dict) -> None:
        """Make the cgroup directories and write ``resources`` (OCI linux.resources)."""
        for key, directory in self.dirs.items():
            self._mkdir(directory)
            if key.split(",")[0] == "cpuset" or "cpuset" in key.split(","):
                self._init_cpuset(directory)
        if self.v2_dir:
            self._enable_v2_controllers()
            self._mkdir(self.v2_dir)
        try:
            self._apply(resources)
        except OSError:
            self.destroy()
            raise

    def _mkdir(self, directory: str) -> None:
        if not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
            self.step("cgroup", f"created cgroup {directory}")

    def _init_cpuset(self, directory: str) -> None:
        # A v1 cpuset cgroup accepts no task until cpus and mems are set: copy the
        # parent's, from the top down.
        h = self.layout.v1_for("cpuset")
        assert h is not None
        chain = []
        d = directory
        while len(d) > len(h.mountpoint):
            chain.append(d)
            d = os.path.dirname(d)
        for d in reversed(chain):
            parent = os.path.dirname(d)
            for name in ("cpuset.cpus", "cpuset.mems"):
                path = os.path.join(d, name)
                try:
                    current = _read_text(path).strip()
                except OSError:
                    current = ""
                if not current:
                    value = _read_text(os.path.join(parent, name)).strip()
                    self._write(d, name, value)

    def _enable_v2_controllers(self) -> None:
        assert self.layout.v2 is not None and self.v2_dir is not None
        wanted = [c for c in ("cpu", "memory", "pids") if c in self.layout.v2_controllers]
        wanted = [c for c in wanted if self.layout.version_of(c) == 2]
        if not wanted:
            return
        mount = self.layout.v2.mountpoint
        d = os.path.dirname(self.v2_dir)
        chain = []
        while len(d) >= len(mount):
            chain.append(d)
            if d == mount:
                break
            d = os.path.dirname(d)
        for d in reversed(chain):
            os.makedirs(d, exist_ok=True)
            try:
                enabled = _read_text(os.path.join(d, "cgroup.subtree_control")).split()
            except OSError:
                enabled = []
            missing = [c for c in wanted if c not in enabled]
            if missing:
                self._write(d, "cgroup.subtree_control", " ".join("+" + c for c in missing))

    def _apply(self, res: dict) -> None:
        memory = res.get("memory") or {}
        cpu = res.get("cpu") or {}
        pids = res.get("pids") or {}
        devices = res.get("devices") or []
        self._apply_memory(memory)
        self._apply_cpu(cpu)
        if pids.get("limit") is not None:
            d, version = self._controller("pids")
            limit = pids["limit"]
            self._write(d, "pids.max", "max" if limit <= 0 else str(limit))
        if devices:
            self._apply_devices(devices)

    def _controller(self, name: str) -> tuple[str, int]:
        version = self.layout.version_of(name)
        d = self.dir_for(name)
        if version is None or d is None:
            raise OSError(errno.ENOENT, f"the {name} cgroup controller is not available")
        return d, version

    def _apply_memory(self, memory: dict) -> None:
        limit, swap, reservation = (
            memory.get("limit"),
            memory.get("swap"),
            memory.get("reservation"),
        )
        if limit is None and swap is None and reservation is None:
            return
        d, version = self._controller("memory")
        if version == 1:
            if limit is not None:
                self._write(d, "memory.limit_in_bytes", str(limit))
            if swap is not None and os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes")):
                self._write(d, "memory.memsw.limit_in_bytes", str(swap))
            if reservation is not None:
                self._write(d, "memory.soft_limit_in_bytes", str(reservation))
        else:
            if limit is not None:
                self._write(d, "memory.max", "max" if limit < 0 else str(limit))
            if swap is not None and limit is not None:
                # OCI's swap is memory+swap; v2's swap.max is swap alone.
                value = "max" if swap < 0 else str(max(swap - limit, 0))
                self._write(d, "memory.swap.max", value)
            if reservation is not None:
                self._write(d, "memory.low", str(reservation))

    def _apply_cpu(self, cpu: dict) -> None:
        shares, quota, period = cpu.get("shares"), cpu.get("quota"), cpu.get("period")
        if shares is None and quota is None and period is None:
            return
        d, version = self._controller("cpu")
        if version == 1:
            if shares is not None:
                self._write(d, "cpu.shares", str(shares))
            if period is not None:
                self._write(d, "cpu.cfs_period_us", str(period))
            if quota is not None:
                self._write(d, "cpu.cfs_quota_us", str(quota))
        else:
            if shares is not None:
                self._write(d, "cpu.weight", str(shares_to_weight(shares)))
            if quota is not None or period is not None:
                q = "max" if quota is None or quota <= 0 else str(quota)
                self._write(d, "cpu.max", f"{q} {period or 100000}")

    def _apply_devices(self, rules: list[dict]) -> None:
        version = self.layout.version_of("devices")
        if version == 1:
            d = self.dir_for("devices")
            assert d is not None
            for rule in rules:
                kind = rule.get("type") or "a"
                major = "*" if rule.get("major") is None else str(rule["major"])
                minor = "*" if rule.get("minor") is None else str(rule["minor"])
                access = rule.get("access") or "rwm"
                entry = "a" if kind == "a" else f"{kind} {major}:{minor} {access}"
                self._write(d, "devices.allow" if rule.get("allow") else "devices.deny", entry)
        else:
            # cgroup v2 controls devices with an eBPF program, which this runtime does not
            # load yet; say so rather than pretend.
            self.step(
                "cgroup",
                "device rules not enforced: cgroup v2 needs an eBPF device program",
            )

    # -- processes -----------------------------------------------------------------------

    def join(self, pid: int = 0) -> None:
        """Move ``pid`` (0: the caller) into every hierarchy's cgroup."""
        for d in self.all_dirs():
            try:
                self._write(d, "cgroup.procs", str(pid))
            except OSError:
                if d == self.v2_dir and self.layout.mode == "hybrid":
                    continue  # the unified hierarchy of a hybrid host holds no controllers
                raise

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer struck inside this cgroup."""
        d = self.dir_for("memory")
        if not d:
            return False
        name = "memory.oom_control" if self.layout.version_of("memory") == 1 else "memory.events"
        try:
            text = _read_text(os.path.join(d, name))
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value) > 0
        return False

    def pids(self) -> list[int]:
        d = self.dir_for("pids") or (self.all_dirs() or [None])[0]
        if not d:
            return []
        try:
            return [int(x) for x in _read_text(os.path.join(d, "cgroup.procs")).split()]
        except OSError:
            return []

    def freeze(self, frozen: bool) -> None:
        version = self.layout.version_of("freezer")
        if version == 1:
            d = self.dir_for("freezer")
            assert d is not None
            self._write(d, "freezer.state", "FROZEN" if frozen else "THAWED")
        elif self.v2_dir:
            self._write(self.v2_dir, "cgroup.freeze", "1" if frozen else "0")
        else:
            raise OSError(errno.ENOENT, "no freezer cgroup is available")

    def frozen(self) -> bool:
        d = self.dir_for("freezer")
        if d:
            try:
                return _read_text(os.path.join(d, "freezer.state")).strip() == "FROZEN"
            except OSError:
                return False
        if self.v2_dir:
            try:
                return _read_text(os.path.join(self.v2_dir, "cgroup.freeze")).strip() == "1"
            except OSError:
                return False
        return False

    def destroy(self, timeout: float = 5.0) -> None:
        """Remove the cgroup from every hierarchy, once its processes are gone."""
        deadline = time.monotonic() + timeout
        for d in self.all_dirs():
            while True:
                try:
                    os.rmdir(d)
                    self.step("cgroup", f"removed cgroup {d}")
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)


def _container_path(cgroups_path: str, container_id: str, own: str, mount_root: str) -> str:
    """The container's cgroup path within a hierarchy, relative to the mount's root.

    As runc: an absolute ``cgroupsPath`` is taken from the hierarchy's root; a relative one,
    or the container's ID when none is given, sits under the caller's own cgroup.
    """
    path = cgroups_path or container_id
    if not path.startswith("/"):
        path = os.path.join(own, path)
    path = os.path.normpath(path)
    if mount_root != "/" and (path == mount_root or path.startswith(mount_root + "/")):
        path = path[len(mount_root) :] or "/"
    return path
