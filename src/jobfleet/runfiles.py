"""Where a run's files live under the data directory: logs, termination log, working dir.

Shared by the worker (writes) and the API (serves logs), which on `jobfleet up` share a disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Stream = Literal["stdout", "stderr"]


class RunFiles:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "runs"

    def run_dir(self, run_id: str) -> Path:
        job_id, _, attempt = run_id.rpartition("-")
        return self.root / job_id / attempt

    def log(self, run_id: str, stream: Stream) -> Path:
        return self.run_dir(run_id) / f"{stream}.log"

    def termination_log(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "termination.log"

    def checkpoint(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "checkpoint.json"

    def work_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "work"
