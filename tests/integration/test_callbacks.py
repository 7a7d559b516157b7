"""Callbacks end to end over real HTTP, on SQLite and PostgreSQL: the durable outbox, signed
deliveries, retries with backoff, at-least-once with event ids, and a receiver that hangs."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from jobfleet.callbacks import EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from jobfleet.callbacks.deliverer import Deliverer
from jobfleet.store import Store
from jobfleet.store.schema import callback_outbox
from tests.helpers import wait_for
from tests.integration.opskit import SECRET, finish_job, receiver, settings, stack_api
from tests.integration.storekit import spec


def outbox_rows(store: Store) -> list[sa.Row[tuple[object, ...]]]:
    with store.read() as conn:
        return list(conn.execute(sa.select(callback_outbox).order_by(callback_outbox.c.id)))


def test_outbox_rows_are_written_with_the_events_that_need_delivery(store: Store) -> None:
    plain = finish_job(store)
    terminal = finish_job(store, callback_url="http://127.0.0.1:9/t")
    every = finish_job(store, callback_url="http://127.0.0.1:9/a", callback_events="all")
    rows = outbox_rows(store)
    by_job = Counter(r.job_id for r in rows)
    assert plain not in by_job
    assert by_job[terminal] == 1
    types = [e["type"] for e in store.job_events(every)]
    assert by_job[every] == len(types)  # submitted, queued, scheduled, leased, running, ...
    (row,) = [r for r in rows if r.job_id == terminal]
    (ev,) = [e for e in store.job_events(terminal) if e["type"] == "succeeded"]
    assert row.event_id == ev["id"] and row.state == "pending"


def test_a_failed_delivery_is_retried_with_backoff_and_the_event_id_allows_dedup(
    store: Store, tmp_path: Path
) -> None:
    with receiver(statuses=[500, 503]) as rec, stack_api(store, tmp_path, settings()) as api:
        job = api.submit(command=["true"], callback_url=rec.url)
        wait_for(lambda: len(rec.got) >= 3, timeout=20, what="three deliveries")
        first, retried, second = rec.got[:3]
        assert first.body == retried.body == second.body  # the same event: duplicates to drop
        event = json.loads(second.body)
        assert event["type"] == "succeeded" and event["job_id"] == job["id"]
        assert second.headers[EVENT_HEADER] == str(event["id"])
        assert verify(SECRET, second.body, second.headers[SIGNATURE_HEADER])
        assert not verify("wrong", second.body, second.headers[SIGNATURE_HEADER])
        assert abs(int(second.headers[TIMESTAMP_HEADER]) - time.time()) < 60
        assert retried.time - first.time >= 0.3  # callbacks.backoff.initial
        assert second.time - retried.time >= 0.6  # then doubled
        seen = {r.headers[EVENT_HEADER] for r in rec.got}
        assert len(seen) == 1 < len(rec.got)

        def delivered() -> list[dict[str, object]] | None:
            items = api.http.get(f"/v1/jobs/{job['id']}/callbacks").json()["items"]
            return items if items and items[0]["state"] == "delivered" else None

        (item,) = wait_for(delivered, what="the delivery to be recorded")
        assert item["event_id"] == event["id"] and item["event_type"] == "succeeded"
        attempts = item["attempts"]
        assert [a["status_code"] for a in attempts] == [500, 503, 200]
        assert attempts[0]["next_retry_at"] is not None and attempts[2]["next_retry_at"] is None
        summary = api.job(job["id"])["callbacks"]
        assert summary["delivered"] == 1 and summary["pending"] == 0
        assert summary["attempts"] == 3


def test_a_4xx_answer_is_recorded_and_given_up(store: Store, tmp_path: Path) -> None:
    with receiver(statuses=[404]) as rec, stack_api(store, tmp_path, settings()) as api:
        job = api.submit(command=["true"], callback_url=rec.url)

        def failed() -> dict[str, object] | None:
            summary = api.job(job["id"]).get("callbacks")
            return summary if summary and summary["failed"] == 1 else None

        summary = wait_for(failed, what="the delivery to be given up")
        assert summary["attempts"] == 1 and summary["last_attempt"]["status_code"] == 404
        assert len(rec.got) == 1


def test_a_hanging_receiver_does_not_delay_other_jobs(store: Store, tmp_path: Path) -> None:
    hold = threading.Event()
    config = settings(callbacks={"secret": SECRET, "timeout": 30, "concurrency": 1})
    with receiver(hold=hold) as rec, stack_api(store, tmp_path, config) as api:
        slow = api.submit(command=["true"], callback_url=rec.url)
        api.wait_state(slow["id"], "SUCCEEDED")
        began = time.monotonic()
        others = [api.submit(command=["true"]) for _ in range(5)]
        for job in others:
            api.wait_state(job["id"], "SUCCEEDED", timeout=10)
        assert time.monotonic() - began < 10  # the receiver holds for 30 s
        assert api.job(slow["id"])["callbacks"]["pending"] == 1
        hold.set()
        wait_for(lambda: api.job(slow["id"])["callbacks"]["delivered"] == 1, timeout=20)
        assert len(rec.got) == 1


def test_two_deliverers_never_send_the_same_row_twice(store: Store, db_url: str) -> None:
    with receiver() as rec:
        ids = [finish_job(store, callback_url=rec.url) for _ in range(30)]
        config = settings(callbacks={"secret": SECRET, "concurrency": 4}).callbacks
        stores = [Store(db_url), Store(db_url)]
        deliverers = [Deliverer(s, config) for s in stores]
        for d in deliverers:
            d.start()
        try:
            wait_for(lambda: store.callback_backlog() == 0, timeout=30, what="all delivered")
        finally:
            for d in deliverers:
                d.stop()
            for s in stores:
                s.close()
        sent = Counter(r.headers[EVENT_HEADER] for r in rec.got)
        assert len(sent) == len(ids) and set(sent.values()) == {1}


def test_an_expired_claim_is_delivered_again(store: Store) -> None:
    """A deliverer that claimed a row and died: after the claim expires, another sends it."""
    with receiver() as rec:
        finish_job(store, callback_url=rec.url)
        lost = store.claim_callbacks("dead-deliverer", limit=10, claim_for=2.0)
        assert len(lost) == 1
        assert store.claim_callbacks("other", limit=10, claim_for=30) == []  # still claimed
        taken = wait_for(lambda: store.claim_callbacks("other", limit=10, claim_for=30), timeout=15)
        config = settings().callbacks
        deliverer = Deliverer(store, config)
        try:
            deliverer.owner = "other"
            attempt = deliverer.deliver(taken[0])
        finally:
            deliverer.stop()
        assert attempt.state == "delivered" and len(rec.got) == 1
        assert not store.record_callback("dead-deliverer", lost[0].outbox_id, attempt)


def test_ingress_refuses_a_callback_url_outside_the_allow_list(
    store: Store, tmp_path: Path
) -> None:
    config = settings(callbacks={"secret": SECRET, "allow": ["http://127.0.0.1:9/ok/"]})
    with stack_api(store, tmp_path, config) as api:
        r = api.http.post(
            "/v1/jobs", json={"command": ["true"], "callback_url": "http://127.0.0.1:9/no"}
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["loc"] == ["callback_url"]
        assert "callbacks.allow" in r.json()["errors"][0]["msg"]
        assert api.http.get("/v1/jobs").json()["items"] == []
        ok = api.submit(command=["true"], callback_url="http://127.0.0.1:9/ok/x")
        assert ok["spec"]["callback_url"].endswith("/ok/x")


def test_submit_with_a_callback_needs_a_secret(store: Store, tmp_path: Path) -> None:
    with stack_api(store, tmp_path, settings(callbacks={})) as api:
        r = api.http.post(
            "/v1/jobs",
            json={"jobs": [{"command": ["true"], "callback_url": "http://127.0.0.1:9/x"}]},
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["loc"] == ["jobs", 0, "callback_url"]
        store.upsert_queue("hooks", config={"callback_secret": "q-secret"})
        ok = api.submit(command=["true"], queue="hooks", callback_url="http://127.0.0.1:9/x")
        assert ok["queue"] == "hooks"


def test_a_job_without_callback_has_no_callbacks_block(store: Store) -> None:
    (job_id,) = store.submit([spec()])
    assert "callbacks" not in store.get_job(job_id)
    assert store.callback_deliveries(job_id) == []
