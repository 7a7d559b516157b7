"""Failures and retries over real HTTP, with the real scheduler and worker, on SQLite and
PostgreSQL: every failure path a process can take, the classifier configured from Settings,
retries that run a job exactly as often as the policy says, checkpoints handed to the next
attempt, the error history, and the SDK's methods for them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobfleet import Client
from jobfleet.config import Settings
from jobfleet.runtime import LocalStack
from jobfleet.wiring import store_from_settings
from tests.helpers import serve, wait_for
from tests.integration.conftest import TOKEN, Api

CATEGORIES = [
    {"name": "bad-input", "rules": [{"exit_codes": {"operator": "In", "values": [2, 64]}}]},
    {"name": "disk", "rules": [{"termination_message": "No space left"}]},
]
FLAKY = {"max_retries": 3, "backoff": {"initial": 0}}


@pytest.fixture
def fapi(db_url: str, tmp_path: Path) -> Iterator[Api]:
    """Like `api`, with error categories, and the store built from the settings as `up` does."""
    settings = Settings.model_validate(
        {
            "lease_timeout": 5,
            "worker": {"name": "w1", "grace": 2, "run_as": "root"},  # jobs use test files
            "error_categories": CATEGORIES,
        }
    )
    store = store_from_settings(db_url, settings)
    store.migrate()
    store.ensure_defaults()
    store.create_token("admin", admin=True, token=TOKEN)
    stack = LocalStack(settings, tmp_path / "data", store)
    stack.start()
    with (
        serve(stack.app) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as http,
    ):
        yield Api(url, http, store, stack)
    stack.stop()
    store.close()


def sh(script: str, **spec: Any) -> dict[str, Any]:
    return {"command": ["sh", "-c", script], **spec}


def run_to_end(api: Api, spec: dict[str, Any], *states: str) -> dict[str, Any]:
    job = api.submit(**spec)
    return dict(api.wait_state(str(job["id"]), *(states or ("FAILED",))))


def events(api: Api, job_id: str, etype: str | None = None) -> list[dict[str, Any]]:
    items = api.http.get(f"/v1/jobs/{job_id}/events").json()["items"]
    return [e for e in items if etype is None or e["type"] == etype]


# -- every path a process can fail on ---------------------------------------------------------


def test_categories_from_settings_reach_run_job_and_event(fapi: Api) -> None:
    done = run_to_end(fapi, sh("echo 'write: No space left on device' >&2; exit 2"))
    assert done["failure"]["categories"] == ["bad-input", "disk"]
    assert done["runs"][0]["failure"]["categories"] == ["bad-input", "disk"]
    [failed] = events(fapi, done["id"], "failed")
    assert failed["failure"]["categories"] == ["bad-input", "disk"]


def test_killed_by_a_signal_is_signaled_with_the_signal(fapi: Api) -> None:
    done = run_to_end(fapi, sh("kill -KILL $$"))
    failure = done["failure"]
    assert (failure["condition"], failure["signal"], failure["exit_code"]) == ("SIGNALED", 9, None)
    assert done["runs"][0]["signal"] == 9


@pytest.mark.parametrize("where", ["missing", "a-file"])
def test_an_unusable_working_dir_is_a_start_error(fapi: Api, tmp_path: Path, where: str) -> None:
    path = tmp_path / where
    if where == "a-file":
        path.write_text("not a directory")
    done = run_to_end(fapi, {"command": ["true"], "working_dir": str(path)})
    failure = done["failure"]
    assert failure["condition"] == "START_ERROR"
    assert "working directory" in failure["message"] and str(path) in failure["message"]
    assert [e["type"] for e in events(fapi, done["id"])][-1] == "failed"


def test_command_not_found_is_a_start_error_naming_the_command(fapi: Api) -> None:
    done = run_to_end(fapi, {"command": ["/no/such/program"]})
    assert done["failure"]["condition"] == "START_ERROR"
    assert "/no/such/program" in done["failure"]["message"]


def test_a_huge_termination_log_or_a_stderr_flood_cannot_bloat_the_store(fapi: Api) -> None:
    flood = "head -c 3000000 /dev/zero | tr '\\0' {c}"
    log = run_to_end(fapi, sh(f'{flood.format(c="x")} > "$JOBFLEET_TERMINATION_LOG"; exit 1'))
    err = run_to_end(fapi, sh(f"{flood.format(c='y')} >&2; echo; echo last words >&2; exit 1"))
    for done, tail in ((log, "xxxx"), (err, "last words")):
        message = done["failure"]["termination_message"]
        assert len(message.encode()) <= 4096
        assert message.startswith("[…truncated]") and message.endswith(tail)
        [failed] = events(fapi, done["id"], "failed")
        assert len(json.dumps(failed).encode()) < 8192


# -- retries ----------------------------------------------------------------------------------


def test_max_retries_three_runs_an_always_failing_job_exactly_four_times(fapi: Api) -> None:
    """StellaOps' check, through the real scheduler and worker."""
    done = run_to_end(fapi, sh('echo "attempt $JOBFLEET_ATTEMPT" >&2; exit 1', retry=FLAKY))
    assert [(r["attempt"], r["state"]) for r in done["runs"]] == [
        (1, "FAILED"),
        (2, "FAILED"),
        (3, "FAILED"),
        (4, "FAILED"),
    ]
    assert done["attempt"] == 4
    evs = events(fapi, done["id"])
    requeued = [e for e in evs if e["type"] == "requeued"]
    assert [(e["cause"], e["attempt"], e["delay"]) for e in requeued] == [
        ("failed", n, 0) for n in (1, 2, 3)
    ]
    assert [e["failure"]["termination_message"] for e in requeued] == [
        f"attempt {n}" for n in (1, 2, 3)
    ]
    terminal = [e for e in evs if e["type"] in ("failed", "succeeded", "cancelled", "preempted")]
    assert [(e["type"], e["attempt"]) for e in terminal] == [("failed", 4)]
    assert terminal[0]["failure"]["retryable"] is False


def test_a_job_retry_policy_is_validated_at_ingress_naming_the_field(fapi: Api) -> None:
    before = fapi.http.get("/v1/jobs").json()["items"]
    bad = {"command": ["true"], "retry": {"backoff": {"multiplier": 0.5}}}
    r = fapi.http.post("/v1/jobs", json=bad)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert ["retry", "backoff", "multiplier"] in [e["loc"] for e in r.json()["errors"]]
    rule = {"command": ["true"], "retry": {"rules": [{"action": "retry", "memory_factor": 99}]}}
    r = fapi.http.post("/v1/jobs", json=rule)
    assert r.status_code == 422
    assert ["retry", "rules", 0, "memory_factor"] in [e["loc"] for e in r.json()["errors"]]
    assert fapi.http.get("/v1/jobs").json()["items"] == before


# -- checkpoints ------------------------------------------------------------------------------

RESUMABLE = """
if [ "$JOBFLEET_ATTEMPT" = 1 ]; then
  [ -z "${JOBFLEET_CHECKPOINT+x}" ] || exit 9
  echo '{"step": 7, "path": "/tmp/x"}' > "$JOBFLEET_CHECKPOINT_FILE"
  exit 1
fi
echo "resumed from $JOBFLEET_CHECKPOINT"
"""


def test_a_retried_attempt_reads_the_checkpoint_of_the_failed_one(fapi: Api) -> None:
    done = run_to_end(fapi, sh(RESUMABLE, retry=FLAKY), "SUCCEEDED", "FAILED")
    assert done["state"] == "SUCCEEDED", done["failure"]
    out = fapi.http.get(f"/v1/jobs/{done['id']}/logs").text
    assert json.loads(out.removeprefix("resumed from ")) == {"step": 7, "path": "/tmp/x"}
    [item] = fapi.http.get(f"/v1/jobs/{done['id']}/checkpoints").json()["items"]
    assert (item["run_id"], item["attempt"]) == (done["runs"][0]["id"], 1)
    assert item["value"] == {"step": 7, "path": "/tmp/x"}
    assert item["size"] == len('{"step": 7, "path": "/tmp/x"}') and item["time"]


def test_a_checkpoint_is_picked_up_while_the_job_runs(fapi: Api, tmp_path: Path) -> None:
    job = fapi.submit(**sh('echo "[1, 2]" > "$JOBFLEET_CHECKPOINT_FILE"; exec sleep 60'))
    items = wait_for(
        lambda: fapi.http.get(f"/v1/jobs/{job['id']}/checkpoints").json()["items"],
        timeout=20,
        what="the running job's checkpoint",
    )
    assert items[0]["value"] == [1, 2]
    assert fapi.job(str(job["id"]))["state"] == "RUNNING"
    fapi.http.post(f"/v1/jobs/{job['id']}/cancel")
    fapi.wait_state(str(job["id"]), "CANCELLED")


def test_an_invalid_checkpoint_file_is_ignored(fapi: Api) -> None:
    done = run_to_end(fapi, sh('echo "{oops" > "$JOBFLEET_CHECKPOINT_FILE"'), "SUCCEEDED")
    assert fapi.http.get(f"/v1/jobs/{done['id']}/checkpoints").json() == {"items": []}


# -- the error history and the SDK ------------------------------------------------------------


def test_errors_over_http_and_the_sdk(fapi: Api) -> None:
    done = run_to_end(fapi, sh("exit $((JOBFLEET_ATTEMPT + 1))", retry=FLAKY))
    job_id = done["id"]
    first = fapi.http.get(f"/v1/jobs/{job_id}/errors", params={"limit": 2}).json()
    assert [e["attempt"] for e in first["items"]] == [4, 3]
    assert first["items"][0]["failure"]["exit_code"] == 5
    assert {e["worker"] for e in first["items"]} == {"w1"}
    second = fapi.http.get(
        f"/v1/jobs/{job_id}/errors", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [e["attempt"] for e in second["items"]] == [2, 1]
    assert second["items"][1]["failure"]["categories"] == ["bad-input"]  # exit 2
    assert second["next_cursor"] is None
    assert fapi.http.get("/v1/jobs/nope/errors").status_code == 404
    assert fapi.http.get(f"/v1/jobs/{job_id}/errors", params={"limit": 0}).status_code == 422

    with Client(fapi.url, token=TOKEN) as client:
        page = client.errors(job_id, limit=3)
        assert len(page["items"]) == 3 and page["next_cursor"]
        assert [e["attempt"] for e in client.iter_errors(job_id, page_size=3)] == [4, 3, 2, 1]
        assert client.checkpoints(job_id) == []
