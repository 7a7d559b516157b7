"""docs/states.md is generated from the lifecycle core and must match it."""

from __future__ import annotations

from pathlib import Path

from jobfleet.lifecycle import EventType, JobState, Op, RunState
from jobfleet.lifecycle.docs import REGENERATE, render_states_markdown

STATES_MD = Path(__file__).resolve().parents[2] / "docs" / "states.md"


def test_states_page_matches_the_code() -> None:
    committed = STATES_MD.read_text(encoding="utf-8") if STATES_MD.exists() else ""
    assert committed == render_states_markdown(), (
        f"{STATES_MD} is out of date with src/jobfleet/lifecycle: run `{REGENERATE}`"
    )


def test_the_page_names_every_state_op_and_event() -> None:
    page = render_states_markdown()
    for name in [*JobState, *RunState, *EventType]:
        assert f"`{name.value}`" in page, name
    for op in Op:
        assert f" : {op.value} / " in page, op
