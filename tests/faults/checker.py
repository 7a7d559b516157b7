"""The history checker: what a run of the system left in its database, judged after a fault.

It reads the jobs, their events and their runs (read-only) and counts what must never happen:

- **lost**: a job the client was acknowledged (the API answered 201 with its id) that does not
  exist, or has no `submitted` event;
- **duplicated**: a job that succeeded twice (two `succeeded` events, or two SUCCEEDED runs), or
  that had two runs at once (two runs of one attempt, or a run created before the previous one
  ended);
- **illegal walks**: a job whose events are not a walk of the lifecycle transition table
  (`jobfleet.lifecycle`), from one `submitted` event, each event's recorded state the one the
  table leads to, ending in the job's current state, with exactly one terminal event once the
  job is terminal (none before);
- **runs ended twice**: a run that two events ended (a success and a requeue, say);
- **inconsistent runs** (reported beside them): the runs table and the events disagree — a run
  that ended without an event ending it, one still active while its job is not on it, a run
  without exactly one `leased` event, or a `leased` event of a run that does not exist.

Beside the violations it counts the runs, and the runs LOST (how hard the fault hit).

The walk uses the table itself (`jobfleet.lifecycle.transition` over every `Op`): the states
and moves are not listed again here, so the checker follows the table when it changes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise

import sqlalchemy as sa

from jobfleet.errors import IllegalTransition
from jobfleet.lifecycle import EventType, JobState, Op, Step, transition
from jobfleet.store.engine import normalise_url

SUBMITTED = EventType.SUBMITTED.value


@dataclass(frozen=True)
class Event:
    id: int
    job_id: str
    type: str
    state: str
    run_id: str | None = None


@dataclass(frozen=True)
class Run:
    id: str
    job_id: str
    attempt: int
    state: str
    created_at: float
    finished_at: float | None = None
    worker: str = ""


@dataclass
class History:
    """Jobs (id -> current state, and the run a LEASED/RUNNING job is on), events, runs."""

    jobs: dict[str, str] = field(default_factory=dict)
    job_runs: dict[str, str | None] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)


@dataclass
class Counts:
    jobs: int = 0
    acknowledged: int = 0
    terminal: int = 0
    runs: int = 0
    runs_lost: int = 0
    lost: int = 0
    duplicated: int = 0
    illegal: int = 0
    ended_twice: int = 0
    inconsistent: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.illegal or self.ended_twice) and not (
            self.inconsistent
        )

    def __str__(self) -> str:
        return (
            f"jobs={self.jobs} acknowledged={self.acknowledged} terminal={self.terminal} "
            f"lost={self.lost} duplicated={self.duplicated} illegal_walks={self.illegal} "
            f"runs_ended_twice={self.ended_twice} inconsistent_runs={self.inconsistent} "
            f"(runs={self.runs}, of which LOST={self.runs_lost})"
        )

    def report(self) -> str:
        """The counts and the first problems found (for an assertion message)."""
        return "\n".join([str(self), *self.problems[:30]])


# -- the table, read backwards: (state, cancel flag, event type) -> the step that event records


def _steps_by_event() -> dict[tuple[JobState | None, bool, str], Step]:
    steps: dict[tuple[JobState | None, bool, str], Step] = {}
    for state in (None, *JobState):
        for flag in (False, True):
            for op in Op:
                try:
                    step = transition(state, op, cancel_requested=flag)
                except IllegalTransition:
                    continue
                key = (state, flag, step.event.value)
                known = steps.get(key)
                # One event type from one state must mean one move, or a walk is ambiguous.
                assert known is None or (known.target, known.cancel_requested) == (
                    step.target,
                    step.cancel_requested,
                ), f"the table is ambiguous for {key}"
                steps[key] = step
    return steps


STEPS = _steps_by_event()


def _ends_a_run(before: JobState | None, step: Step) -> bool:
    """A move out of LEASED/RUNNING (or a requeue from there) ends the job's current run."""
    return before is not None and before.active and not step.target.active


def check(history: History, acknowledged: Iterable[str] = ()) -> Counts:
    """Judge a history; `acknowledged` are the ids the API answered 201 for."""
    acked = set(acknowledged)
    counts = Counts(jobs=len(history.jobs), acknowledged=len(acked), runs=len(history.runs))
    counts.runs_lost = sum(r.state == "LOST" for r in history.runs)
    events_of: dict[str, list[Event]] = defaultdict(list)
    for e in sorted(history.events, key=lambda e: e.id):
        events_of[e.job_id].append(e)
    runs_of: dict[str, list[Run]] = defaultdict(list)
    for r in history.runs:
        runs_of[r.job_id].append(r)

    for job_id in sorted(acked):
        if job_id not in history.jobs or not events_of.get(job_id):
            counts.lost += 1
            counts.problems.append(f"lost: acknowledged job {job_id} is not in the database")

    endings: Counter[str] = Counter()
    for job_id in sorted(set(history.jobs) | set(events_of)):
        problem = _walk(history.jobs.get(job_id), events_of.get(job_id, []), endings)
        if problem:
            counts.illegal += 1
            counts.problems.append(f"illegal walk of {job_id}: {problem}")
        state = history.jobs.get(job_id)
        if state is not None and JobState(state).terminal:
            counts.terminal += 1
        duplicate = _duplicate(events_of.get(job_id, []), runs_of.get(job_id, []))
        if duplicate:
            counts.duplicated += 1
            counts.problems.append(f"duplicated {job_id}: {duplicate}")

    for run_id, n in sorted(endings.items()):
        if n > 1:
            counts.ended_twice += 1
            counts.problems.append(f"run {run_id} ended {n} times")
    leases = Counter(e.run_id for e in history.events if e.type == EventType.LEASED.value)
    for r in sorted(history.runs, key=lambda r: r.id):
        problem = _run_problem(r, endings[r.id], history) or _lease_problem(leases[r.id])
        if problem:
            counts.inconsistent += 1
            counts.problems.append(f"run {r.id}: {problem}")
    known = {r.id for r in history.runs}
    for run_id in sorted(k for k in leases if k is not None and k not in known):
        counts.inconsistent += 1
        counts.problems.append(f"a `leased` event of run {run_id}, which does not exist")
    if leases[None]:
        counts.inconsistent += 1
        counts.problems.append(f"{leases[None]} `leased` events name no run")
    return counts


def _walk(current: str | None, events: list[Event], endings: Counter[str]) -> str | None:
    """Replay the events through the table; the first thing wrong, or None."""
    if current is None:
        return "events of a job that does not exist"
    if not events or events[0].type != SUBMITTED:
        return "its history does not begin with a `submitted` event"
    state: JobState | None = None
    flag = False
    terminal_events = 0
    for e in events[1:]:
        if e.type == SUBMITTED:
            return f"a second `submitted` event (event {e.id})"
        step = STEPS.get((state, flag, e.type))
        if step is None:
            cancel = " (cancel requested)" if flag else ""
            return f"`{e.type}` (event {e.id}) is not a move from {state}{cancel}"
        if e.state != step.target.value:
            return (
                f"`{e.type}` (event {e.id}) recorded state {e.state}, the table says {step.target}"
            )
        if _ends_a_run(state, step) and e.run_id is not None:
            endings[e.run_id] += 1
        state, flag = step.target, step.cancel_requested
        terminal_events += int(state.terminal and step.changes_state)
    if state is None or state.value != current:
        return f"its events lead to {state}, the job is {current}"
    if state.terminal and terminal_events != 1:
        return f"{terminal_events} terminal events"
    return None


def _duplicate(events: list[Event], runs: list[Run]) -> str | None:
    successes = sum(e.type == EventType.SUCCEEDED.value for e in events)
    if successes > 1:
        return f"{successes} `succeeded` events"
    succeeded_runs = [r.id for r in runs if r.state == "SUCCEEDED"]
    if len(succeeded_runs) > 1:
        return f"{len(succeeded_runs)} SUCCEEDED runs: {succeeded_runs}"
    attempts = Counter(r.attempt for r in runs)
    twice = sorted(a for a, n in attempts.items() if n > 1)
    if twice:
        return f"two runs of attempt {twice[0]}"
    ordered = sorted(runs, key=lambda r: (r.created_at, r.attempt))
    for before, after in pairwise(ordered):
        if before.finished_at is None or before.finished_at > after.created_at:
            return f"run {after.id} began before run {before.id} ended (overlap)"
    return None


def _run_problem(r: Run, ended: int, history: History) -> str | None:
    active = r.state in ("LEASED", "RUNNING")
    if not active and ended == 0:
        return f"{r.state} without an event that ended it"
    if active and ended:
        return f"still {r.state} after an event ended it"
    job_state = history.jobs.get(r.job_id)
    on_it = history.job_runs.get(r.job_id) == r.id
    if active and not (job_state is not None and JobState(job_state).active and on_it):
        return f"still {r.state} while its job ({job_state}) is not on it"
    if not active and r.finished_at is None:
        return f"{r.state} without an end time"
    return None


def _lease_problem(leased: int) -> str | None:
    return None if leased == 1 else f"{leased} `leased` events"


# -- reading a database -----------------------------------------------------------------------


def read_history(url: str, *, job_set: str | None = None) -> History:
    """The jobs (of one job set, or all), their events and their runs, read from `url`."""
    engine = sa.create_engine(normalise_url(url))
    where = "WHERE job_set = :job_set" if job_set is not None else ""
    params = {"job_set": job_set} if job_set is not None else {}
    history = History()
    try:
        with engine.connect() as conn:
            for job_id, state, run_id in conn.execute(
                sa.text(f"SELECT id, state, run_id FROM jobs {where}"), params
            ):
                history.jobs[job_id] = state
                history.job_runs[job_id] = run_id
            history.events = [
                Event(int(i), job_id, etype, state, run_id)
                for i, job_id, etype, state, run_id in conn.execute(
                    sa.text(f"SELECT id, job_id, type, state, run_id FROM events {where}"), params
                )
            ]
            run_where = (
                "WHERE job_id IN (SELECT id FROM jobs WHERE job_set = :job_set)"
                if job_set is not None
                else ""
            )
            history.runs = [
                Run(rid, job_id, int(attempt), state, float(created), _float(finished), worker)
                for rid, job_id, attempt, state, created, finished, worker in conn.execute(
                    sa.text(
                        "SELECT id, job_id, attempt, state, created_at, finished_at, worker "
                        f"FROM runs {run_where}"
                    ),
                    params,
                )
            ]
    finally:
        engine.dispose()
    return history


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)
