"""The same bundle, run under runc and under our runtime, looks the same from inside."""

from __future__ import annotations

import copy
import os
import pty
import select
import time

import pytest

MASKED = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]

# Prints what parity compares, one fact per line.
PROBE = (
    "grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status; "
    "cut -d' ' -f5 /proc/self/mountinfo | sort | sed 's/^/mount /'; "
    'echo "hostname $(hostname)"; '
    'echo "ids $(id -u) $(id -g)"; '
    f"for p in {' '.join(MASKED)}; do "
    '  if [ -d "$p" ]; then echo "masked $p $(ls -A $p | wc -l) entries"; '
    '  elif [ -e "$p" ]; then echo "masked $p $(cat $p 2>/dev/null | wc -c) bytes"; fi; '
    "done; "
    'echo "pid1 $(tr "\\0" " " < /proc/1/cmdline)"; '
    'echo "shell pid $$"'
)


def _facts(output: str) -> list[str]:
    return sorted(line.rstrip() for line in output.splitlines() if line.strip())


def _run_both(runtime, runc, make_bundle, config: dict) -> tuple[list[str], list[str]]:
    bundle = make_bundle(config)
    ours = runtime("run", runtime.new_id(), "--bundle", str(bundle))
    theirs = runc("run", runc.new_id(), "--bundle", str(bundle))
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    return _facts(ours.stdout), _facts(theirs.stdout)


def test_plain_runc_spec_bundle_looks_the_same_under_both(
    runtime, runc, make_bundle, runc_spec_template
):
    config = copy.deepcopy(runc_spec_template)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", PROBE]
    ours, theirs = _run_both(runtime, runc, make_bundle, config)
    assert ours == theirs
    assert "Seccomp:\t0" in ours
    assert "NoNewPrivs:\t1" in ours
    assert "shell pid 1" in ours
    assert "mount /sys/fs/cgroup/memory" in ours
    assert "hostname runc" in ours


def test_default_profile_bundle_looks_the_same_under_both(runtime, runc, make_bundle, default_spec):
    config = default_spec(
        ["sh", "-c", PROBE],
        hostname="parity",
        memory_limit=256 << 20,
        pids_limit=100,
        cpu_quota=50000,
        cpu_period=100000,
    )
    # Each runtime gets a cgroup of its own.
    ours_config = config
    theirs_config = copy.deepcopy(config)
    theirs_config["linux"]["cgroupsPath"] += "-runc"
    ours_bundle = make_bundle(ours_config)
    theirs_bundle = make_bundle(theirs_config)
    ours = runtime("run", runtime.new_id(), "--bundle", str(ours_bundle))
    theirs = runc("run", runc.new_id(), "--bundle", str(theirs_bundle))
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert _facts(ours.stdout) == _facts(theirs.stdout)
    facts = _facts(ours.stdout)
    assert "Seccomp:\t2" in facts
    assert "CapBnd:\t00000000a80425fb" in facts  # Docker's 14 capabilities
    assert "masked /proc/keys 0 bytes" in facts
    assert "masked /sys/firmware 0 entries" in facts


def _run_in_pty(
    argv: list[str], cwd: str, keystrokes: bytes, timeout: float = 30
) -> tuple[bytes, int]:
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - the child execs
        os.chdir(cwd)
        os.execvp(argv[0], argv)
    output = b""
    try:
        # Wait for the shell's prompt before typing, as a person would.
        deadline = time.monotonic() + timeout
        typed = False
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if master in ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            if not typed and b"# " in output:
                os.write(master, keystrokes)
                typed = True
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    return output, os.waitstatus_to_exitcode(status)


@pytest.mark.timeout(120)
def test_unchanged_runc_spec_bundle_runs_with_runc_output_and_exit_code(
    runtime, runc, make_bundle, runc_spec_template
):
    bundle = make_bundle(runc_spec_template)  # terminal: true, args: ["sh"], exactly as written
    keys = b"echo hello from $(hostname)\nexit 3\n"
    ours, ours_code = _run_in_pty(runtime.argv("run", runtime.new_id()), str(bundle), keys)
    theirs, theirs_code = _run_in_pty(runc.argv("run", runc.new_id()), str(bundle), keys)
    assert theirs_code == 3, theirs
    assert ours_code == 3, ours
    assert b"hello from runc" in ours
    assert ours == theirs
