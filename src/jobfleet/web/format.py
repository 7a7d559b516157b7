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
    """As people write it: 850ms, 8.6s, 2m 05s, 1h 02m, 3d 4h."""
    if seconds is None:
        return "—"
    s = max(0.0, float(seconds))
    if s < 60:
        return format_duration(s)
    minutes, secs = divmod(int(s), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def ago(t: str | float | None, now: float | None = None) -> str:
    """How long ago: 'just now', '42s ago', '5m ago', '3h ago', '2d ago'."""
    if not t:
        return "—"
    s = (time.time() if now is None else now) - as_ts(t)
    if s < 2:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{int(s // size)}{unit} ago"
    return f"{int(s)}s ago"


def when_full(t: str | float | None) -> str:
    """The whole date and time, UTC (for a tooltip)."""
    if not t:
        return "—"
    return datetime.fromtimestamp(as_ts(t), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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


def retry_phrases(policy: dict[str, Any] | None) -> list[str]:
    """A retry policy as sentences: 'up to 3 retries', 'waits 10s, times 2 each time, …'."""
    if not policy:
        return []
    n = int(policy.get("max_retries", 0))
    out = [f"up to {n} retr{'y' if n == 1 else 'ies'}" if n else "no retries"]
    b = policy.get("backoff") or {}
    if n and b:
        wait = f"waits {duration(b.get('initial', 10))}"
        mult = b.get("multiplier", 2)
        if mult and float(mult) != 1.0:
            wait += f", times {number(mult)} each time"
        wait += f", at most {duration(b.get('max', 600))}"
        if b.get("jitter"):
            wait += f" (±{percent(b['jitter'])} jitter)"
        out.append(wait)
    for rule in policy.get("rules") or []:
        on = [*rule.get("on_categories", []), *rule.get("on_conditions", [])]
        phrase = f"{rule.get('action', 'retry')} on {', '.join(on) or 'any failure'}"
        if rule.get("counts") is False:
            phrase += " (not counted)"
        if rule.get("memory_factor"):
            phrase += f", memory times {number(rule['memory_factor'])}"
        if rule.get("avoid_worker"):
            phrase += ", on another worker"
        out.append(phrase)
    if policy.get("default_action") == "fail":
        out.append("otherwise fail")
    return out


_SECONDS = {"delay", "timeout", "duration", "grace", "backoff", "ttl"}


def detail_value(key: str, value: Any) -> str:
    """One field of an event's details as people read it: seconds as durations, numbers
    rounded, a failure as its condition and message, lists joined."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return duration(value) if key in _SECONDS else number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(detail_value(key, v) for v in value)
    if isinstance(value, dict):
        if key == "failure":
            head = str(value.get("condition", ""))
            if value.get("exit_code") is not None:
                head += f" (exit code {value['exit_code']})"
            msg = value.get("message")
            return f"{head}: {msg}" if msg else head
        return ", ".join(f"{k} {detail_value(k, v)}" for k, v in value.items())
    return str(value)


def percent(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def install(env: Environment) -> None:
    env.filters.update(
        duration=duration,
        ago=ago,
        when_full=when_full,
        as_ts=as_ts,
        memory=memory,
        size=size,
        number=number,
        when=when,
        timeline_phrase=timeline_phrase,
        percent=percent,
        retry_phrases=retry_phrases,
    )
    env.globals["detail_value"] = detail_value
