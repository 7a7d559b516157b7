"""Picks up what runs write to $JOBFLEET_CHECKPOINT_FILE, to report it with the next report.

A file is read when its (mtime, size) changed since it was last read: while the run runs (at
most once every SCAN_EVERY seconds over all runs, so a worker with many runs does not stat
them all on every report) and once more when the run ends. A file that is too large or is not
JSON is skipped with a warning: a job's bad checkpoint never stops the worker.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping

from jobfleet.protocol import CHECKPOINT_LIMIT, Checkpoint
from jobfleet.runfiles import RunFiles, open_job_file

log = logging.getLogger("jobfleet.worker")
SCAN_EVERY = 1.0


class CheckpointWatcher:
    def __init__(self, files: RunFiles) -> None:
        self.files = files
        self._seen: dict[str, tuple[int, int]] = {}  # run id -> (mtime_ns, size) last read
        self._next_scan = 0.0

    def scan(self, running: Mapping[str, int]) -> list[Checkpoint]:
        """New checkpoints of running runs (run id -> fencing), if it is time to look."""
        now = time.monotonic()
        if now < self._next_scan or not running:
            return []
        self._next_scan = now + SCAN_EVERY
        found = (self.read(run_id, fencing) for run_id, fencing in running.items())
        return [c for c in found if c is not None]

    def final(self, run_id: str, fencing: int) -> Checkpoint | None:
        """The run ended: its last checkpoint if it changed; forget the run."""
        try:
            return self.read(run_id, fencing)
        finally:
            self._seen.pop(run_id, None)

    def read(self, run_id: str, fencing: int) -> Checkpoint | None:
        path = self.files.checkpoint(run_id)
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_mtime_ns, st.st_size)
        if self._seen.get(run_id) == key or st.st_size == 0:  # empty: made for the job
            return None
        self._seen[run_id] = key
        if st.st_size > CHECKPOINT_LIMIT:
            log.warning(
                "run %s: checkpoint of %d bytes ignored (at most %d)",
                run_id,
                st.st_size,
                CHECKPOINT_LIMIT,
            )
            return None
        return _load(run_id, fencing, path, st.st_mtime)


def _load(run_id: str, fencing: int, path: os.PathLike[str], mtime: float) -> Checkpoint | None:
    try:
        with open_job_file(path) as f:  # a FIFO or a link the job left there is refused
            raw = f.read(CHECKPOINT_LIMIT + 1)
        text = raw.decode().strip()  # `echo '{...}' > file` adds a newline: not part of it
        json.loads(text)
    except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError
        log.warning("run %s: checkpoint ignored, not valid JSON: %s", run_id, exc)
        return None
    if len(raw) > CHECKPOINT_LIMIT:
        return None  # it grew between stat and read; the next look catches it
    return Checkpoint(run_id, fencing, text, mtime)
