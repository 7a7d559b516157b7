"""Retention's thread: delete finished jobs whose `ttl_after_finished` has passed.

Its own thread with short transactions, so it never stalls the scheduler: at most
`retention.batch` jobs per transaction, a short pause between batches, then it sleeps
`retention.interval`. Files of the deleted runs (logs, termination log, checkpoint file, and
the working directory jobfleet made) are removed after the transaction commits.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from contextlib import suppress

from jobfleet import metrics
from jobfleet.config import Settings
from jobfleet.runfiles import RunFiles
from jobfleet.store import Store
from jobfleet.store.retention import Deleted

log = logging.getLogger("jobfleet.retention")
PAUSE = 0.05  # seconds between two batches: let other writers in


class Retention:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        files: RunFiles,
        *,
        before_delete: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        # Called before a batch is deleted: lets the event-derived metrics read the events
        # they have not seen yet, so deleted jobs still count.
        self.before_delete = before_delete
        self.default = settings.ttl_after_finished
        self.interval = settings.retention.interval
        self.batch = settings.retention.batch
        self.files = files
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jobfleet-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                log.exception("retention pass failed; retrying later")

    def run_once(self) -> int:
        """Delete every job that has expired, batch by batch; returns how many."""
        total = 0
        queue_ttls = self.store.queue_ttls()
        while not self._stop.is_set():
            ids = self.store.expired_jobs(
                default=self.default, queue_ttls=queue_ttls, limit=self.batch
            )
            if not ids:
                break
            if self.before_delete is not None:
                self.before_delete()
            deleted = self.store.delete_jobs(ids)
            self._count(deleted)
            self._remove_files(deleted)
            total += deleted.counts.get("jobs", 0)
            if not deleted.counts.get("jobs") or len(ids) < self.batch or self._stop.wait(PAUSE):
                break
        if total:
            log.info("retention deleted %d finished jobs", total, extra={"deleted_jobs": total})
        return total

    @staticmethod
    def _count(deleted: Deleted) -> None:
        for kind, n in deleted.counts.items():
            if n:
                metrics.RETENTION_DELETED.labels(kind).inc(n)

    def _remove_files(self, deleted: Deleted) -> None:
        removed = 0
        for run_id, own_dir in deleted.runs:
            paths = [
                self.files.log(run_id, "stdout"),
                self.files.log(run_id, "stderr"),
                self.files.termination_log(run_id),
                self.files.checkpoint(run_id),
            ]
            for path in paths:
                with suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
            if not own_dir:
                shutil.rmtree(self.files.work_dir(run_id), ignore_errors=True)
        if removed:
            metrics.RETENTION_DELETED.labels("files").inc(removed)
