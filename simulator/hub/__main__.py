"""``python -m simulator.hub serve [--listen HOST:PORT] [--root DIR] [--quiet]``: run the hub.

Other verbs plug in as modules: if ``simulator.hub.build`` exists, its
``add_command(subcommands)`` adds the ``build`` parser, with ``set_defaults(run=FUNCTION)``
where FUNCTION takes the parsed arguments and returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import signal
import sys
from pathlib import Path
from types import FrameType

from simulator.hub.registry import Registry
from simulator.hub.storage import DEFAULT_ROOT, HubStorage

DEFAULT_LISTEN = "127.0.0.1:5000"
_PLUGGED_COMMANDS = ("simulator.hub.build",)


class _Stopped(Exception):
    """Raised by the SIGTERM handler to leave serve_forever()."""


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPV6]:PORT``, or ``:PORT`` for every IPv4 address."""
    host, separator, port = value.rpartition(":")
    if not separator or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"invalid listen address {value!r}: want HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.hub", description="Slipway's image hub."
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = subcommands.add_parser(
        "serve", help="serve the hub's repositories as an OCI Distribution registry"
    )
    serve.add_argument(
        "--listen",
        type=parse_listen,
        default=parse_listen(DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_LISTEN})",
    )
    serve.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help=f"the hub's data root (default {DEFAULT_ROOT})",
    )
    serve.add_argument("--quiet", action="store_true", help="log no requests")
    serve.set_defaults(run=serve_command)
    for module_name in _PLUGGED_COMMANDS:
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).add_command(subcommands)
    return parser


def serve_command(arguments: argparse.Namespace) -> int:
    host, port = arguments.listen
    with HubStorage(arguments.root) as storage:
        storage.content.remove_stale_ingests()
        try:
            server = Registry((host, port), storage, quiet=arguments.quiet)
        except OSError as error:
            print(f"hub: cannot listen on {host}:{port}: {error.strerror}", file=sys.stderr)
            return 1
        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            if not arguments.quiet:
                print(f"hub: serving {storage.root} at {server.url}", file=sys.stderr, flush=True)
            server.serve_forever()
        except (_Stopped, KeyboardInterrupt):
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.server_close()
    return 0


def _stop(signal_number: int, frame: FrameType | None) -> None:
    raise _Stopped()


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    return arguments.run(arguments)


if __name__ == "__main__":
    sys.exit(main())
