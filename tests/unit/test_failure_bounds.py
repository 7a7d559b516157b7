"""Bounds on what a failure and a checkpoint may hold, worker avoidance in placement, and the
worker's pick-up of checkpoint files."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from jobfleet.failures import TERMINATION_MESSAGE_LIMIT, Condition, FailureInfo, bounded_message
from jobfleet.protocol import CHECKPOINT_LIMIT
from jobfleet.runfiles import RunFiles
from jobfleet.scheduling.avoid import usable
from jobfleet.scheduling.cycle import lanes_of, plan_cycle
from jobfleet.scheduling.placement import Demand, Room
from jobfleet.worker import checkpoints as cp
from jobfleet.worker.logpump import MAX_LINE, stamp
from jobfleet.worker.outcome import termination_message


def test_termination_message_limit_is_4_kib() -> None:
    assert TERMINATION_MESSAGE_LIMIT == 4096


@pytest.mark.parametrize("char", ["x", "é", "💥"])
def test_bounded_message_keeps_the_end_within_4_kib_of_utf8(char: str) -> None:
    text = char * 100_000 + "last line"
    out = bounded_message(text)
    assert out is not None
    assert len(out.encode()) <= 4096
    assert out.startswith("[…truncated]\n") and out.endswith("last line")


def test_short_messages_are_kept_whole() -> None:
    assert bounded_message("boom") == "boom"
    assert bounded_message("") is None
    f = FailureInfo(condition=Condition.EXIT_NONZERO, message="m", termination_message="t")
    assert f.bounded() is f


def test_failure_bounded_bounds_both_texts() -> None:
    f = FailureInfo(
        condition=Condition.EXIT_NONZERO, message="m" * 5000, termination_message="t" * 9000
    ).bounded()
    assert len(f.message.encode()) <= 1024
    assert len((f.termination_message or "").encode()) <= 4096


@pytest.mark.parametrize("last_chunk", [100, 3000, 20_000, MAX_LINE])
def test_a_stderr_tail_read_from_a_long_log_is_marked_cut(tmp_path: Path, last_chunk: int) -> None:
    # A flood without newlines is stored as stamped lines of at most MAX_LINE bytes; whatever
    # the length of the last one, the message is the log's end and says the rest was cut.
    err = tmp_path / "stderr"
    lines = [b"y" * MAX_LINE] * 3 + [b"y" * last_chunk, b"last words"]
    err.write_bytes(b"".join(stamp() + line + b"\n" for line in lines))
    message = termination_message(tmp_path / "no-termination-log", err)
    assert message is not None and len(message.encode()) <= 4096
    assert message.startswith("[…truncated]\n") and message.endswith("last words")
    assert "Z " not in message  # no timestamp, whole or cut, is left in


def test_a_short_stderr_is_kept_whole_without_a_mark(tmp_path: Path) -> None:
    err = tmp_path / "stderr"
    err.write_bytes(stamp() + b"first\n" + stamp() + b"last words\n")
    assert termination_message(tmp_path / "none", err) == "first\nlast words"


# -- avoidance --------------------------------------------------------------------------------

W = 4000, 8 * 2**30


def rooms(*names: str) -> list[Room]:
    return [Room(n, *W) for n in names]


def test_avoided_workers_are_left_out_when_another_can_hold_the_job() -> None:
    d = Demand("j", 1000, 2**30, avoid=frozenset({"a"}))
    assert [r.worker for r in usable(d, rooms("a", "b"), rooms("a", "b"))] == ["b"]
    plan = plan_cycle(lanes_of([d]), {}, rooms("a", "b"), rooms("a", "b"), "s")
    assert plan.placed == [("j", "b")]


def test_the_job_waits_for_the_other_worker_when_it_is_busy() -> None:
    d = Demand("j", 1000, 2**30, avoid=frozenset({"a"}))
    busy_b = [Room("a", *W), Room("b", 0, 0)]
    plan = plan_cycle(lanes_of([d]), {}, busy_b, rooms("a", "b"), "s")
    assert plan.placed == []
    assert "room" in plan.reasons["j"]


def test_avoidance_yields_when_no_other_worker_could_ever_hold_the_job() -> None:
    d = Demand("j", 3000, 2**30, avoid=frozenset({"a"}))
    small_b = [Room("a", *W), Room("b", 2000, 2**30)]
    assert plan_cycle(lanes_of([d]), {}, small_b, small_b, "s").placed == [("j", "a")]


def test_no_avoid_set_changes_nothing() -> None:
    r = rooms("a", "b")
    assert usable(Demand("j", 1, 1), r, r) is r


# -- the worker's checkpoint pick-up ----------------------------------------------------------


@pytest.fixture
def watcher(tmp_path: Path) -> cp.CheckpointWatcher:
    files = RunFiles(tmp_path)
    files.prepare("run-1", work_dir=False)
    return cp.CheckpointWatcher(files)


def write(w: cp.CheckpointWatcher, text: str | bytes, bump: int = 0) -> None:
    path = w.files.checkpoint("run-1")
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump))


def test_a_written_checkpoint_is_read_once_until_it_changes(watcher: cp.CheckpointWatcher) -> None:
    assert watcher.read("run-1", 7) is None  # nothing written yet
    write(watcher, '{"step": 1}')
    got = watcher.read("run-1", 7)
    assert got is not None and (got.run_id, got.fencing, json.loads(got.value)) == (
        "run-1",
        7,
        {"step": 1},
    )
    assert watcher.read("run-1", 7) is None  # unchanged
    write(watcher, '{"step": 22}', bump=1_000_000)
    again = watcher.final("run-1", 7)
    assert again is not None and json.loads(again.value) == {"step": 22}


@pytest.mark.parametrize(
    "content", ["{not json", b"\xff\xfe", json.dumps("x" * CHECKPOINT_LIMIT)], ids=str
)
def test_bad_checkpoint_files_are_skipped_with_a_warning(
    watcher: cp.CheckpointWatcher, content: str | bytes, caplog: pytest.LogCaptureFixture
) -> None:
    write(watcher, content)
    with caplog.at_level(logging.WARNING, logger="jobfleet.worker"):
        assert watcher.read("run-1", 1) is None
    assert "checkpoint" in caplog.text and "ignored" in caplog.text


def test_scans_of_running_runs_are_rate_limited(watcher: cp.CheckpointWatcher) -> None:
    write(watcher, "[1]")
    assert [c.value for c in watcher.scan({"run-1": 1})] == ["[1]"]
    write(watcher, "[1, 2]", bump=1_000_000)
    assert watcher.scan({"run-1": 1}) == []  # within SCAN_EVERY of the last scan
    final = watcher.final("run-1", 1)  # a run's end is always looked at
    assert final is not None and final.value == "[1, 2]"
