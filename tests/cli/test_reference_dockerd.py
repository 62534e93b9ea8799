"""Slipway's formatting against the real thing: the docker CLI 28.x talks to a reference dockerd
(Debian's docker.io), and the same Engine API JSON rendered by simulator.cli.formatting must
give exactly the text the CLI printed."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulator.cli.formatting import (
    FormatError,
    container_list_wants_size,
    container_state_name,
    container_status_text,
    format_containers,
    format_history,
    format_images,
    format_volumes,
)
from simulator.cli.units import parse_docker_time
from tests.support.dockerd import (
    DockerdHandle,
    ReferenceDockerdError,
    import_rootfs,
    load_image,
    reference_dockerd,
    write_busybox_rootfs_tar,
)

pytestmark = pytest.mark.timeout(240)

LONG_COMMAND = "while true; do sleep 1; done # keeps running until it is killed"
HANDMADE = "handmade/tool:1.0"


def _write_handmade_image(destination: Path, layer: bytes) -> Path:
    """A `docker save` archive made by hand: one layer, a history with empty layers, a long
    CREATED BY, and one entry from before 2000, so `docker history` shows <missing> and N/A."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-05-01T10:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {"created": "1999-06-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:0 in /"},
            {
                "created": "2024-04-30T09:00:00Z",
                "created_by": '/bin/sh -c #(nop)  CMD ["sh"]',
                "empty_layer": True,
            },
            {
                "created": "2024-05-01T10:00:00Z",
                "created_by": "RUN /bin/sh -c\techo a tab, then a command longer than the column",
                "comment": "buildkit.dockerfile.v0",
                "empty_layer": True,
            },
        ],
    }
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [HANDMADE], "Layers": ["layer/layer.tar"]}]
    with tarfile.open(destination, "w") as archive:
        for name, data in (
            (config_name, config_bytes),
            ("layer/layer.tar", layer),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return destination


def _wait_for_the_next_second() -> None:
    """The daemon sorts images by their creation time in whole seconds, and ties come back in
    any order: give each new image a second of its own."""
    second = int(time.time())
    while int(time.time()) == second:
        time.sleep(0.02)


@dataclass(frozen=True)
class Scenario:
    handle: DockerdHandle
    container_ids: dict[str, str]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """A reference dockerd holding images (imported, loaded, committed, dangling), containers
    (created, running with ports and labels, paused, exited with 3) and volumes."""
    try:
        started = reference_dockerd(tmp_path_factory.mktemp("refdockerd"))
        handle = started.__enter__()
    except ReferenceDockerdError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        rootfs = write_busybox_rootfs_tar(handle.root / "busybox-rootfs.tar")
        import_rootfs(handle, rootfs, "busybox:latest")
        _wait_for_the_next_second()
        layer = rootfs.read_bytes()
        loaded = load_image(handle, _write_handmade_image(handle.root / "handmade.tar", layer))
        assert loaded == [HANDMADE]
        docker = handle.docker
        docker("create", "--name", "created-one", "busybox", "true")
        docker(
            "run", "-d", "--name", "sleeper",
            "-p", "5005:80", "-p", "7000-7002:7000-7002/udp",
            "--label", "com.example.team=edu", "--label", "tier=web",
            "busybox", "sleep", "60",
        )  # fmt: skip
        docker("run", "-d", "--name", "looper", HANDMADE, "sh", "-c", LONG_COMMAND)
        docker("run", "-d", "--name", "frozen", "busybox", "sleep", "60")
        docker("pause", "frozen")
        exited = docker(
            "run", "--name", "failed", "-v", "myvol:/data", "busybox",
            "sh", "-c", "echo hi > /data/file; exit 3",
            check=False,
        )  # fmt: skip
        assert exited.returncode == 3, exited.stderr
        _wait_for_the_next_second()
        docker("commit", "--message", "add a file", "failed", "busybox-plus:v2")
        _wait_for_the_next_second()
        docker("commit", "failed")  # an untagged image: <none> <none>
        docker("volume", "create", "vol10")
        docker("volume", "create", "--label", "course=ch8", "vol9")
        ids = {
            name: docker("inspect", "--format", "{{.Id}}", name).stdout.strip()
            for name in ("created-one", "sleeper", "looper", "frozen", "failed")
        }
        yield Scenario(handle, ids)
    finally:
        started.__exit__(None, None, None)


def _row_variants(before: Any, after: Any) -> list[Any]:
    """The API answers the CLI may have seen between two fetches: for lists, any mix of rows
    (each container's status text ticks over at its own moment)."""
    if before == after:
        return [before]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        choices = [[a] if a == b else [a, b] for a, b in zip(before, after, strict=True)]
        return [list(mix) for mix in itertools.product(*choices)]
    return [before, after]


def _assert_cli_matches(
    scenario: Scenario,
    args: list[str],
    api_path: str,
    render: Callable[[Any, float], str],
    select: Callable[[Any], Any] = lambda body: body,
) -> str:
    """Run the CLI, bracketed by two API fetches and two clocks, and check that rendering the
    API's JSON gives the CLI's stdout for one of the bracketing answers and times."""
    handle = scenario.handle
    before = select(handle.get_json(api_path))
    started = time.time()
    result = handle.docker(*args)
    finished = time.time()
    after = select(handle.get_json(api_path))
    rendered = [
        render(data, now) for data in _row_variants(before, after) for now in (started, finished)
    ]
    if result.stdout not in rendered:
        assert result.stdout == rendered[0], f"docker {' '.join(args)}"
    return result.stdout


def _volumes(body: Any) -> Any:
    return body["Volumes"]


# --- docker ps ---------------------------------------------------------------------------------


def test_ps_default_table_matches_the_cli(scenario: Scenario) -> None:
    output = _assert_cli_matches(
        scenario, ["ps"], "/containers/json", lambda data, now: format_containers(data, now=now)
    )
    assert output.startswith("CONTAINER ID   IMAGE")
    assert "(Paused)" in output


def test_ps_all_matches_the_cli_with_exited_created_and_truncated_commands(
    scenario: Scenario,
) -> None:
    output = _assert_cli_matches(
        scenario,
        ["ps", "-a"],
        "/containers/json?all=1",
        lambda data, now: format_containers(data, now=now),
    )
    assert "Exited (3)" in output and "Created" in output and "…" in output


def test_ps_no_trunc_matches_the_cli(scenario: Scenario) -> None:
    _assert_cli_matches(
        scenario,
        ["ps", "-a", "--no-trunc"],
        "/containers/json?all=1",
        lambda data, now: format_containers(data, no_trunc=True, now=now),
    )


def test_ps_quiet_matches_the_cli(scenario: Scenario) -> None:
    _assert_cli_matches(
        scenario,
        ["ps", "-a", "-q"],
        "/containers/json?all=1",
        lambda data, now: format_containers(data, quiet=True, now=now),
    )


def test_ps_size_column_matches_the_cli(scenario: Scenario) -> None:
    _assert_cli_matches(
        scenario,
        ["ps", "-a", "-s"],
        "/containers/json?all=1&size=1",
        lambda data, now: format_containers(data, size=True, now=now),
    )


@pytest.mark.parametrize(
    "format_text",
    [
        "{{.ID}} {{.Status}}",
        "table {{.ID}}\\t{{.Names}}\\t{{.Ports}}\\t{{.Labels}}",
        'table {{.Names}}\\t{{.Label "com.example.team"}}\\t{{.State}}\\t{{.Mounts}}',
        "{{.Names}}: {{.Command}} {{.LocalVolumes}} {{.Networks}} {{.CreatedAt}}",
        "table {{upper .Names}}\\t{{pad .State 1 1}}\\t{{json .Image}}",
        '{{title .Status}} {{split .Names "e"}} {{json (split .Names "e")}} {{len .Names}}',
        '{{join (split .Names "e") "+"}} {{truncate .Names 3}} {{.Names | upper | lower}}',
        '{{if eq .State "running" "paused"}}live{{else}}{{lower .Status}}{{end}}',
        '{{printf "%-12s|%3d" .Names 7}} {{println .ID}}{{print .Names 1 2 "x"}}',
        "{{.Names}}{{/* a comment */}} {{- .State -}} ! {{with .Labels}}[{{.}}]{{end}}",
        '{{if and .Labels (not .Mounts)}}labelled{{else if or .Mounts ""}}mounts{{end}}',
    ],
)
def test_ps_custom_formats_match_the_cli(scenario: Scenario, format_text: str) -> None:
    assert not container_list_wants_size(format_text, quiet=False, size_flag_given=False)
    _assert_cli_matches(
        scenario,
        ["ps", "-a", "--format", format_text],
        "/containers/json?all=1",
        lambda data, now: format_containers(data, format_text=format_text, now=now),
    )


def test_ps_json_format_asks_for_sizes_and_matches_the_cli(scenario: Scenario) -> None:
    assert container_list_wants_size("{{json .}}", quiet=False, size_flag_given=False)
    assert container_list_wants_size("json", quiet=False, size_flag_given=False) is False
    _assert_cli_matches(
        scenario,
        ["ps", "-a", "--format", "{{json .}}"],
        "/containers/json?all=1&size=1",
        lambda data, now: format_containers(data, format_text="{{json .}}", size=True, now=now),
    )


@pytest.mark.parametrize(
    "format_text",
    ["{{.Nope}}", "table {{.ID}}\\t{{.Nope}}", "{{.ID", '{{nope "x"}}', "{{.ID.Short}}"],
)
def test_ps_bad_format_gives_the_cli_error(scenario: Scenario, format_text: str) -> None:
    result = scenario.handle.docker("ps", "--format", format_text, check=False)
    with pytest.raises(FormatError) as raised:
        container_list_wants_size(format_text, quiet=False, size_flag_given=False)
    assert (result.returncode, result.stderr) == (1, f"{raised.value}\n")


# --- docker images -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "options"),
    [
        ([], {}),
        (["--digests"], {"digests": True}),
        (["--no-trunc"], {"no_trunc": True}),
        (["-q"], {"quiet": True}),
        (["--format", "{{json .}}"], {"format_text": "{{json .}}"}),
        (
            ["--format", "table {{.Repository}}:{{.Tag}}\\t{{.ID}}\\t{{.VirtualSize}}"],
            {"format_text": "table {{.Repository}}:{{.Tag}}\\t{{.ID}}\\t{{.VirtualSize}}"},
        ),
        (
            ["--digests", "--format", "table {{.Repository}}\\t{{.CreatedAt}}"],
            {"digests": True, "format_text": "table {{.Repository}}\\t{{.CreatedAt}}"},
        ),
    ],
)
def test_images_match_the_cli(scenario: Scenario, args: list[str], options: dict) -> None:
    output = _assert_cli_matches(
        scenario,
        ["images", *args],
        "/images/json",
        lambda data, now: format_images(data, now=now, **options),
    )
    if not args:
        assert "<none>" in output and HANDMADE.split(":")[0] in output


def test_images_bad_format_gives_the_cli_error(scenario: Scenario) -> None:
    result = scenario.handle.docker("images", "--format", "{{.Nope}}", check=False)
    with pytest.raises(FormatError) as raised:
        format_images(scenario.handle.get_json("/images/json"), format_text="{{.Nope}}")
    assert (result.returncode, result.stderr) == (1, f"{raised.value}\n")


# --- docker volume ls --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "options"),
    [
        ([], {}),
        (["-q"], {"quiet": True}),
        (["--format", "json"], {"format_text": "json"}),
        (
            ["--format", "table {{.Name}}\\t{{.Scope}}\\t{{.Labels}}\\t{{.Size}}"],
            {"format_text": "table {{.Name}}\\t{{.Scope}}\\t{{.Labels}}\\t{{.Size}}"},
        ),
    ],
)
def test_volume_ls_matches_the_cli(scenario: Scenario, args: list[str], options: dict) -> None:
    output = _assert_cli_matches(
        scenario,
        ["volume", "ls", *args],
        "/volumes",
        lambda data, now: format_volumes(data, **options),
        select=_volumes,
    )
    if not args:
        assert output.index("vol9") < output.index("vol10")  # natural order


def test_volume_ls_bad_format_gives_the_cli_error(scenario: Scenario) -> None:
    result = scenario.handle.docker("volume", "ls", "--format", "{{.Nope}}", check=False)
    with pytest.raises(FormatError) as raised:
        format_volumes(_volumes(scenario.handle.get_json("/volumes")), format_text="{{.Nope}}")
    assert (result.returncode, result.stderr) == (1, f"{raised.value}\n")


# --- docker history ----------------------------------------------------------------------------


@pytest.mark.parametrize("image", ["busybox", HANDMADE, "busybox-plus:v2"])
@pytest.mark.parametrize(
    ("args", "options"),
    [
        ([], {}),
        (["--no-trunc"], {"no_trunc": True}),
        (["-H=false"], {"human": False}),
        (["-q"], {"quiet": True}),
        (["--format", "{{json .}}"], {"format_text": "{{json .}}"}),
    ],
)
def test_history_matches_the_cli(
    scenario: Scenario, image: str, args: list[str], options: dict
) -> None:
    output = _assert_cli_matches(
        scenario,
        ["history", *args, image],
        f"/images/{image}/history",
        lambda data, now: format_history(data, now=now, **options),
    )
    if image == HANDMADE and not args:
        assert "<missing>" in output and "N/A" in output and "…" in output


def test_history_bad_format_gives_the_cli_error(scenario: Scenario) -> None:
    result = scenario.handle.docker("history", "--format", "{{.Nope}}", "busybox", check=False)
    with pytest.raises(FormatError) as raised:
        format_history(scenario.handle.get_json("/images/busybox/history"), "{{.Nope}}")
    assert (result.returncode, result.stderr) == (1, f"{raised.value}\n")


# --- the daemon's status text ------------------------------------------------------------------


def test_container_status_and_state_match_the_daemons(scenario: Scenario) -> None:
    handle = scenario.handle
    states = {
        name: handle.get_json(f"/containers/{cid}/json")["State"]
        for name, cid in scenario.container_ids.items()
    }
    started = time.time()
    summaries = {c["Id"]: c for c in handle.get_json("/containers/json?all=1")}
    finished = time.time()
    for name, state in states.items():
        summary = summaries[scenario.container_ids[name]]
        facts = {
            "running": state["Running"],
            "paused": state["Paused"],
            "restarting": state["Restarting"],
            "dead": state["Dead"],
            "started_at": parse_docker_time(state["StartedAt"]),
        }
        assert container_state_name(**facts) == summary["State"] == state["Status"], name
        texts = {
            container_status_text(
                **facts,
                finished_at=parse_docker_time(state["FinishedAt"]),
                exit_code=state["ExitCode"],
                now=now,
            )
            for now in (started, finished)
        }
        assert summary["Status"] in texts, name


def test_reference_dockerd_uses_the_28_cli_and_its_own_namespaces(scenario: Scenario) -> None:
    handle = scenario.handle
    assert handle.docker("version", "--format", "{{.Client.Version}}").stdout.startswith("28.")
    assert str(handle.cli) != "/usr/bin/docker"
    for kind in ("net", "mnt"):
        theirs = Path(f"/proc/{handle.pid}/ns/{kind}").stat().st_ino
        assert theirs != Path(f"/proc/self/ns/{kind}").stat().st_ino
    # The daemon's bridge lives in its own network namespace, not on the host.
    assert "docker0:" in Path(f"/proc/{handle.pid}/net/dev").read_text()


def test_a_dockerd_that_fails_to_start_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ReferenceDockerdError) as raised:
        with reference_dockerd(tmp_path, extra_args=["--no-such-flag"]):
            pass
    assert "exited" in str(raised.value) and "no-such-flag" in str(raised.value)
    assert list(tmp_path.iterdir()) == []
    marker = str(tmp_path).encode()
    survivors = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes():
                    survivors.append(entry.name)
            except OSError:
                continue
    assert survivors == []
