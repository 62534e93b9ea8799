"""docker save, load and import against a real content store: save writes Docker 25's layout
and load reads it back with the same digests; load also reads the older docker-archive; bad
archives are refused with nothing left behind; import makes a one-layer image with --change."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.content.store import ContentStore, digest_bytes
from simulator.images.importer import InvalidChange, apply_changes, import_tarball
from simulator.images.load import load
from simulator.images.oci import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    RunConfig,
    canonical_json,
    parse_image_config,
)
from simulator.images.save import save
from simulator.images.transfer import LoadedImage, StoredImage, TransferError

CREATED = "2024-05-01T12:00:00Z"
CREATED_UNIX = 1714564800


# Building images and archives -----------------------------------------------------------------


def tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            entry = tarfile.TarInfo(name)
            entry.size, entry.mtime = len(data), 1_600_000_000
            tar.addfile(entry, io.BytesIO(data))
    return out.getvalue()


def archive_of(*entries: tuple[str, bytes] | tarfile.TarInfo) -> bytes:
    """A tar of (name, bytes) files and ready-made entries (links), in this order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type, entry.linkname = kind, target
    return entry


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_image(content: ContentStore, layers: list[dict[str, bytes]]) -> str:
    """An image of gzip layers built from ``layers``, stored; returns its manifest digest."""
    config = ImageConfig(created=CREATED)
    descriptors = []
    for files in layers:
        layer_tar = tar_of(files)
        blob = gzip.compress(layer_tar, mtime=0)
        content.put(blob)
        config.add_layer(sha256(layer_tar), f"COPY {' '.join(files)} /", created=CREATED)
        descriptors.append(Descriptor.for_bytes(OCI_LAYER_GZIP, blob))
    config.config = RunConfig(cmd=["sh"], env=["PATH=/bin"])
    config_bytes = config.to_bytes()
    content.put(config_bytes)
    manifest = Manifest(Descriptor.for_bytes(OCI_CONFIG, config_bytes), tuple(descriptors))
    return content.put(manifest.to_bytes()).digest


def saved(content: ContentStore, *images: StoredImage) -> bytes:
    out = io.BytesIO()
    save(content, list(images), out)
    return out.getvalue()


def members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {
            entry.name: (tar.extractfile(entry).read() if entry.isreg() else b"")
            for entry in tar.getmembers()
        }


def rebuilt(archive: bytes, replace: dict[str, bytes | None]) -> bytes:
    """The archive with some entries replaced (or, for None, left out), links kept."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(archive)) as source,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for entry in source.getmembers():
            if entry.name in replace and replace[entry.name] is None:
                continue
            data = replace.get(entry.name)
            if data is None and entry.isreg():
                data = source.extractfile(entry).read()
            if data is not None:
                entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def assert_nothing_stored(content: ContentStore) -> None:
    assert os.listdir(content.root / "blobs" / "sha256") == []
    assert os.listdir(content.root / "ingest") == []


@pytest.fixture
def content(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


@pytest.fixture
def fresh(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "fresh")


@pytest.fixture
def redis(content: ContentStore) -> str:
    return make_image(
        content,
        [{"etc/os-release": b"ID=debian\n", "bin/sh": b"#!sh"}, {"usr/bin/redis": b"r" * 5000}],
    )


# save -----------------------------------------------------------------------------------------


def test_save_then_load_into_a_fresh_store_gives_identical_digests(
    content: ContentStore, fresh: ContentStore, redis: str
) -> None:
    archive = saved(content, StoredImage(redis, ("redis", "redis:7.0")))

    [image] = load(io.BytesIO(archive), fresh)

    assert image.manifest_digest == redis
    assert image.repo_tags == ("redis:latest", "redis:7.0")
    assert image.config_bytes == content.read(image.config_digest)
    assert [blob.digest for blob in fresh.walk()] == [blob.digest for blob in content.walk()]
    for blob in fresh.walk():
        assert fresh.read(blob.digest) == content.read(blob.digest)
    assert os.listdir(fresh.root / "ingest") == []


def test_save_writes_the_layout_docker_25_writes(content: ContentStore, redis: str) -> None:
    archive = saved(content, StoredImage(redis, ("redis:7.0",)))
    manifest = json.loads(content.read(redis))
    config_digest, layers = manifest["config"]["digest"], manifest["layers"]
    diff_ids = json.loads(content.read(config_digest))["rootfs"]["diff_ids"]
    blob_names = sorted(
        f"blobs/sha256/{digest.split(':')[1]}"
        for digest in [redis, config_digest, *(layer["digest"] for layer in layers)]
    )

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        entries = tar.getmembers()
        files = {entry.name: tar.extractfile(entry).read() for entry in entries if entry.isreg()}

    assert [entry.name for entry in entries] == [
        "blobs",
        "blobs/sha256",
        *blob_names,
        "index.json",
        "manifest.json",
        "oci-layout",
        "repositories",
    ]
    assert files["oci-layout"] == b'{"imageLayoutVersion": "1.0.0"}'
    assert json.loads(files["index.json"]) == {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": redis,
                "size": len(content.read(redis)),
                "annotations": {
                    "io.containerd.image.name": "docker.io/library/redis:7.0",
                    "org.opencontainers.image.ref.name": "7.0",
                },
            }
        ],
    }
    assert json.loads(files["manifest.json"]) == [
        {
            "Config": f"blobs/sha256/{config_digest.split(':')[1]}",
            "RepoTags": ["redis:7.0"],
            "Layers": [f"blobs/sha256/{layer['digest'].split(':')[1]}" for layer in layers],
            "LayerSources": {
                diff_id: {
                    "mediaType": OCI_LAYER_GZIP,
                    "size": layer["size"],
                    "digest": layer["digest"],
                }
                for diff_id, layer in zip(diff_ids, layers, strict=True)
            },
        }
    ]
    assert files["manifest.json"].endswith(b"\n")
    assert json.loads(files["repositories"]) == {"redis": {"7.0": diff_ids[-1].split(":")[1]}}
    for name, data in files.items():
        if name.startswith("blobs/"):
            assert sha256(data) == "sha256:" + name.rsplit("/", 1)[1]
    by_name = {entry.name: entry for entry in entries}
    assert by_name[f"blobs/sha256/{redis.split(':')[1]}"].mtime == 0
    assert by_name[f"blobs/sha256/{config_digest.split(':')[1]}"].mtime == CREATED_UNIX
    assert by_name[f"blobs/sha256/{layers[0]['digest'].split(':')[1]}"].mtime == CREATED_UNIX
    assert by_name["manifest.json"].mtime == by_name["index.json"].mtime == 0
    assert {(entry.uid, entry.gid) for entry in entries} == {(0, 0)}
    assert by_name["blobs"].mode == 0o755 and by_name["index.json"].mode == 0o644


def test_save_writes_the_same_bytes_every_time(content: ContentStore, redis: str) -> None:
    image = StoredImage(redis, ("redis:7.0", "redis"))
    assert saved(content, image) == saved(content, image)


def test_save_streams_into_a_pipe_that_cannot_seek(content: ContentStore) -> None:
    big = make_image(content, [{"big": os.urandom(3 << 20)}])

    class WriteOnly:
        def __init__(self) -> None:
            self.chunks: list[bytes] = []

        def write(self, data: bytes) -> int:
            self.chunks.append(bytes(data))
            return len(data)

    out = WriteOnly()
    save(content, [StoredImage(big, ("big:1",))], out)

    assert max(len(chunk) for chunk in out.chunks) <= 1 << 20
    assert members(b"".join(out.chunks))["manifest.json"]


def test_an_untagged_image_is_saved_without_tags(content: ContentStore, redis: str) -> None:
    files = members(saved(content, StoredImage(redis)))

    assert "repositories" not in files
    assert json.loads(files["manifest.json"])[0]["RepoTags"] is None
    assert "annotations" not in json.loads(files["index.json"])["manifests"][0]


def test_save_of_an_image_with_a_missing_blob_writes_nothing(
    content: ContentStore, redis: str
) -> None:
    layer = json.loads(content.read(redis))["layers"][1]["digest"]
    content.delete(layer)
    out = io.BytesIO()

    with pytest.raises(TransferError, match=f"content digest {layer}: not found"):
        save(content, [StoredImage(redis, ("redis",))], out)
    assert out.getvalue() == b""


# load: the OCI layout -------------------------------------------------------------------------


def test_load_prefers_index_json_to_manifest_json(
    content: ContentStore, fresh: ContentStore, redis: str
) -> None:
    archive = rebuilt(saved(content, StoredImage(redis, ("redis",))), {"manifest.json": b"{"})

    [image] = load(io.BytesIO(archive), fresh)

    assert image.manifest_digest == redis
    assert image.repo_tags == ("redis:latest",)


def test_load_falls_back_to_manifest_json_without_index_json(
    content: ContentStore, fresh: ContentStore, redis: str
) -> None:
    archive = rebuilt(saved(content, StoredImage(redis, ("redis",))), {"index.json": None})

    [image] = load(io.BytesIO(archive), fresh)

    # The manifest built for manifest.json is byte for byte the one we stored.
    assert image.manifest_digest == redis
    assert fresh.read(redis) == content.read(redis)
    assert image.repo_tags == ("redis:latest",)


def test_load_reads_a_compressed_archive(
    content: ContentStore, fresh: ContentStore, redis: str
) -> None:
    archive = gzip.compress(saved(content, StoredImage(redis, ("redis",))))

    [image] = load(io.BytesIO(archive), fresh)

    assert image.manifest_digest == redis


def test_load_takes_blobs_the_archive_leaves_out_from_the_store(
    content: ContentStore, fresh: ContentStore, redis: str
) -> None:
    base_layer = json.loads(content.read(redis))["layers"][0]["digest"]
    path = f"blobs/sha256/{base_layer.split(':')[1]}"
    archive = rebuilt(saved(content, StoredImage(redis, ("redis",))), {path: None})

    with pytest.raises(TransferError, match=f"content digest {base_layer}: not found"):
        load(io.BytesIO(archive), fresh)
    assert_nothing_stored(fresh)

    fresh.put(content.read(base_layer))
    [image] = load(io.BytesIO(archive), fresh)
    assert image.manifest_digest == redis


def test_load_picks_the_platform_from_a_multi_platform_index(
    content: ContentStore, fresh: ContentStore, redis: str
) -> None:
    manifest_bytes = content.read(redis)
    arm64 = Descriptor(
        OCI_MANIFEST, "sha256:" + "a" * 64, 100, platform=Platform("linux", "arm64", "v8")
    )
    amd64 = Descriptor.for_bytes(OCI_MANIFEST, manifest_bytes, platform=Platform("linux", "amd64"))
    index_bytes = canonical_json(Index((arm64, amd64)).to_dict())
    files = members(saved(content, StoredImage(redis)))
    files[f"blobs/sha256/{digest_bytes(index_bytes).split(':')[1]}"] = index_bytes
    files["index.json"] = canonical_json(
        {
            "schemaVersion": 2,
            "manifests": [
                Descriptor.for_bytes(
                    OCI_INDEX,
                    index_bytes,
                    annotations={"io.containerd.image.name": "docker.io/library/redis:7.0"},
                ).to_dict()
            ],
        }
    )
    del files["manifest.json"]
    archive = archive_of(*[(name, data) for name, data in files.items() if data])

    [image] = load(io.BytesIO(archive), fresh)

    assert image.manifest_digest == redis
    assert image.manifest_descriptor.platform == Platform("linux", "amd64")
    assert image.repo_tags == ("redis:7.0",)
    assert not fresh.exists(digest_bytes(index_bytes))
    with pytest.raises(TransferError, match="no matching manifest for linux/s390x"):
        load(io.BytesIO(archive), ContentStore(fresh.root.parent / "other"), platform="linux/s390x")


def test_load_of_a_corrupted_blob_is_refused_and_stores_nothing(
    content: ContentStore, fresh: ContentStore, redis: str
) -> None:
    layer = json.loads(content.read(redis))["layers"][1]["digest"]
    path = f"blobs/sha256/{layer.split(':')[1]}"
    archive = saved(content, StoredImage(redis, ("redis",)))
    corrupted = bytearray(members(archive)[path])
    corrupted[20] ^= 0xFF

    with pytest.raises(TransferError, match=f"unexpected commit digest .*, expected {layer}"):
        load(io.BytesIO(rebuilt(archive, {path: bytes(corrupted)})), fresh)
    assert_nothing_stored(fresh)


def test_load_checks_each_diff_id_against_the_layer(
    content: ContentStore, fresh: ContentStore
) -> None:
    # A gzip blob that is what its manifest says, but not the tar its config's diffID names.
    lying = make_image(content, [{"a": b"a"}])
    manifest = json.loads(content.read(lying))
    config = json.loads(content.read(manifest["config"]["digest"]))
    config["rootfs"]["diff_ids"] = [sha256(b"something else")]
    config_bytes = canonical_json(config)
    content.put(config_bytes)
    manifest["config"] = Descriptor.for_bytes(OCI_CONFIG, config_bytes).to_dict()
    lying = content.put(canonical_json(manifest)).digest

    with pytest.raises(TransferError, match='invalid diffID for layer 0: expected "sha256:'):
        load(io.BytesIO(saved(content, StoredImage(lying))), fresh)
    assert_nothing_stored(fresh)


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda size: 700, id="in-a-header"),
        pytest.param(lambda size: size // 2, id="in-a-blob"),
        pytest.param(lambda size: size - 2048 - 100, id="in-the-last-file"),
    ],
)
def test_load_of_a_truncated_archive_is_refused_and_stores_nothing(
    content: ContentStore, fresh: ContentStore, cut: Callable[[int], int]
) -> None:
    image = make_image(content, [{"big": os.urandom(200_000)}])
    archive = saved(content, StoredImage(image, ("big",)))

    with pytest.raises(TransferError, match="unexpected EOF"):
        load(io.BytesIO(archive[: cut(len(archive))]), fresh)
    assert_nothing_stored(fresh)


def test_load_of_a_truncated_compressed_archive_is_refused(
    content: ContentStore, fresh: ContentStore, redis: str
) -> None:
    archive = gzip.compress(saved(content, StoredImage(redis, ("redis",))))

    with pytest.raises(TransferError, match="unexpected EOF"):
        load(io.BytesIO(archive[: len(archive) // 2]), fresh)
    assert_nothing_stored(fresh)


def test_load_of_a_tar_with_a_bad_header_is_refused(
    content: ContentStore, fresh: ContentStore, redis: str
) -> None:
    archive = bytearray(saved(content, StoredImage(redis, ("redis",))))
    archive[512 + 148] ^= 0x01  # the second header's checksum

    with pytest.raises(TransferError, match="archive/tar: invalid tar header"):
        load(io.BytesIO(bytes(archive)), fresh)
    assert_nothing_stored(fresh)


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(("../evil", b"x" * 100_000), id="dot-dot"),
        pytest.param(("blobs/../../evil", b"x"), id="dot-dot-inside"),
        pytest.param(("/etc/evil", b"x"), id="absolute"),
        pytest.param(link("blobs/sha256/evil", "../../../etc/passwd"), id="symlink-out"),
        pytest.param(link("blobs/sha256/evil", "/etc/passwd"), id="absolute-symlink"),
        pytest.param(link("evil", "../etc/passwd", tarfile.LNKTYPE), id="hardlink-out"),
    ],
)
def test_load_refuses_paths_outside_the_archive(
    content: ContentStore,
    fresh: ContentStore,
    redis: str,
    entry: tuple[str, bytes] | tarfile.TarInfo,
) -> None:
    files = members(saved(content, StoredImage(redis, ("redis",))))
    archive = archive_of(*[(name, data) for name, data in files.items() if data], entry)

    with pytest.raises(TransferError, match="is outside of the archive"):
        load(io.BytesIO(archive), fresh)
    assert_nothing_stored(fresh)


def test_load_of_a_tar_that_is_no_image_is_refused(fresh: ContentStore) -> None:
    with pytest.raises(TransferError, match="unrecognized image format"):
        load(io.BytesIO(archive_of(("hello.txt", b"hello"))), fresh)
    with pytest.raises(TransferError, match="archive/tar: invalid tar header"):
        load(io.BytesIO(b"this is not a tar" * 100), fresh)
    assert_nothing_stored(fresh)


def lease(store: ContentStore) -> Callable[[str], bool]:
    """A hold as an image store's lease gives one: a reference on each blob."""

    def hold(digest: str) -> bool:
        store.add_ref(digest, "lease")
        return True

    return hold


def test_load_holds_every_blob_it_stores_so_collect_keeps_them(
    content: ContentStore, fresh: ContentStore, redis: str
) -> None:
    archive = saved(content, StoredImage(redis, ("redis",)))

    load(io.BytesIO(archive), fresh, hold=lease(fresh))

    assert fresh.collect() == []
    assert {blob.digest for blob in fresh.walk()} == {blob.digest for blob in content.walk()}
    assert all(fresh.refs(blob.digest) == {"lease"} for blob in fresh.walk())


# load: the older docker-archive ---------------------------------------------------------------


def docker_archive(*, wrong_diff_id: bool = False) -> tuple[bytes, list[bytes], list[bytes]]:
    """What docker save wrote before Docker 25 for two images sharing a base layer (the second
    image's copy of it a symlink, as docker wrote it): configs and layer tars."""
    base = tar_of({"etc/os-release": b"ID=debian\n"})
    app = tar_of({"app/main.py": b"print('hi')\n"})
    configs = []
    for layers in ([base], [base, app]):
        config = ImageConfig(created=CREATED)
        for layer in layers:
            config.add_layer(sha256(layer), "ADD rootfs /", created=CREATED)
        if wrong_diff_id:
            config.diff_ids[-1] = sha256(b"not this layer")
        configs.append(config.to_bytes())
    base_dir, app_base_dir, app_dir = "1" * 64, "2" * 64, "3" * 64
    manifest = [
        {
            "Config": f"{sha256(configs[0]).split(':')[1]}.json",
            "RepoTags": ["debian:12"],
            "Layers": [f"{base_dir}/layer.tar"],
        },
        {
            "Config": f"{sha256(configs[1]).split(':')[1]}.json",
            "RepoTags": ["myapp:latest", "registry.local:5000/team/myapp:1.0"],
            "Layers": [f"{app_base_dir}/layer.tar", f"{app_dir}/layer.tar"],
        },
    ]
    archive = archive_of(
        (f"{base_dir}/VERSION", b"1.0"),
        (f"{base_dir}/json", b'{"id":"' + base_dir.encode() + b'"}'),
        (f"{base_dir}/layer.tar", base),
        (f"{app_base_dir}/VERSION", b"1.0"),
        link(f"{app_base_dir}/layer.tar", f"../{base_dir}/layer.tar"),
        (f"{app_dir}/VERSION", b"1.0"),
        (f"{app_dir}/layer.tar", app),
        (f"{sha256(configs[0]).split(':')[1]}.json", configs[0]),
        (f"{sha256(configs[1]).split(':')[1]}.json", configs[1]),
        ("manifest.json", json.dumps(manifest).encode()),
        ("repositories", json.dumps({"debian": {"12": base_dir}}).encode()),
    )
    return archive, configs, [base, app]


def test_load_of_a_docker_archive_stores_its_layers_as_they_are(fresh: ContentStore) -> None:
    archive, configs, (base, app) = docker_archive()

    debian, myapp = load(io.BytesIO(archive), fresh)

    assert debian.repo_tags == ("debian:12",)
    assert myapp.repo_tags == ("myapp:latest", "registry.local:5000/team/myapp:1.0")
    assert (debian.config_bytes, myapp.config_bytes) == (configs[0], configs[1])
    assert debian.config_digest == sha256(configs[0])
    assert myapp.layers == (
        Descriptor(OCI_LAYER, sha256(base), len(base)),
        Descriptor(OCI_LAYER, sha256(app), len(app)),
    )
    for image in (debian, myapp):
        assert image.manifest.media_type == OCI_MANIFEST
        assert image.manifest.config == Descriptor(
            OCI_CONFIG, image.config_digest, len(image.config_bytes)
        )
        assert fresh.read(image.manifest_digest) == image.manifest.to_bytes()
        assert image.manifest_descriptor.platform == Platform("linux", "amd64")
    stored = {blob.digest for blob in fresh.walk()}
    assert stored == {
        sha256(base),
        sha256(app),
        sha256(configs[0]),
        sha256(configs[1]),
        debian.manifest_digest,
        myapp.manifest_digest,
    }
    assert fresh.read(sha256(app)) == app
    assert os.listdir(fresh.root / "ingest") == []


def test_load_of_a_docker_archive_checks_each_diff_id(fresh: ContentStore) -> None:
    archive, _, (base, _) = docker_archive(wrong_diff_id=True)

    with pytest.raises(TransferError, match=r'invalid diffID for layer 0: expected "sha256:'):
        load(io.BytesIO(archive), fresh)
    assert_nothing_stored(fresh)


def test_load_of_a_docker_archive_with_a_missing_layer_is_refused(fresh: ContentStore) -> None:
    archive, _, _ = docker_archive()
    without = rebuilt(archive, {f"{'3' * 64}/layer.tar": None})

    with pytest.raises(TransferError, match=f'layer "{"3" * 64}/layer.tar" not found'):
        load(io.BytesIO(without), fresh)
    assert_nothing_stored(fresh)


def test_load_of_a_docker_archive_with_gzip_layers_checks_the_tar_inside(
    fresh: ContentStore,
) -> None:
    # go-containerregistry writes "<hex>.tar.gz" layers; this one is two gzip members, which
    # Go reads as one stream.
    layer = tar_of({"etc/motd": b"hello\n" * 1000})
    blob = gzip.compress(layer[:1024], mtime=0) + gzip.compress(layer[1024:], mtime=0)
    config = ImageConfig(created=CREATED)
    config.add_layer(sha256(layer), "ADD motd /etc/", created=CREATED)
    config_bytes = config.to_bytes()
    manifest = [{"Config": "sha256:cfg", "RepoTags": ["motd:1"], "Layers": ["abc.tar.gz"]}]
    archive = archive_of(
        ("sha256:cfg", config_bytes),
        ("abc.tar.gz", blob),
        ("manifest.json", json.dumps(manifest).encode()),
    )

    [image] = load(io.BytesIO(archive), fresh)

    assert image.layers == (Descriptor(OCI_LAYER_GZIP, sha256(blob), len(blob)),)
    assert fresh.read(sha256(blob)) == blob

    truncated = archive_of(
        ("sha256:cfg", config_bytes),
        ("abc.tar.gz", blob[:-30]),
        ("manifest.json", json.dumps(manifest).encode()),
    )
    with pytest.raises(TransferError, match="layer 0: gzip: unexpected EOF"):
        load(io.BytesIO(truncated), ContentStore(fresh.root.parent / "other"))


# import ---------------------------------------------------------------------------------------


ROOTFS = tar_of({"bin/sh": b"#!/bin/true\n", "etc/hostname": b"imported\n"})


def test_import_makes_a_one_layer_image_from_a_rootfs_tarball(content: ContentStore) -> None:
    image = import_tarball(io.BytesIO(gzip.compress(ROOTFS)), content)

    [layer] = image.layers
    assert layer.media_type == OCI_LAYER_GZIP
    assert gzip.decompress(content.read(layer.digest)) == ROOTFS
    config = parse_image_config(image.config_bytes)
    assert config.diff_ids == [sha256(ROOTFS)]  # the uncompressed tar's, not the blob's
    assert layer.digest != sha256(ROOTFS)
    assert (config.os, config.architecture) == ("linux", "amd64")
    raw = json.loads(image.config_bytes)
    assert raw["comment"] == "Imported from -"
    assert raw["history"] == [{"created": raw["created"], "comment": "Imported from -"}]
    assert image.manifest.config == Descriptor.for_bytes(OCI_CONFIG, image.config_bytes)
    assert content.read(image.manifest_digest) == image.manifest.to_bytes()
    assert image.repo_tags == ()


def test_import_holds_every_blob_it_stores(content: ContentStore) -> None:
    image = import_tarball(io.BytesIO(ROOTFS), content, hold=lease(content))

    assert content.collect() == []
    assert {blob.digest for blob in content.walk()} == {
        image.manifest_digest,
        image.config_digest,
        image.layers[0].digest,
    }


def test_import_writes_the_same_layer_for_the_same_tarball(content: ContentStore) -> None:
    first = import_tarball(io.BytesIO(ROOTFS), content)
    second = import_tarball(io.BytesIO(gzip.compress(ROOTFS)), content, message="again")

    assert first.layers == second.layers
    assert json.loads(second.config_bytes)["history"][0]["comment"] == "again"


def test_import_applies_changes_and_platform(content: ContentStore) -> None:
    image = import_tarball(
        io.BytesIO(ROOTFS),
        content,
        changes=['CMD ["redis-server", "--port", "6379"]', "ENV GREETING=hello PORT=6379"],
        platform="linux/arm64",
    )

    config = parse_image_config(image.config_bytes)
    assert config.config.cmd == ["redis-server", "--port", "6379"]
    assert config.config.env == ["GREETING=hello", "PORT=6379"]
    assert (config.architecture, config.variant) == ("arm64", "v8")
    assert image.manifest_descriptor.platform == Platform("linux", "arm64", "v8")
    assert all(entry.created for entry in config.history)


def test_import_refuses_an_invalid_change_before_reading_anything(
    content: ContentStore,
) -> None:
    stream = io.BytesIO(ROOTFS)

    with pytest.raises(InvalidChange, match="^run is not a valid change command$"):
        import_tarball(stream, content, changes=["ENV A=1", "RUN make"])
    assert stream.tell() == 0
    assert_nothing_stored(content)


@pytest.mark.parametrize(
    "tarball",
    [
        pytest.param(ROOTFS[:700], id="truncated"),
        pytest.param(gzip.compress(ROOTFS)[:60], id="truncated-gzip"),
        pytest.param(b"", id="empty"),
    ],
)
def test_import_of_a_truncated_tarball_stores_nothing(
    content: ContentStore, tarball: bytes
) -> None:
    with pytest.raises(TransferError, match="unexpected EOF"):
        import_tarball(io.BytesIO(tarball), content)
    assert_nothing_stored(content)


def test_import_refuses_entries_that_climb_out_of_the_root(content: ContentStore) -> None:
    with pytest.raises(TransferError, match='"../../etc/cron.d/x" is outside of the archive'):
        import_tarball(io.BytesIO(tar_of({"ok": b"", "../../etc/cron.d/x": b"evil"})), content)
    assert_nothing_stored(content)


# --change -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (["CMD echo $HOME"], {"Cmd": ["/bin/sh", "-c", "echo $HOME"]}),
        (['CMD ["echo", "hi"]'], {"Cmd": ["echo", "hi"]}),
        (["cmd [not json"], {"Cmd": ["/bin/sh", "-c", "[not json"]}),
        (
            ['ENTRYPOINT ["nginx"]', "CMD -g daemon"],
            {"Entrypoint": ["nginx"], "Cmd": ["/bin/sh", "-c", "-g daemon"]},
        ),
        (['CMD ["x"]', "ENTRYPOINT top"], {"Entrypoint": ["/bin/sh", "-c", "top"], "Cmd": ["x"]}),
        (["ENV PATH /usr/bin:/bin"], {"Env": ["PATH=/usr/bin:/bin"]}),
        (
            ['ENV A=1 B="two words"', "ENV C=$A-${B} D=${MISSING:-dflt} A=3"],
            {"Env": ["A=3", "B=two words", "C=1-two words", "D=dflt"]},
        ),
        (["ENV A='$NOT' B=\\$lit"], {"Env": ["A=$NOT", "B=$lit"]}),
        (
            ['LABEL maintainer=me "com.example.v"="1 0"'],
            {"Labels": {"maintainer": "me", "com.example.v": "1 0"}},
        ),
        (
            ["EXPOSE 80 53/udp 8000-8002"],
            {
                "ExposedPorts": {
                    "80/tcp": {},
                    "53/udp": {},
                    "8000/tcp": {},
                    "8001/tcp": {},
                    "8002/tcp": {},
                }
            },
        ),
        (["WORKDIR /srv", "WORKDIR app/../www"], {"WorkingDir": "/srv/www"}),
        (
            ["ENV BASE=/opt", "WORKDIR $BASE/x", "USER ${USERNAME:-nobody}"],
            {"Env": ["BASE=/opt"], "WorkingDir": "/opt/x", "User": "nobody"},
        ),
        (
            ['VOLUME ["/data", "/logs"]', "VOLUME /cache"],
            {"Volumes": {"/data": {}, "/logs": {}, "/cache": {}}},
        ),
        (["STOPSIGNAL SIGQUIT"], {"StopSignal": "SIGQUIT"}),
        (["STOPSIGNAL 9"], {"StopSignal": "9"}),
        (["ONBUILD RUN make"], {"OnBuild": ["RUN make"]}),
        (
            ["HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/"],
            {
                "Healthcheck": {
                    "Test": ["CMD-SHELL", "curl -f http://localhost/"],
                    "Interval": 30_000_000_000,
                    "Retries": 3,
                }
            },
        ),
        (
            ['HEALTHCHECK --timeout=1m30s CMD ["true"]'],
            {"Healthcheck": {"Test": ["CMD", "true"], "Timeout": 90_000_000_000}},
        ),
        (["HEALTHCHECK NONE"], {"Healthcheck": {"Test": ["NONE"]}}),
        (["# a comment", "", "  user   app  "], {"User": "app"}),
        (["LABEL a=1 \\\n b=2"], {"Labels": {"a": "1", "b": "2"}}),
    ],
)
def test_changes_are_applied_in_dockerfile_syntax(changes: list[str], expected: dict) -> None:
    assert apply_changes(RunConfig(), changes).to_dict() == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("RUN make", "run is not a valid change command"),
        ("FROM debian", "from is not a valid change command"),
        ("COPY . /", "copy is not a valid change command"),
        ("ENV", "ENV requires at least one argument"),
        ("ENV ONLYNAME", "ENV must have two arguments"),
        ("ENV A=1 B", 'Syntax error - can\'t find = in "B". Must be of the form: name=value'),
        ("LABEL =x", "LABEL names can not be blank"),
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("EXPOSE http", "invalid containerPort: http"),
        ("EXPOSE 80/icmp", "invalid proto: icmp"),
        ("EXPOSE 90-80", "invalid range specified for container port: 90-80"),
        ("WORKDIR", "WORKDIR requires exactly one argument"),
        ("USER", "USER requires exactly one argument"),
        ("STOPSIGNAL SIGNOPE", "Invalid signal: SIGNOPE"),
        ("VOLUME", "VOLUME requires at least one argument"),
        ('VOLUME [""]', "VOLUME specified can not be an empty string"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ("HEALTHCHECK --interval=soon CMD true", 'time: invalid duration "soon"'),
        ("HEALTHCHECK --every=1s CMD true", "Unknown flag: every"),
        ("HEALTHCHECK NONE true", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK RUN true", 'Unknown type "RUN" in HEALTHCHECK (try CMD)'),
        ("HEALTHCHECK --retries=-1 CMD true", "--retries cannot be negative (-1)"),
        ('ENV A="open', "unexpected end of statement while looking for matching double-quote"),
    ],
)
def test_invalid_changes_are_refused_in_dockers_words(change: str, message: str) -> None:
    with pytest.raises(InvalidChange) as raised:
        apply_changes(RunConfig(), [change])
    assert str(raised.value) == message


def test_changes_leave_the_config_they_were_given_alone() -> None:
    original = RunConfig(env=["A=1"], cmd=["sh"])

    changed = apply_changes(original, ["ENV A=2", "ENTRYPOINT top"])

    assert (original.env, original.cmd) == (["A=1"], ["sh"])
    assert (changed.env, changed.cmd, changed.entrypoint) == (
        ["A=2"],
        None,
        ["/bin/sh", "-c", "top"],
    )


def test_loaded_images_say_what_they_are(
    content: ContentStore, fresh: ContentStore, redis: str
) -> None:
    [image] = load(io.BytesIO(saved(content, StoredImage(redis, ("redis",)))), fresh)

    assert isinstance(image, LoadedImage)
    assert image.config_digest == sha256(image.config_bytes)
    assert image.layers == image.manifest.layers
    assert all(entry.created for entry in parse_image_config(image.config_bytes).history)
