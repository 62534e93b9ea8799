"""``docker manifest inspect``, which asks the registry itself. The real CLI reaches a
registry on loopback (Debian's docker-registry, holding the hub's images byte for byte), so
there the outputs are compared byte for byte; docker.io names, which the real CLI would take
to Docker Hub, go through the engine's mirror (our hub) and are checked against the hub's
content and against what a pull of the same image shows."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.engine.conftest import Hub, RunningEngine, free_port
from tests.images.conftest import start_registry  # noqa: F401 - a fixture
from tests.support import basic_auth
from tests.support.cli import OUR_CLI, CliRun, cli_for

pytestmark = [pytest.mark.timeout(600), pytest.mark.requires_tool("skopeo")]

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)


def outcome(result: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    return result.returncode, result.stdout, result.stderr


def fetch(base: str, path: str) -> tuple[str, bytes]:
    request = urllib.request.Request(base + path, headers={"Accept": INDEX_TYPES})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.headers["Content-Type"], answer.read()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def skopeo_copy(source: str, destination: str, *options: str) -> None:
    subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", *options]
        + [f"docker://{source}", f"docker://{destination}"],
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture
def registry(start_registry: Callable[..., object], hub: Hub) -> str:  # noqa: F811
    """docker-registry on loopback, holding: redis as the hub has it (an OCI index), one
    platform's manifest of it by tag, and busybox converted to Docker's schema 2 (a
    manifest list)."""
    served = start_registry()
    address = served.address
    skopeo_copy(f"{hub.address}/library/redis:latest", f"{address}/library/redis:latest",
                "--all", "--preserve-digests")  # fmt: skip
    _, index = fetch(hub.url, "/v2/library/redis/manifests/latest")
    child = json.loads(index)["manifests"][0]["digest"]
    skopeo_copy(f"{hub.address}/library/redis@{child}", f"{address}/library/single:v1",
                "--preserve-digests")  # fmt: skip
    skopeo_copy(f"{hub.address}/library/busybox:latest", f"{address}/library/oldstyle:latest",
                "--all", "--format", "v2s2")  # fmt: skip
    return address


@pytest.fixture
def clis(engine: RunningEngine, docker_cli: str, tmp_path: Path) -> tuple[CliRun, CliRun]:
    return (
        cli_for(docker_cli, engine.host, tmp_path / "real"),
        cli_for(OUR_CLI, engine.host, tmp_path / "ours"),
    )


def test_manifest_inspect_prints_what_the_real_cli_prints(
    registry: str, clis: tuple[CliRun, CliRun], hub: Hub
) -> None:
    real, ours = clis
    _, index = fetch(hub.url, "/v2/library/redis/manifests/latest")
    child = json.loads(index)["manifests"][0]["digest"]
    closed = f"127.0.0.1:{free_port()}"
    for arguments in (
        ("manifest", "inspect", "--insecure", f"{registry}/library/redis"),
        ("manifest", "inspect", "-v", "--insecure", f"{registry}/library/redis:latest"),
        ("manifest", "inspect", "--insecure", f"{registry}/library/redis@{child}"),
        ("manifest", "inspect", "--insecure", "--verbose", f"{registry}/library/redis@{child}"),
        ("manifest", "inspect", "--insecure", f"{registry}/library/single:v1"),
        ("manifest", "inspect", "--insecure", "-v", f"{registry}/library/single:v1"),
        ("manifest", "inspect", "--insecure", f"{registry}/library/oldstyle"),
        ("manifest", "inspect", "--insecure", "-v", f"{registry}/library/oldstyle"),
        ("manifest", "inspect", "--insecure", f"{registry}/library/nope"),
        ("manifest", "inspect", "--insecure", f"{registry}/library/redis:nope"),
        ("manifest", "inspect", "--insecure", f"{registry}/library/redis@sha256:{'0' * 64}"),
        ("manifest", "inspect", f"{registry}/library/redis"),
        ("manifest", "inspect", "--insecure", f"{closed}/library/redis"),
        ("manifest", "inspect", "--insecure", "Bad:Name"),
        ("manifest", "inspect", "--insecure", f"{registry}/library/redis", "second"),
        ("manifest", "inspect"),
        ("manifest", "inspect", "--help"),
        ("manifest", "nope"),
    ):
        assert outcome(ours(*arguments)) == outcome(real(*arguments)), arguments
    listing = json.loads(
        ours("manifest", "inspect", "--insecure", f"{registry}/library/redis").stdout
    )
    assert listing["manifests"][0]["digest"] == child


def test_manifest_alone_shows_its_help_as_the_real_cli_less_the_local_list_commands(
    clis: tuple[CliRun, CliRun],
) -> None:
    real, ours = clis
    expected, mine = real("manifest"), ours("manifest")
    local_list_commands = ("  annotate ", "  create ", "  push ", "  rm ")
    kept = [
        line for line in expected.stderr.splitlines() if not line.startswith(local_list_commands)
    ]
    assert (mine.returncode, mine.stdout, mine.stderr.splitlines()) == (0, "", kept)
    assert mine.stderr.startswith("\nUsage:  docker manifest COMMAND\n\nThe **docker manifest**")


def test_a_docker_io_name_is_read_from_the_engines_mirror_as_docker_hub_would_give_it(
    registry: str, clis: tuple[CliRun, CliRun], hub: Hub
) -> None:
    real, ours = clis
    content_type, index = fetch(hub.url, "/v2/library/redis/manifests/latest")
    assert content_type == "application/vnd.oci.image.index.v1+json"
    for verbose in ((), ("-v",)):
        mine = ours("manifest", "inspect", *verbose, "redis")
        expected = real("manifest", "inspect", "--insecure", *verbose, f"{registry}/library/redis")
        assert mine.returncode == expected.returncode == 0, mine.stderr
        assert mine.stdout == expected.stdout.replace(f"{registry}/", "docker.io/")
    verbose = json.loads(ours("manifest", "inspect", "-v", "docker.io/library/redis:latest").stdout)
    listed = json.loads(index)["manifests"]
    assert [entry["Descriptor"]["digest"] for entry in verbose] == [m["digest"] for m in listed]
    for entry, manifest in zip(verbose, listed, strict=True):
        raw = base64.b64decode(entry["Raw"])
        assert sha256(raw) == manifest["digest"]
        assert entry["Ref"] == f"docker.io/library/redis:latest@{manifest['digest']}"
        assert entry["OCIManifest"] == json.loads(raw)
    pulled = ours("pull", "redis")
    assert pulled.returncode == 0, pulled.stderr
    assert f"Digest: {sha256(index)}\n" in pulled.stdout
    digests = ours("images", "--digests", "--format", "{{.Digest}}", "redis").stdout
    assert digests == f"{sha256(index)}\n"
    single = ours("manifest", "inspect", f"redis@{listed[0]['digest']}")
    assert json.loads(single.stdout) == json.loads(
        fetch(hub.url, f"/v2/library/redis/manifests/{listed[0]['digest']}")[1]
    )
    missing = ours("manifest", "inspect", "nope")
    assert outcome(missing) == (1, "", "no such manifest: docker.io/library/nope:latest\n")


@pytest.fixture
def guarded_engine(
    start_engine: Callable[..., RunningEngine], hub: Hub
) -> Iterator[tuple[RunningEngine, str]]:
    """An engine whose docker.io mirror wants Basic credentials (a front to the hub)."""
    with basic_auth.basic_auth_front(hub.address, "learner", "s3cret") as front:
        yield start_engine("--mirror", f"http://{front}", "--offline"), front


def test_a_mirror_that_wants_credentials_gets_those_of_the_config_directory(
    guarded_engine: tuple[RunningEngine, str], hub: Hub, tmp_path: Path
) -> None:
    engine, _ = guarded_engine
    ours = cli_for(OUR_CLI, engine.host, tmp_path / "ours")
    refused = ours("manifest", "inspect", "busybox")
    assert outcome(refused) == (1, "", "no such manifest: docker.io/library/busybox:latest\n")
    token = base64.b64encode(b"learner:s3cret").decode()
    (ours.config_dir / "config.json").write_text(
        json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": token}}})
    )
    allowed = ours("manifest", "inspect", "busybox")
    assert allowed.returncode == 0, allowed.stderr
    _, index = fetch(hub.url, "/v2/library/busybox/manifests/latest")
    assert [m["digest"] for m in json.loads(allowed.stdout)["manifests"]] == [
        m["digest"] for m in json.loads(index)["manifests"]
    ]
