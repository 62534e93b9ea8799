"""Slipway's container commands against a real engine, side by side with the real docker CLI 28
on the same engine: the create requests they send, what they print, their messages and exit
codes, pulls, logs, inspect, cp, export, prune and signal forwarding."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.engine.containers import RUNTIME_ROOT_BASE, runtime_root_for
from tests.engine.conftest import REPO_ROOT, DockerRun, Hub, RunningEngine, docker_for

# The hub, ``start_engine`` and ``docker_cli`` come from tests/cli/conftest.py.
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _remove_cgroups(name: str) -> None:
    """Kill what is left in the cgroup tree ``name`` (every hierarchy), then remove it."""
    for base in [CGROUP_ROOT / name, *CGROUP_ROOT.glob(f"*/{name}")]:
        if not base.is_dir():
            continue
        for directory in [*sorted(base.rglob("*/"), reverse=True), base]:
            procs = directory / "cgroup.procs"
            if procs.exists():
                for pid in procs.read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            for _ in range(100):
                try:
                    directory.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)


@pytest.fixture
def engine(
    start_engine: Callable[..., RunningEngine], hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningEngine]:
    """An engine whose containers live in a cgroup of this test's own (other tests clean
    theirs while this one runs); every container is removed, and nothing is left mounted or
    in a cgroup, when the test ends."""
    cgroup = f"slipway-test-cli-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("SLIPWAY_CGROUP_PARENT", f"/{cgroup}/engine")
    started = start_engine("--mirror", hub.url, "--offline")
    try:
        yield started
    finally:
        api = started.api()
        try:
            for summary in api.get("/containers/json?all=1").json():
                api.request("DELETE", f"/containers/{summary['Id']}?force=1&v=1")
        finally:
            started.stop()
            _remove_cgroups(cgroup)
            with open("/proc/self/mounts") as mounts:
                points = [line.split()[1] for line in mounts]
            for point in reversed(points):
                if point.startswith(str(started.data_root)):
                    subprocess.run(["umount", "-l", point], check=False)
            shutil.rmtree(runtime_root_for(started.data_root), ignore_errors=True)
            with contextlib.suppress(OSError):
                RUNTIME_ROOT_BASE.rmdir()  # only if no other engine's runtime is in it


@pytest.fixture
def docker(engine: RunningEngine, docker_cli: str, tmp_path: Path) -> DockerRun:
    """The real docker CLI 28 against ``engine``."""
    return docker_for(engine, docker_cli, tmp_path)


pytestmark = pytest.mark.timeout(600)
WAIT_SECONDS = 60  # a bound against hangs, never a measure

Result = tuple[int, str, str]


def cli_environment(engine: RunningEngine, tmp_path: Path) -> dict[str, str]:
    """What the ``docker`` fixture gives the real CLI, plus our package on the path."""
    config = tmp_path / f"docker-config-{engine.socket_path.parent.name}"
    config.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DOCKER_HOST": engine.host,
        "DOCKER_CONFIG": str(config),
        "PYTHONPATH": str(REPO_ROOT),
    }


OUR_CLI = [sys.executable, "-m", "simulator.cli"]


class OurCli:
    """Slipway's CLI (``python -m simulator.cli``) run against an engine, stdin empty unless
    ``input`` is given."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = environment

    def __call__(
        self, *arguments: str, input: str | None = None, timeout: float = WAIT_SECONDS
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*OUR_CLI, *arguments],
            env=self.environment,
            input="" if input is None else input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def binary(self, *arguments: str, input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*OUR_CLI, *arguments],
            env=self.environment,
            input=input,
            capture_output=True,
            timeout=WAIT_SECONDS,
        )


@pytest.fixture
def ours(engine: RunningEngine, tmp_path: Path) -> OurCli:
    return OurCli(cli_environment(engine, tmp_path))


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def _outcome(result: subprocess.CompletedProcess[str]) -> Result:
    return result.returncode, result.stdout, result.stderr


TIMES = re.compile(
    r"(Less than a second|About an? (minute|hour)|\d+ (seconds?|minutes?|hours?))( ago)?"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
)


def normalise(text: str, prefix: str = "") -> str:
    """IDs, times and the scenario's name prefix made neutral; columns compared by their
    order, not their widths (which follow the lengths of the times)."""
    if prefix:
        text = text.replace(prefix, "P-")
    text = re.sub(r'^time="[^"]*" level=\w+ msg=.*\n', "", text, flags=re.M)  # Go's log lines
    text = re.sub(r"\b[0-9a-f]{64}\b", "<id>", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "<short-id>", text)
    text = TIMES.sub("<time>", text)
    return re.sub(r" {2,}", "  ", text)


def _same(real: subprocess.CompletedProcess[str], mine: subprocess.CompletedProcess[str]):
    assert _outcome(mine) == _outcome(real)


# -- the create request -------------------------------------------------------------------------


class RecordingProxy:
    """A unix socket in front of the engine's that keeps what clients send through it."""

    def __init__(self, target: Path, path: Path) -> None:
        self.target = target
        self.path = path
        self.sent: list[bytearray] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(16)
        self.threads: list[threading.Thread] = []
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(str(self.target))
            record = bytearray()
            self.sent.append(record)
            for source, sink, keep in ((client, upstream, record), (upstream, client, None)):
                thread = threading.Thread(target=self._pipe, args=(source, sink, keep), daemon=True)
                thread.start()
                self.threads.append(thread)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, keep: bytearray | None) -> None:
        try:
            while data := source.recv(65536):
                if keep is not None:
                    keep += data
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def create_bodies(self) -> list[tuple[str, dict[str, Any]]]:
        """The (query, body) of each POST /containers/create sent so far."""
        found = []
        for record in self.sent:
            data = bytes(record)
            while b"\r\n\r\n" in data:
                head, _, rest = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                body, data = rest[:length], rest[length:]
                target = lines[0].split()[1]
                if "/containers/create" in target:
                    found.append((target.partition("?")[2], json.loads(body)))
        return found

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=WAIT_SECONDS)


@pytest.fixture
def proxy(engine: RunningEngine) -> Iterator[RecordingProxy]:
    directory = Path(tempfile.mkdtemp(prefix="slipway-proxy-"))
    recorder = RecordingProxy(engine.socket_path, directory / "proxy.sock")
    try:
        yield recorder
    finally:
        recorder.close()
        (directory / "proxy.sock").unlink(missing_ok=True)
        directory.rmdir()


CREATE_COMMAND_LINES = [
    ["busybox"],
    ["-it", "--rm", "busybox", "sh"],
    ["-i", "-a", "stdin", "-a", "stderr", "busybox", "cat"],
    [
        "--name", "full", "-e", "A=1", "-e", "FROM_ENV", "-p", "8080:80",
        "-p", "127.0.0.1:9000-9001:90-91/udp", "-p", "5000", "-P", "--expose", "3000-3001",
        "-v", "vol1:/data:ro", "-v", "/tmp:/host", "-v", "/anon",
        "--mount", "type=volume,src=v2,dst=/v2,readonly,volume-label=a=b",
        "--mount", "type=bind,source=/tmp,target=/b2,bind-propagation=rshared",
        "--mount", "type=tmpfs,dst=/t,tmpfs-size=64m", "-w", "/work", "-u", "1000:1000",
        "--entrypoint", "/bin/sh", "--restart", "on-failure:3", "-m", "64m", "--cpus", "1.5",
        "--pids-limit", "50", "-l", "a=b", "-l", "c", "--init", "-h", "myhost",
        "--read-only", "--tmpfs", "/run:size=10m", "--stop-signal", "SIGINT",
        "--stop-timeout", "7", "--cap-add", "net_admin", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--sysctl", "net.ipv4.ip_forward=1",
        "--add-host", "foo:1.2.3.4", "--dns", "8.8.8.8", "--ulimit", "nofile=1024:2048",
        "--log-driver", "json-file", "--log-opt", "max-size=1m", "--health-cmd", "true",
        "--health-interval", "1m30s", "--health-retries", "3", "--memory-swap", "128m",
        "--shm-size", "1g", "-c", "512", "--platform", "linux/amd64", "busybox", "-c", "echo",
    ],
    [
        "--network", "mynet", "--network-alias", "web", "--ip", "10.0.0.5",
        "--no-healthcheck", "-p", "published=8081,target=81", "--dns-search", "example.com",
        "--dns-option", "ndots:2", "--group-add", "10", "--oom-kill-disable",
        "--annotation", "k=v", "--gpus", "all", "--device", "/dev/zero:/dev/z:r",
        "--security-opt", "systempaths=unconfined", "--entrypoint=", "--blkio-weight", "300",
        "--device-read-bps", "/dev/sda:1mb", "--memory-swappiness", "50", "busybox",
    ],
    ["--use-api-socket", "--env-file", "/dev/null", "busybox"],
]  # fmt: skip


def test_run_and_create_send_the_create_request_the_real_cli_sends(
    proxy: RecordingProxy, engine: RunningEngine, docker: DockerRun, docker_cli: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    _ok(docker("pull", "busybox"))
    environment = cli_environment(engine, tmp_path)
    environment.update(DOCKER_HOST=f"unix://{proxy.path}", FROM_ENV="from the environment")
    credentials = {"auths": {"https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"}}}
    (Path(environment["DOCKER_CONFIG"]) / "config.json").write_text(json.dumps(credentials))
    ours_sent = {}
    for arguments in CREATE_COMMAND_LINES:
        sent = []
        for cli in ([docker_cli], OUR_CLI):
            proxy.sent.clear()
            subprocess.run(
                [*cli, "create", *arguments],
                env=environment,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=WAIT_SECONDS,
            )
            bodies = proxy.create_bodies()
            for _, body in bodies:  # Go walks the maps of -v and -e values in random order
                body["HostConfig"]["Binds"] = sorted(body["HostConfig"]["Binds"] or [])
                body["Env"] = sorted(body["Env"] or [])
            sent.append(bodies)
            docker("rm", "-f", "full")
        assert sent[1] == sent[0] and sent[0], arguments
        ours_sent[arguments[1] if arguments[0] == "--name" else ""] = sent[1]
    api_socket = ours_sent[""][-1][1]  # the last command line without a name
    assert api_socket["Env"] == ["DOCKER_CONFIG=/run/secrets/docker"]
    assert api_socket["HostConfig"]["Mounts"][0]["Source"] == str(proxy.path)
    query, full = ours_sent["full"][0]
    assert query == "name=full&platform=linux%2Famd64"
    assert "FROM_ENV=from the environment" in full["Env"]
    assert full["HostConfig"]["NanoCpus"] == 1_500_000_000
    assert full["Healthcheck"]["Interval"] == 90_000_000_000


# -- what the commands print --------------------------------------------------------------------


def _scenario(run: DockerRun, prefix: str) -> list[tuple[str, Result]]:
    """The lifecycle of a few containers, named with ``prefix``; each step's outcome."""
    p = prefix
    talker = "echo out; echo err >&2; sleep 600"
    steps = [
        ["run", "-d", "--name", f"{p}web", "busybox", "sh", "-c", talker],
        ["run", "--name", f"{p}done", "busybox", "sh", "-c", "echo finished; exit 3"],
        ["create", "--name", f"{p}new", "-l", "role=spare", "busybox", "echo", "hi"],
        ["ps", "-a", "--filter", f"name={p}", "--format", "{{.Names}} {{.Command}} {{.State}}"],
        ["ps", "--filter", f"name={p}"],
        ["ps", "-a", "--filter", f"name={p}", "--filter", "status=exited", "-q"],
        ["ps", "-a", "--filter", "label=role=spare", "--format", "table {{.Names}}\t{{.Labels}}"],
        ["logs", f"{p}web"],
        ["logs", "--tail", "1", "-t", f"{p}done"],
        ["inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{json .Config.Cmd}}",
         f"{p}web", f"{p}done", f"{p}nosuch"],
        ["container", "inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", f"{p}new"],
        ["inspect", f"{p}nosuch"],
        ["top", f"{p}web"],
        ["port", f"{p}web"],
        ["port", f"{p}web", "80"],
        ["rename", f"{p}new", f"{p}renamed"],
        ["pause", f"{p}web"],
        ["unpause", f"{p}web", f"{p}nosuch"],
        ["restart", "-t", "1", f"{p}web"],
        ["kill", "-s", "KILL", f"{p}web"],
        ["wait", f"{p}web", f"{p}done"],
        ["start", f"{p}web", f"{p}nosuch"],
        ["stop", "-t", "1", f"{p}web", f"{p}nosuch"],
        ["start", "-a", f"{p}renamed"],
        ["rm", f"{p}web", f"{p}nosuch"],
        ["rm", "-f", f"{p}nosuch"],
        ["run", "--rm", "busybox", "sh", "-c", "exit 0"],
        ["ps", "-a", "--filter", f"name={p}", "--format", "{{.Names}}: {{.Status}}"],
        ["container", "rm", "-v", f"{p}done", f"{p}renamed"],
    ]  # fmt: skip
    outcomes = []
    for step in steps:
        result = run(*step)
        shown = (result.returncode, normalise(result.stdout, p), normalise(result.stderr, p))
        if step[0] == "top":  # process IDs and CPU times
            shown = (shown[0], re.sub(r"[\d:]+", "N", shown[1]), shown[2])
        outcomes.append((normalise(" ".join(step), p), shown))
    return outcomes


def test_the_container_lifecycle_prints_what_the_real_cli_prints(
    docker: DockerRun, ours: OurCli
) -> None:
    _ok(docker("pull", "busybox"))
    real = _scenario(docker, "real-")
    mine = _scenario(ours, "ours-")
    for (step, expected), (_, got) in zip(real, mine, strict=True):
        assert got == expected, step
    assert dict(mine)["ps --filter name=P-"][1].startswith("CONTAINER ID  IMAGE  COMMAND")
    assert dict(mine)["wait P-web P-done"] == (0, "137\n3\n", "")


BAD_COMMAND_LINES = [
    ["run"],
    ["run", "-e", "=x", "busybox"],
    ["run", "--memory", "12x", "busybox"],
    ["run", "--cpus", "abc", "busybox"],
    ["run", "--health-interval", "5", "busybox"],
    ["run", "--pids-limit", "x", "busybox"],
    ["run", "--restart", "on-failure:x", "busybox"],
    ["run", "--add-host", "foo", "busybox"],
    ["run", "-p", "80:80:80:80", "busybox"],
    ["run", "-p", "1-3:5-9", "busybox"],
    ["run", "--mount", "type=bind,src=/x", "busybox"],
    ["run", "-v", "a::b", "busybox"],
    ["run", "-a", "foo", "busybox"],
    ["run", "--pull", "foo", "busybox"],
    ["run", "-d", "-a", "stdout", "busybox"],
    ["run", "--rm", "--restart", "always", "busybox"],
    ["run", "--ulimit", "nofile=10:5", "busybox"],
    ["run", "--sysctl", "kernel.foo=1", "busybox"],
    ["run", "--env-file", "/nonexistent", "busybox"],
    ["run", "-it", "busybox"],
    ["run", "--nosuchflag", "busybox"],
    ["run", "busybox", "nosuchcommand"],
    ["run", "busybox", "/etc"],
    ["run", "--pull", "never", "nosuchimage"],
    ["create", "--pull", "never", "nosuchimage"],
    ["run", "nosuchimage"],
    ["create", "nosuchimage"],
    ["stop"],
    ["stop", "--timeout", "1", "--time", "1", "x"],
    ["logs"],
    ["logs", "--since", "yesterday", "nosuch"],
    ["exec", "nosuch"],
    ["exec", "nosuch", "true"],
    ["cp", "a"],
    ["cp", "a:/x", "b:/y"],
    ["cp", "x", "y"],
    ["port", "nosuch", "80", "90"],
    ["top", "nosuch"],
    ["rename", "nosuch", " "],
    ["attach", "nosuch"],
    ["export", "nosuch"],
    ["ps", "extra"],
    ["ps", "-n", "x"],
    ["ps", "--filter", "bad"],
    ["ps", "--format", "{{.Nope}}"],
    ["inspect", "--type", "thing", "x"],
    ["inspect", "-f", "{{", "x"],
    ["container", "prune", "-f", "--filter", "foo=bar"],
]


def test_bad_command_lines_get_the_real_clis_messages_and_exit_codes(
    docker: DockerRun, ours: OurCli
) -> None:
    _ok(docker("pull", "busybox"))
    for arguments in BAD_COMMAND_LINES:
        expected = docker(*arguments, input="")
        got = ours(*arguments)
        assert expected.returncode != 0, arguments
        assert _outcome(got) == _outcome(expected), arguments


def test_help_of_every_container_command_is_the_real_clis(docker: DockerRun, ours: OurCli):
    commands = [
        "run", "create", "start", "stop", "restart", "kill", "pause", "unpause", "rm", "ps",
        "logs", "inspect", "top", "rename", "port", "wait", "attach", "exec", "cp", "export",
        "container ls", "container rm", "container prune", "container inspect",
    ]  # fmt: skip
    for command in commands:
        _same(docker(*command.split(), "--help"), ours(*command.split(), "--help"))


def test_run_pulls_a_missing_image_showing_docker_progress(docker: DockerRun, ours: OurCli) -> None:
    real = docker("run", "--rm", "busybox", "echo", "pulled")
    _ok(docker("rmi", "busybox"))
    mine = ours("run", "--rm", "busybox", "echo", "pulled")
    _same(real, mine)
    assert mine.stderr.startswith("Unable to find image 'busybox:latest' locally\n")
    assert "Status: Downloaded newer image for busybox:latest" in mine.stderr
    quiet = ours("run", "--rm", "-q", "--pull", "always", "busybox", "true")
    assert _outcome(quiet) == (0, "", "")


def test_run_returns_the_containers_status_and_streams_stdin_without_a_tty(
    docker: DockerRun, ours: OurCli
) -> None:
    _ok(docker("pull", "busybox"))
    both = ours("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 42")
    assert _outcome(both) == (42, "out\n", "err\n")
    sorted_lines = ours("run", "-i", "--rm", "busybox", "sort", "-r", input="a\nc\nb\n")
    assert _outcome(sorted_lines) == (0, "c\nb\na\n", "")
    detached = _ok(ours("run", "-d", "busybox", "sleep", "600")).strip()
    assert re.fullmatch(r"[0-9a-f]{64}", detached)
    assert _ok(ours("inspect", "-f", "{{.State.Running}}", detached)) == "true\n"
    assert _ok(ours("rm", "-f", detached[:5])) == detached[:5] + "\n"  # as the user typed it


def test_run_passes_the_config_files_proxies_as_environment_variables(
    engine: RunningEngine, docker: DockerRun, ours: OurCli, tmp_path: Path
) -> None:
    _ok(docker("pull", "busybox"))
    config = Path(cli_environment(engine, tmp_path)["DOCKER_CONFIG"]) / "config.json"
    proxies = {"default": {"httpProxy": "http://127.0.0.1:3128", "noProxy": "localhost"}}
    config.write_text(json.dumps({"proxies": proxies}))
    arguments = ["run", "--rm", "-h", "box", "-e", "no_proxy=mine", "-e", "A=1", "-e", "A=2"]
    arguments += ["busybox", "env"]
    real, mine = docker(*arguments), ours(*arguments)
    assert sorted(mine.stdout.splitlines()) == sorted(real.stdout.splitlines())
    assert {"HTTP_PROXY=http://127.0.0.1:3128", "NO_PROXY=localhost", "no_proxy=mine", "A=2"} <= (
        set(mine.stdout.splitlines())
    )


def test_run_writes_the_cidfile_and_warns_about_a_localhost_dns(
    docker: DockerRun, ours: OurCli, tmp_path: Path
) -> None:
    _ok(docker("pull", "busybox"))
    cidfile = tmp_path / "cid"
    result = ours("run", "-d", "--cidfile", str(cidfile), "--dns", "127.0.0.1", "busybox", "true")
    assert result.returncode == 0, result.stderr
    assert cidfile.read_text() == result.stdout.strip()
    assert result.stderr == "WARNING: Localhost DNS (127.0.0.1) may fail in containers.\n"
    again = ours("run", "--cidfile", str(cidfile), "busybox", "true")
    assert again.returncode == 125
    assert "container ID file found" in again.stderr


def test_exec_runs_commands_with_their_options_and_exit_codes(
    docker: DockerRun, ours: OurCli
) -> None:
    _ok(ours("run", "-d", "--name", "box", "busybox", "sleep", "600"))
    for arguments in (
        ["exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3"],
        ["exec", "-e", "GREETING=hi", "-w", "/tmp", "-u", "1000:1001", "box", "sh", "-c",
         "echo $GREETING; pwd; id -u; id -g"],
        ["exec", "box", "nosuch"],
        ["exec", "-it", "box", "true"],
    ):  # fmt: skip
        _same(docker(*arguments, input=""), ours(*arguments))
    assert _ok(ours("exec", "-i", "box", "tr", "a-z", "A-Z", input="be kind\n")) == "BE KIND\n"
    echoed = os.urandom(3_000_000)  # more than the socket buffers hold, both ways at once
    assert ours.binary("exec", "-i", "box", "cat", input=echoed).stdout == echoed
    assert _outcome(ours("exec", "-d", "box", "touch", "/detached")) == (0, "", "")
    assert _ok(ours("exec", "box", "sh", "-c", "sleep 1; ls /detached")) == "/detached\n"


def test_logs_follow_until_the_container_ends_and_split_the_streams(ours: OurCli) -> None:
    script = "echo one; echo two >&2; sleep 1; echo three"
    _ok(ours("run", "-d", "--name", "talk", "busybox", "sh", "-c", script))
    followed = ours("logs", "-f", "talk")
    assert _outcome(followed) == (0, "one\nthree\n", "two\n")
    stamped = _ok(ours("logs", "--timestamps", "--since", "1h", "talk")).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "three"]
    assert all(TIMES.fullmatch(line.split(" ", 1)[0]) for line in stamped)
    assert _ok(ours("logs", "--until", "2000-01-01T00:00:00Z", "talk")) == ""


def test_inspect_finds_containers_images_and_volumes_like_the_real_cli(
    docker: DockerRun, ours: OurCli
) -> None:
    _ok(docker("run", "--name", "thing", "-v", "keep:/data", "busybox", "true"))
    for arguments in (
        ["inspect", "thing"],
        ["inspect", "busybox", "keep", "thing"],
        ["inspect", "-f", "json", "keep"],
        ["inspect", "-f", "{{.Name}}", "keep", "nothing"],
        ["inspect", "--type", "volume", "thing"],
        ["inspect", "-s", "-f", "{{.Id}}", "busybox"],
        ["container", "inspect", "-s", "-f", "{{.SizeRw}}", "thing"],
    ):
        _same(docker(*arguments), ours(*arguments))
    indented = json.loads(_ok(ours("inspect", "thing", "busybox")))
    assert [item.get("Name") for item in indented] == ["/thing", None]


def test_container_prune_asks_first_and_reports_what_it_removed(ours: OurCli) -> None:
    stopped = _ok(ours("create", "busybox", "true")).strip()
    declined = ours("container", "prune", input="n\n")
    assert _outcome(declined) == (
        0,
        "WARNING! This will remove all stopped containers.\n"
        "Are you sure you want to continue? [y/N] ",
        "",
    )
    accepted = ours("container", "prune", input="y\n")
    assert accepted.returncode == 0
    assert accepted.stdout.endswith(
        f"[y/N] Deleted Containers:\n{stopped}\n\nTotal reclaimed space: 0B\n"
    )
    assert _ok(ours("container", "prune", "-f")) == "Total reclaimed space: 0B\n"


def _tree(root: Path) -> list[tuple[str, str, int]]:
    listing = []
    for path in sorted(root.rglob("*")):
        kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
        size = path.lstat().st_size if kind == "file" else 0
        listing.append((str(path.relative_to(root)), kind, size))
    return listing


def _host_files(root: Path) -> Path:
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "a").write_text("a\n")
    (root / "dir" / "sub" / "b").write_text("bee\n")
    (root / "file").write_text("top\n")
    (root / "flink").symlink_to("file")
    return root


def test_cp_copies_both_ways_as_the_real_cli_does(
    docker: DockerRun, ours: OurCli, tmp_path: Path
) -> None:
    source = _host_files(tmp_path / "src")
    setup = "mkdir -p /d/sub /pre && echo f1 > /d/f1 && echo f2 > /d/sub/f2 && ln -s f1 /d/link"
    listing = "find /pre /new /dir /file /flink /d2 2>/dev/null | sort | xargs stat -c '%n %F %s'"
    copies_out = [
        ["{c}:/d", "{h}/"],
        ["{c}:/d/.", "{h}/pre"],
        ["{c}:/d/f1", "{h}/pre/file"],
        ["-L", "{c}:/d/link", "{h}/"],
        ["{c}:/d", "{h}/new"],
        ["{c}:/d/f1", "{h}/x/"],
    ]
    copies_in = [[f"{source}/dir", "{c}:/"], [f"{source}/dir/.", "{c}:/pre"],
                 [f"{source}/file", "{c}:/pre/file"], ["-L", f"{source}/flink", "{c}:/"],
                 [f"{source}/dir", "{c}:/new"], [f"{source}/flink", "{c}:/"],
                 [f"{source}/dir", "{c}:/pre/file"]]  # fmt: skip
    results: dict[str, list] = {}
    for who, run in (("real", docker), ("ours", ours)):
        container = f"{who}-box"
        _ok(run("run", "-d", "--name", container, "busybox", "sh", "-c", f"{setup}; sleep 600"))
        _ok(run("exec", container, "sh", "-c", "until [ -e /d/link ]; do sleep 0.1; done"))
        host = tmp_path / who
        (host / "pre").mkdir(parents=True)
        (host / "pre" / "file").write_text("old\n")
        outcomes = []
        for copy in copies_out + copies_in:
            arguments = [part.format(c=container, h=host) for part in copy]
            code, out, err = _outcome(run("cp", *arguments))
            out, err = (normalise(text.replace(container, "BOX"), str(host)) for text in (out, err))
            outcomes.append((code, out, err))
        outcomes.append(_tree(host))
        outcomes.append(_ok(run("exec", container, "sh", "-c", listing)))
        results[who] = outcomes
    assert results["ours"] == results["real"]
    assert ("d/link", "link", 0) in results["ours"][-2]
    assert ("pre/f1", "file", 3) in results["ours"][-2]


def test_cp_streams_tar_archives_on_stdin_and_stdout(ours: OurCli, tmp_path: Path) -> None:
    _ok(ours("run", "-d", "--name", "box", "busybox", "sleep", "600"))
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as writer:
        member = tarfile.TarInfo("hello.txt")
        member.size = 6
        writer.addfile(member, io.BytesIO(b"hello\n"))
    put = ours.binary("cp", "-", "box:/tmp", input=archive.getvalue())
    assert (put.returncode, put.stdout, put.stderr) == (0, b"", b"")
    got = ours.binary("cp", "box:/tmp/hello.txt", "-")
    assert got.returncode == 0, got.stderr
    with tarfile.open(fileobj=io.BytesIO(got.stdout)) as reader:
        assert reader.getnames() == ["hello.txt"]
        assert reader.extractfile("hello.txt").read() == b"hello\n"  # type: ignore[union-attr]
    refused = ours("cp", "-", "box:/tmp/hello.txt", input="")
    assert _outcome(refused) == (1, "", 'destination "box:/tmp/hello.txt" must be a directory\n')


def test_export_writes_the_containers_filesystem_as_the_real_cli(
    docker: DockerRun, ours: OurCli, tmp_path: Path
) -> None:
    _ok(ours("run", "--name", "made", "busybox", "sh", "-c", "echo made > /made.txt"))
    _ok(docker("export", "-o", str(tmp_path / "real.tar"), "made"))
    _ok(ours("export", "-o", str(tmp_path / "ours.tar"), "made"))
    assert (tmp_path / "ours.tar").stat().st_mode & 0o777 == 0o600
    with tarfile.open(tmp_path / "real.tar") as real, tarfile.open(tmp_path / "ours.tar") as mine:
        assert mine.getnames() == real.getnames()
        assert mine.extractfile("made.txt").read() == b"made\n"  # type: ignore[union-attr]
    for arguments in (
        ["export", "-o", str(tmp_path / "missing" / "x.tar"), "made"],
        ["export", "-o", str(tmp_path), "made"],
        ["export", "-o", "/dev/null", "made"],  # a character device
        ["export", "-o", str(tmp_path / "ours.tar" / "x.tar"), "made"],  # under a file
    ):
        _same(docker(*arguments), ours(*arguments))


def test_run_forwards_signals_to_the_container(
    engine: RunningEngine, docker: DockerRun, ours: OurCli, tmp_path: Path
) -> None:
    _ok(docker("pull", "busybox"))
    script = "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done"
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "run", "--rm", "busybox", "sh", "-c", script],
        env=cli_environment(engine, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=WAIT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (process.returncode, out, err) == (7, "got TERM\n", "")
    assert _ok(ours("ps", "-aq")) == ""


def test_start_attach_relays_the_output_and_the_exit_status(ours: OurCli) -> None:
    _ok(ours("create", "--name", "later", "busybox", "sh", "-c", "echo late; exit 5"))
    assert _outcome(ours("start", "-a", "later")) == (5, "late\n", "")
    _ok(ours("create", "-i", "--name", "reader", "busybox", "cat"))
    assert _outcome(ours("start", "-ai", "reader", input="typed\n")) == (0, "typed\n", "")
    two = ours("start", "-a", "later", "reader")
    assert _outcome(two) == (1, "", "you cannot start and attach multiple containers at once\n")
