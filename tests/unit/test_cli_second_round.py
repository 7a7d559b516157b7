"""The CLI of PRODUCT.md §14 against a stand-in server: arrays, cordon and drain."""

from __future__ import annotations

import json
from typing import Any

import httpx
from click.testing import CliRunner

from jobfleet.cli.main import CliState, cli


class Recorder:
    def __init__(self, answers: dict[tuple[str, str], tuple[int, Any]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, str(request.url.path), body))
        status, answer = self.answers.get((request.method, request.url.path), (404, None))
        if status == 404:
            return httpx.Response(
                404,
                json={"detail": "not found"},
                headers={"content-type": "application/problem+json"},
            )
        return httpx.Response(status, json=answer)


def run(args: list[str], server: Recorder) -> Any:
    state = CliState(transport=httpx.MockTransport(server))
    return CliRunner().invoke(cli, args, obj=state, catch_exceptions=False)


def test_submit_array_sends_the_array_and_prints_its_id() -> None:
    server = Recorder({("POST", "/v1/jobs"): (201, {"array_id": "A1", "jobs": []})})
    result = run(["submit", "--array", "10%2", "--", "echo", "hi"], server)
    assert result.exit_code == 0, result.output
    assert result.stdout == "A1\n"
    assert server.calls[0][2] == {
        "command": ["echo", "hi"],
        "array": {"size": 10, "max_parallel": 2},
    }


def test_cancel_falls_back_to_an_array_id() -> None:
    answer = {"array_id": "A1", "cancelled": 3, "cancel_requested": 1}
    server = Recorder({("POST", "/v1/arrays/A1/cancel"): (200, answer)})
    result = run(["cancel", "A1"], server)
    assert result.exit_code == 0, result.output
    assert "array A1: 3 cancelled, 1 cancel requested" in result.stdout
    assert [c[1] for c in server.calls] == ["/v1/jobs/A1/cancel", "/v1/arrays/A1/cancel"]


def test_list_by_array() -> None:
    server = Recorder({("GET", "/v1/jobs"): (200, {"items": [], "next_cursor": None})})
    run(["list", "--array", "A1"], server)
    assert server.calls[0][1] == "/v1/jobs"


def test_workers_cordon_uncordon_drain() -> None:
    server = Recorder(
        {
            ("POST", "/v1/workers/w1/cordon"): (200, {"name": "w1", "state": "CORDONED"}),
            ("POST", "/v1/workers/w1/uncordon"): (200, {"name": "w1", "state": "READY"}),
            ("POST", "/v1/workers/w1/drain"): (
                200,
                {"name": "w1", "state": "DRAINING", "evict_at": "2026-12-05T00:05:00Z"},
            ),
        }
    )
    assert "cordoned" in run(["workers", "cordon", "w1"], server).stdout
    assert "READY" in run(["workers", "uncordon", "w1"], server).stdout
    out = run(["workers", "drain", "w1", "--timeout", "1m"], server).stdout
    assert "2026-12-05T00:05:00Z" in out
    assert server.calls[-1] == ("POST", "/v1/workers/w1/drain", {"timeout": "1m"})


def test_usage_as_table_json_and_csv() -> None:
    item = {
        "group": "ml",
        "runs": 2,
        "succeeded": 1,
        "failed": 1,
        "cpu_seconds": 7200.0,
        "memory_gib_seconds": 3600.0,
        "gpu_seconds": 0.0,
        "wall_seconds": 3600.0,
    }
    server = Recorder({("GET", "/v1/usage"): (200, {"items": [item]})})
    table = run(["usage", "--since", "7d", "--by", "queue"], server).stdout
    assert "ml" in table and "2.00" in table  # core-hours
    assert json.loads(run(["usage", "-o", "json"], server).stdout) == [item]
    csv_text = run(["usage", "-o", "csv"], server).stdout
    assert csv_text.splitlines() == [
        "group,runs,succeeded,failed,cpu_seconds,memory_gib_seconds,gpu_seconds,wall_seconds",
        "ml,2,1,1,7200.0,3600.0,0.0,3600.0",
    ]
    assert server.calls[0][1] == "/v1/usage"


SCHEDULE = {
    "name": "nightly",
    "cron": "0 3 * * *",
    "every": None,
    "timezone": "UTC",
    "overlap": "skip",
    "catchup": "one",
    "paused": False,
    "next_tick": "2026-12-06T03:00:00Z",
    "last_job": None,
    "job": {},
}


def test_schedule_create_sends_the_schedule_and_its_job() -> None:
    server = Recorder({("POST", "/v1/schedules"): (201, SCHEDULE)})
    args = ["schedule", "create", "nightly", "--cron", "0 3 * * *", "--overlap", "skip"]
    result = run([*args, "--cpu", "2", "--", "./report.sh", "--full"], server)
    assert result.exit_code == 0, result.output
    assert "nightly" in result.stdout and "2026-12-06T03:00:00Z" in result.stdout
    body = server.calls[0][2]
    assert body["name"] == "nightly" and body["cron"] == "0 3 * * *"
    assert body["overlap"] == "skip" and "every" not in body
    assert body["job"] == {"command": ["./report.sh", "--full"], "resources": {"cpu": 2.0}}


def test_schedule_needs_exactly_one_of_cron_and_every() -> None:
    result = CliRunner().invoke(
        cli, ["schedule", "create", "x", "--", "true"], obj=CliState(transport=None)
    )
    assert result.exit_code == 2
    assert "exactly one of --cron and --every" in result.output


def test_schedule_actions_go_to_their_routes() -> None:
    server = Recorder(
        {
            ("POST", "/v1/schedules/nightly/pause"): (200, {**SCHEDULE, "paused": True}),
            ("POST", "/v1/schedules/nightly/resume"): (200, SCHEDULE),
            ("POST", "/v1/schedules/nightly/trigger"): (201, {"id": "J1"}),
            ("GET", "/v1/schedules"): (200, {"items": [SCHEDULE]}),
        }
    )
    assert "paused" in run(["schedule", "pause", "nightly"], server).stdout
    assert "active" in run(["schedule", "resume", "nightly"], server).stdout
    assert run(["schedule", "trigger", "nightly"], server).stdout == "J1\n"
    assert "nightly" in run(["schedule", "list"], server).stdout


def test_workers_alone_still_lists_with_its_state_and_who_cordoned() -> None:
    worker = {
        "name": "w1",
        "shard": "default",
        "state": "DRAINING",
        "running": 0,
        "allocated": {"cpu": 0, "memory": 0, "gpu": 0},
        "capacity": {"cpu": 2, "memory": 2**30, "gpu": 0},
        "labels": {},
        "last_heartbeat": "2026-12-05T00:00:00Z",
        "info": {},
        "cordon": {
            "state": "DRAINING",
            "requested_by": "alice",
            "evict_at": "2026-12-05T01:00:00Z",
        },
    }
    server = Recorder({("GET", "/v1/workers"): (200, {"items": [worker]})})
    assert json.loads(run(["workers", "-o", "json"], server).stdout)[0]["name"] == "w1"
    table = run(["workers"], server).stdout
    assert "DRAINING" in table and "alice" in table


def test_submit_of_one_job_still_prints_its_id_though_the_job_has_array_fields() -> None:
    job = {"id": "J1", "state": "QUEUED", "array_id": None, "array_index": None}
    server = Recorder({("POST", "/v1/jobs"): (201, job)})
    result = run(["submit", "--not-before", "10m", "--", "date"], server)
    assert result.stdout == "J1\n"
    assert server.calls[0][2] == {"command": ["date"], "not_before": "10m"}
