"""Slipway's ``docker volume`` commands beside the real docker CLI 28: the course's chapter 8
sequence, create, ls, inspect, rm and prune with their flags, messages and exit codes, against
our engine and against a reference dockerd."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import CliRun, cli_for

pytestmark = pytest.mark.timeout(600)

CREATED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
VOLUME_NAME = re.compile(r"\b[0-9a-f]{64}\b")


def outcome(result: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return result.returncode, result.stdout, result.stderr


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def neutral(text: str, data_root: Path | str) -> str:
    """Creation times, generated volume names and the engine's data root made neutral."""
    text = str(text).replace(f"{data_root}/", "/var/lib/docker/")
    return VOLUME_NAME.sub("<name>", CREATED_AT.sub("<created>", text))


def run_both(
    real: CliRun, ours: CliRun, arguments: tuple[str, ...], answer: str | None = None
) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """The same command through both CLIs, each against its own engine, made neutral."""
    results = []
    for cli in (real, ours):
        code, out, err = outcome(cli(*arguments, input=answer))
        results.append((code, neutral(out, cli.data_root), neutral(err, cli.data_root)))
    return results[0], results[1]


def test_volume_alone_lists_its_subcommands_as_the_real_cli(real: CliRun, slipway: CliRun) -> None:
    alone = slipway("volume")
    assert outcome(alone) == outcome(real("volume"))
    assert alone.stdout == "" and alone.returncode == 0
    assert alone.stderr.startswith("Usage:  docker volume COMMAND\n\nManage volumes\n\nCommands:\n")
    for subcommand in ("create", "inspect", "ls", "prune", "rm"):
        assert re.search(rf"^  {subcommand} +\S", alone.stderr, re.MULTILINE)
    for arguments in (
        ("volume", "--help"),
        ("volume", "nope"),
        ("volume", "create", "--help"),
        ("volume", "ls", "--help"),
        ("volume", "list", "--help"),
        ("volume", "inspect", "--help"),
        ("volume", "rm", "--help"),
        ("volume", "remove", "--help"),
        ("volume", "prune", "--help"),
        ("volume", "ls", "--nope"),
    ):
        assert outcome(slipway(*arguments)) == outcome(real(*arguments)), arguments


def test_the_courses_volume_commands_print_what_the_real_cli_prints(
    two_engines: tuple[CliRun, CliRun],
) -> None:
    real, ours = two_engines
    for arguments in (
        ("volume", "ls"),
        ("volume", "create", "--name", "myvol"),
        ("volume", "ls"),
        ("volume", "inspect", "myvol"),
        ("volume", "rm", "myvol"),
        ("volume", "ls"),
        ("volume", "inspect", "myvol"),
        ("volume", "rm", "myvol"),
    ):
        expected, mine = run_both(real, ours, arguments)
        assert mine == expected, arguments
    ok(ours("volume", "create", "--name", "myvol"))
    inspected = neutral(ok(ours("volume", "inspect", "myvol")), ours.data_root)
    assert inspected == (
        "[\n"
        "    {\n"
        '        "CreatedAt": "<created>",\n'
        '        "Driver": "local",\n'
        '        "Labels": null,\n'
        '        "Mountpoint": "/var/lib/docker/volumes/myvol/_data",\n'
        '        "Name": "myvol",\n'
        '        "Options": null,\n'
        '        "Scope": "local"\n'
        "    }\n"
        "]\n"
    )


def test_volume_create_ls_inspect_and_rm_print_what_the_real_cli_prints(
    two_engines: tuple[CliRun, CliRun],
) -> None:
    real, ours = two_engines
    for arguments in (
        ("volume", "create", "vol10"),
        ("volume", "create", "--label", "course=ch8", "vol9"),
        ("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-d", "local", "tmp1"),
        ("volume", "create", "--name", "x", "y"),
        ("volume", "create", "--label", "=x", "z"),
        ("volume", "create", "-d", "nope", "z"),
        ("volume", "create", "a", "b"),
        ("volume", "create", "Bad/Name"),
        ("volume", "create"),
        ("volume", "ls"),
        ("volume", "list", "-q"),
        ("volume", "ls", "--format", "json"),
        ("volume", "ls", "--format", 'table {{.Name}}\\t{{.Label "solo"}}\\t{{.Label "course"}}'),
        ("volume", "ls", "--format", "{{.Name}} {{.Mountpoint}} {{.Scope}} {{.Size}}"),
        ("volume", "ls", "-f", "label=course"),
        ("volume", "ls", "-f", "name=vol"),
        ("volume", "ls", "-f", "dangling=true", "-q"),
        ("volume", "ls", "-f", "nope=1"),
        ("volume", "ls", "-f", "nope"),
        ("volume", "ls", "--format", "{{.Nope}}"),
        ("volume", "ls", "extra"),
        ("volume", "inspect", "vol9", "tmp1"),
        ("volume", "inspect", "--format", "json", "vol9"),
        ("volume", "inspect", "-f", "{{.Name}} {{.Labels}} {{.Options}} {{json .Labels}}", "vol10"),
        ("volume", "inspect", "-f", '{{.Driver}} {{index .Labels "course"}}', "vol9"),
        ("volume", "inspect", "-f", "{{.Nope}}", "vol9"),
        ("volume", "inspect", "-f", "{{.Name", "vol9"),
        ("volume", "inspect", "vol9", "nope"),
        ("volume", "inspect", "nope"),
        ("volume", "inspect"),
        ("volume", "rm", "vol10", "nope", "vol9"),
        ("volume", "remove", ""),
        ("volume", "rm", "-f", "nope"),
        ("volume", "ls"),
    ):
        expected, mine = run_both(real, ours, arguments)
        assert mine == expected, arguments
    # {{.Labels}} joins a Go map, in whatever order it iterates: compare the labels as sets.
    listing = ("volume", "ls", "--format", "{{.Name}} {{.Labels}}")
    labelled: list[dict[str, set[str]]] = []
    for cli in (real, ours):
        assert cli("volume", "create", "--label", "course=ch8", "--label", "solo", "vol8")
        lines = cli(*listing).stdout.splitlines()
        labelled.append({name: set(labels.split(",")) for name, _, labels in map(_split, lines)})
    assert labelled[1]["vol8"] == labelled[0]["vol8"] == {"course=ch8", "solo="}


def _split(line: str) -> tuple[str, str, str]:
    return line.partition(" ")


def test_a_volume_in_use_is_refused_as_with_the_real_cli(
    two_engines: tuple[CliRun, CliRun], docker_cli: str
) -> None:
    real, ours = two_engines
    for cli in (real, ours):
        host = cli.environment["DOCKER_HOST"]
        user = cli_for(docker_cli, host, Path(cli.environment["HOME"]) / "user")
        ok(user("pull", "busybox"))
        ok(
            user(
                "create",
                "--name",
                "user",
                "--network",
                "none",
                "-v",
                "used:/data",
                "busybox",
                "true",
            )
        )
    for arguments in (
        ("volume", "rm", "used"),
        ("volume", "rm", "-f", "used"),
        ("volume", "prune", "-a", "-f"),
        ("volume", "ls", "-f", "dangling=false"),
    ):
        expected, mine = run_both(real, ours, arguments)
        assert mine == expected, arguments
    assert ours("volume", "rm", "used").returncode == 1


def test_volume_prune_asks_first_and_reports_as_the_real_cli(
    two_engines: tuple[CliRun, CliRun],
) -> None:
    real, ours = two_engines
    for cli in (real, ours):
        ok(cli("volume", "create"))
        ok(cli("volume", "create", "named"))
        ok(cli("volume", "create", "--label", "keep=yes", "kept"))
    for arguments, answer in (
        (("volume", "prune"), "n\n"),
        (("volume", "prune", "-a"), "\n"),
        (("volume", "prune", "-a", "--filter", "all=1"), None),
        (("volume", "prune", "--filter", "nope"), None),
        (("volume", "prune"), "y\n"),
        (("volume", "ls"), None),
        (("volume", "prune", "-f"), None),
        (("volume", "prune", "-a", "-f", "--filter", "label!=keep=yes"), None),
        (("volume", "ls"), None),
        (("volume", "prune", "--all"), "Y\n"),
        (("volume", "ls"), None),
    ):
        expected, mine = run_both(real, ours, arguments, answer)
        assert mine == expected, arguments
    assert ours("volume", "prune", "-f").stdout == "Total reclaimed space: 0B\n"


def test_our_cli_prints_what_the_real_cli_prints_from_a_reference_dockerd(
    on_reference: tuple[CliRun, CliRun],
) -> None:
    ours, real = on_reference

    def compare(arguments: tuple[str, ...], setup: tuple[str, ...] | None = None) -> None:
        results = []
        for cli in (real, ours):
            if setup is not None:
                ok(real(*setup))
            code, out, err = outcome(cli(*arguments))
            results.append((code, neutral(out, ""), neutral(err, "")))
        assert results[1] == results[0], arguments

    compare(("volume", "create", "--name", "refvol"))
    for arguments in (
        ("volume", "ls"),
        ("volume", "ls", "--format", "json"),
        ("volume", "inspect", "refvol"),
        ("volume", "inspect", "-f", "{{.Name}} {{.Labels}} {{json .Options}}", "refvol"),
        ("volume", "inspect", "refvol", "nope"),
    ):
        compare(arguments)
    compare(("volume", "rm", "refvol", "nope"), setup=("volume", "create", "refvol"))
    compare(("volume", "prune", "-f"), setup=("volume", "create"))
    compare(("volume", "prune", "-a", "-f"), setup=("volume", "create", "named"))


def test_the_config_directory_sets_list_formats_and_prune_filters_as_for_the_real_cli(
    two_engines: tuple[CliRun, CliRun],
) -> None:
    real, ours = two_engines
    config = {
        "volumesFormat": "{{.Name}} on {{.Driver}}",
        "imagesFormat": "table {{.Repository}}\\t{{.Tag}}",
        "pruneFilters": ["label=keep=yes", "nonsense"],
    }
    for cli in (real, ours):
        (cli.config_dir / "config.json").write_text(json.dumps(config))
        ok(cli("pull", "busybox"))
        ok(cli("volume", "create", "plain"))
        ok(cli("volume", "create", "--label", "keep=yes", "kept"))
    for arguments in (
        ("volume", "ls"),
        ("volume", "ls", "-q"),
        ("volume", "ls", "--format", "table {{.Name}}"),
        ("images",),
        ("images", "-q"),
        ("volume", "prune", "-a", "-f", "--filter", "label=keep=yes"),
        ("volume", "ls"),
        ("volume", "prune", "-a", "-f", "--filter", "label!=other"),
        ("volume", "ls"),
        ("volume", "prune", "-a", "-f"),
        ("volume", "ls"),
        ("image", "prune", "-a", "-f", "--filter", "until=1h"),
    ):
        expected, mine = run_both(real, ours, arguments)
        assert mine == expected, arguments
