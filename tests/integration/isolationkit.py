"""Drive a real `Executor` (real processes, cgroups, namespaces) without a server or database."""

from __future__ import annotations

import itertools
import os
import queue
import time
from pathlib import Path
from typing import Any

import pytest

from jobfleet.models import JobSpec
from jobfleet.protocol import Assignment, Finished
from jobfleet.runfiles import RunFiles
from jobfleet.worker.executor import Executor
from jobfleet.worker.isolation import Isolation, worker_dir
from jobfleet.worker.logpump import strip_timestamps
from tests.conftest import IN_CI

_ids = itertools.count(1)


def full_isolation(tmp_path: Path, **kw: Any) -> Isolation:
    """The strongest isolation this machine has; skip (fail under CI=true) if it is not full."""
    iso = Isolation.detect(worker=worker_dir("test", str(tmp_path)), **kw)
    missing = [
        what
        for what, ok in (
            ("a cgroup backend", iso.backend.name.startswith("cgroup")),
            ("PID namespaces", iso.namespaces.pid),
            ("network namespaces", iso.namespaces.net),
        )
        if not ok
    ]
    if missing:
        if IN_CI:
            pytest.fail(f"this machine lacks {', '.join(missing)}")
        pytest.skip(f"this machine lacks {', '.join(missing)}")
    return iso


class Runner:
    def __init__(self, tmp_path: Path, **kw: Any) -> None:
        self.files = RunFiles(tmp_path / "data")
        self.done: queue.Queue[Finished] = queue.Queue()
        self.results: dict[str, Finished] = {}
        kw.setdefault("grace", 2.0)
        self.executor = Executor(self.files, self.done.put, **kw)

    def start(self, command: list[str] | str, **spec: Any) -> str:
        """Start a run of a job with this spec; returns the run id (the run may have failed)."""
        n = next(_ids)
        job_id = f"JOB{os.getpid()}X{n:05d}"
        run_id = f"{job_id}-1"
        stored = JobSpec.model_validate({"command": command, **spec}).stored()
        failed = self.executor.start(Assignment(run_id, job_id, 1, n, stored, time.time() + 60))
        if failed is not None:
            self.results[run_id] = failed
        return run_id

    def wait(self, run_id: str, timeout: float = 30) -> Finished:
        deadline = time.monotonic() + timeout
        while run_id not in self.results:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"run {run_id} did not end within {timeout}s")
            try:
                f = self.done.get(timeout=left)
            except queue.Empty:
                continue
            self.results[f.run_id] = f
        return self.results[run_id]

    def log(self, run_id: str, stream: str = "stdout", *, raw: bool = False) -> str:
        """The run's log as stored (raw: with each line's timestamp) or as the job wrote it."""
        path = self.files.log(run_id, stream)  # type: ignore[arg-type]
        text = path.read_text() if path.exists() else ""
        return text if raw else strip_timestamps(text)

    def close(self) -> None:
        self.executor.shutdown(timeout=10)


def alive(pid: int) -> bool:
    """True if `pid` runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
