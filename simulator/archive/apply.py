"""Unpack an OCI or Docker layer tar into a directory, with every path resolved inside it.

Paths go through openat2(RESOLVE_IN_ROOT) (simulator.linux.fs), so no entry, symlink or hardlink
in the tar reaches outside the root. Whiteouts are applied (deleted) or kept as overlayfs ones.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import lzma
import os
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO, Literal

from simulator.linux import fs

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
# overlayfs keeps its own metadata in these xattrs; a layer never carries them.
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
PAX_XATTR_PREFIX = "SCHILY.xattr."

WhiteoutMode = Literal["overlay", "delete"]

_CHUNK = 1 << 20
_NS = 1_000_000_000


class ArchiveError(Exception):
    """A layer tar that cannot be unpacked or written; the message says why."""


class BreakoutError(ArchiveError):
    """A tar entry, symlink or hardlink whose path leads outside the root it is unpacked into."""


@dataclass(frozen=True)
class ApplyResult:
    """What apply_layer unpacked."""

    diff_id: str  # "sha256:..." of the uncompressed tar, as an image config lists it
    tar_size: int  # bytes of the uncompressed tar
    unpacked_size: int  # bytes of regular-file content and symlink targets written


def apply_layer(tar_stream: BinaryIO, root: str | Path, *, whiteouts: WhiteoutMode) -> ApplyResult:
    """Unpack a layer tar (plain, gzip, bzip2 or xz, sniffed) from ``tar_stream`` into ``root``.

    ``whiteouts="delete"``: ``.wh.NAME`` deletes NAME and ``.wh..wh..opq`` empties its directory
    of what earlier layers put there (flattening layers into one tree).
    ``whiteouts="overlay"``: ``root`` is an overlayfs upper dir; ``.wh.NAME`` becomes a 0/0
    character device and ``.wh..wh..opq`` sets ``trusted.overlay.opaque=y`` on its directory.
    Raises ArchiveError (BreakoutError for paths leading outside ``root``); the root is then
    left partly written and the caller discards it.
    """
    if whiteouts not in ("overlay", "delete"):
        raise ValueError(f"whiteouts must be 'overlay' or 'delete', not {whiteouts!r}")
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        head = _read_head(tar_stream, 6)
        if not head:
            return ApplyResult("sha256:" + hashlib.sha256().hexdigest(), 0, 0)
        reader = _HashingReader(_decompressed(head, tar_stream))
        unpacker = _Unpacker(root_fd, str(root), whiteouts)
        try:
            _unpack_all(reader, unpacker)
            reader.drain()
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as e:
            raise _stream_error(e) from e
        unpacker.set_directory_times()
        return ApplyResult(reader.digest, reader.size, unpacker.unpacked_size)
    finally:
        os.close(root_fd)


def _unpack_all(reader: _HashingReader, unpacker: _Unpacker) -> None:
    ending = _EndingAsGoDoes(reader)
    with tarfile.open(fileobj=ending, mode="r|", tarinfo=_StrictTarInfo) as tar:
        while (member := tar.next()) is not None:
            ending.data_end = member.offset_data + member.size
            tar.members.clear()  # a stream is read once; keep memory flat on big layers
            try:
                unpacker.add(tar, member)
            except gzip.BadGzipFile:
                raise  # the stream is bad, not the filesystem: apply_layer reports it
            except OSError as e:
                raise ArchiveError(f'failed to unpack "{member.name}": {e}') from e


def _read_head(stream: BinaryIO, size: int) -> bytes:
    """The first ``size`` bytes, or fewer at EOF (a pipe or socket may answer in pieces)."""
    head = b""
    while len(head) < size:
        chunk = stream.read(size - len(head))
        if not chunk:
            break
        head += chunk
    return head


def _stream_error(error: Exception) -> ArchiveError:
    message = str(error)
    if isinstance(error, EOFError) or "unexpected end of data" in message:
        return ArchiveError("unexpected EOF")
    if isinstance(error, gzip.BadGzipFile | zlib.error) or message.startswith("zlib error"):
        return ArchiveError(f"gzip: invalid layer data: {message}")
    return ArchiveError(f"archive/tar: {message}")


class _StrictTarInfo(tarfile.TarInfo):
    """tarfile quietly stops at a corrupt header after the first one; this raises instead."""

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tar)
        except tarfile.TruncatedHeaderError:
            raise ArchiveError("unexpected EOF") from None
        except tarfile.InvalidHeaderError:
            raise ArchiveError("archive/tar: invalid tar header") from None


class _EndingAsGoDoes:
    """Go's tar reader takes a stream that ends right after a member's data, or right after
    its padding, as the end of the archive (the docker CLI sends such a context when the
    Dockerfile is outside it); tarfile wants the padding and the end-of-archive blocks. At
    such an end this gives tarfile what it wants; a stream that ends anywhere else (inside
    a header, a member's data or its padding) is still cut short."""

    def __init__(self, source: _HashingReader) -> None:
        self._source = source
        self._position = 0
        self._tail = b""
        self.data_end = -1  # where the last member's data ends, once there is one

    def read(self, size: int = -1) -> bytes:
        data = b""
        if not self._tail:
            data = self._source.read(size)
            if data or size == 0:
                self._position += len(data)
                return data
            padded = -(-self.data_end // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            if self._position not in (self.data_end, padded):
                return b""
            self._tail = bytes(padded - self._position + 2 * tarfile.BLOCKSIZE)
        data, self._tail = (self._tail, b"") if size < 0 else (self._tail[:size], self._tail[size:])
        self._position += len(data)
        return data


class _PrefixedReader:
    """A reader that gives back the sniffed magic bytes before the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._rest.read(size)


def _decompressed(head: bytes, rest: BinaryIO) -> BinaryIO:
    stream = _PrefixedReader(head, rest)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(stream)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(stream)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise ArchiveError("unsupported layer compression: zstd")
    return stream


class _HashingReader:
    """Counts and hashes the uncompressed tar as tarfile reads it: that is the diffID."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read what tarfile left after the end-of-archive blocks; it counts in the diffID."""
        while self.read(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def clean_path(name: str) -> tuple[str, ...] | None:
    """The components of a tar path, read from the root; None when ".." climbs above it."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return tuple(parts)


def _mtime_ns(member: tarfile.TarInfo) -> int:
    exact = member.pax_headers.get("mtime")
    if exact is not None:
        try:
            return int(Decimal(exact) * _NS)
        except ArithmeticError:
            pass
    return int(member.mtime) * _NS


def _layer_xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    found = []
    for key, value in member.pax_headers.items():
        if not key.startswith(PAX_XATTR_PREFIX):
            continue
        attribute = key[len(PAX_XATTR_PREFIX) :]
        if attribute.startswith(OVERLAY_XATTR_PREFIXES):
            continue  # a layer must not forge overlayfs whiteouts, redirects or metacopy
        found.append((attribute, value.encode("utf-8", "surrogateescape")))
    return found


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _remove_at(dir_fd: int, name: str, existing: os.stat_result) -> None:
    if stat.S_ISDIR(existing.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _is_unsupported_xattr(error: OSError) -> bool:
    # As Docker: a filesystem without xattrs (ENOTSUP), or user.* on a symlink or device (EPERM).
    return error.errno in (errno.ENOTSUP, errno.EPERM)


@dataclass
class _Unpacker:
    root_fd: int
    root: str
    whiteouts: WhiteoutMode
    unpacked_size: int = 0
    # Paths this layer created, with every ancestor: an opaque whiteout keeps these.
    unpacked: set[tuple[str, ...]] = field(default_factory=set)
    # Directory mtimes, set at the end, after their contents stopped changing.
    directory_times: list[tuple[tuple[str, ...], int]] = field(default_factory=list)

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = clean_path(member.name)
        if parts is None:
            raise BreakoutError(f'"{member.name}" is outside of "{self.root}"')
        if not parts:
            self._root_entry(member)
            return
        if parts[0].startswith(WHITEOUT_META_PREFIX) and parts != (WHITEOUT_OPAQUE,):
            return  # aufs metadata (.wh..wh.plnk and the like), never part of the tree
        if parts[-1].startswith(WHITEOUT_PREFIX):
            self._whiteout(member, parts)
            return
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            if not (member.ischr() or member.isblk() or member.isfifo()):
                raise ArchiveError(f'unhandled tar header type {member.type!r} in "{member.name}"')
        for depth in range(1, len(parts) + 1):
            self.unpacked.add(parts[:depth])
        parent_fd = fs.mkdir_all_in_root(self.root_fd, "/".join(parts[:-1]))
        try:
            self._create(tar, member, parts, parent_fd)
        finally:
            os.close(parent_fd)

    def _create(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, parts: tuple[str, ...], parent_fd: int
    ) -> None:
        name = parts[-1]
        # As Docker: whatever is there goes, unless a directory meets a directory (they merge).
        existing = _lstat_at(parent_fd, name)
        if existing is not None and not (member.isdir() and stat.S_ISDIR(existing.st_mode)):
            _remove_at(parent_fd, name, existing)
            existing = None
        if member.isreg():
            self._regular_file(tar, member, parent_fd, name)
        elif member.isdir():
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
            try:
                self._set_metadata_fd(fd, member)
            finally:
                os.close(fd)
            self.directory_times.append((parts, _mtime_ns(member)))
        elif member.issym():
            self._symlink(member, parts, parent_fd)
            self.unpacked_size += len(member.linkname.encode())  # as du counts a symlink
        elif member.islnk():
            self._hardlink(member, parent_fd, name)
        elif member.isfifo():
            os.mknod(name, stat.S_IFIFO | 0o600, dir_fd=parent_fd)
            self._set_metadata_at(parent_fd, name, member, chmod=True)
        else:  # a character or block device, made as Docker makes it when running as root
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            device = os.makedev(member.devmajor, member.devminor)
            os.mknod(name, kind | 0o600, device, dir_fd=parent_fd)
            self._set_metadata_at(parent_fd, name, member, chmod=True)

    def _regular_file(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent_fd: int, name: str
    ) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=parent_fd)
        with open(fd, "wb") as out:
            source = tar.extractfile(member)
            if source is not None:
                shutil.copyfileobj(source, out, _CHUNK)
            out.flush()
            self._set_metadata_fd(fd, member)
            mtime = _mtime_ns(member)
            os.utime(fd, ns=(mtime, mtime))
        self.unpacked_size += member.size

    def _symlink(self, member: tarfile.TarInfo, parts: tuple[str, ...], parent_fd: int) -> None:
        target = member.linkname
        # As Docker: a relative target that climbs out of the root is refused. (An absolute
        # one, or one that climbs through other symlinks, still resolves inside the root.)
        if not target.startswith("/") and clean_path("/".join(parts[:-1]) + "/" + target) is None:
            raise BreakoutError(f'invalid symlink "{member.name}" -> "{target}"')
        os.symlink(target, parts[-1], dir_fd=parent_fd)
        self._set_metadata_at(parent_fd, parts[-1], member, chmod=False)

    def _hardlink(self, member: tarfile.TarInfo, parent_fd: int, name: str) -> None:
        target = clean_path(member.linkname)
        if not target:
            raise BreakoutError(f'invalid hardlink "{member.name}" -> "{member.linkname}"')
        try:
            target_fd, target_name = fs.open_parent_in_root(self.root_fd, "/".join(target))
        except OSError as e:
            raise ArchiveError(
                f'hardlink "{member.name}" -> "{member.linkname}": {(e.strerror or str(e)).lower()}'
            ) from e
        try:
            # Links the name itself, not what a symlink there points to, as tar does.
            os.link(
                target_name,
                name,
                src_dir_fd=target_fd,
                dst_dir_fd=parent_fd,
                follow_symlinks=False,
            )
        except OSError as e:
            raise ArchiveError(
                f'hardlink "{member.name}" -> "{member.linkname}": {(e.strerror or str(e)).lower()}'
            ) from e
        finally:
            os.close(target_fd)

    def _whiteout(self, member: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        directory, base = parts[:-1], parts[-1]
        if base == WHITEOUT_OPAQUE:
            self._opaque(directory)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs metadata
        hidden = base[len(WHITEOUT_PREFIX) :]
        if hidden in ("", ".", ".."):
            raise BreakoutError(f'invalid whiteout "{member.name}"')
        if self.whiteouts == "delete":
            try:
                parent_fd = fs.open_in_root(
                    self.root_fd, "/".join(directory), os.O_PATH | os.O_DIRECTORY
                )
            except (FileNotFoundError, NotADirectoryError):
                return  # nothing there to delete
            try:
                existing = _lstat_at(parent_fd, hidden)
                if existing is not None:
                    _remove_at(parent_fd, hidden, existing)
            finally:
                os.close(parent_fd)
            return
        parent_fd = fs.mkdir_all_in_root(self.root_fd, "/".join(directory))
        try:
            existing = _lstat_at(parent_fd, hidden)
            if existing is not None:
                _remove_at(parent_fd, hidden, existing)
            os.mknod(hidden, stat.S_IFCHR, 0, dir_fd=parent_fd)
            os.chown(hidden, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)
            mtime = _mtime_ns(member)
            os.utime(hidden, ns=(mtime, mtime), dir_fd=parent_fd, follow_symlinks=False)
        finally:
            os.close(parent_fd)
        for depth in range(1, len(parts)):
            self.unpacked.add(parts[:depth])
        self.unpacked.add((*directory, hidden))

    def _opaque(self, directory: tuple[str, ...]) -> None:
        if self.whiteouts == "overlay":
            fd = fs.mkdir_all_in_root(self.root_fd, "/".join(directory))
            try:
                fs.set_xattr_at(fd, ".", OVERLAY_OPAQUE_XATTR, b"y")
            finally:
                os.close(fd)
            for depth in range(1, len(directory) + 1):
                self.unpacked.add(directory[:depth])
            return
        try:
            fd = self._open_directory_nofollow(directory)
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing below to hide
        try:
            self._remove_lower_entries(fd, directory)
        finally:
            os.close(fd)

    def _open_directory_nofollow(self, directory: tuple[str, ...]) -> int:
        if not directory:
            return os.dup(self.root_fd)
        parent_fd, name = fs.open_parent_in_root(self.root_fd, "/".join(directory))
        try:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                return os.open(name, flags, dir_fd=parent_fd)
            except OSError as e:
                if e.errno == errno.ELOOP:  # a symlink: nothing below it to hide
                    raise NotADirectoryError(e.errno, e.strerror, name) from e
                raise
        finally:
            os.close(parent_fd)

    def _remove_lower_entries(self, dir_fd: int, directory: tuple[str, ...]) -> None:
        """Empty an opaque directory of everything this layer did not put there."""
        for name in os.listdir(dir_fd):
            existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if (*directory, name) not in self.unpacked:
                _remove_at(dir_fd, name, existing)
            elif stat.S_ISDIR(existing.st_mode):
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                child_fd = os.open(name, flags, dir_fd=dir_fd)
                try:
                    self._remove_lower_entries(child_fd, (*directory, name))
                finally:
                    os.close(child_fd)

    def _root_entry(self, member: tarfile.TarInfo) -> None:
        if not member.isdir():
            raise ArchiveError(f'cannot replace the root directory with "{member.name}"')
        self._set_metadata_fd(self.root_fd, member)
        self.directory_times.append(((), _mtime_ns(member)))

    def _set_metadata_fd(self, fd: int, member: tarfile.TarInfo) -> None:
        # chown first: it clears setuid and setgid bits, which chmod then sets.
        os.chown(fd, member.uid, member.gid)
        os.chmod(fd, member.mode)
        for attribute, value in _layer_xattrs(member):
            try:
                os.setxattr(fd, attribute, value)
            except OSError as e:
                if not _is_unsupported_xattr(e):
                    raise

    def _set_metadata_at(
        self, parent_fd: int, name: str, member: tarfile.TarInfo, *, chmod: bool
    ) -> None:
        os.chown(name, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)
        if chmod:
            fs.chmod_at(parent_fd, name, member.mode)
        for attribute, value in _layer_xattrs(member):
            try:
                fs.set_xattr_at(parent_fd, name, attribute, value)
            except OSError as e:
                if not _is_unsupported_xattr(e):
                    raise
        mtime = _mtime_ns(member)
        os.utime(name, ns=(mtime, mtime), dir_fd=parent_fd, follow_symlinks=False)

    def set_directory_times(self) -> None:
        for parts, mtime in reversed(self.directory_times):
            if not parts:
                os.utime(self.root_fd, ns=(mtime, mtime))
                continue
            try:
                parent_fd, name = fs.open_parent_in_root(self.root_fd, "/".join(parts))
            except (FileNotFoundError, NotADirectoryError):
                continue  # a later entry removed it
            try:
                existing = _lstat_at(parent_fd, name)
                if existing is not None and stat.S_ISDIR(existing.st_mode):
                    os.utime(name, ns=(mtime, mtime), dir_fd=parent_fd, follow_symlinks=False)
            finally:
                os.close(parent_fd)
