"""The history checker itself: clean histories pass, and each kind of violation is caught."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from jobfleet.models import JobSpec
from jobfleet.store import Store
from tests.faults.checker import Event, History, Run, check, read_history


class Builder:
    """Hand-made histories: events get increasing ids, runs times in order."""

    def __init__(self) -> None:
        self.h = History()
        self.next_id = 0
        self.clock = 1000.0

    def job(self, job_id: str, state: str, run_id: str | None = None) -> None:
        self.h.jobs[job_id] = state
        self.h.job_runs[job_id] = run_id

    def ev(self, job_id: str, *steps: tuple[str, str] | tuple[str, str, str]) -> None:
        for step in steps:
            etype, state, *run = step
            self.next_id += 1
            self.h.events.append(Event(self.next_id, job_id, etype, state, run[0] if run else None))

    def run(self, job_id: str, attempt: int, state: str, *, ended: bool = True) -> str:
        run_id = f"{job_id}-{attempt}"
        start = self.clock
        self.clock += 10
        self.h.runs.append(
            Run(run_id, job_id, attempt, state, start, self.clock if ended else None, "w")
        )
        self.clock += 1
        return run_id

    def succeeded(self, job_id: str) -> None:
        """A job that ran once and succeeded."""
        r = self.run(job_id, 1, "SUCCEEDED")
        self.job(job_id, "SUCCEEDED")
        self.ev(job_id, *_through_success(r))


def _to_lease(run_id: str) -> list[tuple[str, str] | tuple[str, str, str]]:
    return [
        ("scheduled", "SCHEDULED"),
        ("leased", "LEASED", run_id),
        ("running", "RUNNING", run_id),
    ]


def _through_success(run_id: str) -> list[tuple[str, str] | tuple[str, str, str]]:
    return [
        ("submitted", "QUEUED"),
        ("queued", "QUEUED"),
        *_to_lease(run_id),
        ("succeeded", "SUCCEEDED", run_id),
    ]


def clean_history() -> Builder:
    """Every legal shape we rely on: success, a retry, a lost run, waiting, cancels,
    reprioritize, a job still running, a job still queued."""
    b = Builder()
    b.succeeded("ok")
    r1 = b.run("retried", 1, "LOST")
    r2 = b.run("retried", 2, "SUCCEEDED")
    b.job("retried", "SUCCEEDED")
    b.ev("retried", ("submitted", "QUEUED"), ("queued", "QUEUED"), *_to_lease(r1))
    b.ev("retried", ("requeued", "QUEUED", r1), ("reprioritized", "QUEUED"), *_to_lease(r2))
    b.ev("retried", ("succeeded", "SUCCEEDED", r2))
    b.job("waited", "CANCELLED")
    b.ev("waited", ("submitted", "WAITING"), ("waiting", "WAITING"), ("queued", "QUEUED"))
    b.ev("waited", ("cancelled", "CANCELLED"))
    r = b.run("stopped", 1, "CANCELLED")
    b.job("stopped", "CANCELLED")
    b.ev("stopped", ("submitted", "QUEUED"), ("queued", "QUEUED"), *_to_lease(r))
    b.ev("stopped", ("cancel_requested", "RUNNING", r), ("cancelled", "CANCELLED", r))
    r = b.run("busy", 1, "RUNNING", ended=False)
    b.job("busy", "RUNNING", r)
    b.ev("busy", ("submitted", "QUEUED"), ("queued", "QUEUED"), *_to_lease(r))
    b.job("pending", "QUEUED")
    b.ev("pending", ("submitted", "QUEUED"), ("queued", "QUEUED"))
    return b


ACKED = ["ok", "retried", "waited", "stopped", "busy", "pending"]


def test_a_clean_history_has_no_violation() -> None:
    counts = check(clean_history().h, ACKED)
    assert counts.clean, counts.report()
    assert (counts.jobs, counts.acknowledged, counts.terminal) == (6, 6, 4)
    assert (counts.runs, counts.runs_lost) == (5, 1)
    assert "lost=0 duplicated=0 illegal_walks=0 runs_ended_twice=0" in str(counts)


def test_an_acknowledged_job_missing_is_lost() -> None:
    b = clean_history()
    counts = check(b.h, [*ACKED, "never-stored"])
    assert counts.lost == 1
    del b.h.jobs["ok"]
    b.h.events = [e for e in b.h.events if e.job_id != "ok"]
    b.h.runs = [r for r in b.h.runs if r.job_id != "ok"]
    assert check(b.h, ACKED).lost == 1
    assert (counts.duplicated, counts.illegal, counts.ended_twice) == (0, 0, 0)


def test_two_successful_runs_are_a_duplicate() -> None:
    b = clean_history()
    r1 = b.run("twice", 1, "SUCCEEDED")
    r2 = b.run("twice", 2, "SUCCEEDED")
    b.job("twice", "SUCCEEDED")
    b.ev("twice", ("submitted", "QUEUED"), ("queued", "QUEUED"), *_to_lease(r1))
    b.ev("twice", ("requeued", "QUEUED", r1), *_to_lease(r2), ("succeeded", "SUCCEEDED", r2))
    counts = check(b.h, ACKED)
    assert counts.duplicated == 1 and "2 SUCCEEDED runs" in counts.report()


def test_a_second_succeeded_event_is_a_duplicate_and_an_illegal_walk() -> None:
    b = clean_history()
    b.ev("ok", ("succeeded", "SUCCEEDED", "ok-1"))
    counts = check(b.h, ACKED)
    assert counts.duplicated == 1 and counts.illegal == 1
    assert "2 `succeeded` events" in counts.report()


def test_overlapping_runs_are_a_duplicate() -> None:
    b = clean_history()
    b.h.runs.append(Run("two-1", "two", 1, "LOST", 5000.0, 5010.0, "wa"))
    b.h.runs.append(Run("two-2", "two", 2, "SUCCEEDED", 5005.0, 5020.0, "wb"))
    b.job("two", "SUCCEEDED")
    b.ev("two", ("submitted", "QUEUED"), ("queued", "QUEUED"), *_to_lease("two-1"))
    b.ev("two", ("requeued", "QUEUED", "two-1"), *_to_lease("two-2"))
    b.ev("two", ("succeeded", "SUCCEEDED", "two-2"))
    counts = check(b.h, ACKED)
    assert counts.duplicated == 1 and "overlap" in counts.report()
    assert counts.illegal == 0


def test_two_runs_of_one_attempt_are_a_duplicate() -> None:
    b = clean_history()
    b.h.runs.append(Run("ok-1b", "ok", 1, "RUNNING", 9000.0, None, "wb"))
    counts = check(b.h, ACKED)
    assert counts.duplicated == 1 and "two runs of attempt 1" in counts.report()
    assert counts.inconsistent == 1  # and that run is active while its job is not on it


def test_a_skipped_state_is_an_illegal_walk() -> None:
    b = clean_history()
    b.job("jump", "RUNNING", "jump-1")
    b.run("jump", 1, "RUNNING", ended=False)
    b.ev("jump", ("submitted", "QUEUED"), ("queued", "QUEUED"), ("running", "RUNNING", "jump-1"))
    counts = check(b.h, ACKED)
    assert counts.illegal == 1 and "not a move from QUEUED" in counts.report()


def test_an_event_recording_the_wrong_state_is_an_illegal_walk() -> None:
    b = clean_history()
    b.job("liar", "SCHEDULED")
    b.ev("liar", ("submitted", "QUEUED"), ("queued", "QUEUED"), ("scheduled", "QUEUED"))
    counts = check(b.h, ACKED)
    assert counts.illegal == 1 and "the table says SCHEDULED" in counts.report()


def test_a_terminal_job_needs_exactly_one_terminal_event() -> None:
    b = clean_history()
    b.ev("waited", ("cancelled", "CANCELLED"))  # a second terminal event
    b.job("silent", "SUCCEEDED")  # terminal, but its events never got there
    b.ev("silent", ("submitted", "QUEUED"), ("queued", "QUEUED"))
    counts = check(b.h, ACKED)
    assert counts.illegal == 2
    assert "lead to QUEUED, the job is SUCCEEDED" in counts.report()


def test_a_history_without_its_submitted_event_is_an_illegal_walk() -> None:
    b = clean_history()
    b.job("bare", "QUEUED")
    b.ev("bare", ("queued", "QUEUED"))
    b.job("double", "QUEUED")
    b.ev("double", ("submitted", "QUEUED"), ("submitted", "QUEUED"), ("queued", "QUEUED"))
    counts = check(b.h, ACKED)
    assert counts.illegal == 2
    b.ev("ghost", ("submitted", "QUEUED"), ("queued", "QUEUED"))  # events of no job
    assert check(b.h, ACKED).illegal == 3


def test_a_run_ended_twice_is_caught_even_when_the_walk_is_legal() -> None:
    """A stale report applied to the job's next run: the walk is legal, the run ends twice."""
    b = clean_history()
    r1 = b.run("stale", 1, "LOST")
    r2 = b.run("stale", 2, "RUNNING", ended=False)
    b.job("stale", "SUCCEEDED")
    b.ev("stale", ("submitted", "QUEUED"), ("queued", "QUEUED"), *_to_lease(r1))
    b.ev("stale", ("requeued", "QUEUED", r1), *_to_lease(r2), ("succeeded", "SUCCEEDED", r1))
    counts = check(b.h, ACKED)
    assert counts.ended_twice == 1 and "run stale-1 ended 2 times" in counts.report()
    assert counts.illegal == 0
    assert counts.inconsistent == 1  # run 2 is RUNNING with its job ended


def test_a_run_ended_without_an_event_is_inconsistent() -> None:
    b = clean_history()
    b.h.runs.append(Run("pending-1", "pending", 1, "LOST", 9000.0, 9001.0, "w"))
    counts = check(b.h, ACKED)
    assert counts.inconsistent == 1 and "without an event that ended it" in counts.report()
    assert not counts.clean


def test_a_run_without_its_lease_event_or_a_lease_of_no_run_is_inconsistent() -> None:
    b = clean_history()
    b.h.events = [  # ok's lease event names no run
        Event(e.id, e.job_id, e.type, e.state, None)
        if e.type == "leased" and e.run_id == "ok-1"
        else e
        for e in b.h.events
    ]
    b.ev("pending", ("scheduled", "SCHEDULED"), ("leased", "LEASED", "ghost-1"))
    b.job("pending", "LEASED", "ghost-1")
    counts = check(b.h, ACKED)
    assert counts.inconsistent == 3 and counts.illegal == 0, counts.report()
    assert "1 `leased` events name no run" in counts.report()
    assert "0 `leased` events" in counts.report()
    assert "a `leased` event of run ghost-1, which does not exist" in counts.report()


def test_read_history_reads_a_real_store_and_catches_a_forged_event(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobfleet.db'}"
    store = Store(url)
    store.migrate()
    store.ensure_defaults()
    try:
        spec = JobSpec.model_validate({"command": ["true"], "job_set": "mine"})
        other = JobSpec.model_validate({"command": ["true"], "job_set": "other"})
        [a, b] = [j["id"] for j in store.submit_views([spec, spec])]
        store.submit_views([other])
        store.cancel(a)
    finally:
        store.close()
    history = read_history(url, job_set="mine")
    assert set(history.jobs) == {a, b}
    counts = check(history, [a, b])
    assert counts.clean, counts.report()
    assert (counts.jobs, counts.terminal) == (2, 1)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO events (type, job_id, queue, job_set, state, attempt, time) "
                "VALUES ('cancelled', :id, 'default', 'mine', 'CANCELLED', 0, 0)"
            ),
            {"id": a},
        )
    engine.dispose()
    counts = check(read_history(url, job_set="mine"), [a, b])
    assert counts.illegal == 1, counts.report()
