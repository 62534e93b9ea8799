"""A container's filesystem as ``docker cp`` and ``docker export`` see it: stat a path, write a
path or the whole root filesystem as a tar, and unpack a tar into a directory.

As dockerd does, the work runs in a mount namespace of its own (here: a thread's), where the
container's root filesystem is mounted (if it is stopped) and its volumes and bind mounts are
bound on top, so that ``docker cp file c:/vol/`` lands in the volume. Nothing mounted there is
seen elsewhere, and it all goes when the thread ends. Every path is resolved inside the
container's root (openat2 with RESOLVE_IN_ROOT): ``..`` and symlinks, absolute ones included,
never lead out of it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar

from simulator import linux
from simulator.archive.apply import OVERLAY_XATTR_PREFIXES, PAX_XATTR_PREFIX, clean_path
from simulator.engine.container_spec import read_file_in_root, resolve_user
from simulator.engine.containers import Container, ContainerError
from simulator.linux import fs

if TYPE_CHECKING:
    from simulator.engine.containers import ContainerManager

Result = TypeVar("Result")

MAX_SYMLINKS = 255  # as moby/sys/symlink's FollowSymlinkInScope
_CHUNK = 1 << 20
_CAPABILITY_XATTR = "security.capability"
# Go's os.FileMode bits, as PathStat's "mode" carries them.
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_NAMED_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHAR_DEVICE = 1 << 21
_GO_STICKY = 1 << 20


class CopyError(ContainerError):
    """A copy that fails, with the HTTP status dockerd answers it with."""


def run_in_own_mount_namespace(function: Callable[[], Result]) -> Result:
    """Run ``function`` in a new thread with a mount namespace of its own (private: nothing
    mounted there propagates back), wait for it, and return what it returned."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            enter_own_mount_namespace()
            outcome["value"] = function()
        except BaseException as error:  # handed to the caller, who raises it
            outcome["error"] = error

    thread = threading.Thread(target=target, name="container-fs", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def enter_own_mount_namespace() -> None:
    """Give the calling thread a private mount namespace. Only for a thread that ends when
    its work does: it never leaves the namespace."""
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)


@dataclass
class ContainerView:
    """A container's filesystem, open in the calling thread's own mount namespace."""

    container: Container
    rootfs: Path
    root_fd: int
    names: _Names

    def container_path(self, fd: int) -> str:
        """Where an open file is, as a path in the container."""
        host = os.readlink(f"/proc/self/fd/{fd}")
        relative = os.path.relpath(host, self.rootfs)
        if relative == ".":
            return "/"
        if relative.startswith(".."):
            raise CopyError(f"{host} is outside the container's root", 500)
        return "/" + relative


@contextlib.contextmanager
def open_view(
    manager: ContainerManager, reference: str, *, with_mounts: bool = True
) -> Iterator[ContainerView]:
    """The container's filesystem (with its volumes and bind mounts, unless not
    ``with_mounts``), held still meanwhile. Call it in a thread of a mount namespace of its
    own (run_in_own_mount_namespace, enter_own_mount_namespace)."""
    with manager.held_root_filesystem(reference) as (container, rootfs):
        root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if with_mounts:
                _bind_mounts(manager, container, root_fd)
            yield ContainerView(container, rootfs, root_fd, _Names.of(str(rootfs)))
        finally:
            os.close(root_fd)


def _bind_mounts(manager: ContainerManager, container: Container, root_fd: int) -> None:
    """Bind the container's volumes and bind mounts where it has them (parents first)."""
    mounts = [m for m in container.mounts if m.get("Type") in ("volume", "bind")]
    mounts.sort(key=lambda m: len([p for p in m["Destination"].split("/") if p]))
    for mount in mounts:
        if mount["Type"] == "volume":
            source = str(manager.volumes.data_path(mount["Name"]))
        else:
            source = mount["Source"]
        try:
            is_directory = stat.S_ISDIR(os.stat(source).st_mode)
        except OSError:
            continue  # gone from the host: the container would not start either
        target_fd = _mount_point(root_fd, mount["Destination"], is_directory)
        try:
            linux.mount(source, f"/proc/self/fd/{target_fd}", None, linux.MS_BIND | linux.MS_REC)
        except OSError as error:
            raise CopyError(f"cannot mount {mount['Destination']}: {error.strerror}", 500) from None
        finally:
            os.close(target_fd)
        if not mount.get("RW", True):  # the remount must name the new mount: look it up again
            mounted_fd = fs.open_in_root(root_fd, mount["Destination"], os.O_PATH)
            try:
                flags = linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY
                linux.mount(None, f"/proc/self/fd/{mounted_fd}", None, flags)
            finally:
                os.close(mounted_fd)


def _mount_point(root_fd: int, destination: str, is_directory: bool) -> int:
    """An O_PATH descriptor of the mount point, made as dockerd makes it if missing."""
    if is_directory:
        return fs.mkdir_all_in_root(root_fd, destination)
    parent, _, name = destination.rstrip("/").rpartition("/")
    parent_fd = fs.mkdir_all_in_root(root_fd, parent)
    try:
        with contextlib.suppress(FileExistsError):
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open(name, flags, 0o755, dir_fd=parent_fd))
        return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)


# -- stat ------------------------------------------------------------------------------------


def absolute_path(path: str) -> str:
    """``filepath.Join("/", path)``, keeping a trailing "/" or "/." as dockerd does."""
    joined = posixpath.normpath(posixpath.join("/", path))
    joined = "/" + joined.lstrip("/")
    if path.endswith("/.") or path == ".":
        return joined.rstrip("/") + "/."
    if path.endswith("/") and joined != "/":
        return joined + "/"
    return joined


def _follows_last(path: str) -> bool:
    """Whether lstat(2) would follow the path's last component (a trailing "/", ".", "..")."""
    last = path.rstrip("/").rpartition("/")[2]
    return path.endswith("/") or last in ("", ".", "..")


def lstat_in_root(view: ContainerView, path: str) -> os.stat_result:
    """lstat(2) of a container path."""
    if _follows_last(path):
        fd = fs.open_in_root(view.root_fd, path, os.O_PATH)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)
    parent_fd, name = fs.open_parent_in_root(view.root_fd, path)
    try:
        return os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    finally:
        os.close(parent_fd)


def follow_in_scope(view: ContainerView, path: str) -> str:
    """The path with every symlink followed inside the container's root (missing parts kept
    as they are): moby's FollowSymlinkInScope(path, "/")."""
    pending = [part for part in path.split("/") if part]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = "/" + "/".join([*resolved, part])
        try:
            parent_fd, name = fs.open_parent_in_root(view.root_fd, candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        try:
            info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            target = os.readlink(name, dir_fd=parent_fd) if stat.S_ISLNK(info.st_mode) else None
        except FileNotFoundError:
            target = None
        finally:
            os.close(parent_fd)
        if target is None:
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise CopyError(f"too many links in {path}", 400)
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p] + pending
    return "/" + "/".join(resolved)


def path_stat(view: ContainerView, path: str) -> dict[str, Any]:
    """The PathStat of a container path (``X-Docker-Container-Path-Stat``)."""
    info = lstat_in_root(view, path)
    link_target = follow_in_scope(view, path) if stat.S_ISLNK(info.st_mode) else ""
    return {
        "name": _go_base(path),
        "size": info.st_size,
        "mode": go_file_mode(info.st_mode),
        "mtime": go_time(info.st_mtime_ns),
        "linkTarget": link_target,
    }


def _go_base(path: str) -> str:
    """Go's filepath.Base."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    if not stripped:
        return "/"
    return stripped.rpartition("/")[2]


def go_file_mode(mode: int) -> int:
    """A stat(2) mode as Go's os.FileMode."""
    result = stat.S_IMODE(mode) & 0o777
    kind = stat.S_IFMT(mode)
    result |= {
        stat.S_IFDIR: _GO_DIR,
        stat.S_IFLNK: _GO_SYMLINK,
        stat.S_IFBLK: _GO_DEVICE,
        stat.S_IFCHR: _GO_DEVICE | _GO_CHAR_DEVICE,
        stat.S_IFIFO: _GO_NAMED_PIPE,
        stat.S_IFSOCK: _GO_SOCKET,
    }.get(kind, 0)
    for bit, go_bit in (
        (stat.S_ISUID, _GO_SETUID),
        (stat.S_ISGID, _GO_SETGID),
        (stat.S_ISVTX, _GO_STICKY),
    ):
        if mode & bit:
            result |= go_bit
    return result


def go_time(nanoseconds: int) -> str:
    """A time as Go's encoding/json writes a local time.Time (RFC 3339, nanoseconds)."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds).astimezone()
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    offset = moment.strftime("%z")
    return text + ("Z" if offset == "+0000" else f"{offset[:3]}:{offset[3:]}")


# -- writing tars ----------------------------------------------------------------------------


@dataclass
class _Names:
    """User and group names by ID, from the container's /etc/passwd and /etc/group, for the
    tar headers (as Go's archive/tar fills them in dockerd's chroot)."""

    users: dict[int, str]
    groups: dict[int, str]

    @classmethod
    def of(cls, rootfs: str) -> _Names:
        return cls(_id_names(rootfs, "/etc/passwd"), _id_names(rootfs, "/etc/group"))


def _id_names(rootfs: str, path: str) -> dict[int, str]:
    names: dict[int, str] = {}
    for line in (read_file_in_root(rootfs, path) or "").splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            names.setdefault(int(fields[2]), fields[0])
    return names


class _TarWriter:
    """Writes entries read through directory descriptors: regular files, directories,
    symlinks, hardlinks (by inode), FIFOs and devices; sockets are left out, as Go's tar
    leaves them."""

    def __init__(self, out: BinaryIO, names: _Names) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        self.names = names
        self.seen: dict[tuple[int, int], str] = {}

    def close(self) -> None:
        self.tar.close()

    def add(self, dir_fd: int, name: str, archive_name: str, info: os.stat_result) -> None:
        """One entry: ``name`` in ``dir_fd`` ("." for the directory itself)."""
        mode = info.st_mode
        if stat.S_ISSOCK(mode):
            return
        entry = tarfile.TarInfo(archive_name)
        entry.mode = stat.S_IMODE(mode)
        entry.uid, entry.gid = info.st_uid, info.st_gid
        entry.uname = self.names.users.get(info.st_uid, "")
        entry.gname = self.names.groups.get(info.st_gid, "")
        entry.mtime = int(info.st_mtime)
        key = (info.st_dev, info.st_ino)
        if stat.S_ISREG(mode) and info.st_nlink > 1 and key in self.seen:
            entry.type = tarfile.LNKTYPE
            entry.linkname = self.seen[key]
            self.tar.addfile(entry)
            return
        if stat.S_ISDIR(mode):
            entry.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            entry.type = tarfile.SYMTYPE
            entry.linkname = os.readlink(name, dir_fd=dir_fd)
        elif stat.S_ISFIFO(mode):
            entry.type = tarfile.FIFOTYPE
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            entry.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            entry.devmajor, entry.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
        capability = self._capability(dir_fd, name, mode)
        if capability is not None:
            entry.pax_headers = {PAX_XATTR_PREFIX + _CAPABILITY_XATTR: capability}
        if not stat.S_ISREG(mode):
            self.tar.addfile(entry)
            return
        if info.st_nlink > 1:
            self.seen[key] = archive_name
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as file:
            entry.size = info.st_size
            self.tar.addfile(entry, _Exactly(file, info.st_size))

    @staticmethod
    def _capability(dir_fd: int, name: str, mode: int) -> str | None:
        if not stat.S_ISREG(mode):
            return None
        try:
            value = fs.get_xattr_at(dir_fd, name, _CAPABILITY_XATTR)
        except OSError:
            return None
        return value.decode("utf-8", "surrogateescape")

    def add_tree(self, dir_fd: int, archive_name: str) -> None:
        """Everything under the open directory, in name order, named under ``archive_name``
        ("" for bare relative names)."""
        for name in sorted(os.listdir(dir_fd)):
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile
            child = posixpath.join(archive_name, name) if archive_name else name
            self.add(dir_fd, name, child, info)
            if stat.S_ISDIR(info.st_mode):
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                try:
                    child_fd = os.open(name, flags, dir_fd=dir_fd)
                except FileNotFoundError:
                    continue
                try:
                    self.add_tree(child_fd, child)
                finally:
                    os.close(child_fd)


class _Exactly:
    """A file read as exactly ``size`` bytes, as its header said: cut if it grew since,
    padded with zeros if it shrank."""

    def __init__(self, file: IO[bytes], size: int) -> None:
        self.file = file
        self.left = size

    def read(self, size: int = -1) -> bytes:
        wanted = self.left if size < 0 else min(size, self.left)
        data = self.file.read(wanted) or b""
        data += b"\0" * (wanted - len(data))
        self.left -= len(data)
        return data


def write_path_tar(view: ContainerView, path: str, out: BinaryIO) -> None:
    """The tar ``GET /containers/{id}/archive`` sends: a directory with everything in it,
    or a single entry, named after the path's last element."""
    absolute = absolute_path(path)
    info = lstat_in_root(view, absolute)
    base = _go_base(absolute)
    writer = _TarWriter(out, view.names)
    if stat.S_ISDIR(info.st_mode):
        fd = fs.open_in_root(view.root_fd, absolute, os.O_RDONLY | os.O_DIRECTORY)
        try:
            writer.add(fd, ".", base, os.fstat(fd))
            writer.add_tree(fd, base)
        finally:
            os.close(fd)
    else:
        parent_fd, name = fs.open_parent_in_root(view.root_fd, absolute)
        try:
            writer.add(parent_fd, name, base, info)
        finally:
            os.close(parent_fd)
    writer.close()


def write_export_tar(view: ContainerView, out: BinaryIO) -> None:
    """The whole root filesystem, as ``docker export`` writes it (relative names)."""
    fd = fs.open_in_root(view.root_fd, "/", os.O_RDONLY | os.O_DIRECTORY)
    writer = _TarWriter(out, view.names)
    try:
        writer.add_tree(fd, "")
    finally:
        os.close(fd)
    writer.close()


# -- unpacking tars --------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtractOptions:
    """PUT /containers/{id}/archive's options."""

    no_overwrite_dir_non_dir: bool = False
    copy_uid_gid: bool = False


def extract_tar(view: ContainerView, path: str, stream: BinaryIO, options: ExtractOptions) -> None:
    """Unpack a tar (plain, gzip, bzip2 or xz) into the container directory ``path``."""
    try:
        dest_fd = fs.open_in_root(view.root_fd, path, os.O_RDONLY | os.O_DIRECTORY)
    except NotADirectoryError:
        raise CopyError("extraction point is not a directory", 400) from None
    try:
        destination = view.container_path(dest_fd)
    finally:
        os.close(dest_fd)
    _check_writable(view.container, destination)
    owner = _owner(view) if options.copy_uid_gid else None
    unpacker = _Unpacker(view, destination, options, owner)
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                tar.members.clear()
                unpacker.add(tar, member)
    except tarfile.ReadError as error:
        if str(error) != "empty file":  # nothing at all to unpack is fine, as for dockerd
            raise CopyError(f"archive/tar: {error}", 400) from None
    except (EOFError, tarfile.TarError) as error:
        raise CopyError(f"archive/tar: {error or 'unexpected EOF'}", 400) from None
    unpacker.set_directory_times()


def _check_writable(container: Container, destination: str) -> None:
    """dockerd's checkWritablePath: a read-only volume or root filesystem is refused."""
    best: dict[str, Any] | None = None
    for mount in container.mounts:
        target = mount.get("Destination", "")
        inside = destination == target or destination.startswith(target.rstrip("/") + "/")
        if inside and (best is None or len(target) > len(best["Destination"])):
            best = mount
    if best is not None:
        if not best.get("RW", True):
            raise CopyError("mounted volume is marked read-only", 400)
        return
    if container.host_config.get("ReadonlyRootfs"):
        raise CopyError("container rootfs is marked read-only", 400)


def _owner(view: ContainerView) -> tuple[int, int] | None:
    """``copyUIDGID``: everything belongs to the container's user, if it names one."""
    user = view.container.config.get("User") or ""
    if not user:
        return None
    try:
        resolved = resolve_user(str(view.rootfs), user)
    except Exception as error:
        raise CopyError(str(error), 400) from None
    return resolved.uid, resolved.gid


@dataclass
class _Unpacker:
    view: ContainerView
    destination: str  # a container path, symlinks resolved
    options: ExtractOptions
    owner: tuple[int, int] | None
    directory_times: list[tuple[str, int]] = field(default_factory=list)

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = clean_path(member.name)
        if parts is None:
            raise CopyError(f'"{member.name}" is outside of "{self.destination}"', 400)
        if member.ischr() or member.isblk():
            raise CopyError(
                f'"{member.name}" is a device file: device files can\'t be copied into a container',
                403,
            )
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            if not member.isfifo():
                raise CopyError(f'unhandled tar header type in "{member.name}"', 400)
        path = posixpath.join(self.destination, *parts) if parts else self.destination
        if not parts:
            if not member.isdir():
                raise CopyError(f'cannot replace the directory with "{member.name}"', 400)
            return  # the directory itself: dockerd leaves it as it is
        parent_fd = fs.mkdir_all_in_root(self.view.root_fd, posixpath.dirname(path))
        try:
            self._create(tar, member, parts, parent_fd, path)
        finally:
            os.close(parent_fd)

    def _create(
        self,
        tar: tarfile.TarFile,
        member: tarfile.TarInfo,
        parts: tuple[str, ...],
        parent_fd: int,
        path: str,
    ) -> None:
        name = parts[-1]
        try:
            existing: os.stat_result | None = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            is_dir = stat.S_ISDIR(existing.st_mode)
            if self.options.no_overwrite_dir_non_dir and is_dir and not member.isdir():
                raise CopyError(
                    f'cannot overwrite directory "{path}" with non-directory "{member.name}"',
                    400,
                )
            if self.options.no_overwrite_dir_non_dir and not is_dir and member.isdir():
                raise CopyError(
                    f'cannot overwrite non-directory "{path}" with directory "{member.name}"',
                    400,
                )
            if not (is_dir and member.isdir()):
                _remove(parent_fd, name, is_dir)
                existing = None
        if member.isdir():
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
            self.directory_times.append((path, int(member.mtime)))
        elif member.isreg():
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(name, flags, 0o600, dir_fd=parent_fd)
            with os.fdopen(fd, "wb") as out:
                source = tar.extractfile(member)
                if source is not None:
                    while chunk := source.read(_CHUNK):
                        out.write(chunk)
        elif member.issym():
            self._symlink(member, parts, parent_fd)
        elif member.islnk():
            self._hardlink(member, parent_fd, name)
        else:
            os.mkfifo(name, 0o600, dir_fd=parent_fd)
        self._metadata(parent_fd, name, member)

    def _symlink(self, member: tarfile.TarInfo, parts: tuple[str, ...], parent_fd: int) -> None:
        target = member.linkname
        # As dockerd: a relative target that climbs out of the destination is refused (an
        # absolute one is taken inside the container's root, where it can't lead out).
        if not target.startswith("/") and clean_path("/".join([*parts[:-1], target])) is None:
            raise CopyError(f'invalid symlink "{member.name}" -> "{target}"', 400)
        os.symlink(target, parts[-1], dir_fd=parent_fd)

    def _hardlink(self, member: tarfile.TarInfo, parent_fd: int, name: str) -> None:
        target = clean_path(member.linkname)
        if not target:
            raise CopyError(f'invalid hardlink "{member.name}" -> "{member.linkname}"', 400)
        source = posixpath.join(self.destination, *target)
        try:
            source_fd, source_name = fs.open_parent_in_root(self.view.root_fd, source)
        except OSError as error:
            raise CopyError(f'hardlink "{member.name}": {error.strerror}', 400) from None
        try:
            os.link(
                source_name,
                name,
                src_dir_fd=source_fd,
                dst_dir_fd=parent_fd,
                follow_symlinks=False,
            )
        finally:
            os.close(source_fd)

    def _metadata(self, parent_fd: int, name: str, member: tarfile.TarInfo) -> None:
        uid, gid = self.owner if self.owner is not None else (member.uid, member.gid)
        os.chown(name, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
        if member.islnk():
            return
        if not member.issym():
            fs.chmod_at(parent_fd, name, member.mode)
        for key, value in member.pax_headers.items():
            attribute = key.removeprefix(PAX_XATTR_PREFIX)
            if key == attribute or attribute.startswith(OVERLAY_XATTR_PREFIXES):
                continue
            if not attribute.startswith(("user.", _CAPABILITY_XATTR)):
                continue  # trusted.* and the like are the host's business
            with contextlib.suppress(OSError):
                fs.set_xattr_at(
                    parent_fd, name, attribute, value.encode("utf-8", "surrogateescape")
                )
        if not member.isdir():
            mtime = int(member.mtime) * 1_000_000_000
            os.utime(name, ns=(mtime, mtime), dir_fd=parent_fd, follow_symlinks=False)

    def set_directory_times(self) -> None:
        for path, mtime in reversed(self.directory_times):
            try:
                fd = fs.open_in_root(self.view.root_fd, path, os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue
            try:
                os.utime(fd, ns=(mtime * 1_000_000_000,) * 2)
            finally:
                os.close(fd)


def _remove(parent_fd: int, name: str, is_dir: bool) -> None:
    if is_dir:
        shutil.rmtree(name, dir_fd=parent_fd)
    else:
        os.unlink(name, dir_fd=parent_fd)


def copy_error(error: OSError, path: str, reference: str) -> CopyError:
    """A filesystem error in dockerd's words: a missing path is its 404."""
    if error.errno == errno.ENOENT:
        return CopyError(f"Could not find the file {path} in container {reference}", 404)
    if error.errno in (errno.ENOTDIR, errno.ELOOP, errno.EINVAL, errno.EXDEV):
        return CopyError(f"{path}: {(error.strerror or str(error)).lower()}", 400)
    if error.errno == errno.EROFS:
        return CopyError(f"{path}: read-only file system", 400)
    return CopyError(f"{path}: {error.strerror or error}", 500)
