"""``docker pull``: resolve a reference through the registry's mirrors and the registry, fetch
the manifest for linux/amd64, download the layers (three at a time) into the content store,
unpack them in order, and stream Docker's JSON progress messages all along."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from simulator.images import oci, progress
from simulator.images.oci import (
    Descriptor,
    Index,
    InvalidImageConfig,
    InvalidManifest,
    Manifest,
    NoMatchingManifest,
)
from simulator.images.reference import DEFAULT_DOMAIN, Reference, parse
from simulator.images.registry_client import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    Credentials,
    Endpoint,
    RegistryClient,
    RegistryError,
    RegistryUnreachable,
    RemoteManifest,
    endpoints_for,
)
from simulator.images.store import ImageError, ImageStore, Lease

MAX_CONCURRENT_DOWNLOADS = 3  # dockerd's default max-concurrent-downloads
MAX_CONFIG_SIZE = 8 << 20
DENIED_ANSWER = "denied: requested access to the resource is denied"


class PullError(Exception):
    """A pull that failed; the message is Docker's, ``status`` the Engine API's."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class _Source:
    """Where the pull found the manifest: the client of that endpoint, and what it served."""

    client: RegistryClient
    endpoint: Endpoint
    manifest: RemoteManifest


@dataclass
class _LayerPlan:
    """One layer of the pull: what it is, and what has to be done for it."""

    number: int
    layer: Descriptor
    diff_id: str
    download: bool  # the blob must be fetched
    already_exists: bool  # the layer root has it unpacked: nothing to show but that

    @property
    def id(self) -> str:
        return progress.short_id(self.layer.digest)


def pull(
    store: ImageStore,
    reference: str | Reference,
    *,
    mirrors: Mapping[str, Sequence[str]] | None = None,
    insecure: Iterable[str] = (),
    auth: Credentials | Mapping[str, Any] | None = None,
    upstream: bool = True,
    platform: str = "linux/amd64",
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
) -> Iterator[dict[str, Any]]:
    """Pull an image into ``store``, yielding the messages ``POST /images/create`` streams.

    For a docker.io reference, ``mirrors["docker.io"]`` (URLs such as
    ``http://127.0.0.1:5000``) are tried first, then Docker Hub itself unless ``upstream``
    is False. Other registries are pulled from directly. Registries in ``insecure`` (and
    loopback ones) are spoken to in plain HTTP.

    Raises PullError (or InvalidReference) before the first message if nothing can be
    pulled, and PullError from the stream if a layer fails.
    """
    ref = parse(reference) if isinstance(reference, str) else reference
    credentials = auth if isinstance(auth, Credentials) else Credentials.from_auth_config(auth)
    endpoints = endpoints_for(ref.domain, mirrors, insecure, upstream)
    source = _resolve(ref, endpoints, credentials, connect_timeout, read_timeout)
    os_name, _, architecture = platform.partition("/")
    architecture, _, variant = architecture.partition("/")
    if ref.digest is not None:  # recorded as name@digest, whatever tag came with it
        recorded = ref.name_only().with_digest(ref.digest)
    else:
        recorded = ref.name_only().with_tag(ref.tag or "latest")
    previous_id = store.lookup_reference(recorded)
    with store.lease() as lease:
        index_bytes, manifest_bytes, manifest = _platform_manifest(
            store, lease, source, ref, os_name, architecture, variant
        )
        yield progress.status(f"Pulling from {ref.path}", ref.digest or ref.tag)
        image_id = manifest.config.digest
        if store.exists(image_id) and lease.hold_blob(image_id):
            config_bytes = store.content.read(image_id)
        else:
            config_bytes = _fetch_config(store, lease, source, ref, manifest)
            config = _parse_config(config_bytes)
            if len(config.diff_ids) != len(manifest.layers):
                raise PullError("layers from manifest don't match image configuration")
            plans = _plan_layers(store, lease, manifest, config)
            for plan in plans:
                if plan.already_exists:
                    yield progress.action(plan.id, "Already exists")
                else:
                    yield progress.action(plan.id, "Pulling fs layer")
            downloads = [plan for plan in plans if plan.download]
            for plan in downloads[MAX_CONCURRENT_DOWNLOADS:]:
                yield progress.action(plan.id, "Waiting")
            for plan in plans:
                if not plan.download and not plan.already_exists:
                    yield progress.action(plan.id, "Download complete")

            def transfer(post: progress.Post, cancelled: threading.Event) -> None:
                _transfer_layers(store, lease, source, ref, plans, post, cancelled)

            yield from _translated(ref, progress.relay(transfer))
        digest = source.manifest.digest
        try:
            image = store.put_image(
                config_bytes,
                manifest_bytes,
                index=index_bytes,
                tags=[recorded] if recorded.digest is None else [],
                repo_digests=[ref.name_only().with_digest(digest)],
                source=ref.name,
                lease=lease,
            )
        except ImageError as error:
            raise PullError(str(error), error.status) from None
    yield progress.status(f"Digest: {digest}")
    if previous_id == image.id:
        yield progress.status(f"Status: Image is up to date for {ref.familiar}")
    else:
        yield progress.status(f"Status: Downloaded newer image for {ref.familiar}")


def _resolve(
    ref: Reference,
    endpoints: Sequence[Endpoint],
    credentials: Credentials | None,
    connect_timeout: float,
    read_timeout: float,
) -> _Source:
    """Try each endpoint in turn for the manifest. When all fail, the error shown is the
    last answer a registry gave (a refusal says more than a connection that failed), or
    the last connection error when none answered."""
    failures: list[RegistryError] = []
    for endpoint in endpoints:
        client = RegistryClient(
            endpoint.url,
            credentials=credentials,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        try:
            manifest = client.get_manifest(ref.path, ref.digest or ref.tag or "latest")
        except RegistryError as error:
            failures.append(_as_docker_hub_would(ref, client, error))
            continue
        return _Source(client, endpoint, manifest)
    answers = [error for error in failures if not isinstance(error, RegistryUnreachable)]
    raise _pull_error(ref, (answers or failures)[-1])


def _as_docker_hub_would(
    ref: Reference, client: RegistryClient, error: RegistryError
) -> RegistryError:
    """Docker Hub answers a pull of a repository that doesn't exist with DENIED. Our hub,
    serving as the docker.io mirror, says MANIFEST_UNKNOWN for any missing manifest, so for
    docker.io names we ask it whether the repository exists at all, and answer as Hub."""
    if ref.domain != DEFAULT_DOMAIN or error.code not in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"):
        return error
    if error.code == "MANIFEST_UNKNOWN":
        try:
            client.list_tags(ref.path)
        except RegistryError as tags_error:
            if tags_error.code != "NAME_UNKNOWN":
                return error
        else:
            return error
    return RegistryError(DENIED_ANSWER, code="DENIED", status=401)


def _pull_error(ref: Reference, error: BaseException) -> PullError:
    """moby's translation of registry errors into the messages ``docker pull`` prints."""
    if isinstance(error, PullError):
        return error
    if isinstance(error, ImageError):
        return PullError(str(error), error.status)
    if not isinstance(error, RegistryError):
        return PullError(str(error))
    if error.code == "DENIED":
        return PullError(
            f"pull access denied for {ref.familiar_name}, repository does not exist or may "
            f"require 'docker login': {error}",
            404,
        )
    if error.code == "MANIFEST_UNKNOWN":
        return PullError(f"manifest for {ref.familiar} not found: {error}", 404)
    if error.code == "NAME_UNKNOWN":
        return PullError(f"repository {ref.familiar_name} not found: {error}", 404)
    return PullError(str(error))


def _translated(ref: Reference, messages: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    try:
        yield from messages
    except (RegistryError, ImageError) as error:
        raise _pull_error(ref, error) from None


def _platform_manifest(
    store: ImageStore,
    lease: Lease,
    source: _Source,
    ref: Reference,
    os_name: str,
    architecture: str,
    variant: str,
) -> tuple[bytes | None, bytes, Manifest]:
    """(index bytes or None, manifest bytes, manifest) of the platform's image, with what
    was fetched kept in the content store under the lease."""
    top = source.manifest
    parsed = _parse_manifest(top.data, top.media_type)
    _keep(store, lease, top.data)
    if isinstance(parsed, Manifest):
        return None, top.data, parsed
    assert isinstance(parsed, Index)
    try:
        entry = oci.select_platform(parsed, os_name, architecture, variant)
    except NoMatchingManifest as error:
        raise PullError(str(error), 404) from None
    try:
        child = source.client.get_manifest(ref.path, entry.digest)
    except RegistryError as error:
        raise _pull_error(ref, error) from None
    manifest = _parse_manifest(child.data, child.media_type or entry.media_type)
    if not isinstance(manifest, Manifest):
        raise PullError("manifest list entries point at another manifest list")
    _keep(store, lease, child.data)
    return top.data, child.data, manifest


def _fetch_config(
    store: ImageStore, lease: Lease, source: _Source, ref: Reference, manifest: Manifest
) -> bytes:
    config = manifest.config
    if config.media_type not in oci.CONFIG_MEDIA_TYPES:
        raise PullError(f"unsupported media type {config.media_type}")
    if config.size > MAX_CONFIG_SIZE:
        raise PullError(f"image config {config.digest} is too large ({config.size} bytes)")
    if not lease.hold_blob(config.digest):
        try:
            source.client.fetch_blob(ref.path, config.digest, config.size, store.content)
        except RegistryError as error:
            raise _pull_error(ref, error) from None
        if not lease.hold_blob(config.digest):
            raise PullError(f"image config {config.digest} was removed while it was pulled")
    return store.content.read(config.digest)


def _plan_layers(
    store: ImageStore, lease: Lease, manifest: Manifest, config: oci.ImageConfig
) -> list[_LayerPlan]:
    plans = []
    chain = oci.chain_ids(config.diff_ids)
    for number, (layer, diff_id) in enumerate(zip(manifest.layers, config.diff_ids, strict=True)):
        if layer.media_type not in oci.LAYER_MEDIA_TYPES:
            raise PullError(f"unsupported media type {layer.media_type}")
        have_blob = lease.hold_blob(layer.digest)
        already = have_blob and store.layer_present(chain[number])
        plans.append(_LayerPlan(number, layer, diff_id, not have_blob, already))
    return plans


def _transfer_layers(
    store: ImageStore,
    lease: Lease,
    source: _Source,
    ref: Reference,
    plans: Sequence[_LayerPlan],
    post: progress.Post,
    cancelled: threading.Event,
) -> None:
    """Download what is missing, at most three at a time, and unpack each layer in order
    as soon as it and the layers below it are there."""
    with ThreadPoolExecutor(MAX_CONCURRENT_DOWNLOADS, thread_name_prefix="pull") as downloads:
        pending = {
            plan.number: downloads.submit(
                _download, store, lease, source, ref, plan, post, cancelled
            )
            for plan in plans
            if plan.download
        }
        try:
            parent = None
            for plan in plans:
                if plan.number in pending:
                    pending[plan.number].result()
                parent = _extract(store, lease, plan, parent, post, cancelled)
        except BaseException:
            cancelled.set()
            raise


def _download(
    store: ImageStore,
    lease: Lease,
    source: _Source,
    ref: Reference,
    plan: _LayerPlan,
    post: progress.Post,
    cancelled: threading.Event,
) -> None:
    size = plan.layer.size
    throttle = progress.Throttle()

    def report(received: int) -> None:
        if throttle.ready(finished=received >= size):
            post(progress.transfer(plan.id, "Downloading", received, size))
        if received >= size:
            post(progress.action(plan.id, "Verifying Checksum"))

    for _ in range(2):  # a second time if a collect removed the blob before we held it
        source.client.fetch_blob(
            ref.path, plan.layer.digest, size, store.content, report, cancelled.is_set
        )
        if lease.hold_blob(plan.layer.digest):
            post(progress.action(plan.id, "Download complete"))
            return
    raise PullError(f"layer {plan.layer.digest} was removed while it was pulled")


def _extract(
    store: ImageStore,
    lease: Lease,
    plan: _LayerPlan,
    parent: str | None,
    post: progress.Post,
    cancelled: threading.Event,
) -> str:
    if plan.already_exists:
        return store.unpack_layer(lease, parent, plan.layer, plan.diff_id).chain_id
    throttle = progress.Throttle()

    def report(current: int, total: int) -> None:
        if cancelled.is_set():
            raise progress.Cancelled()
        if throttle.ready(finished=current >= total):
            post(progress.transfer(plan.id, "Extracting", current, total))

    chain_id = store.unpack_layer(lease, parent, plan.layer, plan.diff_id, report).chain_id
    post(progress.action(plan.id, "Pull complete"))
    return chain_id


def _keep(store: ImageStore, lease: Lease, data: bytes) -> None:
    for _ in range(3):
        info = store.content.put(data)
        if lease.hold_blob(info.digest):
            return
    raise PullError("a manifest was removed while it was pulled")


def _parse_manifest(data: bytes, media_type: str) -> Manifest | Index:
    try:
        return oci.parse_manifest(data, media_type or None)
    except InvalidManifest as error:
        raise PullError(str(error)) from None


def _parse_config(data: bytes) -> oci.ImageConfig:
    try:
        return oci.parse_image_config(data)
    except InvalidImageConfig as error:
        raise PullError(str(error)) from None
