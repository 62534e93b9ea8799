"""Networks: the predefined three, creating, inspecting, listing, removing and pruning, with
Docker's fields, errors and events, and nothing left behind when a request is refused."""

from __future__ import annotations

import json
import re

import pytest

from simulator.network import engine_networks, links, netns
from simulator.network.errors import Conflict, Forbidden, InvalidRequest, NetworkError, NotFound
from simulator.network.manager import SWARM_ONLY
from tests.network.conftest import Lab

RFC3339_NANO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")


def test_bridge_host_and_none_are_always_there(lab: Lab) -> None:
    names = {n.name: n for n in lab.manager.list()}
    assert {(n, names[n].driver) for n in names} == {
        ("bridge", "bridge"),
        ("host", "host"),
        ("none", "null"),
    }
    bridge = lab.manager.inspect("bridge")
    assert bridge["IPAM"] == {
        "Driver": "default",
        "Options": None,
        "Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}],
    }
    assert bridge["Options"]["com.docker.network.bridge.name"] == "docker0"
    assert "docker0" in links.link_names(lab.ns.path)
    again = lab.reopen()
    assert {n.id for n in again.list()} == {n.id for n in names.values()}  # IDs are kept


def test_a_user_network_inspects_as_docker_shows_it(lab: Lab) -> None:
    network = lab.manager.create("net1", labels={"a": "b"}, options={"foo": "bar"})
    shown = lab.manager.inspect("net1")
    assert re.fullmatch(r"[0-9a-f]{64}", shown["Id"]) and shown["Id"] == network.id
    assert RFC3339_NANO.fullmatch(shown["Created"])
    assert list(shown) == [
        "Name", "Id", "Created", "Scope", "Driver", "EnableIPv4", "EnableIPv6", "IPAM",
        "Internal", "Attachable", "Ingress", "ConfigFrom", "ConfigOnly", "Containers",
        "Options", "Labels",
    ]  # fmt: skip
    assert {k: v for k, v in shown.items() if k not in ("Id", "Created")} == {
        "Name": "net1",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv4": True,
        "EnableIPv6": False,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}],
        },
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": {"foo": "bar"},
        "Labels": {"a": "b"},
    }
    assert f"br-{network.id[:12]}" in links.link_names(lab.ns.path)
    assert lab.events[-1] == ("network", "create", network.id, {"name": "net1", "type": "bridge"})


def test_custom_subnet_range_and_gateway_are_shown(lab: Lab) -> None:
    lab.manager.create(
        "net2",
        ipam={
            "Driver": "default",
            "Config": [
                {"Subnet": "10.5.0.0/24", "IPRange": "10.5.0.128/25", "Gateway": "10.5.0.254"}
            ],
        },
        internal=True,
        attachable=True,
    )
    shown = lab.manager.inspect("net2")
    assert shown["IPAM"]["Config"] == [
        {"Subnet": "10.5.0.0/24", "IPRange": "10.5.0.128/25", "Gateway": "10.5.0.254"}
    ]
    assert (shown["Internal"], shown["Attachable"]) == (True, True)


def test_networks_are_found_by_id_name_or_prefix(lab: Lab) -> None:
    network = lab.manager.create("web")
    assert lab.manager.get(network.id).name == "web"
    assert lab.manager.get(network.id[:5]).name == "web"
    with pytest.raises(NotFound, match="^network nope not found$"):
        lab.manager.get("nope")


def test_list_filters_as_docker_does(lab: Lab) -> None:
    lab.manager.create("front", labels={"tier": "web"})
    lab.manager.create("back", labels={"tier": "db"})
    names = lambda **f: [n.name for n in lab.manager.list(f)]  # noqa: E731
    assert names(name=["ro"]) == ["front"]  # a regular expression found in the name
    assert names(label=["tier=db"]) == ["back"]
    assert names(driver=["null"]) == ["none"]
    assert names(type=["custom"]) == ["back", "front"]
    assert names(type=["builtin"]) == ["bridge", "host", "none"]
    assert names(dangling=["true"]) == ["back", "front"]
    with pytest.raises(InvalidRequest, match="invalid filter 'colour'"):
        lab.manager.list({"colour": ["red"]})


BAD_REQUESTS = [
    (
        {"name": "bridge"},
        Forbidden,
        403,
        "operation is not permitted on predefined bridge network ",
    ),
    ({"name": "x", "driver": "overlay"}, Forbidden, 403, SWARM_ONLY),
    ({"name": "x", "driver": "foo"}, NotFound, 404, 'plugin "foo" not found'),
    (
        {"name": "x", "driver": "host"},
        Forbidden,
        403,
        'only one instance of "host" network is allowed',
    ),
    (
        {"name": "x", "ipam": {"Config": [{"Subnet": "foo"}]}},
        InvalidRequest,
        400,
        "invalid network config:\ninvalid subnet foo: invalid CIDR block notation",
    ),
    (
        {"name": "x", "ipam": {"Config": [{"Subnet": "10.0.0.1/24"}]}},
        InvalidRequest,
        400,
        "invalid network config:\ninvalid subnet 10.0.0.1/24: it should be 10.0.0.0/24",
    ),
    (
        {
            "name": "x",
            "ipam": {
                "Config": [
                    {"Subnet": "10.6.0.0/24", "Gateway": "10.7.0.1", "IPRange": "10.7.0.0/25"}
                ]
            },
        },
        InvalidRequest,
        400,
        "invalid network config:\n"
        "* invalid ip-range 10.7.0.0/25: parent subnet 10.6.0.0/24 doesn't contain ip-range\n"
        "* invalid gateway 10.7.0.1: parent subnet 10.6.0.0/24 doesn't contain this address",
    ),
    (
        {"name": "x", "driver": "macvlan", "options": {"parent": "nope0"}},
        NetworkError,
        500,
        "invalid subinterface vlan name nope0, example formatting is eth0.10",
    ),
    (
        {"name": "x", "driver": "macvlan", "options": {"parent": "nope0.5"}},
        NetworkError,
        500,
        "-o parent interface was not found on the host: nope0",
    ),
]


@pytest.mark.parametrize(("arguments", "error", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_dockers_error_and_leave_nothing(
    lab: Lab, arguments: dict, error: type, status: int, message: str
) -> None:
    before_links = links.link_names(lab.ns.path)
    before = lab.manager.list()
    with pytest.raises(error) as refused:
        lab.manager.create(**arguments)
    assert (refused.value.status, refused.value.message) == (status, message)
    assert links.link_names(lab.ns.path) == before_links
    assert lab.manager.list() == before
    assert json.loads((lab.root / "state" / "ipam.json").read_text()).keys() == {
        n.id for n in before if n.name == "bridge"
    }


def test_an_overlapping_subnet_is_refused_and_rolled_back(lab: Lab) -> None:
    lab.manager.create("a", ipam={"Config": [{"Subnet": "10.1.0.0/16"}]})
    before = links.link_names(lab.ns.path)
    with pytest.raises(Forbidden) as refused:
        lab.manager.create("b", ipam={"Config": [{"Subnet": "10.1.2.0/24"}]})
    assert refused.value.message == (
        "invalid pool request: Pool overlaps with other one on this address space"
    )
    assert links.link_names(lab.ns.path) == before
    assert [n.name for n in lab.manager.list({"name": ["^b$"]})] == []


def test_a_second_network_of_the_same_name_conflicts(lab: Lab) -> None:
    lab.manager.create("dup")
    with pytest.raises(Conflict, match="^network with name dup already exists$"):
        lab.manager.create("dup")


def test_removing_a_network_removes_its_bridge_and_pool(lab: Lab) -> None:
    network = lab.manager.create("gone")
    lab.manager.remove("gone")
    assert f"br-{network.id[:12]}" not in links.link_names(lab.ns.path)
    assert lab.events[-1] == ("network", "destroy", network.id, {"name": "gone", "type": "bridge"})
    assert str(lab.manager.create("next").ipam_config[0]["Subnet"]) == "172.18.0.0/16"
    with pytest.raises(Forbidden, match="^bridge is a pre-defined network and cannot be removed$"):
        lab.manager.remove("bridge")


def test_a_network_with_a_running_container_cannot_be_removed(lab: Lab) -> None:
    lab.manager.create("busy")
    box = lab.container("web", "busy")
    endpoint = box.settings["Networks"]["busy"]["EndpointID"]
    with pytest.raises(Forbidden) as refused:
        lab.manager.remove("busy")
    assert refused.value.message == (
        "error while removing network: network busy has active endpoints "
        f'(name:"web" id:"{endpoint[:12]}")'
    )
    lab.manager.release(box.id)
    lab.manager.remove("busy")  # a stopped container doesn't hold it, as in Docker


def test_prune_removes_unused_user_networks_only(lab: Lab) -> None:
    lab.manager.create("used")
    lab.manager.create("idle", labels={"keep": "no"})
    lab.manager.create("kept", labels={"keep": "yes"})
    lab.container("c", "used")
    assert lab.manager.prune({"label!": ["keep=yes"]}) == ["idle"]
    assert {n.name for n in lab.manager.list()} == {"bridge", "host", "none", "used", "kept"}
    assert lab.events[-1] == ("network", "prune", "", {"reclaimed": "0"})


def test_an_engine_gets_networks_only_outside_the_hosts_own_namespace(lab: Lab) -> None:
    assert netns.run_in(lab.ns.path, netns.in_initial_namespace) is False
    manager = netns.run_in(
        lab.ns.path, lambda: engine_networks(lab.root / "engine", lambda *event: None)
    )
    assert manager is not None
    try:
        assert manager.netns is None  # it works in the namespace it was made in
        assert "docker0" in links.link_names(lab.ns.path)
    finally:
        manager.close()
