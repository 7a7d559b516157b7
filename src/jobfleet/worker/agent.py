"""The worker agent: takes leases, starts runs, kills on orders, reports in batches, heartbeats.

It talks to the server through a `Link`: in `jobfleet up` the store itself (in-process, no HTTP
round trip per transition); on a fleet an HTTP link with the same methods.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Literal, Protocol

from jobfleet.protocol import Assignment, Capacity, Checkpoint, Finished, ReportResult, Started
from jobfleet.runfiles import RunFiles
from jobfleet.worker.checkpoints import CheckpointWatcher
from jobfleet.worker.executor import Executor
from jobfleet.worker.isolation import Isolation
from jobfleet.worker.isolation.gpus import GpuPool
from jobfleet.worker.ledger import Ledger

log = logging.getLogger("jobfleet.worker")
FLUSH_EVERY = 128  # report after this many starts ...
FLUSH_SECONDS = 0.05  # ... or this long, whichever comes first
BUSY_WINDOW = 0.2  # seconds since the last big report during which the worker counts as busy
BUSY_BATCH = 32  # a report of this many runs is "big"; a lone job never waits to coalesce
COALESCE = 0.01  # how long a busy worker gathers exits before it reports


class Link(Protocol):
    def register_worker(
        self,
        name: str,
        shard: str,
        capacity: Capacity,
        *,
        labels: dict[str, str] | None = ...,
        info: dict[str, Any] | None = ...,
    ) -> str: ...

    def heartbeat(self, name: str, *, lease_timeout: float) -> None: ...

    def assignments(self, worker: str, *, exclude: set[str] | None = ...) -> list[Assignment]: ...

    def orders(self, worker: str) -> dict[str, Literal["cancel", "preempt"]]: ...

    def report(
        self,
        worker: str,
        started: list[Started],
        finished: list[Finished],
        checkpoints: list[Checkpoint] | None = ...,
    ) -> ReportResult: ...


class Worker:
    def __init__(
        self,
        link: Link,
        files: RunFiles,
        *,
        name: str,
        shard: str,
        capacity: Capacity,
        lease_timeout: float,
        labels: dict[str, str] | None = None,
        grace: float = 10.0,
        isolation: Isolation | None = None,
        gpus: GpuPool | None = None,
        log_limit: int = 64 * 2**20,
    ) -> None:
        self.link = link
        self.name = name
        self.shard = shard
        self.capacity = capacity
        self.labels = labels or {}
        self.lease_timeout = lease_timeout
        self.ledger = Ledger(files.ledger(name))
        self.isolation = isolation or Isolation.plain()
        self.gpus = gpus or GpuPool([])
        self.executor = Executor(
            files,
            self._on_exit,
            grace=grace,
            ledger=self.ledger,
            isolation=self.isolation,
            gpus=self.gpus,
            log_limit=log_limit,
        )
        self._done: queue.SimpleQueue[Finished] = queue.SimpleQueue()
        self._known: set[str] = set()
        self._fencing: dict[str, int] = {}  # running run id -> its lease's fencing token
        self.checkpoints = CheckpointWatcher(files)
        self._last_report = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jobfleet-worker", daemon=True)

    def start(self) -> None:
        killed = self.ledger.reap_leftovers()
        if killed:
            log.warning(
                "killed %d process groups left by an earlier run of this worker", len(killed)
            )
        swept = self.isolation.sweep()
        if swept:
            log.warning("removed %d run cgroups left by an earlier run of this worker", swept)
        weak = self.isolation.weaknesses()
        if weak:  # said at start, where the default log level shows it
            log.warning("worker %s runs jobs with weaker isolation: %s", self.name, "; ".join(weak))
        log.info("worker %s isolation: %s", self.name, self.isolation.info())
        self.link.register_worker(
            self.name, self.shard, self.capacity, labels=self.labels, info=self.info()
        )
        self._thread.start()

    def info(self) -> dict[str, Any]:
        """What the worker advertises beside its capacity (workers.info)."""
        return {"isolation": self.isolation.info(), "gpu_devices": self.gpus.devices}

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop taking work and kill what runs. The server sees the runs as lost at restart."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self.executor.shutdown()
        self.ledger.close()

    def _on_exit(self, result: Finished) -> None:
        self._done.put(result)
        self._wake.set()

    def _loop(self) -> None:
        interval = max(0.05, self.lease_timeout / 3)
        next_beat = time.monotonic() + interval
        while not self._stop.is_set():
            self._wake.wait(timeout=max(0.0, next_beat - time.monotonic()))
            if time.monotonic() - self._last_report < BUSY_WINDOW:
                self._stop.wait(COALESCE)  # busy: batch the next report (see scheduler)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._cycle()
                if time.monotonic() >= next_beat:
                    self.link.heartbeat(self.name, lease_timeout=self.lease_timeout)
                    next_beat = time.monotonic() + interval
            except Exception:  # the loop must survive a database hiccup
                log.exception("worker cycle failed; retrying")
                self._stop.wait(0.5)
                self._wake.set()

    def _cycle(self) -> None:
        started: list[Started] = []
        finished: list[Finished] = []
        flushed = time.monotonic()
        for a in self.link.assignments(self.name, exclude=self._known):
            self._known.add(a.run_id)
            failed = self.executor.start(a)
            if failed is None:
                self._fencing[a.run_id] = a.fencing
                started.append(Started(a.run_id, a.fencing, time.time()))
            else:
                finished.append(failed)
            if len(started) >= FLUSH_EVERY or time.monotonic() - flushed > FLUSH_SECONDS:
                # Report as we go: the scheduler sees runs (and freed room) sooner.
                self._flush(started, finished)
                started, finished, flushed = [], [], time.monotonic()
        running = self.executor.running()
        for run_id, kind in self.link.orders(self.name).items():
            if run_id in running:
                self.executor.kill(run_id, kind)
        self._flush(started, finished)

    def _flush(self, started: list[Started], finished: list[Finished]) -> None:
        while not self._done.empty():
            finished.append(self._done.get())
        checkpoints = self._checkpoints(finished)
        if started or finished or checkpoints:
            self._report(started, finished, checkpoints)

    def _checkpoints(self, finished: list[Finished]) -> list[Checkpoint]:
        """Checkpoints written since the last look: of the ended runs, and of running ones."""
        ended = [self.checkpoints.final(f.run_id, f.fencing) for f in finished]
        for f in finished:
            self._fencing.pop(f.run_id, None)
        return [c for c in ended if c is not None] + self.checkpoints.scan(self._fencing)

    def _report(
        self, started: list[Started], finished: list[Finished], checkpoints: list[Checkpoint]
    ) -> None:
        if checkpoints:
            result = self.link.report(self.name, started, finished, checkpoints=checkpoints)
        else:  # a link that predates checkpoints still works
            result = self.link.report(self.name, started, finished)
        if len(started) + len(finished) >= BUSY_BATCH:
            self._last_report = time.monotonic()
        for f in finished:
            self._known.discard(f.run_id)
        for run_id, why in result.refused.items():
            if run_id in self.executor.running():
                log.warning("run %s is no longer ours (%s): killing it", run_id, why)
                self.executor.kill(run_id, "cancel")
            self._known.discard(run_id)
            self._fencing.pop(run_id, None)
