"""The overlayfs snapshotter, through real overlay mounts: the snapshot lifecycle, whiteouts,
long chains, and five engines sharing one layer root."""

from __future__ import annotations

import errno
import multiprocessing
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from simulator.snapshots import (
    Kind,
    Mount,
    OverlaySnapshotter,
    SnapshotError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    SnapshotPreconditionError,
    unmount,
)
from simulator.snapshots.overlay import HOST_LOCK, STAGING
from simulator.snapshots.staging import exclusive_lock

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlay mounts need root")

CHAIN_ID = "sha256:" + "5f" * 32


@pytest.fixture
def layer_root(tmp_path: Path) -> Path:
    return tmp_path / "layers"


@pytest.fixture
def snapshotter(tmp_path: Path, layer_root: Path) -> OverlaySnapshotter:
    return OverlaySnapshotter(tmp_path / "engine", layer_root)


@contextmanager
def mounted(mounts: list[Mount], target: Path) -> Iterator[Path]:
    assert len(mounts) == 1
    target.mkdir(parents=True, exist_ok=True)
    mounts[0].mount(target)
    try:
        yield target
    finally:
        unmount(target)


def commit_layer(
    snapshotter: OverlaySnapshotter, name: str, parent: str | None, files: dict[str, bytes]
) -> None:
    """Unpack a layer as a pull does: prepare, write into the upper dir, commit."""
    key = f"extract-{name}"
    snapshotter.prepare(key, parent)
    upper = snapshotter.upper_dir(key)
    for path, content in files.items():
        (upper / path).parent.mkdir(parents=True, exist_ok=True)
        (upper / path).write_bytes(content)
    snapshotter.commit(name, key)


def whiteout(path: Path) -> None:
    """An overlay whiteout: a 0/0 character device."""
    os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


def disk_use(*roots: Path) -> int:
    """Bytes allocated under ``roots``, each hard-linked inode once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in roots:
        for directory, dirnames, filenames in os.walk(root):
            for name in [".", *dirnames, *filenames]:
                status = os.lstat(os.path.join(directory, name))
                if (status.st_dev, status.st_ino) not in seen:
                    seen.add((status.st_dev, status.st_ino))
                    total += status.st_blocks * 512
    return total


def staged_layers(layer_root: Path) -> list[Path]:
    return [d for d in (layer_root / STAGING).iterdir() if (d / "layer.json").exists()]


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def superblock_options(target: Path) -> str:
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            before, _, after = line.partition(" - ")
            if before.split()[4] == str(target):
                return after.split()[2]
    raise AssertionError(f"{target} is not mounted")


def test_prepare_commit_view_and_remove_through_real_mounts(
    snapshotter: OverlaySnapshotter, tmp_path: Path, layer_root: Path
) -> None:
    target = tmp_path / "rootfs"
    base = snapshotter.prepare("base-active", labels={"purpose": "unpack"})
    assert base == [Mount("bind", str(snapshotter.upper_dir("base-active")), ["rw", "rbind"])]
    with mounted(base, target) as root:
        (root / "etc").mkdir()
        (root / "etc" / "hostname").write_text("base\n")
        (root / "big").write_bytes(os.urandom(64 * 1024))
    snapshotter.commit("base", "base-active")

    info = snapshotter.stat("base")
    assert (info.kind, info.name, info.parent, info.labels) == (
        Kind.COMMITTED,
        "base",
        None,
        {"purpose": "unpack"},
    )
    size, inodes = snapshotter.usage("base")
    assert size >= 64 * 1024 and inodes == 4  # diff, etc, etc/hostname, big
    with pytest.raises(SnapshotNotFoundError):
        snapshotter.stat("base-active")

    container = snapshotter.prepare("container", "base")
    assert container[0].type == "overlay"
    with mounted(container, target) as root:
        assert (root / "etc" / "hostname").read_text() == "base\n"
        (root / "etc" / "hostname").write_text("changed\n")
        (root / "new").write_text("new\n")
    upper = snapshotter.upper_dir("container")
    assert sorted(os.listdir(upper)) == ["etc", "new"]
    assert (upper / "etc" / "hostname").read_text() == "changed\n"
    snapshotter.commit("second", "container")

    one_layer = snapshotter.view("look-at-base", "base")
    assert one_layer == [Mount("bind", str(layer_root / "base" / "diff"), ["ro", "rbind"])]
    with mounted(one_layer, target) as root:
        assert (root / "etc" / "hostname").read_text() == "base\n"
        assert not (root / "new").exists()
        with pytest.raises(OSError) as refused:
            (root / "file").write_text("x")
        assert refused.value.errno == errno.EROFS
    two_layers = snapshotter.view("look-at-second", "second")
    assert two_layers[0].type == "overlay"
    assert not any(o.startswith("upperdir=") for o in two_layers[0].options)
    with mounted(two_layers, target) as root:
        assert (root / "etc" / "hostname").read_text() == "changed\n"
        assert (root / "new").read_text() == "new\n"
        with pytest.raises(OSError) as refused:
            (root / "new").write_text("x")
        assert refused.value.errno == errno.EROFS

    assert [(i.name, i.kind) for i in snapshotter.walk()] == [
        ("look-at-base", Kind.VIEW),
        ("look-at-second", Kind.VIEW),
        ("base", Kind.COMMITTED),
        ("second", Kind.COMMITTED),
    ]
    with pytest.raises(SnapshotPreconditionError, match="cannot remove snapshot with child"):
        snapshotter.remove("base")
    for key in ("look-at-base", "look-at-second", "second", "base"):
        snapshotter.remove(key)
    assert list(snapshotter.walk()) == []
    assert sorted(os.listdir(layer_root)) == [HOST_LOCK, STAGING, "l"]
    assert os.listdir(layer_root / "l") == [] and os.listdir(layer_root / STAGING) == []


def test_an_overlay_whiteout_and_an_opaque_dir_in_an_upper_layer_hide_lower_files(
    snapshotter: OverlaySnapshotter, tmp_path: Path
) -> None:
    commit_layer(snapshotter, "layer-1", None, {"kept": b"1", "deleted": b"1", "dir/old": b"1"})
    commit_layer(snapshotter, "layer-2", "layer-1", {"added": b"2"})
    snapshotter.prepare("extract-3", "layer-2")
    upper = snapshotter.upper_dir("extract-3")
    whiteout(upper / "deleted")
    (upper / "dir").mkdir()
    os.setxattr(upper / "dir", "trusted.overlay.opaque", b"y")
    (upper / "dir" / "new").write_bytes(b"3")
    snapshotter.commit("layer-3", "extract-3")

    with mounted(snapshotter.prepare("container", "layer-3"), tmp_path / "rootfs") as root:
        assert sorted(os.listdir(root)) == ["added", "dir", "kept"]
        assert os.listdir(root / "dir") == ["new"]
        (root / "kept").unlink()  # the kernel records the deletion as a whiteout in the upper
    container_upper = snapshotter.upper_dir("container")
    assert stat.S_ISCHR(os.lstat(container_upper / "kept").st_mode)
    assert os.lstat(container_upper / "kept").st_rdev == os.makedev(0, 0)


def test_a_100_layer_chain_mounts_with_its_options_under_one_page(
    snapshotter: OverlaySnapshotter, tmp_path: Path
) -> None:
    parent = None
    for index in range(100):
        commit_layer(snapshotter, f"layer-{index}", parent, {f"file-{index}": b"%d" % index})
        parent = f"layer-{index}"
    mounts = snapshotter.prepare("container", parent)
    assert len(",".join(mounts[0].options)) > 4096  # absolute lowerdir paths would not fit
    with mounted(mounts, tmp_path / "rootfs") as root:
        options = superblock_options(root)
        assert "lowerdir=" in options and len(options) < 4096
        assert len(os.listdir(root)) == 100
        assert all((root / f"file-{i}").read_bytes() == b"%d" % i for i in range(100))
        (root / "file-0").write_bytes(b"written")
    assert (snapshotter.upper_dir("container") / "file-0").read_bytes() == b"written"


def _commit_in_engine(
    data_root: Path,
    layer_root: Path,
    content: Path,
    name: str,
    ready: Any,
    go: Any,
) -> None:
    """One engine's pull of a layer, in its own process: unpack it, then commit on ``go``."""
    snapshotter = OverlaySnapshotter(data_root, layer_root)
    snapshotter.prepare("extract")
    shutil.copytree(content, snapshotter.upper_dir("extract"), dirs_exist_ok=True)
    ready.wait()
    go.wait()
    snapshotter.commit(name, "extract", labels={"engine": data_root.name})


def test_five_engines_committing_the_same_layer_at_once_keep_one_copy_until_the_last_removes_it(
    tmp_path: Path, layer_root: Path
) -> None:
    content = tmp_path / "content"
    content.mkdir()
    for index in range(4):
        (content / f"blob-{index}").write_bytes(os.urandom(1024 * 1024))
    one_copy = disk_use(content)
    data_roots = [tmp_path / f"engine-{index}" for index in range(5)]
    context = multiprocessing.get_context("fork")
    ready, go = context.Barrier(len(data_roots) + 1), context.Event()
    engines = [
        context.Process(
            target=_commit_in_engine, args=(root, layer_root, content, CHAIN_ID, ready, go)
        )
        for root in data_roots
    ]
    try:
        for engine in engines:
            engine.start()
        ready.wait(timeout=60)
        # Hold publication back until all five have staged a copy, so that four lose the race.
        with exclusive_lock(layer_root / HOST_LOCK):
            go.set()
            wait_until(lambda: len(staged_layers(layer_root)) == len(engines))
        for engine in engines:
            engine.join(timeout=60)
        assert [engine.exitcode for engine in engines] == [0] * len(engines)
    finally:
        for engine in engines:
            if engine.is_alive():
                engine.kill()
            engine.join()

    engines_again = [OverlaySnapshotter(root, layer_root) for root in data_roots]
    for snapshotter in engines_again:
        info = snapshotter.stat(CHAIN_ID)
        assert info.kind is Kind.COMMITTED
        assert info.labels == {"engine": snapshotter.data_root.name}
    assert sorted(os.listdir(layer_root)) == [HOST_LOCK, STAGING, "l", CHAIN_ID]
    assert len(os.listdir(layer_root / CHAIN_ID / "refs")) == 5
    assert os.listdir(layer_root / STAGING) == []
    assert disk_use(layer_root, *data_roots) <= 1.2 * one_copy

    for snapshotter in engines_again[:4]:
        snapshotter.remove(CHAIN_ID)
        with pytest.raises(SnapshotNotFoundError):
            snapshotter.stat(CHAIN_ID)
    last = engines_again[4]
    assert last.has(CHAIN_ID)
    assert disk_use(layer_root) >= one_copy
    with mounted(last.view("check", CHAIN_ID), tmp_path / "rootfs") as root:
        assert (root / "blob-3").read_bytes() == (content / "blob-3").read_bytes()
    last.remove("check")

    last.remove(CHAIN_ID)
    assert not last.has(CHAIN_ID)
    assert sorted(os.listdir(layer_root)) == [HOST_LOCK, STAGING, "l"]
    assert disk_use(layer_root) < 0.05 * one_copy


def test_a_commit_cut_short_by_a_crash_is_never_visible_and_is_swept_on_the_next_start(
    tmp_path: Path, layer_root: Path
) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (content / "file").write_bytes(b"half-committed")
    crashed_root = tmp_path / "crashed-engine"
    witness = OverlaySnapshotter(tmp_path / "witness", layer_root)
    context = multiprocessing.get_context("fork")
    ready, go = context.Barrier(2), context.Event()
    engine = context.Process(
        target=_commit_in_engine, args=(crashed_root, layer_root, content, CHAIN_ID, ready, go)
    )
    try:
        engine.start()
        ready.wait(timeout=60)
        with exclusive_lock(layer_root / HOST_LOCK):  # the commit stops just before publishing
            go.set()
            wait_until(lambda: len(staged_layers(layer_root)) == 1)
            OverlaySnapshotter(tmp_path / "starting", layer_root)
            assert len(staged_layers(layer_root)) == 1  # a live commit is not swept
            os.kill(engine.pid, signal.SIGKILL)
            engine.join()
        assert engine.exitcode == -signal.SIGKILL
    finally:
        if engine.is_alive():
            engine.kill()
        engine.join()

    assert len(staged_layers(layer_root)) == 1
    assert not witness.has(CHAIN_ID)
    with pytest.raises(SnapshotNotFoundError):
        witness.adopt(CHAIN_ID)
    assert [info.name for info in witness.walk()] == []

    restarted = OverlaySnapshotter(crashed_root, layer_root)
    assert os.listdir(layer_root / STAGING) == []
    assert list(restarted.walk()) == []  # the active snapshot whose commit was cut short
    assert os.listdir(crashed_root / "snapshots") == []
    commit_layer(restarted, CHAIN_ID, None, {"file": b"whole"})
    assert witness.has(CHAIN_ID)


def test_a_commit_from_another_filesystem_copies_whiteouts_and_opaque_dirs(
    tmp_path: Path, layer_root: Path
) -> None:
    shm = Path(tempfile.mkdtemp(prefix="slipway-test-", dir="/dev/shm"))
    try:
        if os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same filesystem as the layer root")
        snapshotter = OverlaySnapshotter(shm / "engine", layer_root)
        commit_layer(snapshotter, "base", None, {"deleted": b"a", "dir/old": b"x"})
        snapshotter.prepare("extract", "base")
        upper = snapshotter.upper_dir("extract")
        whiteout(upper / "deleted")
        (upper / "dir").mkdir()
        os.setxattr(upper / "dir", "trusted.overlay.opaque", b"y")
        snapshotter.commit("top", "extract")

        diff = layer_root / "top" / "diff"
        assert os.lstat(diff / "deleted").st_rdev == os.makedev(0, 0)
        assert os.getxattr(diff / "dir", "trusted.overlay.opaque") == b"y"
        with mounted(snapshotter.view("check", "top"), tmp_path / "rootfs") as root:
            assert os.listdir(root) == ["dir"]
            assert os.listdir(root / "dir") == []
        for key in ("check", "top", "base"):
            snapshotter.remove(key)
    finally:
        shutil.rmtree(shm)


def test_an_engine_adopts_a_layer_another_engine_unpacked_and_holds_it_until_it_removes_it(
    tmp_path: Path, layer_root: Path
) -> None:
    first = OverlaySnapshotter(tmp_path / "first", layer_root)
    second = OverlaySnapshotter(tmp_path / "second", layer_root)
    commit_layer(first, "base", None, {"a": b"a"})
    commit_layer(first, "app", "base", {"b": b"b"})

    assert second.has("app")
    with pytest.raises(SnapshotNotFoundError):
        second.stat("app")  # on the host, but not this engine's
    with pytest.raises(SnapshotNotFoundError, match="parent snapshot base does not exist"):
        second.adopt("app")
    second.adopt("base")
    assert second.adopt("app", labels={"image": "app"}).labels == {"image": "app"}

    first.remove("app")
    first.remove("base")
    with mounted(second.view("check", "app"), tmp_path / "rootfs") as root:
        assert sorted(os.listdir(root)) == ["a", "b"]
    for key in ("check", "app", "base"):
        second.remove(key)
    assert not second.has("app") and not second.has("base")


def test_refusals_are_worded_as_containerd_words_them(snapshotter: OverlaySnapshotter) -> None:
    snapshotter.prepare("active")
    snapshotter.view("view")
    commit_layer(snapshotter, "layer", None, {})
    with pytest.raises(SnapshotExistsError, match="snapshot active: already exists"):
        snapshotter.prepare("active")
    with pytest.raises(SnapshotExistsError, match="snapshot layer: already exists"):
        snapshotter.commit("layer", "active")
    with pytest.raises(SnapshotNotFoundError, match="parent snapshot gone does not exist"):
        snapshotter.prepare("child", "gone")
    with pytest.raises(SnapshotPreconditionError, match="is not committed snapshot"):
        snapshotter.prepare("child", "active")
    with pytest.raises(SnapshotPreconditionError, match="requested snapshot view not active"):
        snapshotter.commit("from-view", "view")
    with pytest.raises(SnapshotPreconditionError, match="only active and view snapshots"):
        snapshotter.mounts("layer")
    with pytest.raises(SnapshotError, match="invalid layer name"):
        snapshotter.commit("../escape", "active")
    for missing in (snapshotter.stat, snapshotter.remove, snapshotter.mounts, snapshotter.usage):
        with pytest.raises(SnapshotNotFoundError, match="snapshot gone does not exist: not found"):
            missing("gone")
    assert snapshotter.stat("active").kind is Kind.ACTIVE  # nothing above changed anything
