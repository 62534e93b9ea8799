"""Fixtures for the runtime tests: a busybox root filesystem from Debian's busybox-static,
bundles, and drivers for our runtime and for runc, each with its own state root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE_SOURCE = Path(__file__).with_name("probe.c")

# `python -m simulator.runtime` must import from this checkout whatever the cwd is.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="the runtime tests need root")
        for item in items:
            if "tests/runtime" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root filesystem: busybox-static with every applet linked, and the probe binary."""
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    for d in ("bin", "etc", "tmp", "mnt", "proc", "sys", "dev", "root"):
        (root / d).mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    applets = subprocess.run(
        ["/bin/busybox", "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\ntty:x:5:\n")
    subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(root / "bin" / "probe"), str(PROBE_SOURCE)],
        check=True,
    )
    (root / "tmp").chmod(0o1777)
    return root


@pytest.fixture(scope="session")
def runc_spec_template(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The config.json that `runc spec` writes."""
    directory = tmp_path_factory.mktemp("runc-spec")
    subprocess.run(["runc", "spec"], cwd=directory, check=True)
    return json.loads((directory / "config.json").read_text())


class BundleFactory:
    def __init__(self, base: Path, rootfs: Path) -> None:
        self.base = base
        self.rootfs = rootfs

    def __call__(self, config: dict) -> Path:
        bundle = self.base / f"bundle-{uuid.uuid4().hex[:8]}"
        bundle.mkdir()
        shutil.copytree(self.rootfs, bundle / "rootfs", symlinks=True)
        (bundle / "config.json").write_text(json.dumps(config, indent=2))
        return bundle


@pytest.fixture
def make_bundle(tmp_path: Path, busybox_rootfs: Path) -> BundleFactory:
    return BundleFactory(tmp_path, busybox_rootfs)


class Driver:
    """Runs one runtime's CLI with a state root of its own; deletes what it made."""

    def __init__(self, command: list[str], root: Path) -> None:
        self.command = command
        self.root = root
        self.ids: list[str] = []

    def new_id(self, prefix: str = "slipway-test") -> str:
        container_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.ids.append(container_id)
        return container_id

    def argv(self, *args: str) -> list[str]:
        return [*self.command, "--root", str(self.root), *args]

    def __call__(self, *args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.argv(*args), timeout=timeout, **kwargs)

    def state(self, container_id: str) -> dict:
        result = self("state", container_id)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def wait_status(self, container_id: str, status: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            result = self("state", container_id)
            if result.returncode == 0:
                state = json.loads(result.stdout)
                if state["status"] == status:
                    return state
            if time.monotonic() > deadline:
                return self.state(container_id)
            time.sleep(0.05)

    def cleanup(self) -> None:
        for container_id in self.ids:
            self("delete", "--force", container_id, timeout=30)


def _runtime_command() -> list[str]:
    return [sys.executable, "-m", "simulator.runtime"]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Driver]:
    driver = Driver(_runtime_command(), tmp_path / "state-ours")
    yield driver
    driver.cleanup()


@pytest.fixture
def runc(tmp_path: Path) -> Iterator[Driver]:
    driver = Driver(["runc"], tmp_path / "state-runc")
    yield driver
    driver.cleanup()


@pytest.fixture
def default_spec() -> callable:
    """Slipway's default profile as a bundle config, with a cgroup path of its own."""
    from simulator.runtime.defaults import container_spec

    def make(args: list[str], **kwargs) -> dict:
        kwargs.setdefault("cgroups_path", f"/slipway-test/{uuid.uuid4().hex[:10]}")
        return container_spec(args, **kwargs)

    return make


@pytest.fixture(scope="session", autouse=True)
def _remove_test_cgroup_parents() -> Iterator[None]:
    yield
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        parent = hierarchy / "slipway-test"
        if parent.is_dir():
            try:
                parent.rmdir()
            except OSError:
                pass
