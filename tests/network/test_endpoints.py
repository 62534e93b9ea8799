"""Bridge endpoints: a veth per container, eth0 with its address, Docker's MAC and a default
route, containers on one network reaching each other, connect and disconnect while running,
and the files the engine mounts."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.network import links, netns
from simulator.network.errors import Forbidden, InvalidRequest, NotFound
from simulator.network.manager import ALIAS_ON_PREDEFINED, IP_ON_PREDEFINED, IP_WITHOUT_SUBNET
from tests.network.conftest import Lab


def test_a_container_gets_eth0_an_address_docker_mac_and_default_route(lab: Lab) -> None:
    box = lab.container("web")
    assert box.key.startswith(str(lab.root / "run" / "netns"))
    shown = box.ok("ip -4 addr show eth0; ip link show eth0; ip route")
    assert "inet 172.17.0.2/16" in shown
    assert "link/ether 02:42:ac:11:00:02" in shown
    assert "default via 172.17.0.1 dev eth0" in shown
    settings = box.settings
    assert (settings["IPAddress"], settings["Gateway"], settings["MacAddress"]) == (
        "172.17.0.2",
        "172.17.0.1",
        "02:42:ac:11:00:02",
    )
    assert settings["SandboxKey"] == box.key
    veths = [n for n in links.link_names(lab.ns.path) if n.startswith("veth")]
    assert len(veths) == 1
    assert not Path(f"/sys/class/net/{veths[0]}").exists()  # in the engine's namespace only


def test_containers_on_one_network_reach_each_other(lab: Lab) -> None:
    lab.manager.create("net1")
    first = lab.container("one", "net1")
    second = lab.container("two", "net1")
    assert first.address("net1") == "172.18.0.2"
    assert second.address("net1") == "172.18.0.3"
    second.ok("ping -c1 -W2 172.18.0.2")
    lab.http_server(first)
    assert second.ok("wget -q -O- http://172.18.0.2/") == "hello from one\n"


def test_a_fixed_address_and_aliases_are_kept(lab: Lab) -> None:
    lab.manager.create("fixed", ipam={"Config": [{"Subnet": "10.20.0.0/24"}]})
    box = lab.container("db", "fixed", ip="10.20.0.50", aliases=["database"])
    network = box.settings["Networks"]["fixed"]
    assert network["IPAddress"] == "10.20.0.50"
    assert network["IPAMConfig"] == {"IPv4Address": "10.20.0.50"}
    assert network["Aliases"] == ["database"]
    assert network["DNSNames"] == ["db", "database", box.id[:12]]
    assert "inet 10.20.0.50/24" in box.ok("ip -4 addr show eth0")


def test_endpoint_settings_are_checked_as_docker_checks_them(lab: Lab) -> None:
    lab.manager.create("nosubnet")
    lab.manager.create("subnet", ipam={"Config": [{"Subnet": "10.30.0.0/24"}]})
    cases = [
        ("bridge", {"IPAMConfig": {"IPv4Address": "172.17.0.9"}}, IP_ON_PREDEFINED),
        ("bridge", {"Aliases": ["x"]}, ALIAS_ON_PREDEFINED),
        ("nosubnet", {"IPAMConfig": {"IPv4Address": "172.18.0.9"}}, IP_WITHOUT_SUBNET),
        (
            "subnet",
            {"IPAMConfig": {"IPv4Address": "10.31.0.9"}},
            "no configured subnet or ip-range contain the IP address 10.31.0.9",
        ),
    ]
    for network, settings, message in cases:
        with pytest.raises(InvalidRequest) as refused:
            lab.manager.configure(
                "f" * 64,
                "x",
                {},
                {"NetworkMode": network},
                {"EndpointsConfig": {network: settings}},
            )
        assert refused.value.message == "invalid endpoint settings:\n" + message
    with pytest.raises(NotFound, match="^network ghost not found$"):
        lab.manager.configure("f" * 64, "x", {}, {"NetworkMode": "ghost"})
    assert "f" * 64 not in lab.manager.sandboxes


def test_a_stopped_container_keeps_its_networks_but_not_its_address(lab: Lab) -> None:
    lab.manager.create("net1")
    box = lab.container("web", "net1")
    created = lab.container("later", "net1", start=False).settings["Networks"]["net1"]
    assert (created["NetworkID"], created["IPAddress"], created["DNSNames"]) == ("", "", None)
    key = box.key
    lab.manager.release(box.id)
    stopped = box.settings
    assert stopped["SandboxKey"] == "" and stopped["Ports"] == {}
    network = stopped["Networks"]["net1"]
    assert network["NetworkID"] == lab.manager.get("net1").id
    assert (network["EndpointID"], network["IPAddress"], network["MacAddress"]) == ("", "", "")
    assert not Path(key).exists()
    assert not [n for n in links.link_names(lab.ns.path) if n.startswith("veth")]
    lab.start(box)
    assert box.address("net1") == "172.18.0.2"  # the lowest free address again


def test_connect_and_disconnect_while_running(lab: Lab) -> None:
    net = lab.manager.create("extra")
    box = lab.container("web")
    lab.events.clear()
    lab.manager.connect("extra", box.id, {"Aliases": ["site"]})
    shown = box.ok("ip -4 addr; ip route")
    assert "inet 172.18.0.2/16" in shown and "eth1" in shown
    assert "default via 172.17.0.1" in shown  # the first network keeps the default route
    hosts = Path(box.files["/etc/hosts"]).read_text()
    assert hosts.endswith(f"172.17.0.2\t{box.id[:12]}\n172.18.0.2\t{box.id[:12]}\n")
    assert "nameserver 127.0.0.11" in Path(box.files["/etc/resolv.conf"]).read_text()
    assert lab.events == [
        ("network", "connect", net.id, {"container": box.id, "name": "extra", "type": "bridge"})
    ]
    with pytest.raises(Forbidden, match="^endpoint with name web already exists in network extra$"):
        lab.manager.connect("extra", box.id)
    lab.manager.disconnect("extra", box.id)
    assert "eth1" not in box.ok("ip link")
    assert "172.18.0.2" not in Path(box.files["/etc/hosts"]).read_text()
    assert lab.events[-1][1] == "disconnect"
    assert lab.manager.ipam.pool(net.id).leases == set()


def test_the_default_route_moves_when_its_network_is_disconnected(lab: Lab) -> None:
    lab.manager.create("second")
    box = lab.container("web")
    lab.manager.connect("second", box.id)
    lab.manager.disconnect("bridge", box.id)
    assert "default via 172.18.0.1 dev eth1" in box.ok("ip route")


def test_an_internal_network_has_no_default_route(lab: Lab) -> None:
    lab.manager.create("private", internal=True)
    box = lab.container("db", "private")
    assert "default" not in box.ok("ip route")
    assert box.run("ping -c1 -W1 172.17.0.1").returncode != 0


def test_none_and_host_modes(lab: Lab) -> None:
    alone = lab.container("alone", "none")
    assert alone.ok("ip -o link").splitlines()[0].startswith("1: lo:")
    assert len(alone.ok("ip -o link").splitlines()) == 1  # loopback only
    assert alone.settings["Networks"]["none"]["EndpointID"]
    host = lab.container("hosted", "host")
    assert host.key == lab.ns.path  # the engine's (node's) own namespace
    assert "docker0" in host.ok("ip link")
    lab.manager.release(host.id)
    assert "docker0" in links.link_names(lab.ns.path)  # releasing host mode removes nothing
    with pytest.raises(InvalidRequest, match="^cannot connect container to host network"):
        lab.manager.connect("host", alone.id)


def test_container_mode_joins_another_containers_namespace(lab: Lab) -> None:
    first = lab.container("first")
    second = lab.container("second", f"container:{first.id}")
    assert second.key == first.key
    assert second.files == first.files
    lab.manager.release(first.id)
    lab.manager.release(second.id)
    with pytest.raises(Exception, match="cannot join network namespace of a non running"):
        lab.manager.prepare_sandbox(second.id)


def test_files_say_what_docker_writes(lab: Lab) -> None:
    lab.manager.create("net1")
    box = lab.container("web", "net1", hostname="www")
    assert Path(box.files["/etc/hostname"]).read_text() == "www\n"
    assert Path(box.files["/etc/hosts"]).read_text().endswith("172.18.0.2\twww\n")
    resolv = Path(box.files["/etc/resolv.conf"]).read_text()
    assert resolv.startswith("# Generated by Docker Engine.")
    assert "nameserver 127.0.0.11\nsearch example.test\noptions ndots:0\n" in resolv
    assert f"# Based on host file: '{lab.root / 'resolv.conf'}' (internal resolver)" in resolv
    plain = lab.container("plain")
    assert (
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        in Path(plain.files["/etc/resolv.conf"]).read_text()
    )


def test_a_restarted_manager_keeps_running_containers_and_drops_dead_ones(lab: Lab) -> None:
    lab.manager.create("net1")
    alive = lab.container("alive", "net1")
    dead = lab.container("dead", "net1")
    netns.remove(Path(dead.key))  # as after a reboot: the namespace is gone
    manager = lab.reopen()
    assert manager.sandbox_key(alive.id) == alive.key
    assert manager.sandbox_key(dead.id) == ""
    assert manager.ipam.lease_count() == 1
    assert lab.container("new", "net1").address("net1") == "172.18.0.3"
