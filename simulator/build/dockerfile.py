"""The Dockerfile parser: parser directives (``# syntax``, ``# escape``), comments, line
continuations, heredocs, and every instruction turned into stages of commands, with the
error messages of Docker's parser (``dockerfile parse error on line 2: unknown
instruction: FOO``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from simulator.build.shell import Lexer, ShellError

MAX_LINE = 65535  # bufio.Scanner's limit, which Docker's parser keeps
INSTRUCTIONS = (
    "add arg cmd copy entrypoint env expose from healthcheck label maintainer onbuild run "
    "shell stopsignal user volume workdir"
).split()
HEREDOC_INSTRUCTIONS = ("add", "copy", "run")
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
_DURATION_FLAGS = ("interval", "timeout", "start-period", "start-interval")


class DockerfileError(ValueError):
    """A Dockerfile Docker would refuse; the message is Docker's."""


@dataclass
class Heredoc:
    name: str
    content: str = ""
    expand: bool = True
    chomp: bool = False

    def text(self) -> str:
        """The content, with leading tabs removed for ``<<-``."""
        return re.sub(r"(?m)^\t+", "", self.content) if self.chomp else self.content


@dataclass
class Node:
    """One instruction as the parser reads it."""

    keyword: str  # as written: "copy", "RUN"
    rest: str  # the arguments after the flags
    flags: list[str]
    original: str  # the whole instruction, continuation lines joined
    start_line: int
    end_line: int
    heredocs: list[Heredoc] = field(default_factory=list)


@dataclass
class Command:
    """An instruction ready to dispatch: ``name`` is upper case; ``params`` depend on it."""

    name: str
    original: str
    line: int
    params: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.original


@dataclass
class Stage:
    """A FROM and the commands that follow it."""

    base: str
    name: str  # lower case, "" if unnamed
    platform: str
    original: str
    line: int
    index: int
    commands: list[Command] = field(default_factory=list)


@dataclass
class Dockerfile:
    stages: list[Stage]
    meta_args: list[Command]
    escape: str
    warnings: list[str]

    def stage_index(self, name: str) -> int | None:
        """The position of the stage named ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for stage in self.stages:
            if stage.name == wanted:
                return stage.index
        return None


# Reading lines


def parse(data: bytes, name: str = "Dockerfile") -> Dockerfile:
    """Parse a whole Dockerfile (called ``name`` in messages); DockerfileError with
    Docker's message if it's bad."""
    if not data:
        raise DockerfileError(f"the Dockerfile ({name}) cannot be empty")
    try:
        nodes, escape, warnings = parse_nodes(data)
    except DockerfileError as error:
        raise DockerfileError(f"failed to parse {name}: {error}") from None
    stages: list[Stage] = []
    meta_args: list[Command] = []
    for node in nodes:
        try:
            parsed = _instruction(node, escape)
        except DockerfileError as error:
            raise DockerfileError(
                f"dockerfile parse error on line {node.start_line}: {error}"
            ) from None
        if isinstance(parsed, Stage):
            parsed.index = len(stages)
            stages.append(parsed)
        elif not stages:
            if parsed.name != "ARG":
                raise DockerfileError("no build stage in current context")
            meta_args.append(parsed)
        else:
            stages[-1].commands.append(parsed)
    return Dockerfile(stages, meta_args, escape, warnings)


def _text_lines(data: bytes) -> tuple[list[str], bool]:
    """The lines up to the first one longer than Docker's scanner takes (where its scanner
    stops), and whether there was such a line. Bytes that aren't UTF-8 read as U+FFFD, as
    they come out of Docker's JSON."""
    lines = []
    for raw in data.splitlines(keepends=True):
        if len(raw.rstrip(b"\r\n")) > MAX_LINE:
            return lines, True
        lines.append(raw.decode("utf-8", "replace"))
    return lines, False


def parse_nodes(data: bytes) -> tuple[list[Node], str, list[str]]:
    """The instructions of a Dockerfile, the escape token and the parser's warnings."""
    lines, too_long = _text_lines(data.removeprefix(b"\xef\xbb\xbf"))
    escape = "\\"
    directives_done = False
    seen: set[str] = set()
    nodes: list[Node] = []
    warnings: list[str] = []
    continuation = _continuation(escape)
    index = 0

    def read(raw: str, strip_left: bool) -> str:
        nonlocal directives_done, escape, continuation
        line = raw.rstrip("\r\n")
        if strip_left:
            line = line.lstrip()
        if not directives_done:
            match = _DIRECTIVE.match(line)
            name = match.group(1).lower() if match else ""
            if match is None or name not in _DIRECTIVES:
                directives_done = True
            else:
                if name in seen:
                    raise DockerfileError(f"only one {name} parser directive can be used")
                seen.add(name)
                if name == "escape":
                    value = match.group(2)
                    if value not in ("`", "\\"):
                        raise DockerfileError(
                            f"invalid escape token '{value}' does not match ` or \\"
                        )
                    escape = value
                    continuation = _continuation(escape)
        return "" if _is_comment(line) else line

    while index < len(lines):
        line = read(lines[index], True)
        index += 1
        start = index
        line, ended = _trim_continuation(line, continuation)
        if ended and not line:
            continue
        parts = [line]
        empty_continuation = False
        while not ended and index < len(lines):
            raw = lines[index]
            piece = read(raw, False)
            index += 1
            if _is_comment(raw):
                continue
            if not piece.strip():
                empty_continuation = True
                continue
            piece, ended = _trim_continuation(piece, continuation)
            parts.append(piece)
        joined = "".join(parts)
        if empty_continuation:
            warnings.append(f"Empty continuation line found in: {joined}")
        node = _node(joined, escape, start, index)
        if _can_have_heredoc(node) and "<<" in joined:
            for heredoc in _heredocs_of(joined):
                terminated = False
                content: list[str] = []
                while index < len(lines):
                    raw = lines[index]
                    index += 1
                    candidate = raw.rstrip("\r\n")
                    if heredoc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == heredoc.name:
                        terminated = True
                        break
                    content.append(raw)
                if not terminated:
                    raise DockerfileError("unterminated heredoc")
                heredoc.content = "".join(content)
                node.heredocs.append(heredoc)
            node.end_line = index
        nodes.append(node)
    if not nodes:
        raise DockerfileError("file with no instructions")
    if too_long:
        raise DockerfileError(f"dockerfile line greater than max allowed size of {MAX_LINE}")
    return nodes, escape, warnings


def _continuation(escape: str) -> re.Pattern[str]:
    token = re.escape(escape)
    return re.compile(rf"([^{token}]){token}[ \t]*$|^{token}[ \t]*$")


def _trim_continuation(line: str, continuation: re.Pattern[str]) -> tuple[str, bool]:
    if continuation.search(line):
        return continuation.sub(r"\1", line), False
    return line, True


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _node(line: str, escape: str, start: int, end: int) -> Node:
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    keyword = parts[0]
    rest, flags = _builder_flags(parts[1], escape) if len(parts) == 2 else ("", [])
    return Node(keyword, rest.strip(), flags, line, start, end)


def _builder_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading ``--name=value`` words (quotes and escapes undone) and the rest of the line."""
    flags: list[str] = []
    position = 0
    while True:
        while position < len(line) and line[position].isspace():
            position += 1
        if not line.startswith("--", position) or position + 2 > len(line):
            return line[position:], flags
        word: list[str] = []
        quote = ""
        blank_ok = False
        while position < len(line):
            character = line[position]
            if not quote and character.isspace():
                break
            position += 1
            if quote:
                if character == quote:
                    quote = ""
                    continue
            elif character in "'\"":
                quote = character
                blank_ok = True
                continue
            if character == escape:
                if position == len(line):
                    continue
                character = line[position]
                position += 1
            word.append(character)
        text = "".join(word)
        if text == "--":
            return line[position:], flags
        if blank_ok or text:
            flags.append(text)


def _can_have_heredoc(node: Node) -> bool:
    keyword = node.keyword.lower()
    rest = node.rest
    if keyword == "onbuild":
        parts = _WHITESPACE.split(rest.strip(), maxsplit=1)
        keyword = parts[0].lower()
        rest = parts[1] if len(parts) > 1 else ""
    return keyword in HEREDOC_INSTRUCTIONS and _json_array(rest) is None


def parse_heredoc(word: str) -> Heredoc | None:
    """The heredoc a word like ``<<EOF``, ``<<-"EOF"`` or ``3<<EOF`` opens, or None."""
    match = _HEREDOC.match(word)
    if match is None or not match.group(3):
        return None
    rest = match.group(3)
    try:
        words = Lexer().words(rest, {})
        raw = Lexer(raw_quotes=True).words(rest, {})
    except ShellError:
        return None
    if len(words) != 1 or len(raw) != 1:
        return None
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(words[0], expand=quotes == raw_quotes, chomp=match.group(2) == "-")


def _heredocs_of(line: str) -> list[Heredoc]:
    found = []
    for word in _split_words(line, "\\"):
        heredoc = parse_heredoc(word)
        if heredoc is not None:
            found.append(heredoc)
    return found


def _split_words(rest: str, escape: str) -> list[str]:
    """Whitespace-separated words, quotes and escapes kept (parseWords)."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    blank_ok = False
    position = 0
    in_word = False
    while position < len(rest):
        character = rest[position]
        position += 1
        if not in_word:
            if character.isspace():
                continue
            in_word = True
        if not quote:
            if character.isspace():
                if blank_ok or word:
                    words.append("".join(word))
                word, blank_ok, in_word = [], False, False
                continue
            if character in "'\"":
                quote = character
                blank_ok = True
            if character == escape:
                if position == len(rest):
                    continue
                word.append(character)
                character = rest[position]
                position += 1
            word.append(character)
            continue
        if character == quote:
            quote = ""
        if character == escape and quote != "'":
            if position == len(rest):
                continue
            word.append(character)
            character = rest[position]
            position += 1
        word.append(character)
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


def _json_array(rest: str) -> list[str] | None:
    """The exec form: a JSON array of strings; None when ``rest`` isn't a JSON array.
    DockerfileError when it is one but holds something other than strings."""
    text = rest.lstrip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise DockerfileError(
            "when using JSON array syntax, arrays must be comprised of strings only"
        )
    return value


# Instructions


class _Flags:
    """BuildKit's BFlags: the flags an instruction accepts, checked against those given."""

    def __init__(self, given: list[str]) -> None:
        self.given = given
        self.known: dict[str, str] = {}  # name -> "string" | "bool" | "strings"
        self.values: dict[str, Any] = {}

    def add(self, name: str, kind: str = "string") -> None:
        self.known[name] = kind

    def parse(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for flag in self.given:
            if not flag.startswith("--"):
                raise DockerfileError(f'Arg "{flag}" must start with "--"')
            name, equals, value = flag[2:].partition("=")
            kind = self.known.get(name)
            if kind is None:
                raise DockerfileError(f"Unknown flag: {name}")
            if name in values and kind != "strings":
                raise DockerfileError(f"Duplicate flag specified: {name}")
            if kind == "bool":
                if not equals:
                    value = "true"
                if value.lower() not in ("true", "false"):
                    raise DockerfileError(f"expecting boolean value for flag {name}, not: {value}")
                values[name] = value.lower() == "true"
            else:
                if not equals:
                    raise DockerfileError(f"Missing a value on flag: {name}")
                if kind == "strings":
                    values.setdefault(name, []).append(value)
                else:
                    values[name] = value
        return values


def _instruction(node: Node, escape: str) -> Stage | Command:
    keyword = node.keyword.lower()
    if keyword not in INSTRUCTIONS:
        raise DockerfileError(f"unknown instruction: {node.keyword}{_suggestion(node.keyword)}")
    flags = _Flags(node.flags)
    original = node.original.strip()
    if keyword == "from":
        return _from(node, flags, original)
    command = Command(keyword.upper(), original, node.start_line)
    handler = _HANDLERS[keyword]
    command.params = handler(node, flags, escape)
    return command


def _suggestion(keyword: str) -> str:
    """BuildKit's " (did you mean copy?)" for a near miss, matching the keyword's case."""
    lowered = keyword.lower()
    best, distance = "", 3
    for name in INSTRUCTIONS:
        found = _levenshtein(lowered, name)
        if found < distance:
            best, distance = name, found
    if not best:
        return ""
    if keyword == keyword.upper():
        best = best.upper()
    return f" (did you mean {best}?)"


def _levenshtein(a: str, b: str) -> int:
    if len(a) > 64:
        return len(a)
    previous = list(range(len(b) + 1))
    for i, left in enumerate(a, 1):
        current = [i]
        for j, right in enumerate(b, 1):
            substitution = previous[j - 1] + (left != right)
            current.append(min(previous[j] + 1, current[j - 1] + 1, substitution))
        previous = current
    return previous[-1]


def _from(node: Node, flags: _Flags, original: str) -> Stage:
    args = _WHITESPACE.split(node.rest) if node.rest else []
    name = ""
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise DockerfileError(
                f'invalid name for build stage: "{args[2]}", name can\'t start with a number '
                "or contain symbols"
            )
    elif len(args) != 1:
        raise DockerfileError("FROM requires either one or three arguments")
    flags.add("platform")
    values = flags.parse()
    return Stage(args[0], name, values.get("platform", ""), original, node.start_line, 0)


def _shell_dependent(node: Node, flags: _Flags, *, empty_as_none: bool = False) -> dict:
    values = flags.parse()
    exec_form = _json_array(node.rest)
    if exec_form is not None:
        args: list[str] | None = exec_form
    else:
        args = [node.rest] if node.rest else []
    if empty_as_none and not args:
        args = None
    return {
        "cmd": args,
        "shell": exec_form is None,
        "heredocs": node.heredocs,
        "flags": values,
    }


def _run(node: Node, flags: _Flags, escape: str) -> dict:
    flags.add("mount", "strings")
    flags.add("network")
    flags.add("security")
    return _shell_dependent(node, flags)


def _cmd(node: Node, flags: _Flags, escape: str) -> dict:
    return _shell_dependent(node, flags)


def _entrypoint(node: Node, flags: _Flags, escape: str) -> dict:
    return _shell_dependent(node, flags, empty_as_none=True)


def _name_values(node: Node, keyword: str, escape: str) -> list[tuple[str, str]]:
    words = _split_words(node.rest, escape)
    if not words:
        raise DockerfileError(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        parts = _WHITESPACE.split(node.rest, maxsplit=1)
        if len(parts) < 2:
            raise DockerfileError(f"{keyword} must have two arguments")
        return [(parts[0], parts[1])]
    pairs = []
    for word in words:
        if "=" not in word:
            raise DockerfileError(
                f"Syntax error - can't find = in {json.dumps(word)}. Must be of the form: "
                "name=value"
            )
        name, _, value = word.partition("=")
        pairs.append((name, value))
    return pairs


def _env(node: Node, flags: _Flags, escape: str) -> dict:
    pairs = _name_values(node, "ENV", escape)
    flags.parse()
    if any(not name for name, _ in pairs):
        raise DockerfileError("ENV names can not be blank")
    return {"pairs": pairs}


def _label(node: Node, flags: _Flags, escape: str) -> dict:
    pairs = _name_values(node, "LABEL", escape)
    flags.parse()
    if any(not name for name, _ in pairs):
        raise DockerfileError("LABEL names can not be blank")
    return {"pairs": pairs}


def _maintainer(node: Node, flags: _Flags, escape: str) -> dict:
    if not node.rest:
        raise DockerfileError("MAINTAINER requires exactly one argument")
    flags.parse()
    return {"value": node.rest}


def _list_args(node: Node) -> list[str]:
    exec_form = _json_array(node.rest)
    if exec_form is not None:
        return exec_form
    return _WHITESPACE.split(node.rest) if node.rest else []


def _sources_and_dest(node: Node, keyword: str) -> dict:
    args = _list_args(node)
    if len(args) < 2:
        raise DockerfileError(
            f"{keyword} requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    if parse_heredoc(args[-1]) is not None:
        raise DockerfileError(f"{keyword} cannot accept a heredoc as a destination")
    by_name = {heredoc.name: heredoc for heredoc in node.heredocs}
    sources, contents = [], []
    for source in args[:-1]:
        heredoc = parse_heredoc(source)
        if heredoc is not None and heredoc.name in by_name:
            found = by_name[heredoc.name]
            contents.append((found.name, found.text(), found.expand))
        else:
            sources.append(source)
    return {"sources": sources, "contents": contents, "dest": args[-1]}


def _copy(node: Node, flags: _Flags, escape: str) -> dict:
    for name in ("chown", "from", "chmod"):
        flags.add(name)
    flags.add("link", "bool")
    params = flags.parse()
    return {**_sources_and_dest(node, "COPY"), "flags": params}


def _add(node: Node, flags: _Flags, escape: str) -> dict:
    for name in ("chown", "chmod", "checksum"):
        flags.add(name)
    flags.add("link", "bool")
    flags.add("keep-git-dir", "bool")
    params = flags.parse()
    return {**_sources_and_dest(node, "ADD"), "flags": params}


def _one(node: Node, flags: _Flags, keyword: str) -> str:
    flags.parse()
    args = _WHITESPACE.split(node.rest) if node.rest else []
    if keyword in ("USER", "STOPSIGNAL", "WORKDIR"):
        if keyword == "WORKDIR":
            args = [node.rest] if node.rest else []
        if len(args) != 1:
            raise DockerfileError(f"{keyword} requires exactly one argument")
    return args[0]


def _user(node: Node, flags: _Flags, escape: str) -> dict:
    return {"value": _one(node, flags, "USER")}


def _workdir(node: Node, flags: _Flags, escape: str) -> dict:
    return {"value": _one(node, flags, "WORKDIR")}


def _stopsignal(node: Node, flags: _Flags, escape: str) -> dict:
    return {"value": _one(node, flags, "STOPSIGNAL")}


def _expose(node: Node, flags: _Flags, escape: str) -> dict:
    ports = _WHITESPACE.split(node.rest) if node.rest else []
    if not ports:
        raise DockerfileError("EXPOSE requires at least one argument")
    flags.parse()
    return {"ports": sorted(ports)}


def _volume(node: Node, flags: _Flags, escape: str) -> dict:
    volumes = _list_args(node)
    if not volumes:
        raise DockerfileError("VOLUME requires at least one argument")
    flags.parse()
    cleaned = []
    for volume in volumes:
        volume = volume.strip()
        if not volume:
            raise DockerfileError("VOLUME specified can not be an empty string")
        cleaned.append(volume)
    return {"volumes": cleaned}


def _arg(node: Node, flags: _Flags, escape: str) -> dict:
    words = _split_words(node.rest, escape)
    if not words:
        raise DockerfileError("ARG requires at least one argument")
    flags.parse()
    pairs: list[tuple[str, str | None]] = []
    for word in words:
        if "=" in word:
            name, _, value = word.partition("=")
            if not name:
                raise DockerfileError("ARG names can not be blank")
            pairs.append((name, value))
        else:
            pairs.append((word, None))
    return {"pairs": pairs}


def _shell(node: Node, flags: _Flags, escape: str) -> dict:
    flags.parse()
    exec_form = _json_array(node.rest)
    if exec_form is None:
        if not node.rest:
            raise DockerfileError("SHELL requires at least one argument")
        raise DockerfileError(
            f"SHELL requires the arguments to be in JSON form: {node.original.strip()}"
        )
    if not exec_form:
        raise DockerfileError("SHELL requires at least one argument")
    return {"shell": exec_form}


def _onbuild(node: Node, flags: _Flags, escape: str) -> dict:
    if not node.rest:
        raise DockerfileError("ONBUILD requires at least one argument")
    flags.parse()
    trigger = _WHITESPACE.split(node.rest.strip(), maxsplit=1)[0].upper()
    if trigger == "ONBUILD":
        raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise DockerfileError(f"{trigger} isn't allowed as an ONBUILD trigger")
    if trigger.lower() not in INSTRUCTIONS:
        raise DockerfileError(f"unknown instruction: {trigger}")
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
    for heredoc in node.heredocs:
        expression += "\n" + heredoc.content + heredoc.name
    return {"expression": expression}


def parse_go_duration(text: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``1.5h``) in nanoseconds."""
    units = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9}
    units["h"] = 3600 * 10**9
    body = text.lstrip("+-")
    if body == "0":
        return 0
    total = 0.0
    position = 0
    part = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)")
    while body and position < len(body):
        match = part.match(body, position)
        if match is None:
            break
        total += float(match.group(1)) * units[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        raise DockerfileError(f'time: invalid duration "{text}"')
    return int(-total if text.startswith("-") else total)


def _healthcheck(node: Node, flags: _Flags, escape: str) -> dict:
    if not node.rest:
        raise DockerfileError("HEALTHCHECK requires at least one argument")
    parts = re.split(r"\s+", node.rest, maxsplit=1)
    kind = parts[0].upper()
    rest = parts[1] if len(parts) > 1 else ""
    if kind == "NONE":
        if rest:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments")
        flags.parse()
        return {"healthcheck": {"Test": ["NONE"]}}
    for name in (*_DURATION_FLAGS, "retries"):
        flags.add(name)
    values = flags.parse()
    if kind != "CMD":
        raise DockerfileError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    exec_form = _json_array(rest)
    command = exec_form if exec_form is not None else ([rest] if rest else [])
    if not command:
        raise DockerfileError("Missing command after HEALTHCHECK CMD")
    check: dict[str, Any] = {"Test": ["CMD" if exec_form is not None else "CMD-SHELL", *command]}
    for name, key in zip(
        _DURATION_FLAGS, ("Interval", "Timeout", "StartPeriod", "StartInterval"), strict=True
    ):
        value = values.get(name, "")
        duration = parse_go_duration(value) if value else 0
        if 0 < duration < 10**6 or duration < 0:
            raise DockerfileError(f'Interval "{name}" cannot be less than 1ms')
        if duration:
            check[key] = duration
    if values.get("retries"):
        text = values["retries"]
        if not re.fullmatch(r"[+-]?\d+", text):
            raise DockerfileError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
        retries = int(text)
        if retries < 0:
            raise DockerfileError(f"--retries cannot be negative ({retries})")
        if retries:
            check["Retries"] = retries
    return {"healthcheck": check}


_HANDLERS = {
    "add": _add,
    "arg": _arg,
    "cmd": _cmd,
    "copy": _copy,
    "entrypoint": _entrypoint,
    "env": _env,
    "expose": _expose,
    "healthcheck": _healthcheck,
    "label": _label,
    "maintainer": _maintainer,
    "onbuild": _onbuild,
    "run": _run,
    "shell": _shell,
    "stopsignal": _stopsignal,
    "user": _user,
    "volume": _volume,
    "workdir": _workdir,
}
