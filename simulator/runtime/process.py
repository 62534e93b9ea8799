"""The last steps before a container's program runs: rlimits, user, capabilities,
no_new_privs, seccomp, working directory, and execve. Shared by init and exec."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable

from simulator import linux
from simulator.runtime import capabilities as caps

StepFn = Callable[[str, str], None]


class ProcessError(Exception):
    """The container's process could not be set up; the message is for the user."""


def apply_rlimits(process: dict, step: StepFn) -> None:
    """Set the spec's rlimits, clamped to the current hard limits (never raised)."""
    for rl in process.get("rlimits") or []:
        number = getattr(resource, rl["type"], None)
        if number is None:
            continue
        _, hard_now = resource.getrlimit(number)
        hard, soft = rl["hard"], rl["soft"]
        if hard_now != resource.RLIM_INFINITY and (hard < 0 or hard > hard_now):
            hard = hard_now
        soft = min(soft, hard) if hard >= 0 else soft
        resource.setrlimit(number, (soft, hard))
        step("rlimit", f"{rl['type']} soft={soft} hard={hard}")


def lookup(args: list[str], env: list[str], cwd: str) -> str:
    """Find args[0] as execve would under the container's PATH."""
    name = args[0]
    if "/" in name:
        path = name if name.startswith("/") else os.path.join(cwd, name)
        if not os.path.exists(path):
            raise ProcessError(f'exec: "{name}": stat {name}: no such file or directory')
        return path
    search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for item in env:
        if item.startswith("PATH="):
            search = item[5:]
    for directory in search.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise ProcessError(f'exec: "{name}": executable file not found in $PATH')


def drop_privileges(process: dict, step: StepFn) -> None:
    """Bounding set, then user and groups, then the other capability sets (runc's order)."""
    capset = process.get("capabilities") or {}
    bounding = caps.to_mask(capset.get("bounding") or [])
    last = caps.last_cap()
    for number in range(last + 1):
        if not bounding >> number & 1:
            linux.prctl(linux.PR_CAPBSET_DROP, number)
    linux.prctl(linux.PR_SET_KEEPCAPS, 1)
    user = process["user"]
    uid, gid = user["uid"], user["gid"]
    groups = user.get("additionalGids") or []
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    linux.prctl(linux.PR_SET_KEEPCAPS, 0)
    effective = caps.to_mask(capset.get("effective") or [])
    permitted = caps.to_mask(capset.get("permitted") or [])
    inheritable = caps.to_mask(capset.get("inheritable") or [])
    linux.capset(effective, permitted, inheritable)
    kept = [n for n in capset.get("ambient") or [] if _raise_ambient(n)]
    step(
        "capabilities",
        f"uid={uid} gid={gid} groups={groups or 'none'}; kept "
        + (", ".join(caps.to_names(bounding)) or "no capabilities")
        + (f"; ambient {', '.join(kept)}" if kept else ""),
    )


def _raise_ambient(name: str) -> bool:
    number = caps.CAP_NUMBERS[caps.normalise(name)]
    try:
        linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, number)
    except OSError:
        return False  # not in permitted and inheritable: runc ignores it too
    return True


def set_no_new_privs(step: StepFn) -> None:
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    step("no_new_privs", "set no_new_privs: setuid binaries can't gain privileges")


def load_seccomp(program: bytes | None, step: StepFn) -> None:
    if program:
        step("seccomp", f"loaded a seccomp filter of {len(program) // 8} BPF instructions")
        linux.load_seccomp_bpf(program)


def close_other_fds(keep: tuple[int, ...] = (0, 1, 2)) -> None:
    """Close every descriptor above 2 except ``keep``, so nothing leaks into the container."""
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd not in keep:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def exec_program(path: str, args: list[str], env: list[str]) -> None:
    environ = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    os.execve(path, args, environ)
