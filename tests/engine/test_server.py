"""The engine's HTTP machinery on a real unix socket, with dummy routes: hijacking, streamed
responses, request bodies, keep-alive, and errors in Docker's shape."""

from __future__ import annotations

import asyncio
import json
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.engine.server import (
    ApiServer,
    BadRequest,
    Hijack,
    Request,
    RequestRecord,
    Response,
    Router,
    StreamResponse,
    chunks_from_writer,
    iterate_blocking,
    json_response,
    text_response,
)

Scenario = Callable[[Path, "Dummy"], Awaitable[None]]


class Dummy:
    """The context the dummy routes share with the test."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.stream_closed = asyncio.Event()
        self.completed: list[RequestRecord] = []


async def echo_upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data.upper())
        await writer.drain()
        if data.endswith(b"\n"):
            return


async def hijack(dummy: Dummy, request: Request) -> Hijack:
    return Hijack(echo_upper)


async def slow_stream(dummy: Dummy, request: Request) -> StreamResponse:
    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"first\n"
            await dummy.release.wait()
            yield b"second\n"
        finally:
            dummy.stream_closed.set()

    return StreamResponse(chunks(), content_type="text/plain")


async def echo_json(dummy: Dummy, request: Request) -> Response:
    return json_response({"received": await request.json()})


async def body_size(dummy: Dummy, request: Request) -> Response:
    return json_response({"size": len(await request.body.read_all())})


async def blocking_body_size(dummy: Dummy, request: Request) -> Response:
    body = request.blocking_body()

    def count() -> int:
        total = 0
        while chunk := body.read(1000):
            total += len(chunk)
        return total

    return json_response({"size": await asyncio.to_thread(count)})


async def fails(dummy: Dummy, request: Request) -> Response:
    raise RuntimeError("the disk caught fire")


async def refuses(dummy: Dummy, request: Request) -> Response:
    raise BadRequest("no, thank you")


async def with_status(dummy: Dummy, request: Request) -> Response:
    error = LookupError("No such widget: w")
    error.status = 404  # type: ignore[attr-defined]
    raise error


async def named(dummy: Dummy, request: Request) -> Response:
    return json_response({"params": request.params, "version": request.api_version})


async def ping(dummy: Dummy, request: Request) -> Response:
    return text_response("OK")


def dummy_router() -> Router[Dummy]:
    router: Router[Dummy] = Router("1.41", "1.50")
    router.post("/hijack", hijack)
    router.get("/stream", slow_stream)
    router.post("/echo", echo_json)
    router.post("/size", body_size)
    router.post("/blocking-size", blocking_body_size)
    router.get("/fails", fails)
    router.get("/refuses", refuses)
    router.get("/status", with_status)
    router.get("/things/{name:.*}/json", named)
    router.get("/widgets/{id}", named)
    router.get("/_ping", ping)
    return router


def run_scenario(scenario: Scenario) -> Dummy:
    """Serve the dummy routes on a unix socket and run ``scenario(socket_path, dummy)``."""
    dummy = Dummy()

    async def main() -> None:
        server = ApiServer(dummy_router(), dummy, on_request=dummy.completed.append)
        with tempfile.TemporaryDirectory(prefix="slipway-server-") as directory:
            path = Path(directory) / "api.sock"
            await server.listen_unix(path)
            try:
                await asyncio.wait_for(scenario(path, dummy), 20)
            finally:
                await server.close()
            assert not path.exists()

    asyncio.run(main())
    return dummy


async def exchange(path: Path, data: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(data)
    await writer.drain()
    received = await reader.read()
    writer.close()
    return received


def split_response(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        headers[name.lower()] = value
    return lines[0], headers, body


def test_hijack_answers_101_upgraded_and_hands_the_socket_to_the_handler() -> None:
    async def scenario(path: Path, dummy: Dummy) -> None:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"POST /v1.50/hijack HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n")
        writer.write(b"Upgrade: tcp\r\nContent-Length: 0\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers, _ = split_response(head)
        assert status == "HTTP/1.1 101 UPGRADED"
        assert headers["connection"] == "Upgrade"
        assert headers["upgrade"] == "tcp"
        assert headers["content-type"] == "application/vnd.docker.raw-stream"
        writer.write(b"hello, ")
        assert await reader.readexactly(7) == b"HELLO, "
        writer.write(b"raw world\n")
        assert await reader.readexactly(10) == b"RAW WORLD\n"
        assert await reader.read() == b""  # the handler returned: the connection is closed
        writer.close()

    dummy = run_scenario(scenario)
    assert [(c.path, c.status) for c in dummy.completed] == [("/v1.50/hijack", 101)]


def test_hijack_without_an_upgrade_request_answers_200() -> None:
    async def scenario(path: Path, dummy: Dummy) -> None:
        data = await exchange(path, b"POST /hijack HTTP/1.1\r\nHost: x\r\n\r\nbye\n")
        status, headers, rest = split_response(data)
        assert status == "HTTP/1.1 200 OK"
        assert "upgrade" not in headers
        assert rest == b"BYE\n"

    run_scenario(scenario)


def test_a_stream_is_flushed_chunk_by_chunk() -> None:
    async def scenario(path: Path, dummy: Dummy) -> None:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        status, headers, _ = split_response(head)
        assert status == "HTTP/1.1 200 OK"
        assert headers["transfer-encoding"] == "chunked"
        # The first chunk arrives while the second is still being waited for.
        assert await reader.readuntil(b"first\n\r\n") == b"6\r\nfirst\n\r\n"
        dummy.release.set()
        assert await reader.readuntil(b"0\r\n\r\n") == b"7\r\nsecond\n\r\n0\r\n\r\n"
        writer.close()

    run_scenario(scenario)


def test_a_stream_stops_when_its_client_goes_away() -> None:
    async def scenario(path: Path, dummy: Dummy) -> None:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"first\n\r\n")
        writer.close()
        await asyncio.wait_for(dummy.stream_closed.wait(), 5)

    dummy = run_scenario(scenario)
    assert dummy.stream_closed.is_set()


def test_keep_alive_answers_several_requests_on_one_connection() -> None:
    async def scenario(path: Path, dummy: Dummy) -> None:
        reader, writer = await asyncio.open_unix_connection(path)
        for _ in range(3):
            writer.write(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            status, headers, _ = split_response(head)
            assert status == "HTTP/1.1 200 OK"
            assert await reader.readexactly(int(headers["content-length"])) == b"OK"
        writer.close()

    dummy = run_scenario(scenario)
    assert len(dummy.completed) == 3


def test_a_chunked_request_body_is_read_whole() -> None:
    payload = b'{"name": "chunked", "list": [1, 2, 3]}'
    chunked = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (payload[:10], payload[10:])
    )

    async def scenario(path: Path, dummy: Dummy) -> None:
        data = await exchange(
            path,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked + b"0\r\n\r\n",
        )
        status, _, body = split_response(data)
        assert status == "HTTP/1.1 200 OK"
        assert json.loads(body) == {"received": json.loads(payload)}

    run_scenario(scenario)


def test_expect_100_continue_is_answered_before_the_body_is_read() -> None:
    async def scenario(path: Path, dummy: Dummy) -> None:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(
            b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"12345")
        _, headers, _ = split_response(await reader.readuntil(b"\r\n\r\n"))
        body = await reader.readexactly(int(headers["content-length"]))
        assert json.loads(body) == {"size": 5}
        writer.close()

    run_scenario(scenario)


def test_blocking_code_in_a_thread_reads_a_large_body_as_it_arrives() -> None:
    size = 3 * 1024 * 1024 + 17

    async def scenario(path: Path, dummy: Dummy) -> None:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(
            f"POST /blocking-size HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        for _ in range(size // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()
        writer.write(b"x" * (size % 65536))
        _, headers, _ = split_response(await reader.readuntil(b"\r\n\r\n"))
        assert json.loads(await reader.readexactly(int(headers["content-length"]))) == {
            "size": size
        }
        writer.close()

    run_scenario(scenario)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": x}', "invalid JSON: invalid character 'x' looking for beginning of value"),
        (
            b'{"a": 1,}',
            "invalid JSON: invalid character '}' looking for beginning of object key string",
        ),
        (b'{"a" 1}', "invalid JSON: invalid character '1' after object key"),
        (b"[1 2]", "invalid JSON: invalid character '2' after array element"),
        (b'{"a": 1', "invalid JSON: unexpected EOF"),
        (b"{} {}", "unexpected content after JSON"),
    ],
)
def test_malformed_json_is_refused_in_gos_words(body: bytes, message: str) -> None:
    async def scenario(path: Path, dummy: Dummy) -> None:
        data = await exchange(
            path,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body,
        )
        status, headers, answer = split_response(data)
        assert status == "HTTP/1.1 400 Bad Request"
        assert headers["content-type"] == "application/json"
        assert json.loads(answer) == {"message": message}

    run_scenario(scenario)


def test_a_body_that_is_not_json_is_refused_by_its_content_type() -> None:
    async def scenario(path: Path, dummy: Dummy) -> None:
        data = await exchange(
            path,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        _, _, answer = split_response(data)
        assert json.loads(answer) == {
            "message": "unsupported Content-Type header (text/plain): must be 'application/json'"
        }

    run_scenario(scenario)


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/fails", "500 Internal Server Error", "the disk caught fire"),
        ("/refuses", "400 Bad Request", "no, thank you"),
        ("/status", "404 Not Found", "No such widget: w"),
        ("/nowhere", "404 Not Found", "page not found"),
        ("/v1.50/nowhere", "404 Not Found", "page not found"),
    ],
)
def test_errors_are_a_json_message_with_dockers_status_and_never_a_traceback(
    path: str, status: str, message: str
) -> None:
    async def scenario(socket_path: Path, dummy: Dummy) -> None:
        data = await exchange(
            socket_path, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        status_line, headers, body = split_response(data)
        assert status_line == f"HTTP/1.1 {status}"
        assert headers["content-type"] == "application/json"
        assert body == json.dumps({"message": message}, separators=(",", ":")).encode() + b"\n"
        assert b"Traceback" not in data

    run_scenario(scenario)


def test_a_known_path_with_another_method_is_page_not_found_as_moby_answers() -> None:
    async def scenario(path: Path, dummy: Dummy) -> None:
        data = await exchange(
            path, b"DELETE /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        status, _, body = split_response(data)
        assert status == "HTTP/1.1 404 Not Found"
        assert json.loads(body) == {"message": "page not found"}

    run_scenario(scenario)


def test_patterns_take_slashes_only_where_asked_and_every_version_in_range() -> None:
    async def scenario(path: Path, dummy: Dummy) -> None:
        for target, expected in [
            ("/v1.41/things/localhost:5000/a/b/json", {"name": "localhost:5000/a/b"}),
            ("/things/busybox/json", {"name": "busybox"}),
            ("/v1.50/widgets/w1", {"id": "w1"}),
        ]:
            data = await exchange(
                path, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
            )
            answer = json.loads(split_response(data)[2])
            assert answer["params"] == expected
            assert answer["version"] == (target[2:6] if target.startswith("/v1") else "1.50")
        data = await exchange(path, b"GET /widgets/a/b HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert split_response(data)[0] == "HTTP/1.1 404 Not Found"

    run_scenario(scenario)


def test_a_malformed_request_gets_400_and_the_connection_closes() -> None:
    async def scenario(path: Path, dummy: Dummy) -> None:
        data = await asyncio.wait_for(exchange(path, b"THIS IS NOT HTTP\r\n\r\n"), 5)
        status, headers, body = split_response(data)
        assert status == "HTTP/1.1 400 Bad Request"
        assert headers["content-type"] == "application/json"
        assert "message" in json.loads(body)

    run_scenario(scenario)


def test_a_client_that_disconnects_mid_request_leaves_the_server_serving() -> None:
    async def scenario(path: Path, dummy: Dummy) -> None:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        await writer.drain()
        writer.close()
        data = await exchange(path, b"GET /_ping HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert split_response(data)[2] == b"OK"

    run_scenario(scenario)


def test_iterate_blocking_closes_the_generator_when_the_reader_stops() -> None:
    closed = threading.Event()

    def numbers() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.set()

    async def main() -> list[int]:
        taken = []
        items = iterate_blocking(numbers())
        async for number in items:
            taken.append(number)
            if number == 2:
                break
        await items.aclose()  # type: ignore[attr-defined]
        await asyncio.to_thread(closed.wait, 5)
        return taken

    assert asyncio.run(main()) == [0, 1, 2]
    assert closed.is_set()


def test_chunks_from_writer_yields_what_the_work_writes_and_stops_it_when_closed() -> None:
    def write_all(out: Any) -> None:
        for _ in range(100):
            out.write(b"y" * 100_000)

    assert sum(len(chunk) for chunk in chunks_from_writer(write_all)) == 10_000_000

    stopped = threading.Event()

    def write_forever(out: Any) -> None:
        try:
            while True:
                out.write(b"z" * 100_000)
        except BrokenPipeError:
            stopped.set()
            raise

    chunks = chunks_from_writer(write_forever)
    next(chunks)
    chunks.close()
    assert stopped.is_set()
