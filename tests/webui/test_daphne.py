"""webui.asgi served by a real daphne process, over a real socket."""

import json
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_daphne_serves_the_home_page(daphne_url: str) -> None:
    status, content_type, body = get(daphne_url + "/")

    assert status == 200
    assert content_type.startswith("text/html")
    assert b"<h1>Slipway</h1>" in body


def test_daphne_serves_healthz(daphne_url: str) -> None:
    status, content_type, body = get(daphne_url + "/healthz")

    assert status == 200
    assert content_type == "application/json"
    assert json.loads(body) == {"status": "ok"}


def test_daphne_serves_vendored_static_files_in_development(daphne_url: str) -> None:
    status, _, body = get(daphne_url + "/static/vendor/htmx/htmx.min.js")

    assert status == 200
    assert body == (REPO_ROOT / "static/vendor/htmx/htmx.min.js").read_bytes()
