"""``python -m simulator.hub serve`` as a real process: it serves its root, logs a line per
request, stops cleanly on SIGTERM, and skopeo pushes to it and pulls from it."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.content import digest_bytes
from simulator.images.oci import OCI_INDEX, OCI_MANIFEST

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServedHub:
    process: subprocess.Popen[str]
    address: str  # host:port
    root: Path

    def url(self, path: str) -> str:
        return f"http://{self.address}{path}"

    def stop(self) -> tuple[int, str]:
        """SIGTERM the server; return its exit status and everything it wrote to stderr."""
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=10)
        return self.process.returncode, stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_hub(root: Path, *options: str) -> ServedHub:
    address = f"127.0.0.1:{_free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.hub", "serve", "--listen", address, "--root", str(root)]
        + list(options),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    hub = ServedHub(process, address, root)
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(hub.url("/v2/"), timeout=2) as response:
                assert response.status == 200
                return hub
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, stderr = process.communicate()
                raise AssertionError(f"the hub did not start: {stderr}") from None
            time.sleep(0.05)


@pytest.fixture
def start_hub() -> Iterator[type[ServedHub] | object]:
    """Start hubs as processes; any still running at the end of the test are killed."""
    started: list[ServedHub] = []

    def start(root: Path, *options: str) -> ServedHub:
        hub = _start_hub(root, *options)
        started.append(hub)
        return hub

    yield start
    for hub in started:
        if hub.process.poll() is None:
            hub.process.kill()
            hub.process.communicate()


def _post_blob(hub: ServedHub, repository: str, data: bytes) -> str:
    digest = digest_bytes(data)
    request = urllib.request.Request(
        hub.url(f"/v2/{repository}/blobs/uploads/?digest={digest}"), data=data, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
    return digest


def test_serve_command_serves_its_root_logs_requests_and_stops_on_sigterm(
    start_hub, tmp_path: Path
) -> None:
    root = tmp_path / "hub"
    hub = start_hub(root)
    digest = _post_blob(hub, "cli/test", b"kept across restarts")
    status, stderr = hub.stop()
    assert status == 0
    assert f"hub: serving {root} at http://{hub.address}" in stderr
    assert "GET /v2/ 200" in stderr
    assert f"POST /v2/cli/test/blobs/uploads/?digest={digest} 201" in stderr

    again = start_hub(root, "--quiet")
    with urllib.request.urlopen(again.url(f"/v2/cli/test/blobs/{digest}"), timeout=10) as blob:
        assert blob.read() == b"kept across restarts"
    status, stderr = again.stop()
    assert (status, stderr) == (0, "")


def test_serve_command_rejects_a_malformed_listen_address(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulator.hub",
            "serve",
            "--listen",
            "nowhere",
            "--root",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "invalid listen address 'nowhere'" in result.stderr


def _write_oci_layout(directory: Path, tag: str) -> tuple[str, bytes]:
    """A tiny image as an OCI layout: one gzip layer holding one file, its config and its
    manifest. Return the manifest's digest and bytes."""
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        content = b"hello from the hub\n"
        member = tarfile.TarInfo("hello.txt")
        member.size, member.mode, member.mtime = len(content), 0o644, 0
        tar.addfile(member, io.BytesIO(content))
    layer_tar = tar_buffer.getvalue()
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/cat", "/hello.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [digest_bytes(layer_tar)]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "test: one file"}],
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_bytes(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest_bytes(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (layer, config, manifest):
        (blobs / digest_bytes(blob).removeprefix("sha256:")).write_bytes(blob)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest_bytes(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index))
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return digest_bytes(manifest), manifest


@pytest.fixture
def skopeo_cache_cleanup() -> Iterator[None]:
    """skopeo, run as root, keeps a blob-info cache in /var/lib/containers: remove it after
    the test if the test is what created it."""
    cache = Path("/var/lib/containers")
    existed = cache.exists()
    yield
    if not existed and cache.exists():
        shutil.rmtree(cache)


@pytest.mark.requires_tool("skopeo")
def test_skopeo_pushes_an_oci_layout_into_the_hub_and_copies_it_back_out(
    start_hub, tmp_path: Path, skopeo_cache_cleanup: None
) -> None:
    digest, manifest = _write_oci_layout(tmp_path / "layout", "v1")
    hub = start_hub(tmp_path / "hub", "--quiet")
    image = f"docker://{hub.address}/test/hello:v1"
    environment = {**os.environ, "HOME": str(tmp_path / "home")}

    def skopeo(*arguments: str) -> str:
        result = subprocess.run(
            ["skopeo", "--insecure-policy", *arguments],
            capture_output=True,
            text=True,
            env=environment,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    skopeo(
        "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
        f"oci:{tmp_path / 'layout'}:v1", image,
    )  # fmt: skip
    assert json.loads(skopeo("inspect", "--tls-verify=false", image))["Digest"] == digest
    assert skopeo("inspect", "--raw", "--tls-verify=false", image).encode() == manifest

    out = tmp_path / "out"
    skopeo(
        "copy", "--quiet", "--preserve-digests", "--src-tls-verify=false",
        image, f"oci:{out}:v1",
    )  # fmt: skip
    copied = json.loads((out / "index.json").read_text())["manifests"]
    assert [entry["digest"] for entry in copied] == [digest]
    for blob in (tmp_path / "layout" / "blobs" / "sha256").iterdir():
        assert (out / "blobs" / "sha256" / blob.name).read_bytes() == blob.read_bytes()
    status, _ = hub.stop()
    assert status == 0
