"""From a Docker ``POST /containers/create`` body to an OCI runtime config.json.

``parse_create_body`` reads the body as dockerd's Go decoder does (its field names, its
errors) and makes Docker's create-time checks; ``check_allowed`` holds HostConfig to
Slipway's allowlist; ``build_spec`` lays the request over simulator.runtime.defaults.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import posixpath
import re
import signal
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from simulator.images.oci import ImageConfig
from simulator.linux.fs import mkdir_all_in_root, open_in_root
from simulator.runtime import defaults
from simulator.runtime.capabilities import CAP_NUMBERS
from simulator.runtime.mounts import secure_join

DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 << 20
MIN_MEMORY = 6 << 20  # dockerd's floor for Memory and MemoryReservation
MAX_ID = (1 << 31) - 1

STDIN_ANNOTATION = "org.slipway.stdin"
PIDNS_PARENT_ANNOTATION = "org.slipway.pidns.parent"
RESERVED_ANNOTATION_PREFIX = "org.slipway."

# Sysctls a container may set. Like runc, only those the kernel keeps per IPC or network
# namespace; unlike runc, not the network ones that are host-wide in effect (shared tables,
# global memory pools, bridge netfilter). Kubernetes' "safe" list is a subset of this.
SAFE_IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)
SAFE_SYSCTL_PREFIXES = ("fs.mqueue.", "net.")
UNSAFE_NET_SYSCTL_PREFIXES = (
    "net.core.",
    "net.netfilter.",
    "net.nf_conntrack_max",
    "net.bridge.",
    "net.ipv4.vs.",
    "net.ipv4.tcp_mem",
    "net.ipv4.udp_mem",
    "net.sctp.sctp_mem",
)

# Security options that would switch part of the default profile off.
_UNCONFINED = "unconfined"
_SUPER_PRIVILEGED_LABEL_TYPES = ("spc_t", "unconfined_t")

_LOCAL_VOLUME_MOUNT_OPTIONS = ("type", "o", "device")
_LOG_DRIVERS = ("json-file",)
_JSON_FILE_LOG_OPTIONS = frozenset(
    {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"}
)
_RUNTIMES = ("", "runc", "slipway")
_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_CONSISTENCIES = ("consistent", "cached", "delegated")
_HOSTNAME = re.compile(
    r"(([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])\.)*"
    r"([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
)
_GO_ATOI = re.compile(r"[+-]?[0-9]+")
_DIGITS = re.compile(r"[0-9]+")
# The flags a tmpfs mount takes, each with the group it belongs to: of flags that cancel each
# other (ro and rw, the propagation modes, ...) the last one given wins, as in moby. bind,
# rbind and remount are not here: they would not make a tmpfs at all.
_TMPFS_FLAG_GROUPS = MappingProxyType({
    "ro": "ro", "rw": "ro", "suid": "suid", "nosuid": "suid", "dev": "dev", "nodev": "dev",
    "exec": "exec", "noexec": "exec", "sync": "sync", "async": "sync", "dirsync": "dirsync",
    "mand": "mand", "nomand": "mand", "atime": "atime", "noatime": "atime",
    "diratime": "diratime", "nodiratime": "diratime", "relatime": "relatime",
    "norelatime": "relatime", "strictatime": "strictatime", "nostrictatime": "strictatime",
    **{name: "propagation" for name in _PROPAGATIONS + ("unbindable", "runbindable")},
})  # fmt: skip
_TMPFS_DATA_KEYS = frozenset({"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"})


class CreateError(Exception):
    """A create request that Docker refuses (400), that Slipway's allowlist refuses (403), or
    that can't be carried out (404, 500, 501). ``status`` is the HTTP status to answer with;
    the message is in Docker's words where Docker has words for it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad(message: str) -> CreateError:
    return CreateError(400, message)


def _refused(message: str) -> CreateError:
    return CreateError(403, message)


# -- The body as Go's encoding/json sees it ----------------------------------------------------


@dataclass(frozen=True)
class _GoType:
    """A Go type, as far as decoding JSON into it goes. ``name`` is how Go prints the type."""

    name: str
    kind: str  # string bool int uint strslice slice array map struct pointer
    elem: _GoType | None = None
    fields: tuple[tuple[str, _GoType], ...] = ()
    bits: int = 64
    length: int = 0

    @property
    def struct_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def _string(name: str = "string") -> _GoType:
    return _GoType(name, "string")


def _int(name: str = "int64", bits: int = 64) -> _GoType:
    return _GoType(name, "int", bits=bits)


def _uint(name: str, bits: int) -> _GoType:
    return _GoType(name, "uint", bits=bits)


def _slice(elem: _GoType, name: str | None = None) -> _GoType:
    return _GoType(name or f"[]{elem.name}", "slice", elem)


def _map(elem: _GoType, name: str | None = None) -> _GoType:
    return _GoType(name or f"map[string]{elem.name}", "map", elem)


def _struct(name: str, *fields: tuple[str, _GoType]) -> _GoType:
    return _GoType(name, "struct", fields=fields)


def _pointer(elem: _GoType) -> _GoType:
    return _GoType(elem.name, "pointer", elem)


_STRING = _string()
_BOOL = _GoType("bool", "bool")
_INT64 = _int()
_INT = _int("int")
_DURATION = _int("time.Duration")
_STRINGS = _slice(_STRING)
_STRSLICE = _GoType("strslice.StrSlice", "strslice")
_STRING_MAP = _map(_STRING)
_EMPTY_STRUCT = _struct("struct {}")

_HEALTHCHECK = _struct(
    "v1.HealthcheckConfig",
    ("Test", _STRINGS),
    ("Interval", _DURATION),
    ("Timeout", _DURATION),
    ("StartPeriod", _DURATION),
    ("StartInterval", _DURATION),
    ("Retries", _INT),
)
_CONFIG_FIELDS: tuple[tuple[str, _GoType], ...] = (
    ("Hostname", _STRING),
    ("Domainname", _STRING),
    ("User", _STRING),
    ("AttachStdin", _BOOL),
    ("AttachStdout", _BOOL),
    ("AttachStderr", _BOOL),
    ("ExposedPorts", _map(_EMPTY_STRUCT, "nat.PortSet")),
    ("Tty", _BOOL),
    ("OpenStdin", _BOOL),
    ("StdinOnce", _BOOL),
    ("Env", _STRINGS),
    ("Cmd", _STRSLICE),
    ("Healthcheck", _pointer(_HEALTHCHECK)),
    ("ArgsEscaped", _BOOL),
    ("Image", _STRING),
    ("Volumes", _map(_EMPTY_STRUCT)),
    ("WorkingDir", _STRING),
    ("Entrypoint", _STRSLICE),
    ("NetworkDisabled", _BOOL),
    ("MacAddress", _STRING),
    ("OnBuild", _STRINGS),
    ("Labels", _STRING_MAP),
    ("StopSignal", _STRING),
    ("StopTimeout", _pointer(_INT)),
    ("Shell", _STRSLICE),
)
_THROTTLE_DEVICES = _slice(
    _struct("blkiodev.ThrottleDevice", ("Path", _STRING), ("Rate", _uint("uint64", 64))),
    "[]*blkiodev.ThrottleDevice",
)
_MOUNT = _struct(
    "mount.Mount",
    ("Type", _string("mount.Type")),
    ("Source", _STRING),
    ("Target", _STRING),
    ("ReadOnly", _BOOL),
    ("Consistency", _string("mount.Consistency")),
    (
        "BindOptions",
        _pointer(
            _struct(
                "mount.BindOptions",
                ("Propagation", _string("mount.Propagation")),
                ("NonRecursive", _BOOL),
                ("CreateMountpoint", _BOOL),
                ("ReadOnlyNonRecursive", _BOOL),
                ("ReadOnlyForceRecursive", _BOOL),
            )
        ),
    ),
    (
        "VolumeOptions",
        _pointer(
            _struct(
                "mount.VolumeOptions",
                ("NoCopy", _BOOL),
                ("Labels", _STRING_MAP),
                ("Subpath", _STRING),
                (
                    "DriverConfig",
                    _pointer(_struct("mount.Driver", ("Name", _STRING), ("Options", _STRING_MAP))),
                ),
            )
        ),
    ),
    ("ImageOptions", _pointer(_struct("mount.ImageOptions", ("Subpath", _STRING)))),
    (
        "TmpfsOptions",
        _pointer(
            _struct(
                "mount.TmpfsOptions",
                ("SizeBytes", _INT64),
                ("Mode", _uint("fs.FileMode", 32)),
                ("Options", _slice(_STRINGS)),
            )
        ),
    ),
    ("ClusterOptions", _pointer(_struct("mount.ClusterOptions"))),
)
_HOST_CONFIG_FIELDS: tuple[tuple[str, _GoType], ...] = (
    ("Binds", _STRINGS),
    ("ContainerIDFile", _STRING),
    ("LogConfig", _struct("container.LogConfig", ("Type", _STRING), ("Config", _STRING_MAP))),
    ("NetworkMode", _string("container.NetworkMode")),
    (
        "PortBindings",
        _map(
            _slice(
                _struct("nat.PortBinding", ("HostIp", _STRING), ("HostPort", _STRING)),
                "[]nat.PortBinding",
            ),
            "nat.PortMap",
        ),
    ),
    (
        "RestartPolicy",
        _struct(
            "container.RestartPolicy",
            ("Name", _string("container.RestartPolicyMode")),
            ("MaximumRetryCount", _INT),
        ),
    ),
    ("AutoRemove", _BOOL),
    ("VolumeDriver", _STRING),
    ("VolumesFrom", _STRINGS),
    ("ConsoleSize", _GoType("[2]uint", "array", _uint("uint", 64), length=2)),
    ("Annotations", _STRING_MAP),
    ("CapAdd", _STRSLICE),
    ("CapDrop", _STRSLICE),
    ("CgroupnsMode", _string("container.CgroupnsMode")),
    ("Dns", _STRINGS),
    ("DnsOptions", _STRINGS),
    ("DnsSearch", _STRINGS),
    ("ExtraHosts", _STRINGS),
    ("GroupAdd", _STRINGS),
    ("IpcMode", _string("container.IpcMode")),
    ("Cgroup", _string("container.CgroupSpec")),
    ("Links", _STRINGS),
    ("OomScoreAdj", _INT),
    ("PidMode", _string("container.PidMode")),
    ("Privileged", _BOOL),
    ("PublishAllPorts", _BOOL),
    ("ReadonlyRootfs", _BOOL),
    ("SecurityOpt", _STRINGS),
    ("StorageOpt", _STRING_MAP),
    ("Tmpfs", _STRING_MAP),
    ("UTSMode", _string("container.UTSMode")),
    ("UsernsMode", _string("container.UsernsMode")),
    ("ShmSize", _INT64),
    ("Sysctls", _STRING_MAP),
    ("Runtime", _STRING),
    ("Isolation", _string("container.Isolation")),
    # Resources, embedded in HostConfig.
    ("CpuShares", _INT64),
    ("Memory", _INT64),
    ("NanoCpus", _INT64),
    ("CgroupParent", _STRING),
    ("BlkioWeight", _uint("uint16", 16)),
    (
        "BlkioWeightDevice",
        _slice(
            _struct("blkiodev.WeightDevice", ("Path", _STRING), ("Weight", _uint("uint16", 16))),
            "[]*blkiodev.WeightDevice",
        ),
    ),
    ("BlkioDeviceReadBps", _THROTTLE_DEVICES),
    ("BlkioDeviceWriteBps", _THROTTLE_DEVICES),
    ("BlkioDeviceReadIOps", _THROTTLE_DEVICES),
    ("BlkioDeviceWriteIOps", _THROTTLE_DEVICES),
    ("CpuPeriod", _INT64),
    ("CpuQuota", _INT64),
    ("CpuRealtimePeriod", _INT64),
    ("CpuRealtimeRuntime", _INT64),
    ("CpusetCpus", _STRING),
    ("CpusetMems", _STRING),
    (
        "Devices",
        _slice(
            _struct(
                "container.DeviceMapping",
                ("PathOnHost", _STRING),
                ("PathInContainer", _STRING),
                ("CgroupPermissions", _STRING),
            )
        ),
    ),
    ("DeviceCgroupRules", _STRINGS),
    (
        "DeviceRequests",
        _slice(
            _struct(
                "container.DeviceRequest",
                ("Driver", _STRING),
                ("Count", _INT),
                ("DeviceIDs", _STRINGS),
                ("Capabilities", _slice(_STRINGS)),
                ("Options", _STRING_MAP),
            )
        ),
    ),
    ("KernelMemory", _INT64),
    ("KernelMemoryTCP", _INT64),
    ("MemoryReservation", _INT64),
    ("MemorySwap", _INT64),
    ("MemorySwappiness", _pointer(_INT64)),
    ("OomKillDisable", _pointer(_BOOL)),
    ("PidsLimit", _pointer(_INT64)),
    (
        "Ulimits",
        _slice(
            _struct("units.Ulimit", ("Name", _STRING), ("Hard", _INT64), ("Soft", _INT64)),
            "[]*units.Ulimit",
        ),
    ),
    ("CpuCount", _INT64),
    ("CpuPercent", _INT64),
    ("IOMaximumIOps", _uint("uint64", 64)),
    ("IOMaximumBandwidth", _uint("uint64", 64)),
    # HostConfig again.
    ("Mounts", _slice(_MOUNT)),
    ("MaskedPaths", _STRINGS),
    ("ReadonlyPaths", _STRINGS),
    ("Init", _pointer(_BOOL)),
)
_HOST_CONFIG = _struct("container.HostConfig", *_HOST_CONFIG_FIELDS)
_ENDPOINT_SETTINGS = _struct(
    "network.EndpointSettings",
    (
        "IPAMConfig",
        _pointer(
            _struct(
                "network.EndpointIPAMConfig",
                ("IPv4Address", _STRING),
                ("IPv6Address", _STRING),
                ("LinkLocalIPs", _STRINGS),
            )
        ),
    ),
    ("Links", _STRINGS),
    ("Aliases", _STRINGS),
    ("MacAddress", _STRING),
    ("DriverOpts", _STRING_MAP),
    ("GwPriority", _INT),
    ("NetworkID", _STRING),
    ("EndpointID", _STRING),
    ("Gateway", _STRING),
    ("IPAddress", _STRING),
    ("IPPrefixLen", _INT),
    ("IPv6Gateway", _STRING),
    ("GlobalIPv6Address", _STRING),
    ("GlobalIPv6PrefixLen", _INT),
    ("DNSNames", _STRINGS),
)
_NETWORKING_CONFIG = _struct(
    "network.NetworkingConfig", ("EndpointsConfig", _map(_pointer(_ENDPOINT_SETTINGS)))
)
_CREATE_REQUEST = _struct(
    "container.CreateRequest",
    *_CONFIG_FIELDS,
    ("HostConfig", _pointer(_HOST_CONFIG)),
    ("NetworkingConfig", _pointer(_NETWORKING_CONFIG)),
)


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(what: str, go: _GoType, struct: str, path: tuple[str, ...]) -> CreateError:
    if struct:
        where = f"Go struct field {struct}.{'.'.join(path)}"
    else:
        where = "Go value"
    return _bad(f"invalid JSON: json: cannot unmarshal {what} into {where} of type {go.name}")


def _zero(go: _GoType) -> Any:
    if go.kind == "string":
        return ""
    if go.kind == "bool":
        return False
    if go.kind in ("int", "uint"):
        return 0
    if go.kind == "array":
        return [_zero(go.elem)] * go.length if go.elem else []
    if go.kind == "struct":
        return {name: _zero(kind) for name, kind in go.fields}
    return None  # slices, maps, pointers and StrSlice are nil


def _field(go: _GoType, key: str) -> tuple[str, _GoType] | None:
    """The struct field a JSON key sets: an exact match, else a case-insensitive one."""
    for name, kind in go.fields:
        if name == key:
            return name, kind
    folded = key.casefold()
    for name, kind in go.fields:
        if name.casefold() == folded:
            return name, kind
    return None


def _decode(value: object, go: _GoType, struct: str, path: tuple[str, ...]) -> Any:
    """Decode a parsed JSON value into Go type ``go``, failing as encoding/json does."""
    if value is None:
        return _zero(go)
    kind = go.kind
    if kind == "pointer":
        assert go.elem is not None
        return _decode(value, go.elem, struct, path)
    if kind == "string":
        if isinstance(value, str):
            return value
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind in ("int", "uint"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high = (
                (-(1 << (go.bits - 1)), (1 << (go.bits - 1)) - 1)
                if kind == "int"
                else (0, (1 << go.bits) - 1)
            )
            if isinstance(value, int) and low <= value <= high:
                return value
            raise _type_error(f"number {value!r}", go, struct, path)
    elif kind == "strslice":
        # Docker's StrSlice takes a string or a list of strings; failing both, it reports
        # the string attempt.
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(item is None or isinstance(item, str) for item in value):
            return [item or "" for item in value]
        raise _type_error(_json_kind(value), _STRING, struct, path)
    elif kind in ("slice", "array"):
        if isinstance(value, list):
            assert go.elem is not None
            items = [_decode(item, go.elem, struct, path) for item in value]
            if kind == "array":
                items = (items + [_zero(go.elem)] * go.length)[: go.length]
            return items
    elif kind == "map":
        if isinstance(value, dict):
            assert go.elem is not None
            return {key: _decode(item, go.elem, struct, path) for key, item in value.items()}
    elif kind == "struct":
        if isinstance(value, dict):
            result = _zero(go)
            for key, item in value.items():
                found = _field(go, key)
                if found is not None:
                    name, field_type = found
                    result[name] = _decode(item, field_type, go.struct_name, (*path, name))
            return result
    raise _type_error(_json_kind(value), go, struct, path)


# -- The request ------------------------------------------------------------------------------


@dataclass
class MountRequest:
    """One mount the request asks for (from Binds, Mounts, Tmpfs or Volumes), normalised."""

    type: str  # "bind", "volume" or "tmpfs"
    destination: str
    source: str = ""  # bind: the host path; volume: its name, "" for an anonymous volume
    read_only: bool = False
    propagation: str = ""  # bind: "rprivate" unless the request says otherwise
    recursive: bool = True  # bind: rbind, unless BindOptions.NonRecursive
    create_source: bool = False  # bind: make a missing host path (-v does; --mount won't)
    copy_data: bool = True  # volume: fill a new, empty volume from the image ("nocopy")
    driver: str = ""  # volume
    driver_options: dict[str, str] = field(default_factory=dict)  # volume
    labels: dict[str, str] = field(default_factory=dict)  # volume
    subpath: str = ""  # volume: mount this directory of the volume
    tmpfs_options: str = ""  # tmpfs: mount data such as "size=64m,mode=1777"
    origin: str = ""  # Binds, Mounts, Tmpfs or Volumes: where it came from

    @property
    def volume_key(self) -> str:
        """This volume's key in build_spec's ``volume_mounts``: its name, or for an anonymous
        volume its destination (names never contain "/", so the two cannot clash)."""
        return self.source or self.destination


@dataclass
class CreateRequest:
    """A decoded create body. ``config`` and ``host_config`` hold every field Docker's
    Config and HostConfig have, under Docker's names, zero values filled in as Go would."""

    config: dict[str, Any]
    host_config: dict[str, Any]
    networking_config: dict[str, Any]
    mounts: list[MountRequest]


def parse_create_body(body: object) -> CreateRequest:
    """Decode a create body (already parsed from JSON) and make dockerd's create-time checks.

    Raises CreateError(400) with Docker's message; a field of the wrong type reads as Go's
    decoder says it, e.g. ``invalid JSON: json: cannot unmarshal string into Go struct field
    CreateRequest.Env of type []string``.
    """
    decoded = _decode(body, _CREATE_REQUEST, "", ())
    keys = body if isinstance(body, dict) else {}
    config_fields = _struct("container.Config", *_CONFIG_FIELDS)
    if not any(_field(config_fields, key) for key in keys):
        raise _bad("config cannot be empty in order to create a container")
    config = {name: decoded[name] for name, _ in _CONFIG_FIELDS}
    host_config = decoded["HostConfig"] or _zero(_HOST_CONFIG)
    networking_config = decoded["NetworkingConfig"] or _zero(_NETWORKING_CONFIG)
    _normalise(config, host_config)
    _check_config(config)
    _check_host_config(config, host_config)
    _check_resources(host_config)
    for network, settings in (networking_config["EndpointsConfig"] or {}).items():
        if settings is None:
            raise _bad(f"invalid config for network {network}: EndpointsConfig is nil")
    mounts = _request_mounts(host_config)
    # What dockerd fills in once the request has passed (adaptContainerSettings).
    if host_config["Memory"] > 0 and host_config["MemorySwap"] == 0:
        host_config["MemorySwap"] = host_config["Memory"] * 2
    if host_config["ShmSize"] == 0:
        host_config["ShmSize"] = DEFAULT_SHM_SIZE
    if not host_config["IpcMode"]:
        host_config["IpcMode"] = "private"
    return CreateRequest(config, host_config, networking_config, mounts)


def _normalise(config: dict, host_config: dict) -> None:
    """The defaults dockerd fills in before it checks anything."""
    if host_config["NetworkMode"] in ("", "default"):
        host_config["NetworkMode"] = "bridge"
    if not host_config["RestartPolicy"]["Name"]:
        host_config["RestartPolicy"]["Name"] = "no"
    limit = host_config["PidsLimit"]
    if limit is not None and limit <= 0:
        host_config["PidsLimit"] = None  # 0 and -1 both mean "unlimited"
    if config["WorkingDir"]:
        if not config["WorkingDir"].startswith("/"):
            raise _bad(
                f"the working directory '{config['WorkingDir']}' is invalid, "
                "it needs to be an absolute path"
            )
        config["WorkingDir"] = posixpath.normpath(config["WorkingDir"])
        if config["WorkingDir"].startswith("//"):
            config["WorkingDir"] = "/" + config["WorkingDir"].lstrip("/")


def _check_no_nul(what: str, values: Sequence[str]) -> None:
    for value in values:
        if "\x00" in value:
            raise _bad(f"invalid {what} {value!r}: it contains a NUL byte")


def _check_config(config: dict) -> None:
    _check_no_nul("argument", [*(config["Cmd"] or []), *(config["Entrypoint"] or [])])
    _check_no_nul("environment variable", config["Env"] or [])
    _check_no_nul("value", [config["User"], config["WorkingDir"], config["Hostname"]])
    for path in config["Volumes"] or {}:
        _check_target(path)
    hostname = config["Hostname"]
    if hostname and (len(hostname) > 64 or not _HOSTNAME.fullmatch(hostname)):
        raise _bad(f"invalid hostname format: {hostname}")
    if config["StopSignal"]:
        parse_signal(config["StopSignal"])
    for variable in config["Env"] or []:
        if not variable.partition("=")[0]:
            raise _bad(f"invalid environment variable: {variable}")
    health = config["Healthcheck"]
    if health is not None:
        for name in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
            if 0 != health[name] < 1_000_000:
                raise _bad(f"{name} in Healthcheck cannot be less than 1ms")
        if health["Retries"] < 0:
            raise _bad("Retries in Healthcheck cannot be negative")


def parse_signal(raw: str) -> int:
    """A signal by number or name ("9", "KILL", "SIGKILL", "SIGRTMIN+3"), as Docker reads it."""
    if _GO_ATOI.fullmatch(raw) and int(raw) != 0:
        return int(raw)
    name = raw.upper().removeprefix("SIG")
    numbers = {sig.name.removeprefix("SIG"): int(sig) for sig in signal.Signals}
    numbers.update({"IOT": int(signal.SIGABRT), "CLD": int(signal.SIGCHLD)})
    low, high = int(signal.SIGRTMIN), int(signal.SIGRTMAX)
    for offset in range(1, 16):
        numbers[f"RTMIN+{offset}"] = low + offset
        numbers[f"RTMAX-{offset}"] = high - offset
    if name not in numbers:
        raise _bad(f"invalid signal: {raw}")
    return numbers[name]


def _check_host_config(config: dict, host: dict) -> None:
    network_mode: str = host["NetworkMode"]
    if network_mode == "container" or network_mode.startswith("container:"):
        if not network_mode.partition(":")[2]:
            raise _bad("invalid network mode: invalid container format container:<name|id>")
        conflicts = (
            (config["Hostname"], "conflicting options: hostname and the network mode"),
            (host["Links"], "conflicting options: container type network can't be used with "
             "links. This would result in undefined behavior"),
            (host["Dns"], "conflicting options: dns and the network mode"),
            (host["ExtraHosts"], "conflicting options: custom host-to-IP mapping and the "
             "network mode"),
            (host["PortBindings"] or host["PublishAllPorts"], "conflicting options: port "
             "publishing and the container type network mode"),
            (config["ExposedPorts"], "conflicting options: port exposing and the container "
             "type network mode"),
        )  # fmt: skip
        for present, message in conflicts:
            if present:
                raise _bad(message)
    if host["UTSMode"] == "host" and config["Hostname"]:
        raise _bad("conflicting options: hostname and the UTS mode")
    if host["Isolation"] not in ("", "default"):
        raise _bad(f"invalid isolation ({host['Isolation']}): linux only supports 'default'")
    if host["IOMaximumBandwidth"]:
        raise _bad("invalid option: QoS maximum bandwidth configuration is not supported on linux")
    if host["IOMaximumIOps"]:
        raise _bad("invalid option: QoS maximum IOPs configuration is not supported on linux")
    if host["CpuRealtimePeriod"] or host["CpuRealtimeRuntime"]:
        raise _bad("kernel does not support CPU real-time scheduler")
    if host["CpuShares"] < 0:
        raise _bad(f"invalid CPU shares ({host['CpuShares']}): value must be a positive integer")
    for mount in host["Mounts"] or []:
        kind = mount["Type"]
        for option, wanted in (
            ("VolumeOptions", "volume"),
            ("BindOptions", "bind"),
            ("TmpfsOptions", "tmpfs"),
        ):
            if mount[option] is not None and kind != wanted:
                raise _bad(f'{option} must not be specified on mount type "{kind}"')
    policy = host["RestartPolicy"]
    if host["AutoRemove"] and policy["Name"] != "no":
        raise _bad("can't create 'AutoRemove' container with restart policy")
    for extra_host in host["ExtraHosts"] or []:
        _check_extra_host(extra_host)
    _check_port_bindings(host["PortBindings"] or {})
    _check_restart_policy(policy["Name"], policy["MaximumRetryCount"])
    for option in ("CapAdd", "CapDrop"):
        for name in host[option] or []:
            if _capability(name) not in CAP_NUMBERS and name.upper() != "ALL":
                raise _bad(f'invalid {option}: unknown capability: "{_capability(name)}"')
    for key in host["Annotations"] or {}:
        if not key:
            raise _bad(
                "invalid Annotations: the empty string is not permitted as an annotation key"
            )
    for mode, name in (("IpcMode", "IPC"), ("PidMode", "PID"), ("UTSMode", "UTS")):
        if not _valid_namespace_mode(mode, host[mode]):
            raise _bad(f"invalid {name} mode: {host[mode]}")
    if host["CgroupnsMode"] not in ("", "private", "host"):
        raise _bad(f"invalid cgroup namespace mode: {host['CgroupnsMode']}")
    if host["UsernsMode"] not in ("", "host"):
        raise _bad(f"invalid user namespace mode: {host['UsernsMode']}")
    if host["ShmSize"] < 0:
        raise _bad("SHM size can not be less than 0")
    if not -1000 <= host["OomScoreAdj"] <= 1000:
        raise _bad(f"Invalid value {host['OomScoreAdj']}, range for oom score adj is [-1000, 1000]")
    if host["Runtime"] not in _RUNTIMES:
        raise _bad(f"unknown or invalid runtime name: {host['Runtime']}")
    for destination in host["Tmpfs"] or {}:
        _check_target(destination)
    log = host["LogConfig"]
    if log["Type"] and log["Type"] not in _LOG_DRIVERS:
        raise _bad(f"logger: no log driver named '{log['Type']}' is registered")
    for option in log["Config"] or {}:
        if option not in _JSON_FILE_LOG_OPTIONS:
            raise _bad(f"unknown log opt '{option}' for json-file log driver")
    if host["StorageOpt"]:
        raise _bad(
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
        )
    for raw in host["SecurityOpt"] or []:
        _parse_security_opt(raw)
    for limit in host["Ulimits"] or []:
        if f"RLIMIT_{limit['Name'].upper()}" not in _RLIMITS:
            raise _bad(f"invalid ulimit type: {limit['Name']}")
        if limit["Soft"] > limit["Hard"]:
            raise _bad(
                f"ulimit soft limit must be less than or equal to hard limit: "
                f"{limit['Soft']} > {limit['Hard']}"
            )


_RLIMITS = frozenset(
    f"RLIMIT_{name}"
    for name in (
        "CORE CPU DATA FSIZE LOCKS MEMLOCK MSGQUEUE NICE NOFILE NPROC RSS RTPRIO RTTIME "
        "SIGPENDING STACK"
    ).split()
)


def _valid_namespace_mode(kind: str, mode: str) -> bool:
    if kind == "IpcMode" and mode in ("none", "private", "shareable"):
        return True
    if kind in ("IpcMode", "PidMode") and mode.startswith("container:"):
        return kind == "IpcMode" or bool(mode.partition(":")[2])
    return mode in ("", "host")


def _check_extra_host(value: str) -> None:
    name, colon, address = value.partition(":")
    if not colon or not name:
        raise _bad(f'bad format for add-host: "{value}"')
    if address == "host-gateway":
        return
    try:
        ipaddress.ip_address(address.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        raise _bad(f'invalid IP address in add-host: "{address}"') from None


def _is_port(text: str) -> bool:
    """strconv.ParseUint(text, 10, 16) succeeds."""
    return bool(_DIGITS.fullmatch(text)) and int(text) <= 65535


def _is_port_range(text: str) -> bool:
    """go-connections' ParsePortRangeToInt: "", "80" or "8000-8010"."""
    if "-" not in text:
        return not text or _is_port(text)
    start, end = text.split("-")[:2]
    return _is_port(start) and _is_port(end) and int(end) >= int(start)


def _check_port_bindings(bindings: Mapping[str, Any]) -> None:
    """As dockerd: the container port a number, each host port a number or a range."""
    for port, host_ports in bindings.items():
        number = port.split("/")[0]
        if number and not _is_port(number):
            raise _bad(f'invalid port specification: "{number}"')
        for binding in host_ports or []:
            if not _is_port_range(binding["HostPort"].split("/")[0]):
                raise _bad(f'invalid port specification: "{binding["HostPort"]}"')


def _check_restart_policy(name: str, retries: int) -> None:
    if name in ("no", "always", "unless-stopped"):
        if retries:
            message = (
                "invalid restart policy: maximum retry count can only be used with 'on-failure'"
            )
            raise _bad(message + (" and cannot be negative" if retries < 0 else ""))
    elif name == "on-failure":
        if retries < 0:
            raise _bad("invalid restart policy: maximum retry count cannot be negative")
    else:
        raise _bad(
            f"invalid restart policy: unknown policy '{name}'; "
            "use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        )


def _capability(name: str) -> str:
    upper = name.upper()
    return upper if upper.startswith("CAP_") else f"CAP_{upper}"


def _parse_security_opt(raw: str) -> tuple[str, str]:
    """One --security-opt as (key, value), checked as dockerd checks it."""
    if raw in ("no-new-privileges", "writable-cgroups"):
        return raw, "true"
    if raw == "disable":
        return "label", "disable"
    if "=" in raw:
        key, _, value = raw.partition("=")
    elif ":" in raw:
        key, _, value = raw.partition(":")
    else:
        raise _bad(f'invalid --security-opt 1: "{raw}"')
    if key in ("no-new-privileges", "writable-cgroups"):
        if _go_bool(value) is None:
            raise _bad(f'invalid --security-opt 2: "{raw}"')
    elif key not in ("label", "apparmor", "seccomp"):
        raise _bad(f'invalid --security-opt 2: "{raw}"')
    return key, value


def _go_bool(value: str) -> bool | None:
    """strconv.ParseBool."""
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    return None


def _check_resources(host: dict) -> None:
    """dockerd's checks of the limits (verifyPlatformContainerResources), in its order."""
    memory, swap = host["Memory"], host["MemorySwap"]
    if memory and memory < MIN_MEMORY:
        raise _bad("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise _bad("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0:
        raise _bad("You should always set the Memory limit when using Memoryswap limit, see usage")
    swappiness = host["MemorySwappiness"]
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise _bad(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    reservation = host["MemoryReservation"]
    if 0 < reservation < MIN_MEMORY:
        raise _bad("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise _bad("Minimum memory limit can not be less than memory reservation limit, see usage")
    nano_cpus = host["NanoCpus"]
    if nano_cpus > 0 and host["CpuPeriod"] > 0:
        raise _bad("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano_cpus > 0 and host["CpuQuota"] > 0:
        raise _bad("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    cpus = os.cpu_count() or 1
    if nano_cpus and not 0 < nano_cpus <= cpus * 1_000_000_000:
        raise _bad(
            f"range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        )
    period = host["CpuPeriod"]
    if period and not 1000 <= period <= 1_000_000:
        raise _bad(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if 0 < host["CpuQuota"] < 1000:
        raise _bad("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    for option, what, available in (
        ("CpusetCpus", "cpus", sorted(os.sched_getaffinity(0))),
        ("CpusetMems", "mems", _memory_nodes()),
    ):
        requested = host[option]
        if not requested:
            continue
        try:
            wanted = _parse_uint_list(requested)
        except ValueError:
            raise _bad(
                f"Invalid value {requested} for cpuset {what}: invalid format: {requested}"
            ) from None
        if not wanted <= set(available):
            label = "CPUs" if what == "cpus" else "memory nodes"
            raise _bad(
                f"Requested {label} are not available - requested {requested}, "
                f"available: {_format_uint_list(available)}"
            )
    weight = host["BlkioWeight"]
    if weight and not 10 <= weight <= 1000:
        raise _bad("Range of blkio weight is from 10 to 1000")


def _memory_nodes() -> list[int]:
    try:
        with open("/sys/devices/system/node/online") as f:
            return sorted(_parse_uint_list(f.read().strip()))
    except (OSError, ValueError):
        return [0]


def _parse_uint_list(text: str) -> set[int]:
    """A cpuset list such as "0-2,4"; raises ValueError."""
    result: set[int] = set()
    for part in text.split(","):
        start, dash, end = part.partition("-")
        if not _DIGITS.fullmatch(start) or (dash and not _DIGITS.fullmatch(end)):
            raise ValueError(text)
        low, high = int(start), int(end) if dash else int(start)
        if high < low:
            raise ValueError(text)
        result.update(range(low, high + 1))
    return result


def _format_uint_list(numbers: Sequence[int]) -> str:
    ranges: list[list[int]] = []
    for number in numbers:
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


# -- Mounts -------------------------------------------------------------------------------------


def _check_target(target: str) -> None:
    """moby's checks of a mount destination: absolute, and not "/"."""
    if posixpath.normpath(target.replace("\\", "/")) in ("/", "//"):
        raise _bad("invalid specification: destination can't be '/'")
    if not target.replace("\\", "/").startswith("/"):
        raise _bad(f"invalid mount path: '{target}' mount path must be absolute")


def _clean(path: str) -> str:
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("/") else cleaned


def _valid_bind_mode(mode: str) -> bool:
    """Docker's linuxValidMountMode: at most one of each kind of option."""
    if not mode:
        return True
    counts: dict[str, int] = {}
    for option in mode.split(","):
        if option in ("rw", "ro"):
            kind = "rw"
        elif option in ("z", "Z"):
            kind = "label"
        elif option in _PROPAGATIONS:
            kind = "propagation"
        elif option == "nocopy":
            kind = "copy"
        elif option in _CONSISTENCIES:
            kind = "consistency"
        else:
            return False
        counts[kind] = counts.get(kind, 0) + 1
    return all(count == 1 for count in counts.values())


def parse_bind(raw: str, volume_driver: str = "") -> MountRequest:
    """One ``-v`` entry, ``[source:]destination[:options]``: a host path (absolute source),
    a named volume, or an anonymous one. ro, rw, propagation and nocopy count; the SELinux
    options z and Z and the consistency options are accepted and have no effect here."""
    parts = raw.split(":", 3)
    if not parts[0]:
        raise _bad(f"invalid volume specification: '{raw}'")
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if _valid_bind_mode(parts[1]):
            raise _bad(f"invalid volume specification: '{raw}'")
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise _bad(f"invalid volume specification: '{raw}'")
    if not _valid_bind_mode(mode):
        raise _bad(f"invalid mode: {mode}")
    options = mode.split(",") if mode else []
    kind = "bind" if source.startswith("/") else "volume"
    try:
        _check_target(target)
    except CreateError as error:
        raise _bad(
            f"invalid volume specification: '{raw}': invalid mount config for type "
            f'"{kind}": {error.message}'
        ) from None
    propagation = next((o for o in options if o in _PROPAGATIONS), "")
    extra = "BindOptions" if kind == "volume" and propagation else ""
    if kind == "bind" and ("nocopy" in options or volume_driver):
        extra = "VolumeOptions"
    if extra:
        raise _bad(
            f"invalid volume specification: '{raw}': invalid mount config for type "
            f'"{kind}": field {extra} must not be specified'
        )
    if kind == "volume" and source:
        check_volume_name(source)
    if kind == "bind":
        return MountRequest(
            "bind",
            _clean(target),
            _clean(source),
            read_only="ro" in options,
            propagation=propagation or "rprivate",
            create_source=True,
            origin="Binds",
        )
    return MountRequest(
        "volume",
        _clean(target),
        source,
        read_only="ro" in options,
        copy_data="nocopy" not in options,
        driver=volume_driver,
        origin="Binds",
    )


_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def check_volume_name(name: str) -> None:
    """The local driver's rule for volume names (no "/", so never a path)."""
    if len(name) == 1:
        raise _bad("volume name is too short, names should be at least two alphanumeric characters")
    if not _VOLUME_NAME.fullmatch(name):
        raise _bad(
            f'"{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path"
        )


def _mount_config_error(kind: str, message: str) -> CreateError:
    return _bad(f'invalid mount config for type "{kind}": {message}')


def _parse_mount(mount: Mapping[str, Any]) -> MountRequest:
    """One entry of HostConfig.Mounts (``--mount``), checked as moby's parser does."""
    kind: str = mount["Type"]
    target: str = mount["Target"]
    if not target:
        raise _mount_config_error(kind, "field Target must not be empty")
    try:
        _check_target(target)
    except CreateError as error:
        raise _mount_config_error(kind, error.message) from None
    bind, volume, image = mount["BindOptions"], mount["VolumeOptions"], mount["ImageOptions"]
    destination = _clean(target)
    if kind == "bind":
        if not mount["Source"]:
            raise _mount_config_error(kind, "field Source must not be empty")
        propagation = (bind or {}).get("Propagation") or ""
        if propagation and propagation not in _PROPAGATIONS:
            raise _mount_config_error(kind, f"invalid propagation mode: {propagation}")
        for name, value in (("VolumeOptions", volume), ("ImageOptions", image)):
            if value is not None:
                raise _mount_config_error(kind, f"field {name} must not be specified")
        if not mount["Source"].startswith("/"):
            raise _mount_config_error(
                kind, f"invalid mount path: '{mount['Source']}' mount path must be absolute"
            )
        return MountRequest(
            "bind",
            destination,
            _clean(mount["Source"]),
            read_only=mount["ReadOnly"],
            propagation=propagation or "rprivate",
            recursive=not (bind or {}).get("NonRecursive", False),
            create_source=(bind or {}).get("CreateMountpoint", False),
            origin="Mounts",
        )
    if kind == "volume":
        for name, value in (("BindOptions", bind), ("ImageOptions", image)):
            if value is not None:
                raise _mount_config_error(kind, f"field {name} must not be specified")
        options = volume or {}
        subpath = options.get("Subpath") or ""
        if subpath:
            if not mount["Source"]:
                raise _mount_config_error(kind, "must not set Subpath when using anonymous volumes")
            if not _is_local_path(subpath):
                raise _mount_config_error(kind, "subpath must be a relative path within the volume")
        if mount["ReadOnly"] and not mount["Source"]:
            raise _mount_config_error(
                kind, "must not set ReadOnly mode when using anonymous volumes"
            )
        driver = options.get("DriverConfig") or {}
        if mount["Source"]:
            check_volume_name(mount["Source"])
        return MountRequest(
            "volume",
            destination,
            mount["Source"],
            read_only=mount["ReadOnly"],
            copy_data=not options.get("NoCopy", False),
            driver=driver.get("Name") or "",
            driver_options=dict(driver.get("Options") or {}),
            labels=dict(options.get("Labels") or {}),
            subpath=subpath,
            origin="Mounts",
        )
    if kind == "tmpfs":
        if bind is not None or image is not None:
            name = "BindOptions" if bind is not None else "ImageOptions"
            raise _mount_config_error(kind, f"field {name} must not be specified")
        if mount["Source"]:
            raise _mount_config_error(kind, "field Source must not be specified")
        data = _tmpfs_data(mount["TmpfsOptions"], mount["ReadOnly"], kind)
        return MountRequest("tmpfs", destination, tmpfs_options=data, origin="Mounts")
    if kind == "image":
        raise CreateError(501, "image mounts (--mount type=image) are not supported yet")
    raise _mount_config_error(kind, "mount type unknown")


def _is_local_path(path: str) -> bool:
    """Go's filepath.IsLocal: relative, and lexically inside the directory it is joined to."""
    if not path or path.startswith("/"):
        return False
    cleaned = posixpath.normpath(path)
    return cleaned != ".." and not cleaned.startswith("../")


def _tmpfs_data(options: Mapping[str, Any] | None, read_only: bool, kind: str) -> str:
    """moby's ConvertTmpfsOptions: TmpfsOptions as a mount data string."""
    raw = ["ro"] if read_only else []
    options = options or {}
    if options.get("Mode"):
        raw.append(f"mode={options['Mode']:o}")
    size = options.get("SizeBytes") or 0
    if size:
        for suffix, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % divisor == 0:
                raw.append(f"size={size // divisor}{suffix}")
                break
        else:
            raw.append(f"size={size}")
    for option in options.get("Options") or []:
        if not 1 <= len(option) <= 2:
            raise _mount_config_error(kind, "invalid option array length")
        if option[0] not in ("exec", "noexec"):
            raise _mount_config_error(kind, f"invalid option: {option[0]}")
        raw.append(option[0] if len(option) == 1 else f"{option[0]}={option[1]}")
    return ",".join(raw)


def merge_tmpfs_options(options: Sequence[str]) -> list[str]:
    """moby's MergeTmpfsOptions: drop duplicates, the last of each kind winning; refuse
    anything tmpfs doesn't take (bind and rbind included: they would make a bind mount)."""
    merged: list[str] = []
    seen_flags: set[str] = set()
    seen_data: set[str] = set()
    for option in reversed(options):
        if option in ("defaults", ""):
            continue
        group = _TMPFS_FLAG_GROUPS.get(option)
        if group is not None:
            if group not in seen_flags:
                seen_flags.add(group)
                merged.insert(0, option)
            continue
        key, equals, _ = option.partition("=")
        if not equals or key not in _TMPFS_DATA_KEYS:
            raise _bad(f'invalid tmpfs option ["{option}"]')
        if key not in seen_data:
            seen_data.add(key)
            merged.insert(0, option)
    return merged


def _request_mounts(host: dict) -> list[MountRequest]:
    """Binds, then Mounts, then Tmpfs, checked for duplicate destinations as dockerd does."""
    mounts: list[MountRequest] = []
    destinations: set[str] = set()
    tmpfs_destinations = {_clean(d) for d in host["Tmpfs"] or {}}
    for raw in host["Binds"] or []:
        mount = parse_bind(raw, host["VolumeDriver"])
        if mount.destination in destinations or mount.destination in tmpfs_destinations:
            raise _bad(f"Duplicate mount point: {mount.destination}")
        destinations.add(mount.destination)
        mounts.append(mount)
    for entry in host["Mounts"] or []:
        mount = _parse_mount(entry)
        if mount.destination in destinations:
            raise _bad(f"Duplicate mount point: {entry['Target']}")
        destinations.add(mount.destination)
        mounts.append(mount)
    for destination, data in (host["Tmpfs"] or {}).items():
        merge_tmpfs_options(data.split(",") if data else [])
        mounts.append(
            MountRequest("tmpfs", _clean(destination), tmpfs_options=data, origin="Tmpfs")
        )
    return mounts


def container_mounts(request: CreateRequest, image_config: ImageConfig) -> list[MountRequest]:
    """Every mount the container gets: the request's, then an anonymous volume for each
    path in Config.Volumes and the image's Volumes that nothing else is mounted on. The
    engine creates the volumes among them (``type == "volume"``) before build_spec."""
    mounts = list(request.mounts)
    taken = {mount.destination for mount in mounts}
    volume_paths = list(request.config["Volumes"] or {}) + list(image_config.config.volumes)
    for path in volume_paths:
        destination = _clean("/" + path)
        if destination not in taken:
            taken.add(destination)
            mounts.append(MountRequest("volume", destination, origin="Volumes"))
    return mounts


# -- The allowlist ------------------------------------------------------------------------------


def is_safe_sysctl(name: str) -> bool:
    """Whether a container may set this sysctl (see SAFE_IPC_SYSCTLS and the prefixes)."""
    parts = name.split(".")
    if "/" in name or any(part in ("", "..") for part in parts):
        return False
    if name in SAFE_IPC_SYSCTLS:
        return True
    if not name.startswith(SAFE_SYSCTL_PREFIXES):
        return False
    return not name.startswith(UNSAFE_NET_SYSCTL_PREFIXES)


def check_volume_options(driver: str, options: Mapping[str, str]) -> None:
    """Refuse what would turn a volume into a mount of something on the host: the local
    driver's ``type``, ``o`` and ``device`` options (``-o type=none -o o=bind -o device=/``)."""
    if driver not in ("", "local"):
        raise CreateError(
            404, f'error looking up volume plugin {driver}: plugin "{driver}" not found'
        )
    for key in options:
        if key in _LOCAL_VOLUME_MOUNT_OPTIONS:
            raise _refused(
                f'volume driver option "{key}" is not allowed: the local driver\'s type, o '
                "and device options would mount a device or a host path"
            )
        raise _bad(f'invalid option: "{key}"')


def _bind_source_within(source: str, roots: Sequence[str]) -> str | None:
    """The real path of ``source`` (symlinks resolved) if it lies under one of ``roots``."""
    real = os.path.realpath(source)
    for root in roots:
        real_root = os.path.realpath(root)
        if real == real_root or real.startswith(real_root.rstrip("/") + "/"):
            return real
    return None


def _check_bind_source(mount: MountRequest, roots: Sequence[str]) -> str:
    real = _bind_source_within(mount.source, roots)
    if real is None:
        shown = ", ".join(roots) if roots else "none are configured"
        raise _refused(
            f'bind mount source "{mount.source}" is not allowed: it resolves outside the '
            f"directories that may be bind-mounted ({shown})"
        )
    return real


def check_allowed(request: CreateRequest, allowed_bind_roots: Sequence[str]) -> None:
    """Hold the request to Slipway's allowlist: anything that would weaken the default
    security profile or reach outside the engine's own world raises CreateError(403).
    Also refuses (501) what Slipway can't do yet, and (400) a ``--mount type=bind`` source
    that doesn't exist. Call it at create, and again just before start (build_spec does)."""
    host = request.host_config
    if host["Privileged"]:
        raise _refused(
            "privileged mode is not allowed: it would give the container every capability "
            "and the host's devices"
        )
    for name in host["CapAdd"] or []:
        capability = _capability(name)
        if capability == "CAP_ALL":
            raise _refused(
                "adding ALL capabilities is not allowed: only Docker's 14 default "
                "capabilities can be granted"
            )
        if capability not in defaults.CAPABILITIES:
            raise _refused(
                f"capability {capability} is not allowed: only Docker's 14 default "
                "capabilities can be granted (dropping any is fine)"
            )
    if host["Devices"]:
        raise _refused("host devices (--device) are not allowed: a container may not reach "
                       "the host's hardware")  # fmt: skip
    if host["DeviceCgroupRules"]:
        raise _refused(
            "device cgroup rules (--device-cgroup-rule) are not allowed: the default device "
            "rules always apply"
        )
    if host["DeviceRequests"]:
        raise _refused("device requests (--gpus) are not allowed")
    for raw in host["SecurityOpt"] or []:
        _check_security_opt(raw)
    for option, default in (
        ("MaskedPaths", defaults.MASKED_PATHS),
        ("ReadonlyPaths", defaults.READONLY_PATHS),
    ):
        paths = host[option]
        if paths is not None and not set(default) <= set(paths):
            missing = ", ".join(sorted(set(default) - set(paths)))
            raise _refused(
                f"overriding {option} is not allowed: the default paths always apply, and "
                f"this leaves out {missing}"
            )
    for option, flag in (
        ("PidMode", "--pid"),
        ("IpcMode", "--ipc"),
        ("UTSMode", "--uts"),
        ("UsernsMode", "--userns"),
        ("CgroupnsMode", "--cgroupns"),
    ):  # --network=host is the node's network (the engine's namespace), never the host's
        if host[option] == "host":
            raise _refused(
                f"{flag}=host is not allowed: a container may not share the host's namespaces"
            )
    for name in host["Sysctls"] or {}:
        if not is_safe_sysctl(name):
            raise _refused(
                f'sysctl "{name}" is not allowed: only namespaced sysctls (net.*, '
                "kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*) can be set"
            )
    if host["CgroupParent"]:
        raise _refused("--cgroup-parent is not allowed: containers stay in the engine's cgroup")
    if host["Cgroup"]:
        raise _refused("--cgroup is not allowed: containers stay in cgroups of their own")
    if host["OomScoreAdj"] < 0:
        raise _refused(
            "a negative --oom-score-adj is not allowed: it would shield the container from "
            "the OOM killer at other learners' expense"
        )
    for key in host["Annotations"] or {}:
        if key.startswith(RESERVED_ANNOTATION_PREFIX):
            raise _refused(f'annotation "{key}" is not allowed: {RESERVED_ANNOTATION_PREFIX}* '
                           "annotations are Slipway's own")  # fmt: skip
    if host["VolumeDriver"]:
        check_volume_options(host["VolumeDriver"], {})
    for mount in request.mounts:
        _check_mount_allowed(mount, allowed_bind_roots)
    if host["Init"]:
        raise CreateError(
            501,
            "--init is not supported yet: Slipway has no docker-init to run as PID 1; "
            "run the container without --init",
        )
    if host["VolumesFrom"]:
        raise CreateError(501, "--volumes-from is not supported yet")


def _check_security_opt(raw: str) -> None:
    key, value = _parse_security_opt(raw)
    if key == "seccomp" and value != "builtin":
        what = (
            f'security option "{raw}" is not allowed'
            if value == _UNCONFINED
            else "custom seccomp profiles are not allowed"
        )
        raise _refused(f"{what}: the default seccomp profile always applies")
    if key == "no-new-privileges" and not _go_bool(value):
        raise _refused(f'security option "{raw}" is not allowed: no_new_privs is always set')
    if key == "writable-cgroups" and _go_bool(value):
        raise _refused(f'security option "{raw}" is not allowed: /sys/fs/cgroup stays read-only')
    if key == "apparmor" and value == _UNCONFINED:
        raise _refused(f'security option "{raw}" is not allowed: confinement stays on')
    if key == "label" and (
        value == "disable" or value.removeprefix("type:") in _SUPER_PRIVILEGED_LABEL_TYPES
    ):
        raise _refused(f'security option "{raw}" is not allowed: confinement stays on')


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + "/")


def _check_mount_allowed(mount: MountRequest, roots: Sequence[str]) -> None:
    for kernel_dir in ("/proc", "/sys"):
        if _under(mount.destination, kernel_dir):
            raise _refused(
                f"mounting over {mount.destination} is not allowed: {kernel_dir} stays as the "
                "runtime sets it up, masked and read-only paths included"
            )
    if mount.type == "bind":
        if mount.propagation in ("shared", "rshared"):
            raise _refused(
                f"{mount.propagation} mount propagation is not allowed: mounts would travel "
                "between the container and the host"
            )
        real = _check_bind_source(mount, roots)
        if not mount.create_source and not os.path.exists(real):
            raise _mount_config_error("bind", f"bind source path does not exist: {mount.source}")
    elif mount.type == "volume":
        check_volume_options(mount.driver, mount.driver_options)


# -- The image's defaults, the process --------------------------------------------------------


def merge_image_config(request: CreateRequest, image_config: ImageConfig) -> dict[str, Any]:
    """The container's Config: the request's, with the image's defaults filled in as dockerd
    merges them (this is what ``docker inspect`` shows). Raises CreateError(400) "no command
    specified" when neither gives a command."""
    merged = copy.deepcopy(request.config)
    image = image_config.config
    if not merged["User"]:
        merged["User"] = image.user
    ports = dict(merged["ExposedPorts"] or {})
    for port in image.exposed_ports:
        ports.setdefault(port, {})
    merged["ExposedPorts"] = ports or None
    env = list(merged["Env"] or [])
    keys = {variable.partition("=")[0] for variable in env}
    env += [variable for variable in image.env if variable.partition("=")[0] not in keys]
    merged["Env"] = env or None
    labels = dict(image.labels)
    labels.update(merged["Labels"] or {})
    merged["Labels"] = labels
    if not merged["Entrypoint"]:
        if not merged["Cmd"]:
            merged["Cmd"] = list(image.cmd) if image.cmd is not None else merged["Cmd"]
        if merged["Entrypoint"] is None and image.entrypoint is not None:
            merged["Entrypoint"] = list(image.entrypoint)
    if image.healthcheck is not None:
        merged["Healthcheck"] = _merge_healthcheck(merged["Healthcheck"], image.healthcheck)
    if not merged["WorkingDir"]:
        merged["WorkingDir"] = image.working_dir
    volumes = dict(merged["Volumes"] or {})
    volumes.update({path: {} for path in image.volumes})
    merged["Volumes"] = volumes or None
    if not merged["StopSignal"]:
        merged["StopSignal"] = image.stop_signal
    if merged["Entrypoint"] == [""]:
        merged["Entrypoint"] = None  # --entrypoint "": no entrypoint at all
    if not merged["Entrypoint"] and not merged["Cmd"]:
        raise _bad("no command specified")
    return merged


def _merge_healthcheck(mine: dict | None, image: Mapping[str, Any]) -> dict:
    image_check = _decode(dict(image), _HEALTHCHECK, "", ())
    if mine is None:
        return image_check
    merged = dict(mine)
    for key, value in image_check.items():
        if not merged.get(key):
            merged[key] = value
    return merged


def process_args(config: Mapping[str, Any]) -> list[str]:
    """argv from a merged Config: Entrypoint then Cmd, or Cmd alone (dockerd's rule)."""
    return list(config["Entrypoint"] or []) + list(config["Cmd"] or [])


def process_env(config: Mapping[str, Any], hostname: str, home: str) -> list[str]:
    """The process environment as dockerd builds it: PATH, HOSTNAME and (with a tty) TERM,
    each replaced by the container's own value if it has one; ``NAME`` without "=" unsets;
    then HOME from the user's passwd entry unless already set (runc's rule)."""
    env = [f"PATH={DEFAULT_PATH_ENV}", f"HOSTNAME={hostname}"]
    if config["Tty"]:
        env.append("TERM=xterm")
    index = {variable.partition("=")[0]: i for i, variable in enumerate(env)}
    unset: set[int] = set()
    for variable in config["Env"] or []:
        name, equals, _ = variable.partition("=")
        if not equals:
            if name in index:
                unset.add(index[name])
        elif name in index:
            env[index[name]] = variable
            unset.discard(index[name])
        else:
            env.append(variable)
    env = [variable for i, variable in enumerate(env) if i not in unset]
    if not any(variable.startswith("HOME=") for variable in env):
        env.append(f"HOME={home}")
    return env


# -- Users ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedUser:
    """Who the container's process runs as."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


def read_file_in_root(rootfs: str, path: str, limit: int = 1 << 20) -> str | None:
    """A small regular file of the container's filesystem, its path resolved inside the root
    (symlinks and ".." included); None if it's missing or isn't a regular file."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_in_root(root_fd, path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return None
    finally:
        os.close(root_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        size = 0
        while size < limit and (chunk := os.read(fd, min(1 << 16, limit - size))):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _go_atoi(text: str) -> int | None:
    if _GO_ATOI.fullmatch(text):
        value = int(text)
        if -(1 << 63) <= value < 1 << 63:
            return value
    return None


def _entries(text: str | None, fields: int) -> list[list[str]]:
    """Lines of a passwd or group file, split on ":" and padded to ``fields``."""
    result = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            parts = line.split(":")
            result.append((parts + [""] * fields)[:fields])
    return result


def _number(text: str) -> int:
    """Like moby/sys/user: a number that doesn't parse counts as 0."""
    value = _go_atoi(text)
    return 0 if value is None else value


def resolve_user(rootfs: str, user: str, group_add: Sequence[str] = ()) -> ResolvedUser:
    """``user[:group]`` (names or numbers) looked up in the root filesystem's /etc/passwd and
    /etc/group as runc and dockerd do it, with Docker's errors (CreateError 500, as dockerd
    answers at start): ``unable to find user nosuch: no matching entries in passwd file``."""
    passwd = read_file_in_root(rootfs, "/etc/passwd")
    group = read_file_in_root(rootfs, "/etc/group")
    parts = user.split(":")
    user_arg = parts[0]
    group_arg = parts[1] if len(parts) > 1 else ""
    uid_arg, gid_arg = _go_atoi(user_arg), _go_atoi(group_arg)
    users = _entries(passwd, 7)
    if not user_arg:
        matches = [u for u in users if _number(u[2]) == 0]
    elif uid_arg is not None:
        matches = [u for u in users if _number(u[2]) == uid_arg]
    else:
        matches = [u for u in users if u[0] == user_arg]
    uid, gid, home, matched_name = 0, 0, "", ""
    if matches:
        matched_name, uid, gid, home = (
            matches[0][0],
            _number(matches[0][2]),
            _number(matches[0][3]),
            matches[0][5],
        )
    elif user_arg:
        if uid_arg is None:
            raise CreateError(
                500, f"unable to find user {user_arg}: no matching entries in passwd file"
            )
        uid = uid_arg
        if not 0 <= uid <= MAX_ID:
            raise CreateError(500, f"uids and gids must be in range 0-{MAX_ID}")
    groups = _entries(group, 4)
    supplementary: list[int] = []
    if group_arg:
        if gid_arg is not None:
            found = [g for g in groups if _number(g[2]) == gid_arg]
        else:
            found = [g for g in groups if g[0] == group_arg]
        if found:
            gid = _number(found[0][2])
        elif gid_arg is None:
            raise CreateError(
                500, f"unable to find group {group_arg}: no matching entries in group file"
            )
        else:
            gid = gid_arg
            if not 0 <= gid <= MAX_ID:
                raise CreateError(500, f"uids and gids must be in range 0-{MAX_ID}")
    elif matched_name:
        supplementary = [
            _number(g[2]) for g in groups if matched_name in (g[3].split(",") if g[3] else [])
        ]
    extra = _additional_groups(group_add, groups)
    if not home:
        home = _home_of(uid, users)
    return ResolvedUser(uid, gid, tuple(dict.fromkeys([gid, *supplementary, *extra])), home)


def _home_of(uid: int, users: list[list[str]]) -> str:
    for entry in users:
        if _number(entry[2]) == uid and entry[5]:
            return entry[5]
    return "/"


def _additional_groups(names: Sequence[str], groups: list[list[str]]) -> list[int]:
    """HostConfig.GroupAdd (``--group-add``): group names or numbers."""
    gids: set[int] = set()
    for name in names:
        found = [g for g in groups if g[0] == name or str(_number(g[2])) == name]
        fresh = [_number(g[2]) for g in found if _number(g[2]) not in gids]
        if fresh:
            gids.add(fresh[0])
            continue
        if found:
            continue
        gid = _go_atoi(name)
        if gid is None:
            raise CreateError(
                500, f"Unable to find group {name}: no matching entries in group file"
            )
        if not 0 <= gid <= MAX_ID:
            raise CreateError(500, f"uids and gids must be in range 0-{MAX_ID}")
        gids.add(gid)
    return sorted(gids)


def _make_working_dir(rootfs: str, path: str) -> None:
    """Create the working directory inside the root filesystem, as dockerd does at start.
    Symlinks on the way are followed inside the root, dangling ones included."""
    inside = os.path.relpath(secure_join(rootfs, path), os.path.abspath(rootfs))
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(mkdir_all_in_root(root_fd, inside))
    except (NotADirectoryError, FileExistsError):
        raise _bad(f"Cannot mkdir: {path} is not a directory") from None
    finally:
        os.close(root_fd)


# -- The spec -----------------------------------------------------------------------------------


def _capabilities(host: Mapping[str, Any]) -> list[str]:
    """Docker's defaults after CapDrop, then CapAdd (check_allowed keeps CapAdd within the
    defaults, so this only restores what a CapDrop of ALL took away)."""
    drop = {_capability(name) for name in host["CapDrop"] or []}
    add = [_capability(name) for name in host["CapAdd"] or []]
    base = [] if "CAP_ALL" in drop else [c for c in defaults.CAPABILITIES if c not in drop]
    return list(dict.fromkeys(base + [c for c in add if c in defaults.CAPABILITIES]))


def _resources(host: Mapping[str, Any], resources: dict) -> None:
    memory: dict[str, int] = {}
    if host["Memory"] > 0:
        memory["limit"] = host["Memory"]
        swap = host["MemorySwap"]
        if swap == 0:
            swap = host["Memory"] * 2  # dockerd's default: as much swap as memory
        if swap > 0:
            memory["swap"] = swap
    if host["MemoryReservation"] > 0:
        memory["reservation"] = host["MemoryReservation"]
    swappiness = host["MemorySwappiness"]
    if swappiness is not None and swappiness >= 0:
        memory["swappiness"] = swappiness
    if memory:
        resources["memory"] = memory
    cpu: dict[str, int | str] = {}
    if host["CpuShares"]:
        cpu["shares"] = host["CpuShares"]
    if host["CpusetCpus"]:
        cpu["cpus"] = host["CpusetCpus"]
    if host["CpusetMems"]:
        cpu["mems"] = host["CpusetMems"]
    if host["NanoCpus"] > 0:
        cpu["period"] = 100_000
        cpu["quota"] = host["NanoCpus"] * 100_000 // 1_000_000_000
    if host["CpuPeriod"]:
        cpu["period"] = host["CpuPeriod"]
    if host["CpuQuota"]:
        cpu["quota"] = host["CpuQuota"]
    if cpu:
        resources["cpu"] = cpu
    if host["PidsLimit"] is not None:
        resources["pids"] = {"limit": host["PidsLimit"]}


def _namespaces(host: Mapping[str, Any], joined: Mapping[str, str]) -> list[dict[str, str]]:
    """The container's namespaces: new ones, or those the caller resolved for it (a
    network namespace made by the network code, another container's for container:NAME)."""
    kinds = ["pid", "network", "ipc", "uts", "mount"]
    unified = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    if host["CgroupnsMode"] == "private" or (not host["CgroupnsMode"] and unified):
        kinds.append("cgroup")  # dockerd's default: private on cgroup v2, the host's on v1
    for kind, option in (("pid", "PidMode"), ("ipc", "IpcMode"), ("network", "NetworkMode")):
        mode: str = host[option]
        if mode.startswith("container:") and kind not in joined:
            raise CreateError(
                500, f"the {kind} namespace of {mode} was not resolved before building the spec"
            )
    namespaces = []
    for kind in kinds:
        entry = {"type": kind}
        if kind in joined:
            entry["path"] = joined[kind]
        namespaces.append(entry)
    return namespaces


def _bind_entry(destination: str, source: str, options: list[str]) -> dict:
    return {"destination": destination, "type": "bind", "source": source, "options": options}


def _mount_entry(
    mount: MountRequest, roots: Sequence[str], volume_mounts: Mapping[str, str]
) -> dict:
    if mount.type == "tmpfs":
        base = ["noexec", "nosuid", "nodev", "rprivate"]
        data = mount.tmpfs_options.split(",") if mount.tmpfs_options else []
        return {
            "destination": mount.destination,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": merge_tmpfs_options(base + data),
        }
    if mount.type == "bind":
        source = _check_bind_source(mount, roots)
        if not os.path.exists(source):
            if not mount.create_source:
                raise _mount_config_error(
                    "bind", f"bind source path does not exist: {mount.source}"
                )
            os.makedirs(source, mode=0o755, exist_ok=True)
            source = _check_bind_source(mount, roots)
        options = ["rbind" if mount.recursive else "bind"]
        if mount.read_only:
            options.append("ro")
        options.append(mount.propagation or "rprivate")
        return _bind_entry(mount.destination, source, options)
    if mount.volume_key not in volume_mounts:
        raise CreateError(500, f"volume {mount.volume_key} was not resolved before the spec")
    volume_dir = volume_mounts[mount.volume_key]
    source = volume_dir
    if mount.subpath:
        source = os.path.realpath(os.path.join(volume_dir, mount.subpath))
        if not _under(source, os.path.realpath(volume_dir)):
            raise _refused(f"volume subpath {mount.subpath} resolves outside the volume")
        if not os.path.exists(source):
            raise _bad(f"cannot access path {source}: no such file or directory")
    options = ["rbind"] + (["ro"] if mount.read_only else [])
    if mount.propagation:
        options.append(mount.propagation)
    return _bind_entry(mount.destination, source, options)


def _mounts(
    spec_mounts: list[dict],
    request: CreateRequest,
    mounts: list[MountRequest],
    roots: Sequence[str],
    volume_mounts: Mapping[str, str],
    network_files: Mapping[str, str | None],
) -> list[dict]:
    """The default mounts (less those the container replaces), then the container's own,
    parents before children, as dockerd orders them."""
    host = request.host_config
    user_mounts = [_mount_entry(mount, roots, volume_mounts) for mount in mounts]
    taken = {entry["destination"] for entry in user_mounts}
    readonly_root = host["ReadonlyRootfs"]
    for destination, source in network_files.items():
        if source and destination not in taken:
            options = ["rbind", "rprivate"] + (["ro"] if readonly_root else [])
            user_mounts.append(_bind_entry(destination, source, options))
    user_mounts.sort(key=lambda entry: entry["destination"].rstrip("/").count("/"))
    result = []
    dev_replaced = "/dev" in taken
    shm_size = host["ShmSize"] or DEFAULT_SHM_SIZE
    for entry in spec_mounts:
        destination = entry["destination"]
        if destination in taken or (dev_replaced and destination.startswith("/dev/")):
            continue
        if destination == "/dev/shm":
            if host["IpcMode"] == "none":
                continue
            options = [o for o in entry["options"] if not o.startswith("size=")]
            entry["options"] = [*options, f"size={shm_size}"]
        if readonly_root and destination not in (
            "/proc",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/dev",
        ):
            if "ro" not in entry["options"]:
                entry["options"].append("ro")
        result.append(entry)
    return result + user_mounts


def build_spec(
    request: CreateRequest,
    image_config: ImageConfig,
    rootfs: str,
    container_id: str,
    *,
    allowed_bind_roots: Sequence[str],
    hostname: str | None = None,
    cgroups_path: str | None = None,
    volume_mounts: Mapping[str, str] | None = None,
    resolv_conf_path: str | None = None,
    hosts_path: str | None = None,
    hostname_path: str | None = None,
    namespace_paths: Mapping[str, str] | None = None,
    pidns_parent: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict:
    """The OCI config.json for the container: simulator.runtime.defaults' profile with the
    request laid over it. ``rootfs`` is the container's root filesystem (mounted): the user
    is looked up in it and the working directory made in it. ``volume_mounts`` maps each
    volume's ``volume_key`` (see container_mounts) to its host directory; the three file
    paths, when given, are bind-mounted at /etc/resolv.conf, /etc/hosts and /etc/hostname;
    ``namespace_paths`` ({"network": "/run/netns/x", ...}) are joined instead of made new.
    The request is checked against the allowlist again, so a bind source swapped for a
    symlink since create is still refused; the spec names the resolved source."""
    check_allowed(request, allowed_bind_roots)
    host = request.host_config
    config = merge_image_config(request, image_config)
    hostname = hostname or config["Hostname"] or container_id[:12]
    user = resolve_user(rootfs, config["User"], host["GroupAdd"] or [])
    working_dir = config["WorkingDir"] or "/"
    if config["WorkingDir"]:
        _make_working_dir(rootfs, working_dir)
    spec = defaults.container_spec(
        process_args(config),
        rootfs=rootfs,
        hostname=hostname,
        env=process_env(config, hostname, user.home),
        terminal=config["Tty"],
        cgroups_path=cgroups_path,
    )
    process = spec["process"]
    process["cwd"] = working_dir
    process["user"] = {
        "uid": user.uid,
        "gid": user.gid,
        "additionalGids": list(user.additional_gids),
    }
    capabilities = _capabilities(host)
    process["capabilities"] = {
        "bounding": capabilities,
        "effective": capabilities,
        "permitted": capabilities,
    }
    height, width = host["ConsoleSize"]
    if config["Tty"] and height and width:
        process["consoleSize"] = {"height": height, "width": width}
    if host["Ulimits"]:
        process["rlimits"] = [
            {"type": f"RLIMIT_{u['Name'].upper()}", "hard": u["Hard"], "soft": u["Soft"]}
            for u in host["Ulimits"]
        ]
    if host["OomScoreAdj"]:
        process["oomScoreAdj"] = host["OomScoreAdj"]
    if config["Domainname"]:
        spec["domainname"] = config["Domainname"]
    spec["root"]["readonly"] = bool(host["ReadonlyRootfs"])
    linux = spec["linux"]
    for option, key in (("MaskedPaths", "maskedPaths"), ("ReadonlyPaths", "readonlyPaths")):
        if host[option] is not None:  # check_allowed let it through: it extends the defaults
            linux[key] = list(dict.fromkeys(host[option]))
    _resources(host, linux["resources"])
    linux["namespaces"] = _namespaces(host, namespace_paths or {})
    own_network = host["NetworkMode"] != "host" and not host["NetworkMode"].startswith("container:")
    if not own_network:
        # Docker's network sysctls are for a namespace of the container's own: never the
        # node's (host) nor another container's.
        linux["sysctl"].pop("net.ipv4.ping_group_range", None)
    elif os.path.exists("/proc/sys/net/ipv4/ip_unprivileged_port_start"):
        # Docker lets any user bind ports below 1024 inside the container's own netns.
        linux["sysctl"]["net.ipv4.ip_unprivileged_port_start"] = "0"
    linux["sysctl"].update(host["Sysctls"] or {})
    mounts = container_mounts(request, image_config)
    for mount in mounts:  # the image's volumes too
        _check_mount_allowed(mount, allowed_bind_roots)
    spec["mounts"] = _mounts(
        spec["mounts"],
        request,
        mounts,
        allowed_bind_roots,
        volume_mounts or {},
        {
            "/etc/resolv.conf": resolv_conf_path,
            "/etc/hosts": hosts_path,
            "/etc/hostname": hostname_path,
        },
    )
    spec_annotations = dict(host["Annotations"] or {})
    if config["OpenStdin"]:
        spec_annotations[STDIN_ANNOTATION] = "open"
    if pidns_parent and "pid" not in (namespace_paths or {}):
        spec_annotations[PIDNS_PARENT_ANNOTATION] = pidns_parent
    spec_annotations.update(annotations or {})
    if spec_annotations:
        spec["annotations"] = spec_annotations
    return spec
