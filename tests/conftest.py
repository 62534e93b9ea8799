"""Suite-wide checks: after the whole run, no test has left a mount, cgroup, network
namespace, veth or container process behind."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class HostSnapshot:
    mounts: frozenset[str]
    cgroups: frozenset[str]
    netns: frozenset[str]
    links: frozenset[str]
    processes: frozenset[tuple[int, str]]

    def leaks_since(self, before: HostSnapshot) -> dict[str, list]:
        found = {
            "mounts": sorted(self.mounts - before.mounts),
            "cgroups": sorted(self.cgroups - before.cgroups),
            "network namespaces": sorted(self.netns - before.netns),
            "network links": sorted(self.links - before.links),
            "processes": sorted(self.processes - before.processes),
        }
        return {k: v for k, v in found.items() if v}


def _mounts() -> frozenset[str]:
    with open("/proc/self/mountinfo") as f:
        return frozenset(line.split()[4] for line in f)


def _cgroups() -> frozenset[str]:
    """Cgroups that Slipway or its tests made: their paths name slipway (the host makes and
    removes cgroups of its own all the time)."""
    found = set()
    base = "/sys/fs/cgroup"
    for hierarchy in os.listdir(base):
        top = os.path.join(base, hierarchy)
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in os.walk(top):
            if "slipway" in dirpath:
                found.add(dirpath)
    return frozenset(found)


def _netns() -> frozenset[str]:
    names = set()
    try:
        names.update("/run/netns/" + n for n in os.listdir("/run/netns"))
    except FileNotFoundError:
        pass
    return frozenset(names)


def _links() -> frozenset[str]:
    return frozenset(os.listdir("/sys/class/net"))


def _processes(marker: str) -> frozenset[tuple[int, str]]:
    """Processes the tests started: commands that name ``marker`` (this run's temporary
    directory), and container processes in a test cgroup (named slipway-test)."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{pid}/cgroup") as f:
                cgroups = f.read()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if not cmdline:
            continue  # kernel threads and zombies
        if "slipway-test" in cgroups or marker in cmdline:
            found.add((pid, cmdline))
    return frozenset(found)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires_tool(name): the test runs NAME; a missing tool fails the test, since "
        "`make test` installs every tool the suite needs",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("requires_tool"):
        for tool in marker.args:
            if shutil.which(tool) is None:
                pytest.fail(
                    f"{tool} is not installed: `make test` installs it "
                    "(scripts/apt-packages.txt); a missing tool must not pass as a skip",
                    pytrace=False,
                )


def host_snapshot(marker: str = "/pytest-of-") -> HostSnapshot:
    """What the host holds now; ``marker`` picks out the processes that count."""
    return HostSnapshot(_mounts(), _cgroups(), _netns(), _links(), _processes(marker))


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the run if the suite as a whole leaked host resources."""
    if os.geteuid() != 0:
        yield
        return
    marker = str(tmp_path_factory.getbasetemp())
    before = host_snapshot(marker)
    yield
    leaks = host_snapshot(marker).leaks_since(before)
    if leaks:
        pytest.fail(f"the test suite left these behind: {leaks}", pytrace=False)
