"""Escape probes fail inside a container that carries the default profile."""

from __future__ import annotations


def _probe(runtime, make_bundle, default_spec, *args: str) -> dict[str, str]:
    bundle = make_bundle(default_spec(["probe", *args]))
    result = runtime("run", runtime.new_id(), "--bundle", str(bundle))
    assert result.returncode == 0, result.stderr
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


def test_escape_probes_are_refused_under_the_default_profile(runtime, make_bundle, default_spec):
    outcome = _probe(runtime, make_bundle, default_spec, "escapes")
    assert outcome["mount"] == "EPERM"
    assert outcome["init_module"] == "EPERM"
    assert outcome["finit_module"] == "EPERM"
    # /proc/sys is mounted read-only.
    assert outcome["core_pattern"] == "EROFS"
    # mknod of a block device is allowed (as in Docker) but opening it is not.
    assert outcome["mknod_block"] == "ok"
    assert outcome["open_block"] == "EPERM"
    assert outcome["keyctl"] == "EPERM"
    assert outcome["add_key"] == "EPERM"
    assert outcome["unshare_user"] == "EPERM"
    assert outcome["unshare_net"] == "EPERM"
    assert outcome["setns"] == "EPERM"
    assert outcome["bpf"] == "EPERM"
    assert outcome["perf_event_open"] == "EPERM"
    assert outcome["reboot"] == "EPERM"
    assert outcome["swapoff"] == "EPERM"
    # /proc/kcore is masked where the kernel has one; either way it yields no content.
    if "kcore_read" in outcome:
        assert outcome["kcore_read"] == "0"
    else:
        assert outcome["kcore_open"] == "ENOENT"


def test_clone3_answers_enosys_so_libc_falls_back_to_clone(runtime, make_bundle, default_spec):
    assert _probe(runtime, make_bundle, default_spec, "clone3")["clone3"] == "ENOSYS"


def test_the_same_probes_succeed_without_the_profile_so_the_probe_is_real(
    runtime, make_bundle, runc_spec_template
):
    # Without seccomp, device cgroup and read-only /proc/sys, the kernel lets root do these.
    config = dict(runc_spec_template)
    config["process"] = dict(config["process"], terminal=False, args=["probe", "escapes"])
    caps = ["CAP_SYS_ADMIN", "CAP_MKNOD", "CAP_DAC_OVERRIDE"]
    config["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    config["root"] = {"path": "rootfs", "readonly": False}
    config["linux"] = dict(config["linux"], readonlyPaths=[], resources={})
    bundle = make_bundle(config)
    result = runtime("run", runtime.new_id(), "--bundle", str(bundle))
    assert result.returncode == 0, result.stderr
    outcome = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert outcome["mount"] == "ok"
    assert outcome["open_block"] in ("ok", "ENXIO", "ENODEV")  # allowed: no such disk is fine
    assert outcome["unshare_net"] == "ok"
