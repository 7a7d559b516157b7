"""Runs commands: one process group and working directory per run, watched through pidfds.

One reaper thread waits on every running process at once (a pidfd per process in a selector),
enforces deadlines (SIGTERM, grace, SIGKILL of the whole group) and kills on request. When a
process exits its whole group is killed too, so no orphan outlives its run.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jobfleet.failures import Condition, FailureInfo, bounded_message
from jobfleet.protocol import Assignment, Finished
from jobfleet.runfiles import RunFiles
from jobfleet.worker.ledger import Ledger

KillReason = Literal["cancel", "preempt", "evict", "deadline", "shutdown"]


@dataclass
class _Proc:
    run_id: str
    fencing: int
    popen: subprocess.Popen[bytes]
    pidfd: int
    killed: KillReason | None = None
    kill_at: float | None = None  # when SIGKILL follows the SIGTERM


@dataclass(order=True)
class _Timer:
    at: float
    run_id: str = field(compare=False)
    action: Literal["deadline", "sigkill"] = field(compare=False)


class Executor:
    def __init__(
        self,
        files: RunFiles,
        on_exit: Callable[[Finished], None],
        *,
        grace: float = 10.0,
        base_env: dict[str, str] | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.files = files
        self.ledger = ledger
        self.on_exit = on_exit
        self.grace = grace
        env = dict(os.environ if base_env is None else base_env)
        # A job must not inherit jobfleet's own credentials or settings.
        self.base_env = {k: v for k, v in env.items() if not k.startswith("JOBFLEET_")}
        self._procs: dict[str, _Proc] = {}
        self._timers: list[_Timer] = []
        self._lock = threading.Lock()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = False
        self._thread = threading.Thread(target=self._reap_loop, name="jobfleet-reaper", daemon=True)
        self._thread.start()

    # -- starting ---------------------------------------------------------------------------

    def start(self, a: Assignment) -> Finished | None:
        """Start the run's process. Returns a START_ERROR result if it could not start."""
        spec = a.spec
        try:
            own = spec.get("working_dir")
            self.files.prepare(a.run_id, work_dir=not own)
            cwd = Path(own) if own else self.files.work_dir(a.run_id)
            env = self._env(a)
            with (
                open(self.files.log(a.run_id, "stdout"), "ab") as out,
                open(self.files.log(a.run_id, "stderr"), "ab") as err,
            ):
                popen = subprocess.Popen(
                    _argv(spec),
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            return _start_error(a, exc)
        pidfd = os.pidfd_open(popen.pid)
        if self.ledger is not None:
            self.ledger.started(popen.pid)
        proc = _Proc(a.run_id, a.fencing, popen, pidfd)
        with self._lock:
            self._procs[a.run_id] = proc
            self._sel.register(pidfd, selectors.EVENT_READ, a.run_id)
            timeout = spec.get("timeout")
            if timeout:
                heapq.heappush(self._timers, _Timer(time.time() + timeout, a.run_id, "deadline"))
        self._wake()
        return None

    def _env(self, a: Assignment) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(a.spec.get("env") or {})
        env.update(
            JOBFLEET_JOB_ID=a.job_id,
            JOBFLEET_RUN_ID=a.run_id,
            JOBFLEET_ATTEMPT=str(a.attempt),
            JOBFLEET_TERMINATION_LOG=str(self.files.termination_log(a.run_id)),
            JOBFLEET_CHECKPOINT_FILE=str(self.files.checkpoint(a.run_id)),
        )
        return env

    # -- stopping ---------------------------------------------------------------------------

    def kill(self, run_id: str, reason: KillReason) -> bool:
        """SIGTERM the run's process group now, SIGKILL after the grace period."""
        with self._lock:
            proc = self._procs.get(run_id)
            if proc is None or proc.killed is not None:
                return proc is not None
            proc.killed = reason
            self._signal(proc, signal.SIGTERM)
            heapq.heappush(self._timers, _Timer(time.time() + self.grace, run_id, "sigkill"))
        self._wake()
        return True

    def running(self) -> set[str]:
        with self._lock:
            return set(self._procs)

    def shutdown(self, timeout: float | None = None) -> None:
        """Kill every run (SIGTERM, then SIGKILL after the grace period) and stop the reaper."""
        for run_id in self.running():
            self.kill(run_id, "shutdown")
        deadline = time.time() + (self.grace + 5 if timeout is None else timeout)
        while self.running() and time.time() < deadline:
            time.sleep(0.02)
        with self._lock:
            for proc in self._procs.values():
                self._signal(proc, signal.SIGKILL)
            self._stop = True
        self._wake()
        self._thread.join(timeout=5)

    @staticmethod
    def _signal(proc: _Proc, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.popen.pid, sig)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    # -- the reaper -------------------------------------------------------------------------

    def _reap_loop(self) -> None:
        while True:
            with self._lock:
                if self._stop:
                    return
                timeout = max(0.0, self._timers[0].at - time.time()) if self._timers else 1.0
            for key, _ in self._sel.select(timeout=min(timeout, 1.0)):
                if key.data is None:
                    os.read(self._wake_r, 4096)
                else:
                    self._reap(str(key.data))
            self._fire_timers()

    def _fire_timers(self) -> None:
        now = time.time()
        with self._lock:
            while self._timers and self._timers[0].at <= now:
                timer = heapq.heappop(self._timers)
                proc = self._procs.get(timer.run_id)
                if proc is None:
                    continue
                if timer.action == "deadline" and proc.killed is None:
                    proc.killed = "deadline"
                    self._signal(proc, signal.SIGTERM)
                    heapq.heappush(self._timers, _Timer(now + self.grace, proc.run_id, "sigkill"))
                elif timer.action == "sigkill":
                    self._signal(proc, signal.SIGKILL)

    def _reap(self, run_id: str) -> None:
        with self._lock:
            proc = self._procs.pop(run_id, None)
            if proc is None:
                return
            self._sel.unregister(proc.pidfd)
        code = proc.popen.wait()
        os.close(proc.pidfd)
        self._signal(proc, signal.SIGKILL)  # whatever the job left behind in its group
        if self.ledger is not None:
            self.ledger.ended(proc.popen.pid)
        if proc.killed != "shutdown":
            self.on_exit(self._result(proc, code))

    def _result(self, proc: _Proc, code: int) -> Finished:
        now = time.time()
        exit_code, sig = (code, None) if code >= 0 else (None, -code)
        if proc.killed == "cancel":
            return Finished(proc.run_id, proc.fencing, "cancelled", now, exit_code, sig)
        if code == 0 and proc.killed is None:
            return Finished(proc.run_id, proc.fencing, "succeeded", now, 0)
        if proc.killed == "deadline":
            condition = Condition.DEADLINE_EXCEEDED
        elif proc.killed == "preempt":
            condition = Condition.PREEMPTED
        elif proc.killed == "evict":
            condition = Condition.EVICTED
        else:
            condition = Condition.EXIT_NONZERO if sig is None else Condition.SIGNALED
        failure = self._failure(proc, condition, exit_code, sig)
        return Finished(proc.run_id, proc.fencing, "failed", now, exit_code, sig, failure)

    def _failure(
        self, proc: _Proc, condition: Condition, exit_code: int | None, sig: int | None
    ) -> FailureInfo:
        message = {
            Condition.DEADLINE_EXCEEDED: "the run passed its timeout and was killed",
            Condition.PREEMPTED: "the run was preempted (SIGTERM, then SIGKILL after the grace)",
            Condition.EVICTED: "the worker was drained and its drain timeout passed: the run "
            "was evicted (SIGTERM, then SIGKILL after the grace)",
            Condition.SIGNALED: f"the process was killed by signal {sig}",
            Condition.EXIT_NONZERO: f"the process exited with code {exit_code}",
        }[condition]
        return FailureInfo(
            condition=condition,
            exit_code=exit_code,
            signal=sig,
            termination_message=self._termination_message(proc.run_id),
            message=message,
        )

    def _termination_message(self, run_id: str) -> str | None:
        """$JOBFLEET_TERMINATION_LOG if the job wrote it, else the tail of stderr (bounded)."""
        for path in (self.files.termination_log(run_id), self.files.log(run_id, "stderr")):
            text = _tail(path, 8192)
            if text and text.strip():
                return bounded_message(text.strip())
        return None


def _argv(spec: dict[str, Any]) -> list[str]:
    command = spec["command"]
    if spec.get("shell"):
        text = command if isinstance(command, str) else " ".join(str(c) for c in command)
        return ["/bin/sh", "-c", text]
    return [str(c) for c in command]


def _tail(path: Path, limit: int) -> str | None:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode(errors="replace")
    except OSError:
        return None


def _start_error(a: Assignment, exc: OSError) -> Finished:
    what = {
        FileNotFoundError: "command or working directory not found",
        PermissionError: "permission denied",
        NotADirectoryError: "working directory is not a directory",
    }.get(type(exc), "could not start the process")
    failure = FailureInfo(
        condition=Condition.START_ERROR,
        message=f"{what}: {exc.strerror or exc} ({exc.filename or ''})".strip(),
    )
    return Finished(a.run_id, a.fencing, "failed", time.time(), failure=failure)
