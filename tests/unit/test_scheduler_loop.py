"""The scheduler's thread survives a database that goes away between cycles (found by the
fault suite: a PostgreSQL restart killed the thread while the process lived on, and nothing
was scheduled again)."""

from __future__ import annotations

from typing import Any

from jobfleet.scheduling.loop import Scheduler
from tests.helpers import wait_for


class AwayStore:
    """A store whose database is unreachable: every read of the next backoff fails."""

    def __init__(self) -> None:
        self.reads = 0

    def next_backoff(self) -> float | None:
        self.reads += 1
        raise ConnectionError("connection refused")


def test_a_failing_read_between_cycles_does_not_kill_the_scheduler_thread() -> None:
    store = AwayStore()
    store_any: Any = store
    # A standby (the gate says no) runs no cycle, so only the idle wait touches the store.
    scheduler = Scheduler(
        store_any, shards=["default"], lease_timeout=60, gate=lambda: False, poll=0.01
    )
    scheduler.start()
    try:
        wait_for(lambda: store.reads >= 3, timeout=10, what="the scheduler to keep looking")
        assert scheduler._thread.is_alive()
    finally:
        scheduler.stop()
