"""diff_to_tar writes an overlayfs upper dir as an OCI layer (whiteouts, opaque dirs, links,
xattrs), hashes it as it streams, and apply_layer of the result reproduces the merged view."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import shutil
import socket
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator import linux
from simulator.archive import ArchiveError, apply_layer, diff_to_tar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, xattrs, mount)")

MTIME = 1_600_000_000


def diff(upper: Path, **options) -> tuple[bytes, object]:
    out = io.BytesIO()
    result = diff_to_tar(upper, out, **options)
    return out.getvalue(), result


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        return tar.getmembers()


def names(data: bytes) -> list[str]:
    return [member.name for member in members(data)]


def write(path: Path, data: bytes = b"", mode: int = 0o644, mtime: int = MTIME) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    os.utime(path, (mtime, mtime))
    return path


def whiteout(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR, 0)


@pytest.fixture
def upper(tmp_path: Path) -> Path:
    upper = tmp_path / "upper"
    upper.mkdir()
    return upper


# What the tar holds --------------------------------------------------------------------------


def test_whiteout_devices_become_wh_files_and_opaque_dirs_get_a_marker_after_the_dir(upper):
    write(upper / "a.txt", b"a")
    whiteout(upper / "gone")
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    write(upper / "opq/new", b"n")
    data, _ = diff(upper)
    assert names(data) == ["a.txt", ".wh.gone", "opq", "opq/.wh..wh..opq", "opq/new"]
    by_name = {m.name: m for m in members(data)}
    assert by_name[".wh.gone"].isreg() and by_name[".wh.gone"].size == 0
    assert by_name["opq/.wh..wh..opq"].isreg() and by_name["opq/.wh..wh..opq"].size == 0
    assert by_name["opq"].pax_headers == {}  # trusted.overlay.* never reaches the layer


def test_a_directory_whose_opaque_xattr_is_not_y_is_not_opaque(upper):
    (upper / "d").mkdir()
    os.setxattr(upper / "d", "trusted.overlay.opaque", b"x")  # overlayfs: "has xwhiteouts"
    assert names(diff(upper)[0]) == ["d"]


def test_entries_come_in_sorted_order_with_each_directory_before_its_contents(upper):
    for name in ("b", "a/z", "a/b", "a-b", "A", "a/m/q"):
        write(upper / name)
    assert names(diff(upper)[0]) == ["A", "a", "a/b", "a/m", "a/m/q", "a/z", "a-b", "b"]


def test_owner_mode_setuid_and_whole_second_mtime_are_kept(upper):
    path = write(upper / "bin/su", b"elf", mode=0o755)
    os.chown(path, 1000, 1001)
    path.chmod(0o4755)
    os.utime(path, ns=(MTIME * 10**9 + 999_999_999, MTIME * 10**9 + 999_999_999))
    (upper / "tmp").mkdir()
    (upper / "tmp").chmod(0o1777)
    by_name = {m.name: m for m in members(diff(upper)[0])}
    su = by_name["bin/su"]
    assert (su.mode, su.uid, su.gid, su.mtime, su.uname, su.gname) == (
        0o4755,
        1000,
        1001,
        MTIME,
        "",
        "",
    )
    assert by_name["tmp"].mode == 0o1777


def test_the_tar_is_pax_with_xattrs_except_overlayfs_ones(upper):
    path = write(upper / "bin/ping", b"elf")
    binary = b"\x01\x00\x00\x02\xfe\xff"
    os.setxattr(path, "user.origin", b"test")
    os.setxattr(path, "trusted.capability", binary)
    os.setxattr(path, "trusted.overlay.origin", b"\x00fh")
    data, _ = diff(upper)
    ping = {m.name: m for m in members(data)}["bin/ping"]
    xattrs = {k: v for k, v in ping.pax_headers.items() if k.startswith("SCHILY.xattr.")}
    assert set(xattrs) == {"SCHILY.xattr.trusted.capability", "SCHILY.xattr.user.origin"}
    assert xattrs["SCHILY.xattr.trusted.capability"].encode("utf-8", "surrogateescape") == binary
    assert data[156:157] == b"5"  # "bin/", then bin/ping behind a PAX extended header
    assert data[512 + 156 : 512 + 157] == b"x"


def test_hardlinks_within_the_tree_are_written_once_then_as_links(upper):
    write(upper / "bin/gzip", b"gz" * 1000)
    os.link(upper / "bin/gzip", upper / "bin/gunzip")
    os.link(upper / "bin/gzip", upper / "bin/zcat")
    by_name = {m.name: m for m in members(diff(upper)[0])}
    assert by_name["bin/gunzip"].isreg() and by_name["bin/gunzip"].size == 2000
    for name in ("bin/gzip", "bin/zcat"):
        assert by_name[name].islnk() and by_name[name].linkname == "bin/gunzip"


def test_whiteouts_sharing_one_inode_are_not_written_as_hardlinks(upper):
    # overlayfs may link whiteouts to one shared inode in its work dir.
    whiteout(upper / "one")
    os.link(upper / "one", upper / "two")
    by_name = {m.name: m for m in members(diff(upper)[0])}
    assert by_name[".wh.one"].isreg() and by_name[".wh.two"].isreg()


def test_symlinks_devices_and_fifos_are_written_and_sockets_left_out(upper):
    (upper / "link").symlink_to("/etc/passwd")
    os.mknod(upper / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(upper / "loop0", stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.mkfifo(upper / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(upper / "sock"))
        by_name = {m.name: m for m in members(diff(upper)[0])}
    assert by_name["link"].issym() and by_name["link"].linkname == "/etc/passwd"
    assert by_name["null"].ischr() and (by_name["null"].devmajor, by_name["null"].devminor) == (
        1,
        3,
    )
    assert by_name["loop0"].isblk() and by_name["loop0"].devmajor == 7
    assert by_name["fifo"].isfifo()
    assert "sock" not in by_name


def test_an_overlay_redirect_is_refused_because_a_tar_cannot_express_it(upper):
    (upper / "moved").mkdir()
    os.setxattr(upper / "moved", "trusted.overlay.redirect", b"/old")
    with pytest.raises(ArchiveError, match="redirect_dir=off"):
        diff(upper)


def test_the_same_tree_always_gives_the_same_bytes(upper):
    write(upper / "b/file", b"data")
    write(upper / "a", b"x")
    whiteout(upper / "w")
    first, _ = diff(upper, compress=True)
    os.stat(upper / "a")
    (upper / "a").read_bytes()  # an atime change must not matter
    second, _ = diff(upper, compress=True)
    assert first == second


# Digests -------------------------------------------------------------------------------------


def test_uncompressed_the_blob_is_the_tar_and_both_digests_agree(upper):
    write(upper / "f", b"content")
    data, result = diff(upper)
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    assert (result.diff_id, result.digest) == (expected, expected)
    assert result.tar_size == result.size == len(data)


def test_compressed_the_digest_is_the_gzips_and_the_diff_id_the_tars(upper):
    write(upper / "f", b"content" * 1000)
    data, result = diff(upper, compress=True)
    tar = gzip.decompress(data)
    assert result.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.size == len(data)
    assert result.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert result.tar_size == len(tar)
    assert data[:2] == b"\x1f\x8b"


class WriteOnly:
    """An output with no seek, tell or read: a pipe or an HTTP upload body."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(bytes(data))

    def flush(self) -> None:
        pass


def test_it_streams_into_a_write_only_output(upper):
    write(upper / "f", b"x" * 100_000)
    out = WriteOnly()
    result = diff_to_tar(upper, out, compress=True)
    blob = b"".join(out.chunks)
    assert result.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert names(blob) == ["f"]


# Round trips ---------------------------------------------------------------------------------


def test_applying_in_overlay_mode_rebuilds_an_upper_that_diffs_to_the_same_bytes(upper, tmp_path):
    write(upper / "etc/new.conf", b"x", mode=0o600)
    whiteout(upper / "etc/old.conf")
    os.utime(upper / "etc/old.conf", (MTIME, MTIME), follow_symlinks=False)
    (upper / "var/cache").mkdir(parents=True)
    os.setxattr(upper / "var/cache", "trusted.overlay.opaque", b"y")
    write(upper / "var/cache/fresh", b"y")
    os.link(upper / "var/cache/fresh", upper / "var/cache/again")
    (upper / "var/link").symlink_to("cache/fresh")
    write(upper / os.fsdecode(b"var/caf\xe9"), b"latin-1 name")
    for directory in ("etc", "var/cache", "var"):
        os.utime(upper / directory, (MTIME, MTIME))
    original, _ = diff(upper)
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    apply_layer(io.BytesIO(original), rebuilt, whiteouts="overlay")
    assert diff(rebuilt)[0] == original


@contextlib.contextmanager
def overlay_mount(lower: Path, upper: Path, work: Path, merged: Path) -> Iterator[Path]:
    for directory in (upper, work, merged):
        directory.mkdir()
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    linux.mount("overlay", str(merged), "overlay", 0, options)
    try:
        yield merged
    finally:
        linux.umount2(str(merged))


def view(root: Path) -> dict[str, tuple]:
    """A tree file for file: type, mode, owner, whole-second mtime, content or target, xattrs."""
    found: dict[str, tuple] = {}
    inodes: dict[int, list[str]] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        st = path.lstat()
        if stat.S_ISREG(st.st_mode):
            detail: object = path.read_bytes()
        elif stat.S_ISLNK(st.st_mode):
            detail = os.readlink(path)
        else:
            detail = st.st_rdev
        xattrs = {
            key: os.getxattr(path, key, follow_symlinks=False)
            for key in os.listxattr(path, follow_symlinks=False)
            if not key.startswith("trusted.overlay.")
        }
        found[name] = (st.st_mode, st.st_uid, st.st_gid, int(st.st_mtime), detail, xattrs)
        if not stat.S_ISDIR(st.st_mode):
            inodes.setdefault(st.st_ino, []).append(name)
    found["hardlink groups"] = tuple(sorted(tuple(g) for g in inodes.values() if len(g) > 1))
    return found


def make_lower(lower: Path) -> None:
    for name in ("keep.txt", "modify.txt", "delete.txt", "chmod.txt", "file-to-dir"):
        write(lower / name, name.encode())
    write(lower / "dir_rm/a", b"a")
    write(lower / "dir_rm/b/c", b"c")
    write(lower / "dir_del/x", b"x")
    write(lower / "dir-to-file/y", b"y")
    write(lower / "sub/inner.txt", b"inner")
    write(lower / "hard1", b"linked")
    os.link(lower / "hard1", lower / "hard2")
    (lower / "link").symlink_to("keep.txt")
    os.mkfifo(lower / "fifo")
    os.chown(lower / "sub/inner.txt", 33, 33)


def change_through(merged: Path) -> None:
    new = write(merged / "new.txt", b"new", mode=0o640)
    os.chown(new, 1000, 1000)
    os.setxattr(new, "user.note", b"added")
    with open(merged / "modify.txt", "ab") as f:
        f.write(b" and more")
    os.remove(merged / "delete.txt")
    (merged / "chmod.txt").chmod(0o600)
    shutil.rmtree(merged / "dir_rm")
    (merged / "dir_rm").mkdir()
    write(merged / "dir_rm/fresh", b"fresh")
    shutil.rmtree(merged / "dir_del")
    shutil.rmtree(merged / "dir-to-file")
    write(merged / "dir-to-file", b"now a file")
    os.remove(merged / "file-to-dir")
    write(merged / "file-to-dir/inside", b"now a dir")
    write(merged / "sub/new_inner.txt", b"more")
    write(merged / "newhl1", b"hl")
    os.link(merged / "newhl1", merged / "newhl2")
    (merged / "newlink").symlink_to("/etc/passwd")
    os.mkfifo(merged / "newfifo")


def test_diff_of_a_real_overlay_then_apply_on_a_copy_of_lower_gives_the_merged_view(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    make_lower(lower)
    with overlay_mount(lower, upper, tmp_path / "work", tmp_path / "merged") as merged:
        change_through(merged)
        expected = view(merged)
    del expected["hardlink groups"]  # new links are in upper; compared separately below

    data, result = diff(upper, compress=True)
    layer_names = names(data)
    for whiteout_name in (".wh.delete.txt", ".wh.dir_del", "dir_rm/.wh..wh..opq"):
        assert whiteout_name in layer_names
    assert layer_names.index("dir_rm/.wh..wh..opq") == layer_names.index("dir_rm") + 1
    assert not [n for n in layer_names if n.startswith(("keep", "hard", "sub/inner"))]

    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(lower), str(copy)], check=True)
    applied = apply_layer(io.BytesIO(data), copy, whiteouts="delete")
    assert applied.diff_id == result.diff_id

    got = view(copy)
    groups = got.pop("hardlink groups")
    assert got == expected
    assert ("hard1", "hard2") in groups and ("newhl1", "newhl2") in groups
