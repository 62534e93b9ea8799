"""A Docker Engine API client over the standard library, as the CLI needs it.

It connects to ``DOCKER_HOST`` (``unix://PATH`` or ``tcp://HOST:PORT``), negotiates the API
version with ``/_ping`` the way Docker's client does, and offers plain requests, streamed
responses (pull progress, logs, events) and hijacked connections (attach, exec).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

DEFAULT_HOST = "unix:///var/run/docker.sock"
MAX_API_VERSION = "1.50"
MIN_API_VERSION = "1.41"


class DaemonError(Exception):
    """An error answer from the engine; ``str()`` is its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConnectError(Exception):
    """The engine can't be reached; the text is Docker's."""


def _version_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (0,)


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            409: "Conflict", 500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


class Headers(dict):
    """Response headers; names match whatever their case."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class _BodyReader:
    """The body of one answer, by Content-Length, chunked, or up to the end of the stream."""

    def __init__(self, stream: Any, headers: Headers, method: str, status: int) -> None:
        self.stream = stream
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self.remaining: int | None = int(length) if length and not self.chunked else None
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self.remaining = 0
            self.chunked = False
        self.chunk_left = 0
        self.done = self.remaining == 0

    def read1(self, size: int = 65536) -> bytes:
        """Some of the body as soon as it is there; b"" at its end."""
        if self.done:
            return b""
        if self.chunked:
            if self.chunk_left == 0:
                line = self.stream.readline()
                self.chunk_left = int(line.split(b";")[0].strip() or b"0", 16) if line else 0
                if self.chunk_left == 0:
                    while line and line not in (b"\r\n", b"\n"):
                        line = self.stream.readline()  # trailers, up to the empty line
                    self.done = True
                    return b""
            data = self.stream.read1(min(size, self.chunk_left))
            if not data:
                self.done = True
                return b""
            self.chunk_left -= len(data)
            if self.chunk_left == 0:
                self.stream.readline()  # the CRLF after the chunk
            return data
        want = size if self.remaining is None else min(size, self.remaining)
        data = self.stream.read1(want)
        if not data:
            self.done = True
            return b""
        if self.remaining is not None:
            self.remaining -= len(data)
            self.done = self.remaining == 0
        return data

    def read_all(self) -> bytes:
        parts = []
        while data := self.read1(1 << 20):
            parts.append(data)
        return b"".join(parts)

    def read(self, size: int = -1) -> bytes:
        """File-style: ``size`` bytes, fewer only at the end (all that is left if negative)."""
        if size is None or size < 0:
            return self.read_all()
        parts, wanted = [], size
        while wanted > 0 and (data := self.read1(wanted)):
            parts.append(data)
            wanted -= len(data)
        return b"".join(parts)


class Response:
    """A finished or streaming answer."""

    def __init__(self, sock: socket.socket, method: str) -> None:
        self.sock = sock
        self.stream = stream = sock.makefile("rb")
        status_line = stream.readline()
        if not status_line:
            self.close()
            raise ConnectError("error during connect: the engine closed the connection")
        parts = status_line.decode("latin-1").split(None, 2)
        try:
            self.status = int(parts[1])
        except (IndexError, ValueError):
            self.close()
            raise ConnectError(f"malformed HTTP response {status_line!r}") from None
        self.headers = Headers()
        while True:
            line = stream.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.body = _BodyReader(stream, self.headers, method, self.status)
        self.raw = self.body  # the body as a file, to read as it arrives

    def read(self) -> bytes:
        try:
            return self.body.read_all()
        finally:
            self.close()

    def json(self) -> Any:
        body = self.read()
        return json.loads(body) if body.strip() else None

    def chunks(self, size: int = 65536) -> Iterator[bytes]:
        """The body as it arrives."""
        try:
            while data := self.body.read1(size):
                yield data
        finally:
            self.close()

    def json_lines(self) -> Iterator[dict[str, Any]]:
        """A body of JSON messages, one after another, as they arrive."""
        decoder = json.JSONDecoder()
        buffer = ""
        for data in self.chunks():
            buffer += data.decode("utf-8", "replace")
            while True:
                buffer = buffer.lstrip()
                if not buffer:
                    break
                try:
                    value, end = decoder.raw_decode(buffer)
                except ValueError:
                    break
                buffer = buffer[end:]
                yield value

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


class Hijacked:
    """A connection taken over after ``101 UPGRADED`` (or a 200 with a raw stream)."""

    def __init__(self, sock: socket.socket, buffered: bytes, content_type: str) -> None:
        self.sock = sock
        self.buffered = buffered
        self.content_type = content_type

    @property
    def multiplexed(self) -> bool:
        return "multiplexed" in self.content_type

    def recv(self, size: int = 65536) -> bytes:
        if self.buffered:
            data, self.buffered = self.buffered, b""
            return data
        return self.sock.recv(size)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


class Client:
    """Requests to one engine."""

    def __init__(self, host: str | None = None, version: str | None = None) -> None:
        self.host = host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
        parsed = urllib.parse.urlsplit(self.host)
        self.scheme = parsed.scheme
        if self.scheme == "unix":
            self.address = parsed.path
        elif self.scheme in ("tcp", "http"):
            self.address = parsed.netloc
        else:
            raise ConnectError(f"unable to parse docker host `{self.host}`")
        self._version = version or os.environ.get("DOCKER_API_VERSION") or ""
        self.server_headers: dict[str, str] = {}

    # -- connections --------------------------------------------------------------------------

    def _connect(self, timeout: float | None = None) -> socket.socket:
        if self.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = self.address
        else:
            host, _, port = self.address.rpartition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (host or self.address, int(port or 2375))
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError, PermissionError):
            sock.close()
            raise self._cannot_connect() from None
        return sock

    def _cannot_connect(self) -> ConnectError:
        return ConnectError(
            f"Cannot connect to the Docker daemon at {self.host}. Is the docker daemon running?"
        )

    @property
    def version(self) -> str:
        """The API version to speak: the engine's, capped at ours (from ``/_ping``)."""
        if not self._version:
            answer = self._send("GET", "/_ping", versioned=False)
            self.server_headers = {k.lower(): v for k, v in answer.headers.items()}
            answer.read()
            offered = self.server_headers.get("api-version", MAX_API_VERSION)
            if _version_tuple(offered) > _version_tuple(MAX_API_VERSION):
                offered = MAX_API_VERSION
            self._version = offered
        return self._version

    def url(self, path: str, params: Mapping[str, Any] | None = None, versioned: bool = True):
        query = ""
        if params:
            pairs = []
            for key, value in params.items():
                if value is None:
                    continue
                if isinstance(value, tuple):  # a repeated key: names=a&names=b
                    pairs.extend((key, str(item)) for item in value)
                    continue
                if isinstance(value, bool):
                    value = "1" if value else "0"
                elif isinstance(value, (dict, list)):
                    value = json.dumps(value, separators=(",", ":"))
                pairs.append((key, str(value)))
            query = "?" + urllib.parse.urlencode(pairs) if pairs else ""
        prefix = f"/v{self.version}" if versioned else ""
        return prefix + urllib.parse.quote(path, safe="/:@") + query

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: bytes | BinaryIO | None = None,
        headers: Mapping[str, str] | None = None,
        versioned: bool = True,
        timeout: float | None = None,
    ) -> Response:
        target = self.url(path, params, versioned)
        sock = self._connect(timeout)
        all_headers = {
            "Host": "api.moby.localhost" if self.scheme == "unix" else self.address,
            "User-Agent": "Docker-Client/28.2.2 (linux)",
            **(headers or {}),
        }
        streamed = body is not None and not isinstance(body, (bytes, bytearray))
        if streamed:
            all_headers["Transfer-Encoding"] = "chunked"
        elif body is not None or method in ("POST", "PUT"):
            all_headers["Content-Length"] = str(len(body or b""))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in all_headers.items()
        )
        try:
            sock.sendall(head.encode("latin-1") + b"\r\n")
            if streamed:
                while block := body.read(1 << 16):  # type: ignore[union-attr]
                    sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                sock.sendall(b"0\r\n\r\n")
            elif body:
                sock.sendall(body)  # type: ignore[arg-type]
        except (BrokenPipeError, ConnectionResetError) as error:
            # The engine answered (an error, say) before reading the whole body.
            try:
                return Response(sock, method)
            except (ConnectError, OSError):
                sock.close()
                message = f"error during connect: {method} {target}: {error}"
                raise ConnectError(message) from None
        except BaseException:
            sock.close()
            raise
        return Response(sock, method)

    # -- requests -----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send a request; an error status raises :class:`DaemonError`. ``body`` may be
        bytes, a binary file (sent chunked) or a JSON value."""
        all_headers = dict(headers or {})
        if (
            body is not None
            and not isinstance(body, (bytes, bytearray))
            and not hasattr(body, "read")
        ):
            body = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        answer = self._send(method, path, params, body, all_headers, timeout=timeout)
        if answer.status >= 400:
            raise self.error_of(answer)
        return answer

    @staticmethod
    def error_of(answer: Response) -> DaemonError:
        body = answer.read()
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = body.decode("utf-8", "replace").strip()
        return DaemonError(answer.status, message or _REASONS.get(answer.status, ""))

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params).json()

    def post_json(
        self, path: str, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        return self.request("POST", path, params, body).json()

    def hijack(
        self, path: str, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Hijacked:
        """POST with ``Upgrade: tcp`` and take the connection over."""
        payload = b"" if body is None else json.dumps(body).encode()
        target = self.url(path, params)
        if self.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: Any = self.address
        else:
            host, _, port = self.address.rpartition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (host, int(port or 2375))
        try:
            sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError, PermissionError):
            sock.close()
            raise self._cannot_connect() from None
        head = (
            f"POST {target} HTTP/1.1\r\nHost: docker\r\n"
            "User-Agent: Docker-Client/28.2.2 (linux)\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        sock.sendall(head + payload)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                sock.close()
                raise DaemonError(500, "the engine closed the connection")
            data += chunk
        header_block, _, rest = data.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if status >= 400:
            length = int(headers.get("content-length", "0") or 0)
            while len(rest) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            sock.close()
            try:
                message = json.loads(rest).get("message", "")
            except (ValueError, AttributeError):
                message = rest.decode("utf-8", "replace").strip()
            raise DaemonError(status, message)
        return Hijacked(sock, rest, headers.get("content-type", ""))


def demultiplex(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split Docker's 8-byte-header frames: the complete ``(stream, payload)`` frames, and the
    bytes of an incomplete one left over."""
    frames = []
    while len(data) >= 8:
        size = int.from_bytes(data[4:8], "big")
        if len(data) < 8 + size:
            break
        frames.append((data[0], data[8 : 8 + size]))
        data = data[8 + size :]
    return frames, data
