"""Docker's `local` volume driver: named and anonymous volumes under one root directory, their
metadata, the containers that use them, and Docker's errors (in Docker's words) for each refusal.

On disk, under the store's root (the layout of Docker's /var/lib/docker/volumes)::

    <name>/_data                the volume's data, bind-mounted into the containers using it
    <name>/volume.json          its metadata: labels, options, creation time, references
    .lock                       flock: serialises changes across threads and processes
    .staging-<random>/          a volume being created, renamed to <name> once complete
    .removing-<random>/         a removed volume whose data is being deleted

Volume names start with a letter or digit, so they never clash with the dot-files.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DRIVER_NAME = "local"
SCOPE = "local"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # set on volumes created without a name

_DATA_DIR = "_data"
_METADATA_FILE = "volume.json"
_LOCK_FILE = ".lock"
_STAGING_PREFIX = ".staging-"
_REMOVING_PREFIX = ".removing-"
_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_NAME_PATTERN = re.compile(_NAME_CHARS + "+")
_NAME_MAX_BYTES = 255  # one path component
# Options the local driver knows. type, device and o mount a device or bind a host path.
_HOST_MOUNT_OPTIONS = ("type", "device", "o")
_KNOWN_OPTIONS = frozenset((*_HOST_MOUNT_OPTIONS, "size"))
_LIST_FILTERS = frozenset(("dangling", "name", "driver", "label"))
_PRUNE_FILTERS = frozenset(("label", "label!", "all"))
_GO_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))  # strconv.ParseBool
_GO_FALSE = frozenset(("0", "f", "F", "FALSE", "false", "False"))
_SIZE_PATTERN = re.compile(r"([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?")
_SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}

Filters = Mapping[str, Iterable[str]]


class VolumeError(Exception):
    """A volume operation refused; ``status`` is the Engine API's HTTP status for it."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidVolumeRequest(VolumeError, ValueError):
    status = 400


class VolumeForbidden(VolumeError):
    """Something Docker allows but Slipway refuses, because learners share the host."""

    status = 403


class VolumeNotFound(VolumeError, LookupError):
    status = 404


class VolumeDriverNotFound(VolumeError, LookupError):
    status = 404


class VolumeConflict(VolumeError):
    status = 409


@dataclass(frozen=True)
class VolumeUsage:
    """What ``GET /system/df`` adds to a volume: its bytes on disk and its users."""

    size: int
    ref_count: int


@dataclass(frozen=True)
class Volume:
    """A volume as the Engine API shows it; the field names are Docker's."""

    Name: str
    Driver: str
    Mountpoint: str
    CreatedAt: str  # RFC 3339 in the engine's local time, seconds only: 2026-11-28T03:14:15Z
    Labels: dict[str, str] | None = None  # None and {} differ on the wire: null and {}
    Options: dict[str, str] | None = None
    Scope: str = SCOPE

    def to_api(self, usage: VolumeUsage | None = None) -> dict[str, Any]:
        """The JSON object of ``GET /volumes/{name}``, keys in Docker's order."""
        body: dict[str, Any] = {
            "CreatedAt": self.CreatedAt,
            "Driver": self.Driver,
            "Labels": None if self.Labels is None else dict(self.Labels),
            "Mountpoint": self.Mountpoint,
            "Name": self.Name,
            "Options": None if self.Options is None else dict(self.Options),
            "Scope": self.Scope,
        }
        if usage is not None:
            body["UsageData"] = {"Size": usage.size, "RefCount": usage.ref_count}
        return body


@dataclass
class _Metadata:
    """What volume.json holds."""

    name: str
    created: float  # seconds since the epoch
    labels: dict[str, str] | None
    options: dict[str, str] | None
    references: list[str] = field(default_factory=list)  # container IDs, in acquisition order

    def to_json(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "Driver": DRIVER_NAME,
            "CreatedAt": self.created,
            "Labels": self.labels,
            "Options": self.options,
            "References": self.references,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> _Metadata:
        return cls(
            name=str(value["Name"]),
            created=float(value["CreatedAt"]),
            labels=_string_map(value.get("Labels")),
            options=_string_map(value.get("Options")),
            references=[str(ref) for ref in value.get("References") or []],
        )


class VolumeStore:
    """The local driver's volumes under ``root``. Mountpoints are reported under
    ``mountpoint_prefix`` when given (a lab node shows /var/lib/docker/volumes), else under
    ``root`` itself. Safe to use from several threads and processes at once."""

    def __init__(self, root: Path, mountpoint_prefix: str | None = None) -> None:
        self.root = Path(root)
        self.mountpoint_prefix = (
            str(self.root) if mountpoint_prefix is None else mountpoint_prefix.rstrip("/") or "/"
        )
        self.root.mkdir(mode=0o701, parents=True, exist_ok=True)
        with self._locked():
            leftovers = [
                entry
                for entry in self.root.iterdir()
                if entry.name.startswith((_STAGING_PREFIX, _REMOVING_PREFIX))
            ]
        for leftover in leftovers:
            shutil.rmtree(leftover, ignore_errors=True)

    # -- the volumes ---------------------------------------------------------------------

    def create(
        self,
        name: str | None,
        driver: str | None = DRIVER_NAME,
        driver_opts: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        *,
        reference: str | None = None,
    ) -> Volume:
        """Create a volume, or return the one of that name (Docker's create is idempotent).
        No name makes an anonymous volume: a random 64-hex name and ANONYMOUS_LABEL.
        ``reference`` acquires the volume for a container in the same step, so that a prune
        running meanwhile cannot take it."""
        label_map = _string_map(labels)
        if not name:
            name = _random_name()
            label_map = {**(label_map or {}), ANONYMOUS_LABEL: ""}
        if driver not in (None, "", DRIVER_NAME):
            raise VolumeDriverNotFound(
                f"create {name}: error looking up volume plugin {driver}: "
                f'plugin "{driver}" not found'
            )
        self._check_name(name)
        options = self._check_options(name, driver_opts)
        with self._locked():
            metadata = self._read_metadata(name)
            if metadata is None:
                metadata = _Metadata(name, time.time(), label_map, options)
                self._create_on_disk(metadata)
            if reference is not None and reference not in metadata.references:
                metadata.references.append(reference)
                self._write_metadata(metadata)
            return self._volume(metadata)

    def get(self, name: str) -> Volume:
        """The volume called ``name``."""
        with self._locked(shared=True):
            return self._volume(self._existing(name))

    def list(self, filters: Filters | None = None) -> list[Volume]:
        """The volumes matching Docker's list filters (name, label, dangling, driver), by name."""
        wanted = _normalise_filters(filters)
        _check_filter_names(wanted, _LIST_FILTERS)
        dangling = _dangling_filter(wanted)
        with self._locked(shared=True):
            found = self._all_metadata()
        return [
            self._volume(metadata)
            for metadata in found
            if _matches(metadata, wanted)
            and (dangling is None or dangling == (not metadata.references))
        ]

    def remove(self, name: str, force: bool = False) -> None:
        """Remove a volume and its data. A volume in use is refused even with ``force``, as
        Docker does; ``force`` makes removing a volume that does not exist succeed."""
        with self._locked():
            metadata = self._read_metadata(name)
            if metadata is None:
                if force:
                    return
                raise VolumeNotFound(f"get {name}: no such volume")
            if metadata.references:
                raise VolumeConflict(
                    f"remove {name}: volume is in use - [{', '.join(metadata.references)}]"
                )
            doomed = self._detach(name)
        shutil.rmtree(doomed, ignore_errors=True)  # a leftover goes at the next start

    def prune(self, filters: Filters | None = None) -> tuple[list[str], int]:
        """Remove the unused volumes: only anonymous ones unless the filter ``all`` is true
        (Docker 23 and later), narrowed by ``label`` and ``label!``. Returns the names removed
        and the bytes reclaimed."""
        wanted = _normalise_filters(filters)
        if not _prune_all(wanted):
            wanted.setdefault("label", set()).add(ANONYMOUS_LABEL)
        _check_filter_names(wanted, _PRUNE_FILTERS)
        removed: list[str] = []
        doomed: list[Path] = []
        with self._locked():
            for metadata in self._all_metadata():
                if metadata.references or metadata.options or not _matches(metadata, wanted):
                    continue
                try:
                    doomed.append(self._detach(metadata.name))
                except VolumeError:
                    continue  # Docker skips a volume it cannot remove and prunes the rest
                removed.append(metadata.name)
        reclaimed = 0
        for path in doomed:
            reclaimed += _tree_size(path / _DATA_DIR)
            shutil.rmtree(path, ignore_errors=True)
        return removed, reclaimed

    def usage(self, name: str) -> int:
        """The bytes the volume's data takes, counted as Docker's ``system df`` does: the sizes
        of the files and symlinks, each hard-linked file once."""
        with self._locked(shared=True):
            self._existing(name)
        return _tree_size(self._data_dir(name))

    def data_path(self, name: str) -> Path:
        """Where the volume's data lives on this host: the source to bind-mount."""
        with self._locked(shared=True):
            self._existing(name)
        return self._data_dir(name)

    # -- references: the containers using a volume -----------------------------------------

    def acquire(self, name: str, container_id: str) -> None:
        """Record that the container uses the volume; it cannot be removed until released."""
        with self._locked():
            metadata = self._existing(name)
            if container_id not in metadata.references:
                metadata.references.append(container_id)
                self._write_metadata(metadata)

    def release(self, name: str, container_id: str) -> None:
        """Drop the container's reference; releasing what was never acquired is no error."""
        with self._locked():
            metadata = self._read_metadata(name)
            if metadata is not None and container_id in metadata.references:
                metadata.references.remove(container_id)
                self._write_metadata(metadata)

    def references(self, name: str) -> list[str]:
        """The containers using the volume, in the order they acquired it."""
        with self._locked(shared=True):
            return list(self._existing(name).references)

    # -- checks ------------------------------------------------------------------------------

    def _check_name(self, name: str) -> None:
        size = len(name.encode("utf-8", "surrogatepass"))  # Go counts bytes
        if size == 1:
            raise InvalidVolumeRequest(
                f"create {name}: volume name is too short, "
                "names should be at least two alphanumeric characters"
            )
        if not _NAME_PATTERN.fullmatch(name):
            raise InvalidVolumeRequest(
                f"create {name}: {_go_quote(name)} includes invalid characters for a local "
                f"volume name, only {_go_quote(_NAME_CHARS)} are allowed. If you intended to "
                "pass a host directory, use absolute path"
            )
        if size > _NAME_MAX_BYTES:
            path = f"{self.mountpoint_prefix.rstrip('/')}/{name}"
            raise InvalidVolumeRequest(
                f"create {name}: error while creating volume root path '{path}': "
                f"mkdir {path}: file name too long"
            )

    @staticmethod
    def _check_options(name: str, driver_opts: Mapping[str, str] | None) -> dict[str, str] | None:
        if driver_opts is None:
            return None
        options = {str(key): str(value) for key, value in driver_opts.items()}
        for key in sorted(options):
            if key not in _KNOWN_OPTIONS:
                raise InvalidVolumeRequest(f"create {name}: invalid option: {_go_quote(key)}")
        refused = [key for key in _HOST_MOUNT_OPTIONS if key in options]
        if refused:
            listed = ", ".join(_go_quote(key) for key in refused)
            raise VolumeForbidden(
                f"create {name}: the local driver's {listed} "
                f"{'option is' if len(refused) == 1 else 'options are'} not allowed here: "
                "a volume cannot mount a device or bind a host path; "
                "create it without driver options"
            )
        if "size" in options:
            size = _size_in_bytes(options["size"])
            if size is None:
                raise InvalidVolumeRequest(f"create {name}: invalid size: '{options['size']}'")
            if size > 0:
                raise InvalidVolumeRequest(
                    f"create {name}: quota size requested but no quota support"
                )
        return options

    # -- on disk -----------------------------------------------------------------------------

    @contextmanager
    def _locked(self, shared: bool = False) -> Iterator[None]:
        # A new open file description per call: flock then excludes other threads too.
        fd = os.open(self.root / _LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _volume_dir(self, name: str) -> Path:
        return self.root / name

    def _data_dir(self, name: str) -> Path:
        return self.root / name / _DATA_DIR

    def _volume(self, metadata: _Metadata) -> Volume:
        return Volume(
            Name=metadata.name,
            Driver=DRIVER_NAME,
            Mountpoint=f"{self.mountpoint_prefix.rstrip('/')}/{metadata.name}/{_DATA_DIR}",
            CreatedAt=_rfc3339(metadata.created),
            Labels=None if metadata.labels is None else dict(metadata.labels),
            Options=None if metadata.options is None else dict(metadata.options),
        )

    def _existing(self, name: str) -> _Metadata:
        metadata = self._read_metadata(name)
        if metadata is None:
            raise VolumeNotFound(f"get {name}: no such volume")
        return metadata

    def _read_metadata(self, name: str) -> _Metadata | None:
        if not _is_volume_name(name):
            return None  # never a path outside the root
        try:
            text = (self._volume_dir(name) / _METADATA_FILE).read_text()
            metadata = _Metadata.from_json(json.loads(text))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return metadata if metadata.name == name else None

    def _all_metadata(self) -> list[_Metadata]:
        found = []
        for entry in sorted(os.listdir(self.root)):
            metadata = self._read_metadata(entry)
            if metadata is not None:
                found.append(metadata)
        return found

    def _create_on_disk(self, metadata: _Metadata) -> None:
        staging = self.root / f"{_STAGING_PREFIX}{secrets.token_hex(8)}"
        try:
            staging.mkdir(mode=0o701)
            (staging / _DATA_DIR).mkdir(mode=0o755)
            _write_json_atomically(staging / _METADATA_FILE, metadata.to_json())
            os.rename(staging, self._volume_dir(metadata.name))
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                path = f"{self.mountpoint_prefix.rstrip('/')}/{metadata.name}"
                raise VolumeError(
                    f"create {metadata.name}: volume already exists under {path}"
                ) from error
            raise VolumeError(f"create {metadata.name}: {error.strerror}") from error
        _fsync_directory(self.root)

    def _write_metadata(self, metadata: _Metadata) -> None:
        _write_json_atomically(self._volume_dir(metadata.name) / _METADATA_FILE, metadata.to_json())

    def _detach(self, name: str) -> Path:
        """Take the volume out of the store at once; its data is deleted afterwards."""
        doomed = self.root / f"{_REMOVING_PREFIX}{secrets.token_hex(8)}"
        try:
            os.rename(self._volume_dir(name), doomed)
        except OSError as error:
            path = f"{self.mountpoint_prefix.rstrip('/')}/{name}"
            raise VolumeError(
                f"remove {name}: error removing volume path '{path}': {error.strerror}"
            ) from error
        _fsync_directory(self.root)
        return doomed


# -- filters -------------------------------------------------------------------------------


def _normalise_filters(filters: Filters | None) -> dict[str, set[str]]:
    """Docker's filter arguments, ``{"label": ["a=b"]}``; the older ``{"label": {"a=b": true}}``
    reads the same, since iterating a mapping gives its keys."""
    if not filters:
        return {}
    return {str(key): {str(value) for value in values} for key, values in filters.items()}


def _check_filter_names(filters: dict[str, set[str]], accepted: frozenset[str]) -> None:
    for key in sorted(filters):
        if key not in accepted:
            raise InvalidVolumeRequest(f"invalid filter '{key}'")


def _dangling_filter(filters: dict[str, set[str]]) -> bool | None:
    """True for unused volumes only, False for used ones only, None for no filter."""
    if "dangling" not in filters:
        return None
    values = filters["dangling"]
    if not values:
        raise InvalidVolumeRequest("invalid filter 'dangling'")
    is_false = bool(values & {"0", "false"})
    is_true = bool(values & {"1", "true"})
    if is_false == is_true:
        raise InvalidVolumeRequest(f"invalid filter 'dangling=[{' '.join(sorted(values))}]'")
    return is_true


def _prune_all(filters: dict[str, set[str]]) -> bool:
    values = filters.get("all", set())
    if len(values) > 1:
        raise InvalidVolumeRequest(
            f"invalid filter 'all=[{' '.join(sorted(values))}]': only one value is expected"
        )
    if not values:
        return False
    (value,) = values
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise InvalidVolumeRequest(
        f"invalid filter 'all': strconv.ParseBool: parsing {_go_quote(value)}: invalid syntax"
    )


def _matches(metadata: _Metadata, filters: dict[str, set[str]]) -> bool:
    if "driver" in filters and DRIVER_NAME not in filters["driver"]:
        return False
    if "name" in filters and not _name_matches(metadata.name, filters["name"]):
        return False
    labels = metadata.labels or {}
    if not _labels_match(filters.get("label", set()), labels):
        return False
    if filters.get("label!") and _labels_match(filters["label!"], labels):
        return False
    return True


def _name_matches(name: str, patterns: set[str]) -> bool:
    """Docker's name filter: the exact name, or any pattern as an unanchored regexp."""
    if name in patterns:
        return True
    for pattern in patterns:
        try:
            if re.search(pattern, name):
                return True
        except re.error:
            continue
    return False


def _labels_match(wanted: set[str], labels: dict[str, str]) -> bool:
    """All of ``key`` or ``key=value`` present; no condition matches anything."""
    if not wanted:
        return True
    if not labels:
        return False
    for condition in wanted:
        key, has_value, value = condition.partition("=")
        if key not in labels or (has_value and labels[key] != value):
            return False
    return True


# -- helpers -------------------------------------------------------------------------------


def _is_volume_name(name: str) -> bool:
    return (
        bool(_NAME_PATTERN.fullmatch(name))
        and len(name.encode("utf-8", "surrogatepass")) <= _NAME_MAX_BYTES
    )


def _random_name() -> str:
    """64 hex digits, as Docker generates IDs: never all digits in the first 12."""
    while True:
        name = secrets.token_hex(32)
        if not name[:12].isdigit():
            return name


def _rfc3339(timestamp: float) -> str:
    """Go's time.RFC3339 in the local time zone: seconds, and Z for UTC."""
    local = datetime.fromtimestamp(int(timestamp), tz=UTC).astimezone()
    text = local.isoformat(timespec="seconds")
    return text[: -len("+00:00")] + "Z" if text.endswith("+00:00") else text


def _go_quote(text: str) -> str:
    """Go's %q (strconv.Quote): double quotes, backslash escapes for what does not print."""
    escapes = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
    escapes |= {"\v": r"\v", "\\": r"\\", '"': r"\""}
    out = []
    for char in text:
        code = ord(char)
        if char in escapes:
            out.append(escapes[char])
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")  # Go strings hold no lone surrogates
        elif char == " " or char.isprintable():
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _size_in_bytes(text: str) -> int | None:
    """go-units' RAMInBytes: 10m, 1.5GiB, 512 (binary multiples); None when it is no size."""
    match = _SIZE_PATTERN.fullmatch(text)
    if match is None or match.group(1).count(".") > 1:
        return None
    unit = (match.group(2) or "").lower()
    return int(float(match.group(1)) * _SIZE_UNITS.get(unit, 1))


def _string_map(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    return {str(key): str(item) for key, item in dict(value).items()}


def _tree_size(top: Path) -> int:
    """Apparent sizes of everything but directories, never following symlinks; a file with
    several hard links counts once. Entries vanishing meanwhile are skipped."""
    total = 0
    seen: set[tuple[int, int]] = set()
    pending = [str(top)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)
            elif info.st_size and (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def _write_json_atomically(path: Path, value: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    try:
        with open(temporary, "x") as file:
            json.dump(value, file, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
