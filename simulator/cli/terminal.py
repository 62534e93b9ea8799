"""The local terminal during `docker run -it`, `exec -it` and `attach`: raw mode on the tty
(restored on every way out), the window size and its changes (SIGWINCH), the detach keys, and
the relay between a hijacked attach or exec connection and stdin, stdout and stderr.

Docker's CLI does the same with moby/term and its hijackedIOStreamer: with a tty the input
goes through an escape proxy that swallows the detach sequence (Ctrl-P Ctrl-Q by default) and
ends the session; without one, the engine's 8-byte frames are split onto stdout and stderr.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import socket
import struct
import termios
from collections.abc import Callable, Iterator
from typing import BinaryIO

from simulator.cli.client import Hijacked, demultiplex

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q
CONTROL_KEYS = [
    "ctrl-@", "ctrl-a", "ctrl-b", "ctrl-c", "ctrl-d", "ctrl-e", "ctrl-f", "ctrl-g", "ctrl-h",
    "ctrl-i", "ctrl-j", "ctrl-k", "ctrl-l", "ctrl-m", "ctrl-n", "ctrl-o", "ctrl-p", "ctrl-q",
    "ctrl-r", "ctrl-s", "ctrl-t", "ctrl-u", "ctrl-v", "ctrl-w", "ctrl-x", "ctrl-y", "ctrl-z",
    "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_",
]  # fmt: skip
READ_SIZE = 32 * 1024
DETACHED = "detached"
ENDED = "ended"


def parse_detach_keys(text: str) -> bytes:
    """moby/term's ToBytes: "ctrl-p,ctrl-q" or single characters, comma-separated."""
    codes = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            codes += key.encode()[:1]
        elif key in CONTROL_KEYS:
            codes.append(CONTROL_KEYS.index(key))
        elif key == "DEL":
            codes.append(127)
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(codes)


class EscapeProxy:
    """Watches typed input for the detach sequence. A partial match is held back until the
    next key decides it; the sequence itself is never sent (moby/term's escapeProxy)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The bytes to send now, and whether the whole sequence was typed."""
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    return bytes(out), True
                continue
            out += self.keys[: self.matched]
            out.append(byte)
            self.matched = 0
        return bytes(out), False


def is_terminal(fd: int | None) -> bool:
    return fd is not None and os.isatty(fd)


def terminal_size(fd: int | None) -> tuple[int, int]:
    """(height, width) of the terminal on ``fd``; (0, 0) if it is not one."""
    if not is_terminal(fd):
        return 0, 0
    try:
        packed = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return 0, 0
    rows, columns, _, _ = struct.unpack("HHHH", packed)
    return rows, columns


class RawMode:
    """The terminal on ``fd`` in raw mode (cfmakeraw, as moby/term's MakeRaw) until
    :meth:`restore`, which may be called any number of times."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list | None = termios.tcgetattr(fd)
        raw = termios.tcgetattr(fd)
        raw[0] &= ~(
            termios.IGNBRK
            | termios.BRKINT
            | termios.PARMRK
            | termios.ISTRIP
            | termios.INLCR
            | termios.IGNCR
            | termios.ICRNL
            | termios.IXON
        )
        raw[1] &= ~termios.OPOST
        raw[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
        raw[2] &= ~(termios.CSIZE | termios.PARENB)
        raw[2] |= termios.CS8
        raw[6][termios.VMIN] = 1
        raw[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, raw)

    def restore(self) -> None:
        if self.saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)
            self.saved = None


@contextlib.contextmanager
def raw_terminal(fd: int | None, wanted: bool) -> Iterator[RawMode | None]:
    """Raw mode on ``fd`` for the block when ``wanted`` and ``fd`` is a terminal."""
    mode = RawMode(fd) if wanted and is_terminal(fd) else None
    try:
        yield mode
    finally:
        if mode is not None:
            mode.restore()


@contextlib.contextmanager
def window_changes() -> Iterator[int]:
    """A pipe that gets a byte on every SIGWINCH while the block runs; yields its read end.
    The previous handler is put back afterwards."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def handler(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            os.write(write_end, b"w")

    previous = signal.signal(signal.SIGWINCH, handler)
    try:
        yield read_end
    finally:
        signal.signal(signal.SIGWINCH, previous)
        os.close(read_end)
        os.close(write_end)


class Relay:
    """Copies a hijacked stream to the local streams, and stdin to the stream, until the
    output ends or the detach keys are typed.

    ``stdout``/``stderr`` are binary streams (None: that stream isn't attached). With a tty
    the output is copied as it is; without one it is split from Docker's 8-byte frames.
    ``escape`` watches stdin for the detach keys (Docker only does so with a tty).
    ``on_output_end`` runs as soon as the output ends, before anything else is printed
    (Docker restores the terminal there). ``resize`` runs on each window change."""

    def __init__(
        self,
        connection: Hijacked,
        *,
        stdin_fd: int | None,
        stdout: BinaryIO | None,
        stderr: BinaryIO | None,
        tty: bool,
        escape: EscapeProxy | None = None,
        on_output_end: Callable[[], None] | None = None,
        resize: Callable[[], None] | None = None,
    ) -> None:
        self.connection = connection
        self.stdin_fd = stdin_fd
        self.stdout = stdout
        self.stderr = stderr
        self.tty = tty
        self.escape = escape
        self.on_output_end = on_output_end
        self.resize = resize
        self.pending = b""

    def _write(self, stream: BinaryIO | None, data: bytes) -> None:
        if stream is not None and data:
            stream.write(data)
            stream.flush()

    def _output(self, data: bytes) -> None:
        if self.tty:
            self._write(self.stdout, data)
            return
        frames, self.pending = demultiplex(self.pending + data)
        for kind, payload in frames:
            self._write(self.stderr if kind == 2 else self.stdout, payload)

    def run(self, winch_fd: int | None = None) -> str:
        """Relay until the output ends (ENDED) or the user detaches (DETACHED). Typed input
        waits in a buffer until the connection takes it, so that a container that echoes a
        lot back never blocks us while we block it."""
        if self.connection.buffered:
            self._output(self.connection.recv())
        sock = self.connection.sock
        stdin_fd = self.stdin_fd
        outgoing = b""
        input_ended = stdin_fd is None  # no input: the engine hears so at once, as from Docker
        while True:
            readers = [sock]
            if stdin_fd is not None and len(outgoing) < READ_SIZE:
                readers.append(stdin_fd)
            if winch_fd is not None:
                readers.append(winch_fd)
            readable, writable, _ = select.select(readers, [sock] if outgoing else [], [])
            if winch_fd is not None and winch_fd in readable:
                with contextlib.suppress(OSError):
                    os.read(winch_fd, 64)
                if self.resize is not None:
                    self.resize()
            if writable:
                try:
                    outgoing = outgoing[sock.send(outgoing, socket.MSG_DONTWAIT) :]
                except BlockingIOError:
                    pass
                except OSError:  # the engine closed its side: nothing more can go
                    outgoing = b""
            if stdin_fd is not None and stdin_fd in readable:
                try:
                    data = os.read(stdin_fd, READ_SIZE)
                except OSError:  # EIO: the terminal went away
                    data = b""
                if not data:
                    stdin_fd, input_ended = None, True
                else:
                    detached = False
                    if self.escape is not None:
                        data, detached = self.escape.feed(data)
                    outgoing += data
                    if detached:
                        with contextlib.suppress(OSError):
                            self.connection.send(outgoing)
                        return DETACHED
            if input_ended and not outgoing:
                input_ended = False
                self.connection.close_write()
                if self.stdout is None and self.stderr is None:
                    return ENDED  # nothing else to wait for
            if sock in readable:
                try:
                    data = sock.recv(READ_SIZE)
                except OSError:
                    data = b""
                if not data:
                    if self.on_output_end is not None:
                        self.on_output_end()
                    return ENDED
                self._output(data)
