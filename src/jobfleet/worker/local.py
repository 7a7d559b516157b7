"""The local worker of `jobfleet up`, in a child process of its own.

Why a process: spawning and reaping jobs and reporting on them is CPU work that would share one
GIL with the scheduler and the API. In a child it runs on the other core. It opens the same
database (SQLite in WAL mode or PostgreSQL) and talks to it through the store, like the
in-process worker; the two processes wake each other with doorbells (semaphores) instead of
polling.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.context
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from jobfleet.config import Settings
from jobfleet.datadir import identity
from jobfleet.errors import Conflict
from jobfleet.logs import setup_logging
from jobfleet.protocol import Capacity
from jobfleet.runfiles import RunFiles
from jobfleet.store import Store
from jobfleet.store.wakeups import SCHEDULER_KINDS
from jobfleet.wiring import store_from_settings
from jobfleet.worker.agent import Worker
from jobfleet.worker.guard import start_guard
from jobfleet.worker.isolation import worker_dir
from jobfleet.worker.setup import execution_parts


class Doorbell:
    """A wake-up from one process to another that never blocks the process that rings.

    Not a multiprocessing Event: its set() waits until every waiter has woken, so it waits for
    ever once a waiter died waiting (`up` or its worker process killed with SIGKILL): the
    survivor's thread hung there. A semaphore keeps no such count: ring() is one sem_post.
    """

    def __init__(self, ctx: multiprocessing.context.SpawnContext) -> None:
        self._sem = ctx.Semaphore(0)

    def ring(self) -> None:
        with contextlib.suppress(ValueError):  # at its maximum count: it is rung already
            self._sem.release()

    def wait(self, timeout: float) -> bool:
        """Whether it rang (before `timeout`); every ring so far is answered."""
        rung = self._sem.acquire(True, timeout)
        while rung and self._sem.acquire(False):
            pass
        return rung


REFUSED = 3  # the child's exit status when its registration is refused: not restarted


def relay(bell: Doorbell, action: Callable[[], None], stop: threading.Event) -> None:
    """Call `action` each time another process rings `bell`, until `stop` is set."""
    while not stop.is_set():
        if bell.wait(timeout=1.0):
            action()


def local_name(settings: Settings) -> str:
    """The name of `up`'s worker."""
    return settings.worker.name or f"local-{os.uname().nodename}"


def build_worker(settings: Settings, store: Store, files: RunFiles, capacity: Capacity) -> Worker:
    name = local_name(settings)
    return Worker(
        store,
        files,
        name=name,
        shard=settings.worker.shard,
        capacity=capacity,
        lease_timeout=settings.lease_timeout,
        info={"hostname": os.uname().nodename, "pid": os.getpid()},
        identity=identity(files.data_dir),
        **execution_parts(settings, name, files),
    )


def child_main(
    settings_json: str,
    database_url: str,
    data_dir: str,
    capacity: tuple[int, int, int],
    wake_me: Doorbell,
    wake_parent: Doorbell,
    stop: Doorbell,
    wake_scheduler: Doorbell | None = None,
) -> None:
    """Entry point of the child: run the worker until `stop` is set or the parent is gone."""
    from jobfleet.runtime import exit_now

    signalled: list[int] = []  # a handler may not touch `stop`: it could hold its lock
    signal.signal(signal.SIGTERM, lambda signum, _frame: signalled.append(signum))
    # Ctrl-C reaches the whole process group: `up` stops this process itself (`stop`), in
    # its order, so SIGINT is ignored here (else the parent would see it die and replace it).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent as it spawned us, not os.getppid() now: if `up` died while this process was
    # starting, getppid() is already init's and the parent's death would go unnoticed.
    parent = multiprocessing.parent_process()
    settings = Settings.model_validate_json(settings_json)
    setup_logging(settings.log_format)
    store = store_from_settings(database_url, settings)
    store.subscribe(wake_parent.ring)  # the SSE streams and the deliverer: every kind
    if wake_scheduler is not None:  # the scheduler: not for a report of starts only
        store.subscribe(wake_scheduler.ring, kinds=SCHEDULER_KINDS)
    files = RunFiles(Path(data_dir))
    worker = build_worker(settings, store, files, Capacity(*capacity))
    where = worker_dir(worker.name, str(files.data_dir.resolve()))
    guard = start_guard(files.ledger(worker.name), worker.isolation, where)  # see guard.py
    try:
        worker.start()
    except Conflict as exc:  # its name is a live worker's, of another identity
        logging.getLogger("jobfleet").error("the worker cannot register: %s", exc)
        guard.close()
        store.close()
        exit_now(REFUSED)
    relaying = threading.Event()
    threading.Thread(target=relay, args=(wake_me, worker.wake, relaying), daemon=True).start()
    while not stop.wait(timeout=0.2):
        if signalled or parent is None or not parent.is_alive():  # told to stop, or orphaned
            break
    relaying.set()
    worker.stop()
    guard.close()
    store.close()
    exit_now(0)  # nothing left to tear down that matters (see runtime.exit_now)


class WorkerProcess:
    """The parent's handle on the child: start, wake, stop."""

    def __init__(
        self, settings: Settings, database_url: str, data_dir: Path, capacity: Capacity
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.wake_child = Doorbell(ctx)
        self.wake_parent = Doorbell(ctx)
        self.wake_scheduler = Doorbell(ctx)
        self.stop_event = Doorbell(ctx)
        self._relay_stop = threading.Event()
        self.process = ctx.Process(
            target=child_main,
            name="jobfleet-worker",
            args=(
                settings.model_dump_json(),
                database_url,
                str(data_dir),
                (capacity.cpu_milli, capacity.memory, capacity.gpu),
                self.wake_child,
                self.wake_parent,
                self.stop_event,
                self.wake_scheduler,
            ),
            daemon=False,
        )

    def start(
        self,
        on_child_commit: Callable[[], None],
        on_scheduler_work: Callable[[], None] | None = None,
    ) -> None:
        """`on_child_commit` after each of the child's commits with events (any kind);
        `on_scheduler_work` only after those the scheduler must hear of (not starts only)."""
        # Ctrl-C reaches the whole process group: the child ignores SIGINT (from its start, so
        # one pressed while it still imports is no KeyboardInterrupt traceback either).
        main = threading.current_thread() is threading.main_thread()
        before = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            self.process.start()
        finally:
            if before is not None:
                signal.signal(signal.SIGINT, before)
        relays = [(self.wake_parent, on_child_commit, "jobfleet-worker-relay")]
        if on_scheduler_work is not None:
            relays.append((self.wake_scheduler, on_scheduler_work, "jobfleet-scheduler-relay"))
        for event, action, name in relays:
            threading.Thread(
                target=relay, args=(event, action, self._relay_stop), name=name, daemon=True
            ).start()

    def wake(self) -> None:
        self.wake_child.ring()

    def stop(self, timeout: float = 60.0) -> None:
        """Ask the child to stop (it kills its runs), wait, and make sure it is gone."""
        self.stop_event.ring()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._relay_stop.set()
        with contextlib.suppress(ValueError):
            self.process.close()
