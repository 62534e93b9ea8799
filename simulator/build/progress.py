"""How a build reports what it does, in the two shapes Docker's clients read: the legacy
builder's stream (``Step 1/8 : FROM …``, `` ---> Running in …``, ``Successfully built …``),
which the real docker CLI prints as it comes, and BuildKit-style vertices sent as ``aux``
messages, which Slipway's CLI draws as BuildKit's plain progress (``#4 [1/6] FROM …``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.images.progress import human_size

Post = Callable[[dict[str, Any]], None]
AUX_KEY = "slipway"  # the aux messages only Slipway's CLI asks for carry this key


@dataclass
class Step:
    """One instruction being run: ``number`` of ``total`` in the legacy numbering; ``vertex``
    is its BuildKit name (``[base 2/5] WORKDIR /src``), or "" for metadata instructions."""

    number: int
    total: int
    text: str
    vertex: str = ""
    vertex_id: int = 0
    started: float = field(default_factory=time.monotonic)
    cached: bool = False


class Reporter:
    """What a build reports; each client path shapes it its own way."""

    def __init__(self, post: Post) -> None:
        self.post = post

    def loaded(self, dockerfile: str, size: int) -> None: ...
    def base_metadata(self, reference: str) -> None: ...
    def ignore_loaded(self, size: int) -> None: ...
    def context(self, size: int) -> None: ...
    def step(self, step: Step) -> None: ...
    def pull(self, step: Step, message: dict[str, Any]) -> None: ...
    def cached(self, step: Step) -> None: ...
    def running(self, step: Step, container_id: str) -> None: ...
    def output(self, step: Step, data: bytes) -> None: ...
    def removed(self, step: Step, container_id: str) -> None: ...
    def step_done(self, step: Step, state_id: str) -> None: ...
    def stage_done(self, image_id: str) -> None: ...
    def warning(self, text: str) -> None: ...
    def exporting(self, image_id: str, names: list[str], seconds: float) -> None: ...
    def succeeded(self, image_id: str, names: list[str]) -> None: ...
    def failed(self, step: Step | None, message: str) -> None: ...


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


class LegacyStream(Reporter):
    """The legacy builder's JSON stream, message for message as moby writes it."""

    def __init__(self, post: Post, quiet: bool = False) -> None:
        super().__init__(post)
        self.quiet = quiet
        self.held: list[dict[str, Any]] = []  # what -q keeps back, sent only on failure

    def _stream(self, text: str) -> None:
        message = {"stream": text}
        if self.quiet:
            self.held.append(message)
        else:
            self.post(message)

    def step(self, step: Step) -> None:
        self._stream(f"Step {step.number}/{step.total} : {step.text}")
        self._stream("\n")

    def pull(self, step: Step, message: dict[str, Any]) -> None:
        if self.quiet:
            self.held.append(message)
        else:
            self.post(message)

    def cached(self, step: Step) -> None:
        self._stream(" ---> Using cache\n")

    def running(self, step: Step, container_id: str) -> None:
        self._stream(f" ---> Running in {container_id[:12]}\n")

    def output(self, step: Step, data: bytes) -> None:
        self._stream(data.decode("utf-8", "replace"))

    def removed(self, step: Step, container_id: str) -> None:
        self._stream(f"Removing intermediate container {container_id[:12]}\n")

    def step_done(self, step: Step, state_id: str) -> None:
        self._stream(f" ---> {_short(state_id)}\n")

    def stage_done(self, image_id: str) -> None:
        self.post({"aux": {"ID": image_id}})

    def warning(self, text: str) -> None:
        self._stream(text)

    def succeeded(self, image_id: str, names: list[str]) -> None:
        if self.quiet:
            self.post({"stream": image_id + "\n"})
            return
        self._stream(f"Successfully built {_short(image_id)}\n")
        for name in names:
            self._stream(f"Successfully tagged {name}\n")

    def failed(self, step: Step | None, message: str) -> None:
        for held in self.held:
            self.post(held)
        self.held = []


class Vertices(Reporter):
    """BuildKit's vertices, as ``{"aux": {"slipway": {...}}}`` messages: ``vertex`` (its
    number) with ``name`` when it starts, then ``log``, ``status``, and one of ``done``
    (seconds), ``cached`` or ``error``."""

    def __init__(self, post: Post) -> None:
        super().__init__(post)
        self.count = 0

    def _send(self, **fields: Any) -> None:
        self.post({"aux": {AUX_KEY: fields}})

    def _vertex(self, name: str) -> int:
        self.count += 1
        self._send(vertex=self.count, name=name)
        return self.count

    def _internal(self, name: str, status: str = "") -> None:
        vertex = self._vertex(name)
        if status:
            self._send(vertex=vertex, status=status)
        self._send(vertex=vertex, done=0.0)

    def loaded(self, dockerfile: str, size: int) -> None:
        self._internal(
            f"[internal] load build definition from {dockerfile}",
            f"transferring dockerfile: {human_size(size)} done",
        )

    def ignore_loaded(self, size: int) -> None:
        self._internal(
            "[internal] load .dockerignore", f"transferring context: {human_size(size)} done"
        )

    def base_metadata(self, reference: str) -> None:
        self._internal(f"[internal] load metadata for {reference}")

    def context(self, size: int) -> None:
        self._internal(
            "[internal] load build context", f"transferring context: {human_size(size)} done"
        )

    def step(self, step: Step) -> None:
        if step.vertex:
            step.vertex_id = self._vertex(step.vertex)
            step.started = time.monotonic()

    def pull(self, step: Step, message: dict[str, Any]) -> None:
        if step.vertex_id and message.get("status", "").startswith("Digest: "):
            self._send(vertex=step.vertex_id, status=f"resolve {step.vertex.split()[-1]} done")

    def cached(self, step: Step) -> None:
        step.cached = True
        if step.vertex_id:
            self._send(vertex=step.vertex_id, cached=True)

    def output(self, step: Step, data: bytes) -> None:
        if step.vertex_id:
            elapsed = time.monotonic() - step.started
            self._send(
                vertex=step.vertex_id, log=data.decode("utf-8", "replace"), at=round(elapsed, 3)
            )

    def step_done(self, step: Step, state_id: str) -> None:
        if step.vertex_id and not step.cached:
            self._send(vertex=step.vertex_id, done=round(time.monotonic() - step.started, 1))

    def warning(self, text: str) -> None:
        self._send(warning=text)

    def exporting(self, image_id: str, names: list[str], seconds: float) -> None:
        vertex = self._vertex("exporting to image")
        self._send(vertex=vertex, status="exporting layers done", seconds=round(seconds, 1))
        self._send(vertex=vertex, status=f"writing image {image_id} done")
        for name in names:
            self._send(vertex=vertex, status=f"naming to {name} done")
        self._send(vertex=vertex, done=round(seconds, 1))

    def succeeded(self, image_id: str, names: list[str]) -> None:
        self.post({"aux": {"ID": image_id}})

    def failed(self, step: Step | None, message: str) -> None:
        if step is not None and step.vertex_id:
            self._send(vertex=step.vertex_id, error=message, name=step.vertex)
