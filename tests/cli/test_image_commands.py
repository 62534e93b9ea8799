"""Slipway's image commands beside the real docker CLI 28: pull (with its progress display on
a terminal and off one), images, history, image inspect, tag, rmi, save, load, push and
image prune, against our engine and against a reference dockerd, compared byte for byte
once times (and, where pulls run layers side by side, the order of layer lines) are set
aside."""

from __future__ import annotations

import base64
import fcntl
import http.client
import io
import json
import os
import re
import select
import socket
import struct
import subprocess
import termios
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.cli.progress import display_json_messages
from tests.engine.conftest import REPO_ROOT, Hub, RunningEngine, start_hub
from tests.support import basic_auth
from tests.support.cli import OUR_CLI, CliRun, cli_for
from tests.support.dockerd import write_busybox_rootfs_tar

pytestmark = pytest.mark.timeout(600)

REDIS_LAYERS = 2
LAYER_LINE = re.compile(r"^([0-9a-f]{12}): (.*)$")
# Statuses whose appearance depends on timing: how many downloads run at once, how fast.
PASSING_STATUSES = {"Waiting", "Verifying Checksum", "Downloading", "Extracting"}
TIMES = re.compile(
    r"(Less than a second|About an? (minute|hour)|\d+ (seconds?|minutes?|hours?|days?))"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?( [A-Z]+)?"
)


def normalise_times(text: str) -> str:
    """Relative and absolute times set aside, and the column padding that follows them."""
    return re.sub(r" {2,}", "  ", TIMES.sub("<time>", text))


def pulled_lines(text: str) -> list[str]:
    """A pull's output with each layer's lines gathered into one (in the order the layers
    first appear), keeping the statuses that every pull shows."""
    lines: list[str] = []
    layers: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = LAYER_LINE.match(line)
        if match is None:
            lines.append(line)
            continue
        layer, status = match.groups()
        if layer not in layers:
            layers[layer] = []
            lines.append(f"<layer {layer}>")
        if status not in PASSING_STATUSES:
            layers[layer].append(status)
    return [
        f"{line[7:-1]}: {', '.join(layers[line[7:-1]])}" if line.startswith("<layer ") else line
        for line in lines
    ]


def outcome(result: subprocess.CompletedProcess) -> tuple[int, Any, Any]:
    return result.returncode, result.stdout, result.stderr


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def same(real: subprocess.CompletedProcess, ours: subprocess.CompletedProcess) -> None:
    assert outcome(ours) == outcome(real)


# -- a terminal ---------------------------------------------------------------------------------


def run_on_terminal(
    argv: list[str], environment: dict[str, str], columns: int, rows: int = 40
) -> tuple[bytes, int]:
    """Run a command with a new pty of the given size as stdin, stdout and stderr; return
    everything it wrote, and its exit status."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    process = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=environment, cwd=REPO_ROOT
    )
    os.close(slave)
    transcript = b""
    try:
        while select.select([master], [], [], 120)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the command has gone and closed its side
                break
            if not data:
                break
            transcript += data
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return transcript, status


def final_screen(transcript: bytes) -> list[str]:
    """What a terminal shows after a transcript of lines, carriage returns, erased lines and
    cursor moves up and down."""
    screen = [""]
    row = column = 0
    text = transcript.decode()
    index = 0
    while index < len(text):
        move = re.match(r"\x1b\[(\d*)([ABK])", text[index:])
        if move is not None:
            count = int(move.group(1) or 1)
            if move.group(2) == "A":
                row = max(row - count, 0)
            elif move.group(2) == "B":
                row += count
            else:
                screen[row] = ""
            while len(screen) <= row:
                screen.append("")
            index += move.end()
            continue
        char = text[index]
        index += 1
        if char == "\r":
            column = 0
        elif char == "\n":
            row, column = row + 1, 0
            while len(screen) <= row:
                screen.append("")
        else:
            line = screen[row].ljust(column)
            screen[row] = line[:column] + char + line[column + 1 :]
            column += 1
    return [line.rstrip() for line in screen]


# -- what the engine streamed to the real CLI -----------------------------------------------------


class RecordingProxy:
    """A unix socket that passes each connection on to an engine's socket and keeps the bytes
    that went each way, to see the very stream a CLI rendered."""

    def __init__(self, target: Path, path: Path) -> None:
        self.target = target
        self.path = path
        self.exchanges: list[tuple[bytearray, bytearray]] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(16)
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(str(self.target))
            self.sockets += [client, upstream]
            sent, received = bytearray(), bytearray()
            self.exchanges.append((sent, received))
            for source, sink, kept in ((client, upstream, sent), (upstream, client, received)):
                threading.Thread(target=self._pump, args=(source, sink, kept), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, kept: bytearray) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    sink.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            kept += data
            try:
                sink.sendall(data)
            except OSError:
                return

    def messages(self, path_part: str) -> list[dict[str, Any]]:
        """The JSON messages of the response to the request whose target contains
        ``path_part``."""

        class Stream(io.BytesIO):
            def close(self) -> None:  # one response read must not end the next ones
                pass

        class Recorded:
            def __init__(self, data: bytes) -> None:
                self.file = Stream(data)

            def makefile(self, *args: Any, **kwargs: Any) -> io.BytesIO:
                return self.file

        for sent, received in self.exchanges:
            requests = re.findall(rb"(?m)^(GET|HEAD|POST|PUT|DELETE) (\S+) HTTP/1\.1\r$", sent)
            recorded = Recorded(bytes(received))
            for method, target in requests:
                response = http.client.HTTPResponse(recorded, method=method.decode())
                response.begin()
                body = response.read()
                if path_part.encode() in target:
                    decoder = json.JSONDecoder()
                    text, found = body.decode().strip(), []
                    while text:
                        value, end = decoder.raw_decode(text)
                        found.append(value)
                        text = text[end:].lstrip()
                    return found
        raise AssertionError(f"no request for {path_part} went through the proxy")

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def recorded_engine(
    start_engine: Callable[..., RunningEngine], hub: Hub, tmp_path: Path
) -> Iterator[Callable[[], tuple[RunningEngine, RecordingProxy]]]:
    """Fresh engines, each behind a recording proxy."""
    proxies: list[RecordingProxy] = []

    def make() -> tuple[RunningEngine, RecordingProxy]:
        engine = start_engine("--mirror", hub.url, "--offline")
        proxy = RecordingProxy(engine.socket_path, engine.socket_path.parent / "recorded.sock")
        proxies.append(proxy)
        return engine, proxy

    yield make
    for proxy in proxies:
        proxy.close()


def rendered(messages: list[dict[str, Any]], terminal: bool, width: int) -> str:
    out = io.StringIO()
    display_json_messages(messages, out, terminal=terminal, width=width)
    return out.getvalue()


# -- pull -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [80, 132])
def test_pull_progress_on_a_terminal_is_drawn_as_the_real_cli_draws_it(
    recorded_engine: Callable[[], tuple[RunningEngine, RecordingProxy]],
    docker_cli: str,
    tmp_path: Path,
    columns: int,
) -> None:
    engine, proxy = recorded_engine()
    real = cli_for(docker_cli, f"unix://{proxy.path}", tmp_path / "real")
    transcript, status = run_on_terminal(
        [docker_cli, "pull", "redis"],
        real.environment,
        columns,
    )
    assert status == 0, transcript
    messages = proxy.messages("/images/create")
    drawn = rendered(messages, terminal=True, width=columns)
    expected = f"Using default tag: latest\n{drawn}docker.io/library/redis:latest\n"
    assert transcript.decode() == expected.replace("\n", "\r\n")
    assert "\x1b[2A\x1b[2K\r" in drawn  # the first of two layers is rewritten in place
    assert ("[==" in drawn) == (columns > 110)  # the bar needs a wide terminal

    ours = cli_for(OUR_CLI, engine.host, tmp_path / "ours")
    ok(ours("rmi", "redis"))
    our_transcript, our_status = run_on_terminal(
        [*OUR_CLI, "pull", "redis"],
        ours.environment,
        columns,
    )
    assert our_status == 0, our_transcript
    assert final_screen(our_transcript) == final_screen(transcript)
    assert b"\x1b[1B" in our_transcript and b"\x1b[2K\r" in our_transcript


def test_pull_off_a_terminal_prints_one_line_per_status_as_the_real_cli(
    recorded_engine: Callable[[], tuple[RunningEngine, RecordingProxy]],
    docker_cli: str,
    tmp_path: Path,
) -> None:
    engine, proxy = recorded_engine()
    real = cli_for(docker_cli, f"unix://{proxy.path}", tmp_path / "real")
    printed = ok(real("pull", "redis"))
    messages = proxy.messages("/images/create")
    assert printed == (
        "Using default tag: latest\n"
        + rendered(messages, terminal=False, width=200)
        + "docker.io/library/redis:latest\n"
    )
    assert any("progress" in m for m in messages)  # shown on a terminal only
    assert "[=" not in printed and "\x1b" not in printed
    layers = {m["id"] for m in messages if m.get("status") == "Pull complete"}
    assert len(layers) == REDIS_LAYERS


def test_pull_prints_what_the_real_cli_prints(two_engines: tuple[CliRun, CliRun]) -> None:
    real, ours = two_engines
    first_real, first_ours = real("pull", "redis"), ours("pull", "redis")
    assert first_ours.returncode == first_real.returncode == 0, first_ours.stderr
    assert pulled_lines(first_ours.stdout) == pulled_lines(first_real.stdout)
    lines = pulled_lines(first_ours.stdout)
    assert lines[:2] == ["Using default tag: latest", "latest: Pulling from library/redis"]
    assert lines[-2:] == [
        "Status: Downloaded newer image for redis:latest",
        "docker.io/library/redis:latest",
    ]
    for line in lines[2:-3]:
        assert line.endswith(": Pulling fs layer, Download complete, Pull complete")
    again = ("pull", "docker.io/redis:latest")
    same(real(*again), ours(*again))
    assert "Status: Image is up to date for redis:latest\n" in ours(*again).stdout
    digest = ours("images", "--digests", "--format", "{{.Digest}}").stdout.strip()
    assert f"Digest: {digest}\n" in first_ours.stdout


def test_pull_quiet_all_tags_and_by_digest_print_what_the_real_cli_prints(
    two_engines: tuple[CliRun, CliRun],
) -> None:
    real, ours = two_engines
    quiet = ("pull", "-q", "busybox")
    same(real(*quiet), ours(*quiet))
    assert ours(*quiet).stdout == "docker.io/library/busybox:latest\n"
    digest = ours("images", "--digests", "--format", "{{.Digest}}", "busybox").stdout.strip()
    for arguments in (("pull", "-a", "busybox"), ("pull", f"busybox@{digest}")):
        same(real(*arguments), ours(*arguments))


@pytest.mark.parametrize(
    "arguments",
    [
        ("pull", "Nope"),
        ("pull", "nope"),
        ("pull", "redis:nope"),
        ("pull", "-a", "redis:latest"),
        ("pull", "a" * 64),
        ("pull", "bad:tag:here"),
        ("pull",),
        ("pull", "--platform", "linux/nope", "busybox"),
    ],
)
def test_a_pull_that_fails_fails_as_with_the_real_cli(
    real: CliRun, slipway: CliRun, arguments: tuple[str, ...]
) -> None:
    mine = slipway(*arguments)
    same(real(*arguments), mine)
    assert mine.returncode != 0


def test_pull_sends_the_credentials_of_the_config_directory(
    start_engine: Callable[..., RunningEngine], hub: Hub, docker_cli: str, tmp_path: Path
) -> None:
    with basic_auth.basic_auth_front(hub.address, "learner", "s3cret") as front:
        engines = [start_engine("--mirror", hub.url, "--offline") for _ in range(2)]
        for engine in engines:
            engine.reach(front)
        real = cli_for(docker_cli, engines[0].host, tmp_path / "real")
        ours = cli_for(OUR_CLI, engines[1].host, tmp_path / "ours")
        image = f"{front}/library/busybox:latest"
        refused_real, refused_ours = real("pull", image), ours("pull", image)
        same(refused_real, refused_ours)
        assert refused_ours.returncode == 1 and "Error response from daemon" in refused_ours.stderr
        token = base64.b64encode(b"learner:s3cret").decode()
        for cli in (real, ours):
            (cli.config_dir / "config.json").write_text(
                json.dumps({"auths": {f"http://{front}/v2/": {"auth": token}}})
            )
        allowed_real, allowed_ours = real("pull", image), ours("pull", image)
        assert allowed_ours.returncode == allowed_real.returncode == 0, allowed_ours.stderr
        assert pulled_lines(allowed_ours.stdout) == pulled_lines(allowed_real.stdout)
        assert allowed_ours.stdout.endswith(f"\n{image}\n")


def test_image_help_is_the_real_clis(real: CliRun, slipway: CliRun) -> None:
    for command in (
        ("image",),
        ("pull",),
        ("image", "pull"),
        ("tag",),
        ("image", "tag"),
        ("import",),
        ("image", "prune"),
    ):
        same(real(*command, "--help"), slipway(*command, "--help"))
    same(real("image"), slipway("image"))


# -- listing and inspecting -----------------------------------------------------------------------


@pytest.fixture
def pulled(real: CliRun) -> CliRun:
    """The engine with redis and busybox, redis tagged twice more, and a dangling image."""
    for image in ("redis", "busybox"):
        ok(real("pull", image))
    ok(real("tag", "redis", "myredis:v1"))
    ok(real("tag", "redis", "127.0.0.1:5000/team/cache:prod"))
    return real


LISTINGS = [
    ("images",),
    ("images", "--digests"),
    ("images", "-q"),
    ("images", "-a"),
    ("images", "--no-trunc"),
    ("images", "--format", "json"),
    ("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"),
    ("images", "--format", "table {{.Repository}}\\t{{.Digest}}"),
    ("images", "--digests", "--format", "table {{.Repository}}\\t{{.ID}}"),
    ("images", "redis"),
    ("images", "-f", "reference=*redis*"),
    ("images", "-f", "dangling=true"),
    ("images", "-f", "before=busybox", "-q"),
    ("images", "ls"),
    ("image", "ls", "ls"),
    ("image", "list", "--filter", "nope=1"),
    ("images", "-f", "nope"),
    ("images", "--format", "{{.Nope}}"),
    ("images", "a", "b"),
    ("history", "redis"),
    ("history", "--no-trunc", "redis"),
    ("history", "-H=false", "busybox"),
    ("history", "-q", "busybox"),
    ("image", "history", "--format", "{{json .}}", "redis"),
    ("history", "nope"),
    ("image", "inspect", "redis"),
    ("image", "inspect", "redis", "busybox"),
    ("image", "inspect", "--format", "json", "busybox"),
    ("image", "inspect", "-f", "{{.Id}} {{.ID}} {{.RepoTags}} {{.Config.Cmd}}", "redis"),
    ("image", "inspect", "-f", "{{json .RootFS}}", "busybox"),
    ("image", "inspect", "-f", "{{.Nope}}", "redis"),
    ("image", "inspect", "-f", "{{.Id", "redis"),
    ("image", "inspect", "busybox", "nope"),
    ("image", "inspect", "nope"),
]


@pytest.mark.parametrize("arguments", LISTINGS, ids=" ".join)
def test_listing_and_inspecting_images_print_what_the_real_cli_prints(
    pulled: CliRun, slipway: CliRun, arguments: tuple[str, ...]
) -> None:
    expected, mine = pulled(*arguments), slipway(*arguments)
    assert mine.returncode == expected.returncode, mine.stderr
    assert listed(mine.stdout, arguments) == listed(expected.stdout, arguments)
    assert mine.stderr == expected.stderr


def listed(text: str, arguments: tuple[str, ...]) -> list[str]:
    """Output lines without times. An image's repositories come in Go's map order, a new
    one on each run, so image listings are compared as sets of lines."""
    lines = normalise_times(text).splitlines()
    if arguments[0] == "images" or arguments[:2] in (("image", "ls"), ("image", "list")):
        return sorted(lines)
    return lines


def test_images_digests_show_the_pulled_digest(pulled: CliRun, slipway: CliRun) -> None:
    listing = ok(slipway("images", "--digests")).splitlines()
    assert listing[0].split() == ["REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED", "SIZE"]
    digests = json.loads(ok(slipway("image", "inspect", "-f", "{{json .RepoDigests}}", "redis")))
    assert any(line.startswith("redis ") and digests[0].split("@")[1] in line for line in listing)


# -- tag and rmi ----------------------------------------------------------------------------------


def _rows_in_any_order(table: str) -> tuple[str, list[str]]:
    header, *rows = normalise_times(table).splitlines()
    return header, sorted(rows)


def test_tag_and_rmi_print_what_the_real_cli_prints(two_engines: tuple[CliRun, CliRun]) -> None:
    real, ours = two_engines
    for cli in (real, ours):
        ok(cli("pull", "redis"))
    steps = [
        ("tag", "redis", "myredis:v1"),
        ("tag", "nope", "x"),
        ("tag", "redis", "BAD"),
        ("tag", "redis", "x:y:z"),
        ("tag", "redis", f"x@sha256:{'0' * 64}"),
        ("tag", "redis"),
        ("images",),
        ("rmi", "myredis:v1"),
        ("rmi", "nope"),
        ("rmi", "-f", "nope"),
        ("rmi", "nope", "redis:nope"),
        ("rmi", "redis"),
        ("images",),
        ("image", "rm", "redis"),
    ]
    for step in steps:
        expected, mine = real(*step), ours(*step)
        assert mine.returncode == expected.returncode, (step, mine.stderr)
        if step == ("images",):
            # One image's repositories come from a Go map in the real CLI: any order.
            assert _rows_in_any_order(mine.stdout) == _rows_in_any_order(expected.stdout)
        else:
            assert normalise_times(mine.stdout) == normalise_times(expected.stdout), step
        assert mine.stderr == expected.stderr, step
    removal = ours("rmi", "busybox")
    assert removal.returncode == 1
    assert removal.stderr == "Error response from daemon: No such image: busybox:latest\n"


# -- save and load --------------------------------------------------------------------------------


def test_save_and_load_move_images_as_the_real_cli(
    pulled: CliRun, slipway: CliRun, tmp_path: Path
) -> None:
    saved = {}
    for name, cli in (("real", pulled), ("ours", slipway)):
        archive = tmp_path / f"{name}.tar"
        ok(cli("save", "-o", str(archive), "busybox"))
        assert oct(archive.stat().st_mode & 0o777) == "0o600"
        saved[name] = archive.read_bytes()
        streamed = cli("save", "busybox", binary=True)
        assert streamed.returncode == 0 and streamed.stdout == saved[name]
    assert saved["ours"] == saved["real"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    (tmp_path / "a-directory").mkdir()
    for arguments in (
        ("save", "-o", str(tmp_path / "missing" / "x.tar"), "busybox"),
        ("save", "-o", str(tmp_path / "a-directory"), "busybox"),
        ("save", "-o", "/dev/null", "busybox"),  # a character device
        ("save", "-o", str(tmp_path / "ours.tar" / "x.tar"), "busybox"),  # under a file
        ("save", "-o", str(tmp_path / "nothing.tar"), "nope"),
        ("save", "nope"),
        ("save",),
    ):
        same(pulled(*arguments), slipway(*arguments))
    assert not (tmp_path / "nothing.tar").exists()

    archive = str(tmp_path / "ours.tar")
    for arguments, data in (
        (("load", "-i", archive), None),
        (("load", "-q", "--input", archive), None),
        (("image", "load"), saved["ours"]),
        (("load", "-i", str(tmp_path / "missing.tar")), None),
        (("load",), b"not a tar archive"),
        (("load", "extra"), None),
    ):
        expected = pulled(*arguments, input=data, binary=True)
        mine = slipway(*arguments, input=data, binary=True)
        assert outcome(mine) == outcome(expected), arguments
    assert ok(slipway("load", "-i", archive)) == "Loaded image: busybox:latest\n"


def test_save_refuses_to_write_to_a_terminal(
    pulled: CliRun, slipway: CliRun, docker_cli: str
) -> None:
    transcripts = []
    for argv, cli in (([docker_cli], pulled), (list(OUR_CLI), slipway)):
        environment = cli.environment
        transcripts.append(run_on_terminal([*argv, "save", "busybox"], environment, 80))
    assert transcripts[1] == transcripts[0]
    assert transcripts[1] == (
        b"cowardly refusing to save to a terminal. Use the -o flag or redirect\r\n",
        1,
    )


def test_load_on_a_terminal_shows_what_the_real_cli_shows(
    pulled: CliRun, slipway: CliRun, docker_cli: str, tmp_path: Path
) -> None:
    archive = tmp_path / "busybox.tar"
    ok(pulled("save", "-o", str(archive), "busybox"))
    screens = []
    for argv, cli in (([docker_cli], pulled), (list(OUR_CLI), slipway)):
        environment = cli.environment
        transcript, status = run_on_terminal([*argv, "load", "-i", str(archive)], environment, 120)
        assert status == 0, transcript
        screens.append(final_screen(transcript))
    assert screens[1] == screens[0]
    assert "Loaded image: busybox:latest" in screens[1]


# -- import ---------------------------------------------------------------------------------------


def test_import_makes_an_image_of_a_tarball_as_the_real_cli(
    two_engines: tuple[CliRun, CliRun], tmp_path: Path
) -> None:
    real, ours = two_engines
    tarball = write_busybox_rootfs_tar(tmp_path / "rootfs.tar")
    made = []
    for cli, tag in ((real, "imported:real"), (ours, "imported:ours")):
        printed = ok(cli("import", "-c", 'CMD ["sh"]', "-m", "from a tarball", str(tarball), tag))
        assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", printed)
        shown = "{{.Comment}} {{.Config.Cmd}} {{.RootFS.Layers}} {{.Architecture}}"
        made.append(ok(cli("image", "inspect", "-f", shown, tag)))
        piped = cli("image", "import", "-", "piped", input=tarball.read_bytes(), binary=True)
        assert piped.returncode == 0 and piped.stdout.startswith(b"sha256:"), piped.stderr
    assert made[1] == made[0]
    assert made[1].startswith("from a tarball [sh] [sha256:")
    for arguments in (
        ("import", str(tmp_path / "missing.tar")),
        ("import", str(tarball), "BAD"),
        ("import",),
        ("import", "--help"),
    ):
        expected, mine = real(*arguments), ours(*arguments)
        assert outcome(mine) == outcome(expected), arguments


# -- push -----------------------------------------------------------------------------------------


def test_push_prints_what_the_real_cli_prints(
    two_engines: tuple[CliRun, CliRun], tmp_path: Path
) -> None:
    real, ours = two_engines
    hubs = [start_hub(tmp_path / f"push-hub-{n}", tmp_path / f"push-hub-{n}.log") for n in (1, 2)]
    try:
        outputs = []
        for cli, target_hub in zip((real, ours), hubs, strict=True):
            cli.engine.reach(target_hub.address)
            ok(cli("pull", "busybox"))
            target = f"{target_hub.address}/team/busybox"
            ok(cli("tag", "busybox", target))
            results = [
                cli("push", target),
                cli("push", "-q", f"{target}:latest"),
                cli("push", "-a", f"{target}:latest"),
                cli("push", f"{target_hub.address}/team/nope"),
                cli("push", f"{target}@sha256:{'0' * 64}"),
            ]
            outputs.append(
                [
                    (
                        r.returncode,
                        r.stdout.replace(target_hub.address, "<hub>"),
                        r.stderr.replace(target_hub.address, "<hub>"),
                    )
                    for r in results
                ]
            )
        assert outputs[1] == outputs[0]
        assert outputs[1][0][1].startswith("Using default tag: latest\n")
        assert "Pushed" in outputs[1][0][1]
    finally:
        for served in hubs:
            served.stop()


# -- image prune ----------------------------------------------------------------------------------


def test_image_prune_asks_first_and_reports_as_the_real_cli(
    two_engines: tuple[CliRun, CliRun], tmp_path: Path
) -> None:
    real, ours = two_engines
    for cli in (real, ours):
        ok(cli("pull", "busybox"))
        ok(cli("pull", "redis"))
        image_id = ok(cli("image", "inspect", "-f", "{{.Id}}", "busybox")).strip()
        archive = tmp_path / f"untagged-{id(cli)}.tar"
        ok(cli("save", "-o", str(archive), image_id))
        ok(cli("rmi", "busybox"))
        assert ok(cli("load", "-i", str(archive))) == f"Loaded image ID: {image_id}\n"
    steps: list[tuple[tuple[str, ...], str | None]] = [
        (("image", "prune"), "n\n"),
        (("image", "prune", "-a"), "no\n"),
        (("image", "prune", "--filter", "until"), None),
        (("image", "prune", "--filter", "nope=1", "-f"), None),
        (("image", "prune"), "y\n"),
        (("image", "prune", "-f"), None),
        (("image", "prune", "-a", "-f", "--filter", "label=nope"), None),
        (("image", "prune", "-a"), "Y\n"),
        (("images", "-a"), None),
    ]
    for arguments, answer in steps:
        expected, mine = real(*arguments, input=answer), ours(*arguments, input=answer)
        assert outcome(mine) == outcome(expected), arguments
    assert "Total reclaimed space: 0B\n" in ours("image", "prune", "-f").stdout


# -- against a reference dockerd ------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        ("images", "--digests"),
        ("images", "--format", "json"),
        ("history", "redis"),
        ("image", "inspect", "-f", "{{.Id}} {{.RepoDigests}} {{.Config.Cmd}}", "redis"),
        ("image", "inspect", "-f", "{{.Nope}}", "busybox"),
        ("pull", "redis"),
        ("rmi", "nope"),
        ("tag", "redis", "BAD"),
    ],
    ids=" ".join,
)
def test_our_cli_prints_what_the_real_cli_prints_from_a_reference_dockerd(
    on_reference: tuple[CliRun, CliRun], arguments: tuple[str, ...]
) -> None:
    ours, real = on_reference
    expected, mine = real(*arguments), ours(*arguments)
    assert mine.returncode == expected.returncode, mine.stderr
    assert normalise_times(mine.stdout) == normalise_times(expected.stdout)
    assert mine.stderr == expected.stderr


def test_our_pull_output_from_a_reference_dockerd_has_the_real_clis_lines(
    on_reference: tuple[CliRun, CliRun],
) -> None:
    ours, real = on_reference
    for image in ("alpine", "nginx"):
        expected = real("pull", image)
        ok(real("rmi", image))
        mine = ours("pull", image)
        assert mine.returncode == expected.returncode == 0, mine.stderr
        assert pulled_lines(mine.stdout) == pulled_lines(expected.stdout)
