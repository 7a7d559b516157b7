"""The dashboard over plain HTTP (SQLite and PostgreSQL): cookie sign-in, what needs it, what
refuses a foreign origin, and that the API still takes bearer tokens only."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.integration.conftest import TOKEN, Api


@contextmanager
def signed_in(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as client:
        r = client.post("/ui/login", data={"token": TOKEN, "next": "/ui/jobs"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/jobs"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/;" in cookie
        yield client


def test_pages_redirect_to_sign_in_and_feeds_refuse_without_the_cookie(api: Api) -> None:
    with httpx.Client(base_url=api.url, timeout=30) as anon:
        r = anon.get("/ui/jobs")
        assert r.status_code == 303 and r.headers["location"] == "/ui/login?next=/ui/jobs"
        r = anon.get("/ui/stream", headers={"Accept": "text/event-stream"})
        assert r.status_code == 401
        r = anon.get("/ui/jobs", headers={"HX-Request": "true"})
        assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/ui/login")
        r = anon.post("/ui/login", data={"token": "wrong"})
        assert r.status_code == 401 and "not valid" in r.text
        assert anon.get("/ui/static/vendor/htmx-2.0.11.min.js").status_code == 200


def test_sign_in_only_goes_back_inside_the_dashboard(api: Api) -> None:
    with httpx.Client(base_url=api.url, timeout=30) as c:
        r = c.post("/ui/login", data={"token": TOKEN, "next": "https://evil.example/"})
        assert r.headers["location"] == "/ui/"


def test_the_cookie_opens_pages_but_not_the_api(api: Api) -> None:
    job = api.submit(command=["true"], job_set="web")
    with signed_in(api) as c:
        for path in ("/ui/", "/ui/jobs?job_set=web", f"/ui/jobs/{job['id']}", "/ui/workers"):
            r = c.get(path)
            assert r.status_code == 200, (path, r.text[:300])
        assert job["id"] in c.get("/ui/jobs?job_set=web").text
        assert c.get("/v1/jobs").status_code == 401  # the API wants its bearer token


def test_actions_refuse_another_origin_and_store_nothing(api: Api) -> None:
    job = api.submit(command=["sleep", "30"], job_set="web-x")
    with signed_in(api) as c:
        r = c.post(
            f"/ui/jobs/{job['id']}/actions/cancel", headers={"Origin": "http://evil.example"}
        )
        assert r.status_code == 403
        assert api.job(str(job["id"]))["cancel_requested"] is False
        assert api.job(str(job["id"]))["state"] != "CANCELLED"
        r = c.post(f"/ui/jobs/{job['id']}/actions/cancel", headers={"Origin": api.url})
        assert r.status_code == 200 and 'data-action="cancel"' in r.text
    api.wait_state(str(job["id"]), "CANCELLED")


def test_bad_filters_and_unknown_jobs_are_pages_that_say_why(api: Api) -> None:
    with signed_in(api) as c:
        r = c.get("/ui/jobs?state=NOPE")
        assert r.status_code == 422 and "<code>state</code>" in r.text and "NOPE" in r.text
        r = c.get("/ui/jobs?label=novalue")
        assert r.status_code == 422 and "<code>label</code>" in r.text
        r = c.get("/ui/jobs?cursor=garbage")
        assert r.status_code == 422 and "cursor" in r.text
        r = c.get("/ui/jobs/NO-SUCH-JOB")
        assert (
            r.status_code == 404 and "no job" in r.text and "text/html" in r.headers["content-type"]
        )
    r = api.http.get("/v1/jobs/NO-SUCH-JOB")  # the API still answers problem+json
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def sse_until(client: httpx.Client, url: str, last: str, **kw: object) -> list[str]:
    """The `event:`/`data:` lines of an SSE response up to the first `event: <last>`."""
    seen: list[str] = []
    deadline = time.monotonic() + 20
    with client.stream("GET", url, **kw) as r:  # type: ignore[arg-type]
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith(("event:", "data:")):
                seen.append(line)
            if line == f"event: {last}" or time.monotonic() > deadline:
                break
    assert f"event: {last}" in seen, seen
    return seen


def test_the_event_feed_resumes_after_last_event_id(api: Api) -> None:
    job = api.submit(command=["true"], job_set="web-sse")
    api.wait_state(str(job["id"]), "SUCCEEDED")
    with signed_in(api) as c:
        ids = [e["id"] for e in api.http.get(f"/v1/jobs/{job['id']}/events").json()["items"]]
        seen = sse_until(
            c,
            f"/ui/stream?job_id={job['id']}",
            "succeeded",
            headers={"Last-Event-ID": str(ids[2] - 1)},
        )
    events = [line.removeprefix("event: ") for line in seen if line.startswith("event:")]
    assert events == ["scheduled", "leased", "running", "succeeded"]


def test_the_log_feed_sends_only_what_follows_the_offset(api: Api) -> None:
    job = api.submit(command=["sh", "-c", "echo one; echo two; echo three"])
    api.wait_state(str(job["id"]), "SUCCEEDED")
    stored = api.http.get(f"/v1/jobs/{job['id']}/logs", params={"timestamps": "true"}).text
    first = len(stored.splitlines(keepends=True)[0].encode())  # offsets count stored bytes
    with signed_in(api) as c:
        seen = sse_until(c, f"/ui/jobs/{job['id']}/logs/stream?offset={first}", "end")
        page = c.get(f"/ui/jobs/{job['id']}")
    text = "".join(
        json.loads(line[5:]).get("text", "") for line in seen if line.startswith("data:")
    )
    assert text == "two\nthree\n"
    assert "one\ntwo\nthree" in page.text  # the page's own tail
