"""skopeo, a real OCI client, agrees with the hub about the base images' digests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from simulator.hub.process import serving
from simulator.hub.storage import DEFAULT_ROOT, HubStorage
from simulator.images.oci import Index, parse_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.requires_tool("skopeo")


@pytest.fixture(scope="module")
def hub_url():
    """The hub serving its default root, where `make test` built the base images."""
    with serving(DEFAULT_ROOT) as url:
        yield url


def _skopeo(*args: str) -> str:
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _our_manifest_digest(name: str, tag: str) -> str:
    with HubStorage(DEFAULT_ROOT) as storage:
        index = parse_manifest(storage.manifest(f"library/{name}", tag).data)
    assert isinstance(index, Index)
    return index.manifests[0].digest


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["busybox", "redis"])
def test_skopeo_copies_our_images_and_reports_our_digests(hub_url, name, tmp_path):
    layout = tmp_path / "layout"
    _skopeo(
        "copy", "--src-tls-verify=false",
        f"docker://{hub_url}/library/{name}:latest", f"oci:{layout}:latest",
    )  # fmt: skip
    ours = _our_manifest_digest(name, "latest")
    with HubStorage(DEFAULT_ROOT) as storage:
        our_index = storage.resolve(f"library/{name}", "latest")
    remote = json.loads(
        _skopeo("inspect", "--tls-verify=false", f"docker://{hub_url}/library/{name}:latest")
    )
    local = json.loads(_skopeo("inspect", f"oci:{layout}:latest"))
    # The tag names our one-platform index; the copy holds its linux/amd64 manifest.
    assert remote["Digest"] == our_index
    assert local["Digest"] == ours
    assert remote["Layers"] == local["Layers"]
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [ours]
    # Every blob skopeo fetched is byte-for-byte what we hold.
    with HubStorage(DEFAULT_ROOT) as storage:
        for blob in (layout / "blobs" / "sha256").iterdir():
            assert storage.content.read(f"sha256:{blob.name}") == blob.read_bytes()


@pytest.mark.timeout(600)
def test_skopeo_pushes_an_image_back_into_a_hub(hub_url, tmp_path):
    layout = tmp_path / "layout"
    _skopeo(
        "copy", "--src-tls-verify=false",
        f"docker://{hub_url}/library/busybox:latest", f"oci:{layout}:latest",
    )  # fmt: skip
    with serving(tmp_path / "hub") as other:
        _skopeo(
            "copy", "--dest-tls-verify=false",
            f"oci:{layout}:latest", f"docker://{other}/learner/busybox:pushed",
        )  # fmt: skip
    with HubStorage(tmp_path / "hub") as storage:
        pushed = storage.manifest("learner/busybox", "pushed")
    assert pushed.digest == _our_manifest_digest("busybox", "latest")
