"""The event and log streams (server/streams.py) as the API and the dashboard serve them: a
browser's session cookie on /v1/events, one resume rule, keep-alives on every stream."""

from __future__ import annotations

import json
import time

import httpx

from tests.integration.conftest import TOKEN, Api
from tests.integration.test_web import signed_in


def _lines_until(client: httpx.Client, url: str, last: str, **kw: object) -> list[str]:
    """Every line of an SSE response (comments too) up to the first `event: <last>`."""
    seen: list[str] = []
    deadline = time.monotonic() + 20
    with client.stream("GET", url, **kw) as r:  # type: ignore[arg-type]
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            seen.append(line)
            if line == f"event: {last}" or time.monotonic() > deadline:
                break
    assert f"event: {last}" in seen, seen
    return seen


def _types(lines: list[str]) -> list[str]:
    return [line.removeprefix("event: ") for line in lines if line.startswith("event:")]


def test_the_dashboard_cookie_follows_v1_events_without_a_token(api: Api) -> None:
    """What a same-origin EventSource does: GET /v1/events with the session cookie only."""
    job = api.submit(command=["true"], job_set="cookie")
    api.wait_state(str(job["id"]), "SUCCEEDED")
    with signed_in(api) as browser:
        assert "authorization" not in browser.headers
        seen = _lines_until(
            browser,
            "/v1/events",
            "succeeded",
            params={"job_id": job["id"], "after": 0},
            headers={"Accept": "text/event-stream"},
        )
        assert browser.get("/v1/jobs").status_code == 401  # the rest of the API: tokens only
    assert _types(seen) == ["submitted", "queued", "scheduled", "leased", "running", "succeeded"]
    data = [json.loads(line[5:]) for line in seen if line.startswith("data:")]
    assert {d["job_id"] for d in data} == {job["id"]}


def test_v1_events_refuses_no_credentials_a_bad_cookie_and_a_worker_cookie(api: Api) -> None:
    api.store.issue_token("w", kind="worker", token="worker-token")
    with httpx.Client(base_url=api.url, timeout=30) as anon:
        r = anon.get("/v1/events")
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
    for cookie, status in (("not-a-token", 401), ("worker-token", 403)):
        with httpx.Client(base_url=api.url, timeout=30, cookies={"jobfleet_ui": cookie}) as c:
            assert c.get("/v1/events").status_code == status
    # a bearer token wins over a cookie: a bad token is not rescued by a good cookie
    with httpx.Client(base_url=api.url, timeout=30, cookies={"jobfleet_ui": TOKEN}) as c:
        assert c.get("/v1/events", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_ui_stream_after_0_means_from_the_start_as_on_v1_events(api: Api) -> None:
    job = api.submit(command=["true"], job_set="from-start")
    api.wait_state(str(job["id"]), "SUCCEEDED")
    with signed_in(api) as browser:
        ui = _lines_until(browser, f"/ui/stream?after=0&job_id={job['id']}", "succeeded")
    v1 = _lines_until(api.http, "/v1/events", "succeeded", params={"after": 0, "job_id": job["id"]})
    assert (
        _types(ui)
        == _types(v1)
        == [
            "submitted",
            "queued",
            "scheduled",
            "leased",
            "running",
            "succeeded",
        ]
    )


def test_every_log_stream_sends_keep_alives_while_the_job_is_quiet(api: Api) -> None:
    """sse_heartbeat is 0.5 s in these tests: a job silent for 2 s gets pings on both feeds."""
    job = api.submit(command=["sh", "-c", "echo start; sleep 2; echo done"])
    job_id = str(job["id"])
    api.wait_state(job_id, "RUNNING")
    with signed_in(api) as browser:
        ui = _lines_until(browser, f"/ui/jobs/{job_id}/logs/stream", "end")
    job = api.submit(command=["sh", "-c", "echo start; sleep 2; echo done"])
    job_id = str(job["id"])
    api.wait_state(job_id, "RUNNING")
    v1 = _lines_until(api.http, f"/v1/jobs/{job_id}/logs", "end", params={"follow": "true"})
    for lines in (ui, v1):
        assert ": ping" in lines, lines
        assert lines.index(": ping") < lines.index("event: end")
    text = [json.loads(line[5:]) for line in v1 if line.startswith("data:")]
    assert [t["line"] for t in text if "line" in t] == ["start", "done"]
