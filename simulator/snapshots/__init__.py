"""Snapshots in containerd's sense: an overlayfs snapshotter whose committed layers are stored
once per host, in a layer root that every engine on the host shares."""

from simulator.snapshots.mount import Mount, unmount
from simulator.snapshots.overlay import (
    DEFAULT_LAYER_ROOT,
    Info,
    Kind,
    OverlaySnapshotter,
    SnapshotError,
    SnapshotExistsError,
    SnapshotNotFoundError,
    SnapshotPreconditionError,
    Usage,
)

__all__ = [
    "DEFAULT_LAYER_ROOT",
    "Info",
    "Kind",
    "Mount",
    "OverlaySnapshotter",
    "SnapshotError",
    "SnapshotExistsError",
    "SnapshotNotFoundError",
    "SnapshotPreconditionError",
    "Usage",
    "unmount",
]
