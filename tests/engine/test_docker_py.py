"""docker-py, the Python SDK (PyPI ``docker`` 7.x), against a real engine: containers run
detached and in the foreground, listed, logged, exec'd into, stopped and removed; volumes
created and listed; images pulled from the hub and listed."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator

import docker
import pytest
from docker.models.containers import Container

from tests.engine.conftest import Hub, RunningEngine
from tests.engine.test_bad_input import scrub


@pytest.fixture
def engine(
    start_engine: Callable[..., RunningEngine], hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningEngine]:
    """An engine with a cgroup parent of its own; all it made is removed afterwards."""
    parent = f"/slipway-test-{secrets.token_hex(4)}"  # see test_bad_input.cgroup_parent
    monkeypatch.setenv("SLIPWAY_CGROUP_PARENT", parent)
    started = start_engine("--mirror", hub.url, "--offline")
    try:
        yield started
    finally:
        scrub(started, parent)


@pytest.fixture
def client(engine: RunningEngine) -> Iterator[docker.DockerClient]:
    """docker-py on the engine's socket."""
    sdk = docker.DockerClient(base_url=engine.host, version="auto", timeout=60)
    try:
        yield sdk
    finally:
        sdk.close()


def test_the_sdk_negotiates_the_engines_api_version(client: docker.DockerClient) -> None:
    assert client.api.api_version == "1.50"
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.50"


def test_run_in_the_foreground_returns_the_output(client: docker.DockerClient) -> None:
    output = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"])
    assert output == b"out\n"
    both = client.containers.run("busybox", ["sh", "-c", "echo err >&2"], stderr=True)
    assert both == b"err\n"
    finished = client.containers.list(all=True, filters={"exited": "0"})
    assert len(finished) == 2 and all(c.status == "exited" for c in finished)


def test_run_in_the_foreground_raises_on_failure(client: docker.DockerClient) -> None:
    with pytest.raises(docker.errors.ContainerError) as raised:
        client.containers.run("busybox", ["sh", "-c", "echo broken >&2; exit 3"], name="failing")
    assert raised.value.exit_status == 3
    assert raised.value.stderr == b"broken\n"
    assert client.containers.get("failing").attrs["State"]["ExitCode"] == 3


def test_run_detached_then_list_logs_exec_stop_and_remove(client: docker.DockerClient) -> None:
    script = "echo started; trap 'echo stopping; exit 0' TERM; while true; do sleep 0.1; done"
    container: Container = client.containers.run(
        "busybox", ["sh", "-c", script], detach=True, name="sdk-web", labels={"tier": "web"}
    )
    assert len(container.id) == 64 and container.name == "sdk-web"
    container.reload()
    assert container.status == "running"
    assert container.labels == {"tier": "web"}
    assert container.image.tags == ["busybox:latest"]

    listed = client.containers.list()
    assert [c.id for c in listed] == [container.id]
    assert client.containers.list(filters={"label": "tier=db"}) == []

    _wait_for_log(container, b"started\n")
    assert container.logs() == b"started\n"

    exit_code, output = container.exec_run(["sh", "-c", "echo $((6 * 7)); exit 4"])
    assert (exit_code, output) == (4, b"42\n")
    exit_code, output = container.exec_run(
        ["sh", "-c", 'echo "$PWD $GREETING"'], workdir="/tmp", environment={"GREETING": "hi"}
    )
    assert (exit_code, output) == (0, b"/tmp hi\n")
    exit_code, (stdout, stderr) = container.exec_run(
        ["sh", "-c", "echo to-out; echo to-err >&2"], demux=True
    )
    assert (exit_code, stdout, stderr) == (0, b"to-out\n", b"to-err\n")

    container.stop(timeout=5)
    container.reload()
    assert container.status == "exited"
    assert container.attrs["State"]["ExitCode"] == 0
    assert container.logs() == b"started\nstopping\n"
    assert client.containers.list() == []
    assert [c.id for c in client.containers.list(all=True)] == [container.id]

    container.remove()
    assert client.containers.list(all=True) == []
    with pytest.raises(docker.errors.NotFound) as raised:
        client.containers.get(container.id)
    assert raised.value.explanation == f"No such container: {container.id}"


def _wait_for_log(container: Container, expected: bytes) -> None:
    """Until the container has logged ``expected`` (for at most ten seconds)."""
    deadline = time.monotonic() + 10
    while container.logs() != expected and time.monotonic() < deadline:
        time.sleep(0.05)


def test_remove_running_container_needs_force(client: docker.DockerClient) -> None:
    container = client.containers.run("busybox", ["sleep", "60"], detach=True, name="sdk-busy")
    with pytest.raises(docker.errors.APIError) as raised:
        container.remove()
    assert raised.value.status_code == 409
    assert raised.value.explanation == (
        f'cannot remove container "{container.id}": container is running: stop the container '
        "before removing or force remove"
    )
    container.remove(force=True)
    assert client.containers.list(all=True) == []


def test_volumes_create_list_and_use(client: docker.DockerClient) -> None:
    volume = client.volumes.create("sdk-data", labels={"course": "ch5"})
    assert volume.name == "sdk-data"
    assert volume.attrs["Driver"] == "local"
    assert volume.attrs["Labels"] == {"course": "ch5"}
    assert volume.attrs["Mountpoint"].endswith("/sdk-data/_data")
    anonymous = client.volumes.create()
    assert len(anonymous.name) == 64
    assert sorted(v.name for v in client.volumes.list()) == sorted([anonymous.name, "sdk-data"])
    assert [v.name for v in client.volumes.list(filters={"label": "course=ch5"})] == ["sdk-data"]

    volumes = {"sdk-data": {"bind": "/data", "mode": "rw"}}
    write = ["sh", "-c", "echo kept > /data/f"]
    client.containers.run("busybox", write, volumes=volumes, remove=True)
    read = client.containers.run("busybox", ["cat", "/data/f"], volumes=volumes, remove=True)
    assert read == b"kept\n"
    assert client.volumes.get("sdk-data").attrs["Labels"] == {"course": "ch5"}
    anonymous.remove()
    assert [v.name for v in client.volumes.list()] == ["sdk-data"]


def test_images_pull_and_list(client: docker.DockerClient) -> None:
    assert client.images.list() == []
    alpine = client.images.pull("alpine", tag="latest")
    assert alpine.tags == ["alpine:latest"]
    assert alpine.id.startswith("sha256:") and len(alpine.id) == 71
    assert alpine.attrs["Os"] == "linux"
    busybox = client.images.pull("busybox")
    assert busybox.tags == ["busybox:latest"]
    listed = {image.id: image.tags for image in client.images.list()}
    assert listed == {alpine.id: ["alpine:latest"], busybox.id: ["busybox:latest"]}
    assert [image.id for image in client.images.list(name="alpine")] == [alpine.id]
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nosuch:1.0")
    with pytest.raises(docker.errors.NotFound):
        client.images.pull("nosuch", tag="1.0")
