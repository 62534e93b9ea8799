"""docker load: read a tar that docker save wrote (an OCI image layout with Docker's
manifest.json, from Docker 25 on, or the older docker-archive), check every blob, then store it.

The tar is read once, as a stream. Each file goes into the content store's ingest through an
uncommitted writer (small ones are held in memory), hashed on the way in; gzip files are also
decompressed on the fly, so each layer's diffID is known without reading it twice. Only when the
whole archive is read and every manifest, config, layer digest, size and diffID checks out is
anything committed; on any error every writer is aborted, so no blob is left behind. (Should a
commit itself fail, on a full disk say, the blobs committed before it stay, unreferenced, until
the store's collect() removes them.)

index.json is preferred when present; otherwise manifest.json is read and an OCI manifest is
built for each image. Layers of a docker-archive are stored as they are in the tar: a plain
``layer.tar`` becomes an ``application/vnd.oci.image.layer.v1.tar`` blob whose digest is its
diffID (checked against the config), a gzip one a ``...tar+gzip`` blob. They are not recompressed:
that would write every layer twice, and Docker's own classic store keeps them uncompressed too.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from simulator.content.store import BlobWriter, ContentStore, digest_bytes
from simulator.images import reference
from simulator.images.oci import (
    CONFIG_MEDIA_TYPES,
    INDEX_MEDIA_TYPES,
    LAYER_COMPRESSION,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    InvalidImageConfig,
    InvalidManifest,
    Manifest,
    NoMatchingManifest,
    parse_image_config,
    parse_image_manifest,
    parse_index,
    select_platform,
)
from simulator.images.save import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    INDEX_FILE,
    LAYOUT_FILE,
    MANIFEST_FILE,
)
from simulator.images.transfer import (
    LoadedImage,
    StrictTarInfo,
    TransferError,
    archive_path,
    compression_of,
    decompressed,
    outside_error,
    parse_platform,
    tar_errors,
)

LAYOUT_VERSION = "1.0.0"

_CHUNK = 1 << 20
_SMALL_FILE = 64 << 10  # files this small are held in memory
_JSON_LIMIT = 20 << 20  # JSON files up to this size too (containerd's limit for them)
_MEMORY_LIMIT = 256 << 20  # all that is held in memory, together
_MAX_LINK_HOPS = 40


def load(
    stream: BinaryIO,
    content: ContentStore,
    *,
    platform: str = "linux/amd64",
    hold: Callable[[str], bool] | None = None,
) -> list[LoadedImage]:
    """Load every image in the tar read from ``stream`` (plain or compressed) into ``content``,
    and return them in the archive's order. For an index.json entry that is itself an index
    (a multi-platform image), the manifest for ``platform`` is loaded. Blobs the archive leaves
    out are taken from the store when it has them. ``hold`` (an image store's lease, say) is
    called with each blob's digest as soon as it is committed, so that a collect() meanwhile
    can't take it; it returns False for a blob that is gone. Raises TransferError."""
    archive = _Archive()
    try:
        with tar_errors():
            _read_archive(stream, content, archive)
        if archive.file(INDEX_FILE) is not None:
            plan = _plan_oci_layout(archive, content, platform)
        elif archive.file(MANIFEST_FILE) is not None:
            plan = _plan_docker_archive(archive, content)
        else:
            raise TransferError("unrecognized image format")
        plan.commit(content, hold)
        return list(plan.images.values())
    finally:
        archive.discard()


# Reading the archive


class _TarDigest:
    """The digest of the tar inside a file as it streams by: the file's own digest when it is
    a plain tar, that of its decompressed bytes when it is gzip (every gzip member, as Go reads
    them). When it can't be computed, ``error`` says why."""

    def __init__(self, compression: str) -> None:
        self.error = ""
        self._hash = hashlib.sha256()
        self._decompressor = zlib.decompressobj(wbits=31) if compression == "gzip" else None
        if compression not in ("", "gzip"):
            self.error = f"unsupported layer compression: {compression}"

    def update(self, data: bytes) -> None:
        if self._decompressor is None or self.error:
            return
        try:
            self._decompress(data)
        except zlib.error as error:
            self.error = f"gzip: {error}"

    def finish(self, file_digest: str) -> str | None:
        if self._decompressor is None:
            return None if self.error else file_digest
        if not self.error and not self._decompressor.eof:
            self.error = "gzip: unexpected EOF"
        return None if self.error else "sha256:" + self._hash.hexdigest()

    def _decompress(self, data: bytes) -> None:
        assert self._decompressor is not None
        pending = data
        while True:
            if self._decompressor.eof:
                if not pending:
                    return
                self._decompressor = zlib.decompressobj(wbits=31)  # the next gzip member
            # Bounded output per call: a small gzip bomb never becomes a big buffer.
            out = self._decompressor.decompress(pending, _CHUNK)
            self._hash.update(out)
            if self._decompressor.eof:
                pending = self._decompressor.unused_data
            else:
                pending = self._decompressor.unconsumed_tail
                if not pending and len(out) < _CHUNK:
                    return  # all input taken, and no output held back


@dataclass
class _ArchiveFile:
    """A regular file of the archive: its digests, and its bytes, either in memory or waiting
    uncommitted in the content store's ingest."""

    name: str
    size: int
    digest: str
    tar_digest: str | None  # the diffID it would have as a layer; None: see tar_error
    tar_error: str
    compression: str
    data: bytes | None = None
    writer: BlobWriter | None = None
    committed: bool = False

    def read(self) -> bytes:
        """The bytes of a file held in memory (all JSON files are)."""
        if self.data is None:
            raise TransferError(f'"{self.name}" is too large for a manifest, index or config')
        return self.data

    def commit(self, content: ContentStore) -> None:
        if self.committed:
            return
        if self.writer is not None:
            self.writer.commit(self.digest, self.size)
        else:
            content.put(self.read(), self.digest)
        self.committed = True


@dataclass
class _Archive:
    """The regular files and links of the archive, by their path from its root."""

    files: dict[str, _ArchiveFile] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    writers: list[BlobWriter] = field(default_factory=list)
    bytes_in_memory: int = 0

    def file(self, path: str) -> _ArchiveFile | None:
        """The file at ``path``, following symlinks and hardlinks within the archive."""
        for _ in range(_MAX_LINK_HOPS):
            if path not in self.links:
                return self.files.get(path)
            path = self.links[path]
        raise TransferError(f'"{path}": too many levels of symbolic links')

    def add_link(self, path: str, target: str) -> None:
        self.files.pop(path, None)
        self.links[path] = target

    def add_file(self, archive_file: _ArchiveFile) -> None:
        self.links.pop(archive_file.name, None)
        replaced = self.files.get(archive_file.name)
        if replaced is not None and replaced.writer is not None:
            replaced.writer.abort()  # a later entry of the same name wins, as in tar
        self.files[archive_file.name] = archive_file

    def discard(self) -> None:
        """Abort every writer that wasn't committed."""
        for writer in self.writers:
            writer.abort()


def _read_archive(stream: BinaryIO, content: ContentStore, archive: _Archive) -> None:
    with tarfile.open(fileobj=decompressed(stream), mode="r|", tarinfo=StrictTarInfo) as tar:
        while (member := tar.next()) is not None:
            tar.members.clear()  # read once, as a stream: keep memory flat
            path = archive_path(member.name)
            if path is None:
                raise outside_error(member.name)
            if member.issym():
                joined = posixpath.join(posixpath.dirname(path), member.linkname)
                target = None if member.linkname.startswith("/") else archive_path(joined)
                if target is None:
                    raise outside_error(f"{member.name} -> {member.linkname}")
                archive.add_link(path, target)
            elif member.islnk():
                target = archive_path(member.linkname)
                if target is None:
                    raise outside_error(f"{member.name} -> {member.linkname}")
                archive.add_link(path, target)
            elif member.isreg() and path:
                archive.add_file(_read_file(tar, member, path, content, archive))
            # Directories, devices and the like are skipped: nothing is extracted.


def _read_file(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    path: str,
    content: ContentStore,
    archive: _Archive,
) -> _ArchiveFile:
    source = tar.extractfile(member)
    assert source is not None  # a regular file
    chunk = source.read(min(_CHUNK, member.size))
    looks_like_json = chunk.lstrip()[:1] in (b"{", b"[")
    in_memory = member.size <= _SMALL_FILE or (looks_like_json and member.size <= _JSON_LIMIT)
    compression = compression_of(chunk)
    tar_digest = _TarDigest(compression)
    writer = None
    held = bytearray()
    if in_memory:
        archive.bytes_in_memory += member.size
        if archive.bytes_in_memory > _MEMORY_LIMIT:
            raise TransferError("the archive holds too many small files to load")
    else:
        writer = content.writer()
        archive.writers.append(writer)
    while chunk:
        if writer is not None:
            writer.write(chunk)
        else:
            held += chunk
        tar_digest.update(chunk)
        chunk = source.read(_CHUNK)
    data = None if writer is not None else bytes(held)
    digest = writer.digest if writer is not None else digest_bytes(data or b"")
    return _ArchiveFile(
        name=path,
        size=member.size,
        digest=digest,
        tar_digest=tar_digest.finish(digest),
        tar_error=tar_digest.error,
        compression=compression,
        data=data,
        writer=writer,
    )


# Deciding what to store


@dataclass
class _Plan:
    """What a load will commit once everything is checked: blobs from the archive (or built
    here) by digest, layers first, then configs, then manifests, so that nothing committed
    ever points to a blob that isn't there yet."""

    images: dict[str, LoadedImage] = field(default_factory=dict)
    layers: dict[str, _ArchiveFile | None] = field(default_factory=dict)  # None: in the store
    configs: dict[str, _ArchiveFile | None] = field(default_factory=dict)
    manifests: dict[str, _ArchiveFile | bytes | None] = field(default_factory=dict)

    def add_image(self, image: LoadedImage, tags: list[str]) -> None:
        known = self.images.get(image.manifest_digest, image)
        merged = list(known.repo_tags) + [t for t in tags if t not in known.repo_tags]
        self.images[image.manifest_digest] = LoadedImage(
            known.manifest_descriptor, known.manifest, known.config_bytes, tuple(merged)
        )

    def commit(self, content: ContentStore, hold: Callable[[str], bool] | None) -> None:
        for group in (self.layers, self.configs, self.manifests):
            for digest, source in group.items():
                if isinstance(source, bytes):
                    content.put(source, digest)
                elif source is not None:
                    source.commit(content)
                if hold is not None and not hold(digest):
                    raise TransferError(f"content digest {digest}: not found")


def _json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise TransferError(f"invalid {name}: {error}") from None


def _named(text: str) -> reference.Reference:
    try:
        return reference.parse_named(text)
    except reference.InvalidReference as error:
        raise TransferError(str(error)) from None


def _repo_tag(text: str) -> str:
    """A RepoTags entry of manifest.json as docker shows it; docker load requires a tag."""
    named = _named(text)
    if named.tag is None:
        raise TransferError(f'invalid tag "{text}"')
    return named.name_only().with_tag(named.tag).familiar


def _tags_of_entry(entry: Descriptor) -> list[str]:
    """The tag of an index.json entry: its full name from containerd's annotation, or from
    the OCI ref name when that is a full reference rather than a bare tag (``latest``), which
    names no repository and so gives no tag."""
    name = entry.annotations.get(ANNOTATION_IMAGE_NAME, "")
    ref_name = entry.annotations.get(ANNOTATION_REF_NAME, "")
    if not name and ("/" in ref_name or ":" in ref_name):
        name = ref_name
    if not name:
        return []
    named = _named(name)
    if named.tag is None and named.digest is not None:
        return []  # a digest names no tag
    return [named.name_only().with_tag(named.tag or reference.DEFAULT_TAG).familiar]


# An OCI image layout (index.json)


def _plan_oci_layout(archive: _Archive, content: ContentStore, platform: str) -> _Plan:
    layout = archive.file(LAYOUT_FILE)
    if layout is not None:
        version = _json(layout.read(), LAYOUT_FILE)
        version = version.get("imageLayoutVersion") if isinstance(version, dict) else None
        if version != LAYOUT_VERSION:
            raise TransferError(f"unsupported OCI version {version}")
    index_file = archive.file(INDEX_FILE)
    assert index_file is not None
    try:
        index = parse_index(index_file.read())
    except InvalidManifest as error:
        raise TransferError(f"{INDEX_FILE}: {error}") from None
    plan = _Plan()
    for entry in index.manifests:
        descriptor = entry
        if entry.media_type in INDEX_MEDIA_TYPES:
            nested = _blob(archive, content, entry)
            try:
                platform_index = parse_index(_bytes_of(nested, entry, content), entry.media_type)
                wanted = parse_platform(platform)
                descriptor = select_platform(
                    platform_index, wanted.os, wanted.architecture, wanted.variant
                )
            except (InvalidManifest, NoMatchingManifest) as error:
                raise TransferError(str(error)) from None
        plan.add_image(_layout_image(archive, content, descriptor, plan), _tags_of_entry(entry))
    return plan


def _blob(archive: _Archive, content: ContentStore, descriptor: Descriptor) -> _ArchiveFile | None:
    """The archive's ``blobs/<algorithm>/<hex>`` file for ``descriptor``, checked against its
    digest and size; None when the archive leaves it out and the store already has it."""
    algorithm, _, encoded = descriptor.digest.partition(":")
    if algorithm != "sha256":
        raise TransferError(f"unsupported digest algorithm: {algorithm}")
    found = archive.file(f"blobs/{algorithm}/{encoded}")
    if found is None:
        if content.exists(descriptor.digest):
            stored_size = content.info(descriptor.digest).size
            if stored_size != descriptor.size:
                raise TransferError(
                    f"unexpected commit size {stored_size}, expected {descriptor.size}: "
                    "failed precondition"
                )
            return None
        raise TransferError(f"content digest {descriptor.digest}: not found")
    if found.digest != descriptor.digest:
        raise TransferError(
            f"unexpected commit digest {found.digest}, expected {descriptor.digest}: "
            "failed precondition"
        )
    if found.size != descriptor.size:
        raise TransferError(
            f"unexpected commit size {found.size}, expected {descriptor.size}: failed precondition"
        )
    return found


def _bytes_of(source: _ArchiveFile | None, descriptor: Descriptor, content: ContentStore) -> bytes:
    if source is not None:
        return source.read()
    if descriptor.size > _JSON_LIMIT:
        raise TransferError(f"{descriptor.digest}: too large for a manifest, index or config")
    return content.read(descriptor.digest)


def _layout_image(
    archive: _Archive, content: ContentStore, descriptor: Descriptor, plan: _Plan
) -> LoadedImage:
    manifest_source = _blob(archive, content, descriptor)
    try:
        manifest = parse_image_manifest(
            _bytes_of(manifest_source, descriptor, content), descriptor.media_type
        )
    except InvalidManifest as error:
        raise TransferError(f"{descriptor.digest}: {error}") from None
    if manifest.config.media_type not in CONFIG_MEDIA_TYPES:
        raise TransferError(
            f"{descriptor.digest}: unsupported config media type {manifest.config.media_type}"
        )
    config_source = _blob(archive, content, manifest.config)
    config_bytes = _bytes_of(config_source, manifest.config, content)
    config = _parse_config(config_bytes, manifest.config.digest)
    _check_layer_count(len(manifest.layers), config)
    layer_sources = []
    for number, layer in enumerate(manifest.layers):
        if layer.media_type not in LAYER_COMPRESSION:
            raise TransferError(f"unsupported layer media type {layer.media_type}")
        source = _blob(archive, content, layer)
        if source is not None:
            tar_digest, error = source.tar_digest, source.tar_error
        else:
            tar_digest, error = _stored_tar_digest(content, layer.digest)
        _check_diff_id(number, config, tar_digest, error)
        layer_sources.append((layer.digest, source))
    plan.layers.update(layer_sources)
    plan.configs[manifest.config.digest] = config_source
    plan.manifests[descriptor.digest] = manifest_source
    manifest_descriptor = Descriptor(
        descriptor.media_type, descriptor.digest, descriptor.size, platform=descriptor.platform
    )
    return LoadedImage(manifest_descriptor, manifest, config_bytes)


def _stored_tar_digest(content: ContentStore, digest: str) -> tuple[str | None, str]:
    """The diffID of a layer blob that is already in the store, read back from it."""
    with content.open(digest) as blob:
        chunk = blob.read(_CHUNK)
        tar_digest = _TarDigest(compression_of(chunk))
        while chunk:
            tar_digest.update(chunk)
            chunk = blob.read(_CHUNK)
    return tar_digest.finish(digest), tar_digest.error


def _parse_config(data: bytes, digest: str) -> ImageConfig:
    try:
        return parse_image_config(data)
    except InvalidImageConfig as error:
        raise TransferError(f"{digest}: {error}") from None


def _check_layer_count(layers: int, config: ImageConfig) -> None:
    if layers != len(config.diff_ids):
        raise TransferError(
            f"invalid manifest, layers length mismatch: expected {layers}, "
            f"got {len(config.diff_ids)}"
        )


def _check_diff_id(number: int, config: ImageConfig, tar_digest: str | None, error: str) -> None:
    if tar_digest is None:
        raise TransferError(f"layer {number}: {error}")
    expected = config.diff_ids[number]
    if tar_digest != expected:
        raise TransferError(
            f'invalid diffID for layer {number}: expected "{expected}", got "{tar_digest}"'
        )


# A docker-archive (manifest.json)


def _plan_docker_archive(archive: _Archive, content: ContentStore) -> _Plan:
    manifest_file = archive.file(MANIFEST_FILE)
    assert manifest_file is not None
    items = _json(manifest_file.read(), MANIFEST_FILE)
    if items is None:
        raise TransferError("invalid manifest, manifest cannot be null (but can be [])")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise TransferError(f"invalid {MANIFEST_FILE}: expected a list of objects")
    plan = _Plan()
    for item in items:
        image, tags = _archive_image(archive, item, plan)
        plan.add_image(image, tags)
    return plan


def _string_list(item: dict[str, Any], key: str) -> list[str]:
    value = item.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(entry, str) for entry in value):
        raise TransferError(f"invalid {MANIFEST_FILE}: {key} must be a list of strings")
    return value


def _archive_file(archive: _Archive, path: Any, what: str) -> _ArchiveFile:
    if not isinstance(path, str):
        raise TransferError(f"invalid {MANIFEST_FILE}: {what} must be a path")
    cleaned = archive_path(path)
    if cleaned is None:
        raise outside_error(path)
    found = archive.file(cleaned)
    if found is None:
        raise TransferError(f'{what} "{path}" not found')
    return found


def _archive_image(
    archive: _Archive, item: dict[str, Any], plan: _Plan
) -> tuple[LoadedImage, list[str]]:
    config_file = _archive_file(archive, item.get("Config"), "image config")
    config = _parse_config(config_file.read(), config_file.digest)
    layer_paths = _string_list(item, "Layers")
    tags = [_repo_tag(tag) for tag in _string_list(item, "RepoTags")]
    _check_layer_count(len(layer_paths), config)
    layers = []
    for number, path in enumerate(layer_paths):
        layer_file = _archive_file(archive, path, "layer")
        _check_diff_id(number, config, layer_file.tar_digest, layer_file.tar_error)
        media_type = OCI_LAYER_GZIP if layer_file.compression == "gzip" else OCI_LAYER
        layers.append(Descriptor(media_type, layer_file.digest, layer_file.size))
        plan.layers[layer_file.digest] = layer_file
    manifest = Manifest(
        config=Descriptor(OCI_CONFIG, config_file.digest, config_file.size),
        layers=tuple(layers),
        media_type=OCI_MANIFEST,
    )
    manifest_bytes = manifest.to_bytes()
    descriptor = Descriptor(
        OCI_MANIFEST, digest_bytes(manifest_bytes), len(manifest_bytes), platform=config.platform
    )
    plan.configs[config_file.digest] = config_file
    plan.manifests[descriptor.digest] = manifest_bytes
    return LoadedImage(descriptor, manifest, config_file.read()), tags
