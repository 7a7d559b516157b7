"""Dashboard tests: headless Chromium (Debian's /usr/bin/chromium, driven by Playwright for
Python) against a real `jobfleet up` process (the e2e Fleet).

Chromium comes from the system (`make test` installs Debian's package when it is missing and
it can); Playwright's own browser download is never used. Without the browser these tests skip
on a laptop and fail under CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.e2e.conftest import Fleet, finish, new_fleet

CHROMIUM = os.environ.get("JOBFLEET_CHROMIUM", "/usr/bin/chromium")
WORKER_CPU = 2  # the local worker's advertised CPU: a job asking for it all blocks the rest
GRACE = 3  # seconds between SIGTERM and SIGKILL when a job is cancelled

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright  # noqa: E402


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make chromium)")
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (make chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """One `jobfleet up` (SQLite) for a module; tests use their own job sets."""
    root = tmp_path_factory.mktemp("ui-up")
    config = root / "jobfleet.yaml"
    config.write_text(f"worker: {{cpu: {WORKER_CPU}, grace: {GRACE}s}}\nlease_timeout: 10s\n")
    f = new_fleet(root, "sqlite", request, config=config)
    try:
        yield f.start()
    finally:
        finish(f)


def sign_in(context: BrowserContext, fleet: Fleet, target: str = "/ui/") -> Page:
    page = context.new_page()
    page.goto(f"{fleet.url}{target}")
    page.fill("#token", fleet.token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{fleet.url}{target}*")
    return page


@pytest.fixture
def page(browser: Browser, fleet: Fleet) -> Iterator[Page]:
    """A signed-in page at 1280x800 (its own cookie jar)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    try:
        yield sign_in(context, fleet)
    finally:
        context.close()
