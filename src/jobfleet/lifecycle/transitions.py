"""The transition table: the one place that says which state change is legal.

Every state change of a job goes through :func:`transition`, which either returns the
:class:`Step` to take (the new state and the single event to append) or raises
:class:`IllegalTransition`. The store applies a step with a conditional UPDATE on the
expected current state, so it refuses exactly what this table refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from jobfleet.errors import IllegalTransition
from jobfleet.lifecycle.actions import allowed_actions
from jobfleet.lifecycle.states import EventType, JobState


class Op(StrEnum):
    """Operations that move a job. Users trigger some (cancel, ...), the system the rest."""

    WAIT = "wait"  # created with unmet dependencies
    ENQUEUE = "enqueue"  # created without dependencies, or its dependencies are met
    SCHEDULE = "schedule"  # the master scheduler routed it to a shard
    RETURN = "return"  # the shard gave it back for re-routing
    LEASE = "lease"  # a shard scheduler placed it on a worker (a run is created)
    START = "start"  # the worker started the process
    SUCCEED = "succeed"
    FAIL = "fail"  # the run (or a dependency) failed and the job ends
    REQUEUE = "requeue"  # the run ended without ending the job (retry, preemption, lost worker)
    CANCEL = "cancel"  # user cancel
    CONFIRM_CANCEL = "confirm_cancel"  # the worker confirmed the process is gone
    PREEMPT = "preempt"  # the run was preempted and the job ends there
    REPRIORITIZE = "reprioritize"


S = JobState
_PRE_RUN = (S.WAITING, S.QUEUED, S.SCHEDULED)
_ACTIVE = (S.LEASED, S.RUNNING)
_NON_TERMINAL = (*_PRE_RUN, *_ACTIVE)

# (op, from) -> (to, event).  A `None` "to" means "stays in the same state".
_TABLE: dict[tuple[Op, JobState | None], tuple[JobState | None, EventType]] = {
    (Op.WAIT, None): (S.WAITING, EventType.WAITING),
    (Op.ENQUEUE, None): (S.QUEUED, EventType.QUEUED),
    (Op.ENQUEUE, S.WAITING): (S.QUEUED, EventType.QUEUED),
    (Op.SCHEDULE, S.QUEUED): (S.SCHEDULED, EventType.SCHEDULED),
    (Op.RETURN, S.SCHEDULED): (S.QUEUED, EventType.QUEUED),
    (Op.LEASE, S.SCHEDULED): (S.LEASED, EventType.LEASED),
    (Op.START, S.LEASED): (S.RUNNING, EventType.RUNNING),
    (Op.SUCCEED, S.RUNNING): (S.SUCCEEDED, EventType.SUCCEEDED),
    (Op.FAIL, S.LEASED): (S.FAILED, EventType.FAILED),
    (Op.FAIL, S.RUNNING): (S.FAILED, EventType.FAILED),
    (Op.FAIL, S.WAITING): (S.FAILED, EventType.FAILED),  # dependency can no longer be met
    (Op.REQUEUE, S.LEASED): (S.QUEUED, EventType.REQUEUED),
    (Op.REQUEUE, S.RUNNING): (S.QUEUED, EventType.REQUEUED),
    (Op.PREEMPT, S.LEASED): (S.PREEMPTED, EventType.PREEMPTED),
    (Op.PREEMPT, S.RUNNING): (S.PREEMPTED, EventType.PREEMPTED),
    (Op.CONFIRM_CANCEL, S.LEASED): (S.CANCELLED, EventType.CANCELLED),
    (Op.CONFIRM_CANCEL, S.RUNNING): (S.CANCELLED, EventType.CANCELLED),
}
for _s in _PRE_RUN:
    _TABLE[(Op.CANCEL, _s)] = (S.CANCELLED, EventType.CANCELLED)
for _s in _ACTIVE:
    _TABLE[(Op.CANCEL, _s)] = (None, EventType.CANCEL_REQUESTED)
for _s in _NON_TERMINAL:
    _TABLE[(Op.REPRIORITIZE, _s)] = (None, EventType.REPRIORITIZED)


@dataclass(frozen=True, slots=True)
class Step:
    """One legal transition: the state after it and the one event that records it."""

    source: JobState | None
    target: JobState
    event: EventType
    cancel_requested: bool

    @property
    def changes_state(self) -> bool:
        return self.source != self.target


def transition(state: JobState | None, op: Op, *, cancel_requested: bool = False) -> Step:
    """Return the step `op` takes from `state`, or raise :class:`IllegalTransition`.

    `state` is None for a job being created. `cancel_requested` is the job's in-progress flag:
    a second cancel while one is in progress is refused, and CONFIRM_CANCEL needs one.
    """
    entry = _TABLE.get((op, state))
    if entry is None or _refused_by_flag(op, cancel_requested):
        raise _illegal(state, op, cancel_requested)
    target, event = entry
    resolved = state if target is None else target
    assert resolved is not None
    flag = cancel_requested or event is EventType.CANCEL_REQUESTED
    if resolved.terminal or event is EventType.REQUEUED:
        flag = False
    return Step(state, resolved, event, flag)


def _refused_by_flag(op: Op, cancel_requested: bool) -> bool:
    if op in (Op.CANCEL, Op.REPRIORITIZE):
        return cancel_requested
    if op is Op.CONFIRM_CANCEL:
        return not cancel_requested
    return False


def _illegal(state: JobState | None, op: Op, cancel_requested: bool) -> IllegalTransition:
    actions = [] if state is None else allowed_actions(state, cancel_requested=cancel_requested)
    names = [a.name for a in actions if a.enabled]
    where = "a new job" if state is None else f"a job in state {state}"
    return IllegalTransition(
        f"cannot {op.value} {where}",
        state=None if state is None else str(state),
        actions=names,
    )


def legal_ops(state: JobState | None, *, cancel_requested: bool = False) -> list[Op]:
    """All ops that :func:`transition` accepts from `state` (used by tests and docs)."""
    ops = []
    for op in Op:
        try:
            transition(state, op, cancel_requested=cancel_requested)
        except IllegalTransition:
            continue
        ops.append(op)
    return ops


def table() -> dict[tuple[Op, JobState | None], tuple[JobState | None, EventType]]:
    """A copy of the table, for documentation generators and tests."""
    return dict(_TABLE)
