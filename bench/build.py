"""`docker build` of the course's two Dockerfiles (the node web app, and the multi-stage Go
app), cold (`--no-cache`, base images already pulled) and cached (an unchanged rebuild), in
three configurations: (a) our CLI against our engine, (b) the real docker CLI 28 against our
engine (the legacy builder's API), (c) the real CLI against a reference dockerd (Debian's
docker.io, its legacy builder) pulling the same base images from the same hub. Interleaved
runs, medians, and each median's ratio to (c). Must run as root. Prints figures only.

The multi-stage Dockerfile says `COPY go.mod go.sum ./`: the reference's legacy builder
refuses the course's `COPY go.mod go.sum .`, which our engine accepts as BuildKit does.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.engine_run import cli_env, hub_and_engine  # noqa: E402
from tests.build.conftest import MULTI_APP, NODE_APP, write_tree  # noqa: E402
from tests.support.dockerd import find_docker_cli, reference_dockerd  # noqa: E402

APPS = {
    "node": NODE_APP,
    "multi": {
        **MULTI_APP,
        "Dockerfile": MULTI_APP["Dockerfile"].replace(
            "COPY go.mod go.sum .", "COPY go.mod go.sum ./"
        ),
    },
}


class Configuration:
    """A CLI and the engine it talks to, with the times measured so far."""

    def __init__(self, label: str, cli: list[str], env: dict[str, str]) -> None:
        self.label = label
        self.cli = cli
        self.env = env
        self.times: dict[str, list[float]] = {}
        self.failure = ""

    def timed(self, name: str, context: Path, *args: str) -> None:
        if self.failure:
            return
        started = time.perf_counter()
        result = subprocess.run(
            [*self.cli, "build", *args, "."],
            env=self.env,
            cwd=context,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            lines = (result.stderr.strip() or result.stdout.strip()).splitlines() or [""]
            self.failure = (
                f"`docker build {' '.join(args)}` exited {result.returncode}: {lines[-1]}"
            )
            return
        self.times.setdefault(name, []).append(elapsed)


def measure(configurations: list[Configuration], contexts: dict[str, Path], runs: int) -> None:
    for app, context in contexts.items():
        for config in configurations:  # warm-up: pulls the base images, fills the caches
            config.timed("warm-up", context, "-t", f"bench:{app}")
        for _ in range(runs):
            for config in configurations:
                config.timed(f"{app} cold", context, "--no-cache", "-t", f"bench:{app}")
            for config in configurations:
                config.timed(f"{app} cached", context, "-t", f"bench:{app}")


def report(configurations: list[Configuration], runs: int) -> None:
    letters = "abc"
    print(f"{runs} interleaved runs each; medians in ms, and their ratio to (c)\n")
    for letter, config in zip(letters, configurations, strict=True):
        print(f"({letter}) {config.label}")
        if config.failure:
            print(f"    failed: {config.failure}")
    header = "".join(f"{f'({letter}) ms':>10}{'ratio':>7}" for letter in letters)
    print(f"\n{'docker build':<28}{header}")
    for name in ("node cold", "node cached", "multi cold", "multi cached"):
        reference = configurations[-1].times.get(name, [])
        cells = ""
        for config in configurations:
            times = config.times.get(name, [])
            if len(times) < runs:
                cells += f"{'-':>10}{'':>7}"
                continue
            ratio = ""
            if len(reference) == runs:
                ratio = f"{statistics.median(times) / statistics.median(reference):.2f}"
            cells += f"{statistics.median(times) * 1000:>10.0f}{ratio:>7}"
        print(f"{name:<28}{cells}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    real_cli = [str(find_docker_cli())]
    our_cli = [sys.executable, "-m", "simulator.cli"]
    with tempfile.TemporaryDirectory(prefix="slipway-bench-build-") as tmp:
        workdir = Path(tmp)
        contexts = {app: write_tree(workdir / f"app-{app}", files) for app, files in APPS.items()}
        with hub_and_engine(workdir) as (hub, host):
            mirror = ["--registry-mirror", f"http://{hub}", "--insecure-registry", hub]
            with reference_dockerd(workdir / "ref", mirror) as reference:
                reference.reach(hub)
                ours = cli_env(workdir / "a", host)
                ours["PYTHONPATH"] = str(REPO_ROOT)  # our CLI runs from the context dir
                configurations = [
                    Configuration("our CLI, our engine", our_cli, ours),
                    Configuration("real CLI, our engine", real_cli, cli_env(workdir / "b", host)),
                    Configuration("real CLI, reference dockerd", real_cli, reference.env),
                ]
                measure(configurations, contexts, args.runs)
    report(configurations, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
