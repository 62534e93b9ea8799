"""Pulling from our hub (the docker.io mirror) into image stores: Docker's progress messages,
up-to-date and already-existing layers, digests recomputed from the bytes (acceptance 3),
rmi, stores sharing one layer root (acceptance 5), and failures in Docker's words."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simulator.images import oci
from simulator.images.pull import PullError, pull
from simulator.images.store import ImageStore

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlay layers need root")

PullAll = Callable[..., list[dict[str, Any]]]
BAR = re.compile(r"\[=*>? *\] +[0-9.]+[kMG]?B/[0-9.]+[kMG]?B")


def layer_dirs(layer_root: Path) -> set[str]:
    return {entry.name for entry in layer_root.iterdir() if entry.name.startswith("sha256:")}


def statuses_of(messages: list[dict[str, Any]], layer_id: str) -> list[str]:
    """The layer's statuses in order, runs of one progress status counted once."""
    found: list[str] = []
    for message in messages:
        if message.get("id") == layer_id and (not found or found[-1] != message["status"]):
            found.append(message["status"])
    return found


def test_pull_streams_dockers_progress_messages(
    new_store: Callable[[str], ImageStore], pull_from_hub: PullAll
) -> None:
    store = new_store("engine")
    messages = pull_from_hub(store, "busybox")
    image = store.get("busybox")
    (layer,) = image.manifest.layers
    layer_id = layer.digest[7:19]
    assert messages[0] == {"status": "Pulling from library/busybox", "id": "latest"}
    assert messages[1] == {"status": "Pulling fs layer", "progressDetail": {}, "id": layer_id}
    assert statuses_of(messages, layer_id) == [
        "Pulling fs layer",
        "Downloading",
        "Verifying Checksum",
        "Download complete",
        "Extracting",
        "Pull complete",
    ]
    downloads = [m for m in messages if m["status"] == "Downloading"]
    assert downloads[-1]["progressDetail"] == {"current": layer.size, "total": layer.size}
    assert all(BAR.fullmatch(m["progress"]) for m in downloads)
    assert list(downloads[-1]) == ["status", "progressDetail", "progress", "id"]
    extracting = [m for m in messages if m["status"] == "Extracting"]
    assert extracting[-1]["progressDetail"] == {"current": layer.size, "total": layer.size}
    assert messages[-2:] == [
        {"status": f"Digest: {image.index_digests[0]}"},
        {"status": "Status: Downloaded newer image for busybox:latest"},
    ]


def test_pull_records_the_index_digest_and_the_linux_amd64_manifest(
    new_store: Callable[[str], ImageStore], pull_from_hub: PullAll
) -> None:
    store = new_store("engine")
    pull_from_hub(store, "docker.io/library/alpine:latest")
    image = store.get("alpine")
    (index_digest,) = image.index_digests
    index = oci.parse_index(store.content.read(index_digest))
    assert oci.select_platform(index).digest == image.manifest_digest
    assert image.repo_tags == ("docker.io/library/alpine:latest",)
    assert image.repo_digests == (f"docker.io/library/alpine@{index_digest}",)
    assert image.familiar_repo_digests == [f"alpine@{index_digest}"]
    assert image.source == "docker.io/library/alpine"
    assert image.config.os == "linux" and image.config.architecture == "amd64"
    assert image.size == sum(image.layer_sizes) > 0


def test_pulling_again_says_the_image_is_up_to_date(
    new_store: Callable[[str], ImageStore], pull_from_hub: PullAll
) -> None:
    store = new_store("engine")
    pull_from_hub(store, "busybox")
    again = pull_from_hub(store, "busybox:latest")
    digest = store.get("busybox").index_digests[0]
    assert again == [
        {"status": "Pulling from library/busybox", "id": "latest"},
        {"status": f"Digest: {digest}"},
        {"status": "Status: Image is up to date for busybox:latest"},
    ]


def test_a_second_store_on_the_layer_root_finds_the_layers_already_there(
    new_store: Callable[[str], ImageStore], pull_from_hub: PullAll, layer_root: Path
) -> None:
    first, second = new_store("one"), new_store("two")
    pull_from_hub(first, "alpine")
    layers_before = layer_dirs(layer_root)
    messages = pull_from_hub(second, "alpine")
    (layer,) = second.get("alpine").manifest.layers
    assert messages[1] == {
        "status": "Already exists",
        "progressDetail": {},
        "id": layer.digest[7:19],
    }
    assert not [m for m in messages if m["status"] in ("Downloading", "Extracting")]
    assert messages[-1] == {"status": "Status: Downloaded newer image for alpine:latest"}
    assert layer_dirs(layer_root) == layers_before
    assert second.get("alpine").size == first.get("alpine").size


def test_every_digest_and_diff_id_matches_the_bytes(
    new_store: Callable[[str], ImageStore], pull_from_hub: PullAll
) -> None:
    """Acceptance 3: recompute every digest from the content store's bytes."""
    store = new_store("engine")
    for name in ("busybox", "alpine"):
        pull_from_hub(store, name)
        image = store.get(name)
        config_bytes = store.content.read(image.id)
        assert "sha256:" + hashlib.sha256(config_bytes).hexdigest() == image.id
        manifest_bytes = store.content.read(image.manifest_digest)
        assert "sha256:" + hashlib.sha256(manifest_bytes).hexdigest() == image.manifest_digest
        manifest = oci.parse_image_manifest(manifest_bytes)
        assert manifest.config.digest == image.id
        config = oci.parse_image_config(config_bytes)
        assert len(config.diff_ids) == len(manifest.layers) > 0
        for layer, diff_id in zip(manifest.layers, config.diff_ids, strict=True):
            blob = store.content.read(layer.digest)
            assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer.digest
            assert len(blob) == layer.size
            uncompressed = gzip.decompress(blob)
            assert "sha256:" + hashlib.sha256(uncompressed).hexdigest() == diff_id
            assert diff_id != layer.digest  # the content hash is not the distribution hash


def test_rmi_of_a_pulled_image_untags_deletes_and_frees(
    new_store: Callable[[str], ImageStore], pull_from_hub: PullAll, layer_root: Path
) -> None:
    store = new_store("engine")
    pull_from_hub(store, "busybox")
    image = store.get("busybox")
    store.tag("busybox", "mybox:1")
    assert store.remove("busybox") == [
        {"Untagged": "busybox:latest"},
        {"Untagged": f"busybox@{image.index_digests[0]}"},
    ]
    assert store.remove("mybox:1") == [
        {"Untagged": "mybox:1"},
        {"Deleted": image.id},
        {"Deleted": image.chain_ids[0]},
    ]
    assert layer_dirs(layer_root) == set()
    assert list(store.content.walk()) == []


def test_removing_from_one_store_keeps_layers_for_the_other(
    new_store: Callable[[str], ImageStore], pull_from_hub: PullAll, layer_root: Path
) -> None:
    """Acceptance 5's shape, with busybox and alpine."""
    first, second = new_store("one"), new_store("two")
    for store in (first, second):
        pull_from_hub(store, "busybox")
        pull_from_hub(store, "alpine")
    assert len(layer_dirs(layer_root)) == 2
    first.remove("busybox")
    first.remove("alpine")
    assert len(layer_dirs(layer_root)) == 2
    assert second.get("alpine").size > 0
    blobs = {blob.digest for blob in second.content.walk()}
    assert set(second.get("busybox").blobs) | set(second.get("alpine").blobs) == blobs
    second.remove("busybox")
    second.remove("alpine")
    assert layer_dirs(layer_root) == set()
    assert list(second.content.walk()) == []


def disk_usage(*paths: Path) -> int:
    """Bytes allocated under the paths, each hard-linked file counted once (du)."""
    existing = [str(path) for path in paths if path.exists()]
    output = subprocess.run(
        ["du", "-s", "-c", "-B1", *existing], capture_output=True, text=True, check=True
    ).stdout
    return int(output.strip().splitlines()[-1].split()[0])


@pytest.mark.timeout(120)
def test_five_stores_pulling_debian_keep_one_copy_and_the_last_frees_it(
    hub_with_debian: Any, new_store: Callable[[str], ImageStore], tmp_path: Path
) -> None:
    """Acceptance 5: five stores, one layer root; disk grows by at most 1.2 copies."""
    stores = [new_store(f"node{n}") for n in range(5)]
    layer_root = stores[0].layer_root
    everything = [tmp_path / "engines", layer_root, stores[0].content.root]
    mirrors = {"docker.io": [hub_with_debian.url]}
    empty = disk_usage(*everything)
    list(pull(stores[0], "debian:bookworm-slim", mirrors=mirrors, upstream=False))
    one_copy = disk_usage(*everything) - empty
    assert one_copy > 50_000_000
    for store in stores[1:]:
        messages = list(pull(store, "debian:bookworm-slim", mirrors=mirrors, upstream=False))
        assert messages[1]["status"] == "Already exists"
    assert disk_usage(*everything) - empty <= 1.2 * one_copy
    layers = layer_dirs(layer_root)
    assert len(layers) == 1
    for store in stores[:4]:
        store.remove("debian:bookworm-slim")
        assert layer_dirs(layer_root) == layers
    assert disk_usage(*everything) - empty >= one_copy * 0.95
    stores[4].remove("debian:bookworm-slim")
    assert layer_dirs(layer_root) == set()
    assert list(stores[4].content.walk()) == []
    assert disk_usage(*everything) - empty < one_copy * 0.05


def test_pull_by_digest_records_the_digest_and_no_tag(
    new_store: Callable[[str], ImageStore], pull_from_hub: PullAll
) -> None:
    first, second = new_store("one"), new_store("two")
    pull_from_hub(first, "busybox")
    digest = first.get("busybox").index_digests[0]
    messages = pull_from_hub(second, f"busybox@{digest}")
    assert messages[0] == {"status": "Pulling from library/busybox", "id": digest}
    assert messages[-1] == {"status": f"Status: Downloaded newer image for busybox@{digest}"}
    image = second.get(f"busybox@{digest}")
    assert image.repo_tags == () and image.repo_digests == (f"docker.io/library/busybox@{digest}",)


def test_a_missing_tag_fails_as_docker_fails(
    new_store: Callable[[str], ImageStore], pull_from_hub: PullAll
) -> None:
    with pytest.raises(PullError) as failed:
        pull_from_hub(new_store("engine"), "alpine:3.16")
    assert str(failed.value) == (
        "manifest for alpine:3.16 not found: manifest unknown: manifest unknown"
    )
    assert failed.value.status == 404


def test_a_missing_repository_fails_with_pull_access_denied(
    new_store: Callable[[str], ImageStore], pull_from_hub: PullAll
) -> None:
    store = new_store("engine")
    with pytest.raises(PullError) as failed:
        pull_from_hub(store, "nosuch")
    assert str(failed.value) == (
        "pull access denied for nosuch, repository does not exist or may require "
        "'docker login': denied: requested access to the resource is denied"
    )
    assert store.images() == [] and list(store.content.walk()) == []


def test_an_unreachable_registry_fails_fast_in_dockers_words(
    new_store: Callable[[str], ImageStore],
) -> None:
    started = time.monotonic()
    with pytest.raises(PullError) as failed:
        list(pull(new_store("engine"), "127.0.0.1:1/app"))
    assert time.monotonic() - started < 3
    assert str(failed.value) == (
        'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused'
    )


def test_a_registry_that_never_answers_times_out_instead_of_hanging(
    new_store: Callable[[str], ImageStore],
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(PullError, match=f'^Get "http://{address}/v2/": .*timeout'):
            list(pull(new_store("engine"), f"{address}/app", read_timeout=0.5))
        assert time.monotonic() - started < 3


def test_a_dead_mirror_is_skipped_for_the_next_one(
    new_store: Callable[[str], ImageStore], hub: Any
) -> None:
    store = new_store("engine")
    mirrors = {"docker.io": ["http://127.0.0.1:1", hub.url]}
    messages = list(pull(store, "busybox", mirrors=mirrors, upstream=False))
    assert messages[-1] == {"status": "Status: Downloaded newer image for busybox:latest"}


def test_when_every_mirror_is_unreachable_the_last_connection_error_is_shown(
    new_store: Callable[[str], ImageStore],
) -> None:
    mirrors = {"docker.io": ["http://127.0.0.1:1"]}
    with pytest.raises(PullError, match='^Get "http://127.0.0.1:1/v2/": dial tcp'):
        list(pull(new_store("engine"), "busybox", mirrors=mirrors, upstream=False))


def test_a_pull_abandoned_midway_leaves_nothing_behind(
    new_store: Callable[[str], ImageStore], pull_from_hub: PullAll, hub: Any, layer_root: Path
) -> None:
    store = new_store("engine")
    stream = pull(store, "alpine", mirrors={"docker.io": [hub.url]}, upstream=False)
    for message in stream:
        if message["status"] in ("Downloading", "Extracting"):
            break
    stream.close()
    assert store.images() == []
    assert layer_dirs(layer_root) == set()
    assert list(store.content.walk()) == []
    assert list((store.content.root / "ingest").iterdir()) == []
    assert not any(store.snapshots.walk())
    # and the next pull does the whole job
    assert pull_from_hub(store, "alpine")[-1]["status"].startswith("Status: Downloaded")


@pytest.mark.requires_tool("skopeo")
def test_skopeo_agrees_with_our_digests_and_we_pull_what_skopeo_pushed(
    new_store: Callable[[str], ImageStore], pull_from_hub: PullAll, hub: Any, tmp_path: Path
) -> None:
    """Acceptance 2, our side: skopeo inspect shows the digests we record, and an image
    skopeo pushes into the hub (from an OCI layout) pulls back as the same image."""
    store = new_store("engine")
    pull_from_hub(store, "busybox")
    image = store.get("busybox")

    def skopeo(*arguments: str) -> str:
        return subprocess.run(
            ["skopeo", *arguments], capture_output=True, text=True, check=True, timeout=60
        ).stdout

    inspected = json.loads(
        skopeo("inspect", "--tls-verify=false", f"docker://{hub.address}/library/busybox")
    )
    assert inspected["Digest"] == image.index_digests[0]
    assert inspected["Layers"] == [layer.digest for layer in image.manifest.layers]
    layout = tmp_path / "layout"
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{hub.address}/library/busybox",
           f"oci:{layout}:busybox")  # fmt: skip
    skopeo("copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:busybox",
           f"docker://{hub.address}/skopeo/busybox:pushed")  # fmt: skip
    other = new_store("other")
    messages = list(pull(other, f"{hub.address}/skopeo/busybox:pushed"))
    assert messages[-1]["status"].startswith("Status: Downloaded newer image for")
    assert other.get(f"{hub.address}/skopeo/busybox:pushed").id == image.id
