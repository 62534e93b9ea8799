"""Slipway's CLI in a real pseudo-terminal, as in a learner's shell: `docker run -it busybox sh`
(the shell is PID 1, Ctrl-P Ctrl-Q detaches, `docker attach` re-enters, `exit` stops it),
`docker exec -it`, the window size sent at the start and on every resize, and the terminal
given back exactly as it was."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import test_container_commands as commands
from tests.engine.conftest import DockerRun, RunningEngine
from tests.support.terminal import Terminal
from tests.support.terminal import terminal as in_terminal

# The engine of the command tests (its containers in a cgroup of its own, all removed
# afterwards) and the real CLI on it.
engine = commands.engine
docker = commands.docker

pytestmark = pytest.mark.timeout(300)
CTRL_P_CTRL_Q = b"\x10\x11"


@contextlib.contextmanager
def terminal(
    engine: RunningEngine, tmp_path: Path, arguments: list[str], rows: int = 24, cols: int = 80
) -> Iterator[Terminal]:
    """Our CLI with ``arguments`` in a terminal of ``rows`` x ``cols``."""
    environment = commands.cli_environment(engine, tmp_path)
    with in_terminal([*commands.OUR_CLI, *arguments], environment, rows, cols) as session:
        yield session


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def _state(docker: DockerRun, name: str) -> dict[str, object]:
    return json.loads(_ok(docker("inspect", name)))[0]["State"]


def _raw(attributes: list) -> bool:
    return not attributes[3] & (termios.ICANON | termios.ECHO | termios.ISIG)


def test_run_it_gives_a_shell_as_pid_1_that_detaches_and_is_attached_again(
    engine: RunningEngine, docker: DockerRun, tmp_path: Path
) -> None:
    _ok(docker("pull", "busybox"))
    with terminal(engine, tmp_path, ["run", "-it", "--name", "shell", "busybox", "sh"]) as run:
        run.expect(rb"/ # ")
        assert _raw(run.attributes())
        run.send(b"ps\r")
        run.expect(rb"\n\s*1 root\s+sh\r?\n")  # the shell is the container's PID 1
        run.expect(rb"/ # ")
        run.send(CTRL_P_CTRL_Q)
        assert run.wait() == 0
        assert run.attributes() == run.before
    assert _state(docker, "shell")["Running"] is True
    with terminal(engine, tmp_path, ["attach", "shell"]) as attached:
        attached.send(b"echo back-$((40 + 2))\r")
        attached.expect(rb"back-42")
        attached.send(b"exit\r")
        assert attached.wait() == 0
        assert attached.attributes() == attached.before
    state = _state(docker, "shell")
    assert (state["Running"], state["ExitCode"]) == (False, 0)
    assert re.search(r"Exited \(0\) .* shell\n", _ok(docker("ps", "-a")))


def test_attach_detaches_on_its_keys_with_dockers_message_and_status(
    engine: RunningEngine, docker: DockerRun, docker_cli: str, tmp_path: Path
) -> None:
    _ok(docker("run", "-dit", "--name", "held", "busybox", "sh"))
    outcomes = []
    for cli in ([docker_cli], commands.OUR_CLI):
        environment = commands.cli_environment(engine, tmp_path)
        argv = [*cli, "attach", "--detach-keys", "ctrl-a,x", "held"]
        session = Terminal(argv, environment, 24, 80)
        try:
            session.send(b"echo one-$((0 + 1))\r")
            session.expect(rb"one-1")
            session.send(b"\x01x")
            status = session.wait()
            outcomes.append((status, session.output.endswith(b"read escape sequence\r\n")))
            assert session.attributes() == session.before
        finally:
            session.close()
    assert outcomes == [(1, True), (1, True)]
    assert _state(docker, "held")["Running"] is True


def test_exec_it_runs_a_shell_in_the_terminal_and_gives_it_back(
    engine: RunningEngine, docker: DockerRun, tmp_path: Path
) -> None:
    _ok(docker("run", "-d", "--name", "box", "busybox", "sleep", "600"))
    with terminal(engine, tmp_path, ["exec", "-it", "box", "sh"]) as session:
        session.expect(rb"/ # ")
        assert _raw(session.attributes())
        session.send(b"tty; ps\r")
        session.expect(rb"/dev/pts/\d+\r\n")
        session.expect(rb"\n\s*1 root\s+sleep 600\r?\n")  # beside the container's own PID 1
        session.send(b"exit 3\r")
        assert session.wait() == 3
        assert session.attributes() == session.before
    assert _state(docker, "box")["Running"] is True


@pytest.mark.parametrize("command", [["run", "-it", "--rm", "busybox", "sh"], ["exec", "-it"]])
def test_the_window_size_is_sent_at_the_start_and_on_each_resize(
    engine: RunningEngine, docker: DockerRun, tmp_path: Path, command: list[str]
) -> None:
    _ok(docker("run", "-d", "--name", "box", "busybox", "sleep", "600"))
    if command[0] == "exec":
        command = [*command, "box", "sh"]
    with terminal(engine, tmp_path, command, rows=30, cols=100) as session:
        session.expect(rb"/ # ")
        session.send(b"stty size\r")
        session.expect(rb"\r\n30 100\r\n")
        session.resize(41, 123)
        engine.await_call("POST", "/resize", "h=41&w=123")  # the CLI resizes when it can
        session.send(b"stty size\r")
        session.expect(rb"\r\n41 123\r\n")
        session.send(b"exit\r")
        assert session.wait() == 0


def test_cp_in_a_terminal_says_how_much_it_copied(
    engine: RunningEngine, docker: DockerRun, tmp_path: Path
) -> None:
    _ok(docker("run", "-d", "--name", "box", "busybox", "sh", "-c", "echo hi > /hi; sleep 600"))
    _ok(docker("exec", "box", "sh", "-c", "until [ -s /hi ]; do sleep 0.1; done"))
    target = tmp_path / "hi"
    with terminal(engine, tmp_path, ["cp", "box:/hi", str(target)]) as session:
        assert session.wait() == 0
        assert session.output == f"Successfully copied 2.05kB to {target}\r\n".encode()
    assert target.read_text() == "hi\n"
    with terminal(engine, tmp_path, ["cp", str(target), "box:/again"]) as session:
        assert session.wait() == 0
        assert session.output == b"Successfully copied 2.05kB to box:/again\r\n"
    assert _ok(docker("exec", "box", "cat", "/again")) == "hi\n"
