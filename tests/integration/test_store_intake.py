"""Submission through the store: one transaction per batch, client_id dedup, all-or-nothing
validation, dependencies; and list_jobs filters and cursor pagination (PRODUCT.md §2, §4, §12)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa

from jobfleet.errors import InvalidInput
from jobfleet.failures import Condition, FailureInfo
from jobfleet.models import JobSpec
from jobfleet.protocol import Capacity, Finished, Started
from jobfleet.store import JobFilter, Store
from jobfleet.store.schema import events, jobs
from tests.integration.storekit import plan_shard, route


def spec(**kw: Any) -> JobSpec:
    kw.setdefault("command", ["true"])
    return JobSpec(**kw)


def row_counts(store: Store) -> tuple[int, int]:
    with store.read() as conn:
        n_jobs = conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one()
        n_events = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    return int(n_jobs), int(n_events)


def event_types(store: Store, job_id: str) -> list[str]:
    return [e["type"] for e in store.job_events(job_id)]


# -- submit --------------------------------------------------------------------------------


def test_batch_is_stored_with_submitted_then_queued_per_job_in_order(store: Store) -> None:
    ids = store.submit([spec(job_set="s", command=["echo", str(i)]) for i in range(5)])

    assert len(ids) == len(set(ids)) == 5
    evs = store.events_after(0)
    assert [(e["job_id"], e["type"]) for e in evs] == [
        (job_id, t) for job_id in ids for t in ("submitted", "queued")
    ]
    assert [e["id"] for e in evs] == sorted({e["id"] for e in evs})
    for e in evs:
        assert (e["queue"], e["job_set"], e["state"], e["attempt"]) == ("default", "s", "QUEUED", 0)
    for i, job_id in enumerate(ids):
        job = store.get_job(job_id)
        assert job["state"] == "QUEUED"
        assert job["spec"]["command"] == ["echo", str(i)]
        assert job["runs"] == []
    assert row_counts(store) == (5, 10)


def test_a_large_batch_keeps_every_character_of_its_texts(store: Store) -> None:
    # 200 jobs: written by COPY on PostgreSQL, whose text format escapes these characters.
    nasty = 'tab\there, new\nline, cr\r, back\\slash \\N, "quotes", \\t, ünï 💥 \x01 end'
    specs = [
        spec(
            command=["sh", "-c", f"echo {i} {nasty}"],
            labels={"k": nasty, "n": str(i)},
            env={"V": nasty},
            job_set=f"set\t{i % 3}",
        )
        for i in range(200)
    ]
    ids = store.submit(specs)
    for i in (0, 117, 199):
        job = store.get_job(ids[i])
        assert job["spec"]["command"][2] == f"echo {i} {nasty}"
        assert job["labels"] == {"k": nasty, "n": str(i)}
        assert job["spec"]["env"] == {"V": nasty}
        assert job["job_set"] == f"set\t{i % 3}"
        assert [e["job_set"] for e in store.job_events(ids[i])] == [f"set\t{i % 3}"] * 2


def test_same_queue_and_client_id_returns_the_first_job(store: Store) -> None:
    [first] = store.submit([spec(client_id="k1")])
    [again] = store.submit([spec(client_id="k1", command=["other"])])

    assert again == first
    assert row_counts(store) == (1, 2)
    assert store.get_job(first)["spec"]["command"] == ["true"]


def test_client_id_dedup_within_one_batch(store: Store) -> None:
    ids = store.submit([spec(client_id="k"), spec(), spec(client_id="k"), spec(client_id="j")])

    assert ids[0] == ids[2]
    assert len({ids[0], ids[1], ids[3]}) == 3
    assert row_counts(store) == (3, 6)


def test_same_client_id_in_another_queue_is_a_new_job(store: Store) -> None:
    store.upsert_queue("ml", config={})
    [a] = store.submit([spec(client_id="k")])
    [b] = store.submit([spec(client_id="k", queue="ml")])
    [c, d] = store.submit([spec(client_id="z"), spec(client_id="z", queue="ml")])

    assert a != b
    assert c != d
    assert store.get_job(b)["queue"] == "ml"
    assert row_counts(store) == (4, 8)


def test_batch_with_an_unknown_queue_stores_nothing(store: Store) -> None:
    store.submit([spec()])
    before = row_counts(store)

    with pytest.raises(InvalidInput) as info:
        store.submit([spec(), spec(), spec(queue="nope"), spec()])

    errors = info.value.extra["errors"]
    assert [e["loc"] for e in errors] == [["jobs", 2, "queue"]]
    assert "nope" in errors[0]["msg"]
    assert row_counts(store) == before


def test_batch_with_an_unknown_dependency_stores_nothing(store: Store) -> None:
    [known] = store.submit([spec()])
    before = row_counts(store)

    with pytest.raises(InvalidInput) as info:
        store.submit(
            [
                spec(depends_on=[known]),
                spec(depends_on=[known, "NOSUCHJOB"]),
            ]
        )

    errors = info.value.extra["errors"]
    assert [e["loc"] for e in errors] == [["jobs", 1, "depends_on", 1, "job_id"]]
    assert "NOSUCHJOB" in errors[0]["msg"]
    assert row_counts(store) == before


def test_depends_on_a_live_job_waits_then_is_queued_after_it_succeeds(store: Store) -> None:
    [parent] = store.submit([spec()])
    [child] = store.submit([spec(depends_on=[parent])])

    assert store.get_job(child)["state"] == "WAITING"
    assert event_types(store, child) == ["submitted", "waiting"]
    assert store.resolve_dependencies() == 0  # nothing to do while the parent is live
    assert store.get_job(child)["state"] == "WAITING"

    _finish_one(store, parent, outcome="succeeded")
    assert store.get_job(parent)["state"] == "SUCCEEDED"

    assert store.resolve_dependencies() == 1
    assert store.get_job(child)["state"] == "QUEUED"
    assert event_types(store, child) == ["submitted", "waiting", "queued"]
    assert store.resolve_dependencies() == 0


def test_depends_on_success_of_a_failed_job_ends_failed_with_dependency_failed(
    store: Store,
) -> None:
    [parent] = store.submit([spec()])
    [child] = store.submit([spec(depends_on=[{"job_id": parent, "after": "success"}])])

    _finish_one(store, parent, outcome="failed")
    assert store.get_job(parent)["state"] == "FAILED"

    assert store.resolve_dependencies() == 1
    job = store.get_job(child)
    assert job["state"] == "FAILED"
    assert job["failure"]["condition"] == Condition.DEPENDENCY_FAILED.value
    assert job["runs"] == []
    evs = store.job_events(child)
    assert [e["type"] for e in evs] == ["submitted", "waiting", "failed"]
    assert evs[-1]["failure"]["condition"] == "DEPENDENCY_FAILED"


def test_depends_on_an_already_succeeded_job_is_queued_at_once(store: Store) -> None:
    [parent] = store.submit([spec()])
    _finish_one(store, parent, outcome="succeeded")

    [child] = store.submit([spec(depends_on=[parent])])

    assert store.get_job(child)["state"] == "QUEUED"
    assert event_types(store, child) == ["submitted", "queued"]


def test_batch_dependencies_on_one_job_with_different_after_are_judged_separately(
    store: Store,
) -> None:
    [parent] = store.submit([spec()])
    store.cancel(parent)  # terminal, not succeeded: `success` can never be met, `any` is met

    on_success, on_any = store.submit(
        [
            spec(depends_on=[{"job_id": parent, "after": "success"}]),
            spec(depends_on=[{"job_id": parent, "after": "any"}]),
        ]
    )

    assert store.get_job(on_any)["state"] == "QUEUED"
    assert store.get_job(on_success)["state"] == "WAITING"  # then failed by resolve


def _finish_one(store: Store, job_id: str, *, outcome: str) -> None:
    """Drive one QUEUED job through a worker to a terminal state."""
    store.register_worker("w-intake", "default", Capacity(cpu_milli=64_000, memory=2**40))
    route(store, "default")
    plan = plan_shard(store, "default")
    store.lease("default", plan.placed, lease_timeout=60)
    [a] = [a for a in store.assignments("w-intake") if a.job_id == job_id]
    failure = None if outcome == "succeeded" else FailureInfo(condition=Condition.EXIT_NONZERO)
    res = store.report(
        "w-intake",
        [Started(a.run_id, a.fencing, time.time())],
        [
            Finished(
                a.run_id,
                a.fencing,
                "succeeded" if outcome == "succeeded" else "failed",
                time.time(),
                exit_code=0 if outcome == "succeeded" else 1,
                failure=failure,
            )
        ],
    )
    assert not res.refused


# -- list_jobs -----------------------------------------------------------------------------


def _seed_for_listing(store: Store) -> dict[str, list[str]]:
    store.upsert_queue("ml", config={})
    a = store.submit(
        [
            spec(job_set="alpha", command=["train.py", f"--n={i}"], labels={"team": "x"})
            for i in range(4)
        ]
    )
    b = store.submit([spec(queue="ml", job_set="beta", labels={"team": "y"}) for _ in range(3)])
    c = store.submit([spec(job_set="alpha", command=["Evaluate_Model"]) for _ in range(2)])
    store.cancel(a[1])
    store.cancel(b[0])
    return {"a": a, "b": b, "c": c, "all": [*a, *b, *c]}


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [j["id"] for j in items]


def test_list_jobs_filters(store: Store) -> None:
    s = _seed_for_listing(store)

    def listed(**kw: Any) -> set[str]:
        items, nxt = store.list_jobs(JobFilter(**kw), limit=100)
        assert nxt is None
        return set(_ids(items))

    assert listed() == set(s["all"])
    assert listed(queue="ml") == set(s["b"])
    assert listed(job_set="alpha") == set(s["a"] + s["c"])
    assert listed(states=["CANCELLED"]) == {s["a"][1], s["b"][0]}
    assert listed(states=["QUEUED"]) == set(s["all"]) - {s["a"][1], s["b"][0]}
    assert listed(labels={"team": "x"}) == set(s["a"])
    assert listed(labels={"team": "y"}, states=["QUEUED"]) == set(s["b"][1:])
    assert listed(labels={"team": "nobody"}) == set()
    assert listed(text="train.py") == set(s["a"])
    assert listed(text="evaluate_model") == set(s["c"])  # case-insensitive, `_` is literal
    assert listed(text="evaluate%") == set()  # `%` is literal, not a wildcard
    assert listed(text=s["b"][2]) == {s["b"][2]}
    assert store.count_jobs(JobFilter(job_set="alpha")) == 6


def test_list_jobs_pages_visit_every_job_once_newest_first(store: Store) -> None:
    s = _seed_for_listing(store)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        items, cursor = store.list_jobs(JobFilter(), limit=2, cursor=cursor)
        pages += 1
        assert 0 < len(items) <= 2
        seen += _ids(items)
        if cursor is None:
            break
        assert pages < 20

    assert seen == list(reversed(s["all"]))
    assert pages == 5  # 9 jobs, 2 a page

    # A filter applies on every page too.
    seen = []
    cursor = None
    while True:
        items, cursor = store.list_jobs(JobFilter(job_set="alpha"), limit=4, cursor=cursor)
        seen += _ids(items)
        if cursor is None:
            break
    assert seen == list(reversed(s["a"] + s["c"]))


def test_list_jobs_page_is_stable_when_new_jobs_arrive(store: Store) -> None:
    first = store.submit([spec() for _ in range(4)])
    page1, cursor = store.list_jobs(JobFilter(), limit=2)
    store.submit([spec() for _ in range(3)])  # newer than everything listed so far
    page2, cursor2 = store.list_jobs(JobFilter(), limit=2, cursor=cursor)

    assert _ids(page1) + _ids(page2) == list(reversed(first))
    assert cursor2 is None


def test_list_jobs_refuses_a_garbage_cursor(store: Store) -> None:
    store.submit([spec()])
    for cursor in ["garbage!", "bm9wZQ", "czp4", "%%%"]:  # junk, "nope", "s:x", nothing
        with pytest.raises(InvalidInput) as info:
            store.list_jobs(JobFilter(), cursor=cursor)
        assert info.value.extra["errors"][0]["loc"] == ["query", "cursor"], cursor
