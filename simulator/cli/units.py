"""Human-readable sizes and durations, as docker/go-units prints them, and the time strings the
docker CLI prints (Go's time.Time.String and RFC 3339).

Which command uses which size function (docker CLI 28.x):
  human_size_with_precision(n, 3), decimal, "7.34MB": `docker images` SIZE, `docker ps -s` SIZE,
      `docker history` SIZE, `docker stats` NET I/O and BLOCK I/O.
  human_size(n) (4 significant digits), decimal, "7.342MB": `docker system df` SIZE and
      RECLAIMABLE, `{{.VirtualSize}}`, `{{.SharedSize}}`, `{{.UniqueSize}}` of images, volume
      `{{.Size}}`, pull and push progress bars.
  bytes_size(n), binary, "1.5MiB": `docker stats` MEM USAGE / LIMIT, `docker info` Total Memory.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 hours", "2 years"."""
    # Go converts to whole nanoseconds first; truncation towards zero follows from int().
    whole_seconds = int(seconds)
    if whole_seconds < 1:
        return "Less than a second"
    if whole_seconds == 1:
        return "1 second"
    if whole_seconds < 60:
        return f"{whole_seconds} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def time_ago(timestamp: float, now: float | None = None) -> str:
    """The CLI's "5 seconds ago" for a Unix time (CREATED columns)."""
    current = time.time() if now is None else now
    return human_duration(current - timestamp) + " ago"


def _scaled(size: float, base: float, units: tuple[str, ...]) -> tuple[float, str]:
    index = 0
    while size >= base and index < len(units) - 1:
        size /= base
        index += 1
    return size, units[index]


def go_format_g(value: float, precision: int) -> str:
    """Go's fmt %.<precision>g, which agrees with C's and Python's for finite numbers."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return f"{value:.{precision}g}"


def human_size_with_precision(size: float, precision: int) -> str:
    """go-units HumanSizeWithPrecision: decimal units with a lowercase k ("4.1kB", "1.98MB")."""
    scaled, unit = _scaled(float(size), 1000.0, DECIMAL_UNITS)
    return go_format_g(scaled, precision) + unit


def human_size(size: float) -> str:
    """go-units HumanSize: decimal units, 4 significant digits ("1.982MB")."""
    return human_size_with_precision(size, 4)


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, 4 significant digits ("1.5MiB", "23.54GiB")."""
    scaled, unit = _scaled(float(size), 1024.0, BINARY_UNITS)
    return go_format_g(scaled, 4) + unit


def _local(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp).astimezone()


def _numeric_offset(moment: datetime, separator: str) -> str:
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{separator}{minutes:02d}"


def go_time_string(timestamp: int) -> str:
    """Go's time.Unix(t, 0).String() in the local zone: "2026-11-28 03:55:08 +0000 UTC"
    (the CLI's CreatedAt of containers and images)."""
    moment = _local(timestamp)
    offset = _numeric_offset(moment, "")
    zone = moment.tzname() or offset
    return f"{moment:%Y-%m-%d %H:%M:%S} {offset} {zone}"


def rfc3339(timestamp: int) -> str:
    """Go's time.RFC3339 in the local zone: "2026-11-28T03:55:07Z" or "...T04:55:07+01:00"."""
    moment = _local(timestamp)
    offset = moment.utcoffset()
    zone = "Z" if offset is not None and not offset else _numeric_offset(moment, ":")
    return f"{moment:%Y-%m-%dT%H:%M:%S}{zone}"


def parse_docker_time(value: str) -> float | None:
    """A time from the Engine API ("2026-11-28T03:55:07.123456789Z") as a Unix time; Go's zero
    time ("0001-01-01T00:00:00Z") and "" are None."""
    if not value or value.startswith("0001-01-01"):
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    main, _, rest = text.partition(".")
    fraction = "0"
    zone = ""
    if rest:
        digits = ""
        for i, ch in enumerate(rest):
            if not ch.isdigit():
                zone = rest[i:]
                break
            digits += ch
        fraction = digits or "0"
    else:
        for sign in ("+", "-"):
            index = main.rfind(sign)
            if index > 10:  # past the date's own dashes
                main, zone = main[:index], main[index:]
                break
    moment = datetime.fromisoformat(main + zone)
    return moment.timestamp() + float("0." + fraction)
