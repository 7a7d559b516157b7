"""Builds docs/states.md from the lifecycle core itself, so the page cannot drift from the code.

:func:`render_states_markdown` is pure: it reads the transition table, the actions per state and
the enums, and returns the whole page. Run the module to write the page (the only I/O here):

    .venv/bin/python -m jobfleet.lifecycle.docs docs/states.md

`tests/unit/test_docs.py` fails when the committed page differs from what this returns.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from jobfleet.errors import IllegalTransition
from jobfleet.lifecycle.actions import allowed_actions
from jobfleet.lifecycle.states import EventType, JobState, RunState
from jobfleet.lifecycle.transitions import Op, Step, table, transition

REGENERATE = ".venv/bin/python -m jobfleet.lifecycle.docs docs/states.md"

JOB_STATE_MEANINGS: dict[JobState, str] = {
    JobState.WAITING: "accepted, but a job it depends on has not ended the way it needs",
    JobState.QUEUED: "accepted and in the intake queue, waiting to be routed to a shard",
    JobState.SCHEDULED: "routed to a shard; in that shard's queue, waiting for a worker",
    JobState.LEASED: "placed on a worker, which holds the lease of a new run; preparing",
    JobState.RUNNING: "the worker started the run's process",
    JobState.SUCCEEDED: "the last run exited 0",
    JobState.FAILED: "the last run failed and the retry policy said stop (or a dependency failed)",
    JobState.CANCELLED: "cancelled by a user (for a running job: once the worker confirmed it)",
    JobState.PREEMPTED: "a run was preempted and the job ends there",
}

RUN_STATE_MEANINGS: dict[RunState, str] = {
    RunState.LEASED: "created with its lease; the worker has not reported the process started",
    RunState.RUNNING: "the worker reported the process started",
    RunState.SUCCEEDED: "the process exited 0",
    RunState.FAILED: "the process failed (non-zero exit, signal, deadline, start error)",
    RunState.CANCELLED: "the process was stopped because the job was cancelled",
    RunState.PREEMPTED: "the process was stopped to make room for more urgent work",
    RunState.LOST: "the lease expired or the worker re-registered: the worker vanished or was "
    "cut off",
}

OP_MEANINGS: dict[Op, str] = {
    Op.WAIT: "a job is created with dependencies that are not met yet",
    Op.ENQUEUE: "a job is created without unmet dependencies, or its dependencies are met",
    Op.SCHEDULE: "the master scheduler routes the job to a shard",
    Op.RETURN: "the shard gives the job back to the intake for re-routing",
    Op.LEASE: "the shard scheduler places the job on a worker: a new run and its lease",
    Op.START: "the worker reports that the run's process started",
    Op.SUCCEED: "the worker reports that the process exited 0",
    Op.FAIL: "the run failed and the retry policy says stop, or a dependency cannot be met",
    Op.REQUEUE: "the run ended without ending the job (a retry, a preemption, a lost worker)",
    Op.CANCEL: "a user cancels the job",
    Op.CONFIRM_CANCEL: "the worker confirms the cancelled job's process is gone",
    Op.PREEMPT: "the run is preempted and the job ends there",
    Op.REPRIORITIZE: "a user changes the job's priority",
}

# Event types that no transition appends (each is appended beside one that does).
OTHER_EVENT_MEANINGS: dict[EventType, str] = {
    EventType.SUBMITTED: "appended when a job is created, just before its `waiting` or `queued`",
}

# The names Armada (armadaproject.io), the closest system, gives our states.
SEED_NAMES: dict[JobState, tuple[str, str, str]] = {
    JobState.WAITING: ("-", "-", "-"),
    JobState.QUEUED: ("PENDING", "Pending", "Queued"),
    JobState.SCHEDULED: ("SCHEDULED", "Scheduled", "Leased (≈ SCHEDULED + LEASED)"),
    JobState.LEASED: ("-", "-", "Leased, then Pending (Pending ≈ LEASED, preparing)"),
    JobState.RUNNING: ("RUNNING", "Running", "Running"),
    JobState.SUCCEEDED: ("COMPLETED", "Completed", "Succeeded"),
    JobState.FAILED: ("FAILED", "Failed", "Failed"),
    JobState.CANCELLED: ("-", "Cancelled", "Cancelled"),
    JobState.PREEMPTED: ("-", "-", "Preempted"),
}

Entry = tuple[Op, JobState | None, JobState | None, EventType]
K = TypeVar("K")
V = TypeVar("V")
WIDTH = 100


def render_states_markdown() -> str:
    """The whole of docs/states.md, built from the transition table, actions and enums."""
    entries = _entries()
    sections = [
        _intro(),
        _job_states(),
        _diagram(entries),
        _transitions(entries),
        _actions(entries),
        _run_states(),
        _seed_names(),
    ]
    return "\n\n".join(sections) + "\n"


# -- sections ---------------------------------------------------------------------------------


def _intro() -> str:
    return _blocks(
        "# Job states",
        "<!-- Generated from src/jobfleet/lifecycle by src/jobfleet/lifecycle/docs.py.\n"
        f"     Do not edit by hand: run `{REGENERATE}`. -->",
        _para(
            "One state machine, used alike by the store, the API and the CLI. Every state change "
            "of a job goes through `jobfleet.lifecycle.transition(state, op)`, which either "
            "returns the new state and the one event to append, or raises `IllegalTransition` "
            "(HTTP 409, naming the current state and the actions that are allowed). The store "
            "applies a step with an UPDATE guarded by the expected current state, so it refuses "
            "exactly what this table refuses. Terminal states are final."
        ),
        _para(
            "This page is generated from that table; [events.md](events.md) says what each "
            "event carries."
        ),
    )


def _job_states() -> str:
    rows = [
        [f"`{s.value}`", "yes" if s.terminal else "no", _meaning(JOB_STATE_MEANINGS, s)]
        for s in JobState
    ]
    return _blocks("## Job states", _table(["state", "terminal", "meaning"], rows))


def _diagram(entries: Sequence[Entry]) -> str:
    lines = ["```mermaid", "stateDiagram-v2"]
    for op, source, target, event in entries:
        resolved = source if target is None else target
        start = "[*]" if source is None else source.value
        end = "[*]" if resolved is None else resolved.value
        lines.append(f"    {start} --> {end} : {op.value} / {event.value}")
    lines += [f"    {s.value} --> [*]" for s in JobState if s.terminal]
    lines.append("```")
    return _blocks(
        "## Diagram",
        "\n".join(lines),
        _para(
            "Each edge is labelled `op / event`. An edge from a state to itself changes no state "
            "but still appends its event: `cancel` of a LEASED or RUNNING job sets "
            "`cancel_requested`, `reprioritize` changes the priority."
        ),
    )


def _transitions(entries: Sequence[Entry]) -> str:
    flagged = _states_that_can_carry_the_flag(entries)
    rows = [
        [
            f"`{op.value}`",
            "(new job)" if source is None else f"`{source.value}`",
            "(unchanged)" if target is None else f"`{target.value}`",
            f"`{event.value}`",
            _flag_rule(op, source, flagged),
            _meaning(OP_MEANINGS, op),
        ]
        for op, source, target, event in entries
    ]
    columns = ["op", "from", "to", "event", "cancel_requested", "what happened"]
    return _blocks(
        "## Transitions",
        _para(
            "Each row is one entry of the table: the operation, the state it applies to, the "
            "state after it, and the one event it appends. Any operation not listed for a state "
            "is refused. The `cancel_requested` column says how the in-progress cancel flag "
            "constrains the operation and what the operation does to it; only "
            f"{_names(flagged)} can carry that flag."
        ),
        _table(columns, rows),
        _other_events(entries),
    )


def _other_events(entries: Sequence[Entry]) -> str:
    used = {event for _, _, _, event in entries}
    lines = ["Event types that no transition appends:", ""]
    lines += [
        f"- `{e.value}`: {_meaning(OTHER_EVENT_MEANINGS, e)}." for e in EventType if e not in used
    ]
    return "\n".join(lines)


def _actions(entries: Sequence[Entry]) -> str:
    flagged = _states_that_can_carry_the_flag(entries)
    names = [a.name for a in allowed_actions(JobState.QUEUED)]
    rows = []
    for state in JobState:
        for flag in [False, True] if state in flagged else [False]:
            label = f"`{state.value}`" + (" with cancel requested" if flag else "")
            cells = [
                "in progress" if a.in_progress else ("yes" if a.enabled else "-")
                for a in allowed_actions(state, cancel_requested=flag)
            ]
            rows.append([label, *cells])
    return _blocks(
        "## Actions per state",
        _para(
            "Every job object carries `actions`: each user action with `enabled` and "
            "`in_progress` (`jobfleet.lifecycle.allowed_actions`). The CLI shows the enabled "
            "ones; a refused transition (HTTP 409) lists them too. `yes` = enabled, `-` = not "
            "enabled, `in progress` = requested and not yet done."
        ),
        _table(["state", *names], rows),
    )


def _run_states() -> str:
    rows = [
        [f"`{s.value}`", "yes" if s.terminal else "no", _meaning(RUN_STATE_MEANINGS, s)]
        for s in RunState
    ]
    return _blocks(
        "## Run states",
        _para(
            "A run is one attempt of a job on one worker; a retry is a new run of the same job "
            "(`attempt` counts from 1). While a job is `LEASED` or `RUNNING`, its current run is "
            "in the same state."
        ),
        _table(["state", "terminal", "meaning"], rows),
    )


def _seed_names() -> str:
    rows = [[f"`{s.value}`", _meaning(SEED_NAMES, s)[2]] for s in JobState]
    return _blocks(
        "## The same states in Armada",
        _para(
            "If you know Armada (batch jobs on Kubernetes): its Leased is roughly SCHEDULED + "
            "LEASED and its Pending is roughly LEASED (preparing); the others match by name "
            "(`-`: Armada has no such state):"
        ),
        _table(["jobfleet", "Armada"], rows),
    )


# -- helpers ----------------------------------------------------------------------------------


def _entries() -> list[Entry]:
    """The table's entries in a stable, readable order: by op, then by source state."""
    order = {state: i for i, state in enumerate(JobState)}
    op_order = {op: i for i, op in enumerate(Op)}
    items = [(op, src, dst, ev) for (op, src), (dst, ev) in table().items()]
    return sorted(items, key=lambda e: (op_order[e[0]], -1 if e[1] is None else order[e[1]]))


def _step(source: JobState | None, op: Op, flag: bool) -> Step | None:
    try:
        return transition(source, op, cancel_requested=flag)
    except IllegalTransition:
        return None


def _flag_rule(op: Op, source: JobState | None, flagged: Sequence[JobState]) -> str:
    """How the in-progress cancel flag constrains `op` from `source`, and what `op` does to it.

    Only states some transition can give the flag are looked at with the flag set.
    """
    can_carry = source is not None and source in flagged
    unset = _step(source, op, False)
    isset = _step(source, op, True) if can_carry else None
    parts = []
    if unset is not None and isset is None and can_carry:
        parts.append("refused while set")
    if unset is None and isset is not None:
        parts.append("needs it set")
    if unset is not None and unset.cancel_requested:
        parts.append("sets it")
    if isset is not None and not isset.cancel_requested:
        parts.append("clears it")
    return ", ".join(parts) or "-"


def _states_that_can_carry_the_flag(entries: Iterable[Entry]) -> list[JobState]:
    found: list[JobState] = []
    for op, source, _, _ in entries:
        step = _step(source, op, False)
        if step is not None and step.cancel_requested and step.target not in found:
            found.append(step.target)
    return found


def _meaning(meanings: Mapping[K, V], key: K) -> V:
    if key not in meanings:
        raise KeyError(f"describe {key!r} in jobfleet/lifecycle/docs.py")
    return meanings[key]


def _names(states: Sequence[JobState]) -> str:
    quoted = [f"`{s.value}`" for s in states]
    return " and ".join([", ".join(quoted[:-1]), quoted[-1]]) if len(quoted) > 1 else quoted[0]


def _blocks(*blocks: str) -> str:
    return "\n\n".join(blocks)


def _para(text: str) -> str:
    return textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def _table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    """Write the page to the path given (default docs/states.md, relative to the cwd)."""
    if len(argv) > 1:
        print("usage: python -m jobfleet.lifecycle.docs [PATH]", file=sys.stderr)
        return 2
    path = Path(argv[0] if argv else "docs/states.md")
    path.write_text(render_states_markdown(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
