"""A network namespace of its own for an engine under test, as a node would give it.

The namespace is held open by a small process (``unshare --net``) with loopback up, and
ends with it. Commands enter it with ``nsenter --net``. A *portal* makes a TCP service of
the test's own namespace (a hub on 127.0.0.1:PORT) answer at the same address inside the
namespace: its listening socket is made inside the namespace, and each connection it
accepts is carried to the service from outside. So a hub URL means the same thing to a
test and to the engine it started in the namespace.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading

from simulator import linux


class Portals:
    """Portals into the network namespace at ``path`` (``/proc/PID/ns/net``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.portals: set[str] = set()
        self._listeners: list[socket.socket] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def _listen_inside(self, host: str, port: int) -> socket.socket:
        made: list[socket.socket | BaseException] = []

        def inside() -> None:  # setns changes only this thread, which then ends
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    linux.setns(fd, linux.CLONE_NEWNET)
                finally:
                    os.close(fd)
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind((host, port))
                listener.listen(64)
                made.append(listener)
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                made.append(error)

        thread = threading.Thread(target=inside)
        thread.start()
        thread.join()
        if isinstance(made[0], BaseException):
            raise made[0]
        return made[0]

    def portal(self, address: str) -> None:
        """Make ``HOST:PORT`` of this process's namespace answer at the same address inside."""
        host, _, port = address.rpartition(":")
        listener = self._listen_inside(host, int(port))
        self.portals.add(address)
        self._listeners.append(listener)
        threading.Thread(target=self._accept, args=(listener, host, int(port)), daemon=True).start()

    def _accept(self, listener: socket.socket, host: str, port: int) -> None:
        while True:
            try:
                inner, _ = listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection((host, port), timeout=10)
            except OSError:
                inner.close()
                continue
            outer.settimeout(None)
            with self._lock:
                self._open.update((inner, outer))
            for source, target in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for listener in self._listeners:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.close()
            self._open.clear()


class NetworkNamespace(Portals):
    """A fresh network namespace with loopback up; ``close()`` ends it and its portals."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c", "ip link set lo up && echo ready && exec cat"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        super().__init__(f"/proc/{self.holder.pid}/ns/net")
        assert self.holder.stdout is not None
        if self.holder.stdout.readline().strip() != b"ready":
            self.close()
            raise RuntimeError("could not make a network namespace")

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def close(self) -> None:
        super().close()
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait()
        for stream in (self.holder.stdin, self.holder.stdout):
            if stream is not None:
                stream.close()
