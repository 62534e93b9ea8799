"""Fixtures for the CLI tests: the engine tests' hub, engines and real docker CLI 28, our CLI
(``python -m simulator.cli``) run the way the ``docker`` fixture runs the real one, and one
reference dockerd for the session whose registry mirror is our hub."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.engine import conftest as engine_fixtures
from tests.engine.conftest import Hub, RunningEngine, mirroring_reference
from tests.support.cli import OUR_CLI, CliRun, cli_for
from tests.support.dockerd import DockerdHandle

# The engine tests' fixtures, for every test here.
hub = engine_fixtures.hub
empty_hub = engine_fixtures.empty_hub
start_engine = engine_fixtures.start_engine
engine = engine_fixtures.engine
docker_cli = engine_fixtures.docker_cli
docker = engine_fixtures.docker


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
    reference_root = tmp_path_factory.mktemp("cli-reference")
    with mirroring_reference(hub, reference_root, ["redis", "busybox"]) as handle:
        yield handle


@pytest.fixture
def on_reference(
    reference: DockerdHandle, docker_cli: str, tmp_path: Path
) -> tuple[CliRun, CliRun]:
    """Our CLI and the real one, each with a config of its own, against the reference."""
    return (
        cli_for(OUR_CLI, reference.host, tmp_path / "ours-on-reference"),
        cli_for(docker_cli, reference.host, tmp_path / "real-on-reference"),
    )
