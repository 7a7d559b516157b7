"""Delayed starts (PRODUCT.md §14.2 `not_before`), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from jobfleet.store.schema import jobs
from tests.integration.conftest import Api


def parse(t: object) -> datetime:
    return datetime.fromisoformat(str(t).replace("Z", "+00:00"))


def test_a_job_waits_queued_with_a_reason_until_not_before(api: Api) -> None:
    job = api.submit(command=["true"], not_before="2s")
    assert job["state"] == "QUEUED"
    assert "not_before" in str(job["scheduling_reason"])
    when = parse(job["not_before"])
    api.stack.scheduler.wake()
    assert api.job(str(job["id"]))["state"] == "QUEUED"
    done = api.wait_state(str(job["id"]), "SUCCEEDED", timeout=30)
    started = parse(done["runs"][0]["created_at"])  # type: ignore[index]
    assert started >= when


def test_an_rfc3339_time_in_the_future_holds_the_job(api: Api) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    job = api.submit(command=["true"], not_before=later)
    assert abs((parse(job["not_before"]) - parse(later)).total_seconds()) < 0.01
    api.stack.scheduler.cycle()
    got = api.job(str(job["id"]))
    assert got["state"] == "QUEUED"
    assert "not_before" in str(got["scheduling_reason"])


def test_a_time_in_the_past_starts_at_once(api: Api) -> None:
    job = api.submit(command=["true"], not_before="2020-01-01T00:00:00Z")
    assert job["scheduling_reason"] is None
    api.wait_state(str(job["id"]), "SUCCEEDED")


@pytest.mark.parametrize(
    "value", ["tomorrow", "2026-13-01T00:00:00Z", "2026-12-05T08:00:00", "10 parsecs", True]
)
def test_an_unparseable_not_before_is_refused_naming_it(api: Api, value: object) -> None:
    r = api.http.post("/v1/jobs", json={"command": ["true"], "not_before": value})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["not_before"]
    with api.store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar() == 0
