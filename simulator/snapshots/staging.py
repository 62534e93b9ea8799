"""File locks, and staging directories that a crashed process leaves behind in a state that
any later process can recognise as abandoned and sweep away."""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_SUFFIX = ".lock"


@contextmanager
def exclusive_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold flock(LOCK_EX) on ``path`` (created if missing) while the block runs.

    A flock belongs to one open file description, so it excludes other threads of this
    process (each opens the file anew) as well as other processes, and the kernel drops
    it when its holder dies. With ``wait=False`` the block runs at once and receives
    False if someone else holds the lock.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextmanager
def staging_directory(parent: Path) -> Iterator[Path]:
    """A new empty directory under ``parent``, removed with whatever is left in it when the
    block ends (a caller that renames it elsewhere leaves nothing to remove).

    Its lock file ``NAME.lock`` stays locked for the whole block. If the process dies inside
    the block the kernel releases the lock, and sweep_abandoned() removes the directory.
    """
    fd, lock_path = _claim_lock_file(parent)
    directory = lock_path.with_name(lock_path.name.removesuffix(LOCK_SUFFIX))
    try:
        directory.mkdir(mode=0o700)
        yield directory
    finally:
        # A failure here leaves an unlocked leftover, which the next sweep removes.
        shutil.rmtree(directory, ignore_errors=True)
        lock_path.unlink(missing_ok=True)
        os.close(fd)


def sweep_abandoned(parent: Path) -> list[str]:
    """Remove every staging directory under ``parent`` whose lock nobody holds (its owner
    died), and lone lock files; return the names removed."""
    removed = []
    for entry in sorted(os.listdir(parent)):
        name = entry.removesuffix(LOCK_SUFFIX)
        if entry != name and os.path.lexists(parent / name):
            continue  # the directory's own turn handles its lock file
        lock_path = parent / (name + LOCK_SUFFIX)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its owner is alive
            if not _is_linked_at(fd, lock_path):
                continue  # another sweeper finished with it meanwhile
            leftover = parent / name
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink(missing_ok=True)
            lock_path.unlink()
            removed.append(name)
        finally:
            os.close(fd)
    return removed


def _claim_lock_file(parent: Path) -> tuple[int, Path]:
    """Create and lock a lock file with a fresh random name; return its fd and path."""
    while True:
        lock_path = parent / (secrets.token_hex(8) + LOCK_SUFFIX)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A sweeper may have taken the file between its creation and our flock, and
        # unlinked it as a lone lock file; then this lock guards nothing, so start again.
        if _is_linked_at(fd, lock_path):
            return fd, lock_path
        os.close(fd)


def _is_linked_at(fd: int, path: Path) -> bool:
    """True if the open file ``fd`` is the file that ``path`` names now."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (current.st_dev, current.st_ino)
