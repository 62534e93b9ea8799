"""The build cache: what a step produced, by a key made of everything its result depends on
(the layers below it, its instruction, its environment and build args, the checksums of the
files it copies). It holds its layers in the snapshotter and its blobs in the content store,
so a rebuild finds them after the images that used them are gone."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from simulator.images.store import ImageStore
from simulator.snapshots import Kind, SnapshotNotFoundError

CACHE_FILE = "cache.json"


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
    """A cached step: the layer it added (None when it changed no file), and when it ran
    (the history keeps that time, so a rebuild from the cache makes the same image)."""

    layer: Layer | None
    created: str


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
        images.hold_layers_with(self.chain_ids)

    def get(self, key: str) -> Entry | None:
        """The entry for ``key`` if its layer is still there to reuse."""
        value = self._read().get(key)
        if value is None:
            return None
        layer = Layer(**value["layer"]) if value.get("layer") else None
        if layer is not None and not self._usable(layer):
            return None
        return Entry(layer, value.get("created", ""))

    def put(self, key: str, entry: Entry) -> None:
        """Record a step's result, holding its layer and blob."""
        if entry.layer is not None:
            self.images.content.add_ref(entry.layer.digest, self.owner)
        with self._lock:
            entries = self._read()
            entries[key] = {
                "layer": asdict(entry.layer) if entry.layer else None,
                "created": entry.created,
            }
            self._write(entries)

    def chain_ids(self) -> list[str]:
        """Every layer the cache holds."""
        return [value["layer"]["chain_id"] for value in self._read().values() if value.get("layer")]

    def _usable(self, layer: Layer) -> bool:
        try:
            held = self.images.snapshots.stat(layer.chain_id).kind is Kind.COMMITTED
        except SnapshotNotFoundError:
            return False
        return held and self.images.content.exists(layer.digest)

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.root / CACHE_FILE) as file:
                value = json.load(file)
        except (FileNotFoundError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def _write(self, entries: dict[str, Any]) -> None:
        path = self.root / CACHE_FILE
        temporary = path.with_name(f".{CACHE_FILE}.{secrets.token_hex(4)}.tmp")
        with open(temporary, "w") as file:
            json.dump(entries, file)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temporary, path)
