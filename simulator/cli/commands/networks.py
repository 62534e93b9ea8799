"""``docker network create|ls|inspect|rm|prune|connect|disconnect``, as Docker's CLI 28 runs
and prints them."""

from __future__ import annotations

import csv
import ipaddress
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from simulator.cli.client import DaemonError
from simulator.cli.commands.images import (
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    confirm,
    filters_param,
    go_value,
    parse_filters,
    prune_filters,
    with_command,
    write_inspect,
)
from simulator.cli.flags import NO_ARGS, Args, Command, Context, Flag, Options, StatusError
from simulator.cli.formatting import (
    QUIET_FORMAT,
    TABLE_KEY,
    FormatError,
    natural_sort_key,
    truncate_id,
    write_rows,
)
from simulator.cli.progress import load_config
from simulator.cli.template import TemplateData

NETWORK_TABLE_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
PRUNE_WARNING = (
    "WARNING! This will remove all custom networks not used by at least one container.\n"
    "Are you sure you want to continue?"
)


class NetworkRow(TemplateData):
    """One network of /networks, as ``docker network ls`` shows it (networkContext)."""

    go_type = "*network.networkContext"
    template_fields = MappingProxyType(
        {
            "CreatedAt": "created_at",
            "Driver": "driver",
            "ID": "id",
            "IPv4": "ipv4",
            "IPv6": "ipv6",
            "Internal": "internal",
            "Labels": "labels",
            "Name": "name",
            "Scope": "scope",
        }
    )
    template_methods = MappingProxyType({"Label": ("label", ("string",))})
    header = MappingProxyType(
        {
            "ID": "NETWORK ID",
            "Name": "NAME",
            "Driver": "DRIVER",
            "Scope": "SCOPE",
            "IPv4": "IPV4",
            "IPv6": "IPV6",
            "Internal": "INTERNAL",
            "Labels": "LABELS",
            "CreatedAt": "CREATED AT",
        }
    )

    def __init__(self, network: Mapping[str, Any], trunc: bool = True) -> None:
        self.network = network
        self.trunc = trunc

    def id(self) -> str:
        identifier = self.network.get("Id") or ""
        return truncate_id(identifier) if self.trunc else identifier

    def name(self) -> str:
        return self.network.get("Name") or ""

    def driver(self) -> str:
        return self.network.get("Driver") or ""

    def scope(self) -> str:
        return self.network.get("Scope") or ""

    def ipv4(self) -> str:
        return _go_bool(self.network.get("EnableIPv4"))

    def ipv6(self) -> str:
        return _go_bool(self.network.get("EnableIPv6"))

    def internal(self) -> str:
        return _go_bool(self.network.get("Internal"))

    def labels(self) -> str:
        labels = self.network.get("Labels") or {}
        return ",".join(f"{key}={value}" for key, value in labels.items())

    def label(self, name: str) -> str:
        return (self.network.get("Labels") or {}).get(name, "")

    def created_at(self) -> str:
        return go_time_text(self.network.get("Created") or "")


def _go_bool(value: Any) -> str:
    return "true" if value else "false"


def go_time_text(text: str) -> str:
    """Go's time.Time.String() of an RFC 3339 time in UTC: "2026-11-28 05:59:01.5 +0000 UTC"
    (the fraction without its trailing zeros)."""
    if not text:
        return "0001-01-01 00:00:00 +0000 UTC"
    main, _, fraction = text.rstrip("Z").partition(".")
    moment = datetime.fromisoformat(main).replace(tzinfo=UTC)
    digits = fraction.rstrip("0")
    return f"{moment:%Y-%m-%d %H:%M:%S}{'.' + digits if digits else ''} +0000 UTC"


def network_format(format_text: str, quiet: bool) -> str:
    """NewFormat of the CLI's network formatter."""
    if format_text in (TABLE_KEY, ""):
        return QUIET_FORMAT if quiet else NETWORK_TABLE_FORMAT
    return format_text


def format_networks(
    networks: Iterable[Mapping[str, Any]], format_text: str, quiet: bool, no_trunc: bool
) -> str:
    """``docker network ls`` output, in the CLI's natural order of names."""
    ordered = sorted(networks, key=lambda n: natural_sort_key(n.get("Name") or ""))
    rows = [NetworkRow(n, trunc=not no_trunc) for n in ordered]
    return write_rows(network_format(format_text, quiet), rows, NetworkRow.header)


def _values(items: list[str]) -> list[str]:
    """A ``strings`` flag's values: each given value read as a CSV line, as pflag does."""
    found: list[str] = []
    for item in items:
        found.extend(next(csv.reader([item])) if item else [""])
    return found


def _key_values(items: list[str]) -> dict[str, str]:
    """MapOpts and ConvertKVStringsToMap: ``k=v``, and ``k`` with an empty value."""
    pairs: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        pairs[key] = value
    return pairs


# -- create -------------------------------------------------------------------------------------


def _subnet_matches(subnet: str, data: str) -> bool:
    """Whether ``data`` (an address or a CIDR) lies in ``subnet``, with Go's errors."""
    try:
        network = ipaddress.ip_network(subnet, strict=False)
        if "/" not in subnet:
            raise ValueError
    except ValueError:
        raise StatusError(1, f"invalid subnet: invalid CIDR address: {subnet}") from None
    text = data
    if "/" in data:
        try:
            ipaddress.ip_network(data, strict=False)
        except ValueError:
            raise StatusError(1, f"invalid CIDR address: {data}") from None
        text = data.partition("/")[0]
    try:
        return ipaddress.ip_address(text) in network
    except ValueError:
        return False


def consolidate_ipam(
    subnets: list[str], ranges: list[str], gateways: list[str], aux: dict[str, str]
) -> list[dict[str, Any]]:
    """The CLI's consolidateIpam: one IPAM config per subnet, with the range, gateway and
    auxiliary addresses that lie in it; the CLI's errors otherwise."""
    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise StatusError(1, "every ip-range or gateway must have a corresponding subnet")
    configs: dict[str, dict[str, Any]] = {}
    for subnet in subnets:
        for other in configs:
            if _subnet_matches(subnet, other) or _subnet_matches(other, subnet):
                raise StatusError(1, "multiple overlapping subnet configuration is not supported")
        configs[subnet] = {"Subnet": subnet}
    for key, kind, values in (("IPRange", "range", ranges), ("Gateway", "gateway", gateways)):
        plural = "ranges" if kind == "range" else "gateways"
        for value in values:
            matched = False
            for subnet in subnets:
                if not _subnet_matches(subnet, value):
                    continue
                if configs[subnet].get(key):
                    raise StatusError(
                        1,
                        f"cannot configure multiple {plural} ({value}, {configs[subnet][key]}) "
                        f"{'on' if kind == 'range' else 'for'} the same subnet ({subnet})",
                    )
                configs[subnet][key] = value
                matched = True
            if not matched:
                raise StatusError(1, f"no matching subnet for {kind} {value}")
    for name, address in aux.items():
        matched = False
        for subnet in subnets:
            if _subnet_matches(subnet, address):
                configs[subnet].setdefault("AuxiliaryAddresses", {})[name] = address
                matched = True
        if not matched:
            raise StatusError(1, f"no matching subnet for aux-address {address}")
    return list(configs.values())


def _create(context: Context, options: Options, args: list[str]) -> None:
    ipam_configs = consolidate_ipam(
        _values(options["subnet"]),
        _values(options["ip-range"]),
        _values(options["gateway"]),
        _key_values(options["aux-address"]),
    )
    body: dict[str, Any] = {
        "Name": args[0],
        "Driver": options["driver"],
        "Scope": options["scope"],
        "IPAM": {
            "Driver": options["ipam-driver"],
            "Config": ipam_configs,
            "Options": _key_values(options["ipam-opt"]),
        },
        "Internal": options["internal"],
        "Attachable": options["attachable"],
        "Ingress": options["ingress"],
        "ConfigOnly": options["config-only"],
        "Options": _key_values(options["opt"]),
        "Labels": _key_values(options["label"]),
    }
    if options["config-from"]:
        body["ConfigFrom"] = {"Network": options["config-from"]}
    if options.given("ipv4"):
        body["EnableIPv4"] = options["ipv4"]
    if options.given("ipv6"):
        body["EnableIPv6"] = options["ipv6"]
    answer = context.client.post_json("/networks/create", body=body)
    context.out(answer.get("Id", ""))


def _create_command() -> Command:
    return Command(
        "create",
        usage="[OPTIONS] NETWORK",
        short="Create a network",
        run=_create,
        args=Args(1, 1),
        flags=[
            Flag("attachable", help="Enable manual container attachment"),
            Flag("aux-address", kind="map", shown_default="map[]",
                 help="Auxiliary IPv4 or IPv6 addresses used by Network driver"),
            Flag("config-from", kind="string", default="",
                 help="The network from which to copy the configuration"),
            Flag("config-only", help="Create a configuration only network"),
            Flag("driver", "d", "string", "Driver to manage the Network", default="bridge",
                 shown_default='"bridge"'),
            Flag("gateway", kind="strings", help="IPv4 or IPv6 Gateway for the master subnet"),
            Flag("ingress", help="Create swarm routing-mesh network"),
            Flag("internal", help="Restrict external access to the network"),
            Flag("ip-range", kind="strings", help="Allocate container ip from a sub-range"),
            Flag("ipam-driver", kind="string", help="IP Address Management Driver",
                 default="default", shown_default='"default"'),
            Flag("ipam-opt", kind="map", help="Set IPAM driver specific options",
                 shown_default="map[]"),
            Flag("ipv4", help="Enable or disable IPv4 address assignment", default=True,
                 shown_default="true"),
            Flag("ipv6", help="Enable or disable IPv6 address assignment"),
            Flag("label", kind="list", help="Set metadata on a network"),
            Flag("opt", "o", "map", "Set driver specific options", shown_default="map[]"),
            Flag("scope", kind="string", help="Control the network's scope", default=""),
            Flag("subnet", kind="strings",
                 help="Subnet in CIDR format that represents a network segment"),
        ],
    )  # fmt: skip


# -- ls and inspect -----------------------------------------------------------------------------


def _list(context: Context, options: Options, args: list[str], command: Command) -> None:
    filters = parse_filters(command, options["filter"], "-f, --filter")
    networks = context.client.get_json("/networks", {"filters": filters_param(filters)})
    format_text = options["format"]
    if not format_text and not options["quiet"]:
        format_text = str(load_config(context).get("networksFormat") or "")
    try:
        text = format_networks(networks or [], format_text, options["quiet"], options["no-trunc"])
    except FormatError as error:
        raise StatusError(1, str(error)) from None
    context.stdout.write(text)


def _list_command() -> Command:
    command = Command(
        "ls",
        usage="[OPTIONS]",
        short="List networks",
        args=NO_ARGS,
        aliases=["list"],
        also=["docker network ls", "docker network list"],
        flags=[
            Flag("filter", "f", "filter", 'Provide filter values (e.g. "driver=bridge")'),
            Flag("format", kind="string", help=FORMAT_HELP, default=""),
            Flag("no-trunc", help="Do not truncate the output"),
            Flag("quiet", "q", help="Only display network IDs"),
        ],
    )
    return with_command(command, _list)


def _inspect(context: Context, options: Options, args: list[str]) -> None:
    params = {"verbose": "true" if options["verbose"] else None}

    def fetch(name: str) -> tuple[Any, str]:
        text = context.client.request("GET", f"/networks/{name}", params).read().decode()
        return go_value(text), text

    write_inspect(context, args, options["format"], fetch)


def _inspect_command() -> Command:
    return Command(
        "inspect",
        usage="[OPTIONS] NETWORK [NETWORK...]",
        short="Display detailed information on one or more networks",
        run=_inspect,
        args=Args(1, None),
        flags=[
            Flag("format", "f", "string", INSPECT_FORMAT_HELP, default=""),
            Flag("verbose", "v", help="Verbose output for diagnostics"),
        ],
    )


# -- rm and prune -------------------------------------------------------------------------------


def _remove(context: Context, options: Options, args: list[str]) -> None:
    failed = False
    for name in args:
        try:
            context.client.request("DELETE", f"/networks/{name}").read()
        except DaemonError as error:
            if options["force"] and error.status == 404:
                continue
            context.stderr.write(f"Error response from daemon: {error.message}\n")
            failed = True
            continue
        context.out(name)
    if failed:
        raise StatusError(1, "exit status 1")  # the CLI 28 says so, after each error


def _remove_command() -> Command:
    return Command(
        "rm",
        usage="NETWORK [NETWORK...]",
        short="Remove one or more networks",
        run=_remove,
        args=Args(1, None),
        aliases=["remove"],
        also=["docker network rm", "docker network remove"],
        flags=[Flag("force", "f", help="Do not error if the network does not exist")],
    )


def _prune(context: Context, options: Options, args: list[str], command: Command) -> None:
    filters = parse_filters(command, options["filter"], "--filter")
    prune_filters(context, filters)
    if not options["force"] and not confirm(context, PRUNE_WARNING):
        return
    report = context.client.post_json("/networks/prune", {"filters": filters_param(filters)})
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        context.out("Deleted Networks:\n" + "".join(f"{name}\n" for name in deleted))


def _prune_command() -> Command:
    command = Command(
        "prune",
        usage="[OPTIONS]",
        short="Remove all unused networks",
        args=NO_ARGS,
        flags=[
            Flag("filter", kind="filter", help='Provide filter values (e.g. "until=<timestamp>")'),
            Flag("force", "f", help="Do not prompt for confirmation"),
        ],
    )
    return with_command(command, _prune)


# -- connect and disconnect ---------------------------------------------------------------------


def _driver_options(values: list[str]) -> dict[str, str] | None:
    """convertDriverOpt: ``key=value`` pairs (None when there are none)."""
    options: dict[str, str] = {}
    for value in values:
        key, found, text = value.partition("=")
        if not found:
            raise StatusError(1, "invalid key value pair format in driver options")
        options[key.strip()] = text.strip()
    return options or None


def _connect(context: Context, options: Options, args: list[str]) -> None:
    ipam_config: dict[str, Any] = {}
    if options["ip"]:
        ipam_config["IPv4Address"] = options["ip"]
    if options["ip6"]:
        ipam_config["IPv6Address"] = options["ip6"]
    link_local = _values(options["link-local-ip"])
    if link_local:
        ipam_config["LinkLocalIPs"] = link_local
    settings = {
        "IPAMConfig": ipam_config,
        "Links": list(options["link"]) or None,
        "Aliases": _values(options["alias"]) or None,
        "MacAddress": "",
        "DriverOpts": _driver_options(_values(options["driver-opt"])),
        "GwPriority": options["gw-priority"],
    }
    body = {"Container": args[1], "EndpointConfig": settings}
    context.client.request("POST", f"/networks/{args[0]}/connect", body=body).read()


def _connect_command() -> Command:
    return Command(
        "connect",
        usage="[OPTIONS] NETWORK CONTAINER",
        short="Connect a container to a network",
        run=_connect,
        args=Args(2, 2),
        flags=[
            Flag("alias", kind="strings", help="Add network-scoped alias for the container"),
            Flag("driver-opt", kind="strings", help="driver options for the network"),
            Flag("gw-priority", kind="int", default=0,
                 help="Highest gw-priority provides the default gateway. Accepts positive "
                      "and negative values."),
            Flag("ip", kind="string", default="", help='IPv4 address (e.g., "172.30.100.104")'),
            Flag("ip6", kind="string", default="", help='IPv6 address (e.g., "2001:db8::33")'),
            Flag("link", kind="list", help="Add link to another container"),
            Flag("link-local-ip", kind="strings",
                 help="Add a link-local address for the container"),
        ],
    )  # fmt: skip


def _disconnect(context: Context, options: Options, args: list[str]) -> None:
    body = {"Container": args[1], "Force": options["force"]}
    context.client.request("POST", f"/networks/{args[0]}/disconnect", body=body).read()


def _disconnect_command() -> Command:
    return Command(
        "disconnect",
        usage="[OPTIONS] NETWORK CONTAINER",
        short="Disconnect a container from a network",
        run=_disconnect,
        args=Args(2, 2),
        flags=[Flag("force", "f", help="Force the container to disconnect from a network")],
    )


def register(root: Command, groups: dict[str, Command]) -> None:
    """Add ``docker network`` and its subcommands."""
    groups["network"].add(
        _connect_command(),
        _create_command(),
        _disconnect_command(),
        _inspect_command(),
        _list_command(),
        _prune_command(),
        _remove_command(),
    )
