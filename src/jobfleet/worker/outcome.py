"""How a run's end becomes a `Finished` report: outcome, failure condition, message.

Pure apart from reading the termination log / stderr tail. The order of causes: what the
worker did to the run (cancel, deadline, preemption) comes first, then the cgroup's own OOM
counter, then the exit status.
"""

from __future__ import annotations

import os
import signal as signals
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jobfleet.failures import Condition, FailureInfo, bounded_message
from jobfleet.protocol import Finished
from jobfleet.runfiles import open_job_file
from jobfleet.worker.logpump import strip_timestamps

KillReason = Literal["cancel", "preempt", "evict", "deadline", "shutdown"]


@dataclass(frozen=True, slots=True)
class Ending:
    run_id: str
    fencing: int
    code: int  # Popen returncode: negative = killed by that signal
    killed: KillReason | None
    oom: bool
    signal_as_status: bool  # the run had a shell init: 128+N means "killed by N"
    memory: int | None = None
    outputs: list[dict[str, Any]] | None = None


def status(e: Ending) -> tuple[int | None, int | None]:
    """(exit_code, signal) of the run's own process."""
    if e.code < 0:
        return None, -e.code
    if e.signal_as_status and 128 < e.code < 128 + signals.NSIG:
        return None, e.code - 128
    return e.code, None


def result(e: Ending, termination: tuple[Path, Path]) -> Finished:
    now = time.time()
    exit_code, sig = status(e)
    if e.killed == "cancel":
        return Finished(e.run_id, e.fencing, "cancelled", now, exit_code, sig)
    if e.code == 0 and e.killed is None:
        return Finished(e.run_id, e.fencing, "succeeded", now, 0, outputs=e.outputs)
    if e.killed == "deadline":
        condition = Condition.DEADLINE_EXCEEDED
    elif e.killed == "preempt":
        condition = Condition.PREEMPTED
    elif e.killed == "evict":
        condition = Condition.EVICTED
    elif e.oom:
        condition = Condition.OOM_KILLED
    else:
        condition = Condition.EXIT_NONZERO if sig is None else Condition.SIGNALED
    words, source = last_words(*termination)
    failure = FailureInfo(
        condition=condition,
        exit_code=exit_code,
        signal=sig,
        termination_message=words,
        termination_source=source if words else None,
        message=_message(condition, exit_code, sig, e.memory),
    )
    return Finished(e.run_id, e.fencing, "failed", now, exit_code, sig, failure)


def _message(condition: Condition, exit_code: int | None, sig: int | None, mem: int | None) -> str:
    limit = f" of {mem} bytes" if mem else ""
    return {
        Condition.DEADLINE_EXCEEDED: "the run passed its timeout and was killed",
        Condition.PREEMPTED: "the run was preempted (SIGTERM, then SIGKILL after the grace)",
        Condition.EVICTED: "the worker was drained and its drain timeout passed: the run "
        "was evicted (SIGTERM, then SIGKILL after the grace)",
        Condition.OOM_KILLED: f"the run went over its memory limit{limit}; the kernel killed it",
        Condition.SIGNALED: f"the process was killed by signal {sig}",
        Condition.EXIT_NONZERO: f"the process exited with code {exit_code}",
    }[condition]


def termination_message(termination_log: Path, stderr_log: Path) -> str | None:
    """$JOBFLEET_TERMINATION_LOG if the job wrote it, else the tail of stderr (bounded)."""
    return last_words(termination_log, stderr_log)[0]


def last_words(
    termination_log: Path, stderr_log: Path
) -> tuple[str | None, Literal["termination_log", "stderr"]]:
    """The termination message and where it comes from (the termination log, else stderr)."""
    text, cut = _tail(termination_log, 8192)
    if text and text.strip():
        return bounded_message(text.strip(), cut=cut), "termination_log"
    text, cut = _tail(stderr_log, 16384, whole_lines=True)
    text = strip_timestamps(text) if text else None
    if not (text and text.strip()):
        return None, "stderr"
    return bounded_message(text.strip(), cut=cut), "stderr"  # a tail is marked, however short


def _tail(path: Path, limit: int, *, whole_lines: bool = False) -> tuple[str | None, bool]:
    """The last `limit` bytes of the file, and whether anything before them was left out."""
    try:
        with open_job_file(path) as f:  # the job may have left a FIFO there
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return None, False
    if whole_lines and size > limit:  # drop the first, cut, line (its timestamp is gone)
        data = data.partition(b"\n")[2] or data
    return data.decode(errors="replace"), size > limit


def start_error(
    run_id: str, fencing: int, exc: Exception, working_dir: str | None = None
) -> Finished:
    """START_ERROR, saying what could not be used: the working dir, the command, the payload."""
    failure = FailureInfo(condition=Condition.START_ERROR, message=_start_message(exc, working_dir))
    return Finished(run_id, fencing, "failed", time.time(), failure=failure)


def _start_message(exc: Exception, working_dir: str | None) -> str:
    if not isinstance(exc, OSError):
        return str(exc) or type(exc).__name__
    why = exc.strerror or str(exc)
    if working_dir is not None and str(exc.filename) == working_dir:
        return f"working directory {working_dir} is unusable: {why}"
    if isinstance(exc, FileNotFoundError) and exc.filename is not None:
        return f"command not found: {exc.filename}"
    if exc.filename is not None:
        return f"cannot run {exc.filename}: {why}"
    return f"could not start the process: {why}"
