"""docker exec against a real engine: through the real docker CLI 28 (output, exit codes,
stdin, a terminal that resizes, the course's "Be kind" sequence) and through the raw API
(create, start, inspect, resize, events, detach keys, errors)."""

from __future__ import annotations

import io
import json
import socket
import struct
import tarfile
import time
from pathlib import Path

import docker as docker_sdk  # docker-py

from tests.engine import test_containers_api
from tests.engine.conftest import DockerRun, RunningEngine
from tests.engine.test_attach_api import WAIT_SECONDS, cli_env
from tests.support.terminal import terminal

# The engine (every container removed, nothing left mounted, afterwards) and the real CLI.
engine = test_containers_api.engine
docker = test_containers_api.docker

NOT_FOUND = (
    'OCI runtime exec failed: exec failed: unable to start container process: exec: "nope": '
    "executable file not found in $PATH: unknown"
)


def _ok(result: object) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    return result.stdout  # type: ignore[attr-defined]


def _run(docker: DockerRun, name: str, image: str = "busybox") -> str:
    return _ok(docker("run", "-d", "--name", name, image, "sleep", "1d")).strip()


def test_exec_prints_both_streams_and_passes_on_exit_codes(docker: DockerRun) -> None:
    _run(docker, "box")
    result = docker("exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert (docker("exec", "box", "echo", "hello").stdout, 0) == ("hello\n", 0)
    missing = docker("exec", "box", "nope")
    # dockerd ends it with "\r\n" (the text mode of subprocess reads it as "\n").
    assert (missing.returncode, missing.stdout, missing.stderr) == (127, NOT_FOUND + "\n", "")
    not_runnable = docker("exec", "box", "/etc/passwd")
    assert not_runnable.returncode == 126
    assert 'exec: "/etc/passwd": permission denied: unknown' in not_runnable.stdout
    no_workdir = docker("exec", "-w", "/nowhere", "box", "true")
    assert no_workdir.returncode == 127
    assert 'chdir to cwd ("/nowhere") set in config.json failed' in no_workdir.stdout


def test_exec_i_feeds_stdin_and_ends_it(docker: DockerRun) -> None:
    _run(docker, "box")
    result = docker("exec", "-i", "box", "sh", "-c", "tr a-z A-Z; echo done", input="be kind\n")
    assert (result.returncode, result.stdout) == (0, "BE KIND\ndone\n"), result.stderr


def test_exec_runs_as_asked_with_the_containers_own_confinement(docker: DockerRun) -> None:
    _run(docker, "box")
    script = "id -u; id -g; pwd; echo $GREETING; echo $HOME"
    result = docker(
        "exec", "-u", "1000:1001", "-w", "/tmp", "-e", "GREETING=hi", "box", "sh", "-c", script
    )
    assert _ok(result).splitlines() == ["1000", "1001", "/tmp", "hi", "/"]
    assert _ok(docker("exec", "-u", "nobody", "box", "id", "-un")) == "nobody\n"
    # The same capabilities, seccomp filter and namespaces as the container's init.
    fields = ("CapEff", "CapBnd", "Seccomp", "NoNewPrivs")
    mine = _status_fields(_ok(docker("exec", "box", "cat", "/proc/self/status")), fields)
    init = _status_fields(_ok(docker("exec", "box", "cat", "/proc/1/status")), fields)
    assert mine == init and mine["Seccomp"] == "2"
    assert mine["CapEff"] != "000001ffffffffff"
    namespaces = "for n in pid mnt uts ipc net; do readlink /proc/self/ns/$n; done"
    mine_ns = _ok(docker("exec", "box", "sh", "-c", namespaces))
    init_ns = _ok(docker("exec", "box", "sh", "-c", namespaces.replace("self", "1")))
    assert mine_ns == init_ns
    refused = docker("exec", "--privileged", "box", "true")
    assert refused.returncode == 1
    assert "Error response from daemon: privileged exec is not allowed" in refused.stderr
    unknown = docker("exec", "-u", "nosuch", "box", "true")
    assert unknown.returncode == 1
    assert unknown.stderr == (
        "Error response from daemon: unable to find user nosuch: no matching entries in "
        "passwd file\n"
    )


def _status_fields(status: str, names: tuple[str, ...]) -> dict[str, str]:
    values = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    return {name: values[name].strip() for name in names}


def test_exec_in_a_container_that_is_not_running_is_refused(docker: DockerRun) -> None:
    created = _ok(docker("create", "--name", "idle", "busybox", "true")).strip()
    result = docker("exec", "idle", "true")
    assert result.returncode == 1
    assert result.stderr == f"Error response from daemon: container {created} is not running\n"
    missing = docker("exec", "ghost", "true")
    assert missing.stderr == "Error response from daemon: No such container: ghost\n"
    _run(docker, "frozen")
    _ok(docker("pause", "frozen"))
    paused = docker("exec", "frozen", "true")
    assert paused.stderr == (
        "Error response from daemon: Container frozen is paused, unpause the container "
        "before exec\n"
    )
    _ok(docker("unpause", "frozen"))


def test_the_courses_be_kind_sequence(docker: DockerRun) -> None:
    _ok(docker("run", "-d", "--name", "dec", "alpine", "sleep", "1d"))
    _ok(docker("exec", "dec", "sh", "-c", 'echo "Be kind" > newfile'))
    _ok(docker("stop", "dec"))
    _ok(docker("start", "dec"))
    assert _ok(docker("exec", "dec", "cat", "newfile")) == "Be kind\n"


def test_exec_it_gets_a_terminal_of_the_clients_size_that_resizes(
    docker: DockerRun, docker_cli: str, engine: RunningEngine, tmp_path: Path
) -> None:
    _run(docker, "box")
    env = cli_env(engine, tmp_path)
    with terminal([docker_cli, "exec", "-it", "box", "sh"], env, rows=33, cols=101) as shell:
        shell.expect(rb"/ # ")
        shell.send(b"stty size; tty; echo $TERM\r")
        shell.expect(rb"33 101\r\n/dev/pts/\d+\r\nxterm\r\n")
        shell.resize(41, 120)
        engine.await_call("POST", "/resize", "h=41&w=120")  # the CLI resizes when it can
        shell.send(b"stty size\r")
        shell.expect(rb"41 120\r\n")
        shell.send(b"exit 7\r")
        assert shell.wait() == 7


def test_exec_it_detaches_on_ctrl_p_ctrl_q_leaving_the_process(
    docker: DockerRun, docker_cli: str, engine: RunningEngine, tmp_path: Path
) -> None:
    _run(docker, "box")
    env = cli_env(engine, tmp_path)
    with terminal([docker_cli, "exec", "-it", "box", "sh"], env) as shell:
        shell.expect(rb"/ # ")
        shell.send(b"\x10\x11")
        shell.expect(rb"read escape sequence")  # the CLI says so, and exits with 1
        assert shell.wait() == 1
    assert "sh" in _ok(docker("top", "box"))


def _create(engine: RunningEngine, container: str, body: dict[str, object]) -> str:
    answer = engine.api().post_json(f"/containers/{container}/exec", body)
    assert answer.status == 201, answer.body
    return answer.json()["Id"]


def _start(engine: RunningEngine, exec_id: str, body: dict[str, object]) -> socket.socket:
    """POST /exec/{id}/start as the CLI sends it; returns the connection past its head."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(WAIT_SECONDS)
    client.connect(str(engine.socket_path))
    payload = json.dumps(body).encode()
    client.sendall(
        f"POST /v1.50/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n"
        f"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}"
        "\r\n\r\n".encode()
        + payload
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += client.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED"), head
    return client


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while data:
        stream, size = struct.unpack(">BxxxL", data[:8])
        frames.append((stream, data[8 : 8 + size]))
        data = data[8 + size :]
    return frames


def _read_to_end(client: socket.socket) -> bytes:
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received


def test_exec_api_create_start_inspect_and_events(docker: DockerRun, engine: RunningEngine) -> None:
    container_id = _run(docker, "box")
    api = engine.api()
    since = time.time()
    command = {"Cmd": ["sh", "-c", "echo out; echo err >&2; exit 5"]}
    exec_id = _create(engine, "box", {**command, "AttachStdout": True, "AttachStderr": True})
    assert len(exec_id) == 64
    before = api.get(f"/exec/{exec_id}/json").json()
    assert before["Running"] is False and before["ExitCode"] is None and before["Pid"] == 0
    assert before["ContainerID"] == container_id
    assert before["ProcessConfig"] == {
        "tty": False,
        "entrypoint": "sh",
        "arguments": ["-c", "echo out; echo err >&2; exit 5"],
        "privileged": False,
        "user": "",
    }
    assert api.get("/containers/box/json").json()["ExecIDs"] == [exec_id]
    with _start(engine, exec_id, {"Detach": False, "Tty": False}) as client:
        frames = _frames(_read_to_end(client))
    assert sorted(frames) == [(1, b"out\n"), (2, b"err\n")]
    after = api.get(f"/exec/{exec_id}/json").json()
    assert (after["Running"], after["ExitCode"]) == (False, 5) and after["Pid"] > 0
    assert api.get("/containers/box/json").json()["ExecIDs"] is None
    again = api.post_json(f"/exec/{exec_id}/start", {"Detach": True})
    assert (again.status, again.json()) == (
        409,
        {"message": f"exec command {exec_id} has already run"},
    )
    until = int(time.time()) + 1
    body = api.get(f"/events?since={since:.9f}&until={until}").body
    events = [json.loads(line) for line in body.splitlines()]
    execs = [
        (event["Action"], event["Actor"]["Attributes"])
        for event in events
        if event["Action"].startswith("exec_")
    ]
    line = "sh -c echo out; echo err >&2; exit 5"
    assert [action for action, _ in execs] == [f"exec_create: {line}", f"exec_start: {line}"] + [
        "exec_die"
    ]
    assert all(attributes["execID"] == exec_id for _, attributes in execs)
    assert execs[-1][1]["exitCode"] == "5" and execs[-1][1]["name"] == "box"


def test_exec_api_detached_start_and_stdin(docker: DockerRun, engine: RunningEngine) -> None:
    _run(docker, "box")
    api = engine.api()
    exec_id = _create(engine, "box", {"Cmd": ["sleep", "60"]})
    started = api.post_json(f"/exec/{exec_id}/start", {"Detach": True})
    assert (started.status, started.body) == (200, b"")
    running = api.get(f"/exec/{exec_id}/json").json()
    assert running["Running"] is True and running["Pid"] > 0
    assert api.get("/containers/box/json").json()["ExecIDs"] == [exec_id]
    twice = api.post_json(f"/exec/{exec_id}/start", {"Detach": True})
    assert twice.status == 409
    body = {"Cmd": ["cat"], "AttachStdin": True, "AttachStdout": True}
    cat = _create(engine, "box", body)
    with _start(engine, cat, {"Detach": False, "Tty": False}) as client:
        client.sendall(b"through stdin\n")
        client.shutdown(socket.SHUT_WR)
        assert _frames(_read_to_end(client)) == [(1, b"through stdin\n")]
    assert api.get(f"/exec/{cat}/json").json()["ExitCode"] == 0
    _ok(docker("stop", "-t", "1", "box"))
    assert api.get(f"/exec/{exec_id}/json").json()["ExitCode"] == 137  # ended with it
    _ok(docker("rm", "box"))
    gone = api.get(f"/exec/{exec_id}/json")
    assert (gone.status, gone.json()) == (404, {"message": f"No such exec instance: {exec_id}"})


def test_exec_api_tty_resize_and_detach_keys(docker: DockerRun, engine: RunningEngine) -> None:
    _run(docker, "box")
    api = engine.api()
    body = {
        "Cmd": ["sh"],
        "Tty": True,
        "AttachStdin": True,
        "AttachStdout": True,
        "DetachKeys": "ctrl-a,x",
        "ConsoleSize": [20, 70],
    }
    exec_id = _create(engine, "box", body)
    assert api.get(f"/exec/{exec_id}/json").json()["DetachKeys"] == "AXg="  # []byte, base64
    with _start(engine, exec_id, {"Detach": False, "Tty": True, "ConsoleSize": [20, 70]}) as c:
        c.sendall(b"stty size\n")
        _read_until(c, b"20 70")
        assert api.request("POST", f"/exec/{exec_id}/resize?h=30&w=90").status == 200
        c.sendall(b"stty size\n")
        _read_until(c, b"30 90")
        c.sendall(b"echo left\x01x")
        rest = _read_to_end(c)  # the engine detached
    assert b"x" not in rest.replace(b"exit", b"")
    inspected = api.get(f"/exec/{exec_id}/json").json()
    assert inspected["Running"] is True  # the shell runs on
    bad = api.request("POST", f"/exec/{exec_id}/resize?h=-1&w=90")
    assert (bad.status, bad.json()) == (
        400,
        {"message": 'invalid resize height "-1": value out of range'},
    )


def _read_until(client: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        chunk = client.recv(65536)
        assert chunk, f"the connection ended before {marker!r}: {received!r}"
        received += chunk
    return received


def test_exec_api_errors_in_dockers_words(docker: DockerRun, engine: RunningEngine) -> None:
    _run(docker, "box")
    api = engine.api()
    cases = [
        ({}, 400, "No exec command specified"),
        ({"Cmd": "ls"}, 400, None),  # a string where Docker wants a list
        ({"Cmd": ["ls"], "DetachKeys": "ctrl-"}, 400, "Invalid escape keys (ctrl-) provided"),
        ({"Cmd": ["ls"], "Privileged": True}, 403, None),
    ]
    for body, status, message in cases:
        answer = api.post_json("/containers/box/exec", body)
        assert answer.status == status, (body, answer.body)
        if message is not None:
            assert answer.json() == {"message": message}
    wrong_type = api.post_json("/containers/box/exec", {"Cmd": "ls"}).json()["message"]
    assert wrong_type == (
        "invalid JSON: json: cannot unmarshal string into Go struct field ExecOptions.Cmd of "
        "type []string"
    )
    assert api.post_json("/containers/ghost/exec", {"Cmd": ["ls"]}).status == 404
    missing = api.get("/exec/nope/json")
    assert (missing.status, missing.json()) == (404, {"message": "No such exec instance: nope"})
    assert api.post_json("/exec/nope/start", {"Detach": True}).status == 404
    failed = _create(engine, "box", {"Cmd": ["nope"]})
    start = api.post_json(f"/exec/{failed}/start", {"Detach": True})
    assert start.status == 400
    assert start.json()["message"] == NOT_FOUND
    assert api.get(f"/exec/{failed}/json").json()["ExitCode"] == 127


def test_docker_py_exec_run_and_archives(docker: DockerRun, engine: RunningEngine) -> None:
    _run(docker, "box")
    client = docker_sdk.DockerClient(base_url=engine.host)
    try:
        box = client.containers.get("box")
        assert box.exec_run("sh -c 'echo out; exit 4'") == (4, b"out\n")
        both = box.exec_run("sh -c 'echo out; echo err >&2'", demux=True)
        assert both == (0, (b"out\n", b"err\n"))
        assert box.exec_run("nope").exit_code == 127
        streamed = box.exec_run("sh -c 'echo 1; echo 2'", stream=True)
        assert b"".join(streamed.output) == b"1\n2\n"
        assert box.put_archive("/tmp", _one_file_tar("sdk.txt", b"from docker-py\n"))
        chunks, stat = box.get_archive("/tmp/sdk.txt")
        assert stat["name"] == "sdk.txt" and stat["size"] == 15
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
            assert archive.extractfile("sdk.txt").read() == b"from docker-py\n"  # type: ignore[union-attr]
    finally:
        client.close()


def _one_file_tar(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        entry = tarfile.TarInfo(name)
        entry.size = len(data)
        archive.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()
