"""The engine daemon: the Docker Engine API (versions 1.41 to 1.50) on a unix socket, over
the image store and, as they come, containers, volumes and networks.

``python -m simulator.engine --data-root DIR --host unix:///PATH.sock`` runs one; see
``server.py`` for how routes are added.
"""

from simulator.engine.daemon import Engine, EngineConfig

__all__ = ["Engine", "EngineConfig"]
