"""Isolation: user-defined networks can't reach each other, a container connected to both
reaches both, an --internal network reaches nothing beyond itself, and containers can't be
reached from outside except through what is published."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from tests.network.conftest import Lab, run_in_namespace


def reaches(run: Callable[[str], subprocess.CompletedProcess[str]], address: str) -> bool:
    """Whether a ping from where ``run`` runs (a container's Box.run) gets an answer."""
    return run(f"ping -c1 -W1 {address}").returncode == 0


def test_two_user_networks_are_isolated_until_a_container_joins_both(lab: Lab) -> None:
    lab.manager.create("red")
    lab.manager.create("blue")
    red = lab.container("red1", "red")
    blue = lab.container("blue1", "blue")
    assert reaches(red.run, red.address("red"))
    assert not reaches(red.run, blue.address("blue"))
    assert not reaches(blue.run, red.address("red"))
    lab.http_server(blue)
    assert red.run(f"timeout 3 wget -q -O- http://{blue.address('blue')}/").returncode != 0
    bridge = lab.container("plain")
    assert not reaches(bridge.run, red.address("red"))
    assert not reaches(red.run, bridge.address("bridge"))

    lab.manager.connect("blue", red.id)
    assert reaches(red.run, blue.address("blue"))
    assert red.ok(f"wget -q -O- http://{blue.address('blue')}/") == "hello from blue1\n"
    assert reaches(blue.run, red.settings["Networks"]["blue"]["IPAddress"])
    lab.manager.disconnect("blue", red.id)
    assert not reaches(red.run, blue.address("blue"))


def test_an_internal_network_talks_only_to_itself(lab: Lab) -> None:
    lab.manager.create("vault", internal=True)
    first = lab.container("a", "vault")
    second = lab.container("b", "vault")
    plain = lab.container("c")
    assert reaches(first.run, second.address("vault"))
    assert not reaches(first.run, plain.address("bridge"))
    assert not reaches(plain.run, first.address("vault"))
    lab.outside()
    assert not reaches(first.run, "10.99.0.2")
    assert reaches(plain.run, "10.99.0.2")  # the default bridge does get out (masqueraded)


def test_unpublished_container_ports_are_closed_to_other_hosts(lab: Lab) -> None:
    box = lab.container("web")
    lab.http_server(box)
    outside = lab.outside()
    run_in_namespace(outside, "ip route add 172.17.0.0/16 via 10.99.0.1")
    fetched = run_in_namespace(outside, "timeout 3 wget -q -O- http://172.17.0.2/")
    assert fetched.returncode != 0
    assert lab.engine("wget -q -O- http://172.17.0.2/").stdout == "hello from web\n"
