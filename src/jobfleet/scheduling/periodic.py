"""Schedules (PRODUCT.md §14.2), pure: the spec as submitted, its ticks, and what a due
schedule does. Cron expressions are croniter's (standard 5 fields), evaluated in the
schedule's time zone; `every` ticks on a grid that starts at the schedule's anchor.

`due(spec, next_at, now)` decides for a schedule whose next tick has come: the tick to fire
(or None) and the next tick to wait for. Ticks missed while jobfleet was down (more than one
due at once, or the only one late by more than LATE) give one job with `catchup: one` (for
the latest of them) and none with `catchup: none`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jobfleet.models import NAME_RE, JobSpec
from jobfleet.units import parse_duration

LATE = 60.0  # a tick fired later than this after its time was missed (catchup decides)
MIN_EVERY = 1.0
MAX_EVERY = 366 * 86400.0

Overlap = Literal["allow", "skip", "cancel_previous"]
Catchup = Literal["none", "one"]


class ScheduleSpec(BaseModel):
    """`POST /v1/schedules`: a job spec submitted on each tick of `cron` or `every`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_RE)
    cron: str | None = Field(default=None, description="5 fields, e.g. '*/5 * * * *'")
    every: float | None = Field(default=None, description="seconds, or '30s', '1h'")
    timezone: str = "UTC"
    job: JobSpec
    overlap: Overlap = "allow"
    catchup: Catchup = "one"
    paused: bool = False

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        text = " ".join(v.split())
        if len(text.split(" ")) != 5 or not croniter.is_valid(text):
            raise ValueError(
                f"{v!r} is not a 5-field cron expression (minute hour day month weekday, "
                "e.g. '*/5 * * * *')"
            )
        return text

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, v: object) -> float | None:
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ValueError("every is a duration: seconds, or a string like '30s', '5m'")
        seconds = parse_duration(v)
        if not MIN_EVERY <= seconds <= MAX_EVERY:
            raise ValueError("every must be at least 1s and at most 366d")
        return seconds

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        if v not in available_timezones() and v != "UTC":
            raise ValueError(f"{v!r} is not a known time zone (IANA name like 'Europe/Paris')")
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{v!r} is not a known time zone") from exc
        return v

    @field_validator("job")
    @classmethod
    def _job(cls, v: JobSpec) -> JobSpec:
        for field in ("array", "not_before", "client_id"):
            if getattr(v, field) is not None:
                raise ValueError(f"a schedule's job cannot have {field}: each tick is one job")
        return v

    @model_validator(mode="after")
    def _one_of(self) -> ScheduleSpec:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of cron and every")
        return self

    def stored(self) -> dict[str, Any]:
        out = self.model_dump(mode="json", exclude_none=True, exclude={"job", "paused"})
        out["job"] = self.job.stored()
        return out


@dataclass(frozen=True, slots=True)
class Timing:
    """What the ticks of a schedule depend on (from its stored config)."""

    cron: str | None
    every: float | None
    timezone: str
    anchor: float  # `every` ticks at anchor + k * every

    @classmethod
    def of(cls, config: dict[str, Any], anchor: float) -> Timing:
        return cls(config.get("cron"), config.get("every"), config.get("timezone", "UTC"), anchor)

    def next_after(self, t: float) -> float:
        """The first tick strictly after `t`."""
        if self.every is not None:
            k = math.floor((t - self.anchor) / self.every) + 1
            return self.anchor + max(k, 0) * self.every
        assert self.cron is not None
        start = datetime.fromtimestamp(t, UTC).astimezone(ZoneInfo(self.timezone))
        nxt: datetime = croniter(self.cron, start).get_next(datetime)
        return nxt.timestamp()

    def latest_at_or_before(self, t: float, first: float) -> float:
        """The latest tick in [first, t] (first is a tick, first <= t)."""
        if self.every is not None:
            return first + math.floor((t - first) / self.every) * self.every
        latest, nxt = first, self.next_after(first)
        for _ in range(10_000):  # missed minutes of a long outage: bounded
            if nxt > t:
                return latest
            latest, nxt = nxt, self.next_after(nxt)
        assert self.cron is not None
        start = datetime.fromtimestamp(t, UTC).astimezone(ZoneInfo(self.timezone))
        prev: datetime = croniter(self.cron, start).get_prev(datetime)
        return prev.timestamp()


def due(timing: Timing, catchup: Catchup, next_at: float, now: float) -> tuple[float | None, float]:
    """(tick to fire or None, next tick to wait for) for a schedule with next_at <= now."""
    latest = timing.latest_at_or_before(now, next_at)
    following = timing.next_after(latest)
    missed = latest > next_at or now - latest > LATE
    if missed and catchup == "none":
        return (latest if now - latest <= LATE else None), following
    return latest, following
