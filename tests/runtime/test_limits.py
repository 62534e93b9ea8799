"""cgroup limits hold: pids, memory (with OOM reported as Docker does), and CPU quota."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from simulator.runtime.cgroups import CgroupLayout, CgroupManager


def _cgroup_dir(config: dict, controller: str) -> Path:
    layout = CgroupLayout.detect()
    manager = CgroupManager(layout, config["linux"]["cgroupsPath"], "unused")
    directory = manager.dir_for(controller)
    assert directory is not None
    return Path(directory)


def _start(runtime, make_bundle, config: dict) -> str:
    bundle = make_bundle(config)
    container_id = runtime.new_id()
    created = runtime("create", container_id, "--bundle", str(bundle))
    assert created.returncode == 0, created.stderr
    started = runtime("start", container_id)
    assert started.returncode == 0, started.stderr
    return container_id


@pytest.mark.timeout(120)
def test_fork_bomb_stops_at_pids_max_while_the_host_still_forks(runtime, make_bundle, default_spec):
    bomb = "bomb() { bomb | bomb & }; bomb; sleep 30"
    config = default_spec(["sh", "-c", bomb], pids_limit=40)
    container_id = _start(runtime, make_bundle, config)
    pids = _cgroup_dir(config, "pids")
    deadline = time.monotonic() + 20
    refused = 0
    peak = 0
    while time.monotonic() < deadline:
        peak = max(peak, int((pids / "pids.current").read_text()))
        # pids.events counts the forks the limit refused.
        refused = int((pids / "pids.events").read_text().split()[1])
        if refused >= 10:
            break
        time.sleep(0.05)
    assert (pids / "pids.max").read_text().strip() == "40"
    assert refused >= 10
    assert 0 < peak <= 40
    # The host is unaffected: it can still fork and exec.
    assert subprocess.run(["true"]).returncode == 0
    assert runtime("delete", "--force", container_id).returncode == 0


@pytest.mark.timeout(120)
def test_allocating_twice_the_memory_limit_is_oom_killed_and_reported(
    runtime, make_bundle, default_spec
):
    config = default_spec(["probe", "alloc", "64"], memory_limit=32 << 20)
    container_id = _start(runtime, make_bundle, config)
    state = runtime.wait_status(container_id, "stopped")
    assert state["status"] == "stopped"
    assert state["exitStatus"] == 137
    assert state["oomKilled"] is True
    steps = runtime("steps", container_id).stdout
    assert "OOM killer" in steps


@pytest.mark.timeout(120)
def test_allocating_within_the_limit_is_not_reported_as_oom(runtime, make_bundle, default_spec):
    config = default_spec(["probe", "alloc", "8"], memory_limit=64 << 20)
    container_id = _start(runtime, make_bundle, config)
    state = runtime.wait_status(container_id, "stopped")
    assert state["exitStatus"] == 0
    assert state["oomKilled"] is False


@pytest.mark.timeout(120)
def test_cpu_quota_shows_as_throttling_in_cpu_stat(runtime, make_bundle, default_spec):
    config = default_spec(["sh", "-c", "while :; do :; done"], cpu_quota=10000, cpu_period=100000)
    container_id = _start(runtime, make_bundle, config)
    cpu = _cgroup_dir(config, "cpu")
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "10000"
    deadline = time.monotonic() + 10
    stats: dict[str, int] = {}
    while time.monotonic() < deadline:
        stats = dict(
            (key, int(value))
            for key, value in (line.split() for line in (cpu / "cpu.stat").read_text().splitlines())
        )
        if stats.get("nr_throttled", 0) >= 3:
            break
        time.sleep(0.1)
    assert stats["nr_throttled"] >= 3
    assert stats["throttled_time"] > 0
    assert runtime("delete", "--force", container_id).returncode == 0
