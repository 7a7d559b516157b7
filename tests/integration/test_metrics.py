"""/metrics over real HTTP on SQLite and PostgreSQL: the named series exist and move."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from jobfleet.metrics import EventCounters
from jobfleet.store import Store
from tests.helpers import wait_for
from tests.integration.opskit import settings, stack_api
from tests.integration.storekit import lease_one, register, spec

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(http: object) -> Samples:
    r = http.get("/metrics")  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_after_jobs_run(store: Store, tmp_path: Path) -> None:
    with stack_api(store, tmp_path, settings()) as api:
        before = scrape(api.http)
        jobs = [api.submit(command=["true"]) for _ in range(3)]
        failing = api.submit(
            command=["false"], retry={"max_retries": 1, "backoff": {"initial": 0.1}}
        )
        for job in jobs:
            api.wait_state(job["id"], "SUCCEEDED")
        api.wait_state(failing["id"], "FAILED")
        # The gauges are cached for CACHE_SECONDS: wait for the scrape that sees the ends.
        after = wait_for(
            lambda: (
                (s := scrape(api.http))
                and value(s, "jobfleet_jobs", queue="default", state="SUCCEEDED") == 3
                and s
            ),
            timeout=10,
            interval=0.25,
            what="the jobs gauge to show the finished jobs",
        )

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("jobfleet_jobs_submitted_total", queue="default") == 4
    assert moved("jobfleet_jobs_finished_total", queue="default", state="SUCCEEDED") == 3
    assert moved("jobfleet_jobs_finished_total", queue="default", state="FAILED") == 1
    assert value(after, "jobfleet_jobs", queue="default", state="SUCCEEDED") == 3
    assert value(after, "jobfleet_jobs", queue="default", state="FAILED") == 1
    assert moved("jobfleet_scheduling_latency_seconds_count", queue="default") == 5
    retry = {"cause": "failed", "condition": "EXIT_NONZERO", "category": ""}
    assert moved("jobfleet_retries_total", **retry) == 1
    assert moved("jobfleet_scheduler_cycle_seconds_count") > 0
    assert value(after, "jobfleet_workers", shard="default", state="READY", live="true") == 1
    assert value(after, "jobfleet_shard_capacity", shard="default", resource="cpu") > 0
    assert ("jobfleet_callback_backlog", ()) in after


def test_metrics_can_require_a_token(store: Store, tmp_path: Path) -> None:
    with stack_api(store, tmp_path, settings(metrics={"auth": True})) as api:
        assert api.http.get("/metrics").status_code == 200  # the client sends the token
        r = api.http.get("/metrics", headers={"Authorization": ""})
        assert r.status_code == 401


def test_lease_expiries_are_counted_from_the_events(store: Store) -> None:
    counters = EventCounters(store)
    register(store)
    (job_id,) = store.submit([spec()])
    lease_one(store, job_id, lease_timeout=0.05)
    wait_for(lambda: store.expire_leases(), timeout=5, what="the lease to expire")
    counters.catch_up()
    assert counters.lease_expiries._value.get() == 1
    assert counters.submitted.labels("default")._value.get() == 1
    cause = counters.retries.labels("lease_expired", "LEASE_EXPIRED", "")
    assert cause._value.get() == 1
