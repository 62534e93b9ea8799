"""The home page in a real headless Chromium (Debian's), driven by Playwright."""

from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_home_page_renders_in_chromium_with_htmx_loaded(daphne_url: str, tmp_path: Path) -> None:
    screenshot = tmp_path / "home.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "response",
                lambda response: (
                    errors.append(f"{response.status} {response.url}")
                    if response.status >= 400
                    else None
                ),
            )

            page.goto(daphne_url + "/")
            page.wait_for_function("() => window.htmx !== undefined", timeout=10_000)

            assert page.title() == "Slipway: a Docker classroom in the browser"
            assert page.locator("h1").inner_text() == "Slipway"
            assert page.evaluate("() => htmx.version").startswith("2.")
            assert errors == []
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    assert screenshot.stat().st_size > 0
