"""`jobfleet worker`: an agent on one machine of a fleet, talking only HTTP to the servers.

It registers (retrying until a server answers), syncs every `worker.poll_interval` (heartbeat
every lease_timeout / 3), runs its leases, and reports; it ships its runs' logs to the server
(worker/shipper.py). SIGTERM (or SIGINT) drains it: no new leases, running jobs get
`worker.drain_timeout` to finish, the rest are evicted; then it deregisters and exits 0. A
second signal evicts at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import jobfleet
from jobfleet import datadir
from jobfleet.config import Settings
from jobfleet.errors import JobfleetError
from jobfleet.runfiles import RunFiles
from jobfleet.worker.agent import Worker
from jobfleet.worker.capacity import describe, detect
from jobfleet.worker.guard import start_guard
from jobfleet.worker.http import HttpLink
from jobfleet.worker.isolation import worker_dir
from jobfleet.worker.setup import execution_parts
from jobfleet.worker.shipper import HttpShipper

log = logging.getLogger("jobfleet.worker")
MAX_BACKOFF = 5.0  # longest wait between attempts while the servers cannot be reached
WAKE_EVERY = 0.05  # the long poll wakes the worker at most this often (seconds)


def worker_name(settings: Settings) -> str:
    return settings.worker.name or socket.gethostname()


def run_worker(settings: Settings, server: str, token: str, data_dir: Path) -> int:
    """Run until drained by a signal; the exit status (0 after a clean drain, 2 when another
    worker took its name over)."""
    held = datadir.lock(data_dir, "jobfleet worker")  # refused before it touches anything
    w = settings.worker
    capacity = detect(w.cpu, w.memory, w.gpu)
    link = HttpLink(server, token)
    name = worker_name(settings)
    signals: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: signals.append(signum))
    files = RunFiles(data_dir)
    worker = Worker(
        link,
        files,
        name=name,
        shard=w.shard,
        capacity=capacity,
        lease_timeout=settings.lease_timeout,
        info={
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "version": jobfleet.__version__,
        },
        max_backoff=MAX_BACKOFF,
        poll=w.poll_interval,
        shipper=HttpShipper(link, files, name),  # its disk is not the server's
        identity=datadir.identity(data_dir),
        **execution_parts(settings, name, files),
    )
    guard = start_guard(  # kills what runs if this process is killed with SIGKILL
        files.ledger(name),
        worker.isolation,
        worker_dir(name, str(files.data_dir.resolve())),
        held.fd,
    )
    if not _start(worker, server, signals):
        return 0
    stop_watch = threading.Event()
    threading.Thread(
        target=watch_for_work,
        args=(link, worker, stop_watch),
        name="jobfleet-wait",
        daemon=True,
    ).start()
    print(
        f"jobfleet worker {name} in shard {w.shard} on {server}: {describe(capacity)}",
        file=sys.stderr,
        flush=True,
    )
    while not signals and worker.halted is None:
        time.sleep(0.2)
    if worker.halted is not None:
        worker.stop()
        guard.close()
        link.close()
        held.release()
        print(f"error: {worker.halted}", file=sys.stderr, flush=True)
        return 2
    timeout = w.drain_timeout if len(signals) == 1 else 0.0
    stop_watch.set()
    _second_signal_evicts(worker, signals)
    worker.drain(timeout)
    guard.close()
    link.close()
    held.release()
    print("jobfleet: worker drained and deregistered", file=sys.stderr, flush=True)
    return 0


def watch_for_work(
    link: HttpLink, worker: Worker, stop: threading.Event, *, every: float = WAKE_EVERY
) -> None:
    """Wake the worker as soon as the server has a lease or kill order (a long poll), so a new
    job does not wait for the next `poll_interval`. The worker's own polls go on beside it.

    The server answers when a lease for *any* worker was written, so on a big fleet each lease
    batch wakes every worker once: at most once per `every` seconds each, which bounds the
    syncs it adds while leases are being written (none while the fleet is idle)."""
    seen: str | None = None
    failures = 0
    while not stop.wait(every if seen is not None else 0):
        try:
            now = link.wait_for_work(worker.name, seen)
            failures = 0
        except Exception as exc:  # an older server, or none reachable: the polls cover it
            failures += 1
            log.debug("waiting for work failed (%s)", exc)
            stop.wait(min(MAX_BACKOFF, 0.2 * 2**failures))
            continue
        if now != seen:
            worker.wake()
        seen = now


def _start(worker: Worker, server: str, signals: list[int]) -> bool:
    """Register, retrying with backoff while no server answers; False if told to stop."""
    delay = 0.2
    while not signals:
        try:
            worker.start()
            return True
        except JobfleetError as exc:
            if exc.status < 500:
                raise
            log.warning("cannot register with %s (%s); retrying in %.1fs", server, exc, delay)
        time.sleep(delay)
        delay = min(2.0, delay * 2)
    return False


def _second_signal_evicts(worker: Worker, signals: list[int]) -> None:
    """While draining, a second SIGTERM/SIGINT evicts the running jobs at once."""
    seen = len(signals)

    def watch() -> None:
        while seen == len(signals):
            time.sleep(0.2)
        for run_id in worker.executor.running():
            worker.executor.kill(run_id, "evict")

    threading.Thread(target=watch, name="jobfleet-drain-watch", daemon=True).start()
