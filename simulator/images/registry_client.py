"""A client of the OCI Distribution API on http.client: ping, Docker Hub's bearer-token auth
(and Basic), manifests, blobs streamed into the content store, uploads and mounts.

Errors carry Docker's words: a registry's own error is ``manifest unknown: manifest unknown``,
and a registry that can't be reached is ``Get "http://127.0.0.1:1/v2/": dial tcp
127.0.0.1:1: connect: connection refused``.
"""

from __future__ import annotations

import base64
import errno
import http.client
import ipaddress
import json
import os
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit

from simulator.content.store import (
    BlobInfo,
    ContentError,
    ContentStore,
    DigestMismatch,
    SizeMismatch,
    digest_bytes,
)
from simulator.images.oci import MANIFEST_ACCEPT
from simulator.images.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN

CONNECT_TIMEOUT = 5.0  # seconds to open a connection; an unreachable registry fails this fast
READ_TIMEOUT = 60.0  # seconds a response may stall before the request fails
MAX_MANIFEST_SIZE = 4 << 20  # as the reference registry
MAX_TOKEN_RESPONSE_SIZE = 1 << 20
MAX_ERROR_BODY_SIZE = 1 << 20
MAX_REDIRECTS = 5
CHUNK_SIZE = 256 << 10
USER_AGENT = "slipway/0.1 (compatible; docker/28)"
# Where ``docker.io`` images come from when no mirror has them: Docker Hub's registry,
# under the name distribution/reference keeps for it.
DOCKER_HUB_URL = f"https://{LEGACY_DEFAULT_DOMAIN}"
# Loopback registries are always spoken to in plain HTTP, as Docker treats 127.0.0.0/8.
_ALWAYS_INSECURE = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_CHALLENGE_PARAMETER = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


class RegistryError(Exception):
    """A registry request that failed. ``code`` is the Distribution error code
    (``MANIFEST_UNKNOWN``, ``NAME_UNKNOWN``, ``DENIED``, ``UNAUTHORIZED`` ...) or ``""``;
    ``status`` is the HTTP status (0 when there was no response). The message is Docker's."""

    def __init__(self, message: str, *, code: str = "", status: int = 0, detail: Any = None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.detail = detail


class RegistryUnreachable(RegistryError):
    """No answer: the connection was refused, timed out, or the name didn't resolve."""


@dataclass(frozen=True)
class Credentials:
    """What ``docker login`` stores for a registry (the X-Registry-Auth fields we use)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth2 refresh token, from a login that returned one

    @classmethod
    def from_auth_config(cls, config: Mapping[str, Any] | None) -> Credentials | None:
        """From a decoded X-Registry-Auth object; None when it holds no credentials."""
        if not config:
            return None
        credentials = cls(
            str(config.get("username") or ""),
            str(config.get("password") or ""),
            str(config.get("identitytoken") or ""),
        )
        return credentials if credentials.username or credentials.identity_token else None


@dataclass(frozen=True)
class Endpoint:
    """Where to send a repository's requests: a base URL, and whether it is a mirror."""

    url: str  # scheme://host[:port], no trailing slash
    mirror: bool = False


@dataclass(frozen=True)
class RemoteManifest:
    """A manifest or index as a registry served it: its exact bytes, type and digest."""

    data: bytes
    media_type: str
    digest: str


@dataclass(frozen=True)
class UploadStart:
    """The answer to a POST to blobs/uploads/: a mounted blob, or an upload's location."""

    mounted: bool
    location: str | None = None


@dataclass
class _Challenge:
    """A WWW-Authenticate challenge: ``Bearer`` (a token service) or ``Basic``."""

    scheme: str
    parameters: dict[str, str] = field(default_factory=dict)


def is_insecure(host: str, insecure: Iterable[str] = ()) -> bool:
    """Whether a registry is spoken to in plain HTTP: loopback always, and any registry in
    ``insecure`` (``host``, ``host:port``, or a CIDR such as ``10.0.0.0/8``)."""
    hostname = _split_host_port(host)[0]
    candidates = [hostname]
    if hostname == "localhost":
        candidates.append("127.0.0.1")
    addresses = []
    for candidate in candidates:
        try:
            addresses.append(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    if any(address in network for address in addresses for network in _ALWAYS_INSECURE):
        return True
    for entry in insecure:
        if entry in (host, hostname):
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if any(address in network for address in addresses):
            return True
    return False


def registry_url(domain: str, insecure: Iterable[str] = ()) -> str:
    """The base URL of the registry a reference's domain names (docker.io is Docker Hub)."""
    if domain == DEFAULT_DOMAIN:
        return DOCKER_HUB_URL
    scheme = "http" if is_insecure(domain, insecure) else "https"
    return f"{scheme}://{domain}"


def endpoints_for(
    domain: str,
    mirrors: Mapping[str, Sequence[str]] | None = None,
    insecure: Iterable[str] = (),
    upstream: bool = True,
) -> list[Endpoint]:
    """The endpoints a pull tries in order: the domain's mirrors, then the registry itself.
    ``upstream=False`` keeps a mirrored domain to its mirrors (an offline classroom's
    docker.io); a domain without mirrors always goes to its registry."""
    endpoints = [Endpoint(url.rstrip("/"), mirror=True) for url in (mirrors or {}).get(domain, ())]
    if upstream or not endpoints:
        endpoints.append(Endpoint(registry_url(domain, insecure)))
    return endpoints


class _Response:
    """An HTTP response and the connection it came on; closing it closes both."""

    def __init__(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        method: str,
        url: str,
    ) -> None:
        self.connection = connection
        self.raw = response
        self.method = method
        self.url = url

    @property
    def status(self) -> int:
        return self.raw.status

    def header(self, name: str) -> str | None:
        return self.raw.getheader(name)

    def headers(self, name: str) -> list[str]:
        return self.raw.headers.get_all(name) or []

    def read(self, limit: int) -> bytes:
        """The whole body, or a RegistryError if it is longer than ``limit``."""
        try:
            data = self.raw.read(limit + 1)
        except (OSError, http.client.HTTPException) as error:
            raise _transfer_error(self.method, self.url, error) from error
        if len(data) > limit:
            raise RegistryError(f'{_go_method(self.method)} "{self.url}": response too large')
        return data

    def read_chunk(self, size: int) -> bytes:
        try:
            return self.raw.read(size)
        except (OSError, http.client.HTTPException) as error:
            raise _transfer_error(self.method, self.url, error) from error

    def close(self) -> None:
        self.raw.close()
        self.connection.close()

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RegistryClient:
    """Requests to one registry endpoint, authenticated as the registry asks. Safe to use
    from several threads at once: each request opens its own connection."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid registry URL {base_url!r}")
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.credentials = credentials
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._lock = threading.Lock()
        self._pinged = False
        self._challenge: _Challenge | None = None
        self._tokens: dict[tuple[str, ...], str] = {}

    # The API

    def ping(self) -> None:
        """GET /v2/: check that a v2 registry answers, and learn how it wants auth."""
        with self._send("GET", self.base_url + "/v2/", {}) as response:
            response.read(MAX_ERROR_BODY_SIZE)
            if response.status == 401:
                challenge = _parse_challenges(response.headers("WWW-Authenticate"))
                with self._lock:
                    self._challenge = challenge
                    self._pinged = True
                return
            if response.status != 200:
                raise RegistryError(
                    f"received unexpected HTTP status: {response.status} {response.raw.reason}",
                    status=response.status,
                )
            with self._lock:
                self._pinged = True

    def get_manifest(self, repository: str, reference: str) -> RemoteManifest:
        """A manifest or index by tag or digest; a digest reference is verified."""
        path = f"/v2/{repository}/manifests/{reference}"
        headers = {"Accept": ", ".join(MANIFEST_ACCEPT)}
        with self._request("GET", path, _pull_scope(repository), headers) as response:
            if response.status != 200:
                raise self._response_error(response)
            data = response.read(MAX_MANIFEST_SIZE)
            media_type = (response.header("Content-Type") or "").split(";", 1)[0].strip()
            announced = response.header("Docker-Content-Digest")
        digest = digest_bytes(data)
        expected = reference if reference.startswith("sha256:") else announced
        if expected is not None and expected.startswith("sha256:") and expected != digest:
            raise RegistryError(f"manifest verification failed for digest {expected}")
        return RemoteManifest(data, media_type, digest)

    def head_manifest(self, repository: str, reference: str) -> str | None:
        """The digest a tag or digest names in the repository, or None if it names nothing."""
        path = f"/v2/{repository}/manifests/{reference}"
        headers = {"Accept": ", ".join(MANIFEST_ACCEPT)}
        with self._request("HEAD", path, _pull_scope(repository), headers) as response:
            if response.status == 404:
                return None
            if response.status != 200:
                raise self._response_error(response)
            return response.header("Docker-Content-Digest") or ""

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """Store a manifest under a tag (or its digest); return its digest."""
        path = f"/v2/{repository}/manifests/{reference}"
        headers = {"Content-Type": media_type}
        with self._request("PUT", path, _push_scope(repository), headers, data) as response:
            if response.status not in (200, 201, 202):
                raise self._response_error(response)
            response.read(MAX_ERROR_BODY_SIZE)
            return response.header("Docker-Content-Digest") or digest_bytes(data)

    def list_tags(self, repository: str) -> list[str]:
        with self._request("GET", f"/v2/{repository}/tags/list", _pull_scope(repository)) as r:
            if r.status != 200:
                raise self._response_error(r)
            body = r.read(MAX_MANIFEST_SIZE)
        try:
            tags = json.loads(body).get("tags") or []
        except (ValueError, AttributeError):
            raise RegistryError("invalid tags list from the registry") from None
        return [tag for tag in tags if isinstance(tag, str)]

    def blob_exists(self, repository: str, digest: str) -> bool:
        """HEAD the blob: whether the repository has it."""
        path = f"/v2/{repository}/blobs/{digest}"
        with self._request("HEAD", path, _pull_scope(repository)) as response:
            if response.status == 404:
                return False
            if response.status != 200:
                raise self._response_error(response)
            return True

    def fetch_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        content: ContentStore,
        progress: Callable[[int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> BlobInfo:
        """Stream a blob into the content store, verifying its size and digest before it
        becomes visible. ``progress`` gets the bytes received so far; ``cancelled`` is
        polled between chunks and stops the download when it returns True."""
        path = f"/v2/{repository}/blobs/{digest}"
        with self._request("GET", path, _pull_scope(repository)) as response:
            if response.status != 200:
                raise self._response_error(response)
            with content.writer() as writer:
                received = 0
                while True:
                    if cancelled is not None and cancelled():
                        raise RegistryError("context canceled")
                    chunk = response.read_chunk(min(CHUNK_SIZE, size + 1 - received))
                    if not chunk:
                        break
                    writer.write(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress(received)
                    if received > size:
                        break
                try:
                    return writer.commit(digest, size)
                except (DigestMismatch, SizeMismatch):
                    raise RegistryError(
                        f"filesystem layer verification failed for digest {digest}"
                    ) from None
                except ContentError as error:
                    raise RegistryError(str(error)) from None

    def start_upload(
        self, repository: str, mount: str | None = None, mount_from: str | None = None
    ) -> UploadStart:
        """POST to blobs/uploads/; with ``mount`` and ``mount_from``, ask the registry to
        mount that blob from another repository instead (201), which it may decline by
        starting an upload (202)."""
        path = f"/v2/{repository}/blobs/uploads/"
        scopes = _push_scope(repository)
        if mount and mount_from:
            path += "?" + urlencode({"mount": mount, "from": mount_from})
            scopes = scopes + _pull_scope(mount_from)
        headers = {"Content-Length": "0"}
        with self._request("POST", path, scopes, headers, b"") as response:
            response.read(MAX_ERROR_BODY_SIZE)
            if response.status == 201 and mount:
                return UploadStart(mounted=True)
            if response.status != 202:
                raise self._response_error(response)
            location = response.header("Location")
        if not location:
            raise RegistryError("the registry started an upload without a Location")
        return UploadStart(mounted=False, location=urljoin(response.url, location))

    def finish_upload(
        self,
        repository: str,
        location: str,
        digest: str,
        size: int,
        file: BinaryIO,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """PUT the whole blob to an upload's location (a monolithic upload)."""
        separator = "&" if "?" in location else "?"
        url = location + separator + urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        body = _CountingReader(file, progress)
        with self._request("PUT", url, _push_scope(repository), headers, body) as response:
            if response.status not in (201, 204):
                raise self._response_error(response)
            response.read(MAX_ERROR_BODY_SIZE)

    # Requests, authentication and errors

    def _request(
        self,
        method: str,
        path_or_url: str,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None = None,
        body: bytes | _CountingReader | None = None,
    ) -> _Response:
        """Send a request authenticated as the registry asked at the ping; on a 401, take
        the challenge it came with, fetch a fresh token (adding any scope the registry
        names), and try once more."""
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        with self._lock:
            pinged = self._pinged
        if not pinged:
            self.ping()
        response = self._send_authorized(method, url, scopes, headers, body)
        if response.status != 401:
            return response
        challenge = _parse_challenges(response.headers("WWW-Authenticate"))
        if challenge is None or not _rewind(body):
            return response
        response.read(MAX_ERROR_BODY_SIZE)
        response.close()
        asked = tuple(challenge.parameters.get("scope", "").split())
        scopes = tuple(dict.fromkeys(scopes + asked))
        with self._lock:
            self._challenge = challenge
            self._tokens.pop(scopes, None)
        return self._send_authorized(method, url, scopes, headers, body)

    def _send_authorized(
        self,
        method: str,
        url: str,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None,
        body: bytes | _CountingReader | None,
    ) -> _Response:
        sent = dict(headers or {})
        authorization = self._authorization(scopes, method, url)
        if authorization:
            sent["Authorization"] = authorization
        return self._send(method, url, sent, body)

    def _authorization(self, scopes: tuple[str, ...], method: str, url: str) -> str | None:
        with self._lock:
            challenge = self._challenge
            token = self._tokens.get(scopes)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if self.credentials is None or not self.credentials.username:
                return None
            pair = f"{self.credentials.username}:{self.credentials.password}"
            return "Basic " + base64.b64encode(pair.encode()).decode()
        if challenge.scheme != "bearer":
            return None
        if token is None:
            token = self._fetch_token(challenge, scopes, method, url)
            with self._lock:
                self._tokens[scopes] = token
        return "Bearer " + token

    def _fetch_token(
        self, challenge: _Challenge, scopes: tuple[str, ...], method: str, url: str
    ) -> str:
        """Ask the challenge's token service for a token to these scopes, as Docker does:
        GET realm?service=..&scope=.. (with Basic credentials when we have some), or
        an OAuth2 refresh-token POST when the login gave an identity token."""
        realm = challenge.parameters.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f'{_go_method(method)} "{url}": invalid token realm "{realm}"')
        service = challenge.parameters.get("service", "")
        credentials = self.credentials
        headers: dict[str, str] = {}
        if credentials is not None and credentials.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credentials.identity_token,
                "service": service,
                "scope": " ".join(scopes),
                "client_id": "slipway",
            }
            body: bytes | None = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            token_method, token_url = "POST", realm
        else:
            query: list[tuple[str, str]] = [("service", service)] if service else []
            query += [("scope", scope) for scope in scopes]
            if credentials is not None and credentials.username:
                query.append(("account", credentials.username))
                pair = f"{credentials.username}:{credentials.password}"
                headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            separator = "&" if "?" in realm else "?"
            body, token_method = None, "GET"
            token_url = realm + (separator + urlencode(query) if query else "")
        try:
            with self._send(token_method, token_url, headers, body) as response:
                document = response.read(MAX_TOKEN_RESPONSE_SIZE)
                if response.status != 200:
                    raise _token_error(response, document)
        except RegistryError as error:
            raise RegistryError(
                f'{_go_method(method)} "{url}": {error}', code=error.code, status=error.status
            ) from None
        try:
            parsed = json.loads(document)
            token = parsed.get("token") or parsed.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f'{_go_method(method)} "{url}": no token in the auth response')
        return token

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | _CountingReader | None = None,
    ) -> _Response:
        """One request on a fresh connection, following redirects for GET and HEAD; the
        Authorization header goes only to the host it was meant for."""
        origin = urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send_once(method, url, headers, body)
            location = response.header("Location")
            if response.status not in (301, 302, 303, 307, 308) or method not in ("GET", "HEAD"):
                return response
            if not location:
                return response
            response.close()
            url = urljoin(url, location)
            if urlsplit(url).netloc != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise RegistryError(f'{_go_method(method)} "{url}": stopped after 5 redirects')

    def _send_once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | _CountingReader | None,
    ) -> _Response:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            sock = _dial(host, port, self.connect_timeout)
        except OSError as error:  # socket.gaierror is an OSError too
            raise _dial_error(method, url, host, port, error) from error
        if parts.scheme == "https":
            try:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            except OSError as error:  # ssl.SSLError included
                sock.close()
                raise _dial_error(method, url, host, port, error) from error
        connection = http.client.HTTPConnection(host, port, blocksize=CHUNK_SIZE)
        connection.sock = sock
        sock.settimeout(self.read_timeout)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        sent = {"User-Agent": USER_AGENT, "Connection": "close", **headers}
        try:
            connection.request(method, target, body=body, headers=sent)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise _transfer_error(method, url, error) from error
        return _Response(connection, response, method, url)

    def _response_error(self, response: _Response) -> RegistryError:
        """The error a registry answered with, in Docker's words (``code words: message``)."""
        body = response.read(MAX_ERROR_BODY_SIZE) if response.method != "HEAD" else b""
        status = response.status
        if status == 401:
            challenge = _parse_challenges(response.headers("WWW-Authenticate"))
            oauth_error = challenge.parameters.get("error") if challenge else None
            if oauth_error == "insufficient_scope":
                description = challenge.parameters.get("error_description") if challenge else ""
                message = description or "requested access to the resource is denied"
                return RegistryError(f"denied: {message}", code="DENIED", status=status)
        code, message, detail = _parse_error_body(body)
        if code:
            return RegistryError(
                f"{_code_words(code)}: {message}", code=code, status=status, detail=detail
            )
        if status == 401:
            return RegistryError(
                "unauthorized: authentication required", code="UNAUTHORIZED", status=status
            )
        if status == 404 and response.method == "HEAD":
            code = "MANIFEST_UNKNOWN" if "/manifests/" in response.url else "BLOB_UNKNOWN"
            text = "manifest unknown" if code == "MANIFEST_UNKNOWN" else "blob unknown to registry"
            return RegistryError(f"{_code_words(code)}: {text}", code=code, status=status)
        return RegistryError(
            f"received unexpected HTTP status: {status} {response.raw.reason}", status=status
        )


class _CountingReader:
    """A file given to http.client as a request body, reporting how much has been sent."""

    def __init__(self, file: BinaryIO, progress: Callable[[int], None] | None) -> None:
        self._file = file
        self._progress = progress
        self._start = file.tell()
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self.sent += len(data)
        if self._progress is not None and data:
            self._progress(self.sent)
        return data

    def rewind(self) -> None:
        """Back to where the body started, to send it again (after a 401)."""
        self._file.seek(self._start)
        self.sent = 0


def _rewind(body: bytes | _CountingReader | None) -> bool:
    """Make a request body ready to be sent again; False if it can't be."""
    if isinstance(body, _CountingReader):
        try:
            body.rewind()
        except OSError:
            return False
    return True


def _pull_scope(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:pull",)


def _push_scope(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:pull,push",)


def _parse_challenges(headers: Sequence[str]) -> _Challenge | None:
    """The first Bearer or Basic challenge of the WWW-Authenticate headers."""
    found: list[_Challenge] = []
    for header in headers:
        for part in re.split(r",\s*(?=[A-Za-z]+\s+[A-Za-z_][\w-]*\s*=)", header.strip()):
            scheme, _, rest = part.strip().partition(" ")
            parameters = {
                match.group(1).lower(): (
                    match.group(2).replace('\\"', '"')
                    if match.group(2) is not None
                    else match.group(3)
                )
                for match in _CHALLENGE_PARAMETER.finditer(rest)
            }
            if scheme.lower() in ("bearer", "basic"):
                found.append(_Challenge(scheme.lower(), parameters))
    bearer = [challenge for challenge in found if challenge.scheme == "bearer"]
    return (bearer or found or [None])[0]


def _parse_error_body(body: bytes) -> tuple[str, str, Any]:
    """``(code, message, detail)`` of the first error in a Distribution error body."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "", "", None
    errors = document.get("errors") if isinstance(document, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = str(first.get("code") or "UNKNOWN")
        message = str(first.get("message") or _code_words(code))
        return code, message, first.get("detail")
    return "", "", None


def _token_error(response: _Response, body: bytes) -> RegistryError:
    """A token service's refusal, as Docker reports it (``unauthorized: ...``)."""
    code, message, detail = _parse_error_body(body)
    if code:
        return RegistryError(
            f"{_code_words(code)}: {message}", code=code, status=response.status, detail=detail
        )
    details = ""
    try:
        document = json.loads(body)
        if isinstance(document, dict):
            details = str(document.get("details") or document.get("error_description") or "")
    except (ValueError, UnicodeDecodeError):
        pass
    if response.status == 401:
        return RegistryError(
            f"unauthorized: {details or 'authentication required'}",
            code="UNAUTHORIZED",
            status=401,
        )
    reason = details or f"{response.status} {response.raw.reason}"
    return RegistryError(f"failed to fetch the auth token: {reason}", status=response.status)


def _code_words(code: str) -> str:
    """``MANIFEST_UNKNOWN`` as Docker's errcode writes it: ``manifest unknown``."""
    return code.replace("_", " ").lower()


def _go_method(method: str) -> str:
    """The method as Go's url.Error names it: ``Get``, ``Head``, ``Put`` ..."""
    return method[:1].upper() + method[1:].lower()


def _split_host_port(host: str) -> tuple[str, str]:
    if host.startswith("["):
        address, _, rest = host[1:].partition("]")
        return address, rest.lstrip(":")
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name, port
    return host, ""


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _LookupTimeout(OSError):
    """The name didn't resolve within the connect timeout."""


def _dial(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``host:port``, name lookup included, within ``timeout`` seconds
    (the resolver has no timeout of its own, so it runs in a thread we stop waiting for)."""
    found: list[Any] = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as error:
            found.append(error)

    resolver = threading.Thread(target=lookup, name=f"lookup {host}", daemon=True)
    resolver.start()
    resolver.join(timeout)
    if not found:
        raise _LookupTimeout(errno.ETIMEDOUT, "lookup timed out")
    if isinstance(found[0], OSError):
        raise found[0]
    last_error: OSError = ConnectionRefusedError(errno.ECONNREFUSED, "connection refused")
    for family, kind, protocol, _, address in found[0]:
        sock = socket.socket(family, kind, protocol)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as error:
            sock.close()
            last_error = error
    raise last_error


def _dial_error(method: str, url: str, host: str, port: int, error: BaseException) -> RegistryError:
    """A failed connection, as Go's net/http reports it."""
    address = _address(host, port)
    if isinstance(error, socket.gaierror):
        detail = f"dial tcp: lookup {host}: no such host"
    elif isinstance(error, _LookupTimeout):
        detail = f"dial tcp: lookup {host}: i/o timeout"
    elif isinstance(error, ssl.SSLEOFError):
        detail = "EOF"  # the server hung up on the handshake (a plain-HTTP registry does)
    elif isinstance(error, ssl.SSLError):
        reason = getattr(error, "reason", None) or str(error)
        if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"):
            detail = "http: server gave HTTP response to HTTPS client"
        else:
            detail = f"tls: {str(reason).lower().replace('_', ' ')}"
    elif isinstance(error, TimeoutError):
        detail = f"dial tcp {address}: i/o timeout"
    elif isinstance(error, OSError) and error.errno is not None:
        detail = f"dial tcp {address}: connect: {_strerror(error.errno)}"
    else:
        detail = f"dial tcp {address}: {error}"
    return RegistryUnreachable(f'{_go_method(method)} "{url}": {detail}')


def _transfer_error(method: str, url: str, error: BaseException) -> RegistryError:
    """A connection that failed after it was opened."""
    if isinstance(error, TimeoutError):
        detail = "net/http: timeout awaiting response"
    elif isinstance(error, (http.client.IncompleteRead, http.client.RemoteDisconnected)):
        detail = "unexpected EOF"
    elif isinstance(error, OSError) and error.errno is not None:
        detail = _strerror(error.errno)
    else:
        detail = str(error) or type(error).__name__
    return RegistryUnreachable(f'{_go_method(method)} "{url}": {detail}')


def _strerror(number: int) -> str:
    """errno's text as Go writes it: ``connection refused``, lowercase."""
    if number == errno.ECONNREFUSED:
        return "connection refused"
    text = os.strerror(number)
    return text[:1].lower() + text[1:]
