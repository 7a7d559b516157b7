"""Job and run states, and the event vocabulary (PRODUCT.md §3, §4)."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    WAITING = "WAITING"
    QUEUED = "QUEUED"
    SCHEDULED = "SCHEDULED"
    LEASED = "LEASED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    PREEMPTED = "PREEMPTED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_JOB_STATES

    @property
    def active(self) -> bool:
        """A run exists and a worker holds (or is about to hold) the lease."""
        return self in (JobState.LEASED, JobState.RUNNING)


TERMINAL_JOB_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.PREEMPTED}
)


class RunState(StrEnum):
    LEASED = "LEASED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    PREEMPTED = "PREEMPTED"
    LOST = "LOST"

    @property
    def terminal(self) -> bool:
        return self not in (RunState.LEASED, RunState.RUNNING)


class EventType(StrEnum):
    SUBMITTED = "submitted"
    WAITING = "waiting"
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    LEASED = "leased"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"
    REQUEUED = "requeued"
    REPRIORITIZED = "reprioritized"


class RequeueCause(StrEnum):
    """Why a run ended without ending its job (the `cause` of a `requeued` event)."""

    FAILED = "failed"
    PREEMPTED = "preempted"
    EVICTED = "evicted"
    LEASE_EXPIRED = "lease_expired"
