"""The package's public names are deliberate: adding or removing one is an API change."""

from __future__ import annotations

import jobfleet
import jobfleet.client


def test_public_names_are_pinned() -> None:
    assert sorted(jobfleet.__all__) == [
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
    for name in jobfleet.__all__:
        assert getattr(jobfleet, name) is not None


def test_the_sdk_package_names_are_pinned() -> None:
    assert sorted(jobfleet.client.__all__) == [
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
        "TERMINAL_STATES",
        "WaitTimeout",
        "error_from_response",
        "load_profile",
        "profile_path",
        "save_profile",
    ]


def public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_client_and_async_client_have_the_same_surface() -> None:
    sync_only = {"close", "json"}
    async_only = {"aclose"}
    assert public(jobfleet.Client) - sync_only == public(jobfleet.AsyncClient) - async_only
    assert "events" in public(jobfleet.Client) and "job_events" in public(jobfleet.Client)


def test_the_json_client_has_the_surface_of_the_typed_one() -> None:
    """One core under every shell: the JSON client differs only by `watch`, the older name of
    `events`, and the typed one by its `json` view."""
    from jobfleet.client import JsonClient

    assert public(JsonClient) - {"watch"} == public(jobfleet.Client) - {"json"}


def test_the_sdk_raises_one_root_error() -> None:
    from jobfleet.client import RequestFailed, ServerUnreachable, WaitTimeout

    for exc in (RequestFailed, ServerUnreachable, WaitTimeout):
        assert issubclass(exc, jobfleet.JobfleetError)
    assert jobfleet.Timeout is WaitTimeout and issubclass(jobfleet.Timeout, TimeoutError)
