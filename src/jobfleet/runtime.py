"""`jobfleet up`: server, scheduler and a local worker in one process, on one machine."""

from __future__ import annotations

import logging
import multiprocessing.util
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

import uvicorn

from jobfleet import datadir, metrics
from jobfleet.callbacks.deliverer import Deliverer
from jobfleet.config import Settings
from jobfleet.datadir import identity
from jobfleet.housekeeping import Retention
from jobfleet.logs import setup_logging
from jobfleet.protocol import Capacity
from jobfleet.runfiles import RunFiles
from jobfleet.scheduling.loop import Scheduler
from jobfleet.server.app import create_app
from jobfleet.store import Store
from jobfleet.store.cycle import ClassInfo
from jobfleet.store.outbox_write import CALLBACK
from jobfleet.store.wakeups import SCHEDULER_KINDS, WORKER_KINDS
from jobfleet.wiring import store_from_settings
from jobfleet.worker import runas
from jobfleet.worker.agent import Worker
from jobfleet.worker.isolation.gpus import detect_gpus
from jobfleet.worker.local import REFUSED, WorkerProcess, build_worker, local_name

log = logging.getLogger("jobfleet")
TOKEN_FILE = "admin-token"


def default_data_dir() -> Path:
    """$XDG_DATA_HOME/jobfleet, else ~/.local/share/jobfleet; /var/lib/jobfleet for root (its
    jobs run as another user, who must be able to pass through to their own files)."""
    base = os.environ.get("XDG_DATA_HOME")
    if not base and os.geteuid() == 0:
        return Path("/var/lib/jobfleet")
    return Path(base or os.path.expanduser("~/.local/share")) / "jobfleet"


def database_url(settings: Settings, data_dir: Path) -> str:
    return settings.database or f"sqlite:///{data_dir / 'jobfleet.db'}"


def open_store(settings: Settings, data_dir: Path) -> Store:
    """Open the store, migrate it, and make sure configured queues and defaults exist."""
    if not settings.database:  # the embedded SQLite file: 0600, and so its WAL and SHM
        db = datadir.private_file(datadir.private_dir(data_dir) / "jobfleet.db")
        for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            if extra.exists():
                os.chmod(extra, 0o600)
    store = store_from_settings(database_url(settings, data_dir), settings)
    store.migrate()
    with store.exclusive():  # servers starting together take turns
        store.ensure_defaults(shard=settings.worker.shard)
        for q in settings.queues:
            config = q.model_dump(mode="json", exclude={"name", "weight"}, exclude_none=True)
            store.upsert_queue(q.name, weight=q.weight, config=config)
    return store


@dataclass
class AdminToken:
    token: str | None
    created: bool
    path: Path


def admin_token(store: Store, data_dir: Path) -> AdminToken:
    """JOBFLEET_ADMIN_TOKEN if set; else the one kept in the data dir; else a new one. Servers
    starting together on one database take turns (one makes the admin principal)."""
    with store.exclusive():
        return _admin_token(store, data_dir)


def _admin_token(store: Store, data_dir: Path) -> AdminToken:
    path = data_dir / TOKEN_FILE
    env = os.environ.get("JOBFLEET_ADMIN_TOKEN")
    if env:
        store.ensure_token("admin", env, admin=True)
        return AdminToken(env, False, path)
    if path.exists():
        token = path.read_text().strip()
        store.ensure_token("admin", token, admin=True)
        return AdminToken(token, False, path)
    if store.has_admin_token():
        return AdminToken(None, False, path)  # made elsewhere (a shared database)
    token = store.create_token("admin", admin=True)
    datadir.private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return AdminToken(token, True, path)


def priority_classes(settings: Settings) -> dict[str, ClassInfo]:
    """The configured priority classes as the scheduler uses them."""
    return {c.name: ClassInfo(c.priority, c.preemptible) for c in settings.priority_classes}


def detect_capacity(settings: Settings) -> Capacity:
    w = settings.worker
    cpu = w.cpu if w.cpu is not None else float(os.cpu_count() or 1)
    memory = w.memory if w.memory is not None else _total_memory()
    gpu = w.gpu if w.gpu is not None else len(detect_gpus(w.gpu_devices))
    return Capacity(int(cpu * 1000), memory, gpu)


def _total_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30


class LocalStack:
    """Scheduler, local worker and API app over one store: what `up` runs (and tests start).

    `worker_process=True` (what `up` uses) runs the worker in a child process, so job
    handling and scheduling use both cores; False keeps it in a thread (quicker to start).
    """

    def __init__(
        self, settings: Settings, data_dir: Path, store: Store, *, worker_process: bool = False
    ) -> None:
        self.store = store
        self.files = RunFiles(data_dir)
        self.scheduler = Scheduler(
            store,
            shards=[settings.worker.shard],
            lease_timeout=settings.lease_timeout,
            on_cycle=metrics.observe_cycle,
            reroute_after=settings.reroute_after,
            priority_classes=priority_classes(settings),
        )
        self.app = create_app(store, settings, self.files)
        store.subscribe(self.scheduler.wake, kinds=SCHEDULER_KINDS)
        # Callbacks and retention: threads of their own, so they never slow scheduling.
        self.deliverer = Deliverer(store, settings.callbacks)
        store.subscribe(self.deliverer.wake, kinds=[CALLBACK])
        self.retention = Retention(
            store, settings, self.files, before_delete=self.app.state.metrics.counters.catch_up
        )
        capacity = detect_capacity(settings)
        self.worker: Worker | None = None
        self.child: WorkerProcess | None = None
        self._stopping = threading.Event()
        self._child_args = (settings, store.url, data_dir, capacity)
        if worker_process:
            self.child = WorkerProcess(*self._child_args)
            store.subscribe(self._wake_child, kinds=WORKER_KINDS)
        else:
            self.worker = build_worker(settings, store, self.files, capacity)
            store.subscribe(self.worker.wake, kinds=WORKER_KINDS)

    def _wake_child(self) -> None:
        if self.child is not None:
            self.child.wake()

    def _watch_child(self) -> None:
        """If the worker process dies, say so and start a new one (its runs are requeued)."""
        while not self._stopping.wait(1.0):
            child = self.child
            if child is None or child.process.is_alive() or self.app.state.shutdown.closed:
                continue  # (a signal to the whole group may stop it before we stop it)
            if child.process.exitcode == REFUSED:
                log.error("jobfleet runs no worker: its registration was refused (see above)")
                self.child = None
                continue
            log.error(
                "the worker process exited (code %s); starting a new one", child.process.exitcode
            )
            self.child = WorkerProcess(*self._child_args)
            self.child.start(self._on_child_commit, self.scheduler.wake)

    def _on_child_commit(self) -> None:
        # The scheduler is woken by its own relay: not by a report of starts only.
        self.deliverer.wake()  # the child may have written outbox rows (a terminal event)
        self.app.state.services.broadcaster.notify()

    def start(self) -> None:
        if self.child is not None:
            # The previous `up`'s worker registration (same identity) is retired before the
            # scheduler starts: nothing is leased to it while the new worker process starts.
            self.store.retire_worker(local_name(self._child_args[0]), identity(self.files.data_dir))
            self.child.start(self._on_child_commit, self.scheduler.wake)
            threading.Thread(target=self._watch_child, name="jobfleet-watch", daemon=True).start()
        if self.worker is not None:
            self.worker.start()
        self.scheduler.start()
        self.deliverer.start()
        self.retention.start()

    def stop(self) -> None:
        self._stopping.set()
        self.scheduler.stop()
        self.retention.stop()
        self.deliverer.stop()
        if self.worker is not None:
            self.worker.stop()
        if self.child is not None:
            self.child.stop()


class _ForegroundServer(uvicorn.Server):
    """uvicorn, minus re-raising SIGTERM/SIGINT after its shutdown: we have ours to do; and on
    the signal, the app's open streams end (server/app.py `Shutdown`) so that the graceful
    shutdown has nothing to wait for."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        shutdown = getattr(getattr(self.config.app, "state", None), "shutdown", None)
        if shutdown is not None:
            shutdown.begin()
        super().handle_exit(sig, frame)

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        handlers = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)


def run_up(settings: Settings, data_dir: Path, *, save_profile: bool = True) -> None:
    """Run everything in the foreground until SIGINT/SIGTERM, then shut down cleanly."""
    setup_logging(settings.log_format)
    held = datadir.lock(data_dir, "jobfleet up")  # before anything: a second `up` stops here
    run_as = runas.resolve(settings.worker.run_as)  # refused here, not in the worker process
    if run_as is not None:
        runas.prepare_data_dir(data_dir, run_as)
    store = open_store(settings, data_dir)
    token = admin_token(store, data_dir)
    url = f"http://{settings.host}:{settings.port}"
    stack = LocalStack(settings, data_dir, store, worker_process=True)
    server = _ForegroundServer(
        uvicorn.Config(
            stack.app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            log_config=None,  # uvicorn's records go through setup_logging's handler
            access_log=False,
            timeout_graceful_shutdown=3,
        )
    )
    stack.start()
    _banner(url, token, data_dir, store, save_profile, settings)
    try:
        server.run()
    finally:
        say("jobfleet: shutting down…", settings)
        stack.stop()
        store.close()
        held.release()
        say("jobfleet: stopped", settings)


def exit_now(code: int = 0) -> NoReturn:
    """Leave at once after a clean stop (state saved, threads stopped, store closed): the
    interpreter's teardown of the server's modules does nothing we need and takes a second
    or more on a busy machine, which a Ctrl-C should not wait for. multiprocessing's own exit
    hook still runs: it releases the semaphores of the worker process's events."""
    multiprocessing.util._exit_function()  # type: ignore[attr-defined]
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def say(text: str, settings: Settings) -> None:
    """A message for the person who started `up`: plain text, or a log record in JSON mode."""
    if settings.log_format == "json":
        log.info(text)
    else:
        print(text, file=sys.stderr, flush=True)


def _banner(
    url: str, token: AdminToken, data_dir: Path, store: Store, save: bool, settings: Settings
) -> None:
    from jobfleet.client.profile import save_profile

    if save and token.token:
        save_profile(url, token.token)
    lines = [
        f"jobfleet is up on {url}  (store: {store.backend}, data: {data_dir})",
        f"  API docs: {url}/docs",
        f"  dashboard: {url}/ui  (sign in with `jobfleet auth token`)",
    ]
    if token.created:
        lines.append(f"  admin token (shown once, kept in {token.path}): {token.token}")
    elif token.token is None:
        lines.append(
            "  admin token: made by another server on this database (JOBFLEET_ADMIN_TOKEN)"
        )
    lines.append("  try: jobfleet submit --wait -- echo hello")
    say("\n".join(lines), settings)
