"""Copy between the caller's terminal and a container's pty master until the container ends."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import termios
import tty

from simulator.runtime.launcher import set_winsize


def _copy_winsize(source: int, master: int) -> None:
    try:
        packed = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return
    fcntl.ioctl(master, termios.TIOCSWINSZ, packed)


@contextlib.contextmanager
def _raw(fd: int):
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


def proxy(master: int, pid: int, stdin: int = 0, stdout: int = 1) -> None:
    """Relay ``stdin`` to ``master`` and ``master`` to ``stdout`` while ``pid`` lives."""
    if os.isatty(stdin):
        _copy_winsize(stdin, master)
        signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(stdin, master))
    elif os.isatty(stdout):
        _copy_winsize(stdout, master)
    else:
        set_winsize(master, 24, 80)
    pidfd = os.pidfd_open(pid)
    reading_stdin = True
    try:
        with _raw(stdin):
            while True:
                watch = [master, pidfd] + ([stdin] if reading_stdin else [])
                try:
                    ready, _, _ = select.select(watch, [], [])
                except InterruptedError:
                    continue
                if master in ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError as e:
                        if e.errno != errno.EIO:
                            raise
                        data = b""
                    if not data:
                        break
                    _write_all(stdout, data)
                    continue
                if stdin in ready and reading_stdin:
                    data = os.read(stdin, 65536)
                    if not data:
                        reading_stdin = False
                    else:
                        _write_all(master, data)
                    continue
                if pidfd in ready:
                    # The process is gone: take what is left in the pty, then stop.
                    os.set_blocking(master, False)
                    while True:
                        try:
                            data = os.read(master, 65536)
                        except (BlockingIOError, OSError):
                            break
                        if not data:
                            break
                        _write_all(stdout, data)
                    break
    finally:
        os.close(pidfd)
        os.close(master)
        if os.isatty(stdin):
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
