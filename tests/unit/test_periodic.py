"""Schedules, pure (PRODUCT.md §14.2): validation, ticks in a time zone, catch-up."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from jobfleet.scheduling.periodic import LATE, ScheduleSpec, Timing, due

JOB = {"command": ["true"]}


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cron": "*/5 * * *"}, "cron"),  # 4 fields
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * * * * *"}, "cron"),  # seconds field: not standard
        ({"cron": "*/5 * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"every": "soon"}, "every"),
        ({"every": "0s"}, "every"),
        ({"cron": "* * * * *", "job": {**JOB, "array": {"size": 2}}}, "job"),
    ],
)
def test_bad_fields_are_named(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ScheduleSpec.model_validate({"name": "s", "job": JOB, **fields})
    assert info.value.errors()[0]["loc"][0] == field


def test_exactly_one_of_cron_and_every() -> None:
    for fields in ({}, {"cron": "* * * * *", "every": "1m"}):
        with pytest.raises(ValidationError, match="exactly one of cron and every"):
            ScheduleSpec.model_validate({"name": "s", "job": JOB, **fields})


def test_cron_ticks_in_the_schedules_time_zone() -> None:
    timing = Timing("0 9 * * *", None, "Europe/Paris", 0.0)
    nxt = timing.next_after(ts("2026-12-05T07:30:00+00:00"))
    assert datetime.fromtimestamp(nxt, ZoneInfo("Europe/Paris")).hour == 9
    assert nxt == ts("2026-12-05T08:00:00+00:00")  # 09:00 in Paris, winter time
    steps = Timing("*/5 * * * *", None, "UTC", 0.0)
    assert steps.next_after(ts("2026-12-05T10:02:00+00:00")) == ts("2026-12-05T10:05:00+00:00")
    assert steps.next_after(ts("2026-12-05T10:05:00+00:00")) == ts("2026-12-05T10:10:00+00:00")


def test_every_ticks_on_a_grid_from_its_anchor() -> None:
    timing = Timing(None, 30.0, "UTC", 1000.0)
    assert timing.next_after(990.0) == 1000.0
    assert timing.next_after(1000.0) == 1030.0
    assert timing.next_after(1059.0) == 1060.0
    assert timing.latest_at_or_before(1100.0, 1000.0) == 1090.0


def test_a_tick_on_time_fires_and_the_next_follows() -> None:
    timing = Timing(None, 60.0, "UTC", 0.0)
    assert due(timing, "none", 600.0, 600.5) == (600.0, 660.0)
    assert due(timing, "one", 600.0, 600.5) == (600.0, 660.0)


def test_missed_ticks_give_one_job_with_catchup_one_and_none_with_none() -> None:
    timing = Timing(None, 600.0, "UTC", 0.0)
    now = 600.0 + 10 * 600 + LATE + 40  # ten ticks missed; the latest is more than LATE old
    assert due(timing, "one", 600.0, now) == (6600.0, 7200.0)
    assert due(timing, "none", 600.0, now) == (None, 7200.0)
    assert due(timing, "none", 600.0, 6620.0) == (6600.0, 7200.0)  # the latest is recent


def test_cron_catches_up_after_a_long_outage() -> None:
    timing = Timing("0 * * * *", None, "UTC", 0.0)
    first = ts("2026-12-01T00:00:00+00:00")
    tick, nxt = due(timing, "one", first, ts("2026-12-03T05:30:00+00:00"))
    assert tick == ts("2026-12-03T05:00:00+00:00")
    assert nxt == ts("2026-12-03T06:00:00+00:00")
    assert datetime.fromtimestamp(nxt, UTC).minute == 0
