"""`docker run --rm busybox true` and `docker ps` with 20 containers, in three configurations:
(a) our CLI (`python -m simulator.cli`) against our engine, (b) the real docker CLI 28 against
our engine, (c) the real CLI against a reference dockerd (Debian's docker.io) started with its
own data root and the same busybox image loaded. Our engine runs in a network namespace of
its own, reaching the hub through a portal. Interleaved runs, medians, and each median's
ratio to (c). Must run as root. Prints figures only; a configuration whose command fails is
reported as failing and left out of the later runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from simulator.engine.containers import runtime_root_for  # noqa: E402
from simulator.hub.process import serving  # noqa: E402
from simulator.hub.storage import DEFAULT_ROOT  # noqa: E402
from tests.support.dockerd import find_docker_cli, load_image, reference_dockerd  # noqa: E402
from tests.support.netns import NetworkNamespace  # noqa: E402

CONTAINERS = 20


@dataclass
class Configuration:
    """A CLI and the engine it talks to, with the times measured so far."""

    label: str
    cli: list[str]
    env: dict[str, str]
    times: dict[str, list[float]] = field(default_factory=dict)
    failure: str = ""

    def timed(self, name: str, *args: str) -> None:
        """Run the CLI once; record the time under ``name``, or the failure."""
        if self.failure:
            return
        started = time.perf_counter()
        result = subprocess.run(
            [*self.cli, *args], env=self.env, cwd=REPO_ROOT, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            output = (result.stderr.strip() or result.stdout.strip()).splitlines() or [""]
            self.failure = f"`docker {' '.join(args)}` exited with {result.returncode}: {output[0]}"
            return
        self.times.setdefault(name, []).append(elapsed)


def start_engine(workdir: Path, netns: NetworkNamespace, mirror: str) -> subprocess.Popen:
    sock = workdir / "engine.sock"
    engine = subprocess.Popen(
        netns.command([sys.executable, "-m", "simulator.engine"])
        + ["--data-root", str(workdir / "data"), "--layer-root", str(workdir / "layers"),
           "--host", f"unix://{sock}", "--mirror", f"http://{mirror}", "--offline",
           "--cgroup-parent", f"/slipway-bench/{os.getpid()}"],
        cwd=REPO_ROOT,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(sock))
            return engine
        except OSError:
            time.sleep(0.05)
    engine.kill()
    raise RuntimeError("the engine did not start")


@contextmanager
def hub_and_engine(workdir: Path) -> Iterator[tuple[str, str]]:
    """The hub of base images, and our engine (data under ``workdir``) in a network namespace
    of its own that reaches the hub: (hub address, engine host). On exit the engine stops
    and its data, runtime state, namespace and cgroups go."""
    with serving(DEFAULT_ROOT) as hub:
        netns = NetworkNamespace()
        try:
            netns.portal(hub)
            engine = start_engine(workdir, netns, hub)
            try:
                yield hub, f"unix://{workdir / 'engine.sock'}"
            finally:
                engine.send_signal(signal.SIGTERM)
                engine.wait(timeout=30)
        finally:
            netns.close()
            shutil.rmtree(workdir / "data", ignore_errors=True)
            shutil.rmtree(runtime_root_for(workdir / "data"), ignore_errors=True)
            remove_cgroups(f"slipway-bench/{os.getpid()}")


def remove_cgroups(relative: str) -> None:
    """Remove the benchmark's cgroup parent (and slipway-bench, if empty) everywhere."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for path in (hierarchy / relative, hierarchy / relative.split("/")[0]):
            if path.is_dir():
                for directory in sorted(path.glob("**/"), key=lambda p: -len(p.parts)):
                    try:
                        directory.rmdir()
                    except OSError:
                        pass


def cli_env(workdir: Path, host: str) -> dict[str, str]:
    config = workdir / "config"
    config.mkdir(parents=True, exist_ok=True)
    return dict(os.environ, DOCKER_HOST=host, DOCKER_CONFIG=str(config))


def measure(configurations: list[Configuration], runs: int) -> None:
    """Warm up, then the interleaved runs: `run --rm`, then `ps` with 20 containers."""
    for config in configurations:
        config.timed("warm-up", "run", "--rm", "busybox", "true")
    for _ in range(runs):
        for config in configurations:
            config.timed("run", "run", "--rm", "busybox", "true")
    names = [f"bench{n}" for n in range(CONTAINERS)]
    for config in (configurations[1], configurations[2]):  # one set per engine
        for name in names:
            config.timed("create", "run", "-d", "--name", name, "busybox", "sleep", "600")
    for _ in range(runs):
        for config in configurations:
            config.timed("ps", "ps")


def report(configurations: list[Configuration], runs: int) -> None:
    letters = "abc"
    print(f"{runs} interleaved runs each; medians in ms, and their ratio to (c)\n")
    for letter, config in zip(letters, configurations, strict=True):
        print(f"({letter}) {config.label}: {' '.join(config.cli)}")
        if config.failure:
            print(f"    failed: {config.failure}")
    header = "".join(f"{f'({letter}) ms':>10}{'ratio':>7}" for letter in letters)
    print(f"\n{'command':<36}{header}")
    for name, label in (
        ("run", "docker run --rm busybox true"),
        ("ps", f"docker ps ({CONTAINERS} running containers)"),
    ):
        reference = configurations[-1].times.get(name, [])
        cells = ""
        for config in configurations:
            times = config.times.get(name, [])
            if len(times) < runs:
                cells += f"{'-':>10}{'':>7}"
                continue
            median = statistics.median(times) * 1000
            ratio = (
                f"{statistics.median(times) / statistics.median(reference):.2f}"
                if (len(reference) == runs)
                else ""
            )
            cells += f"{median:>10.0f}{ratio:>7}"
        print(f"{label:<36}{cells}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    real_cli = [str(find_docker_cli())]
    our_cli = [sys.executable, "-m", "simulator.cli"]
    names = [f"bench{n}" for n in range(CONTAINERS)]
    with tempfile.TemporaryDirectory(prefix="slipway-bench-engine-") as tmp:
        workdir = Path(tmp)
        with hub_and_engine(workdir) as (_, host):
            ours = cli_env(workdir / "ours", host)
            try:
                subprocess.run([*real_cli, "pull", "-q", "busybox"], env=ours, check=True)
                archive = workdir / "busybox.tar"
                subprocess.run(
                    [*real_cli, "save", "-o", str(archive), "busybox"], env=ours, check=True
                )
                with reference_dockerd(workdir / "ref") as reference:
                    load_image(reference, archive)
                    configurations = [
                        Configuration("our CLI, our engine", our_cli, cli_env(workdir / "a", host)),
                        Configuration("real CLI, our engine", real_cli, ours),
                        Configuration("real CLI, reference dockerd", real_cli, reference.env),
                    ]
                    measure(configurations, args.runs)
                    subprocess.run(
                        [*real_cli, "rm", "-f", *names], env=reference.env, capture_output=True
                    )
            finally:
                subprocess.run([*real_cli, "rm", "-f", *names], env=ours, capture_output=True)
    report(configurations, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
