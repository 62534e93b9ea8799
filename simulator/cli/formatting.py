"""Docker CLI 28.x output for list commands: `docker ps`, `images`, `volume ls` and `history`
rendered from Engine API JSON exactly as the real CLI renders it (tables, --format, -q,
--no-trunc), plus the container status text that the daemon puts in /containers/json."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from simulator.cli.table import align_columns, ellipsis
from simulator.cli.template import (
    HEADER_FUNCTIONS,
    GoMap,
    GoStruct,
    TemplateData,
    TemplateError,
    TemplateExecError,
    go_quote,
    parse,
)
from simulator.cli.units import (
    go_time_string,
    human_duration,
    human_size,
    human_size_with_precision,
    rfc3339,
)

TABLE_KEY = "table"
JSON_KEY = "json"
QUIET_FORMAT = "{{.ID}}"
JSON_FORMAT = "{{json .}}"
SHORT_ID_LENGTH = 12
PS_QUIET_FORMAT_WARNING = (
    "WARNING: Ignoring custom format, because both --format and --quiet are set."
)

CONTAINER_TABLE_FORMAT = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
)
IMAGE_TABLE_FORMAT = (
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t"
    "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
)
IMAGE_TABLE_FORMAT_WITH_DIGEST = (
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t"
    "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
)
VOLUME_TABLE_FORMAT = "table {{.Driver}}\t{{.Name}}"
VOLUME_QUIET_FORMAT = "{{.Name}}"
HISTORY_TABLE_FORMAT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_TABLE_FORMAT_NOT_HUMAN = (
    "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
)
EPOCH_2000 = 946684800  # history shows N/A for layers created before 2000-01-01


class FormatError(Exception):
    """A --format that doesn't parse or run; str() is the line the CLI prints (exit status 1)."""


# ---------------------------------------------------------------------------------------------
# Small helpers with the CLI's rules


def truncate_id(identifier: str) -> str:
    """stringid.TruncateID: drop an "algorithm:" prefix, keep 12 characters."""
    _, colon, rest = identifier.partition(":")
    return (rest if colon else identifier)[:SHORT_ID_LENGTH]


def _join_host_port(host: str, port: str) -> str:
    """Go's net.JoinHostPort: IPv6 addresses go in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def displayable_ports(ports: Sequence[Mapping[str, Any]]) -> str:
    """The PORTS column: "0.0.0.0:5005->80/tcp, [::]:5005->80/tcp", "80/tcp", with runs of
    consecutive ports grouped as "8000-8002/tcp" (the CLI's DisplayablePorts)."""

    def sort_key(port: Mapping[str, Any]) -> tuple[int, str, int, str]:
        return (
            int(port.get("PrivatePort") or 0),
            port.get("IP") or "",
            int(port.get("PublicPort") or 0),
            port.get("Type") or "",
        )

    groups: dict[str, list[int]] = {}
    results: list[str] = []
    host_mappings: list[str] = []

    def form_group(key: str, first: int, last: int) -> str:
        ip, _, kind = key.rpartition("/")
        group = str(first) if first == last else f"{first}-{last}"
        if ip:
            group = f"{_join_host_port(ip, group)}->{group}"
        return f"{group}/{kind}"

    for port in sorted(ports, key=sort_key):
        private = int(port.get("PrivatePort") or 0)
        public = int(port.get("PublicPort") or 0)
        kind = port.get("Type") or ""
        ip = port.get("IP") or ""
        key = kind
        if ip:
            if public != private:
                host_mappings.append(f"{_join_host_port(ip, str(public))}->{private}/{kind}")
                continue
            key = f"{ip}/{kind}"
        group = groups.get(key)
        if group is None:
            groups[key] = [private, private]
            continue
        if private == group[1] + 1:
            group[1] = private
            continue
        results.append(form_group(key, group[0], group[1]))
        groups[key] = [private, private]
    results += [form_group(key, first, last) for key, (first, last) in groups.items()]
    return ", ".join(results + host_mappings)


def natural_sort_key(text: str) -> list[tuple[int, Any, int]]:
    """fvbommel/sortorder NaturalLess as a key: digit runs compare as numbers (fewer leading
    zeros first) and sort before other characters, which compare bytewise."""
    key: list[tuple[int, Any, int]] = []
    for run in re.findall(r"\d+|\D", text):
        if run.isdigit():
            digits = run.lstrip("0")
            key.append((0, (len(digits), digits), len(run) - len(digits)))
        else:
            key.append((1, run.encode(), 0))
    return key


# ---------------------------------------------------------------------------------------------
# Image references, as github.com/distribution/reference parses and shortens them

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_NAME = rf"(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
DEFAULT_DOMAIN = "docker.io"


def parse_normalized_reference(text: str) -> tuple[str, str | None, str | None] | None:
    """ParseNormalizedNamed: (full name, tag, digest), e.g. ("docker.io/library/redis",
    "latest", None); None for what Docker would refuse."""
    if _HEX64.match(text):
        return None
    slash = text.find("/")
    first = text[:slash] if slash >= 0 else ""
    if slash < 0 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, text
    else:
        domain, remainder = first, text[slash + 1 :]
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder.split("@")[0].split(":")[0]:
        remainder = "library/" + remainder
    path_part = remainder.split("@")[0].rsplit(":", 1)[0] if ":" in remainder else remainder
    if path_part.lower() != path_part:
        return None
    match = _REFERENCE.match(f"{domain}/{remainder}")
    if not match or len(match.group(1)) > 255:
        return None
    return match.group(1), match.group(2), match.group(3)


def familiar_name(full_name: str) -> str:
    """FamiliarName: "docker.io/library/redis" -> "redis", "docker.io/me/app" -> "me/app"."""
    prefix = DEFAULT_DOMAIN + "/"
    if not full_name.startswith(prefix):
        return full_name
    path = full_name[len(prefix) :]
    if path.startswith("library/") and path.count("/") == 1:
        return path[len("library/") :]
    return path


def _container_image(summary: Mapping[str, Any], trunc: bool) -> str:
    image = summary.get("Image") or ""
    if not image:
        return "<no image>"
    if not trunc:
        return image
    short = truncate_id(summary.get("ImageID") or "")
    if short == truncate_id(image):
        return short
    parsed = parse_normalized_reference(image)
    if parsed is None:
        return image
    name, tag, _digest = parsed
    return familiar_name(name) + (f":{tag}" if tag else "")


# ---------------------------------------------------------------------------------------------
# The formatter contexts: what {{.Field}} sees for one row


class HeaderContext(GoMap):
    """The header row's data: field name -> column title (the CLI's SubHeaderContext)."""

    go_type = "formatter.SubHeaderContext"

    def method(self, name: str) -> Callable[..., Any] | None:
        if name == "Label":
            return self.label
        return None

    @staticmethod
    def label(name: str) -> str:
        """{{.Label "com.example.vendor"}} in a header: the last dotted part, - and _ as spaces."""
        return name.split(".")[-1].replace("-", " ").replace("_", " ")


class Platform(GoStruct):
    """An image platform; prints as "linux/amd64", marshals as the OCI platform object."""

    def __str__(self) -> str:
        os_name = self.get("os") or ""
        if not os_name:
            return "unknown"
        version = self.get("os.version")
        parts = [os_name + (f"({version})" if version else ""), self.get("architecture") or ""]
        if self.get("variant"):
            parts.append(self["variant"])
        return "/".join(parts)


def _platform(summary: Mapping[str, Any]) -> Platform | None:
    descriptor = summary.get("ImageManifestDescriptor") or {}
    platform = descriptor.get("platform")
    if not platform:
        return None
    order = ("architecture", "os", "os.version", "os.features", "variant")
    return Platform({k: platform[k] for k in order if platform.get(k)})


class ContainerRow(TemplateData):
    """One container of /containers/json, as `docker ps` shows it (formatter.ContainerContext)."""

    go_type = "*formatter.ContainerContext"
    template_fields = MappingProxyType(
        {
            "Command": "command",
            "CreatedAt": "created_at",
            "ID": "id",
            "Image": "image",
            "Labels": "labels",
            "LocalVolumes": "local_volumes",
            "Mounts": "mounts",
            "Names": "names",
            "Networks": "networks",
            "Platform": "platform",
            "Ports": "ports",
            "RunningFor": "running_for",
            "Size": "size",
            "State": "state",
            "Status": "status",
        }
    )
    template_methods = MappingProxyType({"Label": ("label", ("string",))})
    header = MappingProxyType(
        {
            "ID": "CONTAINER ID",
            "Names": "NAMES",
            "Image": "IMAGE",
            "Command": "COMMAND",
            "CreatedAt": "CREATED AT",
            "RunningFor": "CREATED",
            "Ports": "PORTS",
            "State": "STATE",
            "Status": "STATUS",
            "Size": "SIZE",
            "Labels": "LABELS",
            "Mounts": "MOUNTS",
            "LocalVolumes": "LOCAL VOLUMES",
            "Networks": "NETWORKS",
            "Platform": "PLATFORM",
        }
    )

    def __init__(self, summary: Mapping[str, Any], trunc: bool = True, now: float | None = None):
        self.summary = summary
        self.trunc = trunc
        self.now = time.time() if now is None else now
        self.size_used = False

    def id(self) -> str:
        identifier = self.summary.get("Id") or ""
        return truncate_id(identifier) if self.trunc else identifier

    def names(self) -> str:
        names = [name[1:] for name in self.summary.get("Names") or []]
        if self.trunc:
            for name in names:
                if "/" not in name:
                    names = [name]
                    break
        return ",".join(names)

    def image(self) -> str:
        return _container_image(self.summary, self.trunc)

    def command(self) -> str:
        command = self.summary.get("Command") or ""
        return go_quote(ellipsis(command, 20) if self.trunc else command)

    def created_at(self) -> str:
        return go_time_string(int(self.summary.get("Created") or 0))

    def running_for(self) -> str:
        created = int(self.summary.get("Created") or 0)
        return human_duration(self.now - created) + " ago"

    def platform(self) -> Platform | None:
        return _platform(self.summary)

    def ports(self) -> str:
        return displayable_ports(self.summary.get("Ports") or [])

    def state(self) -> str:
        return self.summary.get("State") or ""

    def status(self) -> str:
        return self.summary.get("Status") or ""

    def size(self) -> str:
        self.size_used = True
        writable = human_size_with_precision(self.summary.get("SizeRw") or 0, 3)
        root_fs = self.summary.get("SizeRootFs") or 0
        if root_fs > 0:
            return f"{writable} (virtual {human_size_with_precision(root_fs, 3)})"
        return writable

    def labels(self) -> str:
        labels = self.summary.get("Labels")
        if not labels:
            return ""
        return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))

    def label(self, name: str) -> str:
        return (self.summary.get("Labels") or {}).get(name, "")

    def mounts(self) -> str:
        names = []
        for mount in self.summary.get("Mounts") or []:
            name = mount.get("Name") or mount.get("Source") or ""
            names.append(ellipsis(name, 15) if self.trunc else name)
        return ",".join(names)

    def local_volumes(self) -> str:
        mounts = self.summary.get("Mounts") or []
        return str(sum(1 for m in mounts if m.get("Driver") == "local"))

    def networks(self) -> str:
        settings = self.summary.get("NetworkSettings") or {}
        return ",".join((settings.get("Networks") or {}).keys())


class ImageRow(TemplateData):
    """One row of `docker images`: an image under one repository:tag (formatter.imageContext)."""

    go_type = "*formatter.imageContext"
    template_fields = MappingProxyType(
        {
            "Containers": "containers",
            "CreatedAt": "created_at",
            "CreatedSince": "created_since",
            "Digest": "digest",
            "ID": "id",
            "Repository": "repository",
            "SharedSize": "shared_size",
            "Size": "size",
            "Tag": "tag",
            "UniqueSize": "unique_size",
            "VirtualSize": "virtual_size",
        }
    )
    header = MappingProxyType(
        {
            "ID": "IMAGE ID",
            "Repository": "REPOSITORY",
            "Tag": "TAG",
            "Digest": "DIGEST",
            "CreatedSince": "CREATED",
            "CreatedAt": "CREATED AT",
            "Size": "SIZE",
            "Containers": "CONTAINERS",
            "VirtualSize": "SIZE",
            "SharedSize": "SHARED SIZE",
            "UniqueSize": "UNIQUE SIZE",
        }
    )

    def __init__(
        self,
        summary: Mapping[str, Any],
        repository: str,
        tag: str,
        digest: str,
        trunc: bool = True,
        now: float | None = None,
    ):
        self.summary = summary
        self.repository = repository
        self.tag = tag
        self.digest = digest
        self.trunc = trunc
        self.now = time.time() if now is None else now

    def id(self) -> str:
        identifier = self.summary.get("Id") or ""
        return truncate_id(identifier) if self.trunc else identifier

    def created_since(self) -> str:
        return human_duration(self.now - int(self.summary.get("Created") or 0)) + " ago"

    def created_at(self) -> str:
        return go_time_string(int(self.summary.get("Created") or 0))

    def size(self) -> str:
        return human_size_with_precision(self.summary.get("Size") or 0, 3)

    def containers(self) -> str:
        count = self.summary.get("Containers", -1)
        return "N/A" if count == -1 else str(count)

    def virtual_size(self) -> str:
        return human_size(self.summary.get("Size") or 0)

    def shared_size(self) -> str:
        shared = self.summary.get("SharedSize", -1)
        return "N/A" if shared == -1 else human_size(shared)

    def unique_size(self) -> str:
        size = self.summary.get("Size", -1)
        shared = self.summary.get("SharedSize", -1)
        return "N/A" if size == -1 or shared == -1 else human_size(size - shared)


class VolumeRow(TemplateData):
    """One volume of /volumes, as `docker volume ls` shows it (formatter.volumeContext)."""

    go_type = "*formatter.volumeContext"
    template_fields = MappingProxyType(
        {
            "Availability": "availability",
            "Driver": "driver",
            "Group": "group",
            "Labels": "labels",
            "Links": "links",
            "Mountpoint": "mountpoint",
            "Name": "name",
            "Scope": "scope",
            "Size": "size",
            "Status": "status",
        }
    )
    template_methods = MappingProxyType({"Label": ("label", ("string",))})
    header = MappingProxyType(
        {
            "ID": "ID",
            "Name": "VOLUME NAME",
            "Group": "GROUP",
            "Driver": "DRIVER",
            "Scope": "SCOPE",
            "Availability": "AVAILABILITY",
            "Mountpoint": "MOUNTPOINT",
            "Labels": "LABELS",
            "Links": "LINKS",
            "Size": "SIZE",
            "Status": "STATUS",
        }
    )

    def __init__(self, volume: Mapping[str, Any]):
        self.volume = volume

    def name(self) -> str:
        return self.volume.get("Name") or ""

    def driver(self) -> str:
        return self.volume.get("Driver") or ""

    def scope(self) -> str:
        return self.volume.get("Scope") or ""

    def mountpoint(self) -> str:
        return self.volume.get("Mountpoint") or ""

    def labels(self) -> str:
        labels = self.volume.get("Labels")
        return ",".join(f"{k}={v}" for k, v in labels.items()) if labels else ""

    def label(self, name: str) -> str:
        return (self.volume.get("Labels") or {}).get(name, "")

    def links(self) -> str:
        usage = self.volume.get("UsageData")
        return "N/A" if usage is None else str(usage.get("RefCount", 0))

    def size(self) -> str:
        usage = self.volume.get("UsageData")
        return "N/A" if usage is None else human_size(usage.get("Size", 0))

    def _cluster(self) -> Mapping[str, Any] | None:
        return self.volume.get("ClusterVolume")

    def group(self) -> str:
        cluster = self._cluster()
        return "N/A" if cluster is None else (cluster.get("Spec") or {}).get("Group", "")

    def availability(self) -> str:
        cluster = self._cluster()
        return "N/A" if cluster is None else (cluster.get("Spec") or {}).get("Availability", "")

    def status(self) -> str:
        cluster = self._cluster()
        if cluster is None:
            return "N/A"
        if not (cluster.get("Info") or {}).get("VolumeID"):
            return "pending creation"
        published = len(cluster.get("PublishStatus") or [])
        if published == 0:
            return "created"
        if published == 1:
            return "in use (1 node)"
        return f"in use ({published} nodes)"


class HistoryRow(TemplateData):
    """One layer of /images/{name}/history, as `docker history` shows it."""

    go_type = "*image.historyContext"
    template_fields = MappingProxyType(
        {
            "Comment": "comment",
            "CreatedAt": "created_at",
            "CreatedBy": "created_by",
            "CreatedSince": "created_since",
            "ID": "id",
            "Size": "size",
        }
    )
    header = MappingProxyType(
        {
            "ID": "IMAGE",
            "CreatedSince": "CREATED",
            "CreatedAt": "CREATED AT",
            "CreatedBy": "CREATED BY",
            "Size": "SIZE",
            "Comment": "COMMENT",
        }
    )

    def __init__(
        self,
        item: Mapping[str, Any],
        trunc: bool = True,
        human: bool = True,
        now: float | None = None,
    ):
        self.item = item
        self.trunc = trunc
        self.human = human
        self.now = time.time() if now is None else now

    def id(self) -> str:
        identifier = self.item.get("Id") or ""
        return truncate_id(identifier) if self.trunc else identifier

    def created_at(self) -> str:
        return rfc3339(int(self.item.get("Created") or 0))

    def created_since(self) -> str:
        if not self.human:
            return self.created_at()
        created = int(self.item.get("Created") or 0)
        if created <= EPOCH_2000:
            return "N/A"
        return human_duration(self.now - created) + " ago"

    def created_by(self) -> str:
        created_by = (self.item.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(created_by, 45) if self.trunc else created_by

    def size(self) -> str:
        size = int(self.item.get("Size") or 0)
        return human_size_with_precision(size, 3) if self.human else str(size)

    def comment(self) -> str:
        return self.item.get("Comment") or ""


# ---------------------------------------------------------------------------------------------
# Writing rows with a format (the CLI's formatter.Context.Write)


def is_table_format(format_text: str) -> bool:
    return format_text.startswith(TABLE_KEY)


def write_rows(
    format_text: str,
    rows: Iterable[TemplateData],
    header: Mapping[str, str],
    error_prefix: str = "template parsing error",
) -> str:
    """Render rows with a format: "table …" aligns columns under a header row, "json" is
    {{json .}}, anything else is a template run once per row, each followed by a newline."""
    table = is_table_format(format_text)
    if table:
        body = format_text[len(TABLE_KEY) :]
    elif format_text == JSON_KEY:
        body = JSON_FORMAT
    else:
        body = format_text
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    try:
        template = parse(body)
    except TemplateError as error:
        raise FormatError(f"{error_prefix}: {error}") from None
    output: list[str] = []
    for row in rows:
        try:
            output.append(template.execute(row))
        except TemplateError as error:
            raise FormatError(f"{error_prefix}: {error}") from None
        output.append("\n")
    if not table:
        return "".join(output)
    try:
        header_line = template.execute(HeaderContext(header), HEADER_FUNCTIONS)
    except TemplateExecError as error:
        header_line = error.partial_output  # the CLI ignores a header that fails half-way
    return align_columns(header_line + "\n" + "".join(output))


# ---------------------------------------------------------------------------------------------
# docker ps


def container_format(format_text: str, quiet: bool, size: bool) -> str:
    """NewContainerFormat: the format `docker ps` uses for its flags."""
    if format_text in (TABLE_KEY, ""):
        if quiet:
            return QUIET_FORMAT
        return CONTAINER_TABLE_FORMAT + ("\\t{{.Size}}" if size else "")
    return QUIET_FORMAT if quiet else format_text


def container_list_wants_size(format_text: str, quiet: bool, size_flag_given: bool) -> bool:
    """Whether `docker ps --format F` asks the daemon for sizes (?size=1): the CLI runs F once
    on an empty container and checks whether it used .Size. Raises FormatError with the CLI's
    "failed to parse template" / "failed to execute template" message for a bad F."""
    if not format_text:
        return False
    try:
        template = parse(format_text)
    except TemplateError as error:
        raise FormatError(f"failed to parse template: {error}") from None
    probe = ContainerRow({}, trunc=False)
    try:
        template.execute(probe)
    except TemplateError as error:
        raise FormatError(f"failed to execute template: {error}") from None
    return not quiet and not size_flag_given and probe.size_used


def format_containers(
    containers: Iterable[Mapping[str, Any]],
    format_text: str = "",
    quiet: bool = False,
    no_trunc: bool = False,
    size: bool = False,
    now: float | None = None,
) -> str:
    """`docker ps` output for /containers/json. `size` is whether sizes were asked for (-s, or
    container_list_wants_size); with both a format and quiet, the caller prints
    PS_QUIET_FORMAT_WARNING to stderr first, as the CLI does."""
    current = time.time() if now is None else now
    rows = [ContainerRow(c, trunc=not no_trunc, now=current) for c in containers]
    return write_rows(container_format(format_text, quiet, size), rows, ContainerRow.header)


# ---------------------------------------------------------------------------------------------
# docker images


def image_format(format_text: str, quiet: bool, digests: bool) -> str:
    """NewImageFormat: the format `docker images` uses for its flags."""
    if format_text in (TABLE_KEY, ""):
        if quiet:
            return QUIET_FORMAT
        return IMAGE_TABLE_FORMAT_WITH_DIGEST if digests else IMAGE_TABLE_FORMAT
    if is_table_format(format_text) and digests and "{{.Digest}}" not in format_text:
        return format_text + "\t{{.Digest}}"
    return format_text


def _is_dangling(summary: Mapping[str, Any]) -> bool:
    tags = summary.get("RepoTags") or []
    digests = summary.get("RepoDigests") or []
    if not tags and not digests:
        return True
    return tags == ["<none>:<none>"] and digests == ["<none>@<none>"]


def image_rows(
    images: Iterable[Mapping[str, Any]],
    digests: bool = False,
    format_text: str = "",
    no_trunc: bool = False,
    now: float | None = None,
) -> list[ImageRow]:
    """The rows `docker images` shows: one per repository:tag (and per digest with --digests),
    "<none>" for dangling images. Go walks maps here in random order; we keep the API's order."""
    current = time.time() if now is None else now
    wants_digest = digests or "{{.Digest}}" in format_text
    rows: list[ImageRow] = []
    for summary in images:

        def add(repository: str, tag: str, digest: str, summary: Mapping[str, Any] = summary):
            rows.append(ImageRow(summary, repository, tag, digest, not no_trunc, current))

        if _is_dangling(summary):
            add("<none>", "<none>", "<none>")
            continue
        tags_by_repo: dict[str, list[str]] = {}
        digests_by_repo: dict[str, list[str]] = {}
        for text in summary.get("RepoTags") or []:
            parsed = parse_normalized_reference(text)
            if parsed and parsed[1] is not None:
                tags_by_repo.setdefault(familiar_name(parsed[0]), []).append(parsed[1])
        for text in summary.get("RepoDigests") or []:
            parsed = parse_normalized_reference(text)
            if parsed and parsed[2] is not None:
                digests_by_repo.setdefault(familiar_name(parsed[0]), []).append(parsed[2])
        for repository, tags in tags_by_repo.items():
            repo_digests = digests_by_repo.pop(repository, [])
            if not wants_digest:
                repo_digests = []
            for tag in tags:
                if not repo_digests:
                    add(repository, tag, "<none>")
                for digest in repo_digests:
                    add(repository, tag, digest)
        for repository, repo_digests in digests_by_repo.items():
            if digests:
                for digest in repo_digests:
                    add(repository, "<none>", digest)
            else:
                add(repository, "<none>", "")
    return rows


def format_images(
    images: Iterable[Mapping[str, Any]],
    format_text: str = "",
    quiet: bool = False,
    no_trunc: bool = False,
    digests: bool = False,
    now: float | None = None,
) -> str:
    """`docker images` output for /images/json."""
    final_format = image_format(format_text, quiet, digests)
    rows = image_rows(images, digests, final_format, no_trunc, now)
    return write_rows(final_format, rows, ImageRow.header)


# ---------------------------------------------------------------------------------------------
# docker volume ls


def volume_format(format_text: str, quiet: bool) -> str:
    """NewVolumeFormat: the format `docker volume ls` uses for its flags."""
    if format_text in (TABLE_KEY, ""):
        return VOLUME_QUIET_FORMAT if quiet else VOLUME_TABLE_FORMAT
    return format_text


def format_volumes(
    volumes: Iterable[Mapping[str, Any]], format_text: str = "", quiet: bool = False
) -> str:
    """`docker volume ls` output for the "Volumes" of /volumes, in the CLI's natural order."""
    ordered = sorted(volumes, key=lambda v: natural_sort_key(v.get("Name") or ""))
    rows = [VolumeRow(v) for v in ordered]
    return write_rows(volume_format(format_text, quiet), rows, VolumeRow.header)


# ---------------------------------------------------------------------------------------------
# docker history


def history_format(format_text: str, quiet: bool, human: bool) -> str:
    """NewHistoryFormat: the format `docker history` uses for its flags."""
    if format_text in (TABLE_KEY, ""):
        if quiet:
            return QUIET_FORMAT
        return HISTORY_TABLE_FORMAT if human else HISTORY_TABLE_FORMAT_NOT_HUMAN
    return format_text


def format_history(
    history: Iterable[Mapping[str, Any]],
    format_text: str = "",
    quiet: bool = False,
    no_trunc: bool = False,
    human: bool = True,
    now: float | None = None,
) -> str:
    """`docker history` output for /images/{name}/history."""
    current = time.time() if now is None else now
    rows = [HistoryRow(item, not no_trunc, human, current) for item in history]
    return write_rows(history_format(format_text, quiet, human), rows, HistoryRow.header)


# ---------------------------------------------------------------------------------------------
# The daemon's side: State and Status of /containers/json


def container_state_name(
    running: bool,
    paused: bool = False,
    restarting: bool = False,
    removing: bool = False,
    dead: bool = False,
    started_at: float | None = None,
) -> str:
    """The State of a container summary: created, running, paused, restarting, removing,
    exited or dead. Times are Unix times; None is Go's zero time (never started)."""
    if running:
        if paused:
            return "paused"
        if restarting:
            return "restarting"
        return "running"
    if removing:
        return "removing"
    if dead:
        return "dead"
    if started_at is None:
        return "created"
    return "exited"


def container_status_text(
    running: bool,
    paused: bool = False,
    restarting: bool = False,
    removing: bool = False,
    dead: bool = False,
    started_at: float | None = None,
    finished_at: float | None = None,
    exit_code: int = 0,
    health: str | None = None,
    now: float | None = None,
) -> str:
    """The Status the daemon reports: "Up 5 seconds", "Up 2 hours (Paused)", "Up 3 minutes
    (healthy)", "Restarting (1) 2 seconds ago", "Exited (137) 38 seconds ago", "Created",
    "Removal In Progress", "Dead". health is "starting", "healthy" or "unhealthy"."""
    current = time.time() if now is None else now

    def since(moment: float | None) -> str:
        return human_duration(current - (moment or 0.0))

    if running:
        if paused:
            return f"Up {since(started_at)} (Paused)"
        if restarting:
            return f"Restarting ({exit_code}) {since(finished_at)} ago"
        if health:
            shown = "health: starting" if health == "starting" else health
            return f"Up {since(started_at)} ({shown})"
        return f"Up {since(started_at)}"
    if removing:
        return "Removal In Progress"
    if dead:
        return "Dead"
    if started_at is None:
        return "Created"
    if finished_at is None:
        return ""
    return f"Exited ({exit_code}) {since(finished_at)} ago"
