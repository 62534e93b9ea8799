"""Pulling images the way Docker's CLI does: image references parsed and named as Docker
names them, the registry credentials of the config directory sent as ``X-Registry-Auth``, and
the engine's JSON progress messages rendered as Docker renders them (lines updated in place
with a progress bar on a terminal, one line per status change otherwise)."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from simulator.cli.client import DaemonError
from simulator.cli.flags import Context
from simulator.cli.formatting import DEFAULT_DOMAIN, familiar_name, parse_normalized_reference
from simulator.cli.template import GoStruct, go_json
from simulator.cli.units import human_size

OFFICIAL_INDEX = "https://index.docker.io/v1/"  # the config.json key of Docker Hub's credentials
PROGRESS_BAR_MIN_WIDTH = 111  # the bar shows on terminals wider than 110 columns
TIME_LEFT_MIN_WIDTH = 51
BAR_CELLS = 50
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_NAME_TOTAL_LENGTH_MAX = 255


class ProgressError(DaemonError):
    """An error the engine reported inside a progress stream, after its 200. Docker's CLI
    prints its message alone, without "Error response from daemon: "."""


class ReferenceError(ValueError):
    """An image reference Docker would refuse; ``str()`` is Docker's message."""


@dataclass(frozen=True)
class ImageReference:
    """A normalised image reference: ``docker.io/library/redis`` with its tag and digest."""

    name: str
    tag: str | None = None
    digest: str | None = None

    @property
    def domain(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def path(self) -> str:
        """The repository path within its registry: ``library/redis``."""
        return self.name.split("/", 1)[1]

    @property
    def familiar_name(self) -> str:
        return familiar_name(self.name)

    @property
    def name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def with_default_tag(self) -> ImageReference:
        """reference.TagNameOnly: ``latest`` for a reference with neither tag nor digest."""
        return ImageReference(self.name, "latest", None) if self.name_only else self

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()

    @property
    def familiar(self) -> str:
        """FamiliarString: ``redis:latest``."""
        return self.familiar_name + self._suffix()

    @property
    def api_tag(self) -> str:
        """What the API's ``tag`` parameter carries: the digest, else the tag."""
        return self.digest or self.tag or ""


def parse_reference(text: str) -> ImageReference:
    """reference.ParseNormalizedNamed, with Docker's error messages."""
    if _HEX64.match(text):
        raise ReferenceError(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    parsed = parse_normalized_reference(text)
    if parsed is not None:
        return ImageReference(*parsed)
    slash = text.find("/")
    first = text[:slash]
    if slash < 0 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        remainder = text
        if "/" not in remainder.split(":", 1)[0]:
            remainder = "library/" + remainder
    else:
        remainder = text[slash + 1 :]
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise ReferenceError(
            f"invalid reference format: repository name ({remote}) must be lowercase"
        )
    if not text:
        raise ReferenceError("repository name must have at least one component")
    if len(text.split("@")[0].rsplit(":", 1)[0]) > _NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError("repository name must not be more than 255 characters")
    raise ReferenceError("invalid reference format")


# -- credentials --------------------------------------------------------------------------------


def config_dir(context: Context) -> str:
    """The CLI's configuration directory: --config, else $DOCKER_CONFIG, else ~/.docker."""
    return context.config_dir or os.path.join(os.path.expanduser("~"), ".docker")


def load_config(context: Context) -> dict[str, Any]:
    """The config directory's config.json, or nothing if it is missing or unreadable."""
    try:
        with open(os.path.join(config_dir(context), "config.json"), encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _hostname(address: str) -> str:
    """ConvertToHostname: ``https://host:5000/v2/`` is ``host:5000``."""
    stripped = address.removeprefix("http://").removeprefix("https://")
    return stripped.split("/", 1)[0]


def credentials(context: Context, domain: str) -> dict[str, str]:
    """The credentials config.json holds for a registry, as Docker's file store reads them:
    ``auth`` decoded into username and password, and the key as ``serveraddress``."""
    key = OFFICIAL_INDEX if domain == DEFAULT_DOMAIN else domain
    auths = load_config(context).get("auths")
    if not isinstance(auths, dict):
        return {}
    entry, address = auths.get(key), key
    if entry is None and key != OFFICIAL_INDEX:
        for candidate, value in auths.items():
            if _hostname(candidate) == key:
                entry, address = value, candidate
                break
    if not isinstance(entry, dict):
        return {}
    found = {k: v for k, v in entry.items() if isinstance(v, str)}
    encoded = found.pop("auth", "")
    if encoded:
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return {}
        found["username"], found["password"] = user, password
    found["serveraddress"] = address
    return found


def registry_auth(context: Context, domain: str) -> str:
    """The ``X-Registry-Auth`` header for a registry: its AuthConfig as JSON in URL-safe
    base64 (``e30=`` when there are no credentials)."""
    found = credentials(context, domain)
    order = ("username", "password", "auth", "email", "serveraddress", "identitytoken")
    config = GoStruct({key: found[key] for key in order if found.get(key)})
    return base64.urlsafe_b64encode(go_json(config, escape_html=True).encode()).decode()


# -- the JSON message stream --------------------------------------------------------------------


def go_duration(seconds: int) -> str:
    """Go's time.Duration.String() for whole seconds: ``0s``, ``45s``, ``1m5s``, ``2h0m3s``."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


def progress_text(detail: Mapping[str, Any], width: int, now: float | None = None) -> str:
    """JSONProgress.String(): the bar (on terminals wider than 110 columns), the counts and
    the time left, for a message's ``progressDetail``."""
    current = int(detail.get("current") or 0)
    total = int(detail.get("total") or 0)
    start = int(detail.get("start") or 0)
    units = detail.get("units") or ""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}" if not units else f"{current} {units}"
    percentage = min(int(current / total * 100) // 2, BAR_CELLS)
    bar = ""
    if width >= PROGRESS_BAR_MIN_WIDTH:
        bar = "[" + "=" * percentage + ">" + " " * max(BAR_CELLS - percentage, 0) + "] "
    numbers = ""
    if detail.get("hidecounts"):
        pass
    elif not units:
        numbers = f"{human_size(current):>8}/{human_size(total)}"
        if current > total:
            numbers = f"{human_size(current):>8}"
    else:
        numbers = f"{current}/{total} {units}"
        if current > total:
            numbers = f"{current} {units}"
    time_left = ""
    if width >= TIME_LEFT_MIN_WIDTH and current > 0 and start > 0 and percentage < BAR_CELLS:
        elapsed_ns = int(((time.time() if now is None else now) - start) * 1e9)
        per_entry = elapsed_ns // current
        left_ns = (total - current) * per_entry
        time_left = " " + go_duration(int((left_ns + 500_000_000) // 1_000_000_000))
    return bar + numbers + time_left


def rfc3339_nano_fixed(nanos: int) -> str:
    """Go's time.Unix(0, nanos).Format(RFC3339NanoFixed) in the local zone:
    ``2026-11-28T05:11:48.549996471Z`` (or ``…+01:00``)."""
    moment = time.localtime(nanos // 1_000_000_000)
    offset = moment.tm_gmtoff
    zone = "Z"
    if offset:
        sign = "-" if offset < 0 else "+"
        zone = f"{sign}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", moment)
    return f"{stamp}.{nanos % 1_000_000_000:09d}{zone}"


def _timestamp(message: Mapping[str, Any]) -> str:
    """The time some messages start with."""
    nanos = int(message.get("timeNano") or 0) or int(message.get("time") or 0) * 1_000_000_000
    return rfc3339_nano_fixed(nanos) + " " if nanos else ""


def _raise_error(message: Mapping[str, Any]) -> None:
    """An error message (one with ``errorDetail``) as ProgressError."""
    error = message.get("errorDetail")
    if isinstance(error, dict):
        raise ProgressError(int(error.get("code") or 500), str(error.get("message") or ""))


def _display_one(message: Mapping[str, Any], out: TextIO, terminal: bool, width: int) -> None:
    """JSONMessage.Display: one message, or ProgressError for an error message."""
    _raise_error(message)
    detail = message.get("progressDetail")
    has_detail = isinstance(detail, dict)
    stream = message.get("stream") or ""
    status = message.get("status") or ""
    endl = ""
    if terminal and not stream and has_detail:
        endl = "\r"
        out.write("\x1b[2K\r")
    elif has_detail and progress_text(detail, width):
        return  # no progress bars off a terminal
    text = _timestamp(message)
    if message.get("id"):
        text += f"{message['id']}: "
    if message.get("from"):
        text += f"(from {message['from']}) "
    if has_detail and terminal:
        text += f"{status} {progress_text(detail, width)}{endl}"
    elif message.get("progress"):
        text += f"{status} {message['progress']}{endl}"
    elif stream:
        text += f"{stream}{endl}"
    else:
        text += f"{status}{endl}\n"
    out.write(text)


def display_json_messages(
    messages: Iterable[Mapping[str, Any]],
    out: TextIO,
    *,
    terminal: bool = False,
    width: int = 200,
) -> None:
    """DisplayJSONMessagesStream: render the messages as they come. On a terminal, each
    layer keeps one line, rewritten in place by moving the cursor up to it and back down.
    Raises ProgressError for an error message."""
    lines: dict[str, int] = {}
    for message in messages:
        if not isinstance(message, dict) or message.get("aux") is not None:
            continue
        identifier = message.get("id") or ""
        moved = 0
        progress = isinstance(message.get("progressDetail"), dict) or message.get("progress")
        if identifier and progress:
            line = lines.get(identifier)
            if line is None:
                line = lines[identifier] = len(lines)
                if terminal:
                    out.write("\n")
            moved = len(lines) - line
            if terminal and moved:
                out.write(f"\x1b[{moved}A")
        else:
            lines = {}  # other output ends the block of lines being updated
        try:
            _display_one(message, out, terminal, width)
        finally:
            if identifier and terminal and moved:
                out.write(f"\x1b[{moved}B")
            out.flush()


def stream_is_terminal(out: TextIO) -> tuple[bool, int]:
    """Whether ``out`` is a terminal, and its width in columns (200 when that is unknown)."""
    try:
        if not out.isatty():
            return False, 200
        return True, os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return False, 200


def display_stream(messages: Iterable[Mapping[str, Any]], out: TextIO | None) -> None:
    """Render a progress stream on ``out`` as a terminal or not, as ``out`` is; ``None``
    reads the stream to its end without showing it (``--quiet``), errors still raised."""
    if out is None:
        for message in messages:
            if isinstance(message, dict):
                _raise_error(message)
        return
    terminal, width = stream_is_terminal(out)
    display_json_messages(messages, out, terminal=terminal, width=width)


# -- pulling ------------------------------------------------------------------------------------


def pull_image(
    context: Context,
    reference: str,
    *,
    platform: str | None = None,
    quiet: bool = False,
    all_tags: bool = False,
    out: TextIO | None = None,
) -> None:
    """``POST /images/create`` for ``reference`` (``latest`` when it names no tag, every tag
    with ``all_tags``), with the config directory's credentials, showing the progress on
    ``out`` (stdout by default; ``docker run`` shows it on stderr). Raises ReferenceError,
    DaemonError, or ProgressError for a failure reported during the pull."""
    image = parse_reference(reference)
    if not all_tags:
        image = image.with_default_tag()
    params: dict[str, str] = {"fromImage": image.familiar_name}
    if not all_tags:
        params["tag"] = image.api_tag
    if platform:
        params["platform"] = platform.lower()
    headers = {"X-Registry-Auth": registry_auth(context, image.domain)}
    answer = context.client.request("POST", "/images/create", params, headers=headers)
    display_stream(answer.json_lines(), None if quiet else (out or context.stdout))
