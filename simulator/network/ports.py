"""Published ports: what a container asks for (``-p``, ``-P``), the host ports this engine has
handed out, the sockets that reserve them and the userland proxies that serve them."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from simulator.network import netns
from simulator.network.errors import InvalidRequest, NetworkError, PortAllocated

PROXY_SCRIPT = Path(__file__).with_name("proxy.py")
DEFAULT_EPHEMERAL = (32768, 60999)
PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True)
class PortRequest:
    """One binding asked for: the container's port, and the host address and ports (0, 0 for
    a port of the engine's choosing) to publish it on."""

    container_port: int
    protocol: str
    host_ip: str  # "" for every address (0.0.0.0 and [::])
    host_port_start: int
    host_port_end: int


@dataclass
class PortBinding:
    """One published port in place: the host side, the container side, and the proxy."""

    protocol: str
    container_port: int
    host_ip: str
    host_port: int
    container_ip: str
    proxy_pid: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> PortBinding:
        return cls(**value)

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.host_ip else socket.AF_INET

    def describe(self) -> str:
        """As moby prints a binding: ``0.0.0.0:8080:172.17.0.2:80/tcp``."""
        return (
            f"{self.host_ip}:{self.host_port}:{self.container_ip}:"
            f"{self.container_port}/{self.protocol}"
        )


def parse_port_key(key: str) -> tuple[int, str]:
    """``80/tcp`` (or ``80``) as (80, "tcp")."""
    number, _, protocol = key.partition("/")
    protocol = (protocol or "tcp").lower()
    if protocol not in PROTOCOLS:
        raise InvalidRequest(f"invalid proto: {protocol}")
    if not number.isdigit() or not 0 < int(number) < 65536:
        raise InvalidRequest(f"invalid containerPort: {number}")
    return int(number), protocol


def _host_ports(text: str) -> tuple[int, int]:
    if not text:
        return 0, 0
    first, _, last = text.partition("-")
    try:
        start, end = int(first), int(last or first)
    except ValueError:
        raise InvalidRequest(f"invalid hostPort: {text}") from None
    if not (0 < start <= end < 65536):
        raise InvalidRequest(f"invalid hostPort: {text}")
    return start, end


def port_requests(
    exposed: Iterable[str],
    bindings: Mapping[str, Any] | None,
    publish_all: bool,
) -> list[PortRequest]:
    """The bindings a container asks for: each of ``PortBindings``, and with ``-P`` every
    exposed port that has none, on a port of the engine's choosing."""
    requests: list[PortRequest] = []
    bound: set[str] = set()
    for key, entries in sorted((bindings or {}).items()):
        port, protocol = parse_port_key(key)
        bound.add(f"{port}/{protocol}")
        for entry in entries or [{}]:
            host_ip = (entry or {}).get("HostIp") or ""
            start, end = _host_ports((entry or {}).get("HostPort") or "")
            requests.append(PortRequest(port, protocol, host_ip, start, end))
    if publish_all:
        for key in sorted(exposed):
            port, protocol = parse_port_key(key)
            if f"{port}/{protocol}" not in bound:
                requests.append(PortRequest(port, protocol, "", 0, 0))
    return requests


def ports_map(exposed: Iterable[str], bindings: Iterable[PortBinding]) -> dict[str, Any]:
    """``NetworkSettings.Ports``: each exposed or published port, with its host bindings
    (IPv4 first) or null."""
    ports: dict[str, list[dict[str, str]] | None] = {}
    for key in exposed:
        port, protocol = parse_port_key(key)
        ports.setdefault(f"{port}/{protocol}", None)
    ordered = sorted(bindings, key=lambda b: (b.container_port, b.protocol, b.family, b.host_ip))
    for binding in ordered:
        key = f"{binding.container_port}/{binding.protocol}"
        shown = ports.get(key) or []
        shown.append({"HostIp": binding.host_ip, "HostPort": str(binding.host_port)})
        ports[key] = shown
    return dict(sorted(ports.items(), key=lambda item: _port_sort_key(item[0])))


def _port_sort_key(key: str) -> tuple[int, str]:
    number, _, protocol = key.partition("/")
    return int(number), protocol


class PortAllocator:
    """The host ports of one engine: (address, protocol, port) -> the container holding it.
    0.0.0.0 clashes with every IPv4 address on the same port, :: with every IPv6 one."""

    def __init__(self, ephemeral: tuple[int, int] = DEFAULT_EPHEMERAL) -> None:
        self.ephemeral = ephemeral
        self._held: dict[tuple[str, str, int], str] = {}
        self._next = ephemeral[0]
        self._lock = threading.Lock()

    def holder(self, host_ip: str, protocol: str, port: int) -> str | None:
        wildcard = "::" if ":" in host_ip else "0.0.0.0"
        with self._lock:
            for (ip, proto, held_port), owner in self._held.items():
                if proto != protocol or held_port != port or (":" in ip) != (":" in host_ip):
                    continue
                if ip == host_ip or wildcard in (ip, host_ip):
                    return owner
        return None

    def hold(self, owner: str, host_ip: str, protocol: str, port: int) -> None:
        if self.holder(host_ip, protocol, port) is not None:
            raise PortAllocated(f"Bind for {host_ip}:{port} failed: port is already allocated")
        with self._lock:
            self._held[(host_ip, protocol, port)] = owner

    def release(self, host_ip: str, protocol: str, port: int) -> None:
        with self._lock:
            self._held.pop((host_ip, protocol, port), None)

    def candidates(self, host_ips: list[str], protocol: str, start: int, end: int) -> Iterator[int]:
        """Ports to try, in order: ``start``..``end``, or the ephemeral range from just after
        the last one given out (as moby's allocator walks it); only those free on every
        address."""
        if start:
            ports: Iterable[int] = range(start, end + 1)
        else:
            low, high = self.ephemeral
            with self._lock:
                first = self._next if low <= self._next <= high else low
            ports = itertools.chain(range(first, high + 1), range(low, first))
        for port in ports:
            if all(self.holder(ip, protocol, port) is None for ip in host_ips):
                yield port

    def note_given(self, port: int) -> None:
        with self._lock:
            self._next = port + 1

    def count(self) -> int:
        with self._lock:
            return len(self._held)


def ephemeral_range(netns_path: str | None) -> tuple[int, int]:
    def read() -> tuple[int, int]:
        try:
            low, high = open("/proc/sys/net/ipv4/ip_local_port_range").read().split()
            return int(low), int(high)
        except (OSError, ValueError):
            return DEFAULT_EPHEMERAL

    return netns.run_in(netns_path, read)


def ipv6_listenable(netns_path: str | None) -> bool:
    """Whether [::] can be bound in the namespace (moby's IsV6Listenable)."""

    def probe() -> bool:
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
                sock.bind(("::1", 0))
        except OSError:
            return False
        return True

    return netns.run_in(netns_path, probe)


def bind_host_port(netns_path: str | None, binding: PortBinding) -> socket.socket:
    """The socket that reserves a host port (listening, for TCP) in the engine's namespace."""

    def bind() -> socket.socket:
        kind = socket.SOCK_STREAM if binding.protocol == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(binding.family, kind)
        try:
            if binding.protocol == "tcp":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if binding.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((binding.host_ip, binding.host_port))
            if binding.protocol == "tcp":
                sock.listen(128)
        except OSError:
            sock.close()
            raise
        return sock

    try:
        return netns.run_in(netns_path, bind)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise NetworkError(
            f"failed to bind host port for {binding.describe()}: {reason.lower()}"
        ) from None


def start_proxy(
    netns_path: str | None, listeners: list[socket.socket], binding: PortBinding, label: str
) -> subprocess.Popen[bytes]:
    """A userland proxy serving ``listeners`` (one host port on one or two addresses) for
    ``binding``'s container port, started in the engine's namespace. The caller may close
    its copies of the sockets once this returns."""
    fds = [listener.fileno() for listener in listeners]
    argv = [sys.executable, "-I", "-S", str(PROXY_SCRIPT), "--proto", binding.protocol]
    argv += ["--to", f"{binding.container_ip}:{binding.container_port}", "--label", label]
    for fd in fds:
        argv += ["--fd", str(fd)]

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=fds,
            start_new_session=True,
        )

    return netns.run_in(netns_path, spawn)


def _is_proxy(pid: int, label: str) -> bool:
    """Whether ``pid`` is a proxy we started for ``label`` (a container ID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(PROXY_SCRIPT).encode() in cmdline and label.encode() in cmdline


class PortPublisher:
    """The host ports of one engine and the userland proxies serving them. ``publish`` and
    ``unpublish`` are all or nothing; ``restore`` takes over after an engine restart."""

    def __init__(self, netns_path: str | None) -> None:
        self.netns = netns_path
        self.allocator = PortAllocator(ephemeral_range(netns_path))
        self.ipv6 = ipv6_listenable(netns_path)
        self._proxies: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.RLock()

    def publish(
        self, owner: str, requests: list[PortRequest], container_ip: str, default_ip: str
    ) -> list[PortBinding]:
        """Publish each request to ``container_ip``; every binding made, or none."""
        made: list[PortBinding] = []
        with self._lock:
            try:
                for request in requests:
                    made += self._publish_one(owner, request, container_ip, default_ip)
            except BaseException:
                self.unpublish(owner, made)
                raise
        return made

    def _publish_one(
        self, owner: str, request: PortRequest, container_ip: str, default_ip: str
    ) -> list[PortBinding]:
        """A host port free on each address the request names (the default binding address,
        and [::] with it when that is 0.0.0.0 and IPv6 works), reserved by bound sockets that
        one proxy serves."""
        if request.host_ip:
            host_ips = [request.host_ip]
        else:
            host_ips = [default_ip] + (["::"] if self.ipv6 and default_ip == "0.0.0.0" else [])
        protocol = request.protocol
        start, end = request.host_port_start, request.host_port_end
        if start and start == end:
            taken = [ip for ip in host_ips if self.allocator.holder(ip, protocol, start)]
            if taken:
                raise PortAllocated(
                    f"Bind for {taken[0]}:{start} failed: port is already allocated"
                )
        error = NetworkError("no free host port in the requested range")
        for port in self.allocator.candidates(host_ips, protocol, start, end):
            bindings = [
                PortBinding(protocol, request.container_port, ip, port, container_ip)
                for ip in host_ips
            ]
            try:
                self._bind(owner, bindings)
            except NetworkError as failure:
                error = failure
                continue
            if not start:
                self.allocator.note_given(port)
            return bindings
        raise error

    def _bind(self, owner: str, bindings: list[PortBinding]) -> None:
        sockets: list[socket.socket] = []
        try:
            for binding in bindings:
                sockets.append(bind_host_port(self.netns, binding))
            for binding in bindings:
                self.allocator.hold(owner, binding.host_ip, binding.protocol, binding.host_port)
            process = start_proxy(self.netns, sockets, bindings[0], owner)
        except BaseException:
            for binding in bindings:
                self.allocator.release(binding.host_ip, binding.protocol, binding.host_port)
            raise
        finally:
            for sock in sockets:
                sock.close()
        self._proxies[process.pid] = process
        for binding in bindings:
            binding.proxy_pid = process.pid

    def unpublish(self, owner: str, bindings: list[PortBinding]) -> None:
        """Stop the proxies and give back the host ports."""
        with self._lock:
            for pid in dict.fromkeys(b.proxy_pid for b in bindings):
                self._stop_proxy(pid, owner)
            for binding in bindings:
                self.allocator.release(binding.host_ip, binding.protocol, binding.host_port)

    def _stop_proxy(self, pid: int, owner: str) -> None:
        process = self._proxies.pop(pid, None)
        if pid <= 0 or not _is_proxy(pid, owner):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if process is not None:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restore(self, owner: str, bindings: list[PortBinding]) -> None:
        """After an engine restart: hold the ports again, and start a proxy anew for any
        that died with the previous engine's namespace work."""
        with self._lock:
            for binding in bindings:
                self.allocator.hold(owner, binding.host_ip, binding.protocol, binding.host_port)
            by_proxy: dict[int, list[PortBinding]] = {}
            for binding in bindings:
                by_proxy.setdefault(binding.proxy_pid, []).append(binding)
            for pid, group in by_proxy.items():
                if _is_proxy(pid, owner):
                    continue
                try:
                    sockets = [bind_host_port(self.netns, b) for b in group]
                except NetworkError:
                    continue
                try:
                    process = start_proxy(self.netns, sockets, group[0], owner)
                finally:
                    for sock in sockets:
                        sock.close()
                self._proxies[process.pid] = process
                for binding in group:
                    binding.proxy_pid = process.pid

    def count(self) -> int:
        """Host ports held."""
        return self.allocator.count()
