"""The build cache: what a step produced, by a key made of everything its result depends on
(the layers below it, its instruction, its environment and build args, the checksums of the
files it copies). It holds its layers in the snapshotter and its blobs in the content store,
so a rebuild finds them after the images that used them are gone. Each layer it holds is a
build cache object (a record) for ``/system/df``, and ``/build/prune`` removes them as
BuildKit prunes its records."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from simulator.images import oci
from simulator.images.store import ImageStore
from simulator.snapshots import SnapshotNotFoundError

CACHE_FILE = "cache.json"
SOURCE_SUMS_KEPT = 1024  # COPY --from source sums remembered (in memory)
# The builder names its working snapshots and views so: one sitting on a layer means a build
# is using it (the record is "in use").
BUILD_SNAPSHOT_PREFIX = "build-"
RECORD_TYPE = "regular"  # BuildKit's type for a layer a step made
# The record fields /build/prune filters on, as moby passes them to BuildKit.
FLAG_FIELDS = ("inuse", "shared", "private")
CACHE_FIELDS = ("id", "parent", "type", "description", *FLAG_FIELDS)


@dataclass(frozen=True)
class Layer:
    """A layer a step made: its diffID, its compressed blob, and its chain ID."""

    diff_id: str
    digest: str
    size: int
    media_type: str
    chain_id: str


@dataclass(frozen=True)
class Entry:
    """A cached step: the layer it added (None when it changed no file), when it ran (the
    history keeps that time, so a rebuild from the cache makes the same image), and what the
    step was, for ``/system/df``."""

    layer: Layer | None
    created: str
    description: str = ""


@dataclass(frozen=True)
class Record:
    """A build cache object: a layer the cache holds, what made it, how it has been used,
    and whether a build is using it now (``in_use``) or an image holds it too (``shared``)."""

    chain_id: str
    digest: str
    parent: str | None  # the record below it, if the layer below is one
    description: str
    created: str
    last_used: str | None
    usage_count: int
    size: int  # bytes of the unpacked layer on disk
    in_use: bool
    shared: bool
    type: str = RECORD_TYPE

    @property
    def id(self) -> str:
        return self.chain_id.removeprefix("sha256:")

    def to_api(self, *, legacy_parent: bool = False) -> dict[str, Any]:
        """The ``BuildCache`` object of ``/system/df``, keys in moby's order. Clients before
        API 1.42 get ``Parent``; later ones ``" Parents"``, spelled as moby's JSON tag has it."""
        body: dict[str, Any] = {"ID": self.id}
        if self.parent is not None:
            if legacy_parent:
                body["Parent"] = self.parent
            else:
                body[" Parents"] = [self.parent]
        body |= {
            "Type": self.type,
            "Description": self.description,
            "InUse": self.in_use,
            "Shared": self.shared,
            "Size": self.size,
            "CreatedAt": self.created,
            "LastUsedAt": self.last_used,
            "UsageCount": self.usage_count,
        }
        return body


@dataclass(frozen=True)
class PruneOptions:
    """What ``/build/prune`` asks for. ``filters`` maps a record field (CACHE_FIELDS) to the
    value it must have, or to None for the field alone (a flag, or any non-empty value).
    ``until`` keeps what was used after that time (seconds since the epoch)."""

    all: bool = False
    until: float | None = None
    filters: Mapping[str, str | None] = field(default_factory=dict)
    reserved_space: int = 0
    max_used_space: int = 0
    min_free_space: int = 0

    @property
    def limits_space(self) -> bool:
        return bool(self.reserved_space or self.max_used_space or self.min_free_space)


@dataclass(frozen=True)
class PruneReport:
    """The records a prune removed, and the bytes it freed on disk."""

    deleted: list[str]
    reclaimed: int


def cache_key(*parts: Any) -> str:
    """A key for a step, from JSON-able parts."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class BuildCache:
    """The cache of one engine, kept in ``root/cache.json``."""

    def __init__(self, root: Path, images: ImageStore) -> None:
        self.root = root
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.images = images
        self.owner = f"{images.data_root} build-cache"
        self._lock = threading.Lock()
        # Uses since the file was last written: key -> (count, last used). A cache hit
        # rewrites nothing; the next write (or flush(), when the engine stops) keeps them.
        self._uses: dict[str, tuple[int, str]] = {}
        # What the files a COPY --from names in a stage's or an image's layers sum to (the
        # layers never change), newest last, so that a cached step need not mount them.
        self._source_sums: OrderedDict[str, Any] = OrderedDict()
        images.hold_layers_with(self.chain_ids)

    def get(self, key: str) -> Entry | None:
        """The entry for ``key`` if its layer is still there to reuse; counted as a use."""
        with self._lock:
            entries = self._read()
            value = entries.get(key)
            if value is None:
                return None
            layer = Layer(**value["layer"]) if value.get("layer") else None
            if layer is not None and not self._usable(layer):
                return None
            count, _ = self._uses.get(key, (0, ""))
            self._uses[key] = (count + 1, oci.rfc3339())
        return Entry(layer, value.get("created", ""), value.get("description", ""))

    def put(self, key: str, entry: Entry) -> None:
        """Record a step's result, holding its layer and blob."""
        if entry.layer is not None:
            self.images.content.add_ref(entry.layer.digest, self.owner)
        with self._lock:
            entries = self._read()
            entries[key] = {
                "layer": asdict(entry.layer) if entry.layer else None,
                "created": entry.created,
                "description": entry.description,
                "last_used": entry.created,
                "usage_count": 1,
            }
            self._write(entries)

    def source_sums(self, key: str) -> Any:
        """What remember_source_sums kept under ``key``, or None."""
        with self._lock:
            if key in self._source_sums:
                self._source_sums.move_to_end(key)
            return self._source_sums.get(key)

    def remember_source_sums(self, key: str, sums: Any) -> None:
        with self._lock:
            self._source_sums[key] = sums
            self._source_sums.move_to_end(key)
            while len(self._source_sums) > SOURCE_SUMS_KEPT:
                self._source_sums.popitem(last=False)

    def flush(self) -> None:
        """Write the uses counted since the last write."""
        with self._lock:
            if self._uses:
                self._write(self._read())

    def chain_ids(self) -> list[str]:
        """Every layer the cache holds."""
        return [value["layer"]["chain_id"] for value in self._read().values() if value.get("layer")]

    def records(self) -> list[Record]:
        """The build cache objects, oldest first."""
        with self._lock:
            return self._records(self._read(), self._snapshot_parents())

    def prune(self, options: PruneOptions) -> PruneReport:
        """Remove the records ``options`` choose, as BuildKit prunes: never one in use or one
        another layer still sits on; only private ones unless ``all``; down to the space
        limits, if any are set, least recently and least often used first. Their layers and
        blobs are released unless an image still uses them."""
        with self._lock:
            entries = self._read()
            parents = self._snapshot_parents()
            records = {record.chain_id: record for record in self._records(entries, parents)}
            doomed = _chosen(records, parents, options, self._keep_bytes(records, options))
            # Entries whose layer is gone (stale) go too; steps that made no layer go with
            # the last layer.
            kept = {
                key: value
                for key, value in entries.items()
                if not value.get("layer")
                or value["layer"]["chain_id"] in records.keys() - set(doomed)
            }
            if not any(value.get("layer") for value in kept.values()):
                kept = {}
            if kept == entries:
                return PruneReport([], 0)
            blobs = {value["layer"]["digest"] for value in entries.values() if value.get("layer")}
            kept_blobs = {value["layer"]["digest"] for value in kept.values() if value["layer"]}
            # A lease pins the layers (bottom first) while their entries go; closing it
            # releases each that no image uses any more.
            lease = self.images.lease()
            try:
                for chain_id in sorted(doomed, key=lambda name: _depth(name, parents)):
                    lease.pin_layer(chain_id)
                self._write(kept)
                for digest in blobs - kept_blobs:
                    self.images.content.remove_ref(digest, self.owner)
            finally:
                lease.close()
        self.images.content.collect()
        reclaimed = sum(records[chain].size for chain in doomed if not self._holds(chain))
        return PruneReport([records[chain].id for chain in doomed], reclaimed)

    def _records(self, entries: dict[str, Any], parents: dict[str, str | None]) -> list[Record]:
        """One record per layer the entries hold (several keys may have made the same one)."""
        by_chain: dict[str, list[dict[str, Any]]] = {}
        for value in entries.values():
            if value.get("layer") and value["layer"]["chain_id"] in parents:
                by_chain.setdefault(value["layer"]["chain_id"], []).append(value)
        shared = {chain for image in self.images.images() for chain in image.chain_ids}
        busy = {
            parent
            for name, parent in parents.items()
            if name.startswith(BUILD_SNAPSHOT_PREFIX) and parent is not None
        }
        records = []
        for chain_id, values in by_chain.items():
            parent = parents[chain_id]
            last_used = [value["last_used"] for value in values if value.get("last_used")]
            records.append(
                Record(
                    chain_id=chain_id,
                    digest=values[0]["layer"]["digest"],
                    parent=parent.removeprefix("sha256:") if parent in by_chain else None,
                    description=next(filter(None, (v.get("description") for v in values)), ""),
                    created=min((value.get("created", "") for value in values), key=_seconds),
                    last_used=max(last_used, key=_seconds) if last_used else None,
                    usage_count=sum(int(value.get("usage_count") or 0) for value in values),
                    size=self._size(chain_id),
                    in_use=chain_id in busy,
                    shared=chain_id in shared,
                )
            )
        return sorted(records, key=lambda record: (_seconds(record.created), record.id))

    def _keep_bytes(self, records: Mapping[str, Record], options: PruneOptions) -> int:
        """BuildKit's target for a prune with space limits (0: none): at most
        ``max_used_space``, less if ``min_free_space`` needs it, never below
        ``reserved_space``; counted over the private records."""
        if not options.limits_space:
            return 0
        total = sum(record.size for record in records.values() if not record.shared)
        keep = options.max_used_space
        if options.min_free_space:
            status = os.statvfs(self.images.layer_root)
            excess = options.min_free_space - status.f_bsize * status.f_bfree
            if excess > 0:
                keep = total - excess if keep == 0 else min(keep, total - excess)
            elif keep == 0:
                keep = total
        return max(keep, options.reserved_space)

    def _snapshot_parents(self) -> dict[str, str | None]:
        """Every snapshot of the engine (layers, containers', builds') and what it sits on."""
        return {info.name: info.parent for info in self.images.snapshots.walk()}

    def _size(self, chain_id: str) -> int:
        try:
            return self.images.snapshots.usage(chain_id).size
        except (SnapshotNotFoundError, OSError):
            return 0

    def _holds(self, chain_id: str) -> bool:
        return self.images.snapshots.holds(chain_id)

    def _usable(self, layer: Layer) -> bool:
        return self._holds(layer.chain_id) and self.images.content.exists(layer.digest)

    def _read(self) -> dict[str, Any]:
        """The entries, with the uses not yet written counted in."""
        try:
            with open(self.root / CACHE_FILE) as file:
                value = json.load(file)
        except (FileNotFoundError, ValueError):
            return {}
        if not isinstance(value, dict):
            return {}
        for key, (count, last_used) in list(self._uses.items()):
            entry = value.get(key)
            if isinstance(entry, dict):
                entry["usage_count"] = int(entry.get("usage_count") or 0) + count
                entry["last_used"] = last_used
        return value

    def _write(self, entries: dict[str, Any]) -> None:
        """Write entries read with _read (and changed): the uses counted are in them."""
        path = self.root / CACHE_FILE
        temporary = path.with_name(f".{CACHE_FILE}.{secrets.token_hex(4)}.tmp")
        with open(temporary, "w") as file:
            json.dump(entries, file)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temporary, path)
        self._uses.clear()


def _chosen(
    records: Mapping[str, Record],
    parents: Mapping[str, str | None],
    options: PruneOptions,
    keep: int,
) -> list[str]:
    """The chain IDs of the records a prune removes, in BuildKit's passes: each takes the
    records nothing sits on any more; with a space target, one at a time until the private
    records fit in it."""
    children: dict[str, set[str]] = {}
    for name, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, set()).add(name)
    total = sum(record.size for record in records.values() if not record.shared)
    doomed: list[str] = []
    while not (keep and total < keep):
        gone = set(doomed)
        candidates = [
            record
            for chain_id, record in records.items()
            if chain_id not in gone
            and not children.get(chain_id, set()) - gone
            and _prunable(record, options)
        ]
        if not candidates:
            break
        if keep:
            candidates = _least_valuable_first(candidates)[:1]
        for record in candidates:
            doomed.append(record.chain_id)
            if not record.shared:
                total -= record.size
    return doomed


def _prunable(record: Record, options: PruneOptions) -> bool:
    if record.in_use or (record.shared and not options.all):
        return False
    last_used = _seconds(record.last_used) if record.last_used else None
    if options.until is not None and last_used is not None and last_used > options.until:
        return False
    return all(_field_matches(record, name, value) for name, value in options.filters.items())


def _field_matches(record: Record, name: str, value: str | None) -> bool:
    """BuildKit's filter on one field: ``id`` is a regular expression, the others equal the
    value; a flag (inuse, shared, private) holds with no value, and has none to compare."""
    if name in FLAG_FIELDS:
        flag = {"inuse": record.in_use, "shared": record.shared, "private": not record.shared}
        return flag[name] and value is None
    text = {
        "id": record.id,
        "parent": record.parent or "",
        "type": record.type,
        "description": record.description,
    }[name]
    if value is None:
        return bool(text)
    if name == "id":
        return re.search(value, text) is not None
    return text == value


def _least_valuable_first(records: Iterable[Record]) -> list[Record]:
    """BuildKit's order for pruning down to a size: ranked by last use (never used first)
    and by usage count, the two ranks scaled and added, lowest first."""
    ordered = sorted(records, key=lambda r: _seconds(r.last_used) if r.last_used else -1.0)
    use_rank: dict[str, float] = {}
    rank, latest = 1.0, None
    for record in ordered:
        moment = _seconds(record.last_used) if record.last_used else None
        if moment is not None and (latest is None or moment > latest):
            latest, rank = moment, rank + 1
        use_rank[record.chain_id] = rank
    top_use = rank
    ordered.sort(key=lambda record: record.usage_count)
    count_rank: dict[str, float] = {}
    rank, count = 1.0, 0
    for record in ordered:
        if record.usage_count != count:
            count, rank = record.usage_count, rank + 1
        count_rank[record.chain_id] = rank
    top_count = rank
    return sorted(
        ordered,
        key=lambda r: use_rank[r.chain_id] / top_use + count_rank[r.chain_id] / top_count,
    )


def _depth(name: str, parents: Mapping[str, str | None]) -> int:
    depth = 0
    parent = parents.get(name)
    while parent is not None:
        depth += 1
        parent = parents.get(parent)
    return depth


def _seconds(text: str | None) -> float:
    """An RFC 3339 time as seconds since the epoch (0 if it isn't one)."""
    try:
        return datetime.fromisoformat((text or "").replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
