"""Fixtures for the CLI tests: the engine tests' hub, engines and real docker CLI 28, our CLI
(``python -m simulator.cli``) run the way the ``docker`` fixture runs the real one, and one
reference dockerd for the session whose registry mirror is our hub."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.engine import conftest as engine_fixtures
from tests.engine.conftest import REPO_ROOT, Hub, RunningEngine
from tests.support.dockerd import DockerdHandle, ReferenceDockerdError, reference_dockerd

# The engine tests' fixtures, for every test here.
hub = engine_fixtures.hub
empty_hub = engine_fixtures.empty_hub
start_engine = engine_fixtures.start_engine
engine = engine_fixtures.engine
docker_cli = engine_fixtures.docker_cli
docker = engine_fixtures.docker

OUR_CLI = (sys.executable, "-m", "simulator.cli")
CliRun = Callable[..., subprocess.CompletedProcess[str]]


def cli_for(command: tuple[str, ...] | str, host: str, home: Path) -> CliRun:
    """Run a docker CLI against ``host`` with a HOME and config directory of its own under
    ``home`` (stdin empty unless ``input`` is given; ``binary`` keeps bytes)."""
    config = home / "docker-config"
    config.mkdir(parents=True, exist_ok=True)
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "DOCKER_HOST": host,
        "DOCKER_CONFIG": str(config),
        "PYTHONPATH": str(REPO_ROOT),
    }
    argv = [command] if isinstance(command, str) else list(command)

    def run(
        *arguments: str,
        input: str | bytes | None = None,
        binary: bool = False,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        data: str | bytes = input if input is not None else (b"" if binary else "")
        return subprocess.run(
            [*argv, *arguments],
            env=environment,
            input=data,
            capture_output=True,
            text=not binary,
            timeout=timeout,
            cwd=home,
        )

    run.environment = environment
    run.config_dir = config
    return run


@pytest.fixture
def slipway(engine: RunningEngine, tmp_path: Path) -> CliRun:
    """Our CLI against ``engine``."""
    return cli_for(OUR_CLI, engine.host, tmp_path / "ours")


@pytest.fixture
def real(engine: RunningEngine, docker_cli: str, tmp_path: Path) -> CliRun:
    """The real CLI 28 against ``engine``, set up exactly as ``slipway`` is."""
    return cli_for(docker_cli, engine.host, tmp_path / "real")


@pytest.fixture
def two_engines(
    start_engine: Callable[..., RunningEngine], hub: Hub, docker_cli: str, tmp_path: Path
) -> tuple[CliRun, CliRun]:
    """The real CLI on one fresh engine and ours on another, both mirroring the hub, for
    commands that change what an engine holds. Each CLI knows its ``engine`` and
    ``data_root``."""
    clis = []
    for command, name in ((docker_cli, "real"), (OUR_CLI, "ours")):
        started = start_engine("--mirror", hub.url, "--offline")
        cli = cli_for(command, started.host, tmp_path / name)
        cli.engine = started
        cli.data_root = started.data_root
        clis.append(cli)
    return clis[0], clis[1]


@pytest.fixture(scope="session")
def reference(
    hub: Hub,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DockerdHandle]:
    """A reference dockerd (Debian's docker.io) for the session, pulling docker.io images
    from our hub, with redis and busybox pulled."""
    try:
        with reference_dockerd(
            tmp_path_factory.mktemp("cli-reference"),
            ["--registry-mirror", hub.url, "--insecure-registry", hub.address],
        ) as handle:
            handle.reach(hub.address)
            for image in ("redis", "busybox"):
                handle.docker("pull", image, timeout=300)
            yield handle
    except ReferenceDockerdError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def on_reference(
    reference: DockerdHandle, docker_cli: str, tmp_path: Path
) -> tuple[CliRun, CliRun]:
    """Our CLI and the real one, each with a config of its own, against the reference."""
    return (
        cli_for(OUR_CLI, reference.host, tmp_path / "ours-on-reference"),
        cli_for(docker_cli, reference.host, tmp_path / "real-on-reference"),
    )
