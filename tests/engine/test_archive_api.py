"""docker cp and docker export against a real engine, through the real docker CLI 28 and the
raw archive API: both directions on running and stopped containers, volumes, symlinks that
must stay inside the container, bad archives, and nothing left mounted."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import time
from pathlib import Path

from tests.engine import test_containers_api
from tests.engine.conftest import DockerRun, RunningEngine

# The engine (every container removed, nothing left mounted, afterwards) and the real CLI.
engine = test_containers_api.engine
docker = test_containers_api.docker


def _ok(result: object) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    return result.stdout  # type: ignore[attr-defined]


def _run(docker: DockerRun, name: str, *options: str) -> str:
    return _ok(docker("run", "-d", "--name", name, *options, "busybox", "sleep", "1d")).strip()


def _tar(*entries: tarfile.TarInfo, data: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for entry in entries:
            content = (data or {}).get(entry.name)
            if content is not None:
                entry.size = len(content)
            archive.addfile(entry, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    entry = tarfile.TarInfo(name)
    entry.type = kind
    entry.linkname = linkname
    entry.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return entry


def _mounted_roots(engine: RunningEngine, container_id: str) -> list[str]:
    """Mount points of the container's root filesystem in the engine's mount namespace."""
    with open(f"/proc/{engine.process.pid}/mountinfo") as mountinfo:
        return [line.split()[4] for line in mountinfo if container_id in line.split()[4]]


def _put(
    engine: RunningEngine, container: str, path: str, body: bytes, options: str = ""
) -> tuple[int, object]:
    answer = engine.api().request(
        "PUT",
        f"/containers/{container}/archive?path={path}{options}",
        body,
        {"Content-Type": "application/x-tar"},
    )
    return answer.status, (answer.json() if answer.body else None)


def test_cp_both_ways_on_a_running_container(
    docker: DockerRun, engine: RunningEngine, tmp_path: Path
) -> None:
    _run(docker, "box")
    local = tmp_path / "local"
    (local / "tree" / "deeper").mkdir(parents=True)
    (local / "note.txt").write_text("Be kind\n")
    (local / "tree" / "deeper" / "leaf").write_text("leaf\n")
    (local / "tree" / "link").symlink_to("deeper/leaf")
    _ok(docker("cp", str(local / "note.txt"), "box:/tmp/"))
    _ok(docker("cp", str(local / "tree"), "box:/copied"))  # a new name: the tree becomes it
    shown = _ok(docker("exec", "box", "cat", "/tmp/note.txt", "/copied/deeper/leaf"))
    assert shown == "Be kind\nleaf\n"
    assert _ok(docker("exec", "box", "readlink", "/copied/link")) == "deeper/leaf\n"
    _ok(docker("exec", "box", "sh", "-c", "mkdir -p /made/sub && echo inside > /made/sub/f"))
    back = tmp_path / "back"
    back.mkdir()
    _ok(docker("cp", "box:/made", str(back)))
    assert (back / "made" / "sub" / "f").read_text() == "inside\n"
    _ok(docker("cp", "box:/tmp/note.txt", str(back / "renamed.txt")))
    assert (back / "renamed.txt").read_text() == "Be kind\n"
    # The archive itself: a tar of the one file, named after it, as `docker cp box:f -` has.
    answer = engine.api().get("/containers/box/archive?path=/made/sub/f")
    assert answer.headers["Content-Type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(answer.body), mode="r") as archive:
        (member,) = archive.getmembers()
        assert (member.name, member.size, member.uname) == ("f", 7, "root")
    stat = json.loads(base64.b64decode(answer.headers["X-Docker-Container-Path-Stat"]))
    assert (stat["name"], stat["size"], stat["mode"]) == ("f", 7, 0o644)
    missing = docker("cp", "box:/nope", str(back))
    assert missing.returncode == 1
    assert (
        missing.stderr
        == "Error response from daemon: Could not find the file /nope in container box\n"
    )


def test_cp_both_ways_on_a_stopped_container_leaves_nothing_mounted(
    docker: DockerRun, engine: RunningEngine, tmp_path: Path
) -> None:
    created = _ok(docker("create", "--name", "later", "busybox", "cat", "/greeting")).strip()
    (tmp_path / "greeting").write_text("hello from the host\n")
    _ok(docker("cp", str(tmp_path / "greeting"), "later:/"))
    assert _mounted_roots(engine, created) == []
    result = docker("start", "-a", "later")
    assert (result.returncode, result.stdout) == (0, "hello from the host\n"), result.stderr
    # Exited now: copy out of it, and into it again.
    _ok(docker("cp", "later:/greeting", str(tmp_path / "out")))
    assert (tmp_path / "out").read_text() == "hello from the host\n"
    (tmp_path / "greeting").write_text("again\n")
    _ok(docker("cp", str(tmp_path / "greeting"), "later:/greeting"))
    assert _mounted_roots(engine, created) == []
    result = docker("start", "-a", "later")
    assert (result.returncode, result.stdout) == (0, "again\n"), result.stderr


def test_cp_into_a_named_volume_lands_in_the_volume(docker: DockerRun, tmp_path: Path) -> None:
    _ok(docker("volume", "create", "shared"))
    _run(docker, "user", "-v", "shared:/vol")
    (tmp_path / "f").write_text("in the volume\n")
    _ok(docker("cp", str(tmp_path / "f"), "user:/vol/"))
    _ok(docker("stop", "-t", "0", "user"))
    (tmp_path / "g").write_text("while stopped\n")
    _ok(docker("cp", str(tmp_path / "g"), "user:/vol/"))
    seen = docker("run", "--rm", "-v", "shared:/data", "busybox", "cat", "/data/f", "/data/g")
    assert _ok(seen) == "in the volume\nwhile stopped\n"
    _ok(docker("cp", "user:/vol/g", str(tmp_path / "g-back")))
    assert (tmp_path / "g-back").read_text() == "while stopped\n"
    _run(docker, "reader", "-v", "shared:/ro:ro", "--read-only")
    refused = docker("cp", str(tmp_path / "f"), "reader:/ro/")
    assert refused.stderr == "Error response from daemon: mounted volume is marked read-only\n"
    refused = docker("cp", str(tmp_path / "f"), "reader:/tmp/")
    assert refused.stderr == "Error response from daemon: container rootfs is marked read-only\n"


def test_symlinks_in_the_container_never_lead_out_of_it(
    docker: DockerRun, engine: RunningEngine, tmp_path: Path
) -> None:
    _run(docker, "trap")
    links = "ln -s ../../../../../../../etc /up; ln -s / /top; ln -s /etc/group /grouplink"
    _ok(docker("exec", "trap", "sh", "-c", links))
    container_passwd = _ok(docker("exec", "trap", "cat", "/etc/passwd"))
    assert container_passwd != Path("/etc/passwd").read_text()
    for path in ("trap:/up/passwd", "trap:/top/etc/passwd", "trap:/top/../../etc/passwd"):
        out = tmp_path / "passwd"
        _ok(docker("cp", path, str(out)))
        assert out.read_text() == container_passwd, path
        out.unlink()
    _ok(docker("cp", "-L", "trap:/grouplink", str(tmp_path / "group")))
    assert (tmp_path / "group").read_text() == _ok(docker("exec", "trap", "cat", "/etc/group"))
    marker = tmp_path / "slipway-cp-marker"
    marker.write_text("stays inside\n")
    _ok(docker("cp", str(marker), "trap:/up/"))
    _ok(docker("cp", str(marker), "trap:/top/etc/"))
    assert not Path("/etc/slipway-cp-marker").exists()
    assert _ok(docker("exec", "trap", "cat", "/etc/slipway-cp-marker")) == "stays inside\n"
    head = engine.api().request("HEAD", "/containers/trap/archive?path=/up")
    stat = json.loads(base64.b64decode(head.headers["X-Docker-Container-Path-Stat"]))
    assert stat["linkTarget"] == "/etc" and stat["mode"] & (1 << 27)  # Go's ModeSymlink
    # Archives whose entries climb out of the destination are refused whole.
    breakouts = [
        _tar(_entry("../escaped"), data={"../escaped": b"x"}),
        _tar(_entry("link", tarfile.SYMTYPE, "../../../../../../escaped")),
        _tar(_entry("hard", tarfile.LNKTYPE, "../../etc/passwd")),
    ]
    for body in breakouts:
        status, _ = _put(engine, "trap", "/tmp", body)
        assert status == 400
    device = _entry("disk", tarfile.BLKTYPE)
    device.devmajor, device.devminor = 8, 0
    assert _put(engine, "trap", "/tmp", _tar(device))[0] == 403
    assert _ok(docker("exec", "trap", "ls", "-A", "/tmp")) == ""
    assert not Path("/escaped").exists() and not Path("/etc/escaped").exists()


def test_put_archive_options_and_errors_in_dockers_words(
    docker: DockerRun, engine: RunningEngine
) -> None:
    _run(docker, "box")
    _ok(docker("exec", "box", "sh", "-c", "mkdir /dir && echo x > /file"))
    plain = _tar(_entry("dir"), data={"dir": b"a file where a directory is"})
    assert _put(engine, "box", "/", plain, "&noOverwriteDirNonDir=1") == (
        400,
        {"message": 'cannot overwrite directory "/dir" with non-directory "dir"'},
    )
    directory = _tar(_entry("file", tarfile.DIRTYPE))
    assert _put(engine, "box", "/", directory, "&noOverwriteDirNonDir=true")[0] == 400
    assert _put(engine, "box", "/", plain)[0] == 200  # without the option, it replaces
    assert _ok(docker("exec", "box", "cat", "/dir")) == "a file where a directory is"
    assert _put(engine, "box", "/file", plain) == (
        400,
        {"message": "extraction point is not a directory"},
    )
    assert _put(engine, "box", "/nowhere", plain) == (
        404,
        {"message": "Could not find the file /nowhere in container box"},
    )
    assert _put(engine, "box", "/tmp", b"not a tar at all, not even close")[0] == 400
    assert _put(engine, "box", "/tmp", b"") == (200, None)  # nothing to unpack
    assert _put(engine, "ghost", "/tmp", plain) == (404, {"message": "No such container: ghost"})
    owned = _entry("owned")
    owned.uid, owned.gid = 1234, 4321
    assert _put(engine, "box", "/tmp", _tar(owned, data={"owned": b"x"}))[0] == 200
    assert _ok(docker("exec", "box", "stat", "-c", "%u:%g", "/tmp/owned")) == "1234:4321\n"
    api = engine.api()
    no_path = api.request("GET", "/containers/box/archive")
    assert (no_path.status, no_path.json()) == (
        400,
        {"message": "bad parameter: pathcannot be empty"},
    )
    head = api.request("HEAD", "/containers/box/archive?path=/etc/")
    stat = json.loads(base64.b64decode(head.headers["X-Docker-Container-Path-Stat"]))
    assert stat["name"] == "etc" and stat["mode"] & (1 << 31) and stat["linkTarget"] == ""
    assert stat["mtime"].endswith("Z") or stat["mtime"][-6] in "+-"
    assert api.request("HEAD", "/containers/box/archive?path=/nope").status == 404


def test_cp_keeps_the_files_owner_and_a_gives_them_the_containers_user(
    docker: DockerRun, tmp_path: Path
) -> None:
    _ok(docker("run", "-d", "--name", "owner", "--user", "nobody", "busybox", "sleep", "1d"))
    (tmp_path / "f").write_text("x\n")
    _ok(docker("cp", "-a", str(tmp_path / "f"), "owner:/tmp/a"))
    assert _ok(docker("exec", "owner", "stat", "-c", "%U:%G", "/tmp/a")) == "nobody:nogroup\n"
    _ok(docker("cp", str(tmp_path / "f"), "owner:/tmp/plain"))
    assert _ok(docker("exec", "owner", "stat", "-c", "%u", "/tmp/plain")) == "0\n"  # as on host


def test_export_writes_the_containers_whole_filesystem(
    docker: DockerRun, engine: RunningEngine, tmp_path: Path
) -> None:
    since = time.time()
    _run(docker, "exported", "-v", "/data")
    _ok(docker("exec", "exported", "sh", "-c", "echo mine > /marker; echo vol > /data/inside"))
    out = tmp_path / "exported.tar"
    _ok(docker("export", "-o", str(out), "exported"))
    with tarfile.open(out) as archive:
        names = archive.getnames()
        assert archive.extractfile("marker").read() == b"mine\n"  # type: ignore[union-attr]
        assert archive.getmember("bin/busybox").isreg()
    assert "data" in names and "data/inside" not in names  # volumes are not the container's
    assert not any(name.startswith(("/", "./")) for name in names)
    _ok(docker("stop", "-t", "0", "exported"))
    _ok(docker("export", "-o", str(out), "exported"))
    with tarfile.open(out) as archive:
        assert archive.extractfile("marker").read() == b"mine\n"  # type: ignore[union-attr]
    until = int(time.time()) + 1
    body = engine.api().get(f"/events?since={since:.9f}&until={until}").body
    actions = [json.loads(line)["Action"] for line in body.splitlines()]
    assert actions.count("export") == 2
    assert (
        docker("export", "ghost").stderr == "Error response from daemon: No such container: ghost\n"
    )
