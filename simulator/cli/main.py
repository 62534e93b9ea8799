"""``docker``: Slipway's Docker CLI. The root command, its global options, and the error
handling every command shares.

Command modules live in :mod:`simulator.cli.commands`; each has ``register(root, groups)``,
which adds its top-level commands to ``root`` and its management forms (``docker container
rm``, ``docker image ls`` …) to the management commands in ``groups``.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

from simulator.cli.client import Client, ConnectError, DaemonError
from simulator.cli.flags import Command, Context, Flag, Options, StatusError, UsageError

CLIENT_VERSION = "28.2.2"
CLIENT_GIT_COMMIT = "e6534b4"
COMMAND_MODULES = ("containers", "images", "volumes", "system", "manifest", "build", "networks")

COMMON_ORDER = [
    "run", "exec", "ps", "build", "pull", "push", "images", "login", "logout", "search",
    "version", "info",
]  # fmt: skip
GROUP_ORDER = ["Common Commands", "Management Commands", "Swarm Commands", "Commands"]

# The modules that register each command, so that running one imports only what it needs
# (start-up time is most of a short command's time). tests/cli checks this against what the
# modules register.
_CONTAINER_COMMANDS = (
    "attach cp create exec export inspect kill logs pause port ps rename restart rm run start "
    "stop top unpause wait"
)
COMMAND_HOMES: dict[str, tuple[str, ...]] = {
    **{name: ("containers",) for name in _CONTAINER_COMMANDS.split()},
    **{
        name: ("images",)
        for name in ("history", "images", "import", "load", "pull", "push", "rmi", "save", "tag")
    },
    **{name: ("system",) for name in ("events", "info", "version")},
    "build": ("build",),
    "container": ("containers",),
    "image": ("images", "build"),
    "volume": ("volumes",),
    "system": ("system",),
    "manifest": ("manifest",),
    "network": ("networks",),
}

MANAGEMENT = {
    "container": "Manage containers",
    "image": "Manage images",
    "manifest": "Manage Docker image manifests and manifest lists",
    "network": "Manage networks",
    "system": "Manage Docker",
    "volume": "Manage volumes",
}


def _global_flags(home: str) -> list[Flag]:
    config = os.path.join(home, ".docker")
    return [
        Flag("config", kind="string", help="Location of client config files",
             shown_default=f'"{config}"'),
        Flag("context", "c", "string",
             'Name of the context to use to connect to the daemon (overrides DOCKER_HOST env '
             'var and default context set with "docker context use")'),
        Flag("debug", "D", help="Enable debug mode"),
        Flag("host", "H", "list", "Daemon socket to connect to"),
        Flag("log-level", "l", "string",
             'Set the logging level ("debug", "info", "warn", "error", "fatal")',
             default="info", shown_default='"info"'),
        Flag("tls", help="Use TLS; implied by --tlsverify"),
        Flag("tlscacert", kind="string", help="Trust certs signed only by this CA",
             shown_default=f'"{config}/ca.pem"'),
        Flag("tlscert", kind="string", help="Path to TLS certificate file",
             shown_default=f'"{config}/cert.pem"'),
        Flag("tlskey", kind="string", help="Path to TLS key file",
             shown_default=f'"{config}/key.pem"'),
        Flag("tlsverify", help="Use TLS and verify the remote"),
        Flag("version", "v", help="Print version information and quit"),
    ]  # fmt: skip


def build_root(modules: tuple[str, ...] = COMMAND_MODULES) -> tuple[Command, dict[str, Command]]:
    """The command tree, with the commands of ``modules`` (all of them by default)."""
    root = Command(
        "docker",
        usage="[OPTIONS] COMMAND",
        short="A self-sufficient runtime for containers",
        flags=_global_flags(os.path.expanduser("~")),
        interspersed=False,
    )
    groups: dict[str, Command] = {}
    for name, short in MANAGEMENT.items():
        group = Command(name, short=short, group="Management Commands")
        groups[name] = group
        root.add(group)
    for module_name in modules:
        module = importlib.import_module(f"simulator.cli.commands.{module_name}")
        module.register(root, groups)
    for command in [root, *groups.values()]:
        command.subcommands.sort(key=_help_order)
    for name in list(groups):
        if not groups[name].subcommands:
            root.subcommands.remove(groups.pop(name))
    return root, groups


def _help_order(command: Command) -> tuple[int, int, str]:
    group = GROUP_ORDER.index(command.group) if command.group in GROUP_ORDER else len(GROUP_ORDER)
    listed = command.group == "Common Commands" and command.name in COMMON_ORDER
    common = COMMON_ORDER.index(command.name) if listed else 0
    return group, common, command.name


def print_usage_error(error: UsageError, stderr) -> None:  # noqa: ANN001
    command = error.command
    message = str(error)
    prefix = "docker: " if error.status == 1 else ""
    # cobra's RequiresMinArgs says "See"; every other check, and a bad flag, says "Run".
    minimum_only = "requires at least" in message and "at most" not in message
    hint = "See" if error.status == 1 and minimum_only else "Run"
    if error.status == 1 and "requires at most" in message and "at least" not in message:
        hint = "SRun"  # sic: cobra's RequiresMaxArgs prints "SRun"
    stderr.write(
        f"{prefix}{message}\n\nUsage:  {command.usage_line()}\n\n"
        f"{hint} '{command.path} --help' for more information\n"
    )


def _resolve(root: Command, argv: list[str]) -> tuple[Command, list[str], dict]:
    """The command named by ``argv`` after the global options, and its own arguments."""
    options, rest = root.parse(argv)
    command = root
    while rest and command.subcommands:
        found = command.find(rest[0])
        if found is None:
            if command.run is None and not rest[0].startswith("-"):
                raise UsageError(f"unknown command: {command.path} {rest[0]}", command, 1)
            break
        command = found
        rest = rest[1:]
    if command is root and rest:
        raise UsageError(f"unknown command: docker {rest[0]}", root, 1)
    return command, rest, options


def _modules_for(argv: list[str]) -> tuple[str, ...]:
    """The command modules that running ``argv`` needs: its command's, or all for help."""
    bare, _ = build_root(())
    try:
        options, rest = bare.parse(argv)
    except UsageError:
        return COMMAND_MODULES
    if rest and rest[0] in COMMAND_HOMES and not options["help"]:
        return COMMAND_HOMES[rest[0]]
    return COMMAND_MODULES


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    stdout, stderr = sys.stdout, sys.stderr
    root, _ = build_root(_modules_for(argv))
    try:
        command, rest, global_options = _resolve(root, argv)
    except UsageError as error:
        if error.command is root and error.status == 1:
            stderr.write(f"docker: {error}\n\nRun 'docker --help' for more information\n")
        else:
            print_usage_error(error, stderr)
        return error.status
    if command is root:
        if global_options["version"]:
            stdout.write(f"Docker version {CLIENT_VERSION}, build {CLIENT_GIT_COMMIT}\n")
            return 0
        stdout.write(root.help_text())
        return 0
    hosts = global_options["host"]
    host = hosts[-1] if hosts else None
    if host and "://" not in host:
        host = "unix://" + host if host.startswith("/") else "tcp://" + host
    context = Context(
        make_client=lambda: Client(host),
        stdin=sys.stdin,
        stdout=stdout,
        stderr=stderr,
        config_dir=global_options["config"] or os.environ.get("DOCKER_CONFIG", ""),
        debug=bool(global_options["debug"]),
    )
    return run_command(command, rest, context)


def engine_features(context: Context) -> tuple[str, bool] | None:
    """The engine's OS type and whether it is experimental, from its ping; None when it
    doesn't answer (Docker then shows and allows every flag)."""
    try:
        context.client.version  # noqa: B018 - the ping that tells what the engine has
    except (ConnectError, DaemonError, OSError):
        return None
    headers = context.client.server_headers
    return headers.get("ostype", ""), headers.get("docker-experimental", "") == "true"


def unsupported_reason(flag: Flag, os_type: str, experimental: bool) -> str:
    """Why the engine can't honour ``flag`` (Docker's message), or "" if it can."""
    if flag.needs == "experimental" and not experimental:
        return (
            f'"--{flag.name}" is only supported on a Docker daemon with experimental features '
            "enabled"
        )
    if flag.needs not in ("", "experimental") and os_type and flag.needs != os_type:
        return (
            f'"--{flag.name}" is only supported on a Docker daemon running on {flag.needs}, '
            f"but the Docker daemon is running on {os_type}"
        )
    return ""


def hide_unsupported_flags(command: Command, context: Context) -> None:
    """Docker's help leaves out the flags the engine can't honour (another OS's, experimental
    ones), when the engine answers its ping."""
    if any(flag.needs for flag in command.flags) and (found := engine_features(context)):
        for flag in command.flags:
            flag.hidden = flag.hidden or bool(unsupported_reason(flag, *found))


def refuse_unsupported_flags(command: Command, options: Options, context: Context) -> None:
    """A flag the engine can't honour, given on the command line, is an error (status 1)."""
    given = [flag for flag in command.flags if flag.needs and options.given(flag.name)]
    if given and (found := engine_features(context)):
        for flag in given:
            if reason := unsupported_reason(flag, *found):
                raise StatusError(1, reason)


def run_command(command: Command, argv: list[str], context: Context) -> int:
    """Parse ``argv`` for ``command`` and run it, turning failures into Docker's messages."""
    try:
        options, positional = command.parse(argv)
        if options.get("help"):
            hide_unsupported_flags(command, context)
            context.stdout.write(command.help_text())
            return 0
        if command.run is None:
            if positional:
                raise UsageError(f"unknown command: {command.path} {positional[0]}", command, 1)
            context.stderr.write(command.help_text())
            return 0
        command.args.check(command, len(positional))
        refuse_unsupported_flags(command, options, context)
        status = command.run(context, options, positional)
        return status or 0
    except UsageError as error:
        print_usage_error(error, context.stderr)
        return error.status
    except StatusError as error:
        if error.message:
            context.stderr.write(error.message.rstrip("\n") + "\n")
        return error.status
    except DaemonError as error:
        context.stderr.write(f"Error response from daemon: {error.message}\n")
        return 1
    except ConnectError as error:
        context.stderr.write(f"{error}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        try:
            context.stdout.flush()
        except BrokenPipeError:
            pass


if __name__ == "__main__":
    sys.exit(main())
