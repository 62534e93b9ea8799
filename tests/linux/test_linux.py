"""The ctypes wrappers call the kernel and raise OSError with its errno."""

from __future__ import annotations

import errno
import os

import pytest

from simulator import linux

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def test_umount2_of_something_not_mounted_raises_einval_with_the_path(tmp_path):
    with pytest.raises(OSError) as caught:
        linux.umount2(str(tmp_path))
    assert caught.value.errno == errno.EINVAL
    assert caught.value.filename == str(tmp_path)


def test_mount_onto_a_missing_path_raises_enoent(tmp_path):
    with pytest.raises(OSError) as caught:
        linux.mount("tmpfs", str(tmp_path / "missing"), "tmpfs")
    assert caught.value.errno == errno.ENOENT


def test_setns_with_a_bad_descriptor_raises_ebadf():
    with pytest.raises(OSError) as caught:
        linux.setns(9999, linux.CLONE_NEWNET)
    assert caught.value.errno == errno.EBADF


def test_capget_reads_this_process_and_prctl_reads_the_bounding_set():
    effective, permitted, _ = linux.capget()
    assert effective & 1 << 21  # CAP_SYS_ADMIN: the tests run as root
    assert permitted & effective == effective
    assert linux.prctl(linux.PR_CAPBSET_READ, 21) == 1


def _in_child(body) -> int:  # noqa: ANN001
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(body() or 0)
        except BaseException:  # noqa: BLE001
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_unshare_and_sethostname_change_only_the_new_uts_namespace():
    before = os.uname().nodename

    def body() -> int:
        linux.unshare(linux.CLONE_NEWUTS)
        linux.sethostname("slipway-probe")
        return 0 if os.uname().nodename == "slipway-probe" else 1

    assert _in_child(body) == 0
    assert os.uname().nodename == before


def test_capset_drops_capabilities_in_a_child():
    def body() -> int:
        effective, permitted, inheritable = linux.capget()
        linux.capset(effective & ~(1 << 21), permitted, inheritable)
        return 0 if not linux.capget()[0] & 1 << 21 else 1

    assert _in_child(body) == 0


def test_pivot_root_refuses_a_directory_that_is_not_a_mount_point(tmp_path):
    def body() -> int:
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        try:
            linux.pivot_root(str(tmp_path), str(tmp_path))
        except OSError as e:
            return 0 if e.errno in (errno.EINVAL, errno.EBUSY) else e.errno
        return 1

    assert _in_child(body) == 0


def test_fork_with_clone_parent_makes_a_sibling():
    def body() -> int:
        me = os.getpid()
        pid = linux.fork_with_flags(linux.CLONE_PARENT)
        if pid == 0:
            os._exit(0 if os.getppid() != me else 3)
        return 0

    # The grandchild is reparented to us, its creator's parent; reap it too.
    assert _in_child(body) == 0
    _, status = os.waitpid(-1, 0)
    assert os.waitstatus_to_exitcode(status) == 0
