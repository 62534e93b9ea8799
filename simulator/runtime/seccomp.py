"""Compile an OCI ``linux.seccomp`` section to a BPF program with libseccomp, and cache it.

Compiling needs pyseccomp (libseccomp); loading needs only the cached bytes, so a container
start with a known profile never imports libseccomp.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os

CACHE_VERSION = "1"

_ARCHES = {
    "SCMP_ARCH_X86": "X86",
    "SCMP_ARCH_X86_64": "X86_64",
    "SCMP_ARCH_X32": "X32",
    "SCMP_ARCH_ARM": "ARM",
    "SCMP_ARCH_AARCH64": "AARCH64",
}
_OPS = {
    "SCMP_CMP_NE": "NE",
    "SCMP_CMP_LT": "LT",
    "SCMP_CMP_LE": "LE",
    "SCMP_CMP_EQ": "EQ",
    "SCMP_CMP_GE": "GE",
    "SCMP_CMP_GT": "GT",
    "SCMP_CMP_MASKED_EQ": "MASKED_EQ",
}


class SeccompError(ValueError):
    """A seccomp section that cannot be compiled."""


def cache_key(section: dict) -> str:
    """A digest naming the compiled program for ``section`` on this machine."""
    blob = json.dumps(section, sort_keys=True, separators=(",", ":"))
    uname = os.uname()
    material = f"{CACHE_VERSION}\0{uname.machine}\0{blob}"
    return hashlib.sha256(material.encode()).hexdigest()


def _action(sc, name: str, errno_ret: int | None, where: str) -> int:  # noqa: ANN001
    if name == "SCMP_ACT_ALLOW":
        return sc.ALLOW
    if name == "SCMP_ACT_ERRNO":
        return sc.ERRNO(errno.EPERM if errno_ret is None else errno_ret)
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return sc.KILL
    if name == "SCMP_ACT_KILL_PROCESS":
        return sc.KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return sc.TRAP
    if name == "SCMP_ACT_LOG":
        return sc.LOG
    if name == "SCMP_ACT_TRACE":
        return sc.TRACE(errno.EPERM if errno_ret is None else errno_ret)
    raise SeccompError(f"{where}: unknown seccomp action {name!r}")


def compile_bpf(section: dict) -> bytes:
    """Compile ``section`` (OCI linux.seccomp) to classic BPF for this machine."""
    import tempfile

    import pyseccomp as sc

    default = _action(
        sc, section["defaultAction"], section.get("defaultErrnoRet"), "linux.seccomp.defaultAction"
    )
    filt = sc.SyscallFilter(default)
    native = sc.system_arch()
    for arch_name in section.get("architectures") or []:
        attr = _ARCHES.get(arch_name)
        if attr is None:
            raise SeccompError(f"linux.seccomp.architectures: unknown architecture {arch_name!r}")
        arch = getattr(sc.Arch, attr)
        if arch != native:
            try:
                filt.add_arch(arch)
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise
    for i, rule in enumerate(section.get("syscalls") or []):
        where = f"linux.seccomp.syscalls[{i}]"
        action = _action(sc, rule["action"], rule.get("errnoRet"), where + ".action")
        if action == default:
            continue
        args = []
        for arg in rule.get("args") or []:
            op = _OPS.get(arg["op"])
            if op is None:
                raise SeccompError(f"{where}.args: unknown comparison {arg['op']!r}")
            args.append(sc.Arg(arg["index"], getattr(sc, op), arg["value"], arg.get("valueTwo", 0)))
        # Several conditions on the same argument can't be ANDed by libseccomp: add them
        # as separate rules (an OR), as runc does.
        indexes = [a["index"] for a in rule.get("args") or []]
        groups = [[a] for a in args] if len(set(indexes)) < len(indexes) else [args]
        for name in rule["names"]:
            try:
                number = sc.resolve_syscall(native, name)
            except Exception:  # noqa: BLE001 - libseccomp signals unknown names oddly
                number = -1
            if not isinstance(number, int) or number < 0:
                continue  # a syscall this kernel or libseccomp doesn't know: skip, as runc does
            for group in groups:
                filt.add_rule(action, name, *group)
    with tempfile.TemporaryFile() as out:
        filt.export_bpf(out)
        out.seek(0)
        return out.read()


def program_for(section: dict, cache_dir: str | None) -> bytes:
    """The BPF program for ``section``, from ``cache_dir`` when it was compiled before."""
    if not cache_dir:
        return compile_bpf(section)
    path = os.path.join(cache_dir, cache_key(section) + ".bpf")
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        pass
    program = compile_bpf(section)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(program)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    return program
