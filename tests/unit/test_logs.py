"""Structured logs: one JSON object per line with time, level, logger, message and extras."""

from __future__ import annotations

import json
import logging

import pytest

from jobfleet.logs import setup_logging


def test_json_lines_carry_the_standard_and_the_extra_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    try:
        setup_logging("json")
        setup_logging("json")  # a second set-up replaces the handler, no double lines
        logging.getLogger("jobfleet.test").warning("hello %s", "there", extra={"job_id": "J1"})
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("jobfleet.test").exception("failed")
        lines = capsys.readouterr().err.strip().splitlines()
    finally:
        root.handlers[:], root.level = before
    first = json.loads(lines[0])
    assert first["level"] == "WARNING" and first["logger"] == "jobfleet.test"
    assert first["message"] == "hello there" and first["job_id"] == "J1"
    assert first["time"].endswith("Z")
    second = json.loads(lines[1])
    assert "ValueError: boom" in second["exc_info"]
    assert len(lines) == 2


def test_text_format_is_one_readable_line(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    try:
        setup_logging("text")
        logging.getLogger("jobfleet.test").info("plain")
        err = capsys.readouterr().err
    finally:
        root.handlers[:], root.level = before
    assert "INFO jobfleet.test: plain" in err
