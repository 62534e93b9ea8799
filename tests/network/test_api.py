"""The /networks endpoints of a real engine (in a namespace of its own), driven by the real
docker CLI 28, and compared field by field with a reference dockerd."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import DockerRun, RunningEngine
from tests.support.dockerd import reference_dockerd


def test_network_ls_shows_the_predefined_networks(docker: DockerRun) -> None:
    listed = docker("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "bridge bridge local",
        "host host local",
        "none null local",
    ]
    table = docker("network", "ls").stdout.splitlines()
    assert table[0] == "NETWORK ID     NAME      DRIVER    SCOPE"


def test_create_inspect_remove_and_prune(docker: DockerRun) -> None:
    created = docker("network", "create", "--label", "lesson=7", "-o", "foo=bar", "net1")
    assert created.returncode == 0, created.stderr
    network_id = created.stdout.strip()
    inspected = json.loads(docker("network", "inspect", "net1").stdout)[0]
    assert inspected["Id"] == network_id
    assert inspected["IPAM"]["Config"] == [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]
    assert (inspected["Labels"], inspected["Options"]) == ({"lesson": "7"}, {"foo": "bar"})
    custom = docker(
        "network", "create", "--subnet", "10.5.0.0/24", "--gateway", "10.5.0.254",
        "--ip-range", "10.5.0.128/25", "--internal", "--attachable", "net2",
    )  # fmt: skip
    assert custom.returncode == 0, custom.stderr
    shown = json.loads(docker("network", "inspect", "net2").stdout)[0]
    assert shown["IPAM"]["Config"] == [
        {"Subnet": "10.5.0.0/24", "IPRange": "10.5.0.128/25", "Gateway": "10.5.0.254"}
    ]
    assert (shown["Internal"], shown["Attachable"]) == (True, True)
    assert docker("network", "rm", "net1").stdout == "net1\n"
    pruned = docker("network", "prune", "-f")
    assert pruned.stdout == "Deleted Networks:\nnet2\n\n"
    assert docker("network", "ls", "-q").stdout.count("\n") == 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["network", "create", "--subnet", "172.17.5.0/24", "x"],
            "invalid pool request: Pool overlaps with other one on this address space",
        ),
        (
            ["network", "create", "--subnet", "foo", "x"],
            "invalid network config:\ninvalid subnet foo: invalid CIDR block notation",
        ),
        (["network", "create", "-d", "foo", "x"], 'plugin "foo" not found'),
        (
            ["network", "create", "-d", "overlay", "x"],
            'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
            "to connect this node to swarm and try again.",
        ),
        (["network", "rm", "bridge"], "bridge is a pre-defined network and cannot be removed"),
        (["network", "inspect", "nope"], "network nope not found"),
    ],
)
def test_bad_requests_get_dockers_messages(
    docker: DockerRun, arguments: list[str], message: str
) -> None:
    result = docker(*arguments)
    assert result.returncode == 1
    assert f"Error response from daemon: {message}" in result.stderr
    assert docker("network", "ls", "-q").stdout.count("\n") == 3


def test_connecting_to_a_network_that_does_not_exist(docker: DockerRun) -> None:
    created = docker("create", "busybox", "true")
    assert created.returncode == 0, created.stderr
    result = docker("network", "connect", "nope", created.stdout.strip())
    assert result.returncode == 1
    assert result.stderr == "Error response from daemon: network nope not found\n"
    missing = docker("network", "connect", "bridge", "no-such-container")
    assert missing.stderr == "Error response from daemon: No such container: no-such-container\n"


def test_events_tell_of_create_and_destroy(docker: DockerRun) -> None:
    since = str(int(time.time()) - 1)
    network_id = docker("network", "create", "watched").stdout.strip()
    docker("network", "rm", "watched")
    until = str(int(time.time()) + 1)
    events = docker(
        "events", "--since", since, "--until", until, "--filter", "type=network",
        "--format", "{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"name\"}}",
    )  # fmt: skip
    assert events.stdout.splitlines() == [
        f"create {network_id} watched",
        f"destroy {network_id} watched",
    ]


# Fields Docker 28 shows that the reference dockerd (Debian's 20.10) predates: EnableIPv4
# (API 1.48), and the default bridge's gateway in its IPAM config.
NEWER_THAN_REFERENCE = ("EnableIPv4",)


def _comparable(network: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in network.items() if k not in ("Id", "Created", *NEWER_THAN_REFERENCE)}
    if network["Name"] == "bridge":
        shown["IPAM"] = dict(
            shown["IPAM"], Config=[{"Subnet": c["Subnet"]} for c in shown["IPAM"]["Config"]]
        )
    return shown


def test_inspect_matches_a_reference_dockerd_field_by_field(
    engine: RunningEngine, docker: DockerRun
) -> None:
    requests = [
        ["network", "create", "plain"],
        ["network", "create", "--subnet", "10.5.0.0/24", "--gateway", "10.5.0.254",
         "--ip-range", "10.5.0.128/25", "--label", "a=b", "-o", "foo=bar",
         "--internal", "--attachable", "custom"],
    ]  # fmt: skip
    for request in requests:
        assert docker(*request).returncode == 0
    ours = {
        n: engine.api().get(f"/networks/{n}").json()
        for n in ("bridge", "host", "none", "plain", "custom")
    }
    # dockerd's sockets live under its root: a short one, as sun_path holds 108 bytes
    with (
        tempfile.TemporaryDirectory(prefix="slipway-ref-") as short,
        reference_dockerd(Path(short)) as reference,
    ):
        for request in requests:
            reference.docker(*request)
        theirs = {n: reference.get_json(f"/networks/{n}") for n in ours}
    for name in ours:
        assert _comparable(ours[name]) == _comparable(theirs[name]), name
        assert set(theirs[name]) <= set(ours[name])
