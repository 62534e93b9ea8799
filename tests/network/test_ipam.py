"""IPAM: Docker's default pools in order, user subnets, gateways and ranges, Docker's errors,
and leases that stay unique across a restart (a new Ipam over the same file)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from simulator.network.errors import Forbidden, InvalidRequest, Unavailable
from simulator.network.ipam import Ipam, Pool


def test_user_networks_draw_docker_default_pools_after_the_default_bridge(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path)
    ipam.restore_pool(
        "bridge", Pool(IPv4Network("172.17.0.0/16"), gateway=IPv4Address("172.17.0.1"))
    )
    subnets = [str(ipam.request_pool(f"n{i}").subnet) for i in range(3)]
    assert subnets == ["172.18.0.0/16", "172.19.0.0/16", "172.20.0.0/16"]
    assert str(ipam.pool("n0").gateway) == "172.18.0.1"


def test_a_pool_skips_routes_the_engine_namespace_already_has(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path)
    pool = ipam.request_pool(
        "n", avoid=[IPv4Network("172.17.5.0/24"), IPv4Network("172.18.0.0/15")]
    )
    assert str(pool.subnet) == "172.20.0.0/16"


def test_after_the_172_pools_come_192_168_slash_20s(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path)
    for index in range(15):  # 172.17 ... 172.31
        ipam.request_pool(f"n{index}")
    assert str(ipam.request_pool("next").subnet) == "192.168.0.0/20"
    assert str(ipam.request_pool("after").subnet) == "192.168.16.0/20"


def test_every_default_pool_taken_is_dockers_error(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path)
    ipam.request_pool("all", "172.16.0.0/12")
    ipam.request_pool("rest", "192.168.0.0/16")
    with pytest.raises(
        InvalidRequest, match="all predefined address pools have been fully subnetted"
    ):
        ipam.request_pool("one-more")


def test_custom_subnet_gateway_and_range(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path)
    pool = ipam.request_pool("n", "10.5.0.0/24", "10.5.0.128/25", "10.5.0.254")
    assert (str(pool.subnet), str(pool.ip_range), str(pool.gateway)) == (
        "10.5.0.0/24",
        "10.5.0.128/25",
        "10.5.0.254",
    )
    assert str(ipam.allocate("n")) == "10.5.0.128"
    assert str(ipam.allocate("n")) == "10.5.0.129"
    assert str(ipam.allocate("n", "10.5.0.7")) == "10.5.0.7"  # --ip may lie outside the range


def test_an_overlapping_subnet_is_refused_with_dockers_words(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path)
    ipam.request_pool("a", "10.1.0.0/16")
    with pytest.raises(Forbidden) as refused:
        ipam.request_pool("b", "10.1.2.0/24")
    assert refused.value.message == (
        "invalid pool request: Pool overlaps with other one on this address space"
    )
    assert refused.value.status == 403
    assert not ipam.has_pool("b")


def test_addresses_are_the_lowest_free_and_never_the_gateway(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path)
    ipam.request_pool("n", "10.9.0.0/29")
    given = [str(ipam.allocate("n")) for _ in range(5)]
    assert given == ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
    with pytest.raises(Unavailable, match="no available addresses on this pool"):
        ipam.allocate("n")
    ipam.release("n", "10.9.0.3")
    assert str(ipam.allocate("n")) == "10.9.0.3"


def test_a_taken_or_foreign_address_is_refused(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path)
    ipam.request_pool("n", "10.9.0.0/24")
    ipam.allocate("n", "10.9.0.5")
    with pytest.raises(Forbidden, match="^Address already in use$"):
        ipam.allocate("n", "10.9.0.5")
    with pytest.raises(Forbidden, match="^Address already in use$"):
        ipam.allocate("n", "10.9.0.1")  # the gateway
    with pytest.raises(InvalidRequest, match="^requested address is out of range$"):
        ipam.allocate("n", "10.10.0.5")


def test_leases_and_pools_survive_a_restart(tmp_path: Path) -> None:
    first = Ipam(tmp_path)
    first.request_pool("n", "10.9.0.0/24")
    leased = {str(first.allocate("n")) for _ in range(3)}
    again = Ipam(tmp_path)
    more = {str(again.allocate("n")) for _ in range(3)}
    assert leased == {"10.9.0.2", "10.9.0.3", "10.9.0.4"}
    assert not leased & more
    assert again.lease_count() == 6
    with pytest.raises(Forbidden):
        again.request_pool("other", "10.9.0.0/16")


def test_a_released_pool_can_be_taken_again(tmp_path: Path) -> None:
    ipam = Ipam(tmp_path)
    ipam.request_pool("a", "10.1.0.0/16")
    ipam.release_pool("a")
    assert str(Ipam(tmp_path).request_pool("b", "10.1.0.0/16").subnet) == "10.1.0.0/16"
