"""The engine's event bus: what happened to images, containers, volumes and networks, kept in a
short buffer and delivered live to ``/events`` subscribers, filtered as Docker filters them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

BUFFER_SIZE = 256  # moby keeps the last 256 events for ``since``
SUBSCRIBER_QUEUE = 4096  # events a slow subscriber may fall behind before it is dropped
# Event types whose messages still carry the deprecated status/id/from fields (API < 1.52).
_LEGACY_FIELD_TYPES = ("container", "image")

# Filters that match an actor's ID or name by prefix, whatever the event's type (as moby).
_NAMED_KINDS = (
    "container",
    "daemon",
    "plugin",
    "volume",
    "network",
    "node",
    "service",
    "secret",
    "config",
)

# filters as the API gives them: key -> accepted values
EventFilters = Mapping[str, Collection[str]]


@dataclass(frozen=True)
class Event:
    """One event: ``type`` (image, container, volume, network, daemon ...), ``action``
    (pull, tag, create, start ...), the actor's ID and attributes, and when (ns)."""

    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time_nano: int = field(default_factory=time.time_ns)
    scope: str = "local"

    def to_api(self) -> dict[str, object]:
        """The event as ``GET /events`` sends it, field for field as Docker 28 does."""
        message: dict[str, object] = {}
        if self.type in _LEGACY_FIELD_TYPES:
            message["status"] = self.action
            if self.actor_id:
                message["id"] = self.actor_id
            image = self.attributes.get("image")
            if self.type == "container" and image:
                message["from"] = image
        message["Type"] = self.type
        message["Action"] = self.action
        message["Actor"] = {"ID": self.actor_id, "Attributes": dict(self.attributes)}
        message["scope"] = self.scope
        message["time"] = self.time_nano // 1_000_000_000
        message["timeNano"] = self.time_nano
        return message


def matches(event: Event, filters: EventFilters) -> bool:
    """Whether an event passes ``filters``, as moby's events filter decides: every filter
    given must match; ``container``, ``image`` and the like match the actor's ID or name."""
    attributes = event.attributes
    if not _match_action(filters, event.action):
        return False
    if not _exact(filters, "type", event.type):
        return False
    if not _exact(filters, "scope", event.scope):
        return False
    for kind in _NAMED_KINDS:
        if not _fuzzy_name(filters, kind, event):
            return False
    if not _match_image(filters, event):
        return False
    return _match_labels(filters.get("label", ()), attributes)


class Subscription:
    """A live view of the bus for one ``/events`` client: ``past`` holds the buffered events
    asked for with ``since``; ``next()`` waits for the next matching one."""

    def __init__(
        self,
        bus: EventBus,
        filters: EventFilters,
        past: list[Event],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.past = past
        self.overflowed = False
        self._bus = bus
        self._filters = filters
        self._loop = loop
        self._queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_QUEUE)

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or None when ``timeout`` passes first or the subscriber fell too
        far behind (``overflowed``)."""
        if self.overflowed:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._bus._unsubscribe(self)

    def _offer(self, event: Event) -> None:
        """Called by the bus (possibly from another thread) for each event published."""
        if matches(event, self._filters):
            self._loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True  # next() says so; no more events are queued
            self.close()


class EventBus:
    """Publish from any thread; subscribe from the event loop. The last ``buffer_size``
    events are kept for subscribers that ask for past events."""

    def __init__(self, buffer_size: int = BUFFER_SIZE) -> None:
        self._lock = threading.Lock()
        self._buffer: deque[Event] = deque(maxlen=buffer_size)
        self._subscribers: list[Subscription] = []

    def publish(
        self,
        type: str,
        action: str,
        actor_id: str,
        attributes: Mapping[str, str] | None = None,
    ) -> Event:
        """Record an event and hand it to every subscriber whose filters it passes."""
        event = Event(type, action, actor_id, dict(attributes or {}))
        with self._lock:
            self._buffer.append(event)
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber._offer(event)
            except RuntimeError:  # its event loop is closed
                self._unsubscribe(subscriber)
        return event

    def subscribe(
        self,
        filters: EventFilters | None = None,
        since_nano: int | None = None,
        until_nano: int | None = None,
    ) -> Subscription:
        """Subscribe (from a coroutine). With ``since_nano``, the buffered events from then
        on (and not after ``until_nano``) that pass the filters are in ``past``."""
        filters = filters or {}
        loop = asyncio.get_running_loop()
        with self._lock:
            past = []
            if since_nano is not None:
                past = [
                    event
                    for event in self._buffer
                    if event.time_nano >= since_nano
                    and (until_nano is None or event.time_nano <= until_nano)
                    and matches(event, filters)
                ]
            subscription = Subscription(self, filters, past, loop)
            self._subscribers.append(subscription)
        return subscription

    def recent(self) -> list[Event]:
        """The buffered events, oldest first."""
        with self._lock:
            return list(self._buffer)

    @property
    def listener_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)


# Matching, as moby's daemon/events/filter.go


def _exact(filters: EventFilters, key: str, source: str) -> bool:
    values = filters.get(key)
    return not values or source in values


def _fuzzy(filters: EventFilters, key: str, source: str) -> bool:
    values = filters.get(key)
    if not values or source in values:
        return True
    return any(source.startswith(prefix) for prefix in values)


def _fuzzy_name(filters: EventFilters, kind: str, event: Event) -> bool:
    """A ``container=x`` style filter: x is a prefix of the actor's ID or its name."""
    if not filters.get(kind):
        return True
    name = event.attributes.get("name", "")
    return _fuzzy(filters, kind, event.actor_id) or (bool(name) and _fuzzy(filters, kind, name))


def _match_action(filters: EventFilters, action: str) -> bool:
    values = filters.get("event")
    if not values:
        return True
    # moby: exec_create, exec_start and health_status carry a suffix (``exec_start: sh``)
    if any(value in ("health_status", "exec_create", "exec_start") for value in values):
        return _fuzzy(filters, "event", action)
    return action in values


def _strip_tag(name: str) -> str:
    """``busybox:latest`` is ``busybox``; ``host:5000/app`` keeps its port."""
    base, _, tail = name.rpartition(":")
    return base if base and "/" not in tail else name


def _match_image(filters: EventFilters, event: Event) -> bool:
    values = filters.get("image")
    if not values:
        return True
    name_key = "name" if event.type == "image" else "image"
    name = event.attributes.get(name_key, "")
    candidates = [event.actor_id, name, _strip_tag(event.actor_id), _strip_tag(name)]
    return any(candidate and candidate in values for candidate in candidates)


def _match_labels(labels: Collection[str], attributes: Mapping[str, str]) -> bool:
    """``label=key`` or ``label=key=value``: every one must be among the attributes."""
    for label in labels:
        key, has_value, value = label.partition("=")
        if key not in attributes:
            return False
        if has_value and attributes[key] != value:
            return False
    return True
