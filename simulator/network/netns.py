"""Network namespaces: running work inside one, making one that a file names (an nsfs bind
mount, as ``ip netns add`` makes), and removing it.

setns(2) moves only the calling thread, so work for another namespace runs in a short-lived
thread that joins it first; sockets and child processes made there stay in that namespace.
pyroute2 keeps one netlink socket per thread, so an ``IPRoute`` must be made, used and closed
inside the function given to :func:`run_in`, never handed back out of it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from simulator import linux

T = TypeVar("T")
PROC_NET_INIT_INO = 0xEFFFFFF9  # include/linux/proc_ns.h, Linux 6.18+


def run_in(netns: str | None, work: Callable[[], T]) -> T:
    """``work()`` run inside the network namespace that the file ``netns`` names; in the
    calling thread's own namespace when ``netns`` is None."""
    if netns is None:
        return work()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def inside() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                linux.setns(fd, linux.CLONE_NEWNET)
            finally:
                os.close(fd)
            outcome.append(work())
        except BaseException as error:  # noqa: BLE001 - raised again in the caller
            failure.append(error)

    thread = threading.Thread(target=inside, name="netns-work")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def run_command(
    netns: str | None, argv: Sequence[str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """A program run to completion inside a network namespace, its output captured."""
    return run_in(
        netns,
        lambda: subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=30
        ),
    )


def create(path: Path) -> None:
    """A new network namespace, with loopback up, kept alive by a bind mount at ``path``."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.touch(mode=0o444, exist_ok=False)

    def make() -> None:
        linux.unshare(linux.CLONE_NEWNET)
        linux.mount("/proc/thread-self/ns/net", str(path), None, linux.MS_BIND)
        linux.set_link_up("lo")

    try:
        _in_new_thread(make)
    except BaseException:
        with contextlib.suppress(OSError):
            linux.umount2(str(path), linux.MNT_DETACH)
        path.unlink(missing_ok=True)
        raise


def remove(path: Path) -> None:
    """Unmount and delete a namespace file; the namespace ends once nothing else holds it."""
    with contextlib.suppress(FileNotFoundError):
        while _is_mount_point(path):
            linux.umount2(str(path), linux.MNT_DETACH)
        path.unlink()


def is_namespace(path: Path) -> bool:
    """Whether ``path`` is a live namespace file (an nsfs bind mount)."""
    return _is_mount_point(path)


def in_initial_namespace() -> bool:
    """Whether the calling thread is in the host's own (initial) network namespace: the same as
    PID 1's, or, where PID 1 can't be looked at, the inode Linux 6.18 and later give the
    initial namespace (PROC_NET_INIT_INO)."""
    own = os.stat("/proc/thread-self/ns/net").st_ino
    try:
        return own == os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return own == PROC_NET_INIT_INO


def _is_mount_point(path: Path) -> bool:
    target = str(path)
    try:
        with open("/proc/self/mountinfo") as mounts:
            return any(line.split()[4] == target for line in mounts)
    except FileNotFoundError:
        return False


def _in_new_thread(work: Callable[[], None]) -> None:
    failure: list[BaseException] = []

    def body() -> None:
        try:
            work()
        except BaseException as error:  # noqa: BLE001 - raised again in the caller
            failure.append(error)

    thread = threading.Thread(target=body, name="netns-create")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
