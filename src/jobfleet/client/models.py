"""Typed objects of the SDK: what the API serves (PRODUCT.md §4, §5, §11), as pydantic models.

They are lenient on purpose: a field a newer server adds is kept (`model_extra`) rather than
refused, and states, event types and conditions are plain strings, so an older SDK keeps
working against a newer server. `raw` is the JSON object exactly as the server sent it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "PREEMPTED"})


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Self:
        obj = cls.model_validate(data)
        obj._raw = data
        return obj

    @property
    def raw(self) -> dict[str, Any]:
        """The server's JSON object, unchanged (for a nested object: re-serialised)."""
        return self._raw or self.model_dump(mode="json")


class FailureInfo(Model):
    """Why a run failed (§5)."""

    condition: str
    exit_code: int | None = None
    signal: int | None = None
    termination_message: str | None = None
    termination_source: str | None = None
    categories: list[str] = Field(default_factory=list)
    retryable: bool = False
    message: str = ""


class Action(Model):
    """A user action on a job in its current state, with its in-progress flag (§3)."""

    name: str
    enabled: bool
    in_progress: bool = False


class Run(Model):
    """One attempt of a job on one worker."""

    id: str
    attempt: int
    state: str
    shard: str | None = None
    worker: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    failure: FailureInfo | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime | None = None


class Job(Model):
    """A job object (§11): its spec, current state, runs, latest failure and actions."""

    id: str
    queue: str
    job_set: str
    state: str
    attempt: int = 0
    priority: int = 0
    spec: dict[str, Any] = Field(default_factory=dict)
    runs: list[Run] = Field(default_factory=list)
    array_id: str | None = None
    array_index: int | None = None
    schedule: str | None = None
    scheduled_for: datetime | None = None
    failure: FailureInfo | None = None
    actions: list[Action] = Field(default_factory=list)
    cancel_requested: bool = False
    preempt_requested: bool = False
    scheduling_reason: str | None = None
    priority_class: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    retry_of: str | None = None
    client_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def can(self, action: str) -> bool:
        """True if `action` (cancel, reprioritize, preempt, retry) is enabled now."""
        return any(a.name == action and a.enabled for a in self.actions)


class Event(Model):
    """A lifecycle event (§4). Type-specific fields are None when the event has none."""

    id: int
    type: str
    job_id: str
    run_id: str | None = None
    queue: str
    job_set: str
    time: datetime
    state: str
    attempt: int = 0
    failure: FailureInfo | None = None
    shard: str | None = None
    worker: str | None = None
    exit_code: int | None = None
    cause: str | None = None
    delay: float | None = None
    reason: str | None = None
    requested_by: str | None = None
    retry_of: str | None = None
    priority: int | None = None
    previous: int | None = None


class HistoryEntry(Model):
    """One entry of a job's timeline (derived from its events)."""

    event: str
    state: str
    time: datetime
    duration: float | None = None
    ongoing: bool = False
    actor: str = "system"
    reason: str | None = None
    run_id: str | None = None
    attempt: int = 0


class JobPage(Model):
    """One page of `list`: the jobs and the cursor of the next page (None on the last)."""

    items: list[Job]
    next_cursor: str | None = None
