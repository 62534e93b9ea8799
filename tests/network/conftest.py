"""Fixtures for the network package's tests: a network namespace of the test's own standing in
for the engine's (the node's), a NetworkManager working in it, and "containers" that are
just network sandboxes, with busybox run inside them through nsenter.

Nothing here touches the host's namespace: every link, rule and proxy is made inside the
test's namespace, and that namespace ends with the test."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from simulator.network import NetworkManager, links, netns
from simulator.network import firewall as nft
from tests.engine.conftest import (  # noqa: F401 - the engine fixtures, for test_api
    docker,
    docker_cli,
    engine,
    hub,
    start_engine,
)
from tests.support.netns import NetworkNamespace

BUSYBOX = "/bin/busybox"


@dataclass
class Box:
    """A container's network sandbox, for a test."""

    id: str
    name: str
    key: str
    files: dict[str, str]
    manager: NetworkManager

    def run(self, script: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """A busybox shell script run in the sandbox's network namespace."""
        return subprocess.run(
            ["nsenter", f"--net={self.key}", BUSYBOX, "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, script: str) -> str:
        result = self.run(script)
        assert result.returncode == 0, f"{script!r} failed: {result.stdout}{result.stderr}"
        return result.stdout

    @property
    def settings(self) -> dict[str, Any]:
        return self.manager.settings(self.id)

    def address(self, network: str) -> str:
        return self.settings["Networks"][network]["IPAddress"]


@dataclass
class Lab:
    """The engine's namespace, its network manager, and what a test started in it."""

    ns: NetworkNamespace
    root: Path
    manager: NetworkManager
    events: list[tuple[str, str, str, dict[str, str]]]
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    hosts: list[NetworkNamespace] = field(default_factory=list)
    count: int = 0

    def container(
        self,
        name: str,
        network: str = "bridge",
        *,
        ports: dict[str, Any] | None = None,
        exposed: list[str] | None = None,
        publish_all: bool = False,
        aliases: list[str] | None = None,
        ip: str = "",
        extra_networks: dict[str, Any] | None = None,
        hostname: str = "",
        start: bool = True,
    ) -> Box:
        """Configure a container as ``docker create`` would, and start its network."""
        self.count += 1
        container_id = f"{self.count:04x}" + "c0ffee" * 10
        settings: dict[str, Any] = {}
        if aliases:
            settings["Aliases"] = aliases
        if ip:
            settings["IPAMConfig"] = {"IPv4Address": ip}
        endpoints = {network: settings} if settings else {}
        endpoints.update(extra_networks or {})
        self.manager.configure(
            container_id,
            name,
            {"Hostname": hostname, "ExposedPorts": {p: {} for p in exposed or []}},
            {"NetworkMode": network, "PortBindings": ports or {}, "PublishAllPorts": publish_all},
            {"EndpointsConfig": endpoints},
        )
        box = Box(container_id, name, "", {}, self.manager)
        if start:
            self.start(box)
        return box

    def start(self, box: Box) -> None:
        box.key = self.manager.prepare_sandbox(box.id)
        box.files = self.manager.write_files(box.id, self.root / "containers" / box.id)

    def serve(self, box: Box, argv: list[str]) -> subprocess.Popen[bytes]:
        """A long-running busybox applet in a sandbox (a server), stopped after the test."""
        process = subprocess.Popen(
            ["nsenter", f"--net={box.key}", BUSYBOX, *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.servers.append(process)
        return process

    def http_server(self, box: Box, port: int = 80, text: str = "") -> None:
        """busybox httpd in the sandbox, serving index.html saying ``text`` (or the name)."""
        site = self.root / "sites" / box.name
        site.mkdir(parents=True, exist_ok=True)
        (site / "index.html").write_text(text or f"hello from {box.name}\n")
        self.serve(box, ["httpd", "-f", "-p", str(port), "-h", str(site)])
        wait_until(
            lambda: box.run(f"wget -q -O /dev/null http://127.0.0.1:{port}/").returncode == 0
        )

    def outside(self) -> NetworkNamespace:
        """Another host on the engine's link: a namespace joined to the engine's by a veth
        pair, 10.99.0.2/24 there and 10.99.0.1/24 on the engine's side, routing the default
        bridge through the engine. Ended with the lab."""
        host = NetworkNamespace()
        self.hosts.append(host)

        def engine_side() -> None:
            fd = os.open(host.path, os.O_RDONLY)
            try:
                with IPRoute() as ipr:
                    ipr.link(
                        "add",
                        ifname="uplink",
                        kind="veth",
                        peer={"ifname": "eth0", "net_ns_fd": fd},
                    )
                    index = ipr.link_lookup(ifname="uplink")[0]
                    ipr.addr("add", index=index, address="10.99.0.1", prefixlen=24)
                    ipr.link("set", index=index, state="up")
            finally:
                os.close(fd)

        def far_side() -> None:
            with IPRoute() as ipr:
                index = ipr.link_lookup(ifname="eth0")[0]
                ipr.addr("add", index=index, address="10.99.0.2", prefixlen=24)
                ipr.link("set", index=index, state="up")
                ipr.route("add", dst="0.0.0.0/0", gateway="10.99.0.1")

        netns.run_in(self.ns.path, engine_side)
        netns.run_in(host.path, far_side)
        return host

    def engine(self, script: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """A busybox shell script run in the engine's namespace."""
        return run_in_namespace(self.ns, script, timeout)

    def reopen(self, **options: Any) -> NetworkManager:
        """A new manager over the same records, as after an engine restart."""
        self.manager.close()
        self.manager = make_manager(self, **options)
        return self.manager

    def counts(self) -> dict[str, int]:
        """What the engine holds in its namespace: links, rules, namespace files, leases,
        proxies, DNS listeners."""
        names = links.link_names(self.ns.path)
        return {
            "veths": sum(1 for n in names if n.startswith("veth")),
            "bridges": sum(1 for n in names if n.startswith(("br-", "docker0"))),
            "links": len(names),
            "rules": nft.rule_count(self.ns.path),
            "netns files": len(list((self.root / "run").rglob("*"))),
            "netns mounts": _mounts_under(self.root / "run"),
            "leases": self.manager.ipam.lease_count(),
            "host ports": self.manager.ports.count(),
            "proxies": _proxies(self.manager),
            "dns": len(self.manager.dns.serving()),
        }


def run_in_namespace(
    ns: NetworkNamespace, script: str, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """A busybox shell script run in a namespace."""
    return subprocess.run(
        ns.command([BUSYBOX, "sh", "-c", script]), capture_output=True, text=True, timeout=timeout
    )


def _mounts_under(path: Path) -> int:
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as mounts:
        return sum(1 for line in mounts if line.split()[4].startswith(prefix))


def _proxies(manager: NetworkManager) -> int:
    """Userland proxies running in the manager's namespace."""
    assert manager.netns is not None
    inode = os.stat(manager.netns).st_ino
    found = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes()
            if (
                b"simulator/network/proxy.py" in cmdline
                and os.stat(entry / "ns" / "net").st_ino == inode
            ):
                found += 1
    return found


def make_manager(lab: Lab, **options: Any) -> NetworkManager:
    return NetworkManager(
        lab.root / "state",
        lab.root / "run",
        netns_path=lab.ns.path,
        publish=lambda kind, action, actor, attributes: lab.events.append(
            (kind, action, actor, dict(attributes))
        ),
        resolv_conf=options.pop("resolv_conf", lab.root / "resolv.conf"),
        hosts_file=lab.root / "hosts",
        **options,
    )


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        time.sleep(0.05)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """An engine namespace with a NetworkManager in it. Afterwards every server is stopped,
    every sandbox released, the engine's links and rules removed and the namespace ended."""
    for tool in ("nsenter", "nft", BUSYBOX):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: the network tests need it", pytrace=False)
    root = tmp_path / "lab"
    root.mkdir()
    (root / "resolv.conf").write_text("nameserver 127.0.0.53\nsearch example.test\n")
    (root / "hosts").write_text("127.0.0.1\tlocalhost\n")
    ns = NetworkNamespace()
    lab = Lab(ns=ns, root=root, manager=None, events=[])  # type: ignore[arg-type]
    try:
        lab.manager = make_manager(lab)
        yield lab
    finally:
        for server in lab.servers:
            server.kill()
            server.wait()
        if lab.manager is not None:
            with contextlib.suppress(Exception):
                lab.manager.teardown()
        ns.close()
        for host in lab.hosts:
            host.close()
        for leftover in (root / "run" / "netns").glob("*"):
            netns.remove(leftover)
