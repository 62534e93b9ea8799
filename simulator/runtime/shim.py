"""The shim: a small process per container that outlives whoever created the container.

It is the parent of the container's init. It owns the container's stdio (pipes, or the pty
master), writes the output to a log in Docker's json-file format, serves ``start``,
``attach`` and ``resize`` on a unix socket, and records the exit status (with OOMKilled)
when the container exits.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import socket
import struct
import time

from simulator.runtime.launcher import Launched, LaunchError, launch, set_winsize
from simulator.runtime.state import (
    ContainerState,
    StateStore,
    rfc3339_nano,
    write_json_atomic,
)
from simulator.runtime.steplog import StepLog

STDIN_ANNOTATION = "org.slipway.stdin"  # "open": keep a stdin pipe for attach
LOG_ANNOTATION = "org.slipway.log.path"
_MAX_PENDING = 4 << 20  # bytes queued for one slow client before it is dropped
_DRAIN_SECONDS = 2.0


class JsonFileLog:
    """Docker's json-file log driver: one ``{"log","stream","time"}`` object per line."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        buffered = self.partial[stream] + data
        *lines, rest = buffered.split(b"\n")
        out = []
        for line in lines:
            out.append(self._entry(stream, line + b"\n"))
        # Docker splits lines longer than 16 KiB into partial entries.
        while len(rest) >= 16384:
            out.append(self._entry(stream, rest[:16384]))
            rest = rest[16384:]
        self.partial[stream] = rest
        if out:
            os.write(self.fd, b"".join(out))

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                os.write(self.fd, self._entry(stream, rest))
                self.partial[stream] = b""

    @staticmethod
    def _entry(stream: str, data: bytes) -> bytes:
        text = data.decode("utf-8", errors="replace")
        record = {"log": text, "stream": stream, "time": rfc3339_nano()}
        return (json.dumps(record, ensure_ascii=False) + "\n").encode()


class _Client:
    def __init__(self, sock: socket.socket, request: dict, tty: bool) -> None:
        self.sock = sock
        self.tty = tty
        self.stdin = bool(request.get("stdin"))
        self.stdin_once = bool(request.get("stdin_once"))
        self.streams = {
            "stdout": request.get("stdout", True),
            "stderr": request.get("stderr", True),
        }
        self.pending = bytearray()
        self.reading = True  # False once the client half-closed its side
        self.listening = True  # False once output can no longer reach it
        self.paused = False  # True while the container's stdin has too much queued

    def events(self) -> int:
        return (selectors.EVENT_READ if self.reading and not self.paused else 0) | (
            selectors.EVENT_WRITE if self.pending else 0
        )

    def frame(self, stream: str, data: bytes) -> bytes:
        if self.tty:
            return data
        return struct.pack(">BxxxL", 1 if stream == "stdout" else 2, len(data)) + data


class Shim:
    def __init__(
        self,
        store: StateStore,
        container_id: str,
        spec: dict,
        bundle: str,
        console_socket: str | None,
    ) -> None:
        self.store = store
        self.id = container_id
        self.spec = spec
        self.bundle = bundle
        self.console_socket = console_socket
        self.tty = bool(spec["process"].get("terminal"))
        self.sel = selectors.DefaultSelector()
        self.clients: list[_Client] = []
        self.outputs: dict[int, str] = {}  # fd -> stream
        self.stdin_w: int | None = None
        self.stdin_pending = bytearray()
        self.stdin_closing = False  # close stdin once what is queued for it is written
        self.master: int | None = None
        self.launched: Launched | None = None
        self.exited_at: float | None = None
        self.status: int | None = None
        annotations = spec.get("annotations") or {}
        self.log_path = annotations.get(LOG_ANNOTATION) or store.path(
            container_id, "container-json.log"
        )

    # -- creation ------------------------------------------------------------------------

    def create(self) -> ContainerState:
        step = StepLog(self.store.path(self.id, "steps.jsonl"))
        stdio = None
        child_ends: list[int] = []
        if not self.tty:
            annotations = self.spec.get("annotations") or {}
            if annotations.get(STDIN_ANNOTATION) == "open":
                stdin_r, self.stdin_w = os.pipe()
                os.set_blocking(self.stdin_w, False)
            else:
                stdin_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            self.outputs = {out_r: "stdout", err_r: "stderr"}
            stdio = (stdin_r, out_w, err_w)
            child_ends = [stdin_r, out_w, err_w]
        try:
            self.launched = launch(
                self.id,
                self.spec,
                self.bundle,
                step,
                stdio=stdio,
                seccomp_cache=self.store.seccomp_cache,
            )
        finally:
            for fd in child_ends:
                os.close(fd)
        launched = self.launched
        if launched.master is not None:
            if self.console_socket:
                _send_console(self.console_socket, launched.master, launched.console or "")
                os.close(launched.master)
            else:
                self.master = launched.master
                self.outputs[self.master] = "stdout"
        self.log = JsonFileLog(self.log_path)
        state = ContainerState.launched(
            self.id,
            self.spec,
            self.bundle,
            launched.pid,
            started=False,
            shim_pid=os.getpid(),
            log_path=self.log_path,
        )
        self.state = state
        self.step = step
        # Listen before the caller hears that the container exists, so that an immediate
        # `start` finds the socket.
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.store.path(self.id, "shim.sock"))
        self.listener.listen(16)
        return state

    # -- the event loop ------------------------------------------------------------------

    def serve(self) -> None:
        assert self.launched is not None
        listener = self.listener
        sock_path = self.store.path(self.id, "shim.sock")
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, ("listen", None))
        pidfd = os.pidfd_open(self.launched.pid)
        self.sel.register(pidfd, selectors.EVENT_READ, ("exit", None))
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, ("output", None))
        while True:
            timeout = None
            if self.status is not None:
                if not self.outputs or time.monotonic() - (self.exited_at or 0) > _DRAIN_SECONDS:
                    break
                timeout = 0.1
            for key, events in self.sel.select(timeout):
                kind, client = key.data
                if kind == "listen":
                    self._accept(listener)
                elif kind == "exit":
                    self.sel.unregister(pidfd)
                    os.close(pidfd)
                    _, self.status = os.waitpid(self.launched.pid, 0)
                    self.exited_at = time.monotonic()
                elif kind == "output":
                    self._read_output(key.fd)
                elif kind == "client":
                    # An event of this round for a client an earlier event of it dropped (its
                    # socket closed, its number perhaps reused by a newer one) is stale.
                    if events & selectors.EVENT_READ and client in self.clients:
                        self._client_input(client)
                    if events & selectors.EVENT_WRITE and client in self.clients:
                        self._flush_client(client)
                elif kind == "stdin":
                    self._flush_stdin()
        self._finish(listener, sock_path)

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        conn.settimeout(2)
        try:
            request = json.loads(_read_line(conn))
        except (OSError, ValueError):
            conn.close()
            return
        op = request.get("op")
        if op == "start":
            conn.sendall(self._start() + b"\n")
            conn.close()
        elif op == "resize":
            if self.master is not None:
                set_winsize(self.master, int(request["height"]), int(request["width"]))
            conn.sendall(b'{"ok": true}\n')
            conn.close()
        elif op == "close_stdin":
            self._close_stdin()
            conn.sendall(b'{"ok": true}\n')
            conn.close()
        elif op == "attach":
            conn.sendall(json.dumps({"ok": True, "tty": self.tty}).encode() + b"\n")
            conn.setblocking(False)
            client = _Client(conn, request, self.tty)
            self.clients.append(client)
            self.sel.register(conn, selectors.EVENT_READ, ("client", client))
        else:
            conn.sendall(json.dumps({"ok": False, "error": f"unknown op {op!r}"}).encode() + b"\n")
            conn.close()

    def _start(self) -> bytes:
        assert self.launched is not None
        if self.state.started:
            return json.dumps(
                {"ok": False, "error": "cannot start an already running container"}
            ).encode()
        if self.status is not None:
            return json.dumps(
                {"ok": False, "error": "cannot start a container that has stopped"}
            ).encode()
        try:
            self.launched.start()
        except (LaunchError, OSError) as e:
            return json.dumps({"ok": False, "error": str(e)}).encode()
        finally:
            self.launched.sync.close()
        self.state.started = True
        self.store.save(self.state)
        return b'{"ok": true}'

    def _read_output(self, fd: int) -> None:
        stream = self.outputs[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the pty's last slave closed
                raise
            data = b""
        if not data:
            self.sel.unregister(fd)
            del self.outputs[fd]
            if fd != self.master:
                os.close(fd)
            return
        self.log.write(stream, data)
        for client in list(self.clients):
            if client.listening and client.streams.get(stream):
                self._queue(client, client.frame(stream, data))

    def _queue(self, client: _Client, data: bytes) -> None:
        was_empty = not client.pending
        client.pending += data
        if len(client.pending) > _MAX_PENDING:
            self._drop(client)
            return
        if was_empty:
            self._flush_client(client)

    def _flush_client(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.pending)
            del client.pending[:sent]
        except BlockingIOError:
            pass
        except OSError:
            self._stop_output(client)
            return
        self._watch(client)

    def _watch(self, client: _Client) -> None:
        """Register the client for what it needs now: reads, writes, both, or neither."""
        events = client.events()
        registered = client.sock in self.sel.get_map()
        if events and registered:
            self.sel.modify(client.sock, events, ("client", client))
        elif events:
            self.sel.register(client.sock, events, ("client", client))
        elif registered:
            self.sel.unregister(client.sock)

    def _client_input(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            # The client closed its side: keep sending it output until the container ends.
            if client.stdin and client.stdin_once:
                self._close_stdin()
            client.stdin = False
            client.reading = False
            if client.listening:
                self._watch(client)
            else:
                self._drop(client)
            return
        if not client.stdin:
            return
        if self.master is not None:
            _write_all(self.master, data)
        elif self.stdin_w is not None:
            self.stdin_pending += data
            self._flush_stdin()
            if len(self.stdin_pending) >= _MAX_PENDING:  # the container reads slowly: wait
                self._pause_input(True)

    def _flush_stdin(self) -> None:
        if self.stdin_w is None:
            return
        try:
            written = os.write(self.stdin_w, self.stdin_pending)
            del self.stdin_pending[:written]
        except BlockingIOError:
            pass
        except BrokenPipeError:
            self.stdin_pending.clear()
        registered = self.stdin_w in self.sel.get_map()
        if self.stdin_pending and not registered:
            self.sel.register(self.stdin_w, selectors.EVENT_WRITE, ("stdin", None))
        elif not self.stdin_pending and registered:
            self.sel.unregister(self.stdin_w)
        if len(self.stdin_pending) < _MAX_PENDING // 2:
            self._pause_input(False)
        if self.stdin_closing and not self.stdin_pending:
            self._close_stdin()

    def _pause_input(self, paused: bool) -> None:
        for client in self.clients:
            if client.stdin and client.paused != paused:
                client.paused = paused
                self._watch(client)

    def _close_stdin(self) -> None:
        """Close the container's stdin, once everything queued for it is written."""
        if self.stdin_pending and self.stdin_w is not None:
            self.stdin_closing = True
            return
        if self.stdin_w is not None:
            if self.stdin_w in self.sel.get_map():
                self.sel.unregister(self.stdin_w)
            os.close(self.stdin_w)
            self.stdin_w = None

    def _stop_output(self, client: _Client) -> None:
        """Output can no longer reach a client that went away; what it sent before it went
        is still read (and reaches the container) before it is dropped."""
        client.listening = False
        client.pending.clear()
        if client.reading:
            self._watch(client)
        else:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        if client in self.clients:
            self.clients.remove(client)
            if client.sock in self.sel.get_map():
                self.sel.unregister(client.sock)
            client.sock.close()

    def _finish(self, listener: socket.socket, sock_path: str) -> None:
        assert self.launched is not None and self.status is not None
        self.log.flush()
        status = self.status
        oom = self.launched.cgroups.oom_killed()
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            code = 128 + sig
            how = f"killed by {signal.Signals(sig).name}"
        else:
            sig = 0
            code = os.WEXITSTATUS(status)
            how = f"exited with status {code}"
        if oom:
            how += "; the kernel's OOM killer had struck in its memory cgroup"
        self.step("exit", f"the container's init {how}")
        write_json_atomic(
            self.store.path(self.id, "exit.json"),
            {"exitCode": code, "signal": sig, "oomKilled": oom, "finishedAt": rfc3339_nano()},
        )
        for client in list(self.clients):
            try:
                client.sock.setblocking(True)
                client.sock.settimeout(1)
                client.sock.sendall(client.pending)
            except OSError:
                pass
            self._drop(client)
        listener.close()
        try:
            os.unlink(sock_path)
        except FileNotFoundError:
            pass


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            break
        data += chunk
        if len(data) > 65536:
            raise ValueError("request too long")
    return data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            time.sleep(0.001)
            continue
        view = view[n:]


def _send_console(path: str, master: int, name: str) -> None:
    """Hand the pty master to ``--console-socket``, as runc does."""
    import array

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        sock.sendmsg(
            [name.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))]
        )
    finally:
        sock.close()


def request(store: StateStore, container_id: str, message: dict, timeout: float = 30) -> dict:
    """Send one request to a container's shim and return its JSON reply."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(store.path(container_id, "shim.sock"))
        sock.sendall(json.dumps(message).encode() + b"\n")
        return json.loads(_read_line(sock) or b'{"ok": false, "error": "the shim closed"}')
    finally:
        sock.close()
