"""Dependencies (Slurm afterok/afterany/afternotok): pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from jobfleet.lifecycle import JobState

Status = Literal["met", "unmet", "impossible"]


def dependency_status(after: str, state: JobState) -> Status:
    """Whether a dependency on a job now in `state` is met, may still be, or never will be."""
    if not state.terminal:
        return "unmet"
    succeeded = state is JobState.SUCCEEDED
    if after == "any" or (after == "success" and succeeded):
        return "met"
    if after == "failure" and not succeeded:
        return "met"
    return "impossible"


def combine(statuses: Iterable[Status]) -> Status:
    """All met → met; any impossible → impossible; else unmet."""
    seen = set(statuses)
    if "impossible" in seen:
        return "impossible"
    if seen <= {"met"}:
        return "met"
    return "unmet"
