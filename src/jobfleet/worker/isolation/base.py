"""What every isolation backend offers the executor: limits in, a per-run sandbox out.

A backend (cgroup v2, cgroup v1, rlimits, none) turns a run's `Limits` into a `RunCgroup` (or
nothing) before the process starts; the namespace layer (namespaces.py) wraps the argv. The
executor only ever talks to `Isolation` (isolation/__init__.py), never to a backend directly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jobfleet.errors import JobfleetError

DEFAULT_PIDS = 4096


class IsolationError(JobfleetError):
    """An isolation backend that was asked for is not usable on this machine."""

    title = "Isolation unavailable"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one run may use. None means no limit of that kind."""

    memory: int | None = None  # bytes
    cpu_milli: int | None = None  # 1000 = one core
    pids: int | None = DEFAULT_PIDS
    timeout: float | None = None  # only the rlimit backend uses it (CPU seconds)


class RunCgroup(Protocol):
    """One run's control group (one directory per controller on v1, one on v2)."""

    path: str

    def procs_files(self) -> list[str]:
        """The files the run's first process writes `0` to, to join before it execs."""
        ...

    def oom_killed(self) -> bool: ...

    def pids(self) -> list[int]: ...

    def remove(self) -> None: ...


class Backend(Protocol):
    name: str

    def features(self) -> dict[str, Any]: ...

    def create(self, run_id: str, limits: Limits) -> RunCgroup | None: ...

    def preexec(self, limits: Limits) -> Callable[[], None] | None: ...

    def sweep(self) -> int:
        """Kill and remove run cgroups an earlier incarnation left; return how many."""
        ...

    def close(self) -> None:
        """Remove the worker's own (now empty) cgroup folder, if it has one."""
        ...


def quota_us(cpu_milli: int, period_us: int) -> int:
    """CPU time per period for `cpu_milli` thousandths of a core (at least 1 ms).

    The period is 1 s rather than the kernel's default 100 ms: a batch job's start-up is a burst
    (an interpreter loading, `unshare` and the init forking), and a job asking for 0.01 core
    would otherwise be throttled for most of each 100 ms period from its first millisecond.
    The rate is the same; only its granularity is coarser.
    """
    return max(1000, cpu_milli * period_us // 1000)


def write(path: Path | str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def read(path: Path | str) -> str:
    with open(path) as f:
        return f.read()


def read_pids(path: Path | str) -> list[int]:
    try:
        return [int(x) for x in read(path).split()]
    except (OSError, ValueError):
        return []


def kill_all(group: RunCgroup, rounds: int = 50) -> None:
    """SIGKILL every process in the cgroup until it is empty (a fork may race one round).

    This is what catches a daemonised grandchild (double fork + setsid leaves the process
    group, not the cgroup). The pids limit bounds how many a fork bomb can make meanwhile.
    """
    for _ in range(rounds):
        pids = group.pids()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)


def rmdir_retry(path: Path, tries: int = 100) -> None:
    """Remove a cgroup directory; killed processes may take a moment to leave it."""
    for _ in range(tries):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.005)
    with contextlib.suppress(OSError):
        path.rmdir()


def own_cgroup(controller: str | None, proc_cgroup: str = "/proc/self/cgroup") -> str:
    """This process's cgroup path for a v1 controller, or the v2 path (controller None)."""
    try:
        lines = read(proc_cgroup).splitlines()
    except OSError:
        return "/"
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        names = ctrls.split(",") if ctrls else []
        if (controller is None and not ctrls) or (controller in names):
            return path or "/"
    return "/"


def safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:96]
