"""Fixtures for the web UI tests: a real daphne server on a free loopback port."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 30.0


def slipway_env(**overrides: str) -> dict[str, str]:
    """The environment for a Slipway subprocess: development defaults plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    env["DJANGO_SETTINGS_MODULE"] = "webui.settings"
    env.update(overrides)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen, log_path: Path) -> None:
    """Block until the server answers any HTTP response, or fail with its log."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"daphne exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # any HTTP status means it is serving
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"daphne did not answer within {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()}")


def stop(process: subprocess.Popen) -> None:
    """Terminate the process, and kill it if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class DaphneServers:
    """Starts daphne subprocesses on free 127.0.0.1 ports and stops them all on close."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []

    def start(self, **env: str) -> str:
        """Start daphne serving webui.asgi with extra SLIPWAY_* env; return its base URL."""
        index = len(self.processes)
        env.setdefault("SLIPWAY_DB_PATH", str(self.workdir / f"db-{index}.sqlite3"))
        log_path = self.workdir / f"daphne-{index}.log"
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "webui.asgi:application",
                ],
                cwd=REPO_ROOT,
                env=slipway_env(**env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url + "/healthz", process, log_path)
        return url

    def close(self) -> None:
        for process in self.processes:
            stop(process)


@pytest.fixture(scope="session")
def daphne_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of one daphne server with the development settings, shared by the session."""
    servers = DaphneServers(tmp_path_factory.mktemp("daphne"))
    try:
        yield servers.start()
    finally:
        servers.close()


@pytest.fixture
def start_daphne(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """A function that starts a daphne server with given SLIPWAY_* env; stopped after the test."""
    servers = DaphneServers(tmp_path)
    try:
        yield servers.start
    finally:
        servers.close()
