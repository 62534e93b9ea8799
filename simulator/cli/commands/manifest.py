"""Placeholder until this area's commands land."""

from __future__ import annotations

from simulator.cli.flags import Command


def register(root: Command, groups: dict[str, Command]) -> None:
    """Add this module's commands."""
