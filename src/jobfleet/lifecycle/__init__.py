"""The lifecycle core: pure, no I/O. States, the transition table, actions, event types."""

from jobfleet.lifecycle.actions import Action, allowed_actions
from jobfleet.lifecycle.states import (
    TERMINAL_JOB_STATES,
    EventType,
    JobState,
    RequeueCause,
    RunState,
)
from jobfleet.lifecycle.transitions import Op, Step, legal_ops, transition

__all__ = [
    "TERMINAL_JOB_STATES",
    "Action",
    "EventType",
    "JobState",
    "Op",
    "RequeueCause",
    "RunState",
    "Step",
    "allowed_actions",
    "legal_ops",
    "transition",
]
