"""The registry's errors: one exception per OCI Distribution error code, carrying its HTTP
status, the message the reference registry uses, and a detail saying what was at fault."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class RegistryError(Exception):
    """An error a registry client sees as ``{"errors": [{"code", "message", "detail"}]}``."""

    code = "UNSUPPORTED"
    status = 405
    message = "The operation is unsupported."

    def __init__(
        self,
        detail: Any = None,
        *,
        status: int | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.detail = detail
        self.headers = list(headers)  # extra response headers, such as Allow or Content-Range
        if status is not None:
            self.status = status
        super().__init__(self.message if detail is None else f"{self.message}: {detail}")

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return {"errors": [entry]}


class BlobUnknown(RegistryError):
    code, status, message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code, status, message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    code, status, message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class DigestInvalid(RegistryError):
    code, status, message = "DIGEST_INVALID", 400, "provided digest did not match uploaded content"


class ManifestBlobUnknown(RegistryError):
    code, status, message = "MANIFEST_BLOB_UNKNOWN", 400, "blob unknown to registry"


class ManifestInvalid(RegistryError):
    code, status, message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestUnknown(RegistryError):
    code, status, message = "MANIFEST_UNKNOWN", 404, "manifest unknown"


class NameInvalid(RegistryError):
    code, status, message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(RegistryError):
    code, status, message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class SizeInvalid(RegistryError):
    code, status, message = "SIZE_INVALID", 400, "provided length did not match content length"


class Unsupported(RegistryError):
    code, status, message = "UNSUPPORTED", 405, "The operation is unsupported."


class RangeNotSatisfiable(RegistryError):
    code, status, message = "UNSUPPORTED", 416, "requested range not satisfiable"


class InternalError(RegistryError):
    code, status, message = "UNKNOWN", 500, "unknown error"
