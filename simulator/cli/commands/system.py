"""``docker version``, ``info``, ``events`` and ``docker system df|prune`` (with ``docker system
info|events``), laid out as Docker's CLI lays them out from the engine's answers."""

from __future__ import annotations

import ipaddress
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from simulator.cli.client import ConnectError, DaemonError
from simulator.cli.commands.images import (
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    GoObject,
    confirm,
    filters_param,
    go_value,
    parse_filters,
    prune_filters,
    prune_images,
    with_command,
)
from simulator.cli.commands.volumes import prune_volumes, volume_prune_filters
from simulator.cli.flags import NO_ARGS, Command, Context, Flag, Options, StatusError
from simulator.cli.formatting import (
    ContainerRow,
    FormatError,
    ImageRow,
    VolumeRow,
    familiar_name,
    natural_sort_key,
    parse_normalized_reference,
    write_rows,
)
from simulator.cli.main import CLIENT_GIT_COMMIT, CLIENT_VERSION
from simulator.cli.progress import credentials, rfc3339_nano_fixed
from simulator.cli.table import align_columns
from simulator.cli.template import (
    GoStruct,
    TemplateData,
    TemplateError,
    go_quote,
    parse,
)
from simulator.cli.units import bytes_size, human_size

DEFAULT_API_VERSION = "1.50"
CONTEXT_NAME = "default"
GO_ARCHITECTURES = MappingProxyType({"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"})
DF_TABLE_FORMAT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_IMAGE_FORMAT = (
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t"
    "{{.UniqueSize}}\t{{.Containers}}"
)
DF_CONTAINER_FORMAT = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t"
    "{{.Status}}\t{{.Names}}"
)
DF_VOLUME_FORMAT = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
DF_BUILD_CACHE_HEADER = "CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED"
API_RENAMES = MappingProxyType({"ApiVersion": "APIVersion"})
INFO_RENAMES = MappingProxyType(
    {
        "CpuCfsPeriod": "CPUCfsPeriod",
        "CpuCfsQuota": "CPUCfsQuota",
        "HttpProxy": "HTTPProxy",
        "HttpsProxy": "HTTPSProxy",
    }
)
# events.Message's members: JSON name, Go name, and whether it is left out when empty.
EVENT_FIELDS = (
    ("status", "Status", True), ("id", "ID", True), ("from", "From", True),
    ("Type", "Type", False), ("Action", "Action", False), ("Actor", "Actor", False),
    ("scope", "Scope", True), ("time", "Time", True), ("timeNano", "TimeNano", True),
)  # fmt: skip
ACTIVE_STATES = ("running", "paused", "restarting")
_PLACEHOLDER = re.compile(r"\.[a-zA-Z]")
PRUNE_FILTER_NAMES = ("label", "label!", "until")
# system.Info's members in the order Go marshals them; the second set are left out when empty.
OMITTED = object()  # a member Go leaves out when it is empty
_COMMIT = MappingProxyType({"ID": ""})
_SWARM = MappingProxyType(
    {"NodeID": "", "NodeAddr": "", "LocalNodeState": "", "ControlAvailable": False, "Error": "",
     "RemoteManagers": None}
)  # fmt: skip
_PLUGINS = MappingProxyType({"Volume": None, "Network": None, "Authorization": None, "Log": None})
# system.Info's members in the order Go marshals them, with the value each has when /info
# leaves it out (OMITTED: left out of the JSON when empty).
INFO_FIELDS = MappingProxyType(
    {
        "ID": "", "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0,
        "ContainersStopped": 0, "Images": 0, "Driver": "", "DriverStatus": None,
        "SystemStatus": OMITTED, "Plugins": _PLUGINS, "MemoryLimit": False, "SwapLimit": False,
        "KernelMemory": OMITTED, "KernelMemoryTCP": OMITTED, "CpuCfsPeriod": False,
        "CpuCfsQuota": False, "CPUShares": False, "CPUSet": False, "PidsLimit": False,
        "IPv4Forwarding": False, "Debug": False, "NFd": 0, "OomKillDisable": False,
        "NGoroutines": 0, "SystemTime": "", "LoggingDriver": "", "CgroupDriver": "",
        "CgroupVersion": OMITTED, "NEventsListener": 0, "KernelVersion": "",
        "OperatingSystem": "", "OSVersion": "", "OSType": "", "Architecture": "",
        "IndexServerAddress": "", "RegistryConfig": None, "NCPU": 0, "MemTotal": 0,
        "GenericResources": None, "DockerRootDir": "", "HttpProxy": "", "HttpsProxy": "",
        "NoProxy": "", "Name": "", "Labels": None, "ExperimentalBuild": False,
        "ServerVersion": "", "Runtimes": None, "DefaultRuntime": "", "Swarm": _SWARM,
        "LiveRestoreEnabled": False, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": _COMMIT, "RuncCommit": _COMMIT, "InitCommit": _COMMIT,
        "SecurityOptions": None, "ProductLicense": OMITTED, "DefaultAddressPools": OMITTED,
        "FirewallBackend": OMITTED, "CDISpecDirs": None, "DiscoveredDevices": OMITTED,
        "Containerd": OMITTED, "Warnings": None,
    }
)  # fmt: skip
# Members of RegistryConfig (registry.ServiceConfig) left out when empty.
REGISTRY_OMITTED = (
    "AllowNondistributableArtifactsCIDRs",
    "AllowNondistributableArtifactsHostnames",
)
UNTIL_WITH_VOLUMES = 'ERROR: The "until" filter is not supported with "--volumes"'


# -- the client's own facts ---------------------------------------------------------------------


def _go_architecture() -> str:
    machine = platform.machine()
    return GO_ARCHITECTURES.get(machine, machine)


def _language_version() -> str:
    info = sys.version_info
    return f"python{info.major}.{info.minor}.{info.micro}"


def _build_time() -> str:
    """When this CLI was last changed (its newest module), as Go's time.ANSIC in UTC."""
    package = Path(__file__).resolve().parents[1]
    newest = max(path.stat().st_mtime for path in package.rglob("*.py"))
    return _ansic(datetime.fromtimestamp(int(newest), UTC))


def _ansic(moment: datetime) -> str:
    """Go's time.ANSIC: ``Mon Jan _2 15:04:05 2006``."""
    return f"{moment:%a %b} {moment.day:2d} {moment:%H:%M:%S %Y}"


def reformat_date(text: str) -> str:
    """The CLI's reformatDate: an RFC 3339 time as ANSIC, in the time's own zone."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        return text
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return _ansic(datetime.fromisoformat(match.group(1) + zone))


def client_version(context: Context, with_api_version: bool) -> GoStruct:
    """The CLI's clientVersion, as ``docker version`` and ``docker info`` show it."""
    version = GoStruct(Version=CLIENT_VERSION)
    if with_api_version:
        try:
            version["ApiVersion"] = context.client.version
        except ConnectError:  # no engine to negotiate with: the version asked for, or ours
            version["ApiVersion"] = os.environ.get("DOCKER_API_VERSION") or DEFAULT_API_VERSION
    version.update(
        DefaultAPIVersion=DEFAULT_API_VERSION,
        GitCommit=CLIENT_GIT_COMMIT,
        GoVersion=_language_version(),
        Os="linux",
        Arch=_go_architecture(),
        BuildTime=_build_time(),
        Context=CONTEXT_NAME,
    )
    return version


def _template_or_fail(format_text: str, status: int = 64, prefix: str = "template parsing error"):
    try:
        return parse(format_text)
    except TemplateError as error:
        raise StatusError(status, f"{prefix}: {error}") from None


# -- docker version -----------------------------------------------------------------------------


def _server_version(context: Context) -> GoStruct:
    """GET /version, with the Engine component's BuildTime reformatted (and the component
    made from the top-level fields for an engine that sends none)."""
    server = go_value(context.client.request("GET", "/version").read().decode())
    components = server.get("Components") or []
    engines = [c for c in components if c.get("Name") == "Engine"]
    for component in engines:
        details = component.get("Details") or {}
        if "BuildTime" in details:
            details["BuildTime"] = reformat_date(details["BuildTime"])
    if not engines:
        components.append(
            GoStruct(
                Name="Engine",
                Version=server.get("Version", ""),
                Details={
                    "ApiVersion": server.get("ApiVersion", ""),
                    "MinAPIVersion": server.get("MinAPIVersion", ""),
                    "GitCommit": server.get("GitCommit", ""),
                    "GoVersion": server.get("GoVersion", ""),
                    "Os": server.get("Os", ""),
                    "Arch": server.get("Arch", ""),
                    "BuildTime": reformat_date(server.get("BuildTime", "")),
                    "Experimental": str(bool(server.get("Experimental"))).lower(),
                },
            )
        )
        server["Components"] = components
    return server


def _version_text(client: GoStruct, server: GoStruct | None) -> str:
    """The default layout of ``docker version``, before its columns are aligned."""
    api = client["ApiVersion"]
    if api != client["DefaultAPIVersion"]:
        api += f" (downgraded from {client['DefaultAPIVersion']})"
    lines = [
        "Client:",
        f" Version:\t{client['Version']}",
        f" API version:\t{api}",
        f" Go version:\t{client['GoVersion']}",
        f" Git commit:\t{client['GitCommit']}",
        f" Built:\t{client['BuildTime']}",
        f" OS/Arch:\t{client['Os']}/{client['Arch']}",
        f" Context:\t{client['Context']}",
    ]
    if server is not None:
        name = (server.get("Platform") or {}).get("Name") or ""
        lines += ["", "Server:" + (f" {name}" if name else "")]
        for component in server.get("Components") or []:
            details = component.get("Details") or {}
            lines.append(f" {component.get('Name', '')}:")
            if component.get("Name") == "Engine":
                lines += [
                    f"  Version:\t{component.get('Version', '')}",
                    f"  API version:\t{details.get('ApiVersion', '')} (minimum version "
                    f"{details.get('MinAPIVersion', '')})",
                    f"  Go version:\t{details.get('GoVersion', '')}",
                    f"  Git commit:\t{details.get('GitCommit', '')}",
                    f"  Built:\t{details.get('BuildTime', '')}",
                    f"  OS/Arch:\t{details.get('Os', '')}/{details.get('Arch', '')}",
                    f"  Experimental:\t{details.get('Experimental', '')}",
                ]
            else:
                lines.append(f"  Version:\t{component.get('Version', '')}")
                lines += [f"  {key}:\t{details[key]}" for key in sorted(details)]
    return "\n".join(lines) + "\n"


def _named_template_error(text: str) -> str:
    """A template error as Go words it for the template ``docker version`` names "version"."""
    return text.replace("template: :", "template: version:", 1).replace(
        'executing ""', 'executing "version"', 1
    )


def _version(context: Context, options: Options, args: list[str]) -> None:
    format_text = options["format"]
    template = None
    if format_text:
        try:
            template = parse("{{json .}}" if format_text == "json" else format_text)
        except TemplateError as error:
            message = _named_template_error(str(error))
            raise StatusError(64, f"template parsing error: {message}") from None
    client = client_version(context, with_api_version=True)
    server: GoStruct | None = None
    failure: Exception | None = None
    try:
        server = _server_version(context)
    except (ConnectError, DaemonError) as error:
        failure = error
    if template is None:
        context.stdout.write(align_columns(_version_text(client, server), 20, 1))
    else:
        data = GoObject(
            "system.versionInfo",
            GoStruct(
                Client=GoObject("system.clientVersion", client, API_RENAMES),
                Server=None if server is None else GoObject("*types.Version", server, API_RENAMES),
            ),
        )
        try:
            context.out(template.execute(data))
        except TemplateError as error:
            context.out(getattr(error, "partial_output", ""))
            if failure is None:
                raise StatusError(1, _named_template_error(str(error))) from None
    if failure is not None:
        raise failure


def _version_command() -> Command:
    return Command(
        "version",
        usage="[OPTIONS]",
        short="Show the Docker version information",
        run=_version,
        args=NO_ARGS,
        group="Common Commands",
        flags=[Flag("format", "f", "string", INSPECT_FORMAT_HELP, default="")],
    )


# -- docker info --------------------------------------------------------------------------------


def _security_options(entries: list[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """system.DecodeSecurityOptions: ``name=seccomp,profile=builtin`` as a name and options."""
    decoded = []
    for entry in entries:
        name = ""
        pairs = []
        for part in entry.split(","):
            key, _, value = part.partition("=")
            if key == "name":
                name = value
            else:
                pairs.append((key, value))
        if not name:
            raise ValueError(f"invalid security option {entry!r}")
        decoded.append((name, pairs))
    return decoded


def _server_info_lines(info: dict[str, Any], debug: bool) -> Iterator[str]:
    """prettyPrintServerInfo: the Server section of ``docker info``."""

    def nonempty(label: str, value: Any) -> Iterator[str]:
        if value:
            yield f"{label} {value}"

    def boolean(value: Any) -> str:
        return "true" if value else "false"

    yield f" Containers: {info.get('Containers', 0)}"
    yield f"  Running: {info.get('ContainersRunning', 0)}"
    yield f"  Paused: {info.get('ContainersPaused', 0)}"
    yield f"  Stopped: {info.get('ContainersStopped', 0)}"
    yield f" Images: {info.get('Images', 0)}"
    yield from nonempty(" Server Version:", info.get("ServerVersion"))
    yield from nonempty(" Storage Driver:", info.get("Driver"))
    for pair in info.get("DriverStatus") or []:
        yield f"  {pair[0]}: {pair[1]}"
    for pair in info.get("SystemStatus") or []:
        yield f" {pair[0]}: {pair[1]}"
    yield from nonempty(" Logging Driver:", info.get("LoggingDriver"))
    yield from nonempty(" Cgroup Driver:", info.get("CgroupDriver"))
    yield from nonempty(" Cgroup Version:", info.get("CgroupVersion"))
    plugins = info.get("Plugins") or {}
    yield " Plugins:"
    yield "  Volume: " + " ".join(plugins.get("Volume") or [])
    yield "  Network: " + " ".join(plugins.get("Network") or [])
    if plugins.get("Authorization"):
        yield "  Authorization: " + " ".join(plugins["Authorization"])
    yield "  Log: " + " ".join(plugins.get("Log") or [])
    if info.get("CDISpecDirs"):
        yield " CDI spec directories:"
        yield from (f"  {directory}" for directory in info["CDISpecDirs"])
    if info.get("DiscoveredDevices"):
        yield " Discovered Devices:"
        for device in info["DiscoveredDevices"]:
            yield f"  {device.get('Source', '')}: {device.get('ID', '')}"
    swarm = info.get("Swarm") or {}
    state = swarm.get("LocalNodeState", "")
    yield f" Swarm: {state}"
    if state not in ("inactive", "locked"):
        yield f"  NodeID: {swarm.get('NodeID', '')}"
        if swarm.get("Error"):
            yield f"  Error: {swarm['Error']}"
        yield f"  Is Manager: {boolean(swarm.get('ControlAvailable'))}"
        yield f"  Node Address: {swarm.get('NodeAddr', '')}"
    runtimes = info.get("Runtimes") or {}
    if runtimes:
        yield " Runtimes: " + " ".join(runtimes)
        yield f" Default Runtime: {info.get('DefaultRuntime', '')}"
    if info.get("OSType") == "linux":
        yield f" Init Binary: {info.get('InitBinary', '')}"
        yield f" containerd version: {(info.get('ContainerdCommit') or {}).get('ID', '')}"
        yield f" runc version: {(info.get('RuncCommit') or {}).get('ID', '')}"
        yield f" init version: {(info.get('InitCommit') or {}).get('ID', '')}"
        if info.get("SecurityOptions"):
            yield " Security Options:"
            for name, pairs in _security_options(info["SecurityOptions"]):
                yield f"  {name}"
                yield from (f"   Profile: {value}" for key, value in pairs if key == "profile")
    if info.get("OSType") == "windows":
        yield f" Default Isolation: {info.get('Isolation', '')}"
    yield from nonempty(" Kernel Version:", info.get("KernelVersion"))
    yield from nonempty(" Operating System:", info.get("OperatingSystem"))
    yield from nonempty(" OSType:", info.get("OSType"))
    yield from nonempty(" Architecture:", info.get("Architecture"))
    yield f" CPUs: {info.get('NCPU', 0)}"
    yield f" Total Memory: {bytes_size(info.get('MemTotal') or 0)}"
    yield from nonempty(" Name:", info.get("Name"))
    yield from nonempty(" ID:", info.get("ID"))
    yield f" Docker Root Dir: {info.get('DockerRootDir', '')}"
    yield f" Debug Mode: {boolean(info.get('Debug'))}"
    if info.get("Debug") or debug:
        yield f"  File Descriptors: {info.get('NFd', 0)}"
        yield f"  Goroutines: {info.get('NGoroutines', 0)}"
        yield f"  System Time: {info.get('SystemTime', '')}"
        yield f"  EventsListeners: {info.get('NEventsListener', 0)}"
    yield from nonempty(" HTTP Proxy:", info.get("HttpProxy"))
    yield from nonempty(" HTTPS Proxy:", info.get("HttpsProxy"))
    yield from nonempty(" No Proxy:", info.get("NoProxy"))
    yield from nonempty(" Username:", info.get("UserName"))
    if info.get("Labels"):
        yield " Labels:"
        yield from (f"  {label}" for label in info["Labels"])
    yield f" Experimental: {boolean(info.get('ExperimentalBuild'))}"
    registry = info.get("RegistryConfig") or {}
    cidrs = registry.get("InsecureRegistryCIDRs") or []
    indexes = registry.get("IndexConfigs") or {}
    if cidrs or indexes:
        yield " Insecure Registries:"
        yield from (f"  {c['Name']}" for c in indexes.values() if not c.get("Secure"))
        yield from (f"  {ipaddress.ip_network(cidr, strict=False)}" for cidr in cidrs)
    if registry.get("Mirrors"):
        yield " Registry Mirrors:"
        yield from (f"  {mirror}" for mirror in registry["Mirrors"])
    yield f" Live Restore Enabled: {boolean(info.get('LiveRestoreEnabled'))}"
    if info.get("ProductLicense"):
        yield f" Product License: {info['ProductLicense']}"
    if info.get("DefaultAddressPools"):
        yield " Default Address Pools:"
        for pool in info["DefaultAddressPools"]:
            yield f"   Base: {pool.get('Base', '')}, Size: {pool.get('Size', 0)}"
    yield ""


def _plain(value: Any) -> Any:
    """A value with its objects as Go maps (marshalled with sorted keys)."""
    if isinstance(value, dict):
        return {key: _plain(member) for key, member in value.items()}
    if isinstance(value, list):
        return [_plain(member) for member in value]
    return value


def info_members(info: GoStruct) -> GoStruct:
    """/info as the CLI decodes it into system.Info and marshals it again: the struct's
    members in its order, Go's zero value for one /info left out, empty optional ones and
    unknown ones dropped, RegistryConfig as a map."""
    members = GoStruct()
    for name, zero in INFO_FIELDS.items():
        value = info.get(name, None if zero is OMITTED else zero)
        if zero is OMITTED and not value:
            continue
        if name == "RegistryConfig" and isinstance(value, dict):
            value = _plain({k: v for k, v in value.items() if v or k not in REGISTRY_OMITTED})
        elif name.endswith("Commit") and isinstance(value, dict):
            value = GoStruct((k, v) for k, v in value.items() if v or k != "Expected")
        elif isinstance(value, MappingProxyType):
            value = GoStruct(value)
        members[name] = value
    return members


def _needs_server(format_text: str, client: GoStruct) -> bool:
    """Whether a ``docker info`` format reads anything but the client's part."""
    if format_text in ("", "json", "{{json .}}") or not _PLACEHOLDER.search(format_text):
        return True
    try:
        sparse = GoStruct(ClientInfo=GoObject("*system.clientInfo", client, API_RENAMES))
        parse(format_text).execute(GoObject("system.sparseInfo", sparse))
    except TemplateError:
        return True
    return False


def _info(context: Context, options: Options, args: list[str]) -> None:
    format_text = options["format"]
    client = GoStruct(Debug=context.debug)
    client.update(client_version(context, with_api_version=False))
    client.update(Plugins=[], Warnings=None)
    if not format_text:
        client_part = [
            "Client:",
            f" Version:    {client['Version']}",
            f" Context:    {client['Context']}",
            f" Debug Mode: {'true' if context.debug else 'false'}",
            "",
            "Server:",
        ]
        context.stdout.write("\n".join(client_part) + "\n")
        context.stdout.flush()
        info = context.client.get_json("/info")
        info["UserName"] = credentials(context, "docker.io").get("username", "")
        context.stdout.write("\n".join(_server_info_lines(info, context.debug)) + "\n")
        for warning in info.get("Warnings") or []:
            context.err(warning)
        return
    template = _template_or_fail("{{json .}}" if format_text == "json" else format_text)
    members = GoStruct()
    if _needs_server(format_text, client):
        try:
            answer = context.client.request("GET", "/info").read().decode()
            members.update(info_members(go_value(answer)))
        except DaemonError as error:
            context.err(f"Error response from daemon: {error.message}")
            members["ServerErrors"] = [f"Error response from daemon: {error.message}"]
    members["ClientInfo"] = GoObject("*system.clientInfo", client, API_RENAMES)
    try:
        context.out(template.execute(GoObject("system.dockerInfo", members, INFO_RENAMES)))
    except TemplateError as error:
        context.out(getattr(error, "partial_output", ""))
        raise StatusError(1, str(error)) from None


def _info_command() -> Command:
    return Command(
        "info",
        usage="[OPTIONS]",
        short="Display system-wide information",
        run=_info,
        args=NO_ARGS,
        also=["docker system info", "docker info"],
        flags=[Flag("format", "f", "string", INSPECT_FORMAT_HELP, default="")],
    )


# -- docker system df ---------------------------------------------------------------------------


def _percent_of(reclaimable: int, total: int) -> str:
    if total > 0:
        return f"{human_size(reclaimable)} ({reclaimable * 100 // total}%)"
    return human_size(reclaimable)


class DiskUsageRow(TemplateData):
    """One line of ``docker system df``: images, containers, local volumes or build cache."""

    go_type = "*formatter.diskUsageImagesContext"
    template_fields = MappingProxyType(
        {
            "Active": "active",
            "Reclaimable": "reclaimable",
            "Size": "size",
            "TotalCount": "total_count",
            "Type": "type",
        }
    )
    header = MappingProxyType(
        {
            "Type": "TYPE",
            "TotalCount": "TOTAL",
            "Active": "ACTIVE",
            "Size": "SIZE",
            "Reclaimable": "RECLAIMABLE",
        }
    )

    def __init__(self, kind: str, total: int, active: int, size: int, reclaimable: str):
        self.kind = kind
        self.total = total
        self.used = active
        self.bytes = size
        self.reclaimable_text = reclaimable

    def type(self) -> str:
        return self.kind

    def total_count(self) -> str:
        return str(self.total)

    def active(self) -> str:
        return str(self.used)

    def size(self) -> str:
        return human_size(self.bytes)

    def reclaimable(self) -> str:
        return self.reclaimable_text


def disk_usage_rows(usage: dict[str, Any]) -> list[DiskUsageRow]:
    """The four lines of ``docker system df`` for a /system/df answer."""
    images = usage.get("Images") or []
    layers = int(usage.get("LayersSize") or 0)
    used = sum(
        i["Size"] - i["SharedSize"]
        for i in images
        if i.get("Containers") and i.get("Size", -1) != -1 and i.get("SharedSize", -1) != -1
    )
    containers = usage.get("Containers") or []
    active = [c for c in containers if c.get("State") in ACTIVE_STATES]
    writable = sum(int(c.get("SizeRw") or 0) for c in containers)
    idle = writable - sum(int(c.get("SizeRw") or 0) for c in active)
    volumes = usage.get("Volumes") or []
    sized = [v for v in volumes if (v.get("UsageData") or {}).get("Size", -1) != -1]
    volume_total = sum(v["UsageData"]["Size"] for v in sized)
    unused = sum(v["UsageData"]["Size"] for v in sized if not v["UsageData"].get("RefCount"))
    cache = usage.get("BuildCache") or []
    builder = sum(int(c.get("Size") or 0) for c in cache if not c.get("Shared"))
    in_use = sum(int(c.get("Size") or 0) for c in cache if c.get("InUse") and not c.get("Shared"))
    return [
        DiskUsageRow(
            "Images",
            len(images),
            sum(1 for i in images if (i.get("Containers") or 0) > 0),
            layers,
            _percent_of(layers - used, layers),
        ),
        DiskUsageRow(
            "Containers", len(containers), len(active), writable, _percent_of(idle, writable)
        ),
        DiskUsageRow(
            "Local Volumes",
            len(volumes),
            sum(1 for v in volumes if (v.get("UsageData") or {}).get("RefCount", 0) > 0),
            volume_total,
            _percent_of(unused, volume_total),
        ),
        DiskUsageRow(
            "Build Cache",
            len(cache),
            sum(1 for c in cache if c.get("InUse")),
            builder,
            human_size(builder - in_use),
        ),
    ]


def _image_rows(images: list[dict[str, Any]], trunc: bool, now: float) -> list[ImageRow]:
    """The images of ``df -v``: each once, named by its first tag (``<none>`` if dangling)."""
    rows = []
    for summary in images:
        repository = tag = "<none>"
        tags = [t for t in summary.get("RepoTags") or [] if t != "<none>:<none>"]
        if tags:
            parsed = parse_normalized_reference(tags[0])
            if parsed is None:
                continue
            if parsed[1] is not None:
                repository, tag = familiar_name(parsed[0]), parsed[1]
        rows.append(ImageRow(summary, repository, tag, "", trunc, now))
    return rows


def _verbose_rows(usage: dict[str, Any], trunc: bool) -> GoStruct:
    """Every object of ``df -v``, as the rows its tables or template show."""
    now = time.time()
    return GoStruct(
        Images=_image_rows(usage.get("Images") or [], trunc, now),
        Containers=[
            ContainerRow({**c, "SizeRootFs": 0}, trunc=trunc, now=now)
            for c in usage.get("Containers") or []
        ],
        Volumes=[VolumeRow(v) for v in usage.get("Volumes") or []],
        BuildCache=[GoStruct(record) for record in usage.get("BuildCache") or []],
    )


def _verbose_disk_usage(usage: dict[str, Any]) -> str:
    """``docker system df -v``: a table for each kind of object."""
    rows = _verbose_rows(usage, trunc=True)
    cache = usage.get("BuildCache") or []
    builder = sum(int(c.get("Size") or 0) for c in cache if not c.get("Shared"))
    return "".join(
        [
            "Images space usage:\n\n",
            write_rows(DF_IMAGE_FORMAT, rows["Images"], ImageRow.header),
            "\nContainers space usage:\n\n",
            write_rows(DF_CONTAINER_FORMAT, rows["Containers"], ContainerRow.header),
            "\nLocal Volumes space usage:\n\n",
            write_rows(DF_VOLUME_FORMAT, rows["Volumes"], VolumeRow.header),
            f"\nBuild cache usage: {human_size(builder)}\n\n",
            DF_BUILD_CACHE_HEADER + "\n",
        ]
    )


def _disk_usage(context: Context, options: Options, args: list[str]) -> None:
    usage = context.client.get_json("/system/df")
    format_text = options["format"] or "table"
    if options["verbose"] and format_text == "table":
        context.stdout.write(_verbose_disk_usage(usage))
        return
    try:
        if options["verbose"]:
            template = _template_or_fail(
                "{{json .}}" if format_text == "json" else format_text, status=1
            )
            data = GoObject("formatter.diskUsageContext", _verbose_rows(usage, trunc=False))
            context.stdout.write(template.execute(data))
            return
        if format_text == "table":
            format_text = DF_TABLE_FORMAT
        rows = disk_usage_rows(usage)
        context.stdout.write(write_rows(format_text, rows, DiskUsageRow.header))
    except (FormatError, TemplateError) as error:
        raise StatusError(1, str(error)) from None


def _disk_usage_command() -> Command:
    return Command(
        "df",
        usage="[OPTIONS]",
        short="Show docker disk usage",
        run=_disk_usage,
        args=NO_ARGS,
        flags=[
            Flag("format", kind="string", help=FORMAT_HELP, default=""),
            Flag("verbose", "v", help="Show detailed information on space usage"),
        ],
    )


# -- docker system prune ------------------------------------------------------------------------


def _prune_warning(options: Options, filters: dict[str, dict[str, bool]]) -> str:
    warnings = ["all stopped containers", "all networks not used by at least one container"]
    if options["volumes"]:
        warnings.append("all anonymous volumes not used by at least one container")
    if options["all"]:
        warnings += ["all images without at least one container associated to them"]
        warnings += ["all build cache"]
    else:
        warnings += ["all dangling images", "unused build cache"]
    text = "WARNING! This will remove:" + "".join(f"\n  - {w}" for w in warnings) + "\n"
    shown = [
        f"{name}={value}"
        for name in ("label", "label!", "until")
        for value in filters.get(name, {})
    ]
    if shown:
        text += "\n  Items to be pruned will be filtered with:"
        text += "".join(f"\n  - {f}" for f in sorted(shown, key=natural_sort_key)) + "\n"
    return text + "\nAre you sure you want to continue?"


def _prune_report(
    context: Context, path: str, params: dict[str, Any], key: str, title: str
) -> tuple[int, str]:
    """One prune request: the space it reclaimed, and the listing of what it removed."""
    report = context.client.post_json(path, params)
    deleted = report.get(key) or []
    listing = title + "".join(f"{item}\n" for item in deleted) if deleted else ""
    return int(report.get("SpaceReclaimed") or 0), listing


def _system_prune(context: Context, options: Options, args: list[str], command: Command) -> None:
    filters = parse_filters(command, options["filter"], "--filter")
    if options["volumes"] and "until" in filters:
        raise StatusError(1, UNTIL_WITH_VOLUMES)
    merged = {name: dict(values) for name, values in filters.items()}
    prune_filters(context, merged)
    if not options["force"] and not confirm(context, _prune_warning(options, merged)):
        return
    query = filters_param(merged)
    build = {"all": "1" if options["all"] else None, "filters": query}
    steps: list[Callable[[], tuple[int, str]]] = [
        lambda: _prune_report(
            context, "/containers/prune", {"filters": query}, "ContainersDeleted",
            "Deleted Containers:\n",
        ),
        lambda: _prune_report(
            context, "/networks/prune", {"filters": query}, "NetworksDeleted",
            "Deleted Networks:\n",
        ),
    ]  # fmt: skip
    if options["volumes"]:
        steps.append(lambda: prune_volumes(context, volume_prune_filters(context, False, filters)))
    steps.append(lambda: prune_images(context, options["all"], filters))
    steps.append(
        lambda: _prune_report(
            context, "/build/prune", build, "CachesDeleted", "Deleted build cache objects:\n"
        )
    )
    reclaimed = 0
    for step in steps:
        space, output = step()
        reclaimed += space
        if output:
            context.out(output)
    context.out(f"Total reclaimed space: {human_size(reclaimed)}")


def _system_prune_command() -> Command:
    command = Command(
        "prune",
        usage="[OPTIONS]",
        short="Remove unused data",
        args=NO_ARGS,
        flags=[
            Flag("all", "a", help="Remove all unused images not just dangling ones"),
            Flag(
                "filter", kind="filter", help='Provide filter values (e.g. "label=<key>=<value>")'
            ),
            Flag("force", "f", help="Do not prompt for confirmation"),
            Flag("volumes", help="Prune anonymous volumes"),
        ],
    )  # fmt: skip
    return with_command(command, _system_prune)


# -- docker events ------------------------------------------------------------------------------

_DURATION_UNITS = MappingProxyType(
    {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
)
_DURATION = re.compile(r"([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|0)")
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_LAYOUT_ELEMENT = re.compile(r"2006|01|02|15|04|05|\.999999999|Z07:00|[^0-9.Z]+")
_UNIX_TIME = re.compile(r"[+-]?\d+(\.[+-]?\d+)?")
RFC3339 = "2006-01-02T15:04:05Z07:00"
RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"
RFC3339_LOCAL = "2006-01-02T15:04:05"
RFC3339_NANO_LOCAL = "2006-01-02T15:04:05.999999999"


class GoTimeError(ValueError):
    """A time that Go's time.Parse refuses; ``str()`` is Go's message."""


_NUMBERS = MappingProxyType(
    {"01": "month", "02": "day", "15": "hour", "04": "minute", "05": "second"}
)
_LIMITS = MappingProxyType(
    {"month": (1, 12), "hour": (0, 23), "minute": (0, 59), "second": (0, 59)}
)


def _leading_number(text: str, fixed: bool) -> tuple[int, str] | None:
    """Go's getnum: one or two leading digits (exactly two when ``fixed``), and the rest."""
    if not text[:1].isdigit() or (fixed and not text[1:2].isdigit()):
        return None
    width = 2 if text[1:2].isdigit() else 1
    return int(text[:width]), text[width:]


def _zone_offset(text: str) -> tuple[int, str] | None:
    """Go's Z07:00: "Z", or "+hh:mm" / "-hh:mm" as seconds east of UTC, and the rest."""
    if text.startswith("Z"):
        return 0, text[1:]
    match = re.match(r"([+-])(\d\d):(\d\d)", text)
    if match is None:
        return None
    seconds = int(match.group(2)) * 3600 + int(match.group(3)) * 60
    return (-seconds if match.group(1) == "-" else seconds), text[6:]


def go_parse_time(value: str, layout: str, local_offset: int) -> tuple[int, int]:
    """time.Parse for the layouts GetTimestamp uses (ParseInLocation at ``local_offset``
    seconds east of UTC when the layout has no zone): Unix seconds and nanoseconds, or
    GoTimeError with Go's message."""
    fields = {"year": 1, "month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0}
    nanos, offset, rest = 0, local_offset, value

    def cannot_parse(text: str, element: str) -> GoTimeError:
        return GoTimeError(
            f"parsing time {go_quote(value)} as {go_quote(layout)}: cannot parse "
            f"{go_quote(text)} as {go_quote(element)}"
        )

    for element in _LAYOUT_ELEMENT.findall(layout):
        if element == "2006":
            if not rest[:4].isdigit() or len(rest) < 4:
                raise cannot_parse(rest, element)
            fields["year"], rest = int(rest[:4]), rest[4:]
        elif element in _NUMBERS:
            number = _leading_number(rest, fixed=element != "15")
            if number is None:
                raise cannot_parse(rest, element)
            name = _NUMBERS[element]
            fields[name], rest = number
            low, high = _LIMITS.get(name, (0, 99))
            if not low <= fields[name] <= high:
                raise GoTimeError(f"parsing time {go_quote(value)}: {name} out of range")
        elif element == "Z07:00":
            zone = _zone_offset(rest)
            if zone is None:
                raise cannot_parse(rest, element)
            offset, rest = zone
        elif element != ".999999999":  # a literal: "-", "T", ":"
            if not rest.startswith(element):
                raise cannot_parse(rest, element)
            rest = rest[len(element) :]
        if element in ("05", ".999999999"):  # fractional seconds may follow the seconds
            fraction = re.match(r"[.,](\d+)", rest)
            if fraction is not None:
                nanos = int(fraction.group(1)[:9].ljust(9, "0"))
                rest = rest[fraction.end() :]
    if rest:
        raise GoTimeError(f"parsing time {go_quote(value)}: extra text: {go_quote(rest)}")
    try:
        moment = datetime(**fields, tzinfo=timezone(timedelta(seconds=offset)))
    except ValueError:
        raise GoTimeError(f"parsing time {go_quote(value)}: day out of range") from None
    return int(moment.timestamp()), nanos


def _timestamp_layout(value: str, in_location: bool) -> str:
    """The layout GetTimestamp picks for a value."""
    if "." in value:
        return RFC3339_NANO_LOCAL if in_location else RFC3339_NANO
    if "T" in value:
        colons = value.count(":")
        if not in_location and not any(c in value for c in "zZ") and colons > 0:
            colons -= 1
        if in_location:
            return {0: "2006-01-02T15", 1: "2006-01-02T15:04"}.get(colons, RFC3339_LOCAL)
        return {0: "2006-01-02T15Z07:00", 1: "2006-01-02T15:04Z07:00"}.get(colons, RFC3339)
    return "2006-01-02" if in_location else "2006-01-02Z07:00"


def _go_duration_seconds(value: str) -> float | None:
    """Go's time.ParseDuration, in seconds; None if ``value`` isn't a duration."""
    match = _DURATION.fullmatch(value)
    if match is None:
        return None
    sign = -1.0 if match.group(1) == "-" else 1.0
    total = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(match.group(2)))
    return sign * total


def get_timestamp(value: str, now: float | None = None) -> str:
    """timetypes.GetTimestamp: a duration ago ("10m"), a date or time (RFC 3339, in the local
    zone when it names none), or Unix seconds, as the API's "seconds.nanoseconds"."""
    reference = time.time() if now is None else now
    seconds = _go_duration_seconds(value)
    if value != "0" and seconds is not None:
        return str(int(reference - seconds))
    in_location = not any(c in value for c in "zZ+") and value.count("-") != 3
    offset = datetime.fromtimestamp(reference).astimezone().utcoffset() or timedelta(0)
    try:
        layout = _timestamp_layout(value, in_location)
        seconds_since, nanos = go_parse_time(value, layout, int(offset.total_seconds()))
    except GoTimeError as error:
        if "-" in value:
            raise StatusError(1, str(error)) from None
        if _UNIX_TIME.fullmatch(value) is None:
            message = f"failed to parse value as time or duration: {go_quote(value)}"
            raise StatusError(1, message) from None
        return value
    return f"{seconds_since}.{nanos:09d}"


def event_value(event: dict[str, Any]) -> GoObject:
    """An event as the CLI decodes it into events.Message, for templates."""
    actor = event.get("Actor") or {}
    members = GoStruct()
    for json_name, _, _ in EVENT_FIELDS:
        value = event.get(json_name)
        if json_name == "Actor":
            value = GoStruct(ID=actor.get("ID", ""), Attributes=actor.get("Attributes"))
        elif value is None:
            value = 0 if json_name in ("time", "timeNano") else ""
        members[json_name] = value
    renames = {json_name: go_name for json_name, go_name, _ in EVENT_FIELDS}
    optional = [json_name for json_name, _, omitted in EVENT_FIELDS if omitted]
    return GoObject("*events.Message", members, renames, optional)


def event_line(event: dict[str, Any]) -> str:
    """prettyPrintEvent: the time, type, action and actor, and the sorted attributes."""
    nanos = int(event.get("timeNano") or 0) or int(event.get("time") or 0) * 1_000_000_000
    text = rfc3339_nano_fixed(nanos) + " " if nanos else ""
    actor = event.get("Actor") or {}
    text += f"{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attributes = actor.get("Attributes") or {}
    if attributes:
        text += " (" + ", ".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + ")"
    return text


def _events(context: Context, options: Options, args: list[str], command: Command) -> None:
    format_text = options["format"]
    template = None
    if format_text:
        template = _template_or_fail(
            "{{json .}}" if format_text == "json" else format_text, prefix="Error parsing format"
        )
        try:
            template.execute(event_value({}))
        except TemplateError as error:
            raise StatusError(64, f"Error parsing format: {error}") from None
    filters = parse_filters(command, options["filter"], "-f, --filter")
    now = time.time()
    params = {
        "since": get_timestamp(options["since"], now) if options["since"] else None,
        "until": get_timestamp(options["until"], now) if options["until"] else None,
        "filters": filters_param(filters),
    }
    answer = context.client.request("GET", "/events", params)
    for event in answer.json_lines():
        if template is None:
            context.out(event_line(event))
        else:
            try:
                context.out(template.execute(event_value(event)))
            except TemplateError as error:
                context.out(getattr(error, "partial_output", ""))
                raise StatusError(1, str(error)) from None
        context.stdout.flush()


def _events_command() -> Command:
    command = Command(
        "events",
        usage="[OPTIONS]",
        short="Get real time events from the server",
        args=NO_ARGS,
        also=["docker system events", "docker events"],
        flags=[
            Flag("filter", "f", "filter", "Filter output based on conditions provided"),
            Flag("format", kind="string", help=INSPECT_FORMAT_HELP, default=""),
            Flag("since", kind="string", help="Show all events created since timestamp",
                 default=""),
            Flag("until", kind="string", help="Stream events until this timestamp", default=""),
        ],
    )  # fmt: skip
    return with_command(command, _events)


def register(root: Command, groups: dict[str, Command]) -> None:
    """Add ``version``, ``info``, ``events`` and ``docker system …``."""
    root.add(_version_command())
    info = _info_command()
    info.group = "Common Commands"
    root.add(info, _events_command())
    groups["system"].add(
        _disk_usage_command(), _events_command(), _info_command(), _system_prune_command()
    )
