"""Network interfaces through netlink (pyroute2): bridges, veth pairs, macvlan links,
addresses and routes, each call done inside the namespace it concerns.

Every function takes the namespace file to work in (None: the calling thread's own) and opens
its own netlink socket there; see simulator.network.netns for why."""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
from collections.abc import Callable
from typing import TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from simulator.network import netns
from simulator.network.errors import NetworkError

T = TypeVar("T")
# pyroute2 logs every netlink message at DEBUG; the engine's --debug log is for its own story.
logging.getLogger("pyroute2").setLevel(logging.INFO)
MACVLAN_MODES = ("bridge", "private", "vepa", "passthru")
NO_DUMMY = (
    "a macvlan network without -o parent needs a dummy link, and this kernel has no dummy "
    "link support: give the network a parent interface (-o parent=IFACE)"
)


def _with_netlink(netns_path: str | None, work: Callable[[IPRoute], T]) -> T:
    def run() -> T:
        with IPRoute() as ipr:
            return work(ipr)

    return netns.run_in(netns_path, run)


def _index(ipr: IPRoute, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def mac_from_ip(address: str) -> str:
    """Docker's MAC for an IPv4 address: 02:42 then the address's four bytes."""
    packed = ipaddress.IPv4Address(address).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


def link_names(netns_path: str | None) -> list[str]:
    """Every interface of a namespace."""
    return _with_netlink(
        netns_path, lambda ipr: [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    )


def routes(netns_path: str | None) -> list[ipaddress.IPv4Network]:
    """The IPv4 destinations a namespace routes (not its default route)."""

    def read(ipr: IPRoute) -> list[ipaddress.IPv4Network]:
        found = []
        for route in ipr.get_routes(family=2, table=254):
            destination = route.get_attr("RTA_DST")
            if destination:
                found.append(
                    ipaddress.IPv4Network(f"{destination}/{route['dst_len']}", strict=False)
                )
        return found

    return _with_netlink(netns_path, read)


def ensure_bridge(netns_path: str | None, name: str, gateway: str, prefix: int, mtu: int) -> None:
    """A bridge named ``name``, up, holding ``gateway/prefix`` (made if missing)."""

    def make(ipr: IPRoute) -> None:
        index = _index(ipr, name)
        if index is None:
            ipr.link("add", ifname=name, kind="bridge")
            index = _index(ipr, name)
        assert index is not None
        ipr.link("set", index=index, mtu=mtu)
        present = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=index)}
        if (gateway, prefix) not in present:
            ipr.addr("add", index=index, address=gateway, prefixlen=prefix)
        ipr.link("set", index=index, state="up")

    _with_netlink(netns_path, make)


def delete_link(netns_path: str | None, name: str) -> None:
    """Remove an interface if it is there."""

    def remove(ipr: IPRoute) -> None:
        index = _index(ipr, name)
        if index is not None:
            try:
                ipr.link("del", index=index)
            except NetlinkError as error:
                if error.code != errno.ENODEV:
                    raise

    _with_netlink(netns_path, remove)


def link_exists(netns_path: str | None, name: str) -> bool:
    return _with_netlink(netns_path, lambda ipr: _index(ipr, name) is not None)


def add_veth(
    engine_netns: str | None,
    host_name: str,
    bridge: str,
    container_netns: str,
    container_name: str,
    mac: str,
    mtu: int,
) -> None:
    """A veth pair: ``host_name`` enslaved to ``bridge`` and up in the engine's namespace,
    its peer ``container_name`` (with ``mac``) in the container's."""

    def make(ipr: IPRoute) -> None:
        fd = os.open(container_netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ipr.link(
                "add",
                ifname=host_name,
                kind="veth",
                mtu=mtu,
                peer={"ifname": container_name, "net_ns_fd": fd, "address": mac, "mtu": mtu},
            )
        finally:
            os.close(fd)
        index = _index(ipr, host_name)
        master = _index(ipr, bridge)
        if index is None or master is None:
            raise NetworkError(f"the veth {host_name} or the bridge {bridge} has gone")
        ipr.link("set", index=index, master=master, state="up")

    _with_netlink(engine_netns, make)


def ensure_parent(netns_path: str | None, parent: str, dummy: bool) -> bool:
    """Make sure a macvlan parent exists: a dummy link when ``dummy``, a VLAN link for a
    ``name.vlan`` parent whose base exists. Returns whether it was made here."""

    def make(ipr: IPRoute) -> bool:
        if _index(ipr, parent) is not None:
            return False
        if dummy:
            try:
                ipr.link("add", ifname=parent, kind="dummy")
            except NetlinkError as error:
                if error.code == errno.EOPNOTSUPP:
                    raise NetworkError(NO_DUMMY) from None
                raise
        else:
            base, _, vlan = parent.partition(".")
            if not vlan:
                raise NetworkError(
                    f"invalid subinterface vlan name {parent}, example formatting is eth0.10"
                )
            if not vlan.isdigit():
                raise NetworkError(
                    f"unable to parse a valid vlan id from: {vlan} (ex. eth0.10 for vlan 10)"
                )
            vlan_id = int(vlan)
            base_index = _index(ipr, base)
            if base_index is None:
                raise NetworkError(f"-o parent interface was not found on the host: {base}")
            if not 1 <= vlan_id <= 4094:
                raise NetworkError(f"vlan id must be between 1-4094, received: {vlan_id}")
            ipr.link("add", ifname=parent, kind="vlan", link=base_index, vlan_id=vlan_id)
        index = _index(ipr, parent)
        assert index is not None
        ipr.link("set", index=index, state="up")
        return True

    return _with_netlink(netns_path, make)


def add_macvlan(
    engine_netns: str | None,
    parent: str,
    mode: str,
    container_netns: str,
    container_name: str,
    mac: str,
) -> None:
    """A macvlan link on ``parent`` (in the engine's namespace), moved into the container's
    namespace as ``container_name``."""

    def make(ipr: IPRoute) -> None:
        parent_index = _index(ipr, parent)
        if parent_index is None:
            raise NetworkError(
                f"the requested parent interface {parent} was not found on the Docker host"
            )
        fd = os.open(container_netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ipr.link(
                "add",
                ifname=container_name,
                kind="macvlan",
                link=parent_index,
                macvlan_mode=mode,
                address=mac,
                net_ns_fd=fd,
            )
        except NetlinkError as error:
            if error.code == errno.EOPNOTSUPP:
                raise NetworkError(
                    "the macvlan driver is not available: this kernel has no macvlan support"
                ) from None
            raise NetworkError(f"failed to create the macvlan port: {error}") from None
        finally:
            os.close(fd)

    _with_netlink(engine_netns, make)


def configure_interface(
    container_netns: str, name: str, address: str, prefix: int, gateway: str | None
) -> None:
    """Inside a container: the interface gets its address, comes up, has IPv6 off (as
    Docker does on an IPv4-only network), and the default route goes via ``gateway``
    unless None."""

    def configure(ipr: IPRoute) -> None:
        index = _index(ipr, name)
        if index is None:
            raise NetworkError(f"interface {name} is missing from the container")
        _write_sysctl(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "1")
        ipr.addr("add", index=index, address=address, prefixlen=prefix)
        ipr.link("set", index=index, state="up")
        if gateway:
            _replace_default_route(ipr, gateway)

    _with_netlink(container_netns, configure)


def set_default_route(container_netns: str, gateway: str | None) -> None:
    """Point a container's default route at ``gateway``, or remove it (None)."""

    def change(ipr: IPRoute) -> None:
        if gateway:
            _replace_default_route(ipr, gateway)
        else:
            for route in ipr.get_default_routes(family=2):
                ipr.route("del", dst="0.0.0.0/0", gateway=route.get_attr("RTA_GATEWAY"))

    _with_netlink(container_netns, change)


def _replace_default_route(ipr: IPRoute, gateway: str) -> None:
    ipr.route("replace", dst="0.0.0.0/0", gateway=gateway)


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as file:
            file.write(value)
    except FileNotFoundError:
        pass  # no IPv6 in this kernel: nothing to turn off


def write_sysctl(netns_path: str | None, key: str, value: str) -> None:
    """Set a network sysctl (``net/ipv4/ip_forward``) inside a namespace."""
    netns.run_in(netns_path, lambda: _write_sysctl(f"/proc/sys/{key}", value))
