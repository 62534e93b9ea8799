"""``POST /build``: the legacy build API the docker CLI uses without buildx. The body is the
context as a tar stream; the answer is Docker's JSON stream (``Step 1/8 : …``, ``aux`` with
the image ID, ``Successfully built …``), or, for Slipway's CLI (which asks with
``slipwayprogress=1``), BuildKit-style vertices in ``aux`` messages. And ``POST /build/prune``
over the builder's cache."""

from __future__ import annotations

import asyncio
import io
import json
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from simulator.build.cache import CACHE_FIELDS, PruneOptions
from simulator.build.executor import Builder, BuildError, BuildOptions, cache_of
from simulator.build.progress import LegacyStream, Reporter, Vertices
from simulator.engine.api import Filters, error_message, parse_time_filter, progress_stream
from simulator.engine.api.images import UPLOAD_DRAIN_LIMIT, publish_image_event
from simulator.engine.server import (
    BadRequest,
    Request,
    Response,
    Router,
    StreamResponse,
    json_response,
)
from simulator.images import progress

if TYPE_CHECKING:
    from simulator.engine.daemon import Engine

STRUCTURED_PROGRESS = "slipwayprogress"  # only Slipway's CLI sends it
PRUNE_FAILED = "failed to prune build cache"
CONTEXT_BUFFER = 1 << 20
# moby accepts these besides the record fields; it ignores the labels.
PRUNE_FILTERS = ("until", "unused-for", "label", "label!", *CACHE_FIELDS)
_GO_INT = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = (1 << 63) - 1


def add_routes(router: Router[Engine]) -> None:
    router.post("/build", build)
    router.post("/build/prune", prune_cache)


def _json_arg(request: Request, name: str, what: str) -> dict[str, Any]:
    text = request.arg(name)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise BadRequest(f"error reading {what}: {error}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"error reading {what}: not a JSON object")
    return value


def build_options(request: Request) -> BuildOptions:
    """The build's options from the query, checked as moby checks them."""
    version = request.arg("version") or "1"
    if version not in ("1", "2"):
        raise BadRequest(f'invalid version "{version}"')
    if version == "2":
        raise BadRequest(
            "BuildKit sessions (builder version 2) are not supported by this engine: "
            "build with builder version 1"
        )
    remote = request.arg("remote")
    if remote:
        raise BadRequest(
            f"remote build contexts are not fetched by this engine ({remote}): clone or "
            "download it on the client and send it as the context, as docker build does "
            "for a git URL"
        )
    build_args = _json_arg(request, "buildargs", "build args")
    labels = _json_arg(request, "labels", "labels")
    if not all(isinstance(v, str) or v is None for v in build_args.values()):
        raise BadRequest("error reading build args: values must be strings")
    if not all(isinstance(v, str) for v in labels.values()):
        raise BadRequest("error reading labels: values must be strings")
    return BuildOptions(
        dockerfile=request.arg("dockerfile") or "Dockerfile",
        tags=request.args("t"),
        build_args=build_args,
        target=request.arg("target"),
        no_cache=request.flag("nocache"),
        pull=request.flag("pull"),
        labels=labels,
        network_mode=request.arg("networkmode"),
        buildkit_history=request.flag(STRUCTURED_PROGRESS),
    )


async def build(engine: Engine, request: Request) -> StreamResponse:
    try:
        return await _build(engine, request)
    except Exception:
        # Read what the client is still sending, so that it reads the error, not a broken pipe.
        await request.body.drain(UPLOAD_DRAIN_LIMIT)
        raise


async def _build(engine: Engine, request: Request) -> StreamResponse:
    options = build_options(request)
    structured = request.flag(STRUCTURED_PROGRESS)
    quiet = request.flag("q")
    # Buffered: the tar reader's many small reads are served here, not each by the loop.
    body = io.BufferedReader(request.blocking_body(), CONTEXT_BUFFER)

    def work(post: progress.Post, cancelled: threading.Event) -> None:
        reporter: Reporter = Vertices(post) if structured else LegacyStream(post, quiet)
        builder = Builder(engine, options, reporter, cancelled)
        try:
            builder.prepare(body)
            try:
                image = builder.run()
            except BuildError as error:
                reporter.failed(builder.step, error.solve_message if structured else str(error))
                raise
        finally:
            builder.close()
        for tag in options.tags:
            publish_image_event(engine, "tag", image.id, tag, image)

    batches = progress.relay_batches(work)
    return await progress_stream(_ending_in_error(batches, structured), batched=True)


def _ending_in_error(
    batches: Iterator[list[dict[str, Any]]], structured: bool
) -> Iterator[list[dict[str, Any]]]:
    """The batches of messages; a failure after the first is the stream's last message, with
    the RUN's exit code as moby sends it. A failure before anything was sent is raised, so
    that it becomes an HTTP error."""
    started = False
    try:
        for batch in batches:
            started = True
            yield batch
    except BuildError as error:
        if not started:
            raise
        text = error.solve_message if structured else str(error)
        failure = error_message(text)
        if error.code:
            failure["errorDetail"] = {"code": error.code, "message": text}
        yield [failure]


# Pruning the cache


async def prune_cache(engine: Engine, request: Request) -> Response:
    """``POST /build/prune``: remove build cache records as moby asks BuildKit to."""
    options = prune_options(request)
    report = await asyncio.to_thread(cache_of(engine).prune, options)
    engine.events.publish("builder", "prune", "", {"reclaimed": str(report.reclaimed)})
    return json_response(
        {"CachesDeleted": report.deleted or None, "SpaceReclaimed": report.reclaimed}
    )


def prune_options(request: Request) -> PruneOptions:
    """The prune's options from the query, checked in moby's order and words: the space
    limits (``keep-storage`` alone before API 1.48, the old name of ``reserved-space``), then
    the filters."""
    filters = Filters.of(request)
    if request.version_at_least("1.48"):
        reserved = _bytes_arg(request, "reserved-space") or _bytes_arg(request, "keep-storage")
        max_used = _bytes_arg(request, "max-used-space")
        min_free = _bytes_arg(request, "min-free-space")
    else:
        reserved, max_used, min_free = _bytes_arg(request, "keep-storage"), 0, 0
    try:
        filters.validate(PRUNE_FILTERS)
        until = _until(filters)
        fields = _record_filters(filters)
    except BadRequest as error:
        raise BadRequest(f"{PRUNE_FAILED}: {error}") from None
    return PruneOptions(
        all=request.flag("all"),
        until=until,
        filters=fields,
        reserved_space=reserved,
        max_used_space=max_used,
        min_free_space=min_free,
    )


def _bytes_arg(request: Request, name: str) -> int:
    text = request.arg(name)
    if not text:
        return 0
    problem = "invalid syntax"
    if _GO_INT.fullmatch(text):
        value = int(text)
        if abs(value) <= _INT64_MAX:
            return value
        problem = "value out of range"
    raise BadRequest(
        f"{name} is in bytes and expects an integer, got {text}: "
        f'strconv.Atoi: parsing "{text}": {problem}'
    )


def _until(filters: Filters) -> float | None:
    """``until`` (or its old name ``unused-for``): a time or a duration before now."""
    if filters.contains("until") and filters.contains("unused-for"):
        raise BadRequest('conflicting filters: "until" and "unused-for"')
    key = "unused-for" if filters.contains("unused-for") else "until"
    values = filters.get(key)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest("filters expect only one value")
    try:
        return parse_time_filter(values[0])
    except BadRequest as error:
        raise BadRequest(
            f"\"{key}\" filter expects a duration (e.g., '24h') or a timestamp: {error}"
        ) from None


def _record_filters(filters: Filters) -> dict[str, str | None]:
    """The record fields to match: a field alone, or with one value (an ``id`` is a regular
    expression). An empty value is BuildKit's parse error, as Docker reports it."""
    fields: dict[str, str | None] = {}
    for name in CACHE_FIELDS:
        if not filters.contains(name):
            continue
        values = filters.get(name)
        if len(values) > 1:
            raise BadRequest("filters expect only one value")
        fields[name] = values[0] if values else None
    selectors = [
        name if value is None else f"{name}{'~=' if name == 'id' else '=='}{value}"
        for name, value in fields.items()
    ]
    if "" in fields.values():
        joined = ",".join(selectors)
        raise BadRequest(
            f"failed to parse prune filters [{joined}]: filters: parse error: [{joined}]: "
            "expected value or quoted: invalid argument"
        )
    if fields.get("id"):
        try:
            re.compile(fields["id"] or "")
        except re.error as error:
            joined = ",".join(selectors)
            raise BadRequest(f"failed to parse prune filters [{joined}]: {error}") from None
    return fields
