"""GPU assignment: each run asking for N GPUs gets N device indices no other running run has.

Devices come from `nvidia-smi -L` where it exists, else from `worker.gpu_devices`, else from
$JOBFLEET_FAKE_GPUS (a comma-separated list, for tests and for machines without nvidia-smi).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading

_GPU_LINE = re.compile(r"^GPU (\d+):", re.MULTILINE)


def detect_gpus(configured: list[str] | None = None) -> list[str]:
    fake = os.environ.get("JOBFLEET_FAKE_GPUS")
    if fake is not None:
        return [d.strip() for d in fake.split(",") if d.strip()]
    if configured is not None:
        return list(configured)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return _GPU_LINE.findall(out)


def gpu_devices(count: int | None, configured: list[str] | None) -> list[str]:
    """The devices to hand out: those found, cut to `worker.gpu` when that is set; with
    `worker.gpu` set and none found, indices 0..gpu-1 (the operator knows best)."""
    found = detect_gpus(configured)
    if count is None:
        return found
    return found[:count] if found else [str(i) for i in range(count)]


class GpuPool:
    """Free and held devices; thread-safe. A released device goes back to the front."""

    def __init__(self, devices: list[str]) -> None:
        self.devices = list(devices)
        self._free = list(devices)
        self._held: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def acquire(self, run_id: str, count: int) -> list[str]:
        """Take `count` free devices for the run. Raises LookupError when too few are free."""
        if count <= 0:
            return []
        with self._lock:
            if len(self._free) < count:
                raise LookupError(
                    f"the job asks for {count} GPUs and this worker has {len(self._free)} free "
                    f"of {len(self.devices)}"
                )
            taken, self._free = self._free[:count], self._free[count:]
            self._held[run_id] = taken
            return taken

    def release(self, run_id: str) -> None:
        with self._lock:
            taken = self._held.pop(run_id, [])
            order = {d: i for i, d in enumerate(self.devices)}
            self._free = sorted(self._free + taken, key=order.__getitem__)

    def env(self, devices: list[str]) -> dict[str, str]:
        """What the run sees. A run with no GPU on a GPU worker sees none ("" / "void")."""
        if not self.devices:
            return {}
        text = ",".join(devices)
        return {"CUDA_VISIBLE_DEVICES": text, "NVIDIA_VISIBLE_DEVICES": text or "void"}
