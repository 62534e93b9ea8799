"""docker import: a root filesystem tarball becomes a one-layer image. Also the Dockerfile
instructions that ``--change`` takes (docker commit takes the same ones), applied to a config."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import posixpath
import re
import signal
import tarfile
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import BinaryIO

from simulator.archive.diff import GZIP_LEVEL
from simulator.content.store import BlobWriter, ContentStore
from simulator.images.oci import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    HistoryEntry,
    ImageConfig,
    Manifest,
    RunConfig,
    canonical_json,
    rfc3339,
)
from simulator.images.transfer import (
    LoadedImage,
    StrictTarInfo,
    TransferError,
    archive_path,
    decompressed,
    outside_error,
    parse_platform,
    tar_errors,
)

DEFAULT_SHELL = ("/bin/sh", "-c")
# What docker commit and docker import accept in --change (moby's validCommitCommands).
CHANGE_INSTRUCTIONS = frozenset(
    {
        "cmd",
        "entrypoint",
        "env",
        "expose",
        "healthcheck",
        "label",
        "onbuild",
        "stopsignal",
        "user",
        "volume",
        "workdir",
    }
)

_CHUNK = 1 << 20


class InvalidChange(ValueError):
    """A --change that docker would refuse; the message is docker's."""


def import_tarball(
    stream: BinaryIO,
    content: ContentStore,
    *,
    changes: Iterable[str] = (),
    message: str = "",
    platform: str = "linux/amd64",
    source: str = "-",
    hold: Callable[[str], bool] | None = None,
) -> LoadedImage:
    """Store the tarball read from ``stream`` (plain, gzip, bzip2 or xz) as the one layer of a
    new image, as docker import does, and return the image (untagged: tagging is the image
    store's). The layer is gzip-compressed (deterministically) and its diffID is the sha256 of
    the tarball uncompressed. The config and its one history entry carry ``message``, or
    "Imported from <source>" as docker writes it. ``hold`` is called with each blob's digest
    as soon as it is stored, as load() calls it. Raises InvalidChange or TransferError; the
    changes are checked before the tarball is read, and a bad tarball leaves no blob behind."""
    run_config = apply_changes(RunConfig(), changes)
    image_platform = parse_platform(platform)
    comment = message or f"Imported from {source}"
    writer = content.writer()
    try:
        tar_hash = hashlib.sha256()
        with tar_errors():
            _compress_checked_tar(stream, writer, tar_hash)
        layer_info = writer.commit(writer.digest)
    finally:
        writer.abort()  # after a commit, this does nothing
    _hold(hold, layer_info.digest)
    created = rfc3339()
    config = ImageConfig(
        architecture=image_platform.architecture,
        os=image_platform.os,
        variant=image_platform.variant,
        created=created,
        config=run_config,
        diff_ids=["sha256:" + tar_hash.hexdigest()],
        history=[HistoryEntry(created=created, comment=comment)],
    )
    config_dict = config.to_dict()
    config_dict["comment"] = comment  # docker writes the message at the top level too
    config_bytes = canonical_json(config_dict)
    manifest = Manifest(
        config=Descriptor.for_bytes(OCI_CONFIG, config_bytes),
        layers=(Descriptor(OCI_LAYER_GZIP, layer_info.digest, layer_info.size),),
        media_type=OCI_MANIFEST,
    )
    manifest_bytes = manifest.to_bytes()
    for blob in (config_bytes, manifest_bytes):
        _hold(hold, content.put(blob).digest)
    descriptor = Descriptor.for_bytes(OCI_MANIFEST, manifest_bytes, platform=image_platform)
    return LoadedImage(descriptor, manifest, config_bytes)


def _hold(hold: Callable[[str], bool] | None, digest: str) -> None:
    if hold is not None and not hold(digest):
        raise TransferError(f"content digest {digest}: not found")


class _TeeReader:
    """Reads the uncompressed tarball for tarfile, hashing it and compressing it on the way."""

    def __init__(self, source: BinaryIO, tar_hash: hashlib._Hash, sink: gzip.GzipFile) -> None:
        self._source = source
        self._hash = tar_hash
        self._sink = sink

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._hash.update(data)
        self._sink.write(data)
        return data

    def drain(self) -> None:
        """Read past the end-of-archive blocks: whatever follows counts in the diffID."""
        while self.read(_CHUNK):
            pass


def _compress_checked_tar(stream: BinaryIO, writer: BlobWriter, tar_hash: hashlib._Hash) -> None:
    compressor = gzip.GzipFile(fileobj=writer, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
    tee = _TeeReader(decompressed(stream), tar_hash, compressor)
    with tarfile.open(fileobj=tee, mode="r|", tarinfo=StrictTarInfo) as tar:
        while (member := tar.next()) is not None:
            tar.members.clear()
            # Absolute names are read from the root, as docker reads them; ".." above it isn't.
            if archive_path(member.name.lstrip("/")) is None:
                raise outside_error(member.name)
            if member.islnk() and archive_path(member.linkname.lstrip("/")) is None:
                raise outside_error(f"{member.name} -> {member.linkname}")
    tee.drain()
    compressor.close()


# --change: Dockerfile instructions applied to a run config


def apply_changes(config: RunConfig, changes: Iterable[str]) -> RunConfig:
    """``config`` with ``changes`` applied (Dockerfile syntax, one instruction per change) as
    docker commit and docker import apply them; ``config`` itself is left alone. Every
    instruction is checked to be one of CHANGE_INSTRUCTIONS before any is applied."""
    instructions = []
    for line in _instruction_lines("\n".join(changes)):
        keyword, _, rest = _split_first_word(line)
        if keyword.lower() not in CHANGE_INSTRUCTIONS:
            raise InvalidChange(f"{keyword.lower()} is not a valid change command")
        instructions.append((keyword.lower(), rest.strip()))
    result = copy.deepcopy(config)
    cmd_set = False
    for keyword, rest in instructions:
        if keyword == "cmd":
            result.cmd = _command_line(rest)
            cmd_set = True
        elif keyword == "entrypoint":
            result.entrypoint = _command_line(rest)
            if not cmd_set:
                result.cmd = None  # as docker: ENTRYPOINT drops a CMD these changes didn't set
        else:
            _APPLY[keyword](result, rest)
    return result


def _instruction_lines(text: str) -> list[str]:
    """Dockerfile lines: blank lines and comments dropped, lines ending in ``\\`` joined."""
    lines, pending = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1]
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending.strip():
        lines.append(pending.strip())
    return lines


def _split_first_word(text: str) -> tuple[str, str, str]:
    """The first word, the whitespace after it, and the rest (without leading whitespace)."""
    match = re.match(r"(\S*)(\s*)(.*)", text.strip(), re.DOTALL)
    assert match is not None  # the pattern matches any text
    return match.group(1), match.group(2), match.group(3)


def _json_array(rest: str) -> list[str] | None:
    """The exec form: a JSON array of strings; None when ``rest`` is anything else."""
    if not rest.startswith("["):
        return None
    try:
        parsed = json.loads(rest)
    except ValueError:
        return None
    if isinstance(parsed, list) and all(isinstance(arg, str) for arg in parsed):
        return parsed
    return None


def _command_line(rest: str) -> list[str]:
    """Exec form (a JSON array of strings) as it is; shell form run by ``/bin/sh -c``."""
    exec_form = _json_array(rest)
    return exec_form if exec_form is not None else [*DEFAULT_SHELL, rest]


def _split_words(rest: str) -> list[str]:
    """Split at whitespace outside quotes, keeping quotes and escapes in the words (they are
    undone later, with variables, by _expand_word), as the Dockerfile parser does."""
    words: list[str] = []
    word, quote, in_word, position = "", "", False, 0
    while position < len(rest):
        char = rest[position]
        if not quote and char.isspace():
            if in_word:
                words.append(word)
            word, in_word = "", False
        elif char == "\\" and quote != "'":
            word += rest[position : position + 2]
            in_word = True
            position += 1
        else:
            if char in "'\"" and (not quote or char == quote):
                quote = "" if quote else char
            word += char
            in_word = True
        position += 1
    if in_word:
        words.append(word)
    return words


def _expand_word(word: str, env: dict[str, str]) -> str:
    """The word as the Dockerfile shell lexer reads it: quotes removed, escapes undone, and
    ``$NAME``, ``${NAME}``, ``${NAME:-default}``, ``${NAME:+alternative}`` replaced from env."""
    result, position = [], 0
    while position < len(word):
        char = word[position]
        if char == "'":
            end = word.find("'", position + 1)
            if end < 0:
                raise InvalidChange(
                    "unexpected end of statement while looking for matching single-quote"
                )
            result.append(word[position + 1 : end])
            position = end + 1
        elif char == '"':
            position += 1
            while True:
                if position >= len(word):
                    raise InvalidChange(
                        "unexpected end of statement while looking for matching double-quote"
                    )
                char = word[position]
                if char == '"':
                    position += 1
                    break
                if char == "\\" and word[position + 1 : position + 2] in ('"', "$", "\\"):
                    result.append(word[position + 1])
                    position += 2
                elif char == "$":
                    text, position = _expand_variable(word, position, env)
                    result.append(text)
                else:
                    result.append(char)
                    position += 1
        elif char == "\\":
            result.append(word[position + 1 : position + 2])
            position += 2
        elif char == "$":
            text, position = _expand_variable(word, position, env)
            result.append(text)
        else:
            result.append(char)
            position += 1
    return "".join(result)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}")


def _expand_variable(word: str, position: int, env: dict[str, str]) -> tuple[str, int]:
    """Expand the ``$`` at ``position``; return the text and the position after it."""
    braced = _BRACED.match(word, position + 1)
    if braced is not None:
        name, operator, operand = braced.groups()
        value = env.get(name)
        if operator in (":-", "-"):
            missing = value is None or (operator == ":-" and value == "")
            text = _expand_word(operand, env) if missing else value or ""
        elif operator in (":+", "+"):
            present = value is not None and (operator == "+" or value != "")
            text = _expand_word(operand, env) if present else ""
        else:
            text = value or ""
        return text, braced.end()
    if word.startswith("${", position):
        raise InvalidChange(f"failed to process \"{word}\": missing '}}' or bad substitution")
    named = _NAME.match(word, position + 1)
    if named is None:
        return "$", position + 1
    return env.get(named.group(), ""), named.end()


def _environment(config: RunConfig) -> dict[str, str]:
    return dict(entry.partition("=")[::2] for entry in config.env)


def _name_values(rest: str, keyword: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """``NAME=value ...``, or the old ``NAME value with spaces``, as ENV and LABEL take them."""
    words = _split_words(rest)
    if not words:
        raise InvalidChange(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        name, _, value = _split_first_word(rest)
        if not value:
            raise InvalidChange(f"{keyword} must have two arguments")
        pairs = [(name, value)]
    else:
        pairs = []
        for word in words:
            if "=" not in word:
                raise InvalidChange(
                    f"Syntax error - can't find = in {json.dumps(word)}. "
                    "Must be of the form: name=value"
                )
            name, _, value = word.partition("=")
            pairs.append((name, value))
    # Every pair is expanded with the environment from before this instruction, as docker does.
    return [(_expand_word(name, env), _expand_word(value, env)) for name, value in pairs]


def _one_argument(rest: str, keyword: str, env: dict[str, str]) -> str:
    if not rest:
        raise InvalidChange(f"{keyword} requires exactly one argument")
    return _expand_word(rest, env)


def _apply_env(config: RunConfig, rest: str) -> None:
    for name, value in _name_values(rest, "ENV", _environment(config)):
        if not name:
            raise InvalidChange("ENV names can not be blank")
        entry = f"{name}={value}"
        for index, existing in enumerate(config.env):
            if existing.partition("=")[0] == name:
                config.env[index] = entry
                break
        else:
            config.env.append(entry)


def _apply_label(config: RunConfig, rest: str) -> None:
    for name, value in _name_values(rest, "LABEL", _environment(config)):
        if not name:
            raise InvalidChange("LABEL names can not be blank")
        config.labels[name] = value


_PROTOCOLS = ("tcp", "udp", "sctp")


def _ports(spec: str) -> list[str]:
    """An EXPOSE argument (``80``, ``53/udp``, ``8000-8002``) as ``port/protocol`` keys."""
    port_range, _, protocol = spec.rpartition(":")[2].partition("/")
    protocol = protocol or "tcp"
    if protocol.lower() not in _PROTOCOLS:
        raise InvalidChange(f"invalid proto: {protocol}")
    start, _, end = port_range.partition("-")
    if not start.isdigit() or (end and not end.isdigit()):
        raise InvalidChange(f"invalid containerPort: {port_range}")
    first, last = int(start), int(end or start)
    if first > 65535 or last > 65535:
        raise InvalidChange(f"invalid containerPort: {port_range}")
    if last < first:
        raise InvalidChange(f"invalid range specified for container port: {port_range}")
    return [f"{port}/{protocol.lower()}" for port in range(first, last + 1)]


def _apply_expose(config: RunConfig, rest: str) -> None:
    env = _environment(config)
    words = [_expand_word(word, env) for word in _split_words(rest)]
    if not words:
        raise InvalidChange("EXPOSE requires at least one argument")
    for word in words:
        for port in _ports(word):
            if port not in config.exposed_ports:
                config.exposed_ports.append(port)


def _apply_volume(config: RunConfig, rest: str) -> None:
    env = _environment(config)
    volumes = _json_array(rest)
    if volumes is None:
        volumes = [_expand_word(word, env) for word in _split_words(rest)]
    if not volumes:
        raise InvalidChange("VOLUME requires at least one argument")
    for volume in volumes:
        volume = volume.strip()
        if not volume:
            raise InvalidChange("VOLUME specified can not be an empty string")
        if volume not in config.volumes:
            config.volumes.append(volume)


def _apply_user(config: RunConfig, rest: str) -> None:
    config.user = _one_argument(rest, "USER", _environment(config))


def _apply_workdir(config: RunConfig, rest: str) -> None:
    requested = _one_argument(rest, "WORKDIR", _environment(config))
    joined = posixpath.join("/", config.working_dir, requested)
    config.working_dir = "/" + posixpath.normpath(joined).lstrip("/")


def _apply_stopsignal(config: RunConfig, rest: str) -> None:
    value = _one_argument(rest, "STOPSIGNAL", _environment(config))
    name = value.upper().removeprefix("SIG")
    valid = (
        (value.isdigit() and int(value) != 0)
        or f"SIG{name}" in signal.Signals.__members__
        or re.fullmatch(r"RTMIN(\+\d+)?|RTMAX(-\d+)?", name) is not None
    )
    if not valid:
        raise InvalidChange(f"Invalid signal: {value}")
    config.stop_signal = value


def _apply_onbuild(config: RunConfig, rest: str) -> None:
    trigger = rest.split(None, 1)[0].upper() if rest else ""
    if not trigger:
        raise InvalidChange("ONBUILD requires at least one argument")
    if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
        raise InvalidChange(f"{trigger} isn't allowed as an ONBUILD trigger")
    config.on_build.append(rest)


_HEALTHCHECK_DURATIONS = {
    "interval": "Interval",
    "timeout": "Timeout",
    "start-period": "StartPeriod",
    "start-interval": "StartInterval",
}
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_MINIMUM_DURATION = 1_000_000  # 1ms, docker's minimum for healthcheck durations


def _parse_duration(text: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``1.5h``) in nanoseconds."""
    body = text.lstrip("+-")
    if body == "0":
        return 0
    total, position = Decimal(0), 0
    while body and position < len(body):
        part = _DURATION_PART.match(body, position)
        if part is None:
            break
        try:
            total += Decimal(part.group(1)) * _DURATION_UNITS[part.group(2)]
        except InvalidOperation:
            break
        position = part.end()
    if not body or position != len(body):
        raise InvalidChange(f'time: invalid duration "{text}"')
    return int(-total if text.startswith("-") else total)


def _apply_healthcheck(config: RunConfig, rest: str) -> None:
    flags: dict[str, str] = {}
    remainder = rest
    while remainder.startswith("--"):
        flag, _, remainder = _split_first_word(remainder)
        name, equals, value = flag[2:].partition("=")
        if name not in _HEALTHCHECK_DURATIONS and name != "retries":
            raise InvalidChange(f"Unknown flag: {name}")
        if not equals:
            raise InvalidChange(f"Missing a value on flag: {name}")
        flags[name] = value
    kind, _, command = _split_first_word(remainder)
    kind = kind.upper()
    if not kind:
        raise InvalidChange("HEALTHCHECK requires at least one argument")
    if kind == "NONE":
        if command or flags:
            raise InvalidChange("HEALTHCHECK NONE takes no arguments")
        config.healthcheck = {"Test": ["NONE"]}
        return
    if kind != "CMD":
        raise InvalidChange(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    if not command:
        raise InvalidChange("Missing command after HEALTHCHECK CMD")
    exec_form = _json_array(command)
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", command]
    healthcheck: dict[str, object] = {"Test": test}
    for flag, field_name in _HEALTHCHECK_DURATIONS.items():
        duration = _parse_duration(flags[flag]) if flags.get(flag) else 0
        if 0 < duration < _MINIMUM_DURATION or duration < 0:
            raise InvalidChange(f'Interval "{flag}" cannot be less than 1ms')
        if duration:
            healthcheck[field_name] = duration
    if flags.get("retries"):
        try:
            retries = int(flags["retries"])
        except ValueError:
            raise InvalidChange(
                f'strconv.ParseInt: parsing "{flags["retries"]}": invalid syntax'
            ) from None
        if retries < 0:
            raise InvalidChange(f"--retries cannot be negative ({retries})")
        if retries:
            healthcheck["Retries"] = retries
    config.healthcheck = healthcheck


_APPLY: dict[str, Callable[[RunConfig, str], None]] = {
    "env": _apply_env,
    "label": _apply_label,
    "expose": _apply_expose,
    "volume": _apply_volume,
    "user": _apply_user,
    "workdir": _apply_workdir,
    "stopsignal": _apply_stopsignal,
    "onbuild": _apply_onbuild,
    "healthcheck": _apply_healthcheck,
}
