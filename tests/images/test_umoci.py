"""Real tools and docker save agree: umoci unpacks our OCI layout into the same root filesystem
as our own unpacking (file for file), skopeo reports our manifest digest, and docker load reads
the docker-archive and oci-archive that skopeo writes from our layout."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from simulator.archive import apply_layer, diff_to_tar
from simulator.content.store import ContentStore
from simulator.images.load import load
from simulator.images.oci import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    Descriptor,
    ImageConfig,
    Manifest,
    RunConfig,
)
from simulator.images.save import save
from simulator.images.transfer import StoredImage

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, trusted xattrs)"),
    pytest.mark.requires_tool("umoci"),
]

TAG = "1.0"


def write(path: Path, data: bytes, mode: int = 0o644, owner: tuple[int, int] = (0, 0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chown(path, *owner)
    os.chmod(path, mode)


def directory(path: Path, mode: int = 0o755, owner: tuple[int, int] = (0, 0)) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, *owner)
    os.chmod(path, mode)


def whiteout(path: Path) -> None:
    """An overlayfs whiteout: a 0/0 character device."""
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def build_base(root: Path) -> None:
    directory(root / "etc")
    write(root / "etc/hostname", b"base\n")
    write(root / "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/data:/bin/sh\n")
    directory(root / "bin")
    write(root / "bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
    os.link(root / "bin/tool", root / "bin/tool-again")
    write(root / "bin/su", b"\x7fELF pretend", 0o4755)
    directory(root / "usr/lib")
    write(root / "usr/lib/libfoo.so.1", b"\x7fELF library" * 100)
    os.symlink("libfoo.so.1", root / "usr/lib/libfoo.so")
    os.symlink("/etc/hostname", root / "etc/absolute-link")
    directory(root / "data", 0o750, (1000, 1000))
    write(root / "data/a.txt", b"owned by app\n", 0o640, (1000, 1000))
    directory(root / "cache/sub")
    write(root / "cache/old", b"old\n")
    write(root / "cache/sub/older", b"older\n")
    write(root / "gone.txt", b"deleted by the next layer\n")
    directory(root / "tmp", 0o1777)


def build_upper(root: Path) -> None:
    """The second layer, as an overlayfs upper dir: a whiteout, an opaque directory, and
    changed and new files."""
    directory(root)
    whiteout(root / "gone.txt")
    directory(root / "usr/lib")
    whiteout(root / "usr/lib/libfoo.so")
    directory(root / "cache")
    os.setxattr(root / "cache", "trusted.overlay.opaque", b"y")
    write(root / "cache/fresh", b"fresh\n")
    directory(root / "etc")
    write(root / "etc/hostname", b"app\n")
    write(root / "srv/www/index.html", b"<h1>hello</h1>\n", 0o600)


def store_image(content: ContentStore, layer_dirs: list[Path], scratch: Path) -> str:
    config = ImageConfig(config=RunConfig(cmd=["/bin/tool"], env=["PATH=/bin"]))
    layers = []
    for number, layer_dir in enumerate(layer_dirs):
        blob_path = scratch / f"layer{number}.tar.gz"
        with blob_path.open("wb") as out:
            result = diff_to_tar(layer_dir, out, compress=True)
        with blob_path.open("rb") as blob, content.writer() as writer:
            while chunk := blob.read(1 << 20):
                writer.write(chunk)
            writer.commit(result.digest, result.size)
        config.add_layer(result.diff_id, f"COPY {layer_dir.name} /")
        layers.append(Descriptor(OCI_LAYER_GZIP, result.digest, result.size))
    config_bytes = config.to_bytes()
    content.put(config_bytes)
    manifest = Manifest(Descriptor.for_bytes(OCI_CONFIG, config_bytes), tuple(layers))
    return content.put(manifest.to_bytes()).digest


def tree(root: Path) -> dict[str, tuple]:
    """Everything below ``root`` that a root filesystem is: names, types, modes, owners,
    link counts, symlink targets, device numbers and contents (not times)."""
    found: dict[str, tuple] = {}
    for directory_path, directories, files in os.walk(root):
        for name in directories + files:
            path = Path(directory_path, name)
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                extra: object = (hashlib.sha256(path.read_bytes()).hexdigest(), info.st_nlink)
            elif stat.S_ISLNK(info.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                extra = info.st_rdev
            else:
                extra = None
            found[str(path.relative_to(root))] = (
                stat.S_IFMT(info.st_mode),
                stat.S_IMODE(info.st_mode),
                info.st_uid,
                info.st_gid,
                extra,
            )
    return found


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, str, ContentStore]:
    """Our saved image, extracted: an OCI image layout directory; and its manifest digest."""
    base, upper = tmp_path / "base", tmp_path / "upper"
    build_base(base)
    build_upper(upper)
    content = ContentStore(tmp_path / "content")
    manifest_digest = store_image(content, [base, upper], tmp_path)
    archive = io.BytesIO()
    save(content, [StoredImage(manifest_digest, (f"slipway/umoci-test:{TAG}",))], archive)
    directory_path = tmp_path / "layout"
    archive.seek(0)
    with tarfile.open(fileobj=archive) as tar:
        tar.extractall(directory_path, filter="data")
    return directory_path, manifest_digest, content


def test_umoci_unpacks_our_saved_image_file_for_file_as_we_do(
    tmp_path: Path, layout: tuple[Path, str, ContentStore]
) -> None:
    layout_dir, manifest_digest, content = layout
    bundle = tmp_path / "bundle"

    unpacked = subprocess.run(
        ["umoci", "unpack", "--image", f"{layout_dir}:{TAG}", str(bundle)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unpacked.returncode == 0, unpacked.stderr

    ours = tmp_path / "ours"
    ours.mkdir()
    manifest = json.loads(content.read(manifest_digest))
    for layer in manifest["layers"]:
        with content.open(layer["digest"]) as blob:
            apply_layer(blob, ours, whiteouts="delete")

    theirs = tree(bundle / "rootfs")
    assert theirs == tree(ours)
    # The layers really did delete, hide and replace what the test says they do.
    assert "gone.txt" not in theirs and "usr/lib/libfoo.so" not in theirs
    assert sorted(name for name in theirs if name.startswith("cache/")) == ["cache/fresh"]
    assert (bundle / "rootfs/etc/hostname").read_bytes() == b"app\n"
    assert theirs["data/a.txt"][2:4] == (1000, 1000)
    assert theirs["bin/tool"][4][1] == 2  # still one file with two names
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["/bin/tool"]


@pytest.mark.requires_tool("skopeo")
def test_skopeo_reads_our_manifest_digest(layout: tuple[Path, str, ContentStore]) -> None:
    layout_dir, manifest_digest, _ = layout

    inspected = subprocess.run(
        ["skopeo", "inspect", f"oci:{layout_dir}:{TAG}"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert inspected.returncode == 0, inspected.stderr
    report = json.loads(inspected.stdout)
    assert report["Digest"] == manifest_digest
    assert len(report["Layers"]) == 2


@pytest.mark.requires_tool("skopeo")
@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_we_load_what_skopeo_writes_from_our_layout(
    tmp_path: Path, layout: tuple[Path, str, ContentStore], transport: str
) -> None:
    layout_dir, manifest_digest, content = layout
    archive = tmp_path / f"{transport}.tar"
    name = f"slipway/umoci-test:{TAG}" if transport == "docker-archive" else TAG
    copied = subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            f"oci:{layout_dir}:{TAG}",
            f"{transport}:{archive}:{name}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert copied.returncode == 0, copied.stderr
    fresh = ContentStore(tmp_path / "fresh")

    with archive.open("rb") as stream:
        [image] = load(stream, fresh)

    config_digest = json.loads(content.read(manifest_digest))["config"]["digest"]
    assert image.config_digest == config_digest  # the same image ID
    diff_ids = json.loads(image.config_bytes)["rootfs"]["diff_ids"]
    if transport == "docker-archive":  # layers uncompressed, the old format: kept as they are
        assert [(layer.media_type, layer.digest) for layer in image.layers] == [
            (OCI_LAYER, diff_id) for diff_id in diff_ids
        ]
        assert image.repo_tags == (f"slipway/umoci-test:{TAG}",)
    else:  # an OCI layout: the same manifest, which names no repository
        assert image.manifest_digest == manifest_digest
        assert image.repo_tags == ()
