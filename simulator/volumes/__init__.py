"""Volumes: Docker's `local` volume driver, the store the engine's /volumes endpoints call."""

from simulator.volumes.local import (
    ANONYMOUS_LABEL,
    DRIVER_NAME,
    InvalidVolumeRequest,
    Volume,
    VolumeConflict,
    VolumeDriverNotFound,
    VolumeError,
    VolumeForbidden,
    VolumeNotFound,
    VolumeStore,
    VolumeUsage,
)

__all__ = [
    "ANONYMOUS_LABEL",
    "DRIVER_NAME",
    "InvalidVolumeRequest",
    "Volume",
    "VolumeConflict",
    "VolumeDriverNotFound",
    "VolumeError",
    "VolumeForbidden",
    "VolumeNotFound",
    "VolumeStore",
    "VolumeUsage",
]
