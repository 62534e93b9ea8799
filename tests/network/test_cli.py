"""Our CLI's ``docker network`` commands against a real engine: what they print, and the
errors they give, are the real docker CLI 28's, byte for byte, on the same engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.engine.conftest import DockerRun, RunningEngine
from tests.support.cli import OUR_CLI, cli_for


@pytest.fixture
def ours(engine: RunningEngine, tmp_path: Path) -> DockerRun:
    """Our CLI against ``engine``; containers and networks it made go afterwards."""
    run = cli_for(OUR_CLI, engine.host, tmp_path / "ours")
    yield run
    api = engine.api()
    for container in api.get("/containers/json?all=1").json():
        api.request("DELETE", f"/containers/{container['Id']}?force=1")


def same(ours: DockerRun, docker: DockerRun, *arguments: str) -> str:
    """Run a command that changes nothing with both CLIs: the same status and output."""
    mine, theirs = ours(*arguments), docker(*arguments)
    assert (mine.returncode, mine.stdout, mine.stderr) == (
        theirs.returncode,
        theirs.stdout,
        theirs.stderr,
    ), arguments
    return mine.stdout


def test_create_ls_and_inspect_print_what_docker_prints(ours: DockerRun, docker: DockerRun) -> None:
    created = ours(
        "network", "create", "--subnet", "10.30.0.0/24", "--gateway", "10.30.0.254",
        "--ip-range", "10.30.0.128/25", "--label", "lesson=7", "-o", "colour=blue",
        "--internal", "one",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(r"[0-9a-f]{64}\n", created.stdout)
    assert ours("network", "create", "two").returncode == 0
    assert ours("network", "create", "-d", "bridge", "--attachable", "three10").returncode == 0
    table = same(ours, docker, "network", "ls")
    assert table.splitlines()[0] == "NETWORK ID     NAME      DRIVER    SCOPE"
    assert [line.split()[1] for line in table.splitlines()[1:]] == [
        "bridge", "host", "none", "one", "three10", "two",
    ]  # fmt: skip
    for arguments in (
        ["network", "ls", "-q"],
        ["network", "ls", "--no-trunc"],
        ["network", "ls", "-f", "driver=bridge", "--format", "{{.Name}}"],
        ["network", "ls", "--format", "table {{.Name}}\t{{.IPv4}}\t{{.IPv6}}\t{{.Internal}}"],
        ["network", "ls", "--format", '{{.Name}} {{.Labels}} {{.Label "lesson"}}'],
        ["network", "ls", "--format", "{{.CreatedAt}}", "-f", "name=one"],
        ["network", "ls", "--format", "json", "-f", "name=two"],
        ["network", "ls", "-f", "nope=1"],
        ["network", "inspect", "one", "bridge"],
        ["network", "inspect", "-f", '{{.Name}} {{index .Options "colour"}} {{json .IPAM}}', "one"],
        ["network", "inspect", "--format", "json", "two"],
        ["network", "inspect", "nope"],
        ["network", "inspect", "one", "nope"],
        ["network", "create", "--gateway", "10.1.0.1", "x"],
        ["network", "create", "--subnet", "10.1.0.0/16", "--subnet", "10.1.2.0/24", "x"],
        ["network", "create", "--subnet", "10.1.0.0/16", "--ip-range", "10.2.0.0/24", "x"],
        ["network", "create", "--subnet", "10.30.0.0/24", "x"],
        ["network", "create", "one"],
        ["network", "create"],
        ["network", "rm", "bridge"],
    ):
        same(ours, docker, *arguments)
    labelled = ours("network", "ls", "--format", '{{.Labels}} {{.Label "lesson"}}').stdout
    assert "lesson=7 7" in labelled


def test_connect_disconnect_rm_and_prune(ours: DockerRun, docker: DockerRun) -> None:
    assert ours("network", "create", "--subnet", "10.31.0.0/24", "lab").returncode == 0
    assert ours("network", "create", "spare").returncode == 0
    assert ours("run", "-d", "--name", "box", "busybox", "sleep", "300").returncode == 0
    connected = ours("network", "connect", "--alias", "web,www", "--ip", "10.31.0.50", "lab", "box")
    assert (connected.returncode, connected.stdout, connected.stderr) == (0, "", "")
    endpoint = json.loads(docker("inspect", "box").stdout)[0]["NetworkSettings"]["Networks"]["lab"]
    assert endpoint["IPAddress"] == "10.31.0.50"
    assert endpoint["Aliases"] == ["web", "www"]
    assert endpoint["IPAMConfig"] == {"IPv4Address": "10.31.0.50"}
    assert "10.31.0.50/24" in ours("exec", "box", "ip", "-o", "-4", "addr").stdout
    same(ours, docker, "network", "connect", "lab", "box")
    same(ours, docker, "network", "connect", "nope", "box")
    same(ours, docker, "network", "connect", "lab", "nobody")
    same(ours, docker, "network", "rm", "lab")
    same(ours, docker, "network", "rm", "-f", "nope")
    same(ours, docker, "network", "rm", "nope", "no-such")
    disconnected = ours("network", "disconnect", "lab", "box")
    assert (disconnected.returncode, disconnected.stdout) == (0, "")
    assert "10.31.0.50" not in ours("exec", "box", "ip", "-o", "-4", "addr").stdout
    removed = ours("network", "rm", "lab", "nope")
    assert (removed.returncode, removed.stdout) == (1, "lab\n")
    assert removed.stderr == "Error response from daemon: network nope not found\nexit status 1\n"
    declined = ours("network", "prune", input="n\n")
    assert declined.stdout == (
        "WARNING! This will remove all custom networks not used by at least one container.\n"
        "Are you sure you want to continue? [y/N] "
    )
    assert ours("network", "prune", "-f").stdout == "Deleted Networks:\nspare\n\n"
    assert ours("network", "prune", "-f").stdout == ""
