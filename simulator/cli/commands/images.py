"""``docker images``, ``pull``, ``push``, ``rmi``, ``tag``, ``save``, ``load``, ``import``,
``history`` and ``docker image inspect|prune``, with their ``docker image …`` forms; plus the
pieces the other command modules share: filters, confirmation prompts, Go-style JSON
indentation and the output of ``inspect`` commands."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

from simulator.cli.client import DaemonError
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
from simulator.cli.formatting import (
    FormatError,
    format_history,
    format_images,
)
from simulator.cli.progress import (
    ImageReference,
    ProgressError,
    ReferenceError,
    display_stream,
    load_config,
    parse_reference,
    pull_image,
    registry_auth,
    stream_is_terminal,
)
from simulator.cli.template import (
    GoMap,
    GoStruct,
    TemplateData,
    TemplateError,
    TemplateExecError,
    go_json,
    go_quote,
    parse,
)
from simulator.cli.units import human_size

FORMAT_HELP = (
    "Format output using a custom template:\n"
    "'table':            Print output in table format with column headers (default)\n"
    "'table TEMPLATE':   Print output in table format using the given Go template\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template.\n"
    "Refer to https://docs.docker.com/go/formatting/ for more information about formatting "
    "output with templates"
)
INSPECT_FORMAT_HELP = (
    "Format output using a custom template:\n"
    "'json':             Print in JSON format\n"
    "'TEMPLATE':         Print output using the given Go template.\n"
    "Refer to https://docs.docker.com/go/formatting/ for more information about formatting "
    "output with templates"
)
IMAGE_SUBCOMMANDS = (
    "build", "history", "import", "inspect", "list", "load", "ls", "prune", "pull", "push",
    "rm", "save", "tag",
)  # fmt: skip
ALL_IMAGES_WARNING = (
    "WARNING! This will remove all images without at least one container associated to them.\n"
    "Are you sure you want to continue?"
)
IMAGE_INSPECT_TYPE = "image.InspectResponse"
RAW_MAP_TYPE = "map[string]interface {}"
DANGLING_WARNING = (
    "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
)


# -- shared by the command modules --------------------------------------------------------------


def parse_filters(command: Command, values: Iterable[str], flag: str) -> dict[str, dict[str, bool]]:
    """``--filter name=value`` flags as the API's filters (FilterOpt). A value without "="
    is pflag's error for the flag, spelled as ``flag`` ("-f, --filter")."""
    filters: dict[str, dict[str, bool]] = {}
    for value in values:
        if not value:
            continue
        if "=" not in value:
            raise UsageError(
                f"invalid argument {go_quote(value)} for {go_quote(flag)} flag: "
                "bad format of filter (expected name=value)",
                command,
            )
        name, _, text = value.partition("=")
        filters.setdefault(name.strip().lower(), {})[text.strip()] = True
    return filters


def filters_param(filters: dict[str, dict[str, bool]]) -> str | None:
    """The ``filters`` query parameter: Go's JSON of the filters, or none when empty."""
    return go_json(filters, escape_html=True) if filters else None


def prune_filters(context: Context, filters: dict[str, dict[str, bool]]) -> None:
    """Add config.json's ``pruneFilters`` to ``filters`` as command.PruneFilters does. Its
    check for a conflicting label filter (filters.Args.ExactMatch) also holds when the
    command line has no such filter at all, so a label filter from the file only counts
    beside an opposite one on the command line that names another label."""
    for entry in load_config(context).get("pruneFilters") or []:
        if not isinstance(entry, str) or "=" not in entry:
            continue
        name, _, value = entry.partition("=")
        opposite = {"label": "label!", "label!": "label"}.get(name)
        if opposite is not None:
            values = filters.get(opposite)
            if not values or value in values:
                continue
        filters.setdefault(name, {})[value] = True


def confirm(context: Context, message: str) -> bool:
    """Docker's prompt: the message, " [y/N] ", and a line from stdin ("y" or "Y" agrees)."""
    context.stdout.write(message + " [y/N] ")
    context.stdout.flush()
    return context.stdin.readline().strip().lower() == "y"


def go_reformat(text: str, indent: str | None, escape_html: bool = False) -> str:
    """Go's json.Indent (``indent`` a string) or json.Compact (``None``) of JSON text: the
    same tokens, keys and escapes, only the whitespace between them changed. With
    ``escape_html``, <, > and & in strings become \\u003c… as json.Marshal writes them."""
    out: list[str] = []
    depth = 0
    opened = False  # just after "{" or "[": an empty one stays "{}"
    index = 0

    def newline() -> None:
        if indent is not None:
            out.append("\n" + indent * depth)

    while index < len(text):
        char = text[index]
        if char in " \t\r\n":
            index += 1
            continue
        if opened and char not in "}]":
            newline()
        if char in "}]":
            depth -= 1
            if not opened:
                newline()
            opened = False
            out.append(char)
        else:
            opened = False
        if char == '"':
            end = index + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            string = text[index : end + 1]
            if escape_html:
                for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
                    string = string.replace(raw, escaped)
                string = string.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
            out.append(string)
            index = end + 1
            continue
        if char in "{[":
            out.append(char)
            depth += 1
            opened = True
        elif char == ",":
            out.append(",")
            newline()
        elif char == ":":
            out.append(": " if indent is not None else ":")
        elif char not in "}]":
            out.append(char)
        index += 1
    return "".join(out)


def go_value(text: str) -> Any:
    """Engine API JSON as template data: objects keep their members' order, as Go structs."""
    return json.loads(text, object_pairs_hook=GoStruct)


class GoObject(TemplateData):
    """A typed Go value for templates: its members under their JSON names, reached in a
    template by their Go names (``renames`` maps the JSON names that differ, as "Id" to
    "ID"), and Go's error, naming ``go_type``, for a field it doesn't have. Members named in
    ``omit_empty`` are left out of its JSON when they are empty."""

    def __init__(
        self,
        go_type: str,
        members: GoStruct,
        renames: Mapping[str, str] | None = None,
        omit_empty: Iterable[str] = (),
    ) -> None:
        self.go_type = go_type
        self.members = members
        self.renames = renames or {}
        self.omit_empty = frozenset(omit_empty)

    def template_field(self, name: str) -> Any:
        for key, value in self.members.items():
            if self.renames.get(key, key) == name:
                return value
        raise KeyError(name)

    def json_value(self) -> Any:
        return GoStruct(
            (key, value)
            for key, value in self.members.items()
            if value or key not in self.omit_empty
        )


class NilMap(GoMap, TemplateData):
    """A nil Go map: empty (``map[]`` when printed, false in ``if``), ``null`` in JSON."""

    go_type = "map[string]string"

    def json_value(self) -> Any:
        return None


Fetch = Callable[[str], tuple[Any, str]]


def write_inspect(context: Context, names: Iterable[str], format_text: str, fetch: Fetch) -> None:
    """What ``docker … inspect`` prints: a JSON array indented by four spaces, ``json``
    compact, or a template run on each object. ``fetch`` gives an object and its JSON text;
    the daemon's errors are printed after the output, each on its own line (status 1)."""
    template = None
    if format_text and format_text != "json":
        try:
            template = parse(format_text)
        except TemplateError as error:
            raise StatusError(64, f"template parsing error: {error}") from None
    errors: list[str] = []
    texts: list[str] = []
    for name in names:
        try:
            value, text = fetch(name)
        except DaemonError as error:
            errors.append(f"Error response from daemon: {error.message}")
            continue
        if template is None:
            texts.append(text)
            continue
        try:
            texts.append(template.execute(value) + "\n")
        except TemplateExecError as error:
            try:
                texts.append(_raw_fallback(template, value, error) + "\n")
            except TemplateExecError as failure:
                errors.append(f"template parsing error: {failure}")
    write_inspected(context, template, format_text, texts, errors)


def write_inspected(
    context: Context, template: Any, format_text: str, texts: list[str], errors: list[str]
) -> None:
    """Print what ``inspect`` made of each object (template output, or one JSON array as
    Docker indents it), then the errors, each on its own line, with status 1."""
    if template is not None:
        context.stdout.write("".join(texts) or "\n")
    elif not texts:
        context.stdout.write("[]\n")
    else:
        joined = "[" + ",".join(texts) + "]"
        context.stdout.write(go_reformat(joined, None if format_text else "    ") + "\n")
    if errors:
        raise StatusError(1, "\n".join(errors))


def _raw_fallback(template: Any, value: Any, error: TemplateExecError) -> str:
    """Where Docker has an object's raw JSON (images), a template that fails on the typed
    object runs again on the raw map, where a missing key is its own error."""
    if not (isinstance(value, GoObject) and value.go_type == IMAGE_INSPECT_TYPE):
        raise error
    raw = GoObject(RAW_MAP_TYPE, value.members)
    try:
        return template.execute(raw)
    except TemplateExecError as failure:
        text = str(failure)
        head, found, rest = text.partition(": can't evaluate field ")
        if found and rest.endswith(f" in type {RAW_MAP_TYPE}"):
            field = rest.removesuffix(f" in type {RAW_MAP_TYPE}")
            text = f"{head}: map has no entry for key {go_quote(field)}"
        raise TemplateExecError(text, failure.partial_output) from None


def os_error_text(operation: str, path: str, error: OSError) -> str:
    """Go's *PathError text: ``open /x: no such file or directory``."""
    reason = error.strerror or str(error)
    return f"{operation} {path}: {reason[:1].lower()}{reason[1:]}"


def _out_binary(stream: TextIO) -> Any:
    stream.flush()
    return getattr(stream, "buffer", stream)


def _reference_or_fail(text: str) -> ImageReference:
    try:
        return parse_reference(text)
    except ReferenceError as error:
        raise StatusError(1, str(error)) from None


# -- docker images ------------------------------------------------------------------------------


def _list_images(context: Context, options: Options, args: list[str], command: Command) -> None:
    filters = parse_filters(command, options["filter"], "-f, --filter")
    if args:
        filters.setdefault("reference", {})[args[0]] = True
    images = context.client.get_json(
        "/images/json", {"filters": filters_param(filters), "all": options["all"] or None}
    )
    format_text = options["format"]
    if not format_text and not options["quiet"]:
        format_text = str(load_config(context).get("imagesFormat") or "")
    try:
        context.stdout.write(
            format_images(
                images,
                format_text=format_text,
                quiet=options["quiet"],
                no_trunc=options["no-trunc"],
                digests=options["digests"],
            )
        )
    except FormatError as error:
        raise StatusError(1, str(error)) from None
    if args and not images and command.name == "images" and args[0] in IMAGE_SUBCOMMANDS:
        context.stderr.write(
            f"\nNo images found matching {go_quote(args[0])}: "
            f'did you mean "docker image {args[0]}"?\n'
        )


def with_command(
    command: Command, run: Callable[[Context, Options, list[str], Command], None]
) -> Command:
    """Give ``command`` a runner that also hands ``run`` the command (for usage errors)."""

    def runner(context: Context, options: Options, args: list[str]) -> None:
        run(context, options, args, command)

    command.run = runner
    return command


def _images_command(name: str) -> Command:
    command = Command(
        name,
        usage="[OPTIONS] [REPOSITORY[:TAG]]",
        short="List images",
        args=Args(0, 1),
        also=["docker image ls", "docker image list", "docker images"],
        aliases=[] if name == "images" else ["list"],
        flags=[
            Flag("all", "a", help="Show all images (default hides intermediate images)"),
            Flag("digests", help="Show digests"),
            Flag("filter", "f", "filter", "Filter output based on conditions provided"),
            Flag("format", kind="string", help=FORMAT_HELP, default=""),
            Flag("no-trunc", help="Don't truncate output"),
            Flag("quiet", "q", help="Only show image IDs"),
        ],
    )
    return with_command(command, _list_images)


# -- docker pull / push -------------------------------------------------------------------------


def _pull(context: Context, options: Options, args: list[str]) -> None:
    image = _reference_or_fail(args[0])
    all_tags = options["all-tags"]
    if all_tags and not image.name_only:
        raise StatusError(1, "tag can't be used with --all-tags/-a")
    if not all_tags and image.name_only:
        image = image.with_default_tag()
        if not options["quiet"]:
            context.out(f"Using default tag: {image.tag}")
    try:
        pull_image(
            context,
            str(image),
            platform=options["platform"] or None,
            quiet=options["quiet"],
            all_tags=all_tags,
        )
    except ProgressError as error:
        raise StatusError(1, error.message) from None
    context.out(str(image))


def _pull_command() -> Command:
    return Command(
        "pull",
        usage="[OPTIONS] NAME[:TAG|@DIGEST]",
        short="Download an image from a registry",
        run=_pull,
        args=Args(1, 1),
        also=["docker image pull", "docker pull"],
        flags=[
            Flag("all-tags", "a", help="Download all tagged images in the repository"),
            Flag("disable-content-trust", help="Skip image verification", default=True,
                 shown_default="true"),
            Flag("platform", kind="string", help="Set platform if server is multi-platform capable",
                 default=os.environ.get("DOCKER_DEFAULT_PLATFORM", "")),
            Flag("quiet", "q", help="Suppress verbose output"),
        ],
    )  # fmt: skip


def _push(context: Context, options: Options, args: list[str]) -> None:
    image = _reference_or_fail(args[0])
    all_tags = options["all-tags"]
    if all_tags and not image.name_only:
        raise StatusError(1, "tag can't be used with --all-tags/-a")
    if not all_tags and image.name_only:
        image = image.with_default_tag()
        if not options["quiet"]:
            context.out(f"Using default tag: {image.tag}")
    if image.digest:
        raise StatusError(1, "cannot push a digest reference")
    params = {} if all_tags else {"tag": image.tag}
    headers = {"X-Registry-Auth": registry_auth(context, image.domain)}
    answer = context.client.request("POST", f"/images/{image.name}/push", params, headers=headers)
    try:
        display_stream(answer.json_lines(), None if options["quiet"] else context.stdout)
    except ProgressError as error:
        raise StatusError(1, error.message) from None
    if options["quiet"]:
        context.out(str(image))


def _push_command() -> Command:
    return Command(
        "push",
        usage="[OPTIONS] NAME[:TAG]",
        short="Upload an image to a registry",
        run=_push,
        args=Args(1, 1),
        also=["docker image push", "docker push"],
        flags=[
            Flag("all-tags", "a", help="Push all tags of an image to the repository"),
            Flag("disable-content-trust", help="Skip image signing", default=True,
                 shown_default="true"),
            Flag("quiet", "q", help="Suppress verbose output"),
        ],
    )  # fmt: skip


# -- docker rmi / tag ---------------------------------------------------------------------------


def _remove(context: Context, options: Options, args: list[str]) -> None:
    params = {"force": options["force"] or None, "noprune": options["no-prune"] or None}
    errors: list[str] = []
    fatal = False
    for name in args:
        try:
            records = context.client.request("DELETE", f"/images/{name}", params).json()
        except DaemonError as error:
            fatal = fatal or error.status != 404
            errors.append(f"Error response from daemon: {error.message}")
            continue
        for record in records or []:
            if record.get("Deleted"):
                context.out(f"Deleted: {record['Deleted']}")
            else:
                context.out(f"Untagged: {record.get('Untagged', '')}")
    if not errors:
        return
    if not options["force"] or fatal:
        raise StatusError(1, "\n".join(errors))
    context.err("\n".join(errors))


def _remove_command(name: str) -> Command:
    return Command(
        name,
        usage="[OPTIONS] IMAGE [IMAGE...]",
        short="Remove one or more images",
        run=_remove,
        args=Args(1, None),
        aliases=[] if name == "rmi" else ["rmi", "remove"],
        also=["docker image rm", "docker image remove", "docker rmi"],
        flags=[
            Flag("force", "f", help="Force removal of the image"),
            Flag("no-prune", help="Do not delete untagged parents"),
        ],
    )


def _tag(context: Context, options: Options, args: list[str]) -> None:
    source, target = args

    def invalid(text: str, error: ReferenceError) -> StatusError:
        return StatusError(
            1, f"Error parsing reference: {go_quote(text)} is not a valid repository/tag: {error}"
        )

    if not (len(source) == 64 or source.startswith("sha256:")):
        try:
            parse_reference(source)
        except ReferenceError as error:
            raise invalid(source, error) from None
    try:
        image = parse_reference(target)
    except ReferenceError as error:
        raise invalid(target, error) from None
    if image.digest:
        raise StatusError(1, "refusing to create a tag with a digest reference")
    image = image.with_default_tag()
    context.client.request("POST", f"/images/{source}/tag", {"repo": image.name, "tag": image.tag})


def _tag_command() -> Command:
    return Command(
        "tag",
        usage="SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
        short="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
        run=_tag,
        args=Args(2, 2),
        also=["docker image tag", "docker tag"],
        interspersed=False,
    )


# -- docker save / load -------------------------------------------------------------------------


def output_problem(path: str) -> str | None:
    """What moby's atomicwriter refuses as a destination, or None."""
    directory = os.path.dirname(path)
    if directory not in ("", ".", ".."):
        try:
            os.stat(directory)
        except OSError as error:
            return f"invalid output path: {os_error_text('stat', directory, error)}"
        if not os.path.isdir(directory):
            return f"invalid output path: stat {directory}: not a directory"
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"failed to stat output path: {os_error_text('lstat', path, error)}"
    kinds = (
        (stat.S_ISREG, None),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link directly"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device file"),
        (stat.S_ISBLK, "a block device file"),
    )
    for test, what in kinds:
        if test(mode):
            return None if what is None else f"cannot write to {what}"
    return None


def _check_output_path(path: str) -> None:
    problem = output_problem(path)
    if problem:
        raise StatusError(1, f"failed to save image: {problem}")


def _save(context: Context, options: Options, args: list[str]) -> None:
    output = options["output"]
    if not output:
        if context.stdout.isatty():
            raise StatusError(
                1, "cowardly refusing to save to a terminal. Use the -o flag or redirect"
            )
        answer = context.client.request("GET", "/images/get", {"names": tuple(args)})
        target = _out_binary(context.stdout)
        for chunk in answer.chunks():
            target.write(chunk)
        target.flush()
        return
    _check_output_path(output)
    path = os.path.abspath(output)
    descriptor, temporary = tempfile.mkstemp(
        prefix=".tmp-" + os.path.basename(output), dir=os.path.dirname(path)
    )
    written = False
    try:
        with os.fdopen(descriptor, "wb") as file:
            answer = context.client.request("GET", "/images/get", {"names": tuple(args)})
            for chunk in answer.chunks():
                file.write(chunk)
                written = True
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        if written:
            os.rename(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _save_command() -> Command:
    return Command(
        "save",
        usage="[OPTIONS] IMAGE [IMAGE...]",
        short="Save one or more images to a tar archive (streamed to STDOUT by default)",
        run=_save,
        args=Args(1, None),
        also=["docker image save", "docker save"],
        flags=[Flag("output", "o", "string", "Write to a file, instead of STDOUT", default="")],
    )


def _load(context: Context, options: Options, args: list[str]) -> None:
    path = options["input"]
    if path:
        try:
            source: Any = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as error:
            raise StatusError(1, os_error_text("open", path, error)) from None
    else:
        if context.stdin.isatty():
            raise StatusError(1, "requested load from stdin, but stdin is empty")
        source = getattr(context.stdin, "buffer", context.stdin)
    terminal, _ = stream_is_terminal(context.stdout)
    quiet = options["quiet"] or not terminal
    try:
        answer = context.client.request(
            "POST",
            "/images/load",
            {"quiet": "1" if quiet else "0"},
            body=source,
            headers={"Content-Type": "application/x-tar"},
        )
    finally:
        if path:
            source.close()
    if answer.headers.get("Content-Type") == "application/json":
        try:
            display_stream(answer.json_lines(), context.stdout)
        except ProgressError as error:
            raise StatusError(1, error.message) from None
        return
    target = _out_binary(context.stdout)
    for chunk in answer.chunks():
        target.write(chunk)
    target.flush()


def _load_command() -> Command:
    return Command(
        "load",
        usage="[OPTIONS]",
        short="Load an image from a tar archive or STDIN",
        run=_load,
        args=NO_ARGS,
        also=["docker image load", "docker load"],
        flags=[
            Flag("input", "i", "string", "Read from tar archive file, instead of STDIN",
                 default=""),
            Flag("quiet", "q", help="Suppress the load output"),
        ],
    )  # fmt: skip


def _import(context: Context, options: Options, args: list[str]) -> None:
    source, reference = args[0], (args[1] if len(args) > 1 else "")
    if reference:
        _reference_or_fail(reference)
    body: Any = None
    if source == "-":
        body = getattr(context.stdin, "buffer", context.stdin)
    elif not source.startswith(("http://", "https://")):
        try:
            body = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as error:
            raise StatusError(1, os_error_text("open", source, error)) from None
    params = {
        "fromSrc": "-" if body is not None else source,
        "repo": reference or None,
        "message": options["message"] or None,
        "platform": options["platform"].lower() or None,
        "changes": tuple(options["change"]),
    }
    try:
        answer = context.client.request("POST", "/images/create", params, body=body)
    finally:
        if body is not None and source != "-":
            body.close()
    try:
        display_stream(answer.json_lines(), context.stdout)
    except ProgressError as error:
        raise StatusError(1, error.message) from None


def _import_command() -> Command:
    return Command(
        "import",
        usage="[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
        short="Import the contents from a tarball to create a filesystem image",
        run=_import,
        args=Args(1, None),
        also=["docker image import", "docker import"],
        flags=[
            Flag("change", "c", "list", "Apply Dockerfile instruction to the created image"),
            Flag("message", "m", "string", "Set commit message for imported image", default=""),
            Flag("platform", kind="string", help="Set platform if server is multi-platform capable",
                 default=os.environ.get("DOCKER_DEFAULT_PLATFORM", "")),
        ],
    )  # fmt: skip


# -- docker history / image inspect -------------------------------------------------------------


def _history(context: Context, options: Options, args: list[str]) -> None:
    history = context.client.get_json(f"/images/{args[0]}/history")
    try:
        context.stdout.write(
            format_history(
                history,
                format_text=options["format"],
                quiet=options["quiet"],
                no_trunc=options["no-trunc"],
                human=options["human"],
            )
        )
    except FormatError as error:
        raise StatusError(1, str(error)) from None


def _history_command() -> Command:
    return Command(
        "history",
        usage="[OPTIONS] IMAGE",
        short="Show the history of an image",
        run=_history,
        args=Args(1, 1),
        also=["docker image history", "docker history"],
        flags=[
            Flag("format", kind="string", help=FORMAT_HELP, default=""),
            Flag("human", "H", help="Print sizes and dates in human readable format",
                 default=True, shown_default="true"),
            Flag("no-trunc", help="Don't truncate output"),
            Flag("quiet", "q", help="Only show image IDs"),
        ],
    )  # fmt: skip


def _inspect(context: Context, options: Options, args: list[str]) -> None:
    def fetch(name: str) -> tuple[Any, str]:
        text = context.client.request("GET", f"/images/{name}/json").read().decode()
        return GoObject(IMAGE_INSPECT_TYPE, go_value(text), {"Id": "ID"}), text

    write_inspect(context, args, options["format"], fetch)


def _inspect_command() -> Command:
    return Command(
        "inspect",
        usage="[OPTIONS] IMAGE [IMAGE...]",
        short="Display detailed information on one or more images",
        run=_inspect,
        args=Args(1, None),
        flags=[Flag("format", "f", "string", INSPECT_FORMAT_HELP, default="")],
    )


# -- docker image prune -------------------------------------------------------------------------


def prune_images(
    context: Context, every: bool, filters: dict[str, dict[str, bool]]
) -> tuple[int, str]:
    """``POST /images/prune``: the space reclaimed, and the text listing what went."""
    query = {name: dict(values) for name, values in filters.items()}
    query.setdefault("dangling", {})[str(not every).lower()] = True
    prune_filters(context, query)
    report = context.client.post_json("/images/prune", {"filters": filters_param(query)})
    deleted = report.get("ImagesDeleted") or []
    if not deleted:
        return 0, ""
    lines = ["Deleted Images:"]
    for record in deleted:
        if record.get("Untagged"):
            lines.append(f"untagged: {record['Untagged']}")
        else:
            lines.append(f"deleted: {record.get('Deleted', '')}")
    return int(report.get("SpaceReclaimed") or 0), "\n".join(lines) + "\n"


def _prune(context: Context, options: Options, args: list[str], command: Command) -> None:
    filters = parse_filters(command, options["filter"], "--filter")
    warning = ALL_IMAGES_WARNING if options["all"] else DANGLING_WARNING
    if not options["force"] and not confirm(context, warning):
        return
    reclaimed, output = prune_images(context, options["all"], filters)
    if output:
        context.out(output)
    context.out(f"Total reclaimed space: {human_size(reclaimed)}")


def _prune_command() -> Command:
    command = Command(
        "prune",
        usage="[OPTIONS]",
        short="Remove unused images",
        args=NO_ARGS,
        flags=[
            Flag("all", "a", help="Remove all unused images, not just dangling ones"),
            Flag("filter", kind="filter", help='Provide filter values (e.g. "until=<timestamp>")'),
            Flag("force", "f", help="Do not prompt for confirmation"),
        ],
    )
    return with_command(command, _prune)


def register(root: Command, groups: dict[str, Command]) -> None:
    """Add the image commands: top-level, and under ``docker image``."""
    image = groups["image"]
    for name, group in (("pull", "Common Commands"), ("push", "Common Commands")):
        top = _pull_command() if name == "pull" else _push_command()
        top.group = group
        root.add(top)
    images = _images_command("images")
    images.group = "Common Commands"
    root.add(images)
    for make in (_history_command, _import_command, _load_command, _save_command, _tag_command):
        root.add(make())
    root.add(_remove_command("rmi"))
    image.add(
        _images_command("ls"),
        _pull_command(),
        _push_command(),
        _remove_command("rm"),
        _tag_command(),
        _save_command(),
        _load_command(),
        _history_command(),
        _import_command(),
        _inspect_command(),
        _prune_command(),
    )
