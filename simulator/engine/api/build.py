"""``POST /build``: the legacy build API the docker CLI uses without buildx. The body is the
context as a tar stream; the answer is Docker's JSON stream (``Step 1/8 : …``, ``aux`` with
the image ID, ``Successfully built …``), or, for Slipway's CLI (which asks with
``slipwayprogress=1``), BuildKit-style vertices in ``aux`` messages."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from simulator.build.executor import Builder, BuildError, BuildOptions
from simulator.build.progress import LegacyStream, Reporter, Vertices
from simulator.engine.api import error_message, progress_stream
from simulator.engine.api.images import publish_image_event
from simulator.engine.server import BadRequest, Request, Router, StreamResponse
from simulator.images import progress

if TYPE_CHECKING:
    from simulator.engine.daemon import Engine

STRUCTURED_PROGRESS = "slipwayprogress"  # only Slipway's CLI sends it


def add_routes(router: Router[Engine]) -> None:
    router.post("/build", build)


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
    options = build_options(request)
    structured = request.flag(STRUCTURED_PROGRESS)
    quiet = request.flag("q")
    body = request.blocking_body()

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

    return await progress_stream(_ending_in_error(progress.relay(work), structured))


def _ending_in_error(messages: Iterator[dict[str, Any]], structured: bool) -> Iterator[dict]:
    """The messages; a failure after the first is the stream's last message, with the RUN's
    exit code as moby sends it. A failure before anything was sent is raised, so that it
    becomes an HTTP error."""
    started = False
    try:
        for message in messages:
            started = True
            yield message
    except BuildError as error:
        if not started:
            raise
        text = error.solve_message if structured else str(error)
        failure = error_message(text)
        if error.code:
            failure["errorDetail"] = {"code": error.code, "message": text}
        yield failure
