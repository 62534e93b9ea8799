"""openat2 and the in-root helpers: every path they resolve stays inside the root."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.linux import fs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (trusted.* xattrs)")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root directory with a sentinel file beside it, outside the root."""
    (tmp_path / "sentinel").write_text("outside\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("inside\n")
    return root


@pytest.fixture
def root_fd(root: Path) -> Iterator[int]:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def read_fd(fd: int) -> str:
    try:
        return os.read(fd, 4096).decode()
    finally:
        os.close(fd)


def test_open_in_root_reads_a_file_by_its_path_in_the_root(root_fd):
    assert read_fd(fs.open_in_root(root_fd, "etc/hostname", os.O_RDONLY)) == "inside\n"


def test_dotdot_and_absolute_paths_stop_at_the_root(root_fd):
    for path in ("../../etc/hostname", "/etc/hostname", "/../etc/../../etc/hostname"):
        assert read_fd(fs.open_in_root(root_fd, path, os.O_RDONLY)) == "inside\n", path


def test_an_absolute_symlink_resolves_as_if_the_root_were_slash(root, tmp_path, root_fd):
    (root / "evil").symlink_to("/")
    assert read_fd(fs.open_in_root(root_fd, "evil/etc/hostname", os.O_RDONLY)) == "inside\n"
    with pytest.raises(FileNotFoundError):
        fs.open_in_root(root_fd, f"evil{tmp_path}/sentinel", os.O_RDONLY)


def test_a_relative_symlink_climbing_out_stops_at_the_root(root, tmp_path, root_fd):
    (root / "etc" / "up").symlink_to("../../../../..")
    assert read_fd(fs.open_in_root(root_fd, "etc/up/etc/hostname", os.O_RDONLY)) == "inside\n"
    with pytest.raises(FileNotFoundError):
        fs.open_in_root(root_fd, "etc/up/sentinel", os.O_RDONLY)


def test_creating_through_an_escaping_symlink_lands_inside_the_root(root, tmp_path, root_fd):
    (root / "evil").symlink_to(tmp_path)
    (root / tmp_path.relative_to("/")).mkdir(parents=True)
    fd = fs.open_in_root(root_fd, "evil/sentinel", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"written\n")
    finally:
        os.close(fd)
    assert (tmp_path / "sentinel").read_text() == "outside\n"
    assert (root / tmp_path.relative_to("/") / "sentinel").read_text() == "written\n"


def test_resolve_beneath_refuses_dotdot_out_of_the_directory_with_exdev(root_fd):
    with pytest.raises(OSError) as caught:
        fs.openat2(root_fd, "../sentinel", os.O_RDONLY, resolve=fs.RESOLVE_BENEATH)
    assert caught.value.errno == errno.EXDEV
    assert caught.value.filename == "../sentinel"


def test_resolve_no_symlinks_refuses_any_symlink_with_eloop(root, root_fd):
    (root / "link").symlink_to("etc")
    with pytest.raises(OSError) as caught:
        fs.openat2(root_fd, "link/hostname", os.O_RDONLY, resolve=fs.RESOLVE_NO_SYMLINKS)
    assert caught.value.errno == errno.ELOOP


def test_resolve_no_magiclinks_refuses_proc_fd_links_with_eloop(root_fd):
    path = f"/proc/self/fd/{root_fd}/etc/hostname"
    assert read_fd(fs.openat2(-100, path, os.O_RDONLY)) == "inside\n"  # AT_FDCWD, no rules
    with pytest.raises(OSError) as caught:
        fs.openat2(-100, path, os.O_RDONLY, resolve=fs.RESOLVE_NO_MAGICLINKS)
    assert caught.value.errno == errno.ELOOP


def test_openat2_with_a_bad_descriptor_raises_ebadf_with_the_path():
    with pytest.raises(OSError) as caught:
        fs.openat2(9999, "etc", os.O_RDONLY, resolve=fs.RESOLVE_IN_ROOT)
    assert caught.value.errno == errno.EBADF
    assert caught.value.filename == "etc"


def test_open_parent_in_root_gives_the_parent_inside_and_the_final_name(root, tmp_path, root_fd):
    (root / "evil").symlink_to(tmp_path)
    (root / tmp_path.relative_to("/")).mkdir(parents=True)
    parent_fd, name = fs.open_parent_in_root(root_fd, "evil/sentinel")
    try:
        assert name == "sentinel"
        os.mkdir(name, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)
    assert (tmp_path / "sentinel").is_file()
    assert (root / tmp_path.relative_to("/") / "sentinel").is_dir()


def test_open_parent_in_root_leaves_a_final_symlink_unresolved(root, root_fd):
    (root / "etc" / "passwd").symlink_to("/etc/passwd")
    parent_fd, name = fs.open_parent_in_root(root_fd, "/etc/passwd")
    try:
        os.unlink(name, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)
    assert not (root / "etc" / "passwd").is_symlink()
    assert Path("/etc/passwd").exists()


@pytest.mark.parametrize("path", ["", "/", "a/..", "a/.", "etc/../.."])
def test_open_parent_in_root_without_a_final_name_raises_einval(root_fd, path):
    with pytest.raises(OSError) as caught:
        fs.open_parent_in_root(root_fd, path)
    assert caught.value.errno == errno.EINVAL


def test_mkdir_all_in_root_creates_missing_parents_through_symlinks_inside(root, tmp_path, root_fd):
    (root / "evil").symlink_to(tmp_path)
    (root / tmp_path.relative_to("/")).mkdir(parents=True)
    fd = fs.mkdir_all_in_root(root_fd, "evil/made/deeper", 0o750)
    try:
        os.mknod("fifo", 0o600 | 0o010000, dir_fd=fd)
    finally:
        os.close(fd)
    inside = root / tmp_path.relative_to("/") / "made" / "deeper"
    assert (inside / "fifo").exists()
    assert not (tmp_path / "made").exists()
    assert inside.stat().st_mode & 0o777 == 0o750 & ~current_umask()


def test_mkdir_all_in_root_does_not_create_the_target_of_a_dangling_symlink(
    root, tmp_path, root_fd
):
    (root / "evil").symlink_to(tmp_path)  # tmp_path does not exist inside the root
    with pytest.raises(FileNotFoundError):
        fs.mkdir_all_in_root(root_fd, "evil/made")
    assert not (tmp_path / "made").exists()
    assert not (root / tmp_path.relative_to("/")).exists()


def test_mkdir_all_in_root_refuses_a_path_through_a_file_with_enotdir(root_fd):
    with pytest.raises(NotADirectoryError):
        fs.mkdir_all_in_root(root_fd, "etc/hostname/below")


def test_xattrs_at_act_on_a_symlink_itself_and_not_its_target(root, root_fd):
    (root / "link").symlink_to("etc/hostname")
    fs.set_xattr_at(root_fd, "link", "trusted.slipway", b"\x00\xffbinary")
    assert fs.get_xattr_at(root_fd, "link", "trusted.slipway") == b"\x00\xffbinary"
    assert "trusted.slipway" in fs.list_xattr_at(root_fd, "link")
    assert "trusted.slipway" not in os.listxattr(root / "etc" / "hostname")


def test_xattrs_at_dot_act_on_an_o_path_directory(root, root_fd):
    fd = fs.open_in_root(root_fd, "etc", os.O_PATH | os.O_DIRECTORY)
    try:
        fs.set_xattr_at(fd, ".", "trusted.overlay.opaque", b"y")
    finally:
        os.close(fd)
    assert os.getxattr(root / "etc", "trusted.overlay.opaque") == b"y"


def test_xattrs_at_refuse_a_name_with_a_slash(root_fd):
    with pytest.raises(OSError) as caught:
        fs.get_xattr_at(root_fd, "etc/hostname", "user.x")
    assert caught.value.errno == errno.EINVAL


def test_chmod_at_sets_setuid_and_refuses_a_symlink(root, root_fd):
    fs.chmod_at(root_fd, "etc", 0o4755)
    assert (root / "etc").stat().st_mode & 0o7777 == 0o4755
    (root / "link").symlink_to("etc")
    with pytest.raises(OSError) as caught:
        fs.chmod_at(root_fd, "link", 0o700)
    assert caught.value.errno == errno.ELOOP
    assert (root / "etc").stat().st_mode & 0o7777 == 0o4755


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
