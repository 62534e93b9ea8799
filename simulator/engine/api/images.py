"""Image endpoints over the engine's ImageStore: list, inspect, history, tag, remove, pull
(``/images/create?fromImage``), import (``fromSrc``), push, save, load, prune, and
``/distribution/{name}/json``; each publishes Docker's image events."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from simulator.engine.api import (
    Filters,
    error_message,
    parse_time_filter,
    path_match,
    progress_stream,
    registry_auth,
)
from simulator.engine.server import (
    BadRequest,
    BlockingBody,
    Forbidden,
    NotFound,
    Request,
    Response,
    Router,
    ServerError,
    StreamResponse,
    Unauthorized,
    chunks_from_writer,
    first_then_rest,
    iterate_blocking,
    json_response,
    message_of,
    parse_version,
)
from simulator.images import progress
from simulator.images.reference import InvalidReference, Reference, parse, parse_named
from simulator.images.store import Image, ImageConflict, ImageNotFound, ImageStore, Lease
from simulator.images.transfer import StoredImage, TransferError

if TYPE_CHECKING:
    from simulator.engine.daemon import Engine

LIST_FILTERS = ("before", "dangling", "label", "reference", "since", "until")
PRUNE_FILTERS = ("dangling", "label", "label!", "until")
DEFAULT_PLATFORM = "linux/amd64"
# A refused upload (load, import, build) is read up to this much before the answer, so that a
# client still sending reads the error rather than a broken pipe.
UPLOAD_DRAIN_LIMIT = 1 << 30
NO_BASE_IMAGE = "scratch"
ZERO_TIME = "0001-01-01T00:00:00Z"
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_PLATFORM = re.compile(r"[a-z0-9_]+/[a-z0-9_]+(?:/[a-z0-9]+)?")
# ImageConfig fields an API client older than 1.50 gets even when empty (moby fills them).
_LEGACY_CONFIG = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Env": None,
    "Cmd": None,
    "Image": "",
    "Volumes": None,
    "WorkingDir": "",
    "Entrypoint": None,
    "OnBuild": None,
    "Labels": None,
}


def add_routes(router: Router[Engine]) -> None:
    router.get("/images/json", list_images)
    router.post("/images/create", create_image)
    router.get("/images/get", save_images)
    router.post("/images/load", load_images)
    router.post("/images/prune", prune_images)
    router.get("/images/{name:.*}/json", inspect_image)
    router.get("/images/{name:.*}/history", image_history)
    router.post("/images/{name:.*}/tag", tag_image)
    router.post("/images/{name:.*}/push", push_image)
    router.get("/images/{name:.*}/get", save_image)
    router.delete("/images/{name:.*}", remove_image)
    router.get("/distribution/{name:.*}/json", distribution_inspect)


def _bad_input(error: BaseException) -> BaseException:
    """Errors of the client's making that carry no status of their own are 400s."""
    from simulator.images.importer import InvalidChange

    if isinstance(error, InvalidReference | TransferError | InvalidChange):
        return BadRequest(str(error))
    return error


async def _in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except Exception as error:
        raise _bad_input(error) from None


def publish_image_event(
    engine: Engine, action: str, actor_id: str, name: str, image: Image | None = None
) -> None:
    """An image event as moby logs one: the image's labels, and ``name``."""
    attributes = dict(image.config.config.labels) if image is not None else {}
    if name:
        attributes["name"] = name
    engine.events.publish("image", action, actor_id, attributes)


# Listing and inspecting


async def list_images(engine: Engine, request: Request) -> Response:
    filters = Filters.of(request)
    filters.validate(LIST_FILTERS)
    summaries = await _in_thread(
        image_summaries,
        engine,
        filters,
        shared_size=request.flag("shared-size"),
        api_version=request.api_version,
    )
    return json_response(summaries)


def image_summaries(
    engine: Engine, filters: Filters, *, shared_size: bool = False, api_version: str = ""
) -> list[dict[str, Any]]:
    """``GET /images/json``: the images the filters let through, newest first, as moby's
    image service lists them."""
    store = engine.images
    images = store.images()
    dangling_only = filters.bool_or_default("dangling", False)
    before = _oldest_created(store, filters.get("before"))
    for value in filters.get("until"):
        moment = parse_time_filter(value)
        before = moment if before is None else min(before, moment)
    since = _newest_created(store, filters.get("since"))
    patterns = filters.get("reference")
    shared = _shared_layers(images) if shared_size else None
    summaries = []
    for image in images:
        created = _created_seconds(image)
        if before is not None and not created < before:
            continue
        if since is not None and not created > since:
            continue
        if filters.contains("label") and not filters.match_kv_list("label", _labels(image)):
            continue
        tags, digests = [], []
        for reference in _references(image):
            if patterns and not any(_reference_matches(p, reference) for p in patterns):
                continue
            (digests if reference.digest else tags).append(reference.familiar)
        if not tags and not digests:
            if filters.contains("dangling") and not dangling_only:
                continue
            if filters.contains("reference"):
                continue
        elif dangling_only and tags:
            continue
        size = -1 if shared is None else _shared_size(image, shared)
        summaries.append(_summary(image, tags, digests, size, -1, api_version))
    return summaries


def _summary(
    image: Image,
    tags: list[str],
    digests: list[str],
    shared_size: int,
    containers: int,
    api_version: str = "",
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "Containers": containers,
        "Created": image.created_unix,
        "Id": image.id,
        "Labels": _labels(image),
        "ParentId": "",
        "RepoDigests": digests,
        "RepoTags": tags,
        "SharedSize": shared_size,
        "Size": image.size,
    }
    if api_version and _older_than(api_version, "1.44"):
        summary["VirtualSize"] = image.size
    return summary


def _references(image: Image) -> list[Reference]:
    """The image's tags and digests in moby's order (lexical, by the full reference)."""
    return [parse_named(text) for text in sorted((*image.repo_tags, *image.repo_digests))]


def _reference_matches(pattern: str, reference: Reference) -> bool:
    """moby's FamiliarMatch: the pattern against ``busybox:latest``, then ``busybox``."""
    return path_match(pattern, reference.familiar) or path_match(pattern, reference.familiar_name)


def _labels(image: Image) -> dict[str, str]:
    return dict(image.config.config.labels)


def _created_seconds(image: Image) -> float:
    text = image.created.replace("Z", "+00:00")
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)", text)
    if match is not None:  # Python reads six fractional digits at most; Go writes nine
        text = match.group(1) + (match.group(2) or "")[:7] + match.group(3)
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


def _oldest_created(store: ImageStore, names: Sequence[str]) -> float | None:
    times = [_created_seconds(store.get(name)) for name in names]
    return min(times) if times else None


def _newest_created(store: ImageStore, names: Sequence[str]) -> float | None:
    times = [_created_seconds(store.get(name)) for name in names]
    return max(times) if times else None


def _shared_layers(images: Sequence[Image]) -> Counter[str]:
    """How many images use each layer (by chain ID)."""
    counts: Counter[str] = Counter()
    for image in images:
        counts.update(set(image.chain_ids))
    return counts


def _shared_size(image: Image, counts: Counter[str]) -> int:
    pairs = zip(image.chain_ids, image.layer_sizes, strict=False)
    return sum(size for chain_id, size in pairs if counts[chain_id] > 1)


def disk_usage_images(engine: Engine, api_version: str = "") -> tuple[int, list[dict[str, Any]]]:
    """The images part of ``/system/df``: the layers' total size, and each image with its
    shared size and how many containers use it."""
    images = engine.images.images()
    counts = _shared_layers(images)
    layer_sizes: dict[str, int] = {}
    summaries = []
    for image in images:
        layer_sizes.update(zip(image.chain_ids, image.layer_sizes, strict=False))
        tags, digests = [], []
        for reference in _references(image):
            (digests if reference.digest else tags).append(reference.familiar)
        containers = len(engine.containers_of_image(image.id))
        shared = _shared_size(image, counts)
        summaries.append(_summary(image, tags, digests, shared, containers, api_version))
    return sum(layer_sizes.values()), summaries


async def inspect_image(engine: Engine, request: Request) -> Response:
    name = request.params["name"]
    result = await _in_thread(image_inspect, engine, name, request.api_version)
    return json_response(result)


def image_inspect(engine: Engine, name: str, api_version: str = "") -> dict[str, Any]:
    """``GET /images/{name}/json``, in Docker's ImageInspect shape."""
    store = engine.images
    image = store.get(name)
    raw = json.loads(store.content.read(image.id))
    config = image.config
    run_config = config.config.to_dict()
    raw_run = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    if raw_run.get("ArgsEscaped") is True:
        run_config["ArgsEscaped"] = True
    if api_version and _older_than(api_version, "1.50"):
        run_config = {**_LEGACY_CONFIG, **run_config}
    references = _references(image)
    result: dict[str, Any] = {
        "Id": image.id,
        "RepoTags": [ref.familiar for ref in references if ref.digest is None],
        "RepoDigests": [ref.familiar for ref in references if ref.digest is not None],
        "Parent": "",
        "Comment": _text(raw.get("comment")),
        "Created": config.created,
    }
    if api_version and _older_than(api_version, "1.45"):
        result["Container"] = ""
        result["ContainerConfig"] = dict(_LEGACY_CONFIG)
    result |= {
        "DockerVersion": _text(raw.get("docker_version")),
        "Author": config.author,
        "Config": run_config,
        "Architecture": config.architecture,
    }
    if config.variant:
        result["Variant"] = config.variant
    result["Os"] = config.os
    if raw.get("os.version"):
        result["OsVersion"] = _text(raw.get("os.version"))
    result["Size"] = image.size
    if api_version and _older_than(api_version, "1.44"):
        result["VirtualSize"] = image.size
    result["GraphDriver"] = {"Data": _graph_driver_data(store, image), "Name": "overlay2"}
    result["RootFS"] = {"Type": "layers", "Layers": list(image.diff_ids)}
    result["Metadata"] = {"LastTagTime": ZERO_TIME}
    return result


def _graph_driver_data(store: ImageStore, image: Image) -> dict[str, str]:
    """Where the image's layers are unpacked: the top one is UpperDir, as Docker shows."""
    if image.top_chain_id is None:
        return {}
    return {"UpperDir": str(store.layer_root / image.top_chain_id / "diff")}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _older_than(version: str, other: str) -> bool:
    return parse_version(version) < parse_version(other)


async def image_history(engine: Engine, request: Request) -> Response:
    entries = await _in_thread(engine.images.history, request.params["name"])
    return json_response([dict(sorted(entry.items())) for entry in entries])  # Go's order


# Naming and removing


def repo_tag_reference(repo: str, tag: str) -> Reference | None:
    """moby's RepoTagReference: ``repo`` with ``tag`` (``latest`` if none); None if no repo."""
    if not repo:
        return None
    try:
        reference = parse_named(repo)
        if reference.digest is not None:
            raise BadRequest("cannot import digest reference")
        if tag:
            return reference.with_tag(tag)
        return reference if reference.tag else reference.with_tag("latest")
    except InvalidReference as error:
        raise BadRequest(str(error)) from None


async def tag_image(engine: Engine, request: Request) -> Response:
    repo = request.arg("repo")
    if not repo:
        raise BadRequest("repo is required")
    target = repo_tag_reference(repo, request.arg("tag"))
    assert target is not None
    if target.familiar_name == "sha256":
        raise BadRequest("refusing to create an ambiguous tag using digest algorithm as name")
    name = request.params["name"]

    def tag() -> Image:
        try:
            image = engine.images.get(name)
        except ImageNotFound as error:
            raise NotFound(str(error)) from None
        return engine.images.tag(image.id, target)

    image = await _in_thread(tag)
    publish_image_event(engine, "tag", image.id, target.familiar, image)
    return Response(201)


async def remove_image(engine: Engine, request: Request) -> Response:
    name = request.params["name"]
    force = request.flag("force")

    def remove() -> tuple[Image, list[dict[str, str]]]:
        image = engine.images.get(name)
        return image, engine.images.remove(name, force=force)

    image, records = await _in_thread(remove)
    _publish_removal(engine, image, records)
    return json_response(records)


def _publish_removal(engine: Engine, image: Image, records: Sequence[Mapping[str, str]]) -> None:
    for record in records:
        if "Untagged" in record:  # moby names the image, not the reference untagged
            publish_image_event(engine, "untag", image.id, image.id, image)
        elif record.get("Deleted") == image.id:
            publish_image_event(engine, "delete", image.id, image.id)


async def prune_images(engine: Engine, request: Request) -> Response:
    filters = Filters.of(request)
    filters.validate(PRUNE_FILTERS)
    report = await _in_thread(prune, engine, filters)
    return json_response(report)


def prune(engine: Engine, filters: Filters) -> dict[str, Any]:
    """``POST /images/prune``: remove dangling images (``dangling=false``: every image) that
    no container uses, as moby prunes them."""
    store = engine.images
    dangling_only = filters.bool_or_default("dangling", True)
    untils = filters.get("until")
    if len(untils) > 1:
        raise BadRequest("more than one until filter specified")
    until = parse_time_filter(untils[0]) if untils else None
    images = store.images()
    layer_sizes: dict[str, int] = {}
    for image in images:
        layer_sizes.update(zip(image.chain_ids, image.layer_sizes, strict=False))
    deleted: list[dict[str, str]] = []
    for image in images:
        if until is not None and _created_seconds(image) > until:
            continue
        labels = _labels(image)
        if not filters.match_kv_list("label", labels):
            continue
        if filters.contains("label!") and filters.match_kv_list("label!", labels):
            continue
        if dangling_only and image.repo_tags:
            continue
        names = [*image.repo_tags, *image.repo_digests] or [image.id]
        for name in names:
            try:
                records = store.remove(name)
            except (ImageConflict, ImageNotFound):
                continue
            _publish_removal(engine, image, records)
            deleted += records
    reclaimed = sum(layer_sizes.get(record.get("Deleted", ""), 0) for record in deleted)
    engine.events.publish("image", "prune", "", {"reclaimed": str(reclaimed)})
    return {"ImagesDeleted": deleted, "SpaceReclaimed": reclaimed}


# Pulling and importing


async def create_image(engine: Engine, request: Request) -> StreamResponse:
    """``POST /images/create``: a pull with ``fromImage``, an import with ``fromSrc``. A
    refused import reads the rest of its tarball before answering (see UPLOAD_DRAIN_LIMIT)."""
    try:
        return await _create_image(engine, request)
    except Exception:
        await request.body.drain(UPLOAD_DRAIN_LIMIT)
        raise


async def _create_image(engine: Engine, request: Request) -> StreamResponse:
    platform = request.arg("platform")
    if platform and not _PLATFORM.fullmatch(platform):
        raise BadRequest(
            f'"{platform}": unknown operating system or architecture: invalid argument'
        )
    if request.arg("fromImage"):
        return await _pull(engine, request, platform or DEFAULT_PLATFORM)
    if request.has_arg("fromSrc"):
        return await _import(engine, request, platform or DEFAULT_PLATFORM)
    raise BadRequest("fromImage or fromSrc is required")


def pull_reference(from_image: str, tag: str) -> Reference:
    """The reference a pull asks for: ``fromImage`` with ``tag``, which may be a digest."""
    try:
        reference = parse_named(from_image.removesuffix(":"))
        if tag:
            if _DIGEST.fullmatch(tag):
                reference = reference.name_only().with_digest(tag)
            else:
                reference = reference.with_tag(tag)
    except InvalidReference as error:
        raise BadRequest(str(error)) from None
    if reference.familiar_name == NO_BASE_IMAGE:
        raise Forbidden(f"'{NO_BASE_IMAGE}' is a reserved name")
    if reference.is_name_only:
        reference = reference.with_tag("latest")
    return reference


async def _pull(engine: Engine, request: Request, platform: str) -> StreamResponse:
    from simulator.images.pull import pull

    reference = pull_reference(request.arg("fromImage"), request.arg("tag"))
    auth = registry_auth(request)

    def messages() -> Iterator[dict[str, Any]]:
        yield from pull(
            engine.images,
            reference,
            mirrors=engine.mirrors,
            insecure=engine.config.insecure_registries,
            auth=auth,
            upstream=not engine.config.offline,
            platform=platform,
        )
        image = _image_or_none(engine.images, reference.string)
        publish_image_event(engine, "pull", reference.familiar, reference.familiar_name, image)

    return await progress_stream(messages(), translate=_bad_input)


def _image_or_none(store: ImageStore, name: str) -> Image | None:
    try:
        return store.get(name)
    except (ImageNotFound, InvalidReference):
        return None


async def _import(engine: Engine, request: Request, platform: str) -> StreamResponse:
    """``docker import``: the request body is a root filesystem tarball."""
    from simulator.images.importer import import_tarball

    source = request.arg("fromSrc")
    if source != "-":
        raise BadRequest(
            f"importing from {source or 'nowhere'} is not supported: send the tarball as the "
            "request body with fromSrc=-"
        )
    target = repo_tag_reference(request.arg("repo"), request.arg("tag"))
    body = request.blocking_body()
    store = engine.images

    def run_import() -> Image:
        with store.lease() as lease:
            loaded = import_tarball(
                body,
                store.content,
                changes=request.args("changes"),
                message=request.arg("message"),
                platform=platform,
                source=source,
                hold=lease.hold_blob,
            )
            manifest = store.content.read(loaded.manifest_digest)
            tags = [target] if target is not None else []
            return store.put_image(loaded.config_bytes, manifest, tags=tags, lease=lease)

    image = await _in_thread(run_import)
    if target is not None:
        publish_image_event(engine, "tag", image.id, target.familiar, image)
    publish_image_event(engine, "import", image.id, image.id, image)
    return await progress_stream(iter([progress.status(image.id)]))


# Pushing


async def push_image(engine: Engine, request: Request) -> StreamResponse:
    from simulator.images.push import PushError, push

    name = request.params["name"]
    tag = request.arg("tag")
    auth = registry_auth(request, strict=True)
    if tag:
        reference = repo_tag_reference(name, tag)
        assert reference is not None
        references = [reference]
    else:
        references = await _in_thread(_tags_of_repository, engine.images, name)

    def messages() -> Iterator[dict[str, Any]]:
        for reference in references:
            yield from push(
                engine.images, reference, insecure=engine.config.insecure_registries, auth=auth
            )
            image = _image_or_none(engine.images, reference.string)
            publish_image_event(engine, "push", reference.familiar, reference.familiar_name, image)

    def translate(error: BaseException) -> BaseException:
        if isinstance(error, PushError):
            return error
        return _bad_input(error)

    return await progress_stream(messages(), translate=translate)


def _tags_of_repository(store: ImageStore, name: str) -> list[Reference]:
    """``docker push --all-tags``: every tag of the repository ``name`` names."""
    repository = parse_named(name)
    if repository.tag is not None or repository.digest is not None:
        return [repository if repository.tag else repository.name_only().with_tag("latest")]
    tags = sorted(
        parse(tag)
        for image in store.images()
        for tag in image.repo_tags
        if parse(tag).name == repository.name
    )
    if not tags:
        raise NotFound(f"An image does not exist locally with the tag: {repository.familiar_name}")
    return tags


# Saving and loading


async def save_images(engine: Engine, request: Request) -> StreamResponse:
    """``GET /images/get?names=...``: several images in one tar."""
    return await _save(engine, request.args("names"))


async def save_image(engine: Engine, request: Request) -> StreamResponse:
    return await _save(engine, [request.params["name"]])


async def _save(engine: Engine, names: Sequence[str]) -> StreamResponse:
    from simulator.images.save import save

    store = engine.images
    if not names:
        raise BadRequest("no image names given")

    def hold() -> tuple[list[StoredImage], list[Image], Lease]:
        stored, images = stored_images(store, names)
        lease = store.lease()
        for image in images:
            for digest in image.blobs:
                lease.hold_blob(digest)
        return stored, images, lease

    stored, images, lease = await _in_thread(hold)

    def write(out: Any) -> None:
        save(store.content, stored, out)

    async def chunks() -> AsyncIterator[bytes]:
        blocks = iterate_blocking(chunks_from_writer(write))
        try:
            async for chunk in blocks:
                yield chunk
            for image in images:
                publish_image_event(engine, "save", image.id, image.id, image)
        finally:
            await blocks.aclose()  # type: ignore[attr-defined]
            await asyncio.to_thread(lease.close)

    try:
        first = await first_then_rest(chunks())
    except TransferError as error:
        raise ServerError(str(error)) from None
    return StreamResponse(first, content_type="application/x-tar")


def stored_images(store: ImageStore, names: Sequence[str]) -> tuple[list[StoredImage], list[Image]]:
    """What ``docker save NAME...`` saves, as moby's tarexport picks it: a repository name
    saves every tag of it, a tag that tag, an ID (or digest) the image without tags."""
    stored: list[StoredImage] = []
    images: dict[str, Image] = {}
    for name in names:
        try:
            named: Reference | None = parse_named(name)
        except InvalidReference:
            named = None
        if named is None or named.familiar_name == "sha256":
            image = store.get(name)
            stored.append(StoredImage(image.manifest_digest, ()))
            images.setdefault(image.id, image)
            continue
        if named.is_name_only:
            found = False
            for image in store.images():
                tags = tuple(tag for tag in image.repo_tags if parse(tag).name == named.name)
                if tags:
                    found = True
                    stored.append(StoredImage(image.manifest_digest, tags))
                    images.setdefault(image.id, image)
            if not found:
                try:
                    image = store.get(name)
                except ImageNotFound:
                    raise ImageNotFound(f"No such image: {name}") from None
                stored.append(StoredImage(image.manifest_digest, ()))
                images.setdefault(image.id, image)
            continue
        image = store.get(name)
        tags = (named.string,) if named.tag is not None and named.digest is None else ()
        stored.append(StoredImage(image.manifest_digest, tags))
        images.setdefault(image.id, image)
    return stored, list(images.values())


async def load_images(engine: Engine, request: Request) -> StreamResponse:
    """``POST /images/load``: the body is what ``docker save`` wrote. As moby, any failure
    is reported in the stream (after a 200)."""
    quiet = request.flag("quiet", default=True)
    body = request.blocking_body()

    def work(post: progress.Post, cancelled: Any) -> None:
        try:
            load_archive(engine, body, post, quiet=quiet)
        except Exception:
            discard(body, UPLOAD_DRAIN_LIMIT)
            raise

    return await progress_stream(_messages_or_error(progress.relay(work)))


def discard(body: BlockingBody, limit: int) -> None:
    """Read and drop what is left of a refused upload, up to ``limit`` bytes (see
    UPLOAD_DRAIN_LIMIT). A client that breaks off is no concern of the answer's."""
    left = limit
    while left > 0:
        try:
            data = body.read(min(left, 1 << 16))
        except Exception:  # the client went away, or sent broken chunks
            return
        if not data:
            return
        left -= len(data)


def _messages_or_error(messages: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Messages, then, if the work failed, the failure as the last message (never raised)."""
    try:
        yield from messages
    except Exception as error:
        yield error_message(message_of(_bad_input(error)))


def load_archive(engine: Engine, stream: Any, post: progress.Post, *, quiet: bool) -> None:
    """Load every image of a save archive into the store, posting Docker's messages."""
    from simulator.images.load import load

    store = engine.images
    with store.lease() as lease:
        loaded = load(stream, store.content, hold=lease.hold_blob)
        for entry in loaded:
            manifest = store.content.read(entry.manifest_digest)
            for tag in entry.repo_tags:
                previous = store.lookup_reference(tag)
                if previous is not None and previous != entry.config_digest:
                    post(
                        {
                            "stream": f"The image {tag} already exists, renaming the old one "
                            f"with ID {previous} to empty string\n"
                        }
                    )
            image = store.put_image(
                entry.config_bytes,
                manifest,
                tags=entry.repo_tags,
                lease=lease,
                progress=None if quiet else _loading_progress(entry.config_bytes, post),
            )
            publish_image_event(engine, "load", image.id, image.id, image)
            for tag in entry.repo_tags:
                post({"stream": f"Loaded image: {tag}\n"})
            if not entry.repo_tags:
                post({"stream": f"Loaded image ID: {image.id}\n"})


def _loading_progress(config_bytes: bytes, post: progress.Post) -> Any:
    """``Loading layer`` bars, by chain ID, for the layers that are unpacked."""
    from simulator.images import oci

    chain_ids = oci.chain_ids(oci.parse_image_config(config_bytes).diff_ids)
    throttles: dict[int, progress.Throttle] = {}

    def report(number: int, current: int, total: int) -> None:
        throttle = throttles.setdefault(number, progress.Throttle())
        if throttle.ready(finished=current >= total):
            layer = progress.short_id(chain_ids[number])
            post(progress.transfer(layer, "Loading layer", current, total))

    return report


# Registries


async def distribution_inspect(engine: Engine, request: Request) -> Response:
    """``GET /distribution/{name}/json``: the manifest's descriptor and its platforms, asked
    of the registry (the mirror first, for docker.io)."""
    name = request.params["name"]
    try:
        reference = parse(name)
    except InvalidReference as error:
        if re.fullmatch(r"(sha256:)?[0-9a-f]{64}", name):
            raise BadRequest("no manifest found for full image ID") from None
        raise BadRequest(str(error)) from None
    auth = registry_auth(request)
    result = await _in_thread(_inspect_remote, engine, reference, auth)
    return json_response(result)


def _inspect_remote(
    engine: Engine, reference: Reference, auth: Mapping[str, Any] | None
) -> dict[str, Any]:
    from simulator.images import oci
    from simulator.images.registry_client import (
        Credentials,
        RegistryClient,
        RegistryError,
        endpoints_for,
    )

    credentials = Credentials.from_auth_config(auth)
    endpoints = endpoints_for(
        reference.domain,
        engine.mirrors,
        engine.config.insecure_registries,
        not engine.config.offline,
    )
    failure: RegistryError | None = None
    for endpoint in endpoints:
        client = RegistryClient(endpoint.url, credentials=credentials)
        try:
            remote = client.get_manifest(reference.path, reference.digest or reference.tag or "")
            parsed = oci.parse_manifest(remote.data, remote.media_type or None)
            if isinstance(parsed, oci.Index):
                platforms = [
                    entry.platform.to_dict() for entry in parsed.manifests if entry.platform
                ]
            else:
                platforms = [_config_platform(engine.images, client, reference, parsed)]
        except RegistryError as error:
            failure = error
            continue
        except (oci.InvalidManifest, oci.InvalidImageConfig) as error:
            raise ServerError(str(error)) from None
        descriptor = {
            "mediaType": remote.media_type or parsed.media_type,
            "digest": remote.digest,
            "size": len(remote.data),
        }
        return {"Descriptor": descriptor, "Platforms": platforms}
    assert failure is not None
    if failure.code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"):
        raise NotFound(str(failure))
    if failure.code in ("DENIED", "UNAUTHORIZED"):
        raise Unauthorized(str(failure))
    raise ServerError(str(failure))


def _config_platform(
    store: ImageStore, client: Any, reference: Reference, manifest: Any
) -> dict[str, Any]:
    """The platform of a single-platform image, read from its config blob."""
    from simulator.images import oci

    config = manifest.config
    with store.lease() as lease:
        if not lease.hold_blob(config.digest):
            client.fetch_blob(reference.path, config.digest, config.size, store.content)
            lease.hold_blob(config.digest)
        data = store.content.read(config.digest)
    parsed = json.loads(data)
    platform = oci.parse_image_config(data).platform.to_dict()
    if isinstance(parsed.get("os.version"), str) and parsed["os.version"]:
        platform["os.version"] = parsed["os.version"]
    return platform
