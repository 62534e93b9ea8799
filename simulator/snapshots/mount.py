"""A mount as a snapshotter describes it (type, source, options), and the code that performs
it, with Docker's trick for overlay lowerdir lists longer than the kernel's one page."""

from __future__ import annotations

import errno
import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

from simulator import linux

# mount(2) copies at most one page of option data: the string and its NUL must fit.
MOUNT_DATA_LIMIT = resource.getpagesize()

_OPTION_FLAGS: dict[str, int] = {
    "ro": linux.MS_RDONLY,
    "rw": 0,
    "bind": linux.MS_BIND,
    "rbind": linux.MS_BIND | linux.MS_REC,
    "nosuid": linux.MS_NOSUID,
    "nodev": linux.MS_NODEV,
    "noexec": linux.MS_NOEXEC,
    "sync": linux.MS_SYNCHRONOUS,
    "noatime": linux.MS_NOATIME,
    "nodiratime": linux.MS_NODIRATIME,
    "relatime": linux.MS_RELATIME,
}
_BIND_FLAGS = linux.MS_BIND | linux.MS_REC


@dataclass(frozen=True)
class Mount:
    """One mount, as containerd's mount.Mount: ``overlay`` with lowerdir/upperdir/workdir
    options, or ``bind`` of a directory (``ro`` makes it read-only)."""

    type: str
    source: str
    options: list[str] = field(default_factory=list)

    def mount(self, target: str | Path) -> None:
        """Mount this onto the directory ``target``."""
        target = os.path.abspath(target)
        flags, data = _split_options(self.options)
        if flags & linux.MS_BIND:
            _bind(self.source, target, flags)
        elif len(data) < MOUNT_DATA_LIMIT:
            linux.mount(self.source, target, self.type, flags, data or None)
        else:
            directory, data = _relative_lowerdir(data)
            _mount_from(directory, self.source, target, self.type, flags, data)


def unmount(target: str | Path) -> None:
    """Unmount what is mounted on ``target``."""
    linux.umount2(str(target))


def _split_options(options: list[str]) -> tuple[int, str]:
    """Split mount options into mount(2) flags and the filesystem's data string."""
    flags = 0
    data = []
    for option in options:
        if option in _OPTION_FLAGS:
            flags |= _OPTION_FLAGS[option]
        else:
            data.append(option)
    return flags, ",".join(data)


def _bind(source: str, target: str, flags: int) -> None:
    """A bind mount; the kernel ignores other flags on a bind, so a remount applies them."""
    linux.mount(source, target, None, flags & _BIND_FLAGS)
    other_flags = flags & ~_BIND_FLAGS
    if other_flags:
        try:
            linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | other_flags)
        except OSError:
            linux.umount2(target, linux.MNT_DETACH)
            raise


def _relative_lowerdir(data: str) -> tuple[str, str]:
    """Rewrite ``lowerdir=`` as names relative to the one directory holding every lower
    (the layer root's short links); return that directory and the shorter data string."""
    options = data.split(",")
    directory = None
    for index, option in enumerate(options):
        if option.startswith("lowerdir="):
            lowers = option.removeprefix("lowerdir=").split(":")
            parents = {os.path.dirname(lower) for lower in lowers}
            if len(parents) == 1:
                directory = parents.pop()
                options[index] = "lowerdir=" + ":".join(os.path.basename(x) for x in lowers)
    shorter = ",".join(options)
    if directory is None or len(shorter) >= MOUNT_DATA_LIMIT:
        raise OSError(errno.E2BIG, f"cannot mount layer, mount label too large {len(shorter)}")
    return directory, shorter


def _mount_from(
    directory: str, source: str, target: str, fstype: str, flags: int, data: str
) -> None:
    """mount(2) from a child process whose working directory is ``directory``, so that the
    relative paths in ``data`` resolve there, while this process keeps its own cwd (which
    all its threads share)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.chdir(directory)
            linux.mount(source, target, fstype, flags, data)
        except OSError as error:
            code = error.errno or errno.EIO
        except BaseException:
            code = errno.EIO
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise OSError(code, os.strerror(abs(code)), target)
