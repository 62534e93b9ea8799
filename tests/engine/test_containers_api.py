"""Containers through the real docker CLI 28 against a real engine: run, ps, stop, start,
logs, wait, rm, name conflicts, and nothing left mounted or running afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from simulator.engine.containers import RUNTIME_ROOT_BASE, runtime_root_for
from tests.engine.conftest import DockerRun, Hub, RunningEngine, docker_for
from tests.support.netns import NetworkNamespace

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Per test run, so that the clean-up here never touches another run's containers.
TEST_CGROUP = f"slipway-test-{os.getpid()}"


def _cgroup_dirs() -> list[Path]:
    """The test cgroups, in every hierarchy (v1 or v2), children first."""
    found: list[Path] = []
    for base in [CGROUP_ROOT / TEST_CGROUP, *CGROUP_ROOT.glob(f"*/{TEST_CGROUP}")]:
        if base.is_dir():
            found += sorted((p for p in base.rglob("*") if p.is_dir()), reverse=True) + [base]
    return found


def _clean_cgroups() -> None:
    for directory in _cgroup_dirs():
        procs = directory / "cgroup.procs"
        if procs.exists():
            for pid in procs.read_text().split():
                os.kill(int(pid), signal.SIGKILL)
        for _ in range(50):
            try:
                directory.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mounts") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(str(root))]


@pytest.fixture
def engine(
    start_engine: Callable[..., RunningEngine], hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningEngine]:
    """An engine whose containers live under the test cgroup; every container is removed,
    and nothing is left mounted or in a cgroup, when the test ends."""
    monkeypatch.setenv("SLIPWAY_CGROUP_PARENT", f"/{TEST_CGROUP}/engine")
    started = start_engine("--mirror", hub.url, "--offline")
    try:
        yield started
    finally:
        api = started.api()
        try:
            for summary in api.get("/containers/json?all=1").json():
                api.request("DELETE", f"/containers/{summary['Id']}?force=1&v=1")
        finally:
            _clean_cgroups()
            for target in reversed(_mounts_under(started.data_root)):
                subprocess.run(["umount", "-l", target], check=False)
            shutil.rmtree(runtime_root_for(started.data_root), ignore_errors=True)
            with contextlib.suppress(OSError):
                RUNTIME_ROOT_BASE.rmdir()  # only if no other engine's runtime is in it


@pytest.fixture
def docker(engine: RunningEngine, docker_cli: str, tmp_path: Path) -> DockerRun:
    return docker_for(engine, docker_cli, tmp_path)


def _ok(result: object) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    return result.stdout  # type: ignore[attr-defined]


def test_run_detached_shows_up_in_ps_and_stop_kills_sleep_with_137(docker: DockerRun) -> None:
    container_id = _ok(docker("run", "-d", "--name", "web", "busybox", "sleep", "60")).strip()
    assert len(container_id) == 64
    table = _ok(docker("ps")).splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS"] + [
        "PORTS",
        "NAMES",
    ]
    assert container_id[:12] in table[1] and "Up " in table[1] and table[1].endswith("web")
    assert '"sleep 60"' in table[1]
    _ok(docker("stop", "-t", "1", "web"))
    assert "Exited (137)" in _ok(docker("ps", "-a"))
    assert _ok(docker("ps", "-q")) == ""
    _ok(docker("start", "web"))
    assert "Up " in _ok(docker("ps", "--filter", "name=web"))
    inspected = json.loads(_ok(docker("inspect", "web")))[0]
    assert inspected["State"]["Running"] is True and inspected["Name"] == "/web"
    assert inspected["Config"]["Cmd"] == ["sleep", "60"]


def test_run_prints_output_and_passes_on_exit_code(docker: DockerRun) -> None:
    result = docker("run", "--rm", "busybox", "echo", "hello")
    assert (result.returncode, result.stdout) == (0, "hello\n"), result.stderr
    assert _ok(docker("ps", "-aq")) == ""
    result = docker("run", "busybox", "sh", "-c", "exit 3")
    assert result.returncode == 3, result.stderr
    assert "Exited (3)" in _ok(docker("ps", "-a"))


def test_logs_show_both_streams_and_tail(docker: DockerRun) -> None:
    script = "echo one; echo two >&2; sleep 0.2; echo three"
    _ok(docker("run", "--name", "talk", "busybox", "sh", "-c", script))
    result = docker("logs", "talk")
    assert result.stdout == "one\nthree\n" and result.stderr == "two\n"
    assert _ok(docker("logs", "--tail", "1", "talk")) == "three\n"
    stamped = _ok(docker("logs", "-t", "talk")).splitlines()
    assert stamped[0].endswith("Z one")


def test_remove_running_container_needs_force(docker: DockerRun) -> None:
    _ok(docker("run", "-d", "--name", "web", "busybox", "sleep", "60"))
    result = docker("rm", "web")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Error response from daemon: cannot remove container "web": container is running: '
        "stop the container before removing or force remove"
    )
    _ok(docker("rm", "-f", "web"))
    assert _ok(docker("ps", "-aq")) == ""


def test_name_conflict_is_refused_in_dockers_words(docker: DockerRun) -> None:
    first = _ok(docker("create", "--name", "web", "busybox", "true")).strip()
    result = docker("create", "--name", "web", "busybox", "true")
    assert result.returncode == 1
    assert docker("run", "--name", "web", "busybox", "true").returncode == 125
    assert (
        f'Conflict. The container name "/web" is already in use by container "{first}". You '
        "have to remove (or rename) that container to be able to reuse that name."
    ) in result.stderr


def test_wait_returns_the_exit_code(docker: DockerRun) -> None:
    _ok(docker("run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 1; exit 5"))
    assert _ok(docker("wait", "short")).strip() == "5"


def test_rm_force_of_every_container_leaves_nothing(
    docker: DockerRun, engine: RunningEngine
) -> None:
    for name in ("one", "two", "three"):
        _ok(docker("run", "-d", "--name", name, "busybox", "sleep", "60"))
    _ok(docker("create", "busybox", "true"))
    ids = _ok(docker("ps", "-aq")).split()
    assert len(ids) == 4
    _ok(docker("rm", "-f", *ids))
    assert _ok(docker("ps", "-aq")) == ""
    assert _mounts_under(engine.data_root) == []
    leftover = [d for d in _cgroup_dirs() if (d / "cgroup.procs").exists()]
    assert all(not (d / "cgroup.procs").read_text().strip() for d in leftover)


def test_unknown_container_and_rename(docker: DockerRun) -> None:
    result = docker("inspect", "nope")
    assert "No such object: nope" in result.stderr or "No such container" in result.stderr
    _ok(docker("create", "--name", "old", "busybox", "true"))
    _ok(docker("rename", "old", "new"))
    assert _ok(docker("ps", "-a", "--format", "{{.Names}}")).strip() == "new"


def test_events_follow_the_lifecycle(docker: DockerRun, engine: RunningEngine) -> None:
    assert docker("run", "--name", "brief", "busybox", "sh", "-c", "exit 2").returncode == 2
    _ok(docker("rename", "brief", "briefer"))
    _ok(docker("rm", "briefer"))
    until = int(time.time()) + 1
    answer = engine.api().get(f"/events?since=0&until={until}")
    events = [json.loads(line) for line in answer.body.splitlines() if line.strip()]
    actions = [event["Action"] for event in events if event["Type"] == "container"]
    assert actions == ["create", "attach", "start", "die", "rename", "destroy"]
    die = next(event for event in events if event["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "2"
    assert die["Actor"]["Attributes"]["image"] == "busybox"


def test_anonymous_volume_goes_with_rm_v(docker: DockerRun, engine: RunningEngine) -> None:
    _ok(docker("run", "--name", "keeper", "-v", "/data", "busybox", "sh", "-c", "echo x > /data/f"))
    inspected = json.loads(_ok(docker("inspect", "keeper")))[0]
    (mount,) = inspected["Mounts"]
    assert mount["Type"] == "volume" and mount["Destination"] == "/data"
    assert (engine.data_root / "volumes" / mount["Name"]).is_dir()
    _ok(docker("rm", "-v", "keeper"))
    assert not (engine.data_root / "volumes" / mount["Name"]).exists()


def test_kill_restart_and_filters(docker: DockerRun, engine: RunningEngine) -> None:
    _ok(docker("run", "-d", "--name", "sleeper", "--label", "tier=web", "busybox", "sleep", "60"))
    _ok(docker("create", "--name", "idle", "busybox", "true"))
    assert _ok(docker("ps", "-a", "--filter", "status=created", "--format", "{{.Names}}")) == (
        "idle\n"
    )
    assert _ok(docker("ps", "--filter", "label=tier=web", "--format", "{{.Names}}")) == (
        "sleeper\n"
    )
    assert _ok(docker("ps", "-a", "--filter", "ancestor=busybox", "-q")).count("\n") == 2
    assert _ok(docker("ps", "-a", "--filter", "before=sleeper", "-q")) == ""
    assert _ok(docker("ps", "-a", "--filter", "since=sleeper", "--format", "{{.Names}}")) == (
        "idle\n"
    )
    _ok(docker("kill", "sleeper"))
    assert "Exited (137)" in _ok(docker("ps", "-a", "--filter", "name=sleeper"))
    _ok(docker("restart", "-t", "1", "sleeper"))
    assert "Up " in _ok(docker("ps", "--filter", "name=sleeper"))
    stopped = engine.api().request("POST", "/containers/idle/stop")
    assert stopped.status == 304
    started = engine.api().request("POST", "/containers/sleeper/start")
    assert started.status == 304
    _ok(docker("rm", "-f", "sleeper"))
    assert _ok(docker("ps", "-aq", "--filter", "name=sleeper")) == ""


def test_api_errors_in_dockers_words(engine: RunningEngine, docker: DockerRun) -> None:
    api = engine.api()
    missing = api.post_json("/containers/create", {"Image": "alpine:3.0", "Cmd": ["true"]})
    assert missing.status == 404
    assert missing.json()["message"] == "No such image: alpine:3.0"
    assert api.get("/containers/nope/json").json() == {"message": "No such container: nope"}
    assert api.request("POST", "/containers/nope/start").status == 404
    _ok(docker("create", "--name", "idle", "busybox", "true"))
    assert api.request("POST", "/containers/idle/wait?condition=sometime").status == 400
    assert api.request("POST", "/containers/idle/rename?name=b%20d").status == 400
    assert api.request("POST", "/containers/idle/resize?h=24&w=80").status == 409
    refused = api.post_json(
        "/containers/create",
        {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Binds": ["/etc:/host-etc"]}},
    )
    assert refused.status == 403
    assert api.get("/containers/json?all=1").json()[0]["Names"] == ["/idle"]


def test_logs_follow_streams_until_the_container_exits(docker: DockerRun) -> None:
    script = "for i in 1 2 3; do echo line $i; sleep 0.2; done"
    _ok(docker("run", "-d", "--name", "counter", "busybox", "sh", "-c", script))
    assert _ok(docker("logs", "-f", "counter")) == "line 1\nline 2\nline 3\n"


def test_concurrent_forced_removals_leave_a_consistent_engine(docker: DockerRun) -> None:
    names = [f"box{number}" for number in range(8)]
    for name in names:
        _ok(docker("run", "-d", "--name", name, "busybox", "sleep", "60"))
    with ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(lambda name: docker("rm", "-f", name), names * 2))
    assert all(result.returncode in (0, 1) for result in results)
    assert sum(result.returncode == 0 for result in results) >= len(names)
    assert _ok(docker("ps", "-aq")) == ""
    _ok(docker("run", "--rm", "busybox", "true"))


def test_on_failure_policy_restarts_up_to_its_limit(docker: DockerRun) -> None:
    _ok(docker("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "false"))
    deadline = time.monotonic() + 10
    while True:
        state = json.loads(_ok(docker("inspect", "flaky")))[0]
        if state["RestartCount"] == 2 and not state["State"]["Running"]:
            break
        assert time.monotonic() < deadline, state["State"]
        time.sleep(0.2)
    time.sleep(0.5)
    final = json.loads(_ok(docker("inspect", "flaky")))[0]
    assert final["RestartCount"] == 2 and final["State"]["ExitCode"] == 1
    assert final["State"]["Status"] == "exited"


def test_start_attach_prints_output_again_and_prune_keeps_running(docker: DockerRun) -> None:
    _ok(docker("run", "--name", "greeter", "busybox", "echo", "hi"))
    result = docker("start", "-a", "greeter")
    assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr
    _ok(docker("create", "--name", "kept", "--label", "keep=yes", "busybox", "true"))
    _ok(docker("run", "-d", "--name", "runner", "busybox", "sleep", "60"))
    pruned = _ok(docker("container", "prune", "-f", "--filter", "label!=keep=yes"))
    assert "Total reclaimed space" in pruned
    names = _ok(docker("ps", "-a", "--format", "{{.Names}}")).split()
    assert sorted(names) == ["kept", "runner"]


def _start_engine_on(
    root: Path, socket_path: Path, hub: Hub, netns: NetworkNamespace
) -> RunningEngine:
    log = root / f"engine-{time.monotonic_ns()}.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            netns.command([sys.executable, "-m", "simulator.engine"])
            + ["--data-root", str(root / "data")]
            + ["--layer-root", str(root / "layers"), "--host", f"unix://{socket_path}"]
            + ["--mirror", hub.url, "--offline"],
            cwd=Path(__file__).resolve().parents[2],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    engine = RunningEngine(process, log, socket_path, root / "data", root / "layers", netns)
    deadline = time.monotonic() + 20
    while True:
        try:
            if engine.api(timeout=2).get("/_ping").body == b"OK":
                return engine
        except OSError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, engine.log_text()
        time.sleep(0.02)


def test_containers_outlive_a_killed_engine_and_are_adopted_again(
    hub: Hub, docker_cli: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_CGROUP_PARENT", f"/{TEST_CGROUP}/restore")
    socket_dir = Path(tempfile.mkdtemp(prefix="slipway-restore-"))
    root = tmp_path / "restore"
    root.mkdir()
    netns = NetworkNamespace()  # the node's: the restarted engine comes back into it
    netns.portal(hub.address)
    engines = [_start_engine_on(root, socket_dir / "docker.sock", hub, netns)]
    try:
        docker = docker_for(engines[0], docker_cli, tmp_path)
        script = "echo before; sleep 2; echo after; sleep 60"
        _ok(docker("run", "-d", "--name", "durable", "busybox", "sh", "-c", script))
        engines[0].process.kill()
        engines[0].process.wait()
        engines.append(_start_engine_on(root, socket_dir / "docker.sock", hub, netns))
        assert "Up " in _ok(docker("ps", "--filter", "name=durable"))
        time.sleep(2.2)
        assert _ok(docker("logs", "durable")) == "before\nafter\n"
        _ok(docker("stop", "-t", "1", "durable"))
        assert "Exited (137)" in _ok(docker("ps", "-a"))
    finally:
        api = engines[-1].api()
        for summary in api.get("/containers/json?all=1").json():
            api.request("DELETE", f"/containers/{summary['Id']}?force=1")
        for engine in engines:
            engine.stop()
        netns.close()
        _clean_cgroups()
        shutil.rmtree(runtime_root_for(root / "data"), ignore_errors=True)
        with contextlib.suppress(OSError):
            RUNTIME_ROOT_BASE.rmdir()
        shutil.rmtree(socket_dir, ignore_errors=True)


def test_missing_program_fails_the_run_with_127(docker: DockerRun) -> None:
    result = docker("run", "--name", "typo", "busybox", "nonexistent")
    assert result.returncode == 127, result.stderr
    assert 'exec: "nonexistent": executable file not found in $PATH' in result.stderr
    state = json.loads(_ok(docker("inspect", "typo")))[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("created", 127)


def test_tty_container_logs_raw_and_resizes(docker: DockerRun, engine: RunningEngine) -> None:
    result = docker("run", "-t", "--name", "teletype", "busybox", "echo", "tty")
    # Docker shows "tty\r\n" (the pty's onlcr); the line ending is the runtime's affair.
    assert (result.returncode, result.stdout.replace("\r", "")) == (0, "tty\n"), result.stderr
    assert _ok(docker("logs", "teletype")) == result.stdout
    assert json.loads(_ok(docker("inspect", "teletype")))[0]["Config"]["Tty"] is True
    _ok(docker("run", "-d", "-t", "--name", "shell", "busybox", "sleep", "60"))
    resized = engine.api().request("POST", "/containers/shell/resize?h=40&w=100")
    assert resized.status == 200


def test_pause_freezes_and_stop_still_ends_a_paused_container(docker: DockerRun) -> None:
    _ok(docker("run", "-d", "--name", "frozen", "busybox", "sleep", "60"))
    top = _ok(docker("top", "frozen")).splitlines()
    assert top[0].split()[:3] == ["UID", "PID", "PPID"] and top[1].endswith("sleep 60")
    assert len(top) == 2
    _ok(docker("pause", "frozen"))
    assert "(Paused)" in _ok(docker("ps", "--filter", "name=frozen"))
    assert json.loads(_ok(docker("inspect", "frozen")))[0]["State"]["Status"] == "paused"
    assert docker("pause", "frozen").returncode == 1
    _ok(docker("unpause", "frozen"))
    assert "(Paused)" not in _ok(docker("ps", "--filter", "name=frozen"))
    _ok(docker("pause", "frozen"))
    _ok(docker("stop", "-t", "1", "frozen"))
    assert "Exited (" in _ok(docker("ps", "-a", "--filter", "name=frozen"))


def test_always_policy_restarts_until_stopped(docker: DockerRun) -> None:
    _ok(docker("run", "-d", "--name", "phoenix", "--restart", "always", "busybox", "true"))
    deadline = time.monotonic() + 10
    while json.loads(_ok(docker("inspect", "phoenix")))[0]["RestartCount"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    docker("stop", "-t", "1", "phoenix")
    time.sleep(1.0)
    settled = json.loads(_ok(docker("inspect", "phoenix")))[0]
    time.sleep(1.0)
    later = json.loads(_ok(docker("inspect", "phoenix")))[0]
    assert later["RestartCount"] == settled["RestartCount"]
    assert later["State"]["Status"] == "exited" and later["State"]["Restarting"] is False


def test_the_course_volume_commands(docker: DockerRun) -> None:
    _ok(docker("volume", "create", "--name", "myvol"))
    assert _ok(docker("volume", "ls")).splitlines() == ["DRIVER    VOLUME NAME", "local     myvol"]
    inspected = json.loads(_ok(docker("volume", "inspect", "myvol")))[0]
    assert inspected["Name"] == "myvol" and inspected["Driver"] == "local"
    assert inspected["Scope"] == "local" and inspected["Mountpoint"].endswith("/myvol/_data")
    assert inspected["Options"] is None and inspected["CreatedAt"]
    _ok(docker("volume", "rm", "myvol"))
    assert _ok(docker("volume", "ls", "-q")) == ""
    missing = docker("volume", "inspect", "nosuch")
    assert missing.returncode == 1
    assert "Error response from daemon: get nosuch: no such volume" in missing.stderr


def test_data_in_a_volume_outlives_its_container(docker: DockerRun) -> None:
    _ok(docker("run", "-d", "--name", "voltest", "--mount", "source=ubervol,target=/vol",
               "busybox", "sleep", "60"))  # fmt: skip
    assert "ubervol" in _ok(docker("volume", "ls", "-q"))
    in_use = docker("volume", "rm", "ubervol")
    assert in_use.returncode == 1 and "volume is in use" in in_use.stderr
    _ok(docker("rm", "-f", "voltest"))
    _ok(docker("run", "--rm", "--mount", "source=ubervol,target=/vol", "busybox",
               "sh", "-c", "echo kept > /vol/newfile"))  # fmt: skip
    assert "ubervol" in _ok(docker("volume", "ls", "-q"))
    shown = _ok(docker("run", "--rm", "--mount", "source=ubervol,target=/app", "busybox",
                       "cat", "/app/newfile"))  # fmt: skip
    assert shown == "kept\n"
    _ok(docker("volume", "rm", "ubervol"))
