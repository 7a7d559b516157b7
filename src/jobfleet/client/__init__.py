"""The Python SDK: `Client` over the jobfleet HTTP API, and the CLI's profile helpers."""

from __future__ import annotations

from jobfleet.client.profile import load_profile, profile_path, save_profile
from jobfleet.client.sync import (
    TERMINAL_STATES,
    Client,
    RequestFailed,
    ServerUnreachable,
    WaitTimeout,
    error_from_response,
)

__all__ = [
    "TERMINAL_STATES",
    "Client",
    "RequestFailed",
    "ServerUnreachable",
    "WaitTimeout",
    "error_from_response",
    "load_profile",
    "profile_path",
    "save_profile",
]
