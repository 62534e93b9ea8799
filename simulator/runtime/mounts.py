"""Build a container's root filesystem: mounts, /dev, pivot_root, masked and read-only paths.

These functions run in the container's init process, inside its new mount namespace,
before it executes the container's program.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from collections.abc import Callable

from simulator import linux

StepFn = Callable[[str, str], None]

_FLAGS: dict[str, tuple[bool, int]] = {
    # option: (clear the flag?, flag)
    "ro": (False, linux.MS_RDONLY),
    "rw": (True, linux.MS_RDONLY),
    "nosuid": (False, linux.MS_NOSUID),
    "suid": (True, linux.MS_NOSUID),
    "nodev": (False, linux.MS_NODEV),
    "dev": (True, linux.MS_NODEV),
    "noexec": (False, linux.MS_NOEXEC),
    "exec": (True, linux.MS_NOEXEC),
    "sync": (False, linux.MS_SYNCHRONOUS),
    "async": (True, linux.MS_SYNCHRONOUS),
    "dirsync": (False, linux.MS_DIRSYNC),
    "remount": (False, linux.MS_REMOUNT),
    "mand": (False, linux.MS_MANDLOCK),
    "nomand": (True, linux.MS_MANDLOCK),
    "noatime": (False, linux.MS_NOATIME),
    "atime": (True, linux.MS_NOATIME),
    "nodiratime": (False, linux.MS_NODIRATIME),
    "diratime": (True, linux.MS_NODIRATIME),
    "relatime": (False, linux.MS_RELATIME),
    "norelatime": (True, linux.MS_RELATIME),
    "strictatime": (False, linux.MS_STRICTATIME),
    "nostrictatime": (True, linux.MS_STRICTATIME),
    "lazytime": (False, linux.MS_LAZYTIME),
    "nolazytime": (True, linux.MS_LAZYTIME),
    "nosymfollow": (False, linux.MS_NOSYMFOLLOW),
    "symfollow": (True, linux.MS_NOSYMFOLLOW),
}
_PROPAGATION = {
    "private": linux.MS_PRIVATE,
    "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "shared": linux.MS_SHARED,
    "rshared": linux.MS_SHARED | linux.MS_REC,
    "slave": linux.MS_SLAVE,
    "rslave": linux.MS_SLAVE | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE,
    "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}

# The character devices every container gets (path, major, minor).
DEFAULT_DEVICES = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)

_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431


class MountError(OSError):
    """A mount the spec asked for that could not be made; the message names the entry."""


class MountOptions:
    """OCI mount options split into what mount(2) takes."""

    __slots__ = ("flags", "propagation", "data", "bind", "recursive")

    def __init__(self) -> None:
        self.flags = 0
        self.propagation = 0
        self.data = ""
        self.bind = False
        self.recursive = False


def parse_options(options: list[str]) -> MountOptions:
    """Split OCI mount options into mount(2) flags, propagation flags and fs data."""
    result = MountOptions()
    data = []
    for option in options:
        if option in ("bind", "rbind"):
            result.bind = True
            result.recursive = result.recursive or option == "rbind"
        elif option in _FLAGS:
            clear, flag = _FLAGS[option]
            result.flags = result.flags & ~flag if clear else result.flags | flag
        elif option in _PROPAGATION:
            result.propagation |= _PROPAGATION[option]
        else:
            data.append(option)
    result.data = ",".join(data)
    return result


def secure_join(root: str, unsafe: str) -> str:
    """Resolve ``unsafe`` as if ``root`` were /, following symlinks without leaving root."""
    root = os.path.abspath(root)
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 255:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), unsafe)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


_ST_TO_MS = (
    (os.ST_RDONLY, linux.MS_RDONLY),
    (os.ST_NOSUID, linux.MS_NOSUID),
    (os.ST_NODEV, linux.MS_NODEV),
    (os.ST_NOEXEC, linux.MS_NOEXEC),
    (os.ST_NOATIME, linux.MS_NOATIME),
    (os.ST_NODIRATIME, linux.MS_NODIRATIME),
    (os.ST_RELATIME, linux.MS_RELATIME),
)


def mount_flags_of(path: str) -> int:
    """The per-mount flags now in force at ``path``, as MS_* flags."""
    f_flag = os.statvfs(path).f_flag
    return sum(ms for st, ms in _ST_TO_MS if f_flag & st)


def _make_mountpoint(path: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(path, exist_ok=True)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755))


class RootfsBuilder:
    """Mounts the spec's entries under ``rootfs`` and pivots into it."""

    def __init__(
        self,
        spec: dict,
        bundle: str,
        rootfs: str,
        step: StepFn,
        cgroup_dirs: list[tuple[str, str]],
        cgroup_v2_dir: str | None,
        in_userns: bool,
    ) -> None:
        self.spec = spec
        self.bundle = bundle
        self.rootfs = rootfs
        self.step = step
        self.cgroup_dirs = cgroup_dirs  # (name inside /sys/fs/cgroup, host directory)
        self.cgroup_v2_dir = cgroup_v2_dir
        self.in_userns = in_userns
        namespaces = (spec.get("linux") or {}).get("namespaces") or []
        self.new_ns = {ns["type"] for ns in namespaces if not ns.get("path")}

    # -- before pivot_root ---------------------------------------------------------------

    def prepare(self) -> None:
        linux_cfg = self.spec.get("linux") or {}
        propagation = _PROPAGATION.get(linux_cfg.get("rootfsPropagation") or "rslave")
        linux.mount(None, "/", None, propagation or (linux.MS_SLAVE | linux.MS_REC))
        linux.mount(self.rootfs, self.rootfs, None, linux.MS_BIND | linux.MS_REC)
        self.step("mount", f"bind-mounted the root filesystem {self.rootfs} onto itself")
        for i, entry in enumerate(self.spec.get("mounts") or []):
            try:
                self._mount_entry(entry)
            except OSError as e:
                what = f"mounts[{i}] ({entry.get('type') or 'bind'} on {entry['destination']})"
                raise MountError(e.errno, f"{what}: {e.strerror}") from None
        self._create_devices()
        self._dev_symlinks()

    def _mount_entry(self, entry: dict) -> None:
        dest = secure_join(self.rootfs, entry["destination"])
        kind = entry.get("type") or ""
        opts = parse_options(entry.get("options") or [])
        source = entry.get("source") or ""
        if kind == "bind" or opts.bind:
            self._bind(entry, source, dest, opts)
        elif kind == "cgroup":
            self._mount_cgroup(dest, opts)
        elif kind == "cgroup2":
            os.makedirs(dest, exist_ok=True)
            linux.mount(source or "cgroup2", dest, "cgroup2", opts.flags, opts.data or None)
            self.step("mount", f"mounted cgroup2 on {entry['destination']}")
        else:
            os.makedirs(dest, exist_ok=True)
            try:
                linux.mount(source or kind, dest, kind, opts.flags, opts.data or None)
            except PermissionError:
                if kind != "sysfs" or "network" in self.new_ns:
                    raise
                # sysfs can't be mounted without a network namespace of one's own: bind the
                # host's, read-only, as runc does.
                linux.mount("/sys", dest, None, linux.MS_BIND | linux.MS_REC)
                linux.mount(None, dest, None, linux.MS_BIND | linux.MS_REMOUNT | opts.flags)
            self.step("mount", f"mounted {kind} on {entry['destination']}{_describe(entry)}")
        if opts.propagation:
            linux.mount(None, dest, None, opts.propagation)

    def _bind(self, entry: dict, source: str, dest: str, opts: MountOptions) -> None:
        if not source:
            raise MountError(
                errno.EINVAL, f"mount on {entry['destination']}: a bind needs a source"
            )
        if not source.startswith("/"):
            source = os.path.join(self.bundle, source)
        try:
            st = os.stat(source)
        except FileNotFoundError:
            raise MountError(
                errno.ENOENT,
                f"mount on {entry['destination']}: source {source}: no such file or directory",
            ) from None
        _make_mountpoint(dest, stat.S_ISDIR(st.st_mode))
        flags = linux.MS_BIND | (linux.MS_REC if opts.recursive else 0)
        linux.mount(source, dest, None, flags)
        if opts.flags & ~linux.MS_REMOUNT:
            remount = linux.MS_BIND | linux.MS_REMOUNT | opts.flags
            if self.in_userns:
                remount |= mount_flags_of(dest) & (
                    linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
                )
            linux.mount(None, dest, None, remount)
        self.step("mount", f"bind-mounted {source} on {entry['destination']}{_describe(entry)}")

    def _mount_cgroup(self, dest: str, opts: MountOptions) -> None:
        os.makedirs(dest, exist_ok=True)
        if not self.cgroup_dirs:
            # A v2-only host: the unified hierarchy, fresh in a cgroup namespace, else bound.
            if "cgroup" in self.new_ns:
                linux.mount("cgroup2", dest, "cgroup2", opts.flags)
            elif self.cgroup_v2_dir:
                linux.mount(self.cgroup_v2_dir, dest, None, linux.MS_BIND | linux.MS_REC)
                linux.mount(None, dest, None, linux.MS_BIND | linux.MS_REMOUNT | opts.flags)
            self.step("mount", f"mounted the container's cgroup2 directory on {dest}")
            return
        tmpfs_flags = opts.flags & ~linux.MS_RDONLY
        linux.mount("tmpfs", dest, "tmpfs", tmpfs_flags, "mode=755")
        self.step("mount", f"mounted tmpfs on {dest} to hold the cgroup v1 hierarchies")
        for name, host_dir in self.cgroup_dirs:
            target = os.path.join(dest, name)
            os.makedirs(target, exist_ok=True)
            linux.mount(host_dir, target, None, linux.MS_BIND | linux.MS_REC)
            linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | opts.flags)
            self.step("mount", f"bind-mounted {host_dir} on /sys/fs/cgroup/{name}")
            if "," in name:
                for part in name.split(","):
                    link = os.path.join(dest, part)
                    if not os.path.lexists(link):
                        os.symlink(name, link)

    def _create_devices(self) -> None:
        linux_cfg = self.spec.get("linux") or {}
        devices = [
            {
                "path": path,
                "type": "c",
                "major": major,
                "minor": minor,
                "fileMode": 0o666,
                "uid": 0,
                "gid": 0,
            }
            for path, major, minor in DEFAULT_DEVICES
        ]
        devices += linux_cfg.get("devices") or []
        old_umask = os.umask(0)
        try:
            for dev in devices:
                self._create_device(dev)
        finally:
            os.umask(old_umask)
        names = ", ".join(os.path.basename(d["path"]) for d in devices)
        self.step("devices", f"created the device nodes {names}")

    def _create_device(self, dev: dict) -> None:
        path = secure_join(self.rootfs, dev["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if self.in_userns:
            # mknod is refused in a user namespace: bind the host's node instead.
            _make_mountpoint(path, False)
            linux.mount(dev["path"], path, None, linux.MS_BIND)
            return
        kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
        mode = kinds[dev["type"]] | (
            dev.get("fileMode") if dev.get("fileMode") is not None else 0o666
        )
        if os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path):
                return
            os.unlink(path)
        os.mknod(path, mode, os.makedev(dev.get("major") or 0, dev.get("minor") or 0))
        os.chown(path, dev.get("uid") or 0, dev.get("gid") or 0)

    def _dev_symlinks(self) -> None:
        dev = secure_join(self.rootfs, "/dev")
        links = [
            ("/proc/self/fd", "fd"),
            ("/proc/self/fd/0", "stdin"),
            ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"),
        ]
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        for target, name in links:
            path = os.path.join(dev, name)
            if not os.path.lexists(path):
                os.symlink(target, path)
        ptmx = os.path.join(dev, "ptmx")
        if os.path.isdir(os.path.join(dev, "pts")):
            if os.path.lexists(ptmx):
                os.unlink(ptmx)
            os.symlink("pts/ptmx", ptmx)

    def open_console(self) -> tuple[int, str]:
        """Open a new pty in the container's devpts; bind its slave to /dev/console."""
        ptmx = secure_join(self.rootfs, "/dev/pts/ptmx")
        master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
        (number,) = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0\0\0\0"))
        slave_in_container = f"/dev/pts/{number}"
        console = secure_join(self.rootfs, "/dev/console")
        _make_mountpoint(console, False)
        os.chmod(console, 0o600)
        linux.mount(secure_join(self.rootfs, slave_in_container), console, None, linux.MS_BIND)
        self.step("console", f"opened pty {slave_in_container} and bound it on /dev/console")
        return master, slave_in_container

    # -- pivot_root and after ------------------------------------------------------------

    def pivot(self) -> None:
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new_root = os.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new_root)
            linux.pivot_root(".", ".")
            os.fchdir(old_root)
            linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC)
            linux.umount2(".", linux.MNT_DETACH)
            os.chdir("/")
        finally:
            os.close(old_root)
            os.close(new_root)
        self.step("pivot_root", f"pivot_root into {self.rootfs}; detached the old root")

    def finish(self) -> None:
        """Everything done from inside the new root, before the program runs."""
        linux_cfg = self.spec.get("linux") or {}
        sysctls = linux_cfg.get("sysctl") or {}
        for key, value in sysctls.items():
            path = "/proc/sys/" + key.replace(".", "/")
            with open(path, "w") as f:
                f.write(value)
            self.step("sysctl", f"set {key} = {value}")
        for path in linux_cfg.get("readonlyPaths") or []:
            self._readonly(path)
        masked = []
        for path in linux_cfg.get("maskedPaths") or []:
            if self._mask(path):
                masked.append(path)
        if masked:
            self.step("mask", "masked " + ", ".join(masked))
        if (self.spec.get("root") or {}).get("readonly"):
            flags = mount_flags_of("/") | linux.MS_RDONLY | linux.MS_BIND | linux.MS_REMOUNT
            linux.mount(None, "/", None, flags)
            self.step("mount", "remounted / read-only")

    def _readonly(self, path: str) -> None:
        try:
            linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
        except FileNotFoundError:
            return
        flags = (
            mount_flags_of(path) | linux.MS_RDONLY | linux.MS_BIND | linux.MS_REMOUNT | linux.MS_REC
        )
        linux.mount(None, path, None, flags)
        self.step("mount", f"made {path} read-only")

    def _mask(self, path: str) -> bool:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        if stat.S_ISDIR(st.st_mode):
            linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY)
        else:
            linux.mount("/dev/null", path, None, linux.MS_BIND)
        return True


def _describe(entry: dict) -> str:
    options = entry.get("options") or []
    return f" ({','.join(options)})" if options else ""
