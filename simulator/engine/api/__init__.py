"""The Engine API's endpoints, one module per topic, and what the topics share: Docker's
``filters`` argument, X-Registry-Auth, timestamps, and JSON-message progress streams.

A new topic (containers, volumes, networks ...) is a module here with ``add_routes(router)``
(see simulator/engine/server.py for how a handler looks), added to ``add_routes`` below.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from simulator.engine.server import (
    BadRequest,
    Request,
    Router,
    StreamResponse,
    first_then_rest,
    iterate_blocking,
    message_of,
)

if TYPE_CHECKING:
    from simulator.engine.daemon import Engine

_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_UNIX_TIMESTAMP = re.compile(r"-?\d+(?:\.\d{0,9})?")


def add_routes(router: Router[Engine]) -> None:
    """Every topic's routes, in order."""
    from simulator.engine.api import archive, containers, exec, images, system, volumes

    system.add_routes(router)
    images.add_routes(router)
    containers.add_routes(router)
    archive.add_routes(router)
    exec.add_routes(router)
    volumes.add_routes(router)
    from simulator.engine.api import networks

    networks.add_routes(router)
    from simulator.engine.api import build

    build.add_routes(router)


class Filters:
    """Docker's ``filters`` query argument: ``{"dangling": {"true": true}}``, or the older
    ``{"dangling": ["true"]}``. Methods as moby's filters.Args names them."""

    def __init__(self, fields: Mapping[str, Collection[str]] | None = None) -> None:
        self.fields: dict[str, set[str]] = {
            key: set(values) for key, values in (fields or {}).items()
        }

    @classmethod
    def parse(cls, text: str) -> Filters:
        if not text:
            return cls()
        try:
            value = json.loads(text)
        except ValueError:
            raise BadRequest("invalid filter") from None
        if not isinstance(value, dict):
            raise BadRequest("invalid filter")
        fields: dict[str, set[str]] = {}
        for key, values in value.items():
            if isinstance(values, dict) and all(isinstance(v, bool) for v in values.values()):
                fields[key] = set(values)
            elif isinstance(values, list) and all(isinstance(v, str) for v in values):
                fields[key] = set(values)
            else:
                raise BadRequest("invalid filter")
        return cls(fields)

    @classmethod
    def of(cls, request: Request) -> Filters:
        return cls.parse(request.arg("filters"))

    def validate(self, accepted: Collection[str]) -> None:
        for key in self.fields:
            if key not in accepted:
                raise BadRequest(f"invalid filter '{key}'")

    def contains(self, key: str) -> bool:
        return key in self.fields

    def get(self, key: str) -> list[str]:
        return sorted(self.fields.get(key, ()))

    def exact_match(self, key: str, source: str) -> bool:
        values = self.fields.get(key)
        return not values or source in values

    def fuzzy_match(self, key: str, source: str) -> bool:
        values = self.fields.get(key)
        if not values or source in values:
            return True
        return any(source.startswith(prefix) for prefix in values)

    def match_kv_list(self, key: str, sources: Mapping[str, str]) -> bool:
        """``label=a`` or ``label=a=b``: every one among ``sources`` (true if none given)."""
        values = self.fields.get(key)
        if not values:
            return True
        if not sources:
            return False
        for value in values:
            name, has_value, wanted = value.partition("=")
            if name not in sources or (has_value and sources[name] != wanted):
                return False
        return True

    def bool_or_default(self, key: str, default: bool) -> bool:
        values = self.fields.get(key)
        if values is None:
            return default
        is_false = "0" in values or "false" in values
        is_true = "1" in values or "true" in values
        if not values or is_false == is_true:
            raise BadRequest(_invalid_filter(key, sorted(values)))
        return is_true


def _invalid_filter(key: str, values: list[str]) -> str:
    shown = f"{key}={','.join(values)}" if values else key
    return f"invalid filter '{shown}'"


def registry_auth(request: Request, *, strict: bool = False) -> dict[str, Any] | None:
    """The X-Registry-Auth header decoded (base64url JSON), or None when absent. A header
    that doesn't decode is ignored, as moby ignores it for a pull, unless ``strict``."""
    encoded = request.headers.get("x-registry-auth").strip()
    if not encoded:
        return None
    try:
        padded = encoded + "=" * (-len(encoded) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
    except (ValueError, binascii.Error, UnicodeError) as error:
        if strict:
            raise BadRequest(f"invalid X-Registry-Auth header: {error}") from None
        return None
    return value


def parse_unix_time(value: str) -> int | None:
    """A ``seconds[.nanoseconds]`` timestamp (``since``, ``until``) as nanoseconds; None when
    empty."""
    if not value:
        return None
    if not _UNIX_TIMESTAMP.fullmatch(value):
        raise BadRequest(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    seconds, _, fraction = value.partition(".")
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    sign = -1 if seconds.startswith("-") else 1
    return int(seconds) * 1_000_000_000 + sign * nanos


def parse_time_filter(value: str, now: float | None = None) -> float:
    """A time as Docker's filters and ``--since`` take one: Unix seconds, a Go duration
    before now (``10m``, ``1h30m``), or an RFC 3339 date or date-time. Seconds since the
    epoch."""
    now = time.time() if now is None else now
    if _UNIX_TIMESTAMP.fullmatch(value):
        return float(value)
    duration = _go_duration(value)
    if duration is not None:
        return now - duration
    text = value.replace("Z", "+00:00")
    for candidate in (text, text + "T00:00:00"):
        try:
            moment = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.astimezone()
        return moment.timestamp()
    raise BadRequest(f'failed to parse value as time or duration: "{value}"')


def _go_duration(text: str) -> float | None:
    body = text.lstrip("+-")
    if not body:
        return None
    position = 0
    total = 0.0
    for match in _GO_DURATION_PART.finditer(body):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(body):
        return None
    return -total if text.startswith("-") else total


def path_match(pattern: str, name: str) -> bool:
    """Go's path.Match: ``*`` and ``?`` stop at ``/``, ``[...]`` classes (``^`` negates)."""
    return _glob_regex(pattern).fullmatch(name) is not None


def _glob_regex(pattern: str) -> re.Pattern[str]:
    regex = ""
    index = 0
    while index < len(pattern):
        character = pattern[index]
        if character == "*":
            regex += "[^/]*"
        elif character == "?":
            regex += "[^/]"
        elif character == "\\" and index + 1 < len(pattern):
            index += 1
            regex += re.escape(pattern[index])
        elif character == "[":
            end = pattern.find("]", index + 2)
            if end < 0:
                raise BadRequest("syntax error in pattern")
            inner = pattern[index + 1 : end]
            negate = inner.startswith("^")
            inner = inner[1:] if negate else inner
            escaped = inner.replace("\\", "\\\\").replace("[", "\\[")
            regex += f"[{'^/' if negate else ''}{escaped}]"
            index = end
        else:
            regex += re.escape(character)
        index += 1
    return re.compile(regex)


# JSON-message streams (pull, push, load, import)


def json_message(message: Mapping[str, Any]) -> bytes:
    """One message of a progress stream, as moby's streamformatter ends it (``\\r\\n``)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\r\n"


def error_message(text: str) -> dict[str, Any]:
    """The message a progress stream ends with when the work fails after it started."""
    return {"errorDetail": {"message": text}, "error": text}


async def progress_stream(
    messages: Iterator[Mapping[str, Any]] | Iterator[list[Mapping[str, Any]]],
    *,
    translate: Callable[[BaseException], BaseException] | None = None,
    batched: bool = False,
) -> StreamResponse:
    """Stream the messages of blocking work (run in a thread) as Docker does: the first is
    awaited before the headers go out, so a failure before anything happened is an HTTP
    error (``translate`` maps the exception first); a failure later is sent in the stream
    as ``{"errorDetail": ..., "error": ...}``. ``batched``: each item is a list of messages
    (see progress.relay_batches), written together."""
    try:
        items = await first_then_rest(iterate_blocking(iter(messages)))
    except Exception as error:
        if translate is not None:
            raise translate(error) from None
        raise
    return StreamResponse(_encoded(items, batched))


async def _encoded(items: AsyncIterator[Any], batched: bool) -> AsyncIterator[bytes]:
    try:
        async for item in items:
            if batched:
                yield b"".join(json_message(message) for message in item)
            else:
                yield json_message(item)
    except Exception as error:
        yield json_message(error_message(message_of(error)))
    finally:
        await items.aclose()  # type: ignore[attr-defined]
