"""Rendering for people (rich tables) and for scripts (plain JSON)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from jobfleet.client.sync import TERMINAL_STATES
from jobfleet.units import format_duration, format_memory

Json = Mapping[str, Any]

STATE_STYLES = {
    "WAITING": "dim",
    "QUEUED": "blue",
    "SCHEDULED": "cyan",
    "LEASED": "cyan",
    "RUNNING": "bold cyan",
    "SUCCEEDED": "green",
    "FAILED": "bold red",
    "CANCELLED": "yellow",
    "PREEMPTED": "magenta",
    "LOST": "red",
}
EVENT_BASE_FIELDS = frozenset(
    {"id", "type", "job_id", "run_id", "queue", "job_set", "time", "state", "attempt"}
)
EVENT_DETAIL_ORDER = (
    "cause",
    "shard",
    "worker",
    "exit_code",
    "signal",
    "priority",
    "delay",
    "requested_by",
    "reason",
    "failure",
)
EVENT_COLUMNS = (("ID", 8), ("TIME", 23), ("TYPE", 16), ("STATE", 10), ("DETAILS", 0))
COMMAND_WIDTH = 48


def console() -> Console:
    """stdout for people; wide when piped, so tables are not wrapped at 80 columns."""
    out = Console(highlight=False)
    return out if out.is_terminal else Console(highlight=False, width=240)


def echo_json(value: Any, *, compact: bool = False) -> None:
    text = json.dumps(value, separators=(",", ":")) if compact else json.dumps(value, indent=2)
    click.echo(text)


def state_text(state: str | None, cancel_requested: bool = False) -> Text:
    text = Text(state or "-", style=STATE_STYLES.get(state or "", ""))
    if cancel_requested and state not in TERMINAL_STATES:
        text.append(" (cancel requested)", style="yellow")
    return text


def command_text(spec: Json) -> str:
    command = spec.get("command")
    if isinstance(command, list):
        return shlex.join(str(a) for a in command)
    return str(command or "")


def truncate(text: str, width: int = COMMAND_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_time(value: Any) -> str:
    moment = parse_time(value)
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def age(value: Any, now: datetime) -> str:
    """Compact age, like kubectl: 12s, 5m, 3h, 2d."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def span(start: Any, end: Any, now: datetime) -> str:
    begin = parse_time(start)
    if begin is None:
        return "-"
    finish = parse_time(end) or now
    return format_duration(max(0.0, (finish - begin).total_seconds()))


def memory_text(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return format_memory(value)
    return str(value)


def resources_text(spec: Json) -> str:
    res = spec.get("resources") or {}
    cpu = res.get("cpu", "-")
    cpu_text = f"{cpu:g}" if isinstance(cpu, int | float) else str(cpu)
    parts = [f"cpu {cpu_text}", f"memory {memory_text(res.get('memory', '-'))}"]
    parts.append(f"gpu {res.get('gpu', 0)}")
    return ", ".join(parts)


def _raised_memory(spec: Json, job: Json) -> str:
    """A note when a retry rule (memory_factor) gave the job more memory than it asked."""
    asked = (spec.get("resources") or {}).get("memory")
    now = (job.get("resources") or {}).get("memory")
    if now is None or now == asked:
        return ""
    return f" (memory raised to {memory_text(now)} by the retry policy)"


def failure_text(failure: Json | None) -> str:
    if not failure:
        return "-"
    head = str(failure.get("condition") or "FAILURE")
    if failure.get("exit_code") is not None:
        head += f" (exit {failure['exit_code']})"
    elif failure.get("signal") is not None:
        head += f" (signal {failure['signal']})"
    if failure.get("message"):
        head += f": {failure['message']}"
    if failure.get("categories"):
        head += f" [categories: {', '.join(map(str, failure['categories']))}]"
    if "retryable" in failure:
        head += " [retryable]" if failure["retryable"] else " [not retryable]"
    return head


def _table(*columns: str) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0))
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def jobs_table(jobs: Iterable[Json], now: datetime) -> Table:
    table = _table("ID", "STATE", "QUEUE", "JOB SET", "ATTEMPT", "COMMAND", "AGE")
    for job in jobs:
        table.add_row(
            Text(str(job.get("id", ""))),
            state_text(job.get("state"), bool(job.get("cancel_requested"))),
            Text(str(job.get("queue", ""))),
            Text(str(job.get("job_set", ""))),
            str(job.get("attempt", "")),
            Text(truncate(command_text(job.get("spec") or {}))),
            age(job.get("created_at"), now),
        )
    return table


def runs_table(runs: Sequence[Json], now: datetime) -> Table:
    table = _table(
        "RUN", "ATTEMPT", "STATE", "SHARD", "WORKER", "EXIT", "STARTED", "DURATION", "FAILURE"
    )
    for run in runs:
        exit_code = run.get("exit_code")
        table.add_row(
            Text(str(run.get("id", ""))),
            str(run.get("attempt", "")),
            state_text(run.get("state")),
            Text(str(run.get("shard") or "-")),
            Text(str(run.get("worker") or "-")),
            "-" if exit_code is None else str(exit_code),
            format_time(run.get("started_at")),
            span(run.get("started_at"), run.get("finished_at"), now),
            Text(str((run.get("failure") or {}).get("condition") or "-")),
        )
    return table


def actions_text(actions: Sequence[Json]) -> Text:
    text = Text()
    for action in actions:
        if action.get("in_progress"):
            piece, style = f"{action.get('name')} (in progress)", "yellow"
        elif action.get("enabled"):
            piece, style = str(action.get("name")), ""
        else:
            continue
        if text:
            text.append(", ")
        text.append(piece, style=style)
    return text if text else Text("none")


def labels_text(labels: Any) -> str:
    if not isinstance(labels, Mapping) or not labels:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in labels.items())


def timeout_text(spec: Json) -> str:
    timeout = spec.get("timeout")
    if not isinstance(timeout, int | float) or isinstance(timeout, bool):
        return "none"
    return format_duration(float(timeout))


LAST_WORDS_LABELS = {
    "stderr": "Stderr (last lines)",
    "termination_log": "Termination message",
}


def _failure_rows(job: Json) -> list[tuple[str, str]]:
    """The latest failure: as the job's own when it ended with it, else as an earlier
    attempt's (a job running again after a retry has not failed now)."""
    failure = job.get("failure")
    if not failure:
        return []
    runs = job.get("runs") or []
    mine = [r for r in runs if r.get("failure") == failure]
    current = job.get("state") in TERMINAL_STATES and (not runs or runs[-1] in mine)
    label, text = "Failure", failure_text(failure)
    if not current:
        label = "Last failure"
        attempt = f"attempt {mine[-1].get('attempt')}" if mine else "an earlier attempt"
        text = f"{text} ({attempt}; the job was retried)"
    rows = [(label, text)]
    words = failure.get("termination_message")
    if words:
        source = LAST_WORDS_LABELS.get(str(failure.get("termination_source")))
        rows.append((source or "Termination message or stderr", str(words).rstrip()))
    return rows


def _requested(job: Json) -> str | None:
    if job.get("state") in TERMINAL_STATES:
        return None
    asked = [n for n in ("cancel", "preempt") if job.get(f"{n}_requested")]
    if not asked:
        return None
    return " and ".join(asked) + " (its worker is stopping the run)"


def job_view(job: Json, now: datetime) -> RenderableType:
    """The human view of one job (`jobfleet get`)."""
    spec = job.get("spec") or {}
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    priority = str(job.get("priority", 0))
    if job.get("priority_class"):
        priority += f" (class {job['priority_class']})"
    rows: list[tuple[str, str | Text]] = [
        ("ID", str(job.get("id", ""))),
        ("State", state_text(job.get("state"))),
        ("Queue", str(job.get("queue", ""))),
        ("Job set", str(job.get("job_set", ""))),
        ("Priority", priority),
        ("Command", command_text(spec)),
    ]
    if spec.get("working_dir"):
        rows.append(("Working dir", str(spec["working_dir"])))
    rows += [
        ("Resources", resources_text(spec) + _raised_memory(spec, job)),
        ("Timeout", timeout_text(spec)),
        ("Labels", labels_text(job.get("labels") or spec.get("labels"))),
        ("Attempt", str(job.get("attempt", 0))),
    ]
    requested = _requested(job)
    if requested:
        rows.append(("Requested", requested))
    if job.get("scheduling_reason"):
        rows.append(("Scheduling reason", str(job["scheduling_reason"])))
    rows += _failure_rows(job)
    rows += [
        ("Created", format_time(job.get("created_at"))),
        ("Updated", format_time(job.get("updated_at"))),
        ("Actions", actions_text(job.get("actions") or [])),
    ]
    for name, value in rows:
        grid.add_row(name, value if isinstance(value, Text) else Text(value))
    runs = job.get("runs") or []
    if not runs:
        return Group(grid, Text("\nno runs yet"))
    return Group(grid, Text("\nRuns", style="bold"), runs_table(runs, now))


def history_table(items: Iterable[Json]) -> Table:
    table = _table("STATE", "EVENT", "SINCE", "DURATION", "ACTOR", "REASON")
    for item in items:
        duration = item.get("duration")
        table.add_row(
            state_text(item.get("state")),
            Text(str(item.get("event") or "-")),
            format_time(item.get("time")),
            "-" if duration is None else format_duration(float(duration)),
            Text(str(item.get("actor") or "-")),
            Text(str(item.get("reason") or "-")),
        )
    return table


def errors_table(items: Iterable[Json]) -> Table:
    """A job's failures, one row per failed attempt (newest first)."""
    table = _table("ATTEMPT", "RUN", "WORKER", "TIME", "FAILURE")
    for item in items:
        table.add_row(
            str(item.get("attempt", "-")),
            Text(str(item.get("run_id") or "-")),
            Text(str(item.get("worker") or "-")),
            format_time(item.get("time")),
            Text(failure_text(item.get("failure"))),
        )
    return table


def _detail_value(key: str, value: Any) -> str:
    if key == "failure" and isinstance(value, Mapping):
        return failure_text(value)
    if key == "delay" and isinstance(value, int | float):
        return format_duration(float(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def event_details(event: Json) -> str:
    keys = [k for k in EVENT_DETAIL_ORDER if k in event]
    keys += sorted(k for k in event if k not in EVENT_BASE_FIELDS and k not in keys)
    return " ".join(
        f"{k}={_detail_value(k, event[k])}" for k in keys if event[k] not in (None, "", [], {})
    )


def _columns(cells: Sequence[str]) -> str:
    parts = [
        cell if width == 0 else cell.ljust(width)
        for cell, (_, width) in zip(cells, EVENT_COLUMNS, strict=True)
    ]
    return "  ".join(parts).rstrip()


def event_header() -> str:
    return _columns([name for name, _ in EVENT_COLUMNS])


def event_line(event: Json) -> str:
    """One event as a fixed-width row, so a followed stream lines up with the header."""
    return _columns(
        [
            str(event.get("id", "")),
            format_time(event.get("time")),
            str(event.get("type", "")),
            str(event.get("state", "")),
            event_details(event),
        ]
    )
