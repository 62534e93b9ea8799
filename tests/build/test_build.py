"""docker build against our engine, through Slipway's CLI (BuildKit's progress and history)
and through the real docker CLI 28 (the legacy builder's stream): the course's two apps,
the build cache, git contexts, and bad input that leaves nothing behind."""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import random
import re
import signal
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.build.executor import sweep_work_directories
from simulator.cli.units import human_size
from simulator.images import oci
from tests.build.conftest import MULTI_APP, NODE_APP, CliRun, write_tree
from tests.engine.conftest import RunningEngine


def image_json(cli: CliRun, name: str) -> dict[str, Any]:
    result = cli("image", "inspect", name)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def history(cli: CliRun, name: str) -> list[dict[str, str]]:
    result = cli("history", "--no-trunc", "--format", "{{json .}}", name)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def build_containers_run(engine: RunningEngine) -> int:
    """How many RUN containers the engine has started (it logs each one)."""
    return engine.log_text().count("build container ")


def vertex_outcomes(output: str) -> dict[str, str]:
    """BuildKit's plain progress: each step vertex's name -> CACHED, DONE or ERROR."""
    names: dict[str, str] = {}
    outcomes: dict[str, str] = {}
    for line in output.splitlines():
        match = re.match(r"#(\d+) (.*)", line)
        if not match:
            continue
        number, text = match.groups()
        if number not in names:
            names[number] = text
        elif text == "CACHED" or text.startswith(("DONE", "ERROR")):
            outcomes[names[number]] = text.split()[0].rstrip(":")
    return {
        name: outcome
        for name, outcome in outcomes.items()
        if name.startswith("[") and not name.startswith("[internal]")
    }


@pytest.fixture
def node_app(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "node-app", NODE_APP)


@pytest.fixture
def multi_app(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "multi-app", MULTI_APP)


def test_course_node_app_builds_with_buildkit_progress_and_history(
    slipway: CliRun, real: CliRun, node_app: Path
) -> None:
    built = slipway("build", "-t", "ddd2023:nodeweb", ".", cwd=node_app)
    assert built.returncode == 0, built.stderr
    output = built.stderr
    assert output.startswith('#0 building with "default" instance using docker driver\n\n')
    assert "#1 [internal] load build definition from Dockerfile\n" in output
    assert re.search(r"#\d+ \[1/5\] FROM docker\.io/library/node:18\n", output)
    assert re.search(r"#\d+ \[5/5\] RUN npm install\n", output)
    assert re.search(r"#\d+ \d+\.\d{3} added 1 package", output)
    assert re.search(r"#\d+ exporting layers [\d.]+s done\n", output)
    image_id = image_json(real, "ddd2023:nodeweb")["Id"]
    assert f"writing image {image_id} done" in output
    assert "naming to docker.io/library/ddd2023:nodeweb done" in output
    steps = history(real, "ddd2023:nodeweb")
    assert [step["CreatedBy"] for step in steps[:7]] == [
        'ENTRYPOINT ["node" "./app.js"]',
        "EXPOSE map[8080/tcp:{}]",
        "RUN /bin/sh -c npm install # buildkit",
        "WORKDIR /src",
        "COPY . /src # buildkit",
        'RUN /bin/sh -c mkdir -p /usr/src/notes && echo "built by the course" > '
        "/usr/src/notes/README # buildkit",
        "LABEL maintainer=learner@example.com",
    ]
    assert all(step["Comment"] == "buildkit.dockerfile.v0" for step in steps[:7])
    assert steps[0]["ID"] == image_id and all(s["ID"] == "<missing>" for s in steps[1:])
    assert steps[4]["Size"] != "0B" and steps[2]["Size"] != "0B"
    inspected = image_json(real, "ddd2023:nodeweb")
    assert inspected["Config"]["Entrypoint"] == ["node", "./app.js"]
    assert inspected["Config"]["WorkingDir"] == "/src"
    assert inspected["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert inspected["Config"]["Labels"] == {"maintainer": "learner@example.com"}
    assert all(layer.startswith("sha256:") for layer in inspected["RootFS"]["Layers"])
    started = real("run", "-d", "--name", "web", "ddd2023:nodeweb")
    try:
        assert started.returncode == 0, started.stderr
        fetched = real(
            "exec",
            "web",
            "node",
            "-e",
            "require('http').get('http://127.0.0.1:8080', r => r.pipe(process.stdout))"
            ".on('error', e => { console.error(e.message); process.exit(1) })",
        )
        assert fetched.returncode == 0, fetched.stderr
        assert fetched.stdout == "Hello, Docker!\n"
    finally:
        real("rm", "-f", "web")


def test_course_node_app_serves_on_a_published_port(
    engine: RunningEngine, slipway: CliRun, real: CliRun, node_app: Path
) -> None:
    assert slipway("build", "-t", "ddd2023:nodeweb", ".", cwd=node_app).returncode == 0
    started = real("run", "-d", "--name", "web", "-p", "8080:8080", "ddd2023:nodeweb")
    try:
        assert started.returncode == 0, started.stderr
        assert engine.netns is not None
        fetch = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080').read())"
        fetched = subprocess.run(
            engine.netns.command(["python3", "-c", fetch]),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "Hello, Docker!" in fetched.stdout, fetched.stderr
    finally:
        real("rm", "-f", "web")


def test_course_multi_stage_app_is_two_layers_from_scratch(
    slipway: CliRun, real: CliRun, multi_app: Path
) -> None:
    built = slipway("build", "-t", "multi:stage", ".", cwd=multi_app)
    assert built.returncode == 0, built.stderr
    for vertex in (
        "[base 1/5] FROM docker.io/library/golang:1.19",
        "[base 3/5] COPY go.mod go.sum .",
        "[build-client 1/1] RUN go build -o /bin/client ./cmd/client",
        "[build-server 1/1] RUN go build -o /bin/server ./cmd/server",
        "[prod 1/2] COPY --from=build-client /bin/client /bin/",
        "[prod 2/2] COPY --from=build-server /bin/server /bin/",
    ):
        assert vertex in built.stderr
    steps = history(slipway, "multi:stage")
    assert [step["CreatedBy"] for step in steps] == [
        'ENTRYPOINT ["/bin/server"]',
        "COPY /bin/server /bin/ # buildkit",
        "COPY /bin/client /bin/ # buildkit",
    ]
    inspected = image_json(real, "multi:stage")
    assert len(inspected["RootFS"]["Layers"]) == 2
    assert 1_000_000 < inspected["Size"] < 10_000_000
    ran = real("run", "--rm", "multi:stage")
    assert (ran.returncode, ran.stdout) == (0, "server\n"), ran.stderr
    client = real("run", "--rm", "--entrypoint", "/bin/client", "multi:stage")
    assert (client.returncode, client.stdout) == (0, "client\n"), client.stderr


def _instruction(created_by: str) -> str:
    """A history entry as the instruction it came from, whichever client path wrote it."""
    text = created_by.removesuffix(" # buildkit")
    if text.startswith("/bin/sh -c #(nop) "):
        return text.removeprefix("/bin/sh -c #(nop) ").strip()
    if text.startswith("/bin/sh -c "):
        return "RUN " + text
    return text


def _comparable(created_by: str) -> str:
    """Docker's two formats differ for COPY (source hash vs paths) and EXPOSE (as written vs
    a port map): those compare by instruction; the others word for word."""
    instruction = _instruction(created_by)
    keyword = instruction.split()[0]
    return keyword if keyword in ("COPY", "EXPOSE") else instruction


@pytest.mark.parametrize("app", ["node", "multi"])
def test_real_docker_cli_builds_the_same_images(
    slipway: CliRun, real: CliRun, node_app: Path, multi_app: Path, app: str
) -> None:
    context = node_app if app == "node" else multi_app
    ours = slipway("build", "-t", f"{app}:buildkit", ".", cwd=context)
    assert ours.returncode == 0, ours.stderr
    theirs = real("build", "-t", f"{app}:legacy", ".", cwd=context)
    assert theirs.returncode == 0, theirs.stderr
    assert "Step 1/" in theirs.stdout and "Successfully built " in theirs.stdout
    assert f"Successfully tagged {app}:legacy\n" in theirs.stdout
    buildkit, legacy = image_json(real, f"{app}:buildkit"), image_json(real, f"{app}:legacy")
    assert len(buildkit["RootFS"]["Layers"]) == len(legacy["RootFS"]["Layers"])
    for key in ("Env", "Cmd", "Entrypoint", "WorkingDir", "ExposedPorts", "Labels"):
        assert buildkit["Config"].get(key) == legacy["Config"].get(key), key
    ours_steps = history(real, f"{app}:buildkit")
    their_steps = history(real, f"{app}:legacy")
    assert [_comparable(s["CreatedBy"]) for s in ours_steps] == [
        _comparable(s["CreatedBy"]) for s in their_steps
    ]
    assert any("#(nop) " in s["CreatedBy"] for s in their_steps)
    copies = [
        (ours["Size"], theirs["Size"])
        for ours, theirs in zip(ours_steps, their_steps, strict=True)
        if _instruction(ours["CreatedBy"]).startswith("COPY")
    ]
    assert copies and all(a == b for a, b in copies)
    layers = zip(buildkit["RootFS"]["Layers"], legacy["RootFS"]["Layers"], strict=True)
    assert all(a == b for a, b in layers)  # the COPY layers (and all others) have one diffID


def _layers(engine: RunningEngine) -> set[str]:
    return {path.name for path in engine.layer_root.iterdir() if not path.name.startswith(".")}


def test_unchanged_rebuild_is_all_cached_and_runs_nothing(
    engine: RunningEngine, slipway: CliRun, real: CliRun, node_app: Path
) -> None:
    first = slipway("build", "-t", "ddd2023:nodeweb", ".", cwd=node_app)
    assert first.returncode == 0, first.stderr
    layers, runs = _layers(engine), build_containers_run(engine)
    image_id = image_json(real, "ddd2023:nodeweb")["Id"]
    again = slipway("build", "-t", "ddd2023:nodeweb", ".", cwd=node_app)
    assert again.returncode == 0, again.stderr
    outcomes = vertex_outcomes(again.stderr)
    steps = {name: outcome for name, outcome in outcomes.items() if "FROM" not in name}
    assert len(steps) == 4 and set(steps.values()) == {"CACHED"}, outcomes
    assert build_containers_run(engine) == runs
    assert _layers(engine) == layers
    assert image_json(real, "ddd2023:nodeweb")["Id"] == image_id
    legacy = real("build", "-t", "ddd2023:nodeweb", ".", cwd=node_app)
    assert legacy.returncode == 0, legacy.stderr
    assert legacy.stdout.count(" ---> Using cache\n") == 4
    assert build_containers_run(engine) == runs and _layers(engine) == layers


def test_changing_one_copied_file_invalidates_from_that_copy_on(
    slipway: CliRun, node_app: Path
) -> None:
    assert slipway("build", "-t", "web", ".", cwd=node_app).returncode == 0
    app = node_app / "app.js"
    app.write_text(app.read_text().replace("8080", " 8080"))
    rebuilt = slipway("build", "-t", "web", ".", cwd=node_app)
    assert rebuilt.returncode == 0, rebuilt.stderr
    outcomes = vertex_outcomes(rebuilt.stderr)
    assert outcomes == {
        "[1/5] FROM docker.io/library/node:18": "DONE",
        '[2/5] RUN mkdir -p /usr/src/notes && echo "built by the course" > '
        "/usr/src/notes/README": "CACHED",
        "[3/5] COPY . /src": "DONE",
        "[4/5] WORKDIR /src": "DONE",
        "[5/5] RUN npm install": "DONE",
    }


def _git(*arguments: str, cwd: Path) -> None:
    subprocess.run(["git", *arguments], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def git_repository(tmp_path: Path) -> Path:
    """A bare repository whose branch main has the node app at its root and in web/."""
    work = tmp_path / "work"
    write_tree(work, NODE_APP)
    write_tree(work / "web", NODE_APP)
    _git("init", "-q", "-b", "main", cwd=work)
    _git("add", ".", cwd=work)
    identity = ["-c", "user.name=Learner", "-c", "user.email=learner@example.com"]
    _git(*identity, "commit", "-q", "-m", "the node app", cwd=work)
    bare = tmp_path / "served" / "app.git"
    bare.parent.mkdir()
    _git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    _git("update-server-info", cwd=bare)
    return bare


@pytest.fixture
def git_http_server(git_repository: Path) -> Iterator[str]:
    """The repository over git's dumb HTTP protocol, on loopback."""
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(git_repository.parent)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/app.git"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.requires_tool("git")
def test_git_contexts_build_from_a_branch_and_a_subdirectory(
    slipway: CliRun, real: CliRun, git_repository: Path, git_http_server: str
) -> None:
    for url, tag in (
        (f"file://{git_repository}#main", "git:file"),
        (f"{git_http_server}#main", "git:http"),
        (f"{git_http_server}#main:web", "git:subdir"),
    ):
        built = slipway("build", "-t", tag, url)
        assert built.returncode == 0, built.stderr
        assert "[5/5] RUN npm install" in built.stderr
    listing = real("run", "--rm", "--entrypoint", "ls", "git:subdir", "/src")
    assert listing.stdout.split() == [
        "Dockerfile", "app.js", "node_modules", "package-lock.json", "package.json", "vendor",
    ]  # fmt: skip
    top = real("run", "--rm", "--entrypoint", "ls", "git:http", "/src")
    assert "web" in top.stdout.split() and ".git" not in top.stdout.split()


def _leftovers(engine: RunningEngine) -> dict[str, Any]:
    """What a failed build must not leave: active snapshots, build directories, mounts."""
    metadata = engine.data_root / "snapshots" / "metadata.json"
    snapshots = json.loads(metadata.read_text())["snapshots"] if metadata.exists() else {}
    build_tmp = engine.data_root / "build" / "tmp"
    with open("/proc/self/mountinfo") as mountinfo:
        mounts = [line.split()[4] for line in mountinfo if str(engine.data_root) in line]
    return {
        "snapshots": sorted(snapshots),
        "build dirs": sorted(os.listdir(build_tmp)) if build_tmp.exists() else [],
        "mounts": mounts,
    }


def _bad_dockerfile(tmp_path: Path, name: str, dockerfile: str | bytes) -> Path:
    context = tmp_path / name
    context.mkdir()
    path = context / "Dockerfile"
    path.write_bytes(dockerfile if isinstance(dockerfile, bytes) else dockerfile.encode())
    return context


MISSING_FILE = (
    "COPY failed: file not found in build context or excluded by .dockerignore: "
    "stat nothere: file does not exist"
)
EXIT_3 = "The command '/bin/sh -c echo hi && exit 3' returned a non-zero code: 3"


def test_bad_input_gets_dockers_message_and_leaves_nothing_behind(
    engine: RunningEngine, slipway: CliRun, real: CliRun, tmp_path: Path
) -> None:
    assert real("pull", "busybox").returncode == 0
    images, layers = real("images", "-aq").stdout, _layers(engine)
    garbage = random.Random(6)
    one_line = "".join(garbage.choice("abcdefghij KLMNOP;=-") for _ in range(1 << 20))
    random_bytes = bytes(garbage.getrandbits(8) for _ in range(1 << 20))
    cases: list[tuple[str | bytes, int, str]] = [
        ("FROM busybox\nFOOBAR build\n", 1, "parse error on line 2: unknown instruction: FOOBAR"),
        ("FROM busybox\nCOPY nothere /x\n", 1, MISSING_FILE),
        ("FROM busybox\nRUN echo hi && exit 3\n", 3, EXIT_3),
        (one_line, 1, "failed to parse Dockerfile: file with no instructions"),
        (random_bytes, 1, "dockerfile parse error on line 1: unknown instruction: "),
    ]
    for number, (dockerfile, status, message) in enumerate(cases):
        context = _bad_dockerfile(tmp_path, f"bad-{number}", dockerfile)
        result = real("build", "-t", f"bad:{number}", str(context))
        assert result.returncode == status, result.stderr
        assert message in result.stderr
    target = _bad_dockerfile(tmp_path, "target", "FROM busybox AS a\nRUN true\n")
    result = real("build", "--target", "nope", "-t", "bad:target", str(target))
    assert result.returncode == 1
    assert 'Error response from daemon: target stage "nope" could not be found' in result.stderr
    run_exit_3 = _bad_dockerfile(tmp_path, "ours", "FROM busybox\nRUN echo hi && exit 3\n")
    ours = slipway("build", "-t", "bad:ours", str(run_exit_3))
    assert ours.returncode == 1
    assert ours.stderr.endswith(
        'ERROR: failed to solve: process "/bin/sh -c echo hi && exit 3" did not complete '
        "successfully: exit code: 3\n"
    )
    assert real("images", "-aq").stdout == images
    assert _layers(engine) == layers
    assert _leftovers(engine) == {"snapshots": [], "build dirs": [], "mounts": []}


def test_a_context_that_is_not_a_tar_is_refused(engine: RunningEngine) -> None:
    api = engine.api()
    noise = bytes(random.Random(1).getrandbits(8) for _ in range(5000))
    tar_type = {"Content-Type": "application/x-tar"}
    for body, message in (
        (b"garbage\n", "unexpected EOF"),
        (noise, "archive/tar: invalid tar header"),
    ):
        answer = api.request("POST", "/v1.50/build?t=x", body, tar_type)
        assert (answer.status, answer.json()) == (500, {"message": message})
    assert _leftovers(engine) == {"snapshots": [], "build dirs": [], "mounts": []}


def _tar(files: dict[str, str]) -> bytes:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


def test_legacy_stream_messages_build_args_labels_and_quiet(engine: RunningEngine) -> None:
    api = engine.api(timeout=300)
    context = _tar(
        {
            "Dockerfile": "ARG BASE=busybox\nFROM $BASE\nARG GREETING=hi\n"
            'RUN echo "$GREETING" > /greeting\nCMD ["cat", "/greeting"]\n',
        }
    )
    query = "t=args:one&t=args:two&buildargs=%7B%22GREETING%22%3A%22hello%22%7D"
    query += "&labels=%7B%22course%22%3A%22ddd%22%7D"
    answer = api.request("POST", f"/v1.50/build?{query}", context)
    assert answer.status == 200
    messages = answer.lines()
    streams = "".join(message.get("stream", "") for message in messages)
    assert streams.startswith("Step 1/6 : ARG BASE=busybox\nStep 2/6 : FROM $BASE\n")
    assert "Step 6/6 : LABEL course=ddd\n" in streams
    assert " ---> Running in " in streams and "Removing intermediate container " in streams
    image_id = [m["aux"]["ID"] for m in messages if "aux" in m][-1]
    assert streams.endswith(
        f"Successfully built {image_id[7:19]}\n"
        "Successfully tagged args:one\nSuccessfully tagged args:two\n"
    )
    inspected = api.get("/v1.50/images/args:two/json").json()
    assert inspected["Id"] == image_id
    assert inspected["Config"]["Labels"] == {"course": "ddd"}
    entries = api.get("/v1.50/images/args:one/history").json()
    assert entries[2]["CreatedBy"] == '|1 GREETING=hello /bin/sh -c echo "$GREETING" > /greeting'
    quiet = api.request("POST", "/v1.50/build?q=1&nocache=1", context).lines()
    built = [m["aux"]["ID"] for m in quiet if "aux" in m][-1]
    assert [m["stream"] for m in quiet if "stream" in m] == [f"{built}\n"]


# -- the build cache in /system/df, and /build/prune ------------------------------------------

CACHED_APP = {
    "Dockerfile": "FROM busybox\nRUN echo one > /one\nWORKDIR /tmp\nCOPY a.txt /a.txt\n"
    "RUN echo two > /two\n",
    "a.txt": "a\n",
}


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}: {result.stdout}{result.stderr}"
    return result.stdout


def table(output: str) -> list[list[str]]:
    """The rows of a docker table, its cells split on runs of two or more spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def cache_records(engine: RunningEngine) -> list[dict[str, Any]]:
    answer = engine.api().get("/v1.50/system/df?type=build-cache")
    assert answer.status == 200, answer.body
    return answer.json()["BuildCache"]


def _blobs(engine: RunningEngine) -> set[str]:
    content = engine.layer_root.with_name(engine.layer_root.name + "-content")
    return {path.name for path in (content / "blobs").rglob("*") if path.is_file()}


def _deleted(output: str) -> tuple[set[str], str]:
    """What ``docker builder prune`` printed: the IDs it deleted, and its total."""
    head, _, total = output.rpartition("Total reclaimed space: ")
    lines = head.strip().splitlines()
    if lines:
        assert lines[0] == "Deleted build cache objects:"
    return set(lines[1:]), total.strip()


def test_the_build_cache_shows_in_system_df_and_builder_prune_releases_it(
    engine: RunningEngine, real: CliRun, tmp_path: Path
) -> None:
    context = write_tree(tmp_path / "app", CACHED_APP)
    ok(real("pull", "busybox"))
    layers, blobs = _layers(engine), _blobs(engine)
    ok(real("build", "-t", "cached", str(context)))
    records = cache_records(engine)
    layer_ids = image_json(real, "cached")["RootFS"]["Layers"]
    chains = [chain.removeprefix("sha256:") for chain in oci.chain_ids(layer_ids)]
    assert [record["ID"] for record in records] == chains[1:]  # RUN, COPY, RUN; not WORKDIR
    assert [record.get(" Parents") for record in records] == [None, chains[1:2], chains[2:3]]
    for record in records:
        assert (record["Type"], record["InUse"], record["Shared"]) == ("regular", False, True)
        assert record["Size"] > 0 and record["UsageCount"] == 1
        assert record["LastUsedAt"] == record["CreatedAt"]
    old = engine.api().get("/v1.41/system/df").json()  # moby's shape before API 1.42
    assert [record.get("Parent") for record in old["BuildCache"]] == [None, *chains[1:3]]
    assert not any(" Parents" in record for record in old["BuildCache"])
    assert old["BuilderSize"] == sum(record["Size"] for record in records)
    assert table(ok(real("system", "df")))[4] == ["Build Cache", "3", "0", "0B", "0B"]
    verbose = ok(real("system", "df", "-v"))
    rows = table(verbose.partition("Build cache usage: 0B\n")[2])
    assert rows[0] == ["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"]
    assert sorted(row[0] for row in rows[1:]) == sorted(chain[:12] for chain in chains[1:])
    assert {(row[1], row[5], row[6]) for row in rows[1:]} == {("regular", "1", "true")}

    ok(real("build", "-t", "cached", str(context)))
    assert [record["UsageCount"] for record in cache_records(engine)] == [2, 2, 2]
    assert _deleted(ok(real("builder", "prune", "-f"))) == (set(), "0B")  # all shared
    ok(real("rmi", "cached"))
    private = sum(record["Size"] for record in cache_records(engine))
    assert table(ok(real("system", "df")))[4][1:] == ["3", "0", *[human_size(private)] * 2]
    deleted, total = _deleted(ok(real("builder", "prune", "-f")))
    assert (deleted, total) == (set(chains[1:]), human_size(private))
    assert cache_records(engine) == []
    assert _layers(engine) == layers and _blobs(engine) == blobs
    assert json.loads((engine.data_root / "build" / "cache.json").read_text()) == {}
    rebuilt = ok(real("build", "-t", "cached", str(context)))
    assert " ---> Using cache\n" not in rebuilt


def _private_chain(engine: RunningEngine, real: CliRun, tmp_path: Path) -> list[dict[str, Any]]:
    """Three cache records, one on the other, that no image uses."""
    context = write_tree(
        tmp_path / "chain",
        {
            "Dockerfile": "FROM busybox\n"
            + "".join(f"RUN head -c {n}000 /dev/zero > /f{n}\n" for n in (100, 200, 300))
        },
    )
    ok(real("build", "-t", "chain", str(context)))
    ok(real("rmi", "chain"))
    records = cache_records(engine)
    assert len(records) == 3 and not any(record["Shared"] for record in records)
    return records


def test_builder_prune_filters_and_space_limits_work_as_buildkits(
    engine: RunningEngine, real: CliRun, tmp_path: Path
) -> None:
    bottom, middle, top = _private_chain(engine, real, tmp_path)
    total = bottom["Size"] + middle["Size"] + top["Size"]
    nothing = (set(), "0B")
    prune = ("builder", "prune", "-f")
    assert _deleted(ok(real(*prune, "--filter", f"id={bottom['ID']}"))) == nothing  # held
    assert _deleted(ok(real(*prune, "--filter", "until=24h"))) == nothing  # used since
    assert _deleted(ok(real(*prune, "--filter", "type=frontend"))) == nothing
    assert _deleted(ok(real(*prune, "--filter", "shared=true"))) == nothing  # no value: a flag
    assert _deleted(ok(real(*prune, "--keep-storage", str(total + 1)))) == nothing
    # Down to a size: one record at a time, only those nothing sits on.
    assert _deleted(ok(real(*prune, "--keep-storage", str(total - 1)))) == (
        {top["ID"]},
        human_size(top["Size"]),
    )
    assert _deleted(ok(real(*prune, "--filter", f"id=^{middle['ID'][:8]}"))) == (
        {middle["ID"]},
        human_size(middle["Size"]),
    )
    answer = engine.api().request(
        "POST", "/v1.50/build/prune?all=1&filters=%7B%22private%22%3A%7B%7D%7D"
    )
    assert answer.json() == {"CachesDeleted": [bottom["ID"]], "SpaceReclaimed": bottom["Size"]}
    assert cache_records(engine) == []
    empty = engine.api().request("POST", "/v1.50/build/prune")
    assert empty.json() == {"CachesDeleted": None, "SpaceReclaimed": 0}


def test_builder_prune_refuses_what_docker_refuses_in_its_words(
    engine: RunningEngine, real: CliRun
) -> None:
    failed = "Error response from daemon: failed to prune build cache: "
    for filters, message in (
        (["foo=bar"], "invalid filter 'foo'"),
        (["mutable=1"], "invalid filter 'mutable'"),
        (["id=a", "id=b"], "filters expect only one value"),
        (["until=1h", "unused-for=1h"], 'conflicting filters: "until" and "unused-for"'),
        (
            ["until=soon"],
            "\"until\" filter expects a duration (e.g., '24h') or a timestamp: "
            'failed to parse value as time or duration: "soon"',
        ),
        (
            ["inuse="],
            "failed to parse prune filters [inuse==]: filters: parse error: [inuse==]: "
            "expected value or quoted: invalid argument",
        ),
    ):
        arguments = [part for value in filters for part in ("--filter", value)]
        refused = real("builder", "prune", "-f", *arguments)
        assert (refused.returncode, refused.stderr.splitlines()[-1]) == (1, failed + message)
    api = engine.api()
    bad = api.request("POST", "/v1.50/build/prune?keep-storage=12x")
    assert (bad.status, bad.json()["message"]) == (
        400,
        'keep-storage is in bytes and expects an integer, got 12x: strconv.Atoi: parsing "12x": '
        "invalid syntax",
    )
    # reserved-space and the others came with API 1.48; an older client's are not read.
    assert api.request("POST", "/v1.47/build/prune?reserved-space=x").status == 200
    assert api.request("POST", "/v1.48/build/prune?reserved-space=x").status == 400


def _process_running(argv: list[str]) -> int | None:
    wanted = ("\0".join(argv) + "\0").encode()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == wanted:
                return int(entry.name)
        except OSError:
            continue
    return None


def test_a_record_a_running_build_sits_on_is_in_use_and_kept(
    engine: RunningEngine, real: CliRun, tmp_path: Path
) -> None:
    sleeper = ["sleep", "987654"]
    context = write_tree(
        tmp_path / "busy",
        {"Dockerfile": f"FROM busybox\nRUN echo base > /base\nRUN {' '.join(sleeper)}\n"},
    )
    builds: list[subprocess.CompletedProcess[str]] = []
    thread = threading.Thread(target=lambda: builds.append(real("build", str(context))))
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while (pid := _process_running(sleeper)) is None:
            assert time.monotonic() < deadline and thread.is_alive(), builds
            time.sleep(0.1)
        [record] = cache_records(engine)
        assert (record["InUse"], record["Shared"]) == (True, False)
        verbose = ok(real("system", "df", "-v")).partition("Build cache usage: ")[2]
        size, _, rows = verbose.partition("\n\n")
        assert size == human_size(record["Size"])  # in use, still counted
        assert table(rows)[1][0] == record["ID"][:12] + "*"
        assert table(ok(real("system", "df")))[4][1:3] == ["1", "1"]
        assert _deleted(ok(real("builder", "prune", "-af"))) == (set(), "0B")
    finally:
        pid = _process_running(sleeper)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)  # the RUN this test started
        thread.join(300)
    assert builds[0].returncode != 0
    [record] = cache_records(engine)
    assert record["InUse"] is False
    assert _deleted(ok(real("builder", "prune", "-f"))) == (
        {record["ID"]},
        human_size(record["Size"]),
    )
    assert _leftovers(engine) == {"snapshots": [], "build dirs": [], "mounts": []}


def test_docker_system_prune_prunes_the_build_cache_too(
    engine: RunningEngine, real: CliRun, tmp_path: Path
) -> None:
    context = write_tree(tmp_path / "app", CACHED_APP)
    ok(real("build", "-t", "cached", str(context)))
    ids = {record["ID"] for record in cache_records(engine)}
    pruned = ok(real("system", "prune", "-af"))
    deleted, _ = _deleted("".join(pruned.partition("Deleted build cache objects:")[1:]))
    assert deleted == ids and len(ids) == 3
    assert re.fullmatch(r"Total reclaimed space: [0-9.]+[kM]?B", pruned.splitlines()[-1])
    assert cache_records(engine) == [] and ok(real("images", "-aq")) == ""


def test_a_refused_build_reads_its_context_first(engine: RunningEngine) -> None:
    noise = random.Random(7).randbytes(8 << 20)
    connection = engine.api().connection()
    try:
        connection.request("POST", "/v1.50/build?version=2", body=noise)
        answer = connection.getresponse()
        assert answer.status == 400
        assert json.loads(answer.read())["message"].startswith("BuildKit sessions")
        connection.request("GET", "/_ping")
        assert connection.getresponse().read() == b"OK"
    finally:
        connection.close()


STAGED_APP = {
    "Dockerfile": """FROM busybox AS make
COPY message.txt /out/message.txt
RUN tr a-z A-Z < /out/message.txt > /out/shout.txt

FROM busybox
COPY --from=make /out/ /out/
CMD ["cat", "/out/message.txt", "/out/shout.txt"]
""",
    "message.txt": "first\n",
}


def _snapshot_records(engine: RunningEngine) -> tuple[int, int]:
    """The snapshot records file's inode and mtime: they change with every snapshot made."""
    (records,) = engine.data_root.rglob("snapshots/metadata.json")
    status = records.stat()
    return status.st_ino, status.st_mtime_ns


def test_copy_from_a_stage_is_cached_without_mounting_it_and_follows_its_changes(
    engine: RunningEngine, slipway: CliRun, real: CliRun, tmp_path: Path
) -> None:
    context = write_tree(tmp_path / "staged", STAGED_APP)
    assert slipway("build", "-t", "staged", ".", cwd=context).returncode == 0
    records = _snapshot_records(engine)
    again = slipway("build", "-t", "staged", ".", cwd=context)
    assert again.returncode == 0, again.stderr
    outcomes = vertex_outcomes(again.stderr)
    assert outcomes["[stage-1 2/2] COPY --from=make /out/ /out/"] == "CACHED", outcomes
    assert _snapshot_records(engine) == records  # no view of the stage was made to sum it
    (context / "message.txt").write_text("second\n")
    changed = slipway("build", "-t", "staged", ".", cwd=context)
    assert changed.returncode == 0, changed.stderr
    outcomes = vertex_outcomes(changed.stderr)
    assert outcomes["[stage-1 2/2] COPY --from=make /out/ /out/"] == "DONE", outcomes
    ran = real("run", "--rm", "staged")
    assert (ran.returncode, ran.stdout) == (0, "second\nSECOND\n"), ran.stderr


def test_a_finished_builds_directory_goes_at_once_and_is_deleted_behind_the_answer(
    engine: RunningEngine, real: CliRun, tmp_path: Path
) -> None:
    context = write_tree(tmp_path / "staged", STAGED_APP)
    assert real("build", "-q", "-t", "staged", str(context)).returncode == 0
    build_root = engine.data_root / "build"
    assert os.listdir(build_root / "tmp") == []
    deadline = time.monotonic() + 30  # a bound against hangs, never a measure
    while os.listdir(build_root / "trash") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.listdir(build_root / "trash") == []


def test_an_engine_sweeps_what_builds_of_a_stopped_engine_left(tmp_path: Path) -> None:
    build_root = tmp_path / "build"
    for leftover in ("tmp/0123abcd/context/app", "trash/4567cdef/context/lib"):
        (build_root / leftover).mkdir(parents=True)
        (build_root / leftover / "file").write_text("left\n")
    sweep_work_directories(build_root)
    assert os.listdir(build_root / "tmp") == [] and os.listdir(build_root / "trash") == []


def test_a_dockerfile_outside_the_context_is_sent_with_it(
    slipway: CliRun, real: CliRun, tmp_path: Path
) -> None:
    context = write_tree(tmp_path / "context", {"message.txt": "from the context\n"})
    dockerfile = tmp_path / "elsewhere" / "Dockerfile.web"
    dockerfile.parent.mkdir()
    dockerfile.write_text('FROM busybox\nCOPY message.txt /\nCMD ["cat", "/message.txt"]\n')
    for cli, tag in ((slipway, "outside:ours"), (real, "outside:real")):
        built = cli("build", "-f", str(dockerfile), "-t", tag, str(context))
        assert built.returncode == 0, built.stderr
        ran = real("run", "--rm", tag)
        assert (ran.returncode, ran.stdout) == (0, "from the context\n"), ran.stderr
