"""macvlan: containers on a macvlan network over a veth parent reach each other with distinct
MAC addresses; what the kernel lacks (dummy links for a parentless macvlan, ipvlan) is said
plainly."""

from __future__ import annotations

import pytest
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from simulator.network import links, netns
from simulator.network.errors import InvalidRequest, NetworkError
from simulator.network.links import NO_DUMMY
from tests.network.conftest import Lab


def _veth_parent(lab: Lab) -> None:
    """parent0, one end of a veth pair in the engine's namespace, both ends up."""

    def make() -> None:
        with IPRoute() as ipr:
            ipr.link("add", ifname="parent0", kind="veth", peer={"ifname": "peer0"})
            for name in ("parent0", "peer0"):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")

    netns.run_in(lab.ns.path, make)


def test_two_containers_on_a_macvlan_network_reach_each_other(lab: Lab) -> None:
    _veth_parent(lab)
    network = lab.manager.create(
        "mv",
        "macvlan",
        options={"parent": "parent0"},
        ipam={"Config": [{"Subnet": "192.168.50.0/24", "Gateway": "192.168.50.1"}]},
    )
    first = lab.container("first", "mv")
    second = lab.container("second", "mv")
    assert first.address("mv") == "192.168.50.2" and second.address("mv") == "192.168.50.3"
    macs = {box.settings["Networks"]["mv"]["MacAddress"] for box in (first, second)}
    assert macs == {"02:42:c0:a8:32:02", "02:42:c0:a8:32:03"}
    assert netns.run_in(first.key, lambda: _kind("eth0")) == "macvlan"
    first.ok("ping -c1 -W2 192.168.50.3")
    second.ok("ping -c1 -W2 192.168.50.2")
    assert "default via 192.168.50.1" in first.ok("ip route")
    assert lab.manager.inspect("mv")["Driver"] == "macvlan"
    assert set(lab.manager.containers_of(network.id)) == {first.id, second.id}
    lab.manager.release(first.id)
    lab.manager.release(second.id)
    lab.manager.remove("mv")
    assert "parent0" in links.link_names(lab.ns.path)  # the user's parent stays


def test_without_a_parent_a_dummy_link_is_the_parent(lab: Lab) -> None:
    """Docker makes a dummy link dm-<ID> as the parent; where the kernel has no dummy links
    (as on these machines) the refusal says so, and nothing is left."""
    before = links.link_names(lab.ns.path)
    if not netns.run_in(lab.ns.path, _dummy_links_work):
        with pytest.raises(NetworkError) as refused:
            lab.manager.create("alone", "macvlan")
        assert refused.value.message == NO_DUMMY
        assert links.link_names(lab.ns.path) == before
        assert [n.name for n in lab.manager.list({"driver": ["macvlan"]})] == []
        return
    network = lab.manager.create("alone", "macvlan")
    assert f"dm-{network.id[:12]}" in links.link_names(lab.ns.path)
    assert lab.manager.inspect("alone")["Internal"] is True
    lab.manager.remove("alone")
    assert links.link_names(lab.ns.path) == before


def _dummy_links_work() -> bool:
    with IPRoute() as ipr:
        try:
            ipr.link("add", ifname="probe0", kind="dummy")
        except NetlinkError:
            return False
        ipr.link("del", index=ipr.link_lookup(ifname="probe0")[0])
        return True


def test_drivers_the_kernel_or_engine_lack_are_refused_plainly(lab: Lab) -> None:
    with pytest.raises(InvalidRequest, match="ipvlan driver is not available"):
        lab.manager.create("iv", "ipvlan")


def _kind(name: str) -> str:
    with IPRoute() as ipr:
        link = ipr.get_links(ipr.link_lookup(ifname=name)[0])[0]
        return link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND")
