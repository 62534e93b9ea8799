"""Leaks: many cycles of containers made and removed on three networks, and of networks made
and removed, leave the engine's links, rules, namespace files and mounts, address leases,
host ports, proxies and DNS listeners where they started."""

from __future__ import annotations

from simulator.network import links
from tests.network.conftest import Lab

CYCLES = 50


def test_container_cycles_on_three_networks_leave_nothing(lab: Lab) -> None:
    lab.manager.create("front")
    lab.manager.create("back", internal=True)
    before = lab.counts()
    for cycle in range(CYCLES):
        boxes = [
            lab.container(f"web{cycle}", "front", ports={"80/tcp": [{"HostPort": ""}]}),
            lab.container(f"db{cycle}", "back", aliases=["database"]),
            lab.container(f"plain{cycle}", "bridge"),
        ]
        lab.manager.connect("back", boxes[0].id)
        if cycle == 0:
            during = lab.counts()
            assert during["veths"] == before["veths"] + 4 and during["proxies"] == 1
            assert during["dns"] == 2 and during["leases"] == before["leases"] + 4
        for box in boxes:
            lab.manager.forget(box.id)
    assert lab.counts() == before
    assert not list((lab.root / "state" / "sandboxes").iterdir())


def test_network_cycles_leave_nothing(lab: Lab) -> None:
    before = lab.counts()
    names = links.link_names(lab.ns.path)
    for cycle in range(CYCLES):
        lab.manager.create(f"n{cycle}", ipam={"Config": [{"Subnet": "10.77.0.0/24"}]})
        box = lab.container(f"c{cycle}", f"n{cycle}")
        lab.manager.forget(box.id)
        lab.manager.remove(f"n{cycle}")
    assert lab.counts() == before
    assert links.link_names(lab.ns.path) == names


def test_a_failed_start_leaves_nothing(lab: Lab) -> None:
    lab.container("holder", ports={"80/tcp": [{"HostPort": "8080"}]})
    lab.manager.create("front")
    before = lab.counts()
    for cycle in range(10):
        box = lab.container(
            f"late{cycle}",
            "front",
            ports={"80/tcp": [{"HostPort": "8080"}]},
            extra_networks={"bridge": {}},
            start=False,
        )
        try:
            lab.manager.prepare_sandbox(box.id)
        except Exception as error:  # noqa: BLE001 - what matters is what is left
            assert "port is already allocated" in str(error)
        else:
            raise AssertionError("the second publish of 8080 was accepted")
        lab.manager.forget(box.id)
    assert lab.counts() == before
