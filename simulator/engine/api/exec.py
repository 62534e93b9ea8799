"""The Engine API's exec endpoints: create, start (hijacked, or detached), resize and
inspect, over simulator.engine.execs."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simulator.engine.containers import ContainerError, manager_of
from simulator.engine.execs import (
    DetachKeys,
    ExecInstance,
    ExecIO,
    ExecManager,
    decode_exec_start,
    terminal_size,
)
from simulator.engine.server import (
    RAW_STREAM,
    BadRequest,
    Hijack,
    Request,
    Response,
    Router,
    empty_response,
    json_response,
)

if TYPE_CHECKING:
    from simulator.engine.daemon import Engine

MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
DRAIN_AFTER_EXIT_SECONDS = 2.0  # as dockerd: output still coming once the process has ended
_CHUNK = 64 << 10


def add_routes(router: Router[Engine]) -> None:
    router.post("/containers/{id}/exec", create_exec)
    router.post("/exec/{id}/start", start_exec)
    router.post("/exec/{id}/resize", resize_exec)
    router.get("/exec/{id}/json", inspect_exec)


def _execs(engine: Engine) -> ExecManager:
    return manager_of(engine).execs


async def create_exec(engine: Engine, request: Request) -> Response:
    body = await request.json()
    if isinstance(body, dict) and not request.version_at_least("1.42"):
        body = {key: value for key, value in body.items() if key.lower() != "consolesize"}
    instance = await asyncio.to_thread(_execs(engine).create, request.params["id"], body)
    return json_response({"Id": instance.id}, 201)


async def inspect_exec(engine: Engine, request: Request) -> Response:
    return json_response(_execs(engine).get(request.params["id"]).to_api())


async def resize_exec(engine: Engine, request: Request) -> Response:
    height = _dimension(request, "h", "height")
    width = _dimension(request, "w", "width")
    await asyncio.to_thread(_execs(engine).resize, request.params["id"], height, width)
    return empty_response(200)


def _dimension(request: Request, name: str, word: str) -> int:
    """A uint32 query argument, with dockerd's words when it isn't one."""
    text = request.arg(name)
    digits = text.removeprefix("-")
    if not digits.isdigit() or not digits.isascii():
        raise BadRequest(f'invalid resize {word} "{text}": invalid syntax')
    if text.startswith("-") or int(digits) >= 1 << 32:
        raise BadRequest(f'invalid resize {word} "{text}": value out of range')
    return int(digits)


async def start_exec(engine: Engine, request: Request) -> Response | Hijack:
    options = decode_exec_start(await request.json())
    execs = _execs(engine)
    exec_id = request.params["id"]
    instance = execs.startable(exec_id)
    size = options["ConsoleSize"]
    console_size = None
    if options["Tty"] and request.version_at_least("1.42") and size and any(size):
        console_size = terminal_size(size[0], size[1])
    if options["Detach"]:
        io = await asyncio.to_thread(execs.start, exec_id, console_size, attached=False)
        execs.discard(io)
        return empty_response(200)
    tty = bool(options["Tty"])
    upgrade = "upgrade" in request.headers
    multiplexed = upgrade and not tty and request.version_at_least("1.42")

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            io = await asyncio.to_thread(execs.start, exec_id, console_size, attached=True)
        except ContainerError as error:  # as dockerd: the reason, on the stream
            writer.write(_frame("stdout", f"{error}\r\n".encode(), tty))
            await writer.drain()
            return
        await _ExecSession(execs, instance, io, reader, writer, tty).run()

    return Hijack(session, content_type=MULTIPLEXED_STREAM if multiplexed else RAW_STREAM)


def _frame(stream: str, data: bytes, tty: bool) -> bytes:
    """Output as the client reads it: raw with a terminal, else in stdcopy's 8-byte frames."""
    if tty:
        return data
    return struct.pack(">BxxxL", 1 if stream == "stdout" else 2, len(data)) + data


class _ExecSession:
    """Relays a started exec's stdio over a hijacked connection until the process has ended
    and its output is out, the client has detached (with a terminal, by typing the detach
    keys) or gone away. Then whatever is still running is left to run, its output read away."""

    def __init__(
        self,
        execs: ExecManager,
        instance: ExecInstance,
        io: ExecIO,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tty: bool,
    ) -> None:
        self.execs = execs
        self.instance = instance
        self.io = io
        self.reader = reader
        self.writer = writer
        self.tty = tty

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        ended = asyncio.Event()
        self.instance.when_ended(lambda: loop.call_soon_threadsafe(ended.set))
        outputs = [
            asyncio.create_task(self._output(fd, stream)) for fd, stream in self.io.outputs.items()
        ]
        finished = asyncio.create_task(self._finished(outputs, ended))
        stdin = None
        if self.instance.open_stdin and self.io.stdin is not None:
            stdin = asyncio.create_task(self._input())
        pending: set[asyncio.Task[Any]] = {finished, *outputs}
        if stdin is not None:
            pending.add(stdin)
        try:
            while not finished.done():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if stdin in done:
                    assert stdin is not None
                    if stdin.result() == "detach":
                        self._detached()
                        return
                    if self.tty:  # as dockerd: a terminal's input ending ends the session
                        return
                    self.io.close_stdin()
                for task in done - {stdin}:
                    task.result()  # ConnectionError: the client went away
        except ConnectionError:
            pass
        finally:
            complete = finished.done() and not finished.cancelled() and not finished.exception()
            for task in (*outputs, finished, stdin):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            if complete:
                self.io.close()
            else:  # the process runs on, nobody watching
                self.execs.discard(self.io)

    def _detached(self) -> None:
        containers = self.execs.containers
        with contextlib.suppress(ContainerError):
            container = containers.store.get(self.instance.container_id)
            containers.event(container, "exec_detach", {"execID": self.instance.id})

    async def _finished(self, outputs: list[asyncio.Task[None]], ended: asyncio.Event) -> None:
        """Until the process has ended and its output is out (or, if something it left
        behind keeps the output open, a little longer)."""
        await ended.wait()
        if outputs:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*outputs, return_exceptions=True), DRAIN_AFTER_EXIT_SECONDS
                )
        for task in outputs:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _output(self, fd: int, stream: str) -> None:
        wanted = self.instance.open_stdout if stream == "stdout" else self.instance.open_stderr
        while data := await _read_fd(fd):
            if wanted:
                self.writer.write(_frame(stream, data, self.tty))
                await self.writer.drain()

    async def _input(self) -> str:
        """Copy the client's input to the process: "eof" when it ends, "detach" when the
        detach keys were typed (watched for with a terminal only, as dockerd does)."""
        keys = DetachKeys(self.instance.detach_keys) if self.instance.tty else None
        broken = False
        while data := await self.reader.read(_CHUNK):
            detached = False
            if keys is not None:
                data, detached = keys.feed(data)
            if data and not broken and self.io.stdin is not None:
                try:
                    await _write_fd(self.io.stdin, data)
                except (BrokenPipeError, OSError):
                    broken = True  # the process closed its input: the rest goes nowhere
            if detached:
                return "detach"
        return "eof"


async def _ready(add: Callable[..., None], remove: Callable[[int], Any], fd: int) -> None:
    """Wait until the event loop says ``fd`` is ready (``add`` is add_reader or add_writer)."""
    future = asyncio.get_running_loop().create_future()
    add(fd, lambda: future.done() or future.set_result(None))
    try:
        await future
    finally:
        remove(fd)


async def _read_fd(fd: int) -> bytes:
    """Read a non-blocking descriptor from the event loop; b"" at its end (or, for a
    terminal's master, once every process holding the terminal has gone)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return os.read(fd, _CHUNK)
        except BlockingIOError:
            pass
        except OSError as error:
            if error.errno == errno.EIO:
                return b""
            raise
        await _ready(loop.add_reader, loop.remove_reader, fd)


async def _write_fd(fd: int, data: bytes) -> None:
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _ready(loop.add_writer, loop.remove_writer, fd)
