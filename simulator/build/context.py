"""The build context: a tar stream (plain or compressed) unpacked safely into a directory,
with .dockerignore applied as Docker applies it, the Dockerfile read from it, and the
checksums its COPY steps need (Docker's tarsum of each file, for the legacy history)."""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from simulator.archive import ArchiveError, apply_layer
from simulator.build.ignore import IgnoreError, Matcher, read_patterns

DEFAULT_DOCKERFILE = "Dockerfile"
IGNORE_FILE = ".dockerignore"
_CHUNK = 1 << 20


class ContextError(ValueError):
    """A context that can't be used; the message is Docker's."""


@dataclass
class BuildContext:
    """An unpacked context directory and what was learnt from it."""

    root: Path
    ignore: Matcher = field(default_factory=lambda: Matcher([]))
    size: int = 0
    ignore_size: int = 0

    def resolve(self, path: str) -> Path:
        """``path`` (relative to the context) resolved inside it, symlinks followed within
        the context; the result may not exist."""
        return Path(secure_join(self.root, path))

    def read_dockerfile(self, name: str) -> bytes:
        """The Dockerfile's bytes: ``name`` in the context (``dockerfile`` if the default
        name is missing), as Docker looks it up."""
        path = self.resolve(name)
        if not path.is_file() and name == DEFAULT_DOCKERFILE:
            lowered = self.resolve(name.lower())
            if lowered.is_file():
                path = lowered
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ContextError(f"Cannot locate specified Dockerfile: {name}") from None

    def drop_ignored(self, dockerfile: str) -> None:
        """Apply .dockerignore to the context: excluded files go, and the Dockerfile and
        .dockerignore themselves when a pattern names them (they were read already)."""
        ignore_path = self.root / IGNORE_FILE
        if not ignore_path.is_file():
            return
        self.ignore_size = ignore_path.stat().st_size
        try:
            self.ignore = Matcher(read_patterns(ignore_path.read_text(errors="replace")))
        except IgnoreError as error:
            raise ContextError(f"error reading .dockerignore: {error}") from None
        if not self.ignore:
            return
        for directory, dirnames, filenames in os.walk(self.root):
            relative_dir = os.path.relpath(directory, self.root)
            for name in list(dirnames) + filenames:
                relative = name if relative_dir == "." else f"{relative_dir}/{name}"
                if relative in (IGNORE_FILE, posixpath.normpath(dockerfile)):
                    continue
                if self.ignore.excluded(relative) and not self._has_reincluded(relative):
                    target = Path(directory) / name
                    if target.is_dir() and not target.is_symlink():
                        shutil.rmtree(target)
                        if name in dirnames:
                            dirnames.remove(name)
                    else:
                        target.unlink()
        for name in (IGNORE_FILE, dockerfile):
            path = self.root / name
            if self.ignore.excluded(name) and (path.is_file() or path.is_symlink()):
                path.unlink()

    def _has_reincluded(self, directory: str) -> bool:
        """Whether an exclusion pattern (``!``) may re-include something below ``directory``:
        then the directory stays and its entries are judged one by one."""
        prefix = directory + "/"
        return any(
            pattern.exclusion and (pattern.text.startswith(prefix) or "*" in pattern.text)
            for pattern in self.ignore.patterns
        )


def secure_join(root: str | Path, path: str) -> str:
    """``root/path`` with every symlink on the way resolved as if ``root`` were ``/``."""
    root = str(root)
    parts = [part for part in path.split("/") if part not in ("", ".")]
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
            mode = os.lstat(candidate).st_mode
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        if stat.S_ISLNK(mode):
            hops += 1
            if hops > 255:
                raise ContextError(f"too many levels of symbolic links: {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


class _Counting:
    """Counts the bytes of the context stream as they are read."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.size += len(data)
        return data


def unpack_context(stream: BinaryIO, root: Path) -> BuildContext:
    """Unpack a context tar (plain, gzip, bzip2 or xz) into the empty directory ``root``.
    ContextError with Docker's message ("unexpected EOF", "archive/tar: invalid tar
    header") if it isn't a tar."""
    counting = _Counting(stream)
    try:
        apply_layer(counting, root, whiteouts="delete")
    except ArchiveError as error:
        raise ContextError(str(error)) from None
    except EOFError:
        raise ContextError("unexpected EOF") from None
    return BuildContext(root, size=counting.size)


def tarsum_of(root: Path, relative: str) -> str:
    """Docker's tarsum (version 1) of one entry of a directory tree: its tar header fields
    (name, mode, uid, gid, size, type, link; no times, no owner names) then its content;
    what the legacy builder names a copied file by (``file:<this>``)."""
    path = os.path.join(root, relative)
    status = os.lstat(path)
    mode = status.st_mode
    name = relative
    link = ""
    size = 0
    if stat.S_ISDIR(mode):
        kind = "5"
        name = relative.rstrip("/") + "/"
    elif stat.S_ISLNK(mode):
        kind = "2"
        link = os.readlink(path)
    elif stat.S_ISREG(mode):
        kind = "0"
        size = status.st_size
    elif stat.S_ISCHR(mode):
        kind = "3"
    elif stat.S_ISBLK(mode):
        kind = "4"
    else:
        kind = "6"
    device = status.st_rdev if kind in "34" else 0
    fields = [
        ("name", name),
        ("mode", str(stat.S_IMODE(mode))),
        ("uid", str(status.st_uid)),
        ("gid", str(status.st_gid)),
        ("size", str(size)),
        ("typeflag", kind),
        ("linkname", link),
        ("uname", ""),
        ("gname", ""),
        ("devmajor", str(os.major(device))),
        ("devminor", str(os.minor(device))),
    ]
    digest = hashlib.sha256("".join(key + value for key, value in fields).encode())
    if kind == "0":
        with open(path, "rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def legacy_source_hash(root: Path, relative: str) -> str:
    """``file:<tarsum>`` for a file, ``dir:<sha256 of the sorted tarsums below it>`` for a
    directory: how the legacy builder's history names a COPY source."""
    relative = posixpath.normpath(relative.lstrip("/")) if relative.strip("/") else "."
    path = os.path.join(root, relative)
    if not os.path.isdir(path) or os.path.islink(path):
        return "file:" + tarsum_of(root, relative)
    sums = []
    for directory, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            entry = os.path.relpath(os.path.join(directory, name), root)
            sums.append(tarsum_of(root, entry))
    return "dir:" + hashlib.sha256(",".join(sorted(sums)).encode()).hexdigest()


def content_digest(path: Path) -> str:
    """A checksum of a file or tree's content and metadata (names, modes, owners, links,
    bytes; not times), as the build cache keys a COPY by it."""
    digest = hashlib.sha256()
    if not path.is_dir() or path.is_symlink():
        digest.update(tarsum_of(path.parent, path.name).encode())
        return "sha256:" + digest.hexdigest()
    for directory, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            entry = os.path.relpath(os.path.join(directory, name), path)
            digest.update(tarsum_of(path, entry).encode() + b"\n")
    return "sha256:" + digest.hexdigest()


def is_archive(path: Path) -> bool:
    """Whether ADD would unpack this local file: a tar, plain or compressed."""
    try:
        with open(path, "rb") as file:
            head = file.read(6)
        if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
            return True
        return tarfile.is_tarfile(path)
    except OSError:
        return False
