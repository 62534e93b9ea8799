"""A sha256 blob store: blobs are verified before they become visible, written atomically,
and reference-counted by owner so that blobs nobody uses can be collected.

On disk, under the store's root::

    blobs/sha256/<hex>              committed blobs (read-only files)
    ingest/<random>                 writes in progress, one file per writer
    refs/sha256/<hex>/<owner>       one file per owner holding a blob; the name is the
                                    owner escaped to a safe file name, the content the owner
    refs/.lock                      serialises reference changes against collect() and delete()
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

_DIGEST_PATTERN = re.compile(r"sha256:([0-9a-f]{64})")
_HEX_PATTERN = re.compile(r"[0-9a-f]{64}")
# Characters an owner keeps in its file name; everything else is percent-encoded, "." too,
# so no escaped name is ever ".", "..", hidden, or contains a "/".
_OWNER_NAME_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_OWNER_NAME_MAX = 200  # longer escaped owners are stored under "~<sha256 of the owner>"
_HASHED_OWNER_PREFIX = "~"
_TEMPORARY_PREFIX = "."  # temporary files in refs/ (never an escaped owner: "." is escaped)


class ContentError(Exception):
    """Base class of the content store's errors."""


class InvalidDigest(ContentError):
    """A digest that is not ``sha256:`` followed by 64 lowercase hex digits."""


class DigestMismatch(ContentError):
    """The bytes written do not have the digest the caller expected."""


class SizeMismatch(ContentError):
    """The bytes written do not have the size the caller expected."""


class BlobNotFound(ContentError):
    """No committed blob has this digest."""


@dataclass(frozen=True)
class BlobInfo:
    """A committed blob: its digest and its size in bytes."""

    digest: str
    size: int


def parse_digest(digest: str) -> str:
    """Check that ``digest`` is ``sha256:<64 lowercase hex>`` and return the hex part."""
    match = _DIGEST_PATTERN.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise InvalidDigest(f'invalid digest "{digest}"')
    return match.group(1)


def digest_bytes(data: bytes) -> str:
    """The digest of ``data``, as ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file_atomically(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it: fsync, rename, fsync
    the directory (without ``durable``, no fsync: readers never see a partial file, but a
    crash may lose it)."""
    temporary = path.parent / f"{_TEMPORARY_PREFIX}tmp-{secrets.token_hex(8)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_directory(path.parent)


def _owner_file_name(owner: str) -> str:
    """The file name that stands for ``owner`` under refs/sha256/<hex>/."""
    if not isinstance(owner, str) or not owner:
        raise ValueError("a reference owner must be a non-empty string")
    escaped = "".join(
        char if char in _OWNER_NAME_SAFE else "".join(f"%{b:02X}" for b in char.encode())
        for char in owner
    )
    if len(escaped) <= _OWNER_NAME_MAX:
        return escaped
    return _HASHED_OWNER_PREFIX + hashlib.sha256(owner.encode()).hexdigest()


class BlobWriter:
    """One write into the store, through its own file under ingest/. Use it as a context
    manager: leaving the block without commit() aborts the write and removes the file."""

    def __init__(self, store: ContentStore, ingest_path: Path, file: BinaryIO) -> None:
        self._store = store
        self._ingest_path = ingest_path
        self._file = file
        self._hash = hashlib.sha256()
        self._size = 0
        self._finished = False

    @property
    def size(self) -> int:
        """How many bytes have been written so far."""
        return self._size

    @property
    def digest(self) -> str:
        """The digest of the bytes written so far."""
        return "sha256:" + self._hash.hexdigest()

    def write(self, data: bytes) -> int:
        """Append ``data``; return how many bytes were written. A failed write aborts."""
        self._check_open()
        try:
            self._file.write(data)
        except BaseException:
            self.abort()
            raise
        self._hash.update(data)
        self._size += len(data)
        return len(data)

    def commit(self, expected: str | None = None, expected_size: int | None = None) -> BlobInfo:
        """Make the blob visible, after checking its size and digest against what the caller
        expected. If the blob already exists, the write is discarded and the existing blob's
        info is returned. On any error the write is aborted: nothing is left behind."""
        self._check_open()
        try:
            if expected is not None:
                parse_digest(expected)
            if expected_size is not None and expected_size != self._size:
                raise SizeMismatch(
                    f"size mismatch: expected {expected_size} bytes, got {self._size}"
                )
            actual = self.digest
            if expected is not None and expected != actual:
                raise DigestMismatch(f"digest mismatch: expected {expected}, got {actual}")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            target = self._store._blob_path(actual)
            if target.is_file():
                self._ingest_path.unlink()
            else:
                os.chmod(self._ingest_path, 0o444)
                os.rename(self._ingest_path, target)
                _fsync_directory(target.parent)
        except BaseException:
            self.abort()
            raise
        self._finished = True
        return BlobInfo(actual, self._size)

    def abort(self) -> None:
        """Discard the write and its ingest file. Safe to call more than once."""
        if self._finished:
            return
        self._finished = True
        try:
            self._file.close()
        except OSError:
            pass
        self._ingest_path.unlink(missing_ok=True)

    def __del__(self) -> None:
        # A writer dropped without commit or abort (a caller's bug, or an upload session
        # that was forgotten) still leaves no ingest file behind.
        if not getattr(self, "_finished", True):
            self.abort()

    def _check_open(self) -> None:
        if self._finished:
            raise ContentError("blob writer is closed: it was already committed or aborted")

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.abort()


class ContentStore:
    """Blobs addressed by their sha256 digest, with reference counting by owner."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs" / "sha256"
        self._ingest = self.root / "ingest"
        self._refs = self.root / "refs" / "sha256"
        self._lock_path = self.root / "refs" / ".lock"
        for directory in (self._blobs, self._ingest, self._refs):
            directory.mkdir(parents=True, exist_ok=True)

    # Blobs

    def exists(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    def info(self, digest: str) -> BlobInfo:
        try:
            size = self._blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"blob unknown: {digest}") from None
        return BlobInfo(digest, size)

    def path(self, digest: str) -> Path:
        """The committed file, for reading only."""
        path = self._blob_path(digest)
        if not path.is_file():
            raise BlobNotFound(f"blob unknown: {digest}")
        return path

    def open(self, digest: str) -> BinaryIO:
        """A seekable binary file open on the blob; the caller closes it."""
        try:
            return self._blob_path(digest).open("rb")
        except FileNotFoundError:
            raise BlobNotFound(f"blob unknown: {digest}") from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as blob:
            return blob.read()

    def writer(self) -> BlobWriter:
        """Start a write; the caller commits or aborts it (or uses it in a with block)."""
        ingest_path = self._ingest / secrets.token_hex(16)
        fd = os.open(ingest_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        return BlobWriter(self, ingest_path, os.fdopen(fd, "wb"))

    def put(self, data: bytes, expected: str | None = None) -> BlobInfo:
        """Store ``data``; if it is already stored, nothing is written."""
        actual = digest_bytes(data)
        if expected is not None:
            parse_digest(expected)
            if expected != actual:
                raise DigestMismatch(f"digest mismatch: expected {expected}, got {actual}")
        try:
            return self.info(actual)
        except BlobNotFound:  # not stored yet (or collected a moment ago): write it
            pass
        with self.writer() as writer:
            writer.write(data)
            return writer.commit(actual, len(data))

    def delete(self, digest: str) -> None:
        """Remove the blob and every reference to it."""
        hex_digest = parse_digest(digest)
        with self._refs_locked():
            try:
                self._blob_path(digest).unlink()
            except FileNotFoundError:
                raise BlobNotFound(f"blob unknown: {digest}") from None
            self._remove_refs_directory(hex_digest)
            _fsync_directory(self._blobs)

    def walk(self) -> Iterator[BlobInfo]:
        """Every committed blob, in digest order."""
        for name in sorted(os.listdir(self._blobs)):
            if not _HEX_PATTERN.fullmatch(name):
                continue
            try:
                size = (self._blobs / name).stat().st_size
            except FileNotFoundError:  # deleted while we walked
                continue
            yield BlobInfo("sha256:" + name, size)

    def remove_stale_ingests(self, older_than_seconds: float = 24 * 3600) -> list[str]:
        """Remove ingest files untouched for this long (left by a process that died mid-write);
        return their names. Live writers are never that idle, so they are not touched."""
        cutoff = time.time() - older_than_seconds
        removed = []
        for entry in os.scandir(self._ingest):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed.append(entry.name)
            except FileNotFoundError:
                continue
        return sorted(removed)

    # References

    def add_ref(self, digest: str, owner: str, durable: bool = True) -> None:
        """Record that ``owner`` uses the blob. Adding the same reference twice is harmless.
        A reference that need not outlive a crash (a lease's) can skip ``durable``: the
        others see it at once all the same."""
        self.add_refs([digest], owner, durable)

    def add_refs(self, digests: Iterable[str], owner: str, durable: bool = True) -> None:
        """add_ref for each of the blobs, under one hold of the lock; BlobNotFound (and none
        added after it) at the first that is missing."""
        file_name = _owner_file_name(owner)
        with self._refs_locked():
            for digest in digests:
                hex_digest = parse_digest(digest)
                if not self._blob_path(digest).is_file():
                    raise BlobNotFound(f"blob unknown: {digest}")
                directory = self._refs / hex_digest
                if not directory.is_dir():
                    directory.mkdir()
                    if durable:
                        _fsync_directory(self._refs)
                if not (directory / file_name).exists():
                    _write_file_atomically(directory / file_name, owner.encode(), durable)

    def remove_ref(self, digest: str, owner: str, durable: bool = True) -> None:
        """Drop ``owner``'s reference; a reference that isn't there is ignored."""
        self.remove_refs([digest], owner, durable)

    def remove_refs(self, digests: Iterable[str], owner: str, durable: bool = True) -> None:
        """remove_ref for each of the blobs, under one hold of the lock."""
        file_name = _owner_file_name(owner)
        with self._refs_locked():
            for digest in digests:
                hex_digest = parse_digest(digest)
                directory = self._refs / hex_digest
                try:
                    (directory / file_name).unlink()
                except FileNotFoundError:
                    continue
                if durable:
                    _fsync_directory(directory)
                if not self._owner_file_names(directory):
                    self._remove_refs_directory(hex_digest)

    def refs(self, digest: str) -> set[str]:
        """The owners holding the blob."""
        directory = self._refs / parse_digest(digest)
        owners = set()
        for name in self._owner_file_names(directory):
            if name.startswith(_HASHED_OWNER_PREFIX):
                try:
                    owners.add((directory / name).read_text())
                except FileNotFoundError:  # removed while we listed
                    continue
            else:
                owners.add(urllib.parse.unquote(name, errors="strict"))
        return owners

    def collect(self, among: Iterable[str] | None = None) -> list[str]:
        """Delete every blob that no owner holds (or only those of the digests ``among``,
        which one who just let them go names); return their digests.

        References are serialised against this, so a reference is never added to a blob
        being deleted. A blob committed but not yet referenced is unheld, and goes; callers
        that collect while pulling must hold a reference to their blobs first, or retry
        add_ref after BlobNotFound."""
        removed = []
        with self._refs_locked():
            if among is None:
                candidates = [blob.digest for blob in self.walk()]
            else:
                candidates = sorted({digest for digest in among if self.exists(digest)})
            for digest in candidates:
                hex_digest = parse_digest(digest)
                if self._owner_file_names(self._refs / hex_digest):
                    continue
                try:
                    (self._blobs / hex_digest).unlink()
                except FileNotFoundError:
                    continue
                self._remove_refs_directory(hex_digest)
                removed.append(digest)
            if among is None:
                for hex_digest in os.listdir(self._refs):  # left by an interrupted delete
                    if not (self._blobs / hex_digest).exists():
                        self._remove_refs_directory(hex_digest)
            if removed:
                _fsync_directory(self._blobs)
        return removed

    # Internals

    def _blob_path(self, digest: str) -> Path:
        return self._blobs / parse_digest(digest)

    def _owner_file_names(self, directory: Path) -> list[str]:
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [name for name in names if not name.startswith(_TEMPORARY_PREFIX)]

    def _remove_refs_directory(self, hex_digest: str) -> None:
        directory = self._refs / hex_digest
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return
        for name in names:
            (directory / name).unlink(missing_ok=True)
        try:
            directory.rmdir()
        except OSError:  # gone already, or a reference was added meanwhile
            return
        _fsync_directory(self._refs)

    @contextmanager
    def _refs_locked(self) -> Iterator[None]:
        """An exclusive lock on the references, across threads and processes (each call
        opens its own file description, so flock excludes threads of this process too)."""
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
