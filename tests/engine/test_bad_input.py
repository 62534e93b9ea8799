"""Bad input to a real engine: malformed JSON, fields of the wrong type, objects that don't
exist, conflicts, and fifty concurrent ``docker rm -f``. Each answer is Docker 28's status and
message (checked against a reference dockerd where its older release says the same), the engine
keeps serving, and its state on disk stays consistent. Also the regression tests of the bugs
that tests/engine/test_fuzz.py found."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.engine.containers import RUNTIME_ROOT_BASE, runtime_root_for
from tests.engine.conftest import DockerRun, EngineApi, Hub, RunningEngine, docker_for
from tests.support.dockerd import (
    DockerdHandle,
    import_rootfs,
    reference_dockerd,
    write_busybox_rootfs_tar,
)

CGROUP_ROOT = Path("/sys/fs/cgroup")
# The oldest API version both our engine and the reference dockerd (Debian's 20.10) serve.
COMMON_API = "/v1.41"
SLEEPER = ["busybox", "sleep", "600"]


# -- an engine that leaves nothing behind, and what "consistent" means ------------------------


def cgroup_parent_dirs(parent: str) -> list[Path]:
    """The engine's cgroup parent in every hierarchy, and everything below it, deepest first."""
    relative = parent.strip("/")
    found: list[Path] = []
    for base in [CGROUP_ROOT / relative, *CGROUP_ROOT.glob(f"*/{relative}")]:
        if base.is_dir():
            found += [Path(d) for d, _, _ in os.walk(base)]
    return sorted(set(found), key=lambda path: len(path.parts), reverse=True)


def mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [point for point in points if point.startswith(f"{root}/")]


def scrub(engine: RunningEngine, cgroup_parent: str) -> None:
    """Remove every container and volume the engine holds, then whatever a failure left: the
    processes in its cgroups, its mounts and its runtime state."""
    api = engine.api()
    try:
        for summary in api.get("/containers/json?all=1").json():
            api.request("DELETE", f"/containers/{summary['Id']}?force=1&v=1")
        for volume in api.get("/volumes").json()["Volumes"]:
            api.request("DELETE", f"/volumes/{volume['Name']}?force=1")
    finally:
        for directory in cgroup_parent_dirs(cgroup_parent):
            procs = directory / "cgroup.procs"
            for pid in procs.read_text().split() if procs.exists() else []:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)
        for point in reversed(mounts_under(engine.data_root)):
            subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(runtime_root_for(engine.data_root), ignore_errors=True)
        with contextlib.suppress(OSError):
            RUNTIME_ROOT_BASE.rmdir()  # only if no other engine's runtime is in it


@pytest.fixture
def cgroup_parent(monkeypatch: pytest.MonkeyPatch) -> str:
    """A cgroup parent of this test's own, for the engine the test starts: at the top, where
    no other test's clean-up of /slipway-test kills its containers."""
    parent = f"/slipway-test-{secrets.token_hex(4)}"
    monkeypatch.setenv("SLIPWAY_CGROUP_PARENT", parent)
    return parent


@pytest.fixture
def engine(
    start_engine: Callable[..., RunningEngine], hub: Hub, cgroup_parent: str
) -> Iterator[RunningEngine]:
    """An engine with the hub as its mirror and a cgroup parent of its own; everything it made
    is removed when the test ends, whatever happened."""
    started = start_engine("--mirror", hub.url, "--offline")
    try:
        yield started
    finally:
        scrub(started, cgroup_parent)


@pytest.fixture
def docker(engine: RunningEngine, docker_cli: str, tmp_path: Path) -> DockerRun:
    return docker_for(engine, docker_cli, tmp_path)


def assert_consistent(engine: RunningEngine) -> None:
    """The engine answers, and what it lists is what it holds on disk: a directory for each
    container, each one inspectable; a volume directory for each volume; volumes used only by
    containers that exist; root filesystems mounted only for containers that exist."""
    api = engine.api()
    assert api.get("/_ping").body == b"OK"
    listed = {summary["Id"] for summary in api.get("/containers/json?all=1").json()}
    on_disk = {path.name for path in (engine.data_root / "containers").iterdir()}
    assert listed == on_disk
    for container_id in listed:
        answer = api.get(f"/containers/{container_id}/json")
        assert (answer.status, answer.json()["Id"]) == (200, container_id)
    volumes = {volume["Name"] for volume in api.get("/volumes").json()["Volumes"]}
    volume_root = engine.data_root / "volumes"
    assert volumes == {path.name for path in volume_root.iterdir() if path.is_dir()}
    for name in volumes:
        assert api.get(f"/volumes/{name}").status == 200
        users = json.loads((volume_root / name / "volume.json").read_text())["References"]
        assert set(users) <= listed, name
    for point in mounts_under(engine.data_root):
        relative = Path(point).relative_to(engine.data_root / "containers")
        assert relative.parts[0] in listed and relative.parts[1:] == ("rootfs",), point
    state = runtime_root_for(engine.data_root)
    tasks = {path.name for path in state.glob("[!.]*")}  # .seccomp-cache is the runtime's
    assert tasks <= listed


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


# -- requests and the answers Docker 28 gives them ------------------------------------------


@dataclass(frozen=True)
class Bad:
    """A request, and Docker's answer to it."""

    method: str
    path: str
    body: bytes | None
    status: int
    message: str
    content_type: str = "application/json"

    def send(self, api: EngineApi) -> tuple[int, str]:
        headers = {"Content-Type": self.content_type} if self.body is not None else {}
        answer = api.request(self.method, self.path, self.body, headers)
        assert answer.headers["Content-Type"] == "application/json", answer.headers
        return answer.status, answer.json()["message"]


def _malformed(path: str, body: str, message: str, content_type: str = "application/json") -> Bad:
    return Bad("POST", path, body.encode(), 400, message, content_type)


MALFORMED = [
    _malformed("/containers/create", "{", "invalid JSON: unexpected EOF"),
    _malformed(
        "/containers/create",
        '{"Image": "busybox",}',
        "invalid JSON: invalid character '}' looking for beginning of object key string",
    ),
    _malformed("/containers/create", '{"Image": "busybox"} {}', "unexpected content after JSON"),
    _malformed("/containers/create", "", "invalid JSON: got EOF while reading request body"),
    _malformed(
        "/containers/create", "null", "config cannot be empty in order to create a container"
    ),
    _malformed(
        "/containers/create",
        "[]",
        "invalid JSON: json: cannot unmarshal array into Go value of type container.CreateRequest",
    ),
    _malformed(
        "/containers/create",
        "{}",
        "unsupported Content-Type header (text/plain): must be 'application/json'",
        content_type="text/plain",
    ),
    _malformed("/volumes/create", "{", "invalid JSON: unexpected EOF"),
    _malformed(
        "/volumes/create",
        "[]",
        "invalid JSON: json: cannot unmarshal array into Go value of type volume.CreateOptions",
    ),
]


def _wrong_type(path: str, body: str, mismatch: str) -> Bad:
    return _malformed(path, body, f"invalid JSON: json: cannot unmarshal {mismatch}")


WRONG_TYPES = [
    _wrong_type(
        "/containers/create",
        '{"Image": 5}',
        "number into Go struct field CreateRequest.Image of type string",
    ),
    _wrong_type(
        "/containers/create",
        '{"Image": "busybox", "HostConfig": {"Memory": "lots"}}',
        "string into Go struct field HostConfig.HostConfig.Memory of type int64",
    ),
    _wrong_type(
        "/containers/create",
        '{"Image": "busybox", "HostConfig": {"Memory": 1.5}}',
        "number 1.5 into Go struct field HostConfig.HostConfig.Memory of type int64",
    ),
    _wrong_type(
        "/containers/create",
        '{"Image": "busybox", "HostConfig": 5}',
        "number into Go struct field CreateRequest.HostConfig of type container.HostConfig",
    ),
    _wrong_type(
        "/containers/create",
        '{"Image": "busybox", "Env": {"A": "B"}}',
        "object into Go struct field CreateRequest.Env of type []string",
    ),
    _wrong_type(
        "/containers/create",
        '{"Image": "busybox", "Tty": "yes"}',
        "string into Go struct field CreateRequest.Tty of type bool",
    ),
    _wrong_type(
        "/containers/create",
        '{"Image": "busybox", "Labels": {"a": 1}}',
        "number into Go struct field CreateRequest.Labels of type string",
    ),
    _wrong_type(
        "/volumes/create",
        '{"Name": 5}',
        "number into Go struct field CreateOptions.Name of type string",
    ),
    _wrong_type(
        "/volumes/create",
        '{"Labels": {"a": 1}}',
        "number into Go struct field CreateOptions.Labels of type string",
    ),
    _wrong_type(
        "/volumes/create",
        '{"DriverOpts": []}',
        "array into Go struct field CreateOptions.DriverOpts of type map[string]string",
    ),
]

# Answers that Docker 28 and the reference dockerd (20.10) word alike: checked against both.
MISSING = [
    Bad("GET", "/containers/nosuch/json", None, 404, "No such container: nosuch"),
    Bad("POST", "/containers/nosuch/start", None, 404, "No such container: nosuch"),
    Bad("POST", "/containers/nosuch/stop", None, 404, "No such container: nosuch"),
    Bad("POST", "/containers/nosuch/restart", None, 404, "No such container: nosuch"),
    Bad("GET", "/containers/nosuch/logs?stdout=1", None, 404, "No such container: nosuch"),
    Bad("DELETE", "/containers/nosuch", None, 404, "No such container: nosuch"),
    Bad("DELETE", "/containers/nosuch?force=1", None, 404, "No such container: nosuch"),
    Bad(
        "POST",
        "/containers/create",
        b'{"Image": "nosuch", "Cmd": ["true"]}',
        404,
        "No such image: nosuch:latest",
    ),
    Bad("DELETE", "/images/nosuch", None, 404, "No such image: nosuch:latest"),
    Bad("DELETE", "/images/nosuch:1.0", None, 404, "No such image: nosuch:1.0"),
    Bad("GET", "/volumes/nosuch", None, 404, "get nosuch: no such volume"),
    Bad("DELETE", "/volumes/nosuch", None, 404, "get nosuch: no such volume"),
    Bad(
        "POST",
        "/containers/create?name=b%20d",
        b'{"Image": "busybox"}',
        400,
        "Invalid container name (b d), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
    ),
]

# Docker 28 words these differently from 20.10: checked against Docker 28's words only.
MISSING_IN_28 = [
    Bad(
        "POST",
        "/containers/nosuch/kill",
        None,
        404,
        "cannot kill container: nosuch: No such container: nosuch",
    ),
    Bad(
        "POST",
        "/containers/nosuch/kill?signal=SIGNOPE",
        None,
        400,
        "cannot kill container: nosuch: invalid signal: SIGNOPE",
    ),
    Bad("GET", "/images/nosuch/json", None, 404, "No such image: nosuch:latest"),
    Bad("GET", "/images/nosuch/history", None, 404, "No such image: nosuch:latest"),
    Bad("POST", "/images/nosuch/tag?repo=other", None, 404, "No such image: nosuch:latest"),
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerdHandle]:
    """Debian's dockerd with a busybox image of its own (made from the host's busybox)."""
    root = tmp_path_factory.mktemp("reference")
    with reference_dockerd(root) as handle:
        import_rootfs(handle, write_busybox_rootfs_tar(root / "busybox.tar"), "busybox:latest")
        yield handle


def _pull_busybox(api: EngineApi) -> None:
    pulled = api.request("POST", "/images/create?fromImage=busybox&tag=latest")
    assert pulled.status == 200 and b"error" not in pulled.body, pulled.body


def test_malformed_json_bodies_get_dockers_400(engine: RunningEngine) -> None:
    api = engine.api()
    _pull_busybox(api)
    answers = [(bad.path, bad.body, bad.send(api)) for bad in MALFORMED]
    expected = [(bad.path, bad.body, (bad.status, bad.message)) for bad in MALFORMED]
    assert answers == expected
    assert_consistent(engine)
    assert api.get("/containers/json?all=1").json() == []


def test_fields_of_the_wrong_type_get_gos_decoder_error(engine: RunningEngine) -> None:
    api = engine.api()
    _pull_busybox(api)
    answers = [(bad.path, bad.body, bad.send(api)) for bad in WRONG_TYPES]
    expected = [(bad.path, bad.body, (bad.status, bad.message)) for bad in WRONG_TYPES]
    assert answers == expected
    assert_consistent(engine)
    assert api.get("/containers/json?all=1").json() == []
    assert api.get("/volumes").json()["Volumes"] == []


def test_missing_objects_get_the_same_answers_as_the_reference_dockerd(
    engine: RunningEngine, reference: DockerdHandle
) -> None:
    api = engine.api()
    _pull_busybox(api)
    ours = [(bad.method, bad.path, bad.send(api)) for bad in MISSING]
    theirs = []
    for bad in MISSING:
        status, body = reference.api(bad.method, COMMON_API + bad.path, _json_or_none(bad.body))
        theirs.append((bad.method, bad.path, (status, json.loads(body)["message"])))
    expected = [(bad.method, bad.path, (bad.status, bad.message)) for bad in MISSING]
    assert ours == theirs == expected
    in_28 = [(bad.path, bad.send(api)) for bad in MISSING_IN_28]
    assert in_28 == [(bad.path, (bad.status, bad.message)) for bad in MISSING_IN_28]
    assert_consistent(engine)


def _json_or_none(body: bytes | None) -> object:
    return None if body is None else json.loads(body)


def _conflicts(run: DockerRun | Callable[..., subprocess.CompletedProcess[str]]) -> list[str]:
    """The same scenario of conflicts, through the real CLI: the errors it printed, with the
    container IDs in them replaced by <id>."""
    container_id = ok(
        run("run", "-d", "--name", "busy", "--mount", "source=kept,target=/data", *SLEEPER)
    ).strip()
    ok(run("create", "--name", "idle", "busybox", "true"))
    errors = [
        run("create", "--name", "busy", "busybox", "true").stderr,
        run("volume", "rm", "kept").stderr,
        run("rename", "busy", "busy").stderr,
        run("rename", "idle", "busy").stderr,
        run("rename", "idle", "b d").stderr,
        run("start", "busy").stderr,
    ]
    return [error.replace(container_id, "<id>").strip() for error in errors]


def test_conflicts_get_the_same_answers_as_the_reference_dockerd(
    engine: RunningEngine, docker: DockerRun, reference: DockerdHandle
) -> None:
    _pull_busybox(engine.api())

    def on_reference(*arguments: str) -> subprocess.CompletedProcess[str]:
        return reference.docker(*arguments, check=False)

    try:
        theirs = _conflicts(on_reference)
    finally:
        reference.docker("rm", "-f", "busy", "idle", check=False)
        reference.docker("volume", "rm", "kept", check=False)
    ours = _conflicts(docker)
    assert ours == theirs
    assert ours[:2] == [
        'Error response from daemon: Conflict. The container name "/busy" is already in use by '
        'container "<id>". You have to remove (or rename) that container to be able to reuse '
        "that name.",
        "Error response from daemon: remove kept: volume is in use - [<id>]",
    ]
    assert_consistent(engine)


def test_removing_a_running_or_paused_container_needs_force(
    engine: RunningEngine, docker: DockerRun
) -> None:
    container_id = ok(docker("run", "-d", "--name", "busy", *SLEEPER)).strip()
    api = engine.api()
    refused = api.request("DELETE", "/containers/busy")
    assert (refused.status, refused.json()["message"]) == (
        409,
        'cannot remove container "busy": container is running: stop the container before '
        "removing or force remove",
    )
    ok(docker("pause", "busy"))
    by_id = api.request("DELETE", f"/containers/{container_id[:12]}")
    assert (by_id.status, by_id.json()["message"]) == (
        409,
        f'cannot remove container "{container_id[:12]}": container is paused and must be '
        "unpaused first",
    )
    assert_consistent(engine)
    assert ok(docker("ps", "-q", "--no-trunc")).split() == [container_id]
    ok(docker("rm", "-f", "busy"))
    assert_consistent(engine)
    assert ok(docker("ps", "-aq")) == ""


def test_a_create_that_fails_leaves_no_container_or_volume(engine: RunningEngine) -> None:
    api = engine.api()
    _pull_busybox(api)
    mounts = [
        {"Type": "volume", "Source": "first", "Target": "/first"},
        {
            "Type": "volume",
            "Source": "second",
            "Target": "/second",
            "VolumeOptions": {"DriverConfig": {"Name": "nosuch"}},
        },
    ]
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Mounts": mounts}}
    answer = api.post_json("/containers/create?name=halfway", body)
    assert (answer.status, answer.json()["message"]) == (
        404,
        'error looking up volume plugin nosuch: plugin "nosuch" not found',
    )
    taken = api.post_json("/containers/create?name=halfway", {"Image": "busybox", "Cmd": ["true"]})
    assert taken.status == 201  # the name was not left reserved
    assert_consistent(engine)
    assert api.get("/volumes").json()["Volumes"] == []


def test_the_engine_keeps_serving_through_bad_requests(engine: RunningEngine) -> None:
    api = engine.api()
    _pull_busybox(api)
    bad = MALFORMED + WRONG_TYPES + MISSING + MISSING_IN_28
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda request: request.send(api)[0], bad * 3))
    assert all(400 <= status < 500 for status in answers), answers
    container = api.post_json("/containers/create", {"Image": "busybox", "Cmd": ["true"]})
    assert container.status == 201
    assert_consistent(engine)


def test_fifty_concurrent_forced_removals_leave_nothing(
    engine: RunningEngine, docker: DockerRun, cgroup_parent: str
) -> None:
    names = [f"box{number:02}" for number in range(50)]
    for name in names:
        ok(docker("run", "-d", "--name", name, *SLEEPER))
    assert len(ok(docker("ps", "-q")).split()) == 50
    with ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(lambda name: docker("rm", "-f", name, timeout=120), names))
    assert [(result.returncode, result.stdout, result.stderr) for result in results] == [
        (0, f"{name}\n", "") for name in names
    ]
    assert ok(docker("ps", "-aq")) == ""
    assert list((engine.data_root / "containers").iterdir()) == []
    assert mounts_under(engine.data_root) == []
    state = runtime_root_for(engine.data_root)
    assert list(state.glob("[!.]*")) == []
    containers_cgroups = [
        directory
        for directory in cgroup_parent_dirs(cgroup_parent)
        if re.fullmatch(r"[0-9a-f]{64}", directory.name)
    ]
    assert containers_cgroups == []
    assert_consistent(engine)


# -- regressions: bugs the fuzzing found ------------------------------------------------------


def test_an_invalid_image_reference_is_a_bad_request(engine: RunningEngine) -> None:
    api = engine.api()
    cases = [
        (
            {"Image": "UPPER"},
            "invalid reference format: repository name (library/UPPER) must be lowercase",
        ),
        ({"Image": "a:b:c", "Cmd": ["true"]}, "invalid reference format"),
        ({"Image": ""}, "no command specified"),
        ({"Tty": True}, "no command specified"),
    ]
    answers = [api.post_json("/containers/create", body) for body, _ in cases]
    assert [(a.status, a.json()["message"]) for a in answers] == [
        (400, message) for _, message in cases
    ]
    assert_consistent(engine)


def test_overlapping_restarts_all_succeed(engine: RunningEngine, docker: DockerRun) -> None:
    """A restart that finds the container already stopped by another (or exited on its own),
    or already started again, carries on, as dockerd's does: no 304 escapes as a 500."""
    ok(docker("run", "-d", "--name", "pulse", "busybox", "sh", "-c", "sleep 0.2"))
    api = engine.api()

    def restart(_: int) -> tuple[int, bytes]:
        answer = api.request("POST", "/containers/pulse/restart?t=0")
        return answer.status, answer.body

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(restart, range(40)))
    assert answers == [(204, b"")] * 40
    assert_consistent(engine)


def test_top_with_arguments_that_ps_refuses_is_a_bad_request(
    engine: RunningEngine, docker: DockerRun
) -> None:
    ok(docker("run", "-d", "--name", "busy", *SLEEPER))
    api = engine.api()
    refused = api.get("/containers/busy/top?ps_args=%07")
    # dockerd's words (the first line of what ps said), with 400 where dockerd answers 500
    assert (refused.status, refused.json()) == (400, {"message": "ps: error: garbage option"})
    listed = api.get("/containers/busy/top?ps_args=-o%20pid,comm")
    assert listed.status == 200
    assert listed.json()["Titles"] == ["PID", "COMMAND"]
    assert [process[1] for process in listed.json()["Processes"]] == ["sleep"]
    assert_consistent(engine)


def test_inspect_shows_dockers_default_log_config(engine: RunningEngine, docker: DockerRun) -> None:
    ok(docker("create", "--name", "logged", "busybox", "true"))
    host_config = json.loads(ok(docker("inspect", "logged")))[0]["HostConfig"]
    assert host_config["LogConfig"] == {"Type": "json-file", "Config": {}}
