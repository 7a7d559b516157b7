"""The HTTP API over real HTTP, on SQLite and PostgreSQL, with the local scheduler and worker."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from jobfleet.store import JobFilter
from tests.helpers import wait_for
from tests.integration.conftest import Api


def test_a_job_walks_its_whole_lifecycle_and_records_each_step(api: Api) -> None:
    job = api.submit(command=["sh", "-c", "echo out-$JOBFLEET_ATTEMPT; echo err >&2"])
    assert job["state"] == "QUEUED"
    done = api.wait_state(str(job["id"]), "SUCCEEDED")
    types = [e["type"] for e in api.http.get(f"/v1/jobs/{job['id']}/events").json()["items"]]
    assert types == ["submitted", "queued", "scheduled", "leased", "running", "succeeded"]
    run = done["runs"][0]  # type: ignore[index]
    assert (run["state"], run["exit_code"], run["worker"], run["attempt"]) == (
        "SUCCEEDED",
        0,
        "w1",
        1,
    )
    out = api.http.get(f"/v1/jobs/{job['id']}/logs")
    assert out.text == "out-1\n"
    err = api.http.get(f"/v1/jobs/{job['id']}/logs", params={"stream": "stderr"})
    assert err.text == "err\n"
    history = api.http.get(f"/v1/jobs/{job['id']}/history").json()["items"]
    assert [h["state"] for h in history][-1] == "SUCCEEDED"
    assert all(h["duration"] is not None for h in history[:-1])


def test_job_sees_its_ids_in_the_environment(api: Api) -> None:
    job = api.submit(
        command=["sh", "-c", 'echo "$JOBFLEET_JOB_ID $JOBFLEET_RUN_ID $JOBFLEET_ATTEMPT $FOO"'],
        env={"FOO": "bar"},
    )
    api.wait_state(str(job["id"]), "SUCCEEDED")
    text = api.http.get(f"/v1/jobs/{job['id']}/logs").text
    assert text.split() == [job["id"], f"{job['id']}-1", "1", "bar"]


def test_non_zero_exit_fails_with_exit_nonzero_and_the_stderr_tail(api: Api) -> None:
    job = api.submit(command=["sh", "-c", "echo boom >&2; exit 3"])
    done = api.wait_state(str(job["id"]), "FAILED")
    failure: dict[str, Any] = done["failure"]  # type: ignore[assignment]
    assert failure["condition"] == "EXIT_NONZERO"
    assert failure["exit_code"] == 3
    assert failure["termination_message"] == "boom"
    events = api.http.get(f"/v1/jobs/{job['id']}/events").json()["items"]
    failed = [e for e in events if e["type"] == "failed"]
    assert len(failed) == 1 and failed[0]["failure"]["exit_code"] == 3


def test_termination_log_wins_over_stderr(api: Api) -> None:
    job = api.submit(
        command=["sh", "-c", 'echo "bad input" > "$JOBFLEET_TERMINATION_LOG"; echo x >&2; exit 2']
    )
    done = api.wait_state(str(job["id"]), "FAILED")
    assert done["failure"]["termination_message"] == "bad input"  # type: ignore[index]


def test_timeout_gives_deadline_exceeded(api: Api) -> None:
    job = api.submit(command=["sleep", "30"], timeout="0.5s")
    done = api.wait_state(str(job["id"]), "FAILED")
    assert done["failure"]["condition"] == "DEADLINE_EXCEEDED"  # type: ignore[index]


def test_command_not_found_is_a_start_error(api: Api) -> None:
    job = api.submit(command=["/nonexistent/program"])
    done = api.wait_state(str(job["id"]), "FAILED")
    assert done["failure"]["condition"] == "START_ERROR"  # type: ignore[index]
    assert "not found" in done["failure"]["message"]  # type: ignore[index]


def test_cancel_of_a_running_job_kills_it_and_ends_cancelled(api: Api, tmp_path: Any) -> None:
    marker = tmp_path / "started"
    job = api.submit(command=["sh", "-c", f"touch {marker}; exec sleep 60"])
    job_id = str(job["id"])
    api.wait_state(job_id, "RUNNING")
    wait_for(marker.exists, what="the job to start")
    r = api.http.post(f"/v1/jobs/{job_id}/cancel", json={"reason": "test"})
    assert r.status_code == 200
    assert r.json()["cancel_requested"] is True or r.json()["state"] == "CANCELLED"
    done = api.wait_state(job_id, "CANCELLED")
    assert done["runs"][0]["state"] == "CANCELLED"  # type: ignore[index]
    types = [e["type"] for e in api.http.get(f"/v1/jobs/{job_id}/events").json()["items"]]
    assert types[-2:] == ["cancel_requested", "cancelled"]


def test_cancel_of_a_terminal_job_is_409_with_state_and_actions(api: Api) -> None:
    job = api.submit(command=["true"])
    api.wait_state(str(job["id"]), "SUCCEEDED")
    r = api.http.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["state"] == "SUCCEEDED"
    assert body["actions"] == ["retry"]


def test_batch_submit_keeps_order_and_stores_all(api: Api) -> None:
    specs = [
        {"command": ["true"], "job_set": "batch", "resources": {"cpu": 1000}} for _ in range(50)
    ]
    r = api.http.post("/v1/jobs", json={"jobs": specs})
    assert r.status_code == 201
    ids = [j["id"] for j in r.json()["jobs"]]
    assert len(set(ids)) == 50
    assert api.store.count_jobs(JobFilter(job_set="batch")) == 50


def test_a_bad_item_refuses_the_whole_batch_and_names_the_field(api: Api) -> None:
    specs: list[dict[str, Any]] = [{"command": ["true"], "job_set": "bad"} for _ in range(3)]
    specs[2]["resources"] = {"cpu": -1}
    r = api.http.post("/v1/jobs", json={"jobs": specs})
    assert r.status_code == 422
    body = r.json()
    assert body["errors"][0]["loc"] == ["jobs", 2, "resources", "cpu"]
    assert api.store.count_jobs(JobFilter(job_set="bad")) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"command": ["x"], "bogus": 1}, "bogus"),
        ({"command": ["x"], "timeout": "ten minutes"}, "timeout"),
        ({"command": ["x"], "resources": {"memory": "lots"}}, "memory"),
        ({"command": ["x"], "resources": {"gpu": 10_000}}, "gpu"),
        ({"command": ["x"], "queue": "no-such-queue"}, "queue"),
        ({"command": ["x"], "depends_on": ["no-such-job"]}, "job_id"),
        ({"command": "echo hi"}, "command"),
        ({"command": ["x"], "priority": "high"}, "priority"),
        ({"command": ["x"], "labels": {"bad key!": "v"}}, "labels"),
        ({"jobs": []}, "jobs"),
        ({"jobs": [{"command": ["x"]}], "extra": 1}, "extra"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_stores_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    before = api.store.count_jobs(JobFilter())
    r = api.http.post("/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    locs = [p for e in r.json()["errors"] for p in e["loc"]]
    assert field in locs, r.json()
    assert api.store.count_jobs(JobFilter()) == before


def test_a_422_reads_like_a_sentence_naming_the_field(api: Api) -> None:
    r = api.http.post("/v1/jobs", json={"command": ["x"], "resources": {"cpu": 0}})
    assert r.json()["detail"] == "resources.cpu: must be greater than 0"
    r = api.http.post("/v1/jobs", json={"command": ["x"], "resources": {"memory": "5Q"}})
    assert r.json()["detail"].startswith("resources.memory: malformed memory quantity")
    r = api.http.post("/v1/queues", json={"name": "q", "weight": -1})
    assert r.status_code == 422 and "Input should" not in r.text and "Value error" not in r.text


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"a string"', b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_422(api: Api, raw: bytes) -> None:
    r = api.http.post("/v1/jobs", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body"]


def test_a_body_over_the_limit_is_413(api: Api) -> None:
    big = b"x" * (api.stack.app.state.services.settings.max_request_bytes + 1)
    r = api.http.post("/v1/jobs", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_over_10000_jobs_in_one_request_is_refused(api: Api) -> None:
    r = api.http.post("/v1/jobs", json={"jobs": [{"command": ["x"]}] * 10_001})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["jobs"]


def test_client_id_deduplicates(api: Api) -> None:
    spec = {"command": ["true"], "client_id": "abc", "resources": {"cpu": 1000}}
    first = api.http.post("/v1/jobs", json=spec).json()
    again = api.http.post("/v1/jobs", json=spec).json()
    assert first["id"] == again["id"]
    assert api.store.count_jobs(JobFilter()) == 1


def test_without_a_valid_token_every_v1_call_is_401(api: Api) -> None:
    with httpx.Client(base_url=api.url) as anon:
        assert anon.get("/v1/jobs").status_code == 401
        r = anon.get("/v1/jobs", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert anon.get("/healthz").status_code == 200
        assert anon.get("/readyz").json()["status"] == "ok"
        assert "/v1/jobs" in anon.get("/openapi.json").json()["paths"]


def test_unknown_job_is_404(api: Api) -> None:
    r = api.http.get("/v1/jobs/NOPE")
    assert r.status_code == 404
    assert r.json()["title"] == "Not found"


def test_list_filters_and_pages_with_a_cursor(api: Api) -> None:
    ids = [
        api.submit(
            command=["true"],
            job_set=f"s{i % 2}",
            labels={"team": "a" if i < 3 else "b"},
            resources={"cpu": 1000},
        )["id"]
        for i in range(7)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, "job_set": "s0"}
        if cursor:
            params["cursor"] = cursor
        page = api.http.get("/v1/jobs", params=params).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [i for n, i in enumerate(ids) if n % 2 == 0][::-1]
    labelled = api.http.get("/v1/jobs", params={"label": "team=a"}).json()["items"]
    assert {j["id"] for j in labelled} == set(ids[:3])
    assert api.http.get("/v1/jobs", params={"cursor": "garbage!"}).status_code == 422
    assert api.http.get("/v1/jobs", params={"state": "NOPE"}).status_code == 422


def _read_sse(resp: httpx.Response, want: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    data = []
    for line in resp.iter_lines():
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            out.append(json.loads("\n".join(data)))
            data = []
            if len(out) >= want:
                break
    return out


def test_event_stream_resumes_after_last_event_id_without_gap_or_duplicate(api: Api) -> None:
    ids = [api.submit(command=["true"], job_set="sse")["id"] for _ in range(3)]
    for i in ids:
        api.wait_state(str(i), "SUCCEEDED")
    params = {"job_set": "sse"}
    with api.http.stream("GET", "/v1/events", params=params) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        first = _read_sse(resp, 7)
    resume = first[-1]["id"]
    with api.http.stream(
        "GET", "/v1/events", params=params, headers={"Last-Event-ID": str(resume)}
    ) as resp:
        rest = _read_sse(resp, 18 - 7)
    all_ids = [e["id"] for e in first + rest]
    assert all_ids == sorted(set(all_ids))
    assert len(all_ids) == 18  # 6 events per job
    direct = api.store.events_after(0)
    assert [e["id"] for e in direct if e["job_set"] == "sse"] == all_ids


def test_event_stream_delivers_live_events_and_heartbeats(api: Api) -> None:
    got: list[str] = []
    with api.http.stream("GET", "/v1/events", params={"job_set": "live"}) as resp:

        def submit_later() -> None:
            api.submit(command=["true"], job_set="live")

        threading.Timer(0.2, submit_later).start()
        for line in resp.iter_lines():
            got.append(line)
            if line.startswith("event: succeeded"):
                break
    assert any(line.startswith("event: submitted") for line in got)
    with api.http.stream("GET", "/v1/events", params={"job_set": "nothing"}) as resp:
        lines = []
        for line in resp.iter_lines():
            lines.append(line)
            if line == ": ping":
                break
    assert ": ping" in lines


def test_logs_follow_streams_lines_and_ends(api: Api) -> None:
    job = api.submit(command=["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"])
    lines = []
    with api.http.stream("GET", f"/v1/jobs/{job['id']}/logs", params={"follow": "true"}) as r:
        event = None
        for raw in r.iter_lines():
            if raw.startswith("event:"):
                event = raw.split(":", 1)[1].strip()
            elif raw.startswith("data:"):
                data = json.loads(raw[5:])
                if event == "end":
                    assert data["state"] == "SUCCEEDED"
                    break
                lines.append(data["line"])
    assert lines == ["line1", "line2", "line3"]


def test_cancel_job_set(api: Api) -> None:
    for _ in range(3):
        api.submit(command=["true"], job_set="doomed", resources={"cpu": 1000})
    r = api.http.post("/v1/job-sets/default/doomed/cancel", json={"reason": "bye"})
    assert r.json() == {"cancelled": 3, "cancel_requested": 0}
    states = {
        j["state"] for j in api.http.get("/v1/jobs", params={"job_set": "doomed"}).json()["items"]
    }
    assert states == {"CANCELLED"}


def test_unplaceable_job_says_why(api: Api) -> None:
    job = api.submit(command=["true"], resources={"cpu": 1000})
    j = wait_for(
        lambda: (x := api.job(str(job["id"])))["scheduling_reason"] and x,
        what="a scheduling reason",
    )
    assert "large enough" in str(j["scheduling_reason"])
    assert j["state"] == "QUEUED"  # PRODUCT §2: stays QUEUED and says why


def test_a_job_waiting_for_room_is_scheduled_and_says_why(api: Api, tmp_path: Any) -> None:
    marker = tmp_path / "hog"
    hog = api.submit(command=["sh", "-c", f"touch {marker}; exec sleep 60"], resources={"cpu": 2})
    api.wait_state(str(hog["id"]), "RUNNING")
    job = api.submit(command=["true"], resources={"cpu": 1})
    j = wait_for(
        lambda: (x := api.job(str(job["id"])))["scheduling_reason"] and x,
        what="a scheduling reason",
    )
    assert j["state"] == "SCHEDULED"
    assert "waiting for free CPU" in str(j["scheduling_reason"])
    api.http.post(f"/v1/jobs/{hog['id']}/cancel")
    done = api.wait_state(str(job["id"]), "SUCCEEDED")
    assert done["scheduling_reason"] is None


def test_preempt_requeues_the_job_with_one_event_and_it_runs_again(api: Api) -> None:
    job = api.submit(command=["sh", "-c", 'if [ "$JOBFLEET_ATTEMPT" = 1 ]; then sleep 60; fi'])
    job_id = str(job["id"])
    api.wait_state(job_id, "RUNNING")
    r = api.http.post(f"/v1/jobs/{job_id}/preempt")
    assert r.status_code == 202
    done = api.wait_state(job_id, "SUCCEEDED")
    assert [run["state"] for run in done["runs"]] == ["PREEMPTED", "SUCCEEDED"]  # type: ignore[union-attr]
    events = api.http.get(f"/v1/jobs/{job_id}/events").json()["items"]
    requeued = [e for e in events if e["type"] == "requeued"]
    assert len(requeued) == 1
    assert requeued[0]["cause"] == "preempted"
    assert requeued[0]["failure"]["condition"] == "PREEMPTED"
    assert not [e for e in events if e["type"] in ("failed", "preempted")]


def test_preempt_of_a_queued_job_is_409(api: Api) -> None:
    job = api.submit(command=["true"], resources={"cpu": 1000})
    r = api.http.post(f"/v1/jobs/{job['id']}/preempt")
    assert r.status_code == 409
    assert r.json()["state"] == "QUEUED"


def test_retry_as_new_links_the_new_job_to_the_old(api: Api) -> None:
    job = api.submit(command=["sh", "-c", "exit 1"])
    api.wait_state(str(job["id"]), "FAILED")
    r = api.http.post(f"/v1/jobs/{job['id']}/retry")
    assert r.status_code == 201
    new = r.json()
    assert new["id"] != job["id"]
    assert new["retry_of"] == job["id"]
    assert new["spec"]["command"] == job["spec"]["command"]  # type: ignore[index]
    running = api.submit(command=["sleep", "60"])
    assert api.http.post(f"/v1/jobs/{running['id']}/retry").status_code == 409
    api.http.post(f"/v1/jobs/{running['id']}/cancel")
