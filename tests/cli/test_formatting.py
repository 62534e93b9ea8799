"""Docker-identical text, case by case: go-units durations and sizes, the CLI's tabwriter,
truncation and quoting rules, the Go template subset with Go's errors, and the list tables."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from simulator.cli.formatting import (
    FormatError,
    container_format,
    container_list_wants_size,
    container_state_name,
    container_status_text,
    displayable_ports,
    familiar_name,
    format_containers,
    format_history,
    format_images,
    format_volumes,
    image_format,
    natural_sort_key,
    parse_normalized_reference,
    truncate_id,
)
from simulator.cli.table import align_columns, display_width, ellipsis
from simulator.cli.template import TemplateError, TemplateExecError, go_json, go_quote, parse
from simulator.cli.units import (
    bytes_size,
    go_time_string,
    human_duration,
    human_size,
    human_size_with_precision,
    parse_docker_time,
    rfc3339,
)

MINUTE = 60
HOUR = 3600
DAY = 24 * HOUR
NOW = 1_800_000_000.25
CONTAINER_ID = "765b009282636a8e271988a926f5c0af1197c6f437d78a5c6f2f2a6b2ebf7d6f"
IMAGE_ID = "sha256:fc6b274bc771dddb8e4920027ad690631e6b236413a55cb3466e4f9a72892ef2"


@pytest.fixture
def utc() -> Iterator[None]:
    """Go and Python both print local times: pin the zone to UTC for exact strings."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if previous is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = previous
    time.tzset()


# --- go-units ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "Less than a second"),
        (0, "Less than a second"),
        (0.999, "Less than a second"),
        (1, "1 second"),
        (1.9, "1 second"),
        (2, "2 seconds"),
        (59.99, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (5 * MINUTE, "5 minutes"),
        (59 * MINUTE + 59, "59 minutes"),
        (60 * MINUTE, "About an hour"),
        (89 * MINUTE, "About an hour"),
        (90 * MINUTE, "2 hours"),
        (3 * HOUR, "3 hours"),
        (47 * HOUR + 29 * MINUTE, "47 hours"),
        (47 * HOUR + 30 * MINUTE, "2 days"),
        (13 * DAY, "13 days"),
        (14 * DAY, "2 weeks"),
        (21 * DAY, "3 weeks"),
        (59 * DAY, "8 weeks"),
        (60 * DAY, "2 months"),
        (120 * DAY, "4 months"),
        (729 * DAY, "24 months"),
        (730 * DAY, "2 years"),
        (3650 * DAY, "10 years"),
    ],
)
def test_human_duration_reads_like_go_units(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


@pytest.mark.parametrize(
    ("size", "precision", "expected"),
    [
        (0, 3, "0B"),
        (512, 3, "512B"),
        (999, 3, "999B"),
        (1000, 3, "1kB"),
        (4096, 3, "4.1kB"),
        (4096, 4, "4.096kB"),
        (1_984_172, 3, "1.98MB"),
        (1_984_172, 4, "1.984MB"),
        (7_340_032, 3, "7.34MB"),
        (1_200_000_000, 3, "1.2GB"),
        (999_999, 3, "1e+03kB"),  # Go's %.3g rounds up into an exponent, and so does Docker
        (5 * 10**24, 3, "5YB"),
        (5 * 10**27, 3, "5e+03YB"),
    ],
)
def test_decimal_sizes_read_like_go_units(size: int, precision: int, expected: str) -> None:
    assert human_size_with_precision(size, precision) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1KiB"),
        (1536, "1.5KiB"),
        (1_048_576, "1MiB"),
        (25_275_783_495, "23.54GiB"),
        (1024**5 * 3, "3PiB"),
    ],
)
def test_binary_sizes_read_like_go_units(size: int, expected: str) -> None:
    assert bytes_size(size) == expected


def test_human_size_keeps_four_significant_digits() -> None:
    assert [human_size(n) for n in (1_982_000, 123_456_789, 10)] == ["1.982MB", "123.5MB", "10B"]


def test_times_print_like_go_in_the_local_zone(utc: None) -> None:
    assert go_time_string(1795838107) == "2026-11-28 03:55:07 +0000 UTC"
    assert rfc3339(1795838107) == "2026-11-28T03:55:07Z"


def test_times_print_offsets_outside_utc() -> None:
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Paris"
    time.tzset()
    try:
        assert go_time_string(1795838107) == "2026-11-28 04:55:07 +0100 CET"
        assert rfc3339(1795838107) == "2026-11-28T04:55:07+01:00"
    finally:
        if previous is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = previous
        time.tzset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        ("2026-11-28T03:55:07Z", 1795838107.0),
        ("2026-11-28T03:55:07.5Z", 1795838107.5),
        ("2026-11-28T03:55:07.250000000+01:00", 1795834507.25),
        ("2026-11-28T03:55:07-02:00", 1795845307.0),
    ],
)
def test_api_times_parse_to_unix_times(text: str, expected: float | None) -> None:
    assert parse_docker_time(text) == expected


# --- tabwriter and cell rules ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DRIVER\tVOLUME NAME\nlocal\tmyvol\n", "DRIVER    VOLUME NAME\nlocal     myvol\n"),
        ("A\tB\tC\nlonger cell\t\tc\n", "A             B         C\nlonger cell             c\n"),
        ("ID\t\nabc\t\n", "ID        \nabc       \n"),
        ("no tabs at all\n", "no tabs at all\n"),
        ("a\tb\nsingle\nc\td\n", "a         b\nsingle\nc         d\n"),
        ("x\t1\nxxxxxxxxxxxxxxx\t2", "x                 1\nxxxxxxxxxxxxxxx   2"),
        ("名前\tx\nab\ty\n", "名前      x\nab        y\n"),
        ("a\tb\tc\na\tb\nlong-first-column\tb\tc\n", (
            "a                   b         c\n"
            "a                   b\n"
            "long-first-column   b         c\n"
        )),
    ],
)  # fmt: skip
def test_columns_align_like_the_clis_tabwriter(text: str, expected: str) -> None:
    assert align_columns(text) == expected


def test_display_width_counts_wide_and_zero_width_characters() -> None:
    assert [display_width(s) for s in ("abc", "名前", "e\u0301", "\x1b", "😀")] == [3, 4, 1, 0, 2]


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("sleep 60", 20, "sleep 60"),
        ("sh -c 'while true; do sleep 1; done'", 20, "sh -c 'while true; …"),
        ("exactly twenty chars", 20, "exactly twenty chars"),
        ("twenty-one characters", 20, "twenty-one characte…"),
        ("日本語のコマンドです", 9, "日本語の…"),
        ("日本語", 6, "日本語"),
        ("abc", 1, "a"),
        ("abc", 0, ""),
    ],
)
def test_ellipsis_cuts_to_display_width(text: str, width: int, expected: str) -> None:
    assert ellipsis(text, width) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sleep 60", '"sleep 60"'),
        ("sh -c 'exit 3'", "\"sh -c 'exit 3'\""),
        ('echo "hi"\n', '"echo \\"hi\\"\\n"'),
        ("tab\there\\", '"tab\\there\\\\"'),
        ("bell\x07 del\x7f", '"bell\\a del\\x7f"'),
        ("café 日本", '"café 日本"'),
        ("nbsp\u00a0zw\u200b", '"nbsp\\u00a0zw\\u200b"'),
    ],
)
def test_commands_are_quoted_like_go(text: str, expected: str) -> None:
    assert go_quote(text) == expected


@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        (CONTAINER_ID, "765b00928263"),
        (IMAGE_ID, "fc6b274bc771"),
        ("<missing>", "<missing>"),
        ("short", "short"),
    ],
)
def test_ids_truncate_to_twelve_characters(identifier: str, expected: str) -> None:
    assert truncate_id(identifier) == expected


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ([], ""),
        ([{"PrivatePort": 80, "Type": "tcp"}], "80/tcp"),
        (
            [
                {"IP": "::", "PrivatePort": 80, "PublicPort": 5005, "Type": "tcp"},
                {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 5005, "Type": "tcp"},
            ],
            "0.0.0.0:5005->80/tcp, [::]:5005->80/tcp",
        ),
        (
            [{"PrivatePort": p, "Type": "tcp"} for p in (8002, 8000, 8001, 9000)],
            "8000-8002/tcp, 9000/tcp",
        ),
        (
            [{"IP": "0.0.0.0", "PrivatePort": p, "PublicPort": p, "Type": "udp"}
             for p in (7000, 7001)]
            + [{"IP": "::", "PrivatePort": 7000, "PublicPort": 7000, "Type": "udp"}],
            "0.0.0.0:7000-7001->7000-7001/udp, [::]:7000->7000/udp",
        ),
        (
            [{"PrivatePort": 53, "Type": "udp"}, {"PrivatePort": 53, "Type": "tcp"}],
            "53/tcp, 53/udp",
        ),
    ],
)  # fmt: skip
def test_ports_group_and_map_like_the_cli(ports: list[dict[str, Any]], expected: str) -> None:
    assert displayable_ports(ports) == expected


def test_volume_names_sort_naturally() -> None:
    names = ["vol10", "vol9", "Vol1", "a", "vol09", "vol9b", "1", "01"]
    assert sorted(names, key=natural_sort_key) == [
        "1", "01", "Vol1", "a", "vol9", "vol9b", "vol09", "vol10",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("busybox", ("docker.io/library/busybox", None, None)),
        ("busybox:latest", ("docker.io/library/busybox", "latest", None)),
        ("docker.io/library/redis:7", ("docker.io/library/redis", "7", None)),
        ("index.docker.io/me/app", ("docker.io/me/app", None, None)),
        ("localhost:5000/tools/bb:1.0", ("localhost:5000/tools/bb", "1.0", None)),
        ("localhost/bb", ("localhost/bb", None, None)),
        ("busybox@sha256:" + "a" * 64, ("docker.io/library/busybox", None, "sha256:" + "a" * 64)),
        ("Upper/case", ("Upper/case", None, None)),  # "Upper" is taken for a registry host
        ("me/App", None),
        ("a" * 64, None),
        ("bad name", None),
    ],
)
def test_references_normalise_like_distribution(
    reference: str, expected: tuple[str, str | None, str | None] | None
) -> None:
    assert parse_normalized_reference(reference) == expected


def test_familiar_names_drop_docker_io_and_library() -> None:
    names = ["docker.io/library/redis", "docker.io/me/app", "docker.io/library/a/b", "quay.io/x"]
    assert [familiar_name(n) for n in names] == ["redis", "me/app", "library/a/b", "quay.io/x"]


# --- templates ---------------------------------------------------------------------------------


def _container(**overrides: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "Id": CONTAINER_ID,
        "Names": ["/web"],
        "Image": "nginx",
        "ImageID": IMAGE_ID,
        "Command": "/docker-entrypoint.sh nginx -g 'daemon off;'",
        "Created": int(NOW) - 38,
        "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 5005, "Type": "tcp"}],
        "Labels": {"tier": "web", "com.example.team": "edu"},
        "State": "running",
        "Status": "Up 37 seconds",
        "NetworkSettings": {"Networks": {"bridge": {}}},
        "Mounts": [],
    }
    summary.update(overrides)
    return summary


@pytest.mark.parametrize(
    ("format_text", "expected"),
    [
        ("{{.ID}}", "765b00928263\n"),
        ("{{.ID}}\\t{{.Names}}", "765b00928263\tweb\n"),
        ("{{json .Names}} {{json .Labels}}", '"web" "com.example.team=edu,tier=web"\n'),
        ('{{.Label "tier"}}|{{.Label "nope"}}|', "web||\n"),
        ("{{upper .Names}} {{lower .State}} {{title .Status}}", "WEB running Up 37 Seconds\n"),
        ('{{join (split .Names "e") "+"}} {{split .Names "e"}}', "w+b [w b]\n"),
        ("{{pad .Names 2 1}}|{{truncate .ID 4}}", "  web |765b\n"),
        ('{{if eq .State "running"}}up{{else}}down{{end}}', "up\n"),
        ('{{if eq .State "x"}}1{{else if .Names}}2{{else}}3{{end}}', "2\n"),
        ("{{with .Mounts}}has mounts{{else}}none{{end}}", "none\n"),
        ("a {{- .Names -}} b {{/* ignored */}}c {{- /* trims */ -}} d", "awebb cd\n"),
        ('{{printf "%-6s|%3d|%q" .Names 7 .State}}', 'web   |  7|"running"\n'),
        ("{{print 1 2 .Names 3}} {{len .ID}}", "1 2web3 12\n"),
        ("{{.Platform}} {{json .Platform}}", "<nil> null\n"),
        ('{{"a\\tb"}} {{`raw`}} {{3}} {{true}}', "a\tb raw 3 true\n"),
        ('{{.Names | upper | printf "<%s>"}}', "<WEB>\n"),
    ],
)
def test_container_formats_render_like_the_cli(format_text: str, expected: str) -> None:
    assert format_containers([_container()], format_text=format_text, now=NOW) == expected


def test_json_of_a_row_marshals_every_field_sorted_with_html_escaped() -> None:
    output = format_containers([_container()], format_text="json", now=NOW)
    assert output == (
        '{"Command":"\\"/docker-entrypoint.…\\"","CreatedAt":"'
        + go_time_string(int(NOW) - 38)
        + '","ID":"765b00928263","Image":"nginx",'
        '"Labels":"com.example.team=edu,tier=web","LocalVolumes":"0","Mounts":"",'
        '"Names":"web","Networks":"bridge","Platform":null,'
        '"Ports":"0.0.0.0:5005-\\u003e80/tcp","RunningFor":"38 seconds ago","Size":"0B",'
        '"State":"running","Status":"Up 37 seconds"}\n'
    )


def test_json_of_a_single_field_is_not_html_escaped() -> None:
    output = format_containers([_container()], format_text="{{json .Ports}}", now=NOW)
    assert output == '"0.0.0.0:5005->80/tcp"\n'
    assert go_json("<&>\u2028\b\x01") == '"<&>\\u2028\\b\\u0001"'


@pytest.mark.parametrize(
    ("format_text", "message"),
    [
        (
            "{{.Foo}}",
            'template: :1:2: executing "" at <.Foo>: '
            "can't evaluate field Foo in type *formatter.ContainerContext",
        ),
        (
            "table {{.Foo}}",
            'template: :1:8: executing "" at <.Foo>: '
            "can't evaluate field Foo in type *formatter.ContainerContext",
        ),
        (
            "{{.ID}}\\n{{.Foo}}",
            'template: :1:11: executing "" at <.Foo>: '
            "can't evaluate field Foo in type *formatter.ContainerContext",
        ),
        (
            "{{.ID.Foo}}",
            'template: :1:5: executing "" at <.ID.Foo>: can\'t evaluate field Foo in type string',
        ),
        (
            '{{join .Names ","}}',
            'template: :1:7: executing "" at <.Names>: '
            "wrong type for value; expected []string; got string",
        ),
        (
            "{{index .Names 0}}",
            'template: :1:2: executing "" at <index .Names 0>: '
            "error calling index: reflect: string index out of range",
        ),
    ],
)
def test_ps_checks_its_format_before_asking_the_daemon(format_text: str, message: str) -> None:
    with pytest.raises(FormatError) as raised:
        container_list_wants_size(format_text, quiet=False, size_flag_given=False)
    assert str(raised.value) == f"failed to execute template: {message}"


@pytest.mark.parametrize(
    ("format_text", "message"),
    [
        ("{{.ID", "template: :1: unclosed action"),
        ("{{foo .ID}}", 'template: :1: function "foo" not defined'),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{if .ID}}x", "template: :1: unexpected EOF"),
        ('{{"abc}}', "template: :1: unterminated quoted string"),
        ("a\nb\n{{.ID", "template: :3: unclosed action"),
    ],
)
def test_templates_that_do_not_parse_give_gos_message(format_text: str, message: str) -> None:
    with pytest.raises(TemplateError) as raised:
        parse(format_text)
    assert str(raised.value) == message
    with pytest.raises(FormatError) as wrapped:
        container_list_wants_size(format_text, quiet=False, size_flag_given=False)
    assert str(wrapped.value) == f"failed to parse template: {message}"


def test_other_list_commands_prefix_template_errors_as_the_cli_does() -> None:
    with pytest.raises(FormatError) as raised:
        format_volumes([{"Name": "v", "Driver": "local"}], format_text="{{.Foo}}")
    assert str(raised.value) == (
        'template parsing error: template: :1:2: executing "" at <.Foo>: '
        "can't evaluate field Foo in type *formatter.volumeContext"
    )


def test_a_failing_template_keeps_its_partial_output() -> None:
    with pytest.raises(TemplateExecError) as raised:
        parse("ok {{.Nope}}").execute(_Opaque())
    assert raised.value.partial_output == "ok "
    assert str(raised.value).endswith("can't evaluate field Nope in type _Opaque")


class _Opaque:
    pass


@pytest.mark.parametrize(
    ("format_text", "wants_size"),
    [
        ("", False),
        ("{{.ID}}", False),
        ("{{.Size}}", True),
        ("{{json .}}", True),
        ("{{if false}}{{.Size}}{{end}}", False),
        ("{{and false .Size}}", False),
        ("table {{.Names}}\\t{{.Size}}", True),
    ],
)
def test_ps_asks_for_sizes_only_when_its_format_uses_them(
    format_text: str, wants_size: bool
) -> None:
    assert container_list_wants_size(format_text, quiet=False, size_flag_given=False) is wants_size
    assert container_list_wants_size(format_text, quiet=True, size_flag_given=False) is False


# --- the tables --------------------------------------------------------------------------------


def test_ps_table_has_docker_columns_truncation_and_spacing() -> None:
    containers = [
        _container(),
        _container(
            Id="b" * 64,
            Names=["/quirky_noether"],
            Image="docker.io/library/busybox:latest",
            Command="sh -c 'exit 3'",
            Created=int(NOW) - 3 * HOUR,
            Ports=[],
            State="exited",
            Status="Exited (3) 2 hours ago",
        ),
        _container(
            Id="c" * 64,
            Names=["/fresh"],
            Image=IMAGE_ID,
            Command="",
            Created=int(NOW),
            Ports=[],
            State="created",
            Status="Created",
        ),
    ]
    assert format_containers(containers, now=NOW) == (
        "CONTAINER ID   IMAGE            COMMAND                  CREATED"
        "                  STATUS                   PORTS                  NAMES\n"
        '765b00928263   nginx            "/docker-entrypoint.…"   38 seconds ago'
        "           Up 37 seconds            0.0.0.0:5005->80/tcp   web\n"
        "bbbbbbbbbbbb   busybox:latest   \"sh -c 'exit 3'\"         3 hours ago"
        "              Exited (3) 2 hours ago                          quirky_noether\n"
        'cccccccccccc   fc6b274bc771     ""                       Less than a second ago'
        "   Created                                         fresh\n"
    )


def test_ps_quiet_no_trunc_and_size() -> None:
    container = _container(SizeRw=12, SizeRootFs=7_340_032)
    assert format_containers([container], quiet=True, now=NOW) == "765b00928263\n"
    assert format_containers([container], quiet=True, no_trunc=True, now=NOW) == CONTAINER_ID + "\n"
    sized = format_containers([container], size=True, now=NOW)
    assert sized.splitlines()[0].endswith("NAMES     SIZE")
    assert sized.splitlines()[1].endswith("web       12B (virtual 7.34MB)")
    full = format_containers([container], format_text="{{.Command}}", no_trunc=True, now=NOW)
    assert full == "\"/docker-entrypoint.sh nginx -g 'daemon off;'\"\n"


def test_ps_with_no_containers_still_prints_the_header() -> None:
    assert format_containers([], now=NOW) == (
        "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
    )


def test_table_header_uses_titles_and_header_functions() -> None:
    output = format_containers(
        [_container()],
        format_text='table {{.Label "com.example.team"}}\\t{{pad .State 1 2}}|\\t{{upper .Names}}',
        now=NOW,
    )
    assert output == "team       STATE  |     NAMES\nedu        running  |   WEB\n"


def test_a_header_that_fails_half_way_is_printed_as_far_as_it_got() -> None:
    output = format_containers([_container()], format_text="table {{.ID}}\\t{{json .}}", now=NOW)
    assert output.splitlines()[0] == "CONTAINER ID   "
    assert format_containers([], format_text="table {{json .}}|{{.ID}}", now=NOW) == "\n"


@pytest.mark.parametrize(
    ("format_text", "quiet", "size", "expected"),
    [
        ("", False, False, "table {{.ID}}\t{{.Image}}"),
        ("table", False, True, "\\t{{.Size}}"),
        ("", True, False, "{{.ID}}"),
        ("{{.Names}}", True, False, "{{.ID}}"),
        ("{{.Names}}", False, False, "{{.Names}}"),
    ],
)
def test_ps_picks_its_format_from_its_flags(
    format_text: str, quiet: bool, size: bool, expected: str
) -> None:
    assert expected in container_format(format_text, quiet, size)


IMAGES = [
    {
        "Id": IMAGE_ID,
        "RepoTags": ["busybox:latest", "busybox:1.36"],
        "RepoDigests": ["busybox@sha256:" + "d" * 64],
        "Created": int(NOW) - 5 * DAY,
        "Size": 4_261_550,
        "SharedSize": -1,
        "Containers": -1,
    },
    {
        "Id": "sha256:" + "e" * 64,
        "RepoTags": None,
        "RepoDigests": None,
        "Created": int(NOW) - 90,
        "Size": 512,
        "SharedSize": -1,
        "Containers": 2,
    },
    {
        "Id": "sha256:" + "f" * 64,
        "RepoTags": [],
        "RepoDigests": ["localhost:5000/app@sha256:" + "a" * 64],
        "Created": int(NOW) - 400 * DAY,
        "Size": 1_200_000_000,
        "SharedSize": 1_000,
        "Containers": 0,
    },
]


def _row(widths: tuple[int, ...], *cells: str) -> str:
    """A table line: every cell but the last padded to its column's width."""
    return "".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + cells[-1] + "\n"


def test_images_table_shows_tags_dangling_and_digest_only_images() -> None:
    # widths: the widest cell plus 3, at least 10 ("localhost:5000/app", "About a minute ago")
    widths = (21, 10, 15, 21)
    assert format_images(IMAGES, now=NOW) == "".join(
        [
            _row(widths, "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"),
            _row(widths, "busybox", "latest", "fc6b274bc771", "5 days ago", "4.26MB"),
            _row(widths, "busybox", "1.36", "fc6b274bc771", "5 days ago", "4.26MB"),
            _row(widths, "<none>", "<none>", "eeeeeeeeeeee", "About a minute ago", "512B"),
            _row(widths, "localhost:5000/app", "<none>", "ffffffffffff", "13 months ago", "1.2GB"),
        ]
    )


def test_images_digests_column() -> None:
    output = format_images(IMAGES, digests=True, now=NOW).splitlines()
    assert output[0].split() == ["REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED", "SIZE"]
    assert output[1].split()[:3] == ["busybox", "latest", "sha256:" + "d" * 64]
    assert output[3].split()[:3] == ["<none>", "<none>", "<none>"]
    assert output[4].split()[:3] == ["localhost:5000/app", "<none>", "sha256:" + "a" * 64]


def test_images_quiet_no_trunc_and_json() -> None:
    assert format_images(IMAGES, quiet=True, now=NOW).splitlines() == [
        "fc6b274bc771", "fc6b274bc771", "eeeeeeeeeeee", "ffffffffffff",
    ]  # fmt: skip
    assert format_images(IMAGES[:1], quiet=True, no_trunc=True, now=NOW) == (
        f"{IMAGE_ID}\n{IMAGE_ID}\n"
    )
    first = format_images(IMAGES[2:], format_text="json", now=NOW)
    assert first == (
        '{"Containers":"0","CreatedAt":"' + go_time_string(int(NOW) - 400 * DAY) + '",'
        '"CreatedSince":"13 months ago","Digest":"","ID":"ffffffffffff",'
        '"Repository":"localhost:5000/app","SharedSize":"1kB","Size":"1.2GB","Tag":"\\u003cnone\\u003e",'
        '"UniqueSize":"1.2GB","VirtualSize":"1.2GB"}\n'
    )


def test_image_table_format_gains_a_digest_column_with_digests() -> None:
    assert image_format("table {{.ID}}", quiet=False, digests=True) == "table {{.ID}}\t{{.Digest}}"
    assert image_format("table", quiet=True, digests=True) == "{{.ID}}"


def test_volume_ls_table_quiet_and_natural_order() -> None:
    volumes = [
        {"Name": "vol10", "Driver": "local", "Scope": "local", "Labels": None},
        {"Name": "myvol", "Driver": "local", "Scope": "local", "Labels": {"course": "ch8"}},
        {"Name": "vol9", "Driver": "local", "Scope": "local", "Labels": {}},
    ]
    assert format_volumes(volumes) == (
        "DRIVER    VOLUME NAME\nlocal     myvol\nlocal     vol9\nlocal     vol10\n"
    )
    assert format_volumes(volumes, quiet=True) == "myvol\nvol9\nvol10\n"
    assert format_volumes(volumes[1:2], format_text="{{.Labels}} {{.Size}} {{.Status}}") == (
        "course=ch8 N/A N/A\n"
    )


def test_history_table_with_missing_layers_and_long_commands(utc: None) -> None:
    history = [
        {
            "Id": IMAGE_ID,
            "Created": int(NOW) - 2 * HOUR,
            "CreatedBy": "RUN /bin/sh -c\tapt-get update && apt-get install -y curl # long",
            "Size": 35_000_000,
            "Comment": "buildkit.dockerfile.v0",
            "Tags": ["app:latest"],
        },
        {
            "Id": "<missing>",
            "Created": 900_000_000,
            "CreatedBy": '/bin/sh -c #(nop)  CMD ["sh"]',
            "Size": 0,
            "Comment": "",
            "Tags": None,
        },
    ]
    assert format_history(history, now=NOW) == (
        "IMAGE          CREATED       CREATED BY                                      SIZE"
        "      COMMENT\n"
        "fc6b274bc771   2 hours ago   RUN /bin/sh -c apt-get update && apt-get ins…   35MB"
        "      buildkit.dockerfile.v0\n"
        '<missing>      N/A           /bin/sh -c #(nop)  CMD ["sh"]                   0B'
        "        \n"
    )
    widths = (12, 23, 32, 10)
    assert format_history(history[1:], human=False, now=NOW) == "".join(
        [
            _row(widths, "IMAGE", "CREATED AT", "CREATED BY", "SIZE", "COMMENT"),
            _row(widths, "<missing>", "1998-07-09T16:00:00Z", history[1]["CreatedBy"], "0", ""),
        ]
    )
    assert format_history(history, quiet=True, no_trunc=True, now=NOW) == (
        f"{IMAGE_ID}\n<missing>\n"
    )


# --- the daemon's status text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "state", "status"),
    [
        ({"running": False}, "created", "Created"),
        ({"running": True, "started_at": NOW - 5}, "running", "Up 5 seconds"),
        ({"running": True, "started_at": NOW - 0.4}, "running", "Up Less than a second"),
        ({"running": True, "started_at": NOW - 100}, "running", "Up About a minute"),
        (
            {"running": True, "paused": True, "started_at": NOW - 2 * HOUR},
            "paused",
            "Up 2 hours (Paused)",
        ),
        (
            {"running": True, "restarting": True, "started_at": NOW - 9, "finished_at": NOW - 2,
             "exit_code": 1},
            "restarting",
            "Restarting (1) 2 seconds ago",
        ),
        (
            {"running": True, "started_at": NOW - 30, "health": "starting"},
            "running",
            "Up 30 seconds (health: starting)",
        ),
        (
            {"running": True, "started_at": NOW - 30, "health": "healthy"},
            "running",
            "Up 30 seconds (healthy)",
        ),
        (
            {"running": False, "started_at": NOW - 60, "finished_at": NOW - 38, "exit_code": 137},
            "exited",
            "Exited (137) 38 seconds ago",
        ),
        ({"running": False, "removing": True, "started_at": NOW}, "removing",
         "Removal In Progress"),
        ({"running": False, "dead": True, "started_at": NOW}, "dead", "Dead"),
    ],
)  # fmt: skip
def test_container_status_reads_like_the_daemons(
    facts: dict[str, Any], state: str, status: str
) -> None:
    status_only = ("finished_at", "exit_code", "health")
    state_facts = {k: v for k, v in facts.items() if k not in status_only}
    assert container_state_name(**state_facts) == state
    assert container_status_text(**facts, now=NOW) == status
