"""Wake-ups across processes on PostgreSQL: LISTEN/NOTIFY.

Within one process the store tells its subscribers after each commit (`Store.subscribe`). On a
fleet the API, the scheduler and the workers are separate processes: there each process that
writes events also sends `NOTIFY jobfleet, '<sender> <kind,kind,...>'` after its commits (from a
thread of its own, so no writer waits for it), and a process that must react LISTENs and calls
its subscribers for the kinds it hears from the others. A notification is only a hint, never
data: the woken reader reads the store as after a poll, and keeps a slow poll in case one was
lost (a dropped connection; after a reconnect every subscriber is called once).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from typing import Any

from jobfleet.lifecycle import EventType
from jobfleet.store.base import ORDER, StoreBase
from jobfleet.store.outbox_write import CALLBACK

log = logging.getLogger("jobfleet.wakeups")
CHANNEL = "jobfleet"
ALL_KINDS = (*(e.value for e in EventType), ORDER, CALLBACK)
# What a worker must hear of at once: new leases and new kill orders (not every submission).
WORKER_KINDS = (EventType.LEASED.value, EventType.CANCEL_REQUESTED.value, ORDER)
# What the scheduler need not hear of: what it writes itself (routing, leases) and starts,
# which change nothing it plans with (a lease already holds the run's room).
_NOT_FOR_SCHEDULER = frozenset(
    {EventType.SCHEDULED.value, EventType.LEASED.value, EventType.RUNNING.value}
)
SCHEDULER_KINDS = tuple(e.value for e in EventType if e.value not in _NOT_FOR_SCHEDULER)

Listener = tuple[Callable[[], None], frozenset[str] | None]


class Wakeups:
    """NOTIFY after this process's commits; LISTEN for the other processes' (PostgreSQL)."""

    def __init__(self, store: StoreBase, *, reconnect_after: float = 1.0) -> None:
        self.url = store.writer.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self.sender = secrets.token_hex(4)  # our own notifications come back: skip them
        self.reconnect_after = reconnect_after
        self._store = store
        self._listeners: list[Listener] = []
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._have = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.listening = threading.Event()  # set once LISTEN is in force (tests wait on it)

    def subscribe(
        self, listener: Callable[[], None], *, kinds: Iterable[str] | None = None
    ) -> None:
        """Call `listener` (cheaply) when another process committed events of one of `kinds`."""
        self._listeners.append((listener, None if kinds is None else frozenset(kinds)))

    def start(self, *, send: bool = True) -> Wakeups:
        if send:
            for kind in ALL_KINDS:
                self._store.subscribe(functools.partial(self._queue, kind), kinds=[kind])
            self._spawn(self._send_loop, "jobfleet-notify")
        if self._listeners:
            self._spawn(self._listen_loop, "jobfleet-listen")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._have.set()
        for t in self._threads:
            t.join(timeout=5)

    # -- sending ---------------------------------------------------------------------------

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _queue(self, kind: str) -> None:
        with self._lock:
            self._pending.add(kind)
        self._have.set()

    def _send_loop(self) -> None:
        conn: Any = None
        while not self._stop.is_set():
            self._have.wait()
            self._have.clear()
            with self._lock:
                kinds, self._pending = self._pending, set()
            if not kinds or self._stop.is_set():
                continue
            try:
                if conn is None:
                    conn = _connect(self.url)
                payload = f"{self.sender} {','.join(sorted(kinds))}"
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            except Exception as exc:  # a hint lost: the receivers' polls cover it
                log.debug("NOTIFY failed (%s); reconnecting", exc)
                _close(conn)
                conn = None
                self._stop.wait(0.1)
        _close(conn)

    # -- listening -------------------------------------------------------------------------

    def _listen_loop(self) -> None:
        while not self._stop.is_set():
            conn: Any = None
            try:
                conn = _connect(self.url)
                conn.execute(f"LISTEN {CHANNEL}")
                self._call(None)  # anything may have happened while we were not listening
                self.listening.set()
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=1.0):
                        sender, _, kinds = note.payload.partition(" ")
                        if sender != self.sender:
                            self._call(set(kinds.split(",")))
            except Exception as exc:
                log.warning("LISTEN %s failed (%s); retrying", CHANNEL, exc)
                self.listening.clear()
                self._stop.wait(self.reconnect_after)
            finally:
                _close(conn)

    def _call(self, kinds: set[str] | None) -> None:
        for listener, wanted in self._listeners:
            if kinds is None or wanted is None or wanted & kinds:
                listener()


def _connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


def _close(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()
