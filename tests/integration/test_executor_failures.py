"""The executor's side of failures, with real processes: eviction, start errors, the
checkpoint handed to a later attempt, and bounded termination messages."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobfleet.protocol import Assignment, Finished
from jobfleet.runfiles import RunFiles
from jobfleet.worker.executor import Executor
from jobfleet.worker.logpump import strip_timestamps
from tests.helpers import wait_for


class Harness:
    def __init__(self, root: Path) -> None:
        self.files = RunFiles(root)
        self.done: queue.SimpleQueue[Finished] = queue.SimpleQueue()
        self.executor = Executor(self.files, self.done.put, grace=1.0)
        self.n = 0

    def assignment(
        self, command: list[str], checkpoint: str | None = None, **spec: Any
    ) -> Assignment:
        self.n += 1
        return Assignment(
            f"job{self.n:06d}-1",
            "job",
            1,
            self.n,
            {"command": command, **spec},
            time.time() + 60,
            checkpoint,
        )

    def run(self, a: Assignment) -> Finished:
        failed = self.executor.start(a)
        return failed or self.done.get(timeout=20)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.executor.shutdown(timeout=5)


def test_an_evicted_run_fails_with_condition_evicted(h: Harness) -> None:
    a = h.assignment(["sleep", "60"])
    assert h.executor.start(a) is None
    assert h.executor.kill(a.run_id, "evict")
    f = h.done.get(timeout=20)
    assert f.outcome == "failed" and f.failure is not None
    assert f.failure.condition == "EVICTED"
    assert "evicted" in f.failure.message


def test_start_errors_say_what_was_unusable(h: Harness, tmp_path: Path) -> None:
    missing = h.run(h.assignment(["/no/such/cmd"]))
    assert missing.failure is not None and missing.failure.condition == "START_ERROR"
    assert missing.failure.message == "command not found: /no/such/cmd"
    not_exec = tmp_path / "script.sh"
    not_exec.write_text("#!/bin/sh\n")
    denied = h.run(h.assignment([str(not_exec)]))
    assert denied.failure is not None and denied.failure.message.startswith(
        f"cannot run {not_exec}"
    )
    bad_dir = h.run(h.assignment(["true"], working_dir=str(tmp_path / "nowhere")))
    assert bad_dir.failure is not None
    assert bad_dir.failure.message.startswith(
        f"working directory {tmp_path / 'nowhere'} is unusable"
    )


def test_the_checkpoint_of_an_earlier_attempt_is_in_the_environment(h: Harness) -> None:
    script = 'printf "%s|%s" "${JOBFLEET_CHECKPOINT-unset}" "$JOBFLEET_CHECKPOINT_FILE"'
    first = h.assignment(["sh", "-c", script])
    later = h.assignment(["sh", "-c", script], checkpoint='{"step": 3}')
    for a, expected in ((first, "unset"), (later, '{"step": 3}')):
        assert h.run(a).outcome == "succeeded"
        log = h.files.log(a.run_id, "stdout")
        out = strip_timestamps(wait_for(log.read_text, what="output"))
        value, path = out.rstrip("\n").split("|")
        assert value == expected
        assert path == str(h.files.checkpoint(a.run_id))


def test_termination_message_is_the_end_of_a_huge_log_in_4_kib(h: Harness) -> None:
    log = '"$JOBFLEET_TERMINATION_LOG"'
    script = f'head -c 2000000 /dev/zero | tr "\\0" z > {log}; echo END >> {log}; exit 4'
    f = h.run(h.assignment(["sh", "-c", script]))
    assert f.failure is not None and f.failure.exit_code == 4
    message = f.failure.termination_message or ""
    assert len(message.encode()) <= 4096 and message.endswith("zzzzEND")
