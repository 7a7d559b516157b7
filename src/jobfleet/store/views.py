"""Rows to the objects the API serves (PRODUCT.md §11): job, run, event, history entry."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from jobfleet.lifecycle import EventType, JobState, allowed_actions


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def run_view(m: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": m["id"],
        "attempt": m["attempt"],
        "state": m["state"],
        "shard": m["shard"],
        "worker": m["worker"],
        "exit_code": m["exit_code"],
        "signal": m["signal"],
        "failure": m["failure"],
        "resources": {"cpu": m["cpu_milli"] / 1000, "memory": m["memory"], "gpu": m["gpu"]},
        "created_at": iso(m["created_at"]),
        "started_at": iso(m["started_at"]),
        "finished_at": iso(m["finished_at"]),
        "outputs": m.get("outputs") or [],
    }


def job_view(m: Mapping[Any, Any], runs: Iterable[Mapping[Any, Any]] = ()) -> dict[str, Any]:
    state = JobState(m["state"])
    flag = bool(m["cancel_requested"])
    return {
        "id": m["id"],
        "queue": m["queue"],
        "job_set": m["job_set"],
        "state": state.value,
        "attempt": m["attempt"],
        "priority": m["priority"],
        "priority_class": m["priority_class"],
        "spec": m["spec"],
        # What the next run gets: the spec's, unless a retry rule raised the memory.
        "resources": {"cpu": m["cpu_milli"] / 1000, "memory": m["memory"], "gpu": m["gpu"]},
        "labels": m["labels"],
        "runs": [run_view(r) for r in runs],
        "failure": m["failure"],
        "actions": [
            a.as_dict()
            for a in allowed_actions(
                state,
                cancel_requested=flag,
                preempt_requested=bool(m.get("preempt_requested", False)),
            )
        ],
        "cancel_requested": flag,
        "preempt_requested": bool(m.get("preempt_requested", False)),
        "scheduling_reason": m["scheduling_reason"],
        "shard": m["shard"],
        "worker": m["worker"],
        "retry_of": m["retry_of"],
        "client_id": m["client_id"],
        "not_before": iso(m["not_before"]),
        "array_id": m.get("array_id"),
        "array_index": m.get("array_index"),
        "schedule": m.get("schedule"),
        "scheduled_for": iso(m.get("scheduled_for")),
        "created_at": iso(m["created_at"]),
        "updated_at": iso(m["updated_at"]),
        "finished_at": iso(m["finished_at"]),
    }


def event_view(m: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m["id"],
        "type": m["type"],
        "job_id": m["job_id"],
        "run_id": m["run_id"],
        "queue": m["queue"],
        "job_set": m["job_set"],
        "time": iso(m["time"]),
        "state": m["state"],
        "attempt": m["attempt"],
    }
    for key, value in (m["payload"] or {}).items():
        out.setdefault(key, value)
    return out


# `submitted` and `queued` happen at the same instant: the timeline starts at the latter.
_STATE_EVENTS = {e.value for e in EventType} - {
    EventType.REPRIORITIZED.value,
    EventType.SUBMITTED.value,
}


def history_view(rows: list[Mapping[Any, Any]], now: float) -> list[dict[str, Any]]:
    """The timeline: one entry per transition, with how long the job stayed there."""
    entries = [r for r in rows if r["type"] in _STATE_EVENTS]
    out = []
    for i, r in enumerate(entries):
        nxt = entries[i + 1]["time"] if i + 1 < len(entries) else None
        terminal = JobState(r["state"]).terminal
        end = nxt if nxt is not None else (None if terminal else now)
        payload = r["payload"] or {}
        out.append(
            {
                "event": r["type"],
                "state": r["state"],
                "time": iso(r["time"]),
                "duration": None if end is None else round(end - r["time"], 6),
                "ongoing": nxt is None and not terminal,
                "actor": payload.get("requested_by") or payload.get("worker") or "system",
                "reason": payload.get("reason") or _failure_reason(payload),
                "run_id": r["run_id"],
                "attempt": r["attempt"],
            }
        )
    return out


def _failure_reason(payload: Mapping[Any, Any]) -> str | None:
    failure = payload.get("failure")
    if not failure:
        return None
    return str(failure.get("message") or failure.get("condition"))
