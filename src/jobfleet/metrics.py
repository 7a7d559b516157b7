"""Prometheus metrics (`GET /metrics`), from three sources:

- **scrape time** (gauges): jobs by queue and state, workers and capacity by shard, the callback
  backlog — cheap grouped COUNTs over the store, cached for `CACHE_SECONDS`, so they are the
  same whichever process serves the scrape;
- **the event log** (counters, the latency histogram): submissions, finished jobs, retries by
  cause/condition/category, lease expiries, and queued→running latency are derived from the
  events every process appends, read after the last one seen at scrape time (and before each
  retention batch, so the events of deleted jobs are counted first). So they count what the
  whole deployment did — the local worker process of `jobfleet up` included — since this
  server process started;
- **in process** (the module-level metrics below): scheduler cycle time, retention deletions,
  callback attempts — observed by the thread that does the work, so a server process exposes
  them only for the scheduler, retention and deliverer threads it runs (under `jobfleet up`:
  all of them).

Conventions (checked by tests/integration/test_metrics.py with prometheus_client's parser):
units in the names (`_seconds`, `_bytes`, `_cores`, `_gpus`); no `_created` series; every
labelled counter exists from the first scrape with a 0 for the label values known then (the
queues, the end states, the failure conditions, the callback outcomes, the retention kinds),
so a rate() has a start; a label with no value reads `none`, never an empty string.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from jobfleet.failures.conditions import Condition
from jobfleet.lifecycle import RequeueCause

if TYPE_CHECKING:
    from prometheus_client import Metric

    from jobfleet.store import Store

# The `_created` series (one per counter and label set, a start time that is rarely used)
# would double what a scrape sends: jobfleet does not export them. (A process-wide switch:
# jobfleet's processes export only these metrics.)
disable_created_metrics()  # type: ignore[no-untyped-call]

CACHE_SECONDS = 2.0
TAIL_PAGE = 5000
TAIL_PAGES = 20  # at most this many pages per scrape; the rest next time
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "preempted"})
NONE = "none"  # the value of a label that has none (a retry with no error category)
RETENTION_KINDS = ("jobs", "events", "runs", "callbacks", "checkpoints", "files")
CALLBACK_OUTCOMES = ("delivered", "pending", "failed")
# The failure conditions whose runs are requeued under another cause than `failed`.
_CAUSES = {
    Condition.PREEMPTED: RequeueCause.PREEMPTED,
    Condition.EVICTED: RequeueCause.EVICTED,
    Condition.LEASE_EXPIRED: RequeueCause.LEASE_EXPIRED,
}

# -- in-process metrics (observed by the thread doing the work) ---------------------------

SCHEDULER_CYCLE = Histogram(
    "jobfleet_scheduler_cycle_seconds",
    "Time of one scheduler cycle (housekeeping, routing, placement, leases)",
    buckets=CYCLE_BUCKETS,
    registry=None,
)
RETENTION_DELETED = Counter(
    "jobfleet_retention_deleted",
    "Rows and files deleted by retention (ttl_after_finished), by kind",
    ["kind"],
    registry=None,
)
CALLBACK_ATTEMPTS = Counter(
    "jobfleet_callback_attempts",
    "Callback delivery attempts, by the outcome (delivered, pending = will retry, failed)",
    ["outcome"],
    registry=None,
)
IN_PROCESS = (SCHEDULER_CYCLE, RETENTION_DELETED, CALLBACK_ATTEMPTS)
for _kind in RETENTION_KINDS:
    RETENTION_DELETED.labels(_kind)
for _outcome in CALLBACK_OUTCOMES:
    CALLBACK_ATTEMPTS.labels(_outcome)


def observe_cycle(seconds: float, moved: int) -> None:
    """The scheduler's cycle hook (scheduling/loop.py)."""
    SCHEDULER_CYCLE.observe(seconds)


class EventCounters:
    """Counters derived from the event log, read from where this process started."""

    def __init__(self, store: Store, categories: list[str] | None = None) -> None:
        self.store = store
        self.categories = [NONE, *(categories or [])]
        self.queues: set[str] = set()
        self.last = store.last_event_id()
        self._eligible: dict[str, float] = {}  # job id → when it became eligible to run
        self._lock = threading.Lock()
        self.submitted = Counter(
            "jobfleet_jobs_submitted", "Jobs submitted", ["queue"], registry=None
        )
        self.finished = Counter(
            "jobfleet_jobs_finished",
            "Jobs that ended, by end state",
            ["queue", "state"],
            registry=None,
        )
        self.retries = Counter(
            "jobfleet_retries",
            "Runs retried (requeued), by cause, failure condition and error category",
            ["cause", "condition", "category"],
            registry=None,
        )
        self.lease_expiries = Counter(
            "jobfleet_lease_expiries", "Runs lost because their lease expired", registry=None
        )
        self.latency = Histogram(
            "jobfleet_scheduling_latency_seconds",
            "From eligible to run (queued, or requeued plus its backoff) to running",
            ["queue"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        for condition in Condition:
            cause = _CAUSES.get(condition, RequeueCause.FAILED)
            for category in self.categories:
                self.retries.labels(cause.value, condition.value, category)

    def metrics(self) -> tuple[Any, ...]:
        return (self.submitted, self.finished, self.retries, self.lease_expiries, self.latency)

    def catch_up(self) -> None:
        with self._lock:
            self._known_queues()
            for _ in range(TAIL_PAGES):
                rows = self.store.raw_events_after(self.last, limit=TAIL_PAGE)
                for row in rows:
                    self.observe(row.type, row.job_id, row.queue, row.time, row.payload or {})
                if rows:
                    self.last = rows[-1].id
                if len(rows) < TAIL_PAGE:
                    return

    def _known_queues(self) -> None:
        """A 0 for each queue's series, from the scrape after the queue was created."""
        for queue in set(self.store.queue_names()) - self.queues:
            self.submitted.labels(queue)
            self.latency.labels(queue)
            for state in sorted(TERMINAL):
                self.finished.labels(queue, state.upper())
            self.queues.add(queue)

    def observe(self, etype: str, job_id: str, queue: str, t: float, payload: Any) -> None:
        failure = payload.get("failure") or {}
        if failure.get("condition") == "LEASE_EXPIRED":
            self.lease_expiries.inc()
        if etype == "submitted":
            self.submitted.labels(queue).inc()
        elif etype == "queued":
            self._remember(job_id, t)
        elif etype == "requeued":
            self._remember(job_id, t + float(payload.get("delay") or 0))
            condition = str(failure.get("condition") or NONE)
            for category in failure.get("categories") or [NONE]:
                self.retries.labels(payload.get("cause") or NONE, condition, category).inc()
        elif etype == "running":
            since = self._eligible.pop(job_id, None)
            if since is not None:
                self.latency.labels(queue).observe(max(0.0, t - since))
        elif etype in TERMINAL:
            self.finished.labels(queue, etype.upper()).inc()
            self._eligible.pop(job_id, None)

    def _remember(self, job_id: str, t: float) -> None:
        if len(self._eligible) > 200_000:  # jobs that never ran (cancelled while queued…)
            self._eligible.clear()
        self._eligible[job_id] = t


class StoreGauges:
    """Gauges computed from the store at scrape time, cached briefly."""

    def __init__(self, store: Store, lease_timeout: float) -> None:
        self.store = store
        self.lease_timeout = lease_timeout
        self._cached: tuple[float, list[Metric]] | None = None
        self._lock = threading.Lock()

    def families(self) -> list[Metric]:
        with self._lock:
            if self._cached is None or self._cached[0] < time.monotonic():
                self._cached = (time.monotonic() + CACHE_SECONDS, self._compute())
            return self._cached[1]

    def _compute(self) -> list[Metric]:
        jobs = GaugeMetricFamily(
            "jobfleet_jobs", "Jobs by queue and state", labels=["queue", "state"]
        )
        for queue, state, n in self.store.job_counts():
            jobs.add_metric([queue, state], n)
        backlog = GaugeMetricFamily(
            "jobfleet_callback_backlog", "Callback deliveries pending (not delivered, not given up)"
        )
        backlog.add_metric([], self.store.callback_backlog())
        return [jobs, *self._workers(), backlog]

    def _workers(self) -> list[Metric]:
        count = GaugeMetricFamily(
            "jobfleet_workers",
            "Registered workers by shard and state; live: heart-beating",
            labels=["shard", "state", "live"],
        )
        capacity = _resource_families("capacity", "Capacity of the live workers, by shard")
        allocated = _resource_families("allocated", "Held by leased and running runs, by shard")
        totals: dict[str, list[float]] = {}
        fresh = time.time() - self.lease_timeout
        for r in self.store.worker_stats(fresh_after=fresh):
            count.add_metric([r["shard"], r["state"], "true"], int(r["live"] or 0))
            count.add_metric([r["shard"], r["state"], "false"], r["workers"] - int(r["live"] or 0))
            t = totals.setdefault(r["shard"], [0.0, 0.0, 0.0])
            for i, key in enumerate(("cpu_milli", "memory", "gpu")):
                t[i] += float(r[key] or 0)
        _add_resources(capacity, totals)
        held = {
            r["shard"]: [float(r[k] or 0) for k in ("cpu_milli", "memory", "gpu")]
            for r in self.store.allocated()
        }
        _add_resources(allocated, held)
        return [count, *capacity, *allocated]


def _resource_families(what: str, doc: str) -> list[GaugeMetricFamily]:
    """One gauge per resource, its unit in its name: `jobfleet_shard_<what>_cpu_cores`,
    `..._memory_bytes`, `..._gpus`."""
    return [
        GaugeMetricFamily(f"jobfleet_shard_{what}_{unit}", f"{doc} ({unit})", labels=["shard"])
        for unit in ("cpu_cores", "memory_bytes", "gpus")
    ]


def _add_resources(families: list[GaugeMetricFamily], by_shard: dict[str, list[float]]) -> None:
    cores, memory, gpus = families
    for shard, (cpu_milli, mem, gpu) in by_shard.items():
        cores.add_metric([shard], cpu_milli / 1000)
        memory.add_metric([shard], mem)
        gpus.add_metric([shard], gpu)


class Metrics(Collector):
    """What one server process exposes at /metrics."""

    def __init__(
        self, store: Store, *, lease_timeout: float, categories: list[str] | None = None
    ) -> None:
        self.counters = EventCounters(store, categories)
        self.gauges = StoreGauges(store, lease_timeout)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterator[Metric]:
        for metric in (*IN_PROCESS, *self.counters.metrics()):
            yield from metric.collect()
        yield from self.gauges.families()

    def render(self) -> bytes:
        """The exposition text; reads the new events first (call from a worker thread)."""
        self.counters.catch_up()
        return generate_latest(self.registry)
