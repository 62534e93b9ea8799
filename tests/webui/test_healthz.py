"""The /healthz view: 200 with {"status": "ok"} when the database answers, else 503."""

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client


@pytest.mark.django_db
def test_healthz_reports_ok_when_the_database_answers(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_healthz_refuses_post(client: Client) -> None:
    assert client.post("/healthz").status_code == 405


def test_healthz_returns_503_when_the_database_cannot_be_opened(
    start_daphne: Callable[..., str], tmp_path: Path
) -> None:
    # SQLite cannot create a file in a directory that does not exist.
    url = start_daphne(SLIPWAY_DB_PATH=str(tmp_path / "no-such-dir" / "db.sqlite3"))

    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(url + "/healthz", timeout=10)

    assert failure.value.code == 503
    assert failure.value.headers["Content-Type"] == "application/json"
    assert json.loads(failure.value.read())["status"] == "error"
