"""The dashboard applies per-queue permissions (SQLite and PostgreSQL, real HTTP).

The principals here see queue `qa-shown`; queue `qb-hidden` is one they have no verb on (or
only `watch`). A job of the hidden queue must be absent from every page and feed and answer
404 like an unknown job; every action needs its verb on the job's queue.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape

import httpx
import pytest

from tests.integration.conftest import Api
from tests.integration.test_web import sse_until

SHOWN, HIDDEN = "qa-shown", "qb-hidden"


@pytest.fixture
def queues(api: Api) -> None:
    for name in (SHOWN, HIDDEN):
        api.store.upsert_queue(name, config={})


@contextmanager
def signed_in(api: Api, name: str, *grants: tuple[str, str]) -> Iterator[httpx.Client]:
    """A dashboard session of a new user principal holding `grants` (queue, verb)."""
    token = api.store.issue_token(name, grants_=grants).token
    with httpx.Client(base_url=api.url, timeout=30, headers={"Origin": api.url}) as client:
        r = client.post("/ui/login", data={"token": token, "next": "/ui/"})
        assert r.status_code == 303, r.text
        yield client


def test_a_watcher_sees_nothing_of_a_hidden_queue(api: Api, queues: None) -> None:
    hidden = str(api.submit(queue=HIDDEN, command=["false"])["id"])
    api.wait_state(hidden, "FAILED")
    shown = str(api.submit(queue=SHOWN, command=["true"])["id"])
    api.wait_state(shown, "SUCCEEDED")
    with signed_in(api, "wanda", (SHOWN, "watch")) as c:
        overview = c.get("/ui/").text
        assert SHOWN in overview and HIDDEN not in overview
        assert "No failures in the last hour." in overview  # the hidden queue's failure
        table = c.get("/ui/jobs").text
        assert shown in table and hidden not in table and HIDDEN not in table
        filtered = c.get(f"/ui/jobs?queue={HIDDEN}")
        assert filtered.status_code == 200 and hidden not in filtered.text
        unknown = c.get("/ui/jobs/NO-SUCH-JOB")
        for path in ("", "/panel", "/events", "/log", "/logs/stream"):
            r = c.get(f"/ui/jobs/{hidden}{path}")
            assert r.status_code == 404, (path, r.text[:200])
            assert f"no job {hidden!r}" in unescape(r.text) and HIDDEN not in r.text
        page = c.get(f"/ui/jobs/{hidden}")
        assert page.text.replace(hidden, "ID") == unknown.text.replace("NO-SUCH-JOB", "ID")
        seen = sse_until(c, "/ui/stream", "succeeded", headers={"Last-Event-ID": "1"})
        stream = "\n".join(seen)
        assert shown in stream and hidden not in stream and HIDDEN not in stream
        # the user still sees the workers page (workers are not per queue)
        assert c.get("/ui/workers").status_code == 200


def test_an_action_needs_its_verb_on_the_jobs_queue(api: Api, queues: None) -> None:
    job = str(api.submit(queue=SHOWN, command=["sleep", "60"])["id"])
    hidden = str(api.submit(queue=HIDDEN, command=["sleep", "60"])["id"])
    before = {j: api.job(j)["priority"] for j in (job, hidden)}
    with signed_in(api, "walter", (SHOWN, "watch"), (SHOWN, "preempt")) as c:
        panel = c.get(f"/ui/jobs/{job}/panel").text
        assert 'data-action="cancel"' in panel and 'data-denied="cancel"' in panel
        assert f"you need the verb 'cancel' on queue {SHOWN!r}" in unescape(panel)
        r = c.post(f"/ui/jobs/{job}/actions/cancel")
        assert r.status_code == 403 and "Not allowed" in r.text
        assert f"may not cancel in queue {SHOWN!r}" in unescape(r.text)
        r = c.post(f"/ui/jobs/{job}/actions/reprioritize", data={"priority": "5"})
        assert r.status_code == 403
        r = c.post(f"/ui/jobs/{hidden}/actions/cancel")
        assert r.status_code == 404 and f"no job {hidden!r}" in unescape(r.text)
        r = c.post("/ui/jobs/cancel", data={"expected": "1"})
        assert r.status_code == 403 and "cancel" in r.text
        assert 'id="bulk-cancel"' in c.get("/ui/jobs").text
        assert "disabled title=" in c.get("/ui/jobs").text
    for job_id in (job, hidden):
        seen = api.job(job_id)
        assert seen["priority"] == before[job_id] and not seen["cancel_requested"], seen
        assert seen["state"] not in ("CANCELLED", "PREEMPTED")
    with signed_in(api, "cora", (SHOWN, "cancel")) as c:
        r = c.post(f"/ui/jobs/{job}/actions/cancel")
        assert r.status_code == 200 and f"no job {job!r}" not in r.text
    api.wait_state(job, "CANCELLED")
    api.http.post(f"/v1/jobs/{hidden}/cancel")


def test_bulk_cancel_touches_only_queues_with_cancel_and_counts_the_rest(
    api: Api, queues: None
) -> None:
    mine = [str(api.submit(queue=SHOWN, command=["sleep", "60"], job_set="bulk")["id"])]
    theirs = [str(api.submit(queue=HIDDEN, command=["sleep", "60"], job_set="bulk")["id"])]
    with signed_in(api, "bea", (SHOWN, "cancel"), (HIDDEN, "watch")) as c:
        preview = c.get("/ui/jobs/cancel?job_set=bulk").text
        assert 'id="cancel-count">1<' in preview and "1 other matching job is" in preview
        r = c.post("/ui/jobs/cancel", data={"expected": "1", "job_set": "bulk", "queue": HIDDEN})
        assert r.status_code == 403
        assert f"may not cancel in queue {HIDDEN!r}" in unescape(r.text)
        r = c.post("/ui/jobs/cancel", data={"expected": "1", "job_set": "bulk"})
        assert r.status_code == 200, r.text
        assert "1 matching job left" in r.text
    api.wait_state(mine[0], "CANCELLED")
    assert api.job(theirs[0])["cancel_requested"] is False
    assert api.job(theirs[0])["state"] != "CANCELLED"
    api.http.post(f"/v1/jobs/{theirs[0]}/cancel")


def test_worker_tokens_cannot_sign_in(api: Api) -> None:
    token = api.store.issue_token("w-host", kind="worker").token
    with httpx.Client(base_url=api.url, timeout=30) as c:
        r = c.post("/ui/login", data={"token": token})
        assert r.status_code == 401 and "worker token" in r.text
        c.cookies.set("jobfleet_ui", token, path="/ui")
        r = c.get("/ui/workers")
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
