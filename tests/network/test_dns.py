"""The embedded DNS server: on a user-defined network, containers find each other by name,
alias, short ID and hostname at 127.0.0.11; the default bridge has no such server; names it
doesn't know fail at once, or go upstream when the node has an upstream."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.network import dns, netns
from tests.network.conftest import Box, Lab


def lookup(box: Box, name: str) -> tuple[int, str]:
    result = box.run(f"nslookup -type=a {name} 127.0.0.11", timeout=30)
    return result.returncode, result.stdout + result.stderr


def test_names_aliases_short_ids_and_hostnames_resolve(lab: Lab) -> None:
    lab.manager.create("app")
    web = lab.container("web", "app", aliases=["site", "www"])
    db = lab.container("db", "app", hostname="database")
    for name in ("web", "site", "www", web.id[:12], "WEB", "web.app"):
        code, answer = lookup(db, name)
        assert code == 0 and "Address: 172.18.0.2" in answer, (name, answer)
    for name in ("db", "database", db.id[:12]):
        code, answer = lookup(web, name)
        assert code == 0 and "Address: 172.18.0.3" in answer, (name, answer)


def test_reverse_lookups_name_the_container_and_network(lab: Lab) -> None:
    lab.manager.create("app")
    web = lab.container("web", "app")
    db = lab.container("db", "app")
    answer = db.ok("nslookup 172.18.0.2 127.0.0.11")
    assert "name = web.app" in answer
    assert web.address("app") == "172.18.0.2"


def test_an_unknown_name_fails_at_once_without_an_upstream(lab: Lab) -> None:
    lab.manager.create("app")
    box = lab.container("web", "app")
    started = time.monotonic()
    code, answer = lookup(box, "nothing.example")
    assert code != 0 and "SERVFAIL" in answer
    assert time.monotonic() - started < 5  # answered, not timed out


def test_the_default_bridge_has_no_name_resolution(lab: Lab) -> None:
    first = lab.container("first")
    second = lab.container("second")
    assert "127.0.0.11" not in Path(second.files["/etc/resolv.conf"]).read_text()
    code, _ = lookup(second, "first")
    assert code != 0
    assert lab.manager.dns.serving() == []
    second.ok(f"ping -c1 -W2 {first.address('bridge')}")  # by IP it works


def test_names_on_another_network_stay_hidden(lab: Lab) -> None:
    lab.manager.create("one")
    lab.manager.create("two")
    lab.container("hidden", "one")
    box = lab.container("asker", "two")
    code, _ = lookup(box, "hidden")
    assert code != 0


def test_a_name_goes_away_with_its_container(lab: Lab) -> None:
    lab.manager.create("app")
    web = lab.container("web", "app")
    db = lab.container("db", "app")
    assert lookup(db, "web")[0] == 0
    lab.manager.release(web.id)
    assert lookup(db, "web")[0] != 0


def test_a_renamed_container_answers_to_its_new_name(lab: Lab) -> None:
    lab.manager.create("app")
    web = lab.container("web", "app")
    db = lab.container("db", "app")
    lab.manager.rename(web.id, "/front")
    assert lookup(db, "front")[0] == 0
    assert lookup(db, "web")[0] != 0


def test_dns_over_tcp_answers_too(lab: Lab) -> None:
    lab.manager.create("app")
    lab.container("web", "app")
    db = lab.container("db", "app")
    query = bytes.fromhex("abcd01000001000000000000") + dns.encode_name("web") + b"\x00\x01\x00\x01"

    def ask() -> bytes:
        with socket.create_connection(("127.0.0.11", 53), timeout=5) as sock:
            sock.sendall(len(query).to_bytes(2, "big") + query)
            size = int.from_bytes(sock.recv(2), "big")
            return sock.recv(size)

    reply = netns.run_in(db.key, ask)
    assert reply[:2] == b"\xab\xcd" and reply[3] & 0x0F == dns.NOERROR
    assert reply.endswith(bytes([172, 18, 0, 2]))


@pytest.fixture
def upstream(lab: Lab) -> Iterator[list[str]]:
    """A DNS server in the engine's namespace at 127.0.0.53, answering every A question with
    192.0.2.7; the names it was asked."""
    asked: list[str] = []
    sock = netns.run_in(lab.ns.path, lambda: _bound_udp("127.0.0.53", 53))
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                query, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            _, flags, question = dns.parse_question(query)
            asked.append(question.name)
            sock.sendto(
                dns.build_response(query, flags, question, dns.NOERROR, ["192.0.2.7"]), peer
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield asked
    stop.set()
    thread.join()
    sock.close()


def _bound_udp(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    return sock


def test_other_names_go_upstream_when_the_node_has_one(lab: Lab, upstream: list[str]) -> None:
    (lab.root / "resolv.conf").write_text("nameserver 127.0.0.53\n")
    lab.reopen(forward_dns=True)
    lab.manager.create("app")
    box = lab.container("web", "app")
    code, answer = lookup(box, "outside.example")
    assert code == 0 and "Address: 192.0.2.7" in answer
    assert upstream == ["outside.example"]
    code, answer = lookup(box, "web")
    assert "Address: 172.18.0.2" in answer and upstream == ["outside.example"]
