"""The data directory's lock and private files, the worker identity, and whom jobs run as."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from jobfleet import datadir
from jobfleet.worker import runas


def test_a_second_lock_on_a_data_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    held = datadir.lock(data, "jobfleet up")
    with pytest.raises(datadir.AlreadyRunning) as refused:
        datadir.lock(data, "jobfleet up")
    assert str(refused.value) == f"jobfleet up is already running on {data} (pid {os.getpid()})"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "lock").stat().st_mode) == 0o600
    held.release()
    datadir.lock(data).release()  # free again once released


def test_the_worker_identity_is_random_kept_and_private(tmp_path: Path) -> None:
    first = datadir.identity(tmp_path / "a")
    assert first == datadir.identity(tmp_path / "a") != datadir.identity(tmp_path / "b")
    assert stat.S_IMODE((tmp_path / "a" / "worker-id").stat().st_mode) == 0o600


def test_a_worker_that_is_not_root_says_jobs_run_as_its_user(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runas.os, "geteuid", lambda: 4242)
    assert runas.resolve("nobody") is None  # it cannot switch
    with caplog.at_level(logging.INFO, logger="jobfleet.worker"):
        runas.announce(None, "nobody")
    [record] = caplog.records
    assert "jobs run as this worker's own user" in record.message
    assert "docs/operations.md#security" in record.message


@pytest.mark.skipif(os.geteuid() != 0, reason="resolving a switch needs root")
def test_run_as_resolves_a_user_and_refuses_an_unknown_one() -> None:
    user = runas.resolve("nobody")
    assert user is not None and user.uid == 65534
    assert user.wrap(["id"])[-2:] == ["--", "id"] and f"--reuid={user.uid}" in user.wrap(["id"])
    assert runas.resolve("root") is None
    with pytest.raises(Exception, match="no user 'no-such-user-here'"):
        runas.resolve("no-such-user-here")
