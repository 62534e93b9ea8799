"""Helpers that several test packages share (reference daemons and the like)."""
