"""The local worker of `jobfleet up`, in a child process of its own.

Why a process: spawning and reaping jobs and reporting on them is CPU work that would share one
GIL with the scheduler and the API. In a child it runs on the other core. It opens the same
database (SQLite in WAL mode or PostgreSQL) and talks to it through the store, like the
in-process worker; the two processes wake each other with shared events instead of polling.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.synchronize
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
from jobfleet.wiring import store_from_settings
from jobfleet.worker.agent import Worker
from jobfleet.worker.guard import start_guard
from jobfleet.worker.isolation import worker_dir
from jobfleet.worker.setup import execution_parts

Event = multiprocessing.synchronize.Event
REFUSED = 3  # the child's exit status when its registration is refused: not restarted


def relay(event: Event, action: Callable[[], None], stop: threading.Event | Event) -> None:
    """Call `action` each time another process sets `event`, until `stop` is set."""
    while not stop.is_set():
        if event.wait(timeout=1.0):
            event.clear()
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
    wake_me: Event,
    wake_parent: Event,
    stop: Event,
) -> None:
    """Entry point of the child: run the worker until `stop` is set or the parent is gone."""
    from jobfleet.runtime import exit_now

    signalled: list[int] = []  # a handler may not touch `stop`: it could hold its lock
    signal.signal(signal.SIGTERM, lambda signum, _frame: signalled.append(signum))
    # Ctrl-C reaches the whole process group: `up` stops this process itself (`stop`), in
    # its order, so SIGINT is ignored here (else the parent would see it die and replace it).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    settings = Settings.model_validate_json(settings_json)
    setup_logging(settings.log_format)
    store = store_from_settings(database_url, settings)
    store.subscribe(wake_parent.set)
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
    threading.Thread(target=relay, args=(wake_me, worker.wake, stop), daemon=True).start()
    while not stop.wait(timeout=0.2):
        if signalled or os.getppid() != parent:  # told to stop, or the parent died
            break
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
        self.wake_child = ctx.Event()
        self.wake_parent = ctx.Event()
        self.stop_event = ctx.Event()
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
            ),
            daemon=False,
        )

    def start(self, on_child_commit: Callable[[], None]) -> None:
        # Ctrl-C reaches the whole process group: the child ignores SIGINT (from its start, so
        # one pressed while it still imports is no KeyboardInterrupt traceback either).
        main = threading.current_thread() is threading.main_thread()
        before = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            self.process.start()
        finally:
            if before is not None:
                signal.signal(signal.SIGINT, before)
        threading.Thread(
            target=relay,
            args=(self.wake_parent, on_child_commit, self._relay_stop),
            name="jobfleet-worker-relay",
            daemon=True,
        ).start()

    def wake(self) -> None:
        self.wake_child.set()

    def stop(self, timeout: float = 60.0) -> None:
        """Ask the child to stop (it kills its runs), wait, and make sure it is gone."""
        self.stop_event.set()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._relay_stop.set()
        with contextlib.suppress(ValueError):
            self.process.close()
