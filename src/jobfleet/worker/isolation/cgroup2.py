"""cgroup v2 (the unified hierarchy): one directory per run with memory, cpu and pids limits.

Layout: `<mount>/jobfleet/<worker dir>/<run id>`, placed at the top of the hierarchy because
v2's "no internal processes" rule forbids giving children controllers in the cgroup the worker
itself lives in. The controllers are enabled down the path (`+memory +cpu +pids` in each
`cgroup.subtree_control`). Memory: `memory.max` (and `memory.swap.max` 0); CPU: `cpu.max`
"quota period" (1 s); pids: `pids.max`. OOM kills are counted by the kernel in `memory.events`.
Where the kernel has it, `cgroup.kill` kills every process of the run in one write.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobfleet.worker.isolation.base import (
    Limits,
    kill_all,
    quota_us,
    read,
    read_pids,
    rmdir_retry,
    write,
)

NEEDED = ("memory", "cpu", "pids")
PERIOD_US = 1_000_000  # see base.quota_us


def find_mount(mounts: str = "/proc/self/mounts") -> Path | None:
    """Where the cgroup2 filesystem is mounted (/sys/fs/cgroup, or .../unified on hybrids)."""
    try:
        lines = read(mounts).splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) > 2 and parts[2] == "cgroup2":
            return Path(parts[1])
    return None


class V2Group:
    def __init__(self, path: Path) -> None:
        self.dir = path
        self.path = str(path)

    def procs_files(self) -> list[str]:
        return [str(self.dir / "cgroup.procs")]

    def oom_killed(self) -> bool:
        try:
            events = dict(line.split() for line in read(self.dir / "memory.events").splitlines())
        except (OSError, ValueError):
            return False
        return int(events.get("oom_kill", "0")) > 0

    def pids(self) -> list[int]:
        return read_pids(self.dir / "cgroup.procs")

    def remove(self) -> None:
        kill = self.dir / "cgroup.kill"
        if kill.exists():
            with contextlib.suppress(OSError):
                write(kill, "1")
        kill_all(self)
        rmdir_retry(self.dir)


class CgroupV2:
    name = "cgroup2"

    def __init__(self, worker_dir: str, mount: Path | None = None) -> None:
        self.mount = mount or find_mount() or Path("/sys/fs/cgroup")
        self.base = self.mount / "jobfleet" / worker_dir

    def features(self) -> dict[str, Any]:
        return {"memory": True, "cpu": True, "pids": True, "oom_detection": True}

    def probe(self) -> None:
        """Enable the controllers down to our folder, make a limited test cgroup, remove it."""
        available = read(self.mount / "cgroup.controllers").split()
        missing = [c for c in NEEDED if c not in available]
        if missing:
            raise OSError(f"cgroup2 at {self.mount} lacks controllers: {', '.join(missing)}")
        self.base.mkdir(parents=True, exist_ok=True)
        for d in (self.mount, self.mount / "jobfleet", self.base):
            _enable(d)
        self.create("probe", Limits(memory=2**30, cpu_milli=1000, pids=64)).remove()

    def create(self, run_id: str, limits: Limits) -> V2Group:
        path = self.base / run_id
        path.mkdir(exist_ok=True)
        group = V2Group(path)
        try:
            _apply(path, limits)
        except OSError:
            group.remove()
            raise
        return group

    def preexec(self, limits: Limits) -> Callable[[], None] | None:
        return None

    def sweep(self) -> int:
        names = [p for p in self.base.iterdir() if p.is_dir()] if self.base.is_dir() else []
        for p in names:
            V2Group(p).remove()
        return len(names)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.base.rmdir()


def _enable(d: Path) -> None:
    have = read(d / "cgroup.subtree_control").split()
    want = [c for c in NEEDED if c not in have]
    if want:
        write(d / "cgroup.subtree_control", " ".join(f"+{c}" for c in want))


def _apply(path: Path, limits: Limits) -> None:
    if limits.memory is not None:
        write(path / "memory.max", str(limits.memory))
        swap = path / "memory.swap.max"
        if swap.exists():
            with contextlib.suppress(OSError):
                write(swap, "0")
    if limits.cpu_milli is not None:
        write(path / "cpu.max", f"{quota_us(limits.cpu_milli, PERIOD_US)} {PERIOD_US}")
    if limits.pids is not None:
        write(path / "pids.max", str(limits.pids))
