"""``docker build`` (and ``docker image build``), as Docker's BuildKit client shows it: the
context from a directory, from ``-`` (a tar, or a Dockerfile alone), or from a git repository
(``URL#ref[:subdir]``, cloned here on the client with git, as Docker's CLI does); the build
itself on the engine's ``POST /build``; and BuildKit's plain progress (``#4 [1/6] FROM …``,
``#6 CACHED``, ``#9 writing image sha256:…``) drawn from the vertices the engine reports."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from simulator.cli.client import DaemonError
from simulator.cli.flags import Args, Command, Context, Flag, Options, StatusError

STRUCTURED_PROGRESS = "slipwayprogress"  # asks the engine for BuildKit-style vertices
AUX_KEY = "slipway"  # the aux messages that carry them
DEFAULT_DOCKERFILE = "Dockerfile"
_GIT_PREFIXES = ("git://", "git@", "github.com/")
_URL_SCHEMES = ("http://", "https://", "file://", "ssh://", "git://")


def register(root: Command, groups: dict[str, Command]) -> None:
    """Add ``docker build`` and ``docker image build``."""
    top = _build_command()
    top.group = "Common Commands"
    root.add(top)
    groups["image"].add(_build_command())


def _build_command() -> Command:
    return Command(
        "build",
        usage="[OPTIONS] PATH | URL | -",
        short="Build an image from a Dockerfile",
        description="Start a build",
        run=run_build,
        args=Args(1, 1),
        flags=[
            Flag("build-arg", kind="stringArray", help="Set build-time variables"),
            Flag(
                "file",
                "f",
                "string",
                'Name of the Dockerfile (default: "PATH/Dockerfile")',
            ),
            Flag("label", kind="stringArray", help="Set metadata for an image"),
            Flag(
                "network",
                kind="string",
                help='Set the networking mode for the "RUN" instructions during build',
                default="default",
                shown_default='"default"',
            ),
            Flag("no-cache", help="Do not use cache when building the image"),
            Flag(
                "progress",
                kind="string",
                help='Set type of progress output ("auto", "quiet", "plain", "tty", '
                '"rawjson"). Use plain to show container output',
                default="auto",
                shown_default='"auto"',
            ),
            Flag("pull", help="Always attempt to pull all referenced images"),
            Flag("quiet", "q", help="Suppress the build output and print image ID on success"),
            Flag("tag", "t", "stringArray", 'Name and optionally a tag (format: "name:tag")'),
            Flag("target", kind="string", help="Set the target build stage to build"),
        ],
    )


class BuildFailed(StatusError):
    """A build that failed: BuildKit's ``ERROR: …`` line, exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(1, f"ERROR: {message}")


def run_build(context: Context, options: Options, positional: list[str]) -> int:
    source = positional[0]
    progress = "quiet" if options["quiet"] else options["progress"]
    if progress not in ("auto", "quiet", "plain", "tty", "rawjson"):
        raise BuildFailed(f'failed to parse progress: invalid progress mode "{progress}"')
    query = _query(options)
    with tempfile.TemporaryDirectory(prefix="docker-build-") as scratch:
        body, dockerfile = _context(context, source, options["file"], scratch)
        query["dockerfile"] = dockerfile
        out = None if progress == "quiet" else context.stderr
        if out is not None:
            out.write('#0 building with "default" instance using docker driver\n\n')
        try:
            answer = context.client.request(
                "POST",
                "/build",
                query,
                body,
                {"Content-Type": "application/x-tar", "X-Registry-Config": "e30="},
            )
        except DaemonError as error:
            raise BuildFailed(f"failed to solve: {error.message}") from None
        finally:
            body.close()
        image_id = _show(answer.json_lines(), out, progress == "rawjson")
    if progress == "quiet":
        context.out(image_id)
    return 0


def _query(options: Options) -> dict[str, Any]:
    build_args: dict[str, str | None] = {}
    for value in options["build-arg"]:
        name, equals, text = value.partition("=")
        build_args[name] = text if equals else os.environ.get(name)
    labels = {}
    for value in options["label"]:
        name, _, text = value.partition("=")
        labels[name] = text
    query: dict[str, Any] = _RepeatedQuery(t=options["tag"])
    if build_args:
        query["buildargs"] = build_args
    if labels:
        query["labels"] = labels
    if options["target"]:
        query["target"] = options["target"]
    if options["no-cache"]:
        query["nocache"] = True
    if options["pull"]:
        query["pull"] = True
    if options["network"] and options["network"] != "default":
        query["networkmode"] = options["network"]
    query["version"] = "1"
    query[STRUCTURED_PROGRESS] = True
    return query


class _RepeatedQuery(dict):
    """Query parameters in which a list is the parameter repeated (``t=a&t=b``)."""

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        for key, value in super().items():
            if isinstance(value, list):
                yield from ((key, item) for item in value)
            else:
                yield key, value


# The context


def _context(
    context: Context, source: str, dockerfile: str | None, scratch: str
) -> tuple[IO[bytes], str]:
    """The context as a tar file to send, and the Dockerfile's name inside it."""
    if source == "-":
        return _stdin_context(context, dockerfile)
    if _is_git_url(source):
        directory = _clone(source, scratch)
        return _directory_context(directory, dockerfile, relative_to=directory, scratch=scratch)
    if source.startswith(("http://", "https://")):
        raise BuildFailed(
            f"unable to prepare context: downloading a remote context ({source}) is not "
            "supported; give a git URL, a directory or -"
        )
    if not os.path.isdir(source):
        raise BuildFailed(f'unable to prepare context: path "{source}" not found')
    return _directory_context(source, dockerfile, relative_to=os.getcwd(), scratch=scratch)


def _stdin_context(context: Context, dockerfile: str | None) -> tuple[IO[bytes], str]:
    data = context.stdin.buffer.read() if hasattr(context.stdin, "buffer") else b""
    if _is_tar(data):
        return io.BytesIO(data), dockerfile or DEFAULT_DOCKERFILE
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(DEFAULT_DOCKERFILE)
        info.size = len(data)
        info.mode = 0o600
        tar.addfile(info, io.BytesIO(data))
    archive.seek(0)
    return archive, DEFAULT_DOCKERFILE


def _is_tar(data: bytes) -> bool:
    if data.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
        return True
    return len(data) >= 512 and data[257:262] == b"ustar"


def _directory_context(
    directory: str, dockerfile: str | None, *, relative_to: str, scratch: str
) -> tuple[IO[bytes], str]:
    """A tar of ``directory``; a Dockerfile outside it is added under a name of its own."""
    root = os.path.abspath(directory)
    if dockerfile:
        path = os.path.abspath(os.path.join(relative_to, dockerfile))
    else:
        path = os.path.join(root, DEFAULT_DOCKERFILE)
        if not os.path.exists(path) and os.path.exists(os.path.join(root, "dockerfile")):
            path = os.path.join(root, "dockerfile")
    if not os.path.isfile(path):
        shown = dockerfile or os.path.join(directory, DEFAULT_DOCKERFILE)
        raise BuildFailed(
            f"failed to solve: failed to read dockerfile: open {shown}: no such file or directory"
        )
    outside = os.path.relpath(path, root).startswith("..")
    name = os.path.relpath(path, root)
    archive = tempfile.TemporaryFile(dir=scratch)
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in _walk(root):
            tar.add(os.path.join(root, entry), arcname=entry, recursive=False, filter=_as_root)
        if outside:
            name = f".dockerfile.{os.urandom(10).hex()}"
            tar.add(path, arcname=name, filter=_as_root)
    archive.seek(0)
    return archive, name


def _walk(root: str) -> Iterator[str]:
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        relative = os.path.relpath(directory, root)
        for name in sorted(dirnames + filenames):
            entry = name if relative == "." else f"{relative}/{name}"
            if entry == ".git":
                continue
            yield entry
        if relative == ".":
            dirnames[:] = [d for d in dirnames if d != ".git"]


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _is_git_url(source: str) -> bool:
    """As Docker's CLI: git://, git@ and github.com/ addresses, and URLs whose path ends in
    ``.git`` (``URL#ref[:subdir]`` allowed); ``file://`` repositories too."""
    if source.startswith(_GIT_PREFIXES):
        return True
    if not source.startswith(_URL_SCHEMES):
        return False
    return re.search(r"\.git(?:#.+)?$", source) is not None or (
        source.startswith("file://") and "#" in source
    )


def _clone(source: str, scratch: str) -> str:
    """Clone ``URL#ref[:subdir]`` with git into ``scratch``; the context directory."""
    url, _, fragment = source.partition("#")
    ref, _, subdir = fragment.partition(":")
    checkout = os.path.join(scratch, "git")
    git = shutil.which("git")
    if git is None:
        raise BuildFailed("unable to prepare context: git was not found in the system")
    environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [git, *arguments], capture_output=True, text=True, env=environment, cwd=checkout
        )

    os.mkdir(checkout)
    steps = [("init", "-q"), ("remote", "add", "origin", url)]
    for step in steps:
        result = run(*step)
        if result.returncode != 0:
            raise BuildFailed(f"unable to prepare context: {result.stderr.strip()}")
    wanted = ref or "HEAD"
    fetched = run("fetch", "-q", "--depth", "1", "origin", wanted)
    if fetched.returncode != 0:  # a dumb HTTP server can't serve a shallow fetch
        fetched = run("fetch", "-q", "origin", wanted)
    if fetched.returncode != 0:
        raise BuildFailed(
            f"unable to prepare context: unable to 'git clone' to temporary context directory: "
            f"error fetching: {fetched.stderr.strip()}"
        )
    checked = run("checkout", "-q", "FETCH_HEAD")
    if checked.returncode != 0:
        raise BuildFailed(f"unable to prepare context: {checked.stderr.strip()}")
    run("submodule", "update", "--init", "--recursive", "--depth=1")
    directory = os.path.realpath(os.path.join(checkout, subdir)) if subdir else checkout
    if not (directory + "/").startswith(os.path.realpath(checkout) + "/") and subdir:
        raise BuildFailed(f"unable to prepare context: subdirectory {subdir} is outside the repo")
    if not os.path.isdir(directory):
        raise BuildFailed(
            f"unable to prepare context: error reading subdirectory {subdir}: it does not exist"
        )
    return directory


# Progress


def _show(messages: Iterator[dict[str, Any]], out: IO[str] | None, raw: bool) -> str:
    """Draw the build's vertices as BuildKit's plain progress; the image ID built."""
    image_id = ""
    names: dict[int, str] = {}
    last = 0
    for message in messages:
        if "errorDetail" in message or "error" in message:
            text = (message.get("errorDetail") or {}).get("message") or message.get("error", "")
            raise BuildFailed(f"failed to solve: {text}")
        aux = message.get("aux")
        if not isinstance(aux, dict):
            continue
        if "ID" in aux:
            image_id = aux["ID"]
            continue
        event = aux.get(AUX_KEY)
        if not isinstance(event, dict) or out is None:
            continue
        if raw:
            out.write(json.dumps(event) + "\n")
            continue
        last = _draw(event, out, names, last)
        out.flush()
    return image_id


def _draw(event: dict[str, Any], out: IO[str], names: dict[int, str], last: int) -> int:
    vertex = event.get("vertex")
    if "warning" in event:
        out.write(event["warning"])
        return last
    if not isinstance(vertex, int):
        return last
    prefix = f"#{vertex}"
    if "error" in event:
        out.write(f"{prefix} ERROR: {event['error']}\n")
        out.write(f"------\n > {names.get(vertex, event.get('name', ''))}:\n------\n")
        return vertex
    if "name" in event:
        names[vertex] = event["name"]
        out.write(f"{prefix} {event['name']}\n")
    elif "status" in event:
        seconds = event.get("seconds")
        status = event["status"]
        if seconds is not None and status.endswith(" done"):
            status = f"{status.removesuffix(' done')} {seconds:.1f}s done"
        out.write(f"{prefix} {status}\n")
    elif "log" in event:
        at = float(event.get("at", 0.0))
        for line in event["log"].splitlines():
            out.write(f"{prefix} {at:.3f} {line}\n")
    elif event.get("cached"):
        out.write(f"{prefix} CACHED\n\n")
    elif "done" in event:
        out.write(f"{prefix} DONE {float(event['done']):.1f}s\n\n")
    return vertex
