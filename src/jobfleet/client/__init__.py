"""The Python SDK: `Client` and `AsyncClient` over the jobfleet HTTP API, typed models, and the
CLI's profile helpers. `JsonClient` is the same API answering with the server's JSON (dicts).

One core (`client/core.py`: requests, answers, errors, stream resume) under thin shells:
`client/sync.py` (`Client`, `JsonClient`) and `client/aio.py` (`AsyncClient`)."""

from __future__ import annotations

from jobfleet.client.aio import AsyncClient
from jobfleet.client.core import (
    TERMINAL_STATES,
    RequestFailed,
    ServerUnreachable,
    WaitTimeout,
    error_from_response,
)
from jobfleet.client.models import Action, Event, FailureInfo, HistoryEntry, Job, JobPage, Run
from jobfleet.client.profile import load_profile, profile_path, save_profile
from jobfleet.client.sync import Client, JsonClient

__all__ = [
    "TERMINAL_STATES",
    "Action",
    "AsyncClient",
    "Client",
    "Event",
    "FailureInfo",
    "HistoryEntry",
    "Job",
    "JobPage",
    "JsonClient",
    "RequestFailed",
    "Run",
    "ServerUnreachable",
    "WaitTimeout",
    "error_from_response",
    "load_profile",
    "profile_path",
    "save_profile",
]
