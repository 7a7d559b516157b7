"""`jobfleet server` and `jobfleet scheduler`: the processes of a fleet of machines (§10).

`server` is the API only and keeps no state of its own, so any number of replicas can run
behind a load balancer on one PostgreSQL database. `scheduler` runs master routing, shard
placement and housekeeping; several may run, one leads (elected through the database, see
`store/leader.py`), the others stand by and take over within a second or two of its death.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import uvicorn

from jobfleet import metrics
from jobfleet.callbacks.deliverer import Deliverer
from jobfleet.config import Settings
from jobfleet.datadir import private_dir
from jobfleet.errors import ConfigError
from jobfleet.housekeeping import Retention
from jobfleet.runfiles import RunFiles
from jobfleet.runtime import (
    _ForegroundServer,
    admin_token,
    database_url,
    open_store,
    priority_classes,
)
from jobfleet.scheduling.loop import Scheduler
from jobfleet.server.app import create_app
from jobfleet.store import Store
from jobfleet.store.leader import Leadership
from jobfleet.store.outbox_write import CALLBACK
from jobfleet.store.wakeups import SCHEDULER_KINDS, WORKER_KINDS, Wakeups

log = logging.getLogger("jobfleet")
# A scheduler in its own process is woken by the API through LISTEN/NOTIFY on PostgreSQL (on
# SQLite it is not); it also polls, in case a notification was lost.
SCHEDULER_POLL = 0.25


def prepare_store(settings: Settings, data_dir: Path) -> Store:
    """Open and migrate the store; configured queues and shards exist afterwards."""
    store = open_store(settings, data_dir)
    store.ensure_shards({s.name: dict(s.labels) for s in settings.shards})
    return store


def run_server(settings: Settings, data_dir: Path) -> None:
    """The API in the foreground until SIGINT/SIGTERM."""
    private_dir(data_dir)
    store = prepare_store(settings, data_dir)
    token = admin_token(store, data_dir)
    app = create_app(store, settings, RunFiles(data_dir))
    # Callbacks go out from every server: the events that need them are written here (worker
    # reports, submissions); claims keep two servers from sending the same delivery.
    deliverer = Deliverer(store, settings.callbacks)
    store.subscribe(deliverer.wake, kinds=[CALLBACK])
    deliverer.start()
    wakeups = None
    if store.backend == "postgresql":
        # What the scheduler (another process) writes: streams see it at once, workers' long
        # polls answer at once; and the scheduler hears of submissions and reports.
        svc = app.state.services
        wakeups = Wakeups(store)
        wakeups.subscribe(svc.broadcaster.notify)
        wakeups.subscribe(svc.leases.notify, kinds=WORKER_KINDS)
        wakeups.subscribe(deliverer.wake, kinds=[CALLBACK])
        wakeups.start()
    server = _ForegroundServer(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=3,
        )
    )
    url = f"http://{settings.host}:{settings.port}"
    lines = [f"jobfleet server on {url}  (store: {store.backend})"]
    if token.created:
        lines.append(f"  admin token (shown once, kept in {token.path}): {token.token}")
    print("\n".join(lines), file=sys.stderr, flush=True)
    try:
        server.run()
    finally:
        if wakeups is not None:
            wakeups.stop()
        deliverer.stop()
        store.close()
        print("jobfleet: stopped", file=sys.stderr, flush=True)


def run_scheduler(settings: Settings, data_dir: Path) -> None:
    """Lead or stand by until SIGINT/SIGTERM; a standby tries to take the lead every cycle."""
    if not settings.database and not data_dir.exists():
        raise ConfigError("no --database given and no data directory: pass --database URL")
    store = prepare_store(settings, data_dir)
    leadership = Leadership(store, "scheduler")
    scheduler = Scheduler(
        store,
        shards=[s.name for s in settings.shards],
        lease_timeout=settings.lease_timeout,
        reroute_after=settings.reroute_after,
        gate=leadership.ensure,
        poll=SCHEDULER_POLL,
        on_cycle=metrics.observe_cycle,
        priority_classes=priority_classes(settings),
    )
    retention = Retention(store, settings, RunFiles(data_dir))
    wakeups = None
    if store.backend == "postgresql":  # woken by the API's submissions and workers' reports
        wakeups = Wakeups(store)
        wakeups.subscribe(scheduler.wake, kinds=SCHEDULER_KINDS)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(
        f"jobfleet scheduler on {store.backend} ({database_url(settings, data_dir)}): "
        "leads when it holds the lock, else stands by",
        file=sys.stderr,
        flush=True,
    )
    scheduler.start()
    retention.start()
    if wakeups is not None:
        wakeups.start()
    try:
        stop.wait()
    finally:
        if wakeups is not None:
            wakeups.stop()
        retention.stop()
        scheduler.stop()
        leadership.release()
        store.close()
        print("jobfleet: stopped", file=sys.stderr, flush=True)
