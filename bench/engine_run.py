"""`docker run --rm busybox true` and `docker ps` with 20 containers: the real docker CLI 28
against our engine, beside the same CLI against a reference dockerd (Debian's docker.io)
started with its own data root and the same busybox image loaded. Interleaved runs,
medians. Must run as root. Prints figures only. (Our own CLI is not written yet.)
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
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from simulator.hub.process import serving  # noqa: E402
from simulator.hub.storage import DEFAULT_ROOT  # noqa: E402
from tests.support.dockerd import find_docker_cli, load_image, reference_dockerd  # noqa: E402


def start_engine(workdir: Path, mirror: str) -> tuple[subprocess.Popen, Path]:
    sock = workdir / "engine.sock"
    engine = subprocess.Popen(
        [sys.executable, "-m", "simulator.engine", "--data-root", str(workdir / "data"),
         "--layer-root", str(workdir / "layers"), "--host", f"unix://{sock}",
         "--mirror", f"http://{mirror}", "--offline",
         "--cgroup-parent", f"/slipway-bench/{os.getpid()}"],
        cwd=REPO_ROOT,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(sock))
            return engine, sock
        except OSError:
            time.sleep(0.05)
    engine.kill()
    raise RuntimeError("the engine did not start")


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


def timed(cli: Path, env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(cli), *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    cli = find_docker_cli()
    with tempfile.TemporaryDirectory(prefix="slipway-bench-engine-") as tmp:
        workdir = Path(tmp)
        (workdir / "config").mkdir()
        with serving(DEFAULT_ROOT) as hub:
            engine, sock = start_engine(workdir, hub)
            ours = dict(
                os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(workdir / "config")
            )
            try:
                subprocess.run([str(cli), "pull", "-q", "busybox"], env=ours, check=True)
                archive = workdir / "busybox.tar"
                subprocess.run(
                    [str(cli), "save", "-o", str(archive), "busybox"], env=ours, check=True
                )
                with reference_dockerd(workdir / "ref") as reference:
                    load_image(reference, archive)
                    theirs = reference.env
                    for env in (ours, theirs):  # warm up
                        timed(cli, env, "run", "--rm", "busybox", "true")
                    run_ours, run_theirs = [], []
                    for _ in range(args.runs):
                        run_ours.append(timed(cli, ours, "run", "--rm", "busybox", "true"))
                        run_theirs.append(timed(cli, theirs, "run", "--rm", "busybox", "true"))
                    for env in (ours, theirs):
                        for n in range(20):
                            timed(
                                cli,
                                env,
                                "run",
                                "-d",
                                "--name",
                                f"bench{n}",
                                "busybox",
                                "sleep",
                                "600",
                            )
                    ps_ours, ps_theirs = [], []
                    for _ in range(args.runs):
                        ps_ours.append(timed(cli, ours, "ps"))
                        ps_theirs.append(timed(cli, theirs, "ps"))
                    for env in (ours, theirs):
                        names = [f"bench{n}" for n in range(20)]
                        subprocess.run([str(cli), "rm", "-f", *names], env=env, capture_output=True)
            finally:
                subprocess.run(
                    [str(cli), "rm", "-f", *[f"bench{n}" for n in range(20)]],
                    env=ours,
                    capture_output=True,
                )
                engine.send_signal(signal.SIGTERM)
                engine.wait(timeout=30)
                shutil.rmtree(workdir / "data", ignore_errors=True)
                remove_cgroups(f"slipway-bench/{os.getpid()}")
    print(f"{args.runs} interleaved runs each, medians, real docker CLI {cli}\n")
    print(f"{'command':<36}{'our engine ms':>15}{'dockerd ms':>12}{'ratio':>8}")
    for label, a, b in (
        ("docker run --rm busybox true", run_ours, run_theirs),
        ("docker ps (20 running containers)", ps_ours, ps_theirs),
    ):
        ma, mb = statistics.median(a) * 1000, statistics.median(b) * 1000
        print(f"{label:<36}{ma:>15.0f}{mb:>12.0f}{ma / mb:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
