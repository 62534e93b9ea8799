"""Containers on the engine's networks (issue #5), through real engines in network namespaces of
their own: published ports as ``docker port`` and ``docker ps`` show them and as they answer,
name resolution on user-defined networks, isolation, port clashes, macvlan, leaks and bad
input, with the real docker CLI 28, our CLI, and a reference dockerd to compare with."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from simulator.network import firewall, links, netns, run_dir_for
from tests.engine.conftest import (
    REPO_ROOT,
    DockerRun,
    Hub,
    RunningEngine,
    docker_for,
    mirroring_reference,
)
from tests.support.cli import OUR_CLI, cli_for
from tests.support.dockerd import DockerdHandle

WELCOME = "Welcome to nginx!"
StartEngine = Callable[[], RunningEngine]


def http_get(namespace: str, url: str, timeout: float = 20) -> str:
    """The body of a GET made from inside a network namespace (retried while the server
    starts)."""

    def fetch() -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    return answer.read().decode()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    return netns.run_in(namespace, fetch)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}: {result.stdout}{result.stderr}"
    return result.stdout


def remove_everything(engine: RunningEngine) -> None:
    """Force-remove every container and user-defined network of an engine (its containers
    outlive it otherwise, as live restore wants)."""
    api = engine.api()
    for container in api.get("/containers/json?all=1").json():
        api.request("DELETE", f"/containers/{container['Id']}?force=1")
    for network in api.get("/networks").json():
        if network["Name"] not in ("bridge", "host", "none"):
            api.request("DELETE", f"/networks/{network['Id']}")


@pytest.fixture
def start(start_engine: Callable[..., RunningEngine], hub: Hub) -> Iterator[StartEngine]:
    """Start engines mirroring the hub; everything they hold is removed afterwards."""
    started: list[RunningEngine] = []

    def run() -> RunningEngine:
        engine = start_engine("--mirror", hub.url, "--offline")
        started.append(engine)
        return engine

    yield run
    for engine in started:
        if engine.process.poll() is None:
            remove_everything(engine)


@pytest.fixture
def engine(start: StartEngine) -> RunningEngine:
    """One engine (as tests/engine/conftest.py's), emptied after the test."""
    return start()


@pytest.fixture
def our_cli(engine: RunningEngine, tmp_path: Path) -> DockerRun:
    """Our CLI (``python -m simulator.cli``) against ``engine``."""
    return cli_for(OUR_CLI, engine.host, tmp_path / "our-cli")


@pytest.fixture(scope="module")
def reference(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerdHandle]:
    """A reference dockerd pulling from our hub, with nginx pulled."""
    with mirroring_reference(hub, tmp_path_factory.mktemp("net-reference"), ["nginx"]) as handle:
        yield handle


# -- 1. a published port ------------------------------------------------------------------------


def test_docker_port_and_the_page_behind_it_as_on_docker(
    docker: DockerRun, engine: RunningEngine, reference: DockerdHandle
) -> None:
    ok(docker("run", "-d", "--name", "web", "-p", "5005:80", "nginx", timeout=300))
    ours = ok(docker("port", "web"))
    ok(reference.docker("run", "-d", "--name", "web", "-p", "5005:80", "nginx"))
    try:
        theirs = ok(reference.docker("port", "web"))
        their_settings = json.loads(ok(reference.docker("inspect", "web")))[0]["NetworkSettings"]
    finally:
        reference.docker("rm", "-f", "web")
    # Docker 28 prints both families for a port published on every address; Debian's
    # dockerd 20.10 binds [::] too, and the CLI 28 prints what it reports the same way.
    assert ours == theirs == "80/tcp -> 0.0.0.0:5005\n80/tcp -> [::]:5005\n"
    assert ok(docker("port", "web", "80")) == "0.0.0.0:5005\n[::]:5005\n"
    listed = ok(docker("ps", "--format", "{{.Names}} {{.Ports}}"))
    assert listed == "web 0.0.0.0:5005->80/tcp, [::]:5005->80/tcp\n"
    assert engine.netns is not None
    for address in ("127.0.0.1", "[::1]"):
        assert WELCOME in http_get(engine.netns.path, f"http://{address}:5005/")
    inspected = json.loads(ok(docker("inspect", "web")))[0]
    settings = inspected["NetworkSettings"]
    bridge = settings["Networks"]["bridge"]
    assert bridge["IPAddress"].startswith("172.17.0.") and bridge["Gateway"] == "172.17.0.1"
    assert settings["IPAddress"] == bridge["IPAddress"]
    assert bridge["MacAddress"] and len(bridge["EndpointID"]) == 64
    assert settings["Ports"] == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "5005"}, {"HostIp": "::", "HostPort": "5005"}]
    }
    assert settings["SandboxKey"] and inspected["HostsPath"].endswith("/hosts")
    # every field the reference shows (Docker 28 adds GwPriority and DNSNames to 20.10's)
    assert set(their_settings) <= set(settings)
    assert set(their_settings["Networks"]["bridge"]) <= set(bridge)
    assert settings["Ports"] == their_settings["Ports"]
    gateway_page = http_get(engine.netns.path, f"http://{bridge['IPAddress']}:80/")
    assert WELCOME in gateway_page
    ok(docker("run", "-d", "--name", "client", "busybox", "sleep", "300"))
    # hairpin: another container reaches the published port through its gateway
    through_gateway = ok(docker("exec", "client", "wget", "-qO-", "http://172.17.0.1:5005/"))
    assert WELCOME in through_gateway


def test_our_cli_publishes_and_shows_ports_as_docker_does(
    our_cli: DockerRun, engine: RunningEngine
) -> None:
    ok(our_cli("run", "-d", "--name", "web", "-p", "5006:80", "nginx", timeout=300))
    assert ok(our_cli("port", "web")) == "80/tcp -> 0.0.0.0:5006\n80/tcp -> [::]:5006\n"
    listed = ok(our_cli("ps", "--format", "{{.Names}} {{.Ports}}"))
    assert listed == "web 0.0.0.0:5006->80/tcp, [::]:5006->80/tcp\n"
    assert engine.netns is not None
    assert WELCOME in http_get(engine.netns.path, "http://127.0.0.1:5006/")
    ok(our_cli("restart", "-t", "1", "web"))
    assert ok(our_cli("port", "web", "80/tcp")) == "0.0.0.0:5006\n[::]:5006\n"
    assert WELCOME in http_get(engine.netns.path, "http://127.0.0.1:5006/")


# -- 2. names on a user-defined network -----------------------------------------------------------


def address_of(docker: DockerRun, container: str, network: str) -> str:
    inspected = json.loads(ok(docker("inspect", container)))[0]
    return inspected["NetworkSettings"]["Networks"][network]["IPAddress"]


def test_names_and_aliases_resolve_on_a_user_network_and_not_on_the_default_bridge(
    docker: DockerRun,
) -> None:
    ok(docker("network", "create", "app"))
    ok(docker("run", "-d", "--name", "db", "--network", "app", "--network-alias", "database",
              "busybox", "sleep", "300"))  # fmt: skip
    db = address_of(docker, "db", "app")
    assert db.startswith("172.18.0.")
    for name in ("db", "database", "db.app"):
        found = ok(docker("run", "--rm", "--network", "app", "busybox", "nslookup", name))
        assert f"Address: {db}" in found, found
        pinged = ok(docker("run", "--rm", "--network", "app", "busybox",
                           "ping", "-c", "1", "-W", "5", name))  # fmt: skip
        assert f"bytes from {db}" in pinged
    resolv = ok(docker("run", "--rm", "--network", "app", "busybox", "cat", "/etc/resolv.conf"))
    assert "nameserver 127.0.0.11" in resolv
    ok(docker("rename", "db", "store"))
    found = ok(docker("run", "--rm", "--network", "app", "busybox", "nslookup", "store"))
    assert f"Address: {db}" in found
    ok(docker("run", "-d", "--name", "plain", "busybox", "sleep", "300"))
    plain = address_of(docker, "plain", "bridge")
    by_name = docker("run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", "plain")
    assert by_name.returncode != 0 and "bad address 'plain'" in by_name.stderr
    by_ip = ok(docker("run", "--rm", "busybox", "ping", "-c", "1", "-W", "5", plain))
    assert f"bytes from {plain}" in by_ip


# -- 3. isolation -------------------------------------------------------------------------------


def test_two_user_networks_are_isolated_until_network_connect_joins_both(
    docker: DockerRun,
) -> None:
    for name in ("front", "back"):
        ok(docker("network", "create", name))
    ok(docker("run", "-d", "--name", "alpha", "--network", "front", "busybox", "sleep", "300"))
    ok(docker("run", "-d", "--name", "beta", "--network", "back", "busybox", "sleep", "300"))
    beta = address_of(docker, "beta", "back")
    assert docker("exec", "alpha", "ping", "-c", "1", "-W", "2", beta).returncode != 0
    assert docker("exec", "alpha", "ping", "-c", "1", "-W", "2", "beta").returncode != 0
    ok(docker("network", "connect", "back", "alpha"))
    assert f"bytes from {beta}" in ok(docker("exec", "alpha", "ping", "-c", "1", "-W", "5", "beta"))
    front = json.loads(ok(docker("network", "inspect", "front")))[0]
    back = json.loads(ok(docker("network", "inspect", "back")))[0]
    assert {c["Name"] for c in front["Containers"].values()} == {"alpha"}
    assert {c["Name"] for c in back["Containers"].values()} == {"alpha", "beta"}
    interfaces = ok(docker("exec", "alpha", "ip", "-o", "-4", "addr"))
    assert " eth0 " in interfaces and " eth1 " in interfaces
    ok(docker("network", "disconnect", "back", "alpha"))
    assert docker("exec", "alpha", "ping", "-c", "1", "-W", "2", beta).returncode != 0


# -- 4. ports of the engine's choosing, and a port taken ------------------------------------------


def engine_counts(engine: RunningEngine) -> dict[str, int]:
    """What the engine holds in its namespace and records: veths, bridges, rules, namespace
    mounts and IPAM leases."""
    assert engine.netns is not None
    names = links.link_names(engine.netns.path)
    run_dir = str(run_dir_for(engine.data_root)) + "/"
    with open("/proc/self/mountinfo") as mounts:
        netns_mounts = sum(1 for line in mounts if line.split()[4].startswith(run_dir))
    ipam = json.loads((engine.data_root / "network" / "ipam.json").read_text())
    return {
        "veths": sum(1 for name in names if name.startswith("veth")),
        "bridges": sum(1 for name in names if name.startswith(("br-", "docker0"))),
        "rules": firewall.rule_count(engine.netns.path),
        "netns mounts": netns_mounts,
        "leases": sum(len(pool["leases"]) for pool in ipam.values()),
    }


def host_port(docker: DockerRun, container: str, port: str) -> int:
    shown = ok(docker("port", container, port)).splitlines()
    assert shown[0].startswith("0.0.0.0:") and shown[1].startswith("[::]:"), shown
    number = int(shown[0].rpartition(":")[2])
    assert shown[1] == f"[::]:{number}"
    return number


def test_ports_of_the_engines_choosing_and_a_port_already_allocated(
    docker: DockerRun, engine: RunningEngine
) -> None:
    assert engine.netns is not None
    ok(docker("run", "-d", "--name", "one", "-p", "8080", "nginx", timeout=300))
    ok(docker("run", "-d", "--name", "every", "-P", "nginx"))
    chosen = host_port(docker, "one", "8080/tcp")
    published = host_port(docker, "every", "80")
    low, high = (int(n) for n in netns.run_in(engine.netns.path, _local_port_range))
    assert low <= chosen <= high and low <= published <= high and chosen != published
    assert WELCOME in http_get(engine.netns.path, f"http://127.0.0.1:{published}/")
    ok(docker("run", "-d", "--name", "first", "-p", "5010:80", "nginx"))
    before = engine_counts(engine)
    second = docker("run", "-d", "--name", "second", "-p", "5010:80", "nginx")
    assert second.returncode == 125
    assert re.fullmatch(
        r"docker: Error response from daemon: failed to set up container networking: driver "
        r"failed programming external connectivity on endpoint second \([0-9a-f]{64}\): Bind "
        r"for 0\.0\.0\.0:5010 failed: port is already allocated\n\n"
        r"Run 'docker run --help' for more information\n",
        second.stderr,
    ), second.stderr
    state = json.loads(ok(docker("inspect", "second")))[0]
    assert state["State"]["Status"] == "created"
    assert "port is already allocated" in state["State"]["Error"]
    assert state["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""
    assert engine_counts(engine) == before
    bridge = json.loads(ok(docker("network", "inspect", "bridge")))[0]
    assert {c["Name"] for c in bridge["Containers"].values()} == {"one", "every", "first"}
    ok(docker("rm", "-f", "first"))
    ok(docker("start", "second"))
    assert host_port(docker, "second", "80") == 5010


def _local_port_range() -> list[str]:
    return Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()


# -- 5. macvlan -----------------------------------------------------------------------------------


def test_two_containers_on_macvlan_over_a_veth_parent(
    docker: DockerRun, engine: RunningEngine
) -> None:
    assert engine.netns is not None

    def veth_parent() -> None:
        with IPRoute() as ipr:
            ipr.link("add", ifname="uplink0", kind="veth", peer={"ifname": "uplink1"})
            for name in ("uplink0", "uplink1"):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")

    netns.run_in(engine.netns.path, veth_parent)
    ok(docker("network", "create", "-d", "macvlan", "-o", "parent=uplink0",
              "--subnet", "192.168.60.0/24", "lan"))  # fmt: skip
    for name in ("m1", "m2"):
        ok(docker("run", "-d", "--name", name, "--network", "lan", "busybox", "sleep", "300"))
    inspected = json.loads(ok(docker("inspect", "m1", "m2")))
    endpoints = [c["NetworkSettings"]["Networks"]["lan"] for c in inspected]
    assert [e["IPAddress"] for e in endpoints] == ["192.168.60.2", "192.168.60.3"]
    assert endpoints[0]["MacAddress"] != endpoints[1]["MacAddress"]
    assert "bytes from 192.168.60.3" in ok(docker("exec", "m1", "ping", "-c", "1", "-W", "5", "m2"))
    assert endpoints[1]["MacAddress"] in ok(docker("exec", "m2", "ip", "link", "show", "eth0"))
    sandbox = inspected[1]["NetworkSettings"]["SandboxKey"]
    assert netns.run_in(sandbox, lambda: _link_kind("eth0")) == "macvlan"


def _link_kind(name: str) -> str:
    with IPRoute() as ipr:
        link = ipr.get_links(ipr.link_lookup(ifname=name)[0])[0]
        return link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND")


# -- 6. leaks -------------------------------------------------------------------------------------

CYCLES = 200


def test_container_cycles_on_three_networks_leave_nothing(
    docker: DockerRun, engine: RunningEngine
) -> None:
    api = engine.api()
    ok(docker("network", "create", "blue"))
    ok(docker("network", "create", "--subnet", "10.66.0.0/24", "green"))
    ok(docker("pull", "busybox"))
    before = engine_counts(engine)
    networks = ("bridge", "blue", "green")
    for cycle in range(CYCLES):
        body: dict[str, Any] = {
            "Image": "busybox",
            "Cmd": ["sleep", "60"],
            "ExposedPorts": {"80/tcp": {}},
            "HostConfig": {"NetworkMode": networks[cycle % 3], "PublishAllPorts": cycle % 2 == 0},
        }
        created = api.post_json("/containers/create", body)
        assert created.status == 201, created.body
        container_id = created.json()["Id"]
        started = api.request("POST", f"/containers/{container_id}/start")
        assert started.status == 204, started.body
        if cycle == 0:
            during = engine_counts(engine)
            assert during["veths"] == before["veths"] + 1
            assert during["leases"] == before["leases"] + 1
            assert during["netns mounts"] == before["netns mounts"] + 1
            assert during["rules"] > before["rules"]
        removed = api.request("DELETE", f"/containers/{container_id}?force=1")
        assert removed.status == 204, removed.body
    assert engine_counts(engine) == before
    assert not list((engine.data_root / "network" / "sandboxes").iterdir())


# -- 7. bad input ---------------------------------------------------------------------------------


def test_bad_network_requests_get_dockers_status_and_message_and_change_nothing(
    docker: DockerRun, engine: RunningEngine
) -> None:
    api = engine.api()
    ok(docker("network", "create", "--subnet", "10.70.0.0/16", "taken"))
    ok(docker("run", "-d", "--name", "user", "--network", "taken", "busybox", "sleep", "300"))
    before = engine_counts(engine)
    listed = ok(docker("network", "ls", "-q"))
    refusals = [
        ({"Name": "x", "IPAM": {"Config": [{"Subnet": "10.70.5.0/24"}]}}, 403,
         "invalid pool request: Pool overlaps with other one on this address space"),
        ({"Name": "x", "IPAM": {"Config": [{"Subnet": "10.70.0.0/33"}]}}, 400,
         "invalid network config:\ninvalid subnet 10.70.0.0/33: invalid CIDR block notation"),
        ({"Name": "x", "Driver": "nope"}, 404, 'plugin "nope" not found'),
    ]  # fmt: skip
    for body, status, message in refusals:
        answer = api.post_json("/networks/create", body)
        assert (answer.status, answer.json()) == (status, {"message": message})
    removal = api.request("DELETE", "/networks/taken")
    assert removal.status == 403
    assert re.fullmatch(
        r'error while removing network: network taken has active endpoints \(name:"user" '
        r'id:"[0-9a-f]{12}"\)',
        removal.json()["message"],
    ), removal.json()
    connect = api.post_json("/networks/nope/connect", {"Container": "user"})
    assert (connect.status, connect.json()) == (404, {"message": "network nope not found"})
    run = docker("run", "--name", "lost", "--network", "nope", "busybox", "true")
    assert run.returncode == 125
    assert "docker: Error response from daemon: network nope not found" in run.stderr
    assert ok(docker("ps", "-a", "--format", "{{.Names}}")) == "user\n"
    assert ok(docker("network", "ls", "-q")) == listed
    assert engine_counts(engine) == before
    assert ok(docker("exec", "user", "ping", "-c", "1", "-W", "5", "10.70.0.1"))


# -- live restore ---------------------------------------------------------------------------------


def test_a_killed_engine_comes_back_to_its_containers_networks(
    start: StartEngine, docker_cli: str, tmp_path: Path
) -> None:
    """An engine SIGKILLed and started again on the same data root, in the same namespace:
    running containers keep their addresses, published ports and names; one that exited
    meanwhile has given its address back."""
    first = start()
    assert first.netns is not None
    docker = docker_for(first, docker_cli, tmp_path)
    ok(docker("network", "create", "app"))
    ok(docker("run", "-d", "--name", "web", "--network", "app", "-p", "5020:80", "nginx"))
    ok(docker("run", "-d", "--name", "peer", "--network", "app", "busybox", "sleep", "300"))
    ok(docker("run", "-d", "--name", "brief", "--network", "app", "busybox", "sleep", "2"))
    web = address_of(docker, "web", "app")
    leases = engine_counts(first)["leases"]
    first.process.kill()
    first.process.wait()
    time.sleep(3)  # brief exits while no engine watches it
    again = restart(first)
    assert json.loads(ok(docker("inspect", "brief")))[0]["State"]["Status"] == "exited"
    assert address_of(docker, "web", "app") == web
    assert engine_counts(again)["leases"] == leases - 1
    assert WELCOME in http_get(first.netns.path, "http://127.0.0.1:5020/")
    assert f"Address: {web}" in ok(docker("exec", "peer", "nslookup", "web"))
    assert ok(docker("port", "web")) == "80/tcp -> 0.0.0.0:5020\n80/tcp -> [::]:5020\n"
    ok(docker("stop", "-t", "1", "web"))
    assert engine_counts(again)["leases"] == leases - 2


def restart(engine: RunningEngine) -> RunningEngine:
    """The same engine started again: its data root, socket and namespace; stopped (with
    its log) by the test's start_engine fixture, which owns the namespace."""
    assert engine.netns is not None
    log = engine.data_root.parent / "engine-again.log"
    with open(log, "wb") as log_file:
        engine.process = subprocess.Popen(
            engine.netns.command([sys.executable, "-m", "simulator.engine"])
            + ["--data-root", str(engine.data_root), "--layer-root", str(engine.layer_root)]
            + ["--host", engine.host, "--debug"]
            + engine.process.args[engine.process.args.index("--mirror") :],
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    engine.log = log
    deadline = time.monotonic() + 20
    while True:
        try:
            if engine.api(timeout=2).get("/_ping").body == b"OK":
                return engine
        except OSError:
            pass
        assert engine.process.poll() is None and time.monotonic() < deadline, engine.log_text()
        time.sleep(0.05)


# -- network modes, and builds ---------------------------------------------------------------------


def test_none_host_and_container_network_modes(docker: DockerRun, engine: RunningEngine) -> None:
    assert engine.netns is not None
    alone = ok(docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"))
    assert [line.split()[1] for line in alone.splitlines()] == ["lo:"]
    on_host = ok(docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link"))
    assert {line.split()[1].rstrip(":") for line in on_host.splitlines()} == set(
        links.link_names(engine.netns.path)
    )
    hostname = ok(docker("run", "--rm", "--network", "host", "busybox", "hostname"))
    assert hostname == os.uname().nodename + "\n"
    ok(docker("run", "-d", "--name", "owner", "--hostname", "shared", "busybox", "sleep", "300"))
    owner = address_of(docker, "owner", "bridge")
    joined = ok(docker("run", "--rm", "--network", "container:owner", "busybox",
                       "sh", "-c", "hostname; ip -o -4 addr show eth0"))  # fmt: skip
    assert joined.startswith("shared\n") and f"inet {owner}/16" in joined
    ok(docker("stop", "-t", "0", "owner"))
    refused = docker("run", "--rm", "--network", "container:owner", "busybox", "true")
    assert refused.returncode == 125
    assert (
        "Error response from daemon: cannot join network namespace of a non running "
        "container: container owner is exited" in refused.stderr
    ), refused.stderr


def test_build_runs_on_the_default_bridge_unless_told_otherwise(
    docker: DockerRun, tmp_path: Path
) -> None:
    ok(docker("network", "create", "app"))
    ok(docker("run", "-d", "--name", "db", "--network", "app", "busybox", "sleep", "300"))
    db = address_of(docker, "db", "app")
    context = tmp_path / "probe"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN (ip -o -4 addr show eth0 || echo no eth0) > /eth0;"
        " (nslookup db || echo no db) > /lookup\n"
    )
    for mode, tag in (("default", "on-bridge"), ("none", "on-none"), ("app", "on-app")):
        ok(docker("build", "--network", mode, "-t", tag, str(context), timeout=300))

    def seen(tag: str, path: str) -> str:
        return ok(docker("run", "--rm", tag, "cat", path))

    assert "inet 172.17.0." in seen("on-bridge", "/eth0")
    assert "no db" in seen("on-bridge", "/lookup")
    assert seen("on-none", "/eth0") == "no eth0\n"
    assert "inet 172.18.0." in seen("on-app", "/eth0")
    assert f"Address: {db}" in seen("on-app", "/lookup")
    saved = tmp_path / "on-app.tar"
    ok(docker("save", "-o", str(saved), "on-app"))
    # The network's files are mounted on mount points the RUN's layer doesn't keep (/etc
    # itself is there: made or copied up for them).
    assert set(last_layer_members(saved)) - {"etc"} == {"eth0", "lookup"}


def last_layer_members(saved: Path) -> list[str]:
    """The names in the last layer of an image that ``docker save`` wrote."""
    with tarfile.open(saved) as image:
        manifest = json.load(image.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = image.extractfile(manifest[0]["Layers"][-1])
        assert layer is not None
        with tarfile.open(fileobj=io.BytesIO(layer.read())) as members:
            return sorted(members.getnames())


# -- root filesystems ------------------------------------------------------------------------------


def test_the_root_of_a_layerless_image_is_unmounted_after_a_failed_start_and_rm(
    docker: DockerRun, engine: RunningEngine, tmp_path: Path
) -> None:
    """A snapshot with no parent layer is a bind mount of a directory on the same
    filesystem, which os.path.ismount can't see: it must still be unmounted."""
    context = tmp_path / "hollow"
    context.mkdir()
    (context / "Dockerfile").write_text('FROM scratch\nCMD ["/missing"]\n')
    ok(docker("build", "-t", "hollow", str(context)))
    assert json.loads(ok(docker("inspect", "hollow")))[0]["RootFS"].get("Layers") in (None, [])
    failed = docker("run", "--name", "hollow", "hollow")
    assert failed.returncode == 127, failed.stderr
    container_id = ok(docker("inspect", "-f", "{{.Id}}", "hollow")).strip()
    directory = engine.data_root / "containers" / container_id
    assert not mounts_under(directory)
    ok(docker("rm", "hollow"))
    assert not mounts_under(directory) and not directory.exists()


def mounts_under(path: Path) -> list[str]:
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as mounts:
        return [line.split()[4] for line in mounts if line.split()[4].startswith(prefix)]
