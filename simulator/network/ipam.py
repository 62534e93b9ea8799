"""IP address management: one address pool per network, drawn from Docker's default pools
(172.17.0.0/16 to 172.31.0.0/16, then 192.168.0.0/16 cut in /20s) or given by the user, and
the addresses leased in each, persisted so that no address is handed out twice, also across
an engine restart.

On disk: ``<state>/ipam.json``, ``{network ID: {"subnet", "ip_range", "gateway",
"predefined", "leases": [address, ...]}}``, replaced atomically on every change.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.network.errors import Forbidden, InvalidRequest, NotFound, Unavailable

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address

DEFAULT_BRIDGE_SUBNET = IPv4Network("172.17.0.0/16")
# moby's PredefinedLocalScopeDefaultNetworks: (base, size of each pool cut from it)
DEFAULT_POOLS: tuple[tuple[IPv4Network, int], ...] = (
    (IPv4Network("172.17.0.0/16"), 16),
    (IPv4Network("172.18.0.0/16"), 16),
    (IPv4Network("172.19.0.0/16"), 16),
    (IPv4Network("172.20.0.0/14"), 16),
    (IPv4Network("172.24.0.0/14"), 16),
    (IPv4Network("172.28.0.0/14"), 16),
    (IPv4Network("192.168.0.0/16"), 20),
)
POOL_OVERLAP = "invalid pool request: Pool overlaps with other one on this address space"
POOLS_EXHAUSTED = "all predefined address pools have been fully subnetted"
ADDRESS_IN_USE = "Address already in use"
OUT_OF_RANGE = "requested address is out of range"
NO_ADDRESSES = "no available addresses on this pool"


@dataclass
class Pool:
    """A network's addresses: its subnet, the range containers' addresses come from, its
    gateway (reserved, never leased to a container) and the addresses leased."""

    subnet: IPv4Network
    ip_range: IPv4Network | None = None
    gateway: IPv4Address | None = None
    predefined: bool = False  # drawn from the default pools, not given by the user
    leases: set[IPv4Address] = field(default_factory=set)

    def candidates(self) -> Iterator[IPv4Address]:
        """The addresses a container may get, lowest first: the range's (or the subnet's)
        hosts, never the subnet's network or broadcast address."""
        source = self.ip_range or self.subnet
        if source.prefixlen >= 31:
            yield from source
            return
        for address in source:
            if address not in (self.subnet.network_address, self.subnet.broadcast_address):
                yield address

    def to_json(self) -> dict[str, Any]:
        return {
            "subnet": str(self.subnet),
            "ip_range": str(self.ip_range) if self.ip_range else None,
            "gateway": str(self.gateway) if self.gateway else None,
            "predefined": self.predefined,
            "leases": sorted(str(a) for a in self.leases),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Pool:
        return cls(
            subnet=IPv4Network(value["subnet"]),
            ip_range=IPv4Network(value["ip_range"]) if value.get("ip_range") else None,
            gateway=IPv4Address(value["gateway"]) if value.get("gateway") else None,
            predefined=bool(value.get("predefined")),
            leases={IPv4Address(a) for a in value.get("leases", ())},
        )


class Ipam:
    """The pools of one engine, keyed by network ID. Thread-safe; every change is on disk
    before the call returns."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "ipam.json"
        self._lock = threading.RLock()
        self._pools: dict[str, Pool] = {}
        try:
            saved = json.loads(self.path.read_text())
        except FileNotFoundError:
            saved = {}
        for network_id, value in saved.items():
            self._pools[network_id] = Pool.from_json(value)

    def request_pool(
        self,
        network_id: str,
        subnet: str = "",
        ip_range: str = "",
        gateway: str = "",
        *,
        with_gateway: bool = True,
        avoid: Iterable[IPv4Network] = (),
    ) -> Pool:
        """Reserve a pool for a network: ``subnet`` if given (refused if it overlaps another
        pool), else the first default pool that overlaps neither another pool nor ``avoid``
        (the routes of the engine's namespace). The gateway is ``gateway`` or the first
        address of the subnet, unless ``with_gateway`` is false."""
        with self._lock:
            if network_id in self._pools:
                return self._pools[network_id]
            if subnet:
                chosen = IPv4Network(subnet, strict=False)
                if any(chosen.overlaps(p.subnet) for p in self._pools.values()):
                    raise Forbidden(POOL_OVERLAP)
                predefined = False
            else:
                chosen = self._free_default_pool(list(avoid))
                predefined = True
            pool = Pool(
                chosen,
                ip_range=IPv4Network(ip_range, strict=False) if ip_range else None,
                predefined=predefined,
            )
            if gateway:
                pool.gateway = IPv4Address(gateway)
            elif with_gateway:
                pool.gateway = next(iter(self._subnet_hosts(chosen)))
            self._pools[network_id] = pool
            self._save()
            return pool

    def restore_pool(self, network_id: str, pool: Pool) -> None:
        """Record a pool exactly as given (a predefined network's on first start)."""
        with self._lock:
            self._pools[network_id] = pool
            self._save()

    def release_pool(self, network_id: str) -> None:
        with self._lock:
            if self._pools.pop(network_id, None) is not None:
                self._save()

    def pool(self, network_id: str) -> Pool:
        with self._lock:
            try:
                return self._pools[network_id]
            except KeyError:
                raise NotFound(f"no address pool for network {network_id}") from None

    def has_pool(self, network_id: str) -> bool:
        with self._lock:
            return network_id in self._pools

    def allocate(self, network_id: str, preferred: str = "") -> IPv4Address:
        """Lease an address: ``preferred`` if given, else the lowest free one."""
        with self._lock:
            pool = self.pool(network_id)
            if preferred:
                address = IPv4Address(preferred)
                if address not in pool.subnet:
                    raise InvalidRequest(OUT_OF_RANGE)
                if address in pool.leases or address == pool.gateway:
                    raise Forbidden(ADDRESS_IN_USE)
            else:
                address = self._lowest_free(pool)
            pool.leases.add(address)
            self._save()
            return address

    def release(self, network_id: str, address: str | IPv4Address) -> None:
        with self._lock:
            pool = self._pools.get(network_id)
            if pool is not None and IPv4Address(address) in pool.leases:
                pool.leases.discard(IPv4Address(address))
                self._save()

    def lease_count(self) -> int:
        """Addresses leased to containers, over every pool."""
        with self._lock:
            return sum(len(p.leases) for p in self._pools.values())

    def _lowest_free(self, pool: Pool) -> IPv4Address:
        for address in pool.candidates():
            if address not in pool.leases and address != pool.gateway:
                return address
        raise Unavailable(NO_ADDRESSES)

    def _free_default_pool(self, avoid: list[IPv4Network]) -> IPv4Network:
        taken = [p.subnet for p in self._pools.values()] + avoid
        for base, size in DEFAULT_POOLS:
            for candidate in base.subnets(new_prefix=size):
                if not any(candidate.overlaps(other) for other in taken):
                    return candidate
        raise InvalidRequest(POOLS_EXHAUSTED)

    @staticmethod
    def _subnet_hosts(subnet: IPv4Network) -> Iterator[IPv4Address]:
        return iter(subnet.hosts()) if subnet.prefixlen < 31 else iter(subnet)

    def _save(self) -> None:
        body = json.dumps({k: p.to_json() for k, p in sorted(self._pools.items())}, indent=1)
        write_atomic(self.path, body)


def write_atomic(path: Path, text: str) -> None:
    """Replace a file's content all at once: a temporary file, fsync, rename."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    with open(temporary, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
