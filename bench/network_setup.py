"""Network set-up time per container: what ``docker start`` spends on networking.

What it measures
----------------
A NetworkManager (simulator.network) works in a network namespace of the benchmark's own,
standing in for the engine's (the node's). Each sample is the wall-clock time, by
``time.perf_counter``, of one container's network set-up as the engine will drive it:
``configure`` (what ``docker create`` records), ``prepare_sandbox`` (the namespace, the veth
pair on the bridge with address, MAC and default route, and on a user-defined network the
embedded DNS server's sockets and the DNAT rule in the container's namespace) and
``write_files`` (/etc/hosts, /etc/hostname, /etc/resolv.conf). Tear-down (``forget``) is
timed separately. Three series, interleaved run by run after two warm-up runs of each:

``bridge``
    A container on the default bridge (no DNS).
``user network``
    A container on a user-defined network: bridge endpoint plus DNS registration.
``user network, -p 80``
    The same, publishing port 80 on a host port of the engine's choosing (a bound socket,
    a userland proxy process and the engine's NAT rules rewritten).

Each container is removed (``forget``) after its sample, so every run starts from the same
state. The report gives median, min and max of each series, in milliseconds.

The reference dockerd's figure for the same work is not measured yet: it needs the engine's
container lifecycle wired to the network manager first (issue #5, phase 2).

It must run as root (it makes namespaces, links and nftables rules)::

    cd /work/main && .venv/bin/python bench/network_setup.py [--runs N]

It prints figures and asserts nothing. Everything it makes is inside its own namespace and
temporary directory, both gone at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.network import NetworkManager  # noqa: E402
from tests.support.netns import NetworkNamespace  # noqa: E402

SERIES: dict[str, dict[str, Any]] = {
    "bridge": {"NetworkMode": "bridge"},
    "user network": {"NetworkMode": "bench"},
    "user network, -p 80": {
        "NetworkMode": "bench",
        "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": ""}]},
    },
}


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


def summary(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples):7.1f}  min {min(samples):7.1f}  "
        f"max {max(samples):7.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="network set-up time per container")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
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
                results = run_series(manager, root, args.runs)
            finally:
                manager.teardown()
    finally:
        namespace.close()
    print(f"network set-up per container, ms ({args.runs} runs each, after 2 warm-up runs)")
    for name, (set_up, tear_down) in results.items():
        print(f"  {name:22} set-up    {summary(set_up)}")
        print(f"  {'':22} tear-down {summary(tear_down)}")
    return 0


def run_series(
    manager: NetworkManager, root: Path, runs: int
) -> dict[str, tuple[list[float], list[float]]]:
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in SERIES}
    counter = iter(range(1, 1 << 30))

    def measure(host_config: dict[str, Any]) -> tuple[float, float]:
        return one_container(manager, root, next(counter), host_config)

    for _ in range(2):
        for host_config in SERIES.values():
            measure(host_config)
    for _ in range(runs):
        for name, host_config in SERIES.items():
            set_up, tear_down = measure(host_config)
            results[name][0].append(set_up)
            results[name][1].append(tear_down)
    return results


if __name__ == "__main__":
    sys.exit(main())
