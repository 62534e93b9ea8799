"""The container commands, top-level and under ``docker container``: run, create, start, stop,
restart, kill, pause, unpause, rm, ps, logs, inspect, top, rename, port, wait, attach, exec,
cp, export and prune, plus the top-level ``docker inspect`` of any object.

``run`` and ``create`` turn their flags into the create request exactly as Docker's CLI does
(its containerOptions → Config, HostConfig and NetworkingConfig), with the same checks and
messages. Several targets are handled the Docker way: each success printed as the user typed
it, the errors after, and status 1 at the end.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import ipaddress
import json
import os
import re
import signal
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, BinaryIO

from simulator.cli import terminal
from simulator.cli.client import DaemonError, Hijacked, demultiplex
from simulator.cli.commands.images import (
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    confirm,
    filters_param,
    go_value,
    os_error_text,
    output_problem,
    parse_filters,
    prune_filters,
    with_command,
    write_inspect,
    write_inspected,
)
from simulator.cli.flags import (
    NO_ARGS,
    Args,
    Command,
    Context,
    Flag,
    Options,
    StatusError,
)
from simulator.cli.formatting import (
    PS_QUIET_FORMAT_WARNING,
    FormatError,
    container_list_wants_size,
    format_containers,
    natural_sort_key,
)
from simulator.cli.progress import (
    ProgressError,
    ReferenceError,
    load_config,
    parse_reference,
    pull_image,
)
from simulator.cli.table import align_columns
from simulator.cli.template import GoStruct, TemplateError, go_json, go_quote, parse
from simulator.cli.units import human_size, human_size_with_precision

PULL_ALWAYS, PULL_MISSING, PULL_NEVER = "always", "missing", "never"
PROXIED_SIGNALS = (
    signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGTERM, signal.SIGALRM,
)  # fmt: skip
PRUNE_WARNING = (
    "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?"
)
PARALLEL_LIMIT = 50
NOT_A_TTY = "the input device is not a TTY"
HEX64 = re.compile(r"^[a-f0-9]{64}$")
ULIMIT_NAMES = {
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
    "rss", "rtprio", "rttime", "sigpending", "stack",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
}  # fmt: skip
NETWORK_MODES = {"default", "bridge", "host", "none"}
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_IRREGULAR = 1 << 19


# -- errors as Docker prints them ---------------------------------------------------------------


def container_path(name: str, rest: str = "") -> str:
    """The API path of a container named by the user (the client's trimID: spaces trimmed,
    an empty name refused)."""
    trimmed = name.strip()
    if not trimmed:
        raise StatusError(1, "invalid container name or ID: value is empty")
    return f"/containers/{trimmed}{rest}"


def error_text(error: Exception) -> str:
    """What Docker's CLI prints for an error: a daemon's answer behind "Error response from
    daemon: ", an error reported inside a pull's progress stream on its own."""
    if isinstance(error, ProgressError):
        return error.message
    if isinstance(error, StatusError):
        return error.message
    if isinstance(error, DaemonError):
        return f"Error response from daemon: {error.message}"
    return str(error)


def with_help(text: str, command: str) -> str:
    return f"docker: {text}\n\nRun 'docker {command} --help' for more information"


def run_status(text: str) -> int:
    """toStatusError: 127 for a command that isn't found, 126 for one that can't be run,
    125 for any other failure before the container runs."""
    if any(
        marker in text
        for marker in (
            "executable file not found",
            "no such file or directory",
            "system cannot find the file specified",
        )
    ):
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return 125


def binary(stream: Any) -> BinaryIO:
    """The binary side of a text stream (flushed first, so that output stays in order)."""
    stream.flush()
    return getattr(stream, "buffer", stream)


def file_descriptor(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def for_each(
    context: Context,
    names: list[str],
    operation: Callable[[str], None],
    parallel: bool = True,
    forgive: Callable[[DaemonError], bool] | None = None,
) -> None:
    """Docker's way with several targets: the operation on each (concurrently, as its
    parallelOperation does, unless ``parallel`` is false), each success printed as typed, and
    the errors joined at the end with status 1. ``forgive`` picks errors that are printed at
    once and don't fail the command (``rm -f`` of a missing container)."""

    def attempt(name: str) -> DaemonError | StatusError | None:
        try:
            operation(name)
        except (DaemonError, StatusError) as error:
            return error
        return None

    if parallel and len(names) > 1:
        with ThreadPoolExecutor(min(PARALLEL_LIMIT, len(names))) as pool:
            outcomes = list(pool.map(attempt, names))
    else:
        outcomes = [attempt(name) for name in names]
    errors = []
    for name, error in zip(names, outcomes, strict=True):
        if error is None:
            context.out(name)
        elif forgive is not None and isinstance(error, DaemonError) and forgive(error):
            context.err(error_text(error))
        else:
            errors.append(error_text(error))
    if errors:
        raise StatusError(1, "\n".join(errors))


def detach_keys_setting(context: Context, flag_value: str) -> str:
    """--detach-keys, else the config file's detachKeys."""
    return flag_value or str(load_config(context).get("detachKeys") or "")


def escape_proxy(context: Context, keys: str) -> terminal.EscapeProxy:
    """The watcher of typed input for the detach keys; Docker falls back to Ctrl-P Ctrl-Q
    (with a warning) when the keys given don't parse."""
    sequence = terminal.DEFAULT_DETACH_KEYS
    if keys:
        try:
            sequence = terminal.parse_detach_keys(keys)
        except ValueError as error:
            context.err(f"WARN[0000] invalid detach escape keys, using default: {error}")
    return terminal.EscapeProxy(sequence)


# -- values of flags, as Docker's opts parse and check them -------------------------------------

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds: "1h30m", "2.5s", "300ms", "0"."""
    quoted = go_quote(text)
    rest = text
    negative = False
    if rest[:1] in ("+", "-"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total = Fraction(0)
    while rest:
        number = re.match(r"(\d*)(?:\.(\d*))?", rest)
        assert number is not None
        whole, fraction = number.group(1), number.group(2)
        if not whole and not fraction:
            raise ValueError(f"time: invalid duration {quoted}")
        rest = rest[number.end() :]
        unit = re.match(r"[^\d.]*", rest).group(0)  # type: ignore[union-attr]
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _DURATION_UNITS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {quoted}")
        rest = rest[len(unit) :]
        value = Fraction(int(whole or "0"))
        if fraction:
            value += Fraction(int(fraction), 10 ** len(fraction))
        total += value * _DURATION_UNITS[unit]
    nanoseconds = int(total)
    return -nanoseconds if negative else nanoseconds


def _go_parse_float(text: str) -> float:
    try:
        if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
            raise ValueError
        return float(text)
    except ValueError:
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: invalid syntax") from None


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: "64m", "1.5g", "512k", "1024" (binary multiples)."""
    separator = max(text.rfind(ch) for ch in "0123456789. ")
    if separator == -1:
        raise ValueError(f"invalid size: '{text}'")
    if text[separator] == " ":
        number, suffix = text[:separator], text[separator + 1 :]
    else:
        number, suffix = text[: separator + 1], text[separator + 1 :]
    size = _go_parse_float(number)
    if size < 0:
        raise ValueError(f"invalid size: '{text}'")
    if not suffix:
        return int(size)
    lowered = suffix.lower()
    multipliers = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    if len(suffix) > 3:
        raise ValueError(f"invalid suffix: '{suffix}'")
    if lowered[0] == "b":
        if len(lowered) > 1:
            raise ValueError(f"invalid suffix: '{lowered}'")
        return int(size)
    if lowered[0] not in multipliers or (
        (len(lowered) == 2 and lowered[1] != "b") or (len(lowered) == 3 and lowered[1:] != "ib")
    ):
        raise ValueError(f"invalid suffix: '{lowered}'")
    return int(size * multipliers[lowered[0]])


def memory_swap(text: str) -> int:
    """--memory-swap: a size, or -1 for unlimited swap."""
    return -1 if text == "-1" else ram_in_bytes(text)


def nano_cpus(text: str) -> int:
    """--cpus as NanoCpus: "1.5" is 1500000000."""
    try:
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?\d+/\d+", text):
            raise ValueError
        value = Fraction(text) if "/" in text else Fraction(Decimal(text))
    except (ValueError, ZeroDivisionError, InvalidOperation):
        raise ValueError(f"failed to parse {text} as a rational number") from None
    nano = value * 1_000_000_000
    if nano.denominator != 1:
        raise ValueError("value is too precise")
    return int(nano)


def go_int(text: str, bits: int = 64, unsigned: bool = False) -> int:
    """strconv.ParseInt / ParseUint (base 10) with Go's messages."""
    function = "ParseUint" if unsigned else "ParseInt"
    pattern = r"\d+" if unsigned else r"[+-]?\d+"
    if not re.fullmatch(pattern, text):
        raise ValueError(f"strconv.{function}: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if not low <= value <= high:
        raise ValueError(f"strconv.{function}: parsing {go_quote(text)}: value out of range")
    return value


def env_value(text: str) -> str:
    """ValidateEnv: "KEY=value" as it is; "KEY" takes the value from our environment."""
    key, equals, _ = text.partition("=")
    if not key:
        raise ValueError(f"invalid environment variable: {text}")
    if not equals and key in os.environ:
        return f"{key}={os.environ[key]}"
    return text


def label_value(text: str) -> str:
    key = text.partition("=")[0].lstrip(" \t")
    if not key:
        raise ValueError(f"invalid label '{text}': empty name")
    if " " in key or "\t" in key:
        raise ValueError(f"label '{key}' contains whitespaces")
    return text


def ip_value(text: str) -> str:
    """ValidateIPAddress: the address in its canonical form."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError(f"IP address is not correctly formatted: {text}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def dns_search_value(text: str) -> str:
    value = text.strip(" ")
    if value == ".":
        return value
    match = re.match(
        r"^(:?(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))"
        r"(:?\.(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])))*)\.?\s*$",
        value,
    )
    if not re.search(r"[a-zA-Z]", value) or match is None or len(match.group(1)) >= 255:
        raise ValueError(f"{value} is not a valid domain")
    return match.group(1)


def extra_host_value(text: str) -> str:
    """ValidateExtraHost: "name:ip" or "name=ip" (brackets allowed around the address)."""
    name, equals, address = text.partition("=")
    if not equals:
        name, equals, address = text.partition(":")
    if not equals or not name or ":" in name:
        raise ValueError(f"bad format for add-host: {go_quote(text)}")
    if address != "host-gateway":
        if len(address) > 2 and address[0] == "[" and address[-1] == "]":
            address = address[1:-1]
        try:
            ip_value(address)
        except ValueError:
            raise ValueError(f"invalid IP address in add-host: {go_quote(address)}") from None
    return f"{name}:{address}"


def attach_value(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("stdin", "stdout", "stderr"):
        raise ValueError("valid streams are STDIN, STDOUT and STDERR")
    return lowered


def sysctl_value(text: str) -> str:
    key, equals, _ = text.partition("=")
    if equals and key and (key in SAFE_SYSCTLS or key.startswith(("net.", "fs.mqueue."))):
        return text
    raise ValueError(f"sysctl '{text}' is not allowed")


def link_value(text: str) -> str:
    if not text:
        raise ValueError("empty string specified for links")
    if text.count(":") > 1:
        raise ValueError(f"bad format for links: {text}")
    return text


def device_cgroup_rule_value(text: str) -> str:
    if not re.fullmatch(r"[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}", text):
        raise ValueError(f"invalid device cgroup format '{text}'")
    return text


def ulimit_value(text: str) -> GoStruct:
    """go-units ParseUlimit: "nofile=1024:2048" (soft[:hard])."""
    name, equals, limits = text.partition("=")
    if not equals:
        raise ValueError(f"invalid ulimit argument: {text}")
    if name not in ULIMIT_NAMES:
        raise ValueError(f"invalid ulimit type: {name}")
    values = limits.split(":")
    if len(values) > 2:
        raise ValueError(
            f"too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
        )
    soft = go_int(values[0])
    hard = go_int(values[1]) if len(values) == 2 else soft
    if hard != -1:
        if soft == -1:
            raise ValueError(
                "ulimit soft limit must be less than or equal to hard limit: "
                f"soft: -1 (unlimited), hard: {hard}"
            )
        if soft > hard:
            raise ValueError(
                f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )
    return GoStruct(Name=name, Hard=hard, Soft=soft)


def _device_path(text: str) -> tuple[str, str]:
    path, colon, value = text.partition(":")
    if not colon or not path:
        raise ValueError(f"bad format: {text}")
    if not path.startswith("/dev/"):
        raise ValueError(f"bad format for device path: {text}")
    return path, value


def weight_device_value(text: str) -> GoStruct:
    path, value = _device_path(text)
    try:
        weight = go_int(value, 16, unsigned=True)
    except ValueError:
        raise ValueError(f"invalid weight for device: {text}") from None
    if weight > 0 and not 10 <= weight <= 1000:
        raise ValueError(f"invalid weight for device: {text}")
    return GoStruct(Path=path, Weight=weight)


def throttle_bps_value(text: str) -> GoStruct:
    path, value = _device_path(text)
    try:
        rate = ram_in_bytes(value)
    except ValueError:
        rate = -1
    if rate < 0:
        raise ValueError(
            f"invalid rate for device: {text}. The correct format is "
            "<device-path>:<number>[<unit>]. Number must be a positive integer. "
            "Unit is optional and can be kb, mb, or gb"
        )
    return GoStruct(Path=path, Rate=rate)


def throttle_iops_value(text: str) -> GoStruct:
    path, value = _device_path(text)
    try:
        rate = go_int(value, unsigned=True)
    except ValueError:
        raise ValueError(
            f"invalid rate for device: {text}. The correct format is <device-path>:<number>. "
            "Number must be a positive integer"
        ) from None
    return GoStruct(Path=path, Rate=rate)


def _csv_fields(text: str) -> list[str]:
    try:
        return next(csv.reader([text]), [])
    except csv.Error as error:
        raise ValueError(str(error)) from None


def _go_bool(key: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise ValueError(f"invalid value for {key}: {text}")


def mount_value(text: str) -> GoStruct:
    """opts.MountOpt: "type=volume,src=data,dst=/data,readonly" as an API Mount."""
    mount: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] | None = None
    volume: dict[str, Any] | None = None
    tmpfs: dict[str, Any] | None = None
    image: dict[str, Any] | None = None

    def volume_options() -> dict[str, Any]:
        nonlocal volume
        if volume is None:
            volume = {"Labels": {}, "DriverConfig": {}}
        return volume

    def bind_options() -> dict[str, Any]:
        nonlocal bind
        if bind is None:
            bind = {}
        return bind

    def tmpfs_options() -> dict[str, Any]:
        nonlocal tmpfs
        if tmpfs is None:
            tmpfs = {}
        return tmpfs

    for field in _csv_fields(text):
        key, equals, value = field.partition("=")
        key = key.lower()
        if not equals:
            if key in ("readonly", "ro"):
                mount["ReadOnly"] = True
            elif key == "volume-nocopy":
                volume_options()["NoCopy"] = True
            elif key == "bind-nonrecursive":
                bind_options()["NonRecursive"] = True
            else:
                raise ValueError(f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "type":
            mount["Type"] = value.lower()
        elif key in ("source", "src"):
            mount["Source"] = value
            if not os.path.isabs(value) and value.startswith("."):
                mount["Source"] = os.path.abspath(value)
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _go_bool(key, value)
        elif key == "consistency":
            mount["Consistency"] = value.lower()
        elif key == "bind-propagation":
            bind_options()["Propagation"] = value.lower()
        elif key == "bind-nonrecursive":
            bind_options()["NonRecursive"] = _go_bool(key, value)
        elif key == "bind-recursive":
            recursive = {
                "enabled": None,
                "disabled": "NonRecursive",
                "writable": "ReadOnlyNonRecursive",
                "readonly": "ReadOnlyForceRecursive",
            }
            if value not in recursive:
                raise ValueError(
                    f"invalid value for {key}: {value} "
                    '(must "enabled", "disabled", "writable", or "readonly")'.replace(
                        "must ", "must be "
                    )
                )
            if recursive[value]:
                bind_options()[recursive[value]] = True
        elif key == "volume-subpath":
            volume_options()["Subpath"] = value
        elif key == "volume-nocopy":
            try:
                volume_options()["NoCopy"] = _go_bool(key, value)
            except ValueError:
                raise ValueError(f"invalid value for volume-nocopy: {value}") from None
        elif key == "volume-label":
            name, _, label = value.partition("=")
            if name:
                volume_options()["Labels"][name] = label
        elif key == "volume-driver":
            volume_options()["DriverConfig"]["Name"] = value
        elif key == "volume-opt":
            name, _, option = value.partition("=")
            options = volume_options()["DriverConfig"].setdefault("Options", {})
            if name:
                options[name] = option
        elif key == "image-subpath":
            image = {"Subpath": value}
        elif key == "tmpfs-size":
            try:
                tmpfs_options()["SizeBytes"] = ram_in_bytes(value)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        elif key == "tmpfs-mode":
            try:
                tmpfs_options()["Mode"] = int(value, 8)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {value}") from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    kind = mount["Type"]
    if not kind:
        raise ValueError("type is required")
    if not mount.get("Target"):
        raise ValueError("target is required")
    for options, wanted, prefix in (
        (volume, "volume", "volume"),
        (image, "image", "image"),
        (bind, "bind", "bind"),
        (tmpfs, "tmpfs", "tmpfs"),
    ):
        if options is not None and kind != wanted:
            raise ValueError(f"cannot mix '{prefix}-*' options with mount type '{kind}'")
    if bind is not None:
        if bind.get("ReadOnlyNonRecursive") and not mount.get("ReadOnly"):
            raise ValueError(
                "option 'bind-recursive=writable' requires 'readonly' to be specified in "
                "conjunction"
            )
        if bind.get("ReadOnlyForceRecursive"):
            if not mount.get("ReadOnly"):
                raise ValueError(
                    "option 'bind-recursive=readonly' requires 'readonly' to be specified in "
                    "conjunction"
                )
            if bind.get("Propagation") != "rprivate":
                raise ValueError(
                    "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to "
                    "be specified in conjunction"
                )
    result = GoStruct(Type=kind)
    for key in ("Source", "Target", "ReadOnly", "Consistency"):
        if mount.get(key):
            result[key] = mount[key]
    if bind is not None:
        order = (
            "Propagation",
            "NonRecursive",
            "CreateMountpoint",
            "ReadOnlyNonRecursive",
            "ReadOnlyForceRecursive",
        )
        result["BindOptions"] = GoStruct((k, bind[k]) for k in order if bind.get(k))
    if volume is not None:
        options = GoStruct()
        for key in ("NoCopy", "Labels", "Subpath"):
            if volume.get(key):
                options[key] = volume[key]
        driver = volume["DriverConfig"]
        options["DriverConfig"] = GoStruct(
            (k, driver[k]) for k in ("Name", "Options") if k in driver
        )
        result["VolumeOptions"] = options
    if image is not None:
        result["ImageOptions"] = GoStruct((k, v) for k, v in image.items() if v)
    if tmpfs is not None:
        result["TmpfsOptions"] = GoStruct(
            (k, tmpfs[k]) for k in ("SizeBytes", "Mode", "Options") if tmpfs.get(k)
        )
    return result


def network_value(text: str) -> dict[str, Any]:
    """opts.NetworkOpt: a network name, or "name=net,alias=a,ip=…" in the long syntax."""
    attachment: dict[str, Any] = {"Target": text}
    if not re.search(r"\w+=\w+(,\w+=\w+)*", text):
        return attachment
    attachment = {"Target": "", "Aliases": [], "LinkLocalIPs": []}
    for field in _csv_fields(text):
        key, equals, value = field.lower().partition("=")
        if not equals or not key:
            raise ValueError(f"invalid field {field}")
        key, value = key.strip(), value.strip()
        if key == "name":
            attachment["Target"] = value
        elif key == "alias":
            attachment["Aliases"].append(value)
        elif key == "ip":
            attachment["IPv4Address"] = value
        elif key == "ip6":
            attachment["IPv6Address"] = value
        elif key == "mac-address":
            attachment["MacAddress"] = value
        elif key == "link-local-ip":
            attachment["LinkLocalIPs"].append(value)
        elif key == "driver-opt":
            name, equals, option = value.partition("=")
            if not equals or not name:
                raise ValueError("invalid key value pair format in driver options")
            attachment.setdefault("DriverOpts", {})[name.strip()] = option.strip()
        elif key == "gw-priority":
            try:
                attachment["GwPriority"] = int(value)
            except ValueError:
                raise ValueError(f"invalid gw-priority ({value}): invalid syntax") from None
        else:
            raise ValueError(f"invalid field key {key}")
    if not attachment["Target"]:
        raise ValueError("network name/id is not specified")
    return attachment


def gpu_value(text: str) -> GoStruct:
    """opts.GpuOpts: "all", "2", or "count=…,device=…,capabilities=…,driver=…"."""

    def count(value: str) -> int:
        if value == "all":
            return -1
        try:
            return go_int(value)
        except ValueError:
            raise ValueError(f"invalid count ({value}): invalid syntax") from None

    request: dict[str, Any] = {"Driver": "", "Count": 0, "DeviceIDs": None}
    request.update(Capabilities=None, Options=None)
    seen: set[str] = set()
    for field in _csv_fields(text):
        key, equals, value = field.partition("=")
        if key in seen:
            raise ValueError(f"gpu request key '{key}' can be specified only once")
        seen.add(key)
        if not equals:
            seen.add("count")
            request["Count"] = count(key)
        elif key == "driver":
            request["Driver"] = value
        elif key == "count":
            request["Count"] = count(value)
        elif key == "device":
            request["DeviceIDs"] = value.split(",")
        elif key == "capabilities":
            request["Capabilities"] = [[*value.split(","), "gpu"]]
        elif key == "options":
            request["Options"] = dict(part.partition("=")[::2] for part in _csv_fields(value))
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    if "count" not in seen and request["DeviceIDs"] is None:
        request["Count"] = 1
    request["Options"] = request["Options"] or {}
    request["Capabilities"] = request["Capabilities"] or [["gpu"]]
    return GoStruct(request)


def read_kv_file(path: str, lookup: bool) -> list[str]:
    """kvfile.Parse: KEY=value lines (# comments, blank lines skipped); a bare KEY takes our
    environment's value when ``lookup`` (env files) and is dropped otherwise."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise ValueError(os_error_text("open", path, error)) from None
    lines: list[str] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            line = raw.decode("utf-8").lstrip()
        except UnicodeDecodeError:
            raise ValueError(
                f"invalid env file ({path}): invalid utf8 bytes at line {number}: "
                f"[{' '.join(str(b) for b in raw)}]"
            ) from None
        if not line or line.startswith("#"):
            continue
        key, equals, _ = line.partition("=")
        if not key:
            raise ValueError(f"invalid env file ({path}): no variable name on line '{line}'")
        if " " in key or "\t" in key:
            raise ValueError(f"invalid env file ({path}): variable '{key}' contains whitespaces")
        if equals:
            lines.append(line)
        elif lookup and line in os.environ:
            lines.append(f"{key}={os.environ[line]}")
    return lines


# -- the create request -------------------------------------------------------------------------


def _parse_port_range(text: str) -> tuple[int, int]:
    if not text:
        raise ValueError("empty string specified for ports")
    if "-" not in text:
        port = go_int(text, 16, unsigned=True)
        return port, port
    first, last = text.split("-")[:2]
    start, end = go_int(first, 16, unsigned=True), go_int(last, 16, unsigned=True)
    if end < start:
        raise ValueError(f"invalid range specified for port: {text}")
    return start, end


def _split_proto_port(text: str) -> tuple[str, str]:
    parts = text.split("/")
    if not text or not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _port_spec(raw: str) -> list[tuple[str, dict[str, str]]]:
    """nat.ParsePortSpec: "ip:host:container/proto" with ranges, as (port, binding) pairs."""
    parts = raw.split(":")
    container = parts[-1]
    if len(parts) == 1:
        ip, host = "", ""
    elif len(parts) == 2:
        ip, host = "", parts[0]
    else:
        ip, host = ":".join(parts[:-2]), parts[-2]
    proto, container = _split_proto_port(container)
    if ip.startswith("["):
        if not ip.endswith("]"):
            raise ValueError(f"invalid IP address {ip}: missing ']' in address")
        ip = ip[1:-1]
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ValueError(f"invalid IP address: {ip}") from None
    if not container:
        raise ValueError(f"no port specified: {raw}<empty>")
    try:
        start, end = _parse_port_range(container)
    except ValueError:
        raise ValueError(f"invalid containerPort: {container}") from None
    host_start = host_end = 0
    if host:
        try:
            host_start, host_end = _parse_port_range(host)
        except ValueError:
            raise ValueError(f"invalid hostPort: {host}") from None
        if end - start != host_end - host_start and end != start:
            raise ValueError(
                f"invalid ranges specified for container and host Ports: {container} and {host}"
            )
    if proto.lower() not in ("tcp", "udp", "sctp"):
        raise ValueError(f"invalid proto: {proto}")
    mappings = []
    for offset in range(end - start + 1):
        host_port = str(host_start + offset) if host else ""
        if start == end and host_start != host_end:
            host_port = f"{host_port}-{host_end}"
        binding = {"HostIp": ip, "HostPort": host_port}
        mappings.append((f"{start + offset}/{proto.lower()}", binding))
    return mappings


def _standard_publish(values: list[str]) -> list[str]:
    """--publish in the long syntax ("published=8080,target=80") as "8080:80/tcp"."""
    converted = []
    for value in values:
        if "=" not in value:
            converted.append(value)
            continue
        params = {"protocol": "tcp"}
        for param in value.split(","):
            key, equals, text = param.partition("=")
            if not equals or not key:
                raise ValueError(
                    f"invalid publish opts format (should be name=value but got '{param}')"
                )
            params[key] = text
        published, target = params.get("published", ""), params.get("target", "")
        converted.append(f"{published}:{target}/{params['protocol']}")
    return converted


def _volume_spec(spec: str) -> tuple[str, str]:
    """The compose loader's ParseVolume, as much as -v needs: (source, type)."""
    if not spec:
        raise ValueError("invalid empty volume spec")
    if len(spec) <= 2:
        return "", "volume"
    fields: list[str] = []
    buffer = ""
    for index, char in enumerate(spec + "\0"):
        if char == ":" and len(buffer) == 1 and buffer.isalpha():
            buffer += char
        elif char in (":", "\0"):
            if not buffer:
                raise ValueError(f"invalid spec: {spec}: empty section between colons")
            if len(fields) == 2 and char == ":":
                raise ValueError(f"invalid spec: {spec}: too many colons")
            fields.append(buffer)
            buffer = ""
        else:
            buffer += char
        del index
    source = fields[0] if len(fields) > 1 else ""
    if not source:
        return "", "volume"
    is_path = (
        source[0] in "./~"
        or source.startswith("\\\\")
        or (len(source) > 1 and source[0].isalpha() and source[1] == ":")
    )
    return source, "bind" if is_path else "volume"


def _normalize_capabilities(names: list[str]) -> list[str] | None:
    found = []
    for name in names:
        upper = name.upper()
        if upper != "ALL" and not upper.startswith("CAP_"):
            upper = "CAP_" + upper
        if upper not in found:
            found.append(upper)
    return sorted(found) or None


def _security_options(values: list[str]) -> list[str]:
    options = list(values)
    for index, option in enumerate(options):
        key, equals, value = option.partition("=")
        if not equals and key != "no-new-privileges":
            key, equals, value = option.partition(":")
        if (not equals or not value) and key != "no-new-privileges":
            raise ValueError(f"Invalid --security-opt: {go_quote(option)}")
        if key == "seccomp" and value not in ("builtin", "unconfined"):
            try:
                with open(value, "rb") as file:
                    profile = json.loads(file.read())
            except OSError as error:
                reason = os_error_text("open", value, error)
                raise ValueError(f"opening seccomp profile ({value}) failed: {reason}") from None
            except ValueError as error:
                raise ValueError(
                    f"compacting json for seccomp profile ({value}) failed: {error}"
                ) from None
            options[index] = "seccomp=" + json.dumps(profile, separators=(",", ":"))
    return options


def _device_mapping(device: str) -> GoStruct:
    """validateLinuxPath and parseLinuxDevice: "/dev/x[:/dev/y][:rwm]"."""

    def valid_mode(mode: str) -> bool:
        return bool(mode) and all(c in "rwm" for c in mode) and len(set(mode)) == len(mode)

    if device.count(":") > 2 or not device.split(":")[0]:
        raise ValueError(f"bad format for path: {device}")
    parts = device.split(":")
    source, target, permissions = parts[0], "", "rwm"
    if len(parts) == 3:
        if not valid_mode(parts[2]):
            raise ValueError(f"bad mode specified: {parts[2]}")
        target, permissions = parts[1], parts[2]
    elif len(parts) == 2:
        if valid_mode(parts[1]):
            permissions = parts[1]
        else:
            target = parts[1]
    container_path = target or source
    if not container_path.startswith("/"):
        raise ValueError(f"{container_path} is not an absolute path")
    if len(parts) == 1 or (len(parts) == 2 and not target):
        source = os.path.normpath(source)
    target = os.path.normpath(target) if target else source
    return GoStruct(PathOnHost=source, PathInContainer=target, CgroupPermissions=permissions)


def _restart_policy(text: str) -> GoStruct:
    if not text:
        return GoStruct(Name="", MaximumRetryCount=0)
    name, colon, count = text.partition(":")
    if colon and not name:
        raise ValueError("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:
        try:
            retries = int(count)
        except ValueError:
            raise ValueError(
                "invalid restart policy format: maximum retry count must be an integer"
            ) from None
    return GoStruct(Name=name, MaximumRetryCount=retries)


def _user_defined(network: str) -> bool:
    return network not in NETWORK_MODES and not network.startswith("container:")


def _endpoint(attachment: dict[str, Any], options: Mapping[str, Any]) -> GoStruct | None:
    """An EndpointSettings for a --network attachment (None when it carries nothing);
    ``options`` holds the network flags that apply to it (--network-alias, --ip …)."""
    target = attachment["Target"]
    if not target.strip():
        raise ValueError("no name set for network")
    aliases = list(attachment.get("Aliases") or []) + list(options["network-alias"])
    links = list(attachment.get("Links") or [])
    if _user_defined(target) and options["link"]:
        links = list(options["link"])
    if not _user_defined(target):
        if aliases:
            raise ValueError("network-scoped aliases are only supported for user-defined networks")
        if links:
            raise ValueError("links are only supported for user-defined networks")
    ipv4 = options["ip"] or attachment.get("IPv4Address", "")
    ipv6 = options["ip6"] or attachment.get("IPv6Address", "")
    local = list(options["link-local-ip"]) or list(attachment.get("LinkLocalIPs") or [])
    mac = options["mac-address"] or attachment.get("MacAddress", "")
    ipam = None
    if ipv4 or ipv6 or local:
        ipam = GoStruct()
        for key, value in (("IPv4Address", ipv4), ("IPv6Address", ipv6), ("LinkLocalIPs", local)):
            if value:
                ipam[key] = value
    priority = attachment.get("GwPriority", 0)
    driver_options = attachment.get("DriverOpts") or None
    if not (aliases or links or ipam or mac or priority or driver_options):
        return None
    return GoStruct(
        IPAMConfig=ipam,
        Links=links or None,
        Aliases=aliases or None,
        MacAddress=mac,
        DriverOpts=driver_options,
        GwPriority=priority,
        NetworkID="",
        EndpointID="",
        Gateway="",
        IPAddress="",
        IPPrefixLen=0,
        IPv6Gateway="",
        GlobalIPv6Address="",
        GlobalIPv6PrefixLen=0,
        DNSNames=None,
    )


def _empty_endpoint() -> GoStruct:
    return GoStruct(
        IPAMConfig=None,
        Links=None,
        Aliases=None,
        MacAddress="",
        DriverOpts=None,
        GwPriority=0,
        NetworkID="",
        EndpointID="",
        Gateway="",
        IPAddress="",
        IPPrefixLen=0,
        IPv6Gateway="",
        GlobalIPv6Address="",
        GlobalIPv6PrefixLen=0,
        DNSNames=None,
    )


def _networking(options: Options) -> tuple[str, dict[str, Any]]:
    """The network mode and EndpointsConfig (parseNetworkOpts)."""
    attachments = options["network"]
    for flag, key, what in (
        ("network-alias", "Aliases", "alias"),
        ("link", "Links", "links"),
        ("ip", "IPv4Address", "IPv4 address"),
        ("ip6", "IPv6Address", "IPv6 address"),
        ("mac-address", "MacAddress", "MAC address"),
        ("link-local-ip", "LinkLocalIPs", "link-local IP addresses"),
    ):
        if attachments and attachments[0].get(key) and options[flag]:
            raise ValueError(
                f"conflicting options: cannot specify both --{flag} and per-network {what}"
            )
    endpoints: dict[str, Any] = {}
    if not attachments:
        endpoint = _endpoint({"Target": "default"}, options)
        endpoints["default"] = endpoint if endpoint is not None else _empty_endpoint()
        return "default", endpoints
    user_defined = [_user_defined(a["Target"]) for a in attachments]
    for index, attachment in enumerate(attachments):
        endpoint = _endpoint(attachment, options if index == 0 else _NO_NETWORK_FLAGS)
        if attachment["Target"] in endpoints:
            raise ValueError(
                f"network {go_quote(attachment['Target'])} is specified multiple times"
            )
        if endpoint is None and len(attachments) == 1:
            continue
        endpoints[attachment["Target"]] = endpoint if endpoint is not None else _empty_endpoint()
    if any(user_defined) and not all(user_defined):
        raise ValueError(
            "conflicting options: cannot attach both user-defined and non-user-defined "
            "network-modes"
        )
    return attachments[0]["Target"], dict(sorted(endpoints.items()))


_NO_NETWORK_FLAGS = {
    "network-alias": [],
    "link": [],
    "ip": "",
    "ip6": "",
    "link-local-ip": [],
    "mac-address": "",
}


def _health(options: Options) -> GoStruct | None:
    durations = {
        "Interval": options["health-interval"] or 0,
        "Timeout": options["health-timeout"] or 0,
        "StartPeriod": options["health-start-period"] or 0,
        "StartInterval": options["health-start-interval"] or 0,
    }
    retries = options["health-retries"] or 0
    wanted = bool(options["health-cmd"]) or retries != 0 or any(durations.values())
    if options["no-healthcheck"]:
        if wanted:
            raise ValueError("--no-healthcheck conflicts with --health-* options")
        return GoStruct(Test=["NONE"])
    if not wanted:
        return None
    for key, flag in (
        ("Interval", "interval"),
        ("Timeout", "timeout"),
        ("StartPeriod", "start-period"),
        ("StartInterval", "start-interval"),
    ):
        if durations[key] < 0:
            raise ValueError(f"--health-{flag} cannot be negative")
    if retries < 0:
        raise ValueError("--health-retries cannot be negative")
    health = GoStruct()
    if options["health-cmd"]:
        health["Test"] = ["CMD-SHELL", options["health-cmd"]]
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        if durations[key]:
            health[key] = durations[key]
    if retries:
        health["Retries"] = retries
    return health


def create_body(
    options: Options, image: str, command: list[str], console: tuple[int, int]
) -> GoStruct:
    """The body of POST /containers/create for run's and create's flags (the CLI's parse()).
    Raises ValueError with Docker's message for what it refuses."""
    attach = options["attach"]
    attach_stdin = "stdin" in attach or options["interactive"]
    attach_stdout = "stdout" in attach or not attach
    attach_stderr = "stderr" in attach or not attach
    swappiness = options["memory-swappiness"]
    if swappiness != -1 and not 0 <= swappiness <= 100:
        raise ValueError(f"invalid value: {swappiness}. Valid memory swappiness range is 0-100")

    binds: list[str] = []
    volumes: dict[str, dict] = {}
    for spec in dict.fromkeys(options["volume"]):
        source, kind = _volume_spec(spec)
        if not source:
            volumes[spec] = {}
            continue
        if kind == "bind":
            host, _, rest = spec.partition(":")
            if not os.path.isabs(host) and host.startswith("."):
                host = os.path.abspath(host)
            spec = f"{host}:{rest}"
        binds.append(spec)

    tmpfs = {}
    for value in options["tmpfs"]:
        path, _, mount_options = value.partition(":")
        tmpfs[path] = mount_options

    entrypoint = None
    if options["entrypoint"]:
        entrypoint = [options["entrypoint"]]
    elif options.given("entrypoint"):
        entrypoint = [""]

    exposed: dict[str, dict] = {}
    bindings: dict[str, list] = {}
    for spec in _standard_publish(options["publish"]):
        for port, binding in _port_spec(spec):
            exposed.setdefault(port, {})
            bindings.setdefault(port, []).append(GoStruct(binding))
    for value in options["expose"]:
        if ":" in value:
            raise ValueError(f"invalid port format for --expose: {value}")
        proto, port = _split_proto_port(value)
        try:
            start, end = _parse_port_range(port)
        except ValueError as error:
            raise ValueError(
                f"invalid range format for --expose: {value}, error: {error}"
            ) from None
        for number in range(start, end + 1):
            exposed.setdefault(f"{number}/{proto}", {})

    devices = []
    device_requests = list(options["gpus"]) or None
    cdi_names = []
    for device in options["device"]:
        if re.fullmatch(r"[a-zA-Z0-9][\w.-]*/[a-zA-Z0-9][\w.-]*=\S+", device):
            cdi_names.append(device)
            continue
        devices.append(_device_mapping(device))
    if cdi_names:
        cdi = GoStruct(Driver="cdi", Count=0, DeviceIDs=cdi_names, Capabilities=None, Options=None)
        device_requests = [*(device_requests or []), cdi]

    env: list[str] = []
    for path in options["env-file"]:
        env += read_kv_file(path, lookup=True)
    env += options["env"]
    labels: list[str] = []
    for path in options["label-file"]:
        labels += read_kv_file(path, lookup=False)
    labels += options["label"]

    for flag, name in (("pid", "PID"), ("uts", "UTS"), ("userns", "USER")):
        mode = options[flag]
        if mode and mode != "host" and not (flag == "pid" and mode.startswith("container:")):
            raise ValueError(f"--{flag}: invalid {name} mode")
    cgroupns = options["cgroupns"]
    if cgroupns not in ("", "host", "private"):
        raise ValueError("--cgroupns: invalid CGROUP mode")
    restart = _restart_policy(options["restart"])
    log_options = dict(value.partition("=")[::2] for value in options["log-opt"])
    if options["log-driver"] == "none" and options["log-opt"]:
        raise ValueError(f"invalid logging opts for driver {options['log-driver']}")
    security = _security_options(options["security-opt"])
    masked = readonly_paths = None
    if "systempaths=unconfined" in security:
        masked, readonly_paths = [], []
    security_opt = [o for o in security if o != "systempaths=unconfined"]
    storage = {}
    for value in options["storage-opt"]:
        key, equals, text = value.partition("=")
        if not equals:
            raise ValueError("invalid storage option")
        storage[key] = text
    health = _health(options)
    network_mode, endpoints = _networking(options)
    if options["rm"] and restart["Name"] not in ("", "no"):
        raise ValueError("conflicting options: cannot specify both --restart and --rm")

    config = GoStruct(
        Hostname=options["hostname"],
        Domainname=options["domainname"],
        User=options["user"],
        AttachStdin=attach_stdin,
        AttachStdout=attach_stdout,
        AttachStderr=attach_stderr,
    )
    if exposed:
        config["ExposedPorts"] = dict(sorted(exposed.items()))
    config.update(
        Tty=options["tty"],
        OpenStdin=options["interactive"],
        StdinOnce=options["interactive"] and attach_stdin,
        Env=env or None,
        Cmd=command or None,
    )
    if health is not None:
        config["Healthcheck"] = health
    config.update(
        Image=image,
        Volumes=dict(sorted(volumes.items())),
        WorkingDir=options["workdir"],
        Entrypoint=entrypoint,
        OnBuild=None,
        Labels=dict(sorted(dict(v.partition("=")[::2] for v in labels).items())),
    )
    if options["stop-signal"]:
        config["StopSignal"] = options["stop-signal"]
    if options.given("stop-timeout"):
        config["StopTimeout"] = options["stop-timeout"]

    host = GoStruct(
        Binds=binds or None,
        ContainerIDFile=options["cidfile"],
        LogConfig=GoStruct(Type=options["log-driver"], Config=dict(sorted(log_options.items()))),
        NetworkMode=network_mode,
        PortBindings=dict(sorted(bindings.items())),
        RestartPolicy=restart,
        AutoRemove=options["rm"],
        VolumeDriver=options["volume-driver"],
        VolumesFrom=options["volumes-from"] or None,
        ConsoleSize=list(console),
    )
    if options["annotation"]:
        host["Annotations"] = dict(sorted(dict(options["annotation"]).items()))
    host.update(
        CapAdd=_normalize_capabilities(options["cap-add"]),
        CapDrop=_normalize_capabilities(options["cap-drop"]),
        CgroupnsMode=cgroupns,
        Dns=list(options["dns"]),
        DnsOptions=list(options["dns-option"]),
        DnsSearch=list(options["dns-search"]),
        ExtraHosts=options["add-host"] or None,
        GroupAdd=options["group-add"] or None,
        IpcMode=options["ipc"],
        Cgroup="",
        Links=options["link"] or None,
        OomScoreAdj=options["oom-score-adj"],
        PidMode=options["pid"],
        Privileged=options["privileged"],
        PublishAllPorts=options["publish-all"],
        ReadonlyRootfs=options["read-only"],
        SecurityOpt=security_opt if security else None,
    )
    if storage:
        host["StorageOpt"] = dict(sorted(storage.items()))
    if tmpfs:
        host["Tmpfs"] = dict(sorted(tmpfs.items()))
    host.update(UTSMode=options["uts"], UsernsMode=options["userns"], ShmSize=options["shm-size"])
    if options["sysctl"]:
        host["Sysctls"] = dict(sorted(dict(options["sysctl"]).items()))
    if options["runtime"]:
        host["Runtime"] = options["runtime"]
    host.update(
        Isolation=options["isolation"],
        CpuShares=options["cpu-shares"],
        Memory=options["memory"],
        NanoCpus=options["cpus"],
        CgroupParent=options["cgroup-parent"],
        BlkioWeight=options["blkio-weight"],
        BlkioWeightDevice=list(options["blkio-weight-device"]),
        BlkioDeviceReadBps=list(options["device-read-bps"]),
        BlkioDeviceWriteBps=list(options["device-write-bps"]),
        BlkioDeviceReadIOps=list(options["device-read-iops"]),
        BlkioDeviceWriteIOps=list(options["device-write-iops"]),
        CpuPeriod=options["cpu-period"],
        CpuQuota=options["cpu-quota"],
        CpuRealtimePeriod=options["cpu-rt-period"],
        CpuRealtimeRuntime=options["cpu-rt-runtime"],
        CpusetCpus=options["cpuset-cpus"],
        CpusetMems=options["cpuset-mems"],
        Devices=devices,
        DeviceCgroupRules=options["device-cgroup-rule"] or None,
        DeviceRequests=device_requests,
        MemoryReservation=options["memory-reservation"],
        MemorySwap=options["memory-swap"],
        MemorySwappiness=swappiness,
        OomKillDisable=options["oom-kill-disable"],
        PidsLimit=options["pids-limit"],
        Ulimits=list({u["Name"]: u for u in options["ulimit"]}.values()),
        CpuCount=options["cpu-count"],
        CpuPercent=options["cpu-percent"],
        IOMaximumIOps=options["io-maxiops"],
        IOMaximumBandwidth=options["io-maxbandwidth"],
    )
    if options["mount"]:
        host["Mounts"] = list(options["mount"])
    host.update(MaskedPaths=masked, ReadonlyPaths=readonly_paths)
    if options.given("init"):
        host["Init"] = options["init"]
    return GoStruct(
        **config,
        HostConfig=host,
        NetworkingConfig=GoStruct(EndpointsConfig=endpoints),
    )


def _map_value(validate: Callable[[str], str] | None = None) -> Callable[[str], tuple[str, str]]:
    def parse_pair(text: str) -> tuple[str, str]:
        checked = validate(text) if validate else text
        key, _, value = checked.partition("=")
        return key, value

    return parse_pair


def _platform(text: str) -> str:
    """containerd's platforms.Parse and the client's formatting: "linux/amd64"."""
    arches = {
        "x86_64": ("amd64", ""), "x86-64": ("amd64", ""), "amd64": ("amd64", ""),
        "aarch64": ("arm64", ""), "arm64": ("arm64", ""), "i386": ("386", ""),
        "armhf": ("arm", "v7"), "armel": ("arm", "v6"),
    }  # fmt: skip
    parts = text.lower().split("/")
    if not all(re.fullmatch(r"[a-z0-9_-]+", part) for part in parts) or len(parts) > 3:
        raise ValueError(
            f"error parsing specified platform: {go_quote(text)}: "
            "invalid platform component: invalid argument"
        )
    if len(parts) == 1:
        if parts[0] in ("linux", "windows", "darwin", "freebsd"):
            parts = [parts[0], "amd64"]
        else:
            parts = ["linux", parts[0]]
    system, arch = parts[0], parts[1]
    arch, variant = arches.get(arch, (arch, ""))
    if len(parts) == 3 and not (arch == "arm64" and parts[2] == "v8"):
        variant = parts[2]
    return "/".join(p for p in (system, arch, variant) if p)


class CidFile:
    """--cidfile: created before the container, removed again if no ID was written."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.written = False
        self.file = None
        if not path:
            return
        if os.path.exists(path):
            raise ValueError(
                "container ID file found, make sure the other container isn't running or "
                f"delete {path}"
            )
        try:
            self.file = open(path, "w")  # noqa: SIM115 - closed in close()
        except OSError as error:
            raise ValueError(
                f"failed to create the container ID file: {os_error_text('open', path, error)}"
            ) from None

    def write(self, container_id: str) -> None:
        if self.file is not None:
            self.file.write(container_id)
            self.file.flush()
            self.written = True

    def close(self) -> None:
        if self.file is None:
            return
        self.file.close()
        if not self.written:
            with contextlib.suppress(OSError):
                os.remove(self.path)


SECRETS_CONFIG = "/run/secrets/docker/config.json"  # where --use-api-socket puts credentials


def api_socket_credentials(context: Context) -> dict[str, Any]:
    """The registry credentials --use-api-socket hands the container: DOCKER_AUTH_CONFIG's,
    else the config file's, each as config.json keeps them (the encoded "auth")."""
    for source in (os.environ.get("DOCKER_AUTH_CONFIG", ""), None):
        try:
            config = json.loads(source) if source else load_config(context)
        except ValueError as error:
            raise ValueError(
                f"resolving credentials failed: failed to read credentials from "
                f"DOCKER_AUTH_CONFIG: {error}"
            ) from None
        auths = config.get("auths") if isinstance(config, dict) else None
        if isinstance(auths, dict) and auths:
            return {
                server: GoStruct(
                    (key, entry[key])
                    for key in ("auth", "email", "identitytoken", "registrytoken")
                    if isinstance(entry, dict) and entry.get(key)
                )
                for server, entry in auths.items()
            }
    return {}


def _copy_credentials(context: Context, container_id: str, credentials: dict[str, Any]) -> None:
    """The credentials written into the new container, as the CLI's config file."""
    data = json.dumps({"auths": credentials}, indent="\t").encode()
    with tempfile.TemporaryFile() as archive:
        with _tar_writer(archive) as writer:
            member = tarfile.TarInfo(SECRETS_CONFIG)
            member.size, member.mode = len(data), 0o600
            writer.addfile(member, io.BytesIO(data))
        archive.seek(0)
        target = container_path(container_id, "/archive")
        params = {"noOverwriteDirNonDir": "true", "path": "/"}
        context.client.request("PUT", target, params, archive).read()


def create_container(context: Context, body: GoStruct, options: Options) -> str:
    """POST /containers/create as Docker's createContainer does it: the --cidfile claimed
    first, the image pulled first (--pull always) or when it is missing, the warnings shown.
    Returns the new container's ID."""
    cid = CidFile(body["HostConfig"]["ContainerIDFile"])
    try:
        image = body["Image"]
        named = None if HEX64.match(image) else parse_reference(image).with_default_tag()
        credentials = {}
        if options["use-api-socket"] and not any(
            variable.startswith("DOCKER_CONFIG=") for variable in body["Env"] or []
        ):
            credentials = api_socket_credentials(context)
            if credentials:
                body["Env"] = [
                    *(body["Env"] or []),
                    f"DOCKER_CONFIG={os.path.dirname(SECRETS_CONFIG)}",
                ]
        platform = _platform(options["platform"]) if options["platform"] else None
        quiet = options["quiet"]

        def pull() -> None:
            pull_image(context, image, platform=platform, quiet=quiet, out=context.stderr)

        if options["pull"] == PULL_ALWAYS:
            pull()
        params = {"name": options["name"] or None, "platform": platform}
        payload = go_json(body, escape_html=True).encode()
        headers = {"Content-Type": "application/json"}

        def create() -> dict[str, Any]:
            answer = context.client.request("POST", "/containers/create", params, payload, headers)
            return answer.json()

        try:
            created = create()
        except DaemonError as error:
            if error.status != 404 or named is None or options["pull"] != PULL_MISSING:
                raise
            if not quiet:
                context.err(f"Unable to find image '{named.familiar}' locally")
            pull()
            created = create()
        warnings = list(created.get("Warnings") or [])
        for server in body["HostConfig"]["Dns"]:
            with contextlib.suppress(ValueError):
                if ipaddress.ip_address(server).is_loopback:
                    warnings.append(f"Localhost DNS ({server}) may fail in containers.")
                    break
        for warning in warnings:
            context.err(f"WARNING: {warning}")
        cid.write(created["Id"])
        if credentials:
            _copy_credentials(context, created["Id"], credentials)
        return created["Id"]
    finally:
        cid.close()


def _check_pull(options: Options, command: str) -> None:
    if options["pull"] not in (PULL_ALWAYS, PULL_MISSING, PULL_NEVER, ""):
        raise StatusError(
            125,
            with_help(
                f"invalid pull option: '{options['pull']}': must be one of "
                f'"{PULL_ALWAYS}", "{PULL_MISSING}" or "{PULL_NEVER}"',
                command,
            ),
        )


def _body_or_fail(context: Context, options: Options, args: list[str], command: str) -> GoStruct:
    console = terminal.terminal_size(file_descriptor(context.stdout))
    try:
        return create_body(options, args[0], args[1:], console)
    except ValueError as error:
        raise StatusError(125, with_help(str(error), command)) from None


def _create(context: Context, options: Options, args: list[str]) -> None:
    _check_pull(options, "create")
    body = _body_or_fail(context, options, args, "create")
    try:
        context.out(create_container(context, body, options))
    except (ValueError, ReferenceError) as error:
        raise StatusError(1, str(error)) from None
    except ProgressError as error:
        raise StatusError(1, error.message) from None


# -- attaching: the session between the local terminal and a container --------------------------


@contextlib.contextmanager
def forwarded_signals(context: Context, container_id: str, enabled: bool) -> Iterator[None]:
    """--sig-proxy: the signals this process gets are sent on to the container."""
    if not enabled:
        yield
        return

    def send(name: str) -> None:
        with contextlib.suppress(DaemonError, OSError):
            context.client.request("POST", container_path(container_id, "/kill"), {"signal": name})

    def handler(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name.removeprefix("SIG")
        threading.Thread(target=send, args=(name,), daemon=True).start()

    previous = {number: signal.signal(number, handler) for number in PROXIED_SIGNALS}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def resizer(context: Context, path: str) -> Callable[..., None]:
    """Sends the local terminal's size, plus ``extra`` rows and columns, to ``path``
    (…/resize); nothing for a size of 0x0."""

    def resize(extra: int = 0) -> None:
        height, width = terminal.terminal_size(file_descriptor(context.stdout))
        height, width = height + extra, width + extra
        if height == 0 and width == 0:
            return
        params = {"h": height, "w": width}
        with contextlib.suppress(DaemonError, OSError):
            context.client.request("POST", path, params).read()

    return resize


def attach_params(stdin: bool, stdout: bool, stderr: bool, detach_keys: str) -> dict[str, Any]:
    """The query of POST /containers/{id}/attach, in the order Go encodes it."""
    params: dict[str, Any] = {"detachKeys": detach_keys or None}
    params.update(
        stderr=1 if stderr else None, stdin=1 if stdin else None, stdout=1 if stdout else None
    )
    params["stream"] = 1
    return params


def relay_session(
    context: Context,
    connection: Hijacked,
    *,
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    detach_keys: str,
    resize: Callable[[], None] | None,
) -> str:
    """The hijackedIOStreamer: raw mode while typing into a tty, the relay, and the terminal
    restored as soon as the output ends (and in any case before returning)."""
    stdin_fd = file_descriptor(context.stdin) if stdin else None
    out = binary(context.stdout) if stdout else None
    err = None
    if stderr:
        err = binary(context.stdout) if tty else binary(context.stderr)
    with terminal.raw_terminal(stdin_fd, tty) as raw:
        relay = terminal.Relay(
            connection,
            stdin_fd=stdin_fd,
            stdout=out,
            stderr=err,
            tty=tty,
            escape=escape_proxy(context, detach_keys) if tty and stdin_fd is not None else None,
            on_output_end=raw.restore if raw is not None else None,
            resize=resize,
        )
        if resize is None:
            return relay.run()
        with terminal.window_changes() as winch_fd:
            return relay.run(winch_fd)


class Waiter:
    """POST /containers/{id}/wait sent now (the engine answers its headers at once), its
    result read later."""

    def __init__(self, context: Context, container_id: str, condition: str | None) -> None:
        params = {"condition": condition} if condition else None
        self.answer = context.client.request("POST", container_path(container_id, "/wait"), params)
        self.context = context

    def status(self) -> int:
        """The exit status; 125 (and Docker's log line) when the wait itself failed."""
        try:
            result = self.answer.json() or {}
        except (OSError, ValueError) as error:
            self.context.err(f"ERRO[0000] error waiting for container: {error}")
            return 125
        failure = result.get("Error") or {}
        if failure.get("Message"):
            self.context.err(f"ERRO[0000] Error waiting for container: {failure['Message']}")
            return 125
        return int(result.get("StatusCode") or 0)

    def close(self) -> None:
        self.answer.close()


def _run(context: Context, options: Options, args: list[str]) -> int:
    _check_pull(options, "run")
    body = _body_or_fail(context, options, args, "run")
    detach = options["detach"]
    if not detach:
        if body["AttachStdin"] and body["Tty"] and not _stdin_is_terminal(context):
            raise StatusError(1, NOT_A_TTY)
    else:
        if options["attach"]:
            raise StatusError(1, "conflicting options: cannot specify both --attach and --detach")
        body.update(AttachStdin=False, AttachStdout=False, AttachStderr=False, StdinOnce=False)
    try:
        container_id = create_container(context, body, options)
    except (DaemonError, ValueError, ReferenceError) as error:
        raise _run_failure(error) from None
    with forwarded_signals(context, container_id, options["sig-proxy"]):
        return _run_created(context, options, body, container_id)


def _stdin_is_terminal(context: Context) -> bool:
    return terminal.is_terminal(file_descriptor(context.stdin))


def _run_failure(error: Exception) -> StatusError:
    """toStatusError: the message behind "docker: ", and its status."""
    text = error_text(error)
    return StatusError(run_status(text), with_help(text, "run"))


def start_attached(
    context: Context,
    container_id: str,
    *,
    tty: bool,
    streams: tuple[bool, bool, bool],
    detach_keys: str,
    auto_remove: bool,
    start_failure: Callable[[DaemonError], Exception],
) -> int:
    """Docker's order for a run or start that attaches: the attach connection first, the
    wait (for removal with --rm, else the next exit) posted before the start, then the
    session. Returns the container's exit status, or 0 when the user detached. A failed start
    raises ``start_failure(error)``, once the removal of a --rm container is seen."""
    params = attach_params(*streams, detach_keys)
    connection = context.client.hijack(container_path(container_id, "/attach"), params)
    try:
        waiter = Waiter(context, container_id, "removed" if auto_remove else "next-exit")
        try:
            context.client.request("POST", container_path(container_id, "/start")).read()
        except DaemonError as error:
            if auto_remove:
                waiter.status()
            raise start_failure(error) from None
        outcome = session(
            context,
            connection,
            tty=tty,
            streams=streams,
            detach_keys=detach_keys,
            resize_path=container_path(container_id, "/resize"),
            shown=terminal.is_terminal(file_descriptor(context.stdout)),
        )
        if outcome == terminal.DETACHED:
            waiter.close()
            return 0
        return waiter.status()
    finally:
        connection.close()


def _run_created(context: Context, options: Options, body: GoStruct, container_id: str) -> int:
    streams = (body["AttachStdin"], body["AttachStdout"], body["AttachStderr"])
    auto_remove = body["HostConfig"]["AutoRemove"]
    if any(streams):
        return start_attached(
            context,
            container_id,
            tty=body["Tty"],
            streams=streams,
            detach_keys=detach_keys_setting(context, options["detach-keys"]),
            auto_remove=auto_remove,
            start_failure=_run_failure,
        )
    waiter = Waiter(context, container_id, "removed" if auto_remove else "next-exit")
    try:
        context.client.request("POST", container_path(container_id, "/start")).read()
    except DaemonError as error:
        if auto_remove:
            waiter.status()
        raise _run_failure(error) from None
    waiter.close()
    context.out(container_id)
    return 0


# -- start, attach, exec ------------------------------------------------------------------------


def _start(context: Context, options: Options, args: list[str]) -> int:
    if options["checkpoint"] and not (options["attach"] or options["interactive"]):
        if len(args) > 1:
            raise StatusError(1, "you cannot restore multiple containers at once")
        params = {"checkpoint": options["checkpoint"]}
        params["checkpoint-dir"] = options["checkpoint-dir"] or None
        context.client.request("POST", container_path(args[0], "/start"), params).read()
        return 0
    if not (options["attach"] or options["interactive"]):
        failed = []
        for name in args:
            try:
                context.client.request("POST", container_path(name, "/start")).read()
            except (DaemonError, StatusError) as error:
                context.err(error_text(error))
                failed.append(name)
                continue
            context.out(name)
        if failed:
            raise StatusError(1, f"Error: failed to start containers: {', '.join(failed)}")
        return 0
    if len(args) > 1:
        raise StatusError(1, "you cannot start and attach multiple containers at once")
    info = context.client.get_json(container_path(args[0], "/json"))
    tty = bool(info["Config"].get("Tty"))
    stdin = options["interactive"] and bool(info["Config"].get("OpenStdin"))
    with forwarded_signals(context, info["Id"], not tty):
        return start_attached(
            context,
            info["Id"],
            tty=tty,
            streams=(stdin, True, True),
            detach_keys=detach_keys_setting(context, options["detach-keys"]),
            auto_remove=bool(info["HostConfig"].get("AutoRemove")),
            start_failure=lambda error: error,
        )


def _check_attachable(info: dict[str, Any]) -> None:
    state = info.get("State") or {}
    if not state.get("Running"):
        raise StatusError(1, "You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise StatusError(1, "You cannot attach to a paused container, unpause it first")
    if state.get("Restarting"):
        raise StatusError(
            1, "You cannot attach to a restarting container, wait until it is running"
        )


def _attach(context: Context, options: Options, args: list[str]) -> int:
    name = args[0]
    waiter = Waiter(context, name, None)
    try:
        info = context.client.get_json(container_path(name, "/json"))
        _check_attachable(info)
        tty = bool(info["Config"].get("Tty"))
        if not options["no-stdin"] and tty and not _stdin_is_terminal(context):
            raise StatusError(1, NOT_A_TTY)
        container_id = info["Id"]
        stdin = not options["no-stdin"] and bool(info["Config"].get("OpenStdin"))
        detach_keys = detach_keys_setting(context, options["detach-keys"])
        with forwarded_signals(context, container_id, options["sig-proxy"] and not tty):
            params = attach_params(stdin, True, True, detach_keys)
            connection = context.client.hijack(container_path(container_id, "/attach"), params)
            try:
                _check_attachable(context.client.get_json(container_path(container_id, "/json")))
                outcome = session(
                    context,
                    connection,
                    tty=tty,
                    streams=(stdin, True, True),
                    detach_keys=detach_keys,
                    resize_path=container_path(container_id, "/resize"),
                    shown=terminal.is_terminal(file_descriptor(context.stdout)),
                    nudge=True,  # a size change makes the shell show its prompt again
                )
            finally:
                connection.close()
        if outcome == terminal.DETACHED:
            raise StatusError(1, "read escape sequence")
        return waiter.status()
    finally:
        waiter.close()


def session(
    context: Context,
    connection: Any,
    *,
    tty: bool,
    streams: tuple[bool, bool, bool],
    detach_keys: str,
    resize_path: str,
    shown: bool,
    nudge: bool = False,
) -> str:
    """Relay an attach or exec session (``streams``: stdin, stdout, stderr) and return how it
    ended; with a terminal that ``shown`` on, its size goes to ``resize_path`` now (first
    off by one, with ``nudge``) and on each change."""
    resize = None
    if tty and shown:
        resize = resizer(context, resize_path)
        if nudge:
            resize(1)
        resize()
    stdin, stdout, stderr = streams
    return relay_session(
        context,
        connection,
        tty=tty,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        detach_keys=detach_keys,
        resize=resize,
    )


def _exec(context: Context, options: Options, args: list[str]) -> int:
    name, command = args[0], args[1:]
    try:
        env: list[str] = []
        for path in options["env-file"]:
            env += read_kv_file(path, lookup=True)
    except ValueError as error:
        raise StatusError(1, str(error)) from None
    env += options["env"]
    detach = options["detach"]
    tty = options["tty"]
    stdin = options["interactive"] and not detach
    detach_keys = detach_keys_setting(context, options["detach-keys"])
    context.client.get_json(container_path(name, "/json"))
    if not detach and stdin and tty and not _stdin_is_terminal(context):
        raise StatusError(1, NOT_A_TTY)
    console = list(terminal.terminal_size(file_descriptor(context.stdout))) if tty else None
    config = GoStruct(User=options["user"], Privileged=options["privileged"], Tty=tty)
    if console is not None:
        config["ConsoleSize"] = console
    config.update(
        AttachStdin=stdin,
        AttachStderr=not detach,
        AttachStdout=not detach,
        Detach=detach,
        DetachKeys=detach_keys,
        Env=env or None,
        WorkingDir=options["workdir"],
        Cmd=command,
    )
    payload = go_json(config, escape_html=True).encode()
    headers = {"Content-Type": "application/json"}
    created = context.client.request(
        "POST", container_path(name, "/exec"), body=payload, headers=headers
    ).json()
    exec_id = created.get("Id") or ""
    if not exec_id:
        raise StatusError(1, "exec ID empty")
    start = GoStruct(Detach=detach, Tty=tty)
    if console is not None:
        start["ConsoleSize"] = console
    if detach:
        context.client.request("POST", f"/exec/{exec_id}/start", body=start).read()
        return 0
    connection = context.client.hijack(f"/exec/{exec_id}/start", body=start)
    try:
        outcome = session(
            context,
            connection,
            tty=tty,
            streams=(stdin, True, True),
            detach_keys=detach_keys,
            resize_path=f"/exec/{exec_id}/resize",
            shown=_stdin_is_terminal(context),
        )
    finally:
        connection.close()
    if outcome == terminal.DETACHED:
        raise StatusError(1, "read escape sequence")
    result = context.client.get_json(f"/exec/{exec_id}/json")
    return int(result.get("ExitCode") or 0)


# -- stop, kill, rm and friends -----------------------------------------------------------------


def _stop_params(context: Context, options: Options) -> dict[str, Any]:
    if options.given("time"):
        context.out("Flag --time has been deprecated, use --timeout instead")
    if options.given("time") and options.given("timeout"):
        raise StatusError(1, "conflicting options: cannot specify both --timeout and --time")
    timeout = None
    if options.given("timeout"):
        timeout = options["timeout"]
    elif options.given("time"):
        timeout = options["time"]
    return {"signal": options["signal"] or None, "t": timeout}


def _stop(context: Context, options: Options, args: list[str]) -> None:
    params = _stop_params(context, options)

    def stop(name: str) -> None:
        context.client.request("POST", container_path(name, "/stop"), params).read()

    for_each(context, args, stop)


def _restart(context: Context, options: Options, args: list[str]) -> None:
    params = _stop_params(context, options)

    def restart(name: str) -> None:
        context.client.request("POST", container_path(name, "/restart"), params).read()

    for_each(context, args, restart, parallel=False)


def _kill(context: Context, options: Options, args: list[str]) -> None:
    params = {"signal": options["signal"] or None}

    def kill(name: str) -> None:
        context.client.request("POST", container_path(name, "/kill"), params).read()

    for_each(context, args, kill)


def _simple(action: str) -> Callable[[Context, Options, list[str]], None]:
    def run(context: Context, options: Options, args: list[str]) -> None:
        def operate(name: str) -> None:
            context.client.request("POST", container_path(name, f"/{action}")).read()

        for_each(context, args, operate)

    return run


def _remove(context: Context, options: Options, args: list[str]) -> None:
    params = {
        "force": 1 if options["force"] else None,
        "link": 1 if options["link"] else None,
        "v": 1 if options["volumes"] else None,
    }

    def remove(name: str) -> None:
        trimmed = name.strip("/")
        if not trimmed:
            raise StatusError(1, "container name cannot be empty")
        context.client.request("DELETE", container_path(trimmed), params).read()

    for_each(
        context,
        args,
        remove,
        forgive=lambda error: bool(options["force"]) and error.status == 404,
    )


def _wait(context: Context, options: Options, args: list[str]) -> None:
    errors = []
    for name in args:
        try:
            result = context.client.post_json(container_path(name, "/wait")) or {}
        except (DaemonError, StatusError) as error:
            errors.append(error_text(error))
            continue
        context.out(str(result.get("StatusCode", 0)))
    if errors:
        raise StatusError(1, "\n".join(errors))


def _rename(context: Context, options: Options, args: list[str]) -> None:
    old, new = args[0].strip(), args[1].strip()
    if not old or not new:
        raise StatusError(1, "Error: Neither old nor new names may be empty")
    try:
        context.client.request("POST", container_path(old, "/rename"), {"name": new}).read()
    except DaemonError as error:
        context.err(error_text(error))
        raise StatusError(1, f"Error: failed to rename container named {old}") from None


def _prune(context: Context, options: Options, args: list[str], command: Command) -> None:
    filters = parse_filters(command, options["filter"], "--filter")
    prune_filters(context, filters)
    if not options["force"] and not confirm(context, PRUNE_WARNING):
        return
    report = context.client.post_json("/containers/prune", {"filters": filters_param(filters)})
    deleted = report.get("ContainersDeleted") or []
    reclaimed = 0
    if deleted:
        context.out("Deleted Containers:\n" + "".join(f"{i}\n" for i in deleted))
        reclaimed = int(report.get("SpaceReclaimed") or 0)
    context.out(f"Total reclaimed space: {human_size(reclaimed)}")


# -- ps, logs, top, port, inspect ---------------------------------------------------------------


def _ps(context: Context, options: Options, args: list[str], command: Command) -> None:
    filters = parse_filters(command, options["filter"], "-f, --filter")
    format_text = options["format"]
    quiet = options["quiet"]
    if not format_text:
        format_text = str(load_config(context).get("psFormat") or "")
    elif quiet:
        context.err(PS_QUIET_FORMAT_WARNING)
    size = options["size"]
    limit = options["last"]
    if options["latest"] and limit == -1:
        limit = 1
    try:
        if container_list_wants_size(format_text, quiet, options.given("size")):
            size = True
        params = {
            "all": 1 if options["all"] else None,
            "filters": filters_param(filters),
            "limit": limit if limit > 0 else None,
            "size": 1 if size else None,
        }
        containers = context.client.get_json("/containers/json", params)
        context.stdout.write(
            format_containers(containers, format_text, quiet, options["no-trunc"], size)
        )
    except FormatError as error:
        raise StatusError(1, str(error)) from None


def docker_timestamp(text: str, now: float | None = None) -> str:
    """The API's form of --since/--until (GetTimestamp): a Go duration before now in whole
    seconds, an RFC 3339 date or a part of one (local time when it has no zone), or a Unix
    timestamp as it is."""
    current = time.time() if now is None else now
    if text != "0":
        with contextlib.suppress(ValueError):
            return str(int(current - parse_duration(text) / 1e9))
    local = not any(c in text for c in "zZ+") and text.count("-") != 3
    formats = ["%Y-%m-%d"]
    if "T" in text:
        formats = ["%Y-%m-%dT%H", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
    value = text
    fraction = ""
    match = re.match(r"^(.*?)(\.\d+)(.*)$", value)
    if match:
        value, fraction = match.group(1) + match.group(3), match.group(2)
    for pattern in formats:
        with contextlib.suppress(ValueError):
            moment = datetime.strptime(value, pattern + ("" if local else "%z"))
            if local:
                moment = moment.astimezone()
            nanos = int(Decimal(fraction or "0") * 1_000_000_000) if fraction else 0
            return f"{int(moment.timestamp())}.{nanos:09d}"
    if "-" in text:
        raise ValueError(f"parsing time {go_quote(text)}: cannot parse")
    if not re.fullmatch(r"\d+(\.\d{1,9})?", text):
        raise ValueError(f"failed to parse value as time or duration: {go_quote(text)}")
    return text


def _logs(context: Context, options: Options, args: list[str]) -> None:
    info = context.client.get_json(container_path(args[0], "/json"))
    times: dict[str, str | None] = {}
    for key in ("since", "until"):
        try:
            times[key] = docker_timestamp(options[key]) if options[key] else None
        except ValueError as error:
            raise StatusError(1, f'invalid value for "{key}": {error}') from None
    params = {
        "details": 1 if options["details"] else None,
        "follow": 1 if options["follow"] else None,
        "since": times["since"],
        "stderr": 1,
        "stdout": 1,
        "tail": options["tail"],
        "timestamps": 1 if options["timestamps"] else None,
        "until": times["until"],
    }
    answer = context.client.request("GET", container_path(info["Id"], "/logs"), params)
    out, err = binary(context.stdout), binary(context.stderr)
    tty = bool((info.get("Config") or {}).get("Tty"))
    pending = b""
    for chunk in answer.chunks():
        if tty:
            out.write(chunk)
            out.flush()
            continue
        frames, pending = demultiplex(pending + chunk)
        for kind, payload in frames:
            stream = err if kind == 2 else out
            stream.write(payload)
            stream.flush()


def _top(context: Context, options: Options, args: list[str]) -> None:
    params = {"ps_args": " ".join(args[1:])} if len(args) > 1 else None
    listing = context.client.get_json(container_path(args[0], "/top"), params)
    lines = ["\t".join(listing.get("Titles") or [])]
    lines += ["\t".join(process) for process in listing.get("Processes") or []]
    context.stdout.write(align_columns("\n".join(lines) + "\n", min_width=20, padding=3))


def _join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _port(context: Context, options: Options, args: list[str]) -> None:
    info = context.client.get_json(container_path(args[0], "/json"))
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    lines = []
    if len(args) > 1:
        number, _, proto = args[1].partition("/")
        try:
            go_int(number, 16, unsigned=True)
        except ValueError as error:
            raise StatusError(1, f"Error: invalid port ({number}): {error}") from None
        frontends = ports.get(f"{number}/{proto or 'tcp'}") or []
        if not frontends:
            raise StatusError(1, f"Error: No public port '{args[1]}' published for {args[0]}")
        lines = [_join_host_port(f["HostIp"], f["HostPort"]) for f in frontends]
    else:
        for port, frontends in ports.items():
            for frontend in frontends or []:
                address = _join_host_port(frontend["HostIp"], frontend["HostPort"])
                lines.append(f"{port} -> {address}")
    if lines:
        context.out("\n".join(sorted(lines, key=natural_sort_key)))


def _container_inspect(context: Context, options: Options, args: list[str]) -> None:
    params = {"size": 1} if options["size"] else None

    def fetch(name: str) -> tuple[Any, str]:
        text = context.client.request("GET", container_path(name, "/json"), params).read().decode()
        return go_value(text), text

    write_inspect(context, args, options["format"], fetch)


OBJECT_TYPES = (
    "config", "container", "image", "network", "node", "plugin", "secret", "service", "task",
    "volume",
)  # fmt: skip
SWARM_TYPES = {"service", "task", "node", "secret", "config"}


def _object_paths(name: str, size: bool) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Where `docker inspect` looks for an object, in its order: (type, path, query)."""
    return [
        ("container", f"/containers/{name}/json", {"size": 1} if size else None),
        ("image", f"/images/{name}/json", None),
        ("network", f"/networks/{name}", None),
        ("volume", f"/volumes/{name}", None),
        ("service", f"/services/{name}", {"insertDefaults": "false"}),
        ("task", f"/tasks/{name}", None),
        ("node", f"/nodes/{name}", None),
        ("plugin", f"/plugins/{name}/json", None),
        ("secret", f"/secrets/{name}", None),
        ("config", f"/configs/{name}", None),
    ]


class _NotFound(Exception):
    """No object of any type has this name; ``str()`` is Docker's line."""


def _inspect(context: Context, options: Options, args: list[str]) -> None:
    wanted = options["type"]
    if wanted and wanted not in OBJECT_TYPES:
        listed = ", ".join(f'"{t}"' for t in OBJECT_TYPES)
        raise StatusError(1, f"unknown type: {go_quote(wanted)}: must be one of {listed}")
    format_text = options["format"]
    template = None
    if format_text and format_text != "json":
        try:
            template = parse(format_text)
        except TemplateError as error:
            raise StatusError(64, f"template parsing error: {error}") from None
    swarm: list[bool] = []

    def is_manager() -> bool:
        if not swarm:
            try:
                info = context.client.get_json("/info")
                swarm.append(bool((info.get("Swarm") or {}).get("ControlAvailable")))
            except DaemonError as error:
                context.err(error_text(error))
                swarm.append(False)
        return swarm[0]

    def fetch(name: str) -> str:
        for kind, path, params in _object_paths(name, options["size"]):
            if kind == "container":
                path = container_path(name, "/json")
            if wanted and kind != wanted:
                continue
            if not wanted and kind in SWARM_TYPES and not is_manager():
                continue
            try:
                text = context.client.request("GET", path, params).read().decode()
            except DaemonError as error:
                skippable = (
                    error.status == 404
                    or "not supported" in error.message
                    or "invalid reference format" in error.message
                )
                if not wanted and skippable:
                    continue
                raise
            if options["size"] and kind != "container":
                context.err(f"WARNING: --size ignored for {kind}")
            return text
        raise _NotFound(f"Error: No such object: {name}")

    texts: list[str] = []
    errors: list[str] = []
    for name in args:
        try:
            text = fetch(name)
        except (DaemonError, StatusError, _NotFound) as error:
            errors.append(error_text(error))
            continue
        if template is None:
            texts.append(text)
            continue
        try:
            texts.append(template.execute(go_value(text)) + "\n")
        except TemplateError as error:
            errors.append(f"template parsing error: {error}")
    write_inspected(context, template, format_text, texts, errors)


# -- export and cp ------------------------------------------------------------------------------


def _export(context: Context, options: Options, args: list[str]) -> None:
    path = options["output"]
    if not path and terminal.is_terminal(file_descriptor(context.stdout)):
        raise StatusError(1, "cowardly refusing to save to a terminal. Use the -o flag or redirect")
    problem = output_problem(path) if path else None
    if problem:
        raise StatusError(1, f"failed to export container: {problem}")
    directory = os.path.dirname(os.path.abspath(path)) if path else ""
    answer = context.client.request("GET", container_path(args[0], "/export"))
    if not path:
        out = binary(context.stdout)
        for chunk in answer.chunks():
            out.write(chunk)
        out.flush()
        return
    handle, temporary = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path), dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            for chunk in answer.chunks():
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def _split_cp_arg(argument: str) -> tuple[str, str]:
    """splitCpArg: "container:path", or a local path (absolute, or starting with ".")."""
    if argument.startswith("/"):
        return "", argument
    container, colon, path = argument.partition(":")
    if not colon or container.startswith("."):
        return "", argument
    return container, path


def _preserve_trailing(cleaned: str, original: str) -> str:
    """PreserveTrailingDotOrSeparator: keep what "dir/" and "dir/." say after cleaning."""
    if os.path.basename(cleaned) != "." and os.path.basename(original) == ".":
        if not cleaned.endswith("/"):
            cleaned += "/"
        cleaned += "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def _split_dir_entry(path: str) -> tuple[str, str]:
    cleaned = os.path.normpath(path)
    if os.path.basename(path) == ".":
        cleaned += "/."
    return os.path.dirname(cleaned) or ".", os.path.basename(cleaned)


def _rebase_name(path: str, resolved: str) -> tuple[str, str]:
    if os.path.basename(path) == "." and os.path.basename(resolved) != ".":
        resolved += "/."
    if path.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    rebase = os.path.basename(path) if os.path.basename(path) != os.path.basename(resolved) else ""
    return resolved, rebase


def _path_stat(context: Context, container: str, path: str) -> dict[str, Any] | None:
    """HEAD /containers/{id}/archive: the X-Docker-Container-Path-Stat of ``path``."""
    target = container_path(container, "/archive")
    try:
        answer = context.client.request("HEAD", target, {"path": path})
    except DaemonError:
        return None
    answer.read()
    return _decode_stat(answer.headers.get("X-Docker-Container-Path-Stat", ""))


def _decode_stat(header: str) -> dict[str, Any]:
    try:
        return json.loads(base64.b64decode(header)) or {}
    except ValueError as error:
        raise StatusError(1, f"unable to decode container path stat header: {error}") from None


def _consumed(reader: tarfile.TarFile) -> int:
    """The bytes Go's tar reader takes from a stream: up to its two end-of-archive blocks
    (Python reads whole records, and may read the padding after them)."""
    return reader.offset + 2 * tarfile.BLOCKSIZE


@contextlib.contextmanager
def _tar_writer(target: BinaryIO) -> Iterator[tarfile.TarFile]:
    """A PAX tar written as Go writes one: the end-of-archive blocks, no record padding."""
    with tarfile.open(fileobj=target, mode="w", format=tarfile.PAX_FORMAT) as writer:
        yield writer
    target.truncate(writer.offset)  # the offset counts from the file's start
    target.seek(writer.offset)


def _rebased_tar(source: BinaryIO, old: str, new: str, target: BinaryIO) -> int:
    """RebaseArchiveEntries: the first "old" in each name (and hard link target) is "new".
    Returns the bytes taken from ``source``."""
    old = "" if old == "/" else old
    with tarfile.open(fileobj=source, mode="r|") as reader, _tar_writer(target) as writer:
        for member in reader:
            member.name = member.name.replace(old, new, 1)
            if member.islnk():
                member.linkname = member.linkname.replace(old, new, 1)
            writer.addfile(member, reader.extractfile(member) if member.isreg() else None)
        return _consumed(reader)


class _Extractor(tarfile.TarFile):
    """Untar with NoLchown and NoOverwriteDirNonDir, refusing entries that leave the
    destination."""

    def chown(self, tarinfo: tarfile.TarInfo, targetpath: str, numeric_owner: bool) -> None:
        return None


def _checked_member(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo:
    target = os.path.realpath(os.path.join(destination, member.name))
    root = os.path.realpath(destination)
    if os.path.commonpath([root, target]) != root:
        raise StatusError(1, f"invalid archive entry: {member.name}")
    if member.issym() or member.islnk():
        base = os.path.dirname(target) if member.issym() else root
        link = os.path.realpath(os.path.join(base, member.linkname))
        if member.islnk() and os.path.commonpath([root, link]) != root:
            raise StatusError(1, f"invalid hardlink {member.linkname!r} -> {member.name!r}")
    if os.path.lexists(target):
        is_dir = os.path.isdir(target) and not os.path.islink(target)
        if is_dir and not member.isdir():
            raise StatusError(
                1,
                f"cannot overwrite directory {go_quote(target)} with non-directory "
                f"{go_quote(member.name)}",
            )
        if not is_dir and member.isdir():
            raise StatusError(
                1,
                f"cannot overwrite non-directory {go_quote(target)} with directory "
                f"{go_quote(member.name)}",
            )
    return member


def _untar(source: BinaryIO, destination: str) -> int:
    """Extract a tar stream into ``destination``; returns the bytes taken from ``source``."""
    with _Extractor.open(fileobj=source, mode="r|") as archive:
        for member in archive:
            archive.extract(
                _checked_member(member, destination), destination, filter="fully_trusted"
            )
        return _consumed(archive)


def _copy_from_container(
    context: Context, options: Options, container: str, source: str, destination: str, quiet: bool
) -> None:
    if destination != "-":
        destination = _preserve_trailing(os.path.abspath(destination), destination)
        parent = os.path.dirname(os.path.normpath(destination))
        if parent and not os.path.exists(parent):
            raise StatusError(
                1, f"invalid output path: directory {go_quote(parent)} does not exist"
            )
        if os.path.exists(destination):
            mode = os.stat(destination).st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                raise StatusError(
                    1,
                    f"invalid output path: {go_quote(destination)} must be a directory or a "
                    "regular file: got a device",
                )
    rebase = ""
    if options["follow-link"]:
        found = _path_stat(context, container, source)
        if found and int(found.get("mode", 0)) & GO_MODE_SYMLINK:
            target = found.get("linkTarget", "")
            if not target.startswith("/"):
                target = os.path.join(_split_dir_entry(source)[0], target)
            source, rebase = _rebase_name(source, target)
    answer = context.client.request("GET", container_path(container, "/archive"), {"path": source})
    found = _decode_stat(answer.headers.get("X-Docker-Container-Path-Stat", ""))
    if destination == "-":
        out = binary(context.stdout)
        for chunk in answer.chunks():
            out.write(chunk)
        out.flush()
        return
    is_dir = bool(int(found.get("mode", 0)) & GO_MODE_DIR)
    try:
        if rebase:
            with tempfile.TemporaryFile() as spooled:
                copied = _rebased_tar(answer.raw, _split_dir_entry(source)[1], rebase, spooled)
                spooled.seek(0)
                _copy_to_local(spooled, source, is_dir, rebase, destination)
        else:
            copied = _copy_to_local(answer.raw, source, is_dir, rebase, destination)
    except (tarfile.TarError, OSError) as error:
        raise StatusError(1, str(error)) from None
    finally:
        answer.close()
    if not quiet:
        size = human_size_with_precision(copied, 3)
        context.err(f"Successfully copied {size} to {destination}")


def _destination_info(path: str) -> tuple[str, bool, bool]:
    """CopyInfoDestinationPath: (path with symlinks followed, exists, is a directory)."""
    original = path
    for _ in range(11):
        if not os.path.islink(path):
            break
        target = os.readlink(path)
        path = target if os.path.isabs(target) else os.path.join(_split_dir_entry(path)[0], target)
    else:
        raise StatusError(1, f"too many symlinks in {original}")
    if os.path.lexists(path):
        return path, True, os.path.isdir(path)
    parent = _split_dir_entry(path)[0]
    if not os.path.exists(parent):
        raise StatusError(1, os_error_text("stat", parent, FileNotFoundError(2, os.strerror(2))))
    if not os.path.isdir(parent):
        raise StatusError(1, "not a directory")
    return path, False, False


def _prepare_copy(
    source_path: str,
    source_is_dir: bool,
    rebase: str,
    destination: str,
    exists: bool,
    destination_is_dir: bool,
) -> tuple[str, str | None, str | None]:
    """PrepareArchiveCopy: where the archive goes, and how its names change (old, new)."""
    directory, base = _split_dir_entry(destination)
    source_base = rebase or _split_dir_entry(source_path)[1]
    if exists and destination_is_dir:
        return destination, None, None
    if exists and source_is_dir:
        raise StatusError(1, "cannot copy directory")
    if not exists and not source_is_dir and (destination.endswith("/") or base == "."):
        raise StatusError(1, "no such directory")
    return directory, source_base, base


def _copy_to_local(
    content: BinaryIO, source: str, is_dir: bool, rebase: str, destination: str
) -> int:
    """archive.CopyTo: extract ``content`` at ``destination`` as its source path asks;
    returns the bytes taken from ``content``."""
    path, exists, is_directory = _destination_info(destination)
    target, old, new = _prepare_copy(source, is_dir, rebase, path, exists, is_directory)
    if old is None:
        return _untar(content, target)
    with tempfile.TemporaryFile() as spooled:
        copied = _rebased_tar(content, old, new or "", spooled)
        spooled.seek(0)
        _untar(spooled, target)
    return copied


def _local_tar(source: str, follow: bool, target: BinaryIO) -> tuple[str, bool, str]:
    """TarResource of a local path: its entries named after its base (or "." and "./…"),
    the way the engine's extraction expects. Returns (resolved path, is a dir, rebase)."""
    if follow:
        resolved, rebase = _rebase_name(source, os.path.realpath(source))
    else:
        directory, base = os.path.split(source)
        resolved = os.path.realpath(directory or ".") + "/" + base
        rebase = ""
        if source.endswith("/") and os.path.basename(source) != os.path.basename(resolved):
            rebase = os.path.basename(source)
    try:
        info = os.lstat(resolved)
    except OSError as error:
        raise StatusError(1, os_error_text("lstat", resolved, error)) from None
    directory, base = _split_dir_entry(resolved)
    with _tar_writer(target) as archive:
        root = os.path.join(directory, base)

        def name_of(relative: str) -> str:
            name = (
                base
                if relative == "."
                else (f"./{relative}" if base == "." else f"{base}/{relative}")
            )
            return name.replace(base, rebase, 1) if rebase else name

        def add(path: str, relative: str) -> None:
            member = archive.gettarinfo(path, arcname=name_of(relative))
            member.mtime = int(member.mtime)  # whole seconds, as Go's archive writes them
            if member.isreg():
                with open(path, "rb") as file:
                    archive.addfile(member, file)
            else:
                archive.addfile(member)

        def add_tree(path: str, relative: str) -> None:
            for entry in sorted(os.listdir(path)):
                full, inner = os.path.join(path, entry), os.path.join(relative, entry)
                add(full, inner)
                if os.path.isdir(full) and not os.path.islink(full):
                    add_tree(full, inner)

        add(root, ".")
        if stat.S_ISDIR(info.st_mode):
            add_tree(root, "")
    return resolved, stat.S_ISDIR(info.st_mode), rebase


def _copy_to_container(
    context: Context, options: Options, container: str, source: str, destination: str, quiet: bool
) -> None:
    if source != "-":
        source = _preserve_trailing(os.path.abspath(source), source)
    target_path = destination
    found = _path_stat(context, container, destination)
    if found and int(found.get("mode", 0)) & GO_MODE_SYMLINK:
        link = found.get("linkTarget", "")
        if not link.startswith("/"):
            link = os.path.join(_split_dir_entry(destination)[0], link)
        target_path = link
        found = _path_stat(context, container, link)
    if found and int(found.get("mode", 0)) & (GO_MODE_DEVICE | GO_MODE_IRREGULAR):
        what = "got a device" if int(found["mode"]) & GO_MODE_DEVICE else "got an irregular file"
        raise StatusError(
            1,
            f'destination "{container}:{destination}" must be a directory or a regular file: '
            f"{what}",
        )
    exists = found is not None
    is_dir = exists and bool(int(found.get("mode", 0)) & GO_MODE_DIR)
    params_path = target_path
    copied = 0
    with contextlib.ExitStack() as stack:
        if source == "-":
            if not is_dir:
                raise StatusError(1, f'destination "{container}:{destination}" must be a directory')
            content: Any = binary(context.stdin)
        else:
            spooled = stack.enter_context(tempfile.TemporaryFile())
            resolved, source_is_dir, rebase = _local_tar(source, options["follow-link"], spooled)
            spooled.seek(0)
            params_path, old, new = _prepare_copy(
                resolved, source_is_dir, rebase, target_path, exists, is_dir
            )
            if old is not None:
                rebased = stack.enter_context(tempfile.TemporaryFile())
                _rebased_tar(spooled, old, new or "", rebased)
                rebased.seek(0)
                spooled = rebased
            copied = spooled.seek(0, os.SEEK_END)
            spooled.seek(0)
            content = spooled
        params = {"copyUIDGID": "true" if options["archive"] else None}
        params = {"noOverwriteDirNonDir": "true", "path": params_path, **params}
        context.client.request(
            "PUT", container_path(container, "/archive"), dict(sorted(params.items())), content
        ).read()
    if not quiet:
        size = human_size_with_precision(copied, 3)
        context.err(f"Successfully copied {size} to {container}:{target_path}")


def _cp(context: Context, options: Options, args: list[str]) -> None:
    if not args[0]:
        raise StatusError(1, "source can not be empty")
    if not args[1]:
        raise StatusError(1, "destination can not be empty")
    quiet = options["quiet"]
    if not options.given("quiet"):
        quiet = not terminal.is_terminal(file_descriptor(context.stdout))
    source_container, source = _split_cp_arg(args[0])
    target_container, target = _split_cp_arg(args[1])
    if source_container and target_container:
        raise StatusError(1, "copying between containers is not supported")
    if source_container:
        _copy_from_container(context, options, source_container, source, target, quiet)
    elif target_container:
        _copy_to_container(context, options, target_container, source, target, quiet)
    else:
        raise StatusError(1, "must specify at least one container source")


# -- flags and commands -------------------------------------------------------------------------

CGROUPNS_HELP = (
    "Cgroup namespace to use (host|private)\n"
    "'host':    Run the container in the Docker host's cgroup namespace\n"
    "'private': Run the container in its own private cgroup namespace\n"
    "'':        Use the cgroup namespace as configured by the\n"
    "           default-cgroupns-mode option on the daemon (default)"
)


def _list(name: str, short: str, help_text: str, **extra: Any) -> Flag:
    return Flag(name, short, "list", help_text, **extra)


def _text(name: str, short: str, help_text: str, **extra: Any) -> Flag:
    return Flag(name, short, "string", help_text, default=extra.pop("default", ""), **extra)


def _number(name: str, short: str, help_text: str, kind: str = "int", **extra: Any) -> Flag:
    return Flag(name, short, kind, help_text, default=extra.pop("default", 0), **extra)


def _sized(name: str, short: str, help_text: str, **extra: Any) -> Flag:
    parse = extra.pop("parse", ram_in_bytes)
    return Flag(name, short, "bytes", help_text, default=0, parse=parse, **extra)


def _duration(name: str, help_text: str) -> Flag:
    return Flag(name, "", "duration", help_text, default=0, parse=parse_duration)


def container_flags(verb: str) -> list[Flag]:
    """The flags of ``docker run`` (verb "running") and ``docker create`` ("creating")."""
    pulls = f'"{PULL_ALWAYS}", "{PULL_MISSING}", "{PULL_NEVER}"'
    if verb == "creating":
        pulls = f'"{PULL_ALWAYS}", "|{PULL_MISSING}", "{PULL_NEVER}"'
    device_list = {"shown_default": "[]"}
    return [
        Flag("help", help="Print usage"),
        _text("name", "", "Assign a name to the container"),
        _text("pull", "", f"Pull image before {verb} ({pulls})", default=PULL_MISSING,
              shown_default=f'"{PULL_MISSING}"'),
        Flag("quiet", "q", help="Suppress the pull output"),
        Flag("use-api-socket", help="Bind mount Docker API socket and required auth"),
        _text("platform", "", "Set platform if server is multi-platform capable",
              default=os.environ.get("DOCKER_DEFAULT_PLATFORM", "")),
        Flag("disable-content-trust", help="Skip image verification", default=True,
             shown_default="true"),
        _list("attach", "a", "Attach to STDIN, STDOUT or STDERR", parse=attach_value),
        _list("device-cgroup-rule", "", "Add a rule to the cgroup allowed devices list",
              parse=device_cgroup_rule_value),
        _list("device", "", "Add a host device to the container"),
        Flag("gpus", "", "gpu-request",
             "GPU devices to add to the container ('all' to pass all GPUs)", parse=gpu_value),
        _list("env", "e", "Set environment variables", parse=env_value),
        _list("env-file", "", "Read in a file of environment variables"),
        _text("entrypoint", "", "Overwrite the default ENTRYPOINT of the image"),
        _list("group-add", "", "Add additional groups to join"),
        _text("hostname", "h", "Container host name"),
        _text("domainname", "", "Container NIS domain name"),
        Flag("interactive", "i", help="Keep STDIN open even if not attached"),
        _list("label", "l", "Set meta data on a container", parse=label_value),
        _list("label-file", "", "Read in a line delimited file of labels"),
        Flag("read-only", help="Mount the container's root filesystem as read only"),
        _text("restart", "", "Restart policy to apply when a container exits", default="no",
              shown_default='"no"'),
        _text("stop-signal", "", "Signal to stop the container"),
        _number("stop-timeout", "", "Timeout (in seconds) to stop a container"),
        Flag("sysctl", "", "map", "Sysctl options", shown_default="map[]",
             parse=_map_value(sysctl_value)),
        Flag("tty", "t", help="Allocate a pseudo-TTY"),
        Flag("ulimit", "", "ulimit", "Ulimit options", shown_default="[]", parse=ulimit_value),
        _text("user", "u", "Username or UID (format: <name|uid>[:<group|gid>])"),
        _text("workdir", "w", "Working directory inside the container"),
        Flag("rm", help="Automatically remove the container and its associated anonymous "
             "volumes when it exits"),
        _list("cap-add", "", "Add Linux capabilities"),
        _list("cap-drop", "", "Drop Linux capabilities"),
        Flag("privileged", help="Give extended privileges to this container"),
        _list("security-opt", "", "Security Options"),
        _text("userns", "", "User namespace to use"),
        _text("cgroupns", "", CGROUPNS_HELP),
        _list("add-host", "", "Add a custom host-to-IP mapping (host:ip)",
              parse=extra_host_value),
        _list("dns", "", "Set custom DNS servers", parse=ip_value),
        _list("dns-opt", "", "Set DNS options", hidden=True),
        _list("dns-option", "", "Set DNS options"),
        _list("dns-search", "", "Set custom DNS search domains", parse=dns_search_value),
        _list("expose", "", "Expose a port or a range of ports"),
        _text("ip", "", "IPv4 address (e.g., 172.30.100.104)"),
        _text("ip6", "", "IPv6 address (e.g., 2001:db8::33)"),
        _list("link", "", "Add link to another container", parse=link_value),
        _list("link-local-ip", "", "Container IPv4/IPv6 link-local addresses"),
        _text("mac-address", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
        _list("publish", "p", "Publish a container's port(s) to the host"),
        Flag("publish-all", "P", help="Publish all exposed ports to random ports"),
        Flag("net", "", "network", "Connect a container to a network", hidden=True,
             parse=network_value),
        Flag("network", "", "network", "Connect a container to a network",
             parse=network_value),
        _list("net-alias", "", "Add network-scoped alias for the container", hidden=True),
        _list("network-alias", "", "Add network-scoped alias for the container"),
        _text("log-driver", "", "Logging driver for the container"),
        _text("volume-driver", "", "Optional volume driver for the container"),
        _list("log-opt", "", "Log driver options"),
        _list("storage-opt", "", "Storage driver options for the container"),
        _list("tmpfs", "", "Mount a tmpfs directory"),
        _list("volumes-from", "", "Mount volumes from the specified container(s)"),
        _list("volume", "v", "Bind mount a volume"),
        Flag("mount", "", "mount", "Attach a filesystem mount to the container",
             parse=mount_value),
        _text("health-cmd", "", "Command to run to check health"),
        _duration("health-interval", "Time between running the check (ms|s|m|h) (default 0s)"),
        _number("health-retries", "", "Consecutive failures needed to report unhealthy"),
        _duration("health-timeout",
                  "Maximum time to allow one check to run (ms|s|m|h) (default 0s)"),
        _duration("health-start-period",
                  "Start period for the container to initialize before starting "
                  "health-retries countdown (ms|s|m|h) (default 0s)"),
        _duration("health-start-interval",
                  "Time between running the check during the start period (ms|s|m|h) "
                  "(default 0s)"),
        Flag("no-healthcheck", help="Disable any container-specified HEALTHCHECK"),
        _number("blkio-weight", "", "Block IO (relative weight), between 10 and 1000, or 0 to "
                "disable (default 0)", kind="uint16",
                parse=lambda text: go_int(text, 16, unsigned=True)),
        _list("blkio-weight-device", "", "Block IO weight (relative device weight)",
              parse=weight_device_value, **device_list),
        _text("cidfile", "", "Write the container ID to the file"),
        _text("cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)"),
        _text("cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)"),
        _number("cpu-count", "", "CPU count (Windows only)", needs="windows"),
        _number("cpu-percent", "", "CPU percent (Windows only)", needs="windows"),
        _number("cpu-period", "", "Limit CPU CFS (Completely Fair Scheduler) period"),
        _number("cpu-quota", "", "Limit CPU CFS (Completely Fair Scheduler) quota"),
        _number("cpu-rt-period", "", "Limit CPU real-time period in microseconds"),
        _number("cpu-rt-runtime", "", "Limit CPU real-time runtime in microseconds"),
        _number("cpu-shares", "c", "CPU shares (relative weight)"),
        Flag("cpus", "", "decimal", "Number of CPUs", default=0, parse=nano_cpus),
        _list("device-read-bps", "", "Limit read rate (bytes per second) from a device",
              parse=throttle_bps_value, **device_list),
        _list("device-read-iops", "", "Limit read rate (IO per second) from a device",
              parse=throttle_iops_value, **device_list),
        _list("device-write-bps", "", "Limit write rate (bytes per second) to a device",
              parse=throttle_bps_value, **device_list),
        _list("device-write-iops", "", "Limit write rate (IO per second) to a device",
              parse=throttle_iops_value, **device_list),
        _sized("io-maxbandwidth", "",
               "Maximum IO bandwidth limit for the system drive (Windows only)",
               needs="windows"),
        _number("io-maxiops", "", "Maximum IOps limit for the system drive (Windows only)",
                kind="uint", parse=lambda text: go_int(text, 64, unsigned=True),
                needs="windows"),
        _sized("kernel-memory", "", "Kernel memory limit"),
        _sized("memory", "m", "Memory limit"),
        _sized("memory-reservation", "", "Memory soft limit"),
        _sized("memory-swap", "", "Swap limit equal to memory plus swap: '-1' to enable "
               "unlimited swap", parse=memory_swap),
        _number("memory-swappiness", "", "Tune container memory swappiness (0 to 100)",
                default=-1, shown_default="-1"),
        Flag("oom-kill-disable", help="Disable OOM Killer"),
        _number("oom-score-adj", "", "Tune host's OOM preferences (-1000 to 1000)"),
        _number("pids-limit", "", "Tune container pids limit (set -1 for unlimited)"),
        _text("cgroup-parent", "", "Optional parent cgroup for the container"),
        _text("ipc", "", "IPC mode to use"),
        _text("isolation", "", "Container isolation technology"),
        _text("pid", "", "PID namespace to use"),
        _sized("shm-size", "", "Size of /dev/shm"),
        _text("uts", "", "UTS namespace to use"),
        _text("runtime", "", "Runtime to use for this container"),
        Flag("init", help="Run an init inside the container that forwards signals and reaps "
             "processes"),
        Flag("annotation", "", "map", "Add an annotation to the container (passed through to "
             "the OCI runtime)", shown_default="map[]", parse=_map_value()),
    ]  # fmt: skip


def _merge_aliases(options: Options) -> None:
    """The hidden spellings (--net, --net-alias, --dns-opt) add to the documented ones."""
    for hidden, shown in (("net", "network"), ("net-alias", "network-alias"),
                          ("dns-opt", "dns-option")):  # fmt: skip
        if options[hidden]:
            options[shown] = options[hidden] + options[shown]


def _with_api_socket(context: Context, options: Options) -> None:
    """--use-api-socket: the engine's socket bind-mounted at /var/run/docker.sock."""
    if not options["use-api-socket"]:
        return
    host = context.client.host
    if not host.startswith("unix://"):
        raise ValueError(
            "flag --use-api-socket can only be used with unix sockets: docker endpoint "
            f"{host} incompatible"
        )
    socket_mount = GoStruct(Type="bind", Source=host.removeprefix("unix://"))
    socket_mount.update(Target="/var/run/docker.sock", BindOptions=GoStruct())
    options["mount"] = [*options["mount"], socket_mount]


PROXY_SETTINGS = (
    ("httpProxy", "HTTP_PROXY"),
    ("httpsProxy", "HTTPS_PROXY"),
    ("noProxy", "NO_PROXY"),
    ("ftpProxy", "FTP_PROXY"),
    ("allProxy", "ALL_PROXY"),
)


def _with_proxies(context: Context, values: list[str]) -> list[str]:
    """runCreate's ParseProxyConfig: the -e values as a map (the last value of a name wins),
    with the config file's proxies for this engine (or its "default" ones) added as
    HTTP_PROXY and http_proxy … where -e didn't set them."""
    env: dict[str, str | None] = {}
    for value in values:
        name, equals, text = value.partition("=")
        env[name] = text if equals else None
    proxies = load_config(context).get("proxies") or {}
    settings = proxies.get(context.client.host) or proxies.get("default") or {}
    for key, name in PROXY_SETTINGS:
        if settings.get(key):
            env.setdefault(name, settings[key])
            env.setdefault(name.lower(), settings[key])
    return [name if text is None else f"{name}={text}" for name, text in env.items()]


def _prepared(run: Callable[[Context, Options, list[str]], Any]) -> Callable[..., Any]:
    def prepared(context: Context, options: Options, args: list[str]) -> Any:
        _merge_aliases(options)
        options["env"] = _with_proxies(context, options["env"])
        try:
            _with_api_socket(context, options)
        except ValueError as error:
            raise StatusError(1, str(error)) from None
        return run(context, options, args)

    return prepared


def _run_command() -> Command:
    return Command(
        "run",
        usage="[OPTIONS] IMAGE [COMMAND] [ARG...]",
        short="Create and run a new container from an image",
        run=_prepared(_run),
        args=Args(1, None),
        also=["docker container run", "docker run"],
        interspersed=False,
        flags=[
            Flag("detach", "d", help="Run container in background and print container ID"),
            Flag("sig-proxy", help="Proxy received signals to the process", default=True,
                 shown_default="true"),
            _text("detach-keys", "", "Override the key sequence for detaching a container"),
            *container_flags("running"),
        ],
    )  # fmt: skip


def _create_command() -> Command:
    return Command(
        "create",
        usage="[OPTIONS] IMAGE [COMMAND] [ARG...]",
        short="Create a new container",
        run=_prepared(_create),
        args=Args(1, None),
        also=["docker container create", "docker create"],
        interspersed=False,
        flags=container_flags("creating"),
    )


def _start_command() -> Command:
    return Command(
        "start",
        usage="[OPTIONS] CONTAINER [CONTAINER...]",
        short="Start one or more stopped containers",
        run=_start,
        args=Args(1, None),
        also=["docker container start", "docker start"],
        flags=[
            Flag("attach", "a", help="Attach STDOUT/STDERR and forward signals"),
            _text("checkpoint", "", "Restore from this checkpoint", needs="experimental"),
            _text(
                "checkpoint-dir",
                "",
                "Use a custom checkpoint storage directory",
                needs="experimental",
            ),
            _text("detach-keys", "", "Override the key sequence for detaching a container"),
            Flag("interactive", "i", help="Attach container's STDIN"),
        ],
    )


def _stop_flags() -> list[Flag]:
    return [
        _text("signal", "s", "Signal to send to the container"),
        _number("timeout", "t", "Seconds to wait before killing the container"),
        _number("time", "", "Seconds to wait before killing the container (deprecated: use "
                "--timeout)", hidden=True),
    ]  # fmt: skip


def _targets_command(
    name: str, usage: str, short: str, run: Callable[..., Any], flags: list[Flag] | None = None
) -> Command:
    """A command taking one or more containers: stop, kill, pause, rm …"""
    return Command(
        name,
        usage=usage,
        short=short,
        run=run,
        args=Args(1, None),
        also=[f"docker container {name}", f"docker {name}"],
        flags=flags or [],
    )


def _ps_command(name: str) -> Command:
    command = Command(
        name,
        usage="[OPTIONS]",
        short="List containers",
        args=NO_ARGS,
        aliases=["ps", "list"] if name == "ls" else [],
        also=["docker container ls", "docker container list", "docker container ps", "docker ps"],
        flags=[
            Flag("all", "a", help="Show all containers (default shows just running)"),
            Flag("filter", "f", "filter", "Filter output based on conditions provided"),
            _text("format", "", FORMAT_HELP),
            _number("last", "n", "Show n last created containers (includes all states)",
                    default=-1, shown_default="-1"),
            Flag("latest", "l", help="Show the latest created container (includes all states)"),
            Flag("no-trunc", help="Don't truncate output"),
            Flag("quiet", "q", help="Only display container IDs"),
            Flag("size", "s", help="Display total file sizes"),
        ],
    )  # fmt: skip
    return with_command(command, _ps)


def _logs_command() -> Command:
    since = 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" '
    until = 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" '
    return Command(
        "logs",
        usage="[OPTIONS] CONTAINER",
        short="Fetch the logs of a container",
        run=_logs,
        args=Args(1, 1),
        also=["docker container logs", "docker logs"],
        flags=[
            Flag("details", help="Show extra details provided to logs"),
            Flag("follow", "f", help="Follow log output"),
            _text("since", "", since + "for 42 minutes)"),
            _text("tail", "n", "Number of lines to show from the end of the logs",
                  default="all", shown_default='"all"'),
            Flag("timestamps", "t", help="Show timestamps"),
            _text("until", "", until + "for 42 minutes)"),
        ],
    )  # fmt: skip


def _attach_command() -> Command:
    return Command(
        "attach",
        usage="[OPTIONS] CONTAINER",
        short="Attach local standard input, output, and error streams to a running container",
        run=_attach,
        args=Args(1, 1),
        also=["docker container attach", "docker attach"],
        flags=[
            _text("detach-keys", "", "Override the key sequence for detaching a container"),
            Flag("no-stdin", help="Do not attach STDIN"),
            Flag("sig-proxy", help="Proxy all received signals to the process", default=True,
                 shown_default="true"),
        ],
    )  # fmt: skip


def _exec_command() -> Command:
    return Command(
        "exec",
        usage="[OPTIONS] CONTAINER COMMAND [ARG...]",
        short="Execute a command in a running container",
        run=_exec,
        args=Args(2, None),
        also=["docker container exec", "docker exec"],
        interspersed=False,
        flags=[
            Flag("detach", "d", help="Detached mode: run command in the background"),
            _text("detach-keys", "", "Override the key sequence for detaching a container"),
            _list("env", "e", "Set environment variables", parse=env_value),
            _list("env-file", "", "Read in a file of environment variables"),
            Flag("interactive", "i", help="Keep STDIN open even if not attached"),
            Flag("privileged", help="Give extended privileges to the command"),
            Flag("tty", "t", help="Allocate a pseudo-TTY"),
            _text("user", "u", 'Username or UID (format: "<name|uid>[:<group|gid>]")'),
            _text("workdir", "w", "Working directory inside the container"),
        ],
    )


def _cp_command() -> Command:
    return Command(
        "cp",
        usage="[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n"
        "\tdocker cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
        short="Copy files/folders between a container and the local filesystem",
        description="Copy files/folders between a container and the local filesystem\n\n"
        "Use '-' as the source to read a tar archive from stdin\n"
        "and extract it to a directory destination in a container.\n"
        "Use '-' as the destination to stream a tar archive of a\n"
        "container source to stdout.",
        run=_cp,
        args=Args(2, 2),
        also=["docker container cp", "docker cp"],
        flags=[
            Flag("archive", "a", help="Archive mode (copy all uid/gid information)"),
            Flag("follow-link", "L", help="Always follow symbol link in SRC_PATH"),
            Flag("quiet", "q", help="Suppress progress output during copy. Progress output is "
                 "automatically suppressed if no terminal is attached"),
        ],
    )  # fmt: skip


def _one_container_command(
    name: str, usage: str, short: str, run: Callable[..., Any], args: Args, **extra: Any
) -> Command:
    return Command(
        name,
        usage=usage,
        short=short,
        run=run,
        args=args,
        also=[f"docker container {name}", f"docker {name}"],
        **extra,
    )


def _container_commands() -> list[Command]:
    """One copy of every command that exists both top-level and under ``docker container``."""
    containers = "CONTAINER [CONTAINER...]"
    return [
        _run_command(),
        _create_command(),
        _start_command(),
        _targets_command("stop", f"[OPTIONS] {containers}", "Stop one or more running containers",
                         _stop, _stop_flags()),
        _targets_command("restart", f"[OPTIONS] {containers}", "Restart one or more containers",
                         _restart, _stop_flags()),
        _targets_command("kill", f"[OPTIONS] {containers}", "Kill one or more running containers",
                         _kill, [_text("signal", "s", "Signal to send to the container")]),
        _targets_command("pause", containers, "Pause all processes within one or more "
                         "containers", _simple("pause")),
        _targets_command("unpause", containers, "Unpause all processes within one or more "
                         "containers", _simple("unpause")),
        _targets_command("wait", containers, "Block until one or more containers stop, then "
                         "print their exit codes", _wait),
        _logs_command(),
        _attach_command(),
        _exec_command(),
        _cp_command(),
        _one_container_command(
            "top", "CONTAINER [ps OPTIONS]", "Display the running processes of a container",
            _top, Args(1, None), interspersed=False),
        _one_container_command("rename", "CONTAINER NEW_NAME", "Rename a container", _rename,
                               Args(2, 2)),
        _one_container_command(
            "port", "CONTAINER [PRIVATE_PORT[/PROTO]]",
            "List port mappings or a specific mapping for the container", _port, Args(1, 2)),
        _one_container_command(
            "export", "[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive",
            _export, Args(1, 1),
            flags=[_text("output", "o", "Write to a file, instead of STDOUT")]),
    ]  # fmt: skip


def _remove_command(aliases: list[str]) -> Command:
    command = _targets_command(
        "rm",
        "[OPTIONS] CONTAINER [CONTAINER...]",
        "Remove one or more containers",
        _remove,
        [
            Flag("force", "f", help="Force the removal of a running container (uses SIGKILL)"),
            Flag("link", "l", help="Remove the specified link"),
            Flag("volumes", "v", help="Remove anonymous volumes associated with the container"),
        ],
    )
    command.also = ["docker container rm", "docker container remove", "docker rm"]
    command.aliases = aliases
    return command


def _inspect_command() -> Command:
    return Command(
        "inspect",
        usage="[OPTIONS] NAME|ID [NAME|ID...]",
        short="Return low-level information on Docker objects",
        run=_inspect,
        args=Args(1, None),
        flags=[
            _text("format", "f", INSPECT_FORMAT_HELP),
            Flag("size", "s", help="Display total file sizes if the type is container"),
            _text("type", "", "Only inspect objects of the given type"),
        ],
    )


def _container_inspect_command() -> Command:
    return Command(
        "inspect",
        usage="[OPTIONS] CONTAINER [CONTAINER...]",
        short="Display detailed information on one or more containers",
        run=_container_inspect,
        args=Args(1, None),
        flags=[
            _text("format", "f", INSPECT_FORMAT_HELP),
            Flag("size", "s", help="Display total file sizes"),
        ],
    )


def _prune_command() -> Command:
    command = Command(
        "prune",
        usage="[OPTIONS]",
        short="Remove all stopped containers",
        args=NO_ARGS,
        flags=[
            Flag("filter", kind="filter", help='Provide filter values (e.g. "until=<timestamp>")'),
            Flag("force", "f", help="Do not prompt for confirmation"),
        ],
    )
    return with_command(command, _prune)


def register(root: Command, groups: dict[str, Command]) -> None:
    """Add the container commands: top-level, and under ``docker container``."""
    for command in [*_container_commands(), _remove_command([]), _ps_command("ps")]:
        if command.name in ("run", "exec", "ps"):
            command.group = "Common Commands"
        root.add(command)
    root.add(_inspect_command())
    groups["container"].add(
        *_container_commands(),
        _remove_command(["remove"]),
        _ps_command("ls"),
        _container_inspect_command(),
        _prune_command(),
    )
