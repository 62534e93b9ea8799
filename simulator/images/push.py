"""``docker push``: send an image's layers (unless the registry has them, or can mount them
from the repository they came from), its config and its manifest, streaming Docker's JSON
progress messages."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from simulator.images import progress
from simulator.images.oci import Descriptor
from simulator.images.reference import Reference, parse, parse_named
from simulator.images.registry_client import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    Credentials,
    RegistryClient,
    RegistryError,
    registry_url,
)
from simulator.images.store import Image, ImageStore


class PushError(Exception):
    """A push that failed; the message is Docker's, ``status`` the Engine API's."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


def push(
    store: ImageStore,
    reference: str | Reference,
    *,
    insecure: Iterable[str] = (),
    auth: Credentials | Mapping[str, Any] | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
) -> Iterator[dict[str, Any]]:
    """Push the image ``reference`` names (a tag; ``latest`` if none) to its registry,
    yielding the messages ``POST /images/{name}/push`` streams. Afterwards the image has
    ``name@digest`` among its repo digests, as Docker records."""
    ref = parse(reference) if isinstance(reference, str) else reference
    if ref.digest is not None:
        raise PushError("cannot push a digest reference", 400)
    tag = ref.tag or "latest"
    image_id = store.lookup_reference(ref.name_only().with_tag(tag))
    if image_id is None:
        raise PushError(f"An image does not exist locally with the tag: {ref.familiar_name}", 404)
    image = store.get(image_id)
    credentials = auth if isinstance(auth, Credentials) else Credentials.from_auth_config(auth)
    client = RegistryClient(
        registry_url(ref.domain, insecure),
        credentials=credentials,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    yield progress.status(f"The push refers to repository [{ref.name}]")

    def upload(post: progress.Post, cancelled: threading.Event) -> None:
        _push_image(store, client, image, ref, tag, post, cancelled)

    try:
        yield from progress.relay(upload)
    except RegistryError as error:
        raise PushError(str(error)) from None


def _push_image(
    store: ImageStore,
    client: RegistryClient,
    image: Image,
    ref: Reference,
    tag: str,
    post: progress.Post,
    cancelled: threading.Event,
) -> None:
    repository = ref.path
    mount_from = _mount_source(image, ref)
    layers = list(zip(image.manifest.layers, image.diff_ids, strict=True))[::-1]  # top first
    for _, diff_id in layers:
        post(progress.action(progress.short_id(diff_id), "Preparing"))
    for layer, diff_id in layers:
        layer_id = progress.short_id(diff_id)
        if client.blob_exists(repository, layer.digest):
            post(progress.action(layer_id, "Layer already exists"))
            continue
        start = client.start_upload(repository, layer.digest, mount_from)
        if start.mounted:
            post(progress.action(layer_id, f"Mounted from {mount_from}"))
            continue
        assert start.location is not None
        _upload(store, client, repository, start.location, layer, layer_id, post, cancelled)
        post(progress.action(layer_id, "Pushed"))
    config = image.manifest.config
    if not client.blob_exists(repository, config.digest):
        location = client.start_upload(repository).location
        assert location is not None
        _upload(store, client, repository, location, config, None, post, cancelled)
    manifest = store.content.read(image.manifest_digest)
    digest = client.put_manifest(repository, tag, manifest, image.manifest.media_type)
    store.add_repo_digest(image.id, ref.name_only().with_digest(digest))
    post(progress.status(f"{tag}: digest: {digest} size: {len(manifest)}"))
    post(progress.aux({"Tag": tag, "Digest": digest, "Size": len(manifest)}))


def _upload(
    store: ImageStore,
    client: RegistryClient,
    repository: str,
    location: str,
    blob: Descriptor,
    layer_id: str | None,
    post: progress.Post,
    cancelled: threading.Event,
) -> None:
    """Upload one blob in a single PUT, reporting ``Pushing`` progress for a layer."""
    throttle = progress.Throttle()

    def report(sent: int) -> None:
        if cancelled.is_set():
            raise progress.Cancelled()
        if layer_id is not None and throttle.ready(finished=sent >= blob.size):
            post(progress.transfer(layer_id, "Pushing", sent, blob.size))

    with store.content.open(blob.digest) as file:
        client.finish_upload(repository, location, blob.digest, blob.size, file, report)


def _mount_source(image: Image, ref: Reference) -> str | None:
    """Another repository of the same registry that has the image (it was pulled from or
    pushed to it): the registry may mount the layers from there instead of receiving them."""
    for known in (*image.repo_digests, *([image.source] if image.source else [])):
        other = parse_named(known)
        if other.domain == ref.domain and other.path != ref.path:
            return other.path
    return None
