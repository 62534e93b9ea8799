"""Docker's JSON progress messages, as the Engine API streams them for a pull or a push:
status lines, per-layer actions, and the progress bar with go-units' human sizes."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

BAR_WIDTH = 50  # the daemon knows no terminal width, so Docker draws its widest bar
SHORT_ID_LENGTH = 12
UPDATE_INTERVAL = 0.1  # seconds between two progress updates of one transfer, as moby's
_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")

# How work running in a thread hands a message to the stream.
Post = Callable[[dict[str, Any]], None]


def short_id(digest: str) -> str:
    """The 12 hex digits a layer is shown by: ``sha256:0123456789abcdef...`` is
    ``0123456789ab``."""
    return digest.partition(":")[2][:SHORT_ID_LENGTH] if ":" in digest else digest[:12]


def human_size(size: float) -> str:
    """A size as go-units' HumanSize writes it: decimal units, four significant digits
    (``32.77kB``, ``1.081MB``, ``512B``)."""
    unit = 0
    while size >= 1000 and unit < len(_DECIMAL_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.4g}{_DECIMAL_UNITS[unit]}"


def progress_bar(current: int, total: int) -> str:
    """The ``progress`` string of a JSON message: ``[==>   ...]  1.081MB/29.12MB``."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(int(current / total * 100) // 2, BAR_WIDTH)
    bar = "[" + "=" * filled + ">" + " " * (BAR_WIDTH - filled) + "] "
    if current > total:
        return bar + f"{human_size(current):>8}"
    return bar + f"{human_size(current):>8}/{human_size(total)}"


def status(text: str, id: str | None = None) -> dict[str, Any]:
    """A status line: ``{"status": "Digest: sha256:..."}``, with an id when it has one."""
    message: dict[str, Any] = {"status": text}
    if id:
        message["id"] = id
    return message


def action(id: str, text: str) -> dict[str, Any]:
    """A layer's action without a count: ``Pulling fs layer``, ``Pull complete`` ..."""
    return {"status": text, "progressDetail": {}, "id": id}


def transfer(id: str, text: str, current: int, total: int) -> dict[str, Any]:
    """A layer's action with a count: ``Downloading``, ``Extracting``, ``Pushing``. As in
    Go's JSON, a zero count is left out of progressDetail."""
    detail = {key: value for key, value in (("current", current), ("total", total)) if value}
    message: dict[str, Any] = {"status": text, "progressDetail": detail}
    bar = progress_bar(current, total)
    if bar:
        message["progress"] = bar
    message["id"] = id
    return message


def aux(value: dict[str, Any]) -> dict[str, Any]:
    """An auxiliary message, such as a push's result ``{"Tag", "Digest", "Size"}``."""
    return {"progressDetail": {}, "aux": value}


class Throttle:
    """Lets a transfer report at most every UPDATE_INTERVAL seconds, and always at its end,
    as moby's progress reader does."""

    def __init__(self, interval: float = UPDATE_INTERVAL) -> None:
        self._interval = interval
        self._last = float("-inf")

    def ready(self, finished: bool = False) -> bool:
        now = time.monotonic()
        if finished or now - self._last >= self._interval:
            self._last = now
            return True
        return False


class Cancelled(Exception):
    """The stream's reader went away: the work stops at its next check."""


def relay(work: Callable[[Post, threading.Event], None]) -> Iterator[dict[str, Any]]:
    """Run ``work(post, cancelled)`` in a thread, and yield each message it posts as soon as
    it posts it; an exception it raises is raised here. If the caller stops iterating,
    ``cancelled`` is set and the thread is waited for, so nothing is left running."""
    for batch in relay_batches(work):
        yield from batch


def relay_batches(
    work: Callable[[Post, threading.Event], None],
) -> Iterator[list[dict[str, Any]]]:
    """As relay, but each item is every message posted since the last item (one at least):
    a consumer that pays for each item (a hop between threads) pays once per batch."""
    messages: queue.Queue[Any] = queue.Queue()
    cancelled = threading.Event()
    finished = object()

    def run() -> None:
        try:
            work(messages.put, cancelled)
        except BaseException as error:  # handed to the iterating thread, which raises it
            messages.put(error)
        else:
            messages.put(finished)

    thread = threading.Thread(target=run, name="progress-relay", daemon=True)
    thread.start()
    try:
        while True:
            batch = [messages.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(messages.get_nowait())
            for index, message in enumerate(batch):
                if message is finished or isinstance(message, BaseException):
                    if index:
                        yield batch[:index]
                    if message is finished:
                        return
                    raise message
            yield batch
    finally:
        cancelled.set()
        thread.join()
