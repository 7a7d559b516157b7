"""How the dashboard words numbers and the timeline ("queued for 3.0s", "ran for 2m00s")."""

from __future__ import annotations

from jobfleet.web.format import duration, memory, size, timeline_phrase, when


def test_the_timeline_says_how_long_each_state_lasted() -> None:
    entry = {"event": "queued", "state": "QUEUED", "duration": 3.0, "ongoing": False}
    assert timeline_phrase(entry) == "queued for 3.0s"
    ran = {"event": "running", "state": "RUNNING", "duration": 120.0, "ongoing": True}
    assert timeline_phrase(ran) == "ran for 2m00s so far"
    stopping = {"event": "cancel_requested", "state": "RUNNING", "duration": 1.5}
    assert timeline_phrase(stopping) == "cancel requested, stopping for 1.5s"
    assert timeline_phrase({"event": "succeeded", "state": "SUCCEEDED"}) == "SUCCEEDED"


def test_sizes_and_resources_read_as_people_write_them() -> None:
    assert memory(0) == "0B" and memory(2**30) == "1Gi" and memory(None) == "—"
    assert memory(24683656 * 1024) == "23.5Gi"  # a machine's memory, not 24683656Ki
    assert size(512) == "512 B" and size(100 * 2**20) == "100MiB"
    assert duration(None) == "—" and duration(-1) == "0ms"


def test_times_are_shown_in_utc() -> None:
    assert when("2020-01-02T03:04:05Z") == "2020-01-02 03:04:05"
    assert when(None) == "—"
