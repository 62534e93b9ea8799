"""The home page view, through Django's test client."""

from django.test import Client


def test_home_page_says_what_slipway_is(client: Client) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert [t.name for t in response.templates][:2] == ["home.html", "base.html"]
    page = response.content.decode()
    assert "<h1>Slipway</h1>" in page
    assert "A Docker classroom in the browser." in page
    assert "Docker Engine API" in page
    assert "Play with Docker" in page
    assert "works offline" in page


def test_home_page_includes_vendored_htmx(client: Client) -> None:
    response = client.get("/")

    assert '<script src="/static/vendor/htmx/htmx.min.js" defer></script>' in (
        response.content.decode()
    )


def test_home_page_answers_head(client: Client) -> None:
    assert client.head("/").status_code == 200


def test_home_page_refuses_post(client: Client) -> None:
    assert client.post("/").status_code == 405
