"""The engine's packet filter and NAT rules, in nftables: one table, ``ip slipway``, in the
engine's network namespace, rewritten whole (one atomic ``nft -f`` transaction) from the
networks and published ports each time they change, so that no rule can outlive what it was
for; and a small table in each container's namespace that sends 127.0.0.11:53 to the
embedded DNS server.

What the engine's table does, as Docker's iptables chains do:

- ``publish`` (DOCKER): DNAT of each published port, for packets that arrive from outside and
  for the engine's own to a non-loopback local address. Packets from a bridge return early:
  a container reaching a published port through its gateway (hairpin) and anything for
  127.0.0.1 reach the userland proxy instead, as with Docker's default ``userland-proxy``.
- ``postrouting``: masquerade of each non-internal bridge network leaving by another link.
- ``forward`` (DOCKER-ISOLATION, DOCKER-FORWARD): a bridge takes traffic from elsewhere only
  when it belongs to a connection its containers made or to a published port, so user
  networks can't reach each other; an ``--internal`` network sends nothing out at all.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from simulator.network import netns
from simulator.network.errors import NetworkError

TABLE = "slipway"
DNS_TABLE = "slipway_dns"
NFT_MISSING = (
    "nft is not installed: port publishing and network isolation need nftables "
    "(apt-get install nftables)"
)


@dataclass(frozen=True)
class BridgeRules:
    """What the rules need to know of one bridge network."""

    interface: str
    subnet: str
    internal: bool = False
    masquerade: bool = True
    icc: bool = True


@dataclass(frozen=True)
class Publication:
    """One published port: ``host_ip:host_port`` (0.0.0.0: every address) to the container."""

    protocol: str  # tcp, udp
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


def engine_script(bridges: Sequence[BridgeRules], publications: Sequence[Publication]) -> str:
    """The nft script that replaces the engine's table with one for these networks and
    ports."""
    publish = [f'iifname "{b.interface}" return' for b in bridges]
    for p in publications:
        match = "" if p.host_ip in ("", "0.0.0.0") else f"ip daddr {p.host_ip} "
        publish.append(
            f"{match}{p.protocol} dport {p.host_port} dnat to {p.container_ip}:{p.container_port}"
        )
    postrouting = [
        f'ip saddr {b.subnet} oifname != "{b.interface}" masquerade'
        for b in bridges
        if b.masquerade and not b.internal
    ]
    forward: list[str] = []
    for b in bridges:
        name = f'"{b.interface}"'
        forward.append(f"iifname {name} oifname {name} {'accept' if b.icc else 'drop'}")
        if b.internal:
            forward.append(f"iifname {name} drop")
            forward.append(f"oifname {name} drop")
            continue
        forward.append(f"oifname {name} ct state established,related accept")
        forward.append(f"oifname {name} ct status dnat accept")
        forward.append(f"oifname {name} drop")
    return _table_script(
        TABLE,
        {
            "prerouting": (
                "type nat hook prerouting priority -100",
                ["fib daddr type local jump publish"],
            ),
            "output": (
                "type nat hook output priority -100",
                ["ip daddr != 127.0.0.0/8 fib daddr type local jump publish"],
            ),
            "publish": ("", publish),
            "postrouting": ("type nat hook postrouting priority 100", postrouting),
            "forward": ("type filter hook forward priority 0", forward),
        },
    )


def dns_script(udp_port: int, tcp_port: int, resolver: str = "127.0.0.11") -> str:
    """The nft script for a container's namespace: its queries to ``resolver``:53 go to the
    ports the embedded DNS server listens on there."""
    return _table_script(
        DNS_TABLE,
        {
            "output": (
                "type nat hook output priority -100",
                [
                    f"ip daddr {resolver} udp dport 53 dnat to {resolver}:{udp_port}",
                    f"ip daddr {resolver} tcp dport 53 dnat to {resolver}:{tcp_port}",
                ],
            )
        },
    )


def _table_script(table: str, chains: dict[str, tuple[str, list[str]]]) -> str:
    lines = [f"table ip {table}", f"delete table ip {table}", f"table ip {table} {{"]
    for chain, (hook, rules) in chains.items():
        lines.append(f"\tchain {chain} {{")
        if hook:
            lines.append(f"\t\t{hook}; policy accept;")
        lines += [f"\t\t{rule}" for rule in rules]
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def apply(netns_path: str | None, script: str) -> None:
    """Run an nft script as one transaction inside a namespace."""
    if shutil.which("nft") is None:
        raise NetworkError(NFT_MISSING)
    result = netns.run_command(netns_path, ["nft", "-f", "-"], stdin=script)
    if result.returncode != 0:
        raise NetworkError(f"nft refused the engine's rules: {result.stderr.strip()}")


def remove_table(netns_path: str | None, table: str = TABLE) -> None:
    """Delete one of our tables, if it is there."""
    if shutil.which("nft") is None:
        return
    netns.run_command(
        netns_path, ["nft", "-f", "-"], stdin=f"table ip {table}\ndelete table ip {table}\n"
    )


def rule_count(netns_path: str | None, table: str = TABLE) -> int:
    """The number of rules in one of our tables (0 when it isn't there)."""
    result = netns.run_command(netns_path, ["nft", "-a", "list", "table", "ip", table])
    if result.returncode != 0:
        return 0
    rules = [line.strip() for line in result.stdout.splitlines() if "# handle" in line]
    return sum(1 for rule in rules if not rule.startswith(("table ", "chain ")))
