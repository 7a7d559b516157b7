"""The event stream contract of docs/events.md (PRODUCT.md §4), each guarantee over real HTTP,
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from jobfleet.config import Settings
from jobfleet.errors import IllegalTransition
from jobfleet.lifecycle import EventType, JobState, Op, transition
from tests.helpers import wait_for
from tests.integration.conftest import TOKEN, Api

HAPPY = ["submitted", "queued", "scheduled", "leased", "running", "succeeded"]
NO_WAIT_RETRY = {"max_retries": 2, "backoff": {"initial": 0, "jitter": 0}}
UNPLACEABLE = {"cpu": 1024}  # larger than any test worker: stays QUEUED, no runs


def events_of(api: Api, job_id: str) -> list[dict[str, Any]]:
    r = api.http.get(f"/v1/jobs/{job_id}/events")
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def types_of(api: Api, job_id: str) -> list[str]:
    return [e["type"] for e in events_of(api, job_id)]


def replay(events: list[dict[str, Any]]) -> None:
    """Fail unless the events, in id order, are a legal walk of the transition table.

    `submitted` opens every job and is not a transition; every other event must be the event
    of some operation from the state the previous event left, and land in the state it says.
    """
    assert events[0]["type"] == "submitted"
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    state: JobState | None = None
    flag = False
    for event in events[1:]:
        for op in Op:
            try:
                step = transition(state, op, cancel_requested=flag)
            except IllegalTransition:
                continue
            if step.event.value == event["type"] and step.target.value == event["state"]:
                state, flag = step.target, step.cancel_requested
                break
        else:
            raise AssertionError(f"{event['type']} cannot follow {state}: {events}")


def admin_http(api: Api) -> httpx.Client:
    """A client of its own (httpx clients are not for sharing between threads)."""
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)


@contextmanager
def sse(
    api: Api, params: Any = None, headers: Any = None, http: httpx.Client | None = None
) -> Iterator[Iterator[dict[str, Any]]]:
    """The parsed events of one connection to /v1/events (comments skipped)."""
    http = http or api.http
    with http.stream("GET", "/v1/events", params=params, headers=headers) as resp:
        assert resp.status_code == 200, resp.read()

        def parse() -> Iterator[dict[str, Any]]:
            event_id = None
            for line in resp.iter_lines():
                if line.startswith("id:"):
                    event_id = int(line[3:])
                elif line.startswith("data:"):
                    data = json.loads(line[5:])
                    assert data["id"] == event_id
                    yield data

        yield parse()


def read_until(stream: Iterator[dict[str, Any]], last_id: int) -> list[dict[str, Any]]:
    out = []
    for event in stream:
        out.append(event)
        if event["id"] >= last_id:
            return out
    raise AssertionError("the stream ended")


# -- one event per transition -----------------------------------------------------------------


def test_a_happy_job_has_exactly_one_event_per_transition(api: Api) -> None:
    job_id = str(api.submit(command=["true"])["id"])
    api.wait_state(job_id, "SUCCEEDED")
    events = events_of(api, job_id)
    assert [e["type"] for e in events] == HAPPY
    assert [e["state"] for e in events] == [
        "QUEUED", "QUEUED", "SCHEDULED", "LEASED", "RUNNING", "SUCCEEDED"
    ]  # fmt: skip
    replay(events)


def test_each_retried_run_is_exactly_one_requeued_event(api: Api) -> None:
    job_id = str(api.submit(command=["sh", "-c", "exit 3"], retry=NO_WAIT_RETRY)["id"])
    api.wait_state(job_id, "FAILED")
    events = events_of(api, job_id)
    run = ["scheduled", "leased", "running"]
    assert [e["type"] for e in events] == [
        "submitted", "queued", *run, "requeued", *run, "requeued", *run, "failed"
    ]  # fmt: skip
    requeued = [e for e in events if e["type"] == "requeued"]
    assert [(e["cause"], e["attempt"], e["delay"]) for e in requeued] == [
        ("failed", 1, 0),
        ("failed", 2, 0),
    ]
    assert [e["failure"]["exit_code"] for e in requeued] == [3, 3]
    assert [e["run_id"] for e in requeued] == [f"{job_id}-1", f"{job_id}-2"]
    replay(events)


def test_each_preemption_is_exactly_one_event(api: Api) -> None:
    job_id = str(api.submit(command=["sleep", "30"])["id"])
    for attempt in (1, 2):  # preempted twice: two requeued events, nothing else
        wait_for(
            lambda a=attempt: (j := api.job(job_id))["state"] == "RUNNING" and j["attempt"] == a,
            what=f"attempt {attempt} running",
        )
        assert api.http.post(f"/v1/jobs/{job_id}/preempt").status_code == 202
        wait_for(lambda a=attempt: types_of(api, job_id).count("requeued") == a, what="requeue")
    api.wait_state(job_id, "RUNNING")
    api.http.post(f"/v1/jobs/{job_id}/cancel")
    api.wait_state(job_id, "CANCELLED")
    events = events_of(api, job_id)
    requeued = [e for e in events if e["type"] == "requeued"]
    assert [(e["cause"], e["failure"]["condition"]) for e in requeued] == [
        ("preempted", "PREEMPTED")
    ] * 2
    assert not {"failed", "preempted"} & {e["type"] for e in events}
    replay(events)


def test_a_preemption_that_ends_the_job_is_one_preempted_event(api: Api) -> None:
    policy = {"rules": [{"on_conditions": ["PREEMPTED"], "action": "fail"}]}
    job_id = str(api.submit(command=["sleep", "30"], retry=policy)["id"])
    api.wait_state(job_id, "RUNNING")
    api.http.post(f"/v1/jobs/{job_id}/preempt")
    api.wait_state(job_id, "PREEMPTED")
    events = events_of(api, job_id)
    assert [e["type"] for e in events][-1:] == ["preempted"]
    assert not {"failed", "requeued"} & {e["type"] for e in events}
    assert events[-1]["failure"]["condition"] == "PREEMPTED"
    replay(events)


# -- order, read-your-writes -------------------------------------------------------------------


def test_per_job_order_is_the_order_of_the_transitions(api: Api) -> None:
    job_id = str(api.submit(command=["sleep", "30"], priority=1)["id"])
    api.wait_state(job_id, "RUNNING")
    api.http.post(f"/v1/jobs/{job_id}/reprioritize", json={"priority": 5})
    api.http.post(f"/v1/jobs/{job_id}/cancel", json={"reason": "enough"})
    api.wait_state(job_id, "CANCELLED")
    events = events_of(api, job_id)
    assert [e["type"] for e in events] == [
        *HAPPY[:-1], "reprioritized", "cancel_requested", "cancelled"
    ]  # fmt: skip
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    replay(events)
    with sse(api, {"job_id": job_id}) as stream:  # the stream has the same order
        assert [e["id"] for e in read_until(stream, events[-1]["id"])] == [e["id"] for e in events]


def test_an_event_is_readable_as_soon_as_the_call_returns(api: Api) -> None:
    """No waiting anywhere: each read follows the call that caused the event."""

    def check(thread: int) -> None:
        with admin_http(api) as http:
            for i in range(10):
                job = http.post(
                    "/v1/jobs", json={"command": ["true"], "resources": UNPLACEABLE}
                ).json()
                after = http.get(f"/v1/jobs/{job['id']}/events").json()["items"]
                assert [e["type"] for e in after] == ["submitted", "queued"], (thread, i)
                http.post(f"/v1/jobs/{job['id']}/reprioritize", json={"priority": i})
                http.post(f"/v1/jobs/{job['id']}/cancel")
                after = http.get(f"/v1/jobs/{job['id']}/events").json()["items"]
                assert [e["type"] for e in after][2:] == ["reprioritized", "cancelled"]
                with http.stream(
                    "GET", "/v1/events", params={"job_id": job["id"], "after": after[-2]["id"]}
                ) as resp:
                    data = next(ln for ln in resp.iter_lines() if ln.startswith("data:"))
                    assert json.loads(data[5:])["id"] == after[-1]["id"]

    threads = [threading.Thread(target=check, args=(t,)) for t in range(3)]
    errors: list[BaseException] = []
    for t in threads:
        t.run = _capturing(t.run, errors)  # type: ignore[method-assign]
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def _capturing(run: Any, errors: list[BaseException]) -> Any:
    def wrapped() -> None:
        try:
            run()
        except BaseException as exc:
            errors.append(exc)

    return wrapped


# -- resume: gapless and duplicate-free under concurrent load -----------------------------------


WRITERS, BATCHES, BATCH = 4, 10, 25  # 4 x 10 x (25 x 2 + 5 + 5) = 2,400 events
READERS = 3


def _write(api: Api, job_set: str, errors: list[BaseException]) -> None:
    """Batches of jobs no worker can hold, then some reprioritized and some cancelled."""
    try:
        with admin_http(api) as http:
            for _ in range(BATCHES):
                spec = {"command": ["true"], "job_set": job_set, "resources": UNPLACEABLE}
                r = http.post("/v1/jobs", json={"jobs": [spec] * BATCH})
                assert r.status_code == 201, r.text
                ids = [j["id"] for j in r.json()["jobs"]]
                for job_id in ids[:5]:
                    http.post(f"/v1/jobs/{job_id}/reprioritize", json={"priority": 3})
                for job_id in ids[5:10]:
                    http.post(f"/v1/jobs/{job_id}/cancel")
    except BaseException as exc:
        errors.append(exc)


def _read_with_reconnects(
    api: Api, job_sets: list[str], after: int, done: threading.Event, seed: int
) -> tuple[list[int], int]:
    """Connect, read a random number of events, hang up, resume with Last-Event-ID; again
    and again until the writers are done and the last stored event has been read."""
    rng = random.Random(seed)
    got: list[int] = []
    last, connections = after, 0
    with admin_http(api) as http:
        while True:
            target = _last_of(api, job_sets) if done.is_set() else None
            if target is not None and last >= target:
                return got, connections
            connections += 1
            last = _read_some(done, http, job_sets, last, rng.randint(1, 200), target, got)


def _last_of(api: Api, job_sets: list[str]) -> int:
    return max(
        e["id"] for e in api.store.events_after(0, limit=1_000_000) if e["job_set"] in job_sets
    )


def _read_some(
    done: threading.Event,
    http: httpx.Client,
    job_sets: list[str],
    last: int,
    want: int,
    target: int | None,
    got: list[int],
) -> int:
    """One connection resumed after `last`: read `want` events (or up to `target`), hang up.

    A heartbeat lets it look again at whether the writers are done (no endless wait)."""
    headers = {"Last-Event-ID": str(last)}
    with http.stream("GET", "/v1/events", params={"job_set": job_sets}, headers=headers) as r:
        for line in r.iter_lines():
            if line == ": ping" and target is None and done.is_set():
                break
            if not line.startswith("data:"):
                continue
            last = json.loads(line[5:])["id"]
            got.append(last)
            want -= 1
            if want == 0 or (target is not None and last >= target):
                break
    return last


def test_resume_is_gapless_and_duplicate_free_under_concurrent_writes(api: Api) -> None:
    job_sets = [f"load-{i}" for i in range(WRITERS)]
    start = api.store.last_event_id()
    done, errors = threading.Event(), []
    writers = [threading.Thread(target=_write, args=(api, s, errors)) for s in job_sets]
    results: list[tuple[list[int], int]] = []

    def read(seed: int) -> None:
        try:
            results.append(_read_with_reconnects(api, job_sets, start, done, seed))
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read, args=(i,)) for i in range(READERS)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join(timeout=300)
    done.set()
    for t in readers:
        t.join(timeout=120)
    assert not errors, errors
    stored = [
        e["id"] for e in api.store.events_after(start, limit=100_000) if e["job_set"] in job_sets
    ]
    assert len(stored) == WRITERS * BATCHES * (BATCH * 2 + 10)
    assert len(results) == READERS
    for got, connections in results:
        assert connections > 10  # it really did hang up and resume, many times
        assert got == stored  # every event, once, in order: no gap and no duplicate


# -- heartbeats ---------------------------------------------------------------------------------


def test_an_idle_stream_sends_a_heartbeat_every_interval(api: Api) -> None:
    interval = api.stack.app.state.services.settings.sse_heartbeat
    assert interval == 0.5 and Settings().sse_heartbeat == 15.0  # the default of §4
    stamps: list[float] = []
    with api.http.stream("GET", "/v1/events", params={"job_set": "nothing-here"}) as resp:
        for line in resp.iter_lines():
            if line == ": ping":
                stamps.append(time.monotonic())
                if len(stamps) == 5:
                    break
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(interval * 0.8 <= g <= interval + 0.5 for g in gaps), gaps


# -- filters ---------------------------------------------------------------------------------------


@pytest.fixture
def mixed(api: Api) -> dict[str, list[str]]:
    """Finished jobs in two queues and three job sets."""
    api.store.upsert_queue("other", config={})
    made: dict[str, list[str]] = {}
    for queue, job_set, command in [
        ("default", "a", ["true"]),
        ("default", "b", ["false"]),
        ("other", "a", ["true"]),
        ("other", "c", ["true"]),
    ]:
        job = api.submit(queue=queue, job_set=job_set, command=command)
        made.setdefault(f"{queue}/{job_set}", []).append(str(job["id"]))
    for ids in made.values():
        for job_id in ids:
            api.wait_state(job_id, "SUCCEEDED", "FAILED")
    return made


def _expected(api: Api, **match: Any) -> list[int]:
    out = []
    for e in api.store.events_after(0, limit=100_000):
        if all(e[k] in (v if isinstance(v, list) else [v]) for k, v in match.items()):
            out.append(e["id"])
    return out


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"queue": "other"}, {"queue": "other"}),
        ({"job_set": "a"}, {"job_set": "a"}),
        ({"job_set": ["a", "c"]}, {"job_set": ["a", "c"]}),  # several job sets at once
        ({"type": ["succeeded", "failed"]}, {"type": ["succeeded", "failed"]}),
        (
            {"queue": "default", "job_set": "b", "type": "failed"},
            {"job_set": "b"} | {"type": "failed"},
        ),
    ],
)
def test_the_stream_filters_by_queue_job_set_and_type(
    api: Api, mixed: dict[str, list[str]], params: dict[str, Any], match: dict[str, Any]
) -> None:
    expected = _expected(api, **match)
    assert expected
    with sse(api, params) as stream:
        assert [e["id"] for e in read_until(stream, expected[-1])] == expected


def test_the_stream_filters_by_job(api: Api, mixed: dict[str, list[str]]) -> None:
    job_id = mixed["other/c"][0]
    expected = _expected(api, job_id=job_id)
    with sse(api, {"job_id": job_id}) as stream:
        got = read_until(stream, expected[-1])
    assert [e["id"] for e in got] == expected and [e["type"] for e in got] == HAPPY


def test_an_unknown_type_or_a_bad_resume_id_is_422(api: Api) -> None:
    assert api.http.get("/v1/events", params={"type": "exploded"}).status_code == 422
    r = api.http.get("/v1/events", headers={"Last-Event-ID": "yesterday"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["header", "last-event-id"]


def test_every_event_carries_the_common_fields(api: Api, mixed: dict[str, list[str]]) -> None:
    common = {"id", "type", "job_id", "run_id", "queue", "job_set", "time", "state", "attempt"}
    events = api.store.events_after(0, limit=100_000)
    assert events and all(common <= set(e) for e in events)
    assert {e["type"] for e in events} <= {t.value for t in EventType}
