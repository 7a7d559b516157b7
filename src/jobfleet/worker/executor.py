"""Runs commands: one process group, working directory and sandbox per run, watched via pidfds.

One reaper thread waits on every running process at once (a pidfd per process in a selector),
enforces deadlines (SIGTERM, grace, SIGKILL of the whole group) and kills on request. Before a
run starts its payload is fetched, its GPUs assigned and its sandbox prepared (`Isolation`:
a cgroup with the run's limits, PID and network namespaces); its output goes through one shared
log pump. When the process exits its whole group and everything left in its cgroup are killed
and the cgroup removed, so no orphan outlives its run — not even a daemonised grandchild.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jobfleet.protocol import Assignment, Finished
from jobfleet.runfiles import RunFiles
from jobfleet.worker import outcome
from jobfleet.worker.isolation import Isolation, Limits, Prepared
from jobfleet.worker.isolation.gpus import GpuPool
from jobfleet.worker.isolation.namespaces import in_new_network_namespace
from jobfleet.worker.ledger import Ledger
from jobfleet.worker.logpump import LogPump
from jobfleet.worker.outcome import KillReason
from jobfleet.worker.payload import collect_outputs, fetch
from jobfleet.worker.runas import RunAs

__all__ = ["Executor", "KillReason"]


@dataclass
class _Proc:
    run_id: str
    fencing: int
    popen: subprocess.Popen[bytes]
    pidfd: int
    prepared: Prepared
    cwd: Path
    spec: dict[str, Any]
    killed: KillReason | None = None


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
        isolation: Isolation | None = None,
        gpus: GpuPool | None = None,
        log_limit: int = 64 * 2**20,
        payload_timeout: float = 60.0,
        run_as: RunAs | None = None,
    ) -> None:
        self.files = files
        self.run_as = run_as  # None: jobs run as the worker's own user
        self.ledger = ledger
        self.on_exit = on_exit
        self.grace = grace
        self.isolation = isolation or Isolation.plain()
        self.gpus = gpus or GpuPool([])
        self.payload_timeout = payload_timeout
        self.pump = LogPump(log_limit)
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
        """Start the run's process. Returns a START_ERROR result if it could not start, for
        any reason: a run that cannot start must end and free its slot, never stop the loop."""
        spec = a.spec
        prepared: Prepared | None = None
        try:
            own = spec.get("working_dir")
            self.files.prepare(a.run_id, work_dir=not own)
            cwd = Path(own) if own else self.files.work_dir(a.run_id)
            if spec.get("payload_uri"):
                copy = self.run_as.copy_file if self.run_as else None
                fetch(spec["payload_uri"], cwd, timeout=self.payload_timeout, copy_file=copy)
            gpus = self.gpus.acquire(a.run_id, int(spec.get("resources", {}).get("gpu", 0)))
            env = self._env(a, gpus)
            argv = _argv(spec)
            _check_program(argv[0], env, cwd)
            if self.run_as is not None:
                argv = self._as_user(a, argv, env, cwd, made_dir=not own)
            prepared = self.isolation.prepare(
                a.run_id, argv, _limits(spec), str(spec.get("network", "default"))
            )
            popen = self._spawn(a.run_id, prepared, cwd, env)
        except Exception as exc:  # whatever the job caused (a NUL in its env: ValueError)
            self.gpus.release(a.run_id)
            if prepared is not None:
                self.isolation.release(prepared)
            return outcome.start_error(a.run_id, a.fencing, exc, spec.get("working_dir"))
        self._track(a, popen, prepared, cwd)
        return None

    def _spawn(
        self, run_id: str, prepared: Prepared, cwd: Path, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                prepared.argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
                close_fds=True,
                preexec_fn=prepared.preexec,
            )

        try:
            popen = in_new_network_namespace(spawn) if prepared.network_namespace else spawn()
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        self.pump.add(
            run_id,
            {out_r: self.files.log(run_id, "stdout"), err_r: self.files.log(run_id, "stderr")},
        )
        return popen

    def _track(
        self, a: Assignment, popen: subprocess.Popen[bytes], prepared: Prepared, cwd: Path
    ) -> None:
        pidfd = os.pidfd_open(popen.pid)
        if self.ledger is not None:
            self.ledger.started(popen.pid)
        proc = _Proc(a.run_id, a.fencing, popen, pidfd, prepared, cwd, a.spec)
        with self._lock:
            self._procs[a.run_id] = proc
            self._sel.register(pidfd, selectors.EVENT_READ, a.run_id)
            timeout = a.spec.get("timeout")
            if timeout:
                heapq.heappush(self._timers, _Timer(time.time() + timeout, a.run_id, "deadline"))
        self._wake()

    def _as_user(
        self, a: Assignment, argv: list[str], env: dict[str, str], cwd: Path, *, made_dir: bool
    ) -> list[str]:
        """Hand the run's own files to the user it runs as (worker/runas.py); its argv."""
        assert self.run_as is not None
        if made_dir:
            self.run_as.hand_over(cwd)
        self.run_as.own_file(self.files.termination_log(a.run_id))
        self.run_as.own_file(self.files.checkpoint(a.run_id))
        mine = a.spec.get("env") or {}
        env.update({k: v for k, v in self.run_as.env(cwd).items() if k not in mine})
        return self.run_as.wrap(argv)

    def _env(self, a: Assignment, gpus: list[str]) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(a.spec.get("env") or {})
        env.update(self.gpus.env(gpus))
        env.update(
            JOBFLEET_JOB_ID=a.job_id,
            JOBFLEET_RUN_ID=a.run_id,
            JOBFLEET_ATTEMPT=str(a.attempt),
            JOBFLEET_TERMINATION_LOG=str(self.files.termination_log(a.run_id)),
            JOBFLEET_CHECKPOINT_FILE=str(self.files.checkpoint(a.run_id)),
        )
        if a.checkpoint is not None:  # what an earlier attempt saved
            env["JOBFLEET_CHECKPOINT"] = a.checkpoint
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
            leftovers = list(self._procs.values())
            for proc in leftovers:
                self._signal(proc, signal.SIGKILL)
            self._stop = True
        self._wake()
        self._thread.join(timeout=5)
        for proc in leftovers:  # the reaper is gone: remove their cgroups here
            self.isolation.release(proc.prepared)
        self.isolation.close()
        self.pump.stop()

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
        group = proc.prepared.cgroup
        oom = group.oom_killed() if group is not None else False
        self.isolation.release(proc.prepared)  # ... and in its cgroup (setsid escapes a group)
        self.pump.finish(run_id)
        self.gpus.release(run_id)
        if self.ledger is not None:
            self.ledger.ended(proc.popen.pid)
        if proc.killed != "shutdown":
            self.on_exit(self._result(proc, code, oom))

    def _result(self, proc: _Proc, code: int, oom: bool) -> Finished:
        patterns = proc.spec.get("outputs") or []
        outputs = collect_outputs(proc.cwd, patterns) if patterns and code == 0 else None
        ending = outcome.Ending(
            proc.run_id,
            proc.fencing,
            code,
            proc.killed,
            oom,
            proc.prepared.signal_as_status,
            memory=_limits(proc.spec).memory,
            outputs=outputs,
        )
        files = (self.files.termination_log(proc.run_id), self.files.log(proc.run_id, "stderr"))
        return outcome.result(ending, files)


def _argv(spec: dict[str, Any]) -> list[str]:
    command = spec["command"]
    if spec.get("shell"):
        text = command if isinstance(command, str) else " ".join(str(c) for c in command)
        return ["/bin/sh", "-c", text]
    return [str(c) for c in command]


def _limits(spec: dict[str, Any]) -> Limits:
    res = spec.get("resources") or {}
    cpu = res.get("cpu")
    return Limits(
        memory=res.get("memory"),
        cpu_milli=max(1, round(float(cpu) * 1000)) if cpu else None,
        timeout=spec.get("timeout"),
    )


def _check_program(program: str, env: dict[str, str], cwd: Path) -> None:
    """Refuse a missing program here: behind a sandbox's shell init it would only exit 127."""
    if "/" in program:
        path = program if os.path.isabs(program) else os.path.join(cwd, program)
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", program)
        if not os.access(path, os.X_OK):
            raise PermissionError(13, "Permission denied", program)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(2, "No such file or directory", program)
