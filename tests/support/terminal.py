"""A command in a pseudo-terminal of its own, as in a learner's shell: send keys, expect
output, resize the window, read the terminal's attributes, wait for the exit status."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator

import pytest

WAIT_SECONDS = 30.0  # a bound against hangs, never a measure


class Terminal:
    """A command in a pseudo-terminal of its own (its controlling terminal)."""

    def __init__(self, argv: list[str], environment: dict[str, str], rows: int, cols: int):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.before = termios.tcgetattr(slave)
        self.process = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**environment, "TERM": "xterm"},
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # its controlling terminal
        )
        os.close(slave)
        self.output = b""
        self._seen = 0

    def attributes(self) -> list:
        """The terminal's termios attributes now (the master shares the slave's)."""
        return termios.tcgetattr(self.master)

    def resize(self, rows: int, cols: int) -> None:
        """A new window size: the command gets SIGWINCH, as from a resized window."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: bytes) -> re.Match[bytes]:
        """Read until ``pattern`` shows in what came since the last match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            match = regex.search(self.output, self._seen)
            if match:
                self._seen = match.end()
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"{pattern!r} never showed in {self.output!r}")
            if not self._read(left):
                pytest.fail(f"the terminal closed before {pattern!r}: {self.output!r}")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], min(timeout, 1.0))
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the command has gone
            return False
        self.output += data
        return bool(data)

    def wait(self) -> int:
        """The command's exit status, once it has ended (its output read meanwhile)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            status = self.process.poll()
            if status is not None:
                while self._read(0):
                    if not select.select([self.master], [], [], 0)[0]:
                        break
                return status
            self._read(0.1)
        pytest.fail(f"the command did not end: {self.output!r}")

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        os.close(self.master)


@contextlib.contextmanager
def terminal(
    argv: list[str], environment: dict[str, str], rows: int = 24, cols: int = 80
) -> Iterator[Terminal]:
    """``argv`` in a terminal of ``rows`` x ``cols``, closed afterwards whatever happened."""
    session = Terminal(argv, environment, rows, cols)
    try:
        yield session
    finally:
        session.close()
