"""The hub: an OCI Distribution registry serving Slipway's base images, and the storage
that the base-image builder publishes them into (``python -m simulator.hub``)."""

from simulator.hub.storage import DEFAULT_ROOT, HubStorage, Manifest

__all__ = ["DEFAULT_ROOT", "HubStorage", "Manifest"]
