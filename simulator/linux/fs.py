"""openat2(2) and helpers that resolve paths inside a root directory, for unpacking untrusted trees.

Callers get a directory descriptor resolved with RESOLVE_IN_ROOT and work on one name in it with
the *at() calls (os.mkdir, os.symlink, os.mknod, ... with dir_fd=), never with a joined host path.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

from simulator.linux import _NR, _b, _check, _libc

# Resolution flags for struct open_how (linux/openat2.h).
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
RESOLVE_CACHED = 0x20

# How the helpers below resolve: "/" and ".." stop at the root, symlinks are followed as if the
# root were "/", and /proc magic links (which could jump anywhere) are refused.
IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS

# openat2 answers EAGAIN when a rename or mount raced a ".." lookup; the lookup is then retried.
_EAGAIN_RETRIES = 64


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


def openat2(dir_fd: int, path: str | bytes, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """openat2(2): open ``path`` relative to ``dir_fd`` with ``RESOLVE_*`` rules; returns the fd.

    ``mode`` must be 0 unless ``flags`` has O_CREAT or O_TMPFILE (the kernel says EINVAL).
    """
    how = _OpenHow(flags, mode, resolve)
    raw_path = _b(path)
    result = -1
    for _ in range(_EAGAIN_RETRIES):
        result = _libc.syscall(
            ctypes.c_long(_NR["openat2"]),
            ctypes.c_int(dir_fd),
            raw_path,
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if result != -1 or ctypes.get_errno() != errno.EAGAIN or resolve & RESOLVE_CACHED:
            break
    return _check(result, os.fsdecode(path))


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """Open ``path`` as if ``root_fd`` were "/": nothing it names, by "..", an absolute path or
    a symlink, lies outside the root. O_CLOEXEC is always added; "" and "/" mean the root."""
    return openat2(root_fd, path or ".", flags | os.O_CLOEXEC, mode, IN_ROOT)


def open_parent_in_root(root_fd: int, path: str) -> tuple[int, str]:
    """Resolve the parent of ``path`` inside the root; return (O_PATH directory fd, final name).

    The final name is not resolved: use it with ``dir_fd=`` (and ``follow_symlinks=False``
    where the call has it). The caller closes the fd. A path with no final component to act
    on ("", "/", ending in "." or "..") raises EINVAL.
    """
    parent, _, name = path.rstrip("/").rpartition("/")
    if name in ("", ".", ".."):
        raise OSError(errno.EINVAL, "path has no final component", path)
    return open_in_root(root_fd, parent, os.O_PATH | os.O_DIRECTORY), name


def mkdir_all_in_root(root_fd: int, path: str, mode: int = 0o755) -> int:
    """Open directory ``path`` inside the root, creating missing ones (with ``mode``) on the
    way, as ``mkdir -p`` would in a chroot. Returns an O_PATH fd that the caller closes."""
    try:
        return open_in_root(root_fd, path, os.O_PATH | os.O_DIRECTORY)
    except FileNotFoundError:
        pass
    parts = [part for part in path.split("/") if part not in ("", ".")]
    fd = open_in_root(root_fd, ".", os.O_PATH | os.O_DIRECTORY)
    try:
        for depth, part in enumerate(parts, start=1):
            prefix = "/".join(parts[:depth])
            try:
                next_fd = open_in_root(root_fd, prefix, os.O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                except FileExistsError:
                    pass  # made by someone else meanwhile, or a dangling symlink: open says which
                next_fd = open_in_root(root_fd, prefix, os.O_PATH | os.O_DIRECTORY)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fd_path(dir_fd: int, name: str) -> str:
    """The /proc path of ``name`` in the directory ``dir_fd``; only its last name is looked up."""
    if "/" in name or name in ("", ".."):
        raise OSError(errno.EINVAL, "not a single path component", name)
    return f"/proc/self/fd/{dir_fd}/{name}"


def set_xattr_at(dir_fd: int, name: str, attribute: str, value: bytes) -> None:
    """lsetxattr(2) on ``name`` in ``dir_fd`` ("." for the directory itself), not following a
    symlink there. Works with O_PATH fds, unlike os.setxattr(fd)."""
    try:
        os.setxattr(_fd_path(dir_fd, name), attribute, value, follow_symlinks=False)
    except OSError as error:
        raise OSError(error.errno, error.strerror, name) from None


def get_xattr_at(dir_fd: int, name: str, attribute: str) -> bytes:
    """lgetxattr(2) on ``name`` in ``dir_fd``, not following a symlink there."""
    try:
        return os.getxattr(_fd_path(dir_fd, name), attribute, follow_symlinks=False)
    except OSError as error:
        raise OSError(error.errno, error.strerror, name) from None


def list_xattr_at(dir_fd: int, name: str) -> list[str]:
    """llistxattr(2) on ``name`` in ``dir_fd``, not following a symlink there."""
    try:
        return os.listxattr(_fd_path(dir_fd, name), follow_symlinks=False)
    except OSError as error:
        raise OSError(error.errno, error.strerror, name) from None


def chmod_at(dir_fd: int, name: str, mode: int) -> None:
    """chmod ``name`` in ``dir_fd`` without following a symlink (Python 3.11 has no
    fchmodat(AT_SYMLINK_NOFOLLOW) on Linux). A symlink there raises ELOOP."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            raise OSError(errno.ELOOP, "refusing to chmod a symlink", name)
        os.chmod(f"/proc/self/fd/{fd}", mode)
    finally:
        os.close(fd)
