"""LISTEN/NOTIFY between processes on PostgreSQL (store/wakeups.py): a process hears of the
events another one commits, by kind, and not of its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from jobfleet.models import JobSpec
from jobfleet.store import Store
from jobfleet.store.wakeups import SCHEDULER_KINDS, WORKER_KINDS, Wakeups
from tests.conftest import truncate
from tests.helpers import wait_for


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    s = Store(pg_url)
    s.migrate()
    truncate(s)
    s.ensure_defaults()
    yield s
    s.close()


def test_another_process_is_woken_by_kind_and_a_process_not_by_itself(
    pg_store: Store, pg_url: str
) -> None:
    api, other = pg_store, Store(pg_url)  # two "processes" on one database
    scheduler, worker = threading.Event(), threading.Event()
    own_submit, their_cancel = threading.Event(), threading.Event()
    sent = Wakeups(api)
    sent.subscribe(own_submit.set, kinds=["submitted"])
    sent.subscribe(their_cancel.set, kinds=["cancelled"])
    heard = Wakeups(other)
    heard.subscribe(scheduler.set, kinds=SCHEDULER_KINDS)
    heard.subscribe(worker.set, kinds=WORKER_KINDS)
    try:
        sent.start()
        heard.start()
        assert sent.listening.wait(10) and heard.listening.wait(10)
        for e in (scheduler, worker, own_submit, their_cancel):
            e.clear()  # a new LISTEN calls everyone once
        [job_id] = api.submit([JobSpec.model_validate({"command": ["true"]})])
        wait_for(scheduler.is_set, timeout=10, what="the submission to wake the other process")
        assert not worker.is_set()  # a submission is no lease
        other.cancel(job_id)  # notified after the submission: it arrives after it
        wait_for(their_cancel.is_set, timeout=10, what="the other process's cancel")
        assert not own_submit.is_set()  # its own submission came back and was skipped
    finally:
        sent.stop()
        heard.stop()
        other.close()
