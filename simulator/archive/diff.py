"""Write an OCI layer tar from an overlayfs upper directory, turning its whiteouts into OCI ones.

The diffID (and the blob digest, when compressing) are hashed from the bytes as they are written.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from simulator.archive.apply import (
    OVERLAY_XATTR_PREFIXES,
    PAX_XATTR_PREFIX,
    WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
    ArchiveError,
)
from simulator.linux import fs

# Docker compresses layers at Go's default level; this is zlib's equivalent.
GZIP_LEVEL = 6
# overlayfs marks an opaque directory with one of these (the second when mounted "userxattr").
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
# Upper-dir xattrs that describe a change a layer tar cannot express.
_UNREPRESENTABLE_XATTRS = tuple(
    prefix + name for prefix in OVERLAY_XATTR_PREFIXES for name in ("redirect", "metacopy")
)


@dataclass(frozen=True)
class DiffResult:
    """The layer diff_to_tar wrote. Without compression the blob is the tar itself."""

    diff_id: str  # "sha256:..." of the uncompressed tar
    tar_size: int  # bytes of the uncompressed tar
    digest: str  # "sha256:..." of the blob written to ``out`` (the gzip when compressing)
    size: int  # bytes written to ``out``


def diff_to_tar(upper: str | Path, out: BinaryIO, *, compress: bool = False) -> DiffResult:
    """Write the changes in overlayfs upper dir ``upper`` to ``out`` as an OCI layer tar.

    A 0/0 character device becomes ``.wh.NAME``; a directory with trusted.overlay.opaque=y is
    followed by ``DIR/.wh..wh..opq``. Entries come in sorted order, in PAX format, with numeric
    owners, modes, whole-second mtimes (as Docker writes them), hardlinks within the tree and
    xattrs (but not overlayfs's own). On error, ``out`` holds a partial tar.
    """
    blob = _DigestingWriter(out)
    compressor = (
        gzip.GzipFile(fileobj=blob, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
        if compress
        else None
    )
    tar_bytes = _DigestingWriter(compressor) if compressor is not None else blob
    upper_fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with tarfile.open(
            fileobj=tar_bytes,
            mode="w|",
            format=tarfile.PAX_FORMAT,
        ) as tar:
            _LayerWriter(tar).add_directory_contents(upper_fd, "")
    finally:
        os.close(upper_fd)
    if compressor is not None:
        compressor.close()  # writes the gzip trailer to ``blob``; ``out`` stays open
    blob.flush()
    return DiffResult(tar_bytes.digest, tar_bytes.size, blob.digest, blob.size)


class _DigestingWriter:
    """Passes bytes on to ``sink``, counting and hashing them on the way."""

    def __init__(self, sink: BinaryIO | gzip.GzipFile) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        view = memoryview(data)
        while view:
            written = self._sink.write(view)
            if not isinstance(written, int) or written >= len(view):
                break  # all taken (a sink that returns None takes all, as BinaryIO promises)
            view = view[written:]  # a raw file took part of it
        return len(data)

    def flush(self) -> None:
        flush = getattr(self._sink, "flush", None)
        if flush is not None:
            flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def _header(path: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = st.st_mtime_ns // 1_000_000_000
    return info


def _xattrs_of_fd(fd: int) -> dict[str, bytes]:
    try:
        return {name: os.getxattr(fd, name) for name in os.listxattr(fd)}
    except OSError as e:
        if e.errno == errno.ENOTSUP:
            return {}
        raise


def _xattrs_at(dir_fd: int, name: str) -> dict[str, bytes]:
    try:
        return {key: fs.get_xattr_at(dir_fd, name, key) for key in fs.list_xattr_at(dir_fd, name)}
    except OSError as e:
        if e.errno == errno.ENOTSUP:
            return {}
        raise


@dataclass
class _LayerWriter:
    tar: tarfile.TarFile
    # (st_dev, st_ino) -> the name under which a multiply-linked file was first written.
    first_names: dict[tuple[int, int], str] = field(default_factory=dict)

    def add_directory_contents(self, dir_fd: int, prefix: str) -> None:
        for name in sorted(os.listdir(dir_fd), key=os.fsencode):
            path = prefix + name
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISCHR(mode) and st.st_rdev == 0:
                # An overlayfs whiteout. Whiteouts may share one inode: they are never links.
                whiteout = _header(prefix + WHITEOUT_PREFIX + name, st, tarfile.REGTYPE)
                whiteout.mode = 0o600
                self.tar.addfile(whiteout)
            elif stat.S_ISDIR(mode):
                self._directory(dir_fd, name, path)
            elif stat.S_ISREG(mode):
                self._regular_file(dir_fd, name, path, st)
            elif stat.S_ISLNK(mode):
                if self._add_link_if_seen(path, st):
                    continue
                info = _header(path, st, tarfile.SYMTYPE)
                info.linkname = os.readlink(name, dir_fd=dir_fd)
                self._add_xattrs(info, _xattrs_at(dir_fd, name))
                self.tar.addfile(info)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                if self._add_link_if_seen(path, st):
                    continue
                kind = (
                    tarfile.CHRTYPE
                    if stat.S_ISCHR(mode)
                    else tarfile.BLKTYPE
                    if stat.S_ISBLK(mode)
                    else tarfile.FIFOTYPE
                )
                info = _header(path, st, kind)
                if kind != tarfile.FIFOTYPE:
                    info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                self._add_xattrs(info, _xattrs_at(dir_fd, name))
                self.tar.addfile(info)
            # Sockets are left out, as Docker leaves them out.

    def _directory(self, parent_fd: int, name: str, path: str) -> None:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=parent_fd)
        try:
            st = os.fstat(fd)
            xattrs = _xattrs_of_fd(fd)
            self._refuse_unrepresentable(path, xattrs)
            info = _header(path, st, tarfile.DIRTYPE)
            self._add_xattrs(info, xattrs)
            self.tar.addfile(info)
            if any(xattrs.get(attribute) == b"y" for attribute in _OPAQUE_XATTRS):
                opaque = _header(f"{path}/{WHITEOUT_OPAQUE}", st, tarfile.REGTYPE)
                opaque.mode &= 0o777
                self.tar.addfile(opaque)
            self.add_directory_contents(fd, path + "/")
        finally:
            os.close(fd)

    def _regular_file(self, parent_fd: int, name: str, path: str, st: os.stat_result) -> None:
        if self._add_link_if_seen(path, st):
            return
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=parent_fd)
        with open(fd, "rb") as content:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode) or opened.st_ino != st.st_ino:
                raise ArchiveError(f'"{path}" changed while the layer was being written')
            xattrs = _xattrs_of_fd(fd)
            self._refuse_unrepresentable(path, xattrs)
            info = _header(path, opened, tarfile.REGTYPE)
            info.size = opened.st_size
            self._add_xattrs(info, xattrs)
            self.tar.addfile(info, content)

    def _add_link_if_seen(self, path: str, st: os.stat_result) -> bool:
        """Write a hardlink entry if this inode was written before; else remember it."""
        if st.st_nlink < 2:
            return False
        key = (st.st_dev, st.st_ino)
        first = self.first_names.get(key)
        if first is None:
            self.first_names[key] = path
            return False
        info = _header(path, st, tarfile.LNKTYPE)
        info.linkname = first
        self.tar.addfile(info)
        return True

    @staticmethod
    def _refuse_unrepresentable(path: str, xattrs: dict[str, bytes]) -> None:
        for attribute in _UNREPRESENTABLE_XATTRS:
            if attribute in xattrs:
                raise ArchiveError(
                    f'"{path}" carries {attribute}, which a layer tar cannot express: '
                    "mount the overlay with redirect_dir=off and metacopy=off"
                )

    @staticmethod
    def _add_xattrs(info: tarfile.TarInfo, xattrs: dict[str, bytes]) -> None:
        for attribute in sorted(xattrs):
            if attribute.startswith(OVERLAY_XATTR_PREFIXES):
                continue  # overlayfs's own bookkeeping (origin, impure, opaque...)
            value = xattrs[attribute].decode("utf-8", "surrogateescape")
            info.pax_headers[PAX_XATTR_PREFIX + attribute] = value
