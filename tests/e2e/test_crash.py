"""Crashes: the worker process of `up` killed with SIGKILL, and `up` itself killed with SIGKILL.

In both cases the job that was running must not be left RUNNING, must run again, and the
process of its first run must not outlive the crash (the worker's ledger kills it).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Fleet, finish, new_fleet, pgrep
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(p) for p in out.split()]


def _worker_process(up_pid: int) -> int:
    for child in _children(up_pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"spawn_main" in cmdline:
            return child
    raise AssertionError("no worker process under `up`")


def _start_with_a_running_sleeper(fleet: Fleet) -> tuple[str, str, int]:
    """Start `up` and a job whose first attempt sleeps; (job id, sleep marker, pid of `up`)."""
    fleet.start()
    marker = f"{random.randint(30, 59)}.{random.randint(100000, 999999)}"
    script = f'if [ "$JOBFLEET_ATTEMPT" = 1 ]; then exec sleep {marker}; fi'
    out = fleet.cli("submit", "--job-set", "crash", "--", "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    fleet.wait_state(job_id, "RUNNING")
    wait_for(lambda: pgrep(f"sleep {marker}"), what="the job's process")
    assert fleet.proc is not None
    return job_id, marker, fleet.proc.pid


def test_a_killed_worker_process_is_replaced_and_its_job_runs_again(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fleet = new_fleet(tmp_path / "w", "sqlite", request)
    try:
        job_id, marker, up_pid = _start_with_a_running_sleeper(fleet)
        os.kill(_worker_process(up_pid), signal.SIGKILL)
        done = fleet.wait_state(job_id, "SUCCEEDED", timeout=30)
        assert [r["state"] for r in done["runs"]] == ["LOST", "SUCCEEDED"]
        assert done["runs"][0]["failure"]["condition"] == "LEASE_EXPIRED"
        events = fleet.client().job_events(job_id)
        requeued = [e for e in events if e["type"] == "requeued"]
        assert [e["cause"] for e in requeued] == ["lease_expired"]
        wait_for(lambda: not pgrep(f"sleep {marker}"), what="the orphaned sleep to be killed")
    finally:
        finish(fleet)


def test_up_killed_with_sigkill_recovers_on_restart_without_orphans(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fleet = new_fleet(tmp_path / "k", "sqlite", request)
    try:
        job_id, marker, up_pid = _start_with_a_running_sleeper(fleet)
        os.kill(up_pid, signal.SIGKILL)
        assert fleet.proc is not None
        fleet.proc.wait(10)
        fleet.proc = None
        fleet.start()
        done = fleet.wait_state(job_id, "SUCCEEDED", timeout=30)
        assert [r["state"] for r in done["runs"]] == ["LOST", "SUCCEEDED"]
        wait_for(lambda: not pgrep(f"sleep {marker}"), what="the orphaned sleep to be killed")
    finally:
        finish(fleet)
