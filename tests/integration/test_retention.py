"""Retention on SQLite and PostgreSQL: finished jobs go after their TTL (the job's, else the
queue's, else the deployment's) with their events, runs, outbox rows and files; nothing before."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobfleet.errors import NotFound
from jobfleet.housekeeping import Retention
from jobfleet.metrics import RETENTION_DELETED
from jobfleet.runfiles import RunFiles
from jobfleet.store import Store
from jobfleet.store.retention import Deleted
from jobfleet.store.schema import callback_outbox, checkpoints, events, runs
from jobfleet.worker.logpump import strip_timestamps
from tests.helpers import wait_for
from tests.integration.opskit import finish_job, settings, stack_api
from tests.integration.storekit import spec


def finished_at(store: Store, job_id: str) -> float:
    with store.read() as conn:
        return float(
            conn.execute(
                sa.text("SELECT finished_at FROM jobs WHERE id = :i"), {"i": job_id}
            ).scalar_one()
        )


def expired(store: Store, at: float, *, default: float | None = None, **queues: float) -> list[str]:
    return store.expired_jobs(default=default, queue_ttls=queues, limit=500, now=at)


def count(store: Store, table: sa.Table, job_id: str) -> int:
    with store.read() as conn:
        stmt = sa.select(sa.func.count()).select_from(table).where(table.c.job_id == job_id)
        return int(conn.execute(stmt).scalar_one())


def test_a_job_is_kept_until_its_own_ttl_has_passed(store: Store) -> None:
    job = finish_job(store, ttl_after_finished="1s")
    keep = finish_job(store)  # no TTL anywhere: kept for ever
    end = finished_at(store, job)
    assert expired(store, end + 0.5) == []
    assert expired(store, end + 1.5) == [job]
    assert keep not in expired(store, end + 10**6)


def test_queue_default_then_deployment_default(store: Store) -> None:
    store.upsert_queue("preview", config={"ttl_after_finished": 60})
    in_queue = finish_job(store, queue="preview")
    own = finish_job(store, queue="preview", ttl_after_finished="1h")  # its own wins
    plain = finish_job(store)
    end = finished_at(store, plain)
    assert set(expired(store, end + 61, default=3600, preview=60)) == {in_queue}
    assert set(expired(store, end + 3601, default=3600, preview=60)) == {in_queue, plain, own}


def test_deleting_removes_the_job_and_all_it_owns(store: Store) -> None:
    job = finish_job(store, ttl_after_finished="1s", callback_url="http://127.0.0.1:9/x")
    other = finish_job(store)
    with store.tx() as conn:  # the callback was given up: the job may go
        conn.execute(callback_outbox.update().values(state="failed"))
    assert count(store, events, job) and count(store, runs, job)
    assert count(store, callback_outbox, job) == 1
    deleted = store.delete_jobs(expired(store, finished_at(store, job) + 2))
    assert deleted.counts["jobs"] == 1 and deleted.counts["callbacks"] == 1
    assert deleted.counts["events"] >= 6 and deleted.counts["runs"] == 1
    assert [run_id for run_id, _ in deleted.runs] == [f"{job}-1"]
    for table in (events, runs, callback_outbox):
        assert count(store, table, job) == 0
    with pytest.raises(NotFound):
        store.get_job(job)
    assert store.get_job(other)["state"] == "SUCCEEDED"


def test_a_job_with_a_callback_still_pending_or_a_waiting_dependant_is_kept(store: Store) -> None:
    hooked = finish_job(store, ttl_after_finished="1s", callback_url="http://127.0.0.1:9/x")
    dep = finish_job(store, ttl_after_finished="1s")
    # WAITING until the resolver sees that its dependency cannot fail any more
    (waiting,) = store.submit([spec(depends_on=[{"job_id": dep, "after": "failure"}])])
    later = finished_at(store, dep) + 5
    assert expired(store, later) == []
    store.resolve_dependencies()
    assert store.get_job(waiting)["state"] == "FAILED"  # its dependency was there to judge
    assert expired(store, later) == [dep]
    assert hooked not in expired(store, later)


def test_gaps_left_by_deleted_events_do_not_break_resuming(store: Store) -> None:
    first = finish_job(store, ttl_after_finished="1s")
    mark = store.job_events(first)[0]["id"] - 1
    second = finish_job(store)
    store.delete_jobs(expired(store, finished_at(store, first) + 2))
    after = store.events_after(mark)
    assert after and {e["job_id"] for e in after} == {second}
    assert store.events_after(after[-1]["id"]) == []


def test_the_retention_thread_deletes_a_preview_job_and_its_files(
    store: Store, tmp_path: Path
) -> None:
    config = settings(retention={"interval": 0.2})
    data = tmp_path / "data"
    with stack_api(store, data, config) as api:
        before = RETENTION_DELETED.labels("jobs")._value.get()
        kept = api.submit(command=["true"])
        job = api.submit(command=["sh", "-c", "echo preview"], ttl_after_finished="1s")
        api.wait_state(job["id"], "SUCCEEDED")
        run_id = api.job(job["id"])["runs"][0]["id"]
        log = api.stack.files.log(run_id, "stdout")
        assert strip_timestamps(log.read_text()) == "preview\n"
        seen = time.monotonic()
        wait_for(
            lambda: api.http.get(f"/v1/jobs/{job['id']}").status_code == 404,
            timeout=10,
            what="the job to be deleted",
        )
        assert time.monotonic() - seen > 0.5  # not before its TTL
        assert not log.exists() and not api.stack.files.work_dir(run_id).exists()
        assert RETENTION_DELETED.labels("jobs")._value.get() >= before + 1
        assert api.job(kept["id"])["state"] == "SUCCEEDED"


def test_checkpoints_of_a_deleted_job_go_too(store: Store) -> None:
    job = finish_job(store, ttl_after_finished="1s")
    other = finish_job(store, ttl_after_finished="1h")
    with store.tx() as conn:
        for job_id in (job, other):
            conn.execute(
                checkpoints.insert().values(
                    job_id=job_id,
                    run_id=f"{job_id}-1",
                    attempt=1,
                    value="{}",
                    size=2,
                    created_at=time.time(),
                )
            )
    deleted = store.delete_jobs(expired(store, finished_at(store, job) + 2))
    assert deleted.counts["checkpoints"] == 1
    with store.read() as conn:
        left = conn.execute(sa.select(checkpoints.c.job_id)).scalars().all()
    assert left == [other]


def test_retention_deletes_in_bounded_batches(store: Store, tmp_path: Path) -> None:
    ids = [finish_job(store, ttl_after_finished="1ms") for _ in range(5)]
    retention = Retention(store, settings(retention={"batch": 2}), RunFiles(tmp_path))
    calls: list[int] = []
    store_delete = store.delete_jobs

    def delete(job_ids: list[str]) -> Deleted:
        calls.append(len(job_ids))
        return store_delete(job_ids)

    store.delete_jobs = delete  # type: ignore[method-assign]
    wait_for(lambda: len(expired(store, time.time())) == 5, timeout=5, what="all to expire")
    assert retention.run_once() == 5
    assert calls == [2, 2, 1]
    for job_id in ids:
        with pytest.raises(NotFound):
            store.get_job(job_id)
