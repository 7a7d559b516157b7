"""cgroup v1: one directory per controller (memory, cpu, pids) for each run.

Layout: `<mount>/<ctrl>/<the worker's own cgroup>/jobfleet/<worker dir>/<run id>`, so a run's
limits nest under whatever limits the worker itself lives in. Memory: `memory.limit_in_bytes`
(and `memory.memsw.limit_in_bytes` where swap accounting exists, so the run cannot swap past it);
CPU: `cpu.cfs_quota_us` over a 1 s period; pids: `pids.max`. The kernel's own OOM kill is
read from `memory.oom_control` (`oom_kill`, Linux >= 4.13), else from `memory.failcnt`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobfleet.worker.isolation.base import (
    Limits,
    kill_all,
    own_cgroup,
    quota_us,
    read,
    read_pids,
    rmdir_retry,
    write,
)

CONTROLLERS = ("memory", "cpu", "pids")
PERIOD_US = 1_000_000  # see base.quota_us


class V1Group:
    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs
        self.path = str(dirs["memory"])

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def oom_killed(self) -> bool:
        mem = self.dirs["memory"]
        try:
            fields = dict(line.split() for line in read(mem / "memory.oom_control").splitlines())
        except (OSError, ValueError):
            fields = {}
        if "oom_kill" in fields:
            return int(fields["oom_kill"]) > 0
        with contextlib.suppress(OSError, ValueError):  # old kernels: the limit was hit
            return int(read(mem / "memory.failcnt")) > 0
        return False

    def pids(self) -> list[int]:
        return read_pids(self.dirs["pids"] / "cgroup.procs") or read_pids(
            self.dirs["memory"] / "cgroup.procs"
        )

    def remove(self) -> None:
        kill_all(self)
        for d in self.dirs.values():
            rmdir_retry(d)


class CgroupV1:
    name = "cgroup1"

    def __init__(self, worker_dir: str, mount: Path = Path("/sys/fs/cgroup")) -> None:
        self.bases = {
            c: mount / c / own_cgroup(c).lstrip("/") / "jobfleet" / worker_dir for c in CONTROLLERS
        }

    def features(self) -> dict[str, Any]:
        return {"memory": True, "cpu": True, "pids": True, "oom_detection": True}

    def probe(self) -> None:
        """Create a test cgroup with every limit set, then remove it. Raises OSError."""
        group = self.create("probe", Limits(memory=2**30, cpu_milli=1000, pids=64))
        group.remove()

    def create(self, run_id: str, limits: Limits) -> V1Group:
        dirs = {c: base / run_id for c, base in self.bases.items()}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        group = V1Group(dirs)
        try:
            _apply(dirs, limits)
        except OSError:
            group.remove()
            raise
        return group

    def preexec(self, limits: Limits) -> Callable[[], None] | None:
        return None

    def sweep(self) -> int:
        found = 0
        base = self.bases["memory"]
        names = [p.name for p in base.iterdir() if p.is_dir()] if base.is_dir() else []
        for name in names:
            V1Group({c: b / name for c, b in self.bases.items()}).remove()
            found += 1
        return found

    def close(self) -> None:
        for base in self.bases.values():
            with contextlib.suppress(OSError):
                base.rmdir()


def _apply(dirs: dict[str, Path], limits: Limits) -> None:
    if limits.memory is not None:
        write(dirs["memory"] / "memory.limit_in_bytes", str(limits.memory))
        memsw = dirs["memory"] / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            with contextlib.suppress(OSError):
                write(memsw, str(limits.memory))
    if limits.cpu_milli is not None:
        write(dirs["cpu"] / "cpu.cfs_period_us", str(PERIOD_US))
        write(dirs["cpu"] / "cpu.cfs_quota_us", str(quota_us(limits.cpu_milli, PERIOD_US)))
    if limits.pids is not None:
        write(dirs["pids"] / "pids.max", str(limits.pids))
