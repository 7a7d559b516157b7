"""Restart safety of `jobfleet up` (PRODUCT.md §3, §4, §10, §11), on SQLite and PostgreSQL.

A job runs and three wait behind it for CPU when `up` is told to stop (SIGTERM; SIGINT once).
`up` must exit 0, leaving no process of the job, and none of its own, behind. Started again on
the same data, the waiting jobs run; the running job's run is LOST (LEASE_EXPIRED), its job gets
exactly one `requeued` event (cause `lease_expired`) and a second attempt starts, which we
cancel. No job is left RUNNING. The admin token is printed by the first start only; the second
finds it and the profile unchanged.
"""

from __future__ import annotations

import json
import random
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Fleet, finish, kill_pids, new_fleet, pgrep
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED", "PREEMPTED"}


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.pg)]


def unique_sleep() -> str:
    """A `sleep` argument nobody else uses, so `pgrep -f` finds exactly this job's processes."""
    return f"sleep {random.randint(30, 59)}.{random.randint(100000, 999999)}"


def stop_and_judge(fleet: Fleet, sig: signal.Signals, marker: str, problems: list[str]) -> None:
    """Stop `up` with `sig`; note a bad exit or orphans (and kill those) for the end of the test.

    Noted rather than raised, so that the restart is still checked when the shutdown is bad.
    """
    code = fleet.stop(sig, timeout=25)
    if code != 0:
        problems.append(f"`jobfleet up` exited {code} on {sig.name}, not 0")
    if "jobfleet: stopped" not in fleet.output():
        problems.append(f"no 'jobfleet: stopped' after {sig.name}: the shutdown did not run")
    try:
        # A clean shutdown has killed and reaped the job before `up` exits: a short bound.
        wait_for(lambda: not pgrep(marker), timeout=1.5, interval=0.1, what="no orphan")
    except AssertionError:
        orphans = pgrep(marker)
        problems.append(f"job processes {orphans} ({marker!r}) outlived `up` ({sig.name})")
        kill_pids(orphans)
    try:
        wait_for(lambda: not fleet.leftovers(), timeout=1.5, interval=0.1, what="no helper")
    except AssertionError:
        helpers = fleet.leftovers()
        problems.append(f"processes {helpers} of `up`'s session outlived it ({sig.name})")
        kill_pids(helpers)


def start_busy(fleet: Fleet, markers: Path, marker: str, js: str) -> tuple[str, list[str]]:
    """A job running with both cores (`marker` in its command line) and three queued behind it."""
    with fleet.client() as c:
        sleeper = c.submit(
            {
                "command": ["sh", "-c", f"touch {markers}/marker-$JOBFLEET_ATTEMPT; {marker}"],
                "resources": {"cpu": 2},
                "job_set": js,
            }
        )["id"]
        fleet.wait_state(sleeper, "RUNNING")
        wait_for(lambda: (markers / "marker-1").exists(), what="attempt 1 to start")
        wait_for(lambda: pgrep(marker), interval=0.1, what="the sleeper's process")
        followers = [
            c.submit({"command": ["sh", "-c", "echo follower"], "job_set": js})["id"]
            for _ in range(3)
        ]
        for job_id in followers:
            assert c.get(job_id)["state"] in ("QUEUED", "SCHEDULED")
    return sleeper, followers


@pytest.fixture
def setting(tmp_path: Path) -> tuple[Path, Path, str, str]:
    """A config giving the worker exactly two cores, a markers dir, a unique sleep, a job set."""
    config = tmp_path / "jobfleet.yaml"
    config.write_text("worker: {cpu: 2}\n")  # two cores whatever the machine has
    markers = tmp_path / "markers"
    markers.mkdir()
    return config, markers, unique_sleep(), f"restart-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_jobs_survive_a_restart_of_up(
    backend: str,
    setting: tuple[Path, Path, str, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    config, markers, marker, js = setting
    sig = signal.SIGTERM
    fleet = new_fleet(tmp_path / "fleet", backend, request, config=config)
    problems: list[str] = []
    try:
        fleet.start()
        token = fleet.token
        assert f"admin token (shown once, kept in {fleet.data_dir / 'admin-token'}): {token}" in (
            fleet.output()
        )
        sleeper, followers = start_busy(fleet, markers, marker, js)

        stop_and_judge(fleet, sig, marker, problems)

        fleet.start()
        assert "admin token" not in fleet.output() and token not in fleet.output()
        assert fleet.token == token
        assert json.loads(fleet.profile.read_text()) == {"server": fleet.url, "token": token}
        with fleet.client() as c:
            wait_for(lambda: (markers / "marker-2").exists(), timeout=20, what="attempt 2")
            c.cancel(sleeper, "e2e: enough")
            fleet.wait_state(sleeper, "CANCELLED")
            for job_id in followers:
                fleet.wait_state(job_id, *TERMINAL, timeout=20)
                assert c.get(job_id)["state"] == "SUCCEEDED", c.get(job_id)
            job = c.get(sleeper)
            events = c.job_events(sleeper)
            left = [j for j in c.iter_jobs(job_set=js) if j["state"] not in TERMINAL]
        assert left == []
        wait_for(
            lambda: not pgrep(marker),
            timeout=10,
            interval=0.1,
            what="attempt 2's process to be gone",
        )

        judge_sleeper(job, events)
        stop_and_judge(fleet, sig, marker, problems)
    finally:
        finish(fleet)
        kill_pids(pgrep(marker))
    outputs = "\n".join(fleet.output(i + 1) for i in range(fleet.starts))
    assert not problems, "\n".join(problems) + f"\n--- output of `up`:\n{outputs}"


def test_sigint_stops_up_as_cleanly_as_sigterm(
    setting: tuple[Path, Path, str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Ctrl-C: the same shutdown (exit 0, no job process and no helper left); what follows a
    restart is the same as after SIGTERM, tested above."""
    config, markers, marker, js = setting
    fleet = new_fleet(tmp_path / "fleet", "sqlite", request, config=config)
    problems: list[str] = []
    try:
        fleet.start()
        start_busy(fleet, markers, marker, js)
        stop_and_judge(fleet, signal.SIGINT, marker, problems)
    finally:
        finish(fleet)
        kill_pids(pgrep(marker))
    assert not problems, "\n".join(problems) + f"\n--- output of `up`:\n{fleet.output()}"


def judge_sleeper(job: dict[str, Any], events: list[dict[str, Any]]) -> None:
    assert job["state"] == "CANCELLED"
    runs = job["runs"]
    assert [r["attempt"] for r in runs] == [1, 2], runs
    assert runs[0]["state"] == "LOST", runs[0]
    assert runs[0]["failure"]["condition"] == "LEASE_EXPIRED", runs[0]
    assert runs[1]["state"] == "CANCELLED", runs[1]

    types = [e["type"] for e in events]
    requeued = [e for e in events if e["type"] == "requeued"]
    assert len(requeued) == 1, types
    assert requeued[0]["cause"] == "lease_expired", requeued[0]
    assert requeued[0]["failure"]["condition"] == "LEASE_EXPIRED", requeued[0]
    assert requeued[0]["state"] == "QUEUED"
    assert requeued[0]["attempt"] == 1
    at = types.index("requeued")
    assert types[:at] == ["submitted", "queued", "scheduled", "leased", "running"], types
    after = types[at + 1 :]
    assert "leased" in after and "running" in after, types
    assert after[-1] == "cancelled", types
    assert [e["attempt"] for e in events if e["type"] == "running"] == [1, 2], events
    assert types.count("cancelled") == 1 and types.count("failed") == 0, types
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids), ids
