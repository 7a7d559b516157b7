"""Durations and memory quantities."""

from __future__ import annotations

import pytest

from jobfleet.units import format_duration, format_memory, parse_duration, parse_memory


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1h30m", 5400), ("250ms", 0.25), (90, 90), ("2d", 172800), ("1.5", 1.5)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "ten", "5x", "1h 30m", "-1s", "30s5"])
def test_malformed_durations_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [("512Mi", 512 * 2**20), ("2G", 2 * 10**9), ("1.5Gi", 3 * 2**29), (1024, 1024), ("64k", 64000)],
)
def test_memory(text: str | int, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize("bad", ["lots", "12 parsecs", "5Q", "-1Mi"])
def test_malformed_memory_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_memory(bad)


def test_formatting() -> None:
    assert format_memory(512 * 2**20) == "512Mi"
    assert format_duration(125) == "2m05s"
    assert format_duration(0.25) == "250ms"
