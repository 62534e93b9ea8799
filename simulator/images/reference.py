"""Image references in Docker's grammar (distribution/reference): parse them, normalise
familiar names (``redis`` is ``docker.io/library/redis:latest``), and show them as docker does."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPOSITORY_PREFIX = "library/"
DEFAULT_TAG = "latest"
REPOSITORY_NAME_MAX_LENGTH = 255

# The grammar, piece by piece, as distribution/reference writes it.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"

# All are used with fullmatch, the equivalent of Go's ^...$ anchors.
_REFERENCE_PATTERN = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_NAME_PATTERN = re.compile(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})", re.ASCII)
_TAG_PATTERN = re.compile(_TAG, re.ASCII)
_DIGEST_PATTERN = re.compile(_DIGEST, re.ASCII)
_IMAGE_ID_PATTERN = re.compile(r"[a-f0-9]{64}")
# go-digest's own rules, applied after the grammar has matched.
_GO_DIGEST_PATTERN = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_LOWER_HEX_PATTERN = re.compile(r"[a-f0-9]+")


class InvalidReference(ValueError):
    """A string that is not a valid image reference; the message is Docker's."""


@dataclass(frozen=True)
class Reference:
    """A parsed image reference. ``tag`` and ``digest`` may both be set (``name:tag@digest``),
    as docker accepts; the digest then decides what is pulled."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """domain/path, e.g. ``docker.io/library/redis``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def string(self) -> str:
        """The canonical reference, e.g. ``docker.io/library/redis:latest``."""
        return self.name + self._suffix()

    @property
    def familiar_name(self) -> str:
        """The name as the docker CLI shows it: ``redis``, ``user/app``, ``localhost:5000/a``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        short = self.path.removeprefix(OFFICIAL_REPOSITORY_PREFIX)
        return short if "/" not in short else self.path

    @property
    def familiar(self) -> str:
        """The reference as the docker CLI shows it, e.g. ``redis:latest``."""
        return self.familiar_name + self._suffix()

    @property
    def repository_path(self) -> str:
        """The repository's name in the registry API (``/v2/<path>/manifests/...``)."""
        return self.path

    @property
    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def name_only(self) -> Reference:
        """The repository alone, without tag or digest."""
        return replace(self, tag=None, digest=None)

    def with_tag(self, tag: str) -> Reference:
        if not isinstance(tag, str) or not _TAG_PATTERN.fullmatch(tag):
            raise InvalidReference("invalid tag format")
        return replace(self, tag=tag)

    def with_digest(self, digest: str) -> Reference:
        if not isinstance(digest, str) or not _DIGEST_PATTERN.fullmatch(digest):
            raise InvalidReference("invalid digest format")
        return replace(self, digest=digest)

    def __str__(self) -> str:
        return self.string

    def _suffix(self) -> str:
        suffix = f":{self.tag}" if self.tag is not None else ""
        return suffix + (f"@{self.digest}" if self.digest is not None else "")


def parse(text: str) -> Reference:
    """Parse and normalise ``text`` as ``docker pull`` does: the tag ``latest`` is added
    when there is neither a tag nor a digest."""
    reference = parse_named(text)
    return reference.with_tag(DEFAULT_TAG) if reference.is_name_only else reference


def parse_named(text: str) -> Reference:
    """Parse and normalise ``text`` without adding a default tag (distribution's
    ParseNormalizedNamed): ``redis`` is ``docker.io/library/redis``."""
    if not isinstance(text, str):
        raise InvalidReference("invalid reference format")
    if _IMAGE_ID_PATTERN.fullmatch(text):
        raise InvalidReference(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(text)
    remote_name = remainder.split(":", 1)[0]
    if remote_name.lower() != remote_name:
        raise InvalidReference(
            f"invalid reference format: repository name ({remote_name}) must be lowercase"
        )
    return _parse_canonical(f"{domain}/{remainder}")


def _split_docker_domain(text: str) -> tuple[str, str]:
    """Split off the registry: the first component is one when it is ``localhost``, holds a
    ``.`` or a ``:``, or has uppercase letters; otherwise the registry is docker.io."""
    first, slash, rest = text.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPOSITORY_PREFIX + text
    if first == LEGACY_DEFAULT_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, rest
    elif first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, text
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPOSITORY_PREFIX + remainder
    return domain, remainder


def _parse_canonical(text: str) -> Reference:
    """distribution's Parse: the grammar, the name's length, then the digest's own rules."""
    match = _REFERENCE_PATTERN.fullmatch(text)
    if match is None:
        lowered = text.lower()
        if lowered != text and _REFERENCE_PATTERN.fullmatch(lowered):
            raise InvalidReference("repository name must be lowercase")
        raise InvalidReference("invalid reference format")
    name, tag, digest = match.groups()
    name_match = _NAME_PATTERN.fullmatch(name)
    assert name_match is not None  # the reference pattern matched this name already
    domain, path = name_match.group(1) or "", name_match.group(2)
    if len(path) > REPOSITORY_NAME_MAX_LENGTH:
        raise InvalidReference(
            f"repository name must not be more than {REPOSITORY_NAME_MAX_LENGTH} characters"
        )
    if digest is not None:
        _check_digest(digest)
    return Reference(domain, path, tag, digest)


def _check_digest(digest: str) -> None:
    """go-digest's checks: a known algorithm, the right length, lowercase hex."""
    algorithm, _, encoded = digest.partition(":")
    if algorithm not in _DIGEST_HEX_LENGTHS:
        if not _GO_DIGEST_PATTERN.fullmatch(digest):
            raise InvalidReference("invalid checksum digest format")
        raise InvalidReference("unsupported digest algorithm")
    if len(encoded) != _DIGEST_HEX_LENGTHS[algorithm]:
        raise InvalidReference("invalid checksum digest length")
    if not _LOWER_HEX_PATTERN.fullmatch(encoded):
        raise InvalidReference("invalid checksum digest format")
