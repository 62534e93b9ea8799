"""Shared fixtures for the image tests: our hub serving busybox and alpine (and debian when a
test asks), image stores over one layer root, and Debian's docker-registry on loopback."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulator.hub.build import DEFAULT_CACHE
from simulator.images.pull import pull
from simulator.images.store import ImageStore

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_REGISTRY = "/usr/bin/docker-registry"


@dataclass
class Served:
    """A server process on loopback."""

    process: subprocess.Popen[bytes]
    address: str  # 127.0.0.1:PORT
    root: Path

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(served: Served, log: Path) -> None:
    """Wait for /v2/ to answer (200, or 401 from a registry that wants auth)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(served.url + "/v2/", timeout=2):
                return
        except urllib.error.HTTPError as error:
            if error.code == 401:
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        if served.process.poll() is not None or time.monotonic() > deadline:
            served.stop()
            raise AssertionError(f"{served.process.args!r} did not start: {log.read_text()}")
        time.sleep(0.05)


def _build_into_hub(root: Path, *names: str) -> None:
    """Publish base images into a hub root, from the hub's default build cache (which
    ``make test`` fills; built there first if it lacks them)."""
    subprocess.run(
        [sys.executable, "-m", "simulator.hub", "build", *names, "--root", str(root)]
        + ["--cache", str(DEFAULT_CACHE), "--quiet"],
        cwd=REPO_ROOT,
        check=True,
        timeout=900,
    )


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Our hub (``python -m simulator.hub serve``) with busybox and alpine published."""
    base = tmp_path_factory.mktemp("hub")
    root = base / "root"
    _build_into_hub(root, "busybox", "alpine")
    address = f"127.0.0.1:{free_port()}"
    log = base / "serve.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "simulator.hub", "serve", "--listen", address]
            + ["--root", str(root), "--quiet"],
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, address, root)
    try:
        _wait_until_serving(served, log)
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="session")
def hub_with_debian(hub: Served) -> Served:
    """The hub, with debian:bookworm-slim published too (about 20 s the first time the
    build cache makes it, a moment after)."""
    _build_into_hub(hub.root, "debian")
    return hub


@pytest.fixture
def pull_from_hub(hub: Served) -> Callable[..., list[dict[str, Any]]]:
    """Pull through the hub as the docker.io mirror (never Docker Hub itself); return every
    progress message."""

    def pull_all(store: ImageStore, reference: str, **options: Any) -> list[dict[str, Any]]:
        return list(
            pull(store, reference, mirrors={"docker.io": [hub.url]}, upstream=False, **options)
        )

    return pull_all


@pytest.fixture
def layer_root(tmp_path: Path) -> Path:
    return tmp_path / "layers"


@pytest.fixture
def new_store(tmp_path: Path, layer_root: Path) -> Callable[[str], ImageStore]:
    """Image stores with their own data roots over one shared layer root."""

    def make(name: str) -> ImageStore:
        return ImageStore(tmp_path / "engines" / name, layer_root)

    return make


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start Debian's docker-registry (the reference distribution registry) on loopback,
    with filesystem storage in tmp and an optional ``auth`` section; stopped afterwards."""
    if not Path(DOCKER_REGISTRY).exists():
        pytest.fail(
            "Debian's docker-registry is not installed: `make test` installs it", pytrace=False
        )
    started: list[Served] = []

    def start(auth: dict[str, Any] | None = None) -> Served:
        root = tmp_path / f"registry-{len(started)}"
        root.mkdir()
        address = f"127.0.0.1:{free_port()}"
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(root / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": address, "secret": "slipway-tests"},
        }
        if auth is not None:
            config["auth"] = auth
        (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        log = root / "registry.log"
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                [DOCKER_REGISTRY, "serve", str(root / "config.yml")],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        served = Served(process, address, root)
        started.append(served)
        _wait_until_serving(served, log)
        return served

    yield start
    for served in started:
        served.stop()


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Callable[[list[Any]], Path]]:
    """Mount a snapshot's mounts on a fresh directory; unmounted after the test."""
    from simulator.snapshots import unmount

    targets: list[Path] = []

    def mount(mounts: list[Any]) -> Path:
        target = tmp_path / f"rootfs-{len(targets)}"
        target.mkdir()
        assert len(mounts) == 1
        mounts[0].mount(target)
        targets.append(target)
        return target

    yield mount
    for target in reversed(targets):
        unmount(target)
