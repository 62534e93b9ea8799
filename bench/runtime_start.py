"""Start-to-exit time of a whole foreground ``run``: Slipway's runtime beside runc.

What it measures
----------------
One busybox bundle is built in a temporary directory (``rootfs/bin/busybox`` copied from
``/bin/busybox`` with a symlink for every applet of ``busybox --list``, ``/etc/passwd`` and
``/etc/group`` with root, and ``config.json`` from ``runc spec`` with ``process.terminal``
false and ``process.args`` ``["/bin/true"]``). Both runtimes run that same bundle.

Each sample is the wall-clock time, by ``time.perf_counter`` around ``subprocess.run``, from
spawning the runtime to its exit, so it includes namespace and rootfs set-up, the container's
``/bin/true``, the wait, and the tear-down of cgroup and state directory. Every run has its own
container ID and its own ``--root`` state directory. The series are interleaved round by round
(ours, runc, ours, runc, ...) after two warm-up runs of each, so drift in the machine's load
falls on all of them alike:

``ours``
    ``PYTHON -m simulator.runtime --root D run ID --bundle B`` with the environment this
    benchmark inherits. If that environment sets ``PYTHONDONTWRITEBYTECODE`` and the tree
    has no ``__pycache__``, every run compiles Slipway's runtime modules from source, and
    this figure includes that. (If it doesn't, the runs write ``__pycache__`` directories
    under ``simulator/`` as any run of the runtime would; ``.gitignore`` ignores them.)
``ours, cached .pyc``
    The same command with ``PYTHONDONTWRITEBYTECODE`` removed and ``PYTHONPYCACHEPREFIX``
    pointing into the temporary directory, so the warm-up writes bytecode and the timed runs
    load it, as an installed runtime would. Nothing is written into the repository.
``runc``
    ``runc --root D run ID --bundle B``, run from the bundle directory.
``python -c pass``
    The interpreter's start-up alone, same binary, flags and environment as ``ours``.
``import runtime`` / ``import runtime, cached .pyc``
    ``python -c "import simulator.runtime.__main__, ...container, ...launcher"``: start-up
    plus importing the modules a ``run`` loads, in each of the two environments.

The report gives median, min and max of each series; then, for each of the two environments
of ours, the ratio of our median to runc's and our median minus the interpreter's start-up
median, split into the cost of importing the runtime and the rest (parsing the bundle, the
container's set-up, its run and the tear-down).

It must run as root (both runtimes create namespaces, mounts and cgroups), with the project's
interpreter, not a pyenv shim script::

    cd /work/main && .venv/bin/python bench/runtime_start.py [--runs N] [--python PATH]

It is a benchmark, not a test: it prints figures and asserts nothing. A run that exits
non-zero aborts the benchmark with that run's stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNC = shutil.which("runc") or "/usr/sbin/runc"
BUSYBOX = "/bin/busybox"
WARMUP = 2
TIMEOUT = 60.0
IMPORTS = (
    "import simulator.runtime.__main__, simulator.runtime.container, simulator.runtime.launcher"
)


class BenchError(Exception):
    pass


@dataclass
class Series:
    name: str
    kind: str  # "ours", "runc" or "python"
    tag: str  # goes into the container IDs
    env: dict[str, str]
    args: list[str] = field(default_factory=list)  # for "python": arguments after PYTHON
    samples: list[float] = field(default_factory=list)


@dataclass
class Bench:
    python: str
    tmp: str
    bundle: str
    started: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, root, id)
    counter: int = 0

    def command(self, series: Series) -> tuple[list[str], str]:
        """The command line of one run, and its working directory."""
        if series.kind == "python":
            return [self.python, *series.args], REPO
        self.counter += 1
        container_id = f"bench-{os.getpid()}-{series.tag}-{self.counter}"
        root = os.path.join(self.tmp, "state", container_id)
        self.started.append((series.kind, root, container_id))
        if series.kind == "ours":
            cmd = [self.python, "-m", "simulator.runtime", "--root", root]
            return [*cmd, "run", container_id, "--bundle", self.bundle], REPO
        return [RUNC, "--root", root, "run", container_id, "--bundle", self.bundle], self.bundle

    def once(self, series: Series) -> float:
        cmd, cwd = self.command(series)
        start = time.perf_counter()
        try:
            done = subprocess.run(
                cmd,
                cwd=cwd,
                env=series.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=TIMEOUT,
            )
        except subprocess.TimeoutExpired as e:
            raise BenchError(f"{series.name}: timed out after {TIMEOUT:.0f}s: {cmd}") from e
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            stderr = done.stderr.decode(errors="replace").strip()
            raise BenchError(
                f"{series.name}: exit code {done.returncode}: {' '.join(cmd)}\n{stderr}"
            )
        return elapsed

    def cleanup(self) -> None:
        """Delete any container a run left behind; a foreground run normally removes its own."""
        for kind, root, container_id in self.started:
            if not os.path.exists(os.path.join(root, container_id)):
                continue
            if kind == "ours":
                cmd = [self.python, "-m", "simulator.runtime", "--root", root]
                cmd += ["delete", "--force", container_id]
            else:
                cmd = [RUNC, "--root", root, "delete", "-f", container_id]
            try:
                subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=TIMEOUT)
            except (OSError, subprocess.SubprocessError) as e:
                print(f"warning: could not delete {container_id}: {e}", file=sys.stderr)


def build_bundle(bundle: str) -> None:
    rootfs = os.path.join(bundle, "rootfs")
    bindir = os.path.join(rootfs, "bin")
    etc = os.path.join(rootfs, "etc")
    os.makedirs(bindir)
    os.makedirs(etc)
    shutil.copy2(BUSYBOX, os.path.join(bindir, "busybox"))
    listing = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    for applet in listing.stdout.split():
        if applet != "busybox" and "/" not in applet:
            os.symlink("busybox", os.path.join(bindir, applet))
    with open(os.path.join(etc, "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(etc, "group"), "w") as f:
        f.write("root:x:0:\n")
    subprocess.run([RUNC, "spec"], cwd=bundle, capture_output=True, check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


def check_python(python: str) -> None:
    """Refuse a shell-script shim: it would time the shim's own start-up too."""
    if not os.access(python, os.X_OK):
        raise BenchError(f"--python {python}: not an executable")
    with open(python, "rb") as f:
        if f.read(2) == b"#!":
            raise BenchError(f"--python {python}: a script (a pyenv shim?), not an interpreter")


def environments(tmp: str) -> tuple[dict[str, str], dict[str, str]]:
    """The inherited environment, and one in which the runtime's bytecode is cached.

    Neither needs PYTHONPATH: every interpreter runs with the repository as its cwd, which
    ``-m`` and ``-c`` put first on ``sys.path``.
    """
    inherited = dict(os.environ)
    cached = dict(inherited)
    cached.pop("PYTHONDONTWRITEBYTECODE", None)
    cached["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
    return inherited, cached


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.1f}"


def report(python: str, runs: int, series: list[Series]) -> None:
    med = {s.name: statistics.median(s.samples) for s in series}
    print(f"python: {python}")
    print(f"runc:   {RUNC}")
    dont_write = "set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "unset"
    print(f"PYTHONDONTWRITEBYTECODE as inherited: {dont_write}")
    print(f"{runs} timed runs per series, interleaved, after {WARMUP} warm-up runs each\n")
    width = max(len(s.name) for s in series)
    print(f"{'series':<{width}}  {'median ms':>9}  {'min ms':>9}  {'max ms':>9}")
    for s in series:
        print(f"{s.name:<{width}}  {ms(med[s.name])}  {ms(min(s.samples))}  {ms(max(s.samples))}")

    runc, start_up = med["runc"], med["python -c pass"]
    inherited = (med["ours"], med["import runtime"])
    cached = (med["ours, cached .pyc"], med["import runtime, cached .pyc"])
    print(f"\n{'':<36}{'as inherited':>14}{'cached .pyc':>14}")

    def row(name: str, figures: list[float], digits: int = 1) -> None:
        print(f"{name:<36}" + "".join(f"{x:14.{digits}f}" for x in figures))

    row("ratio ours/runc", [ours / runc for ours, _ in (inherited, cached)], 2)
    row("ours median ms", [ours * 1000 for ours, _ in (inherited, cached)])
    row(
        "ours minus interpreter start-up ms",
        [(o - start_up) * 1000 for o, _ in (inherited, cached)],
    )
    row(
        "  of which importing the runtime ms",
        [(i - start_up) * 1000 for _, i in (inherited, cached)],
    )
    row("  of which the rest ms", [(o - i) * 1000 for o, i in (inherited, cached)])
    row("runc median ms", [runc * 1000])
    row("interpreter start-up median ms", [start_up * 1000])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per series (20)")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for our runtime (this one)"
    )
    options = parser.parse_args(argv)
    if options.runs < 1:
        parser.error("--runs must be at least 1")
    if os.geteuid() != 0:
        print("runtime_start: must run as root", file=sys.stderr)
        return 2

    tmp = tempfile.mkdtemp(prefix="slipway-bench-start-")
    bench = Bench(python=options.python, tmp=tmp, bundle=os.path.join(tmp, "bundle"))
    try:
        check_python(options.python)
        build_bundle(bench.bundle)
        inherited, cached = environments(tmp)
        series = [
            Series("ours", "ours", "ours", inherited),
            Series("runc", "runc", "runc", dict(os.environ)),
            Series("ours, cached .pyc", "ours", "ourspyc", cached),
            Series("python -c pass", "python", "pass", inherited, ["-c", "pass"]),
            Series("import runtime", "python", "imp", inherited, ["-c", IMPORTS]),
            Series("import runtime, cached .pyc", "python", "imppyc", cached, ["-c", IMPORTS]),
        ]
        for _ in range(WARMUP):
            for s in series:
                bench.once(s)
        for _ in range(options.runs):
            for s in series:
                s.samples.append(bench.once(s))
        report(options.python, options.runs, series)
        return 0
    except (BenchError, OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", None)
        print(f"runtime_start: {e}", file=sys.stderr)
        if isinstance(detail, bytes) and detail:
            print(detail.decode(errors="replace"), file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
