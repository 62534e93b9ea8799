"""Image references: Docker's normalisation, its familiar form, its error messages, and the
docker CLI itself agreeing with us (it parses references before it talks to a daemon)."""

from __future__ import annotations

import http.server
import os
import shutil
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from simulator.images.reference import InvalidReference, Reference, parse, parse_named

ZEROS = "0" * 64
HEX = "0123456789abcdef" * 4

LONGEST_OFFICIAL = "a" * 247  # the longest repository path is 255, counting "library/"
LONGEST_PATH = "a" * 255

# input -> (canonical string, familiar string)
VALID = {
    "redis": ("docker.io/library/redis:latest", "redis:latest"),
    "redis:7.0": ("docker.io/library/redis:7.0", "redis:7.0"),
    "library/redis": ("docker.io/library/redis:latest", "redis:latest"),
    "docker.io/redis": ("docker.io/library/redis:latest", "redis:latest"),
    "docker.io/library/redis:latest": ("docker.io/library/redis:latest", "redis:latest"),
    "index.docker.io/redis": ("docker.io/library/redis:latest", "redis:latest"),
    "user/app": ("docker.io/user/app:latest", "user/app:latest"),
    "docker.io/user/app:v1": ("docker.io/user/app:v1", "user/app:v1"),
    "a/b/c/d": ("docker.io/a/b/c/d:latest", "a/b/c/d:latest"),
    "docker.io/library/a/b": ("docker.io/library/a/b:latest", "library/a/b:latest"),
    "my_host/x": ("docker.io/my_host/x:latest", "my_host/x:latest"),
    "localhost/x": ("localhost/x:latest", "localhost/x:latest"),
    "localhost:5000/a/b:t": ("localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    "127.0.0.1:5000/x": ("127.0.0.1:5000/x:latest", "127.0.0.1:5000/x:latest"),
    "foo:5000/bar": ("foo:5000/bar:latest", "foo:5000/bar:latest"),
    "a.b.c/d": ("a.b.c/d:latest", "a.b.c/d:latest"),
    "[::1]:5000/x": ("[::1]:5000/x:latest", "[::1]:5000/x:latest"),
    "[::1]/x": ("[::1]/x:latest", "[::1]/x:latest"),
    # an uppercase first component can't be a namespace, so it is a host
    "Foo/bar": ("Foo/bar:latest", "Foo/bar:latest"),
    "NS/redis": ("NS/redis:latest", "NS/redis:latest"),
    # one component is always a name on docker.io, even one that looks like a host
    "localhost": ("docker.io/library/localhost:latest", "localhost:latest"),
    "localhost:5000": ("docker.io/library/localhost:5000", "localhost:5000"),
    "example.com": ("docker.io/library/example.com:latest", "example.com:latest"),
    "foo:5000": ("docker.io/library/foo:5000", "foo:5000"),
    # separators: one period, one or two underscores, any number of dashes
    "a__b": ("docker.io/library/a__b:latest", "a__b:latest"),
    "a--b": ("docker.io/library/a--b:latest", "a--b:latest"),
    "a.b_c-d": ("docker.io/library/a.b_c-d:latest", "a.b_c-d:latest"),
    # tags: a word character, then up to 127 of word characters, "." and "-"; any case
    "redis:_x": ("docker.io/library/redis:_x", "redis:_x"),
    "redis:x.y-Z": ("docker.io/library/redis:x.y-Z", "redis:x.y-Z"),
    "redis:TAG": ("docker.io/library/redis:TAG", "redis:TAG"),
    "redis:" + "t" * 128: ("docker.io/library/redis:" + "t" * 128, "redis:" + "t" * 128),
    # digests: no default tag; a tag and a digest together are both kept
    f"redis@sha256:{HEX}": (f"docker.io/library/redis@sha256:{HEX}", f"redis@sha256:{HEX}"),
    f"host:5000/a/b@sha256:{ZEROS}": (
        f"host:5000/a/b@sha256:{ZEROS}",
        f"host:5000/a/b@sha256:{ZEROS}",
    ),
    f"redis:7@sha256:{HEX}": (f"docker.io/library/redis:7@sha256:{HEX}", f"redis:7@sha256:{HEX}"),
    f"a.b/c:TAG@sha256:{HEX}": (f"a.b/c:TAG@sha256:{HEX}", f"a.b/c:TAG@sha256:{HEX}"),
    f"redis@sha512:{HEX}{HEX}": (
        f"docker.io/library/redis@sha512:{HEX}{HEX}",
        f"redis@sha512:{HEX}{HEX}",
    ),
    # "sha256" is a repository name here, and the hex its tag
    f"sha256:{ZEROS}": (f"docker.io/library/sha256:{ZEROS}", f"sha256:{ZEROS}"),
    LONGEST_OFFICIAL: (
        f"docker.io/library/{LONGEST_OFFICIAL}:latest",
        f"{LONGEST_OFFICIAL}:latest",
    ),
    f"example.com/{LONGEST_PATH}": (
        f"example.com/{LONGEST_PATH}:latest",
        f"example.com/{LONGEST_PATH}:latest",
    ),
}

# input -> (domain, repository path, tag, digest)
PARTS = {
    "redis": ("docker.io", "library/redis", "latest", None),
    "user/app": ("docker.io", "user/app", "latest", None),
    "docker.io/library/a/b": ("docker.io", "library/a/b", "latest", None),
    "localhost/x": ("localhost", "x", "latest", None),
    "localhost:5000/a/b:t": ("localhost:5000", "a/b", "t", None),
    "[::1]:5000/x": ("[::1]:5000", "x", "latest", None),
    "Foo/bar": ("Foo", "bar", "latest", None),
    "localhost:5000": ("docker.io", "library/localhost", "5000", None),
    f"host:5000/a/b@sha256:{ZEROS}": ("host:5000", "a/b", None, f"sha256:{ZEROS}"),
    f"redis:7@sha256:{HEX}": ("docker.io", "library/redis", "7", f"sha256:{HEX}"),
}

LOWERCASE = "invalid reference format: repository name ({}) must be lowercase"
INVALID_FORMAT = "invalid reference format"
TOO_LONG = "repository name must not be more than 255 characters"

# input -> docker's message
ERRORS = {
    "": INVALID_FORMAT,
    ":tag": INVALID_FORMAT,
    "redis:": INVALID_FORMAT,
    "redis@": INVALID_FORMAT,
    "@sha256:" + ZEROS: INVALID_FORMAT,
    "a//b": INVALID_FORMAT,
    "/redis": INVALID_FORMAT,
    "redis/": INVALID_FORMAT,
    "a___b": INVALID_FORMAT,
    "a.-b": INVALID_FORMAT,
    "a-": INVALID_FORMAT,
    "redis:-x": INVALID_FORMAT,
    "redis:.x": INVALID_FORMAT,
    "redis:tag:tag2": INVALID_FORMAT,
    "redis:a/b": INVALID_FORMAT,
    "redis:" + "t" * 129: INVALID_FORMAT,
    "red is": INVALID_FORMAT,
    "redis\n": INVALID_FORMAT,
    "rédis": INVALID_FORMAT,
    f"redis@@sha256:{ZEROS}": INVALID_FORMAT,
    "redis@sha256:abc": INVALID_FORMAT,  # fewer than 32 hex digits is not a digest at all
    "[fe80::1%eth0]:5000/x": INVALID_FORMAT,  # zone identifiers are not allowed
    "host:port/x": INVALID_FORMAT,
    "Redis": LOWERCASE.format("library/Redis"),
    "REDIS": LOWERCASE.format("library/REDIS"),
    "REDIS:7": LOWERCASE.format("library/REDIS"),
    "ns/Redis": LOWERCASE.format("ns/Redis"),
    "a/B:c": LOWERCASE.format("a/B"),
    "a.b/C": LOWERCASE.format("C"),
    "localhost:5000/Foo:t": LOWERCASE.format("Foo"),
    f"Redis@sha256:{ZEROS}": LOWERCASE.format("library/Redis@sha256"),
    f"redis@SHA256:{ZEROS}": LOWERCASE.format("library/redis@SHA256"),
    "redis@sha256:" + "0" * 32: "invalid checksum digest length",
    "redis@sha256:" + "A" * 64: "invalid checksum digest format",
    "redis@md5:" + "0" * 32: "unsupported digest algorithm",
    f"redis@sha256+b64:{ZEROS}": "unsupported digest algorithm",
    ZEROS: f"invalid repository name ({ZEROS}), cannot specify 64-byte hexadecimal strings",
    HEX: f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings",
    "a" * 248: TOO_LONG,
    "example.com/" + "a" * 256: TOO_LONG,
    "user/" + "a" * 251: TOO_LONG,
}


def short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)})"


@pytest.mark.parametrize("text", VALID, ids=short)
def test_valid_references_normalise_as_docker_does(text: str) -> None:
    string, familiar = VALID[text]
    reference = parse(text)
    assert reference.string == string
    assert str(reference) == string
    assert reference.familiar == familiar
    assert reference.name == f"{reference.domain}/{reference.path}"
    assert parse(reference.string) == reference  # the canonical form is a fixed point
    assert parse(reference.familiar) == reference


@pytest.mark.parametrize("text", PARTS, ids=short)
def test_a_reference_splits_into_domain_path_tag_and_digest(text: str) -> None:
    reference = parse(text)
    assert (reference.domain, reference.path, reference.tag, reference.digest) == PARTS[text]
    assert reference.repository_path == reference.path


@pytest.mark.parametrize("text", ERRORS, ids=short)
def test_invalid_references_fail_with_dockers_message(text: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse(text)
    assert str(caught.value) == ERRORS[text]


def test_invalid_reference_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="^invalid reference format$"):
        parse("a//b")


def test_a_reference_that_is_not_a_string_is_invalid() -> None:
    with pytest.raises(InvalidReference, match="^invalid reference format$"):
        parse(None)  # type: ignore[arg-type]


def test_the_default_tag_is_added_only_when_there_is_neither_tag_nor_digest() -> None:
    assert parse("redis").tag == "latest"
    assert parse("redis:7").tag == "7"
    assert parse(f"redis@sha256:{HEX}").tag is None


def test_parse_named_normalises_without_adding_a_tag() -> None:
    named = parse_named("redis")
    assert named == Reference("docker.io", "library/redis")
    assert named.is_name_only
    assert named.string == "docker.io/library/redis"
    assert named.familiar == "redis"
    assert parse_named("localhost:5000/a/b:t").tag == "t"


def test_familiar_names_drop_only_docker_io_and_library() -> None:
    assert parse("docker.io/library/redis").familiar_name == "redis"
    assert parse("docker.io/user/app").familiar_name == "user/app"
    assert parse("docker.io/library/a/b").familiar_name == "library/a/b"
    assert parse("localhost:5000/library/redis").familiar_name == "localhost:5000/library/redis"


def test_a_tag_and_a_digest_can_be_added_and_removed() -> None:
    reference = parse_named("redis")
    tagged = reference.with_tag("7.0")
    assert tagged.string == "docker.io/library/redis:7.0"
    pinned = tagged.with_digest(f"sha256:{HEX}")
    assert pinned.string == f"docker.io/library/redis:7.0@sha256:{HEX}"
    assert pinned.name_only() == reference


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a/b", "t" * 129, "a b", "ü"])
def test_a_bad_tag_is_refused(tag: str) -> None:
    with pytest.raises(InvalidReference, match="^invalid tag format$"):
        parse_named("redis").with_tag(tag)


@pytest.mark.parametrize("digest", ["", "sha256:abc", "sha256", ":" + ZEROS, "1sha:" + ZEROS])
def test_a_bad_digest_is_refused(digest: str) -> None:
    with pytest.raises(InvalidReference, match="^invalid digest format$"):
        parse_named("redis").with_digest(digest)


def test_references_are_values() -> None:
    assert parse("redis") == parse("docker.io/library/redis:latest")
    assert len({parse("redis"), parse("library/redis"), parse("index.docker.io/redis")}) == 1


# The docker CLI as the reference implementation. `docker pull` parses the reference
# itself: a bad one fails before any connection; a good one is sent to the daemon, and the
# CLI prints the canonical reference last. A stand-in daemon on a unix socket answers.


class _PullAnswerer(http.server.BaseHTTPRequestHandler):
    """Just enough of the Engine API for `docker pull` to succeed."""

    def do_HEAD(self) -> None:  # /_ping
        self._answer(b"OK", "text/plain")

    def do_GET(self) -> None:  # /_ping
        self._answer(b"OK", "text/plain")

    def do_POST(self) -> None:  # /images/create
        self._answer(b'{"status":"done"}\n', "application/json")

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Api-Version", "1.50")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):  # type: ignore[no-untyped-def]
        connection, _ = super().get_request()
        return connection, ("local", 0)  # http.server wants a (host, port) client address


@pytest.fixture(scope="module")
def docker_pull(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    docker = shutil.which("docker")
    if docker is None:
        pytest.fail("the docker CLI is not on PATH: this suite compares with it", pytrace=False)
    directory: Path = tmp_path_factory.mktemp("docker-cli")
    socket_path = directory / "engine.sock"
    server = _UnixHTTPServer(str(socket_path), _PullAnswerer)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),
        "DOCKER_HOST": f"unix://{socket_path}",
        "DOCKER_CONFIG": str(directory / "config"),
    }

    def pull(text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [docker, "pull", "--", text],
            env=environment,
            capture_output=True,
            text=True,
            timeout=30,
        )

    try:
        yield pull
    finally:
        server.shutdown()
        server.server_close()
        serving.join(timeout=10)
        socket_path.unlink(missing_ok=True)


def test_the_docker_cli_normalises_every_valid_reference_as_we_do(docker_pull) -> None:  # noqa: ANN001
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(VALID, pool.map(docker_pull, VALID), strict=True))
    disagreements = {}
    for text, result in results.items():
        printed = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        if result.returncode != 0 or printed != parse(text).string:
            disagreements[text] = (result.returncode, printed, result.stderr.strip())
    assert disagreements == {}


def test_the_docker_cli_refuses_every_invalid_reference_with_our_message(docker_pull) -> None:  # noqa: ANN001
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(ERRORS, pool.map(docker_pull, ERRORS), strict=True))
    disagreements = {}
    for text, result in results.items():
        if result.returncode == 0 or result.stderr.strip() != ERRORS[text]:
            disagreements[text] = (result.returncode, result.stderr.strip())
    assert disagreements == {}
