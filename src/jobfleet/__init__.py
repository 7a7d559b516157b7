"""jobfleet: a distributed batch-job orchestrator. The SDK: `from jobfleet import Client`."""

from __future__ import annotations

__version__ = "0.1.0"

from jobfleet.client import (
    AsyncClient,
    Client,
    Event,
    FailureInfo,
    Job,
    JobPage,
    Run,
    WaitTimeout,
)
from jobfleet.errors import JobfleetError

Timeout = WaitTimeout
"""What `wait` raises when the job is not terminal in time (a JobfleetError and a TimeoutError)."""

__all__ = [
    "AsyncClient",
    "Client",
    "Event",
    "FailureInfo",
    "Job",
    "JobPage",
    "JobfleetError",
    "Run",
    "Timeout",
    "WaitTimeout",
    "__version__",
]
