"""Jinja filters: numbers and times as people read them ("queued for 3s", "1.5Gi")."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment

from jobfleet.units import format_duration

TIMELINE_VERBS = {
    "WAITING": "waited for dependencies",
    "QUEUED": "queued",
    "SCHEDULED": "scheduled",
    "LEASED": "leased (preparing)",
    "RUNNING": "ran",
}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return format_duration(max(0.0, float(seconds)))


def memory(n: int | float | None) -> str:
    if n is None:
        return "—"
    for unit, scale in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n >= scale:
            v = n / scale
            return f"{v:.0f}{unit}" if v.is_integer() else f"{v:.1f}{unit}"
    return f"{int(n)}B"


def size(n: int | float | None) -> str:
    """A file size: 512 B, 64KiB, 95.4MiB."""
    if n is None:
        return "—"
    return f"{int(n)} B" if n < 1024 else f"{memory(n)}B"


def number(n: int | float | None) -> str:
    if n is None:
        return "—"
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.2f}"


def as_ts(iso: str | float | None) -> float:
    """An ISO time (as the API writes it) as seconds since the epoch."""
    if iso is None:
        return 0.0
    if isinstance(iso, int | float):
        return float(iso)
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def when(iso: str | float | None) -> str:
    """An ISO time as HH:MM:SS today, else the date too (UTC, as the API speaks)."""
    if not iso:
        return "—"
    t = datetime.fromtimestamp(as_ts(iso), UTC)
    today = datetime.fromtimestamp(time.time(), t.tzinfo).date()
    return t.strftime("%H:%M:%S" if t.date() == today else "%Y-%m-%d %H:%M:%S")


def timeline_phrase(entry: dict[str, Any]) -> str:
    """'queued for 3s', 'ran for 2m00s (so far)', 'SUCCEEDED'."""
    state = str(entry["state"])
    if state not in TIMELINE_VERBS:
        return state
    if entry["event"] == "cancel_requested":
        verb = "cancel requested, stopping"
    else:
        verb = TIMELINE_VERBS[state]
    so_far = " so far" if entry.get("ongoing") else ""
    return f"{verb} for {duration(entry.get('duration'))}{so_far}"


def percent(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def install(env: Environment) -> None:
    env.filters.update(
        duration=duration,
        as_ts=as_ts,
        memory=memory,
        size=size,
        number=number,
        when=when,
        timeline_phrase=timeline_phrase,
        percent=percent,
    )
