"""``python -m simulator.engine --data-root DIR [--layer-root DIR] --host unix:///PATH.sock
[--mirror URL] [--insecure-registry HOST:PORT] [--offline] [--debug]``: run an engine in the
foreground, logging to stderr, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit

from simulator.snapshots.overlay import DEFAULT_LAYER_ROOT


def mirror_url(value: str) -> str:
    """A registry mirror as dockerd takes one: http(s)://host[:port][/]."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"invalid mirror: {value!r} is not a valid URI")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"invalid mirror: path, query or fragment in {value!r}")
    return f"{parts.scheme}://{parts.netloc}/"


def build_parser() -> argparse.ArgumentParser:
    from simulator.engine.daemon import DEFAULT_HOST

    parser = argparse.ArgumentParser(
        prog="python -m simulator.engine",
        description="Slipway's container engine: the Docker Engine API on a unix socket.",
    )
    parser.add_argument("--data-root", type=Path, required=True, help="the engine's state")
    parser.add_argument(
        "--layer-root",
        type=Path,
        default=DEFAULT_LAYER_ROOT,
        help=f"unpacked layers, shared by the engines of a host (default {DEFAULT_LAYER_ROOT})",
    )
    parser.add_argument(
        "-H",
        "--host",
        action="append",
        dest="hosts",
        metavar="unix:///PATH",
        help=f"socket to serve the API on; repeatable (default {DEFAULT_HOST})",
    )
    parser.add_argument(
        "--mirror",
        "--registry-mirror",
        action="append",
        dest="mirrors",
        type=mirror_url,
        default=[],
        metavar="URL",
        help="a docker.io mirror, tried before Docker Hub; repeatable",
    )
    parser.add_argument(
        "--insecure-registry",
        action="append",
        dest="insecure_registries",
        default=[],
        metavar="HOST:PORT",
        help="a registry (or CIDR) spoken to in plain HTTP; repeatable",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="pull docker.io images from the mirrors only, never from Docker Hub",
    )
    parser.add_argument(
        "--cgroup-parent",
        help="the cgroup under which containers' cgroups go (default /slipway/<engine ID>)",
    )
    parser.add_argument(
        "--allow-bind-root",
        action="append",
        dest="allowed_bind_roots",
        default=[],
        metavar="DIR",
        help="a host directory that bind mounts may come from; repeatable (default: none)",
    )
    parser.add_argument("-D", "--debug", action="store_true", help="log every request")
    return parser


def main(argv: list[str] | None = None) -> int:
    from simulator.engine.daemon import DEFAULT_HOST, ConfigError, Engine, EngineConfig

    arguments = build_parser().parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if arguments.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = EngineConfig(
        data_root=arguments.data_root,
        layer_root=arguments.layer_root,
        hosts=tuple(arguments.hosts or [DEFAULT_HOST]),
        mirrors=tuple(arguments.mirrors),
        insecure_registries=tuple(arguments.insecure_registries),
        offline=arguments.offline,
        cgroup_parent=arguments.cgroup_parent,
        allowed_bind_roots=tuple(arguments.allowed_bind_roots),
    )
    try:
        engine = Engine(config)
        asyncio.run(engine.serve())
    except (ConfigError, OSError) as error:
        print(f"engine: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
