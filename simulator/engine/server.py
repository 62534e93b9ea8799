"""The Engine API's HTTP/1.1 server on unix sockets: request parsing, routing with API versions,
Docker's error shape, streamed and hijacked responses, and bridges to blocking work in threads.

Adding a route
==============

Each topic of the API is a module in ``simulator/engine/api/`` with an ``add_routes(router)``
function, listed in ``simulator/engine/api/__init__.py``. A handler is an ``async`` function
of the engine and the request::

    def add_routes(router: Router[Engine]) -> None:
        router.get("/volumes/{name}", inspect_volume)

    async def inspect_volume(engine: Engine, request: Request) -> Response:
        volume = await asyncio.to_thread(engine.volumes.get, request.params["name"])
        return json_response(volume.to_api())

- Patterns: ``{name}`` matches one path segment, ``{name:.*}`` any text, slashes included (image
  names have them). Routes are tried in the order they were added. Every route answers at
  ``/vX.Y/...`` for each supported version and unversioned; ``request.api_version`` says which
  version the client asked for (``request.version_at_least("1.44")``).
- Query arguments: ``request.arg("tag")``, ``request.args("changes")`` (every value),
  ``request.flag("force")`` (Docker's booleans: "", "0", "no", "false", "none" are false),
  ``request.int_arg("t", 10)``. A JSON body: ``await request.json()``, which fails as Docker does
  on a malformed body. A large body for blocking code: ``request.blocking_body()``, a file object
  to read in a worker thread.
- What a handler returns:

  - ``Response`` (``json_response(value)``, ``text_response(text)``, ``empty_response(204)``):
    sent whole, with Content-Length.
  - ``StreamResponse(chunks)``: the headers go out at once, then each chunk as it comes, flushed
    (chunked encoding): pulls, logs, events. When the client goes away the chunks' async
    iterator is closed, so the work behind it stops.
  - ``Hijack(handler)``: the connection is handed over raw (attach, exec start). The client gets
    ``101 UPGRADED`` with ``Connection: Upgrade`` and ``Upgrade: tcp`` if it asked to upgrade,
    else ``200 OK``; then ``handler(reader, writer)`` owns the socket until it returns, and the
    connection is closed.

- Errors: raise ``NotFound("No such container: x")``, ``Conflict``, ``BadRequest``,
  ``Forbidden``..., or any exception with an ``int`` ``status`` attribute (the image store's
  errors have one). The client gets ``{"message": "..."}`` with ``Content-Type:
  application/json`` and that status. Anything else is a 500 with the exception's message; its
  traceback goes to the engine's log, never to the client.
- Blocking work (the image store, the runtime, the disk) runs in threads: ``await
  asyncio.to_thread(...)``; ``iterate_blocking(iterator)`` turns a blocking iterator into an
  async one; ``chunks_from_writer(work)`` turns work that writes into a file object into an
  iterator of chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import io
import json
import logging
import os
import queue
import re
import socket
import stat
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

MAX_HEADER_BYTES = 1 << 20  # as Go's net/http: DefaultMaxHeaderBytes
MAX_JSON_BODY = 64 << 20
DRAIN_LIMIT = 256 << 10  # an unread body up to this size is skipped to keep the connection
RAW_STREAM = "application/vnd.docker.raw-stream"
JSON = "application/json"
PAGE_NOT_FOUND = "page not found"
_READ_SIZE = 64 << 10
_VERSIONED_PATH = re.compile(r"/v([0-9.]+)(/.*)")
_PATTERN_PART = re.compile(r"\{(\w+)(?::([^}]*))?\}")
_FALSE_WORDS = frozenset({"", "0", "no", "false", "none"})

log = logging.getLogger("simulator.engine")

Context = TypeVar("Context")
Item = TypeVar("Item")


# Errors


class ApiError(Exception):
    """An error the client sees as ``{"message": str(error)}`` with ``status``."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class ServerError(ApiError):
    status = 500


class NotImplementedByEngine(ApiError):
    status = 501


def status_of(error: BaseException) -> int:
    """The HTTP status an exception answers with: its ``status`` if it has a valid one."""
    status = getattr(error, "status", None)
    if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
        return status
    return 500


def message_of(error: BaseException) -> str:
    """What the client is told about an exception: its message, never a traceback."""
    text = str(error)
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    return text or type(error).__name__


# Responses


@dataclass
class Response:
    """A whole response, sent with Content-Length."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class StreamResponse:
    """A response sent as it is produced: headers at once, then each chunk, flushed."""

    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


HijackHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Hijack:
    """Take the connection over: after ``101 UPGRADED`` (or ``200 OK`` to a client that did
    not ask to upgrade), ``handler`` reads and writes the raw socket until it returns."""

    handler: HijackHandler
    content_type: str = RAW_STREAM
    headers: list[tuple[str, str]] = field(default_factory=list)


AnyResponse = Response | StreamResponse | Hijack


def go_json(value: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, UTF-8, ``<``, ``>`` and ``&`` escaped,
    ending with a newline (as json.Encoder does)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for character, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(character, escaped)
    return (text + "\n").encode("utf-8")


def json_response(value: Any, status: int = 200) -> Response:
    return Response(status, go_json(value), JSON)


def text_response(text: str, status: int = 200) -> Response:
    return Response(status, text.encode("utf-8"), "text/plain; charset=utf-8")


def empty_response(status: int = 204) -> Response:
    return Response(status)


def error_response(error: BaseException) -> Response:
    """Docker's error shape for an exception."""
    return json_response({"message": message_of(error)}, status_of(error))


# Requests


class Headers:
    """Request headers, by case-insensitive name."""

    def __init__(self, pairs: Sequence[tuple[str, str]] = ()) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: str = "") -> str:
        values = self._values.get(name.lower())
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._values.get(name.lower(), []))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def tokens(self, name: str) -> set[str]:
        """A comma-separated header's tokens, lowercased (``Connection: keep-alive, Upgrade``)."""
        return {token.strip().lower() for token in self.get(name).split(",") if token.strip()}


class Body:
    """A request body, read as it arrives: by Content-Length or chunked encoding."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        length: int | None,
        chunked: bool,
        expect_continue: bool,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._remaining = length or 0
        self._chunked = chunked
        self._chunk_left = 0
        self._continue_pending = expect_continue
        self.declared_length = length
        self.done = not chunked and not length

    @property
    def is_empty(self) -> bool:
        """True when the request declared no body at all (no length, not chunked)."""
        return not self._chunked and not self.declared_length

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left if negative); b"" at the end."""
        if self.done:
            return b""
        if size < 0:
            return await self.read_all()
        if size == 0:
            return b""
        await self._send_continue()
        if not self._chunked:
            data = await self._reader.read(min(size, self._remaining))
            if not data:
                raise ConnectionError("the client closed the connection in the request body")
            self._remaining -= len(data)
            self.done = self._remaining == 0
            return data
        if self._chunk_left == 0:
            self._chunk_left = await self._next_chunk_size()
            if self._chunk_left == 0:
                await self._read_trailers()
                self.done = True
                return b""
        data = await self._reader.read(min(size, self._chunk_left))
        if not data:
            raise ConnectionError("the client closed the connection in the request body")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            if await self._reader.readexactly(2) != b"\r\n":
                raise BadRequest("malformed chunked encoding")
        return data

    async def read_all(self, limit: int = MAX_JSON_BODY) -> bytes:
        parts = []
        total = 0
        while not self.done:
            data = await self.read(_READ_SIZE)
            total += len(data)
            if total > limit:
                raise ApiError(f"request body is larger than {limit} bytes", 413)
            parts.append(data)
        return b"".join(parts)

    async def drain(self, limit: int = DRAIN_LIMIT) -> bool:
        """Skip what is left of the body, up to ``limit`` bytes; False if more was left (then
        the connection can't be reused)."""
        skipped = 0
        try:
            while not self.done:
                skipped += len(await self.read(_READ_SIZE))
                if skipped > limit:
                    return False
        except (ConnectionError, asyncio.IncompleteReadError, ApiError):
            return False
        return True

    async def _send_continue(self) -> None:
        if self._continue_pending:
            self._continue_pending = False
            self._writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await self._writer.drain()

    async def _next_chunk_size(self) -> int:
        line = await self._reader.readline()
        if not line.endswith(b"\n"):
            raise ConnectionError("the client closed the connection in the request body")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadRequest("malformed chunked encoding") from None
        if size < 0:
            raise BadRequest("malformed chunked encoding")
        return size

    async def _read_trailers(self) -> None:
        while True:
            line = await self._reader.readline()
            if not line.endswith(b"\n"):
                raise ConnectionError("the client closed the connection in the request body")
            if line in (b"\r\n", b"\n"):
                return


class BlockingBody(io.RawIOBase):
    """A request body as a file object for blocking code in a worker thread: each read waits
    for the event loop to read from the socket."""

    def __init__(self, body: Body, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._body = body
        self._loop = loop

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None:
            size = -1
        return asyncio.run_coroutine_threadsafe(self._body.read(size), self._loop).result()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


@dataclass
class Request:
    """One HTTP request, as the handler sees it."""

    method: str
    target: str  # as sent: /v1.50/images/json?all=1
    path: str  # decoded, without the version prefix: /images/json
    query_string: str
    query: dict[str, list[str]]
    headers: Headers
    http_version: str
    body: Body
    api_version: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def raw_path(self) -> str:
        """The path as sent, version included, without the query."""
        return self.target.split("?", 1)[0]

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def has_arg(self, name: str) -> bool:
        return name in self.query

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean argument as moby reads one: absent is ``default``; "", "0", "no",
        "false" and "none" are false; anything else is true."""
        if name not in self.query:
            return default
        return self.arg(name).strip().lower() not in _FALSE_WORDS

    def int_arg(self, name: str, default: int = 0) -> int:
        value = self.arg(name)
        if value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise BadRequest(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None

    def version_at_least(self, version: str) -> bool:
        return parse_version(self.api_version) >= parse_version(version)

    async def json(self) -> Any:
        """The JSON body, or None when there is none; Docker's errors for a wrong Content-Type
        or malformed JSON."""
        content_type = self.headers.get("content-type")
        if not content_type and self.body.is_empty:
            return None
        mime_type = content_type.split(";", 1)[0].strip().lower()
        if not mime_type:
            raise BadRequest(f"malformed Content-Type header ({content_type}): mime: no media type")
        if mime_type != JSON:
            raise BadRequest(
                f"unsupported Content-Type header ({content_type}): must be 'application/json'"
            )
        if self.body.declared_length == 0:
            return None
        data = await self.body.read_all()
        return parse_json_body(data)

    def blocking_body(self) -> BlockingBody:
        """The body as a file object, to be read by blocking code in a worker thread."""
        return BlockingBody(self.body, asyncio.get_running_loop())


def parse_json_body(data: bytes) -> Any:
    """Decode a request body as moby's httputils.ReadJSON does, with Go's error words."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("invalid JSON: invalid character in string literal") from None
    if not text.strip():
        raise BadRequest("invalid JSON: got EOF while reading request body")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            raise BadRequest("unexpected content after JSON") from None
        raise BadRequest(f"invalid JSON: {_go_json_error(text, error)}") from None


def _go_json_error(text: str, error: json.JSONDecodeError) -> str:
    """Python's JSON error as Go's decoder words it."""
    if error.pos >= len(text) or error.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    character = _go_quote_char(text[error.pos])
    if error.msg == "Expecting value":
        return f"invalid character {character} looking for beginning of value"
    if error.msg.startswith("Expecting property name"):
        return f"invalid character {character} looking for beginning of object key string"
    if error.msg == "Expecting ':' delimiter":
        return f"invalid character {character} after object key"
    if error.msg == "Expecting ',' delimiter":
        where = "object key:value pair" if _innermost(text, error.pos) == "{" else "array element"
        return f"invalid character {character} after {where}"
    if error.msg.startswith("Invalid control character"):
        return f"invalid character {character} in string literal"
    if error.msg.startswith("Invalid \\escape") or error.msg.startswith("Invalid \\u"):
        return f"invalid character {character} in string escape code"
    return error.msg


def _go_quote_char(character: str) -> str:
    if character == "'":
        return "'\\''"
    if character == '"':
        return "'\"'"
    quoted = json.dumps(character)[1:-1]
    return f"'{quoted}'"


def _innermost(text: str, end: int) -> str:
    """The innermost bracket open at ``end``, outside strings."""
    stack: list[str] = []
    in_string = escaped = False
    for character in text[:end]:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "{[":
            stack.append(character)
        elif character in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


# Routing


def parse_version(text: str) -> tuple[int, ...]:
    """An API version as numbers, compared as moby's versions package compares them."""
    parts = []
    for part in text.split("."):
        try:
            parts.append(int(part))
        except ValueError:
            parts.append(0)
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


Handler = Callable[[Context, Request], Awaitable[AnyResponse]]


@dataclass(frozen=True)
class Route(Generic[Context]):
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler[Context]


class Router(Generic[Context]):
    """Routes by method and path pattern; API versions from ``min_version`` to
    ``max_version`` are served, with Docker's error for any other."""

    def __init__(self, min_version: str, max_version: str) -> None:
        self.min_version = min_version
        self.max_version = max_version
        self._routes: list[Route[Context]] = []

    def add(self, method: str, pattern: str, handler: Handler[Context]) -> None:
        self._routes.append(Route(method.upper(), pattern, _compile(pattern), handler))

    def get(self, pattern: str, handler: Handler[Context]) -> None:
        self.add("GET", pattern, handler)

    def head(self, pattern: str, handler: Handler[Context]) -> None:
        self.add("HEAD", pattern, handler)

    def post(self, pattern: str, handler: Handler[Context]) -> None:
        self.add("POST", pattern, handler)

    def put(self, pattern: str, handler: Handler[Context]) -> None:
        self.add("PUT", pattern, handler)

    def delete(self, pattern: str, handler: Handler[Context]) -> None:
        self.add("DELETE", pattern, handler)

    @property
    def routes(self) -> list[Route[Context]]:
        return list(self._routes)

    def resolve(self, method: str, path: str) -> tuple[Handler[Context], dict[str, str], str]:
        """The handler for a request, the path's parameters, and the API version asked for.
        An unknown route, or a known path with another method, is ``page not found`` (as
        moby answers both); a version out of range is Docker's 400."""
        version = ""
        versioned = _VERSIONED_PATH.fullmatch(path)
        if versioned is not None:
            version, path = versioned.group(1), versioned.group(2)
        for route in self._routes:
            if route.method != method:
                continue
            match = route.regex.fullmatch(path)
            if match is None:
                continue
            if version:
                self._check_version(version)
            return route.handler, match.groupdict(), version or self.max_version
        raise NotFound(PAGE_NOT_FOUND)

    def _check_version(self, version: str) -> None:
        asked = parse_version(version)
        if asked < parse_version(self.min_version):
            raise BadRequest(
                f"client version {version} is too old. Minimum supported API version is "
                f"{self.min_version}, please upgrade your client to a newer version"
            )
        if asked > parse_version(self.max_version):
            raise BadRequest(
                f"client version {version} is too new. Maximum supported API version is "
                f"{self.max_version}"
            )


def _compile(pattern: str) -> re.Pattern[str]:
    regex = ""
    position = 0
    for match in _PATTERN_PART.finditer(pattern):
        regex += re.escape(pattern[position : match.start()])
        regex += f"(?P<{match.group(1)}>{match.group(2) or '[^/]+'})"
        position = match.end()
    return re.compile(regex + re.escape(pattern[position:]))


# Bridges to blocking work


async def iterate_blocking(iterator: Iterator[Item]) -> AsyncIterator[Item]:
    """The items of a blocking iterator, each fetched in a worker thread. Closing this async
    iterator closes the blocking one (a generator's ``finally`` runs), after the item in
    flight, if any, has arrived."""
    loop = asyncio.get_running_loop()
    end = object()
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            pending = loop.run_in_executor(None, next, iterator, end)
            item = await asyncio.shield(pending)
            pending = None
            if item is end:
                return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if pending is None:
            if close is not None:
                await loop.run_in_executor(None, close)
        else:
            pending.add_done_callback(_close_later(loop, close))


def _close_later(
    loop: asyncio.AbstractEventLoop, close: Callable[[], None] | None
) -> Callable[[asyncio.Future[Any]], None]:
    def after(future: asyncio.Future[Any]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved: the stream it was for is gone
        if close is None:
            return
        try:
            loop.run_in_executor(None, close)
        except RuntimeError:  # the executor is shutting down: close it from a thread of its
            # own, never from the loop's (closing may wait for work that waits on the loop)
            threading.Thread(target=close, name="close-iterator", daemon=True).start()

    return after


class _ChunkWriter(io.RawIOBase):
    """The file object chunks_from_writer hands its work: buffers writes into chunks."""

    def __init__(self, put: Callable[[Any], None], chunk_size: int) -> None:
        super().__init__()
        self._put = put
        self._chunk_size = chunk_size
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._buffer += view
        if len(self._buffer) >= self._chunk_size:
            self.flush()
        return len(view)

    def flush(self) -> None:
        if self._buffer:
            chunk, self._buffer = bytes(self._buffer), bytearray()
            self._put(chunk)


def chunks_from_writer(
    work: Callable[[BinaryIO], None], *, chunk_size: int = 256 << 10, queued_chunks: int = 8
) -> Iterator[bytes]:
    """Run ``work(out)`` in a thread of its own and yield what it writes to ``out``, in
    chunks. The work waits while the reader is behind; closing the iterator makes its next
    write raise BrokenPipeError, and waits for the thread to end."""
    chunks: queue.Queue[Any] = queue.Queue(queued_chunks)
    stopped = threading.Event()
    end = object()

    def put(item: Any) -> None:
        while not stopped.is_set():
            try:
                chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise BrokenPipeError("the reader went away")

    def run() -> None:
        writer = _ChunkWriter(put, chunk_size)
        try:
            work(writer)  # type: ignore[arg-type]
            writer.flush()
            put(end)
        except BaseException as error:  # handed to the reading thread, which raises it
            with contextlib.suppress(BrokenPipeError):
                put(error)

    thread = threading.Thread(target=run, name="chunks-from-writer", daemon=True)
    thread.start()
    try:
        while True:
            item = chunks.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stopped.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                chunks.get(timeout=0.1)
        thread.join()


async def first_then_rest(chunks: AsyncIterator[Item]) -> AsyncIterator[Item]:
    """Fetch the first item now, so that a failure before anything is produced raises here
    (and becomes an HTTP error); return an iterator of all the items."""
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        return _empty()
    except BaseException:
        await _aclose(chunks)
        raise
    return _prepend(first, chunks)


async def _empty() -> AsyncIterator[Any]:
    return
    yield  # an async generator that yields nothing


async def _prepend(first: Item, rest: AsyncIterator[Item]) -> AsyncIterator[Item]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await _aclose(rest)


async def _aclose(iterator: Any) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


# The server


@dataclass
class RequestRecord:
    """What the server reports of a request, as soon as its answer's head is sent. For a
    stream or a hijacked connection that is before the answer ends: ``duration_ms`` stays
    None until it does."""

    method: str
    path: str  # as sent, version included, without the query
    query: str
    started: float  # time.time() when the request arrived
    status: int = 0
    duration_ms: float | None = None


class _ProtocolError(Exception):
    """A request that is not valid HTTP/1.x: answered with ``status``, then closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ApiServer(Generic[Context]):
    """HTTP/1.1 on unix sockets for a router: keep-alive, Content-Length and chunked bodies,
    streamed and hijacked responses. ``default_headers`` go on every response (Docker sends
    Api-Version, Ostype and Server on all); ``on_request`` hears of every request when its
    answer starts (see RequestRecord)."""

    def __init__(
        self,
        router: Router[Context],
        context: Context,
        *,
        default_headers: Sequence[tuple[str, str]] = (),
        on_request: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        self.router = router
        self.context = context
        self.default_headers = list(default_headers)
        self.on_request = on_request
        self._servers: list[asyncio.AbstractServer] = []
        self._socket_paths: list[Path] = []
        self._connections: set[asyncio.Task[None]] = set()

    async def listen_unix(self, path: str | os.PathLike[str], mode: int = 0o660) -> None:
        """Listen on a unix socket at ``path``; a stale socket file is replaced, a live one
        (another server answering) is an error."""
        socket_path = Path(path)
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_socket(socket_path)
        server = await asyncio.start_unix_server(
            self._serve_connection, path=str(socket_path), limit=MAX_HEADER_BYTES
        )
        os.chmod(socket_path, mode)
        self._servers.append(server)
        self._socket_paths.append(socket_path)

    async def close(self) -> None:
        """Stop listening, end every connection, and remove the socket files."""
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)
        for socket_path in self._socket_paths:
            with contextlib.suppress(FileNotFoundError):
                socket_path.unlink()
        self._servers.clear()
        self._socket_paths.clear()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    # One connection

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    request = await self._read_request(reader, writer)
                except _ProtocolError as error:
                    await self._send_protocol_error(writer, error)
                    return
                if request is None:
                    return
                if not await self._handle(request, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("connection failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as error:
            if not error.partial.strip():
                return None  # the client closed the connection between requests
            raise _ProtocolError(400, "malformed HTTP request") from None
        except asyncio.LimitOverrunError:
            raise _ProtocolError(431, "request header fields too large") from None
        lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not re.fullmatch(r"HTTP/1\.[01]", parts[2]) or not parts[0]:
            raise _ProtocolError(400, f"malformed HTTP request {lines[0]!r}")
        method, target, http_version = parts
        pairs = []
        for line in lines[1:]:
            if not line:
                continue
            name, separator, value = line.partition(":")
            if not separator or not name or name != name.strip():
                raise _ProtocolError(400, f"malformed MIME header line: {line}")
            pairs.append((name, value.strip()))
        headers = Headers(pairs)
        split = urlsplit(target)
        path = unquote(split.path)
        if not path.startswith("/"):
            raise _ProtocolError(400, f"malformed HTTP request {lines[0]!r}")
        body = self._body(reader, writer, headers)
        query = parse_qs(split.query, keep_blank_values=True)
        return Request(method, target, path, split.query, query, headers, http_version, body)

    def _body(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: Headers
    ) -> Body:
        expect_continue = "100-continue" in headers.tokens("expect")
        transfer_encoding = headers.tokens("transfer-encoding")
        if transfer_encoding:
            if transfer_encoding != {"chunked"}:
                raise _ProtocolError(501, "unsupported transfer encoding")
            return Body(reader, writer, length=None, chunked=True, expect_continue=expect_continue)
        length_text = headers.get("content-length")
        length = 0
        if length_text:
            if not length_text.isdigit():
                raise _ProtocolError(400, f"bad Content-Length {length_text!r}")
            length = int(length_text)
        return Body(reader, writer, length=length, chunked=False, expect_continue=expect_continue)

    async def _handle(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; whether the connection can take another."""
        record = RequestRecord(request.method, request.raw_path, request.query_string, time.time())
        clock = time.monotonic()
        try:
            handler, params, version = self.router.resolve(request.method, request.path)
            request.params = params
            request.api_version = version
            response: AnyResponse = await handler(self.context, request)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if status_of(error) == 500 and not isinstance(error, ApiError):
                log.error(
                    "%s %s failed", request.method, request.target, exc_info=error
                )  # the traceback stays here; the client gets the message
            response = error_response(error)
        announced = False

        def announce(status: int) -> None:
            nonlocal announced
            record.status = status
            if not announced:
                announced = True
                self._report(record)

        keep_alive = False
        try:
            keep_alive = await self._send(request, response, reader, writer, announce)
        finally:
            record.duration_ms = round((time.monotonic() - clock) * 1000, 3)
            announce(record.status or 500)
        if keep_alive:
            keep_alive = await request.body.drain()
        return keep_alive

    def _report(self, record: RequestRecord) -> None:
        if self.on_request is None:
            return
        try:
            self.on_request(record)
        except Exception:
            log.exception("on_request failed")

    def _wants_keep_alive(self, request: Request) -> bool:
        connection = request.headers.tokens("connection")
        if request.http_version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection

    async def _send(
        self,
        request: Request,
        response: AnyResponse,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        announce: Callable[[int], None],
    ) -> bool:
        """Send the response; whether the connection can take another request. ``announce``
        is told the status once the head is out (for a whole response, once it is sent)."""
        if isinstance(response, Hijack):
            return await self._send_hijack(request, response, reader, writer, announce)
        if isinstance(response, StreamResponse):
            return await self._send_stream(request, response, reader, writer, announce)
        keep_alive = self._wants_keep_alive(request)
        headers = self._headers(response.headers, response.content_type)
        headers.append(("Content-Length", str(len(response.body))))
        if not keep_alive:
            headers.append(("Connection", "close"))
        announce(response.status)
        writer.write(_head(response.status, headers))
        if request.method != "HEAD" and response.body:
            writer.write(response.body)
        await writer.drain()
        return keep_alive

    async def _send_stream(
        self,
        request: Request,
        response: StreamResponse,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        announce: Callable[[int], None],
    ) -> bool:
        keep_alive = self._wants_keep_alive(request)
        chunked = request.http_version == "HTTP/1.1"
        headers = self._headers(response.headers, response.content_type)
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        if not chunked or not keep_alive:
            keep_alive = False
            headers.append(("Connection", "close"))
        try:
            writer.write(_head(response.status, headers))
            await writer.drain()
            announce(response.status)
            completed, reusable = await self._pump(
                request, response.chunks, reader, writer, chunked
            )
        finally:
            await _aclose(response.chunks)
        if completed and chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        return keep_alive and completed and reusable

    async def _pump(
        self,
        request: Request,
        chunks: AsyncIterator[bytes],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        chunked: bool,
    ) -> tuple[bool, bool]:
        """Write every chunk as it comes. Returns (completed, reusable): completed is False
        when the client went away or the chunks failed; reusable is False when the client
        sent bytes meanwhile (the connection can't take another request then)."""

        async def write_all() -> None:
            async for chunk in chunks:
                if not chunk:
                    continue
                if chunked:
                    writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                else:
                    writer.write(chunk)
                await writer.drain()

        pump = asyncio.create_task(write_all())
        # While the response streams, the client sends nothing: a read that ends means it
        # has gone away, and the stream stops (events, logs -f and pulls would run on).
        watch = asyncio.create_task(reader.read(1)) if request.body.done else None
        reusable = True
        try:
            waiting: set[asyncio.Future[Any]] = {pump} if watch is None else {pump, watch}
            while True:
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if pump in done:
                    break
                if watch is not None and watch in done:
                    waiting.discard(watch)
                    data = None if watch.cancelled() or watch.exception() else watch.result()
                    if not data:
                        return False, False
                    reusable = False
            error = pump.exception()
            if error is not None:
                if not isinstance(error, ConnectionError):
                    log.error("stream of %s failed", request.target, exc_info=error)
                return False, False
            return True, reusable
        finally:
            for task in (pump, watch):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task

    async def _send_hijack(
        self,
        request: Request,
        response: Hijack,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        announce: Callable[[int], None],
    ) -> bool:
        upgrade = "upgrade" in request.headers.tokens("connection") and bool(
            request.headers.get("upgrade")
        )
        headers = [("Content-Type", response.content_type)]
        if upgrade:
            headers += [("Connection", "Upgrade"), ("Upgrade", "tcp")]
        headers += [*self.default_headers, *response.headers]
        status_line = "HTTP/1.1 101 UPGRADED" if upgrade else "HTTP/1.1 200 OK"
        lines = [status_line] + [f"{name}: {value}" for name, value in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        announce(101 if upgrade else 200)
        try:
            await response.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("hijacked connection of %s failed", request.target)
        return False

    def _headers(
        self, extra: Sequence[tuple[str, str]], content_type: str | None
    ) -> list[tuple[str, str]]:
        headers = list(self.default_headers)
        if content_type:
            headers.append(("Content-Type", content_type))
        headers.append(("Date", email.utils.formatdate(usegmt=True)))
        names = {name.lower() for name, _ in extra}
        headers = [(name, value) for name, value in headers if name.lower() not in names]
        return headers + list(extra)

    async def _send_protocol_error(
        self, writer: asyncio.StreamWriter, error: _ProtocolError
    ) -> None:
        body = go_json({"message": str(error)})
        headers = self._headers([], JSON)
        headers += [("Content-Length", str(len(body))), ("Connection", "close")]
        with contextlib.suppress(ConnectionError):
            writer.write(_head(error.status, headers) + body)
            await writer.drain()


def _head(status: int, headers: Sequence[tuple[str, str]]) -> bytes:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file nobody listens on; refuse to replace a live one or a non-socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1)
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)
    else:
        raise OSError(f"{path}: another server is listening on this socket")
    finally:
        probe.close()
