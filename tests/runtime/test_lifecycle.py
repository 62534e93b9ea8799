"""create, start, state, kill, delete, exec, run, a tty through a console socket, the shim's
logs and attach, nesting under a parent pid namespace, and user namespaces."""

from __future__ import annotations

import array
import copy
import json
import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest


def _config(template: dict, args: list[str], **process) -> dict:
    config = copy.deepcopy(template)
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["process"].update(process)
    return config


def test_create_start_state_kill_delete_follow_runc(runtime, make_bundle, runc_spec_template):
    bundle = make_bundle(_config(runc_spec_template, ["sleep", "60"]))
    container_id = runtime.new_id()
    pid_file = bundle / "pid"
    created = runtime("create", container_id, "--bundle", str(bundle), "--pid-file", str(pid_file))
    assert created.returncode == 0, created.stderr
    state = runtime.state(container_id)
    assert state["status"] == "created"
    assert state["id"] == container_id
    assert state["bundle"] == str(bundle)
    assert state["pid"] == int(pid_file.read_text())
    assert runtime("start", container_id).returncode == 0
    assert runtime.state(container_id)["status"] == "running"
    again = runtime("start", container_id)
    assert again.returncode != 0
    assert "cannot start an already running container" in again.stderr
    listed = runtime("list").stdout
    assert container_id in listed and "running" in listed
    refused = runtime("delete", container_id)
    assert refused.returncode != 0
    assert f"cannot delete container {container_id} that is not stopped: running" in refused.stderr
    assert runtime("kill", container_id, "KILL").returncode == 0
    state = runtime.wait_status(container_id, "stopped")
    assert state["status"] == "stopped"
    assert state["pid"] == 0
    assert state["exitStatus"] == 137
    assert runtime("delete", container_id).returncode == 0
    missing = runtime("state", container_id)
    assert missing.returncode != 0
    assert "does not exist" in missing.stderr


def test_run_returns_the_exit_code_and_passes_stdio(runtime, make_bundle, runc_spec_template):
    bundle = make_bundle(_config(runc_spec_template, ["sh", "-c", "cat; echo err >&2; exit 7"]))
    result = runtime("run", runtime.new_id(), "--bundle", str(bundle), input="from stdin\n")
    assert result.returncode == 7
    assert result.stdout == "from stdin\n"
    assert result.stderr == "err\n"


def test_run_forwards_sigterm_to_the_container(runtime, make_bundle, runc_spec_template):
    script = "trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 0.1; done"
    bundle = make_bundle(_config(runc_spec_template, ["sh", "-c", script]))
    proc = subprocess.Popen(
        runtime.argv("run", runtime.new_id(), "--bundle", str(bundle)),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 42
        assert proc.stdout.read() == "got TERM\n"
    finally:
        proc.kill()
        proc.wait()


def test_exec_joins_the_containers_namespaces_and_returns_its_exit_code(
    runtime, make_bundle, runc_spec_template
):
    bundle = make_bundle(_config(runc_spec_template, ["sleep", "60"]))
    container_id = runtime.new_id()
    assert runtime("run", "--detach", container_id, "--bundle", str(bundle)).returncode == 0
    result = runtime(
        "exec", container_id, "--", "sh", "-c", "hostname; cat /proc/1/cmdline; echo; exit 5"
    )
    assert result.returncode == 5, result.stderr
    assert result.stdout.splitlines() == ["runc", "sleep\x0060\x00"]
    env = runtime(
        "exec",
        "-e",
        "GREETING=hi",
        "--cwd",
        "/etc",
        container_id,
        "sh",
        "-c",
        "echo $GREETING $PWD",
    )
    assert env.stdout == "hi /etc\n"
    missing = runtime("exec", container_id, "--", "no-such-command")
    assert missing.returncode != 0
    assert 'exec: "no-such-command": executable file not found in $PATH' in missing.stderr


def _console_server(path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(20)
    return server


def _receive_master(server: socket.socket) -> int:
    conn, _ = server.accept()
    with conn:
        _, ancdata, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(4))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            return array.array("i", data[:4])[0]
    raise AssertionError("no descriptor arrived on the console socket")


def _read_until(fd: int, needle: bytes, timeout: float = 20) -> bytes:
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def test_tty_container_through_a_console_socket(runtime, make_bundle, runc_spec_template, tmp_path):
    config = copy.deepcopy(runc_spec_template)  # terminal: true, args: ["sh"]
    bundle = make_bundle(config)
    server = _console_server(tmp_path / "console.sock")
    container_id = runtime.new_id()
    created = subprocess.Popen(
        runtime.argv(
            "create", container_id, "--bundle", str(bundle),
            "--console-socket", str(tmp_path / "console.sock"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    master = _receive_master(server)
    try:
        assert created.wait(timeout=20) == 0, created.stderr.read()
        assert runtime("start", container_id).returncode == 0
        os.write(master, b"tty; echo $((6*7))\n")
        seen = _read_until(master, b"42")
        assert b"/dev/pts/0" in seen
        assert b"42" in seen
        os.write(master, b"exit 5\n")
        state = runtime.wait_status(container_id, "stopped")
        assert state["exitStatus"] == 5
    finally:
        os.close(master)
        server.close()


def test_killing_the_creator_leaves_the_container_running_and_its_logs_intact(
    runtime, make_bundle, runc_spec_template
):
    script = "echo out-line; echo err-line >&2; sleep 60"
    bundle = make_bundle(_config(runc_spec_template, ["sh", "-c", script]))
    container_id = runtime.new_id()
    create = " ".join(runtime.argv("create", container_id, "--bundle", str(bundle)))
    start = " ".join(runtime.argv("start", container_id))
    caller = subprocess.Popen(
        ["sh", "-c", f"{create} && {start} && sleep 60"], start_new_session=True
    )
    try:
        state = runtime.wait_status(container_id, "running")
        assert state["status"] == "running"
    finally:
        os.killpg(caller.pid, signal.SIGKILL)
        caller.wait()
    time.sleep(0.3)
    assert runtime.state(container_id)["status"] == "running"
    log = Path(runtime.root, container_id, "container-json.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(log.read_text().splitlines()) < 2:
        time.sleep(0.05)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert {(e["log"], e["stream"]) for e in entries} == {
        ("out-line\n", "stdout"),
        ("err-line\n", "stderr"),
    }
    assert all(e["time"].endswith("Z") and len(e["time"]) == 30 for e in entries)


def test_attach_streams_multiplexed_output_and_feeds_stdin(
    runtime, make_bundle, runc_spec_template
):
    config = _config(runc_spec_template, ["sh", "-c", "read line; echo got $line; echo bye >&2"])
    config["annotations"] = {"org.slipway.stdin": "open"}
    bundle = make_bundle(config)
    container_id = runtime.new_id()
    assert runtime("create", container_id, "--bundle", str(bundle)).returncode == 0
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    sock.connect(str(Path(runtime.root, container_id, "shim.sock")))
    request = {"op": "attach", "stdin": True, "stdout": True, "stderr": True, "stdin_once": True}
    sock.sendall(json.dumps(request).encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        reply += sock.recv(1)
    assert json.loads(reply) == {"ok": True, "tty": False}
    assert runtime("start", container_id).returncode == 0
    sock.sendall(b"hello\n")
    sock.shutdown(socket.SHUT_WR)
    stream = b""
    while chunk := sock.recv(4096):
        stream += chunk
    sock.close()
    frames = []
    while stream:
        kind, size = struct.unpack(">BxxxL", stream[:8])
        frames.append((kind, stream[8 : 8 + size]))
        stream = stream[8 + size :]
    assert (1, b"got hello\n") in frames
    assert (2, b"bye\n") in frames
    assert runtime.wait_status(container_id, "stopped")["exitStatus"] == 0


def test_steps_show_what_the_runtime_did_to_the_kernel(runtime, make_bundle, default_spec):
    config = default_spec(["sleep", "60"], memory_limit=64 << 20)
    bundle = make_bundle(config)
    container_id = runtime.new_id()
    assert runtime("run", "-d", container_id, "--bundle", str(bundle)).returncode == 0
    steps = runtime("steps", container_id).stdout
    for expected in (
        "created a new pid namespace",
        "created new mount, uts, ipc, network namespaces",
        "memory.limit_in_bytes",
        "mounted proc on /proc",
        "pivot_root into",
        "masked /proc/acpi, /proc/interrupts, /proc/keys",
        "kept CAP_CHOWN",
        "loaded a seccomp filter",
        "set no_new_privs",
        'executing ["sleep", "60"]',
    ):
        assert expected in steps
    entries = json.loads(runtime("steps", container_id, "--json").stdout)
    assert [e["kind"] for e in entries].index("pivot_root") < [e["kind"] for e in entries].index(
        "exec"
    )
    # state stays runc's JSON: no step log in it.
    assert set(runtime.state(container_id)) <= {
        "ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner", "annotations",
    }  # fmt: skip


def test_pause_and_resume_freeze_the_container(runtime, make_bundle, runc_spec_template):
    bundle = make_bundle(_config(runc_spec_template, ["sleep", "60"]))
    container_id = runtime.new_id()
    assert runtime("run", "-d", container_id, "--bundle", str(bundle)).returncode == 0
    assert runtime("pause", container_id).returncode == 0
    assert runtime.state(container_id)["status"] == "paused"
    assert runtime("resume", container_id).returncode == 0
    assert runtime.state(container_id)["status"] == "running"


@pytest.fixture
def node_pid():
    """A stand-in for a simulated node: a process that is PID 1 of a pid namespace."""
    node = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "sleep", "120"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            children = subprocess.run(
                ["pgrep", "-P", str(node.pid)], capture_output=True, text=True
            ).stdout.split()
            if children:
                yield int(children[0])
                return
            time.sleep(0.02)
        raise AssertionError("the node's pid namespace did not start")
    finally:
        node.kill()
        node.wait()


def _nspids(pid: int) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError("no NSpid line")


def test_a_parent_pid_namespace_annotation_nests_the_container_inside_it(
    runtime, make_bundle, runc_spec_template, node_pid
):
    assert _nspids(node_pid)[1:] == [1]
    config = _config(runc_spec_template, ["sleep", "60"])
    config["annotations"] = {"org.slipway.pidns.parent": f"/proc/{node_pid}/ns/pid"}
    bundle = make_bundle(config)
    container_id = runtime.new_id()
    assert runtime("run", "-d", container_id, "--bundle", str(bundle)).returncode == 0
    pid = runtime.state(container_id)["pid"]
    # host PID, PID in the node, PID 1 in the container: three levels deep.
    levels = _nspids(pid)
    assert len(levels) == 3
    assert levels[0] == pid and levels[2] == 1
    # The node sees the container's process, as a real host sees its containers.
    node_view = subprocess.run(
        ["nsenter", f"--pid=/proc/{node_pid}/ns/pid", "--", "sh", "-c", "cat /proc/$$/status"],
        capture_output=True,
        text=True,
    )
    assert node_view.returncode == 0
    # The container's init is a child of the runtime side, not of the node.
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert ppid != node_pid
    assert runtime("exec", container_id, "--", "sh", "-c", "echo $$").stdout.strip().isdigit()


@pytest.fixture
def traversable_bundles(busybox_rootfs):
    """Bundles under a directory that the mapped (unprivileged) root may enter."""
    import shutil
    import tempfile

    from tests.runtime.conftest import BundleFactory

    base = Path(tempfile.mkdtemp(prefix="slipway-userns-"))
    base.chmod(0o711)
    try:
        yield BundleFactory(base, busybox_rootfs)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_user_namespace_maps_container_root_to_an_unprivileged_host_uid(
    runtime, traversable_bundles, runc_spec_template
):
    config = _config(runc_spec_template, ["sh", "-c", "id -u; cat /proc/self/uid_map; sleep 60"])
    config["linux"]["namespaces"].append({"type": "user"})
    mapping = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    config["linux"]["uidMappings"] = mapping
    config["linux"]["gidMappings"] = mapping
    bundle = traversable_bundles(config)
    container_id = runtime.new_id()
    assert runtime("create", container_id, "--bundle", str(bundle)).returncode == 0
    assert runtime("start", container_id).returncode == 0
    pid = runtime.state(container_id)["pid"]
    uid_line = next(
        line
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("Uid:")
    )
    assert uid_line.split()[1:] == ["200000"] * 4
    log = Path(runtime.root, container_id, "container-json.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "200000" not in log.read_text():
        time.sleep(0.05)
    lines = [json.loads(line)["log"] for line in log.read_text().splitlines()]
    assert lines[0] == "0\n"
    assert lines[1].split() == ["0", "200000", "65536"]


def test_joining_a_namespace_by_path_shares_it(runtime, make_bundle, runc_spec_template):
    first = make_bundle(_config(runc_spec_template, ["sleep", "60"]))
    first_id = runtime.new_id()
    assert runtime("run", "-d", first_id, "--bundle", str(first)).returncode == 0
    first_pid = runtime.state(first_id)["pid"]
    config = _config(runc_spec_template, ["sh", "-c", "readlink /proc/self/ns/net"])
    config["linux"]["namespaces"] = [
        {"type": "network", "path": f"/proc/{first_pid}/ns/net"} if ns["type"] == "network" else ns
        for ns in config["linux"]["namespaces"]
    ]
    result = runtime("run", runtime.new_id(), "--bundle", str(make_bundle(config)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == os.readlink(f"/proc/{first_pid}/ns/net")


def test_rlimits_are_clamped_to_the_hard_limit_never_raised(
    runtime, make_bundle, runc_spec_template
):
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    config = _config(runc_spec_template, ["sh", "-c", "ulimit -Sn; ulimit -Hn"])
    config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "hard": hard + 1000, "soft": hard + 1000}
    ]
    result = runtime("run", runtime.new_id(), "--bundle", str(make_bundle(config)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(hard), str(hard)]


def test_user_groups_and_sysctls_are_applied(runtime, make_bundle, runc_spec_template):
    config = _config(
        runc_spec_template,
        ["sh", "-c", "id -u; id -g; id -G; cat /proc/sys/net/ipv4/ping_group_range"],
        user={"uid": 1000, "gid": 1000, "additionalGids": [5, 20]},
    )
    config["linux"]["sysctl"] = {"net.ipv4.ping_group_range": "0 1000"}
    result = runtime("run", runtime.new_id(), "--bundle", str(make_bundle(config)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["1000", "1000"]
    assert set(lines[2].split()) == {"1000", "5", "20"}
    assert lines[3].split() == ["0", "1000"]


def test_a_tty_container_without_console_socket_is_owned_by_its_shim(
    runtime, make_bundle, runc_spec_template
):
    bundle = make_bundle(copy.deepcopy(runc_spec_template))  # terminal: true, args: ["sh"]
    container_id = runtime.new_id()
    assert runtime("create", container_id, "--bundle", str(bundle)).returncode == 0
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    sock.connect(str(Path(runtime.root, container_id, "shim.sock")))
    sock.sendall(json.dumps({"op": "attach", "stdin": True}).encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        reply += sock.recv(1)
    assert json.loads(reply) == {"ok": True, "tty": True}
    assert runtime("start", container_id).returncode == 0
    sock.sendall(b"echo $((7*6))-from-tty; exit 4\n")
    stream = b""
    while chunk := sock.recv(4096):
        stream += chunk
    sock.close()
    assert b"42-from-tty" in stream  # raw pty bytes, no multiplexing headers
    assert runtime.wait_status(container_id, "stopped")["exitStatus"] == 4
    log = Path(runtime.root, container_id, "container-json.log").read_text()
    assert "42-from-tty" in log
