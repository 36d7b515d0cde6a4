"""Browser journeys: the real web app served by uvicorn on a local port, driven by Debian's
Chromium through Playwright. Screenshots of every page go to test-output/screenshots/."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from bot.context import AppContext
from bot.web.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-output" / "screenshots"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One Chromium for the session (Debian's package: `apt-get install chromium`)."""
    if not CHROMIUM.exists():
        pytest.fail("browser tests need Chromium: apt-get install -y chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def server(web_ctx: AppContext) -> Iterator[str]:
    """The web app on a free local port, in this process (so the test's clock applies)."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(web_ctx), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    for _ in range(200):
        if served.started:
            break
        time.sleep(0.05)
    assert served.started, "web server did not start"
    yield f"http://127.0.0.1:{port}"
    served.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    """A fresh browser tab (own cookies) on the app, tablet-sized."""
    context = browser.new_context(
        base_url=server, viewport={"width": 1024, "height": 1366}, accept_downloads=True
    )
    tab = context.new_page()
    yield tab
    context.close()


def screenshot(page: Page, name: str, database: str) -> Path:
    """Saves the whole page as test-output/screenshots/<name>-<database>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{database}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def database_kind(ctx: AppContext) -> str:
    return ctx.engine.dialect.name
