"""docker save: images from the content store written as one tar the way Docker 25 and later
write it, an OCI image layout (oci-layout, index.json, blobs/) plus Docker's manifest.json and
repositories, so that docker load, containerd, skopeo and umoci all read it.

Where we differ from Docker, and why:

- Blobs go in as they are stored (layers gzip-compressed, as pulled), as Docker does with its
  containerd image store; Docker's classic store writes uncompressed layers instead. Keeping the
  blobs keeps every digest, so the saved manifest is the one the image was pulled with.
- manifest.json maps every layer's diffID to its blob in ``LayerSources``, as Docker 25 and
  later do (not only foreign layers): it is the one place that ties the two digests together.
- Docker also writes a legacy v1 JSON blob per layer, which nothing reads; we don't.
- The tar is deterministic: entries sorted, uid and gid 0, mode 0644 (directories 0755),
  mtimes the Unix epoch except config and layer blobs, which carry the image's ``created``
  time, as Docker sets them. Docker leaves index.json at the time of the save; we use the
  epoch. Like Go's archive/tar, the archive ends with two zero blocks, without record padding.
- ``repositories`` maps each tag to the hex of the image's top layer diffID, as Docker 25
  writes it (older Dockers wrote a v1 layer ID there).
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

from simulator.content.store import BlobNotFound, ContentStore, InvalidDigest, parse_digest
from simulator.images import reference
from simulator.images.oci import (
    OCI_INDEX,
    Descriptor,
    ImageConfig,
    InvalidImageConfig,
    InvalidManifest,
    Manifest,
    parse_image_config,
    parse_manifest,
)
from simulator.images.transfer import StoredImage, TransferError

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"
BLOBS_DIRECTORY = "blobs"
# Written byte for byte as Docker writes it (with the space).
LAYOUT_CONTENT = b'{"imageLayoutVersion": "1.0.0"}'
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"  # the full reference
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"  # the tag alone

_BLOCK = 512
_CHUNK = 1 << 20
_FILE_MODE = 0o644
_DIRECTORY_MODE = 0o755


@dataclass
class _Image:
    """One image being saved, read and checked before the first byte is written."""

    descriptor: Descriptor
    manifest: Manifest
    config: ImageConfig
    tags: list[reference.Reference] = field(default_factory=list)


def save(content: ContentStore, images: Iterable[StoredImage], out: BinaryIO) -> None:
    """Write ``images`` to ``out`` as one tar. Every blob is checked to be in the store first,
    so a missing one fails before anything is written; then blobs stream through in chunks."""
    saved = _read_images(content, images)
    blob_times = _blob_times(saved)
    writer = _TarWriter(out)
    writer.add_directory(BLOBS_DIRECTORY)
    writer.add_directory(f"{BLOBS_DIRECTORY}/sha256")
    for digest in sorted(blob_times):
        try:
            blob = content.open(digest)
        except BlobNotFound:  # collected since it was checked
            raise TransferError(f"content digest {digest}: not found") from None
        with blob:
            size = os.fstat(blob.fileno()).st_size
            writer.add_file(_blob_path(digest), blob, size, blob_times[digest])
    writer.add_bytes(INDEX_FILE, _index_json(saved))
    writer.add_bytes(MANIFEST_FILE, _manifest_json(saved))
    writer.add_bytes(LAYOUT_FILE, LAYOUT_CONTENT)
    repositories = _repositories(saved)
    if repositories:
        writer.add_bytes(REPOSITORIES_FILE, _go_json(repositories, sort_keys=True) + b"\n")
    writer.close()


def _read_images(content: ContentStore, images: Iterable[StoredImage]) -> list[_Image]:
    by_digest: dict[str, _Image] = {}
    for stored in images:
        image = by_digest.get(stored.manifest_digest)
        if image is None:
            image = by_digest[stored.manifest_digest] = _read_image(content, stored)
        for tag in stored.repo_tags:
            named = _tagged(tag)
            if named is not None and named not in image.tags:
                image.tags.append(named)
    return list(by_digest.values())


def _read_image(content: ContentStore, stored: StoredImage) -> _Image:
    manifest_bytes = _read_blob(content, stored.manifest_digest)
    try:
        manifest = parse_manifest(manifest_bytes)
    except InvalidManifest as error:
        raise TransferError(f"{stored.manifest_digest}: {error}") from None
    if not isinstance(manifest, Manifest):
        raise TransferError(f"{stored.manifest_digest}: is an index, not an image manifest")
    try:
        config = parse_image_config(_read_blob(content, manifest.config.digest))
    except InvalidImageConfig as error:
        raise TransferError(f"{manifest.config.digest}: {error}") from None
    if len(manifest.layers) != len(config.diff_ids):
        raise TransferError(
            "invalid manifest, layers length mismatch: "
            f"expected {len(manifest.layers)}, got {len(config.diff_ids)}"
        )
    for blob in (manifest.config, *manifest.layers):
        _check_blob(content, blob)
    descriptor = Descriptor(manifest.media_type, stored.manifest_digest, len(manifest_bytes))
    return _Image(descriptor, manifest, config)


def _read_blob(content: ContentStore, digest: str) -> bytes:
    try:
        return content.read(digest)
    except InvalidDigest as error:
        raise TransferError(str(error)) from None
    except BlobNotFound:
        raise TransferError(f"content digest {digest}: not found") from None


def _check_blob(content: ContentStore, descriptor: Descriptor) -> None:
    try:
        size = content.info(descriptor.digest).size
    except InvalidDigest as error:
        raise TransferError(str(error)) from None
    except BlobNotFound:
        raise TransferError(f"content digest {descriptor.digest}: not found") from None
    if size != descriptor.size:
        raise TransferError(
            f"content digest {descriptor.digest}: "
            f"size {size} does not match its descriptor's {descriptor.size}"
        )


def _tagged(text: str) -> reference.Reference | None:
    """The tag as docker save takes it: ``latest`` when there is none; None for a digest
    reference (docker saves the image, under no tag)."""
    try:
        named = reference.parse_named(text)
    except reference.InvalidReference as error:
        raise TransferError(str(error)) from None
    if named.tag is None:
        return None if named.digest is not None else named.with_tag(reference.DEFAULT_TAG)
    return named.name_only().with_tag(named.tag)


def _blob_path(digest: str) -> str:
    return f"{BLOBS_DIRECTORY}/sha256/{parse_digest(digest)}"


def _unix_time(created: str) -> int:
    """An RFC 3339 time as whole seconds since the epoch (never before it)."""
    try:
        return max(0, int(datetime.fromisoformat(created).timestamp()))
    except ValueError:
        return 0


def _blob_times(images: list[_Image]) -> dict[str, int]:
    """Every blob to write, with its mtime: manifests the epoch, configs and layers the time
    their (first) image was created."""
    times: dict[str, int] = {}
    for image in images:
        times.setdefault(image.descriptor.digest, 0)
        created = _unix_time(image.config.created)
        for blob in (image.manifest.config, *image.manifest.layers):
            times.setdefault(blob.digest, created)
    return times


def _go_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON, as Go's encoding/json writes it."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    return text.encode("utf-8")


def _index_json(images: list[_Image]) -> bytes:
    entries = []
    for image in images:
        if not image.tags:
            entries.append(image.descriptor.to_dict())
        for tag in image.tags:
            annotations = {ANNOTATION_IMAGE_NAME: tag.string, ANNOTATION_REF_NAME: tag.tag or ""}
            entries.append(
                Descriptor(
                    image.descriptor.media_type,
                    image.descriptor.digest,
                    image.descriptor.size,
                    annotations=annotations,
                ).to_dict()
            )
    return _go_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})


def _manifest_json(images: list[_Image]) -> bytes:
    items = []
    for image in images:
        layer_sources: dict[str, dict[str, Any]] = {}
        for diff_id, layer in zip(image.config.diff_ids, image.manifest.layers, strict=True):
            source: dict[str, Any] = {
                "mediaType": layer.media_type,
                "size": layer.size,
                "digest": layer.digest,
            }
            if layer.urls:
                source["urls"] = list(layer.urls)
            layer_sources[diff_id] = source
        item: dict[str, Any] = {
            "Config": _blob_path(image.manifest.config.digest),
            # Go's encoding of a nil slice: an untagged image has "RepoTags":null.
            "RepoTags": [tag.familiar for tag in image.tags] or None,
            "Layers": [_blob_path(layer.digest) for layer in image.manifest.layers],
        }
        if layer_sources:
            item["LayerSources"] = dict(sorted(layer_sources.items()))
        items.append(item)
    return _go_json(items) + b"\n"


def _repositories(images: list[_Image]) -> dict[str, dict[str, str]]:
    repositories: dict[str, dict[str, str]] = {}
    for image in images:
        if not image.config.diff_ids:
            continue
        top_layer = parse_digest(image.config.diff_ids[-1])
        for tag in image.tags:
            repositories.setdefault(tag.familiar_name, {})[tag.tag or ""] = top_layer
    return repositories


class _TarWriter:
    """Writes tar entries straight to a stream (seekable or not), as Go's archive/tar does."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def add_directory(self, name: str) -> None:
        self._write(self._header(name, tarfile.DIRTYPE, 0, 0, _DIRECTORY_MODE))

    def add_bytes(self, name: str, data: bytes, mtime: int = 0) -> None:
        self._write(self._header(name, tarfile.REGTYPE, len(data), mtime, _FILE_MODE))
        self._write(data)
        self._pad(len(data))

    def add_file(self, name: str, source: BinaryIO, size: int, mtime: int) -> None:
        self._write(self._header(name, tarfile.REGTYPE, size, mtime, _FILE_MODE))
        remaining = size
        while remaining:
            chunk = source.read(min(_CHUNK, remaining))
            if not chunk:
                raise TransferError(f"{name}: blob is shorter than its size ({size} bytes)")
            self._write(chunk)
            remaining -= len(chunk)
        self._pad(size)

    def close(self) -> None:
        self._write(bytes(2 * _BLOCK))
        flush = getattr(self._out, "flush", None)
        if flush is not None:
            flush()

    @staticmethod
    def _header(name: str, kind: bytes, size: int, mtime: int, mode: int) -> bytes:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = size
        info.mtime = mtime
        info.mode = mode
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def _pad(self, size: int) -> None:
        if size % _BLOCK:
            self._write(bytes(_BLOCK - size % _BLOCK))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._out.write(view)
            if not isinstance(written, int) or written >= len(view):
                break  # all taken (a stream that returns None takes all, as BinaryIO promises)
            view = view[written:]
