"""The network package's errors, each with the Engine API's HTTP status for it and, where
Docker has one, Docker's own wording."""

from __future__ import annotations


class NetworkError(Exception):
    """A network operation refused or failed; ``status`` is the HTTP status Docker answers."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(NetworkError, ValueError):
    status = 400


class Forbidden(NetworkError):
    status = 403


class NotFound(NetworkError, LookupError):
    status = 404


class Conflict(NetworkError):
    status = 409


class Unavailable(NetworkError):
    """Nothing left to give: no free address in a pool, no free port in a range."""

    status = 503


class PortAllocated(NetworkError):
    """A host port another container of this engine holds (``port is already allocated``)."""

    status = 500
