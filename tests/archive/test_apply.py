"""apply_layer unpacks layer tars inside their root, whatever the tar contains, and applies
whiteouts either by deleting (flattening) or as overlayfs whiteouts."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.archive import ApplyResult, ArchiveError, BreakoutError, apply_layer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, xattrs)")

MTIME = 1_600_000_000


# Building layer tars -------------------------------------------------------------------------


def info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, **fields) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type = kind
    entry.mode = mode
    entry.mtime = MTIME
    for key, value in fields.items():
        setattr(entry, key, value)
    return entry


def file(name: str, data: bytes = b"", **fields) -> tuple[tarfile.TarInfo, bytes]:
    return info(name, size=len(data), **fields), data


def directory(name: str, mode: int = 0o755, **fields) -> tuple[tarfile.TarInfo, bytes]:
    return info(name, tarfile.DIRTYPE, mode, **fields), b""


def symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return info(name, tarfile.SYMTYPE, 0o777, linkname=target), b""


def hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return info(name, tarfile.LNKTYPE, linkname=target), b""


def tar_bytes(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry, data in entries:
            tar.addfile(entry, io.BytesIO(data) if entry.isreg() else None)
    return out.getvalue()


def layer(*entries: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    return io.BytesIO(tar_bytes(*entries))


# A root with things outside it that must never change ------------------------------------------


@dataclass
class Sandbox:
    base: Path  # holds the root and the outside files
    root: Path
    sentinel: Path  # a file beside the root

    def outside(self) -> dict[str, tuple]:
        """Everything outside the root, and /etc/passwd, as (type, mode, nlink, size, content)."""
        found: dict[str, tuple] = {}
        for path in [self.base, *self.base.rglob("*"), Path("/etc/passwd"), Path("/etc")]:
            if path == self.root or self.root in path.parents:
                continue
            st = path.lstat()
            content = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
            found[str(path)] = (stat.S_IFMT(st.st_mode), st.st_mode, st.st_nlink, content)
        return found

    def apply(self, stream: io.BytesIO, whiteouts: str = "delete") -> ApplyResult:
        before = self.outside()
        try:
            return apply_layer(stream, self.root, whiteouts=whiteouts)
        finally:
            assert self.outside() == before, "something outside the root changed"


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("outside\n")
    root = tmp_path / "root"
    root.mkdir()
    return Sandbox(tmp_path, root, sentinel)


def inside(box: Sandbox, outside_path: Path) -> Path:
    """Where an absolute host path lands when it is read inside the root."""
    return box.root / outside_path.relative_to("/")


# Ordinary content ----------------------------------------------------------------------------


def test_files_directories_and_implicit_parents_keep_owner_mode_and_mtime(box):
    box.apply(
        layer(
            directory("usr/", mode=0o750, uid=12, gid=34),
            file("usr/bin/tool", b"#!/bin/sh\n", mode=0o755, uid=1000, gid=1001),
            file("./etc/motd", b"hello\n", mode=0o600),
        )
    )
    tool = (box.root / "usr/bin/tool").stat()
    assert (box.root / "usr/bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert (stat.S_IMODE(tool.st_mode), tool.st_uid, tool.st_gid) == (0o755, 1000, 1001)
    assert tool.st_mtime == MTIME
    usr = (box.root / "usr").stat()
    assert (stat.S_IMODE(usr.st_mode), usr.st_uid, usr.st_gid) == (0o750, 12, 34)
    assert usr.st_mtime == MTIME  # set after usr/bin was created in it
    assert stat.S_IMODE((box.root / "usr/bin").stat().st_mode) == 0o755  # implicit parent
    assert (box.root / "etc/motd").read_bytes() == b"hello\n"


def test_setuid_setgid_and_sticky_bits_survive_the_change_of_owner(box):
    box.apply(
        layer(
            file("bin/su", b"\x7fELF", mode=0o4755, uid=0, gid=0),
            file("bin/wall", b"\x7fELF", mode=0o2755, uid=5, gid=5),
            directory("tmp", mode=0o1777),
        )
    )
    assert stat.S_IMODE((box.root / "bin/su").stat().st_mode) == 0o4755
    wall = (box.root / "bin/wall").stat()
    assert (stat.S_IMODE(wall.st_mode), wall.st_gid) == (0o2755, 5)
    assert stat.S_IMODE((box.root / "tmp").stat().st_mode) == 0o1777


@pytest.mark.parametrize(
    "compress", [lambda b: b, gzip.compress, bz2.compress, lzma.compress], ids=str
)
def test_compression_is_sniffed_and_the_diff_id_is_the_sha256_of_the_uncompressed_tar(
    box, compress
):
    raw = tar_bytes(file("a", b"x" * 5000), directory("d"))
    result = box.apply(io.BytesIO(compress(raw)))
    assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert result.tar_size == len(raw)
    assert result.unpacked_size == 5000
    assert (box.root / "a").read_bytes() == b"x" * 5000


class Trickle:
    """A read-only stream that answers in small pieces, as a pipe or an HTTP body may."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, size: int = -1) -> bytes:
        size = 3 if size < 0 else min(size, 3)
        piece, self._data = self._data[:size], self._data[size:]
        return piece


def test_a_stream_without_seek_that_answers_in_pieces_is_unpacked(box):
    raw = tar_bytes(file("a", b"x" * 3000), symlink("b", "a"))
    result = box.apply(Trickle(gzip.compress(raw)))
    assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (box.root / "b").read_bytes() == b"x" * 3000


def test_the_roots_own_entry_sets_the_roots_mode_and_owner(box):
    box.apply(layer(directory("./", mode=0o755, uid=7, gid=8), file("f", b"1")))
    st = box.root.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (0o755, 7, 8, MTIME)


def test_a_file_cannot_replace_the_root_itself(box):
    with pytest.raises(ArchiveError, match="cannot replace the root directory"):
        box.apply(layer(file("./", b"x")))
    assert box.root.is_dir()


def test_hardlinks_within_a_layer_share_one_inode(box):
    box.apply(layer(file("bin/gzip", b"gz", mode=0o755), hardlink("bin/gunzip", "bin/gzip")))
    assert (box.root / "bin/gzip").stat().st_ino == (box.root / "bin/gunzip").stat().st_ino
    assert (box.root / "bin/gzip").stat().st_nlink == 2


def test_a_hardlink_to_a_symlink_links_the_symlink_itself(box):
    box.apply(layer(symlink("link", str(box.sentinel)), hardlink("again", "link")))
    assert (box.root / "again").is_symlink()
    assert os.readlink(box.root / "again") == str(box.sentinel)
    assert (box.root / "again").lstat().st_ino == (box.root / "link").lstat().st_ino


def test_xattrs_from_pax_headers_are_set_including_binary_values(box):
    binary = b"\x01\x00\x00\x02\xfe\xff"
    entry, data = file("bin/ping", b"elf", mode=0o755)
    entry.pax_headers = {
        "SCHILY.xattr.user.origin": "test",
        "SCHILY.xattr.trusted.capability": binary.decode("utf-8", "surrogateescape"),
    }
    box.apply(layer((entry, data)))
    assert os.getxattr(box.root / "bin/ping", "user.origin") == b"test"
    assert os.getxattr(box.root / "bin/ping", "trusted.capability") == binary


def test_overlayfs_xattrs_in_a_layer_are_never_applied(box):
    entry, _ = directory("d")
    entry.pax_headers = {
        "SCHILY.xattr.trusted.overlay.redirect": "/elsewhere",
        "SCHILY.xattr.trusted.overlay.opaque": "y",
    }
    box.apply(layer((entry, b"")), whiteouts="overlay")
    assert os.listxattr(box.root / "d") == []


def test_long_and_non_utf8_names_round_trip_through_pax(box):
    long_name = "deep/" + "x" * 150 + "/file"
    odd_name = os.fsdecode(b"caf\xe9.txt")
    box.apply(layer(file(long_name, b"long"), file(odd_name, b"latin-1")))
    assert (box.root / long_name).read_bytes() == b"long"
    assert (box.root / os.fsencode(odd_name).decode("utf-8", "surrogateescape")).exists()
    assert b"caf\xe9.txt" in os.listdir(os.fsencode(box.root))


def test_device_nodes_and_fifos_are_created_as_docker_does_as_root(box):
    box.apply(
        layer(
            (info("dev/null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3), b""),
            (info("dev/loop0", tarfile.BLKTYPE, 0o660, devmajor=7, devminor=0, gid=6), b""),
            (info("run/initctl", tarfile.FIFOTYPE, 0o600), b""),
        )
    )
    null = (box.root / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode) and stat.S_IMODE(null.st_mode) == 0o666
    assert (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    loop = (box.root / "dev/loop0").lstat()
    assert stat.S_ISBLK(loop.st_mode) and loop.st_gid == 6
    assert (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 0)
    assert stat.S_ISFIFO((box.root / "run/initctl").lstat().st_mode)


def test_an_unknown_entry_type_is_refused(box):
    with pytest.raises(ArchiveError, match="unhandled tar header type"):
        box.apply(layer((info("odd", b"Z"), b"")))


# Tricks: every one lands inside the root or is refused ---------------------------------------


def test_a_dotdot_entry_is_refused_as_outside_the_root(box):
    with pytest.raises(BreakoutError, match=r'"\.\./sentinel" is outside of'):
        box.apply(layer(file("../sentinel", b"pwned\n")))
    with pytest.raises(BreakoutError):
        box.apply(layer(file("a/../../escape", b"pwned\n")))
    assert not (box.base / "escape").exists()


def test_an_absolute_entry_lands_inside_the_root(box):
    box.apply(layer(file(str(box.sentinel), b"inside\n"), file("/abs/path", b"abs\n")))
    assert inside(box, box.sentinel).read_bytes() == b"inside\n"
    assert (box.root / "abs/path").read_bytes() == b"abs\n"


def test_writing_through_a_symlink_to_slash_lands_inside_the_root(box):
    box.apply(layer(symlink("evil", "/"), file(f"evil{box.sentinel}", b"pwned\n")))
    assert inside(box, box.sentinel).read_bytes() == b"pwned\n"
    assert os.readlink(box.root / "evil") == "/"


def test_writing_through_a_symlink_to_an_outside_directory_lands_inside_the_root(box):
    box.apply(
        layer(
            symlink("etc", str(box.base)),
            directory(f"{box.base.relative_to('/')}"),
            file("etc/sentinel", b"pwned\n"),
        )
    )
    assert inside(box, box.sentinel).read_bytes() == b"pwned\n"


def test_a_symlink_climbing_out_with_dotdot_is_refused_as_docker_refuses_it(box):
    with pytest.raises(BreakoutError, match=r'invalid symlink "evil" -> "\.\./\.\./\.\."'):
        box.apply(layer(symlink("evil", "../../.."), file("evil/sentinel", b"pwned\n")))
    with pytest.raises(BreakoutError, match="invalid symlink"):
        box.apply(layer(symlink("a/b/up", "../../../sentinel")))
    assert not (box.root / "evil").exists()


def test_a_symlink_climbing_within_the_root_is_kept(box):
    box.apply(layer(symlink("usr/lib/os-release", "../../etc/os-release")))
    assert os.readlink(box.root / "usr/lib/os-release") == "../../etc/os-release"


def test_an_escaping_symlink_already_in_the_root_resolves_inside_it(box):
    # A lower layer, or a container, may have left one: the kernel keeps the walk in the root.
    (box.root / "evil").symlink_to("../../../../..")
    (box.root / "abs").symlink_to(box.base)
    inside(box, box.base).mkdir(parents=True)
    box.apply(layer(file("evil/sentinel", b"one\n"), file("abs/sentinel", b"two\n")))
    assert (box.root / "sentinel").read_bytes() == b"one\n"
    assert inside(box, box.sentinel).read_bytes() == b"two\n"


def test_a_hardlink_to_etc_passwd_links_the_roots_own_file(box):
    box.apply(
        layer(file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"), hardlink("pw", "/etc/passwd"))
    )
    assert (box.root / "pw").stat().st_ino == (box.root / "etc/passwd").stat().st_ino
    assert (box.root / "pw").stat().st_ino != Path("/etc/passwd").stat().st_ino


def test_a_hardlink_to_a_file_missing_from_the_root_is_refused(box):
    with pytest.raises(ArchiveError, match='hardlink "pw" -> "/etc/passwd": no such file'):
        box.apply(layer(hardlink("pw", "/etc/passwd")))
    assert not (box.root / "pw").exists()


def test_a_hardlink_climbing_out_with_dotdot_is_refused(box):
    with pytest.raises(BreakoutError, match=r'invalid hardlink "x" -> "\.\./sentinel"'):
        box.apply(layer(hardlink("x", "../sentinel")))
    assert box.sentinel.stat().st_nlink == 1


def test_a_hardlink_through_an_escaping_symlink_never_links_the_outside_file(box):
    with pytest.raises(ArchiveError, match="no such file"):
        box.apply(layer(symlink("evil", "/"), hardlink("x", f"evil{box.sentinel}")))
    (box.root / "out").symlink_to(box.base)
    with pytest.raises(ArchiveError, match="no such file"):
        box.apply(layer(hardlink("y", "out/sentinel")))
    assert box.sentinel.stat().st_nlink == 1
    assert not (box.root / "x").exists() and not (box.root / "y").exists()


def test_a_hardlink_through_a_symlink_links_the_file_inside_the_root(box):
    inside(box, box.sentinel).parent.mkdir(parents=True)
    inside(box, box.sentinel).write_text("the root's own\n")
    box.apply(layer(symlink("evil", "/"), hardlink("x", f"evil{box.sentinel}")))
    assert (box.root / "x").stat().st_ino == inside(box, box.sentinel).stat().st_ino
    assert box.sentinel.stat().st_nlink == 1


def test_a_file_replaces_a_symlink_instead_of_writing_through_it(box):
    (box.root / "link").symlink_to(box.sentinel)
    box.apply(layer(file("link", b"replaced\n")))
    assert not (box.root / "link").is_symlink()
    assert (box.root / "link").read_bytes() == b"replaced\n"


def test_a_directory_entry_replaces_a_symlink_to_an_outside_directory(box):
    (box.root / "d").symlink_to(box.base)
    box.apply(layer(directory("d", mode=0o700), file("d/sentinel", b"inside\n")))
    assert (box.root / "d").is_dir() and not (box.root / "d").is_symlink()
    assert (box.root / "d/sentinel").read_bytes() == b"inside\n"


def test_a_whiteout_climbing_out_is_refused_and_the_file_outside_stays(box):
    for mode in ("delete", "overlay"):
        with pytest.raises(BreakoutError, match="is outside of"):
            box.apply(layer(file("../.wh.sentinel")), whiteouts=mode)
    assert box.sentinel.exists()


@pytest.mark.parametrize("name", ["d/.wh..", "d/.wh.", ".wh.."])
def test_a_whiteout_of_dotdot_or_nothing_is_refused(box, name):
    (box.root / "d").mkdir()
    with pytest.raises(BreakoutError, match="invalid whiteout"):
        box.apply(layer(file(name)))
    assert (box.root / "d").is_dir()


def test_a_whiteout_through_an_escaping_symlink_deletes_only_inside_the_root(box):
    inside(box, box.sentinel).parent.mkdir(parents=True)
    inside(box, box.sentinel).write_text("inside\n")
    (box.root / "evil").symlink_to(box.base)
    box.apply(layer(file("evil/.wh.sentinel")))
    assert not inside(box, box.sentinel).exists()
    assert box.sentinel.exists()


# Whiteouts -----------------------------------------------------------------------------------


def lower(box: Sandbox) -> None:
    """What earlier layers left in the root."""
    for path, data in {
        "a/file": b"old",
        "a/keep": b"keep",
        "gone/sub/deep": b"x",
        "opq/old1": b"1",
        "opq/sub/old2": b"2",
        "opq/kept/old3": b"3",
    }.items():
        (box.root / path).parent.mkdir(parents=True, exist_ok=True)
        (box.root / path).write_bytes(data)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_whiteouts_in_delete_mode_remove_files_and_whole_directories(box):
    lower(box)
    box.apply(layer(file("a/.wh.file"), file(".wh.gone"), file("a/.wh.absent")))
    assert not (box.root / "a/file").exists()
    assert (box.root / "a/keep").read_bytes() == b"keep"
    assert not (box.root / "gone").exists()
    assert not [p for p in tree(box.root) if ".wh." in p]


def test_a_whiteout_of_something_absent_in_delete_mode_creates_nothing(box):
    box.apply(layer(file("not/there/.wh.x")))
    assert tree(box.root) == []


def test_an_opaque_directory_in_delete_mode_keeps_only_what_this_layer_put_there(box):
    lower(box)
    box.apply(
        layer(
            directory("opq"),
            file("opq/new", b"new"),  # before the marker: still kept
            file("opq/kept/new2", b"n2"),  # opq/kept is listed only implicitly
            file("opq/.wh..wh..opq"),
            file("opq/later", b"later"),
        )
    )
    assert tree(box.root / "opq") == ["kept", "kept/new2", "later", "new"]


def test_an_opaque_marker_under_a_symlink_in_delete_mode_empties_nothing(box):
    (box.root / "real").mkdir()
    (box.root / "real/x").write_text("x")
    (box.root / "d").symlink_to("real")
    box.apply(layer(file("d/.wh..wh..opq")))
    assert tree(box.root) == ["d", "real", "real/x"]


def test_whiteouts_in_overlay_mode_become_0_0_character_devices(box):
    box.apply(
        layer(directory("a"), file("a/.wh.file", uid=3, gid=4), file(".wh.gone")),
        whiteouts="overlay",
    )
    for path in ("a/file", "gone"):
        st = (box.root / path).lstat()
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, path
    assert ((box.root / "a/file").lstat().st_uid, (box.root / "a/file").lstat().st_gid) == (3, 4)
    assert not [p for p in tree(box.root) if ".wh." in p]


def test_an_opaque_directory_in_overlay_mode_gets_the_overlay_opaque_xattr(box):
    box.apply(
        layer(directory("opq"), file("opq/.wh..wh..opq"), file("opq/new", b"n")),
        whiteouts="overlay",
    )
    assert os.getxattr(box.root / "opq", "trusted.overlay.opaque") == b"y"
    assert tree(box.root) == ["opq", "opq/new"]


def test_an_opaque_marker_without_its_directory_entry_still_makes_the_directory(box):
    box.apply(layer(file("x/y/.wh..wh..opq")), whiteouts="overlay")
    assert os.getxattr(box.root / "x/y", "trusted.overlay.opaque") == b"y"


def test_aufs_metadata_entries_are_skipped(box):
    box.apply(layer(file(".wh..wh.plnk/123.456", b"x"), file("d/.wh..wh.aufs", b"y")))
    assert tree(box.root) == []


# Replacements --------------------------------------------------------------------------------


def test_a_file_replaces_a_directory_and_a_directory_replaces_a_file(box):
    (box.root / "was-dir/sub").mkdir(parents=True)
    (box.root / "was-dir/sub/f").write_text("x")
    (box.root / "was-file").write_text("x")
    box.apply(layer(file("was-dir", b"now a file"), directory("was-file"), file("was-file/in")))
    assert (box.root / "was-dir").read_bytes() == b"now a file"
    assert (box.root / "was-file").is_dir()
    assert (box.root / "was-file/in").exists()


def test_a_directory_entry_merges_with_an_existing_directory(box):
    (box.root / "etc").mkdir(mode=0o700)
    (box.root / "etc/old").write_text("old")
    box.apply(layer(directory("etc", mode=0o755), file("etc/new", b"new")))
    assert tree(box.root) == ["etc", "etc/new", "etc/old"]
    assert stat.S_IMODE((box.root / "etc").stat().st_mode) == 0o755


def test_a_symlink_replaces_a_directory(box):
    (box.root / "lib/x").mkdir(parents=True)
    box.apply(layer(symlink("lib", "usr/lib")))
    assert os.readlink(box.root / "lib") == "usr/lib"


# Bad streams ---------------------------------------------------------------------------------


def test_an_empty_stream_is_an_empty_layer(box):
    result = box.apply(io.BytesIO(b""))
    assert result.diff_id == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert tree(box.root) == []


def corrupt_second_header() -> bytes:
    raw = bytearray(tar_bytes(file("one", b"1"), file("two", b"2")))
    raw[1024 + 148 : 1024 + 156] = b"9999999\0"  # the checksum of the second header
    return bytes(raw)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"this is not a tar" * 100, "archive/tar: invalid tar header"),
        (corrupt_second_header(), "archive/tar: invalid tar header"),
        (tar_bytes(file("big", b"x" * 5000))[:2000], "unexpected EOF"),
        (gzip.compress(tar_bytes(file("big", b"x" * 5000)))[:-30], "unexpected EOF"),
        (b"\x1f\x8b\x08\x00garbage" * 10, "gzip"),
        (b"\x28\xb5\x2f\xfd" + b"\0" * 100, "zstd"),
    ],
    ids=["garbage", "bad-second-header", "truncated", "truncated-gzip", "bad-gzip", "zstd"],
)
def test_a_corrupt_or_truncated_stream_is_refused_with_a_clear_error(box, data, message):
    with pytest.raises(ArchiveError, match=message):
        box.apply(io.BytesIO(data))


def test_an_unknown_whiteout_mode_is_a_value_error(box):
    with pytest.raises(ValueError, match="whiteouts must be"):
        apply_layer(layer(), box.root, whiteouts="aufs")


@pytest.mark.parametrize(
    ("cut", "outcome"),
    [
        (512 + 5, ["a", "b"]),  # right after b's data: the docker CLI sends such a context
        (1024, ["a", "b"]),  # right after b's padding
        (0, ["a", "b"]),  # both end-of-archive blocks, as usual
        (512 + 4, None),  # inside b's data
        (512 + 6, None),  # inside b's padding
        (300, None),  # inside b's header
    ],
)
def test_a_stream_may_end_where_gos_tar_reader_lets_it(
    tmp_path: Path, cut: int, outcome: list[str] | None
) -> None:
    whole = tar_bytes(file("a", b"first"), file("b", b"hello"))
    second = whole.index(b"b\0")  # b's header follows a's header and padded data
    stream = io.BytesIO(whole[: second + cut] if cut else whole)
    root = tmp_path / "root"
    root.mkdir()
    if outcome is None:
        with pytest.raises(ArchiveError, match="^unexpected EOF$"):
            apply_layer(stream, root, whiteouts="delete")
        return
    apply_layer(stream, root, whiteouts="delete")
    assert sorted(os.listdir(root)) == outcome
    assert (root / "b").read_bytes() == b"hello"
