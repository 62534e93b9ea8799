"""The overlayfs snapshotter: containerd's Prepare, View, Mounts, Commit, Remove, Stat, Walk and
Usage, with committed layers stored once per host in a layer root that engines share."""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from simulator.snapshots.mount import Mount
from simulator.snapshots.staging import exclusive_lock, staging_directory, sweep_abandoned

# Where committed layers live when an engine is given no --layer-root.
DEFAULT_LAYER_ROOT = Path("/var/lib/slipway/layers")

# Names inside the layer root that are not layers.
HOST_LOCK = ".lock"
STAGING = ".tmp"
SHORT_LINKS = "l"

# index=off: an upper dir may be committed and reused under other lowers.
# redirect_dir=off: a renamed directory is copied up whole, so a container's upper dir is a
# self-contained layer that can be diffed and committed.
OVERLAY_OPTIONS = ("index=off", "redirect_dir=off")

# overlayfs stacks at most this many lower layers.
MAX_CHAIN_LENGTH = 500

_LAYER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+=-]{0,254}")


class Kind(StrEnum):
    ACTIVE = "active"
    VIEW = "view"
    COMMITTED = "committed"


@dataclass(frozen=True)
class Info:
    """What stat() and walk() report about one snapshot."""

    kind: Kind
    name: str
    parent: str | None
    created: datetime
    labels: dict[str, str] = field(default_factory=dict)


class Usage(NamedTuple):
    size: int  # bytes allocated on disk, each hard-linked inode counted once
    inodes: int


class SnapshotError(Exception):
    """A snapshot operation the snapshotter refuses; the message says why."""


class SnapshotNotFoundError(SnapshotError):
    pass


class SnapshotExistsError(SnapshotError):
    pass


class SnapshotPreconditionError(SnapshotError):
    pass


@dataclass(frozen=True)
class _Record:
    """One of this engine's active or view snapshots, as kept in its metadata file."""

    key: str
    id: str
    kind: Kind
    parent: str | None
    created: str
    labels: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": str(self.kind),
            "parent": self.parent,
            "created": self.created,
            "labels": self.labels,
        }

    @classmethod
    def from_json(cls, key: str, value: dict[str, Any]) -> _Record:
        kind = Kind(value["kind"])
        return cls(key, value["id"], kind, value["parent"], value["created"], value["labels"])


class OverlaySnapshotter:
    """Snapshots of one engine on overlayfs, with committed layers shared host-wide.

    On disk, the engine's data root (private to it) holds:

        engine-id          a random id, stable for the life of the data root
        lock               flock'd by every change to this engine's snapshots
        metadata.json      key -> active or view snapshot (id, kind, parent, created, labels)
        snapshots/ID/fs    an active snapshot's upper dir (empty for a view)
        snapshots/ID/work  overlayfs's work dir

    The layer root (shared by every engine on the host) holds:

        .lock              flock'd while a layer is published or deleted, or a reference
                           added or dropped
        .tmp/X, .tmp/X.lock  a layer being committed or deleted, locked by its owner
        l/SHORT            -> ../NAME/diff, 26 characters, to keep lowerdir under a page
        NAME/diff          the layer's files, overlay whiteouts and opaque dirs included
        NAME/layer.json    name, parent, created, short link
        NAME/refs/ENGINE   one file per engine that holds the layer (its labels inside)

    A layer becomes visible by one rename(2) of a complete directory out of .tmp, with the
    committing engine's reference inside it, so a crash never leaves half a layer; a leftover
    in .tmp whose lock nobody holds is swept by the next snapshotter to start. A layer is
    deleted when the last engine drops its reference. An engine that holds a layer holds its
    whole parent chain, so a layer in use never loses a lower.
    """

    def __init__(self, data_root: str | Path, layer_root: str | Path) -> None:
        self.data_root = Path(data_root).absolute()
        self.layer_root = Path(layer_root).absolute()
        for root in (self.data_root, self.layer_root):
            if "," in str(root) or ":" in str(root):
                raise ValueError(f"{root}: overlay mount options cannot carry ',' or ':'")
        self.data_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.data_root / "snapshots").mkdir(mode=0o700, exist_ok=True)
        self.layer_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.layer_root / STAGING).mkdir(mode=0o700, exist_ok=True)
        (self.layer_root / SHORT_LINKS).mkdir(mode=0o700, exist_ok=True)
        self.engine_id = self._load_engine_id()
        self._recover()

    # The snapshotter's interface.

    def prepare(
        self, key: str, parent: str | None = None, labels: dict[str, str] | None = None
    ) -> list[Mount]:
        """Create active snapshot ``key``: a writable layer on top of committed ``parent``."""
        return self._create(Kind.ACTIVE, key, parent, labels)

    def view(
        self, key: str, parent: str | None = None, labels: dict[str, str] | None = None
    ) -> list[Mount]:
        """Create view ``key``: committed ``parent`` (and its chain), read-only."""
        return self._create(Kind.VIEW, key, parent, labels)

    def mounts(self, key: str) -> list[Mount]:
        """The mounts of active or view snapshot ``key``."""
        record = self._load_records().get(key)
        if record is None:
            if self._holds(key):
                raise SnapshotPreconditionError(
                    f"snapshot {key} is committed: only active and view snapshots have mounts"
                )
            raise SnapshotNotFoundError(f"snapshot {key} does not exist: not found")
        return self._mounts(record)

    def upper_dir(self, key: str) -> Path:
        """The upper dir of active snapshot ``key``, where an unpacker extracts a layer."""
        return self._snapshot_dir(self._active_record(key).id) / "fs"

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        """Turn active snapshot ``key`` into committed layer ``name`` (``key`` is gone after).

        If another engine has committed ``name`` already, this one's files are discarded and
        the engine takes a reference on the existing layer instead. Labels default to those
        of the active snapshot.
        """
        _check_layer_name(name)
        with self._engine_lock():
            records = self._load_records()
            record = self._active_record(key, records)
            if name in records or self._holds(name):
                raise SnapshotExistsError(f"snapshot {name}: already exists")
            labels = dict(record.labels if labels is None else labels)
            snapshot_dir = self._snapshot_dir(record.id)
            if not self._reference_existing(name, record.parent, labels):
                self._publish_new_layer(name, record.parent, labels, snapshot_dir / "fs")
            del records[key]
            self._save_records(records)
            shutil.rmtree(snapshot_dir)

    def adopt(self, name: str, labels: dict[str, str] | None = None) -> Info:
        """Take this engine's reference on committed layer ``name``, which another engine has
        unpacked already (a pull's "Already exists"). This engine must hold its parent.
        Labels are set when the reference is taken; adopting a layer held already changes
        nothing."""
        _check_layer_name(name)
        with self._engine_lock():
            if name in self._load_records():
                raise SnapshotExistsError(f"snapshot {name}: already exists")
            if not self._holds(name):
                with exclusive_lock(self.layer_root / HOST_LOCK):
                    parent = self._layer_meta(name)["parent"]
                    if parent is not None and not self._holds(parent):
                        raise SnapshotNotFoundError(
                            f"parent snapshot {parent} does not exist: not found"
                        )
                    self._write_reference(self.layer_root / name, labels or {})
        return self.stat(name)

    def has(self, name: str) -> bool:
        """True if committed layer ``name`` is in the layer root, whichever engine made it."""
        return _is_layer_name(name) and (self.layer_root / name / "layer.json").is_file()

    def holds(self, name: str) -> bool:
        """True if ``name`` is a committed layer this engine holds (stat's COMMITTED, read
        without this engine's metadata)."""
        return self._holds(name)

    def remove(self, key_or_name: str) -> None:
        """Remove an active or view snapshot, or drop this engine's hold on a committed layer
        (deleted from the host when no engine holds it any more)."""
        with self._engine_lock():
            records = self._load_records()
            record = records.pop(key_or_name, None)
            if record is not None:
                self._save_records(records)
                shutil.rmtree(self._snapshot_dir(record.id))
                return
            name = key_or_name
            if not self._holds(name):
                raise SnapshotNotFoundError(f"snapshot {name} does not exist: not found")
            has_child = any(r.parent == name for r in records.values()) or any(
                self._layer_meta(held)["parent"] == name for held in self._held_names()
            )
            if has_child:
                raise SnapshotPreconditionError(
                    "cannot remove snapshot with child: failed precondition"
                )
            self._drop_reference(name)

    def stat(self, key_or_name: str) -> Info:
        """What this engine knows of one snapshot."""
        record = self._load_records().get(key_or_name)
        if record is not None:
            return _record_info(record)
        if not self._holds(key_or_name):
            raise SnapshotNotFoundError(f"snapshot {key_or_name} does not exist: not found")
        return self._layer_info(key_or_name)

    def walk(self) -> Iterator[Info]:
        """Every snapshot of this engine: active, view, and the committed layers it holds."""
        infos = [_record_info(record) for _, record in sorted(self._load_records().items())]
        for name in sorted(self._held_names()):
            try:
                infos.append(self._layer_info(name))
            except FileNotFoundError:
                continue  # removed meanwhile
        return iter(infos)

    def usage(self, key_or_name: str) -> Usage:
        """Disk used by a snapshot's own files: the upper dir, or the committed layer."""
        record = self._load_records().get(key_or_name)
        if record is not None:
            return _disk_usage(self._snapshot_dir(record.id) / "fs")
        if not self._holds(key_or_name):
            raise SnapshotNotFoundError(f"snapshot {key_or_name} does not exist: not found")
        return _disk_usage(self.layer_root / key_or_name / "diff")

    def content_size(self, key: str) -> int:
        """The bytes of an active snapshot's own files as Docker counts a container's
        ``SizeRw``: apparent sizes of everything but directories, hard links once."""
        record = self._load_records().get(key)
        if record is None:
            raise SnapshotNotFoundError(f"snapshot {key} does not exist: not found")
        root = self._snapshot_dir(record.id) / "fs"
        seen: set[tuple[int, int]] = set()
        size = 0
        for directory, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:  # a symlink to a directory is in dirnames
                status = os.lstat(os.path.join(directory, name))
                if stat.S_ISDIR(status.st_mode):
                    continue
                if (status.st_dev, status.st_ino) not in seen:
                    seen.add((status.st_dev, status.st_ino))
                    size += status.st_size
        return size

    # Active and view snapshots (this engine's data root).

    def _create(
        self, kind: Kind, key: str, parent: str | None, labels: dict[str, str] | None
    ) -> list[Mount]:
        if not key:
            raise SnapshotError("invalid key: empty")
        with self._engine_lock():
            records = self._load_records()
            if key in records or self._holds(key):
                raise SnapshotExistsError(f"snapshot {key}: already exists")
            if parent is not None and parent in records:
                raise SnapshotPreconditionError(
                    f"parent {parent!r} is not committed snapshot: invalid argument"
                )
            if parent is not None and not self._holds(parent):
                raise SnapshotNotFoundError(f"parent snapshot {parent} does not exist: not found")
            self._lower_dirs(parent)  # the whole chain must be there before anything is made
            record = _Record(key, secrets.token_hex(8), kind, parent, _now(), dict(labels or {}))
            directory = self._snapshot_dir(record.id)
            directory.mkdir(mode=0o700)
            (directory / "fs").mkdir()
            (directory / "fs").chmod(0o755)  # the merged root takes the upper root's mode
            if kind is Kind.ACTIVE:
                (directory / "work").mkdir(mode=0o700)
            records[key] = record
            self._save_records(records)
            return self._mounts(record)

    def _mounts(self, record: _Record) -> list[Mount]:
        directory = self._snapshot_dir(record.id)
        lowers = self._lower_dirs(record.parent)
        if record.kind is Kind.ACTIVE:
            if not lowers:
                return [Mount("bind", str(directory / "fs"), ["rw", "rbind"])]
            return [
                Mount(
                    "overlay",
                    "overlay",
                    [
                        *OVERLAY_OPTIONS,
                        "lowerdir=" + ":".join(lowers),
                        f"upperdir={directory / 'fs'}",
                        f"workdir={directory / 'work'}",
                    ],
                )
            ]
        if not lowers:
            return [Mount("bind", str(directory / "fs"), ["ro", "rbind"])]
        if len(lowers) == 1:
            diff = self.layer_root / str(record.parent) / "diff"
            return [Mount("bind", str(diff), ["ro", "rbind"])]
        return [Mount("overlay", "overlay", [*OVERLAY_OPTIONS, "lowerdir=" + ":".join(lowers)])]

    def _active_record(self, key: str, records: dict[str, _Record] | None = None) -> _Record:
        records = self._load_records() if records is None else records
        record = records.get(key)
        if record is None:
            raise SnapshotNotFoundError(f"snapshot {key} does not exist: not found")
        if record.kind is not Kind.ACTIVE:
            raise SnapshotPreconditionError(
                f"requested snapshot {key} not active: failed precondition"
            )
        return record

    def _snapshot_dir(self, snapshot_id: str) -> Path:
        return self.data_root / "snapshots" / snapshot_id

    def _engine_lock(self) -> AbstractContextManager[bool]:
        return exclusive_lock(self.data_root / "lock")

    def _load_records(self) -> dict[str, _Record]:
        try:
            metadata = _read_json(self.data_root / "metadata.json")
        except FileNotFoundError:
            return {}
        return {key: _Record.from_json(key, value) for key, value in metadata["snapshots"].items()}

    def _save_records(self, records: dict[str, _Record]) -> None:
        snapshots = {key: record.to_json() for key, record in sorted(records.items())}
        _write_json(self.data_root / "metadata.json", {"snapshots": snapshots})

    def _load_engine_id(self) -> str:
        path = self.data_root / "engine-id"
        with self._engine_lock():
            if not path.exists():
                _write_text(path, uuid.uuid4().hex + "\n")
            return path.read_text().strip()

    # Committed layers (the shared layer root).

    def _holds(self, name: str) -> bool:
        return self.has(name) and (self.layer_root / name / "refs" / self.engine_id).exists()

    def _held_names(self) -> list[str]:
        return [name for name in os.listdir(self.layer_root) if self._holds(name)]

    def _layer_meta(self, name: str) -> dict[str, Any]:
        if not self.has(name):
            raise SnapshotNotFoundError(f"snapshot {name} does not exist: not found")
        return _read_json(self.layer_root / name / "layer.json")

    def _lower_dirs(self, parent: str | None) -> list[str]:
        """The short links of ``parent`` and its ancestors, topmost first, as lowerdir wants."""
        lowers: list[str] = []
        name = parent
        while name is not None:
            if len(lowers) == MAX_CHAIN_LENGTH:
                raise SnapshotError(f"snapshot {parent}: more than {MAX_CHAIN_LENGTH} layers")
            meta = self._layer_meta(name)
            lowers.append(str(self._short_link(name, meta["link"])))
            name = meta["parent"]
        return lowers

    def _short_link(self, name: str, link: str) -> Path:
        """layer_root/l/LINK, made again if a crash lost it."""
        path = self.layer_root / SHORT_LINKS / link
        if not os.path.lexists(path):
            with exclusive_lock(self.layer_root / HOST_LOCK):
                if self.has(name) and not os.path.lexists(path):
                    os.symlink(f"../{name}/diff", path)
        return path

    def _layer_info(self, name: str) -> Info:
        meta = self._layer_meta(name)
        reference = _read_json(self.layer_root / name / "refs" / self.engine_id)
        created = datetime.fromisoformat(meta["created"])
        return Info(Kind.COMMITTED, name, meta["parent"], created, reference["labels"])

    def _reference_existing(self, name: str, parent: str | None, labels: dict[str, str]) -> bool:
        """If layer ``name`` exists, reference it and return True; else return False."""
        if not self.has(name):
            return False
        with exclusive_lock(self.layer_root / HOST_LOCK):
            if not self.has(name):
                return False  # its last holder deleted it meanwhile
            self._add_reference(name, parent, labels)
        return True

    def _add_reference(self, name: str, parent: str | None, labels: dict[str, str]) -> None:
        """Reference existing layer ``name``, which must sit on ``parent`` (host lock held)."""
        if self._layer_meta(name)["parent"] != parent:
            raise SnapshotExistsError(f"snapshot {name}: already exists (with another parent)")
        self._write_reference(self.layer_root / name, labels)

    def _publish_new_layer(
        self, name: str, parent: str | None, labels: dict[str, str], upper: Path
    ) -> None:
        """Move ``upper`` into the layer root as layer ``name``, or, if another engine
        publishes ``name`` first, discard it and reference theirs."""
        with staging_directory(self.layer_root / STAGING) as staging:
            moved = _move_or_copy(upper, staging / "diff")
            link = base64.b32encode(secrets.token_bytes(20)).decode()[:26]
            meta = {"name": name, "parent": parent, "created": _now(), "link": link}
            _write_json(staging / "layer.json", meta)
            (staging / "refs").mkdir()
            self._write_reference(staging, labels)
            try:
                with exclusive_lock(self.layer_root / HOST_LOCK):
                    try:
                        os.rename(staging, self.layer_root / name)
                    except OSError as error:
                        if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                            raise
                        self._add_reference(name, parent, labels)  # another engine was first
                    else:
                        os.symlink(f"../{name}/diff", self.layer_root / SHORT_LINKS / link)
                        _fsync_directory(self.layer_root)
            except BaseException:
                if moved and (staging / "diff").is_dir() and not upper.exists():
                    os.rename(staging / "diff", upper)  # give the active snapshot its files back
                raise

    def _write_reference(self, layer_dir: Path, labels: dict[str, str]) -> None:
        reference = {"data_root": str(self.data_root), "labels": labels, "created": _now()}
        _write_json(layer_dir / "refs" / self.engine_id, reference)

    def _drop_reference(self, name: str) -> None:
        """Drop this engine's reference on ``name``; delete the layer if it was the last."""
        layer_dir = self.layer_root / name
        with staging_directory(self.layer_root / STAGING) as trash:
            with exclusive_lock(self.layer_root / HOST_LOCK):
                link = _read_json(layer_dir / "layer.json")["link"]
                (layer_dir / "refs" / self.engine_id).unlink()
                if any(not n.startswith(".") for n in os.listdir(layer_dir / "refs")):
                    return
                os.rename(layer_dir, trash / "layer")
                (self.layer_root / SHORT_LINKS / link).unlink(missing_ok=True)
            # The trash is removed when the staging directory closes, outside the host lock.

    # Start-up.

    def _recover(self) -> None:
        """Undo what a crash left: snapshots whose commit was cut short, orphan snapshot
        dirs, abandoned staging dirs, and short links to deleted layers."""
        with self._engine_lock():
            records = self._load_records()
            whole = {k: r for k, r in records.items() if (self._snapshot_dir(r.id) / "fs").is_dir()}
            if whole != records:
                self._save_records(whole)
            ids = {record.id for record in whole.values()}
            for entry in (self.data_root / "snapshots").iterdir():
                if entry.name not in ids:
                    shutil.rmtree(entry)
            for leftover in self.data_root.glob(".*.tmp"):
                leftover.unlink()
        sweep_abandoned(self.layer_root / STAGING)
        with exclusive_lock(self.layer_root / HOST_LOCK, wait=False) as locked:
            if locked:
                for link in (self.layer_root / SHORT_LINKS).iterdir():
                    if not link.exists():
                        link.unlink()


def _record_info(record: _Record) -> Info:
    created = datetime.fromisoformat(record.created)
    return Info(record.kind, record.key, record.parent, created, dict(record.labels))


def _is_layer_name(name: str) -> bool:
    return _LAYER_NAME.fullmatch(name) is not None and name != SHORT_LINKS


def _check_layer_name(name: str) -> None:
    if not _is_layer_name(name):
        raise SnapshotError(
            f"invalid layer name {name!r}: use letters, digits and '_.:+=-', "
            "starting with a letter or digit, as in a chain ID"
        )


def _move_or_copy(source: Path, destination: Path) -> bool:
    """Rename ``source`` to ``destination``; copy it if they are on different filesystems.
    Return True if it was moved."""
    try:
        os.rename(source, destination)
        return True
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    # cp -a keeps what a layer needs: owners, modes, times, hard links, device nodes
    # (overlay whiteouts) and extended attributes (trusted.overlay.opaque).
    copied = subprocess.run(
        ["cp", "-a", "--", str(source), str(destination)], capture_output=True, text=True
    )
    if copied.returncode != 0:
        raise SnapshotError(f"copying {source} into the layer root: {copied.stderr.strip()}")
    return False


def _disk_usage(root: Path) -> Usage:
    seen: set[tuple[int, int]] = set()
    size = 0
    paths = [str(root)]
    for directory, dirnames, filenames in os.walk(root):
        paths.extend(os.path.join(directory, name) for name in dirnames + filenames)
    for path in paths:
        status = os.lstat(path)
        inode = (status.st_dev, status.st_ino)
        if inode not in seen:
            seen.add(inode)
            size += status.st_blocks * 512
    return Usage(size, len(seen))


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _read_json(path: Path) -> dict[str, Any]:
    with open(path) as file:
        return json.load(file)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    _write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def _write_text(path: Path, text: str) -> None:
    """Write a file atomically: a temporary file beside it, fsync, rename."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(temporary, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.rename(temporary, path)
    _fsync_directory(path.parent)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
