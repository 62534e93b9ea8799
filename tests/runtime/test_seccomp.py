"""The default seccomp profile compiles, is cached, and refuses what it must."""

from __future__ import annotations

from simulator.runtime import defaults
from simulator.runtime.seccomp import cache_key, compile_bpf, program_for


def test_default_profile_compiles_to_bpf_and_is_cached(tmp_path):
    section = defaults.seccomp_profile()
    program = program_for(section, str(tmp_path))
    assert len(program) % 8 == 0 and len(program) > 8
    cached = tmp_path / f"{cache_key(section)}.bpf"
    assert cached.read_bytes() == program
    cached.write_bytes(b"\0" * 8)
    assert program_for(section, str(tmp_path)) == b"\0" * 8  # the cache is what gets loaded


def test_allowlist_leaves_out_the_dangerous_calls():
    allowed = {name for group in defaults.ALLOWED_SYSCALLS.values() for name in group.split()}
    for refused in (
        "mount", "umount2", "pivot_root", "setns", "keyctl", "add_key", "request_key", "bpf",
        "perf_event_open", "kexec_load", "kexec_file_load", "init_module", "finit_module",
        "delete_module", "open_by_handle_at", "userfaultfd", "io_uring_setup", "io_uring_enter",
        "io_uring_register", "swapon", "swapoff", "acct", "settimeofday", "clock_settime",
        "reboot",
    ):  # fmt: skip
        assert refused not in allowed, refused


def test_unknown_syscall_names_are_skipped_as_runc_does():
    section = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read", "not_a_syscall"], "action": "SCMP_ACT_ALLOW"}],
    }
    assert len(compile_bpf(section)) > 0
