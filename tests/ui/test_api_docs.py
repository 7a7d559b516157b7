"""In Chromium against a real `jobfleet up`: the API docs work with no internet, and a page's
EventSource follows GET /v1/events with the dashboard's cookie (no token in the URL)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Route

from tests.e2e.conftest import Fleet
from tests.ui.conftest import sign_in


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    try:
        yield context
    finally:
        context.close()


def test_the_api_docs_render_with_only_same_origin_requests(
    context: BrowserContext, fleet: Fleet
) -> None:
    origin = urlsplit(fleet.url).netloc
    elsewhere: list[str] = []

    def offline(route: Route) -> None:  # as without internet: nothing leaves this origin
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
    page = context.new_page()
    page.goto(f"{fleet.url}/docs")
    # Swagger UI names each operation's block by its tag and operation id
    page.locator("#operations-jobs-submitJobs").wait_for()
    page.locator("#operations-jobs-getJob").wait_for()
    assert page.locator(".opblock").count() >= 30
    assert elsewhere == []


def test_an_eventsource_follows_v1_events_with_the_session_cookie(
    context: BrowserContext, fleet: Fleet
) -> None:
    with httpx.Client(
        base_url=fleet.url, headers={"Authorization": f"Bearer {fleet.token}"}, timeout=30
    ) as http:
        r = http.post("/v1/jobs", json={"command": ["true"], "job_set": "eventsource"})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
    page = sign_in(context, fleet)
    first = page.evaluate(
        """(jobId) => new Promise((resolve, reject) => {
            const source = new EventSource(`/v1/events?after=0&job_id=${jobId}`);
            const timer = setTimeout(() => { source.close(); reject("no event in 15 s"); }, 15000);
            source.addEventListener("submitted", (e) => {
                clearTimeout(timer);
                source.close();
                resolve(JSON.parse(e.data));
            });
        })""",
        job_id,
    )
    assert first["job_id"] == job_id and first["type"] == "submitted"
