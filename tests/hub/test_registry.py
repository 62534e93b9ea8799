"""The hub's registry API, spoken over real HTTP to a server on a loopback port: uploads,
manifests, ranges, pagination, and every error in the spec's shape, with nothing left
behind by a failure."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from simulator.hub.registry import Registry
from simulator.hub.storage import HubStorage
from simulator.images.oci import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

# Helpers and the served hub


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_code(self) -> str:
        """The code of the one error in a spec-shaped error body."""
        assert self.headers["Content-Type"] == "application/json"
        errors = self.json()["errors"]
        assert len(errors) == 1 and set(errors[0]) <= {"code", "message", "detail"}
        return errors[0]["code"]


class Client:
    """HTTP/1.1 to the registry over one kept-alive connection (reopened if it closes)."""

    def __init__(self, host: str, port: int) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=10)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
        *,
        chunked: bool = False,
    ) -> Response:
        self.connection.request(
            method, path, body=body, headers=headers or {}, encode_chunked=chunked
        )
        response = self.connection.getresponse()
        data = response.read()
        return Response(response.status, response.headers, data)

    def close(self) -> None:
        self.connection.close()


@dataclass
class Hub:
    server: Registry
    storage: HubStorage
    root: Path
    client: Client

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def blobs_on_disk(self) -> set[str]:
        return set(os.listdir(self.root / "content" / "blobs" / "sha256"))

    def ingests_on_disk(self) -> set[str]:
        return set(os.listdir(self.root / "content" / "ingest"))

    def push_blob(self, repository: str, data: bytes) -> str:
        digest = sha256(data)
        response = self.client.request(
            "POST", f"/v2/{repository}/blobs/uploads/?digest={digest}", data
        )
        assert response.status == 201, response.body
        return digest

    def push_image(
        self, repository: str, tag: str, layer: bytes = b"layer bytes", config: bytes = b"{}"
    ) -> tuple[str, bytes]:
        """Push a config, one layer and an OCI manifest; return the manifest's digest and bytes."""
        manifest = image_manifest(config, [layer])
        self.push_blob(repository, config)
        self.push_blob(repository, layer)
        response = self.client.request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            manifest,
            {"Content-Type": OCI_MANIFEST},
        )
        assert response.status == 201, response.body
        return sha256(manifest), manifest


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def image_manifest(config: bytes, layers: list[bytes], **extra: Any) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", x) for x in layers],
        **extra,
    }
    return json.dumps(document, indent=2).encode()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    root = tmp_path / "hub"
    with HubStorage(root) as storage:
        server = Registry(("127.0.0.1", 0), storage, quiet=True)
        thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="hub", daemon=True
        )
        thread.start()
        client = Client("127.0.0.1", server.server_address[1])
        try:
            yield Hub(server, storage, root, client)
        finally:
            client.close()
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


# The base endpoint and the connection


def test_base_endpoint_answers_200_with_the_api_version_header(hub: Hub) -> None:
    response = hub.client.request("GET", "/v2/")
    assert response.status == 200
    assert response.json() == {}
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert response.headers["Content-Type"] == "application/json"


def test_one_kept_alive_connection_serves_successes_errors_and_heads(hub: Hub) -> None:
    hub.client.request("GET", "/v2/")
    first_socket = hub.client.connection.sock
    digest = hub.push_blob("keep/alive", b"abc")
    for method, path, status in [
        ("HEAD", f"/v2/keep/alive/blobs/{digest}", 200),
        ("GET", f"/v2/keep/alive/blobs/{digest}", 200),
        ("GET", "/v2/keep/alive/manifests/missing", 404),
        ("HEAD", "/v2/keep/alive/manifests/missing", 404),
        ("GET", "/v2/keep/alive/blobs/sha256:zz", 400),
        ("POST", "/v2/keep/alive/blobs/uploads/", 202),
        ("GET", "/v2/_catalog", 200),
    ]:
        assert hub.client.request(method, path).status == status, (method, path)
    assert hub.client.connection.sock is first_socket


def test_head_answers_with_the_length_of_the_body_it_leaves_out(hub: Hub) -> None:
    digest = hub.push_blob("heads/up", b"twelve bytes")
    response = hub.client.request("HEAD", f"/v2/heads/up/blobs/{digest}")
    assert response.status == 200 and response.body == b""
    assert response.headers["Content-Length"] == "12"
    assert response.headers["Docker-Content-Digest"] == digest


def test_unknown_endpoint_and_unsupported_method_get_unsupported(hub: Hub) -> None:
    response = hub.client.request("GET", "/v3/")
    assert (response.status, response.error_code) == (404, "UNSUPPORTED")
    response = hub.client.request("POST", "/v2/a/manifests/latest")
    assert (response.status, response.error_code) == (405, "UNSUPPORTED")
    assert response.headers["Allow"] == "GET, HEAD, PUT, DELETE"
    response = hub.client.request("OPTIONS", "/v2/")
    assert (response.status, response.error_code) == (405, "UNSUPPORTED")


# Blob uploads


def test_post_then_put_uploads_a_blob_monolithically(hub: Hub) -> None:
    started = hub.client.request("POST", "/v2/library/redis/blobs/uploads/")
    assert started.status == 202
    location = started.headers["Location"]
    assert location.startswith("/v2/library/redis/blobs/uploads/")
    assert started.headers["Range"] == "0-0"
    assert location.endswith(started.headers["Docker-Upload-UUID"])
    data = b"a monolithic blob"
    finished = hub.client.request("PUT", f"{location}?digest={sha256(data)}", data)
    assert finished.status == 201
    assert finished.headers["Location"] == f"/v2/library/redis/blobs/{sha256(data)}"
    assert finished.headers["Docker-Content-Digest"] == sha256(data)
    fetched = hub.client.request("GET", finished.headers["Location"])
    assert fetched.status == 200 and fetched.body == data
    assert fetched.headers["Content-Type"] == "application/octet-stream"
    assert hub.ingests_on_disk() == set()


def test_single_post_with_digest_creates_the_blob(hub: Hub) -> None:
    data = b"one post"
    response = hub.client.request(
        "POST", f"/v2/one/post/blobs/uploads/?digest={sha256(data)}", data
    )
    assert response.status == 201
    assert response.headers["Docker-Content-Digest"] == sha256(data)
    assert hub.client.request("GET", f"/v2/one/post/blobs/{sha256(data)}").body == data


def test_empty_blob_uploads_and_serves(hub: Hub) -> None:
    digest = hub.push_blob("empty/blob", b"")
    response = hub.client.request("GET", f"/v2/empty/blob/blobs/{digest}")
    assert (response.status, response.body, response.headers["Content-Length"]) == (200, b"", "0")


def test_patch_chunks_in_order_then_put_completes_a_chunked_upload(hub: Hub) -> None:
    location = hub.client.request("POST", "/v2/chunky/blobs/uploads/").headers["Location"]
    chunks = [b"first-", b"second-", b"third"]
    offset = 0
    for chunk in chunks:
        response = hub.client.request(
            "PATCH",
            location,
            chunk,
            {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
            },
        )
        offset += len(chunk)
        assert response.status == 202
        assert response.headers["Range"] == f"0-{offset - 1}"
        location = response.headers["Location"]
    status = hub.client.request("GET", location)
    assert status.status == 204 and status.headers["Range"] == f"0-{offset - 1}"
    assert "Content-Length" not in status.headers
    whole = b"".join(chunks)
    finished = hub.client.request("PUT", f"{location}?digest={sha256(whole)}")
    assert finished.status == 201
    assert hub.client.request("GET", f"/v2/chunky/blobs/{sha256(whole)}").body == whole


def test_last_chunk_may_come_with_the_closing_put(hub: Hub) -> None:
    location = hub.client.request("POST", "/v2/last/chunk/blobs/uploads/").headers["Location"]
    hub.client.request("PATCH", location, b"head", {"Content-Range": "0-3"})
    whole = b"head+tail"
    finished = hub.client.request(
        "PUT", f"{location}?digest={sha256(whole)}", b"+tail", {"Content-Range": "4-8"}
    )
    assert finished.status == 201
    assert hub.client.request("GET", f"/v2/last/chunk/blobs/{sha256(whole)}").body == whole


def test_streamed_patch_with_chunked_transfer_coding_is_decoded(hub: Hub) -> None:
    location = hub.client.request("POST", "/v2/streamed/blobs/uploads/").headers["Location"]
    parts = [b"x" * 70000, b"y" * 5, b"z" * 1]
    response = hub.client.request("PATCH", location, iter(parts), chunked=True)
    assert response.status == 202 and response.headers["Range"] == "0-70005"
    whole = b"".join(parts)
    assert hub.client.request("PUT", f"{location}?digest={sha256(whole)}").status == 201
    assert hub.client.request("GET", f"/v2/streamed/blobs/{sha256(whole)}").body == whole


def test_out_of_order_chunk_gets_416_and_the_upload_stays_resumable(hub: Hub) -> None:
    location = hub.client.request("POST", "/v2/order/blobs/uploads/").headers["Location"]
    hub.client.request("PATCH", location, b"0123", {"Content-Range": "0-3"})
    skipped = hub.client.request("PATCH", location, b"89", {"Content-Range": "8-9"})
    assert (skipped.status, skipped.error_code) == (416, "BLOB_UPLOAD_INVALID")
    assert hub.client.request("GET", location).headers["Range"] == "0-3"
    resumed = hub.client.request("PATCH", location, b"4567", {"Content-Range": "4-7"})
    assert resumed.status == 202 and resumed.headers["Range"] == "0-7"


def test_chunk_whose_length_disagrees_with_its_range_is_size_invalid(hub: Hub) -> None:
    location = hub.client.request("POST", "/v2/sizes/blobs/uploads/").headers["Location"]
    response = hub.client.request("PATCH", location, b"abc", {"Content-Range": "0-9"})
    assert (response.status, response.error_code) == (400, "SIZE_INVALID")


def test_cancelled_upload_is_unknown_and_leaves_no_ingest(hub: Hub) -> None:
    location = hub.client.request("POST", "/v2/cancel/me/blobs/uploads/").headers["Location"]
    hub.client.request("PATCH", location, b"some bytes", {"Content-Range": "0-9"})
    assert len(hub.ingests_on_disk()) == 1
    assert hub.client.request("DELETE", location).status == 204
    assert hub.ingests_on_disk() == set()
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        response = hub.client.request(method, location)
        assert (response.status, response.error_code) == (404, "BLOB_UPLOAD_UNKNOWN"), method


def test_upload_is_unknown_under_another_repository(hub: Hub) -> None:
    upload_id = hub.client.request("POST", "/v2/mine/blobs/uploads/").headers["Docker-Upload-UUID"]
    response = hub.client.request("GET", f"/v2/theirs/blobs/uploads/{upload_id}")
    assert (response.status, response.error_code) == (404, "BLOB_UPLOAD_UNKNOWN")


def test_corrupted_upload_gets_digest_invalid_and_leaves_no_blob(hub: Hub) -> None:
    location = hub.client.request("POST", "/v2/corrupt/blobs/uploads/").headers["Location"]
    sent = b"the bytes that were meant"
    response = hub.client.request(
        "PUT", f"{location}?digest={sha256(sent)}", b"the bytes that arrived"
    )
    assert (response.status, response.error_code) == (400, "DIGEST_INVALID")
    assert hub.blobs_on_disk() == set() and hub.ingests_on_disk() == set()
    assert hub.client.request("GET", f"/v2/corrupt/blobs/{sha256(sent)}").status == 404
    assert hub.client.request("GET", location).status == 404


def test_corrupted_single_post_leaves_no_blob(hub: Hub) -> None:
    digest = sha256(b"expected")
    response = hub.client.request("POST", f"/v2/corrupt/blobs/uploads/?digest={digest}", b"other")
    assert (response.status, response.error_code) == (400, "DIGEST_INVALID")
    assert hub.blobs_on_disk() == set() and hub.ingests_on_disk() == set()


def test_upload_missing_chunks_fails_its_digest_and_leaves_no_blob(hub: Hub) -> None:
    location = hub.client.request("POST", "/v2/partial/blobs/uploads/").headers["Location"]
    whole = b"chunk one|chunk two|chunk three"
    hub.client.request("PATCH", location, whole[:10], {"Content-Range": "0-9"})
    response = hub.client.request("PUT", f"{location}?digest={sha256(whole)}")
    assert (response.status, response.error_code) == (400, "DIGEST_INVALID")
    assert hub.blobs_on_disk() == set() and hub.ingests_on_disk() == set()


def _raw_exchange(port: int, head: bytes, body: bytes) -> bytes:
    """Send a request whose body stops short, half-close, and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head + body)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while data := connection.recv(65536):
            answer += data
    return answer


def test_truncated_chunked_upload_is_rejected_and_leaves_no_blob(hub: Hub) -> None:
    location = hub.client.request("POST", "/v2/cut/short/blobs/uploads/").headers["Location"]
    assert len(hub.ingests_on_disk()) == 1
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: hub\r\n"
        "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    answer = _raw_exchange(hub.port, head, b"400\r\n" + b"a" * 100)  # 1024 promised, 100 sent
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 400 Bad Request"
    assert b"Connection: close" in rest
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    assert hub.blobs_on_disk() == set() and hub.ingests_on_disk() == set()
    response = hub.client.request("PUT", f"{location}?digest={sha256(b'a' * 1024)}")
    assert (response.status, response.error_code) == (404, "BLOB_UPLOAD_UNKNOWN")


def test_single_post_cut_short_of_its_content_length_leaves_no_blob(hub: Hub) -> None:
    data = b"b" * 1000
    head = (
        f"POST /v2/cut/short/blobs/uploads/?digest={sha256(data)} HTTP/1.1\r\nHost: hub\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode()
    answer = _raw_exchange(hub.port, head, data[:10])
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert hub.blobs_on_disk() == set() and hub.ingests_on_disk() == set()


def test_mount_links_a_blob_from_another_repository(hub: Hub) -> None:
    digest = hub.push_blob("library/debian", b"shared layer")
    response = hub.client.request(
        "POST", f"/v2/library/python/blobs/uploads/?mount={digest}&from=library/debian"
    )
    assert response.status == 201
    assert response.headers["Location"] == f"/v2/library/python/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    assert hub.client.request("GET", f"/v2/library/python/blobs/{digest}").body == b"shared layer"
    assert hub.ingests_on_disk() == set()


def test_mount_of_a_blob_the_source_lacks_starts_an_upload_instead(hub: Hub) -> None:
    digest = hub.push_blob("has/it", b"layer")
    for source in ("lacks/it", "Not-A-Name"):
        response = hub.client.request(
            "POST", f"/v2/wants/it/blobs/uploads/?mount={digest}&from={source}"
        )
        assert response.status == 202
        assert response.headers["Location"].startswith("/v2/wants/it/blobs/uploads/")
        assert hub.client.request("DELETE", response.headers["Location"]).status == 204
    assert hub.client.request("HEAD", f"/v2/wants/it/blobs/{digest}").status == 404


def test_mount_without_from_finds_the_blob_in_any_repository(hub: Hub) -> None:
    digest = hub.push_blob("some/where", b"layer")
    response = hub.client.request("POST", f"/v2/else/where/blobs/uploads/?mount={digest}")
    assert response.status == 201


def test_blobs_are_scoped_to_their_repository(hub: Hub) -> None:
    digest = hub.push_blob("owner/repo", b"private")
    response = hub.client.request("GET", f"/v2/other/repo/blobs/{digest}")
    assert (response.status, response.error_code) == (404, "BLOB_UNKNOWN")


# Blob reads and deletes


@pytest.mark.parametrize(
    ("range_header", "content_range", "body"),
    [
        ("bytes=2-5", "bytes 2-5/10", b"2345"),
        ("bytes=7-", "bytes 7-9/10", b"789"),
        ("bytes=-3", "bytes 7-9/10", b"789"),
        ("bytes=8-100", "bytes 8-9/10", b"89"),
    ],
)
def test_range_read_returns_206_with_content_range(
    hub: Hub, range_header: str, content_range: str, body: bytes
) -> None:
    digest = hub.push_blob("ranges", b"0123456789")
    response = hub.client.request(
        "GET", f"/v2/ranges/blobs/{digest}", headers={"Range": range_header}
    )
    assert response.status == 206
    assert response.headers["Content-Range"] == content_range
    assert response.body == body


@pytest.mark.parametrize(
    "range_header", ["bytes=10-", "bytes=5-2", "bytes=-0", "lines=1-2", "bytes="]
)
def test_unsatisfiable_range_gets_416(hub: Hub, range_header: str) -> None:
    digest = hub.push_blob("ranges", b"0123456789")
    response = hub.client.request(
        "GET", f"/v2/ranges/blobs/{digest}", headers={"Range": range_header}
    )
    assert response.status == 416
    assert response.headers["Content-Range"] == "bytes */10"
    assert response.error_code == "UNSUPPORTED"


def test_deleted_blob_is_unknown_and_freed_once_no_repository_holds_it(hub: Hub) -> None:
    digest = hub.push_blob("first", b"layer")
    hub.client.request("POST", f"/v2/second/blobs/uploads/?mount={digest}&from=first")
    assert hub.client.request("DELETE", f"/v2/first/blobs/{digest}").status == 202
    assert hub.client.request("HEAD", f"/v2/first/blobs/{digest}").status == 404
    assert hub.blobs_on_disk() == {digest.removeprefix("sha256:")}
    assert hub.client.request("DELETE", f"/v2/second/blobs/{digest}").status == 202
    assert hub.blobs_on_disk() == set()
    again = hub.client.request("DELETE", f"/v2/second/blobs/{digest}")
    assert (again.status, again.error_code) == (404, "BLOB_UNKNOWN")


def test_unknown_blob_gets_blob_unknown(hub: Hub) -> None:
    digest = sha256(b"never pushed")
    for method in ("GET", "HEAD", "DELETE"):
        response = hub.client.request(method, f"/v2/nothing/here/blobs/{digest}")
        assert response.status == 404, method
        if method != "HEAD":
            assert response.error_code == "BLOB_UNKNOWN"


@pytest.mark.parametrize(
    "digest", ["sha256:zz", "sha256:" + "A" * 64, "sha512:" + "a" * 128, "md5:abc", "latest"]
)
def test_invalid_digest_gets_digest_invalid(hub: Hub, digest: str) -> None:
    response = hub.client.request("GET", f"/v2/some/repo/blobs/{digest}")
    assert (response.status, response.error_code) == (400, "DIGEST_INVALID")
    response = hub.client.request("POST", f"/v2/some/repo/blobs/uploads/?digest={digest}", b"x")
    assert (response.status, response.error_code) == (400, "DIGEST_INVALID")
    assert hub.blobs_on_disk() == set() and hub.ingests_on_disk() == set()


def test_closing_put_without_digest_gets_digest_invalid(hub: Hub) -> None:
    location = hub.client.request("POST", "/v2/no/digest/blobs/uploads/").headers["Location"]
    response = hub.client.request("PUT", location, b"data")
    assert (response.status, response.error_code) == (400, "DIGEST_INVALID")


def test_post_with_a_body_but_no_digest_is_an_invalid_upload(hub: Hub) -> None:
    response = hub.client.request("POST", "/v2/no/digest/blobs/uploads/", b"orphan bytes")
    assert (response.status, response.error_code) == (400, "BLOB_UPLOAD_INVALID")
    assert hub.ingests_on_disk() == set()


# Repository names


@pytest.mark.parametrize(
    "name",
    [
        "Library/redis",
        "library//redis",
        "-redis",
        "redis-",
        "re..dis",
        "redis/",
        "_redis",
        "a/" * 127 + "toolong",
    ],
)
def test_invalid_repository_name_gets_name_invalid(hub: Hub, name: str) -> None:
    for method, path in [
        ("GET", f"/v2/{name}/tags/list"),
        ("GET", f"/v2/{name}/manifests/latest"),
        ("POST", f"/v2/{name}/blobs/uploads/"),
    ]:
        response = hub.client.request(method, path)
        assert (response.status, response.error_code) == (400, "NAME_INVALID"), path


@pytest.mark.parametrize(
    "name", ["a", "library/redis", "a.b_c__d---e/f0", "x/blobs/y", "m/manifests"]
)
def test_valid_repository_names_with_slashes_and_separators_work(hub: Hub, name: str) -> None:
    digest, manifest = hub.push_image(name, "v1")
    assert hub.client.request("GET", f"/v2/{name}/manifests/v1").body == manifest
    assert hub.client.request("GET", f"/v2/{name}/tags/list").json() == {
        "name": name,
        "tags": ["v1"],
    }


# Manifests


def test_manifest_pushed_by_tag_is_served_by_tag_and_digest_byte_for_byte(hub: Hub) -> None:
    digest, manifest = hub.push_image("library/busybox", "latest")
    for reference in ("latest", digest):
        response = hub.client.request(
            "GET", f"/v2/library/busybox/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
        )
        assert response.status == 200
        assert response.body == manifest
        assert response.headers["Content-Type"] == OCI_MANIFEST
        assert response.headers["Docker-Content-Digest"] == digest
        head = hub.client.request("HEAD", f"/v2/library/busybox/manifests/{reference}")
        assert head.status == 200 and head.body == b""
        assert head.headers["Content-Length"] == str(len(manifest))
        assert head.headers["Docker-Content-Digest"] == digest


def test_manifest_put_answers_201_with_location_and_digest(hub: Hub) -> None:
    config, layer = b'{"os":"linux"}', b"layer"
    hub.push_blob("put/me", config)
    hub.push_blob("put/me", layer)
    manifest = image_manifest(config, [layer])
    response = hub.client.request(
        "PUT", "/v2/put/me/manifests/v1", manifest, {"Content-Type": OCI_MANIFEST}
    )
    assert response.status == 201
    assert response.headers["Location"] == f"/v2/put/me/manifests/{sha256(manifest)}"
    assert response.headers["Docker-Content-Digest"] == sha256(manifest)


def test_manifest_pushed_by_digest_has_no_tag(hub: Hub) -> None:
    hub.push_blob("by/digest", b"{}")
    manifest = image_manifest(b"{}", [])
    response = hub.client.request(
        "PUT",
        f"/v2/by/digest/manifests/{sha256(manifest)}",
        manifest,
        {"Content-Type": OCI_MANIFEST},
    )
    assert response.status == 201
    assert hub.client.request("GET", f"/v2/by/digest/manifests/{sha256(manifest)}").body == manifest
    assert hub.client.request("GET", "/v2/by/digest/tags/list").json()["tags"] == []


def test_manifest_whose_digest_disagrees_with_its_url_gets_digest_invalid(hub: Hub) -> None:
    hub.push_blob("wrong/digest", b"{}")
    manifest = image_manifest(b"{}", [])
    response = hub.client.request(
        "PUT",
        f"/v2/wrong/digest/manifests/{sha256(b'other')}",
        manifest,
        {"Content-Type": OCI_MANIFEST},
    )
    assert (response.status, response.error_code) == (400, "DIGEST_INVALID")
    assert hub.client.request("GET", "/v2/_catalog").json() == {"repositories": []}


def test_manifest_referencing_a_missing_blob_is_rejected_and_leaves_no_tag(hub: Hub) -> None:
    config, missing_layer = b'{"os":"linux"}', b"never uploaded"
    hub.push_blob("missing/layer", config)
    blobs_before = hub.blobs_on_disk()
    manifest = image_manifest(config, [missing_layer])
    response = hub.client.request(
        "PUT", "/v2/missing/layer/manifests/latest", manifest, {"Content-Type": OCI_MANIFEST}
    )
    assert (response.status, response.error_code) == (400, "MANIFEST_BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == {"digest": sha256(missing_layer)}
    assert hub.blobs_on_disk() == blobs_before
    assert hub.client.request("GET", "/v2/missing/layer/manifests/latest").status == 404
    tags = hub.client.request("GET", "/v2/missing/layer/tags/list")
    assert (tags.status, tags.error_code) == (404, "NAME_UNKNOWN")


def test_manifest_referencing_a_missing_config_is_rejected(hub: Hub) -> None:
    hub.push_blob("missing/config", b"layer")
    manifest = image_manifest(b"{}", [b"layer"])
    response = hub.client.request(
        "PUT", "/v2/missing/config/manifests/latest", manifest, {"Content-Type": OCI_MANIFEST}
    )
    assert (response.status, response.error_code) == (400, "MANIFEST_BLOB_UNKNOWN")


def test_manifest_with_a_blob_size_that_disagrees_is_invalid(hub: Hub) -> None:
    hub.push_blob("bad/size", b"{}")
    document = json.loads(image_manifest(b"{}", []))
    document["config"]["size"] = 99
    response = hub.client.request(
        "PUT",
        "/v2/bad/size/manifests/v1",
        json.dumps(document).encode(),
        {"Content-Type": OCI_MANIFEST},
    )
    assert (response.status, response.error_code) == (400, "MANIFEST_INVALID")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", OCI_MANIFEST),
        (b"[1, 2]", OCI_MANIFEST),
        (b'{"schemaVersion": 2, "mediaType": "%s"}' % OCI_MANIFEST.encode(), OCI_MANIFEST),
        (
            b'{"schemaVersion": 1, "mediaType": "%s", "layers": []}' % OCI_MANIFEST.encode(),
            OCI_MANIFEST,
        ),
        (
            b'{"schemaVersion": 2, "mediaType": "%s", "manifests": []}' % OCI_INDEX.encode(),
            OCI_MANIFEST,
        ),
        (
            b'{"schemaVersion": 1, "fsLayers": []}',
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        ),
        (b'{"schemaVersion": 2, "mediaType": "application/x-unknown"}', "application/x-unknown"),
    ],
    ids=[
        "not-json",
        "not-object",
        "no-config",
        "schema-1",
        "type-mismatch",
        "docker-v1",
        "unknown",
    ],
)
def test_malformed_manifest_gets_manifest_invalid(hub: Hub, body: bytes, content_type: str) -> None:
    response = hub.client.request(
        "PUT", "/v2/malformed/manifests/latest", body, {"Content-Type": content_type}
    )
    assert (response.status, response.error_code) == (400, "MANIFEST_INVALID")
    assert hub.blobs_on_disk() == set()


def test_manifest_put_to_an_invalid_tag_gets_manifest_invalid(hub: Hub) -> None:
    hub.push_blob("bad/tag", b"{}")
    manifest = image_manifest(b"{}", [])
    for tag in ("-leading-dash", ".dot", "t" * 129):
        response = hub.client.request(
            "PUT", f"/v2/bad/tag/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST}
        )
        assert (response.status, response.error_code) == (400, "MANIFEST_INVALID"), tag
    assert hub.client.request("GET", "/v2/bad/tag/tags/list").status == 404


def test_oversized_manifest_gets_413_before_its_body_is_read(hub: Hub) -> None:
    head = (
        "PUT /v2/big/manifests/latest HTTP/1.1\r\nHost: hub\r\n"
        f"Content-Type: {OCI_MANIFEST}\r\nContent-Length: {5 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer = _raw_exchange(hub.port, head, b'{"schemaVersion": 2, ')
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in answer
    assert b'"SIZE_INVALID"' in answer


def test_docker_schema2_manifest_keeps_its_media_type(hub: Hub) -> None:
    config, layer = b'{"os":"linux"}', b"layer"
    hub.push_blob("docker/schema2", config)
    hub.push_blob("docker/schema2", layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor("application/vnd.docker.container.image.v1+json", config),
            "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", layer)],
        }
    ).encode()
    response = hub.client.request(
        "PUT", "/v2/docker/schema2/manifests/v2", manifest, {"Content-Type": DOCKER_MANIFEST}
    )
    assert response.status == 201
    fetched = hub.client.request("GET", "/v2/docker/schema2/manifests/v2")
    assert fetched.headers["Content-Type"] == DOCKER_MANIFEST and fetched.body == manifest


def test_oci_manifest_is_served_to_a_client_accepting_only_docker_schema2(hub: Hub) -> None:
    digest, manifest = hub.push_image("accept/test", "v1")
    response = hub.client.request(
        "GET", "/v2/accept/test/manifests/v1", headers={"Accept": DOCKER_MANIFEST}
    )
    assert response.status == 200 and response.body == manifest
    assert response.headers["Content-Type"] == OCI_MANIFEST


def _push_index(hub: Hub, repository: str, tag: str, children: list[tuple[bytes, dict]]) -> bytes:
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                descriptor(OCI_MANIFEST, data, platform=platform) for data, platform in children
            ],
        }
    ).encode()
    response = hub.client.request(
        "PUT", f"/v2/{repository}/manifests/{tag}", index, {"Content-Type": OCI_INDEX}
    )
    assert response.status == 201, response.body
    return index


def test_index_of_pushed_manifests_is_stored_and_served(hub: Hub) -> None:
    digest, manifest = hub.push_image("multi/arch", "amd64-only")
    index = _push_index(
        hub, "multi/arch", "latest", [(manifest, {"os": "linux", "architecture": "amd64"})]
    )
    response = hub.client.request(
        "GET", "/v2/multi/arch/manifests/latest", headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"}
    )
    assert response.body == index and response.headers["Content-Type"] == OCI_INDEX
    assert response.headers["Docker-Content-Digest"] == sha256(index)


def test_index_is_resolved_to_linux_amd64_for_a_client_that_takes_no_index(hub: Hub) -> None:
    arm_digest, arm = hub.push_image("multi/arch", "arm", layer=b"arm layer")
    amd_digest, amd = hub.push_image("multi/arch", "amd", layer=b"amd layer")
    _push_index(
        hub,
        "multi/arch",
        "latest",
        [
            (arm, {"os": "linux", "architecture": "arm64"}),
            (amd, {"os": "linux", "architecture": "amd64"}),
        ],
    )
    response = hub.client.request(
        "GET",
        "/v2/multi/arch/manifests/latest",
        headers={"Accept": f"{DOCKER_MANIFEST}, {OCI_MANIFEST}"},
    )
    assert response.body == amd and response.headers["Docker-Content-Digest"] == amd_digest


def test_index_referencing_a_missing_manifest_is_rejected_and_leaves_no_tag(hub: Hub) -> None:
    missing = image_manifest(b"{}", [])
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST_LIST,
            "manifests": [descriptor(OCI_MANIFEST, missing)],
        }
    ).encode()
    response = hub.client.request(
        "PUT", "/v2/lists/manifests/latest", index, {"Content-Type": DOCKER_MANIFEST_LIST}
    )
    assert (response.status, response.error_code) == (400, "MANIFEST_BLOB_UNKNOWN")
    assert response.json()["errors"][0]["detail"] == {"digest": sha256(missing)}
    assert hub.client.request("GET", "/v2/lists/manifests/latest").status == 404
    assert hub.blobs_on_disk() == set()


def test_unknown_manifest_gets_manifest_unknown(hub: Hub) -> None:
    hub.push_image("known", "v1")
    for path in (
        "/v2/known/manifests/v2",
        f"/v2/known/manifests/{sha256(b'nope')}",
        "/v2/unknown/repo/manifests/latest",
        "/v2/known/manifests/-not-a-tag",
    ):
        response = hub.client.request("GET", path)
        assert (response.status, response.error_code) == (404, "MANIFEST_UNKNOWN"), path
    response = hub.client.request("GET", "/v2/known/manifests/sha256:short")
    assert (response.status, response.error_code) == (400, "DIGEST_INVALID")


def test_deleting_a_tag_keeps_the_manifest(hub: Hub) -> None:
    digest, manifest = hub.push_image("tags/go", "v1")
    hub.client.request("PUT", "/v2/tags/go/manifests/v2", manifest, {"Content-Type": OCI_MANIFEST})
    assert hub.client.request("DELETE", "/v2/tags/go/manifests/v1").status == 202
    assert hub.client.request("GET", "/v2/tags/go/manifests/v1").status == 404
    assert hub.client.request("GET", f"/v2/tags/go/manifests/{digest}").status == 200
    assert hub.client.request("GET", "/v2/tags/go/tags/list").json()["tags"] == ["v2"]
    again = hub.client.request("DELETE", "/v2/tags/go/manifests/v1")
    assert (again.status, again.error_code) == (404, "MANIFEST_UNKNOWN")


def test_deleting_a_manifest_by_digest_removes_its_tags_and_frees_it(hub: Hub) -> None:
    digest, manifest = hub.push_image("gone/soon", "v1")
    hub.client.request(
        "PUT", "/v2/gone/soon/manifests/also", manifest, {"Content-Type": OCI_MANIFEST}
    )
    assert hub.client.request("DELETE", f"/v2/gone/soon/manifests/{digest}").status == 202
    for reference in ("v1", "also", digest):
        assert hub.client.request("GET", f"/v2/gone/soon/manifests/{reference}").status == 404
    assert digest.removeprefix("sha256:") not in hub.blobs_on_disk()
    assert hub.client.request("GET", "/v2/_catalog").json() == {"repositories": []}
    again = hub.client.request("DELETE", f"/v2/gone/soon/manifests/{digest}")
    assert (again.status, again.error_code) == (404, "MANIFEST_UNKNOWN")


def test_referrers_lists_manifests_whose_subject_is_the_digest(hub: Hub) -> None:
    subject_digest, subject = hub.push_image("signed", "v1")
    hub.push_blob("signed", b"{}")
    signature = image_manifest(
        b"{}",
        [],
        artifactType="application/vnd.example.signature",
        subject=descriptor(OCI_MANIFEST, subject),
        annotations={"org.example.signer": "test"},
    )
    response = hub.client.request(
        "PUT",
        f"/v2/signed/manifests/{sha256(signature)}",
        signature,
        {"Content-Type": OCI_MANIFEST},
    )
    assert response.status == 201 and response.headers["OCI-Subject"] == subject_digest
    listed = hub.client.request("GET", f"/v2/signed/referrers/{subject_digest}")
    assert listed.status == 200 and listed.headers["Content-Type"] == OCI_INDEX
    assert listed.json()["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha256(signature),
            "size": len(signature),
            "artifactType": "application/vnd.example.signature",
            "annotations": {"org.example.signer": "test"},
        }
    ]
    filtered = hub.client.request(
        "GET", f"/v2/signed/referrers/{subject_digest}?artifactType=application/other"
    )
    assert filtered.json()["manifests"] == []
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    none = hub.client.request("GET", f"/v2/nobody/referrers/{subject_digest}")
    assert none.status == 200 and none.json()["manifests"] == []


# Tags and catalog


def test_tags_list_is_sorted_and_paginated_with_a_link_header(hub: Hub) -> None:
    _, manifest = hub.push_image("paged", "b")
    for tag in ("a", "c", "D", "e"):
        hub.client.request(
            "PUT", f"/v2/paged/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST}
        )
    full = hub.client.request("GET", "/v2/paged/tags/list")
    assert full.json() == {"name": "paged", "tags": ["D", "a", "b", "c", "e"]}
    assert "Link" not in full.headers
    seen, path = [], "/v2/paged/tags/list?n=2"
    while path:
        page = hub.client.request("GET", path)
        assert len(page.json()["tags"]) <= 2
        seen += page.json()["tags"]
        link = page.headers["Link"]
        path = link[1 : link.index(">")] if link else ""
        if link:
            assert link.endswith('>; rel="next"')
    assert seen == ["D", "a", "b", "c", "e"]
    after = hub.client.request("GET", "/v2/paged/tags/list?last=b")
    assert after.json()["tags"] == ["c", "e"]
    empty = hub.client.request("GET", "/v2/paged/tags/list?n=0")
    assert empty.json()["tags"] == [] and "Link" not in empty.headers
    exact = hub.client.request("GET", "/v2/paged/tags/list?n=2&last=c")
    assert exact.json()["tags"] == ["e"] and "Link" not in exact.headers


def test_invalid_page_size_is_rejected(hub: Hub) -> None:
    hub.push_image("paged", "v1")
    response = hub.client.request("GET", "/v2/paged/tags/list?n=-1")
    assert (response.status, response.error_code) == (400, "UNSUPPORTED")


def test_tags_list_of_an_unknown_repository_is_name_unknown(hub: Hub) -> None:
    response = hub.client.request("GET", "/v2/no/such/repo/tags/list")
    assert (response.status, response.error_code) == (404, "NAME_UNKNOWN")
    assert response.json()["errors"][0]["message"] == "repository name not known to registry"


def test_catalog_lists_repositories_with_manifests_paginated(hub: Hub) -> None:
    for name in ("library/redis", "library/busybox", "alpine", "library/node"):
        hub.push_image(name, "latest")
    hub.push_blob("blobs/only", b"no manifest here")
    assert hub.client.request("GET", "/v2/_catalog").json() == {
        "repositories": ["alpine", "library/busybox", "library/node", "library/redis"]
    }
    first = hub.client.request("GET", "/v2/_catalog?n=3")
    assert first.json()["repositories"] == ["alpine", "library/busybox", "library/node"]
    link = first.headers["Link"]
    second = hub.client.request("GET", link[1 : link.index(">")])
    assert second.json()["repositories"] == ["library/redis"]
    assert "Link" not in second.headers


# Publishing through HubStorage, as the base-image builder does


def test_images_published_through_storage_are_served(hub: Hub) -> None:
    storage = HubStorage(hub.root)  # a second handle on the same root, as `build` would hold
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"rootfs"
    storage.put_blob("library/busybox", config)
    storage.put_blob("library/busybox", iter([layer[:3], layer[3:]]), expected=sha256(layer))
    manifest = storage.put_manifest(
        "library/busybox", "latest", image_manifest(config, [layer]), OCI_MANIFEST
    )
    storage.tag("library/busybox", "1.36", manifest.digest)
    assert storage.repositories() == ["library/busybox"]
    assert storage.tags("library/busybox") == ["1.36", "latest"]
    response = hub.client.request("GET", "/v2/library/busybox/manifests/1.36")
    assert response.body == manifest.data
    assert response.headers["Docker-Content-Digest"] == manifest.digest
    assert hub.client.request("GET", f"/v2/library/busybox/blobs/{sha256(layer)}").body == layer


def test_closing_the_storage_cancels_open_uploads(tmp_path: Path) -> None:
    with HubStorage(tmp_path / "hub") as storage:
        upload = storage.start_upload("left/open")
        storage.write_upload("left/open", upload.uuid, [b"half a blob"])
        assert os.listdir(tmp_path / "hub" / "content" / "ingest")
    assert os.listdir(tmp_path / "hub" / "content" / "ingest") == []


# Concurrency


def test_concurrent_chunked_uploads_to_many_repositories_all_land(hub: Hub) -> None:
    shared = b"a layer every repository pushes" * 4000
    payloads = [f"blob number {i}".encode() * 4000 for i in range(8)]
    failures: list[BaseException] = []

    def push(number: int) -> None:
        client = Client("127.0.0.1", hub.port)
        try:
            for payload in (payloads[number], shared):
                started = client.request("POST", f"/v2/parallel/r{number}/blobs/uploads/")
                location = started.headers["Location"]
                for offset in range(0, len(payload), 10000):
                    chunk = payload[offset : offset + 10000]
                    content_range = f"{offset}-{offset + len(chunk) - 1}"
                    patched = client.request(
                        "PATCH", location, chunk, {"Content-Range": content_range}
                    )
                    assert patched.status == 202
                finished = client.request("PUT", f"{location}?digest={sha256(payload)}")
                assert finished.status == 201
        except BaseException as error:  # reported by the main thread
            failures.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=push, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    for number, payload in enumerate(payloads):
        for blob in (payload, shared):
            response = hub.client.request("GET", f"/v2/parallel/r{number}/blobs/{sha256(blob)}")
            assert response.body == blob
    assert len(hub.blobs_on_disk()) == 9 and hub.ingests_on_disk() == set()
