"""A reference Docker daemon for tests and benchmarks: Debian's docker.io dockerd, started with
its own data root, socket, containerd, network namespace and /run, and torn down completely."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.netns import Portals

DOCKERD = Path("/usr/sbin/dockerd")
CONTAINERD = Path("/usr/bin/containerd")
INSTALL_HINT = "apt-get install docker.io"
CLI_MAJOR_VERSION = "28."
# docker.io puts an older CLI here; it must never stand in for the 28.x one.
DEBIAN_CLI_DIRS = (Path("/usr/bin"), Path("/bin"))
SOCKET_PATH_LIMIT = 107  # sun_path holds 108 bytes, the last one a NUL
CGROUP_ROOT = Path("/sys/fs/cgroup")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ReferenceDockerdError(RuntimeError):
    """The reference dockerd could not be found, started or stopped."""


@dataclass(frozen=True)
class DockerdHandle:
    """A running reference dockerd: where its socket is, and how to run the CLI against it."""

    socket: Path
    env: dict[str, str]
    cli: Path
    root: Path
    pid: int
    cgroup_parent: str
    portals: Portals

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def reach(self, address: str) -> None:
        """Let this dockerd reach ``HOST:PORT`` of the caller's network namespace (a hub to
        use as ``--registry-mirror``), at the same address."""
        if address not in self.portals.portals:
            self.portals.portal(address)

    def docker(
        self, *args: str, check: bool = True, timeout: float = 60.0, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the 28.x docker CLI against this daemon, capturing its output as text."""
        result = subprocess.run(
            [str(self.cli), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
        )
        if check and result.returncode != 0:
            raise ReferenceDockerdError(
                f"docker {shlex.join(args)} exited with {result.returncode}: {result.stderr}"
            )
        return result

    def api(
        self, method: str, path: str, body: Any = None, timeout: float = 30.0
    ) -> tuple[int, bytes]:
        """One Engine API request over the unix socket; returns the status and the body."""
        return api_request(self.socket, method, path, body, timeout)

    def get_json(self, path: str) -> Any:
        """GET an Engine API path and decode its JSON body; a non-2xx status is an error."""
        status, body = self.api("GET", path)
        if not 200 <= status < 300:
            raise ReferenceDockerdError(f"GET {path}: {status} {body.decode(errors='replace')}")
        return json.loads(body)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.socket_path))
        self.sock = sock


def api_request(
    socket_path: Path, method: str, path: str, body: Any = None, timeout: float = 30.0
) -> tuple[int, bytes]:
    """Send one HTTP request to a Docker-style API on a unix socket."""
    connection = _UnixHTTPConnection(socket_path, timeout)
    try:
        headers = {}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def is_executable_binary(path: Path) -> bool:
    """Whether ``path`` is an ELF executable: the real CLI is one, Slipway's CLI (which also
    says "Docker version 28...") is a script."""
    try:
        with open(path, "rb") as file:
            return file.read(4) == b"\x7fELF"
    except OSError:
        return False


def find_docker_cli() -> Path:
    """The docker CLI 28.x on PATH; Debian's older CLI in /usr/bin is never taken."""
    refused = {d.resolve() for d in DEBIAN_CLI_DIRS}
    seen: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory or ".") / "docker"
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        if candidate.resolve().parent in refused or Path(directory).resolve() in refused:
            seen.append(f"{candidate} (Debian's, skipped)")
            continue
        if not is_executable_binary(candidate):
            seen.append(f"{candidate} (a script, such as Slipway's own CLI: skipped)")
            continue
        version = subprocess.run(
            [str(candidate), "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        seen.append(f"{candidate}: {version}")
        if re.match(rf"Docker version {re.escape(CLI_MAJOR_VERSION)}", version):
            return candidate
    raise ReferenceDockerdError(
        f"no docker CLI {CLI_MAJOR_VERSION}x on PATH (found: {seen or 'none'})"
    )


def _check_installed() -> None:
    missing = [str(p) for p in (DOCKERD, CONTAINERD) if not p.exists()]
    if missing or shutil.which("runc") is None:
        raise ReferenceDockerdError(
            f"the reference dockerd needs Debian's docker.io ({', '.join(missing) or 'runc'} "
            f"missing): run `{INSTALL_HINT}`"
        )


def _containerd_config(root: Path, address: Path) -> str:
    """containerd's config: every path under root, the CRI plugin off, no TCP listeners."""
    return f"""version = 2
root = "{root / "containerd-root"}"
state = "{root / "containerd-state"}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{address}"

[ttrpc]
  address = "{address}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{root / "containerd-opt"}"
"""


def _launch_script(root: Path, containerd_args: list[str], dockerd_args: list[str]) -> str:
    """The shell run inside the new namespaces: a private /run, loopback up, then containerd in
    the background and dockerd in the foreground (exec, so its pid is the one we started)."""
    return "\n".join(
        [
            "set -e",
            "mount -t tmpfs -o mode=0755 slipway-refdockerd-run /run",
            "ip link set lo up",
            f"{shlex.join(containerd_args)} >{shlex.quote(str(root / 'containerd.log'))} 2>&1 &",
            f"exec {shlex.join(dockerd_args)}",
        ]
    )


def _ping(socket_path: Path) -> bool:
    try:
        status, _ = api_request(socket_path, "GET", "/_ping", timeout=2.0)
    except OSError:
        return False
    return status == 200


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _namespace_inode(pid: int, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def _cgroup_dirs(parent: str) -> list[Path]:
    """Every cgroup directory named parent, and all below it, in every hierarchy, deepest
    first. (runc may nest a parent under its caller's cgroup: search the whole tree.)"""
    found: set[Path] = set()
    for directory, subdirectories, _ in os.walk(CGROUP_ROOT):
        if Path(directory).name == parent:
            found.update(Path(d) for d, _, _ in os.walk(directory))
            subdirectories.clear()
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _our_processes(root: Path, cgroup_parent: str, namespaces: set[int]) -> set[int]:
    """Processes that belong to this reference daemon: in its namespaces, in its cgroups, or
    naming its root directory on their command line (containerd's shims do)."""
    found: set[int] = set()
    for directory in _cgroup_dirs(cgroup_parent):
        with suppress(OSError):
            found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
    marker = str(root).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if not cmdline:
            continue  # kernel threads and zombies
        in_our_namespace = any(_namespace_inode(pid, kind) in namespaces for kind in ("net", "mnt"))
        if marker in cmdline or in_our_namespace:
            found.add(pid)
    return found


def _remove_all_containers(socket_path: Path) -> None:
    """Force-remove every container, so no `docker stop` timeout delays the shutdown."""
    try:
        status, body = api_request(socket_path, "GET", "/containers/json?all=1", timeout=5.0)
        if status != 200:
            return
        for container in json.loads(body):
            api_request(
                socket_path, "DELETE", f"/containers/{container['Id']}?force=1&v=1", timeout=15.0
            )
    except (OSError, ValueError):
        return


def _stop(
    process: subprocess.Popen[bytes], root: Path, cgroup_parent: str, namespaces: set[int]
) -> None:
    """Stop dockerd, then containerd, then anything left of theirs; remove cgroups and mounts."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)  # containerd and the launcher's other children
    deadline = time.monotonic() + STOP_TIMEOUT
    leftovers: set[int] = set()
    while time.monotonic() < deadline:
        leftovers = _our_processes(root, cgroup_parent, namespaces)
        if not leftovers:
            break
        for pid in leftovers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    else:
        raise ReferenceDockerdError(
            f"processes of the reference dockerd survived SIGKILL: {sorted(leftovers)}"
        )
    for directory in _cgroup_dirs(cgroup_parent):
        deadline = time.monotonic() + STOP_TIMEOUT
        while directory.exists():
            try:
                directory.rmdir()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    _unmount_under(root)
    shutil.rmtree(root, ignore_errors=True)


def _unmount_under(root: Path) -> None:
    """Unmount whatever is mounted below root in our own mount namespace (deepest first).
    dockerd's mounts live in its private namespace, so normally there is nothing."""
    prefix = str(root) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@contextmanager
def reference_dockerd(tmp: Path, extra_args: Sequence[str] = ()) -> Iterator[DockerdHandle]:
    """Start Debian's dockerd (and a containerd of its own) with all state under tmp, in a new
    network and mount namespace, so that neither the host's network nor its /run is touched.
    extra_args go to dockerd. Everything is stopped, unmounted and removed on exit, also when
    start-up fails (then ReferenceDockerdError carries the end of dockerd's log)."""
    _check_installed()
    cli = find_docker_cli()
    root = Path(tmp).resolve() / f"dockerd-{secrets.token_hex(3)}"
    docker_socket = root / "docker.sock"
    containerd_socket = root / "containerd.sock"
    if len(str(containerd_socket) + ".ttrpc") > SOCKET_PATH_LIMIT:
        raise ReferenceDockerdError(f"{root} is too long a path for the daemon's sockets")
    root.mkdir(parents=True)
    cgroup_parent = f"slipway-test-refdockerd-{secrets.token_hex(4)}"
    (root / "containerd.toml").write_text(_containerd_config(root, containerd_socket))
    (root / "daemon.json").write_text(
        json.dumps({"deprecated-key-path": str(root / "key.json")}) + "\n"
    )
    cli_config = root / "cli-config"
    cli_config.mkdir()
    (cli_config / "config.json").write_text("{}\n")

    containerd_args = [str(CONTAINERD), "--config", str(root / "containerd.toml")]
    dockerd_args = [
        str(DOCKERD),
        "--config-file", str(root / "daemon.json"),
        "--containerd", str(containerd_socket),
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "dockerd.pid"),
        "--host", f"unix://{docker_socket}",
        "--storage-driver", "overlay2",
        "--cgroup-parent", f"/{cgroup_parent}",
        *extra_args,
    ]  # fmt: skip
    script = _launch_script(root, containerd_args, dockerd_args)
    log_path = root / "dockerd.log"
    namespaces: set[int] = set()
    portals: Portals | None = None
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _ping(docker_socket):
            if not namespaces:
                namespaces = _namespaces_of(process.pid)
            if process.poll() is not None:
                raise ReferenceDockerdError(
                    f"dockerd exited with {process.returncode} while starting:\n"
                    f"{_log_tail(log_path)}\ncontainerd:\n{_log_tail(root / 'containerd.log')}"
                )
            if time.monotonic() > deadline:
                raise ReferenceDockerdError(
                    f"dockerd did not answer on {docker_socket} within {START_TIMEOUT:.0f}s:\n"
                    f"{_log_tail(log_path)}"
                )
            time.sleep(0.05)
        namespaces = namespaces or _namespaces_of(process.pid)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update({"DOCKER_HOST": f"unix://{docker_socket}", "DOCKER_CONFIG": str(cli_config)})
        portals = Portals(f"/proc/{process.pid}/ns/net")
        yield DockerdHandle(
            socket=docker_socket,
            env=env,
            cli=cli,
            root=root,
            pid=process.pid,
            cgroup_parent=cgroup_parent,
            portals=portals,
        )
    finally:
        if portals is not None:
            portals.close()
        if process.poll() is None:
            _remove_all_containers(docker_socket)
        _stop(process, root, cgroup_parent, namespaces)


def _namespaces_of(pid: int) -> set[int]:
    """The inodes of the new network and mount namespaces, once unshare has made them."""
    own = {_namespace_inode(os.getpid(), kind) for kind in ("net", "mnt")}
    theirs = {_namespace_inode(pid, kind) for kind in ("net", "mnt")}
    if None in theirs or theirs & own:
        return set()  # not unshared yet (or already gone)
    return {inode for inode in theirs if inode is not None}


def write_busybox_rootfs_tar(destination: Path, busybox: Path = Path("/bin/busybox")) -> Path:
    """A tar of a minimal root filesystem: a static busybox with every applet linked to it."""
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    with tarfile.open(destination, "w") as tar:
        for name, mode in (
            ("bin", 0o755),
            ("dev", 0o755),
            ("etc", 0o755),
            ("proc", 0o555),
            ("root", 0o700),
            ("sys", 0o555),
            ("tmp", 0o1777),
        ):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        for name, text in (
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/group", "root:x:0:\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return destination


def import_rootfs(
    handle: DockerdHandle,
    tar_path: Path,
    reference: str,
    changes: tuple[str, ...] = ('CMD ["sh"]',),
    message: str = "",
) -> str:
    """`docker import` a root filesystem tar as an image; returns the image ID (sha256:…)."""
    args = ["import"]
    for change in changes:
        args += ["--change", change]
    if message:
        args += ["--message", message]
    return handle.docker(*args, str(tar_path), reference).stdout.strip()


def load_image(handle: DockerdHandle, tar_path: Path) -> list[str]:
    """`docker load` an image archive (docker save or OCI layout tar); returns what it loaded,
    as the CLI names it ("busybox:latest", or an image ID for untagged images)."""
    output = handle.docker("load", "--input", str(tar_path)).stdout
    return re.findall(r"^Loaded image(?: ID)?: (\S+)$", output, flags=re.MULTILINE)
