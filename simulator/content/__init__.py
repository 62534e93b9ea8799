"""The content store: sha256-addressed blobs, verified, written atomically, reference-counted."""

from simulator.content.store import (
    BlobInfo,
    BlobNotFound,
    BlobWriter,
    ContentError,
    ContentStore,
    DigestMismatch,
    InvalidDigest,
    SizeMismatch,
    digest_bytes,
    parse_digest,
)

__all__ = [
    "BlobInfo",
    "BlobNotFound",
    "BlobWriter",
    "ContentError",
    "ContentStore",
    "DigestMismatch",
    "InvalidDigest",
    "SizeMismatch",
    "digest_bytes",
    "parse_digest",
]
