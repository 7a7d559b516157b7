"""How the CLI shows failures to people: the latest failure with its categories, memory raised
by a retry rule, and the failures of each attempt."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from jobfleet.cli import output

FAILURE = {
    "condition": "EXIT_NONZERO",
    "exit_code": 2,
    "signal": None,
    "termination_message": "bad row 7",
    "categories": ["bad-input", "disk"],
    "retryable": False,
    "message": "the process exited with code 2",
}


def render(renderable: Any) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_get_shows_the_failure_categories_and_raised_memory() -> None:
    job = {
        "id": "j1",
        "state": "FAILED",
        "spec": {"command": ["x"], "resources": {"cpu": 1, "memory": 2**30, "gpu": 0}},
        "resources": {"cpu": 1, "memory": 3 * 2**29, "gpu": 0},
        "failure": FAILURE,
        "runs": [],
    }
    text = render(output.job_view(job, datetime.now(UTC)))
    assert "EXIT_NONZERO (exit 2): the process exited with code 2" in text
    assert "[categories: bad-input, disk]" in text and "[not retryable]" in text
    assert "bad row 7" in text
    assert "memory raised to 1.5Gi by the retry policy" in text


def test_memory_as_asked_has_no_note() -> None:
    spec = {"resources": {"memory": 100}}
    assert output._raised_memory(spec, {"resources": {"memory": 100}}) == ""
    assert output._raised_memory(spec, {}) == ""


def test_errors_table_has_one_row_per_failed_attempt() -> None:
    items = [
        {
            "attempt": 2,
            "run_id": "j1-2",
            "worker": "w2",
            "time": "2026-01-01T00:00:01Z",
            "failure": FAILURE,
        },
        {
            "attempt": 1,
            "run_id": "j1-1",
            "worker": "w1",
            "time": "2026-01-01T00:00:00Z",
            "failure": {**FAILURE, "categories": [], "retryable": True, "exit_code": 1},
        },
    ]
    lines = render(output.errors_table(items)).splitlines()
    row2 = next(line for line in lines if "j1-2" in line)
    row1 = next(line for line in lines if "j1-1" in line)
    assert "w2" in row2 and "bad-input" in row2
    assert "w1" in row1 and "(exit 1)" in row1 and "[retryable]" in row1
    assert lines.index(row2) < lines.index(row1)
