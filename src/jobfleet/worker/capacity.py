"""What this machine can offer: CPUs, memory and GPUs, detected (each overridable by a flag).

CPUs: the CPUs this process may run on (`sched_getaffinity`), bounded by a cgroup CPU quota.
Memory: /proc/meminfo's MemTotal, bounded by a cgroup memory limit (v2 or v1). GPUs: the lines
of `nvidia-smi -L`, where the tool is installed; else none.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from jobfleet.protocol import Capacity

CGROUP = Path("/sys/fs/cgroup")
FALLBACK_MEMORY = 4 * 2**30


def detect(cpu: float | None = None, memory: int | None = None, gpu: int | None = None) -> Capacity:
    """The machine's capacity; a value given is used as is."""
    cores = cpu if cpu is not None else detect_cpus()
    return Capacity(
        int(cores * 1000),
        memory if memory is not None else detect_memory(),
        gpu if gpu is not None else detect_gpus(),
    )


def detect_cpus() -> float:
    try:
        n = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        n = float(os.cpu_count() or 1)
    quota = _cpu_quota()
    return min(n, quota) if quota else n


def _cpu_quota() -> float | None:
    """Cores allowed by a cgroup quota (v2 cpu.max, v1 cfs_quota/period), if one is set."""
    v2 = _read(CGROUP / "cpu.max")
    if v2:
        quota, _, period = v2.partition(" ")
        if quota != "max" and period:
            return max(0.001, int(quota) / int(period))
        return None
    quota_v1 = _read(CGROUP / "cpu" / "cpu.cfs_quota_us")
    period_v1 = _read(CGROUP / "cpu" / "cpu.cfs_period_us")
    if quota_v1 and period_v1 and int(quota_v1) > 0:
        return max(0.001, int(quota_v1) / int(period_v1))
    return None


def detect_memory() -> int:
    total = _meminfo_total()
    limit = _memory_limit()
    return min(total, limit) if limit else total


def _meminfo_total() -> int:
    text = _read(Path("/proc/meminfo")) or ""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return FALLBACK_MEMORY


def _memory_limit() -> int | None:
    for path in (CGROUP / "memory.max", CGROUP / "memory" / "memory.limit_in_bytes"):
        raw = _read(path)
        if raw and raw != "max" and raw.isdigit():
            value = int(raw)
            return value if value < 2**60 else None  # v1's "no limit" is a huge number
    return None


def detect_gpus() -> int:
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return 0
    try:
        done = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    if done.returncode != 0:
        return 0
    return sum(1 for line in done.stdout.splitlines() if line.startswith("GPU "))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def describe(c: Capacity) -> str:
    from jobfleet.units import format_memory

    return f"{c.cpu_milli / 1000:g} CPU, {format_memory(c.memory)} memory, {c.gpu} GPUs"
