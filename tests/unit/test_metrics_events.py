"""The event-derived metrics, fed plain events (no database)."""

from __future__ import annotations

from typing import Any

from jobfleet.metrics import EventCounters


class NoStore:
    def last_event_id(self) -> int:
        return 0


def counters() -> EventCounters:
    return EventCounters(NoStore())  # type: ignore[arg-type]


def value(metric: Any, *labels: str) -> float:
    target = metric.labels(*labels) if labels else metric
    return float(target._value.get())


def test_latency_runs_from_eligible_to_running_including_the_backoff() -> None:
    c = counters()
    c.observe("submitted", "J", "q", 100.0, {})
    c.observe("queued", "J", "q", 100.0, {})
    c.observe("running", "J", "q", 102.0, {})
    failure = {"condition": "EXIT_NONZERO", "categories": ["bad-input", "flaky"]}
    c.observe("requeued", "J", "q", 110.0, {"cause": "failed", "failure": failure, "delay": 5})
    c.observe("running", "J", "q", 116.0, {})
    c.observe("succeeded", "J", "q", 120.0, {})
    samples = {
        s.name: s.value for m in c.latency.collect() for s in m.samples if not s.labels.get("le")
    }
    assert samples["jobfleet_scheduling_latency_seconds_count"] == 2
    assert samples["jobfleet_scheduling_latency_seconds_sum"] == 3.0  # 2 s, then 1 s past 115
    assert value(c.submitted, "q") == 1
    assert value(c.finished, "q", "SUCCEEDED") == 1
    assert value(c.retries, "failed", "EXIT_NONZERO", "bad-input") == 1
    assert value(c.retries, "failed", "EXIT_NONZERO", "flaky") == 1


def test_a_lost_lease_counts_once_whatever_event_carries_it() -> None:
    c = counters()
    lost = {"condition": "LEASE_EXPIRED"}
    c.observe("requeued", "J", "q", 1.0, {"cause": "lease_expired", "failure": lost})
    c.observe("cancelled", "K", "q", 2.0, {"failure": lost})
    assert value(c.lease_expiries) == 2
    assert value(c.retries, "lease_expired", "LEASE_EXPIRED", "none") == 1
