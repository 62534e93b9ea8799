"""The hub's HTTP face: an OCI Distribution Spec v1.1 registry on the standard library's
threaded HTTP server, serving a HubStorage."""

from __future__ import annotations

import json
import re
import socket
import socketserver
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from simulator.hub.errors import (
    BlobUploadInvalid,
    DigestInvalid,
    InternalError,
    ManifestUnknown,
    RangeNotSatisfiable,
    RegistryError,
    SizeInvalid,
    Unsupported,
)
from simulator.hub.storage import (
    INDEX_TYPES,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    HubStorage,
    Manifest,
    check_digest,
    check_repository_name,
    is_digest_reference,
)

API_VERSION = "registry/2.0"
_READ_SIZE = 1 << 20
_MAX_LINE = 4096  # longest chunk-size or trailer line accepted in a chunked body
_LINGER_SECONDS = 1.0  # how long a closing connection drains what the client still sends
_LINGER_BYTES = 8 << 20
_TLS_HANDSHAKE_RECORD = b"\x16"  # the first byte of a TLS ClientHello
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)")

# The endpoints: a path pattern and, per method, the handler method that serves it.
# The first pattern matching the path wins; names may contain slashes.
_ROUTES: tuple[tuple[re.Pattern[str], dict[str, str]], ...] = (
    (re.compile(r"/v2/?"), {"GET": "base", "HEAD": "base"}),
    (re.compile(r"/v2/_catalog"), {"GET": "catalog"}),
    (re.compile(r"/v2/(?P<name>.+)/tags/list"), {"GET": "list_tags"}),
    (
        re.compile(r"/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)"),
        {
            "GET": "get_manifest",
            "HEAD": "get_manifest",
            "PUT": "put_manifest",
            "DELETE": "delete_manifest",
        },
    ),
    (re.compile(r"/v2/(?P<name>.+)/blobs/uploads/?"), {"POST": "start_upload"}),
    (
        re.compile(r"/v2/(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)"),
        {
            "GET": "upload_status",
            "PATCH": "patch_upload",
            "PUT": "finish_upload",
            "DELETE": "cancel_upload",
        },
    ),
    (
        re.compile(r"/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)"),
        {"GET": "get_blob", "HEAD": "get_blob", "DELETE": "delete_blob"},
    ),
    (re.compile(r"/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)"), {"GET": "referrers"}),
)


class TruncatedBody(Exception):
    """The request body ended before its declared length, or its chunked coding broke."""


def parse_range(header: str, size: int) -> tuple[int, int]:
    """The first and last byte that a ``Range: bytes=a-b`` header asks of a blob of ``size``
    bytes (``a-``, ``-n`` suffixes too); RangeNotSatisfiable if it asks for none of them."""
    unsatisfiable = RangeNotSatisfiable(
        {"range": header, "size": size}, headers=[("Content-Range", f"bytes */{size}")]
    )
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise unsatisfiable
    first, last = match.groups()
    if first:
        start = int(first)
        end = int(last) if last else size - 1
        if end < start:
            raise unsatisfiable
        end = min(end, size - 1)
    else:
        suffix = int(last)
        if suffix == 0:
            raise unsatisfiable
        start, end = max(size - suffix, 0), size - 1
    if start >= size:
        raise unsatisfiable
    return start, end


def _exactly(chunks: Iterable[bytes], length: int) -> Iterator[bytes]:
    """Pass ``chunks`` through, raising SizeInvalid unless they add up to ``length`` bytes."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > length:
            raise SizeInvalid(f"chunk is longer than its Content-Range ({length} bytes)")
        yield chunk
    if total != length:
        raise SizeInvalid(f"chunk is {total} bytes, its Content-Range says {length}")


class RegistryRequestHandler(BaseHTTPRequestHandler):
    """One connection to the registry: HTTP/1.1 with keep-alive, every response sized."""

    protocol_version = "HTTP/1.1"
    server_version = "SlipwayHub/1.0"
    timeout = 120  # seconds a connection may sit idle, or a body stall, before it is closed
    server: Registry

    def handle(self) -> None:
        # Clients allowed to fall back to plain HTTP (skopeo --tls-verify=false, Docker's
        # insecure registries) try TLS first. Hang up on a TLS handshake at once, so that
        # they fall back without waiting for a handshake timeout.
        try:
            first_byte = self.rfile.peek(1)[:1]
        except OSError:
            return
        if first_byte == _TLS_HANDSHAKE_RECORD:
            self.close_connection = True
            return
        super().handle()

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

    # Dispatch and responses

    def _dispatch(self) -> None:
        self._query: dict[str, list[str]] = {}
        self._body_expected = self._request_has_body()
        self._body_done = False
        self._headers_sent = False
        try:
            url = urlsplit(self.path)
            self._query = parse_qs(url.query, keep_blank_values=True)
            handler, arguments = self._route(unquote(url.path))
            if "name" in arguments:
                check_repository_name(arguments["name"])
            handler(**arguments)
        except TruncatedBody as error:
            self.close_connection = True
            self._fail(BlobUploadInvalid(str(error)))
        except RegistryError as error:
            self._fail(error)
        except (ConnectionError, TimeoutError):  # the client went away mid-request
            self.close_connection = True
        except Exception as error:  # a bug: answer 500 rather than drop the connection
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            self._fail(InternalError(f"{type(error).__name__}: {error}"))

    def _route(self, path: str) -> tuple[Callable[..., None], dict[str, str]]:
        for pattern, methods in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            handler_name = methods.get(self.command)
            if handler_name is None:
                raise Unsupported(
                    f"{self.command} is not allowed on {path}",
                    headers=[("Allow", ", ".join(methods))],
                )
            return getattr(self, "_" + handler_name), match.groupdict()
        raise Unsupported(f"no such endpoint: {path}", status=404)

    def _respond(
        self,
        status: int,
        body: bytes = b"",
        *,
        headers: Iterable[tuple[str, str]] = (),
        content_type: str | None = None,
        length: int | None = None,
    ) -> None:
        """Send the status and headers, and ``body`` unless this is HEAD. With ``length``,
        the caller sends that many bytes of body itself."""
        self.send_response(status)
        self.send_header("Docker-Distribution-API-Version", API_VERSION)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        if status != HTTPStatus.NO_CONTENT:
            self.send_header("Content-Length", str(len(body) if length is None else length))
        if self._body_expected and not self._body_done:
            self.close_connection = True  # the unread body would be taken for a request
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self._headers_sent = True
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(
        self,
        status: int,
        document: Any,
        headers: Iterable[tuple[str, str]] = (),
        content_type: str = "application/json",
    ) -> None:
        body = json.dumps(document).encode()
        self._respond(status, body, headers=headers, content_type=content_type)

    def _fail(self, error: RegistryError) -> None:
        if self._headers_sent:  # too late for an error response: end the connection
            self.close_connection = True
            return
        self._json(error.status, error.as_json(), error.headers)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server calls this for a request it cannot parse, or a method nothing serves:
        answer in the registry's error shape, and close the connection."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            error: RegistryError = Unsupported(f"method {self.command} is not supported")
        else:
            error = Unsupported(message or HTTPStatus(code).phrase, status=code)
        body = json.dumps(error.as_json()).encode()
        self.close_connection = True
        self.send_response(error.status)
        self.send_header("Docker-Distribution-API-Version", API_VERSION)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if not self.server.quiet:
            status = code.value if isinstance(code, HTTPStatus) else code
            sys.stderr.write(f"hub: {self.client_address[0]} {self.command} {self.path} {status}\n")

    def log_error(self, format: str, *args: Any) -> None:
        """Silent: the request's own log line carries its status."""

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"hub: {self.client_address[0]} {format % args}\n")

    # Request bodies

    def _request_has_body(self) -> bool:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return True
        return self.headers.get("Content-Length", "0").strip() != "0"

    def _body(self) -> Iterator[bytes]:
        """The request body in pieces, decoded from chunked transfer coding if need be."""
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                yield from self._chunked_body()
            else:
                yield from self._sized_body(self._declared_length())
        except OSError as error:
            raise TruncatedBody(f"reading the request body failed: {error}") from None
        self._body_done = True

    def _declared_length(self) -> int:
        value = self.headers.get("Content-Length", "0").strip()
        if not (value.isascii() and value.isdigit()):
            raise SizeInvalid(f"invalid Content-Length {value!r}")
        return int(value)

    def _sized_body(self, length: int) -> Iterator[bytes]:
        remaining = length
        while remaining:
            data = self.rfile.read(min(_READ_SIZE, remaining))
            if not data:
                raise TruncatedBody(f"request body ended after {length - remaining} bytes")
            remaining -= len(data)
            yield data

    def _chunked_body(self) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(_MAX_LINE)
            if not line.endswith(b"\n"):
                raise TruncatedBody("chunked request body ended before its last chunk")
            size_text = line.split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]+", size_text):
                raise TruncatedBody(f"malformed chunk size {size_text[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                break
            yield from self._sized_body(size)
            if self.rfile.read(2) != b"\r\n":
                raise TruncatedBody("chunk not followed by CRLF")
        while True:  # the trailer section, ended by an empty line
            line = self.rfile.readline(_MAX_LINE)
            if not line.endswith(b"\n"):
                raise TruncatedBody("chunked request body ended in its trailer")
            if not line.strip():
                return

    def _read_body(self, limit: int) -> bytes:
        declared = self.headers.get("Content-Length", "").strip()
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise SizeInvalid(f"body larger than {limit} bytes", status=413)
        parts = []
        total = 0
        for chunk in self._body():
            total += len(chunk)
            if total > limit:
                raise SizeInvalid(f"body larger than {limit} bytes", status=413)
            parts.append(chunk)
        return b"".join(parts)

    def _chunk(self) -> tuple[int | None, Iterator[bytes]]:
        """The uploaded chunk: where it starts (from Content-Range, if given) and its bytes."""
        content_range = self.headers.get("Content-Range")
        if content_range is None:
            return None, self._body()
        match = _CONTENT_RANGE.fullmatch(content_range.strip())
        if match is None:
            raise BlobUploadInvalid(f"invalid Content-Range {content_range!r}")
        start, end = int(match.group(1)), int(match.group(2))
        if end < start:
            raise BlobUploadInvalid(f"invalid Content-Range {content_range!r}", status=416)
        length = end - start + 1
        declared = self.headers.get("Content-Length")
        if declared is not None and declared.strip() != str(length):
            raise SizeInvalid(
                f"Content-Length {declared.strip()} does not match Content-Range {content_range}"
            )
        return start, _exactly(self._body(), length)

    def _param(self, name: str) -> str | None:
        values = self._query.get(name)
        return values[0] if values else None

    # Endpoints

    def _base(self) -> None:
        self._json(HTTPStatus.OK, {})

    def _catalog(self) -> None:
        names, link = self._page(self.server.storage.repositories(), "/v2/_catalog")
        self._json(HTTPStatus.OK, {"repositories": names}, link)

    def _list_tags(self, name: str) -> None:
        tags, link = self._page(self.server.storage.tags(name), f"/v2/{name}/tags/list")
        self._json(HTTPStatus.OK, {"name": name, "tags": tags}, link)

    def _page(self, items: list[str], path: str) -> tuple[list[str], list[tuple[str, str]]]:
        """One page of a sorted list, after ``last`` and at most ``n`` long, and the Link
        header to the next page when there is one."""
        last = self._param("last")
        if last:
            items = [item for item in items if item > last]
        size = self._param("n")
        if not size:
            return items, []
        if not (size.isascii() and size.isdigit()):
            raise Unsupported(f"invalid page size n={size!r}", status=400)
        page = items[: int(size)]
        if not page or len(items) <= len(page):
            return page, []
        query = urlencode({"n": size, "last": page[-1]})
        return page, [("Link", f'<{path}?{query}>; rel="next"')]

    def _get_manifest(self, name: str, reference: str) -> None:
        manifest = self.server.storage.manifest(name, reference)
        if manifest.media_type in INDEX_TYPES and not self._accepts(manifest.media_type):
            manifest = self._platform_manifest(name, manifest) or manifest
        self._respond(
            HTTPStatus.OK,
            manifest.data,
            content_type=manifest.media_type,
            headers=[
                ("Docker-Content-Digest", manifest.digest),
                ("ETag", f'"{manifest.digest}"'),
            ],
        )

    def _accepts(self, media_type: str) -> bool:
        accepted = {
            item.split(";", 1)[0].strip().lower()
            for header in self.headers.get_all("Accept") or []
            for item in header.split(",")
        } - {""}
        return not accepted or media_type in accepted or "*/*" in accepted

    def _platform_manifest(self, name: str, index: Manifest) -> Manifest | None:
        """For a client that takes no index, the index's linux/amd64 manifest, as the
        reference registry serves to such clients."""
        for child in json.loads(index.data)["manifests"]:
            platform = child.get("platform") or {}
            if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
                try:
                    return self.server.storage.manifest(name, child["digest"])
                except ManifestUnknown:
                    return None
        return None

    def _put_manifest(self, name: str, reference: str) -> None:
        data = self._read_body(MAX_MANIFEST_SIZE)
        manifest = self.server.storage.put_manifest(
            name, reference, data, self.headers.get("Content-Type")
        )
        headers = [
            ("Location", f"/v2/{name}/manifests/{manifest.digest}"),
            ("Docker-Content-Digest", manifest.digest),
        ]
        subject = json.loads(manifest.data).get("subject")
        if isinstance(subject, dict):
            headers.append(("OCI-Subject", subject["digest"]))
        self._respond(HTTPStatus.CREATED, headers=headers)

    def _delete_manifest(self, name: str, reference: str) -> None:
        if is_digest_reference(reference):
            self.server.storage.delete_manifest(name, reference)
        else:
            self.server.storage.delete_tag(name, reference)
        self._respond(HTTPStatus.ACCEPTED)

    def _get_blob(self, name: str, digest: str) -> None:
        info, file = self.server.storage.open_blob(name, check_digest(digest))
        with file:
            headers = [
                ("Docker-Content-Digest", info.digest),
                ("ETag", f'"{info.digest}"'),
                ("Accept-Ranges", "bytes"),
                ("Cache-Control", "max-age=31536000"),
            ]
            status, start, length = HTTPStatus.OK, 0, info.size
            range_header = self.headers.get("Range")
            if range_header is not None:
                start, end = parse_range(range_header, info.size)
                status, length = HTTPStatus.PARTIAL_CONTENT, end - start + 1
                headers.append(("Content-Range", f"bytes {start}-{end}/{info.size}"))
            self._respond(
                status, headers=headers, content_type="application/octet-stream", length=length
            )
            if self.command != "HEAD" and length:
                self.connection.sendfile(file, start, length)

    def _delete_blob(self, name: str, digest: str) -> None:
        self.server.storage.delete_blob(name, check_digest(digest))
        self._respond(HTTPStatus.ACCEPTED)

    def _start_upload(self, name: str) -> None:
        storage = self.server.storage
        mount = self._param("mount")
        if mount is not None:
            info = storage.mount_blob(name, check_digest(mount), self._param("from"))
            if info is not None:
                self._blob_created(name, info.digest)
                return
        else:
            digest = self._param("digest")
            if digest is not None:  # a monolithic upload in one POST
                info = storage.put_blob(name, self._body(), check_digest(digest))
                self._blob_created(name, info.digest)
                return
        if self._body_expected:
            raise BlobUploadInvalid("a POST with a body needs ?digest=")
        upload = storage.start_upload(name)
        self._upload_state(HTTPStatus.ACCEPTED, name, upload.uuid, 0)

    def _upload_status(self, name: str, upload_id: str) -> None:
        size = self.server.storage.upload_size(name, upload_id)
        self._upload_state(HTTPStatus.NO_CONTENT, name, upload_id, size)

    def _patch_upload(self, name: str, upload_id: str) -> None:
        offset, chunks = self._chunk()
        size = self.server.storage.write_upload(name, upload_id, chunks, offset)
        self._upload_state(HTTPStatus.ACCEPTED, name, upload_id, size)

    def _finish_upload(self, name: str, upload_id: str) -> None:
        digest = self._param("digest")
        if digest is None:
            self.server.storage.upload_size(name, upload_id)  # an unknown upload comes first
            raise DigestInvalid("the closing PUT needs ?digest=")
        offset, chunks = self._chunk() if self._body_expected else (None, iter(()))
        info = self.server.storage.finish_upload(name, upload_id, digest, chunks, offset)
        self._blob_created(name, info.digest)

    def _cancel_upload(self, name: str, upload_id: str) -> None:
        self.server.storage.cancel_upload(name, upload_id)
        self._respond(HTTPStatus.NO_CONTENT)

    def _referrers(self, name: str, digest: str) -> None:
        artifact_type = self._param("artifactType")
        descriptors = self.server.storage.referrers(name, digest, artifact_type)
        self._json(
            HTTPStatus.OK,
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors},
            [("OCI-Filters-Applied", "artifactType")] if artifact_type else [],
            content_type=OCI_INDEX,
        )

    def _blob_created(self, name: str, digest: str) -> None:
        self._respond(
            HTTPStatus.CREATED,
            headers=[("Location", f"/v2/{name}/blobs/{digest}"), ("Docker-Content-Digest", digest)],
        )

    def _upload_state(self, status: int, name: str, upload_id: str, size: int) -> None:
        self._respond(
            status,
            headers=[
                ("Location", f"/v2/{name}/blobs/uploads/{upload_id}"),
                ("Range", f"0-{max(size - 1, 0)}"),
                ("Docker-Upload-UUID", upload_id),
            ],
        )


class Registry(ThreadingHTTPServer):
    """The registry server, one thread per connection, serving ``storage`` at ``address``
    (port 0 picks a free port). server_close() also ends the connections still open."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], storage: HubStorage, *, quiet: bool = False
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.storage = storage
        self.quiet = quiet
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, RegistryRequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host's name up (getfqdn): no lookups here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Close a connection gracefully: stop sending, then read and drop what the client
        still sends (for a moment), so that closing over a body we never read does not
        reset the connection before the client has read our response."""
        with self._connections_lock:
            self._connections.discard(request)
        try:
            request.shutdown(socket.SHUT_WR)
            request.settimeout(_LINGER_SECONDS)
            drained = 0
            while drained < _LINGER_BYTES and (data := request.recv(65536)):
                drained += len(data)
        except OSError:
            pass
        self.close_request(request)

    def server_close(self) -> None:
        super().server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
