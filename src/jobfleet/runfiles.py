"""Where a run's files live under the data directory: logs, termination log, working dir.

Shared by the worker (writes) and the API (serves logs), which on `jobfleet up` share a disk.
Files are grouped in folders named by the first characters of the run id (a time bucket of a
few minutes, since ids start with a timestamp), so a run costs one `mkdir` (its working dir):

    logs/<bucket>/<run_id>.stdout.log, .stderr.log, .termination.log, .checkpoint.json
    work/<bucket>/<run_id>/     the run's working directory (unless the job names one)
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path
from typing import BinaryIO, Literal

Stream = Literal["stdout", "stderr"]
BUCKET = 6


class RunFiles:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.absolute()  # jobs get these paths; their cwd is elsewhere
        data_dir = self.data_dir
        self.logs = data_dir / "logs"
        self.work = data_dir / "work"
        self._made: set[Path] = set()
        self._lock = threading.Lock()

    def _bucket(self, root: Path, run_id: str) -> Path:
        return root / run_id[:BUCKET]

    def log(self, run_id: str, stream: Stream) -> Path:
        return self._bucket(self.logs, run_id) / f"{run_id}.{stream}.log"

    def termination_log(self, run_id: str) -> Path:
        return self._bucket(self.logs, run_id) / f"{run_id}.termination.log"

    def checkpoint(self, run_id: str) -> Path:
        return self._bucket(self.logs, run_id) / f"{run_id}.checkpoint.json"

    def work_dir(self, run_id: str) -> Path:
        return self._bucket(self.work, run_id) / run_id

    def ledger(self, worker: str) -> Path:
        """The worker's ledger of process groups (see worker/ledger.py)."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in worker)
        return self.data_dir / "workers" / f"{safe}.ledger"

    def prepare(self, run_id: str, *, work_dir: bool) -> None:
        """Create the folders a run needs (the buckets once, the working dir each time)."""
        for root in (self.logs, self.work):
            bucket = self._bucket(root, run_id)
            if bucket not in self._made:
                bucket.mkdir(parents=True, exist_ok=True, mode=0o711)  # passable, not listable
                with self._lock:
                    self._made.add(bucket)
        if work_dir:
            os.mkdir(self.work_dir(run_id))


def open_job_file(path: os.PathLike[str] | str) -> BinaryIO:
    """Open for reading a file a job wrote (its termination log, its checkpoint) that the worker
    reads: only a regular file, never through a symbolic link, and never blocking (a job may
    leave a FIFO there: an open would wait for ever). OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
