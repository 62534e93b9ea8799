"""What docker save, load and import move (StoredImage in, LoadedImage out), their error, and
the tar reading that load and import share: compression sniffing, strict headers, safe names."""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from simulator.archive.apply import clean_path
from simulator.images.oci import Descriptor, Manifest, Platform, normalize_platform

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_SNIFF_SIZE = 6


class TransferError(Exception):
    """A save, load or import that failed; the message says why, in Docker's words where
    Docker has words for it. Nothing the failed call wrote is visible in the content store."""


@dataclass(frozen=True)
class StoredImage:
    """An image to save: the digest of its manifest (an image manifest, OCI or Docker schema 2,
    whose config and layers are in the content store) and the tags it goes by. Tags may be
    familiar (``redis``, ``redis:7.0``) or canonical (``docker.io/library/redis:7.0``)."""

    manifest_digest: str
    repo_tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "repo_tags", tuple(self.repo_tags))


@dataclass(frozen=True)
class LoadedImage:
    """An image that load or import put into the content store: its manifest (as stored, or
    built for a docker-archive or an import), its config, and its tags as docker shows them
    (``redis:latest``)."""

    manifest_descriptor: Descriptor
    manifest: Manifest
    config_bytes: bytes
    repo_tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "repo_tags", tuple(self.repo_tags))

    @property
    def manifest_digest(self) -> str:
        return self.manifest_descriptor.digest

    @property
    def config_digest(self) -> str:
        """The image ID."""
        return self.manifest.config.digest

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        return self.manifest.layers


def compression_of(head: bytes) -> str:
    """ "gzip", "bzip2", "xz", "zstd", or "" for data that is not compressed (a plain tar)."""
    for magic, name in (
        (_GZIP_MAGIC, "gzip"),
        (_BZIP2_MAGIC, "bzip2"),
        (_XZ_MAGIC, "xz"),
        (_ZSTD_MAGIC, "zstd"),
    ):
        if head.startswith(magic):
            return name
    return ""


class _PrefixedReader:
    """Gives back the sniffed bytes before the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._rest.read(size)
        if size < 0:
            data, self._head = self._head + self._rest.read(), b""
        else:
            data, self._head = self._head[:size], self._head[size:]
        return data


def decompressed(stream: BinaryIO) -> BinaryIO:
    """``stream`` uncompressed: gzip, bzip2 and xz are sniffed and undone, as docker does."""
    head = b""
    while len(head) < _SNIFF_SIZE:
        chunk = stream.read(_SNIFF_SIZE - len(head))
        if not chunk:
            break
        head += chunk
    reader = _PrefixedReader(head, stream)
    compression = compression_of(head)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=reader, mode="rb")
    if compression == "bzip2":
        return bz2.BZ2File(reader)
    if compression == "xz":
        return lzma.LZMAFile(reader)
    if compression == "zstd":
        raise TransferError("unsupported compression: zstd")
    return reader


class StrictTarInfo(tarfile.TarInfo):
    """tarfile quietly ends the archive at a bad header after the first one; Go's archive/tar,
    and so docker, reports it. This raises as Go does."""

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tar)
        except tarfile.TruncatedHeaderError:
            raise TransferError("unexpected EOF") from None
        except tarfile.InvalidHeaderError:
            raise TransferError("archive/tar: invalid tar header") from None


@contextmanager
def tar_errors() -> Iterator[None]:
    """Turn what tarfile and the decompressors raise into TransferError, in Go's words."""
    try:
        yield
    except EOFError:
        raise TransferError("unexpected EOF") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise TransferError(f"gzip: {error}") from None
    except lzma.LZMAError as error:
        raise TransferError(f"xz: {error}") from None
    except tarfile.TarError as error:
        message = str(error)
        if "unexpected end of data" in message or message == "empty file":
            raise TransferError("unexpected EOF") from None
        if message.startswith("zlib error"):
            raise TransferError(f"gzip: {message}") from None
        raise TransferError(f"archive/tar: {message}") from None
    except OSError as error:
        if "Invalid data stream" in str(error):  # what bz2 raises for data that isn't bzip2
            raise TransferError(f"bzip2: {error}") from None
        raise


def archive_path(name: str) -> str | None:
    """The path of an archive entry read from the archive's root (``./a//b`` is ``a/b``);
    None when the name is absolute or climbs out with ``..``."""
    if name.startswith("/"):
        return None
    parts = clean_path(name)
    return None if parts is None else "/".join(parts)


def outside_error(name: str) -> TransferError:
    return TransferError(f'"{name}" is outside of the archive')


def parse_platform(text: str) -> Platform:
    """``os[/architecture[/variant]]`` (``linux/amd64``, ``linux/arm64/v8``) as OCI names it;
    the architecture is amd64 when left out."""
    parts = text.split("/") if isinstance(text, str) else []
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise TransferError(f'"{text}": unknown operating system or architecture: invalid argument')
    architecture = parts[1] if len(parts) > 1 else "amd64"
    variant = parts[2] if len(parts) > 2 else ""
    return normalize_platform(parts[0], architecture, variant)
