"""Many machines, as real processes (PRODUCT.md §7, §8, §10): `jobfleet server`, `jobfleet
scheduler` (leader-elected) and `jobfleet worker`s talking HTTP only.

- a worker killed with SIGKILL mid-run: its run is LOST (LEASE_EXPIRED) within the lease timeout
  + 2 s, its job gets exactly one `requeued` event (cause `lease_expired`) and finishes on the
  other worker;
- two schedulers: the leader is SIGKILLed, the standby takes over and places new jobs; while
  another holder has the lock a scheduler places nothing;
- a worker cut off (SIGSTOP) past its lease timeout and resumed (SIGCONT) kills the run it lost,
  and its report on it is refused;
- SIGTERM drains a worker: after --drain-timeout its job is EVICTED and requeued (cause
  `evicted`), and the worker deregisters and exits 0.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from jobfleet.store.engine import normalise_url
from jobfleet.store.leader import LEADER_LOCK, FileClaim
from tests.e2e.cluster import LEASE_TIMEOUT, TOKEN, Cluster, make_cluster, processes_of
from tests.e2e.conftest import run_cli
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

# The first attempt runs long, later ones succeed at once.
FIRST_RUN_HANGS = 'if [ "$JOBFLEET_ATTEMPT" = 1 ]; then sleep 60; fi'


def requeues(c: Cluster, job_id: str) -> list[dict[str, Any]]:
    with c.client() as client:
        return [e for e in client.job_events(job_id) if e["type"] == "requeued"]


def running_on(c: Cluster, job_id: str) -> dict[str, Any]:
    job = c.wait_job(job_id, lambda j: j["state"] == "RUNNING", what=f"{job_id} RUNNING")
    run: dict[str, Any] = job["runs"][-1]
    return run


def test_a_killed_worker_loses_its_run_and_the_job_finishes_on_the_other(
    any_cluster: Cluster,
) -> None:
    c = any_cluster
    workers = c.start("wa", "wb")
    job_id = c.submit(FIRST_RUN_HANGS)
    first = running_on(c, job_id)
    victim = workers[first["worker"]]
    killed_at = time.time()
    victim.signal(signal.SIGKILL)
    done = c.wait_job(job_id, lambda j: j["state"] == "SUCCEEDED", timeout=30, what="success")
    lost, second = done["runs"]
    assert lost["state"] == "LOST" and lost["failure"]["condition"] == "LEASE_EXPIRED"
    assert second["worker"] != first["worker"] and second["state"] == "SUCCEEDED"
    [requeued] = requeues(c, job_id)
    assert requeued["cause"] == "lease_expired"
    assert requeued["failure"]["condition"] == "LEASE_EXPIRED"
    lost_after = requeued_time(requeued) - killed_at
    assert lost_after <= LEASE_TIMEOUT + 2, f"run lost {lost_after:.1f}s after the kill"
    listed = run_cli(c.env, "--server", c.url, "--token", TOKEN, "workers", "-o", "json")
    states = {w["name"]: w["state"] for w in json.loads(listed.stdout)}
    assert states == {first["worker"]: "UNREACHABLE", second["worker"]: "READY"}
    table = run_cli(c.env, "--server", c.url, "--token", TOKEN, "workers").stdout
    assert "UNREACHABLE" in table and "SHARD" in table


def requeued_time(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00")).timestamp()


def test_the_standby_scheduler_takes_over_when_the_leader_is_killed(cluster: Cluster) -> None:
    c = cluster
    c.server()
    leader = c.scheduler("sched-1")
    standby = c.scheduler("sched-2", wait_leading=False)
    c.wait_log(standby, "jobfleet scheduler on")
    c.worker("wa", cpu="2")
    before = c.submit("true")
    c.wait_job(before, lambda j: j["state"] == "SUCCEEDED", what="a job under the first leader")
    assert "leading" not in standby.output()
    leader.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    after = c.submit("true")
    c.wait_job(after, lambda j: j["state"] == "SUCCEEDED", timeout=15, what="the standby")
    assert time.monotonic() - killed_at < 10
    assert "leading the scheduler role" in standby.output()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.pg)])
def test_a_scheduler_places_nothing_while_another_holds_the_lead(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    gen = make_cluster(request, tmp_path, backend)
    c = next(gen)
    try:
        c.server()
        with held_lead(c):
            standby = c.scheduler(wait_leading=False)
            c.wait_log(standby, "jobfleet scheduler on")
            c.worker("wa")
            job_id = c.submit("true")
            stays_queued_for(c, job_id, seconds=3.0)
            assert "leading" not in standby.output()
        c.wait_job(job_id, lambda j: j["state"] == "SUCCEEDED", what="placement after release")
        assert "leading the scheduler role" in standby.output()
    finally:
        next(gen, None)


class held_lead:
    """Hold the scheduler's lead from the test process, as another scheduler would."""

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.engine: sa.Engine | None = None
        self.conn: sa.Connection | None = None
        self.claim: FileClaim | None = None

    def __enter__(self) -> None:
        if self.c.backend == "postgres":
            self.engine = sa.create_engine(
                normalise_url(self.c.database), isolation_level="AUTOCOMMIT"
            )
            self.conn = self.engine.connect()
            got = self.conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK})
            assert got.scalar()
        else:
            path = sa.make_url(self.c.database).database
            self.claim = FileClaim(Path(f"{path}.scheduler.lock"))
            assert self.claim.try_acquire()

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None and self.engine is not None:
            self.conn.close()
            self.engine.dispose()
        if self.claim is not None:
            self.claim.release()


def stays_queued_for(c: Cluster, job_id: str, seconds: float) -> None:
    """Watch the job for `seconds`: it must not leave QUEUED (nobody routes it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert c.job(job_id)["state"] == "QUEUED"
        time.sleep(0.2)


def test_a_worker_cut_off_past_its_lease_kills_the_run_it_lost(cluster: Cluster) -> None:
    c = cluster
    cut = c.start("wa")["wa"]
    job_id = c.submit(FIRST_RUN_HANGS)
    first = running_on(c, job_id)
    assert c.run_pids(first["id"])
    cut.signal(signal.SIGSTOP)
    c.worker("wb")
    done = c.wait_job(job_id, lambda j: j["state"] == "SUCCEEDED", timeout=30, what="rerun")
    assert [r["worker"] for r in done["runs"]] == ["wa", "wb"]
    assert done["runs"][0]["state"] == "LOST"
    assert processes_of(first["id"])  # still running, cut off
    cut.signal(signal.SIGCONT)
    wait_for(
        lambda: not processes_of(first["id"]), timeout=15, what="the lost run's processes killed"
    )
    c.wait_log(cut, f"run {first['id']} is no longer ours")
    c.wait_log(cut, f"report on run {first['id']} refused")
    assert len(requeues(c, job_id)) == 1
    assert c.job(job_id)["runs"][0]["state"] == "LOST"  # the refused report changed nothing


def test_sigterm_drains_a_worker_and_evicts_after_the_drain_timeout(cluster: Cluster) -> None:
    c = cluster
    c.server()
    c.scheduler()
    draining = c.worker("wa", "--drain-timeout", "1s")
    job_id = c.submit(FIRST_RUN_HANGS)
    running_on(c, job_id)
    c.worker("wb")
    draining.signal(signal.SIGTERM)
    assert draining.wait(timeout=20) == 0
    assert "drained and deregistered" in draining.output()
    done = c.wait_job(job_id, lambda j: j["state"] == "SUCCEEDED", timeout=20, what="rerun")
    evicted, second = done["runs"]
    assert evicted["worker"] == "wa" and second["worker"] == "wb"
    assert evicted["failure"]["condition"] == "EVICTED"
    [requeued] = requeues(c, job_id)
    assert requeued["cause"] == "evicted" and requeued["delay"] == 0
    assert c.worker_state("wa") == "OFFLINE"
