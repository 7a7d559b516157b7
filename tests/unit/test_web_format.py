"""How the dashboard words numbers and the timeline ("queued for 3.0s", "ran for 2m 00s")."""

from __future__ import annotations

from jobfleet.web.format import (
    ago,
    detail_value,
    duration,
    memory,
    retry_phrases,
    size,
    timeline_phrase,
    when,
)


def test_the_timeline_says_how_long_each_state_lasted() -> None:
    entry = {"event": "queued", "state": "QUEUED", "duration": 3.0, "ongoing": False}
    assert timeline_phrase(entry) == "queued for 3.0s"
    ran = {"event": "running", "state": "RUNNING", "duration": 120.0, "ongoing": True}
    assert timeline_phrase(ran) == "ran for 2m 00s so far"
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


def test_durations_read_as_people_write_them() -> None:
    assert [duration(s) for s in (0.25, 8.605632486864534, 65, 3725, 90000)] == [
        "250ms",
        "8.6s",
        "1m 05s",
        "1h 02m",
        "1d 1h",
    ]
    assert ago(1000.0, now=1000.5) == "just now"
    assert ago(1000.0, now=1042.0) == "42s ago"
    assert ago(1000.0, now=1000.0 + 3 * 3600 + 5) == "3h ago"


def test_a_retry_policy_and_event_details_are_sentences_not_json() -> None:
    policy = {
        "max_retries": 3,
        "backoff": {"initial": 10, "multiplier": 2, "max": 600, "jitter": 0.2},
        "rules": [{"on_categories": ["cuda-oom"], "action": "retry", "memory_factor": 2}],
        "default_action": "fail",
    }
    assert retry_phrases(policy) == [
        "up to 3 retries",
        "waits 10s, times 2 each time, at most 10m 00s (±20% jitter)",
        "retry on cuda-oom, memory times 2",
        "otherwise fail",
    ]
    assert detail_value("delay", 8.605632486864534) == "8.6s"
    assert detail_value("retryable", True) == "yes"
    failure = {"condition": "EXIT_NONZERO", "exit_code": 1, "message": "CUDA out of memory"}
    assert detail_value("failure", failure) == "EXIT_NONZERO (exit code 1): CUDA out of memory"
