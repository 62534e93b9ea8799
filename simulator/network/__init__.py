"""Networking for the engine: IPAM, the bridge and macvlan drivers, embedded DNS, published
ports and isolation, inside the engine's network namespace (the node's).

Modules: ``ipam`` (address pools), ``links`` (netlink through pyroute2), ``firewall``
(nftables), ``dns`` (the 127.0.0.11 server), ``ports`` and ``proxy`` (published ports and
the userland proxy), ``files`` (/etc/hosts, /etc/hostname, /etc/resolv.conf), ``netns``
(running work in a namespace, making one), ``model`` (the records), and ``manager``, which
composes them. The engine talks to the manager only.

Using it from the engine
========================

One manager per engine, made when the engine starts, by ``engine_networks(data_root,
engine.events.publish)``: ``NetworkManager(data_root / "network", run_dir_for(data_root),
publish=...)`` (records under the data root; the containers' namespace files on tmpfs;
network events to the engine's bus). An engine started in the host's own network namespace
gets None and no networking: it must never make bridges or rules on the host.

The engine's API serves networks with ``create``, ``get``, ``list``, ``inspect``,
``remove``, ``prune``, ``connect`` and ``disconnect`` (simulator/engine/api/networks.py).

A container's life, as the container manager drives it:

- ``container create``: ``networks.configure(id, name, config, host_config,
  networking_config)`` checks the networks exist and records the mode (a network name,
  ``host``, ``none``, ``container:<full ID>``), aliases, fixed addresses, ports asked for
  and DNS settings. Docker's errors (404 ``network x not found``, 400 ``invalid endpoint
  settings``) come out of it; nothing is made yet.
- ``start``: ``key = networks.prepare_sandbox(id)`` makes the network namespace, an
  interface per network with its address and default route, the published ports (with
  ``driver failed programming external connectivity ...: port is already allocated`` if
  taken) and the DNS server; on failure everything made is undone, so the container stays
  Created with nothing held. ``key`` goes into the OCI spec:
  ``build_spec(..., namespace_paths={"network": key})``. Then
  ``paths = networks.write_files(id, container_directory)`` gives the files to mount:
  ``build_spec(..., hosts_path=paths["/etc/hosts"], hostname_path=paths["/etc/hostname"],
  resolv_conf_path=paths["/etc/resolv.conf"])``.
- the container stops or exits: ``networks.release(id)`` gives back the addresses, ports,
  proxies, interfaces and the namespace; what was asked for stays for the next start.
- ``rm``: ``networks.forget(id)``; ``rename``: ``networks.rename(id, name)``.
- inspect: ``networks.settings(id)`` is ``NetworkSettings`` (``legacy_aliases=True`` for
  API < 1.45); ``docker ps`` and ``docker port`` read its ``Ports``.
- ``--network container:NAME``: the engine resolves NAME to an ID for ``configure``; its
  ``prepare_sandbox`` returns the other container's namespace file.

Everything that runs in the engine's namespace (bridges, veths, rules, proxies) is put
there explicitly: ``netns_path`` names it, or None for the engine process's own namespace;
tests give a namespace of their own.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from simulator.network import netns
from simulator.network.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NetworkError,
    NotFound,
    PortAllocated,
    Unavailable,
)
from simulator.network.manager import NetworkManager, Publish
from simulator.network.model import Endpoint, Network, Sandbox

RUN_ROOT = Path("/run/slipway/network")
log = logging.getLogger("simulator.network")


def engine_networks(data_root: Path, publish: Publish) -> NetworkManager | None:
    """The network manager of an engine with this data root, working in the engine's own
    namespace (the node's); None when that is the host's initial namespace, where the
    engine must not make bridges, rules or sysctl changes."""
    if netns.in_initial_namespace():
        log.warning(
            "networking is off: this engine runs in the host's own network namespace; "
            "run it in a node's (or a namespace of its own) to have networks"
        )
        return None
    return NetworkManager(data_root / "network", run_dir_for(data_root), publish=publish)


def run_dir_for(data_root: Path) -> Path:
    """Where an engine's network namespace files live: on tmpfs, one directory per data
    root, so that two engines on one host never share one."""
    digest = hashlib.sha256(str(data_root.absolute()).encode()).hexdigest()[:12]
    return RUN_ROOT / digest


__all__ = [
    "Conflict",
    "Endpoint",
    "Forbidden",
    "InvalidRequest",
    "Network",
    "NetworkError",
    "NetworkManager",
    "NotFound",
    "PortAllocated",
    "Sandbox",
    "Unavailable",
    "engine_networks",
    "run_dir_for",
]
