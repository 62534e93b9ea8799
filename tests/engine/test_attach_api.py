"""Attach with detach keys: ``docker run -it`` and ``docker attach`` in a real pseudo-terminal
through the real docker CLI 28, and the engine's own detach (for clients that leave it to the
engine) on a raw attach connection."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from simulator.engine.execs import DetachKeys, parse_detach_keys
from tests.engine import test_containers_api
from tests.engine.conftest import DockerRun, RunningEngine
from tests.support.terminal import terminal

# The engine (every container removed, nothing left mounted, afterwards) and the real CLI.
engine = test_containers_api.engine
docker = test_containers_api.docker

CTRL_P_CTRL_Q = b"\x10\x11"
WAIT_SECONDS = 30.0  # a bound against hangs, never a measure


def _ok(result: object) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    return result.stdout  # type: ignore[attr-defined]


def cli_env(engine: RunningEngine, tmp_path: Path) -> dict[str, str]:
    """The environment ``docker`` fixture gives the CLI, plus a terminal type."""
    config = tmp_path / f"docker-config-{engine.socket_path.parent.name}"
    config.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DOCKER_HOST": engine.host,
        "DOCKER_CONFIG": str(config),
        "TERM": "xterm",
    }


def _state(docker: DockerRun, name: str) -> dict[str, object]:
    return json.loads(_ok(docker("inspect", name)))[0]["State"]


def test_run_it_detaches_on_ctrl_p_ctrl_q_and_attach_reenters(
    docker: DockerRun, docker_cli: str, engine: RunningEngine, tmp_path: Path
) -> None:
    env = cli_env(engine, tmp_path)
    with terminal([docker_cli, "run", "-it", "--name", "shell", "busybox", "sh"], env) as run:
        run.expect(rb"/ # ")
        run.send(b"ps\r")
        run.expect(rb"\n\s*1 root\s+sh\r?\n")  # the shell is the container's PID 1
        run.expect(rb"/ # ")
        run.send(CTRL_P_CTRL_Q)
        assert run.wait() == 0
    assert _state(docker, "shell")["Running"] is True
    with terminal([docker_cli, "attach", "shell"], env) as attached:
        attached.send(b"echo back-$((40 + 2))\r")
        attached.expect(rb"back-42")
        attached.send(b"exit\r")
        assert attached.wait() == 0
    state = _state(docker, "shell")
    assert (state["Running"], state["ExitCode"]) == (False, 0)


def test_custom_detach_keys_of_the_cli_leave_the_container_running(
    docker: DockerRun, docker_cli: str, engine: RunningEngine, tmp_path: Path
) -> None:
    _ok(docker("run", "-dit", "--name", "held", "busybox", "sh"))
    env = cli_env(engine, tmp_path)
    argv = [docker_cli, "attach", "--detach-keys", "ctrl-a,x", "held"]
    with terminal(argv, env) as attached:
        attached.send(b"echo o''ne\r")
        attached.expect(rb"\none\r\n")
        attached.send(b"\x01x")
        attached.expect(rb"read escape sequence")  # as against dockerd: attach says so,
        assert attached.wait() == 1  # and fails (run -it does neither)
    assert _state(docker, "held")["Running"] is True


def _raw_attach(engine: RunningEngine, container: str, query: str) -> socket.socket:
    """An attach connection of our own, past its ``101 UPGRADED`` head."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(WAIT_SECONDS)
    client.connect(str(engine.socket_path))
    client.sendall(
        f"POST /v1.50/containers/{container}/attach?{query} HTTP/1.1\r\nHost: docker\r\n"
        "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += client.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED"), head
    return client


def _read_until(client: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        chunk = client.recv(65536)
        assert chunk, f"the connection ended before {marker!r}: {received!r}"
        received += chunk
    return received


def _read_to_end(client: socket.socket) -> bytes:
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received


def test_the_engine_detaches_on_the_keys_and_never_passes_them_on(
    docker: DockerRun, engine: RunningEngine
) -> None:
    # cat with a terminal echoes what it is given: what reached the container shows.
    _ok(docker("run", "-dit", "--name", "echo", "busybox", "cat"))
    query = "stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-a,x"
    with _raw_attach(engine, "echo", query) as client:
        # A partial match that goes another way is passed on whole; the sequence is not.
        client.sendall(b"one\x01two\n")
        _read_until(client, b"one\x01two")
        client.sendall(b"three\x01x")
        _read_to_end(client)  # the engine ends the attach
    assert _state(docker, "echo")["Running"] is True
    with _raw_attach(engine, "echo", "stream=1&stdin=1&stdout=1") as again:
        try:
            again.sendall(b"\n")  # ends the line the terminal holds: cat prints it back
            printed = _read_until(again, b"three\r\n")
        except (OSError, AssertionError) as error:
            told = [line for line in engine.log_text().splitlines() if "attach" in line]
            raise AssertionError(f"the second attach ended: {error}; engine: {told}") from error
    assert b"\x01" not in printed and b"x" not in printed  # the keys never reached it
    until = int(time.time()) + 1
    events = [
        json.loads(line)
        for line in engine.api().get(f"/events?since=0&until={until}").body.splitlines()
    ]
    assert "detach" in [event["Action"] for event in events if event["Type"] == "container"]


def test_the_default_detach_keys_are_ctrl_p_ctrl_q(
    docker: DockerRun, engine: RunningEngine
) -> None:
    _ok(docker("run", "-dit", "--name", "quiet", "busybox", "cat"))
    with _raw_attach(engine, "quiet", "stream=1&stdin=1&stdout=1") as client:
        client.sendall(b"ping\n")
        _read_until(client, b"ping")
        client.sendall(CTRL_P_CTRL_Q)
        _read_to_end(client)
    assert _state(docker, "quiet")["Running"] is True


def test_bad_detach_keys_are_refused_before_attaching(
    docker: DockerRun, engine: RunningEngine
) -> None:
    _ok(docker("run", "-dit", "--name", "keys", "busybox", "cat"))
    answer = engine.api().request(
        "POST", "/containers/keys/attach?stream=1&stdin=1&detachKeys=ctrl-foo"
    )
    assert answer.status == 400
    assert answer.json() == {"message": "Invalid detach keys (ctrl-foo) provided"}


def test_detach_keys_parse_and_match_as_dockers() -> None:
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_") == bytes(
        [0, 27, 28, 29, 30, 31]
    )
    assert parse_detach_keys("a,DEL,ctrl-z") == b"a\x7f\x1a"
    with pytest.raises(ValueError, match="Unknown character: 'ctrl-ab'"):
        parse_detach_keys("ctrl-ab")
    with pytest.raises(ValueError):
        parse_detach_keys("")
    keys = DetachKeys(b"\x10\x11")
    assert keys.feed(b"ab\x10") == (b"ab", False)  # held back: it may be the start
    assert keys.feed(b"c") == (b"\x10c", False)  # it was not: passed on, late
    assert keys.feed(b"x\x10\x10\x11") == (b"x\x10\x10\x11", False)  # as dockerd's proxy
    assert keys.feed(b"\x10") == (b"", False)
    assert keys.feed(b"\x11after") == (b"", True)
    assert DetachKeys(b"").keys == b"\x10\x11"


def test_all_of_a_large_stdin_reaches_the_container_before_it_closes(docker: DockerRun) -> None:
    # More than the shim queues at once: it must stop reading, then write all before closing.
    data = "0123456789abcdef" * 400_000
    result = docker("run", "-i", "--rm", "busybox", "sh", "-c", "sleep 0.5; wc -c", input=data)
    assert (result.returncode, result.stdout.strip()) == (0, str(len(data))), result.stderr


def test_an_attach_right_after_a_detach_always_reaches_the_container(
    docker: DockerRun, engine: RunningEngine
) -> None:
    # Each round leaves the shim an attach whose client went away while output for it was
    # on its way: an event for it can come in the same round as the one that drops it.
    _ok(docker("run", "-dit", "--name", "relay", "busybox", "cat"))
    for round_number in range(200):
        with _raw_attach(engine, "relay", "stream=1&stdin=1&stdout=1&detachKeys=ctrl-a,x") as a:
            a.sendall(b"one\n")
            _read_until(a, b"one\r\n")
            a.sendall(b"two\x01x")
            _read_to_end(a)
        with _raw_attach(engine, "relay", "stream=1&stdin=1&stdout=1") as again:
            try:
                again.sendall(b"\n")
                _read_until(again, b"two\r\n")
            except (OSError, AssertionError) as error:
                raise AssertionError(f"round {round_number}: {error}") from error
    assert _state(docker, "relay")["Running"] is True
