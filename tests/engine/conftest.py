"""Fixtures for the engine tests: our hub serving the base images on loopback as the docker.io
mirror, engines started as real processes on unix sockets, the real docker CLI 28 pointed at
them (with a config directory of its own), and an HTTP client for the raw API."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulator.engine.containers import runtime_root_for
from tests.support.dockerd import (
    DockerdHandle,
    ReferenceDockerdError,
    is_executable_binary,
    reference_dockerd,
)
from tests.support.netns import NetworkNamespace

REPO_ROOT = Path(__file__).resolve().parents[2]
HUB_ROOT = Path("/var/lib/slipway/hub")
SPEC = REPO_ROOT.parent / "shared" / "reference" / "docker-engine-api-v1.50.yaml"
DOCKER_MAJOR = "28."


@dataclass
class Served:
    """A process serving on a loopback port or a unix socket."""

    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Hub(Served):
    address: str  # 127.0.0.1:PORT
    root: Path

    @property
    def url(self) -> str:
        return f"http://{self.address}"


@dataclass
class RunningEngine(Served):
    socket_path: Path
    data_root: Path
    layer_root: Path
    netns: NetworkNamespace | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    def reach(self, address: str) -> None:
        """Let the engine reach ``HOST:PORT`` of the test's network namespace."""
        if self.netns is not None and address not in self.netns.portals:
            self.netns.portal(address)

    def api(self, timeout: float = 30) -> EngineApi:
        return EngineApi(self.socket_path, timeout)

    def await_call(self, method: str, path_end: str, query: str) -> None:
        """Wait until the engine's API log shows a call answered with success whose path ends
        with ``path_end`` and whose query has ``query`` in it: a client's asynchronous calls
        (a resize on SIGWINCH) are done before what the test does next."""
        deadline = time.monotonic() + 30  # a bound against hangs, never a measure
        while time.monotonic() < deadline:
            for call in json.loads(self.api().get("/slipway/api-log").body):
                if (
                    call["method"] == method
                    and call["path"].endswith(path_end)
                    and query in call["query"]
                    and 200 <= call["status"] < 300
                ):
                    return
            time.sleep(0.05)
        pytest.fail(f"the engine never answered {method} …{path_end}?…{query}…")


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket."""

    def __init__(self, path: Path, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.socket_path))


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


class EngineApi:
    """Requests to an engine, one connection each."""

    def __init__(self, socket_path: Path, timeout: float = 30) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def connection(self) -> UnixHTTPConnection:
        return UnixHTTPConnection(self.socket_path, self.timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        connection = self.connection()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            connection.close()

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post_json(self, path: str, value: Any) -> Answer:
        body = json.dumps(value).encode()
        return self.request("POST", path, body, {"Content-Type": "application/json"})


def raw_exchange(socket_path: Path, data: bytes, timeout: float = 10) -> bytes:
    """Send bytes as they are, and read until the engine closes the connection."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(socket_path))
        client.sendall(data)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
        return received


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _hub_has(root: Path, *names: str) -> bool:
    return all((root / "repositories" / "library" / name / "_tags").is_dir() for name in names)


def start_hub(root: Path, log: Path) -> Hub:
    address = f"127.0.0.1:{free_port()}"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "simulator.hub", "serve", "--listen", address]
            + ["--root", str(root), "--quiet"],
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    hub = Hub(process, log, address, root)
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(hub.url + "/v2/", timeout=2):
                return hub
        except (urllib.error.URLError, ConnectionError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            hub.stop()
            raise AssertionError(f"the hub did not start: {hub.log_text()}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """The hub serving the base images that ``make setup`` built (busybox and alpine built
    first if they are missing)."""
    if not _hub_has(HUB_ROOT, "busybox", "alpine"):
        subprocess.run(
            [sys.executable, "-m", "simulator.hub", "build", "busybox", "alpine", "--quiet"],
            cwd=REPO_ROOT,
            check=True,
            timeout=900,
        )
    served = start_hub(HUB_ROOT, tmp_path_factory.mktemp("hub") / "hub.log")
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def empty_hub(tmp_path: Path) -> Iterator[Hub]:
    """A hub of our own with nothing in it, to push to."""
    root = tmp_path / "hub-root"
    served = start_hub(root, tmp_path / "empty-hub.log")
    try:
        yield served
    finally:
        served.stop()


def _wait_for_engine(engine: RunningEngine) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if engine.api(timeout=2).get("/_ping").body == b"OK":
                return
        except OSError:
            pass
        if engine.process.poll() is not None or time.monotonic() > deadline:
            engine.stop()
            raise AssertionError(f"the engine did not start: {engine.log_text()}")
        time.sleep(0.02)


@pytest.fixture
def start_engine(tmp_path: Path) -> Iterator[Callable[..., RunningEngine]]:
    """Start engines (``python -m simulator.engine``) with data and layer roots of their own
    in tmp, each in a network namespace of its own (as a node's engine runs in the node's),
    where the hubs named by ``--mirror`` answer at their usual addresses (``engine.reach``
    adds more). Each is stopped afterwards, whatever the test did."""
    started: list[RunningEngine] = []
    socket_dirs: list[Path] = []
    namespaces: list[NetworkNamespace] = []

    def start(*arguments: str) -> RunningEngine:
        netns = NetworkNamespace()
        namespaces.append(netns)
        for position, argument in enumerate(arguments[:-1]):
            if argument == "--mirror":
                address = urllib.parse.urlsplit(arguments[position + 1]).netloc
                if address not in netns.portals:
                    netns.portal(address)
        number = len(started)
        root = tmp_path / f"engine-{number}"
        root.mkdir()
        # A socket path must fit in 108 bytes: keep it short, outside tmp_path.
        socket_dir = Path(tempfile.mkdtemp(prefix="slipway-engine-"))
        socket_dirs.append(socket_dir)
        log = root / "engine.log"
        with open(log, "wb") as log_file:  # the engine keeps its own copy of the descriptor
            process = subprocess.Popen(
                netns.command([sys.executable, "-m", "simulator.engine"])
                + ["--data-root", str(root / "data"), "--layer-root", str(root / "layers")]
                + ["--host", f"unix://{socket_dir}/docker.sock", "--debug", *arguments],
                cwd=REPO_ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        engine = RunningEngine(
            process=process,
            log=log,
            socket_path=socket_dir / "docker.sock",
            data_root=root / "data",
            layer_root=root / "layers",
            netns=netns,
        )
        started.append(engine)
        _wait_for_engine(engine)
        return engine

    try:
        yield start
    finally:
        for engine in started:
            engine.stop()
            # The runtime's state for this engine (under /run/slipway), which outlives an
            # engine so that it can adopt its containers again.
            shutil.rmtree(runtime_root_for(engine.data_root), ignore_errors=True)
        for socket_dir in socket_dirs:
            shutil.rmtree(socket_dir, ignore_errors=True)
        for netns in namespaces:
            netns.close()


@pytest.fixture
def engine(start_engine: Callable[..., RunningEngine], hub: Hub) -> RunningEngine:
    """An engine with the hub as its docker.io mirror, never going to Docker Hub itself."""
    return start_engine("--mirror", hub.url, "--offline")


def find_docker_cli() -> str:
    """The docker CLI 28 on PATH (Debian's docker.io puts an older one in /usr/bin)."""
    candidates = [
        os.path.join(directory, "docker") for directory in os.environ["PATH"].split(os.pathsep)
    ]
    for candidate in [*candidates, "/usr/local/bin/docker"]:
        if not os.access(candidate, os.X_OK) or not is_executable_binary(Path(candidate)):
            continue
        result = subprocess.run([candidate, "--version"], capture_output=True, text=True)
        if result.stdout.startswith(f"Docker version {DOCKER_MAJOR}"):
            return candidate
    pytest.fail("no docker CLI 28.x on PATH")


@pytest.fixture(scope="session")
def docker_cli() -> str:
    return find_docker_cli()


DockerRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def docker(engine: RunningEngine, docker_cli: str, tmp_path: Path) -> DockerRun:
    """Run the real docker CLI against ``engine``, with no host configuration leaking in."""
    return docker_for(engine, docker_cli, tmp_path)


def docker_for(engine: RunningEngine, docker_cli: str, tmp_path: Path) -> DockerRun:
    config = tmp_path / f"docker-config-{engine.socket_path.parent.name}"
    config.mkdir(exist_ok=True)
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DOCKER_HOST": engine.host,
        "DOCKER_CONFIG": str(config),
    }

    def run(
        *arguments: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [docker_cli, *arguments],
            env=environment,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def api(engine: RunningEngine) -> EngineApi:
    return engine.api()


@contextlib.contextmanager
def mirroring_reference(hub: Hub, tmp: Path, pulls: Sequence[str] = ()) -> Iterator[DockerdHandle]:
    """A reference dockerd (Debian's docker.io) whose docker.io mirror is ``hub``, carried
    into its namespace, with ``pulls`` pulled; one that can't start fails the test."""
    try:
        with reference_dockerd(
            tmp, ["--registry-mirror", hub.url, "--insecure-registry", hub.address]
        ) as handle:
            handle.reach(hub.address)
            for image in pulls:
                pulled = handle.docker("pull", image, timeout=300)
                assert pulled.returncode == 0, pulled.stderr
            yield handle
    except ReferenceDockerdError as error:
        pytest.fail(str(error), pytrace=False)
