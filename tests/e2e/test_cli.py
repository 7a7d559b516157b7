"""The `jobfleet` CLI against a real `jobfleet up` (PRODUCT.md §11), on SQLite and PostgreSQL.

Every command runs as a subprocess with no --server/--token: it finds both in the profile that
`up` saved. Each test works in a job set of its own, so the tests share one `up` per backend.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Fleet, pgrep
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

LIFECYCLE = ["submitted", "queued", "scheduled", "leased", "running", "succeeded"]
JOB_FIELDS = {
    "id",
    "queue",
    "job_set",
    "state",
    "attempt",
    "priority",
    "spec",
    "runs",
    "failure",
    "actions",
    "cancel_requested",
    "scheduling_reason",
    "created_at",
    "updated_at",
}
RUN_FIELDS = {
    "id",
    "attempt",
    "state",
    "shard",
    "worker",
    "exit_code",
    "failure",
    "started_at",
    "finished_at",
}


def job_set() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}"


def ok(done: subprocess.CompletedProcess[str]) -> str:
    """stdout of a CLI call that must have succeeded."""
    assert done.returncode == 0, (
        f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    assert "Traceback" not in done.stderr, done.stderr
    out: str = done.stdout
    return out


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def done_job(shared_fleet: Fleet) -> dict[str, Any]:
    """A job that printed to stdout and stderr and SUCCEEDED (submitted with --wait -o json)."""
    js = job_set()
    cmd = "echo out-line-1; echo err-line-1 >&2; echo out-line-2"
    done = shared_fleet.cli(
        "submit", "--wait", "-o", "json", "--job-set", js, "--", "sh", "-c", cmd
    )
    job: dict[str, Any] = json.loads(ok(done))
    assert job["state"] == "SUCCEEDED", job
    return job


def test_submit_wait_exit_status_follows_the_jobs_end(shared_fleet: Fleet) -> None:
    js = job_set()
    good, bad = shared_fleet.cli_many(
        ("submit", "--wait", "--job-set", js, "--", "sh", "-c", "echo hi"),
        ("submit", "--wait", "--job-set", js, "--", "false"),
    )
    out = ok(good)
    assert "SUCCEEDED" in out
    assert "echo hi" in out
    assert bad.returncode != 0, bad
    assert "FAILED" in bad.stdout
    assert "EXIT_NONZERO" in bad.stdout
    assert "Traceback" not in bad.stderr


def test_submit_wait_shows_what_the_job_printed(shared_fleet: Fleet) -> None:
    out = ok(shared_fleet.cli("submit", "--wait", "--job-set", job_set(), "--", "echo", "hello"))
    assert out.rstrip().endswith("Output (stdout)\nhello"), out


def test_get_tells_an_earlier_attempts_failure_and_its_stderr_tail(
    shared_fleet: Fleet, tmp_path: Path
) -> None:
    """While a failed job waits out its retry backoff, `get` shows the failure as the earlier
    attempt's, its last words labelled as the stderr tail they are."""
    spec = {
        "command": ["sh", "-c", "echo 'ValueError: bad row 7' >&2; exit 3"],
        "job_set": job_set(),
        "retry": {"max_retries": 1, "backoff": {"initial": "10m"}},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    job_id = ok(shared_fleet.cli("submit", "-f", str(tmp_path / "job.yaml"))).strip()
    wait_for(
        lambda: shared_fleet.job(job_id)["failure"] is not None,
        timeout=20,
        what="the first attempt to fail",
    )
    out = ok(shared_fleet.cli("get", job_id))
    shared_fleet.cli("cancel", job_id)  # during the backoff (it may have ended since)
    assert re.search(r"Last failure +EXIT_NONZERO \(exit 3\)", out), out
    assert "(attempt 1; the job was retried)" in out
    assert re.search(r"Stderr \(last lines\) +.*ValueError: bad row 7", out), out
    assert "Termination message" not in out and "Cancel requested" not in out


def test_submit_json_then_get_and_list(shared_fleet: Fleet) -> None:
    js = job_set()
    job = json.loads(ok(shared_fleet.cli("submit", "-o", "json", "--job-set", js, "--", "true")))
    assert job.keys() >= JOB_FIELDS, JOB_FIELDS - job.keys()
    assert job["job_set"] == js
    assert job["spec"]["command"] == ["true"]
    assert job["state"] in ("QUEUED", "SCHEDULED", "LEASED", "RUNNING", "SUCCEEDED")
    job_id = job["id"]
    shared_fleet.wait_state(job_id, "SUCCEEDED")

    get, listed, table, succeeded = shared_fleet.cli_many(
        ("get", job_id, "-o", "json"),
        ("list", "-o", "json"),
        ("list", "--state", "SUCCEEDED", "--job-set", js),
        ("list", "--state", "SUCCEEDED", "-o", "json"),
    )
    got = json.loads(ok(get))
    assert got["id"] == job_id
    assert got["state"] == "SUCCEEDED"
    assert got.keys() >= JOB_FIELDS
    assert len(got["runs"]) == 1
    run = got["runs"][0]
    assert run.keys() >= RUN_FIELDS, RUN_FIELDS - run.keys()
    assert (run["attempt"], run["state"], run["exit_code"]) == (1, "SUCCEEDED", 0)

    assert job_id in [j["id"] for j in json.loads(ok(listed))]
    assert job_id in ok(table)
    succeeded_jobs = json.loads(ok(succeeded))
    assert job_id in [j["id"] for j in succeeded_jobs]
    assert {j["state"] for j in succeeded_jobs} == {"SUCCEEDED"}


def test_cancel_a_running_job_kills_its_process(shared_fleet: Fleet) -> None:
    marker = f"sleep {random.randint(60, 99)}.{random.randint(100000, 999999)}"
    submit = shared_fleet.cli(
        "submit", "--job-set", job_set(), "--", "sh", "-c", f"{marker}; echo end"
    )
    job_id = ok(submit).strip()
    shared_fleet.wait_state(job_id, "RUNNING")
    wait_for(lambda: pgrep(marker), timeout=10, interval=0.1, what="the job's sleep to start")

    ok(shared_fleet.cli("cancel", job_id))

    def cancelled() -> dict[str, Any] | None:
        job: dict[str, Any] = json.loads(ok(shared_fleet.cli("get", job_id, "-o", "json")))
        return job if job["state"] == "CANCELLED" else None

    job = wait_for(cancelled, timeout=20, interval=0.2, what="CANCELLED via `get -o json`")
    assert job["runs"][-1]["state"] == "CANCELLED"
    wait_for(
        lambda: not pgrep(marker), timeout=10, interval=0.1, what=f"no process matching {marker!r}"
    )


@pytest.mark.parametrize("shared_fleet", ["sqlite"], indirect=True)  # PG: see events -f
def test_events_json_lists_the_six_lifecycle_events_in_order(
    shared_fleet: Fleet, done_job: dict[str, Any]
) -> None:
    events = json_lines(ok(shared_fleet.cli("events", done_job["id"], "-o", "json")))
    assert [e["type"] for e in events] == LIFECYCLE
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {e["job_id"] for e in events} == {done_job["id"]}
    assert events[-1]["state"] == "SUCCEEDED"


def test_events_follow_returns_when_the_job_ends(shared_fleet: Fleet) -> None:
    job_id = ok(shared_fleet.cli("submit", "--job-set", job_set(), "--", "sleep", "1.5")).strip()
    done = shared_fleet.cli("events", job_id, "-f", "-o", "json", timeout=30)
    events = json_lines(ok(done))
    assert [e["type"] for e in events] == LIFECYCLE
    assert shared_fleet.job(job_id)["state"] == "SUCCEEDED"


@pytest.mark.parametrize("shared_fleet", ["sqlite"], indirect=True)  # not about the store
def test_history_shows_the_states(shared_fleet: Fleet, done_job: dict[str, Any]) -> None:
    out = ok(shared_fleet.cli("history", done_job["id"]))
    positions = [out.find(s) for s in ("QUEUED", "SCHEDULED", "LEASED", "RUNNING", "SUCCEEDED")]
    assert -1 not in positions, out
    assert positions == sorted(positions), out


@pytest.mark.parametrize("shared_fleet", ["sqlite"], indirect=True)  # not about the store
def test_logs_prints_the_jobs_output(shared_fleet: Fleet, done_job: dict[str, Any]) -> None:
    done = shared_fleet.cli("logs", done_job["id"])
    assert ok(done).splitlines() == ["out-line-1", "out-line-2"]
    assert "err-line-1" in done.stderr


@pytest.mark.parametrize("shared_fleet", ["sqlite"], indirect=True)  # not about the store
def test_logs_with_timestamps_puts_the_time_before_each_line(
    shared_fleet: Fleet, done_job: dict[str, Any]
) -> None:
    lines = ok(shared_fleet.cli("logs", done_job["id"], "--stream", "stdout", "-t")).splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["out-line-1", "out-line-2"]
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ", line) for line in lines)


@pytest.mark.parametrize("shared_fleet", ["sqlite"], indirect=True)  # not about the store
def test_logs_follow_streams_lines_and_exits_when_the_run_ends(shared_fleet: Fleet) -> None:
    script = "for i in 1 2 3 4 5; do echo tick-$i; sleep 0.2; done"
    job_id = ok(
        shared_fleet.cli("submit", "--job-set", job_set(), "--", "sh", "-c", script)
    ).strip()
    done = shared_fleet.cli("logs", job_id, "-f", timeout=30)
    assert ok(done).splitlines() == [f"tick-{i}" for i in range(1, 6)]
    assert shared_fleet.job(job_id)["state"] == "SUCCEEDED"


@pytest.mark.parametrize("shared_fleet", ["sqlite"], indirect=True)  # not about the store
def test_auth_token_prints_the_admin_token(shared_fleet: Fleet) -> None:
    out = ok(shared_fleet.cli("auth", "token"))
    assert out.strip() == shared_fleet.token
    assert out.strip()
    profile = json.loads(shared_fleet.profile.read_text())
    assert profile == {"server": shared_fleet.url, "token": shared_fleet.token}


def test_submit_file_submits_every_job(shared_fleet: Fleet, tmp_path: Path) -> None:
    js = job_set()
    specs = [{"command": ["true"], "job_set": js, "labels": {"n": str(i)}} for i in range(25)]
    jobs_file = tmp_path / "jobs.yaml"
    jobs_file.write_text(yaml.safe_dump(specs))
    out = ok(shared_fleet.cli("submit", "-f", str(jobs_file)))
    ids = out.split()
    assert len(ids) == 25 and len(set(ids)) == 25, out
    listed = json.loads(ok(shared_fleet.cli("list", "--job-set", js, "-o", "json")))
    assert sorted(j["id"] for j in listed) == sorted(ids)


@pytest.mark.parametrize("shared_fleet", ["sqlite"], indirect=True)  # not about the store
def test_an_error_is_one_line_without_a_traceback(shared_fleet: Fleet) -> None:
    done = shared_fleet.cli("get", "NOPE")
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    assert "NOPE" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("shared_fleet", ["sqlite"], indirect=True)  # not about the store
def test_a_wrong_token_is_refused_with_a_message_about_the_token(shared_fleet: Fleet) -> None:
    done = shared_fleet.cli("--token", "jf_wrong", "submit", "--", "true")
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.startswith("error: "), done.stderr
    assert "token" in done.stderr.lower()
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("shared_fleet", ["sqlite"], indirect=True)  # not about the store
def test_reprioritize_preempt_and_retry_commands(shared_fleet: Fleet) -> None:
    script = 'if [ "$JOBFLEET_ATTEMPT" = 1 ]; then exec sleep 60; fi'
    job_id = ok(
        shared_fleet.cli("submit", "--job-set", job_set(), "--", "sh", "-c", script)
    ).strip()
    shared_fleet.wait_state(job_id, "RUNNING")
    assert "priority 7" in ok(shared_fleet.cli("reprioritize", job_id, "7"))
    assert "preemption requested" in ok(shared_fleet.cli("preempt", job_id))
    done = shared_fleet.wait_state(job_id, "SUCCEEDED", timeout=30)
    assert done["priority"] == 7
    assert [r["state"] for r in done["runs"]] == ["PREEMPTED", "SUCCEEDED"]
    new = json.loads(ok(shared_fleet.cli("retry", job_id, "-o", "json")))
    assert new["retry_of"] == job_id
    assert shared_fleet.wait_state(new["id"], "RUNNING")["attempt"] == 1  # a fresh job: attempt 1
    ok(shared_fleet.cli("cancel", new["id"]))
