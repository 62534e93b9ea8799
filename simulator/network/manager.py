"""The network manager: one engine's networks and its containers' network sandboxes, made of
the pieces beside it (IPAM, links, firewall, embedded DNS, published ports), with Docker's
checks, errors and events. See the package docstring for how the engine uses it."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulator.network import dns, files, firewall, links, netns
from simulator.network.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NetworkError,
    NotFound,
)
from simulator.network.ipam import DEFAULT_BRIDGE_SUBNET, Ipam, Pool, write_atomic
from simulator.network.model import (
    DEFAULT_BRIDGE_OPTIONS,
    OPTION_BRIDGE_NAME,
    OPTION_HOST_BINDING,
    OPTION_ICC,
    OPTION_MASQUERADE,
    PREDEFINED,
    Endpoint,
    Network,
    Sandbox,
)
from simulator.network.ports import PortPublisher, port_requests, ports_map

log = logging.getLogger("simulator.network")

# publish(type, action, actor ID, attributes): the engine's EventBus.publish
Publish = Callable[[str, str, str, Mapping[str, str]], None]

SWARM_ONLY = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to '
    "connect this node to swarm and try again."
)
SHARED_NETWORK = (
    "container sharing network namespace with another container or host cannot be "
    "connected to any other network"
)
NO_NETWORK_CONFLICT = (
    "container cannot be connected to multiple networks with one of the networks in "
    "private (none) mode"
)
CONNECT_TO_HOST = (
    "cannot connect container to host network - container must be created in host network mode"
)
DISCONNECT_FROM_HOST = (
    "cannot disconnect container from host network - container was created in host network mode"
)
IP_ON_PREDEFINED = "user specified IP address is supported on user defined networks only"
ALIAS_ON_PREDEFINED = (
    "network-scoped alias is supported only for containers in user defined networks"
)
IP_WITHOUT_SUBNET = (
    "user specified IP address is supported only when connecting to networks with user "
    "configured subnets"
)
DRIVERS = ("bridge", "macvlan")
_LIST_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")


def now_rfc3339() -> str:
    """Now, in UTC with nanoseconds, as Go prints a time.Time in JSON."""
    nanoseconds = time.time_ns()
    moment = datetime.fromtimestamp(nanoseconds // 1_000_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanoseconds % 1_000_000_000:09d}Z"


def _no_events(kind: str, action: str, actor: str, attributes: Mapping[str, str]) -> None:
    return None


def _joined(errors: Sequence[str]) -> str:
    """moby's multierror.Join: one error as it is, several as a bulleted list."""
    if len(errors) == 1:
        return errors[0]
    return "* " + "\n* ".join(e.replace("\n", "\n\t") for e in errors)


class NetworkManager:
    """One engine's networks and container sandboxes; thread-safe."""

    def __init__(
        self,
        state_dir: Path,
        run_dir: Path,
        *,
        netns_path: str | None = None,
        publish: Publish | None = None,
        resolv_conf: Path = Path("/etc/resolv.conf"),
        hosts_file: Path = Path("/etc/hosts"),
        forward_dns: bool = False,
    ) -> None:
        self.state_dir = state_dir
        self.run_dir = run_dir
        self.netns = netns_path
        self.resolv_conf = resolv_conf
        self.hosts_file = hosts_file
        self.forward_dns = forward_dns
        self._publish = publish or _no_events
        self._lock = threading.RLock()
        for directory in (state_dir / "networks", state_dir / "sandboxes"):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.ipam = Ipam(state_dir)
        self.networks: dict[str, Network] = {}
        for path in sorted((state_dir / "networks").glob("*.json")):
            network = Network.from_json(_read_json(path))
            self.networks[network.id] = network
        self.sandboxes: dict[str, Sandbox] = {}
        for path in sorted((state_dir / "sandboxes").glob("*.json")):
            sandbox = Sandbox.from_json(_read_json(path))
            self.sandboxes[sandbox.container_id] = sandbox
        self.ports = PortPublisher(netns_path)
        self.ipv6 = self.ports.ipv6
        self.dns = dns.DnsServer(self._lookup, self._upstreams, netns_path)
        links.write_sysctl(netns_path, "net/ipv4/ip_forward", "1")
        self._ensure_predefined()
        self._restore()
        self._apply_firewall()

    # -- networks ----------------------------------------------------------------------

    def create(
        self,
        name: str,
        driver: str = "",
        *,
        options: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        ipam: Mapping[str, Any] | None = None,
        internal: bool = False,
        attachable: bool = False,
        ingress: bool = False,
        enable_ipv4: bool | None = None,
        enable_ipv6: bool | None = None,
        config_only: bool = False,
        config_from: str = "",
    ) -> Network:
        """Create a network as ``POST /networks/create`` does; publishes ``create``."""
        driver = driver or "bridge"
        with self._lock:
            if name in PREDEFINED:
                raise Forbidden(f"operation is not permitted on predefined {name} network ")
            if not name:
                raise InvalidRequest("network name is required")
            if any(n.name == name for n in self.networks.values()):
                raise Conflict(f"network with name {name} already exists")
            self._check_driver(driver)
            if enable_ipv6:
                raise InvalidRequest("IPv6 networks are not supported by this engine")
            if enable_ipv4 is False:
                raise InvalidRequest("IPv4-less networks are not supported by this engine")
            if config_only or config_from:
                raise InvalidRequest("config-only networks are not supported by this engine")
            if ingress:
                raise Forbidden(SWARM_ONLY)
            ipam = ipam or {}
            configs = [dict(c or {}) for c in ipam.get("Config") or []]
            _validate_ipam(configs)
            if len([c for c in configs if c.get("Subnet")]) > 1:
                raise InvalidRequest("this engine gives a network one IPv4 subnet at most")
            ipam_driver = ipam.get("Driver") or "default"
            if ipam_driver != "default":
                raise NotFound(f'plugin "{ipam_driver}" not found')
            network = Network(
                id=self._new_network_id(),
                name=name,
                driver=driver,
                created=now_rfc3339(),
                ipam_options=dict(ipam.get("Options") or {}),
                internal=internal,
                attachable=attachable,
                options=dict(options or {}),
                labels=dict(labels or {}),
            )
            config = configs[0] if configs else {}
            try:
                self._make_network(network, config)
            except BaseException:
                self._unmake_network(network)
                raise
            self._save_network(network)
            if network.driver == "bridge":
                self._apply_firewall()
        self._event(network, "create")
        return network

    def _check_driver(self, driver: str) -> None:
        if driver == "overlay":
            raise Forbidden(SWARM_ONLY)
        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver == "ipvlan":
            raise InvalidRequest(
                "the ipvlan driver is not available: this engine runs on a "
                "kernel without ipvlan support"
            )
        if driver not in DRIVERS:
            raise NotFound(f'plugin "{driver}" not found')

    def _make_network(self, network: Network, config: Mapping[str, str]) -> None:
        """The network's address pool and link: a bridge, or a macvlan parent."""
        if network.driver == "macvlan":
            self._check_macvlan_options(network)
        bridges = {n.interface for n in self.networks.values() if n.driver == "bridge"}
        avoid = [r for r in links.routes(self.netns) if not _routed_by(r, self.networks)]
        pool = self.ipam.request_pool(
            network.id,
            config.get("Subnet", ""),
            config.get("IPRange", ""),
            config.get("Gateway", ""),
            with_gateway=not (network.driver == "macvlan" and network.internal),
            avoid=avoid,
        )
        shown = {"Subnet": str(pool.subnet)}
        if pool.ip_range:
            shown["IPRange"] = str(pool.ip_range)
        if pool.gateway:
            shown["Gateway"] = str(pool.gateway)
        network.ipam_config = [shown]
        if network.driver == "bridge":
            interface = network.options.get(OPTION_BRIDGE_NAME) or f"br-{network.id[:12]}"
            if interface in bridges:
                raise Forbidden(f"bridge name {interface} is already in use by another network")
            if links.link_exists(self.netns, interface):
                raise Forbidden(f"an interface named {interface} already exists")
            network.interface = interface
            assert pool.gateway is not None
            links.ensure_bridge(
                self.netns, interface, str(pool.gateway), pool.subnet.prefixlen, network.mtu()
            )
        else:
            parent = network.options.get("parent", "")
            dummy = not parent
            network.interface = parent or f"dm-{network.id[:12]}"
            if dummy:
                network.internal = True  # Docker: a macvlan without a parent is internal
            network.made_parent = links.ensure_parent(self.netns, network.interface, dummy)

    def _check_macvlan_options(self, network: Network) -> None:
        mode = network.options.get("macvlan_mode", "") or "bridge"
        if mode not in links.MACVLAN_MODES:
            raise NetworkError(
                f"requested macvlan mode '{mode}' is not valid, 'bridge' mode is the macvlan "
                "driver default"
            )
        if network.options.get("parent") == "lo":
            raise NetworkError("loopback interface is not a valid macvlan parent link")

    def _unmake_network(self, network: Network) -> None:
        """Undo _make_network, whatever part of it was done."""
        if network.driver == "bridge" and network.interface:
            links.delete_link(self.netns, network.interface)
        elif network.made_parent:
            links.delete_link(self.netns, network.interface)
        self.ipam.release_pool(network.id)

    def get(self, reference: str) -> Network:
        """A network by full ID, name, or unique ID prefix (moby's findUniqueNetwork)."""
        with self._lock:
            networks = list(self.networks.values())
        for network in networks:
            if network.id == reference:
                return network
        by_name = [n for n in networks if n.name == reference]
        if len(by_name) == 1:
            return by_name[0]
        by_prefix = [n for n in networks if reference and n.id.startswith(reference)]
        if len(by_prefix) == 1:
            return by_prefix[0]
        if len(by_prefix) > 1:
            raise InvalidRequest(
                f"network {reference} is ambiguous ({len(by_prefix)} matches found based on "
                "ID prefix)"
            )
        raise NotFound(f"network {reference} not found")

    def list(self, filters: Mapping[str, Iterable[str]] | None = None) -> list[Network]:
        """Networks matching Docker's list filters, by name."""
        filters = {k: list(v) for k, v in (filters or {}).items()}
        for key in filters:
            if key not in _LIST_FILTERS:
                raise InvalidRequest(f"invalid filter '{key}'")
        with self._lock:
            networks = sorted(self.networks.values(), key=lambda n: n.name)
            used = {n.id for n in networks if self._live_endpoints(n.id)}
        found = [n for n in networks if _matches(n, filters)]
        dangling = filters.get("dangling")
        if dangling:
            if len(dangling) > 1:
                raise InvalidRequest('got more than one value for filter key "dangling"')
            if dangling[0] not in ("0", "1", "true", "false"):
                raise InvalidRequest(
                    'invalid value for filter \'dangling\', must be "true" (or "1"), or '
                    '"false" (or "0")'
                )
            only = dangling[0] in ("1", "true")
            found = [n for n in found if only != (n.predefined or n.id in used)]
        if "type" in filters:
            kept = []
            for kind in filters["type"]:
                if kind not in ("builtin", "custom"):
                    raise InvalidRequest(f"invalid filter: 'type'='{kind}'")
                kept += [n for n in found if n.predefined == (kind == "builtin")]
            found = kept
        return found

    def inspect(self, reference: str) -> dict[str, Any]:
        """``GET /networks/{id}``: the network with its containers' endpoints."""
        network = self.get(reference)
        return network.to_api(self.containers_of(network.id))

    def containers_of(self, network_id: str) -> dict[str, Any]:
        """The ``Containers`` of a network's inspect: each live endpoint on it."""
        with self._lock:
            attached = {}
            for sandbox, endpoint in self._live_endpoints(network_id):
                attached[sandbox.container_id] = {
                    "Name": sandbox.name,
                    "EndpointID": endpoint.endpoint_id,
                    "MacAddress": endpoint.mac,
                    "IPv4Address": f"{endpoint.address}/{endpoint.prefix_len}"
                    if endpoint.address
                    else "",
                    "IPv6Address": "",
                }
            return attached

    def remove(self, reference: str) -> Network:
        """``DELETE /networks/{id}``; publishes ``destroy``."""
        with self._lock:
            network = self.get(reference)
            if network.predefined:
                raise Forbidden(f"{network.name} is a pre-defined network and cannot be removed")
            active = self._live_endpoints(network.id)
            if active:
                listed = ", ".join(f'name:"{s.name}" id:"{e.endpoint_id[:12]}"' for s, e in active)
                raise Forbidden(
                    f"error while removing network: network {network.name} has active "
                    f"endpoints ({listed})"
                )
            self._unmake_network(network)
            del self.networks[network.id]
            (self.state_dir / "networks" / f"{network.id}.json").unlink(missing_ok=True)
            if network.driver == "bridge":
                self._apply_firewall()
        self._event(network, "destroy")
        return network

    def prune(
        self, labels: Mapping[str, Iterable[str]] | None = None, until: float | None = None
    ) -> list[str]:
        """Remove every unused user-defined network matching the ``label``/``label!``
        filters and made before ``until`` (Unix seconds); the names removed. Publishes
        ``destroy`` for each, then ``prune``."""
        filters = {k: list(v) for k, v in (labels or {}).items()}
        removed = []
        with self._lock:
            candidates = sorted(self.networks.values(), key=lambda n: n.name)
        for network in candidates:
            if network.predefined or not _labels_match(network.labels, filters):
                continue
            if until is not None and _created_seconds(network.created) > until:
                continue
            try:
                self.remove(network.id)
            except NetworkError:
                continue
            removed.append(network.name)
        self._publish("network", "prune", "", {"reclaimed": "0"})
        return removed

    # -- containers ---------------------------------------------------------------------

    def configure(
        self,
        container_id: str,
        name: str,
        config: Mapping[str, Any],
        host_config: Mapping[str, Any],
        networking_config: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a new container's networking (``container create``): its network mode,
        the networks of ``NetworkingConfig`` with their aliases and addresses, its ports and
        DNS settings. The networks must exist; nothing is made until prepare_sandbox."""
        mode = host_config.get("NetworkMode") or "default"
        mode = "bridge" if mode == "default" else mode
        requested = {
            "bridge" if name == "default" else name: settings  # "default" is the bridge
            for name, settings in ((networking_config or {}).get("EndpointsConfig") or {}).items()
        }
        with self._lock:
            sandbox = Sandbox(
                container_id=container_id,
                name=name.lstrip("/"),
                hostname=config.get("Hostname") or container_id[:12],
                domainname=config.get("Domainname") or "",
                mode=mode,
                exposed=sorted((config.get("ExposedPorts") or {}).keys()),
                port_bindings=dict(host_config.get("PortBindings") or {}),
                publish_all=bool(host_config.get("PublishAllPorts")),
                dns=list(host_config.get("Dns") or []),
                dns_search=list(host_config.get("DnsSearch") or []),
                dns_options=list(host_config.get("DnsOptions") or []),
                extra_hosts=list(host_config.get("ExtraHosts") or []),
            )
            port_requests(sandbox.exposed, sandbox.port_bindings, sandbox.publish_all)
            if mode.startswith("container:"):
                self._save_sandbox(sandbox)
                return
            primary = self.get(mode)
            endpoints = [(primary, requested.pop(mode, None) or requested.pop(primary.id, None))]
            for reference, settings in requested.items():
                network = self.get(reference)
                if network.id in (n.id for n, _ in endpoints):
                    continue
                if primary.name in ("host", "none") or network.name in ("host", "none"):
                    raise InvalidRequest(
                        SHARED_NETWORK if primary.name == "host" else NO_NETWORK_CONFLICT
                    )
                endpoints.append((network, settings))
            for network, settings in endpoints:
                sandbox.endpoints[network.id] = self._endpoint_request(network, settings)
            self._save_sandbox(sandbox)

    def _endpoint_request(self, network: Network, settings: Mapping[str, Any] | None) -> Endpoint:
        """An endpoint as asked for, checked as moby's validateEndpointSettings does."""
        settings = settings or {}
        ipam_config = settings.get("IPAMConfig") or {}
        endpoint = Endpoint(
            network_id=network.id,
            aliases=list(settings["Aliases"]) if settings.get("Aliases") else None,
            ipv4_address=ipam_config.get("IPv4Address") or "",
            ipv6_address=ipam_config.get("IPv6Address") or "",
            links=list(settings["Links"]) if settings.get("Links") else None,
            mac_request=settings.get("MacAddress") or "",
            driver_opts=dict(settings["DriverOpts"]) if settings.get("DriverOpts") else None,
            gw_priority=int(settings.get("GwPriority") or 0),
        )
        errors = []
        if not network.user_defined:
            if endpoint.ipv4_address or endpoint.ipv6_address:
                errors.append(IP_ON_PREDEFINED)
            if endpoint.aliases:
                errors.append(ALIAS_ON_PREDEFINED)
        if endpoint.ipv4_address:
            try:
                address = ipaddress.ip_address(endpoint.ipv4_address)
                if address.version != 4 or address.is_unspecified:
                    raise ValueError
            except ValueError:
                errors.append(f"invalid IPv4 address: {endpoint.ipv4_address}")
            else:
                if network.user_defined:
                    error = self._address_in_network(network, address)
                    if error:
                        errors.append(error)
        if endpoint.ipv6_address:
            errors.append(f"invalid IPv6 address: {endpoint.ipv6_address}")
        if endpoint.mac_request and not re.fullmatch(
            r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", endpoint.mac_request
        ):
            raise InvalidRequest(f"invalid MAC address {endpoint.mac_request}")
        if errors:
            raise InvalidRequest("invalid endpoint settings:\n" + _joined(errors))
        return endpoint

    def _address_in_network(self, network: Network, address: Any) -> str:
        pool = self.ipam.pool(network.id)
        if pool.predefined:
            return IP_WITHOUT_SUBNET
        ranges = [pool.subnet] + ([pool.ip_range] if pool.ip_range else [])
        if not any(address in r for r in ranges):
            return f"no configured subnet or ip-range contain the IP address {address}"
        return ""

    def prepare_sandbox(self, container_id: str) -> str:
        """Make a container's network before it starts: a namespace with an interface per
        network, its routes, published ports and DNS. Returns the namespace file for the
        OCI spec (the engine's own for ``host``, the other container's for
        ``container:ID``). On failure everything made is undone and the error raised."""
        with self._lock:
            sandbox = self._sandbox(container_id)
            if sandbox.live:
                return sandbox.key
            if sandbox.mode.startswith("container:"):
                return self._joined_key(sandbox)
            if sandbox.mode == "host":
                sandbox.sandbox_id = secrets.token_hex(32)
                sandbox.started = True
                sandbox.key = self._engine_namespace()
                for endpoint in sandbox.endpoints.values():
                    endpoint.endpoint_id = secrets.token_hex(32)
                self._save_sandbox(sandbox)
                return sandbox.key
            try:
                self._make_sandbox(sandbox)
            except BaseException:
                self._release(sandbox, events=False)
                raise
            sandbox.started = True
            self._save_sandbox(sandbox)
            attached = [self.networks[n] for n in sandbox.endpoints if n in self.networks]
        for network in attached:
            self._event(network, "connect", {"container": container_id})
        return sandbox.key

    def _engine_namespace(self) -> str:
        """The file naming the engine's own namespace, for host-mode containers to join."""
        return self.netns or f"/proc/{os.getpid()}/ns/net"

    def _joined_key(self, sandbox: Sandbox) -> str:
        other_id = sandbox.mode.partition(":")[2]
        other = self.sandboxes.get(other_id)
        if other is None or not other.live:
            raise Conflict(
                f"cannot join network namespace of a non running container: container "
                f"{other_id[:12]} is not running"
            )
        return other.key

    def _make_sandbox(self, sandbox: Sandbox) -> None:
        sandbox.sandbox_id = secrets.token_hex(32)
        path = self.run_dir / "netns" / sandbox.sandbox_id[:12]
        netns.create(path)
        sandbox.key = str(path)
        for network_id in list(sandbox.endpoints):
            network = self.networks.get(network_id)
            if network is None:
                raise NotFound(f"network {network_id} not found")
            if network.name == "none":
                sandbox.endpoints[network_id].endpoint_id = secrets.token_hex(32)
                continue
            self._attach(sandbox, network, sandbox.endpoints[network_id])
        self._route_default(sandbox)
        self._publish_ports(sandbox)
        if self._needs_dns(sandbox):
            self._serve_dns(sandbox)

    def release(self, container_id: str) -> None:
        """Undo prepare_sandbox when a container stops: interfaces, leases, ports, proxies,
        DNS and the namespace go; what was asked for stays, for the next start."""
        with self._lock:
            sandbox = self.sandboxes.get(container_id)
            if sandbox is None:
                return
            detached = self._release(sandbox, events=True)
        for network in detached:
            self._event(network, "disconnect", {"container": container_id})

    def _release(self, sandbox: Sandbox, events: bool) -> list[Network]:
        detached: list[Network] = []
        if not sandbox.live and not sandbox.key:
            return detached
        self.dns.stop_serving(sandbox.container_id)
        sandbox.dns_ports = []
        had_ports = bool(sandbox.ports)
        self._unpublish_ports(sandbox)
        own_namespace = sandbox.mode not in ("host",) and not sandbox.mode.startswith("container:")
        for endpoint in sandbox.endpoints.values():
            network = self.networks.get(endpoint.network_id)
            if endpoint.live and network is not None:
                detached.append(network)
            self._detach_endpoint(sandbox, endpoint, network)
        if own_namespace and sandbox.key:
            netns.remove(Path(sandbox.key))
            self._tidy_run_dir()
        sandbox.sandbox_id = sandbox.key = ""
        if had_ports:
            self._apply_firewall()
        self._save_sandbox(sandbox)
        return detached if events else []

    def forget(self, container_id: str) -> None:
        """A container is removed: release it and drop its record."""
        self.release(container_id)
        with self._lock:
            if self.sandboxes.pop(container_id, None) is not None:
                (self.state_dir / "sandboxes" / f"{container_id}.json").unlink(missing_ok=True)

    def rename(self, container_id: str, name: str) -> None:
        """The container's new name, for DNS and inspect."""
        with self._lock:
            sandbox = self._sandbox(container_id)
            sandbox.name = name.lstrip("/")
            self._save_sandbox(sandbox)

    def connect(
        self,
        reference: str,
        container_id: str,
        settings: Mapping[str, Any] | None = None,
    ) -> Network:
        """``docker network connect``: record the endpoint, and make it now if the container
        runs. Publishes ``connect`` for a running container."""
        with self._lock:
            network = self.get(reference)
            sandbox = self._sandbox(container_id)
            if sandbox.mode.startswith("container:"):
                raise InvalidRequest(SHARED_NETWORK)
            if network.name == "host" and sandbox.mode != "host":
                raise InvalidRequest(CONNECT_TO_HOST)
            if sandbox.mode in ("host", "none") or network.name == "none":
                raise InvalidRequest(
                    SHARED_NETWORK if sandbox.mode == "host" else NO_NETWORK_CONFLICT
                )
            if network.id in sandbox.endpoints:
                raise Forbidden(
                    f"endpoint with name {sandbox.name} already exists in network {network.name}"
                )
            endpoint = self._endpoint_request(network, settings)
            sandbox.endpoints[network.id] = endpoint
            if sandbox.live:
                try:
                    self._attach(sandbox, network, endpoint)
                    self._route_default(sandbox)
                    if self._needs_dns(sandbox) and not sandbox.dns_ports:
                        self._serve_dns(sandbox)
                except BaseException:
                    self._detach_endpoint(sandbox, endpoint, network)
                    del sandbox.endpoints[network.id]
                    raise
                self._refresh_files(sandbox)
            self._save_sandbox(sandbox)
            live = sandbox.live
        if live:
            self._event(network, "connect", {"container": container_id})
        return network

    def disconnect(self, reference: str, container_id: str, force: bool = False) -> Network:
        """``docker network disconnect``; publishes ``disconnect`` for a running container."""
        with self._lock:
            network = self.get(reference)
            sandbox = self._sandbox(container_id)
            if network.id not in sandbox.endpoints:
                raise NetworkError(
                    f"container {container_id} is not connected to network {network.name}"
                )
            if sandbox.mode == "host" and network.name == "host":
                raise InvalidRequest(DISCONNECT_FROM_HOST)
            endpoint = sandbox.endpoints.pop(network.id)
            live = endpoint.live
            if live:
                self._detach_endpoint(sandbox, endpoint, network)
                self._route_default(sandbox)
                if not self._needs_dns(sandbox) and sandbox.dns_ports:
                    self.dns.stop_serving(container_id)
                    sandbox.dns_ports = []
                self._refresh_files(sandbox)
            self._save_sandbox(sandbox)
        if live:
            self._event(network, "disconnect", {"container": container_id})
        return network

    def sandbox_key(self, container_id: str) -> str:
        """The namespace file of a running container ('' when not running)."""
        with self._lock:
            sandbox = self.sandboxes.get(container_id)
            return sandbox.key if sandbox is not None else ""

    def settings(self, container_id: str, legacy_aliases: bool = False) -> dict[str, Any]:
        """``NetworkSettings`` of ``GET /containers/{id}/json``, Docker 28's shape.
        ``legacy_aliases``: API < 1.45, whose Aliases also list the short ID and hostname."""
        with self._lock:
            sandbox = self._sandbox(container_id)
            networks: dict[str, Any] = {}
            for network_id, endpoint in sandbox.endpoints.items():
                network = self.networks.get(network_id)
                name = network.name if network is not None else network_id
                networks[name] = self._endpoint_settings(sandbox, network, endpoint, legacy_aliases)
            bridge = networks.get("bridge") or {}
            live = sandbox.live
            return {
                "Bridge": "",
                "SandboxID": sandbox.sandbox_id,
                "SandboxKey": sandbox.key if live else "",
                "Ports": ports_map(sandbox.exposed, sandbox.ports) if live else {},
                "HairpinMode": False,
                "LinkLocalIPv6Address": "",
                "LinkLocalIPv6PrefixLen": 0,
                "SecondaryIPAddresses": None,
                "SecondaryIPv6Addresses": None,
                "EndpointID": bridge.get("EndpointID", ""),
                "Gateway": bridge.get("Gateway", ""),
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "IPAddress": bridge.get("IPAddress", ""),
                "IPPrefixLen": bridge.get("IPPrefixLen", 0),
                "IPv6Gateway": "",
                "MacAddress": bridge.get("MacAddress", ""),
                "Networks": networks,
            }

    def _endpoint_settings(
        self,
        sandbox: Sandbox,
        network: Network | None,
        endpoint: Endpoint,
        legacy_aliases: bool,
    ) -> dict[str, Any]:
        user_defined = network is not None and network.user_defined
        aliases = list(endpoint.aliases) if endpoint.aliases else None
        if legacy_aliases and user_defined:
            aliases = list(dict.fromkeys([*(aliases or []), sandbox.short_id, sandbox.hostname]))
        ipam_config = None
        if endpoint.ipv4_address or endpoint.ipv6_address:
            ipam_config = {}
            if endpoint.ipv4_address:
                ipam_config["IPv4Address"] = endpoint.ipv4_address
            if endpoint.ipv6_address:
                ipam_config["IPv6Address"] = endpoint.ipv6_address
        return {
            "IPAMConfig": ipam_config,
            "Links": endpoint.links,
            "Aliases": aliases,
            "MacAddress": endpoint.mac,
            "DriverOpts": endpoint.driver_opts,
            "GwPriority": endpoint.gw_priority,
            "NetworkID": endpoint.network_id if sandbox.started else "",
            "EndpointID": endpoint.endpoint_id,
            "Gateway": endpoint.gateway,
            "IPAddress": endpoint.address,
            "IPPrefixLen": endpoint.prefix_len,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": self._dns_names(sandbox, endpoint)
            if user_defined and sandbox.started
            else None,
        }

    def write_files(self, container_id: str, directory: Path) -> dict[str, str]:
        """Write the container's /etc/hosts, /etc/hostname and /etc/resolv.conf into
        ``directory`` (call after prepare_sandbox, so they hold its addresses); returns
        ``{"/etc/hosts": path, ...}`` to bind-mount. A ``container:ID`` container gets the
        other container's files."""
        with self._lock:
            sandbox = self._sandbox(container_id)
            if sandbox.mode.startswith("container:"):
                other = self.sandboxes.get(sandbox.mode.partition(":")[2])
                if other is not None and other.files_dir:
                    return _file_paths(Path(other.files_dir))
            sandbox.files_dir = str(directory)
            paths = self._refresh_files(sandbox)
            self._save_sandbox(sandbox)
            return paths

    def _refresh_files(self, sandbox: Sandbox) -> dict[str, str]:
        if not sandbox.files_dir:
            return {}
        directory = Path(sandbox.files_dir)
        source = files.ResolvConf.load(self.resolv_conf)
        if sandbox.mode == "host":
            hosts = _read_text(self.hosts_file)
            hostname = os.uname().nodename
        else:
            addresses = [e.address for e in sandbox.endpoints.values() if e.address]
            extra = [_split_extra_host(h) for h in sandbox.extra_hosts]
            hosts = files.hosts_content(
                addresses, sandbox.hostname, sandbox.domainname, extra, ipv6=self.ipv6
            )
            hostname = sandbox.hostname
        resolv = files.resolv_conf_content(
            source,
            str(self.resolv_conf),
            internal=self._needs_dns(sandbox),
            dns=sandbox.dns,
            dns_search=sandbox.dns_search,
            dns_options=sandbox.dns_options,
        )
        return files.write_network_files(
            directory, hosts=hosts, hostname=hostname, resolv_conf=resolv
        )

    def close(self) -> None:
        """Stop the embedded DNS server (the engine is stopping; containers keep running)."""
        self.dns.close()

    # -- endpoints ----------------------------------------------------------------------

    def _attach(self, sandbox: Sandbox, network: Network, endpoint: Endpoint) -> None:
        """Make one endpoint: lease an address, make the interface in the container."""
        assert sandbox.key
        pool = self.ipam.pool(network.id)
        endpoint.endpoint_id = secrets.token_hex(32)
        address = self.ipam.allocate(network.id, endpoint.ipv4_address)
        endpoint.address = str(address)
        endpoint.prefix_len = pool.subnet.prefixlen
        endpoint.gateway = str(pool.gateway) if pool.gateway else ""
        endpoint.mac = endpoint.mac_request or links.mac_from_ip(endpoint.address)
        endpoint.interface = _free_interface(sandbox)
        if network.driver == "bridge":
            endpoint.host_interface = "veth" + secrets.token_hex(4)[:7]
            links.add_veth(
                self.netns,
                endpoint.host_interface,
                network.interface,
                sandbox.key,
                endpoint.interface,
                endpoint.mac,
                network.mtu(),
            )
        else:
            mode = network.options.get("macvlan_mode", "") or "bridge"
            links.add_macvlan(
                self.netns, network.interface, mode, sandbox.key, endpoint.interface, endpoint.mac
            )
        links.configure_interface(
            sandbox.key, endpoint.interface, endpoint.address, endpoint.prefix_len, None
        )

    def _detach_endpoint(
        self, sandbox: Sandbox, endpoint: Endpoint, network: Network | None
    ) -> None:
        """Undo _attach, whatever part of it was done."""
        if endpoint.host_interface:
            links.delete_link(self.netns, endpoint.host_interface)
        elif endpoint.interface and sandbox.key and netns.is_namespace(Path(sandbox.key)):
            links.delete_link(sandbox.key, endpoint.interface)
        if endpoint.address and network is not None:
            self.ipam.release(network.id, endpoint.address)
        endpoint.clear_live()

    def _gateway_endpoint(self, sandbox: Sandbox) -> Endpoint | None:
        """The endpoint the default route goes through: the highest GwPriority, then a
        network that isn't internal, then the first joined."""
        ranked = []
        for order, endpoint in enumerate(sandbox.endpoints.values()):
            network = self.networks.get(endpoint.network_id)
            if not endpoint.live or network is None or not endpoint.gateway:
                continue
            if network.internal:
                continue
            ranked.append((-endpoint.gw_priority, order, endpoint))
        return min(ranked, key=lambda item: item[:2])[2] if ranked else None

    def _route_default(self, sandbox: Sandbox) -> None:
        if not sandbox.key or sandbox.mode == "host":
            return
        gateway = self._gateway_endpoint(sandbox)
        links.set_default_route(sandbox.key, gateway.gateway if gateway else None)

    def _needs_dns(self, sandbox: Sandbox) -> bool:
        """Whether the embedded DNS server serves the container: it is on a user network."""
        return any(
            (n := self.networks.get(e.network_id)) is not None and n.user_defined
            for e in sandbox.endpoints.values()
        )

    def _serve_dns(self, sandbox: Sandbox) -> None:
        udp_port, tcp_port = self.dns.serve(sandbox.container_id, sandbox.key)
        sandbox.dns_ports = [udp_port, tcp_port]
        firewall.apply(sandbox.key, firewall.dns_script(udp_port, tcp_port))

    # -- published ports ----------------------------------------------------------------

    def _publish_ports(self, sandbox: Sandbox) -> None:
        requests = port_requests(sandbox.exposed, sandbox.port_bindings, sandbox.publish_all)
        gateway = self._gateway_endpoint(sandbox)
        if not requests or gateway is None:
            return
        network = self.networks[gateway.network_id]
        if network.driver != "bridge":
            return
        default_ip = network.options.get(OPTION_HOST_BINDING, "0.0.0.0")
        try:
            sandbox.ports = self.ports.publish(
                sandbox.container_id, requests, gateway.address, default_ip
            )
            self._apply_firewall()
        except NetworkError as error:
            raise NetworkError(
                f"driver failed programming external connectivity on endpoint {sandbox.name} "
                f"({gateway.endpoint_id}): {error.message}"
            ) from None

    def _unpublish_ports(self, sandbox: Sandbox) -> None:
        self.ports.unpublish(sandbox.container_id, sandbox.ports)
        sandbox.ports = []

    # -- the engine's firewall ----------------------------------------------------------

    def _apply_firewall(self) -> None:
        bridges = []
        for network in sorted(self.networks.values(), key=lambda n: n.interface):
            if network.driver != "bridge" or not network.ipam_config:
                continue
            bridges.append(
                firewall.BridgeRules(
                    interface=network.interface,
                    subnet=network.ipam_config[0]["Subnet"],
                    internal=network.internal,
                    masquerade=network.option_true(OPTION_MASQUERADE),
                    icc=network.option_true(OPTION_ICC),
                )
            )
        publications = [
            firewall.Publication(
                p.protocol, p.host_ip, p.host_port, p.container_ip, p.container_port
            )
            for s in self.sandboxes.values()
            for p in s.ports
            if ":" not in p.host_ip
        ]
        firewall.apply(self.netns, firewall.engine_script(bridges, publications))

    def teardown(self) -> None:
        """Remove everything this engine made in its namespace: every container's network,
        every user-defined network's link, the predefined bridge and the rules. Records of
        user-defined networks stay, so they come back at the next start."""
        with self._lock:
            for sandbox in list(self.sandboxes.values()):
                self._release(sandbox, events=False)
            for network in self.networks.values():
                if network.driver == "bridge" and network.interface:
                    links.delete_link(self.netns, network.interface)
                elif network.made_parent:
                    links.delete_link(self.netns, network.interface)
            firewall.remove_table(self.netns)
        self.dns.close()

    # -- DNS ----------------------------------------------------------------------------

    def _dns_names(self, sandbox: Sandbox, endpoint: Endpoint) -> list[str]:
        """moby's buildEndpointDNSNames: name, aliases, short ID, hostname."""
        names = [sandbox.name, *(endpoint.aliases or []), sandbox.short_id, sandbox.hostname]
        return list(dict.fromkeys(n for n in names if n))

    def _lookup(self, container_id: str, name: str, qtype: int) -> dns.Answer | None:
        with self._lock:
            asking = self.sandboxes.get(container_id)
            if asking is None:
                return None
            shared = [
                self.networks[e.network_id]
                for e in asking.endpoints.values()
                if e.live
                and e.network_id in self.networks
                and self.networks[e.network_id].user_defined
            ]
            if qtype == dns.TYPE_PTR:
                return self._lookup_address(shared, dns.ptr_address(name))
            found: list[str] = []
            for network in shared:
                for sandbox, endpoint in self._live_endpoints(network.id):
                    names = {n.lower() for n in self._dns_names(sandbox, endpoint)}
                    qualified = {f"{n}.{network.name.lower()}" for n in names}
                    if name in names or name in qualified:
                        found.append(endpoint.address)
        if not found:
            return None
        return dns.Answer(list(dict.fromkeys(found)) if qtype == dns.TYPE_A else [])

    def _lookup_address(self, shared: list[Network], address: str | None) -> dns.Answer | None:
        if address is None:
            return None
        for network in shared:
            for sandbox, endpoint in self._live_endpoints(network.id):
                if endpoint.address == address:
                    first = self._dns_names(sandbox, endpoint)[0]
                    return dns.Answer([f"{first}.{network.name}"])
        return None

    def _upstreams(self) -> list[str]:
        if not self.forward_dns:
            return []
        return [n for n in files.ResolvConf.load(self.resolv_conf).nameservers if ":" not in n]

    # -- records ------------------------------------------------------------------------

    def _sandbox(self, container_id: str) -> Sandbox:
        sandbox = self.sandboxes.get(container_id)
        if sandbox is None:
            raise NotFound(f"no network configuration for container {container_id}")
        return sandbox

    def _live_endpoints(self, network_id: str) -> list[tuple[Sandbox, Endpoint]]:
        found = []
        for sandbox in self.sandboxes.values():
            endpoint = sandbox.endpoints.get(network_id)
            if endpoint is not None and endpoint.live:
                found.append((sandbox, endpoint))
        return found

    def _new_network_id(self) -> str:
        while True:
            candidate = secrets.token_hex(32)
            if candidate[:12].isdigit():
                continue  # as moby: a short ID must not read as a number
            if not any(n.id.startswith(candidate[:12]) for n in self.networks.values()):
                return candidate

    def _save_network(self, network: Network) -> None:
        self.networks[network.id] = network
        path = self.state_dir / "networks" / f"{network.id}.json"
        write_atomic(path, _dumps(network.to_json()))

    def _save_sandbox(self, sandbox: Sandbox) -> None:
        self.sandboxes[sandbox.container_id] = sandbox
        path = self.state_dir / "sandboxes" / f"{sandbox.container_id}.json"
        write_atomic(path, _dumps(sandbox.to_json()))

    def _event(self, network: Network, action: str, extra: Mapping[str, str] | None = None) -> None:
        attributes = dict(extra or {})
        attributes.update({"name": network.name, "type": network.driver})
        self._publish("network", action, network.id, attributes)

    # -- start-up -----------------------------------------------------------------------

    def _ensure_predefined(self) -> None:
        """The bridge, host and none networks, made once and kept."""
        present = {n.name: n for n in self.networks.values()}
        for name, driver in (("none", "null"), ("host", "host"), ("bridge", "bridge")):
            if name in present:
                continue
            network = Network(
                id=self._new_network_id(), name=name, driver=driver, created=now_rfc3339()
            )
            if name == "bridge":
                network.options = dict(DEFAULT_BRIDGE_OPTIONS)
                network.interface = DEFAULT_BRIDGE_OPTIONS[OPTION_BRIDGE_NAME]
                gateway = next(DEFAULT_BRIDGE_SUBNET.hosts())
                self.ipam.restore_pool(
                    network.id, Pool(DEFAULT_BRIDGE_SUBNET, gateway=gateway, predefined=True)
                )
                network.ipam_config = [
                    {"Subnet": str(DEFAULT_BRIDGE_SUBNET), "Gateway": str(gateway)}
                ]
            self._save_network(network)

    def _restore(self) -> None:
        """After a restart: bridges back in place, and each running container's ports,
        proxies and DNS taken up again; records of containers whose namespace has gone are
        released."""
        for network in self.networks.values():
            if network.driver == "bridge":
                pool = self.ipam.pool(network.id)
                assert pool.gateway is not None
                links.ensure_bridge(
                    self.netns,
                    network.interface,
                    str(pool.gateway),
                    pool.subnet.prefixlen,
                    network.mtu(),
                )
            elif network.made_parent:
                links.ensure_parent(self.netns, network.interface, "." not in network.interface)
        keys = set()
        for sandbox in list(self.sandboxes.values()):
            if not sandbox.live:
                continue
            own = sandbox.mode != "host" and not sandbox.mode.startswith("container:")
            if own and not netns.is_namespace(Path(sandbox.key)):
                log.info("the namespace of %s has gone: releasing it", sandbox.container_id)
                for endpoint in sandbox.endpoints.values():
                    self._detach_endpoint(sandbox, endpoint, self.networks.get(endpoint.network_id))
                sandbox.ports = []
                sandbox.sandbox_id = sandbox.key = ""
                sandbox.dns_ports = []
                self._save_sandbox(sandbox)
                continue
            if sandbox.mode == "host":
                sandbox.key = self._engine_namespace()  # the previous engine's /proc path
            keys.add(sandbox.key)
            self.ports.restore(sandbox.container_id, sandbox.ports)
            if sandbox.dns_ports and own:
                self._serve_dns(sandbox)
            self._save_sandbox(sandbox)
        if (self.run_dir / "netns").is_dir():
            for stale in (self.run_dir / "netns").iterdir():
                if str(stale) not in keys:
                    netns.remove(stale)
        self._tidy_run_dir()

    def _tidy_run_dir(self) -> None:
        """Remove the namespace directories once no container has a namespace file there."""
        for directory in (self.run_dir / "netns", self.run_dir):
            with contextlib.suppress(OSError):
                directory.rmdir()


def _validate_ipam(configs: list[dict[str, str]]) -> None:
    """moby's ValidateIPAM for IPv4 configs, with its messages."""
    errors: list[str] = []
    for config in configs:
        subnet_text = config.get("Subnet", "")
        try:
            subnet = ipaddress.ip_network(subnet_text, strict=False)
            if "/" not in subnet_text:
                raise ValueError
        except ValueError:
            errors.append(f"invalid subnet {subnet_text}: invalid CIDR block notation")
            continue
        if subnet.version == 6:
            errors.append(f"invalid subnet {subnet_text}: IPv6 is not supported by this engine")
            continue
        given = ipaddress.ip_interface(subnet_text)
        if given.ip != subnet.network_address:
            errors.append(f"invalid subnet {subnet_text}: it should be {subnet}")
        ip_range = config.get("IPRange", "")
        if ip_range:
            errors += _range_errors(ip_range, subnet)
        gateway = config.get("Gateway", "")
        if gateway:
            error = _address_error(gateway, subnet)
            if error:
                errors.append(f"invalid gateway {gateway}: {error}")
        for name, auxiliary in (config.get("AuxiliaryAddresses") or {}).items():
            error = _address_error(auxiliary, subnet)
            if error:
                errors.append(f"invalid auxiliary address {name}: {error}")
    if errors:
        raise InvalidRequest("invalid network config:\n" + _joined(errors))


def _range_errors(ip_range: str, subnet: Any) -> list[str]:
    try:
        prefix = ipaddress.ip_network(ip_range, strict=False)
        if "/" not in ip_range:
            raise ValueError
    except ValueError:
        return [f"invalid ip-range {ip_range}: invalid CIDR block notation"]
    if prefix.version != subnet.version:
        return [f"invalid ip-range {ip_range}: parent subnet is an IPv4 block"]
    errors = []
    if prefix.prefixlen < subnet.prefixlen:
        errors.append(
            f"invalid ip-range {ip_range}: CIDR block is bigger than its parent subnet {subnet}"
        )
    if ipaddress.ip_interface(ip_range).ip != prefix.network_address:
        errors.append(f"invalid ip-range {ip_range}: it should be {prefix}")
    if not subnet.overlaps(prefix):
        errors.append(
            f"invalid ip-range {ip_range}: parent subnet {subnet} doesn't contain ip-range"
        )
    return errors


def _address_error(text: str, subnet: Any) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return "invalid address"
    if address.version != subnet.version:
        return "parent subnet is an IPv4 block"
    if address not in subnet:
        return f"parent subnet {subnet} doesn't contain this address"
    return ""


def _routed_by(route: ipaddress.IPv4Network, networks: Mapping[str, Network]) -> bool:
    """Whether a route is one of our own networks' (a bridge's subnet)."""
    return any(
        n.ipam_config and ipaddress.ip_network(n.ipam_config[0]["Subnet"]) == route
        for n in networks.values()
    )


def _matches(network: Network, filters: Mapping[str, list[str]]) -> bool:
    if "driver" in filters and network.driver not in filters["driver"]:
        return False
    if "scope" in filters and "local" not in filters["scope"]:
        return False
    if "name" in filters and not _regex_match(filters["name"], network.name):
        return False
    if "id" in filters and not _regex_match(filters["id"], network.id):
        return False
    return _labels_match(network.labels, {"label": filters.get("label", [])})


def _regex_match(patterns: Iterable[str], text: str) -> bool:
    """moby's filters.Args.Match: an exact value, or a regular expression found in text."""
    for pattern in patterns:
        if pattern == text:
            return True
        try:
            if re.search(pattern, text):
                return True
        except re.error:
            continue
    return False


def _labels_match(labels: Mapping[str, str], filters: Mapping[str, list[str]]) -> bool:
    for wanted in filters.get("label", []):
        key, has_value, value = wanted.partition("=")
        if key not in labels or (has_value and labels[key] != value):
            return False
    for unwanted in filters.get("label!", []):
        key, has_value, value = unwanted.partition("=")
        if key in labels and (not has_value or labels[key] == value):
            return False
    return True


def _created_seconds(created: str) -> float:
    main, _, fraction = created.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(main).replace(tzinfo=UTC).timestamp()
    return seconds + float(f"0.{fraction or 0}")


def _free_interface(sandbox: Sandbox) -> str:
    taken = {e.interface for e in sandbox.endpoints.values() if e.interface}
    index = 0
    while f"eth{index}" in taken:
        index += 1
    return f"eth{index}"


def _split_extra_host(entry: str) -> tuple[str, str]:
    """``name:ip`` (or ``name=ip``) of --add-host."""
    for separator in ("=", ":"):
        name, found, address = entry.partition(separator)
        if found:
            return name, address.strip("[]")
    raise InvalidRequest(f"invalid extra host: {entry}")


def _file_paths(directory: Path) -> dict[str, str]:
    return {
        "/etc/hosts": str(directory / "hosts"),
        "/etc/hostname": str(directory / "hostname"),
        "/etc/resolv.conf": str(directory / "resolv.conf"),
    }


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
