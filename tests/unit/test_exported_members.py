"""The package's public names are deliberate: adding or removing one is an API change."""

from __future__ import annotations

import jobfleet


def test_public_names_are_pinned() -> None:
    assert sorted(jobfleet.__all__) == ["Client", "JobfleetError", "__version__"]
    for name in jobfleet.__all__:
        assert getattr(jobfleet, name) is not None


def test_the_sdk_raises_one_root_error() -> None:
    from jobfleet.client import RequestFailed, ServerUnreachable, WaitTimeout

    for exc in (RequestFailed, ServerUnreachable, WaitTimeout):
        assert issubclass(exc, jobfleet.JobfleetError)
