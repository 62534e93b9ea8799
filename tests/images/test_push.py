"""Pushing to Debian's docker-registry (the reference distribution registry) and to our hub,
with Docker's push messages, then pulling back into a fresh store on its own layer root."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simulator.images.pull import PullError, pull
from simulator.images.push import PushError, push
from simulator.images.store import ImageStore

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlay layers need root")

PullAll = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def busybox_store(new_store: Callable[[str], ImageStore], pull_from_hub: PullAll) -> ImageStore:
    store = new_store("pusher")
    pull_from_hub(store, "busybox")
    return store


def fresh_store(tmp_path: Path, name: str) -> ImageStore:
    """A store on a layer root of its own, so that a pull has to fetch everything."""
    return ImageStore(tmp_path / name / "data", tmp_path / name / "layers")


def test_push_to_docker_registry_then_pull_back_into_a_fresh_store(
    busybox_store: ImageStore, start_registry: Callable[..., Any], tmp_path: Path
) -> None:
    registry = start_registry()
    target = f"{registry.address}/slipway/busybox:1.0"
    busybox_store.tag("busybox", target)
    image = busybox_store.get(target)
    (layer,) = image.manifest.layers
    layer_id = image.diff_ids[0][7:19]
    messages = list(push(busybox_store, target))
    manifest = busybox_store.content.read(image.manifest_digest)
    assert messages[0] == {
        "status": f"The push refers to repository [{registry.address}/slipway/busybox]"
    }
    assert messages[1] == {"status": "Preparing", "progressDetail": {}, "id": layer_id}
    pushing = [m for m in messages if m.get("status") == "Pushing"]
    assert pushing[-1]["progressDetail"] == {"current": layer.size, "total": layer.size}
    assert {"status": "Pushed", "progressDetail": {}, "id": layer_id} in messages
    assert messages[-2:] == [
        {"status": f"1.0: digest: {image.manifest_digest} size: {len(manifest)}"},
        {
            "progressDetail": {},
            "aux": {"Tag": "1.0", "Digest": image.manifest_digest, "Size": len(manifest)},
        },
    ]
    pushed_digest = f"{registry.address}/slipway/busybox@{image.manifest_digest}"
    assert pushed_digest in busybox_store.get(image.id).repo_digests

    fresh = fresh_store(tmp_path, "fresh")
    pulled = list(pull(fresh, target))
    assert pulled[0] == {"status": "Pulling from slipway/busybox", "id": "1.0"}
    assert {"status": "Pull complete", "progressDetail": {}, "id": layer.digest[7:19]} in pulled
    assert pulled[-1] == {
        "status": f"Status: Downloaded newer image for {registry.address}/slipway/busybox:1.0"
    }
    again = fresh.get(target)
    assert again.id == image.id
    assert again.manifest_digest == image.manifest_digest
    assert again.repo_digests == (pushed_digest,)


def test_pushing_again_finds_the_layer_and_another_repository_mounts_it(
    busybox_store: ImageStore, start_registry: Callable[..., Any]
) -> None:
    registry = start_registry()
    first = f"{registry.address}/team/box:1"
    second = f"{registry.address}/other/box:1"
    busybox_store.tag("busybox", first)
    busybox_store.tag("busybox", second)
    layer_id = busybox_store.get(first).diff_ids[0][7:19]
    list(push(busybox_store, first))
    again = list(push(busybox_store, first))
    assert {"status": "Layer already exists", "progressDetail": {}, "id": layer_id} in again
    assert not [m for m in again if m.get("status") == "Pushing"]
    mounted = list(push(busybox_store, second))
    assert {"status": "Mounted from team/box", "progressDetail": {}, "id": layer_id} in mounted


def test_pushing_a_tag_that_does_not_exist_fails_as_docker_fails(
    busybox_store: ImageStore,
) -> None:
    with pytest.raises(PushError) as failed:
        list(push(busybox_store, "127.0.0.1:1/nothing/here:1"))
    assert (
        str(failed.value)
        == "An image does not exist locally with the tag: 127.0.0.1:1/nothing/here"
    )
    assert failed.value.status == 404


def test_pushing_to_an_unreachable_registry_fails_fast(busybox_store: ImageStore) -> None:
    busybox_store.tag("busybox", "127.0.0.1:1/box:1")
    with pytest.raises(PushError) as failed:
        list(push(busybox_store, "127.0.0.1:1/box:1"))
    assert str(failed.value).startswith('Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1')


def test_docker_registry_names_a_missing_manifest_as_docker_does(
    start_registry: Callable[..., Any], tmp_path: Path
) -> None:
    registry = start_registry()
    with pytest.raises(PullError) as failed:
        list(pull(fresh_store(tmp_path, "empty"), f"{registry.address}/nosuch"))
    assert str(failed.value) == (
        f"manifest for {registry.address}/nosuch:latest not found: manifest unknown: "
        "manifest unknown"
    )


def test_push_to_our_hub_and_pull_it_back(
    busybox_store: ImageStore, hub: Any, tmp_path: Path
) -> None:
    target = f"{hub.address}/pushed/busybox:mine"
    busybox_store.tag("busybox", target)
    messages = list(push(busybox_store, target))
    assert messages[-1]["aux"]["Digest"] == busybox_store.get(target).manifest_digest
    fresh = fresh_store(tmp_path, "fresh")
    list(pull(fresh, target))
    assert fresh.get(target).id == busybox_store.get(target).id
