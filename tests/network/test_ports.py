"""Published ports: ``-p host:container``, ``-p ip:host:container``, ``-p container`` and
``-P``, reachable on every address of the engine's namespace (127.0.0.1 and [::1] through the
proxy, others through DNAT), from other hosts and from containers (hairpin); Docker's errors
for a port already taken, with nothing held by the container that failed."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from simulator.network import netns
from simulator.network.errors import NetworkError
from tests.network.conftest import Box, Lab, run_in_namespace

WEB = {"80/tcp": [{"HostIp": "", "HostPort": "5005"}]}


def test_a_published_port_answers_on_every_address(lab: Lab) -> None:
    web = lab.container("web", ports=WEB, exposed=["80/tcp"])
    lab.http_server(web, text="nginx welcome\n")
    assert web.settings["Ports"] == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "5005"}, {"HostIp": "::", "HostPort": "5005"}]
    }
    for address in ("127.0.0.1", "[::1]", "172.17.0.1"):
        fetched = lab.engine(f"wget -q -O- http://{address}:5005/")
        assert fetched.stdout == "nginx welcome\n", (address, fetched.stderr)
    outside = lab.outside()
    fetched = run_in_namespace(outside, "wget -q -O- http://10.99.0.1:5005/")
    assert fetched.stdout == "nginx welcome\n", fetched.stderr


def test_containers_reach_a_published_port_through_their_gateway(lab: Lab) -> None:
    web = lab.container("web", ports=WEB)
    lab.http_server(web)
    neighbour = lab.container("neighbour")
    assert neighbour.ok("wget -q -O- http://172.17.0.1:5005/") == "hello from web\n"
    assert web.ok("wget -q -O- http://172.17.0.1:5005/") == "hello from web\n"
    lab.manager.create("elsewhere")
    other = lab.container("other", "elsewhere")
    assert other.ok("wget -q -O- http://172.18.0.1:5005/") == "hello from web\n"


def test_a_random_port_and_publish_all(lab: Lab) -> None:
    low = int(lab.engine("cat /proc/sys/net/ipv4/ip_local_port_range").stdout.split()[0])
    first = lab.container("first", ports={"80/tcp": [{"HostIp": "", "HostPort": ""}]})
    assert first.settings["Ports"]["80/tcp"] == [
        {"HostIp": "0.0.0.0", "HostPort": str(low)},
        {"HostIp": "::", "HostPort": str(low)},
    ]
    every = lab.container("every", exposed=["80/tcp", "53/udp", "8080/tcp"], publish_all=True)
    ports = every.settings["Ports"]
    assert list(ports) == ["53/udp", "80/tcp", "8080/tcp"]
    given = {int(b["HostPort"]) for bindings in ports.values() for b in bindings}
    assert len(given) == 3 and low not in given and all(p > low for p in given)
    lab.http_server(every, 8080)
    port = ports["8080/tcp"][0]["HostPort"]
    assert lab.engine(f"wget -q -O- http://127.0.0.1:{port}/").stdout == "hello from every\n"


def test_a_second_publish_of_the_same_port_fails_and_holds_nothing(lab: Lab) -> None:
    lab.container("first", ports=WEB)
    before = lab.counts()
    second_id = lab.container("second", ports=WEB, start=False).id
    with pytest.raises(NetworkError) as refused:
        lab.manager.prepare_sandbox(second_id)
    message = refused.value.message
    assert message.startswith(
        "driver failed programming external connectivity on endpoint second ("
    )
    assert message.endswith("): Bind for 0.0.0.0:5005 failed: port is already allocated")
    assert refused.value.status == 500
    assert lab.counts() == before
    failed = lab.manager.settings(second_id)["Networks"]["bridge"]
    assert (failed["IPAddress"], failed["NetworkID"]) == ("", "")  # as a Created container


def test_a_port_on_one_address_and_udp(lab: Lab, udp_echo: Callable[[Box], None]) -> None:
    box = lab.container("echo", ports={"81/udp": [{"HostIp": "127.0.0.1", "HostPort": "6000"}]})
    udp_echo(box)
    assert box.settings["Ports"] == {"81/udp": [{"HostIp": "127.0.0.1", "HostPort": "6000"}]}

    def ask() -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(b"ping", ("127.0.0.1", 6000))
            return sock.recv(100)

    assert netns.run_in(lab.ns.path, ask) == b"echo: ping"
    other = lab.container("other", ports={"81/tcp": [{"HostIp": "0.0.0.0", "HostPort": "6000"}]})
    assert other.settings["Ports"]["81/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "6000"}]


def test_a_port_another_program_holds_is_refused(lab: Lab) -> None:
    holder = netns.run_in(lab.ns.path, lambda: _listening("0.0.0.0", 7000))
    try:
        box = lab.container(
            "web", ports={"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "7000"}]}, start=False
        )
        with pytest.raises(NetworkError) as refused:
            lab.manager.prepare_sandbox(box.id)
        assert refused.value.message.endswith(
            "failed to bind host port for 0.0.0.0:7000:172.17.0.2:80/tcp: address already in use"
        )
    finally:
        holder.close()


def test_ports_come_back_after_a_restart_and_go_with_the_container(lab: Lab) -> None:
    web = lab.container("web", ports=WEB)
    lab.http_server(web)
    manager = lab.reopen()
    assert lab.engine("wget -q -O- http://127.0.0.1:5005/").stdout == "hello from web\n"
    manager.release(web.id)
    assert lab.engine("wget -q -O- http://127.0.0.1:5005/").returncode != 0
    assert lab.counts()["proxies"] == 0


def _listening(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, port))
    sock.listen(1)
    return sock


@pytest.fixture
def udp_echo() -> Iterator[Callable[[Box], None]]:
    """Start, in a container, a UDP server on port 81 that answers ``echo: <what came>``."""
    sockets: list[socket.socket] = []

    def start(box: Box) -> None:
        sock = netns.run_in(box.key, lambda: _bound_udp(81))
        sockets.append(sock)

        def serve() -> None:
            while True:
                try:
                    data, peer = sock.recvfrom(100)
                except OSError:
                    return
                sock.sendto(b"echo: " + data, peer)

        threading.Thread(target=serve, daemon=True).start()

    yield start
    for sock in sockets:
        sock.close()


def _bound_udp(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    return sock
