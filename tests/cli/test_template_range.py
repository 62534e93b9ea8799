"""{{range}}, {{break}}/{{continue}} and template variables, checked against the real docker
CLI 28, which runs Go's text/template on the client side for ``docker context inspect
--format`` and ``docker version --format``, with no daemon. A context's endpoints other than
"docker" have no Go type in the CLI, so it decodes them as map[string]interface{}, as
``docker inspect`` does raw JSON: our side runs the same template on that context's JSON
through ``write_inspect``, the function every ``docker … inspect`` of ours prints with."""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulator.cli.commands.images import go_value, write_inspect
from simulator.cli.flags import Context, StatusError
from simulator.cli.formatting import format_containers
from tests.support.cli import OUR_CLI, cli_for

# The "web" endpoint is shaped like a container's inspect JSON.
WEB = {
    "Name": "/web",
    "Config": {
        "Labels": {"com.example.tier": "front", "app": "web", "zeta": "last", "Beta": "upper"},
        "Env": ["PATH=/usr/bin", "MODE=prod"],
        "ExposedPorts": {},
        "Volumes": None,
    },
    "Mounts": [
        {"Destination": "/data", "Source": "/srv/data", "RW": True},
        {"Destination": "/etc/nginx", "Source": "/srv/conf", "RW": False},
    ],
    "NetworkSettings": {
        "Networks": {
            "frontend": {"IPAddress": "172.18.0.2", "Aliases": ["web", "www"]},
            "backend": {"IPAddress": "10.0.5.3", "Aliases": None},
        }
    },
    "State": {"Status": "running", "Running": True, "Ratio": 2.5},
    "Args": [],
}


@dataclass(frozen=True)
class Outcome:
    stdout: str
    stderr: str
    status: int


class ContextStore:
    """A private docker config holding the context "web"; runs templates on it both ways."""

    def __init__(self, docker_cli: str, home: Path) -> None:
        self.docker_cli = docker_cli
        self.environment = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
        self.environment["DOCKER_CONFIG"] = str(home / "docker-config")
        self.environment["DOCKER_HOST"] = f"unix://{home}/absent.sock"
        created = self.docker(
            "context", "create", "web", "--description", "a web container",
            "--docker", f"host=unix://{home}/web.sock",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        (metadata_file,) = (home / "docker-config" / "contexts" / "meta").glob("*/meta.json")
        metadata = json.loads(metadata_file.read_text())
        metadata["Endpoints"]["web"] = WEB
        metadata_file.write_text(json.dumps(metadata))
        inspected = self.docker("context", "inspect", "web")
        assert inspected.returncode == 0, inspected.stderr
        (self.json_text,) = (json.dumps(item) for item in json.loads(inspected.stdout))

    def docker(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.docker_cli, *arguments],
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def real(self, template: str) -> Outcome:
        result = self.docker("context", "inspect", "web", "--format", template)
        return Outcome(result.stdout, result.stderr.rstrip("\n"), result.returncode)

    def ours(self, template: str) -> Outcome:
        stdout = io.StringIO()
        context = Context(make_client=_no_daemon, stdout=stdout, stderr=io.StringIO())

        def fetch(name: str) -> tuple[Any, str]:
            return go_value(self.json_text), self.json_text

        try:
            write_inspect(context, ["web"], template, fetch)
        except StatusError as error:
            return Outcome(stdout.getvalue(), error.message, error.status)
        return Outcome(stdout.getvalue(), "", 0)


def _no_daemon() -> Any:
    raise AssertionError("inspecting a context's JSON needs no daemon")


@pytest.fixture(scope="module")
def contexts(docker_cli: str, tmp_path_factory: pytest.TempPathFactory) -> ContextStore:
    return ContextStore(docker_cli, tmp_path_factory.mktemp("contexts"))


def _same_as_docker(contexts: ContextStore, template: str) -> Outcome:
    real = contexts.real(template)
    assert contexts.ours(template) == real
    return real


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (
            "{{range .Endpoints.web.NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            "10.0.5.3 172.18.0.2 \n",
        ),
        (
            "{{range $k, $v := .Endpoints.web.Config.Labels}}{{$k}}={{$v}} {{end}}",
            "Beta=upper app=web com.example.tier=front zeta=last \n",
        ),
        (
            '{{range $i, $m := .Endpoints.web.Mounts}}{{$i}}:{{$m.Destination}}{{"\\n"}}{{end}}',
            "0:/data\n1:/etc/nginx\n\n",
        ),
        ("{{$name := .Name}}{{$name}}", "web\n"),
    ],
)
def test_the_examples_learners_type_print_what_docker_prints(
    contexts: ContextStore, template: str, expected: str
) -> None:
    assert _same_as_docker(contexts, template) == Outcome(expected, "", 0)


@pytest.mark.parametrize(
    "template",
    [
        "{{range $k, $v := .Endpoints}}{{$k}}={{$v.Host}} {{end}}",
        "{{range .Endpoints.web.Mounts}}{{.Source}} {{else}}none{{end}}",
        "{{range .Endpoints.web.Args}}x{{else}}an empty slice{{end}}",
        "{{range .Endpoints.web.Config.ExposedPorts}}x{{else}}an empty map{{end}}",
        "{{range .Endpoints.web.Config.Volumes}}x{{else}}null{{end}}",
        "{{range .Endpoints.web.Missing}}x{{else}}a missing key{{end}}",
        "{{range .Endpoints.web.Mounts}}{{range $k, $v := .}}{{$k}}={{$v}};{{end}}{{end}}",
        "{{range $n, $net := .Endpoints.web.NetworkSettings.Networks}}{{$n}}:"
        "{{range $net.Aliases}} {{.}}{{else}} -{{end}};{{end}}",
        "{{range .Endpoints.web.Mounts}}{{.Destination}} of {{$.Name}}; {{end}}",
        "{{range .Endpoints.web.Config.Env}}{{.}}\n{{end}}",
        "{{range $k, $v := .Endpoints.web.Config.Labels -}}\n  {{$k}}\n{{- end}}",
        "{{range\n  $i, $e := .Endpoints.web.Config.Env}}{{$i}}{{end}}",
        "{{range $i,$e:=.Endpoints.web.Mounts}}{{$i}}{{$e.RW}}{{end}}",
        '{{range split "a,b,c" ","}}<{{.}}>{{end}}',
        "{{range 3}}{{.}}{{end}}",
        "{{range $n := 2}}[{{$n}}]{{end}}",
        "{{range 0}}x{{else}}zero{{end}}",
        "{{range -1}}x{{else}}negative{{end}}",
    ],
)
def test_range_walks_slices_maps_and_ints_as_go_does(contexts: ContextStore, template: str) -> None:
    _same_as_docker(contexts, template)


@pytest.mark.parametrize(
    "template",
    [
        '{{range $k, $v := .Endpoints.web.Config.Labels}}{{if eq $k "app"}}{{continue}}{{end}}'
        '{{$k}} {{if eq $k "com.example.tier"}}{{break}}{{end}}{{end}}done',
        "{{range .Endpoints.web.Mounts}}{{if not .RW}}{{continue}}{{end}}{{.Source}}{{end}}",
        "{{range 3}}{{range 3}}{{if eq . 1}}{{break}}{{end}}{{.}}{{end}};{{end}}",
        "{{range .Endpoints.web.Mounts}}{{break}}{{else}}never{{end}}after",
        "{{range .Endpoints.web.Mounts}}{{with .RW}}{{continue}}{{end}}{{.Destination}}{{end}}",
        "{{range .Endpoints}}{{- break -}}{{end}} ok",
        "{{range .Endpoints.web.Mounts}}{{ continue }}never{{end}}ok",
    ],
)
def test_break_and_continue_leave_the_innermost_range(
    contexts: ContextStore, template: str
) -> None:
    _same_as_docker(contexts, template)


@pytest.mark.parametrize(
    "template",
    [
        "{{$.Name}} {{$.Endpoints.web.State.Status}}",
        "{{$x := 1}}{{$x = 2}}{{$x}}",
        "{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}",
        "{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}",
        "{{$x := 1}}{{with $x := 2}}{{$x}}{{end}}{{$x}}",
        "{{if $s := .Endpoints.web.State.Status}}{{$s}}{{else}}none{{end}}",
        "{{with $x := .Endpoints.web.Args}}{{$x}}{{else}}[{{$x}}]{{end}}",
        "{{if $x := 0}}{{else if $y := 2}}{{$x}}{{$y}}{{end}}",
        '{{$last := ""}}{{range .Endpoints.web.Mounts}}{{$last = .Destination}}{{end}}{{$last}}',
        "{{$i := 9}}{{range $i = .Endpoints.web.Mounts}}{{$i.Source}} {{end}}{{$i.Source}}",
        "{{$k := 0}}{{$v := 0}}{{range $k, $v = .Endpoints.web.Config.Labels}}{{end}}{{$k}}={{$v}}",
        "{{range $i, $m := .Endpoints.web.Mounts}}{{$d := $m.Destination}}{{$i}}{{$d}}{{end}}",
        "{{range 2}}{{$x := .}}{{$x}}{{end}}{{$x := 5}}{{$x}}",
        "{{$web := .Endpoints.web}}{{$web.Config.Labels.app}} {{$web.State.Running}}",
        "{{$m := .Endpoints.web.Mounts}}{{len $m}} {{(index $m 1).Source}} {{$m | len}}",
        "{{(.Endpoints.web).Name}} {{(index .Endpoints.web.Mounts 0).RW}}",
        "{{$ := 1}}{{$}}",
        "{{$x := .Name | upper}}{{$x}}",
        '{{print ($y := "set in parentheses") $y}}',
        "{{$x:=.Name}}{{$x}}",
        "{{$x :=\n  .Name}}{{ $x }}",
    ],
)
def test_variables_are_declared_assigned_and_scoped_as_in_go(
    contexts: ContextStore, template: str
) -> None:
    _same_as_docker(contexts, template)


@pytest.mark.parametrize(
    "template",
    [
        "{{break}}",
        "{{continue}}",
        "{{if true}}{{break}}{{end}}",
        "{{range .Endpoints}}{{else}}{{continue}}{{end}}",
        "{{range .Endpoints}}{{break 1}}{{end}}",
        "{{$x}}",
        "{{if true}}{{$y := 2}}{{end}}{{$y}}",
        "{{range $k, $v := .Endpoints}}{{end}}{{$k}}",
        "{{range $a, $b, $c := .Endpoints}}{{end}}",
        "{{with $x, $y := 1}}{{end}}",
        "{{$x := 1}}{{$x, $y = 3}}",
        "{{range $a, 3}}{{end}}",
        "{{range $a, $b}}{{end}}",
        "{{range}}{{end}}",
        "{{range .Endpoints}}x",
        "{{range .Endpoints}}{{else if true}}y{{end}}",
        "{{range .Endpoints}}{{else}}{{else}}{{end}}",
        "{{if true}}a{{else with 1}}b{{end}}",
        "{{$x=1}}",
        "{{.Name:x}}",
        "{{.Name , .Name}}",
        '{{.Name | "x"}}',
        "{{.Name!}}",
        "{{.Name}}\n{{range\n$x, 3}}",
        "{{.Name\n",
    ],
)
def test_templates_that_do_not_parse_fail_with_gos_message(
    contexts: ContextStore, template: str
) -> None:
    outcome = _same_as_docker(contexts, template)
    assert outcome.status == 64
    assert outcome.stderr.startswith("template parsing error: template: :")


@pytest.mark.parametrize(
    "template",
    [
        "{{range .Name}}x{{end}}",
        "{{range .Endpoints.web.State.Running}}x{{end}}",
        "{{range .Endpoints.web.State.Ratio}}x{{end}}",
        "{{range $i, $e := 3}}x{{end}}",
        "{{range $x, $y := .Endpoints.web.Config.Labels | len}}{{end}}",
        '{{range print "a"}}x{{end}}',
        "{{range .Endpoints.web.Mounts}}{{.Source}}{{end}}{{range .Name}}{{end}}",
        "{{$x = 1}}",
        "{{range $i = .Endpoints.web.Mounts}}{{end}}",
        "{{$x := 1}}{{$x 2}}",
        "{{$x := .Name}}{{$x.Foo}}",
        "{{if false}}{{$y := 1}}{{else}}{{$y}}{{end}}",
        "{{$x := $x}}",
        "{{nil}}",
        "{{(.Name).Foo}}",
        "ok\n{{range .Endpoints.web.Mounts}}{{.Destination}}\n{{end}}{{range .Name}}{{end}}",
    ],
)
def test_templates_that_fail_running_fail_with_gos_message(
    contexts: ContextStore, template: str
) -> None:
    outcome = _same_as_docker(contexts, template)
    assert outcome.status == 1
    assert outcome.stdout == "\n"
    assert outcome.stderr.startswith("template parsing error: template: :")
    assert ': executing "" at <' in outcome.stderr


@pytest.mark.parametrize(
    "template",
    [
        "x{{range 3}}{{.}}{{end}}{{range .Client.Os}}{{end}}y",
        '{{range $i, $e := split "a,b,c" ","}}{{$i}}={{$e}} '
        "{{if eq $i 1}}{{$e.Nope}}{{end}}{{end}}",
        "{{range 2}}{{.}}{{break}}{{end}}{{$os := .Client.Os}}{{$os}} {{$os.Nope}}",
    ],
)
def test_docker_version_prints_what_a_failing_template_wrote(
    docker_cli: str, tmp_path: Path, template: str
) -> None:
    """``docker version`` runs its template straight onto stdout, so the output before an
    error stays; with no daemon (a socket that isn't there) the error isn't reported."""
    host = f"unix://{tmp_path}/absent.sock"
    real = cli_for(docker_cli, host, tmp_path / "real")("version", "--format", template)
    ours = cli_for(OUR_CLI, host, tmp_path / "ours")("version", "--format", template)
    assert (ours.stdout, ours.stderr, ours.returncode) == (
        real.stdout,
        real.stderr,
        real.returncode,
    )
    assert real.returncode == 1
    assert real.stdout.strip(), "the template wrote nothing before it failed"


def test_ps_rows_take_variables_and_ranges() -> None:
    summary = {
        "Id": "765b0092826317c0b0e4d8c4b0e5e0c0a0f1d2c3b4a5968778695a4b3c2d1e0f",
        "Names": ["/web"],
        "Image": "nginx",
        "Command": "nginx",
        "Created": 1_800_000_000,
        "Labels": {"tier": "web", "com.example.team": "edu"},
        "State": "running",
        "Status": "Up 3 seconds",
    }
    format_text = '{{$name := .Names}}{{$name}}:{{range split .Labels ","}} [{{.}}]{{end}}'
    output = format_containers([summary], format_text=format_text, now=1_800_000_003)
    assert output == "web: [com.example.team=edu] [tier=web]\n"
