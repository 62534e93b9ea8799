"""Image formats: OCI and Docker media types, descriptors, manifests and indexes (parsed from
either format), image configs with their history, canonical JSON, and chain IDs."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulator.content.store import InvalidDigest, digest_bytes, parse_digest

# Media types

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_MANIFEST_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_MEDIA_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_MEDIA_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
# How each layer media type is compressed: "gzip", "zstd", or "" for a plain tar.
LAYER_COMPRESSION = {
    OCI_LAYER: "",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDISTRIBUTABLE: "",
    OCI_LAYER_NONDISTRIBUTABLE_GZIP: "gzip",
    OCI_LAYER_NONDISTRIBUTABLE_ZSTD: "zstd",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_FOREIGN_LAYER_GZIP: "gzip",
}
LAYER_MEDIA_TYPES = frozenset(LAYER_COMPRESSION)
# The Accept header of a pull, most preferred first.
MANIFEST_ACCEPT = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)

_SCHEMA1_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_SCHEMA1, DOCKER_MANIFEST_SCHEMA1_SIGNED})
_SCHEMA1_REMOVED = (
    "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, "
    "schema 1 support has been removed. Suggest the author of the image to upgrade the image "
    "to the OCI Format or Docker Image manifest v2, schema 2."
)
# The OCI descriptor's digest grammar; sha256 and sha512 also have fixed lengths.
_DIGEST_PATTERN = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_RFC3339_PATTERN = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
# Architecture names other tools use, and the variant an architecture means by default.
_ARCHITECTURE_ALIASES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
}
_DEFAULT_VARIANTS = {"arm64": "v8", "arm": "v7"}


class InvalidManifest(ValueError):
    """A manifest or index that can't be read, or that breaks the spec."""


class UnsupportedManifest(InvalidManifest):
    """A manifest of a media type we don't accept (Docker schema 1, or unknown)."""


class InvalidImageConfig(ValueError):
    """An image config that can't be read, or that breaks the spec."""


class NoMatchingManifest(LookupError):
    """An index with no entry for the platform asked for; the message is Docker's."""


# JSON, digests, times


def canonical_json(obj: Any) -> bytes:
    """The bytes we write for manifests, indexes and configs: compact, keys sorted, UTF-8.
    The same object always gives the same bytes, so it always gives the same digest."""
    text = json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The chain ID of each layer stack (OCI image spec): the first is the first diffID, and
    each next one is sha256 of ``"<previous chain ID> <diffID>"``."""
    chain: list[str] = []
    for diff_id in diff_ids:
        parse_digest(diff_id)
        if not chain:
            chain.append(diff_id)
        else:
            chain.append(digest_bytes(f"{chain[-1]} {diff_id}".encode()))
    return chain


def image_id(config_bytes: bytes) -> str:
    """An image's ID: the digest of its config blob, exactly as stored."""
    return digest_bytes(config_bytes)


def rfc3339(moment: datetime | None = None) -> str:
    """``moment`` (now by default; naive means UTC) as RFC 3339 in UTC, the way Go writes it:
    ``2024-05-01T12:00:00Z``, with fractional seconds only when there are some."""
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    fraction = f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def is_rfc3339(text: str) -> bool:
    return isinstance(text, str) and _RFC3339_PATTERN.fullmatch(text) is not None


def _check_descriptor_digest(digest: Any, where: str) -> str:
    if not isinstance(digest, str) or not _DIGEST_PATTERN.fullmatch(digest):
        raise InvalidManifest(f'{where}: invalid digest "{digest}"')
    algorithm, _, encoded = digest.partition(":")
    length = _DIGEST_HEX_LENGTHS.get(algorithm)
    if length is not None and not re.fullmatch(rf"[a-f0-9]{{{length}}}", encoded):
        raise InvalidManifest(f'{where}: invalid digest "{digest}"')
    return digest


def _string_map(value: Any, where: str, error: type[ValueError]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise error(f"{where}: expected an object of strings")
    return dict(value)


def _string_list(value: Any, where: str, error: type[ValueError]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise error(f"{where}: expected a list of strings")
    return list(value)


def _string(value: Any, where: str, error: type[ValueError]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise error(f"{where}: expected a string")
    return value


# Descriptors


@dataclass(frozen=True)
class Platform:
    """The platform an image runs on, as an index entry names it."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            result["variant"] = self.variant
        if self.os_version:
            result["os.version"] = self.os_version
        if self.os_features:
            result["os.features"] = list(self.os_features)
        return result

    @classmethod
    def from_dict(cls, obj: Any, where: str = "platform") -> Platform:
        if not isinstance(obj, dict):
            raise InvalidManifest(f"{where}: expected an object")
        os_name, architecture = obj.get("os"), obj.get("architecture")
        if not isinstance(os_name, str) or not isinstance(architecture, str):
            raise InvalidManifest(f"{where}: os and architecture must be strings")
        return cls(
            os=os_name,
            architecture=architecture,
            variant=_string(obj.get("variant"), f"{where}.variant", InvalidManifest),
            os_version=_string(obj.get("os.version"), f"{where}.os.version", InvalidManifest),
            os_features=tuple(
                _string_list(obj.get("os.features"), f"{where}.os.features", InvalidManifest)
            ),
        )

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


@dataclass(frozen=True)
class Descriptor:
    """A pointer to a blob: its media type, digest and size, and optionally the platform it is
    for, annotations, and URLs (foreign layers)."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    urls: tuple[str, ...] = ()
    artifact_type: str = ""

    @classmethod
    def for_bytes(
        cls,
        media_type: str,
        data: bytes,
        *,
        platform: Platform | None = None,
        annotations: dict[str, str] | None = None,
    ) -> Descriptor:
        """The descriptor of ``data``."""
        return cls(media_type, digest_bytes(data), len(data), platform, dict(annotations or {}))

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.urls:
            result["urls"] = list(self.urls)
        if self.annotations:
            result["annotations"] = dict(self.annotations)
        if self.platform is not None:
            result["platform"] = self.platform.to_dict()
        if self.artifact_type:
            result["artifactType"] = self.artifact_type
        return result

    @classmethod
    def from_dict(cls, obj: Any, where: str = "descriptor") -> Descriptor:
        if not isinstance(obj, dict):
            raise InvalidManifest(f"{where}: expected an object")
        media_type, size = obj.get("mediaType"), obj.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise InvalidManifest(f"{where}.mediaType: expected a media type")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidManifest(f"{where}.size: expected a size in bytes")
        platform = obj.get("platform")
        if platform is not None:
            platform = Platform.from_dict(platform, f"{where}.platform")
        error = InvalidManifest
        return cls(
            media_type=media_type,
            digest=_check_descriptor_digest(obj.get("digest"), f"{where}.digest"),
            size=size,
            platform=platform,
            annotations=_string_map(obj.get("annotations"), f"{where}.annotations", error),
            urls=tuple(_string_list(obj.get("urls"), f"{where}.urls", error)),
            artifact_type=_string(obj.get("artifactType"), f"{where}.artifactType", error),
        )


# Manifests and indexes


@dataclass(frozen=True)
class Manifest:
    """An image manifest, OCI or Docker schema 2: a config and its layers, in order."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = OCI_MANIFEST
    annotations: dict[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str = ""

    @property
    def is_image(self) -> bool:
        """Whether the config is an image config (not some other artifact's)."""
        return self.config.media_type in CONFIG_MEDIA_TYPES

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }
        if self.annotations:
            result["annotations"] = dict(self.annotations)
        if self.subject is not None:
            result["subject"] = self.subject.to_dict()
        if self.artifact_type:
            result["artifactType"] = self.artifact_type
        return result

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())


@dataclass(frozen=True)
class Index:
    """An OCI index or a Docker manifest list: one entry per platform (or artifact)."""

    manifests: tuple[Descriptor, ...]
    media_type: str = OCI_INDEX
    annotations: dict[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str = ""

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "manifests": [entry.to_dict() for entry in self.manifests],
        }
        if self.annotations:
            result["annotations"] = dict(self.annotations)
        if self.subject is not None:
            result["subject"] = self.subject.to_dict()
        if self.artifact_type:
            result["artifactType"] = self.artifact_type
        return result

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())


def parse_manifest(data: bytes, media_type: str | None = None) -> Manifest | Index:
    """Read a manifest or an index, OCI or Docker schema 2. ``media_type`` is what the
    registry or file said it was (a Content-Type); the ``mediaType`` field, when present,
    must agree with it."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidManifest(f"invalid manifest: not JSON: {error}") from None
    if not isinstance(obj, dict):
        raise InvalidManifest("invalid manifest: expected a JSON object")
    schema_version = obj.get("schemaVersion")
    if schema_version == 1:
        raise UnsupportedManifest(_SCHEMA1_REMOVED)
    if schema_version != 2 or isinstance(schema_version, bool):
        raise InvalidManifest(f"invalid manifest: unsupported schemaVersion {schema_version!r}")
    kind = _manifest_media_type(obj, media_type)
    if kind in INDEX_MEDIA_TYPES:
        return _parse_index(obj, kind)
    return _parse_image_manifest(obj, kind)


def parse_image_manifest(data: bytes, media_type: str | None = None) -> Manifest:
    """Like parse_manifest, for when only an image manifest will do."""
    parsed = parse_manifest(data, media_type)
    if not isinstance(parsed, Manifest):
        raise InvalidManifest("invalid manifest: expected a manifest but found an index")
    return parsed


def parse_index(data: bytes, media_type: str | None = None) -> Index:
    """Like parse_manifest, for when only an index will do."""
    parsed = parse_manifest(data, media_type)
    if not isinstance(parsed, Index):
        raise InvalidManifest("invalid manifest: expected an index but found a manifest")
    return parsed


def _manifest_media_type(obj: dict[str, Any], given: str | None) -> str:
    """The media type: the document's own field, else the one given, else by its shape."""
    declared = obj.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise InvalidManifest("invalid manifest: mediaType must be a string")
    known = MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES | _SCHEMA1_MEDIA_TYPES
    given = given.split(";", 1)[0].strip() if given else None
    if declared and given in known and declared != given:
        raise InvalidManifest(
            f"invalid manifest: mediaType in manifest should be '{given}' not '{declared}'"
        )
    kind = declared or (given if given in known else None)
    if kind is None:
        kind = OCI_INDEX if "manifests" in obj else OCI_MANIFEST
    if kind in _SCHEMA1_MEDIA_TYPES:
        raise UnsupportedManifest(_SCHEMA1_REMOVED)
    if kind not in MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES:
        raise UnsupportedManifest(
            f"unsupported manifest media type and no default available: {kind}"
        )
    return kind


def _parse_image_manifest(obj: dict[str, Any], media_type: str) -> Manifest:
    if "manifests" in obj:
        raise InvalidManifest("invalid manifest: expected a manifest but found an index")
    if "config" not in obj:
        raise InvalidManifest("invalid manifest: config is missing")
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise InvalidManifest("invalid manifest: layers must be a list")
    subject = obj.get("subject")
    return Manifest(
        config=Descriptor.from_dict(obj["config"], "config"),
        layers=tuple(Descriptor.from_dict(layer, f"layers[{i}]") for i, layer in enumerate(layers)),
        media_type=media_type,
        annotations=_string_map(obj.get("annotations"), "annotations", InvalidManifest),
        subject=None if subject is None else Descriptor.from_dict(subject, "subject"),
        artifact_type=_string(obj.get("artifactType"), "artifactType", InvalidManifest),
    )


def _parse_index(obj: dict[str, Any], media_type: str) -> Index:
    if "config" in obj or "layers" in obj:
        raise InvalidManifest("invalid manifest: expected an index but found a manifest")
    entries = obj.get("manifests")
    if not isinstance(entries, list):
        raise InvalidManifest("invalid manifest: manifests must be a list")
    subject = obj.get("subject")
    return Index(
        manifests=tuple(
            Descriptor.from_dict(entry, f"manifests[{i}]") for i, entry in enumerate(entries)
        ),
        media_type=media_type,
        annotations=_string_map(obj.get("annotations"), "annotations", InvalidManifest),
        subject=None if subject is None else Descriptor.from_dict(subject, "subject"),
        artifact_type=_string(obj.get("artifactType"), "artifactType", InvalidManifest),
    )


def normalize_platform(os: str, arch: str, variant: str = "") -> Platform:
    """The platform as OCI names it: ``x86_64`` is amd64, ``aarch64`` arm64 (variant v8),
    ``armhf`` arm/v7; an architecture's default variant is filled in."""
    arch = arch.lower()
    arch, implied_variant = _ARCHITECTURE_ALIASES.get(arch, (arch, ""))
    variant = variant or implied_variant or _DEFAULT_VARIANTS.get(arch, "")
    if arch == "arm64" and variant == "8":
        variant = "v8"
    return Platform(os=os.lower(), architecture=arch, variant=variant)


def select_platform(
    index: Index, os: str = "linux", arch: str = "amd64", variant: str = ""
) -> Descriptor:
    """The index entry for the platform: exact matches first, then entries of the same os and
    architecture whose variant wasn't asked for, then entries that name no platform."""
    wanted = normalize_platform(os, arch, variant)
    exact, same_arch, unnamed = [], [], []
    for entry in index.manifests:
        if entry.platform is None:
            unnamed.append(entry)
            continue
        offered = normalize_platform(
            entry.platform.os, entry.platform.architecture, entry.platform.variant
        )
        if (offered.os, offered.architecture) != (wanted.os, wanted.architecture):
            continue
        if offered.variant == wanted.variant:
            exact.append(entry)
        elif not variant:
            same_arch.append(entry)
    for candidates in (exact, same_arch, unnamed):
        if candidates:
            return candidates[0]
    shown = "/".join(part for part in (os, arch, variant) if part)
    raise NoMatchingManifest(f"no matching manifest for {shown} in the manifest list entries")


# Image configs


@dataclass
class HistoryEntry:
    """One step of how the image was made. ``created`` is always written (umoci and others
    need it); ``empty_layer`` marks a step that changed only metadata."""

    created: str
    created_by: str = ""
    comment: str = ""
    author: str = ""
    empty_layer: bool = False

    def __post_init__(self) -> None:
        if not is_rfc3339(self.created):
            raise InvalidImageConfig(f'history: created is not an RFC 3339 time: "{self.created}"')

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"created": self.created}
        if self.created_by:
            result["created_by"] = self.created_by
        if self.author:
            result["author"] = self.author
        if self.comment:
            result["comment"] = self.comment
        if self.empty_layer:
            result["empty_layer"] = True
        return result

    @classmethod
    def from_dict(cls, obj: Any, default_created: str, where: str = "history") -> HistoryEntry:
        """Read an entry; one without ``created`` takes ``default_created``."""
        if not isinstance(obj, dict):
            raise InvalidImageConfig(f"{where}: expected an object")
        empty_layer = obj.get("empty_layer", False)
        if not isinstance(empty_layer, bool):
            raise InvalidImageConfig(f"{where}.empty_layer: expected true or false")
        return cls(
            created=_string(obj.get("created"), f"{where}.created", InvalidImageConfig)
            or default_created,
            created_by=_string(obj.get("created_by"), f"{where}.created_by", InvalidImageConfig),
            comment=_string(obj.get("comment"), f"{where}.comment", InvalidImageConfig),
            author=_string(obj.get("author"), f"{where}.author", InvalidImageConfig),
            empty_layer=empty_layer,
        )


def _port_with_protocol(port: str) -> str:
    return port if "/" in port else f"{port}/tcp"


@dataclass
class RunConfig:
    """How containers of the image run by default: the image config's ``config`` object."""

    user: str = ""
    env: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    working_dir: str = ""
    exposed_ports: list[str] = field(default_factory=list)  # "80/tcp"; "80" means tcp
    volumes: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    shell: list[str] | None = None
    on_build: list[str] = field(default_factory=list)
    healthcheck: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.exposed_ports = [_port_with_protocol(port) for port in self.exposed_ports]

    def to_dict(self) -> dict[str, Any]:
        """Docker's field names; empty fields are left out, as Docker leaves them out."""
        result: dict[str, Any] = {}
        if self.user:
            result["User"] = self.user
        if self.exposed_ports:
            result["ExposedPorts"] = {_port_with_protocol(p): {} for p in self.exposed_ports}
        if self.env:
            result["Env"] = list(self.env)
        if self.entrypoint is not None:
            result["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            result["Cmd"] = list(self.cmd)
        if self.volumes:
            result["Volumes"] = {volume: {} for volume in self.volumes}
        if self.working_dir:
            result["WorkingDir"] = self.working_dir
        if self.labels:
            result["Labels"] = dict(self.labels)
        if self.stop_signal:
            result["StopSignal"] = self.stop_signal
        if self.shell is not None:
            result["Shell"] = list(self.shell)
        if self.on_build:
            result["OnBuild"] = list(self.on_build)
        if self.healthcheck is not None:
            result["Healthcheck"] = dict(self.healthcheck)
        return result

    @classmethod
    def from_dict(cls, obj: Any) -> RunConfig:
        if obj is None:
            return cls()
        if not isinstance(obj, dict):
            raise InvalidImageConfig("config: expected an object")
        error = InvalidImageConfig

        def optional_list(key: str) -> list[str] | None:
            return None if obj.get(key) is None else _string_list(obj[key], f"config.{key}", error)

        def keys_of(key: str) -> list[str]:
            value = obj.get(key)
            if value is None:
                return []
            if not isinstance(value, dict):
                raise InvalidImageConfig(f"config.{key}: expected an object")
            return list(value)

        healthcheck = obj.get("Healthcheck")
        if healthcheck is not None and not isinstance(healthcheck, dict):
            raise InvalidImageConfig("config.Healthcheck: expected an object")
        return cls(
            user=_string(obj.get("User"), "config.User", error),
            env=_string_list(obj.get("Env"), "config.Env", error),
            entrypoint=optional_list("Entrypoint"),
            cmd=optional_list("Cmd"),
            working_dir=_string(obj.get("WorkingDir"), "config.WorkingDir", error),
            exposed_ports=keys_of("ExposedPorts"),
            volumes=keys_of("Volumes"),
            labels=_string_map(obj.get("Labels"), "config.Labels", error),
            stop_signal=_string(obj.get("StopSignal"), "config.StopSignal", error),
            shell=optional_list("Shell"),
            on_build=_string_list(obj.get("OnBuild"), "config.OnBuild", error),
            healthcheck=healthcheck,
        )


@dataclass
class ImageConfig:
    """An image config (the blob whose digest is the image ID): platform, run defaults, the
    layers' diffIDs (digests of the uncompressed tars), and the history of each step."""

    architecture: str = "amd64"
    os: str = "linux"
    variant: str = ""
    created: str = field(default_factory=rfc3339)
    author: str = ""
    config: RunConfig = field(default_factory=RunConfig)
    diff_ids: list[str] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)

    def add_layer(
        self, diff_id: str, created_by: str, *, created: str | None = None, comment: str = ""
    ) -> None:
        """Record a step that added a layer whose uncompressed tar has digest ``diff_id``."""
        try:
            parse_digest(diff_id)
        except InvalidDigest as error:
            raise InvalidImageConfig(f"rootfs.diff_ids: {error}") from None
        entry = HistoryEntry(created or rfc3339(), created_by, comment)
        self.diff_ids.append(diff_id)
        self.history.append(entry)

    def add_empty_layer(
        self, created_by: str, *, created: str | None = None, comment: str = ""
    ) -> None:
        """Record a step that changed only metadata (ENV, CMD, EXPOSE, ...)."""
        self.history.append(HistoryEntry(created or rfc3339(), created_by, comment, "", True))

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)

    def chain_ids(self) -> list[str]:
        return chain_ids(self.diff_ids)

    def to_dict(self) -> dict[str, Any]:
        _check_history_matches_layers(self.history, self.diff_ids)
        result: dict[str, Any] = {
            "architecture": self.architecture,
            "os": self.os,
            "created": self.created,
            "config": self.config.to_dict(),
            "rootfs": {"type": "layers", "diff_ids": list(self.diff_ids)},
            "history": [entry.to_dict() for entry in self.history],
        }
        if self.variant:
            result["variant"] = self.variant
        if self.author:
            result["author"] = self.author
        return result

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    @property
    def image_id(self) -> str:
        """The digest of to_bytes(): the ID of an image that stores this config as we write
        it. (For a config read from elsewhere, the ID is image_id() of the bytes as stored.)"""
        return image_id(self.to_bytes())

    def descriptor(self, media_type: str = OCI_CONFIG) -> Descriptor:
        return Descriptor.for_bytes(media_type, self.to_bytes())

    @classmethod
    def from_dict(cls, obj: Any) -> ImageConfig:
        """Read a config. Fields we don't model are dropped; a config without ``created``
        gets the Unix epoch, and history entries without it get the config's."""
        if not isinstance(obj, dict):
            raise InvalidImageConfig("invalid image config: expected a JSON object")
        error = InvalidImageConfig
        architecture, os_name = obj.get("architecture"), obj.get("os")
        if not isinstance(architecture, str) or not isinstance(os_name, str):
            raise InvalidImageConfig("invalid image config: architecture and os are required")
        created = _string(obj.get("created"), "created", error) or "1970-01-01T00:00:00Z"
        if not is_rfc3339(created):
            raise InvalidImageConfig(f'created is not an RFC 3339 time: "{created}"')
        rootfs = obj.get("rootfs")
        if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
            raise InvalidImageConfig('rootfs: expected an object with type "layers"')
        diff_ids = _string_list(rootfs.get("diff_ids"), "rootfs.diff_ids", error)
        for diff_id in diff_ids:
            try:
                parse_digest(diff_id)
            except InvalidDigest as digest_error:
                raise InvalidImageConfig(f"rootfs.diff_ids: {digest_error}") from None
        history = obj.get("history")
        history = [] if history is None else history
        if not isinstance(history, list):
            raise InvalidImageConfig("history: expected a list")
        entries = [
            HistoryEntry.from_dict(entry, created, f"history[{i}]")
            for i, entry in enumerate(history)
        ]
        _check_history_matches_layers(entries, diff_ids)
        return cls(
            architecture=architecture,
            os=os_name,
            variant=_string(obj.get("variant"), "variant", error),
            created=created,
            author=_string(obj.get("author"), "author", error),
            config=RunConfig.from_dict(obj.get("config")),
            diff_ids=diff_ids,
            history=entries,
        )


def parse_image_config(data: bytes) -> ImageConfig:
    """Read an image config blob (OCI or Docker; the two share one format)."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidImageConfig(f"invalid image config: not JSON: {error}") from None
    return ImageConfig.from_dict(obj)


def _check_history_matches_layers(history: Sequence[HistoryEntry], diff_ids: Sequence[str]) -> None:
    """Docker's rule: no more history steps with a layer than there are layers."""
    if sum(1 for entry in history if not entry.empty_layer) > len(diff_ids):
        raise InvalidImageConfig("too many non-empty layers in History section")
