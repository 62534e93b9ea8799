"""Commands and flags the way Docker's CLI parses and documents them.

Docker's CLI is built on cobra and pflag. This module gives the same behaviour for what a
learner sees: GNU-style long and short flags (``-dit``, ``-p8080:80``, ``--name=web``),
interspersed flags except where a command stops at its first argument (``run``, ``exec``),
the same error messages and exit codes for a bad command line, and help text laid out
and wrapped as pflag lays it out.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Value kinds. BOOL takes no value; the others take one. Repeatable kinds collect a list.
BOOL = "bool"
REPEATABLE = {
    "list", "stringArray", "filter", "mount", "map", "ulimit", "stringSlice", "network",
    "gpu-request", "strings",
}  # fmt: skip


class UsageError(Exception):
    """A bad command line: printed with the command's usage, exit status 125 (flags) or 1
    (arguments), as Docker's CLI does."""

    def __init__(self, message: str, command: Command, status: int = 125) -> None:
        super().__init__(message)
        self.command = command
        self.status = status


class StatusError(Exception):
    """Leave with this status, having printed ``message`` (if any) to stderr."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Flag:
    """One flag. ``kind`` is pflag's type name, shown in help ("string", "list", "int" …)."""

    name: str
    short: str = ""
    kind: str = BOOL
    help: str = ""
    default: Any = None
    shown_default: str = ""  # what help prints after "(default ...)"; empty prints nothing
    hidden: bool = False
    # Converts and checks one value; a ValueError's text is the reason pflag prints.
    parse: Callable[[str], Any] | None = None
    # For engines with this: an OS ("windows") or "experimental". Help hides the flag from an
    # engine that answers without it, as Docker's hideUnsupportedFeatures does.
    needs: str = ""

    @property
    def takes_value(self) -> bool:
        return self.kind != BOOL

    @property
    def repeatable(self) -> bool:
        return self.kind in REPEATABLE

    def initial(self) -> Any:
        if self.repeatable:
            return list(self.default or [])
        if self.kind == BOOL:
            return bool(self.default)
        return self.default


def convert(flag: Flag, text: str, command: Command) -> Any:
    """A flag's text as its kind's value, or pflag's error for a bad one (naming the flag as
    pflag does: "-m, --memory")."""
    spelled = f"-{flag.short}, --{flag.name}" if flag.short else f"--{flag.name}"
    if flag.parse is not None:
        try:
            return flag.parse(text)
        except ValueError as error:
            raise UsageError(
                f'invalid argument "{text}" for "{spelled}" flag: {error}', command
            ) from None
    if flag.kind in ("int", "int64", "uint", "uint16", "uint64"):
        try:
            return int(text, 0) if text.strip() else int("x")
        except ValueError:
            raise UsageError(
                f'invalid argument "{text}" for "{spelled}" flag: strconv.ParseInt: '
                f'parsing "{text}": invalid syntax',
                command,
            ) from None
    if flag.kind == BOOL:
        lowered = text.lower()
        if lowered in ("1", "t", "true"):
            return True
        if lowered in ("0", "f", "false"):
            return False
        raise UsageError(
            f'invalid argument "{text}" for "{spelled}" flag: strconv.ParseBool: '
            f'parsing "{text}": invalid syntax',
            command,
        )
    return text


class Options(dict):
    """Parsed flag values by long name (dashes kept), plus which ones the user set."""

    def __init__(self) -> None:
        super().__init__()
        self.changed: set[str] = set()

    def given(self, name: str) -> bool:
        return name in self.changed


Runner = Callable[["Context", Options, list[str]], int | None]


@dataclass
class Args:
    """How many positional arguments a command takes (``None``: no limit)."""

    minimum: int = 0
    maximum: int | None = None

    def check(self, command: Command, count: int) -> None:
        low, high = self.minimum, self.maximum
        path = command.path

        def plural(n: int) -> str:
            return f"{n} argument" + ("" if n == 1 else "s")

        if high == 0 and count > 0:
            message = f"'{path}' accepts no arguments"
        elif low == high and count != low:
            message = f"'{path}' requires {plural(low)}"
        elif high is not None and low > 0 and not low <= count <= high:
            message = f"'{path}' requires at least {low} and at most {plural(high)}"
        elif count < low:
            message = f"'{path}' requires at least {plural(low)}"
        elif high is not None and count > high:
            message = f"'{path}' requires at most {plural(high)}"
        else:
            return
        raise UsageError(message, command, status=1)


NO_ARGS = Args(0, 0)


@dataclass
class Command:
    """A command or a group of commands, with its usage line, help and runner."""

    name: str
    usage: str = ""  # after the command path: "[OPTIONS] CONTAINER [CONTAINER...]"
    short: str = ""
    run: Runner | None = None
    flags: list[Flag] = field(default_factory=list)
    args: Args = field(default_factory=Args)
    aliases: list[str] = field(default_factory=list)  # other names within the parent
    also: list[str] = field(default_factory=list)  # full paths shown under "Aliases:"
    interspersed: bool = True
    group: str = "Commands"  # the section of the parent's help that lists it
    hidden: bool = False
    subcommands: list[Command] = field(default_factory=list)
    parent: Command | None = None
    description: str = ""  # a longer text for help; ``short`` when empty
    examples: str = ""

    def add(self, *commands: Command) -> None:
        for command in commands:
            command.parent = self
            self.subcommands.append(command)

    @property
    def path(self) -> str:
        names = []
        command: Command | None = self
        while command is not None:
            names.append(command.name)
            command = command.parent
        return " ".join(reversed(names))

    def find(self, name: str) -> Command | None:
        for command in self.subcommands:
            if name == command.name or name in command.aliases:
                return command
        return None

    def usage_line(self) -> str:
        if self.subcommands and self.run is None:
            return f"{self.path} COMMAND"
        return f"{self.path} {self.usage}".rstrip()

    def all_flags(self) -> list[Flag]:
        flags = [*self.flags]
        if not any(flag.name == "help" for flag in flags):
            flags.append(Flag("help", help="Print usage", hidden=True))
        return flags

    # -- parsing ------------------------------------------------------------------------------

    def parse(self, argv: list[str]) -> tuple[Options, list[str]]:
        """pflag's parsing of ``argv`` against this command's flags."""
        flags = self.all_flags()
        by_long = {flag.name: flag for flag in flags}
        by_short = {flag.short: flag for flag in flags if flag.short}
        options = Options()
        for flag in flags:
            options[flag.name] = flag.initial()
        positional: list[str] = []

        def store(flag: Flag, text: str | None) -> None:
            if flag.kind == BOOL:
                value: Any = True if text is None else convert(flag, text, self)
            else:
                value = convert(flag, text or "", self)
            if flag.repeatable:
                if flag.name not in options.changed:
                    options[flag.name] = []
                options[flag.name].append(value)
            else:
                options[flag.name] = value
            options.changed.add(flag.name)

        i = 0
        while i < len(argv):
            arg = argv[i]
            i += 1
            if arg == "--":
                positional.extend(argv[i:])
                break
            if arg.startswith("--") and len(arg) > 2:
                name, eq, value = arg[2:].partition("=")
                flag = by_long.get(name)
                if flag is None:
                    raise UsageError(f"unknown flag: --{name}", self)
                if flag.takes_value and not eq:
                    if i >= len(argv):
                        raise UsageError(f"flag needs an argument: --{name}", self)
                    value = argv[i]
                    i += 1
                store(flag, value if eq or flag.takes_value else None)
            elif arg.startswith("-") and len(arg) > 1:
                letters = arg[1:]
                j = 0
                while j < len(letters):
                    letter = letters[j]
                    flag = by_short.get(letter)
                    if flag is None:
                        raise UsageError(f"unknown shorthand flag: '{letter}' in {arg}", self)
                    rest = letters[j + 1 :]
                    if flag.takes_value:
                        if rest:
                            value = rest[1:] if rest.startswith("=") else rest
                        elif i < len(argv):
                            value = argv[i]
                            i += 1
                        else:
                            raise UsageError(
                                f"flag needs an argument: '{letter}' in -{letter}", self
                            )
                        store(flag, value)
                        break
                    if rest.startswith("="):
                        store(flag, rest[1:])
                        break
                    store(flag, None)
                    j += 1
            else:
                positional.append(arg)
                if not self.interspersed:
                    positional.extend(argv[i:])
                    break
        return options, positional

    # -- help ----------------------------------------------------------------------------------

    def help_text(self, width: int | None = None) -> str:
        """The text of ``--help``, laid out as Docker's CLI lays it out."""
        if width is None:
            width = terminal_width()
        parts = [f"Usage:  {self.usage_line()}\n", f"\n{self.description or self.short}\n"]
        if self.also:
            parts.append("\nAliases:\n  " + ", ".join(self.also) + "\n")
        visible = [flag for flag in self.all_flags() if not flag.hidden]
        if visible and self.parent is not None and not (self.subcommands and self.run is None):
            parts.append("\nOptions:\n" + flag_usages(visible, width - 1) + "\n")
        if self.examples:
            parts.append("\nExamples:\n" + self.examples.rstrip("\n") + "\n")
        if self.subcommands:
            groups: dict[str, list[Command]] = {}
            for command in self.subcommands:
                if not command.hidden:
                    groups.setdefault(command.group, []).append(command)
            pad = max([11, *(len(c.name) for c in self.subcommands if not c.hidden)])
            for group, commands in groups.items():
                lines = "".join(f"  {c.name.ljust(pad)} {c.short}\n" for c in commands)
                parts.append(f"\n{group}:\n{lines}")
            if self.parent is None and self.flags:
                global_flags = [flag for flag in self.flags if not flag.hidden]
                parts.append("\nGlobal Options:\n" + flag_usages(global_flags, width - 1) + "\n")
            parts.append(f"\nRun '{self.path} COMMAND --help' for more information on a command.\n")
            if self.parent is None:
                parts.append(
                    "\nFor more help on how to use Docker, head to "
                    "https://docs.docker.com/go/guides/\n"
                )
        return "".join(parts)


def terminal_width() -> int:
    if sys.stdout.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    return 80


def _wrap_line(limit: int, slop: int, text: str) -> tuple[str, str]:
    if limit + slop > len(text):
        return text, ""
    cut = max(text.rfind(" ", 0, limit), text.rfind("\t", 0, limit), text.rfind("\n", 0, limit))
    if cut <= 0:
        return text, ""
    newline = text.rfind("\n", 0, limit)
    if 0 < newline < cut:
        return text[:newline], text[newline + 1 :]
    return text[:cut], text[cut + 1 :]


def wrap(indent: int, width: int, text: str) -> str:
    """pflag's wrapping of a flag's usage text into the column that starts at ``indent``."""
    if width == 0:
        return text.replace("\n", "\n" + " " * indent)
    room = width - indent
    result = ""
    if room < 24:
        indent = 16
        room = width - indent
        result += "\n" + " " * indent
    if room < 24:
        return text.replace("\n", result)
    slop = 5
    room -= slop
    line, text = _wrap_line(room, slop, text)
    result += line.replace("\n", "\n" + " " * indent)
    while text:
        line, text = _wrap_line(room, slop, text)
        result += "\n" + " " * indent + line.replace("\n", "\n" + " " * indent)
    return result


def flag_usages(flags: list[Flag], width: int) -> str:
    """The flag lines of a help text, sorted by name, in aligned and wrapped columns."""
    rows = []
    for flag in sorted(flags, key=lambda f: f.name):
        if flag.short:
            left = f"  -{flag.short}, --{flag.name}"
        else:
            left = f"      --{flag.name}"
        if flag.kind != BOOL:
            left += f" {flag.kind}"
        usage = flag.help
        if flag.shown_default:
            usage += f" (default {flag.shown_default})"
        rows.append((left, usage))
    longest = max(len(left) for left, _ in rows) + 1
    lines = []
    for left, usage in rows:
        spacing = " " * (longest - len(left))
        lines.append(f"{left} {spacing} {wrap(longest + 2, width, usage)}".rstrip())
    return "\n".join(lines)


@dataclass
class Context:
    """What a command runs with: the API client (made on first use), streams, settings."""

    make_client: Callable[[], Any]
    stdin: Any = None
    stdout: Any = None
    stderr: Any = None
    config_dir: str = ""
    debug: bool = False
    _client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.make_client()
        return self._client

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def err(self, text: str = "") -> None:
        self.stderr.write(text + "\n")
