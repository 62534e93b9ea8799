"""Registry auth as Docker Hub does it: Debian's docker-registry with ``auth: token`` and a
token server started here (JWTs signed by a key made here), so the client must do the
Bearer flow; and Basic auth, in front of our hub."""

from __future__ import annotations

import base64
import datetime
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from simulator.images.pull import PullError, pull
from simulator.images.push import PushError, push
from simulator.images.registry_client import Credentials
from simulator.images.store import ImageStore
from tests.support import basic_auth

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlay layers need root")

USER, PASSWORD = "learner", "s3cret"
SERVICE, ISSUER = "slipway-test-registry", "slipway-test-token-issuer"
PullAll = Callable[..., list[dict[str, Any]]]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Issues registry tokens as Docker Hub's auth service does: the scopes asked for to
    the right user, no access to anonymous callers, 401 to a wrong password."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    token_field: str = "token"
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def token(self, subject: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [
                base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode()
            ],
        }
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = (
            b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        )
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        query = parse_qs(urlsplit(path).query)
        self.requests.append({"query": query, "authorization": authorization})
        if query.get("service") != [SERVICE]:
            return 400, {"details": "unknown service"}
        scopes = query.get("scope", [])
        if authorization is None:
            return 200, {self.token_field: self.token("", []), "expires_in": 300}
        user, _, password = (
            base64.b64decode(authorization.removeprefix("Basic ")).decode().partition(":")
        )
        if (user, password) != (USER, PASSWORD):
            return 401, {"details": "incorrect username or password"}
        return 200, {self.token_field: self.token(user, scopes), "expires_in": 300}


def _signing_key_and_certificate() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


@pytest.fixture(scope="module")
def signing() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return _signing_key_and_certificate()


@pytest.fixture
def token_server(signing: tuple[rsa.RSAPrivateKey, x509.Certificate]) -> Iterator[TokenServer]:
    server_state = TokenServer(*signing)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, document = server_state.answer(self.path, self.headers.get("Authorization"))
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.url = f"http://127.0.0.1:{server.server_address[1]}/token"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def token_registry(
    start_registry: Callable[..., Any], token_server: TokenServer, tmp_path: Path
) -> Any:
    bundle = tmp_path / "token-signer.pem"
    bundle.write_bytes(token_server.certificate.public_bytes(serialization.Encoding.PEM))
    auth = {
        "token": {
            "realm": token_server.url,
            "service": SERVICE,
            "issuer": ISSUER,
            "rootcertbundle": str(bundle),
        }
    }
    return start_registry(auth)


@pytest.fixture
def busybox_store(new_store: Callable[[str], ImageStore], pull_from_hub: PullAll) -> ImageStore:
    store = new_store("pusher")
    pull_from_hub(store, "busybox")
    return store


def fresh_store(tmp_path: Path, name: str) -> ImageStore:
    return ImageStore(tmp_path / name / "data", tmp_path / name / "layers")


@pytest.mark.parametrize("token_field", ["token", "access_token"])
def test_push_and_pull_through_bearer_token_auth(
    token_field: str,
    busybox_store: ImageStore,
    token_server: TokenServer,
    token_registry: Any,
    tmp_path: Path,
) -> None:
    token_server.token_field = token_field
    target = f"{token_registry.address}/slipway/app:1"
    busybox_store.tag("busybox", target)
    credentials = {"username": USER, "password": PASSWORD}
    pushed = list(push(busybox_store, target, auth=credentials))
    assert pushed[-1]["aux"]["Digest"] == busybox_store.get(target).manifest_digest
    asked = [request["query"] for request in token_server.requests]
    assert {
        "service": [SERVICE],
        "scope": ["repository:slipway/app:pull,push"],
        "account": [USER],
    } in asked
    assert all(
        r["authorization"] == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        for r in token_server.requests
    )

    fresh = fresh_store(tmp_path, "fresh")
    pulled = list(pull(fresh, target, auth=Credentials(USER, PASSWORD)))
    assert pulled[-1] == {"status": f"Status: Downloaded newer image for {target}"}
    assert fresh.get(target).id == busybox_store.get(target).id
    assert {"service": [SERVICE], "scope": ["repository:slipway/app:pull"], "account": [USER]} in [
        request["query"] for request in token_server.requests
    ]


def test_a_wrong_password_fails_with_dockers_unauthorized_error(
    busybox_store: ImageStore, token_registry: Any, tmp_path: Path
) -> None:
    target = f"{token_registry.address}/slipway/app:1"
    busybox_store.tag("busybox", target)
    with pytest.raises(PushError) as push_failed:
        list(push(busybox_store, target, auth={"username": USER, "password": "wrong"}))
    assert str(push_failed.value) == (
        f'Head "http://{token_registry.address}/v2/slipway/app/blobs/'
        f'{busybox_store.get(target).manifest.layers[0].digest}": '
        "unauthorized: incorrect username or password"
    )
    with pytest.raises(PullError) as pull_failed:
        list(pull(fresh_store(tmp_path, "fresh"), target, auth=Credentials(USER, "wrong")))
    assert str(pull_failed.value) == (
        f'Get "http://{token_registry.address}/v2/slipway/app/manifests/1": '
        "unauthorized: incorrect username or password"
    )


def test_an_anonymous_pull_is_denied_as_docker_reports_it(
    busybox_store: ImageStore, token_registry: Any, tmp_path: Path
) -> None:
    target = f"{token_registry.address}/slipway/app:1"
    busybox_store.tag("busybox", target)
    list(push(busybox_store, target, auth={"username": USER, "password": PASSWORD}))
    with pytest.raises(PullError) as failed:
        list(pull(fresh_store(tmp_path, "anonymous"), target))
    assert str(failed.value) == (
        f"pull access denied for {token_registry.address}/slipway/app, repository does not "
        "exist or may require 'docker login': denied: requested access to the resource is "
        "denied"
    )
    assert failed.value.status == 404


@pytest.fixture
def basic_auth_proxy(hub: Any) -> Iterator[str]:
    """A registry that wants Basic credentials, passing reads through to the hub."""
    with basic_auth.basic_auth_front(hub.address, USER, PASSWORD) as address:
        yield address


def test_basic_auth_is_used_when_the_registry_asks_for_it(
    basic_auth_proxy: str, tmp_path: Path
) -> None:
    target = f"{basic_auth_proxy}/library/busybox:latest"
    store = fresh_store(tmp_path, "basic")
    pulled = list(pull(store, target, auth=Credentials(USER, PASSWORD)))
    assert pulled[-1] == {"status": f"Status: Downloaded newer image for {target}"}
    with pytest.raises(PullError) as failed:
        list(pull(fresh_store(tmp_path, "no-credentials"), target))
    assert str(failed.value) == "unauthorized: authentication required"
