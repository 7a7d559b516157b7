"""The worker ↔ server protocol's messages, as plain data (pure; used over HTTP and in-process)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from jobfleet.failures import FailureInfo

# A checkpoint's JSON text, in bytes. The next attempt gets it in one environment variable, and
# Linux refuses any single environment string over 128 KiB (MAX_ARG_STRLEN): 64 KiB is safe.
CHECKPOINT_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Capacity:
    cpu_milli: int
    memory: int
    gpu: int = 0


@dataclass(frozen=True, slots=True)
class Assignment:
    """A run a worker must start: what to run and the lease's fencing token."""

    run_id: str
    job_id: str
    attempt: int
    fencing: int
    spec: dict[str, Any]
    lease_expires_at: float
    checkpoint: str | None = None  # the job's latest checkpoint (JSON text) from an earlier run


@dataclass(frozen=True, slots=True)
class Started:
    run_id: str
    fencing: int
    time: float


Outcome = Literal["succeeded", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class Finished:
    run_id: str
    fencing: int
    outcome: Outcome
    time: float
    exit_code: int | None = None
    signal: int | None = None
    failure: FailureInfo | None = None
    outputs: list[dict[str, Any]] | None = None  # files the job listed in `outputs`: path, size


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The JSON a run wrote to $JOBFLEET_CHECKPOINT_FILE (valid JSON, at most CHECKPOINT_LIMIT)."""

    run_id: str
    fencing: int
    value: str
    time: float


@dataclass(slots=True)
class ReportResult:
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # run_id -> why


@dataclass(slots=True)
class Sync:
    """The reply to a worker's sync (its heartbeat and poll in one round trip).

    `assignments`: new leases to start; `orders`: runs to stop for a cancel or a preemption;
    `stop`: runs the worker says it holds that are no longer its own (their lease expired or
    was given to another): it must kill them at once, and its reports for them are refused.
    """

    assignments: list[Assignment] = field(default_factory=list)
    orders: dict[str, Literal["cancel", "preempt", "evict"]] = field(default_factory=dict)
    stop: list[str] = field(default_factory=list)


# Log shipping (`jobfleet worker` → server): one request carries at most LOG_REQUEST_LIMIT bytes
# of log data, in chunks of at most LOG_CHUNK_LIMIT; the worker sends more requests to catch up.
LOG_CHUNK_LIMIT = 256 * 1024
LOG_REQUEST_LIMIT = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Bytes of a run's log file (as the log pump stored them) from byte `offset` on."""

    run_id: str
    fencing: int
    stream: Literal["stdout", "stderr"]
    offset: int
    data: bytes


@dataclass
class LogAck:
    """Per run and stream, the offset up to which the server holds the log (the worker goes on
    from there: a lost answer or a gap just resends); runs whose lease is not valid, and why."""

    acked: dict[str, dict[str, int]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
