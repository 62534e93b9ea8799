"""One engine's images: image records (ID, tags, digests) over a content store of blobs and
an overlay snapshotter whose unpacked layers are shared by every engine on the host.

On disk, under the engine's data root::

    images.json     every image (its manifest, indexes, layer sizes) and every reference
                    (``docker.io/library/redis:latest`` -> image ID), written atomically
    images.lock     flock'd around every change of images.json
    snapshots/      the snapshotter's own state (active snapshots, the engine's id)

Blobs live in a content store, by default host-wide beside the layer root (containerd's
shared content policy), so that five engines pulling one image keep one copy of its blobs
as well as one copy of its layers. Each image holds its blobs by a reference named after
the data root and the image; a pull or an import holds what it writes by a lease until the
image is recorded. The snapshotter counts which engines hold a layer; this store drops the
engine's hold on a layer when no image of the engine uses it any more.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import tarfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from simulator.archive import ArchiveError, apply_layer
from simulator.content.store import (
    BlobNotFound,
    ContentError,
    ContentStore,
    digest_bytes,
)
from simulator.images import oci
from simulator.images.oci import (
    Descriptor,
    ImageConfig,
    InvalidImageConfig,
    InvalidManifest,
    Manifest,
)
from simulator.images.reference import (
    InvalidReference,
    Reference,
    parse,
    parse_named,
)
from simulator.snapshots import (
    Kind,
    Mount,
    OverlaySnapshotter,
    SnapshotExistsError,
    SnapshotNotFoundError,
    SnapshotPreconditionError,
)

STATE_FILE = "images.json"
LOCK_FILE = "images.lock"
STATE_VERSION = 1
ROOTFS_MISMATCH = "layers from manifest don't match image configuration"
_ID_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{1,64})")
_READ_SIZE = 1 << 20

# (container ID, running) for each container created from an image.
ContainersUsing = Callable[[str], Sequence[tuple[str, bool]]]
# Called while a layer is unpacked: (compressed bytes read so far, compressed size).
UnpackProgress = Callable[[int, int], None]


class ImageError(Exception):
    """An image operation refused; ``status`` is the Engine API's HTTP status for it."""

    status = 500


class ImageNotFound(ImageError, LookupError):
    status = 404


class ImageConflict(ImageError):
    status = 409


class InvalidImage(ImageError, ValueError):
    status = 400


@dataclass(frozen=True)
class Image:
    """An image as one engine holds it. ``repo_tags`` and ``repo_digests`` are canonical
    (``docker.io/library/redis:latest``); the familiar_ properties are what docker shows."""

    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    config: ImageConfig
    manifest: Manifest
    manifest_digest: str
    index_digests: tuple[str, ...]
    layer_sizes: tuple[int, ...]
    source: str | None  # the repository it was pulled from, e.g. docker.io/library/redis

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def created(self) -> str:
        return self.config.created

    @property
    def created_unix(self) -> int:
        return _unix_seconds(self.config.created)

    @property
    def size(self) -> int:
        """The sum of the layers' unpacked sizes, as ``docker images`` reports it."""
        return sum(self.layer_sizes)

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple(self.config.diff_ids)

    @property
    def chain_ids(self) -> tuple[str, ...]:
        return tuple(oci.chain_ids(self.config.diff_ids))

    @property
    def top_chain_id(self) -> str | None:
        chain = self.chain_ids
        return chain[-1] if chain else None

    @property
    def history(self) -> list[oci.HistoryEntry]:
        return list(self.config.history)

    @property
    def familiar_repo_tags(self) -> list[str]:
        return [parse(tag).familiar for tag in self.repo_tags]

    @property
    def familiar_repo_digests(self) -> list[str]:
        return [parse(digest).familiar for digest in self.repo_digests]

    @property
    def blobs(self) -> list[str]:
        """Every blob the image holds in the content store."""
        layers = [layer.digest for layer in self.manifest.layers]
        return [self.manifest.config.digest, self.manifest_digest, *layers, *self.index_digests]


@dataclass(frozen=True)
class UnpackedLayer:
    """What unpack_layer did: ``held`` (this engine had it), ``adopted`` (another engine
    had unpacked it), or ``unpacked``."""

    chain_id: str
    outcome: str
    size: int


class Lease:
    """Holds blobs and layers for an operation in progress (a pull, a load, a build), so
    that removing an image meanwhile frees none of them. Closing it lets them go, and
    drops this engine's hold on layers it took that no image ended up using."""

    def __init__(self, store: ImageStore) -> None:
        self._store = store
        self.owner = f"{store.data_root} lease {secrets.token_hex(8)}"
        self._blobs: set[str] = set()
        self._layers: list[str] = []
        self._closed = False

    def hold_blob(self, digest: str) -> bool:
        """Hold a blob of the content store; False if there is no such blob."""
        if digest in self._blobs:
            return True
        try:
            self._store.content.add_ref(digest, self.owner, durable=False)
        except BlobNotFound:
            return False
        self._blobs.add(digest)
        return True

    def pin_layer(self, chain_id: str) -> None:
        """Keep this engine's hold on a layer until the lease is closed."""
        self._store._pin_layers([chain_id])
        self._layers.append(chain_id)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._store.content.remove_refs(sorted(self._blobs), self.owner, durable=False)
        self._store._unpin_layers(self._layers)
        if self._blobs:
            self._store.content.collect(self._blobs)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class ImageStore:
    """The images of one engine (``data_root``), over layers shared in ``layer_root``.

    ``content_root`` is where blobs are kept; by default ``<layer root>-content`` beside the
    layer root, shared like it. ``containers_using(image_id)`` lists the engine's containers
    of an image as ``(container ID, running)``; rmi consults it.
    """

    def __init__(
        self,
        data_root: str | os.PathLike,
        layer_root: str | os.PathLike,
        content_root: str | os.PathLike | None = None,
        *,
        containers_using: ContainersUsing | None = None,
    ) -> None:
        self.data_root = Path(data_root).absolute()
        self.layer_root = Path(layer_root).absolute()
        self.data_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if content_root is None:
            content_root = self.layer_root.with_name(self.layer_root.name + "-content")
        self.content = ContentStore(content_root)
        self.snapshots = OverlaySnapshotter(self.data_root / "snapshots", self.layer_root)
        self.containers_using = containers_using
        self._lock = threading.RLock()
        self._pinned: Counter[str] = Counter()
        self._configs: dict[str, ImageConfig] = {}
        self._layer_holders: list[Callable[[], Iterable[str]]] = []

    # Reading

    def images(self) -> list[Image]:
        """Every image, newest first."""
        state = self._read_state()
        found = [self._image(image_id, state) for image_id in state["images"]]
        return sorted(found, key=lambda image: (image.created_unix, image.id), reverse=True)

    def get(self, name: str) -> Image:
        """An image by reference (``redis``, ``redis:7``, ``host:5000/a@sha256:...``), by ID,
        or by any unique ID prefix (``sha256:`` or not). ImageNotFound in Docker's words."""
        state = self._read_state()
        image_id = self._lookup(name, state)
        return self._image(image_id, state)

    def exists(self, image_id: str) -> bool:
        return image_id in self._read_state()["images"]

    def lookup_reference(self, reference: Reference | str) -> str | None:
        """The image ID a tag or digest reference points at, or None."""
        ref = parse(reference) if isinstance(reference, str) else reference
        return self._read_state()["references"].get(ref.string)

    def history(self, name: str) -> list[dict[str, Any]]:
        """``docker history``: the Engine API's entries, newest first. Only the top entry
        has an ID; the steps below it show ``<missing>``, as for any pulled image."""
        image = self.get(name)
        entries: list[dict[str, Any]] = []
        layer = 0
        for step in image.config.history:
            size = 0
            if not step.empty_layer:
                size = image.layer_sizes[layer] if layer < len(image.layer_sizes) else 0
                layer += 1
            entries.append(
                {
                    "Id": "<missing>",
                    "Created": _unix_seconds(step.created),
                    "CreatedBy": step.created_by,
                    "Tags": None,
                    "Size": size,
                    "Comment": step.comment,
                }
            )
        entries.reverse()
        if entries:
            entries[0]["Id"] = image.id
            entries[0]["Tags"] = image.familiar_repo_tags or None
        return entries

    def hold_layers_with(self, holder: Callable[[], Iterable[str]]) -> None:
        """Keep the layers (chain IDs) that ``holder()`` names from being released while no
        image uses them: the build cache holds the layers of its steps this way."""
        self._layer_holders.append(holder)

    def in_use(self, image_id: str) -> bool:
        """Whether a container of this engine was created from the image."""
        return bool(self._containers_of(image_id))

    # Adding images

    def lease(self) -> Lease:
        """A lease for blobs and layers being written; see Lease."""
        return Lease(self)

    def put_image(
        self,
        config: bytes,
        manifest: bytes | None = None,
        layers: Sequence[bytes | BinaryIO | Path] = (),
        *,
        index: bytes | None = None,
        tags: Iterable[str | Reference] = (),
        repo_digests: Iterable[str | Reference] = (),
        source: str | None = None,
        lease: Lease | None = None,
        progress: Callable[[int, int, int], None] | None = None,
    ) -> Image:
        """Record an image, unpacking its layers (those the layer root has are shared).

        ``config`` is the config blob; ``manifest`` its image manifest (written for it when
        None: OCI, with each layer's media type from its compression). ``layers`` are the
        layer blobs, as bytes, files or paths; when empty, the manifest's layers must be in
        the content store already (held by ``lease``). ``index`` is an index that led to
        the manifest. ``tags`` point at the image afterwards (moved from other images);
        ``repo_digests`` are ``name@digest`` references recorded for it. ``progress`` is
        called as layers are unpacked: (layer number, compressed bytes read, blob size).
        """
        own_lease = lease is None
        lease = lease or self.lease()
        try:
            references = [_tag_reference(tag) for tag in tags]
            digests = [_digest_reference(ref) for ref in repo_digests]
            image_config = _parse_config(config)
            config_descriptor = self._store_blob(config, lease, oci.OCI_CONFIG)
            layer_descriptors = [self._store_layer(layer, lease) for layer in layers]
            if manifest is None:
                manifest = Manifest(config_descriptor, tuple(layer_descriptors)).to_bytes()
            parsed = _parse_image_manifest(manifest)
            self._check_manifest(parsed, config_descriptor.digest, image_config, layer_descriptors)
            manifest_digest = self._store_blob(manifest, lease).digest
            index_digest = None if index is None else self._store_blob(index, lease).digest
            for layer in parsed.layers:
                if not lease.hold_blob(layer.digest):
                    raise InvalidImage(f"blob unknown: {layer.digest}")
            sizes = self._unpack_all(parsed, image_config, lease, progress)
            image_id = config_descriptor.digest
            owner = self._owner(image_id)
            with self._locked_state() as state:
                record = state["images"].get(image_id)
                if record is None:
                    record = {
                        "manifest": _descriptor_json(manifest_digest, parsed.media_type, manifest),
                        "indexes": [],
                        "layer_sizes": sizes,
                        "source": source,
                        "added": oci.rfc3339(),
                    }
                    state["images"][image_id] = record
                if index_digest is not None and index_digest not in record["indexes"]:
                    record["indexes"].append(index_digest)
                if source and not record.get("source"):
                    record["source"] = source
                for ref in references + digests:
                    state["references"].pop(ref.string, None)
                    state["references"][ref.string] = image_id
                self.content.add_refs(self._image(image_id, state).blobs, owner)
                self._configs[image_id] = image_config
            return self.get(image_id)
        finally:
            if own_lease:
                lease.close()

    def unpack(self, image: Image, progress: UnpackProgress | None = None) -> list[UnpackedLayer]:
        """Make sure every layer of the image is unpacked and held by this engine."""
        with self.lease() as lease:
            results = []
            parent = None
            for layer, diff_id in zip(image.manifest.layers, image.diff_ids, strict=True):
                result = self.unpack_layer(lease, parent, layer, diff_id, progress)
                results.append(result)
                parent = result.chain_id
            return results

    def unpack_layer(
        self,
        lease: Lease,
        parent: str | None,
        layer: Descriptor,
        diff_id: str,
        progress: UnpackProgress | None = None,
        known_sizes: Mapping[str, int] | None = None,
    ) -> UnpackedLayer:
        """Unpack one layer blob (in the content store) on top of ``parent`` (a chain ID
        this engine holds), unless the layer root has it: then take this engine's hold on
        the shared copy. The layer is pinned by ``lease`` until the lease is closed.
        ``known_sizes``: the unpacked sizes recorded, when the caller has just read them."""
        chain_id = diff_id if parent is None else digest_bytes(f"{parent} {diff_id}".encode())
        lease.pin_layer(chain_id)
        if self._holds_layer(chain_id):
            known = (known_sizes or {}).get(chain_id)
            size = known if known is not None else self._layer_size(chain_id, layer)
            return UnpackedLayer(chain_id, "held", size)
        if self.snapshots.has(chain_id):
            try:
                self.snapshots.adopt(chain_id)
            except SnapshotNotFoundError:
                pass  # its last holder deleted it meanwhile: unpack it ourselves
            else:
                return UnpackedLayer(chain_id, "adopted", self._layer_size(chain_id, layer))
        key = f"unpack-{secrets.token_hex(8)}"
        self.snapshots.prepare(key, parent)
        try:
            with self.content.open(layer.digest) as blob:
                reader = _ProgressReader(blob, layer.size, progress)
                try:
                    upper = self.snapshots.upper_dir(key)
                    applied = apply_layer(reader, upper, whiteouts="overlay")
                except ArchiveError as error:
                    raise InvalidImage(f"failed to register layer: {error}") from None
            if applied.diff_id != diff_id:
                raise InvalidImage(ROOTFS_MISMATCH)
            try:
                self.snapshots.commit(chain_id, key)
            except SnapshotExistsError:  # unpacked by another pull of this engine meanwhile
                self.snapshots.remove(key)
                return UnpackedLayer(chain_id, "held", applied.unpacked_size)
        except BaseException:
            try:
                self.snapshots.remove(key)
            except SnapshotNotFoundError:
                pass
            raise
        with self._locked_state() as state:
            state["unpacked_sizes"][chain_id] = applied.unpacked_size
        return UnpackedLayer(chain_id, "unpacked", applied.unpacked_size)

    def layer_present(self, chain_id: str) -> bool:
        """Whether the layer root has this layer unpacked (by any engine)."""
        return self.snapshots.has(chain_id)

    # Names

    def tag(self, source: str, target: str | Reference) -> Image:
        """Point ``target`` (a tag reference; ``latest`` if none) at the image ``source``."""
        image = self.get(source)
        reference = _tag_reference(target)
        with self._locked_state() as state:
            if image.id not in state["images"]:
                raise ImageNotFound(f"No such image: {source}")
            state["references"].pop(reference.string, None)
            state["references"][reference.string] = image.id
        return self.get(image.id)

    def add_repo_digest(self, image_id: str, reference: str | Reference) -> None:
        """Record ``name@digest`` for an image (after a push, as Docker does)."""
        ref = _digest_reference(reference)
        with self._locked_state() as state:
            if image_id not in state["images"]:
                raise ImageNotFound(f"No such image: {image_id}")
            state["references"][ref.string] = image_id

    def remove(self, name: str, force: bool = False) -> list[dict[str, str]]:
        """``docker rmi``, with Docker's semantics and answer: ``[{"Untagged": "redis:latest"},
        {"Deleted": "sha256:<image ID>"}, {"Deleted": "sha256:<chain ID>"}, ...]``.

        Removing by reference untags it, and deletes the image only when that was its last
        reference. Removing by ID deletes the image with its references, if they are all in
        one repository (or with ``force``). An image a running container uses is never
        deleted; one a stopped container uses only with ``force``."""
        with self._lock:
            state = self._read_state()
            image_id = self._lookup(name, state)
            records: list[dict[str, str]] = []
            references = _references_of(image_id, state)
            if not _is_id_prefix(image_id, name):
                reference = _tag_reference_or_digest(name)
                if not force and _is_single_reference(references):
                    containers = self._containers_of(image_id)
                    if containers:
                        raise ImageConflict(
                            f'conflict: unable to remove repository reference "{name}" (must '
                            f"force) - container {containers[0][0][:12]} is using its "
                            f"referenced image {_short(image_id)}"
                        )
                with self._locked_state() as state:
                    records += _untag(state, reference)
                    references = _references_of(image_id, state)
                    if reference.digest is None and not any(
                        ref.digest is None and ref.name == reference.name for ref in references
                    ):
                        for ref in references:
                            if ref.digest is not None and ref.name == reference.name:
                                records += _untag(state, ref)
                        references = _references_of(image_id, state)
                if references:
                    return records
                try:
                    self._check_delete_conflicts(image_id, hard_only=force, references=[])
                except ImageConflict:
                    return records  # moby: a used image just loses its last name (dangling)
                return records + self._delete(image_id)
            if _is_single_reference(references):
                self._check_delete_conflicts(image_id, hard_only=force, references=[])
                with self._locked_state() as state:
                    for ref in references:
                        records += _untag(state, ref)
                references = []
            self._check_delete_conflicts(image_id, hard_only=force, references=references)
            return records + self._delete(image_id)

    def prune_layers(self) -> list[str]:
        """Drop this engine's hold on every layer that no image uses and nothing sits on
        (after the last container of a force-removed image goes); return their chain IDs."""
        with self._lock:
            held = [info for info in self.snapshots.walk() if info.kind is Kind.COMMITTED]
            parents = {info.name: info.parent for info in held}

            def depth(name: str) -> int:
                count = 0
                while parents.get(name) is not None:
                    name = parents[name] or ""
                    count += 1
                return count

            ordered = sorted(parents, key=depth)
            return self._release_layers(ordered)

    def release_all(self) -> None:
        """Remove every image, references and all, whatever uses it: for an engine whose
        data root is about to be deleted, so the shared layers and blobs it held can go."""
        for image_id in list(self._read_state()["images"]):
            self._delete(image_id)
        self.prune_layers()

    # Containers

    def rootfs_mounts(self, container_key: str, image: Image) -> list[Mount]:
        """A container's root filesystem: an active snapshot on the image's top layer."""
        return self.snapshots.prepare(container_key, image.top_chain_id)

    # Internals: lookups

    def _lookup(self, name: str, state: dict[str, Any]) -> str:
        id_prefix = _ID_PREFIX.fullmatch(name)
        shown = name
        if id_prefix is not None and len(id_prefix.group(1)) == 64:
            shown = "sha256:" + id_prefix.group(1)
        try:
            reference = parse(name)
        except InvalidReference:
            if id_prefix is None:
                raise
        else:
            shown = reference.familiar
            image_id = state["references"].get(reference.string)
            if image_id is not None:
                return image_id
        if id_prefix is not None:
            prefix = "sha256:" + id_prefix.group(1)
            matches = [image_id for image_id in state["images"] if image_id.startswith(prefix)]
            if len(matches) == 1:
                return matches[0]
        raise ImageNotFound(f"No such image: {shown}")

    def _config(self, image_id: str) -> ImageConfig:
        config = self._configs.get(image_id)
        if config is None:
            config = _parse_config(self.content.read(image_id))
            self._configs[image_id] = config
        return config

    def _image(self, image_id: str, state: dict[str, Any]) -> Image:
        record = state["images"][image_id]
        config = self._config(image_id)
        manifest_digest = record["manifest"]["digest"]
        manifest = _parse_image_manifest(self.content.read(manifest_digest))
        tags, digests = [], []
        for ref_string, target in state["references"].items():
            if target == image_id:
                (digests if "@" in ref_string else tags).append(ref_string)
        return Image(
            id=image_id,
            repo_tags=tuple(tags),
            repo_digests=tuple(digests),
            config=config,
            manifest=manifest,
            manifest_digest=manifest_digest,
            index_digests=tuple(record["indexes"]),
            layer_sizes=tuple(record["layer_sizes"]),
            source=record.get("source"),
        )

    def _containers_of(self, image_id: str) -> list[tuple[str, bool]]:
        if self.containers_using is None:
            return []
        return list(self.containers_using(image_id))

    def _check_delete_conflicts(
        self, image_id: str, *, hard_only: bool, references: Sequence[Reference]
    ) -> None:
        """Docker's conflicts: a running container always; references left in other
        repositories and stopped containers unless forced."""
        containers = self._containers_of(image_id)
        running = [container for container, is_running in containers if is_running]
        if running:
            raise ImageConflict(
                f"conflict: unable to delete {_short(image_id)} (cannot be forced) - image is "
                f"being used by running container {running[0][:12]}"
            )
        if hard_only:
            return
        if references:
            raise ImageConflict(
                f"conflict: unable to delete {_short(image_id)} (must be forced) - image is "
                "referenced in multiple repositories"
            )
        if containers:
            raise ImageConflict(
                f"conflict: unable to delete {_short(image_id)} (must be forced) - image is "
                f"being used by stopped container {containers[0][0][:12]}"
            )

    # Internals: deleting

    def _delete(self, image_id: str) -> list[dict[str, str]]:
        """Delete the image and its references, release its blobs, and drop the engine's
        hold on the layers no other image uses."""
        with self._lock:
            records: list[dict[str, str]] = []
            with self._locked_state() as state:
                image = self._image(image_id, state)
                for ref in _references_of(image_id, state):
                    records += _untag(state, ref)
                del state["images"][image_id]
            records.append({"Deleted": image_id})
            owner = self._owner(image_id)
            for digest in set(image.blobs):
                self.content.remove_ref(digest, owner)
            released = self._release_layers(list(image.chain_ids))
            records += [{"Deleted": chain_id} for chain_id in released]
            self._configs.pop(image_id, None)
        self.content.collect()
        return records

    def _pin_layers(self, chain_ids: Sequence[str]) -> None:
        with self._lock:
            self._pinned.update(chain_ids)

    def _unpin_layers(self, chain_ids: Sequence[str]) -> None:
        """Unpin layers, and drop those that no image ended up using."""
        with self._lock:
            self._pinned.subtract(chain_ids)
            self._pinned = +self._pinned  # drop the counts that reached zero
            self._release_layers(chain_ids)

    def _release_layers(self, candidates: Sequence[str]) -> list[str]:
        """Drop this engine's hold on each candidate layer (given bottom first) that no image
        uses, no lease pins and nothing sits on; top first. Return those dropped."""
        with self._lock:
            state = self._read_state()
            used = set(self._pinned)
            for record_id in state["images"]:
                used.update(oci.chain_ids(self._config(record_id).diff_ids))
            for holder in self._layer_holders:
                used.update(holder())
            released = []
            for chain_id in reversed(list(dict.fromkeys(candidates))):
                if chain_id in used or not self._holds_layer(chain_id):
                    continue
                try:
                    self.snapshots.remove(chain_id)
                except SnapshotPreconditionError:
                    continue  # a container's snapshot, or a layer of a build, sits on it
                released.append(chain_id)
            if released:
                with self._locked_state() as state:
                    for chain_id in released:
                        state["unpacked_sizes"].pop(chain_id, None)
            return released

    # Internals: layers and blobs

    def _holds_layer(self, chain_id: str) -> bool:
        return self.snapshots.holds(chain_id)

    def _layer_size(self, chain_id: str, layer: Descriptor) -> int:
        """The unpacked size of a layer: recorded when this engine unpacked it, else counted
        from its blob (the bytes of its regular files and symlink targets, as unpacking
        writes them)."""
        size = self._read_state()["unpacked_sizes"].get(chain_id)
        if size is None:
            try:
                with self.content.open(layer.digest) as blob:
                    size = _tar_content_size(blob)
            except BlobNotFound:  # a layer made here (a build) without its blob kept
                size = self.snapshots.usage(chain_id).size
            with self._locked_state() as state:
                state["unpacked_sizes"][chain_id] = size
        return size

    def _unpack_all(
        self,
        manifest: Manifest,
        config: ImageConfig,
        lease: Lease,
        progress: Callable[[int, int, int], None] | None,
    ) -> list[int]:
        sizes = []
        parent = None
        known_sizes = self._read_state()["unpacked_sizes"]
        pairs = zip(manifest.layers, config.diff_ids, strict=True)
        for number, (layer, diff_id) in enumerate(pairs):
            layer_progress = None
            if progress is not None:
                layer_progress = _numbered(progress, number)
            result = self.unpack_layer(
                lease, parent, layer, diff_id, layer_progress, known_sizes=known_sizes
            )
            sizes.append(result.size)
            parent = result.chain_id
        return sizes

    def _store_blob(self, data: bytes, lease: Lease, media_type: str = "") -> Descriptor:
        """Put bytes into the content store, held by the lease."""
        for _ in range(3):
            info = self.content.put(data)
            if lease.hold_blob(info.digest):
                return Descriptor(media_type or "application/octet-stream", info.digest, info.size)
        raise ImageError(f"blob {digest_bytes(data)} was collected while being stored")

    def _store_layer(self, layer: bytes | BinaryIO | Path, lease: Lease) -> Descriptor:
        """Write a layer blob into the content store; its media type from its compression."""
        if isinstance(layer, bytes):
            stored = self._store_blob(layer, lease)
            digest, size, head = stored.digest, stored.size, layer[:2]
        elif isinstance(layer, Path):
            with open(layer, "rb") as file:
                digest, size, head = self._store_stream(file, lease)
        else:
            digest, size, head = self._store_stream(layer, lease)
        media_type = oci.OCI_LAYER_GZIP if head == b"\x1f\x8b" else oci.OCI_LAYER
        return Descriptor(media_type, digest, size)

    def _store_stream(self, file: BinaryIO, lease: Lease) -> tuple[str, int, bytes]:
        """Write a stream into the content store, held by the lease; return its digest,
        size and first two bytes."""
        head = b""
        with self.content.writer() as writer:
            while chunk := file.read(_READ_SIZE):
                head = head or chunk[:2]
                writer.write(chunk)
            info = writer.commit()
        if not lease.hold_blob(info.digest):
            raise ImageError(f"blob {info.digest} was collected while being stored")
        return info.digest, info.size, head

    def _check_manifest(
        self,
        manifest: Manifest,
        config_digest: str,
        config: ImageConfig,
        given_layers: Sequence[Descriptor],
    ) -> None:
        if not manifest.is_image:
            raise InvalidImage(f"unsupported config media type {manifest.config.media_type}")
        if manifest.config.digest != config_digest:
            raise InvalidImage(
                f"manifest config {manifest.config.digest} is not the config given "
                f"({config_digest})"
            )
        if len(manifest.layers) != len(config.diff_ids):
            raise InvalidImage(ROOTFS_MISMATCH)
        if given_layers and [d.digest for d in given_layers] != [d.digest for d in manifest.layers]:
            raise InvalidImage("the layers given are not the manifest's layers")
        for layer in manifest.layers:
            if layer.media_type not in oci.LAYER_MEDIA_TYPES:
                raise InvalidImage(f"unsupported layer media type {layer.media_type}")

    def _owner(self, image_id: str) -> str:
        return f"{self.data_root} image {image_id}"

    # Internals: the state file

    def _read_state(self) -> dict[str, Any]:
        try:
            with open(self.data_root / STATE_FILE) as file:
                state = json.load(file)
        except FileNotFoundError:
            state = {}
        state.setdefault("version", STATE_VERSION)
        state.setdefault("images", {})
        state.setdefault("references", {})
        state.setdefault("unpacked_sizes", {})  # chain ID -> bytes
        return state

    @contextmanager
    def _locked_state(self) -> Iterator[dict[str, Any]]:
        """The state, locked against this process's threads and other processes; written
        back atomically if the block changed it and ended without an error."""
        with self._lock:
            fd = os.open(self.data_root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                state = self._read_state()
                before = json.dumps(state, sort_keys=True)
                yield state
                if json.dumps(state, sort_keys=True) != before:
                    _write_json_atomically(self.data_root / STATE_FILE, state)
            finally:
                os.close(fd)


def _numbered(progress: Callable[[int, int, int], None], number: int) -> UnpackProgress:
    def report(current: int, total: int) -> None:
        progress(number, current, total)

    return report


class _ProgressReader:
    """A blob being unpacked, reporting how much of it has been read."""

    def __init__(self, file: BinaryIO, total: int, progress: UnpackProgress | None) -> None:
        self._file = file
        self._total = total
        self._progress = progress
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._read += len(data)
        if self._progress is not None and data:
            self._progress(self._read, self._total)
        return data


def _parse_config(data: bytes) -> ImageConfig:
    try:
        return oci.parse_image_config(data)
    except InvalidImageConfig as error:
        raise InvalidImage(str(error)) from None


def _parse_image_manifest(data: bytes) -> Manifest:
    try:
        return oci.parse_image_manifest(data)
    except InvalidManifest as error:
        raise InvalidImage(str(error)) from None


def _descriptor_json(digest: str, media_type: str, data: bytes) -> dict[str, Any]:
    return {"digest": digest, "mediaType": media_type, "size": len(data)}


def _tar_content_size(blob: BinaryIO) -> int:
    """The bytes of regular-file content and symlink targets in a layer tar (plain or
    compressed), as Docker sizes an unpacked layer."""
    try:
        with tarfile.open(fileobj=blob, mode="r|*") as tar:
            total = 0
            for member in tar:
                if member.isreg():
                    total += member.size
                elif member.issym():
                    total += len(member.linkname.encode())
                tar.members.clear()
            return total
    except (tarfile.TarError, EOFError, OSError, ContentError) as error:
        raise InvalidImage(f"failed to read layer: {error}") from None


def _tag_reference(value: str | Reference) -> Reference:
    reference = parse(value) if isinstance(value, str) else value
    if reference.digest is not None:
        raise InvalidImage("refusing to create a tag with a digest reference")
    if reference.tag is None:
        reference = reference.with_tag("latest")
    return reference


def _digest_reference(value: str | Reference) -> Reference:
    reference = parse_named(value) if isinstance(value, str) else value
    if reference.digest is None:
        raise InvalidImage(f"not a digest reference: {reference.familiar}")
    return Reference(reference.domain, reference.path, None, reference.digest)


def _tag_reference_or_digest(name: str) -> Reference:
    """A reference as rmi names it: with its digest, or its tag (``latest`` if none)."""
    reference = parse_named(name)
    if reference.digest is not None:
        return Reference(reference.domain, reference.path, None, reference.digest)
    return reference if reference.tag is not None else reference.with_tag("latest")


def _references_of(image_id: str, state: dict[str, Any]) -> list[Reference]:
    return [parse_named(ref) for ref, target in state["references"].items() if target == image_id]


def _untag(state: dict[str, Any], reference: Reference) -> list[dict[str, str]]:
    if state["references"].pop(reference.string, None) is None:
        return []
    return [{"Untagged": reference.familiar}]


def _is_single_reference(references: Sequence[Reference]) -> bool:
    """moby's rule: one tag at most, and all references in the repository of that tag."""
    if len(references) <= 1:
        return len(references) == 1
    tags = [ref for ref in references if ref.digest is None]
    if len(tags) > 1:
        return False
    digest_names = {ref.name for ref in references if ref.digest is not None}
    single = tags[0] if tags else references[0]
    return len(digest_names) == 1 and single.name in digest_names


def _is_id_prefix(image_id: str, name: str) -> bool:
    return _ID_PREFIX.fullmatch(name) is not None and image_id.startswith(
        name if name.startswith("sha256:") else "sha256:" + name
    )


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _unix_seconds(moment: str) -> int:
    text = moment.replace("Z", "+00:00").replace("z", "+00:00")
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)", text)
    if match is not None:  # Python takes at most six fractional digits; Go writes nine
        text = match.group(1) + (match.group(2) or "")[:7] + match.group(3)
    try:
        return int(datetime.fromisoformat(text).timestamp())
    except ValueError:
        return 0


def _write_json_atomically(path: Path, value: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "w") as file:
            json.dump(value, file, indent=1)  # references keep their order: tags as given
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.rename(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
