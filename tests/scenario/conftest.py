"""The course scenario run three ways, once per module: (1) our CLI against a fresh engine of
ours, (2) the real docker CLI 28 against another fresh engine of ours, (3) the real CLI
against a reference dockerd (Debian's docker.io) whose registry mirror is our hub, so that
every run pulls the same bytes. The three runs go side by side in threads. Interactive steps
run in a pty. Each engine, its containers, volumes, mounts and cgroups go at the end."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from simulator.engine.containers import RUNTIME_ROOT_BASE, runtime_root_for
from simulator.network import run_dir_for
from tests.engine.conftest import (  # noqa: F401 - hub and docker_cli are fixtures
    Hub,
    RunningEngine,
    docker_cli,
    hub,
    mirroring_reference,
)
from tests.scenario.course_script import (
    GENERATED_NAME,
    SCRIPT,
    Containers,
    Send,
    Step,
    normalise,
)
from tests.support.netns import NetworkNamespace

REPO_ROOT = Path(__file__).resolve().parents[2]
CGROUP_ROOT = Path("/sys/fs/cgroup")
COMMAND_TIMEOUT = 90.0
EXPECT_TIMEOUT = 20.0
SETTLE = 0.3  # quiet time after an expected prompt, so a late redraw lands before the keys
OURS = "our CLI, our engine"
REAL = "real CLI, our engine"
REFERENCE = "real CLI, reference dockerd"


@dataclass(frozen=True)
class Outcome:
    """What one step printed and how it ended, as run and after normalisation."""

    stdout: str
    stderr: str
    status: int | str
    raw_stdout: str
    raw_stderr: str


@dataclass
class Configuration:
    """A CLI and the engine it talks to."""

    name: str
    cli: list[str]
    env: dict[str, str]
    data_root: Path
    list_containers: Callable[[], list[dict[str, Any]]]
    real_cli: bool
    containers: Containers = field(default_factory=lambda: Containers([], {}))
    labels: dict[str, str] = field(default_factory=dict)  # step label -> container ID
    outcomes: dict[int, Outcome] = field(default_factory=dict)  # step index -> outcome


def _pty_session(command: list[str], env: dict[str, str], step: Step) -> tuple[str, int | str]:
    """Run ``command`` on a new pty (24x80) as its controlling terminal, play the step's
    dialogue, and return the transcript and the exit status (or why it was stopped)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(
        ["setsid", "--ctty", *command],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=REPO_ROOT,
    )
    os.close(slave)
    transcript = b""

    def read(timeout: float) -> bool:
        nonlocal transcript
        if not select.select([master], [], [], timeout)[0]:
            return False
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            data = b""
        transcript += data
        return bool(data)

    missing: bytes | None = None  # what the terminal never showed, if anything
    code: int | None = None
    try:
        for action in step.dialogue:
            if isinstance(action, Send):
                os.write(master, action.keys)
                continue
            deadline = time.monotonic() + EXPECT_TIMEOUT
            while missing is None and not re.search(action.pattern, transcript):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not read(remaining):
                    missing = action.pattern
            if missing is not None:
                break
            settled = time.monotonic() + 3
            while time.monotonic() < settled and read(SETTLE):
                pass
        try:
            code = process.wait(timeout=EXPECT_TIMEOUT if missing is None else SETTLE)
        except subprocess.TimeoutExpired:
            code = None
        while read(SETTLE):
            pass
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    if missing is not None:
        ended = "was stopped" if code is None else f"exited with {code}"
        status: int | str = f"{ended}; the terminal never showed {missing!r}"
    else:
        status = "was stopped: still running after the dialogue" if code is None else code
    return transcript.decode(errors="replace"), status


def _shortest_prefix(container_id: str, others: list[str]) -> str:
    """The shortest prefix of at least 3 characters that names only this container."""
    for length in range(3, len(container_id) + 1):
        prefix = container_id[:length]
        if not any(other.startswith(prefix) for other in others if other != container_id):
            return prefix
    return container_id


def _expand(config: Configuration, step: Step) -> tuple[list[str], dict[str, str]]:
    """The step's arguments as a shell would pass them, and the prefixes typed for IDs."""
    arguments: list[str] = []
    typed: dict[str, str] = {}
    current = [summary["Id"] for summary in config.list_containers()]
    for argument in step.argv:
        if argument == "$(docker ps -aq)":
            listed = subprocess.run(
                [*config.cli, "ps", "-aq"],
                env=config.env,
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )
            arguments += listed.stdout.split()
        elif match := re.fullmatch(r"\{prefix:(\w+)\}", argument):
            container_id = config.labels.get(match.group(1))
            if container_id is None:
                arguments.append(f"no-container-labelled-{match.group(1)}")
                continue
            prefix = _shortest_prefix(container_id, current)
            typed[prefix] = container_id
            arguments.append(prefix)
        else:
            arguments.append(argument)
    return arguments, typed


def _track(config: Configuration, step: Step) -> None:
    """Number the containers that appeared, remember generated names, label the new one."""
    new = []
    for summary in reversed(config.list_containers()):  # oldest first
        container_id = summary["Id"]
        if container_id in config.containers.ids:
            continue
        new.append(container_id)
        config.containers.ids.append(container_id)
        name = summary["Names"][0].lstrip("/")
        if GENERATED_NAME.match(name):
            config.containers.names[container_id] = name
    if step.creates and len(new) == 1:
        config.labels[step.creates] = new[0]


def run_scenario(config: Configuration) -> Configuration:
    """Every step of the script this configuration runs, in order; outcomes are kept."""
    for index, step in enumerate(SCRIPT):
        if not step.real_cli and config.real_cli:
            continue
        arguments, typed = _expand(config, step)
        command = [*config.cli, *arguments]
        if step.dialogue:
            stdout, status = _pty_session(command, config.env, step)
            stderr = ""
        else:
            try:
                result = subprocess.run(
                    command,
                    env=config.env,
                    cwd=REPO_ROOT,
                    capture_output=True,
                    timeout=COMMAND_TIMEOUT,
                )
                stdout = result.stdout.decode(errors="replace")
                stderr = result.stderr.decode(errors="replace")
                status = result.returncode
            except subprocess.TimeoutExpired as expired:
                stdout = (expired.stdout or b"").decode(errors="replace")
                stderr = (expired.stderr or b"").decode(errors="replace")
                status = f"stopped: still running after {COMMAND_TIMEOUT:.0f} s"
        _track(config, step)
        data_root = str(config.data_root)
        config.outcomes[index] = Outcome(
            stdout=normalise(stdout, step, config.containers, typed, data_root),
            stderr=normalise(stderr, step, config.containers, typed, data_root),
            status=status,
            raw_stdout=stdout,
            raw_stderr=stderr,
        )
    return config


def _cli_env(tmp: Path, host: str) -> dict[str, str]:
    config = tmp / "docker-config"
    config.mkdir(parents=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "TERM": "xterm",
        "DOCKER_HOST": host,
        "DOCKER_CONFIG": str(config),
    }


def _start_our_engine(root: Path, mirror: Hub, cgroup_parent: str) -> RunningEngine:
    """A fresh engine in a network namespace of its own, where the hub answers as usual."""
    netns = NetworkNamespace()
    netns.portal(mirror.address)
    socket_dir = Path(tempfile.mkdtemp(prefix="slipway-course-"))  # short: sun_path
    log = root / "engine.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            netns.command([sys.executable, "-m", "simulator.engine"])
            + ["--data-root", str(root / "data"), "--layer-root", str(root / "layers")]
            + ["--host", f"unix://{socket_dir}/docker.sock", "--mirror", mirror.url, "--offline"]
            + ["--cgroup-parent", cgroup_parent],
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    engine = RunningEngine(
        process, log, socket_dir / "docker.sock", root / "data", root / "layers", netns
    )
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError):
            if engine.api(timeout=2).get("/_ping").body == b"OK":
                return engine
        if process.poll() is not None or time.monotonic() > deadline:
            _remove_our_engine(engine, cgroup_parent)
            raise AssertionError(f"the engine did not start: {engine.log_text()}")
        time.sleep(0.05)


def _remove_our_engine(engine: RunningEngine, cgroup_parent: str) -> None:
    """Force-remove the engine's containers and volumes, stop it, and clear what it left."""
    with contextlib.suppress(OSError, ValueError):
        api = engine.api()
        for summary in api.get("/containers/json?all=1").json():
            api.request("DELETE", f"/containers/{summary['Id']}?force=1&v=1")
        for volume in api.get("/volumes").json().get("Volumes") or []:
            api.request("DELETE", f"/volumes/{volume['Name']}?force=1")
    engine.stop()
    assert engine.netns is not None
    engine.netns.close()
    relative = cgroup_parent.strip("/")
    for base in [CGROUP_ROOT / relative, *CGROUP_ROOT.glob(f"*/{relative}")]:
        if not base.is_dir():
            continue
        for directory in [*sorted(base.rglob("*/"), reverse=True), base]:
            with contextlib.suppress(OSError):
                for pid in (directory / "cgroup.procs").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
    network_run_dir = run_dir_for(engine.data_root)
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for root in (engine.data_root, network_run_dir):
        for point in sorted((p for p in points if p.startswith(f"{root}/")), reverse=True):
            subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(network_run_dir, ignore_errors=True)
    shutil.rmtree(runtime_root_for(engine.data_root), ignore_errors=True)
    with contextlib.suppress(OSError):
        RUNTIME_ROOT_BASE.rmdir()  # only if no other engine's runtime is in it
    shutil.rmtree(engine.socket_path.parent, ignore_errors=True)


def _our_configuration(
    name: str, engine: RunningEngine, cli: list[str], tmp: Path, real_cli: bool
) -> Configuration:
    api = engine.api()
    return Configuration(
        name=name,
        cli=cli,
        env=_cli_env(tmp, engine.host),
        data_root=engine.data_root,
        list_containers=lambda: api.get("/containers/json?all=1").json(),
        real_cli=real_cli,
    )


@pytest.fixture(scope="module")
def course(
    hub: Hub,  # noqa: F811 - the fixture imported above
    docker_cli: str,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Configuration]]:
    """The scenario's outcomes in each of the three configurations, by name."""
    tmp = tmp_path_factory.mktemp("course")
    parent = f"/slipway-test/course-{os.getpid()}"
    engines: list[tuple[RunningEngine, str]] = []
    with contextlib.ExitStack() as cleanup:
        for number in (1, 2):
            root = tmp / f"engine-{number}"
            root.mkdir()
            cgroup_parent = f"{parent}-{number}"
            engines.append((_start_our_engine(root, hub, cgroup_parent), cgroup_parent))
            cleanup.callback(_remove_our_engine, *engines[-1])
        reference = cleanup.enter_context(mirroring_reference(hub, tmp / "reference"))
        configurations = [
            _our_configuration(
                OURS, engines[0][0], [sys.executable, "-m", "simulator.cli"], tmp / "1", False
            ),
            _our_configuration(REAL, engines[1][0], [docker_cli], tmp / "2", True),
            Configuration(
                name=REFERENCE,
                cli=[docker_cli],
                env=_cli_env(tmp / "3", reference.host),
                data_root=reference.root / "data",
                list_containers=lambda: reference.get_json("/containers/json?all=1"),
                real_cli=True,
            ),
        ]
        with ThreadPoolExecutor(len(configurations)) as pool:
            finished = list(pool.map(run_scenario, configurations))
        yield {config.name: config for config in finished}
