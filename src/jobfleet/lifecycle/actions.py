"""The user actions of each state, with their in-progress flags (as Arroyo maps states to actions).

The API serves these on every job object; the CLI and the dashboard enable buttons from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobfleet.lifecycle.states import JobState

ACTION_NAMES = ("cancel", "reprioritize", "preempt", "retry")


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    enabled: bool
    in_progress: bool = False

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "enabled": self.enabled, "in_progress": self.in_progress}


def allowed_actions(
    state: JobState, *, cancel_requested: bool = False, preempt_requested: bool = False
) -> list[Action]:
    """Every action, enabled or not, for a job in `state`, with its in-progress flag."""
    live = not state.terminal
    busy = cancel_requested or preempt_requested
    return [
        Action("cancel", enabled=live and not cancel_requested, in_progress=cancel_requested),
        Action("reprioritize", enabled=live and not cancel_requested),
        Action("preempt", enabled=state.active and not busy, in_progress=preempt_requested),
        Action("retry", enabled=state.terminal),
    ]
