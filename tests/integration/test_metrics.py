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
    retry = {"cause": "failed", "condition": "EXIT_NONZERO", "category": "none"}
    assert moved("jobfleet_retries_total", **retry) == 1
    assert moved("jobfleet_scheduler_cycle_seconds_count") > 0
    assert value(after, "jobfleet_workers", shard="default", state="READY", live="true") == 1
    assert value(after, "jobfleet_shard_capacity_cpu_cores", shard="default") > 0
    assert value(after, "jobfleet_shard_capacity_memory_bytes", shard="default") > 2**20
    assert ("jobfleet_callback_backlog", ()) in after


def test_the_exposition_follows_the_conventions_from_the_first_scrape(
    store: Store, tmp_path: Path
) -> None:
    """Parsed with prometheus_client's own parser: units in the names, no `_created` series,
    labelled counters present (at 0) before anything happened, no empty label value."""
    config = settings(
        error_categories=[{"name": "cuda", "rules": [{"termination_message": "CUDA"}]}]
    )
    with stack_api(store, tmp_path, config) as api:
        r = api.http.get("/metrics")
        families = {f.name: f for f in text_string_to_metric_families(r.text)}
        first = scrape(api.http)
        assert api.http.post("/v1/queues", json={"name": "later"}).status_code == 201
        api.submit(command=["false"], retry={"max_retries": 1, "backoff": {"initial": 0.1}})
        later = wait_for(
            lambda: (
                (s := scrape(api.http))
                and value(
                    s,
                    "jobfleet_retries_total",
                    cause="failed",
                    condition="EXIT_NONZERO",
                    category="none",
                )
                == 1
                and s
            ),
            timeout=15,
            interval=0.25,
            what="the retry to be counted",
        )
    for samples in (first, later):
        assert not [name for name, _ in samples if name.endswith("_created")]
        assert not [key for key in samples if any(v == "" for _, v in key[1])]
    assert "jobfleet_shard_capacity" not in families
    for what in ("capacity", "allocated"):
        for unit in ("cpu_cores", "memory_bytes", "gpus"):
            assert families[f"jobfleet_shard_{what}_{unit}"].type == "gauge"
    # counters exist before their first increment, at 0
    assert ("jobfleet_jobs_submitted_total", (("queue", "default"),)) in first
    for state in ("SUCCEEDED", "FAILED", "CANCELLED", "PREEMPTED"):
        assert value(first, "jobfleet_jobs_finished_total", queue="default", state=state) == 0
        assert (
            "jobfleet_jobs_finished_total",
            (("queue", "default"), ("state", state)),
        ) in first
    for category in ("none", "cuda"):
        key = (("category", category), ("cause", "failed"), ("condition", "EXIT_NONZERO"))
        assert ("jobfleet_retries_total", key) in first
    assert (
        "jobfleet_retries_total",
        (("category", "none"), ("cause", "preempted"), ("condition", "PREEMPTED")),
    ) in first
    for outcome in ("delivered", "pending", "failed"):
        assert ("jobfleet_callback_attempts_total", (("outcome", outcome),)) in first
    for kind in ("jobs", "events", "runs", "callbacks", "checkpoints", "files"):
        assert ("jobfleet_retention_deleted_total", (("kind", kind),)) in first
    # a queue created later has its series from the next scrape on
    assert ("jobfleet_jobs_submitted_total", (("queue", "later"),)) not in first
    assert value(later, "jobfleet_jobs_submitted_total", queue="later") == 0
    assert ("jobfleet_jobs_submitted_total", (("queue", "later"),)) in later


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
    cause = counters.retries.labels("lease_expired", "LEASE_EXPIRED", "none")
    assert cause._value.get() == 1
