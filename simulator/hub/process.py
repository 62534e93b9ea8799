"""Run the hub as a child process on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(root: str | os.PathLike, timeout: float = 20.0) -> Iterator[str]:
    """Serve ``root`` with ``python -m simulator.hub serve``; yield ``127.0.0.1:PORT``."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "simulator.hub", "serve",
         "--listen", f"127.0.0.1:{port}", "--root", str(root), "--quiet"],
        cwd=_REPO_ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the hub did not start on 127.0.0.1:{port}") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
