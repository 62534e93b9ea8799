"""The userland proxy of one published port, as docker-proxy is: it takes the sockets the
engine bound (open file descriptors it inherits) and carries each TCP connection, or each
UDP client's datagrams, to the container's address. It serves what the NAT rules don't:
127.0.0.1, [::] and containers reaching a published port through their gateway.

Run by the engine as ``python -I -S proxy.py --proto tcp --to 172.17.0.2:80 --fd 7 --fd 8``
(a socket for 0.0.0.0, one for [::]) in the engine's network namespace. It uses the standard
library only, so it starts quickly, and ends on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
import time

UDP_IDLE_SECONDS = 90.0
_BUFFER = 65536


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(_BUFFER):
            target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
    except OSError:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _carry(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    backward = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    backward.start()
    _pump(client, upstream)
    backward.join()
    client.close()
    upstream.close()


def serve_tcp(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_carry, args=(client, target), daemon=True).start()


def serve_udp(listener: socket.socket, target: tuple[str, int]) -> None:
    """Each client address gets its own socket towards the container; replies come back
    from the published address. A client idle for UDP_IDLE_SECONDS is forgotten."""
    upstreams: dict[tuple, tuple[socket.socket, list[float]]] = {}
    lock = threading.Lock()

    def replies(client: tuple, upstream: socket.socket, seen: list[float]) -> None:
        upstream.settimeout(5)
        while True:
            try:
                data = upstream.recv(_BUFFER)
            except TimeoutError:
                if time.monotonic() - seen[0] > UDP_IDLE_SECONDS:
                    break
                continue
            except OSError:
                break
            seen[0] = time.monotonic()
            listener.sendto(data, client)
        with lock:
            upstreams.pop(client, None)
        upstream.close()

    while True:
        data, client = listener.recvfrom(_BUFFER)
        with lock:
            entry = upstreams.get(client)
            if entry is None:
                upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                upstream.connect(target)
                entry = (upstream, [time.monotonic()])
                upstreams[client] = entry
                threading.Thread(target=replies, args=(client, *entry), daemon=True).start()
        entry[1][0] = time.monotonic()
        with contextlib.suppress(OSError):
            entry[0].send(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proto", choices=("tcp", "udp"), required=True)
    parser.add_argument("--to", required=True, help="the container's IP:PORT")
    parser.add_argument(
        "--fd", type=int, action="append", required=True, help="a bound socket (repeatable)"
    )
    parser.add_argument("--label", default="", help="what the engine calls this mapping")
    args = parser.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    serve = serve_tcp if args.proto == "tcp" else serve_udp
    for fd in args.fd:
        listener = socket.socket(fileno=fd)
        threading.Thread(target=serve, args=(listener, (host, int(port))), daemon=True).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
