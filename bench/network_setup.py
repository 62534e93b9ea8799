"""Network set-up time per container, beside a reference dockerd, and TCP throughput between
two containers on one bridge, beside the host's loopback.

What it measures
----------------
1. The network manager alone (simulator.network), in a network namespace of the benchmark's
   own standing in for the engine's (the node's). Each sample is the wall-clock time, by
   ``time.perf_counter``, of one container's network set-up as the engine drives it:
   ``configure`` (what ``docker create`` records), ``prepare_sandbox`` (the namespace, the
   veth pair on the bridge with address, MAC and default route, and on a user-defined network
   the embedded DNS server's sockets and the DNAT rule in the container's namespace) and
   ``write_files`` (/etc/hosts, /etc/hostname, /etc/resolv.conf). Tear-down (``forget``) is
   timed separately. Three series: the default bridge; a user-defined network (bridge
   endpoint plus DNS registration); the same publishing port 80 on a port of the engine's
   choosing (a bound socket, a userland proxy and the NAT rules rewritten).

2. Whole engines: ``POST /containers/{id}/start`` of a busybox ``sleep`` container, timed
   from the request to the answer, on our engine (in a namespace of its own, pulling from
   the hub through a portal) and on a reference dockerd (Debian's docker.io, with its own data
   root, namespace and containerd, whose registry mirror is the same hub), in the same run.
   Three series per engine: ``--network none`` (a namespace with loopback only), the default
   bridge, and a user-defined network. A start on a network less a start with ``none`` is
   the per-container network set-up (endpoint, plus DNS registration on the user network);
   the rest of a start (the runtime, the process) is the same in both. Each container is
   created before and removed (force) after its sample, untimed.

3. TCP throughput: a Python receiver and sender (the same few lines) move 1 GiB through one
   connection: in two ``python`` containers on one user-defined network (a bridge), on our
   engine and on the reference dockerd, and as two processes on the host's loopback. The
   receiver times from its first byte to the end; figures are MB/s and their ratio to the
   loopback's.

Every series is interleaved run by run after two warm-up runs; the report gives the median
(and min and max for part 1) in milliseconds. It must run as root, and needs the hub's
default root (``make setup``) for busybox and python::

    cd /work/main && .venv/bin/python bench/network_setup.py [--runs N] [--rounds N]

It prints figures and asserts nothing. Everything it makes is inside its own namespaces and
temporary directory, all gone at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.engine_run import hub_and_engine  # noqa: E402
from simulator.network import NetworkManager  # noqa: E402
from tests.support.dockerd import api_request, find_docker_cli, reference_dockerd  # noqa: E402
from tests.support.netns import NetworkNamespace  # noqa: E402

LIBRARY_SERIES: dict[str, dict[str, Any]] = {
    "bridge": {"NetworkMode": "bridge"},
    "user network": {"NetworkMode": "bench"},
    "user network, -p 80": {
        "NetworkMode": "bench",
        "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": ""}]},
    },
}
ENGINE_SERIES = {"none": "none", "default bridge": "bridge", "user network": "bench"}
TRANSFER_BYTES = 1 << 30
PORT = 5001
RECEIVER = """
import socket, sys, time
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(1)
print("listening", flush=True)
connection, _ = server.accept()
received, started = 0, None
while chunk := connection.recv(1 << 20):
    started = started or time.perf_counter()
    received += len(chunk)
print(received, time.perf_counter() - started, flush=True)
"""
SENDER = """
import socket, sys, time
for _ in range(100):
    try:
        connection = socket.create_connection((sys.argv[1], int(sys.argv[2])))
        break
    except OSError:
        time.sleep(0.1)
block, left = memoryview(bytes(1 << 20)), int(sys.argv[3])
while left > 0:
    left -= connection.send(block[: min(left, len(block))])
connection.close()
"""


# -- 1. the network manager alone ---------------------------------------------------------------


def one_container(
    manager: NetworkManager, root: Path, number: int, host_config: dict[str, Any]
) -> tuple[float, float]:
    """Set up and tear down one container's network; (set-up ms, tear-down ms)."""
    container_id = f"{number:064x}"
    started = time.perf_counter()
    manager.configure(container_id, f"c{number}", {}, host_config)
    manager.prepare_sandbox(container_id)
    manager.write_files(container_id, root / "containers" / container_id)
    set_up = time.perf_counter()
    manager.forget(container_id)
    done = time.perf_counter()
    return (set_up - started) * 1000, (done - set_up) * 1000


def library_series(runs: int) -> dict[str, tuple[list[float], list[float]]]:
    """Part 1, in a namespace and directory of its own."""
    namespace = NetworkNamespace()
    try:
        with tempfile.TemporaryDirectory(prefix="slipway-bench-net-") as directory:
            root = Path(directory)
            (root / "resolv.conf").write_text("nameserver 127.0.0.53\n")
            manager = NetworkManager(
                root / "state",
                root / "run",
                netns_path=namespace.path,
                resolv_conf=root / "resolv.conf",
            )
            try:
                manager.create("bench")
                results: dict[str, tuple[list[float], list[float]]] = {
                    name: ([], []) for name in LIBRARY_SERIES
                }
                counter = iter(range(1, 1 << 30))
                for run in range(runs + 2):
                    for name, host_config in LIBRARY_SERIES.items():
                        set_up, tear_down = one_container(manager, root, next(counter), host_config)
                        if run >= 2:
                            results[name][0].append(set_up)
                            results[name][1].append(tear_down)
                return results
            finally:
                manager.teardown()
    finally:
        namespace.close()


# -- 2. whole engines ---------------------------------------------------------------------------


class Engine:
    """An engine to measure: its API socket and a CLI environment for it."""

    def __init__(self, label: str, socket_path: Path, env: dict[str, str]) -> None:
        self.label = label
        self.socket_path = socket_path
        self.env = env
        self.starts: dict[str, list[float]] = {name: [] for name in ENGINE_SERIES}
        self.throughput: list[float] = []

    def api(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = api_request(self.socket_path, method, path, body, timeout=120)
        if status >= 400:
            raise RuntimeError(f"{self.label}: {method} {path}: {status} {answer.decode()}")
        return json.loads(answer) if answer.strip() else None

    def docker(self, cli: str, *arguments: str, timeout: float = 600) -> str:
        result = subprocess.run(
            [cli, *arguments], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"{self.label}: docker {' '.join(arguments)}: {result.stderr}")
        return result.stdout

    def timed_start(self, network: str) -> float:
        """The start of a new busybox container on ``network``, in ms; removed after."""
        body = {"Image": "busybox", "Cmd": ["sleep", "600"], "HostConfig": {"NetworkMode": network}}
        container_id = self.api("POST", "/containers/create", body)["Id"]
        try:
            started = time.perf_counter()
            self.api("POST", f"/containers/{container_id}/start")
            return (time.perf_counter() - started) * 1000
        finally:
            self.api("DELETE", f"/containers/{container_id}?force=1")


def measure_starts(engines: list[Engine], runs: int) -> None:
    for run in range(runs + 2):
        for engine in engines:
            for name, network in ENGINE_SERIES.items():
                elapsed = engine.timed_start(network)
                if run >= 2:
                    engine.starts[name].append(elapsed)


# -- 3. throughput ------------------------------------------------------------------------------


def container_transfer(engine: Engine, cli: str) -> float:
    """MB/s of one transfer between two python containers on the user network."""
    engine.docker(cli, "run", "-d", "--name", "receiver", "--network", "bench", "python",
                  "python3", "-c", RECEIVER, "0.0.0.0", str(PORT))  # fmt: skip
    try:
        sender = ["python3", "-c", SENDER, "receiver", str(PORT), str(TRANSFER_BYTES)]
        engine.docker(cli, "run", "--rm", "--network", "bench", "python", *sender)
        engine.docker(cli, "wait", "receiver")
        received, seconds = engine.docker(cli, "logs", "receiver").split()[-2:]
    finally:
        engine.docker(cli, "rm", "-f", "receiver")
    return int(received) / float(seconds) / 1e6


def loopback_transfer() -> float:
    """MB/s of the same transfer between two processes on the host's loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, "127.0.0.1", port], stdout=subprocess.PIPE, text=True
    )
    assert receiver.stdout is not None
    receiver.stdout.readline()  # listening
    subprocess.run(
        [sys.executable, "-c", SENDER, "127.0.0.1", port, str(TRANSFER_BYTES)], check=True
    )
    received, seconds = receiver.stdout.read().split()
    receiver.wait()
    return int(received) / float(seconds) / 1e6


def measure_throughput(engines: list[Engine], cli: str, rounds: int) -> list[float]:
    loopback: list[float] = []
    for _ in range(rounds):
        loopback.append(loopback_transfer())
        for engine in engines:
            engine.throughput.append(container_transfer(engine, cli))
    return loopback


# -- the run ------------------------------------------------------------------------------------


def with_engines(work: Callable[[list[Engine], str], None]) -> None:
    """Our engine and a reference dockerd, both with busybox and python and a user network
    named bench, for ``work(engines, cli)``; everything removed after."""
    cli = str(find_docker_cli())
    with tempfile.TemporaryDirectory(prefix="slipway-bench-net-") as tmp:
        workdir = Path(tmp)
        with hub_and_engine(workdir) as (hub, host):
            config = workdir / "config"
            config.mkdir()
            ours = Engine(
                "our engine",
                workdir / "engine.sock",
                dict(os.environ, DOCKER_HOST=host, DOCKER_CONFIG=str(config)),
            )
            try:
                mirror = ["--registry-mirror", f"http://{hub}", "--insecure-registry", hub]
                with reference_dockerd(workdir / "ref", mirror) as handle:
                    handle.reach(hub)
                    reference = Engine("reference dockerd", handle.socket, handle.env)
                    engines = [ours, reference]
                    for engine in engines:
                        for image in ("busybox", "python"):
                            engine.docker(cli, "pull", "-q", image)
                        engine.docker(cli, "network", "create", "bench")
                    try:
                        work(engines, cli)
                    finally:
                        for engine in engines:
                            subprocess.run(
                                [cli, "rm", "-f", "receiver"], env=engine.env, capture_output=True
                            )
            finally:
                api_request(workdir / "engine.sock", "DELETE", "/networks/bench")


def spread(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples):7.1f}  min {min(samples):7.1f}  "
        f"max {max(samples):7.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="throughput transfers of each")
    args = parser.parse_args()
    library = library_series(args.runs)
    measured: dict[str, Any] = {}

    def work(engines: list[Engine], cli: str) -> None:
        measure_starts(engines, args.runs)
        measured["loopback"] = measure_throughput(engines, cli, args.rounds)
        measured["engines"] = engines

    with_engines(work)
    print(f"1. network manager alone, ms ({args.runs} runs each, after 2 warm-up runs)")
    for name, (set_up, tear_down) in library.items():
        print(f"  {name:22} set-up    {spread(set_up)}")
        print(f"  {'':22} tear-down {spread(tear_down)}")
    engines: list[Engine] = measured["engines"]
    print(f"\n2. POST /containers/{{id}}/start, median ms ({args.runs} runs each)")
    print(f"  {'':34}" + "".join(f"{engine.label:>20}" for engine in engines))
    medians = [{k: statistics.median(v) for k, v in e.starts.items()} for e in engines]
    for name in ENGINE_SERIES:
        print(f"  {'start, ' + name:34}" + "".join(f"{m[name]:>20.1f}" for m in medians))
    for name in ("default bridge", "user network"):
        label = f"network set-up, {name}"
        print(f"  {label:34}" + "".join(f"{m[name] - m['none']:>20.1f}" for m in medians))
    loopback = statistics.median(measured["loopback"])
    print(f"\n3. TCP throughput, 1 GiB in one connection, median MB/s ({args.rounds} rounds)")
    print(f"  {'host loopback':52}{loopback:>10.0f}")
    for engine in engines:
        figure = statistics.median(engine.throughput)
        label = f"two containers on a bridge, {engine.label}"
        print(f"  {label:52}{figure:>10.0f}   ratio to loopback {figure / loopback:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
