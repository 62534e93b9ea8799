"""Load an OCI bundle's config.json and check it, naming the field at fault.

The runtime acts only on a spec that passed these checks, so a bad bundle fails before
anything touches the kernel.
"""

from __future__ import annotations

import json
import os

from simulator.runtime.capabilities import CAP_NUMBERS, normalise

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup")
RLIMIT_TYPES = (
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
)


class SpecError(ValueError):
    """A config.json that the runtime refuses; the message names the field."""


_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    list: "a list",
    dict: "an object",
}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _expect(value: object, kind: type, where: str) -> object:
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise SpecError(f"{where}: expected {_TYPE_NAMES[kind]}, got {_kind(value)}")
    return value


def _optional(obj: dict, key: str, kind: type, where: str) -> object:
    if key not in obj or obj[key] is None:
        return None
    return _expect(obj[key], kind, f"{where}.{key}" if where else key)


def _required(obj: dict, key: str, kind: type, where: str) -> object:
    path = f"{where}.{key}" if where else key
    if key not in obj:
        raise SpecError(f"{path}: required field is missing")
    return _expect(obj[key], kind, path)


def _string_list(obj: dict, key: str, where: str) -> list[str]:
    items = _optional(obj, key, list, where) or []
    for i, item in enumerate(items):
        _expect(item, str, f"{where}.{key}[{i}]" if where else f"{key}[{i}]")
    return items


def load(bundle: str) -> dict:
    """Read ``bundle/config.json`` and return the checked spec, or raise SpecError."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file: the bundle has no config.json") from None
    except OSError as e:
        raise SpecError(f"{path}: {e.strerror}") from None
    try:
        spec = json.loads(raw)
    except ValueError as e:
        raise SpecError(f"config.json is not valid JSON: {e}") from None
    check(spec)
    return spec


def check(spec: object) -> None:
    """Raise SpecError for the first field of ``spec`` that is missing or of the wrong type."""
    _expect(spec, dict, "config.json")
    _required(spec, "ociVersion", str, "")
    root = _required(spec, "root", dict, "")
    _required(root, "path", str, "root")
    _optional(root, "readonly", bool, "root")
    _optional(spec, "hostname", str, "")
    annotations = _optional(spec, "annotations", dict, "") or {}
    for key, value in annotations.items():
        _expect(value, str, f"annotations[{key!r}]")
    _check_process(_required(spec, "process", dict, ""))
    for i, mount in enumerate(_optional(spec, "mounts", list, "") or []):
        where = f"mounts[{i}]"
        _expect(mount, dict, where)
        dest = _required(mount, "destination", str, where)
        if not dest.startswith("/"):
            raise SpecError(f"{where}.destination: {dest!r} is not an absolute path")
        _optional(mount, "type", str, where)
        _optional(mount, "source", str, where)
        _string_list(mount, "options", where)
    linux = _optional(spec, "linux", dict, "")
    if linux is not None:
        _check_linux(linux)


def _check_process(process: dict) -> None:
    where = "process"
    args = _string_list(process, "args", where)
    if not args:
        raise SpecError("process.args: required field is missing or empty")
    cwd = _required(process, "cwd", str, where)
    if not cwd.startswith("/"):
        raise SpecError(f"process.cwd: {cwd!r} is not an absolute path")
    _string_list(process, "env", where)
    _optional(process, "terminal", bool, where)
    _optional(process, "noNewPrivileges", bool, where)
    size = _optional(process, "consoleSize", dict, where)
    if size is not None:
        _required(size, "height", int, "process.consoleSize")
        _required(size, "width", int, "process.consoleSize")
    user = _required(process, "user", dict, where)
    _required(user, "uid", int, "process.user")
    _required(user, "gid", int, "process.user")
    gids = _optional(user, "additionalGids", list, "process.user") or []
    for i, gid in enumerate(gids):
        _expect(gid, int, f"process.user.additionalGids[{i}]")
    caps = _optional(process, "capabilities", dict, where) or {}
    for kind in ("bounding", "effective", "inheritable", "permitted", "ambient"):
        for name in _string_list(caps, kind, "process.capabilities"):
            if normalise(name) not in CAP_NUMBERS:
                raise SpecError(f"process.capabilities.{kind}: unknown capability {name!r}")
    for i, rlimit in enumerate(_optional(process, "rlimits", list, where) or []):
        rwhere = f"process.rlimits[{i}]"
        _expect(rlimit, dict, rwhere)
        kind = _required(rlimit, "type", str, rwhere)
        if kind not in RLIMIT_TYPES:
            raise SpecError(f"{rwhere}.type: unknown rlimit {kind!r}")
        _required(rlimit, "hard", int, rwhere)
        _required(rlimit, "soft", int, rwhere)


def _check_linux(linux: dict) -> None:
    seen: set[str] = set()
    for i, ns in enumerate(_optional(linux, "namespaces", list, "linux") or []):
        where = f"linux.namespaces[{i}]"
        _expect(ns, dict, where)
        kind = _required(ns, "type", str, where)
        if kind not in NAMESPACE_TYPES:
            raise SpecError(f"{where}.type: unknown namespace type {kind!r}")
        if kind in seen:
            raise SpecError(f"{where}.type: namespace {kind!r} is listed twice")
        seen.add(kind)
        _optional(ns, "path", str, where)
    for key in ("uidMappings", "gidMappings"):
        for i, mapping in enumerate(_optional(linux, key, list, "linux") or []):
            where = f"linux.{key}[{i}]"
            _expect(mapping, dict, where)
            for field in ("containerID", "hostID", "size"):
                _required(mapping, field, int, where)
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in seen:
        raise SpecError("linux.uidMappings: mappings need a user namespace in linux.namespaces")
    _optional(linux, "cgroupsPath", str, "linux")
    _string_list(linux, "maskedPaths", "linux")
    _string_list(linux, "readonlyPaths", "linux")
    sysctl = _optional(linux, "sysctl", dict, "linux") or {}
    for key, value in sysctl.items():
        _expect(value, str, f"linux.sysctl[{key!r}]")
    for i, dev in enumerate(_optional(linux, "devices", list, "linux") or []):
        where = f"linux.devices[{i}]"
        _expect(dev, dict, where)
        _required(dev, "path", str, where)
        kind = _required(dev, "type", str, where)
        if kind not in ("c", "b", "u", "p"):
            raise SpecError(f"{where}.type: unknown device type {kind!r}")
        if kind != "p":
            _required(dev, "major", int, where)
            _required(dev, "minor", int, where)
        for field in ("fileMode", "uid", "gid"):
            _optional(dev, field, int, where)
    resources = _optional(linux, "resources", dict, "linux")
    if resources is not None:
        _check_resources(resources)
    seccomp = _optional(linux, "seccomp", dict, "linux")
    if seccomp is not None:
        _check_seccomp(seccomp)


def _check_resources(res: dict) -> None:
    where = "linux.resources"
    memory = _optional(res, "memory", dict, where) or {}
    for key in ("limit", "reservation", "swap"):
        _optional(memory, key, int, f"{where}.memory")
    cpu = _optional(res, "cpu", dict, where) or {}
    for key in ("shares", "quota", "period"):
        _optional(cpu, key, int, f"{where}.cpu")
    _optional(cpu, "cpus", str, f"{where}.cpu")
    _optional(cpu, "mems", str, f"{where}.cpu")
    pids = _optional(res, "pids", dict, where) or {}
    _optional(pids, "limit", int, f"{where}.pids")
    for i, rule in enumerate(_optional(res, "devices", list, where) or []):
        rwhere = f"{where}.devices[{i}]"
        _expect(rule, dict, rwhere)
        _required(rule, "allow", bool, rwhere)
        kind = _optional(rule, "type", str, rwhere)
        if kind is not None and kind not in ("a", "c", "b"):
            raise SpecError(f"{rwhere}.type: unknown device type {kind!r}")
        for key in ("major", "minor"):
            _optional(rule, key, int, rwhere)
        access = _optional(rule, "access", str, rwhere)
        if access is not None and (not access or set(access) - set("rwm")):
            raise SpecError(f"{rwhere}.access: {access!r} is not a combination of r, w and m")


def _check_seccomp(seccomp: dict) -> None:
    where = "linux.seccomp"
    _required(seccomp, "defaultAction", str, where)
    _string_list(seccomp, "architectures", where)
    for i, rule in enumerate(_optional(seccomp, "syscalls", list, where) or []):
        rwhere = f"{where}.syscalls[{i}]"
        _expect(rule, dict, rwhere)
        if not _string_list(rule, "names", rwhere):
            raise SpecError(f"{rwhere}.names: required field is missing or empty")
        _required(rule, "action", str, rwhere)
        _optional(rule, "errnoRet", int, rwhere)
        for j, arg in enumerate(_optional(rule, "args", list, rwhere) or []):
            awhere = f"{rwhere}.args[{j}]"
            _expect(arg, dict, awhere)
            _required(arg, "index", int, awhere)
            _required(arg, "value", int, awhere)
            _optional(arg, "valueTwo", int, awhere)
            _required(arg, "op", str, awhere)
