"""The worker agent: takes leases, starts runs, kills on orders, reports in batches, heartbeats.

It talks to the server through a `Link`: in `jobfleet up` the store itself (in-process, no HTTP
round trip per transition); on a fleet an HTTP link with the same methods.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from jobfleet.errors import Conflict, NotFound
from jobfleet.protocol import (
    Assignment,
    Capacity,
    Checkpoint,
    Finished,
    ReportResult,
    Started,
    Sync,
)
from jobfleet.runfiles import RunFiles
from jobfleet.worker.checkpoints import CheckpointWatcher
from jobfleet.worker.executor import Executor
from jobfleet.worker.isolation import Isolation
from jobfleet.worker.isolation.gpus import GpuPool
from jobfleet.worker.ledger import Ledger
from jobfleet.worker.outcome import start_error
from jobfleet.worker.runas import RunAs
from jobfleet.worker.shipper import LogShipper, NoShipping

log = logging.getLogger("jobfleet.worker")
FLUSH_EVERY = 128  # report after this many starts ...
FLUSH_SECONDS = 0.05  # ... or this long, whichever comes first
BUSY_WINDOW = 0.2  # seconds since the last big report during which the worker counts as busy
BUSY_BATCH = 32  # a report of this many runs is "big"; a lone job never waits to coalesce
COALESCE = 0.01  # how long a busy worker gathers exits before it reports
# Threads that start runs when a sync brings several: a start mostly waits on the kernel
# (cgroup files, fork/exec of the sandbox), so two overlap well on two cores.
START_THREADS = 2


class Link(Protocol):
    """How a worker talks to the server: the store itself under `up`, HTTP on a fleet."""

    def register_worker(
        self,
        name: str,
        shard: str,
        capacity: Capacity,
        *,
        labels: dict[str, str] | None = ...,
        info: dict[str, Any] | None = ...,
        identity: str | None = ...,
    ) -> str: ...

    def sync(
        self,
        worker: str,
        *,
        incarnation: str | None = ...,
        held: Iterable[str] = ...,
        exclude: Iterable[str] = ...,
        renew: bool = ...,
        lease_timeout: float = ...,
    ) -> Sync: ...

    def report(
        self,
        worker: str,
        started: list[Started],
        finished: list[Finished],
        checkpoints: list[Checkpoint] | None = ...,
    ) -> ReportResult: ...

    def set_worker_state(
        self, worker: str, state: str, *, incarnation: str | None = ...
    ) -> None: ...


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
        info: dict[str, Any] | None = None,
        max_backoff: float = 0.5,
        poll: float | None = None,
        shipper: LogShipper | None = None,
        identity: str | None = None,
        run_as: RunAs | None = None,
    ) -> None:
        self.link = link
        self.identity = identity  # kept in the data dir (datadir.identity): a restart keeps it
        self.halted: str | None = None  # why the loop stopped on its own (name taken over)
        self.shipper: LogShipper = shipper or NoShipping()  # see worker/shipper.py
        self.name = name
        self.shard = shard
        self.capacity = capacity
        self.labels = labels or {}
        self.max_backoff = max_backoff  # longest wait between retries when the link fails
        self.poll = poll
        self.incarnation: str | None = None
        self.lease_timeout = lease_timeout
        self.ledger = Ledger(files.ledger(name))
        self.isolation = isolation or Isolation.plain()
        self.gpus = gpus or GpuPool([])
        # What the worker advertises beside its capacity (workers.info).
        self.info = {
            **(info or {}),
            "isolation": self.isolation.info(),
            "gpu_devices": self.gpus.devices,
        }
        self.executor = Executor(
            files,
            self._on_exit,
            grace=grace,
            ledger=self.ledger,
            isolation=self.isolation,
            gpus=self.gpus,
            log_limit=log_limit,
            run_as=run_as,
        )
        self._done: queue.SimpleQueue[Finished] = queue.SimpleQueue()
        self._known: set[str] = set()
        self._fencing: dict[str, int] = {}  # running run id -> its lease's fencing token
        self.checkpoints = CheckpointWatcher(files)
        self._last_report = 0.0
        self._unsent: tuple[list[Started], list[Finished]] = ([], [])  # reports to send again
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._starters: ThreadPoolExecutor | None = None
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
        log.info("worker %s isolation: %s", self.name, self.isolation.summary())
        self._register()
        self._thread.start()
        self.shipper.start(lambda: dict(self._fencing))

    def _register(self) -> None:
        self.incarnation = self.link.register_worker(
            self.name,
            self.shard,
            self.capacity,
            labels=self.labels,
            info=self.info,
            identity=self.identity,
        )
        learnt = getattr(self.link, "lease_timeout", None)  # an HTTP link learns the server's
        if isinstance(learnt, int | float) and learnt > 0:
            self.lease_timeout = float(learnt)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop taking work and kill what runs. The server sees the runs as lost at restart."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        if self._starters is not None:
            self._starters.shutdown(wait=True)
        self.shipper.stop()
        self.executor.shutdown()
        self.ledger.close()

    def _on_exit(self, result: Finished) -> None:
        self._done.put(result)
        self._wake.set()

    def _loop(self) -> None:
        interval = max(0.05, self.lease_timeout / 3)
        next_beat = 0.0  # the first sync renews at once
        failures = 0
        while not self._stop.is_set():
            self._wake.wait(timeout=max(0.0, min(next_beat, self._next_poll) - time.monotonic()))
            if time.monotonic() - self._last_report < BUSY_WINDOW:
                self._stop.wait(COALESCE)  # busy: batch the next report (see scheduler)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                renew = time.monotonic() >= next_beat
                self._cycle(renew)
                if renew:
                    next_beat = time.monotonic() + interval
                failures = 0
            except NotFound:
                log.warning("the server no longer knows this worker: registering again")
                self._retry_after(failures := failures + 1, self._register)
            except Conflict as exc:
                log.error("%s: stopping", exc)
                self.halted = str(exc)
                self._stop.set()
            except Exception as exc:  # the loop must survive a database or network hiccup
                log.warning("worker cycle failed (%s); retrying", exc)
                self._retry_after(failures := failures + 1)

    @property
    def _next_poll(self) -> float:
        """A worker the store cannot wake (HTTP) asks every `poll` seconds."""
        return time.monotonic() + self.poll if self.poll else float("inf")

    def _retry_after(self, failures: int, then: Any = None) -> None:
        self._stop.wait(min(self.max_backoff, 0.1 * 2**failures))
        self._wake.set()
        if then is not None and not self._stop.is_set():
            try:
                then()
            except Exception as exc:
                log.warning("worker could not register (%s); retrying", exc)

    def _cycle(self, renew: bool) -> None:
        sync = self.link.sync(
            self.name,
            incarnation=self.incarnation,
            held=self.executor.running(),
            exclude=self._known,
            renew=renew,
            lease_timeout=self.lease_timeout,
        )
        self._reconcile(sync)
        started: list[Started] = []
        finished: list[Finished] = []
        flushed = time.monotonic()
        for a, failed in self._start_all(sync.assignments):
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
        for run_id, kind in sync.orders.items():
            if run_id in running:
                self.executor.kill(run_id, kind)
        self._flush(started, finished)

    def _start_all(
        self, assignments: list[Assignment]
    ) -> Iterator[tuple[Assignment, Finished | None]]:
        """Start each assignment; yields (assignment, START_ERROR result or None) in order.
        One run starts right here; several start from START_THREADS threads."""
        for a in assignments:
            self._known.add(a.run_id)
        if len(assignments) < 2:
            for a in assignments:
                yield a, self._start(a)
            return
        if self._starters is None:
            self._starters = ThreadPoolExecutor(START_THREADS, thread_name_prefix="jobfleet-start")
        yield from zip(assignments, self._starters.map(self._start, assignments), strict=True)

    def _start(self, a: Assignment) -> Finished | None:
        """The executor's answer; START_ERROR if even that failed: one job never stops the loop."""
        try:
            return self.executor.start(a)
        except Exception as exc:
            log.exception("run %s could not be started", a.run_id)
            return start_error(a.run_id, a.fencing, exc)

    def _reconcile(self, sync: Sync) -> None:
        """Kill what the server says is no longer ours (our lease expired while we were cut off)."""
        for run_id in sync.stop:
            log.warning("run %s is no longer ours (its lease expired): killing it", run_id)
            self.executor.kill(run_id, "cancel")

    def _flush(self, started: list[Started], finished: list[Finished]) -> None:
        while not self._done.empty():
            finished.append(self._done.get())
        started = self._unsent[0] + started
        finished = self._unsent[1] + finished
        self._unsent = ([], [])
        try:  # the whole log reaches the server before the end does
            if finished:
                self.shipper.ship({f.run_id: f.fencing for f in finished}, final=True)
        except Exception:
            self._unsent = (started, finished)
            raise
        checkpoints = self._checkpoints(finished)
        if started or finished or checkpoints:
            try:
                self._report(started, finished, checkpoints)
            except Exception:
                self._unsent = (started, finished)  # keep them: sent again on the next cycle
                raise

    def _checkpoints(self, finished: list[Finished]) -> list[Checkpoint]:
        """Checkpoints written since the last look: of the ended runs, and of running ones."""
        ended: list[Checkpoint | None] = []
        try:  # a job's checkpoint file must never cost the reports of the runs
            ended = [self.checkpoints.final(f.run_id, f.fencing) for f in finished]
        except Exception:
            log.exception("reading checkpoints failed; they are skipped this time")
        for f in finished:
            self._fencing.pop(f.run_id, None)
        try:
            running = self.checkpoints.scan(self._fencing)
        except Exception:
            log.exception("reading checkpoints failed; they are skipped this time")
            running = []
        return [c for c in ended if c is not None] + running

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
            else:
                log.warning("report on run %s refused: %s", run_id, why)
            self._known.discard(run_id)
            self._fencing.pop(run_id, None)

    # -- drain ------------------------------------------------------------------------------

    def drain(self, timeout: float) -> None:
        """Take no new leases; let running jobs finish for `timeout` seconds, then evict the
        rest (SIGTERM, grace, SIGKILL; reported as EVICTED); report all; deregister; stop."""
        log.warning("draining: no new leases; waiting up to %gs for running jobs", timeout)
        self._call_state("DRAINING")
        deadline = time.monotonic() + timeout
        while self.executor.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = self.executor.running()
        for run_id in left:
            log.warning("drain timeout: evicting run %s", run_id)
            self.executor.kill(run_id, "evict")
        deadline = time.monotonic() + self.executor.grace + 5
        while self.executor.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        if self._starters is not None:
            self._starters.shutdown(wait=True)
        self.executor.shutdown()  # joins the reaper: every exit is in the queue now
        self._final_report()
        self.shipper.stop()
        self._call_state("OFFLINE")
        self.ledger.close()

    def _final_report(self, attempts: int = 20) -> None:
        for i in range(attempts):
            try:
                self._flush([], [])
                return
            except Exception as exc:
                log.warning("final report failed (%s); retrying", exc)
                time.sleep(min(2.0, 0.1 * 2**i))
        log.error("could not send the final report: the server will see these runs as lost")

    def _call_state(self, state: str) -> None:
        try:
            self.link.set_worker_state(self.name, state, incarnation=self.incarnation)
        except Exception as exc:
            log.warning("could not tell the server this worker is %s: %s", state, exc)
