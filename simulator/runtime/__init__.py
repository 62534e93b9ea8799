"""Slipway's OCI runtime: runs a bundle (config.json plus rootfs) as runc does.

``python -m simulator.runtime`` takes runc's verbs; see ``__main__`` for the list.
"""
