"""Processes that must not step on each other, and stop cleanly (issue 12, PRODUCT.md §14.4):

- a second `up` or `worker` on a data directory is refused (status 2, "already running on DIR
  (pid N)") and disturbs nothing of the first;
- a worker cannot take a live worker's name; a job submitted right after a restart of `up`
  runs once;
- SIGINT/SIGTERM with an event stream open ends `up` and `server` within 2 s, no traceback;
- kill -9 of `jobfleet worker` leaves none of its jobs' processes running;
- the jobs of a root `up` run as nobody and read none of its secrets.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.cluster import TOKEN, Cluster, processes_of
from tests.e2e.conftest import JOBFLEET, Fleet, finish, free_port, make_env, new_fleet, run_cli
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def fleet(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Fleet]:
    f = new_fleet(tmp_path / "fleet", "sqlite", request)
    try:
        yield f
    finally:
        finish(f)


# -- the data directory lock ------------------------------------------------------------------


def test_a_second_up_on_the_same_data_dir_is_refused_and_disturbs_nothing(fleet: Fleet) -> None:
    fleet.start()
    assert fleet.proc is not None
    with fleet.client() as c:
        job = c.submit({"command": ["sh", "-c", "sleep 2; echo done"], "job_set": "lock"})
    fleet.wait_state(job["id"], "RUNNING")
    second = subprocess.run(
        [JOBFLEET, "up", "--data-dir", str(fleet.data_dir), "--port", "0"],
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == 2, second.stderr
    expected = f"already running on {fleet.data_dir} (pid {fleet.proc.pid})"
    assert expected in second.stderr, second.stderr
    assert "jobfleet is up" not in second.stderr and "Traceback" not in second.stderr
    done = fleet.wait_state(job["id"], "SUCCEEDED", "FAILED", timeout=30)
    assert done["state"] == "SUCCEEDED" and len(done["runs"]) == 1, done
    with fleet.client() as c:  # the first one still takes and runs jobs
        after = c.submit({"command": ["true"], "job_set": "lock"})
    assert fleet.wait_state(after["id"], "SUCCEEDED")["state"] == "SUCCEEDED"


# -- restart of `up` --------------------------------------------------------------------------


def test_a_job_submitted_right_after_a_restart_of_up_runs_once(fleet: Fleet) -> None:
    fleet.start()
    with fleet.client() as c:
        first = c.submit({"command": ["true"]})
    fleet.wait_state(first["id"], "SUCCEEDED")
    assert fleet.stop() == 0
    fleet.start()  # returns as soon as the API answers: the worker process may still start
    with fleet.client() as c:
        job = c.submit({"command": ["true"]})
    done = fleet.wait_state(job["id"], "SUCCEEDED", "FAILED", timeout=30)
    assert done["state"] == "SUCCEEDED"
    assert [r["state"] for r in done["runs"]] == ["SUCCEEDED"], done["runs"]
    assert done["failure"] is None


# -- clean shutdown with streams open ---------------------------------------------------------


def _open_stream(url: str, token: str) -> threading.Event:
    """Follow GET /v1/events in a thread; the event is set once the stream has begun."""
    begun = threading.Event()

    def follow() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.stream("GET", f"{url}/v1/events", headers=headers, timeout=30) as r:
                for _ in r.iter_raw():
                    begun.set()
        except httpx.HTTPError:
            pass

    threading.Thread(target=follow, daemon=True).start()
    assert begun.wait(10), "the event stream did not begin"
    return begun


def _stop_within(proc: subprocess.Popen[bytes], send: signal.Signals, pgid: bool) -> float:
    started = time.monotonic()
    if pgid:
        os.killpg(proc.pid, send)  # Ctrl-C in a terminal: the whole foreground group
    else:
        proc.send_signal(send)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("did not stop within 10 s") from None
    return time.monotonic() - started


def test_ctrl_c_with_streams_open_stops_up_within_2s_without_traceback(fleet: Fleet) -> None:
    fleet.start()
    proc = fleet.proc
    assert proc is not None
    with fleet.client() as c:
        wait_for(lambda: [w for w in c.workers() if w["state"] == "READY"], what="the worker")
    _open_stream(fleet.url, fleet.token)
    _open_stream(fleet.url, fleet.token)
    took = _stop_within(proc, signal.SIGINT, pgid=True)
    fleet.proc = None
    out = fleet.output()
    assert took <= 2.0, f"took {took:.2f}s:\n{out}"
    assert "Traceback" not in out and "graceful shutdown exceeded" not in out, out
    assert "jobfleet: stopped" in out


def test_sigterm_with_a_stream_open_stops_a_server_within_2s(any_cluster: Cluster) -> None:
    server = any_cluster.server()
    _open_stream(any_cluster.url, TOKEN)
    took = _stop_within(server.popen, signal.SIGTERM, pgid=False)
    out = server.output()
    assert took <= 2.0, f"took {took:.2f}s:\n{out}"
    assert "Traceback" not in out and "graceful shutdown exceeded" not in out, out


# -- workers: one per data dir, one per live name, no orphans ---------------------------------


def test_a_second_worker_on_a_data_dir_or_a_live_name_is_refused(any_cluster: Cluster) -> None:
    c = any_cluster
    workers = c.start("wa")
    same_dir = run_cli(
        c.env,
        *("worker", "--server", c.url, "--token", TOKEN, "--name", "wb"),
        *("--data-dir", str(c.root / "wa"), "--config", str(c.config)),
    )
    assert same_dir.returncode == 2, same_dir.stderr
    expected = f"already running on {c.root / 'wa'} (pid {workers['wa'].popen.pid})"
    assert expected in same_dir.stderr, same_dir.stderr
    same_name = run_cli(
        c.env,
        *("worker", "--server", c.url, "--token", TOKEN, "--name", "wa"),
        *("--data-dir", str(c.root / "wa-impostor"), "--config", str(c.config)),
    )
    assert same_name.returncode == 2, same_name.stderr
    assert "taken by a live worker" in same_name.stderr, same_name.stderr
    assert "last heartbeat" in same_name.stderr and "Traceback" not in same_name.stderr
    assert workers["wa"].alive and "superseded" not in workers["wa"].output()
    job_id = c.submit("true")
    done = c.wait_job(job_id, lambda j: j["state"] == "SUCCEEDED", what="success on wa")
    assert done["runs"][0]["worker"] == "wa"


def test_kill_9_of_a_worker_leaves_no_job_process_running(any_cluster: Cluster) -> None:
    c = any_cluster
    workers = c.start("wk")
    job_id = c.submit("sleep 300 & sleep 300; wait")
    job = c.wait_job(job_id, lambda j: j["state"] == "RUNNING", what="the job running")
    run_id = job["runs"][-1]["id"]
    wait_for(lambda: len(c.run_pids(run_id)) >= 2, what="the job's processes")
    workers["wk"].signal(signal.SIGKILL)
    wait_for(
        lambda: not processes_of(run_id), timeout=5, interval=0.1, what="the job's processes gone"
    )


# -- jobs of a root `up` run as nobody (PRODUCT.md §14.5) -------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs a root worker")
def test_jobs_of_a_root_up_cannot_read_its_token_database_or_profile(
    request: pytest.FixtureRequest,
) -> None:
    base = Path(tempfile.mkdtemp(prefix="jobfleet-e2e-"))  # passable, unlike pytest's tmp dirs
    os.chmod(base, 0o711)
    fleet = new_fleet(base / "fleet", "sqlite", request, jobs_as_root=False)
    try:
        fleet.start()
        with fleet.client() as c:
            wait_for(lambda: [w for w in c.workers() if w["state"] == "READY"], what="worker")
        data, profile = fleet.data_dir, fleet.profile
        secrets = [data / "admin-token", data / "jobfleet.db", data / "lock", profile]
        for path in secrets:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(data.stat().st_mode) == 0o711
        script = "id -u; " + "; ".join(f"cat {p}" for p in secrets) + f"; ls {data}; true"
        with fleet.client() as c:
            job = c.submit({"command": script, "shell": True})
            done = fleet.wait_state(job["id"], "SUCCEEDED", "FAILED")
            out, err = c.logs(job["id"], "stdout"), c.logs(job["id"], "stderr")
        assert done["state"] == "SUCCEEDED", done
        assert out.split() == ["65534"], out
        assert fleet.token not in out and "SQLite" not in out
        assert err.count("Permission denied") == len(secrets) + 1, err
        secret = base / "root-only.txt"
        secret.write_text("root's\n")
        os.chmod(secret, 0o600)
        with fleet.client() as c:
            job = c.submit({"command": ["cat", "root-only.txt"], "payload_uri": f"file://{secret}"})
        failed = fleet.wait_state(job["id"], "FAILED")
        assert failed["failure"]["condition"] == "START_ERROR", failed["failure"]
        assert "nobody cannot read" in failed["failure"]["message"]
    finally:
        finish(fleet)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs a root worker")
def test_a_root_up_whose_jobs_could_not_reach_their_files_is_refused(tmp_path: Path) -> None:
    """pytest's tmp dirs are root-only (0700): nobody could not pass through to its files."""
    env = make_env(tmp_path)
    data = tmp_path / "data"
    done = run_cli(env, "up", "--data-dir", str(data), "--port", str(free_port()))
    assert done.returncode == 2, done.stderr
    assert "user nobody cannot pass through" in done.stderr and "Traceback" not in done.stderr
