"""The embedded DNS server of user-defined networks: Docker's 127.0.0.11.

For each container it serves, a UDP socket and a TCP listener are made inside the
container's network namespace on 127.0.0.11 at ports the kernel picks; a DNAT rule there
(simulator.network.firewall) sends the container's queries for 127.0.0.11:53 to them. One
thread answers every container: A, AAAA and PTR questions from what ``lookup`` says (names,
aliases and short IDs on the networks the asking container shares), anything else from the
upstream servers when there are some, else SERVFAIL at once, as Docker's resolver does when
it has no external server.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simulator.network import netns

log = logging.getLogger("simulator.network.dns")

RESOLVER_ADDRESS = "127.0.0.11"
TTL = 600  # seconds, as moby's respTTL
UPSTREAM_TIMEOUT = 2.0
TYPE_A = 1
TYPE_PTR = 12
TYPE_MX = 15
TYPE_AAAA = 28
CLASS_IN = 1
NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NOTIMP = 4
_HEADER = struct.Struct("!HHHHHH")
_MAX_UDP = 512
_PTR_V4 = ".in-addr.arpa"


@dataclass(frozen=True)
class Question:
    name: str  # lower case, no trailing dot
    qtype: int
    qclass: int
    end: int  # offset just past the question in the query


@dataclass(frozen=True)
class Answer:
    """What ``lookup`` found: None for "not ours" (forward it), else the records (A/AAAA
    addresses or a PTR name); an empty list is NOERROR with no records."""

    records: list[str]


# lookup(container ID, name, qtype) -> Answer or None
Lookup = Callable[[str, str, int], Answer | None]


def parse_question(message: bytes) -> tuple[int, int, Question]:
    """The ID, flags and first question of a DNS query; ValueError if malformed."""
    if len(message) < _HEADER.size:
        raise ValueError("short message")
    ident, flags, qdcount, _, _, _ = _HEADER.unpack_from(message)
    if qdcount < 1:
        raise ValueError("no question")
    labels: list[str] = []
    offset = _HEADER.size
    while True:
        if offset >= len(message):
            raise ValueError("truncated name")
        length = message[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0:
            raise ValueError("compressed question name")
        labels.append(message[offset : offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(message):
        raise ValueError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", message, offset)
    name = ".".join(labels).lower()
    return ident, flags, Question(name, qtype, qclass, offset + 4)


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("ascii")
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def build_response(
    query: bytes, flags: int, question: Question, rcode: int, records: Sequence[str] = ()
) -> bytes:
    """A reply to ``query``: its question echoed, then one answer per record (A or AAAA
    addresses, or a PTR name), each pointing back at the question's name."""
    ident = struct.unpack_from("!H", query)[0]
    opcode_rd = flags & 0x7900  # opcode and RD as asked
    reply_flags = 0x8000 | opcode_rd | 0x0080 | rcode  # QR, RA
    body = query[_HEADER.size : question.end]
    answers = b""
    for record in records:
        if question.qtype == TYPE_PTR:
            rdata = encode_name(record)
        else:
            rdata = ipaddress.ip_address(record).packed
        answers += struct.pack("!HHHIH", 0xC00C, question.qtype, CLASS_IN, TTL, len(rdata))
        answers += rdata
    header = _HEADER.pack(ident, reply_flags, 1, len(records), 0, 0)
    return header + body + answers


def ptr_address(name: str) -> str | None:
    """The IPv4 address a PTR question names (``4.3.2.1.in-addr.arpa`` -> 1.2.3.4)."""
    if not name.endswith(_PTR_V4):
        return None
    parts = name[: -len(_PTR_V4)].split(".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    return ".".join(reversed(parts))


class _Served:
    """The sockets of one container."""

    def __init__(self, container_id: str, udp: socket.socket, tcp: socket.socket) -> None:
        self.container_id = container_id
        self.udp = udp
        self.tcp = tcp

    def close(self) -> None:
        for sock in (self.udp, self.tcp):
            with contextlib.suppress(OSError):
                sock.close()


class DnsServer:
    """The resolver of one engine. ``serve(container ID, netns path)`` starts answering in a
    container's namespace and returns the (UDP, TCP) ports to DNAT 53 to; ``stop_serving``
    ends it (its sockets hold the namespace, so this must come before the namespace goes).
    Sockets are registered and unregistered from any thread: epoll allows it, and the
    selector's map is only read by the serving thread."""

    def __init__(
        self,
        lookup: Lookup,
        upstreams: Callable[[], Sequence[str]],
        engine_netns: str | None = None,
    ) -> None:
        self._lookup = lookup
        self._upstreams = upstreams
        self._engine_netns = engine_netns
        self._selector = selectors.DefaultSelector()
        self._served: dict[str, _Served] = {}
        self._lock = threading.Lock()
        self._wake_read, self._wake_write = socket.socketpair()
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="embedded-dns", daemon=True)
        self._thread.start()

    def serve(self, container_id: str, netns_path: str) -> tuple[int, int]:
        self.stop_serving(container_id)
        udp, tcp = netns.run_in(netns_path, _bind_sockets)
        served = _Served(container_id, udp, tcp)
        with self._lock:
            self._served[container_id] = served
            self._selector.register(udp, selectors.EVENT_READ, served)
            self._selector.register(tcp, selectors.EVENT_READ, served)
        return udp.getsockname()[1], tcp.getsockname()[1]

    def stop_serving(self, container_id: str) -> None:
        with self._lock:
            served = self._served.pop(container_id, None)
            if served is None:
                return
            for sock in (served.udp, served.tcp):
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
        served.close()

    def serving(self) -> list[str]:
        with self._lock:
            return sorted(self._served)

    def close(self) -> None:
        for container_id in self.serving():
            self.stop_serving(container_id)
        self._closed.set()
        self._wake_write.send(b"x")
        self._thread.join(5)
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()

    def _loop(self) -> None:
        while not self._closed.is_set():
            for key, _ in self._selector.select():
                served = key.data
                if served is None:
                    continue  # woken to notice close()
                if key.fileobj is served.udp:
                    self._answer_udp(served)
                else:
                    self._accept_tcp(served)

    def _answer_udp(self, served: _Served) -> None:
        try:
            query, peer = served.udp.recvfrom(4096)
        except OSError:
            return
        if self._upstreams():  # an answer may wait on an upstream: not on this thread
            threading.Thread(
                target=self._reply_udp, args=(served, query, peer), daemon=True
            ).start()
        else:
            self._reply_udp(served, query, peer)

    def _reply_udp(self, served: _Served, query: bytes, peer: tuple[str, int]) -> None:
        reply = self.answer(served.container_id, query, tcp=False)
        if reply is not None:
            with contextlib.suppress(OSError):
                served.udp.sendto(reply, peer)

    def _accept_tcp(self, served: _Served) -> None:
        try:
            connection, _ = served.tcp.accept()
        except OSError:
            return
        threading.Thread(
            target=self._serve_tcp, args=(served.container_id, connection), daemon=True
        ).start()

    def _serve_tcp(self, container_id: str, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            try:
                while header := _read_exactly(connection, 2):
                    query = _read_exactly(connection, struct.unpack("!H", header)[0])
                    reply = self.answer(container_id, query, tcp=True)
                    if reply is None:
                        return
                    connection.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return

    def answer(self, container_id: str, query: bytes, tcp: bool) -> bytes | None:
        """The reply to one query from a container, or None to drop it."""
        try:
            _, flags, question = parse_question(query)
        except ValueError:
            return None
        if flags & 0x8000:
            return None  # a response, not a query
        if question.qclass != CLASS_IN or question.qtype not in (
            TYPE_A,
            TYPE_AAAA,
            TYPE_PTR,
            TYPE_MX,
        ):
            return self._forward(query, flags, question, tcp)
        found = self._lookup(container_id, question.name, question.qtype)
        if found is None:
            return self._forward(query, flags, question, tcp)
        records = [] if question.qtype == TYPE_MX else found.records
        return build_response(query, flags, question, NOERROR, records)

    def _forward(self, query: bytes, flags: int, question: Question, tcp: bool) -> bytes:
        for server in self._upstreams():
            reply = netns.run_in(self._engine_netns, lambda s=server: _ask_upstream(s, query, tcp))
            if reply is not None and len(reply) >= 4 and reply[3] & 0x0F not in (SERVFAIL, 5):
                return reply
        return build_response(query, flags, question, SERVFAIL)


def _bind_sockets() -> tuple[socket.socket, socket.socket]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind((RESOLVER_ADDRESS, 0))
        tcp.bind((RESOLVER_ADDRESS, 0))
        tcp.listen(16)
    except OSError:
        udp.close()
        tcp.close()
        raise
    for sock in (udp, tcp):
        sock.setblocking(False)
        os.set_inheritable(sock.fileno(), False)
    return udp, tcp


def _ask_upstream(server: str, query: bytes, tcp: bool) -> bytes | None:
    """Forward a query to an upstream server (from the engine's namespace)."""
    try:
        if tcp:
            with socket.create_connection((server, 53), timeout=UPSTREAM_TIMEOUT) as sock:
                sock.sendall(struct.pack("!H", len(query)) + query)
                header = _read_exactly(sock, 2)
                return _read_exactly(sock, struct.unpack("!H", header)[0]) if header else None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(UPSTREAM_TIMEOUT)
            sock.sendto(query, (server, 53))
            return sock.recv(_MAX_UDP * 8)
    except (OSError, struct.error):
        return None


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data
