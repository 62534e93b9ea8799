"""ImageStore on its own: images made from layers built here, looked up by tag, digest and ID
prefix, tagged, removed with Docker's rmi semantics, unpacked into shared layers, mounted."""

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

from simulator.images import oci
from simulator.images.reference import InvalidReference
from simulator.images.store import (
    ImageConflict,
    ImageNotFound,
    ImageStore,
    InvalidImage,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlay layers need root")

CREATED = "2024-05-01T12:00:00Z"


def layer_tar(files: dict[str, bytes | None]) -> bytes:
    """A gzipped layer: each path with its content; None makes a whiteout for it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = sorted({str(Path(p).parent) for p in files} - {"."})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, content in files.items():
            if content is None:
                parent, name = os.path.split(path)
                info = tarfile.TarInfo(os.path.join(parent, ".wh." + name))
                tar.addfile(info, io.BytesIO(b""))
            else:
                info = tarfile.TarInfo(path)
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def diff_id(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()


def image_config(layers: list[bytes], label: str = "") -> bytes:
    config = oci.ImageConfig(created=CREATED)
    config.config.cmd = ["sh"]
    if label:
        config.config.labels = {"test": label}
    for number, layer in enumerate(layers):
        config.add_layer(diff_id(layer), f"COPY layer {number} /", created=CREATED)
    config.add_empty_layer('CMD ["sh"]', created=CREATED)
    return config.to_bytes()


def put(store: ImageStore, tags: list[str], layers: list[bytes], label: str = "") -> str:
    return store.put_image(image_config(layers, label), layers=layers, tags=tags).id


BASE = layer_tar({"etc/os-release": b"NAME=test\n", "bin/tool": b"#!/bin/sh\necho tool\n"})
TOP = layer_tar({"app/main.txt": b"hello\n", "bin/tool": None})


@pytest.fixture
def store(new_store: Callable[[str], ImageStore]) -> ImageStore:
    return new_store("engine")


def layer_dirs(layer_root: Path) -> set[str]:
    return {entry.name for entry in layer_root.iterdir() if entry.name.startswith("sha256:")}


def test_an_image_is_found_by_tag_digest_id_and_any_unique_id_prefix(store: ImageStore) -> None:
    image_id = put(store, ["app:1", "registry.test:5000/team/app"], [BASE, TOP])
    image = store.get("app:1")
    assert image.id == image_id == oci.image_id(store.content.read(image_id))
    assert image.repo_tags == (
        "docker.io/library/app:1",
        "registry.test:5000/team/app:latest",
    )
    assert image.familiar_repo_tags == ["app:1", "registry.test:5000/team/app:latest"]
    assert list(image.diff_ids) == [diff_id(BASE), diff_id(TOP)]
    assert image.chain_ids == tuple(oci.chain_ids(image.diff_ids))
    assert image.created == CREATED
    for name in (image_id, image_id[7:], image_id[7:12], image_id[:12], "docker.io/library/app:1"):
        assert store.get(name).id == image_id
    assert store.get("registry.test:5000/team/app").id == image_id
    with pytest.raises(ImageNotFound, match=r"^No such image: app:latest$"):
        store.get("app")
    with pytest.raises(ImageNotFound, match=r"^No such image: nosuch:latest$"):
        store.get("nosuch")
    with pytest.raises(InvalidReference, match="invalid reference format"):
        store.get("UPPER/Case")


def test_an_ambiguous_id_prefix_names_no_image(store: ImageStore) -> None:
    ids = [put(store, [f"img:{n}"], [BASE], label=str(n)) for n in range(40)]
    shared = next(
        a[7:8] for a in ids if sum(b[7:8] == a[7:8] for b in ids) > 1
    )  # 40 IDs share some first hex digit
    with pytest.raises(ImageNotFound, match=f"^No such image: {shared}:latest$"):
        store.get(shared)


def test_size_is_the_sum_of_unpacked_layer_sizes_and_history_is_newest_first(
    store: ImageStore,
) -> None:
    put(store, ["app:1"], [BASE, TOP])
    image = store.get("app:1")
    base_size = len(b"NAME=test\n") + len(b"#!/bin/sh\necho tool\n")
    assert image.layer_sizes == (base_size, len(b"hello\n"))
    assert image.size == base_size + len(b"hello\n")
    history = store.history("app:1")
    assert [entry["CreatedBy"] for entry in history] == [
        'CMD ["sh"]',
        "COPY layer 1 /",
        "COPY layer 0 /",
    ]
    assert [entry["Id"] for entry in history] == [image.id, "<missing>", "<missing>"]
    assert [entry["Size"] for entry in history] == [0, len(b"hello\n"), base_size]
    assert history[0]["Tags"] == ["app:1"] and history[1]["Tags"] is None
    assert {entry["Created"] for entry in history} == {1714564800}


def test_tagging_moves_a_tag_and_leaves_the_old_image_dangling(store: ImageStore) -> None:
    first = put(store, ["app:latest"], [BASE], label="first")
    second = put(store, ["other:1"], [BASE], label="second")
    store.tag("other:1", "app")
    assert store.get("app").id == second
    assert store.get(first).repo_tags == ()
    assert [image.id for image in store.images()].count(first) == 1
    with pytest.raises(InvalidImage, match="refusing to create a tag with a digest reference"):
        store.tag("app", "app@sha256:" + "0" * 64)
    with pytest.raises(ImageNotFound, match="No such image: missing:latest"):
        store.tag("missing", "app:2")


def test_removing_one_of_several_tags_only_untags(store: ImageStore, layer_root: Path) -> None:
    image_id = put(store, ["app:1", "app:2"], [BASE, TOP])
    assert store.remove("app:1") == [{"Untagged": "app:1"}]
    assert store.get(image_id).repo_tags == ("docker.io/library/app:2",)
    assert len(layer_dirs(layer_root)) == 2


def test_removing_the_last_tag_deletes_the_image_and_frees_its_layers_and_blobs(
    store: ImageStore, layer_root: Path
) -> None:
    image_id = put(store, ["app:1"], [BASE, TOP])
    image = store.get(image_id)
    assert store.remove("app:1") == [
        {"Untagged": "app:1"},
        {"Deleted": image_id},
        {"Deleted": image.chain_ids[1]},
        {"Deleted": image.chain_ids[0]},
    ]
    assert store.images() == []
    assert layer_dirs(layer_root) == set()
    assert list(store.content.walk()) == []


def test_removing_by_id_needs_force_when_tags_are_in_several_repositories(
    store: ImageStore,
) -> None:
    image_id = put(store, ["app:1", "mirror.test/app:1"], [BASE])
    with pytest.raises(ImageConflict) as refused:
        store.remove(image_id[7:19])
    assert str(refused.value) == (
        f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is referenced "
        "in multiple repositories"
    )
    assert refused.value.status == 409
    removed = store.remove(image_id[7:19], force=True)
    assert removed[:2] == [{"Untagged": "app:1"}, {"Untagged": "mirror.test/app:1"}]
    assert removed[2] == {"Deleted": image_id}


def test_removing_by_id_with_one_repository_untags_and_deletes(store: ImageStore) -> None:
    image_id = put(store, ["app:1"], [BASE])
    store.add_repo_digest(image_id, "app@sha256:" + "a" * 64)
    assert store.remove(image_id) == [
        {"Untagged": "app:1"},
        {"Untagged": "app@sha256:" + "a" * 64},
        {"Deleted": image_id},
        {"Deleted": store_chain(BASE)},
    ]


def store_chain(*layers: bytes) -> str:
    return oci.chain_ids([diff_id(layer) for layer in layers])[-1]


def test_containers_of_an_image_make_rmi_refuse_as_docker_does(
    store: ImageStore, layer_root: Path
) -> None:
    image_id = put(store, ["app:1"], [BASE, TOP])
    short = image_id[7:19]
    containers: dict[str, list[tuple[str, bool]]] = {image_id: [("c0ffee" * 10 + "abcd", True)]}
    store.containers_using = lambda wanted: containers.get(wanted, [])
    assert store.in_use(image_id)
    with pytest.raises(ImageConflict, match=r'unable to remove repository reference "app:1" '):
        store.remove("app:1")
    with pytest.raises(ImageConflict) as running:
        store.remove(image_id, force=True)
    assert str(running.value) == (
        f"conflict: unable to delete {short} (cannot be forced) - image is being used by "
        "running container c0ffeec0ffee"
    )
    containers[image_id] = [("c0ffee" * 10 + "abcd", False)]
    with pytest.raises(ImageConflict, match="must be forced.*stopped container c0ffeec0ffee"):
        store.remove(image_id)
    # Forced, the image goes; its layers stay under the container's snapshot.
    mounts = store.rootfs_mounts("container-1", store.get(image_id))
    assert mounts
    assert store.remove(image_id, force=True)[:2] == [
        {"Untagged": "app:1"},
        {"Deleted": image_id},
    ]
    assert len(layer_dirs(layer_root)) == 2
    store.snapshots.remove("container-1")
    assert store.prune_layers() == [store_chain(BASE, TOP), store_chain(BASE)]
    assert layer_dirs(layer_root) == set()


def test_rootfs_mounts_show_the_layers_with_whiteouts_applied(
    store: ImageStore, mounted: Callable[[list], Path]
) -> None:
    put(store, ["app:1"], [BASE, TOP])
    rootfs = mounted(store.rootfs_mounts("container-1", store.get("app:1")))
    assert (rootfs / "etc/os-release").read_bytes() == b"NAME=test\n"
    assert (rootfs / "app/main.txt").read_bytes() == b"hello\n"
    assert not (rootfs / "bin/tool").exists()
    (rootfs / "written").write_text("by the container")
    assert not (store.layer_root / store_chain(BASE) / "diff" / "written").exists()


def test_a_config_whose_diff_ids_do_not_match_the_layers_is_refused_and_leaves_nothing(
    store: ImageStore, layer_root: Path
) -> None:
    wrong = image_config([TOP])  # claims TOP's diffID for the BASE blob
    with pytest.raises(InvalidImage, match="layers from manifest don't match image configuration"):
        store.put_image(wrong, layers=[BASE], tags=["bad:1"])
    assert store.images() == []
    assert layer_dirs(layer_root) == set()
    assert list(store.content.walk()) == []
    assert not any(store.snapshots.walk())


def test_a_corrupt_layer_is_refused_and_leaves_nothing(store: ImageStore, layer_root: Path) -> None:
    corrupt = BASE[:-40]
    config = oci.ImageConfig(created=CREATED)
    config.add_layer(diff_id(BASE), "COPY", created=CREATED)
    with pytest.raises(InvalidImage, match="failed to register layer"):
        store.put_image(config.to_bytes(), layers=[corrupt], tags=["bad:1"])
    assert store.images() == [] and layer_dirs(layer_root) == set()
    assert list(store.content.walk()) == []


def test_images_are_kept_on_disk_and_read_back_by_a_new_store(
    store: ImageStore, tmp_path: Path
) -> None:
    image_id = put(store, ["app:1"], [BASE])
    again = ImageStore(store.data_root, store.layer_root)
    assert again.get("app:1").id == image_id
    state = json.loads((store.data_root / "images.json").read_text())
    assert list(state["references"]) == ["docker.io/library/app:1"]
    assert [p.name for p in store.data_root.iterdir() if p.name.endswith(".tmp")] == []


def test_stores_sharing_a_layer_root_unpack_a_layer_once_and_free_it_with_the_last(
    new_store: Callable[[str], ImageStore], layer_root: Path
) -> None:
    stores = [new_store(f"engine-{n}") for n in range(3)]
    image_ids = {put(one, ["app:1"], [BASE, TOP]) for one in stores}
    assert len(image_ids) == 1
    assert len(layer_dirs(layer_root)) == 2
    assert {one.get("app:1").size for one in stores} == {stores[0].get("app:1").size}
    blobs = {blob.digest for blob in stores[0].content.walk()}
    for one in stores[:-1]:
        removed = one.remove("app:1")
        assert [entry for entry in removed if "Deleted" in entry][1:] == [
            {"Deleted": store_chain(BASE, TOP)},
            {"Deleted": store_chain(BASE)},
        ]  # each engine reports the layers it let go, as Docker's layer store does
        assert len(layer_dirs(layer_root)) == 2
        assert {blob.digest for blob in stores[0].content.walk()} == blobs
    stores[-1].remove("app:1")
    assert layer_dirs(layer_root) == set()
    assert list(stores[0].content.walk()) == []


def test_a_layer_shared_by_two_images_of_one_store_stays_until_both_are_gone(
    store: ImageStore, layer_root: Path
) -> None:
    put(store, ["base:1"], [BASE])
    put(store, ["app:1"], [BASE, TOP])
    deleted = [entry["Deleted"] for entry in store.remove("app:1") if "Deleted" in entry]
    assert deleted[1:] == [store_chain(BASE, TOP)]
    assert layer_dirs(layer_root) == {store_chain(BASE)}
    store.remove("base:1")
    assert layer_dirs(layer_root) == set()
