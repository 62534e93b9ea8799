"""cgroup layout detection and the v2 code path, over directories laid out like cgroupfs.

This host can only run cgroup v1 for memory, cpu and pids, so the v2 writes are checked
here against a fake tree: the files the manager writes, and what it writes into them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.runtime.cgroups import CgroupLayout, CgroupManager, own_cgroups, shares_to_weight

HYBRID_MOUNTINFO = """\
25 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
"""


def test_hybrid_layout_puts_controllers_where_they_are_mounted():
    layout = CgroupLayout.parse(HYBRID_MOUNTINFO, read_controllers=lambda _: "hugetlb\n")
    assert layout.mode == "hybrid"
    assert layout.v1_for("cpuacct").mountpoint == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.v1_for("name=systemd").controllers == ("name=systemd",)
    assert layout.version_of("memory") == 1
    assert layout.version_of("hugetlb") == 2
    assert layout.version_of("io") is None


def test_this_hosts_layout_is_detected():
    layout = CgroupLayout.detect()
    assert layout.mode in ("v1", "v2", "hybrid")
    for controller in ("memory", "cpu", "pids"):
        assert layout.version_of(controller) in (1, 2)


@pytest.fixture
def fake_v2(tmp_path: Path) -> tuple[CgroupLayout, Path]:
    root = tmp_path / "cgroup2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    (root / "cgroup.subtree_control").write_text("")
    mountinfo = f"40 1 0:35 / {root} rw,nosuid - cgroup2 cgroup2 rw\n"
    return CgroupLayout.parse(mountinfo), root


def test_v2_limits_are_written_in_v2_terms(fake_v2):
    layout, root = fake_v2
    steps: list[str] = []
    manager = CgroupManager(
        layout, "/slipway/c1", "c1", step=lambda kind, text: steps.append(text), own={"": "/"}
    )
    manager.create(
        {
            "memory": {"limit": 64 << 20, "swap": 128 << 20},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
            "pids": {"limit": 100},
            "devices": [{"allow": False, "access": "rwm"}],
        }
    )
    leaf = root / "slipway" / "c1"
    assert layout.mode == "v2"
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (root / "slipway" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (leaf / "memory.max").read_text() == str(64 << 20)
    assert (leaf / "memory.swap.max").read_text() == str(64 << 20)
    assert (leaf / "cpu.weight").read_text() == "39"
    assert (leaf / "cpu.max").read_text() == "50000 100000"
    assert (leaf / "pids.max").read_text() == "100"
    assert any("eBPF" in s for s in steps)  # device rules are not silently dropped
    manager.join(1234)
    assert (leaf / "cgroup.procs").read_text() == "1234"


def test_v2_unlimited_values_are_written_as_max(fake_v2):
    layout, root = fake_v2
    manager = CgroupManager(layout, "c2", "c2", own={"": "/user.slice"})
    manager.create(
        {"memory": {"limit": -1}, "cpu": {"quota": -1, "period": 100000}, "pids": {"limit": 0}}
    )
    leaf = root / "user.slice" / "c2"  # a relative path sits under the caller's own cgroup
    assert (leaf / "memory.max").read_text() == "max"
    assert (leaf / "cpu.max").read_text() == "max 100000"
    assert (leaf / "pids.max").read_text() == "max"


def test_v2_oom_kills_and_freezing_are_read_from_v2_files(fake_v2):
    layout, root = fake_v2
    manager = CgroupManager(layout, "/c3", "c3", own={"": "/"})
    manager.create({})
    leaf = root / "c3"
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert manager.oom_killed() is True
    manager.freeze(True)
    assert (leaf / "cgroup.freeze").read_text() == "1"
    assert manager.frozen() is True


def test_v1_paths_follow_runc_absolute_relative_and_default():
    layout = CgroupLayout.parse(HYBRID_MOUNTINFO, read_controllers=lambda _: "")
    own = own_cgroups(
        "4:memory:/process_api/abc\n3:pids:/\n2:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n"
    )
    absolute = CgroupManager(layout, "/slipway/x", "x", own=own)
    assert absolute.dir_for("memory") == "/sys/fs/cgroup/memory/slipway/x"
    default = CgroupManager(layout, "", "ctr", own=own)
    assert default.dir_for("memory") == "/sys/fs/cgroup/memory/process_api/abc/ctr"
    assert default.dir_for("cpuacct") == "/sys/fs/cgroup/cpu,cpuacct/ctr"


def test_cpu_shares_convert_to_weight_across_the_range():
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert shares_to_weight(1024) == 39
