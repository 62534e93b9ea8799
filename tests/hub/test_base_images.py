"""The base images that `make test` built into the hub's default root: a rebuild reuses
them, their digests recompute, and each one runs what its name promises."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.hub import recipes
from simulator.hub.build import DEFAULT_CACHE
from simulator.hub.storage import DEFAULT_ROOT, HubStorage
from simulator.images.oci import Index, Manifest, parse_image_config, parse_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_LOG = DEFAULT_CACHE / "build-log.jsonl"


def _build() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulator.hub", "build", "--quiet"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr


def _log_entries() -> list[dict]:
    if not BUILD_LOG.exists():
        return []
    return [json.loads(line) for line in BUILD_LOG.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def built_hub() -> HubStorage:
    """The default hub root, built (a no-op when `make test` already built it)."""
    _build()
    with HubStorage(DEFAULT_ROOT) as storage:
        yield storage


@pytest.mark.timeout(1800)
def test_a_second_build_reuses_every_image_without_mmdebstrap_or_apt(built_hub):
    before = len(_log_entries())
    _build()
    new = _log_entries()[before:]
    assert [e for e in new if e["event"] in ("ran", "built")] == []
    reused = {e["image"] for e in new if e["event"] == "reused image"}
    assert reused == {r.name for r in recipes.RECIPES}


def _image(storage: HubStorage, name: str, tag: str) -> tuple[Index, Manifest]:
    repository = f"library/{name}"
    index = parse_manifest(storage.manifest(repository, tag).data)
    assert isinstance(index, Index)
    assert [(d.platform.os, d.platform.architecture) for d in index.manifests] == [
        ("linux", "amd64")
    ]
    manifest = parse_manifest(storage.manifest(repository, index.manifests[0].digest).data)
    assert isinstance(manifest, Manifest)
    return index, manifest


def _sha256_file(path: Path, opener=open) -> str:  # noqa: ANN001
    digest = hashlib.sha256()
    with opener(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", [r.name for r in recipes.RECIPES])
def test_every_blob_digest_and_diff_id_recomputes(built_hub, name):
    recipe = recipes.by_name(name)
    for tag in recipe.tags:
        index, manifest = _image(built_hub, name, tag)
        config_bytes = built_hub.content.read(manifest.config.digest)
        assert "sha256:" + hashlib.sha256(config_bytes).hexdigest() == manifest.config.digest
        config = parse_image_config(config_bytes)
        assert len(config.diff_ids) == len(manifest.layers)
        assert all(entry.created for entry in config.history)
        layer_steps = [h for h in config.history if not h.empty_layer]
        assert len(layer_steps) == len(manifest.layers)
    for descriptor, diff_id in zip(manifest.layers, config.diff_ids, strict=True):
        blob = built_hub.content.path(descriptor.digest)
        assert _sha256_file(blob) == descriptor.digest
        assert blob.stat().st_size == descriptor.size
        assert _sha256_file(blob, gzip.open) == diff_id


EXPECTED_OUTPUT = {
    "busybox": (["busybox", "echo", "hello from busybox"], "hello from busybox"),
    "debian": (["cat", "/etc/debian_version"], "12."),
    "alpine": (["cat", "/etc/alpine-release"], "3.23."),
    "python": (["python", "--version"], "Python 3.11."),
    "nginx": (["nginx", "-v"], "nginx/1.22"),
    "redis": (["redis-server", "--version"], "Redis server v=7.0"),
    "node": (["sh", "-c", "node --version; npm --version"], f"\n{recipes.NPM_VERSION}\n"),
    "golang": (["go", "version"], "go1.19"),
}
ALSO_EXPECTED = {"node": "v18."}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUT))
def test_each_image_runs_what_its_name_promises(built_hub, name, tmp_path):
    from simulator.archive import apply_layer
    from simulator.runtime.defaults import container_spec

    _, manifest = _image(built_hub, name, recipes.by_name(name).tags[0])
    config = parse_image_config(built_hub.content.read(manifest.config.digest))
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    for descriptor in manifest.layers:
        with built_hub.content.open(descriptor.digest) as blob:
            apply_layer(blob, rootfs, whiteouts="delete")
    argv, expected = EXPECTED_OUTPUT[name]
    spec = container_spec(argv, rootfs=str(rootfs), env=config.config.env)
    spec["process"]["cwd"] = config.config.working_dir or "/"
    spec["linux"]["cgroupsPath"] = f"/slipway-test/{tmp_path.name}"
    (tmp_path / "config.json").write_text(json.dumps(spec))
    result = subprocess.run(
        [
            sys.executable, "-m", "simulator.runtime", "--root", str(tmp_path / "state"),
            "run", f"slipway-test-{name}", "--bundle", str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout + result.stderr
    assert ALSO_EXPECTED.get(name, "") in result.stdout + result.stderr
