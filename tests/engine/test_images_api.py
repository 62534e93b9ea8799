"""The engine's image endpoints, driven by the real docker CLI 28 (and raw requests where the
CLI hides the API's shape): pull, images, tag, history, inspect, rmi, save and load, import,
push, prune, and the distribution endpoint."""

from __future__ import annotations

import base64
import json
import random
import re
import subprocess
import tarfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.conftest import (
    DockerRun,
    EngineApi,
    Hub,
    RunningEngine,
)
from tests.support import basic_auth
from tests.support.dockerd import DockerdHandle, ReferenceDockerdError, reference_dockerd

ERROR_PREFIX = "Error response from daemon: "


def hub_json(hub: Hub, path: str, accept: str = "") -> Any:
    request = urllib.request.Request(hub.url + path)
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def pull(docker: DockerRun, name: str = "busybox") -> str:
    result = docker("pull", name)
    assert result.returncode == 0, result.stderr
    return result.stdout


def rows(output: str) -> list[list[str]]:
    """A docker table, split on runs of two or more spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def make_rootfs_tar(path: Path, files: dict[str, bytes]) -> Path:
    import io

    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return path


def test_docker_pull_shows_the_progress_then_digest_and_status(docker: DockerRun) -> None:
    output = pull(docker)
    lines = output.splitlines()
    assert lines[0] == "Using default tag: latest"
    assert lines[1] == "latest: Pulling from library/busybox"
    assert re.fullmatch(r"[0-9a-f]{12}: Pulling fs layer", lines[2])
    assert any(re.fullmatch(r"[0-9a-f]{12}: Pull complete", line) for line in lines)
    assert re.fullmatch(r"Digest: sha256:[0-9a-f]{64}", lines[-3])
    assert lines[-2] == "Status: Downloaded newer image for busybox:latest"
    assert lines[-1] == "docker.io/library/busybox:latest"
    again = pull(docker)
    assert "Status: Image is up to date for busybox:latest" in again


def test_the_pull_stream_is_dockers_json_messages(api: EngineApi) -> None:
    answer = api.request("POST", "/v1.50/images/create?fromImage=busybox&tag=latest")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.body.endswith(b"}\r\n")
    messages = answer.lines()
    assert messages[0] == {"status": "Pulling from library/busybox", "id": "latest"}
    assert {"status", "progressDetail", "id"} <= set(messages[1])
    assert messages[-1] == {"status": "Status: Downloaded newer image for busybox:latest"}


def test_docker_images_lists_columns_and_digests(docker: DockerRun) -> None:
    pull(docker)
    table = rows(docker("images").stdout)
    assert table[0] == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    assert table[1][:2] == ["busybox", "latest"]
    assert re.fullmatch(r"[0-9a-f]{12}", table[1][2])
    assert re.fullmatch(r"\d+(\.\d+)?[kM]B", table[1][4])
    with_digests = rows(docker("images", "--digests").stdout)
    assert with_digests[0] == ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", with_digests[1][2])
    assert with_digests[1][3] == table[1][2]


def test_docker_tag_adds_a_name_to_the_same_image(docker: DockerRun) -> None:
    pull(docker)
    assert docker("tag", "busybox", "mybox:1").returncode == 0
    table = rows(docker("images").stdout)
    names = {(row[0], row[1]): row[2] for row in table[1:]}
    assert names[("mybox", "1")] == names[("busybox", "latest")]
    refused = docker("tag", "nosuch", "other:1")
    assert refused.returncode == 1
    assert refused.stderr.strip() == ERROR_PREFIX + "No such image: nosuch:latest"


def test_docker_history_shows_each_step_with_missing_below_the_top(docker: DockerRun) -> None:
    pull(docker)
    table = rows(docker("history", "busybox").stdout)
    assert table[0] == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert re.fullmatch(r"[0-9a-f]{12}", table[1][0])
    assert all(row[0] == "<missing>" for row in table[2:])
    assert len(table) >= 3


def test_docker_image_inspect_shows_the_diff_ids_as_rootfs_layers(
    docker: DockerRun, hub: Hub
) -> None:
    pull(docker)
    result = docker("image", "inspect", "busybox")
    assert result.returncode == 0, result.stderr
    [inspected] = json.loads(result.stdout)
    config = hub_json(hub, f"/v2/library/busybox/blobs/{inspected['Id']}")
    assert inspected["RootFS"] == {"Type": "layers", "Layers": config["rootfs"]["diff_ids"]}
    assert inspected["RepoTags"] == ["busybox:latest"]
    assert inspected["RepoDigests"][0].startswith("busybox@sha256:")
    assert inspected["Parent"] == ""
    assert inspected["Architecture"] == "amd64" and inspected["Os"] == "linux"
    assert inspected["Config"]["Cmd"] == ["sh"]
    assert inspected["Size"] > 0
    assert inspected["GraphDriver"]["Name"] == "overlay2"
    assert inspected["Created"] == config["created"]


def test_inspect_before_api_1_50_carries_the_legacy_config_fields(
    api: EngineApi, docker: DockerRun
) -> None:
    pull(docker)
    old = api.get("/v1.43/images/busybox/json").json()
    assert old["Config"]["Hostname"] == "" and old["Config"]["Cmd"] == ["sh"]
    assert old["Container"] == "" and old["ContainerConfig"]["Cmd"] is None
    assert old["VirtualSize"] == old["Size"]
    assert "Hostname" not in api.get("/v1.50/images/busybox/json").json()["Config"]


def test_docker_rmi_untags_and_deletes(docker: DockerRun) -> None:
    pull(docker)
    assert docker("tag", "busybox", "mybox:1").returncode == 0
    untag = docker("rmi", "mybox:1")
    assert untag.stdout.strip() == "Untagged: mybox:1"
    removed = docker("rmi", "busybox")
    assert removed.returncode == 0, removed.stderr
    lines = removed.stdout.splitlines()
    assert lines[0] == "Untagged: busybox:latest"
    assert re.fullmatch(r"Untagged: busybox@sha256:[0-9a-f]{64}", lines[1])
    assert all(re.fullmatch(r"Deleted: sha256:[0-9a-f]{64}", line) for line in lines[2:])
    assert len(rows(docker("images").stdout)) == 1


def test_docker_rmi_of_a_missing_image_fails_as_docker_does(docker: DockerRun) -> None:
    result = docker("rmi", "nosuch")
    assert result.returncode == 1
    assert result.stderr.strip() == ERROR_PREFIX + "No such image: nosuch:latest"


def test_rmi_of_an_image_with_two_repositories_by_id_needs_force(
    docker: DockerRun, api: EngineApi
) -> None:
    pull(docker)
    assert docker("tag", "busybox", "other/box:1").returncode == 0
    image_id = api.get("/images/busybox/json").json()["Id"]
    refused = docker("rmi", image_id[7:19])
    assert refused.returncode == 1
    assert "image is referenced in multiple repositories" in refused.stderr
    answer = api.request("DELETE", f"/v1.50/images/{image_id[7:19]}")
    assert answer.status == 409
    assert answer.headers["Content-Type"] == "application/json"
    forced = docker("rmi", "-f", image_id[7:19])
    assert forced.returncode == 0, forced.stderr


def test_docker_save_then_load_brings_the_image_back(docker: DockerRun, tmp_path: Path) -> None:
    pull(docker)
    before = docker("images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}").stdout
    archive = tmp_path / "busybox.tar"
    saved = docker("save", "-o", str(archive), "busybox")
    assert saved.returncode == 0, saved.stderr
    with tarfile.open(archive) as tar:
        assert {"manifest.json", "index.json", "oci-layout"} <= set(tar.getnames())
    assert docker("rmi", "busybox").returncode == 0
    loaded = docker("load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "Loaded image: busybox:latest"
    after = docker("images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}").stdout
    assert after == before


def test_load_streams_loaded_image_and_reports_a_bad_archive_in_the_stream(
    api: EngineApi, docker: DockerRun, tmp_path: Path
) -> None:
    pull(docker)
    archive = tmp_path / "busybox.tar"
    assert docker("save", "-o", str(archive), "busybox").returncode == 0
    answer = api.request("POST", "/v1.50/images/load?quiet=1", archive.read_bytes())
    assert answer.status == 200
    assert answer.lines() == [{"stream": "Loaded image: busybox:latest\n"}]
    bad = api.request("POST", "/v1.50/images/load", b"this is not a tar archive" * 40)
    assert bad.status == 200  # as moby: the failure is the stream's last message
    last = bad.lines()[-1]
    assert last["error"] == last["errorDetail"]["message"]
    refused = docker("load", input="not a tar archive")
    assert refused.returncode == 1
    assert api.get("/_ping").body == b"OK"


def test_save_of_several_names_and_of_a_missing_one(api: EngineApi, docker: DockerRun) -> None:
    pull(docker)
    assert docker("tag", "busybox", "copy:2").returncode == 0
    answer = api.get("/v1.50/images/get?names=busybox&names=copy:2")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/x-tar"
    import io

    with tarfile.open(fileobj=io.BytesIO(answer.body)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["busybox:latest", "copy:2"]
    missing = api.get("/v1.50/images/nosuch/get")
    assert missing.status == 404
    assert missing.json() == {"message": "No such image: nosuch"}  # as dockerd words it


def test_pulling_a_tag_the_registry_lacks_fails_as_docker_fails(docker: DockerRun) -> None:
    result = docker("pull", "alpine:3.16")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        ERROR_PREFIX + "manifest for alpine:3.16 not found: manifest unknown: manifest unknown"
    )


def test_pulling_a_repository_that_does_not_exist_is_denied(docker: DockerRun) -> None:
    result = docker("pull", "nosuchrepo")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        ERROR_PREFIX + "pull access denied for nosuchrepo, repository does not exist or may "
        "require 'docker login'"
    )


def test_pull_requests_that_are_wrong_before_anything_starts(api: EngineApi) -> None:
    scratch = api.request("POST", "/v1.50/images/create?fromImage=scratch")
    assert scratch.status == 403
    assert scratch.json() == {"message": "'scratch' is a reserved name"}
    invalid = api.request("POST", "/v1.50/images/create?fromImage=Busybox")
    assert invalid.status == 400
    assert "must be lowercase" in invalid.json()["message"]
    missing = api.request("POST", "/v1.50/images/create?fromImage=alpine&tag=3.16")
    assert missing.status == 404
    assert missing.headers["Content-Type"] == "application/json"
    nothing = api.request("POST", "/v1.50/images/create")
    assert nothing.status == 400


def test_pull_by_digest(docker: DockerRun, api: EngineApi) -> None:
    digest = api.get("/distribution/busybox/json").json()["Descriptor"]["digest"]
    output = pull(docker, f"busybox@{digest}")
    assert f"Digest: {digest}" in output
    inspected = api.get(f"/images/busybox@{digest}/json").json()
    assert inspected["RepoDigests"] == [f"busybox@{digest}"]
    assert inspected["RepoTags"] == []


def test_an_error_after_the_pull_started_ends_the_stream_as_docker_sends_it(
    start_engine: Any, hub: Hub, empty_hub: Hub, docker_cli: str, tmp_path: Path
) -> None:
    from tests.engine.conftest import docker_for

    engine: RunningEngine = start_engine("--mirror", hub.url, "--offline")
    engine.reach(empty_hub.address)
    docker = docker_for(engine, docker_cli, tmp_path)
    pull(docker)
    name = f"{empty_hub.address}/broken/box:v1"
    assert docker("tag", "busybox", name).returncode == 0
    assert docker("push", name).returncode == 0
    manifest = hub_json(
        empty_hub, "/v2/broken/box/manifests/v1", "application/vnd.oci.image.manifest.v1+json"
    )
    layer = manifest["layers"][0]["digest"].removeprefix("sha256:")
    (empty_hub.root / "content" / "blobs" / "sha256" / layer).unlink()
    assert docker("rmi", name, "busybox").returncode == 0
    answer = engine.api().request(
        "POST", f"/v1.50/images/create?fromImage={empty_hub.address}/broken/box&tag=v1"
    )
    assert answer.status == 200
    messages = answer.lines()
    assert messages[0] == {"status": "Pulling from broken/box", "id": "v1"}
    assert set(messages[-1]) == {"errorDetail", "error"}
    assert messages[-1]["errorDetail"] == {"message": messages[-1]["error"]}
    cli = docker("pull", name)
    assert cli.returncode == 1
    assert messages[-1]["error"] in cli.stderr


def test_push_to_a_registry_then_pull_it_back(
    start_engine: Any, hub: Hub, empty_hub: Hub, docker_cli: str, tmp_path: Path
) -> None:
    from tests.engine.conftest import docker_for

    first = start_engine("--mirror", hub.url, "--offline")
    first.reach(empty_hub.address)
    docker = docker_for(first, docker_cli, tmp_path)
    pull(docker)
    name = f"{empty_hub.address}/team/box:v1"
    assert docker("tag", "busybox", name).returncode == 0
    pushed = docker("push", name)
    assert pushed.returncode == 0, pushed.stderr
    assert f"The push refers to repository [{empty_hub.address}/team/box]" in pushed.stdout
    assert re.search(r"v1: digest: sha256:[0-9a-f]{64} size: \d+", pushed.stdout)
    missing = docker("push", f"{empty_hub.address}/team/nothing:v1")
    assert missing.returncode == 1
    assert "An image does not exist locally with the tag" in missing.stderr
    second = start_engine("--offline")
    second.reach(empty_hub.address)
    other = docker_for(second, docker_cli, tmp_path)
    pulled = other("pull", name)
    assert pulled.returncode == 0, pulled.stderr
    assert f"Status: Downloaded newer image for {name}" in pulled.stdout
    first_id = docker("images", "-q", name).stdout
    assert other("images", "-q", name).stdout == first_id


def test_docker_import_with_a_message_and_changes(docker: DockerRun, tmp_path: Path) -> None:
    tarball = make_rootfs_tar(tmp_path / "rootfs.tar", {"hello": b"hi\n"})
    imported = docker(
        "import", "-m", "my import", "-c", "LABEL course=ddd", "-c", 'CMD ["/hello"]',
        str(tarball), "imported:v1",
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", imported.stdout.strip())
    [inspected] = json.loads(docker("image", "inspect", "imported:v1").stdout)
    assert inspected["Comment"] == "my import"
    assert inspected["Config"]["Cmd"] == ["/hello"]
    assert inspected["Config"]["Labels"] == {"course": "ddd"}
    labelled = docker("images", "--filter", "label=course=ddd", "--format", "{{.Repository}}")
    assert labelled.stdout.strip() == "imported"
    bad = docker("import", "-c", "RUN rm -rf /", str(tarball))
    assert bad.returncode == 1
    assert "run" in bad.stderr.lower()


def test_image_filters_reference_and_dangling(docker: DockerRun, tmp_path: Path) -> None:
    pull(docker)
    first = make_rootfs_tar(tmp_path / "a.tar", {"a": b"a"})
    second = make_rootfs_tar(tmp_path / "b.tar", {"b": b"b"})
    assert docker("import", str(first), "thing:1").returncode == 0
    assert docker("import", str(second), "thing:1").returncode == 0  # the first is dangling
    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert sorted(listed.stdout.split()) == ["<none>:<none>", "busybox:latest", "thing:1"]
    by_name = docker("images", "--format", "{{.Repository}}:{{.Tag}}", "busy*")
    assert by_name.stdout.split() == ["busybox:latest"]
    dangling = docker("images", "-f", "dangling=true", "--format", "{{.Repository}}")
    assert dangling.stdout.split() == ["<none>"]
    wrong = docker("images", "-f", "colour=blue")
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == ERROR_PREFIX + "invalid filter 'colour'"


def test_image_prune_removes_dangling_images_only(docker: DockerRun, tmp_path: Path) -> None:
    pull(docker)
    first = make_rootfs_tar(tmp_path / "a.tar", {"a": b"a" * 1000})
    second = make_rootfs_tar(tmp_path / "b.tar", {"b": b"b"})
    dangling_id = docker("import", str(first), "thing:1").stdout.strip()
    assert docker("import", str(second), "thing:1").returncode == 0
    pruned = docker("image", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert f"deleted: {dangling_id}" in pruned.stdout
    assert "Total reclaimed space: 1kB" in pruned.stdout
    remaining = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(remaining) == ["busybox:latest", "thing:1"]
    everything = docker("image", "prune", "-a", "-f")
    assert everything.returncode == 0
    assert docker("images", "-q").stdout == ""


def test_distribution_inspect_asks_the_mirror(api: EngineApi, hub: Hub) -> None:
    answer = api.get("/v1.50/distribution/busybox:latest/json")
    assert answer.status == 200
    result = answer.json()
    index = hub_json(hub, "/v2/library/busybox/manifests/latest", result["Descriptor"]["mediaType"])
    assert result["Platforms"] == [entry["platform"] for entry in index["manifests"]]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", result["Descriptor"]["digest"])
    missing = api.get("/v1.50/distribution/busybox:nosuchtag/json")
    assert missing.status == 404


def test_system_df_counts_the_images(api: EngineApi, docker: DockerRun) -> None:
    pull(docker)
    usage = api.get("/v1.50/system/df").json()
    assert usage["LayersSize"] == usage["Images"][0]["Size"] > 0
    assert usage["Images"][0]["Containers"] == 0
    table = rows(docker("system", "df").stdout)
    assert table[0] == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert table[1][:3] == ["Images", "1", "0"]


USER, PASSWORD = "learner", "s3cret"


@pytest.fixture
def basic_auth_front(hub: Hub, engine: RunningEngine) -> Iterator[str]:
    """A registry that wants Basic credentials, passing reads through to the hub, and
    reachable by the engine."""
    with basic_auth.basic_auth_front(hub.address, USER, PASSWORD) as address:
        engine.reach(address)
        yield address


def test_x_registry_auth_is_decoded_and_used_for_the_pull(
    api: EngineApi, basic_auth_front: str
) -> None:
    path = f"/v1.50/images/create?fromImage={basic_auth_front}/library/busybox&tag=latest"
    refused = api.request("POST", path)
    assert refused.status == 500
    assert refused.json() == {"message": "unauthorized: authentication required"}
    credentials = json.dumps({"username": USER, "password": PASSWORD}).encode()
    header = base64.urlsafe_b64encode(credentials).decode()
    pulled = api.request("POST", path, headers={"X-Registry-Auth": header})
    assert pulled.status == 200
    assert pulled.lines()[-1] == {
        "status": f"Status: Downloaded newer image for {basic_auth_front}/library/busybox:latest"
    }


# -- refused uploads --------------------------------------------------------------------------

# Debian's dockerd 20.10 says this before the tar error; Docker 28 untars in-process and
# says the error alone, as this engine does.
OLD_UNTAR_PREFIX = "Error processing tar file(exit status 1): "


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerdHandle]:
    try:
        with reference_dockerd(tmp_path_factory.mktemp("upload-reference")) as handle:
            yield handle
    except ReferenceDockerdError as error:
        pytest.fail(str(error), pytrace=False)


def test_a_refused_load_or_import_reads_the_upload_so_the_cli_shows_dockers_error(
    docker: DockerRun, reference: DockerdHandle, tmp_path: Path
) -> None:
    noise = tmp_path / "noise.bin"
    noise.write_bytes(random.Random(4).randbytes(24 << 20))  # more than sockets buffer
    not_a_tar = tmp_path / "notatar.txt"
    not_a_tar.write_text("this is not a tar archive\n")
    cases = [
        ("load", "-i", str(noise)),
        ("import", str(noise)),
        ("import", "--change", "FOO bar", str(noise)),
        ("import", str(not_a_tar)),
    ]

    def answers(run: Callable[..., subprocess.CompletedProcess[str]]) -> list[tuple[int, str]]:
        results = [run(*case) for case in cases]
        results.append(run("load", input=not_a_tar.read_text()))  # docker load < notatar.txt
        return [(r.returncode, r.stderr.replace(OLD_UNTAR_PREFIX, "")) for r in results]

    ours = answers(docker)

    def on_reference(*arguments: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return reference.docker(*arguments, check=False, stdin=input)

    assert ours == answers(on_reference)
    assert ours == [
        (1, "archive/tar: invalid tar header\n"),
        (1, ERROR_PREFIX + "archive/tar: invalid tar header\n"),
        (1, ERROR_PREFIX + "foo is not a valid change command\n"),
        (1, ERROR_PREFIX + "unexpected EOF\n"),
        (1, "unexpected EOF\n"),
    ]
    assert docker("images", "-q").stdout == ""


def test_a_refused_upload_keeps_the_connection_for_the_next_request(engine: RunningEngine) -> None:
    noise = random.Random(5).randbytes(8 << 20)
    connection = engine.api().connection()
    try:
        for path in ("/v1.50/images/create?fromSrc=-&changes=FOO%20bar", "/v1.50/images/load"):
            connection.request("POST", path, body=noise)
            answer = connection.getresponse()
            body = answer.read()
            if path.endswith("load"):
                assert answer.status == 200
                assert json.loads(body.splitlines()[-1])["error"] == (
                    "archive/tar: invalid tar header"
                )
            else:
                assert (answer.status, json.loads(body)) == (
                    400,
                    {"message": "foo is not a valid change command"},
                )
        connection.request("GET", "/_ping")
        assert connection.getresponse().read() == b"OK"
    finally:
        connection.close()
