"""Failure conditions and FailureInfo (PRODUCT.md §5). Pure."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# stderr tail / termination log kept on a failure: bounded so a job cannot bloat the store.
TERMINATION_MESSAGE_LIMIT = 4096


class Condition(StrEnum):
    EXIT_NONZERO = "EXIT_NONZERO"
    OOM_KILLED = "OOM_KILLED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    START_ERROR = "START_ERROR"
    PREEMPTED = "PREEMPTED"
    EVICTED = "EVICTED"
    LEASE_EXPIRED = "LEASE_EXPIRED"
    SIGNALED = "SIGNALED"
    DEPENDENCY_FAILED = "DEPENDENCY_FAILED"


# Failures that are not the job's own fault: retried without using the budget by default.
NOT_THE_JOBS_FAULT = frozenset({Condition.PREEMPTED, Condition.EVICTED, Condition.LEASE_EXPIRED})


class FailureInfo(BaseModel):
    """Why a run failed, in structured form. Stored on the run, its event and the job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    condition: Condition
    exit_code: int | None = None
    signal: int | None = None
    termination_message: str | None = None
    categories: list[str] = Field(default_factory=list)
    retryable: bool = False
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def bounded_message(text: str | None, limit: int = TERMINATION_MESSAGE_LIMIT) -> str | None:
    """Keep the last `limit` characters of `text`, marking the cut."""
    if not text:
        return None
    if len(text) <= limit:
        return text
    return "[…truncated]\n" + text[-limit:]
