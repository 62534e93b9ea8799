"""``docker volume create|ls|inspect|rm|prune``, as Docker's CLI runs and prints them."""

from __future__ import annotations

from typing import Any

from simulator.cli.client import DaemonError
from simulator.cli.commands.images import (
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    GoObject,
    NilMap,
    confirm,
    filters_param,
    parse_filters,
    prune_filters,
    with_command,
    write_inspect,
)
from simulator.cli.flags import (
    NO_ARGS,
    Args,
    Command,
    Context,
    Flag,
    Options,
    StatusError,
    UsageError,
)
from simulator.cli.formatting import FormatError, format_volumes
from simulator.cli.progress import load_config
from simulator.cli.template import GoMap, GoStruct, go_json, go_quote
from simulator.cli.units import human_size

ANONYMOUS_WARNING = (
    "WARNING! This will remove anonymous local volumes not used by at least one container.\n"
    "Are you sure you want to continue?"
)
ALL_WARNING = (
    "WARNING! This will remove all local volumes not used by at least one container.\n"
    "Are you sure you want to continue?"
)
ALL_API_VERSION = "1.42"  # volume prune's --all, and prune keeping named volumes
ALL_CONFLICT = "conflicting options: cannot specify both --all and --filter all=1"
# volume.Volume's members in the order Go marshals them, and those that are maps.
VOLUME_FIELDS = (
    "ClusterVolume", "CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope",
    "Status", "UsageData",
)  # fmt: skip
OMITTED_WHEN_EMPTY = ("ClusterVolume", "CreatedAt", "Status", "UsageData")
MAP_FIELDS = ("Labels", "Options", "Status")


def volume_value(volume: dict[str, Any]) -> GoObject:
    """A volume as Go's volume.Volume holds it: members in the struct's order, and its maps
    (nil ones too) printing as maps."""
    members = GoStruct()
    for name in VOLUME_FIELDS:
        member = volume.get(name)
        if name in MAP_FIELDS:
            member = GoMap(member) if isinstance(member, dict) else NilMap()
        elif name == "CreatedAt":
            member = member or ""
        members[name] = member
    return GoObject("volume.Volume", members, omit_empty=OMITTED_WHEN_EMPTY)


# -- create -------------------------------------------------------------------------------------


def _key_values(items: list[str]) -> dict[str, str]:
    """ConvertKVStringsToMap and MapOpts: ``k=v`` and ``k`` (an empty value)."""
    pairs: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        pairs[key] = value
    return pairs


def _create(context: Context, options: Options, args: list[str], command: Command) -> None:
    name = options["name"]
    if args:
        if name:
            raise StatusError(
                1,
                "conflicting options: cannot specify a volume-name through both --name and as "
                "a positional arg",
            )
        name = args[0]
    for label in options["label"]:
        if not label.partition("=")[0].strip():
            raise UsageError(
                f'invalid argument {go_quote(label)} for "--label" flag: invalid label '
                f"'{label}': empty name",
                command,
            )
    body = {  # volume.CreateOptions: every member is left out when empty
        "Driver": options["driver"],
        "DriverOpts": _key_values(options["opt"]),
        "Labels": _key_values(options["label"]),
        "Name": name,
    }
    body = {key: value for key, value in body.items() if value}
    volume = context.client.post_json("/volumes/create", body=body)
    context.out(volume.get("Name", ""))


def _create_command() -> Command:
    command = Command(
        "create",
        usage="[OPTIONS] [VOLUME]",
        short="Create a volume",
        args=Args(0, 1),
        flags=[
            Flag("driver", "d", "string", "Specify volume driver name", default="local",
                 shown_default='"local"'),
            Flag("label", kind="list", help="Set metadata for a volume"),
            Flag("name", kind="string", help="Specify volume name", default="", hidden=True),
            Flag("opt", "o", "map", "Set driver specific options", shown_default="map[]"),
        ],
    )  # fmt: skip
    return with_command(command, _create)


# -- ls -----------------------------------------------------------------------------------------


def _list(context: Context, options: Options, args: list[str], command: Command) -> None:
    filters = parse_filters(command, options["filter"], "-f, --filter")
    answer = context.client.get_json("/volumes", {"filters": filters_param(filters)})
    format_text = options["format"]
    if not format_text and not options["quiet"]:
        format_text = str(load_config(context).get("volumesFormat") or "")
    try:
        text = format_volumes(answer.get("Volumes") or [], format_text, options["quiet"])
    except FormatError as error:
        raise StatusError(1, str(error)) from None
    context.stdout.write(text)


def _list_command() -> Command:
    command = Command(
        "ls",
        usage="[OPTIONS]",
        short="List volumes",
        args=NO_ARGS,
        aliases=["list"],
        also=["docker volume ls", "docker volume list"],
        flags=[
            Flag("filter", "f", "filter", 'Provide filter values (e.g. "dangling=true")'),
            Flag("format", kind="string", help=FORMAT_HELP, default=""),
            Flag("quiet", "q", help="Only display volume names"),
        ],
    )
    return with_command(command, _list)


# -- inspect and rm -----------------------------------------------------------------------------


def _inspect(context: Context, options: Options, args: list[str]) -> None:
    def fetch(name: str) -> tuple[Any, str]:
        if not name.strip():
            raise DaemonError(400, "invalid volume name or ID: value is empty")
        value = volume_value(context.client.get_json(f"/volumes/{name.strip()}"))
        return value, go_json(value)

    write_inspect(context, args, options["format"], fetch)


def _inspect_command() -> Command:
    return Command(
        "inspect",
        usage="[OPTIONS] VOLUME [VOLUME...]",
        short="Display detailed information on one or more volumes",
        run=_inspect,
        args=Args(1, None),
        flags=[Flag("format", "f", "string", INSPECT_FORMAT_HELP, default="")],
    )


def _remove(context: Context, options: Options, args: list[str]) -> None:
    errors: list[str] = []
    for name in args:
        if not name.strip():
            errors.append("invalid volume name or ID: value is empty")
            continue
        try:
            context.client.request(
                "DELETE", f"/volumes/{name.strip()}", {"force": "1" if options["force"] else None}
            ).read()
        except DaemonError as error:
            errors.append(f"Error response from daemon: {error.message}")
            continue
        context.out(name)
    if errors:
        raise StatusError(1, "\n".join(errors))


def _remove_command() -> Command:
    return Command(
        "rm",
        usage="[OPTIONS] VOLUME [VOLUME...]",
        short="Remove one or more volumes",
        description=(
            "Remove one or more volumes. You cannot remove a volume that is in use by a container."
        ),
        run=_remove,
        args=Args(1, None),
        aliases=["remove"],
        also=["docker volume rm", "docker volume remove"],
        flags=[Flag("force", "f", help="Force the removal of one or more volumes")],
    )


# -- prune --------------------------------------------------------------------------------------


def volume_prune_filters(
    context: Context, every: bool, filters: dict[str, dict[str, bool]]
) -> dict[str, dict[str, bool]]:
    """The filters a volume prune sends: the command line's and config.json's, and
    ``all=true`` to remove named volumes too."""
    query = {name: dict(values) for name, values in filters.items()}
    prune_filters(context, query)
    if every:
        if "all" in query:
            raise StatusError(1, ALL_CONFLICT)
        query["all"] = {"true": True}
    return query


def prune_volumes(context: Context, filters: dict[str, dict[str, bool]]) -> tuple[int, str]:
    """``POST /volumes/prune``: the space reclaimed, and the text listing what went."""
    report = context.client.post_json("/volumes/prune", {"filters": filters_param(filters)})
    deleted = report.get("VolumesDeleted") or []
    if not deleted:
        return 0, ""
    listing = "".join(f"{name}\n" for name in deleted)
    return int(report.get("SpaceReclaimed") or 0), "Deleted Volumes:\n" + listing


def _older(version: str, other: str) -> bool:
    def parts(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split(".") if part.isdigit())

    return parts(version) < parts(other)


def _prune(context: Context, options: Options, args: list[str], command: Command) -> None:
    filters = parse_filters(command, options["filter"], "--filter")
    version = context.client.version
    if _older(version, ALL_API_VERSION):
        if options.given("all"):  # the CLI checks each flag's API version before running
            raise StatusError(
                1,
                f'"--all" requires API version {ALL_API_VERSION}, but the Docker daemon API '
                f"version is {version}",
            )
        query = volume_prune_filters(context, False, filters)
        warning = ALL_WARNING  # before 1.42 a prune removed named volumes too
    else:
        query = volume_prune_filters(context, options["all"], filters)
        warning = ALL_WARNING if options["all"] else ANONYMOUS_WARNING
    if not options["force"] and not confirm(context, warning):
        return
    reclaimed, output = prune_volumes(context, query)
    if output:
        context.out(output)
    context.out(f"Total reclaimed space: {human_size(reclaimed)}")


def _prune_command() -> Command:
    command = Command(
        "prune",
        usage="[OPTIONS]",
        short="Remove unused local volumes",
        args=NO_ARGS,
        flags=[
            Flag("all", "a", help="Remove all unused volumes, not just anonymous ones"),
            Flag("filter", kind="filter", help='Provide filter values (e.g. "label=<label>")'),
            Flag("force", "f", help="Do not prompt for confirmation"),
        ],
    )
    return with_command(command, _prune)


def register(root: Command, groups: dict[str, Command]) -> None:
    """Add ``docker volume`` and its subcommands."""
    groups["volume"].add(
        _create_command(),
        _inspect_command(),
        _list_command(),
        _prune_command(),
        _remove_command(),
    )
