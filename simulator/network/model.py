"""The records the network manager keeps: networks, and each container's sandbox with its
endpoints and published ports, as JSON on disk and as the Engine API shows them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from simulator.network.ports import PortBinding

PREDEFINED = ("bridge", "host", "none")
DEFAULT_BRIDGE_OPTIONS = {
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
    "com.docker.network.bridge.name": "docker0",
    "com.docker.network.driver.mtu": "1500",
}
OPTION_BRIDGE_NAME = "com.docker.network.bridge.name"
OPTION_ICC = "com.docker.network.bridge.enable_icc"
OPTION_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
OPTION_MTU = "com.docker.network.driver.mtu"
OPTION_HOST_BINDING = "com.docker.network.bridge.host_binding_ipv4"


@dataclass
class Network:
    """One network, with Docker's fields."""

    id: str
    name: str
    driver: str  # bridge, macvlan, host, null
    created: str  # RFC 3339 with nanoseconds
    ipam_config: list[dict[str, str]] = field(default_factory=list)
    ipam_options: dict[str, str] | None = None
    ipam_driver: str = "default"
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    enable_ipv4: bool = True
    enable_ipv6: bool = False
    config_only: bool = False
    config_from: str = ""
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    interface: str = ""  # the bridge, or the macvlan parent
    made_parent: bool = False  # the macvlan parent was made for this network

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def user_defined(self) -> bool:
        """Whether the embedded DNS server serves it: Docker's IsUserDefined."""
        return not self.predefined

    def option_true(self, key: str, default: bool = True) -> bool:
        value = self.options.get(key)
        if value is None:
            return default
        return value.lower() in ("1", "t", "true")

    def mtu(self) -> int:
        try:
            return int(self.options.get(OPTION_MTU, "1500")) or 1500
        except ValueError:
            return 1500

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Network:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})

    def to_api(self, containers: dict[str, Any] | None = None) -> dict[str, Any]:
        """``GET /networks/{id}``, keys in Docker 28's order."""
        return {
            "Name": self.name,
            "Id": self.id,
            "Created": self.created,
            "Scope": "local",
            "Driver": self.driver,
            "EnableIPv4": self.enable_ipv4,
            "EnableIPv6": self.enable_ipv6,
            "IPAM": {
                "Driver": self.ipam_driver,
                "Options": None if self.ipam_options is None else dict(self.ipam_options),
                "Config": [dict(c) for c in self.ipam_config],
            },
            "Internal": self.internal,
            "Attachable": self.attachable,
            "Ingress": self.ingress,
            "ConfigFrom": {"Network": self.config_from},
            "ConfigOnly": self.config_only,
            "Containers": containers if containers is not None else {},
            "Options": dict(self.options),
            "Labels": dict(self.labels),
        }


@dataclass
class Endpoint:
    """A container's place on one network: what was asked (aliases, a fixed address ...)
    and, while the container runs, what it got."""

    network_id: str
    aliases: list[str] | None = None
    ipv4_address: str = ""  # asked for with --ip
    ipv6_address: str = ""
    links: list[str] | None = None
    mac_request: str = ""
    driver_opts: dict[str, str] | None = None
    gw_priority: int = 0
    # while live
    endpoint_id: str = ""
    address: str = ""
    prefix_len: int = 0
    gateway: str = ""
    mac: str = ""
    interface: str = ""  # in the container: eth0, eth1 ...
    host_interface: str = ""  # the veth's end on the bridge

    @property
    def live(self) -> bool:
        return bool(self.endpoint_id)

    def clear_live(self) -> None:
        self.endpoint_id = self.address = self.gateway = self.mac = ""
        self.interface = self.host_interface = ""
        self.prefix_len = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Endpoint:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})


@dataclass
class Sandbox:
    """A container's networking: its mode, names, DNS settings, ports asked for, and its
    endpoints by network ID in the order they were joined; ``key`` (the namespace file),
    ``sandbox_id`` and ``ports`` while it runs."""

    container_id: str
    name: str
    hostname: str = ""
    domainname: str = ""
    mode: str = "bridge"  # a network name, host, none, container:<ID>
    exposed: list[str] = field(default_factory=list)
    port_bindings: dict[str, Any] = field(default_factory=dict)
    publish_all: bool = False
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    started: bool = False  # it has run once: inspect shows its networks' IDs from then on
    # while live
    sandbox_id: str = ""
    key: str = ""
    ports: list[PortBinding] = field(default_factory=list)
    files_dir: str = ""
    dns_ports: list[int] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return bool(self.sandbox_id)

    @property
    def short_id(self) -> str:
        return self.container_id[:12]

    def to_json(self) -> dict[str, Any]:
        value = asdict(self)
        value["endpoints"] = {k: e.to_json() for k, e in self.endpoints.items()}
        value["ports"] = [p.to_json() for p in self.ports]
        return value

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Sandbox:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in value.items() if k in known}
        data["endpoints"] = {
            k: Endpoint.from_json(e) for k, e in (value.get("endpoints") or {}).items()
        }
        data["ports"] = [PortBinding.from_json(p) for p in value.get("ports") or []]
        return cls(**data)
