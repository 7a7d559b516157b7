"""The write side of the callback outbox, hooked into the store's event-append seam.

An outbox row is written in the same transaction as the event it delivers, so an event a
callback must receive is never lost (durable outbox) and never sent before it is committed.
Only jobs with a `callback_url` pay for it: `_append` calls this only when the batch has such
jobs, with the rows its insert returned.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from jobfleet.lifecycle import EventType
from jobfleet.store.schema import callback_outbox

CALLBACK = "callback"  # a notification kind: outbox rows were written (wakes the deliverer)
TERMINAL_EVENTS = frozenset(
    e.value
    for e in (EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELLED, EventType.PREEMPTED)
)


def wants(mode: str | None, event_type: str) -> bool:
    """Does a job whose callback mode is `mode` ("terminal" | "all") receive this event?"""
    return mode == "all" or (mode == "terminal" and event_type in TERMINAL_EVENTS)


def outbox_targets(evs: list[dict[str, Any]], callbacks: dict[str, str]) -> dict[str, str]:
    """The jobs (id → mode) that have at least one event in `evs` to deliver."""
    out: dict[str, str] = {}
    for e in evs:
        mode = callbacks.get(e["job_id"])
        if mode is not None and wants(mode, e["type"]):
            out[e["job_id"]] = mode
    return out


def write_outbox(conn: sa.Connection, rows: Sequence[Any], targets: dict[str, str]) -> None:
    """One pending outbox row per event of `rows` (id, job_id, type: the events this
    transaction inserted) that a target job must receive."""
    now = time.time()
    out = [
        {
            "event_id": r.id,
            "job_id": r.job_id,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "history": [],
            "created_at": now,
        }
        for r in rows
        if r.job_id in targets and wants(targets[r.job_id], r.type)
    ]
    if out:
        conn.execute(callback_outbox.insert(), out)
        conn.info.setdefault("kinds", set()).add(CALLBACK)
