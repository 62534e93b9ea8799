"""Slipway's ``docker version``, ``info``, ``events`` and ``docker system df|prune`` beside the
real docker CLI 28, against our engine and against a reference dockerd. Only what is the
CLI's own (its Go version and build time) and what changes from one call to the next (file
descriptors, goroutines, the daemon's clock) is set aside."""

from __future__ import annotations

import json
import re
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.engine.conftest import RunningEngine
from tests.support.cli import OUR_CLI, CliRun, cli_for

pytestmark = pytest.mark.timeout(600)

WAIT_SECONDS = 60  # a bound against hangs, never a measure
BUILT = re.compile(r"(Built:\s+)[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d [\d:]{8} \d{4}")
CLIENT_JSON = re.compile(r'"GoVersion":"[^"]*"(,"Os":"\w+","Arch":"\w+","BuildTime":)"[^"]*"')


def outcome(result: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return result.returncode, result.stdout, result.stderr


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def client_neutral(text: str) -> str:
    """The client's Go version and build time (ours is Python), and the values the daemon
    changes from call to call, set aside."""
    text = re.sub(r"(Go version:\s+)\S+", r"\1<go>", text, count=1)
    text = BUILT.sub(r"\1<built>", text, count=1)
    text = CLIENT_JSON.sub(r'"GoVersion":"<go>"\1"<built>"', text)
    text = re.sub(r"(File Descriptors|Goroutines|EventsListeners): \d+", r"\1: <n>", text)
    text = re.sub(r"(System Time): \S+", r"\1: <time>", text)
    # The real CLI prints the daemon's runtimes in Go-map order, which changes from run to run.
    text = re.sub(
        r"(?m)^( Runtimes:) (.*)$", lambda m: f"{m[1]} {' '.join(sorted(m[2].split()))}", text
    )
    text = re.sub(r'"(NFd|NGoroutines|NEventsListener)":\d+', r'"\1":0', text)
    return re.sub(r'"SystemTime":"[^"]*"', '"SystemTime":"<time>"', text)  # fmt: skip


def compare(
    real: CliRun, ours: CliRun, *arguments: str, answer: str | None = None, names: bool = False
) -> str:
    """Run both CLIs; their outputs must match once the client's own facts are set aside
    (and, with ``names``, generated volume names)."""
    expected, mine = real(*arguments, input=answer), ours(*arguments, input=answer)
    assert mine.returncode == expected.returncode, (arguments, mine.stderr)

    def neutral(text: str) -> str:
        text = client_neutral(text)
        return re.sub(r"(?m)^[0-9a-f]{64}$", "<volume>", text) if names else text

    assert neutral(mine.stdout) == neutral(expected.stdout), arguments
    assert neutral(mine.stderr) == neutral(expected.stderr), arguments
    return mine.stdout


# -- version and info ---------------------------------------------------------------------------


def test_version_prints_the_client_and_server_as_the_real_cli(
    real: CliRun, slipway: CliRun
) -> None:
    printed = compare(real, slipway, "version")
    assert printed.startswith("Client:\n Version:           28.2.2\n API version:       1.50\n")
    assert "\n Context:           default\n\nServer: Slipway Engine\n Engine:\n" in printed
    assert re.search(r"\n Go version:        python3\.\d+\.\d+\n", printed)
    for format_text in (
        "{{.Server.Version}} {{.Server.APIVersion}} {{.Client.APIVersion}}",
        "{{json .Server}}",
        "{{json .}}",
        "json",
        "{{.Client.Version}}/{{.Client.Os}}/{{.Client.Context}}",
        "{{.Server.Platform.Name}}",
        "{{.Nope}}",
        "{{.Client.Nope}}",
        "{{.Server.Nope",
    ):
        compare(real, slipway, "version", "--format", format_text)
    compare(real, slipway, "version", "extra")
    compare(real, slipway, "version", "--help")


def test_version_shows_a_downgraded_api_and_a_missing_daemon_as_the_real_cli(
    engine: RunningEngine, docker_cli: str, tmp_path: Path
) -> None:
    real = cli_for(docker_cli, engine.host, tmp_path / "real")
    ours = cli_for(OUR_CLI, engine.host, tmp_path / "ours")
    for cli in (real, ours):
        cli.environment["DOCKER_API_VERSION"] = "1.45"
    assert " API version:       1.45 (downgraded from 1.50)\n" in compare(real, ours, "version")
    missing = f"unix://{tmp_path}/no-engine.sock"
    real = cli_for(docker_cli, missing, tmp_path / "real-missing")
    ours = cli_for(OUR_CLI, missing, tmp_path / "ours-missing")
    compare(real, ours, "version")
    compare(real, ours, "info")
    assert ours("info").stderr == (
        f"Cannot connect to the Docker daemon at {missing}. Is the docker daemon running?\n"
    )


def test_info_prints_the_client_and_server_as_the_real_cli(real: CliRun, slipway: CliRun) -> None:
    ok(real("pull", "busybox"))
    ok(real("volume", "create", "held"))
    printed = compare(real, slipway, "info")
    assert printed.startswith(
        "Client:\n Version:    28.2.2\n Context:    default\n Debug Mode: false\n\nServer:\n"
        " Containers: 0\n  Running: 0\n  Paused: 0\n  Stopped: 0\n Images: 1\n"
        " Server Version: 28.2.2\n Storage Driver: overlay2\n"
    )
    for line in (" Swarm: inactive", " Cgroup Driver: cgroupfs", " Live Restore Enabled: false"):
        assert f"\n{line}\n" in printed
    assert "\n Registry Mirrors:\n  http://127.0.0.1:" in printed
    compare(real, slipway, "-D", "info")
    compare(real, slipway, "system", "info")
    for format_text in (
        "{{json .}}",
        "json",
        "{{.ServerVersion}} {{.Swarm.LocalNodeState}} {{.NCPU}} {{.CPUCfsPeriod}}",
        "{{.ClientInfo.Context}} {{.ClientInfo.Debug}}",
        "{{json .RegistryConfig}}",
        "plain text",
        "{{.Nope}}",
        "{{.Nope",
    ):
        compare(real, slipway, "info", "--format", format_text)
    token = "bGVhcm5lcjpzM2NyZXQ="  # learner:s3cret
    for cli in (real, slipway):
        (cli.config_dir / "config.json").write_text(
            json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": token}}})
        )
    assert "\n Username: learner\n" in compare(real, slipway, "info")


# -- system df and prune ------------------------------------------------------------------------


def test_system_df_prints_what_the_real_cli_prints(real: CliRun, slipway: CliRun) -> None:
    compare(real, slipway, "system", "df")
    for image in ("busybox", "redis"):
        ok(real("pull", image))
    ok(real("volume", "create", "data"))
    printed = compare(real, slipway, "system", "df")
    assert printed.splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert printed.splitlines()[1].split()[:3] == ["Images", "2", "0"]
    for arguments in (
        ("system", "df", "-v"),
        ("system", "df", "--format", "json"),
        ("system", "df", "--format", "{{.Type}}: {{.TotalCount}} {{.Size}} {{.Reclaimable}}"),
        ("system", "df", "--format", "table {{.Type}}\\t{{.Active}}"),
        ("system", "df", "--format", "{{.Nope}}"),
        ("system", "df", "-v", "--format", "{{len .Images}} {{len .Volumes}}"),
        ("system", "df", "extra"),
    ):
        expected, mine = real(*arguments), slipway(*arguments)
        assert outcome(mine) == outcome(expected), arguments


def test_system_prune_asks_first_and_reports_as_the_real_cli(
    two_engines: tuple[CliRun, CliRun],
) -> None:
    real, slipway = two_engines
    for cli in two_engines:
        ok(cli("pull", "busybox"))
        ok(cli("volume", "create"))
    for arguments, answer in (
        (("system", "prune"), "n\n"),
        (("system", "prune", "-a", "--volumes"), "no\n"),
        (("system", "prune", "--filter", "label=a=b", "--filter", "until=1h"), "\n"),
        (("system", "prune", "--filter", "label!=x", "--filter", "label=10", "-a"), "\n"),
        (("system", "prune", "--volumes", "--filter", "until=1h"), None),
        (("system", "prune", "--filter", "bad"), None),
        (("system", "prune", "-f"), None),
        (("system", "prune", "-a", "--volumes"), "y\n"),
        (("images",), None),
    ):
        compare(real, slipway, *arguments, answer=answer, names=True)


# -- events -------------------------------------------------------------------------------------


def test_past_events_print_what_the_real_cli_prints(real: CliRun, slipway: CliRun) -> None:
    since = str(int(time.time()) - 1)
    ok(real("pull", "busybox"))
    ok(real("volume", "create", "--label", "course=ch8", "evvol"))
    ok(real("tag", "busybox", "mybox:v1"))
    ok(real("rmi", "mybox:v1"))
    ok(real("volume", "rm", "evvol"))
    time.sleep(1.1)  # the next whole second, for an --until that takes in every event above
    until = str(int(time.time()))
    bounds = ("--since", since, "--until", until)
    printed = compare(real, slipway, "events", *bounds)
    assert "volume create evvol (driver=local)\n" in printed
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) image pull ", printed)
    for extra in (
        ("--format", "{{json .}}"),
        ("--format", "json"),
        ("--format", "{{.Type}} {{.Action}} {{.Actor.ID}} {{.ID}} {{.Status}} {{.Time}}"),
        ("--format", "{{.Nope}}"),
        ("--format", "{{.Type"),
        ("-f", "type=volume"),
        ("-f", "type=image", "-f", "event=tag"),
        ("-f", "nope=1"),
        ("-f", "nope"),
    ):
        compare(real, slipway, "events", *bounds, *extra)
    compare(real, slipway, "system", "events", "--since", "1h", "--until", until)
    compare(real, slipway, "events", "--since", "2020-01-01", "--until", until, "-f", "type=volume")
    compare(real, slipway, "events", "--since", "2020-01-01T00:00:00Z", "--until", until)
    compare(real, slipway, "events", "--since", "2020-01-01T10:00:00.5", "--until", until)
    compare(real, slipway, "events", "--since", "not-a-time", "--until", until)
    compare(real, slipway, "events", "--since", "yesterday", "--until", until)
    compare(real, slipway, "events", "--since", "2020-13-01", "--until", until)
    compare(real, slipway, "events", "--since", until, "--until", since)


def test_events_stream_until_interrupted_as_with_the_real_cli(
    real: CliRun, slipway: CliRun, docker_cli: str
) -> None:
    streams = []
    for argv, cli in (([docker_cli], real), (list(OUR_CLI), slipway)):
        process = subprocess.Popen(
            [*argv, "events", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}}"],
            env=cli.environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            name = f"live-{len(streams)}"
            deadline = time.monotonic() + WAIT_SECONDS
            line = ""
            while not line and time.monotonic() < deadline:  # until the stream is listening
                ok(real("volume", "create", name))
                ok(real("volume", "rm", name))
                line = _read_line(process, 2.0)
            process.send_signal(signal.SIGINT)
            rest, errors = process.communicate(timeout=WAIT_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        streams.append((process.returncode, line, errors))
    assert streams[1][0] == streams[0][0] == 130
    # The first event a stream sees depends on when it started listening: either will do.
    for number, (_, line, _) in enumerate(streams):
        assert line in (f"volume create live-{number}\n", f"volume destroy live-{number}\n")


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    if select.select([process.stdout], [], [], timeout)[0]:
        return process.stdout.readline()
    return ""


# -- against a reference dockerd ----------------------------------------------------------------


def test_our_cli_prints_what_the_real_cli_prints_from_a_reference_dockerd(
    on_reference: tuple[CliRun, CliRun],
) -> None:
    ours, real = on_reference
    printed = compare(real, ours, "version")
    assert " containerd:\n" in printed and " runc:\n" in printed
    compare(real, ours, "version", "--format", "{{.Server.Version}} {{.Client.APIVersion}}")
    info = compare(real, ours, "info")
    assert " Storage Driver: overlay2\n" in info and "\n Registry Mirrors:\n" in info
    compare(real, ours, "info", "--format", "{{json .}}")
    compare(real, ours, "system", "df")
    compare(real, ours, "system", "df", "-v")
    now = str(int(time.time()))
    compare(real, ours, "events", "--since", "1h", "--until", now)
    compare(real, ours, "events", "--since", "1h", "--until", now, "--format", "{{json .}}")
