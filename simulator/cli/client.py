"""A Docker Engine API client over the standard library, as the CLI needs it.

It connects to ``DOCKER_HOST`` (``unix://PATH`` or ``tcp://HOST:PORT``), negotiates the API
version with ``/_ping`` the way Docker's client does, and offers plain requests, streamed
responses (pull progress, logs, events) and hijacked connections (attach, exec).
"""

from __future__ import annotations

import http.client
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


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class Response:
    """A finished or streaming answer."""

    def __init__(self, connection: http.client.HTTPConnection, raw: http.client.HTTPResponse):
        self.connection = connection
        self.raw = raw
        self.status = raw.status
        self.headers = raw.headers

    def read(self) -> bytes:
        try:
            return self.raw.read()
        finally:
            self.close()

    def json(self) -> Any:
        body = self.read()
        return json.loads(body) if body.strip() else None

    def chunks(self, size: int = 65536) -> Iterator[bytes]:
        """The body as it arrives."""
        try:
            while True:
                data = self.raw.read1(size) if hasattr(self.raw, "read1") else self.raw.read(size)
                if not data:
                    return
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
        self.raw.close()
        self.connection.close()


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

    def _connection(self, timeout: float | None = None) -> http.client.HTTPConnection:
        if self.scheme == "unix":
            return _UnixConnection(self.address, timeout)
        host, _, port = self.address.rpartition(":")
        return http.client.HTTPConnection(host or self.address, int(port or 2375), timeout=timeout)

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
        connection = self._connection(timeout)
        all_headers = {"User-Agent": "Docker-Client/28.2.2 (linux)", **(headers or {})}
        if body is not None and not isinstance(body, (bytes, bytearray)):
            all_headers.setdefault("Transfer-Encoding", "chunked")
        try:
            try:
                connection.request(
                    method,
                    target,
                    body=body,
                    headers=all_headers,
                    encode_chunked=body is not None and not isinstance(body, (bytes, bytearray)),
                )
            except (BrokenPipeError, ConnectionResetError) as error:
                # The engine answered (an error, say) before reading the whole body.
                try:
                    raw = connection.getresponse()
                except (http.client.HTTPException, OSError):
                    connection.close()
                    message = f"error during connect: {method} {target}: {error}"
                    raise ConnectError(message) from None
                return Response(connection, raw)
            raw = connection.getresponse()
        except (FileNotFoundError, ConnectionRefusedError, PermissionError):
            connection.close()
            raise self._cannot_connect() from None
        return Response(connection, raw)

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
        return DaemonError(answer.status, message or http.client.responses.get(answer.status, ""))

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
