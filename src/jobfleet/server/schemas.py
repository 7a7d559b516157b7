"""What the API answers, as schemas: the response models of the OpenAPI document.

They describe the JSON the routes send (built by the store's views, store/views.py and
friends); they do not build it. A route returns its JSON as a `Response`, which FastAPI sends
as it is, so declaring `response_model=Job` costs nothing per request (no validation, no
filtering): a submit of 10,000 jobs is not validated twice. That the JSON matches these
schemas is checked by the tests instead: every response of the API tests is validated against
the published document (tests/integration/conftest.py).

Objects may gain fields (a client must ignore the ones it does not know); the fields listed
here are always present, `null` where the type allows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobfleet.failures.conditions import Condition
from jobfleet.lifecycle import EventType, JobState, RunState

Time = datetime
"""An RFC 3339 time in UTC, like `2026-12-04T23:05:30.123456Z`."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class ResourceAmounts(_Doc):
    """Resources of a job or a run, or of a worker or shard."""

    cpu: float = Field(description="cores")
    memory: int = Field(description="bytes")
    gpu: int


class Failure(_Doc):
    """Why a run failed (docs/failures.md)."""

    condition: Condition
    exit_code: int | None
    signal: int | None
    termination_message: str | None = Field(
        description="the job's termination message, or the tail of its stderr"
    )
    termination_source: Literal["termination_log", "stderr"] | None = Field(
        default=None,
        description="where termination_message comes from: the job's termination log, or "
        "the last lines of its stderr",
    )
    categories: list[str] = Field(description="the configured error categories it falls in")
    retryable: bool
    message: str


class Action(_Doc):
    """An action on a job, and whether its state allows it now."""

    name: str
    enabled: bool
    in_progress: bool


class Run(_Doc):
    """One attempt at running a job, on one worker."""

    id: str
    attempt: int
    state: RunState
    shard: str | None
    worker: str | None
    exit_code: int | None
    signal: int | None
    failure: Failure | None
    resources: ResourceAmounts
    created_at: Time | None
    started_at: Time | None
    finished_at: Time | None
    outputs: list[dict[str, Any]] = Field(description="the files the run kept (spec `outputs`)")


class Job(_Doc):
    """A job: its spec, where it is in its lifecycle, its runs and its last failure."""

    id: str
    queue: str
    job_set: str
    state: JobState
    attempt: int
    priority: int
    priority_class: str | None
    spec: dict[str, Any] = Field(
        title="StoredSpec", description="the JobSpec as stored, defaults filled in"
    )
    resources: ResourceAmounts = Field(description="what the next run gets")
    labels: dict[str, str]
    runs: list[Run]
    failure: Failure | None
    actions: list[Action]
    cancel_requested: bool
    preempt_requested: bool
    scheduling_reason: str | None
    shard: str | None
    worker: str | None
    retry_of: str | None
    client_id: str | None
    not_before: Time | None
    array_id: str | None = Field(description="the job array it belongs to (docs/arrays.md)")
    array_index: int | None = Field(description="its index in the array, 0 to size-1")
    schedule: str | None = Field(description="the schedule that submitted it")
    scheduled_for: Time | None = Field(description="the schedule's tick it was submitted for")
    created_at: Time
    updated_at: Time
    finished_at: Time | None


class JobBatch(_Doc):
    """The answer to a batch submit: the jobs, in the order of the request."""

    jobs: list[Job]


class ArraySubmitted(_Doc):
    """The answer to the submit of an array (a spec with `array`): its id and its jobs by
    index."""

    array_id: str
    jobs: list[Job]


class Array(_Doc):
    """A job array: its size, `max_parallel` and its jobs' counts by state."""

    array_id: str
    queue: str
    job_set: str
    size: int
    max_parallel: int | None
    counts: dict[str, int] = Field(description="state -> number of its jobs in it")
    jobs_url: str = Field(description="the list of its jobs: /v1/jobs?array_id=…")


class ArrayCancelled(_Doc):
    array_id: str
    cancelled: int = Field(description="jobs cancelled at once (not running)")
    cancel_requested: int = Field(description="running jobs asked to stop")


class JobPage(_Doc):
    """A page of jobs, newest first; `next_cursor` is null on the last page."""

    items: list[Job]
    next_cursor: str | None


class Event(_Doc):
    """A lifecycle event (docs/events.md). Besides these fields, an event carries its type's
    own ones (`failure`, `worker`, `reason`, `requested_by`, `delay`, …)."""

    id: int
    type: EventType
    job_id: str
    run_id: str | None
    queue: str
    job_set: str
    time: Time
    state: JobState
    attempt: int


class EventList(_Doc):
    items: list[Event]


class HistoryEntry(_Doc):
    """A step of a job's timeline: a transition and how long the job stayed there."""

    event: EventType
    state: JobState
    time: Time
    duration: float | None = Field(description="seconds; null for the end state")
    ongoing: bool
    actor: str
    reason: str | None
    run_id: str | None
    attempt: int


class History(_Doc):
    items: list[HistoryEntry]


class ErrorItem(_Doc):
    """A failure of one attempt, as recorded when it happened."""

    event_id: int
    run_id: str | None
    attempt: int
    worker: str | None
    time: Time
    event: EventType
    failure: Failure


class ErrorPage(_Doc):
    items: list[ErrorItem]
    next_cursor: str | None


class Checkpoint(_Doc):
    run_id: str
    attempt: int
    size: int = Field(description="bytes")
    time: Time
    value: Any = Field(description="the value the job saved (JSON)")


class CheckpointList(_Doc):
    items: list[Checkpoint]


class CallbackAttempt(_Doc):
    time: Time
    status_code: int | None
    error: str | None
    next_retry_at: Time | None


class CallbackDelivery(_Doc):
    event_id: int
    event_type: EventType | None
    state: Literal["pending", "delivered", "failed"]
    attempts: list[CallbackAttempt]
    next_retry_at: Time | None
    delivered_at: Time | None
    created_at: Time


class CallbackList(_Doc):
    items: list[CallbackDelivery]


class JobSetCancelled(_Doc):
    cancelled: int = Field(description="jobs cancelled at once (not running)")
    cancel_requested: int = Field(description="running jobs asked to stop")


class Reprioritized(_Doc):
    reprioritized: int


class Cordon(_Doc):
    """An operator's cordon or drain of a worker (docs/workers.md)."""

    state: Literal["CORDONED", "DRAINING"]
    requested_by: str = Field(description="the principal that asked")
    since: Time | None
    evict_at: Time | None = Field(description="a drain: when what still runs is evicted")


class WorkerCordon(_Doc):
    """The answer to cordon, uncordon and drain: the worker's state now, and who asked."""

    name: str
    state: Literal["READY", "CORDONED", "DRAINING"]
    requested_by: str
    since: Time | None = None
    evict_at: Time | None = None


class Worker(_Doc):
    """A worker: its shard, state, capacity, what its runs hold, its last heartbeat."""

    name: str
    shard: str
    state: Literal["READY", "CORDONED", "DRAINING", "OFFLINE", "UNREACHABLE"]
    capacity: ResourceAmounts
    allocated: ResourceAmounts
    running: int
    labels: dict[str, str]
    last_heartbeat: Time
    registered_at: Time
    info: dict[str, Any]
    cordon: Cordon | None = Field(description="set while an operator cordons or drains it")


class WorkerList(_Doc):
    items: list[Worker]


class Shard(_Doc):
    name: str
    labels: dict[str, str]
    workers: int = Field(description="live (READY) workers")
    workers_total: int
    capacity: ResourceAmounts
    allocated: ResourceAmounts
    scheduled: int
    leased: int
    running: int


class ShardList(_Doc):
    items: list[Shard]


class Queue(_Doc):
    """A queue: its fair-share weight, limits, retry policy and live job counts."""

    name: str
    weight: float
    max_running_jobs: int | None
    max_resources: dict[str, Any] | None = Field(description="cpu (cores), memory, gpu")
    retry: dict[str, Any] | None = Field(description="the queue's own retry policy")
    jobs: dict[str, int] = Field(description="jobs by state")
    created_at: Time


class QueueList(_Doc):
    items: list[Queue]


class Grant(_Doc):
    queue: str
    verb: str


class PrincipalInfo(_Doc):
    id: str
    name: str
    kind: Literal["user", "worker"]
    admin: bool
    grants: list[Grant]


class TokenInfo(_Doc):
    id: str
    prefix: str
    created_at: Time


class PrincipalEntry(PrincipalInfo):
    created_at: Time
    tokens: list[TokenInfo]


class PrincipalList(_Doc):
    items: list[PrincipalEntry]


class IssuedToken(_Doc):
    id: str
    token: str = Field(description="the secret, shown this once")
    principal: PrincipalInfo


class Revoked(_Doc):
    revoked: TokenInfo


class Registered(_Doc):
    name: str
    incarnation: str
    lease_timeout: float


class SyncAnswer(_Doc):
    assignments: list[dict[str, Any]]
    orders: dict[str, str]
    stop: list[str]
    lease_timeout: float


class ReportAnswer(_Doc):
    accepted: list[str]
    refused: dict[str, str]


class WaitAnswer(_Doc):
    """The worker's long poll answered: pass `seen` to the next call."""

    seen: str | None


class LogAck(_Doc):
    acked: dict[str, dict[str, int]]
    refused: dict[str, str]


class WorkerStateAnswer(_Doc):
    name: str
    state: Literal["READY", "DRAINING", "OFFLINE"]


class ScheduleLastJob(_Doc):
    id: str
    state: JobState
    scheduled_for: Time | None


class Schedule(_Doc):
    """A schedule: a job spec submitted on each tick of `cron` or `every` (docs/schedules.md)."""

    name: str
    cron: str | None
    every: float | None = Field(description="seconds between ticks")
    timezone: str
    job: dict[str, Any] = Field(description="the job spec submitted on each tick")
    overlap: Literal["allow", "skip", "cancel_previous"]
    catchup: Literal["none", "one"]
    paused: bool
    next_tick: Time | None
    last_tick: Time | None
    last_job: ScheduleLastJob | None
    created_by: str
    created_at: Time
    updated_at: Time


class ScheduleList(_Doc):
    items: list[Schedule]


class UsageItem(_Doc):
    """One group's use over the window: resources reserved times the time they were held."""

    group: str | None = Field(description="the queue, job set, principal, worker or shard")
    runs: int
    succeeded: int
    failed: int
    cpu_seconds: float
    memory_gib_seconds: float
    gpu_seconds: float
    wall_seconds: float


class Usage(_Doc):
    """Usage over a window, per group, largest CPU use first (docs/usage.md)."""

    since: Time
    until: Time
    group_by: Literal["queue", "job_set", "principal", "worker", "shard"]
    items: list[UsageItem]


class Health(_Doc):
    status: Literal["ok"]


class Ready(Health):
    backend: Literal["sqlite", "postgresql"]


class ValidationItem(_Doc):
    loc: list[str | int] = Field(description="where: body, query, path or header, then names")
    msg: str


class Problem(_Doc):
    """An error (RFC 9457, `application/problem+json`). 422 adds `errors`; a refused
    transition (409) adds `state` and `actions`; a refused verb (403) may add `queue`, `verb`."""

    type: str = Field(description="always about:blank: `title` and `status` say what it is")
    title: str
    status: int
    detail: str
    errors: list[ValidationItem] = Field(default_factory=list, description="422 only")
