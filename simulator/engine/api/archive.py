"""The Engine API's container filesystem endpoints: archive (HEAD, GET and PUT, for
``docker cp``) and export, over simulator.engine.container_fs."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from simulator.engine.container_fs import (
    ContainerView,
    ExtractOptions,
    absolute_path,
    copy_error,
    enter_own_mount_namespace,
    extract_tar,
    open_view,
    path_stat,
    run_in_own_mount_namespace,
    write_export_tar,
    write_path_tar,
)
from simulator.engine.containers import ContainerError, ContainerManager, manager_of
from simulator.engine.server import (
    BadRequest,
    Request,
    Response,
    Router,
    StreamResponse,
    chunks_from_writer,
    empty_response,
    iterate_blocking,
)

if TYPE_CHECKING:
    from simulator.engine.daemon import Engine

STAT_HEADER = "X-Docker-Container-Path-Stat"
TAR = "application/x-tar"
_BODY_BUFFER = 1 << 20

Result = TypeVar("Result")


def add_routes(router: Router[Engine]) -> None:
    router.head("/containers/{id}/archive", stat_path)
    router.get("/containers/{id}/archive", get_archive)
    router.put("/containers/{id}/archive", put_archive)
    router.get("/containers/{id}/export", export_container)


def _path(request: Request) -> str:
    path = request.arg("path")
    if not path:
        raise BadRequest("bad parameter: pathcannot be empty")  # sic, as dockerd says it
    if "\0" in path:
        raise BadRequest(f"invalid path {path!r}: it holds a NUL byte")
    return path


def _stat_header(stat: dict[str, Any]) -> tuple[str, str]:
    encoded = json.dumps(stat, separators=(",", ":")).encode()
    return STAT_HEADER, base64.b64encode(encoded).decode("ascii")


def _in_view(
    manager: ContainerManager,
    reference: str,
    path: str,
    work: Callable[[ContainerView], Result],
    with_mounts: bool = True,
) -> Result:
    """``work`` on the container's filesystem (in the calling thread, which must have a
    mount namespace of its own); filesystem errors in dockerd's words."""
    with open_view(manager, reference, with_mounts=with_mounts) as view:
        try:
            return work(view)
        except OSError as error:
            raise copy_error(error, path, reference) from None


async def _stat(manager: ContainerManager, reference: str, path: str) -> dict[str, Any]:
    manager.store.get(reference)  # a missing container fails here, without a thread

    def stat() -> dict[str, Any]:
        return _in_view(manager, reference, path, lambda view: path_stat(view, path))

    return await asyncio.to_thread(run_in_own_mount_namespace, stat)


async def stat_path(engine: Engine, request: Request) -> Response:
    reference = request.params["id"]
    stat = await _stat(manager_of(engine), reference, _path(request))
    return Response(200, headers=[_stat_header(stat)])


async def get_archive(engine: Engine, request: Request) -> StreamResponse:
    manager = manager_of(engine)
    reference = request.params["id"]
    path = _path(request)
    absolute = absolute_path(path)
    stat = await _stat(manager, reference, absolute)

    def work(out: BinaryIO) -> None:
        enter_own_mount_namespace()  # chunks_from_writer runs this in a thread of its own
        _in_view(manager, reference, path, lambda view: write_path_tar(view, absolute, out))

    manager.event(manager.store.get(reference), "archive-path")
    chunks = iterate_blocking(chunks_from_writer(work))
    return StreamResponse(chunks, content_type=TAR, headers=[_stat_header(stat)])


async def put_archive(engine: Engine, request: Request) -> Response:
    manager = manager_of(engine)
    reference = request.params["id"]
    path = _path(request)
    container = manager.store.get(reference)
    options = ExtractOptions(
        no_overwrite_dir_non_dir=request.flag("noOverwriteDirNonDir"),
        copy_uid_gid=request.flag("copyUIDGID"),
    )
    body = io.BufferedReader(request.blocking_body(), _BODY_BUFFER)

    def extract() -> None:
        _in_view(manager, reference, path, lambda view: extract_tar(view, path, body, options))

    await asyncio.to_thread(run_in_own_mount_namespace, extract)
    manager.event(container, "extract-to-dir")
    return empty_response(200)


async def export_container(engine: Engine, request: Request) -> StreamResponse:
    manager = manager_of(engine)
    reference = request.params["id"]
    container = manager.store.get(reference)
    if container.status == "dead":
        raise ContainerError(f"You cannot export container {container.id} which is Dead", 409)
    if container.status == "removing":
        raise ContainerError(
            f"You cannot export container {container.id} which is being removed", 409
        )

    def work(out: BinaryIO) -> None:
        enter_own_mount_namespace()  # chunks_from_writer runs this in a thread of its own
        _in_view(manager, reference, "/", lambda view: write_export_tar(view, out), False)

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in iterate_blocking(chunks_from_writer(work)):
            yield chunk
        manager.event(container, "export")  # as dockerd: once it is all out

    return StreamResponse(chunks(), content_type=TAR)
