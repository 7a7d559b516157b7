"""Failure conditions and FailureInfo (PRODUCT.md §5). Pure."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobfleet.inputs import clean

# stderr tail / termination log kept on a failure, in bytes of UTF-8 (the cut marker included):
# bounded so a job cannot bloat the store, its events or the API's answers.
TERMINATION_MESSAGE_LIMIT = 4096
MESSAGE_LIMIT = 1024  # the one-line `message`, in bytes of UTF-8
TRUNCATED = "[…truncated]\n"


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
    # where termination_message comes from: the job's $JOBFLEET_TERMINATION_LOG, or the tail of
    # its stderr (None when there is none, or from a worker older than this field)
    termination_source: Literal["termination_log", "stderr"] | None = None
    categories: list[str] = Field(default_factory=list)
    retryable: bool = False
    message: str = ""

    @field_validator("termination_message", "message")
    @classmethod
    def _storable(cls, v: str | None) -> str | None:
        """A job's own text (its stderr, its bad working dir) may hold a NUL byte or bytes that
        are not UTF-8: replaced, so the failure can be stored and sent (`inputs.clean`)."""
        return None if v is None else clean(v)

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def bounded(self) -> FailureInfo:
        """The same failure with its texts within their bounds (a report is not trusted)."""
        message = _head(self.message, MESSAGE_LIMIT)
        term = bounded_message(self.termination_message)
        if message == self.message and term == self.termination_message:
            return self
        return self.model_copy(update={"message": message, "termination_message": term})


def bounded_message(
    text: str | None, limit: int = TERMINATION_MESSAGE_LIMIT, *, cut: bool = False
) -> str | None:
    """The end of `text` in at most `limit` bytes of UTF-8, the cut marked at its start.

    The end, because the last lines of a log say why it failed. `cut`: `text` is already only
    the end of something longer (a log's tail), so it is marked even if it fits.
    """
    if not text:
        return None
    raw = text.encode()
    if len(raw) <= limit and not cut:
        return text
    keep = limit - len(TRUNCATED.encode())
    return TRUNCATED + raw[-keep:].decode(errors="ignore")


def _head(text: str, limit: int) -> str:
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode(errors="ignore") + "…"
