"""Layer tars: unpack one safely into a directory (apply_layer) and write one from an overlayfs
upper dir (diff_to_tar), translating OCI whiteouts and overlayfs whiteouts both ways."""

from simulator.archive.apply import (
    ApplyResult,
    ArchiveError,
    BreakoutError,
    WhiteoutMode,
    apply_layer,
)
from simulator.archive.diff import DiffResult, diff_to_tar

__all__ = [
    "ApplyResult",
    "ArchiveError",
    "BreakoutError",
    "DiffResult",
    "WhiteoutMode",
    "apply_layer",
    "diff_to_tar",
]
