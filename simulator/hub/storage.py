"""The hub's data on disk: repositories with their manifests, tags and blob links, and the
upload sessions that fill them. The bytes themselves live in a ContentStore.

Layout under the hub's root::

    content/                                    the ContentStore: every blob and manifest
    repositories/<name>/_manifests/<hex>        one per manifest in the repository: {"mediaType"}
    repositories/<name>/_tags/<tag>             the digest the tag points at

A repository holds its blobs and manifests by reference in the content store: the owner
``repo/<name>`` for a blob linked into it (uploaded, mounted, or published), and
``repo/<name>/_manifests`` for its manifests. ``_`` cannot start a name component, so these
never clash with a repository's name. A blob that loses its last reference is deleted.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
import uuid as uuid_module
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from simulator.content import (
    BlobInfo,
    BlobNotFound,
    BlobWriter,
    ContentStore,
    DigestMismatch,
    InvalidDigest,
    SizeMismatch,
    digest_bytes,
    parse_digest,
)
from simulator.hub.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
)
from simulator.images.oci import (
    DOCKER_MANIFEST_SCHEMA1,
    DOCKER_MANIFEST_SCHEMA1_SIGNED,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)

DEFAULT_ROOT = Path("/var/lib/slipway/hub")

IMAGE_MANIFEST_TYPES = MANIFEST_MEDIA_TYPES
INDEX_TYPES = INDEX_MEDIA_TYPES
DOCKER_SCHEMA1_TYPES = frozenset({DOCKER_MANIFEST_SCHEMA1, DOCKER_MANIFEST_SCHEMA1_SIGNED})
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MAX_NAME_LENGTH = 255
UPLOAD_IDLE_SECONDS = 3600.0  # an upload session untouched this long is cancelled

_NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_NAME = re.compile(rf"{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_MANIFESTS_DIR = "_manifests"
_TAGS_DIR = "_tags"
_CHUNK_SIZE = 1 << 20


def check_repository_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise NameInvalid."""
    if len(name) > MAX_NAME_LENGTH or not _REPOSITORY_NAME.fullmatch(name):
        raise NameInvalid({"name": name})
    return name


def is_valid_tag(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None


def is_digest_reference(reference: str) -> bool:
    """A manifest reference is a digest when it names an algorithm (``sha256:...``)."""
    return ":" in reference


def check_digest(digest: str) -> str:
    """Return ``digest`` if this registry can address it (sha256), else raise DigestInvalid."""
    try:
        parse_digest(digest)
    except InvalidDigest as error:
        raise DigestInvalid(str(error)) from None
    return digest


@dataclass(frozen=True)
class Manifest:
    """A stored manifest: its digest, its media type, and its bytes exactly as pushed."""

    digest: str
    media_type: str
    data: bytes


@dataclass
class Upload:
    """A blob upload session: bytes arrive in order into one content-store writer."""

    uuid: str
    repository: str
    writer: BlobWriter
    lock: threading.Lock = field(default_factory=threading.Lock)
    touched: float = field(default_factory=time.monotonic)

    @property
    def size(self) -> int:
        return self.writer.size


def parse_manifest(data: bytes, content_type: str | None = None) -> tuple[str, dict[str, Any]]:
    """Check a pushed manifest and return its media type and its parsed document.

    The media type is the document's ``mediaType``, else the request's Content-Type when that
    is a manifest type, else inferred from the document's shape."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ManifestInvalid("manifest is not valid JSON") from None
    if not isinstance(document, dict):
        raise ManifestInvalid("manifest is not a JSON object")
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType is not a string")
    header = (content_type or "").split(";", 1)[0].strip().lower()
    known = IMAGE_MANIFEST_TYPES | INDEX_TYPES | DOCKER_SCHEMA1_TYPES
    if header not in known:
        header = ""
    if declared and header and declared != header:
        raise ManifestInvalid(f"mediaType {declared} does not match Content-Type {header}")
    media_type = declared or header or (OCI_INDEX if "manifests" in document else OCI_MANIFEST)
    if media_type in DOCKER_SCHEMA1_TYPES:
        raise ManifestInvalid("Docker image manifest schema 1 is not supported")
    if media_type not in IMAGE_MANIFEST_TYPES | INDEX_TYPES:
        raise ManifestInvalid(f"unsupported manifest media type {media_type}")
    if document.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    if media_type in IMAGE_MANIFEST_TYPES:
        _check_descriptor(document.get("config"), "config")
        layers = document.get("layers")
        if not isinstance(layers, list):
            raise ManifestInvalid("layers must be a list")
        for number, layer in enumerate(layers):
            _check_descriptor(layer, f"layers[{number}]")
    else:
        children = document.get("manifests")
        if not isinstance(children, list):
            raise ManifestInvalid("manifests must be a list")
        for number, child in enumerate(children):
            _check_descriptor(child, f"manifests[{number}]")
    if "subject" in document:
        _check_descriptor(document["subject"], "subject")
    return media_type, document


def _check_descriptor(descriptor: Any, where: str) -> None:
    if not isinstance(descriptor, dict):
        raise ManifestInvalid(f"{where} is not a descriptor")
    if not isinstance(descriptor.get("mediaType"), str):
        raise ManifestInvalid(f"{where} has no mediaType")
    size = descriptor.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where} has no valid size")
    digest = descriptor.get("digest")
    try:
        parse_digest(digest)
    except InvalidDigest:
        raise ManifestInvalid(f"{where} has an invalid digest {digest!r}") from None


def _is_foreign_layer(descriptor: dict[str, Any]) -> bool:
    """A layer the registry need not hold: it names URLs to fetch it from instead."""
    return bool(descriptor.get("urls"))


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        with temporary.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _chunks_of(source: bytes | BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield bytes(source)
    elif hasattr(source, "read"):
        while chunk := source.read(_CHUNK_SIZE):
            yield chunk
    else:
        yield from source


class HubStorage:
    """The hub's repositories, backed by a ContentStore at ``<root>/content``.

    Safe to share between the threads of one server. Use it as a context manager, or call
    close(), so that unfinished upload sessions are cancelled."""

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        self.content = ContentStore(self.root / "content")
        self._repositories = self.root / "repositories"
        self._repositories.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()  # links, manifests and tags change under it
        self._uploads: dict[str, Upload] = {}

    def __enter__(self) -> HubStorage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancel every upload session still open."""
        with self._lock:
            uploads = list(self._uploads.values())
            self._uploads.clear()
        for upload in uploads:
            upload.writer.abort()

    # Repositories and tags

    def repositories(self) -> list[str]:
        """Every repository holding at least one manifest, in lexical order."""
        names = []
        for directory, subdirectories, _ in os.walk(self._repositories):
            subdirectories[:] = [name for name in subdirectories if not name.startswith("_")]
            if self._has_entries(Path(directory) / _MANIFESTS_DIR):
                names.append(Path(directory).relative_to(self._repositories).as_posix())
        return sorted(names)

    def repository_exists(self, repository: str) -> bool:
        return self._has_entries(self._repository_dir(repository) / _MANIFESTS_DIR)

    def tags(self, repository: str) -> list[str]:
        """The repository's tags, in lexical order; NameUnknown if it holds nothing."""
        if not self.repository_exists(repository):
            raise NameUnknown({"name": repository})
        return sorted(self._entries(self._repository_dir(repository) / _TAGS_DIR))

    def tag(self, repository: str, tag: str, digest: str) -> None:
        """Point ``tag`` at a manifest already in the repository."""
        if not is_valid_tag(tag):
            raise ManifestInvalid(f"invalid tag {tag!r}")
        check_digest(digest)
        with self._lock:
            if not self._manifest_record(repository, digest).is_file():
                raise ManifestUnknown({"digest": digest})
            _write_atomically(self._tag_file(repository, tag), digest.encode())

    def delete_tag(self, repository: str, tag: str) -> None:
        """Remove a tag; the manifest it pointed at stays."""
        if not is_valid_tag(tag):
            raise ManifestUnknown({"tag": tag})
        with self._lock:
            try:
                self._tag_file(repository, tag).unlink()
            except FileNotFoundError:
                raise ManifestUnknown({"tag": tag}) from None

    # Manifests

    def resolve(self, repository: str, reference: str) -> str:
        """The digest of the manifest that ``reference`` (a tag or a digest) names."""
        check_repository_name(repository)
        if is_digest_reference(reference):
            check_digest(reference)
            if not self._manifest_record(repository, reference).is_file():
                raise ManifestUnknown({"digest": reference})
            return reference
        if not is_valid_tag(reference):
            raise ManifestUnknown({"tag": reference})
        try:
            return self._tag_file(repository, reference).read_text()
        except (FileNotFoundError, NotADirectoryError):
            raise ManifestUnknown({"tag": reference}) from None

    def manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest that ``reference`` names, with its bytes exactly as pushed."""
        digest = self.resolve(repository, reference)
        try:
            record = json.loads(self._manifest_record(repository, digest).read_bytes())
            data = self.content.read(digest)
        except (FileNotFoundError, BlobNotFound):  # deleted since we resolved it
            raise ManifestUnknown({"digest": digest}) from None
        return Manifest(digest, record["mediaType"], data)

    def has_manifest(self, repository: str, digest: str) -> bool:
        return self._manifest_record(repository, check_digest(digest)).is_file()

    def put_manifest(
        self, repository: str, reference: str, data: bytes, media_type: str | None = None
    ) -> Manifest:
        """Store a manifest under a tag or its digest, after checking that the repository
        holds everything it references. Nothing is written unless every check passes."""
        check_repository_name(repository)
        digest = digest_bytes(data)
        tag = None
        if is_digest_reference(reference):
            check_digest(reference)
            if reference != digest:
                raise DigestInvalid(f"digest mismatch: expected {reference}, got {digest}")
        elif is_valid_tag(reference):
            tag = reference
        else:
            raise ManifestInvalid(f"invalid tag {reference!r}")
        if len(data) > MAX_MANIFEST_SIZE:
            raise SizeInvalid(f"manifest larger than {MAX_MANIFEST_SIZE} bytes", status=413)
        media_type, document = parse_manifest(data, media_type)
        with self._lock:
            self._check_references(repository, media_type, document)
            self.content.put(data, digest)
            self.content.add_ref(digest, self._manifest_owner(repository))
            _write_atomically(
                self._manifest_record(repository, digest),
                json.dumps({"mediaType": media_type}).encode(),
            )
            if tag is not None:
                _write_atomically(self._tag_file(repository, tag), digest.encode())
        return Manifest(digest, media_type, data)

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Remove a manifest and every tag pointing at it."""
        check_repository_name(repository)
        check_digest(digest)
        with self._lock:
            record = self._manifest_record(repository, digest)
            if not record.is_file():
                raise ManifestUnknown({"digest": digest})
            tags_dir = self._repository_dir(repository) / _TAGS_DIR
            for tag in self._entries(tags_dir):
                try:
                    if (tags_dir / tag).read_text() == digest:
                        (tags_dir / tag).unlink()
                except FileNotFoundError:
                    continue
            record.unlink()
            self._release(digest, self._manifest_owner(repository))

    def referrers(
        self, repository: str, digest: str, artifact_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Descriptors of the repository's manifests whose ``subject`` is ``digest``."""
        check_repository_name(repository)
        check_digest(digest)
        found = []
        for hex_digest in sorted(self._entries(self._repository_dir(repository) / _MANIFESTS_DIR)):
            try:
                manifest = self.manifest(repository, "sha256:" + hex_digest)
            except ManifestUnknown:
                continue
            document = json.loads(manifest.data)
            subject = document.get("subject")
            if not isinstance(subject, dict) or subject.get("digest") != digest:
                continue
            descriptor: dict[str, Any] = {
                "mediaType": manifest.media_type,
                "digest": manifest.digest,
                "size": len(manifest.data),
            }
            kind = document.get("artifactType")
            if not kind and manifest.media_type in IMAGE_MANIFEST_TYPES:
                kind = document["config"]["mediaType"]
            if kind:
                descriptor["artifactType"] = kind
            if document.get("annotations"):
                descriptor["annotations"] = document["annotations"]
            if artifact_type is None or descriptor.get("artifactType") == artifact_type:
                found.append(descriptor)
        return found

    # Blobs

    def has_blob(self, repository: str, digest: str) -> bool:
        """Whether the blob is linked into the repository."""
        check_digest(digest)
        return self.content.exists(digest) and self._blob_owner(repository) in self.content.refs(
            digest
        )

    def blob_info(self, repository: str, digest: str) -> BlobInfo:
        check_repository_name(repository)
        if not self.has_blob(repository, digest):
            raise BlobUnknown({"digest": digest})
        try:
            return self.content.info(digest)
        except BlobNotFound:
            raise BlobUnknown({"digest": digest}) from None

    def open_blob(self, repository: str, digest: str) -> tuple[BlobInfo, BinaryIO]:
        """The blob's info and a file open on it; the caller closes the file."""
        info = self.blob_info(repository, digest)
        try:
            return info, self.content.open(digest)
        except BlobNotFound:
            raise BlobUnknown({"digest": digest}) from None

    def put_blob(
        self,
        repository: str,
        source: bytes | BinaryIO | Iterable[bytes],
        expected: str | None = None,
    ) -> BlobInfo:
        """Store a blob (from bytes, a file, or an iterable of chunks) and link it into the
        repository. With ``expected``, a digest mismatch stores nothing."""
        check_repository_name(repository)
        if expected is not None:
            check_digest(expected)
        with self.content.writer() as writer:
            for chunk in _chunks_of(source):
                writer.write(chunk)
            return self._commit_and_link(repository, writer, expected)

    def link_blob(self, repository: str, digest: str) -> BlobInfo:
        """Link a blob already in the content store into the repository."""
        check_repository_name(repository)
        check_digest(digest)
        with self._lock:
            try:
                self.content.add_ref(digest, self._blob_owner(repository))
                return self.content.info(digest)
            except BlobNotFound:
                raise BlobUnknown({"digest": digest}) from None

    def mount_blob(self, repository: str, digest: str, source: str | None) -> BlobInfo | None:
        """Link a blob from the ``source`` repository (or from any repository when
        ``source`` is None); None when there is nothing to mount."""
        check_repository_name(repository)
        check_digest(digest)
        with self._lock:
            owners = self.content.refs(digest) if self.content.exists(digest) else set()
            if source is not None:
                if not _REPOSITORY_NAME.fullmatch(source):
                    return None
                mountable = self._blob_owner(source) in owners
            else:
                mountable = any(
                    owner.startswith("repo/") and not owner.endswith("/" + _MANIFESTS_DIR)
                    for owner in owners
                )
            if not mountable:
                return None
            return self.link_blob(repository, digest)

    def delete_blob(self, repository: str, digest: str) -> None:
        """Unlink a blob from the repository; it is deleted once nothing else holds it."""
        check_repository_name(repository)
        check_digest(digest)
        with self._lock:
            if not self.has_blob(repository, digest):
                raise BlobUnknown({"digest": digest})
            self._release(digest, self._blob_owner(repository))

    def collect(self) -> list[str]:
        """Delete every blob in the content store that nothing holds (left, for example, by
        a process that died between writing a blob and linking it); return their digests."""
        with self._lock:
            return self.content.collect()

    # Upload sessions

    def start_upload(self, repository: str) -> Upload:
        check_repository_name(repository)
        self._cancel_idle_uploads()
        upload = Upload(str(uuid_module.uuid4()), repository, self.content.writer())
        with self._lock:
            self._uploads[upload.uuid] = upload
        return upload

    def upload_size(self, repository: str, upload_id: str) -> int:
        with self._claim_upload(repository, upload_id) as upload:
            return upload.size

    def write_upload(
        self,
        repository: str,
        upload_id: str,
        chunks: Iterable[bytes],
        offset: int | None = None,
    ) -> int:
        """Append chunks to an upload session and return its size. With ``offset``, the
        chunks must start where the upload stands (else 416). If reading the chunks fails
        part way, the session is cancelled: its bytes can no longer be trusted."""
        with self._claim_upload(repository, upload_id) as upload:
            self._append(upload, chunks, offset)
            return upload.size

    def finish_upload(
        self,
        repository: str,
        upload_id: str,
        digest: str,
        chunks: Iterable[bytes] = (),
        offset: int | None = None,
    ) -> BlobInfo:
        """Append the last chunks, verify the whole blob against ``digest``, and link it into
        the repository. A mismatch cancels the session and stores nothing."""
        with self._claim_upload(repository, upload_id) as upload:
            check_digest(digest)
            self._append(upload, chunks, offset)
            try:
                return self._commit_and_link(repository, upload.writer, digest)
            finally:
                self._forget_upload(upload)

    def cancel_upload(self, repository: str, upload_id: str) -> None:
        with self._claim_upload(repository, upload_id) as upload:
            self._forget_upload(upload)

    # Internals

    def _append(self, upload: Upload, chunks: Iterable[bytes], offset: int | None) -> None:
        if offset is not None and offset != upload.size:
            raise BlobUploadInvalid(
                f"chunk starts at byte {offset}, but the upload holds {upload.size} bytes",
                status=416,
            )
        try:
            for chunk in chunks:
                upload.writer.write(chunk)
        except BaseException:
            self._forget_upload(upload)
            raise
        upload.touched = time.monotonic()

    def _commit_and_link(
        self, repository: str, writer: BlobWriter, expected: str | None
    ) -> BlobInfo:
        # Under the lock, so that no delete in this process frees the blob between its
        # commit (which may find it already there) and the link that holds it.
        with self._lock:
            try:
                info = writer.commit(expected)
            except DigestMismatch as error:
                raise DigestInvalid(str(error)) from None
            except SizeMismatch as error:
                raise SizeInvalid(str(error)) from None
            self.content.add_ref(info.digest, self._blob_owner(repository))
        return info

    @contextmanager
    def _claim_upload(self, repository: str, upload_id: str) -> Iterator[Upload]:
        """Hold an upload session for one request; BlobUploadUnknown if it is not open."""
        check_repository_name(repository)
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None or upload.repository != repository:
            raise BlobUploadUnknown({"uuid": upload_id})
        with upload.lock:
            if self._uploads.get(upload_id) is not upload:  # finished or cancelled meanwhile
                raise BlobUploadUnknown({"uuid": upload_id})
            upload.touched = time.monotonic()
            yield upload

    def _forget_upload(self, upload: Upload) -> None:
        with self._lock:
            self._uploads.pop(upload.uuid, None)
        upload.writer.abort()  # a no-op once committed

    def _cancel_idle_uploads(self) -> None:
        cutoff = time.monotonic() - UPLOAD_IDLE_SECONDS
        with self._lock:
            idle = [upload for upload in self._uploads.values() if upload.touched < cutoff]
        for upload in idle:
            if upload.lock.acquire(blocking=False):
                try:
                    self._forget_upload(upload)
                finally:
                    upload.lock.release()

    def _check_references(self, repository: str, media_type: str, document: dict) -> None:
        if media_type in IMAGE_MANIFEST_TYPES:
            for descriptor in [document["config"], *document["layers"]]:
                if _is_foreign_layer(descriptor):
                    continue
                digest = descriptor["digest"]
                if not self.has_blob(repository, digest):
                    raise ManifestBlobUnknown({"digest": digest})
                size = self.content.info(digest).size
                if size != descriptor["size"]:
                    raise ManifestInvalid(
                        f"blob {digest} is {size} bytes, but its descriptor says "
                        f"{descriptor['size']}"
                    )
        else:
            for descriptor in document["manifests"]:
                if not self.has_manifest(repository, descriptor["digest"]):
                    raise ManifestBlobUnknown({"digest": descriptor["digest"]})

    def _release(self, digest: str, owner: str) -> None:
        """Drop ``owner``'s hold on a blob, and delete the blob if nothing holds it now."""
        self.content.remove_ref(digest, owner)
        try:
            if not self.content.refs(digest):
                self.content.delete(digest)
        except BlobNotFound:
            pass

    def _repository_dir(self, repository: str) -> Path:
        return self._repositories / check_repository_name(repository)

    def _manifest_record(self, repository: str, digest: str) -> Path:
        return self._repository_dir(repository) / _MANIFESTS_DIR / parse_digest(digest)

    def _tag_file(self, repository: str, tag: str) -> Path:
        return self._repository_dir(repository) / _TAGS_DIR / tag

    @staticmethod
    def _blob_owner(repository: str) -> str:
        return f"repo/{repository}"

    @staticmethod
    def _manifest_owner(repository: str) -> str:
        return f"repo/{repository}/{_MANIFESTS_DIR}"

    @staticmethod
    def _entries(directory: Path) -> list[str]:
        try:
            return [name for name in os.listdir(directory) if not name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _has_entries(self, directory: Path) -> bool:
        return bool(self._entries(directory))
