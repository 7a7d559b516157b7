"""The weak fallback where no cgroup is usable: per-process rlimits set before exec.

Memory: RLIMIT_DATA (heap and private mappings, which is what malloc uses since Linux 4.7;
RLIMIT_AS would also count address space merely reserved, which breaks JVMs, Go and CUDA).
CPU: RLIMIT_CPU of `cpu * timeout` seconds when the job has a timeout (a rate cannot be
limited with rlimits, only a total). Each process of the run gets its own budget — a run that
forks can use more in all. Not enforced: a pids limit (RLIMIT_NPROC counts every process of
the user, and root ignores it), OOM detection (an allocation simply fails inside the job),
and catching daemonised grandchildren (the process group and the PID namespace still do).
"""

from __future__ import annotations

import math
import resource
from collections.abc import Callable
from typing import Any

from jobfleet.worker.isolation.base import Limits, RunCgroup


class Rlimits:
    name = "rlimits"

    def features(self) -> dict[str, Any]:
        return {
            "memory": "RLIMIT_DATA per process",
            "cpu": "RLIMIT_CPU (total, with a timeout)",
            "pids": False,
            "oom_detection": False,
        }

    def create(self, run_id: str, limits: Limits) -> RunCgroup | None:
        return None

    def preexec(self, limits: Limits) -> Callable[[], None] | None:
        values: list[tuple[int, int]] = []
        if limits.memory is not None:
            values.append((resource.RLIMIT_DATA, limits.memory))
        if limits.cpu_milli is not None and limits.timeout is not None:
            seconds = math.ceil(limits.cpu_milli / 1000 * limits.timeout) + 1
            values.append((resource.RLIMIT_CPU, seconds))
        if not values:
            return None

        def apply() -> None:  # runs in the child between fork and exec
            for kind, value in values:
                hard = value + 5 if kind == resource.RLIMIT_CPU else value
                resource.setrlimit(kind, (value, hard))

        return apply

    def sweep(self) -> int:
        return 0

    def close(self) -> None:
        return None


class NoLimits:
    """`worker.isolation: none`: a process group and a working directory, nothing enforced."""

    name = "none"

    def features(self) -> dict[str, Any]:
        return {"memory": False, "cpu": False, "pids": False, "oom_detection": False}

    def create(self, run_id: str, limits: Limits) -> RunCgroup | None:
        return None

    def preexec(self, limits: Limits) -> Callable[[], None] | None:
        return None

    def sweep(self) -> int:
        return 0

    def close(self) -> None:
        return None
