"""Failures through the store (PRODUCT.md §5, §6): classified once where observed and stored on
the run, the job and the event; every server-side failure path; memory_factor, avoid_worker,
backoff; checkpoints; the error history; retry-as-new. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from jobfleet.errors import IllegalTransition, InvalidInput, NotFound
from jobfleet.failures import Classifier, Condition, ErrorCategory, FailureInfo
from jobfleet.protocol import CHECKPOINT_LIMIT, Assignment, Checkpoint, Finished
from jobfleet.store import Store
from jobfleet.store.schema import jobs
from tests.integration.storekit import (
    CAPACITY,
    SHARD,
    WORKER,
    lease_one,
    register,
    route,
    schedule_cycle,
    spec,
    start,
)

CATEGORIES = [
    {"name": "bad-input", "rules": [{"exit_codes": {"operator": "In", "values": [2, 64]}}]},
    {
        "name": "cuda-oom",
        "rules": [
            {"conditions": ["OOM_KILLED"]},
            {"termination_message": "CUDA out of memory"},
        ],
    },
    {"name": "infra", "rules": [{"conditions": ["LEASE_EXPIRED", "EVICTED"]}]},
    {"name": "upstream", "rules": [{"conditions": ["DEPENDENCY_FAILED"]}]},
]
NO_BACKOFF = {"initial": 0}


@pytest.fixture
def cstore(db_url: str) -> Iterator[Store]:
    """A store that classifies with CATEGORIES, as `jobfleet up` builds it from its config."""
    classifier = Classifier([ErrorCategory.model_validate(c) for c in CATEGORIES])
    s = Store(db_url, classifier=classifier)
    s.migrate()
    s.ensure_defaults()
    register(s)
    yield s
    s.close()


def fail(a: Assignment, condition: Condition, **kw: Any) -> Finished:
    failure = FailureInfo(condition=condition, **kw)
    return Finished(
        a.run_id, a.fencing, "failed", time.time(), failure.exit_code, failure.signal, failure
    )


def run_and_fail(store: Store, job_id: str, condition: Condition, **kw: Any) -> Assignment:
    a = lease_one(store, job_id)
    start(store, a)
    res = store.report(WORKER, [], [fail(a, condition, **kw)])
    assert res.accepted == [a.run_id], res
    return a


def events_of(store: Store, job_id: str, etype: str) -> list[dict[str, Any]]:
    return [e for e in store.job_events(job_id) if e["type"] == etype]


def column(store: Store, job_id: str, col: sa.Column[Any]) -> Any:
    with store.read() as conn:
        return conn.execute(sa.select(col).where(jobs.c.id == job_id)).scalar_one()


# -- classification, once, where the failure is observed ------------------------------------


def test_a_reported_failure_is_classified_and_stored_on_run_job_and_event(cstore: Store) -> None:
    [job_id] = cstore.submit([spec()])
    run_and_fail(
        cstore,
        job_id,
        Condition.EXIT_NONZERO,
        exit_code=2,
        termination_message="RuntimeError: CUDA out of memory",
        categories=["forged-by-worker"],  # the server classifies; the worker does not decide
    )
    job = cstore.get_job(job_id)
    assert job["state"] == "FAILED"
    assert job["failure"]["categories"] == ["bad-input", "cuda-oom"]
    assert job["runs"][0]["failure"]["categories"] == ["bad-input", "cuda-oom"]
    assert job["runs"][0]["failure"]["retryable"] is False
    [failed] = events_of(cstore, job_id, "failed")
    assert failed["failure"]["categories"] == ["bad-input", "cuda-oom"]

    cstore.classifier = Classifier()  # a later configuration does not rewrite history
    assert cstore.get_job(job_id)["failure"]["categories"] == ["bad-input", "cuda-oom"]


def test_on_categories_rules_see_the_categories(cstore: Store) -> None:
    policy = {
        "max_retries": 3,
        "backoff": NO_BACKOFF,
        "rules": [{"on_categories": ["bad-input"], "action": "fail"}],
    }
    [bad, flaky] = cstore.submit([spec(retry=policy), spec(retry=policy)])
    run_and_fail(cstore, bad, Condition.EXIT_NONZERO, exit_code=64)
    run_and_fail(cstore, flaky, Condition.EXIT_NONZERO, exit_code=1)

    assert cstore.get_job(bad)["state"] == "FAILED"
    assert not events_of(cstore, bad, "requeued")
    assert cstore.get_job(flaky)["state"] == "QUEUED"
    [requeued] = events_of(cstore, flaky, "requeued")
    assert requeued["failure"]["categories"] == []
    assert requeued["failure"]["retryable"] is True


def test_lease_expiry_is_classified(cstore: Store) -> None:
    [job_id] = cstore.submit([spec()])
    a = lease_one(cstore, job_id, lease_timeout=0.2)
    deadline = time.monotonic() + 5
    while cstore.expire_leases() == 0:
        assert time.monotonic() < deadline, "the lease never expired"
    [requeued] = events_of(cstore, job_id, "requeued")
    assert requeued["cause"] == "lease_expired"
    assert requeued["failure"]["categories"] == ["infra"]
    run = cstore.get_job(job_id)["runs"][0]
    assert (run["id"], run["state"]) == (a.run_id, "LOST")
    assert run["failure"]["categories"] == ["infra"]
    assert run["failure"]["retryable"] is True


def test_dependency_failure_is_classified(cstore: Store) -> None:
    [parent] = cstore.submit([spec()])
    [child] = cstore.submit([spec(depends_on=[parent])])
    run_and_fail(cstore, parent, Condition.EXIT_NONZERO, exit_code=1)
    assert cstore.resolve_dependencies() == 1
    job = cstore.get_job(child)
    assert job["state"] == "FAILED"
    assert job["failure"]["condition"] == "DEPENDENCY_FAILED"
    assert job["failure"]["categories"] == ["upstream"]
    assert events_of(cstore, child, "failed")[0]["failure"]["categories"] == ["upstream"]


# -- the other failure paths a worker reports -------------------------------------------------


def test_eviction_requeues_once_with_cause_evicted_without_counting(cstore: Store) -> None:
    [job_id] = cstore.submit([spec()])  # no policy: max_retries 0
    a = run_and_fail(cstore, job_id, Condition.EVICTED, message="the worker drained")
    job = cstore.get_job(job_id)
    assert job["state"] == "QUEUED"
    assert column(cstore, job_id, jobs.c.counted_retries) == 0
    [requeued] = events_of(cstore, job_id, "requeued")
    assert (requeued["cause"], requeued["run_id"], requeued["delay"]) == ("evicted", a.run_id, 0)
    assert requeued["failure"]["condition"] == "EVICTED"
    assert requeued["failure"]["categories"] == ["infra"]
    assert job["runs"][0]["failure"]["condition"] == "EVICTED"
    assert not events_of(cstore, job_id, "failed")


def test_a_job_that_succeeds_after_a_retry_shows_no_failure_of_its_own(cstore: Store) -> None:
    """The job's `failure` is the latest failure while it retries; once it SUCCEEDED it is
    null, and the earlier attempt's failure stays on that run."""
    [job_id] = cstore.submit([spec()])
    run_and_fail(cstore, job_id, Condition.EVICTED, message="the worker drained")
    assert cstore.get_job(job_id)["failure"]["condition"] == "EVICTED"
    a = lease_one(cstore, job_id)
    start(cstore, a)
    ok = Finished(a.run_id, a.fencing, "succeeded", time.time(), 0, None, None)
    assert cstore.report(WORKER, [], [ok]).accepted == [a.run_id]
    job = cstore.get_job(job_id)
    assert job["state"] == "SUCCEEDED"
    assert job["failure"] is None
    assert [r["failure"] and r["failure"]["condition"] for r in job["runs"]] == ["EVICTED", None]


def test_signaled_run_carries_its_signal(cstore: Store) -> None:
    [job_id] = cstore.submit([spec()])
    run_and_fail(cstore, job_id, Condition.SIGNALED, signal=9, message="killed by signal 9")
    job = cstore.get_job(job_id)
    assert (job["failure"]["condition"], job["failure"]["signal"]) == ("SIGNALED", 9)
    assert job["runs"][0]["signal"] == 9


def test_oom_killed_with_memory_factor_gives_the_next_run_more_memory(cstore: Store) -> None:
    policy = {
        "max_retries": 2,
        "backoff": NO_BACKOFF,
        "rules": [{"on_conditions": ["OOM_KILLED"], "action": "retry", "memory_factor": 1.5}],
    }
    [job_id] = cstore.submit([spec(retry=policy, resources={"memory": "1Gi"})])
    run_and_fail(cstore, job_id, Condition.OOM_KILLED, signal=9, message="OOM")

    [requeued] = events_of(cstore, job_id, "requeued")
    assert requeued["failure"]["condition"] == "OOM_KILLED"
    assert requeued["failure"]["categories"] == ["cuda-oom"]
    assert requeued["memory"] == 3 * 2**29  # 1.5 GiB
    job = cstore.get_job(job_id)
    assert job["resources"]["memory"] == 3 * 2**29
    assert job["spec"]["resources"]["memory"] == 2**30  # what was asked stays as it was

    b = lease_one(cstore, job_id)
    assert b.spec["resources"]["memory"] == 3 * 2**29  # the worker enforces this
    run2 = cstore.get_job(job_id)["runs"][1]
    assert run2["resources"]["memory"] == 3 * 2**29


def test_backoff_keeps_the_requeued_job_queued_until_it_has_passed(cstore: Store) -> None:
    policy = {"max_retries": 1, "backoff": {"initial": "30s", "jitter": 0}}
    [job_id] = cstore.submit([spec(retry=policy)])
    before = time.time()
    run_and_fail(cstore, job_id, Condition.EXIT_NONZERO, exit_code=1)

    [requeued] = events_of(cstore, job_id, "requeued")
    assert requeued["delay"] == 30
    not_before = column(cstore, job_id, jobs.c.not_before)
    assert before + 30 <= not_before <= time.time() + 30
    assert route(cstore, SHARD) == 0  # not eligible yet
    assert cstore.get_job(job_id)["state"] == "QUEUED"

    with cstore.writer.begin() as conn:  # let the time pass
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(not_before=time.time() - 1))
    assert route(cstore, SHARD) == 1
    assert cstore.get_job(job_id)["state"] == "SCHEDULED"


def test_a_flood_in_a_report_is_bounded_by_the_store(cstore: Store) -> None:
    [job_id] = cstore.submit([spec()])
    run_and_fail(
        cstore,
        job_id,
        Condition.EXIT_NONZERO,
        exit_code=1,
        termination_message="é" * 500_000 + "the end",
        message="m" * 100_000,
    )
    failure = cstore.get_job(job_id)["failure"]
    assert len(failure["termination_message"].encode()) <= 4096
    assert failure["termination_message"].endswith("the end")
    assert len(failure["message"].encode()) <= 1024
    stored = events_of(cstore, job_id, "failed")[0]["failure"]
    assert len(json.dumps(stored, ensure_ascii=False).encode()) < 4096 + 1024 + 1024


# -- avoid_worker -----------------------------------------------------------------------------


def _leased_anywhere(store: Store, job_id: str) -> tuple[str, Assignment]:
    schedule_cycle(store)
    for w in ("w1", "w2"):
        for a in store.assignments(w):
            if a.job_id == job_id:
                return w, a
    raise AssertionError("the job was not leased")


def test_avoid_worker_places_the_retry_on_another_worker(cstore: Store) -> None:
    cstore.register_worker("w2", SHARD, CAPACITY)
    policy = {
        "max_retries": 3,
        "backoff": NO_BACKOFF,
        "rules": [{"on_conditions": ["EXIT_NONZERO"], "action": "retry", "avoid_worker": True}],
    }
    [job_id] = cstore.submit([spec(retry=policy)])
    seen = []
    for _ in range(2):
        worker, a = _leased_anywhere(cstore, job_id)
        seen.append(worker)
        cstore.report(worker, [], [fail(a, Condition.EXIT_NONZERO, exit_code=1)])
    assert seen[0] != seen[1]
    assert column(cstore, job_id, jobs.c.avoid_workers) == seen
    # Both workers are now avoided: it is a preference, so the job still runs somewhere.
    worker, _ = _leased_anywhere(cstore, job_id)
    assert worker in seen


def test_avoid_worker_falls_back_when_no_other_worker_can_hold_the_job(cstore: Store) -> None:
    policy = {"max_retries": 1, "backoff": NO_BACKOFF, "rules": [{"action": "retry"}]}
    policy["rules"][0]["avoid_worker"] = True  # type: ignore[index]
    [job_id] = cstore.submit([spec(retry=policy)])
    run_and_fail(cstore, job_id, Condition.EXIT_NONZERO, exit_code=1)
    assert lease_one(cstore, job_id).attempt == 2  # on w1 again: the only worker


# -- checkpoints ------------------------------------------------------------------------------


def checkpoint(a: Assignment, value: Any, *, fencing: int | None = None) -> Checkpoint:
    text = value if isinstance(value, str) else json.dumps(value)
    return Checkpoint(a.run_id, a.fencing if fencing is None else fencing, text, time.time())


def test_checkpoints_are_kept_listed_and_given_to_the_next_attempt(cstore: Store) -> None:
    [job_id] = cstore.submit([spec(retry={"max_retries": 1, "backoff": NO_BACKOFF})])
    a = lease_one(cstore, job_id)
    assert a.checkpoint is None  # a first attempt has nothing to resume from
    start(cstore, a)
    cstore.report(WORKER, [], [], checkpoints=[checkpoint(a, {"step": 5})])
    cstore.report(WORKER, [], [], checkpoints=[checkpoint(a, {"step": 6})])  # replaces it
    [item] = cstore.checkpoints(job_id)
    assert (item["run_id"], item["attempt"], item["value"]) == (a.run_id, 1, {"step": 6})
    assert item["size"] == len('{"step": 6}') and item["time"]

    cstore.report(WORKER, [], [fail(a, Condition.EXIT_NONZERO, exit_code=1)])
    b = lease_one(cstore, job_id)
    assert b.attempt == 2
    assert json.loads(b.checkpoint or "null") == {"step": 6}


def test_the_checkpoint_in_the_report_that_ends_the_run_counts(cstore: Store) -> None:
    [job_id] = cstore.submit([spec()])
    a = lease_one(cstore, job_id)
    start(cstore, a)
    done = Finished(a.run_id, a.fencing, "succeeded", time.time(), 0)
    cstore.report(WORKER, [], [done], checkpoints=[checkpoint(a, [1, 2, 3])])
    assert [c["value"] for c in cstore.checkpoints(job_id)] == [[1, 2, 3]]


def test_bad_checkpoints_are_ignored_not_fatal(cstore: Store) -> None:
    [job_id] = cstore.submit([spec()])
    a = lease_one(cstore, job_id)
    start(cstore, a)
    bad = [
        checkpoint(a, "{not json"),
        checkpoint(a, json.dumps("x" * CHECKPOINT_LIMIT)),  # too large
        checkpoint(a, {"stale": True}, fencing=a.fencing + 1000),  # not this lease
    ]
    res = cstore.report(WORKER, [], [], checkpoints=bad)
    assert not res.refused
    assert cstore.checkpoints(job_id) == []
    assert cstore.get_job(job_id)["state"] == "RUNNING"


def test_checkpoints_of_an_unknown_job_is_not_found(cstore: Store) -> None:
    with pytest.raises(NotFound):
        cstore.checkpoints("nope")


# -- the error history ------------------------------------------------------------------------


def test_errors_lists_every_failure_newest_first_with_a_cursor(cstore: Store) -> None:
    [job_id] = cstore.submit([spec(retry={"max_retries": 3, "backoff": NO_BACKOFF})])
    runs = [run_and_fail(cstore, job_id, Condition.EXIT_NONZERO, exit_code=n) for n in (1, 2, 3, 4)]
    assert cstore.get_job(job_id)["state"] == "FAILED"

    page, cursor = cstore.errors(job_id, limit=3)
    assert [e["attempt"] for e in page] == [4, 3, 2]
    assert [e["run_id"] for e in page] == [r.run_id for r in runs[::-1][:3]]
    assert [e["failure"]["exit_code"] for e in page] == [4, 3, 2]
    assert page[0]["event"] == "failed" and page[1]["event"] == "requeued"
    assert {e["worker"] for e in page} == {WORKER}
    assert [e["failure"]["categories"] for e in page] == [[], [], ["bad-input"]]
    assert cursor is not None
    rest, end = cstore.errors(job_id, limit=3, cursor=cursor)
    assert [e["attempt"] for e in rest] == [1]
    assert end is None
    everything, _ = cstore.errors(job_id, limit=4)
    assert len(everything) == 4


def test_errors_of_a_job_that_never_failed_is_empty_and_bad_input_is_refused(
    cstore: Store,
) -> None:
    [job_id] = cstore.submit([spec()])
    assert cstore.errors(job_id) == ([], None)
    with pytest.raises(NotFound):
        cstore.errors("nope")
    with pytest.raises(InvalidInput):
        cstore.errors(job_id, cursor="garbage!")


# -- retry-as-new -----------------------------------------------------------------------------


def test_retry_as_new_of_each_terminal_state(cstore: Store) -> None:
    [gone] = cstore.submit([spec()])
    cstore.cancel(gone)
    [ok, bad] = cstore.submit([spec(client_id="k1"), spec()])
    a = lease_one(cstore, ok)
    start(cstore, a)
    cstore.report(WORKER, [], [Finished(a.run_id, a.fencing, "succeeded", time.time(), 0)])
    run_and_fail(cstore, bad, Condition.EXIT_NONZERO, exit_code=1)
    for old in (ok, bad, gone):
        before = cstore.get_job(old)
        new = cstore.retry_as_new(old, actor="alice")
        assert new["id"] != old and new["retry_of"] == old
        assert (new["state"], new["attempt"], new["client_id"]) == ("QUEUED", 0, None)
        assert new["spec"]["command"] == before["spec"]["command"]
        submitted = cstore.job_events(new["id"])[0]
        assert (submitted["retry_of"], submitted["requested_by"]) == (old, "alice")
        assert cstore.get_job(old) == before  # the old job is not changed


def test_retry_as_new_of_an_unfinished_job_is_refused(cstore: Store) -> None:
    [job_id] = cstore.submit([spec()])
    with pytest.raises(IllegalTransition) as err:
        cstore.retry_as_new(job_id)
    assert err.value.state == "QUEUED"
    with pytest.raises(NotFound):
        cstore.retry_as_new("nope")
