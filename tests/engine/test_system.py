"""The engine's system endpoints, driven by the real docker CLI and by raw requests: version,
info, ping, Docker's errors, concurrency, the API log, and events."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from simulator.engine.daemon import ApiLog
from simulator.engine.server import RequestRecord
from simulator.runtime.cgroups import CgroupLayout
from tests.engine.conftest import (
    SPEC,
    Answer,
    DockerRun,
    EngineApi,
    Hub,
    RunningEngine,
    mirroring_reference,
    raw_exchange,
)
from tests.support.dockerd import DockerdHandle

# Fields of the spec's SystemInfo that a Docker 28 on Linux leaves out when they are empty,
# as this engine does.
OMITTED_INFO_FIELDS = {
    "Containerd",  # no containerd here
    "FirewallBackend",  # set by the network package
    "DefaultAddressPools",
    "DiscoveredDevices",
    "ProductLicense",
}


def spec_properties(definition: str) -> set[str]:
    """The top-level properties of a definition of the Engine API spec (v1.50)."""
    lines = SPEC.read_text().splitlines()
    start = lines.index(f"  {definition}:")
    properties_at = next(i for i in range(start, len(lines)) if lines[i] == "    properties:")
    names = set()
    for line in lines[properties_at + 1 :]:
        if re.match(r"^  \S", line) or re.match(r"^    \S", line):
            break
        match = re.match(r"^      ([A-Za-z]\w*):$", line)
        if match:
            names.add(match.group(1))
    return names


def test_docker_version_shows_our_engine_at_api_1_50(docker: DockerRun) -> None:
    result = docker("version")
    assert result.returncode == 0, result.stderr
    assert "Server: Slipway Engine" in result.stdout
    assert re.search(r"API version:\s+1\.50 \(minimum version 1\.41\)", result.stdout)
    assert re.search(r"OS/Arch:\s+linux/amd64", result.stdout)


def test_docker_info_shows_swarm_inactive_overlay2_and_our_cgroups(
    docker: DockerRun, hub: Hub
) -> None:
    result = docker("info")
    assert result.returncode == 0, result.stderr
    layout = CgroupLayout.detect()
    assert " Swarm: inactive" in result.stdout
    assert " Storage Driver: overlay2" in result.stdout
    assert " Cgroup Driver: cgroupfs" in result.stdout
    assert f" Cgroup Version: {'2' if layout.mode == 'v2' else '1'}" in result.stdout
    assert " Containers: 0" in result.stdout
    assert " Images: 0" in result.stdout
    assert f"Registry Mirrors:\n  {hub.url}/\n" in result.stdout
    assert " Logging Driver: json-file" in result.stdout


def test_info_has_the_spec_fields_and_counts_the_images(
    api: EngineApi, docker: DockerRun, engine: RunningEngine
) -> None:
    info = api.get("/v1.50/info").json()
    missing = spec_properties("SystemInfo") - set(info) - OMITTED_INFO_FIELDS
    assert not missing
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    assert info["Driver"] == "overlay2"
    assert info["DockerRootDir"] == str(engine.data_root)
    assert info["OSType"] == "linux"
    assert info["NCPU"] >= 1 and info["MemTotal"] > 0
    assert info["Images"] == 0
    assert docker("pull", "busybox").returncode == 0
    assert api.get("/v1.50/info").json()["Images"] == 1


def test_version_has_every_field_of_the_spec(api: EngineApi) -> None:
    version = api.get("/version").json()
    missing = spec_properties("SystemVersion") - set(version) - {"Experimental"}
    assert not missing  # Experimental is left out when false, as Go's omitempty does
    assert version["ApiVersion"] == "1.50"
    assert version["MinAPIVersion"] == "1.41"
    assert version["Components"][0]["Name"] == "Engine"


def test_ping_get_and_head_send_the_negotiation_headers(engine: RunningEngine) -> None:
    for method, body in (("GET", b"OK"), ("HEAD", b"")):
        answer = engine.api().request(method, "/_ping")
        assert answer.status == 200
        assert answer.body == body
        assert answer.headers["Api-Version"] == "1.50"
        assert answer.headers["Ostype"] == "linux"
        assert answer.headers["Docker-Experimental"] == "false"
        assert answer.headers["Swarm"] == "inactive"
        assert answer.headers["Builder-Version"] == "1"
        assert answer.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert answer.headers["Pragma"] == "no-cache"


def error_of(answer: Answer) -> str:
    assert answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    assert list(body) == ["message"]
    return body["message"]


def test_an_unknown_route_is_page_not_found(api: EngineApi) -> None:
    for path in ("/nowhere", "/v1.50/nowhere", "/v1.50/images/busybox/nowhere"):
        answer = api.get(path)
        assert answer.status == 404
        assert error_of(answer) == "page not found"
        assert answer.body == b'{"message":"page not found"}\n'


def test_a_version_too_new_or_too_old_is_refused_in_dockers_words(api: EngineApi) -> None:
    too_new = api.get("/v1.52/info")
    assert too_new.status == 400
    assert error_of(too_new) == (
        "client version 1.52 is too new. Maximum supported API version is 1.50"
    )
    too_old = api.get("/v1.40/version")
    assert too_old.status == 400
    assert error_of(too_old) == (
        "client version 1.40 is too old. Minimum supported API version is 1.41, please "
        "upgrade your client to a newer version"
    )
    assert api.get("/v1.41/version").status == 200


def test_malformed_json_gets_400_in_dockers_words_and_the_engine_serves_on(
    api: EngineApi,
) -> None:
    answer = api.request(
        "POST", "/v1.50/auth", b'{"username": nope}', {"Content-Type": "application/json"}
    )
    assert answer.status == 400
    assert error_of(answer) == (
        "invalid JSON: invalid character 'n' looking for beginning of value"
    )
    wrong_type = api.post_json("/v1.50/auth", {"username": 7})
    assert wrong_type.status == 400
    assert error_of(wrong_type) == (
        "invalid JSON: json: cannot unmarshal number into Go struct field "
        "AuthConfig.username of type string"
    )
    assert api.get("/_ping").body == b"OK"


def test_login_to_the_hub_succeeds(api: EngineApi, hub: Hub) -> None:
    answer = api.post_json(
        "/v1.50/auth", {"username": "learner", "password": "x", "serveraddress": hub.address}
    )
    assert answer.status == 200
    assert answer.json()["Status"] == "Login Succeeded"


def test_a_raw_head_ping_and_a_malformed_request(engine: RunningEngine) -> None:
    data = raw_exchange(engine.socket_path, b"HEAD /_ping HTTP/1.1\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 0" in head
    assert body == b""
    garbage = raw_exchange(engine.socket_path, b"NOT HTTP AT ALL\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Content-Type: application/json\r\n" in garbage


def test_twenty_concurrent_requests_are_all_answered(api: EngineApi, engine: RunningEngine) -> None:
    # A long-lived stream stays open throughout, as /events and /wait do.
    events = api.connection()
    events.request("GET", "/v1.50/events")
    assert events.getresponse().status == 200
    paths = ["/v1.50/info", "/v1.50/images/json", "/v1.50/version", "/_ping"] * 5

    def fetch(path: str) -> int:
        return engine.api().get(path).status

    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(fetch, paths))
    assert statuses == [200] * 20
    assert time.monotonic() - started < 10
    events.close()


def test_the_api_log_records_each_request(api: EngineApi, docker: DockerRun) -> None:
    assert docker("images").returncode == 0
    api.get("/v1.52/info")
    log = api.get("/slipway/api-log").json()
    calls = [(entry["method"], entry["path"], entry["status"]) for entry in log]
    assert ("GET", "/v1.50/images/json", 200) in calls
    assert ("GET", "/v1.52/info", 400) in calls
    listed = next(entry for entry in log if entry["path"] == "/v1.50/images/json")
    assert listed["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", listed["time"])
    after = log[-1]["id"]
    api.get("/_ping")
    newer = api.get(f"/slipway/api-log?after={after}").json()
    # a request is logged once answered: the first read of the log comes after ``after``
    assert [entry["path"] for entry in newer] == ["/slipway/api-log", "/_ping"]


def test_an_open_stream_is_in_the_api_log_before_it_ends(
    engine: RunningEngine, api: EngineApi
) -> None:
    reader = EventReader(engine)
    try:
        [entry] = [e for e in api.get("/slipway/api-log").json() if e["path"] == "/v1.50/events"]
        assert entry["status"] == 200
        assert entry["duration_ms"] is None
    finally:
        reader.close()
    deadline = time.monotonic() + 5
    while True:
        log = api.get(f"/slipway/api-log?after={entry['id'] - 1}&limit=100").json()
        if log[0]["duration_ms"] is not None:
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert log[0]["id"] == entry["id"] and log[0]["duration_ms"] > 0


def test_the_api_log_is_a_bounded_ring() -> None:
    log = ApiLog(size=3)
    for number in range(5):
        log.record(RequestRecord("GET", f"/{number}", "", time.time(), 200, 1.0))
    assert [call["path"] for call in log.entries()] == ["/2", "/3", "/4"]
    assert [call["id"] for call in log.entries()] == [3, 4, 5]
    assert [call["path"] for call in log.entries(limit=1)] == ["/4"]
    assert [call["path"] for call in log.entries(after=4)] == ["/4"]


class EventReader:
    """A ``GET /events`` stream read line by line in a thread."""

    def __init__(self, engine: RunningEngine, query: str = "") -> None:
        self.connection = engine.api(timeout=30).connection()
        self.connection.request("GET", f"/v1.50/events{query}")
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        assert self.response.headers["Content-Type"] == "application/json"
        self.events: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while line := self.response.readline():
                self.events.append(json.loads(line))
        except Exception:  # close() cuts the stream under this thread
            pass

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool]) -> None:
        deadline = time.monotonic() + 10
        while not predicate(self.events):
            assert time.monotonic() < deadline, self.events
            time.sleep(0.02)

    def close(self) -> None:
        self.connection.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        self.connection.close()
        self.thread.join(5)


def actions(events: list[dict[str, Any]]) -> list[str]:
    return [event["Action"] for event in events]


def test_events_stream_a_pull_a_tag_and_a_delete_live(
    engine: RunningEngine, docker: DockerRun
) -> None:
    reader = EventReader(engine)
    try:
        assert docker("pull", "busybox").returncode == 0
        assert docker("tag", "busybox", "mine:1").returncode == 0
        assert docker("rmi", "mine:1", "busybox").returncode == 0
        reader.wait_for(lambda events: "delete" in actions(events))
    finally:
        reader.close()
    assert actions(reader.events) == ["pull", "tag", "untag", "untag", "untag", "delete"]
    pull, tag = reader.events[0], reader.events[1]
    assert pull["Type"] == "image"
    assert pull["Actor"] == {"ID": "busybox:latest", "Attributes": {"name": "busybox"}}
    assert pull["status"] == "pull" and pull["id"] == "busybox:latest"
    assert pull["scope"] == "local"
    assert pull["time"] == pull["timeNano"] // 1_000_000_000
    image_id = tag["Actor"]["ID"]
    assert image_id.startswith("sha256:")
    assert tag["Actor"]["Attributes"] == {"name": "mine:1"}
    untag = reader.events[2]
    assert untag["Actor"] == {"ID": image_id, "Attributes": {"name": image_id}}  # as dockerd
    assert reader.events[-1]["Actor"] == {"ID": image_id, "Attributes": {"name": image_id}}


def test_events_since_and_until_replay_the_past_and_end(api: EngineApi, docker: DockerRun) -> None:
    started = time.time()
    assert docker("pull", "busybox").returncode == 0
    assert docker("tag", "busybox", "again:1").returncode == 0
    until = time.time() + 0.2
    answer = api.get(f"/v1.50/events?since={started:.9f}&until={until:.9f}")
    assert answer.status == 200
    assert actions(answer.lines()) == ["pull", "tag"]
    only_tags = api.get(
        f"/v1.50/events?since={started:.9f}&until={until:.9f}"
        '&filters={"event":{"tag":true},"type":{"image":true}}'
    )
    assert actions(only_tags.lines()) == ["tag"]
    by_image = api.get(
        f'/v1.50/events?since={started:.9f}&until={until:.9f}&filters={{"image":["busybox"]}}'
    )
    assert actions(by_image.lines()) == ["pull"]
    containers = api.get(
        f"/v1.50/events?since={started:.9f}&until={until:.9f}"
        '&filters={"container":{"abc":true}}'
    )
    assert containers.lines() == []
    backwards = api.get("/v1.50/events?since=200&until=100")
    assert backwards.status == 400
    assert "cannot be after `until` time" in error_of(backwards)


def test_an_events_client_that_goes_away_is_dropped(engine: RunningEngine, api: EngineApi) -> None:
    reader = EventReader(engine)
    assert api.get("/info").json()["NEventsListener"] == 1
    reader.close()
    deadline = time.monotonic() + 5
    while api.get("/info").json()["NEventsListener"] != 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_the_engine_stops_on_sigterm_and_removes_its_socket(
    start_engine: Callable[..., RunningEngine],
) -> None:
    engine = start_engine()
    started = time.monotonic()
    engine.stop()
    assert engine.process.returncode == 0
    assert time.monotonic() - started < 5
    assert not engine.socket_path.exists()


def test_a_second_engine_on_a_live_socket_refuses_to_start(
    start_engine: Callable[..., RunningEngine], tmp_path: Path
) -> None:
    import subprocess
    import sys

    engine = start_engine()
    result = subprocess.run(
        [sys.executable, "-m", "simulator.engine", "--data-root", str(tmp_path / "other")]
        + ["--layer-root", str(tmp_path / "other-layers"), "--host", engine.host],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "another server is listening" in result.stderr
    assert engine.api().get("/_ping").body == b"OK"
    from simulator.engine.containers import runtime_root_for

    assert not runtime_root_for(tmp_path / "other").exists()  # nothing made for nothing


@pytest.mark.parametrize("host", ["tcp://127.0.0.1:2375", "unix://relative.sock"])
def test_hosts_other_than_unix_sockets_are_refused(host: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "simulator.engine", "--data-root", str(tmp_path / "data")]
        + ["--host", host],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "unsupported host" in result.stderr


# -- /system/df ----------------------------------------------------------------------------------

SLEEPER = ("busybox", "sleep", "600")
_UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


@pytest.fixture(scope="module")
def reference(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerdHandle]:
    """A reference dockerd pulling from our hub."""
    with mirroring_reference(hub, tmp_path_factory.mktemp("df-reference")) as handle:
        yield handle


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}: {result.stdout}{result.stderr}"
    return result.stdout


def table(output: str) -> list[list[str]]:
    """The rows of a docker table, its cells split on runs of two or more spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def size_of(text: str) -> float:
    """Bytes from docker's human size (``23.6MB``, ``0B``), with any ``(40%)`` dropped."""
    match = re.fullmatch(r"([0-9.]+)([kMG]?B)", text.split(" ")[0])
    assert match, text
    return float(match.group(1)) * _UNITS[match.group(2)]


def df_scenario(run: Callable[..., subprocess.CompletedProcess[str]]) -> tuple[str, str]:
    """busybox and alpine pulled; a running container writing to a used volume, a stopped
    one, an unused volume; then ``docker system df`` and ``docker system df -v``."""
    for image in ("busybox", "alpine"):
        ok(run("pull", "-q", image, timeout=300))
    ok(run("volume", "create", "used"))
    ok(run("volume", "create", "unused"))
    ok(run("run", "-d", "--name", "runner", "-v", "used:/data", *SLEEPER))
    ok(run("exec", "runner", "sh", "-c", "echo hello > /data/greeting; echo rw > /rw"))
    ok(run("run", "--name", "stopped", "alpine", "sh", "-c", "echo x > /x"))
    return ok(run("system", "df")), ok(run("system", "df", "-v"))


def remove_scenario(run: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    run("rm", "-f", "runner", "stopped")
    run("volume", "rm", "used", "unused")


def verbose_sections(output: str) -> dict[str, list[list[str]]]:
    """``df -v``'s tables by title, each without its header row."""
    sections: dict[str, list[list[str]]] = {}
    for block in output.split("\n\n"):
        if block.rstrip().endswith(":") or block.startswith("Build cache usage"):
            title = block.strip()
        elif block.strip():
            sections[title] = table(block)[1:]
    return sections


def test_system_df_shows_what_a_reference_dockerd_shows(
    docker: DockerRun, reference: DockerdHandle
) -> None:
    def on_reference(*arguments: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return reference.docker(*arguments, check=False, timeout=timeout)

    try:
        theirs = df_scenario(on_reference)
    finally:
        remove_scenario(on_reference)
    try:
        ours = df_scenario(docker)
    finally:
        remove_scenario(docker)
    summary, theirs_summary = table(ours[0]), table(theirs[0])
    assert (
        [row[:3] for row in summary]
        == [row[:3] for row in theirs_summary]
        == [
            ["TYPE", "TOTAL", "ACTIVE"],
            ["Images", "2", "2"],
            ["Containers", "2", "1"],
            ["Local Volumes", "2", "1"],
            ["Build Cache", "0", "0"],
        ]
    )
    assert summary[3:] == theirs_summary[3:]  # volumes (6B, 0B reclaimable) and build cache
    # The images' sizes count the same files; Docker adds symlinks' lengths (a few kB).
    for mine, other in zip(summary[1][3:], theirs_summary[1][3:], strict=True):
        assert size_of(mine) == pytest.approx(size_of(other), rel=0.01)
    ours_v, theirs_v = verbose_sections(ours[1]), verbose_sections(theirs[1])
    assert (
        list(ours_v)
        == list(theirs_v)
        == [
            "Images space usage:",
            "Containers space usage:",
            "Local Volumes space usage:",
            "Build cache usage: 0B",
        ]
    )
    assert ours_v["Build cache usage: 0B"] == theirs_v["Build cache usage: 0B"] == []
    # REPOSITORY, TAG, IMAGE ID, CREATED and CONTAINERS; the sizes as above.
    images = [[*row[:4], row[7]] for row in ours_v["Images space usage:"]]
    assert images == [[*row[:4], row[7]] for row in theirs_v["Images space usage:"]]
    assert sorted(row[0] for row in images) == ["alpine", "busybox"]
    assert [row[4] for row in images] == ["1", "1"]

    def containers(rows: list[list[str]]) -> list[tuple[str, ...]]:
        """IMAGE, COMMAND, LOCAL VOLUMES, the STATUS without its time, and NAMES."""
        return sorted((row[1], row[2], row[3], row[6].split(" ")[0], row[7]) for row in rows)

    assert containers(ours_v["Containers space usage:"]) == containers(
        theirs_v["Containers space usage:"]
    )
    assert containers(ours_v["Containers space usage:"]) == [
        ("alpine", "\"sh -c 'echo x > /x'\"", "0", "Exited", "stopped"),
        ("busybox", '"sleep 600"', "1", "Up", "runner"),
    ]
    volumes = sorted(ours_v["Local Volumes space usage:"])
    assert volumes == sorted(theirs_v["Local Volumes space usage:"])
    assert volumes == [["unused", "0", "0B"], ["used", "1", "6B"]]


def test_system_df_answers_in_mobys_shape_by_type_and_version(
    api: EngineApi, docker: DockerRun
) -> None:
    ok(docker("pull", "-q", "busybox"))
    ok(docker("volume", "create", "kept"))
    try:
        ok(docker("run", "--name", "writer", "-v", "kept:/data", "busybox", "sh", "-c",
                  "echo hello > /data/greeting; echo rw > /rw"))  # fmt: skip
        usage = api.get("/v1.50/system/df").json()
        assert list(usage) == ["LayersSize", "Images", "Containers", "Volumes", "BuildCache"]
        [image] = usage["Images"]
        assert image["Containers"] == 1 and usage["LayersSize"] == image["Size"]
        [container] = usage["Containers"]
        assert container["Names"] == ["/writer"] and container["State"] == "exited"
        assert container["SizeRw"] > 0
        assert container["SizeRootFs"] == image["Size"] + container["SizeRw"]
        [volume] = usage["Volumes"]
        assert volume["Name"] == "kept" and volume["UsageData"] == {"Size": 6, "RefCount": 1}
        assert usage["BuildCache"] == []
        only = api.get("/v1.50/system/df?type=volume&type=container").json()
        assert only["LayersSize"] == 0 and only["Images"] is None
        assert only["BuildCache"] is None
        assert only["Volumes"] == usage["Volumes"]
        assert [c["Id"] for c in only["Containers"]] == [container["Id"]]
        unknown = api.get("/v1.50/system/df?type=volume&type=disks")
        assert (unknown.status, unknown.json()) == (400, {"message": "unknown object type: disks"})
        old = api.get("/v1.41/system/df?type=disks").json()  # before 1.42: every kind
        assert [old[key] is None for key in usage] == [False] * 5
        assert old["Images"][0]["VirtualSize"] == image["Size"]  # before 1.44
    finally:
        docker("rm", "-f", "writer")
        docker("volume", "rm", "kept")
