"""The commit horizon of the event log on PostgreSQL: how far a reader may read, with no lock
taken by writers.

Writers draw event ids from a sequence and commit in any order, so a committed id N can be
visible while a smaller id M, drawn by a transaction still running, is not yet: a reader that
went on after N would never see M. A reader therefore reads only up to the *horizon*: an id H
such that every transaction that drew an id <= H has ended (committed or rolled back).

How H is found:
1. read the sequence's last value L: every id <= L has been drawn;
2. then list the transaction ids (xids) running in this database (`pg_stat_activity`).
Every writer takes its xid before it draws an event id (`StoreBase._claim_xid`), so a writer
that drew an id <= L is either in that list or has ended. Once none of the listed xids runs
any more, L is a horizon: each event <= L is committed or gone, and any snapshot taken from
then on sees all that are committed. A reader waits a little (`WAIT`) for the writers it
listed, which are short; a long transaction holds back readers (never writers) until it ends,
and they read up to the last horizon settled meanwhile.

A per-event transaction id compared with `pg_snapshot_xmin` is not enough here: a writer can
take its xid before another one and draw its event ids after it, so "xid below the oldest
running xid" does not imply "no smaller id still to come". Only the ids' own order counts,
hence the sequence's value and the running writers listed after it. Writers of other
databases are not listed (they cannot write this table), so they never hold a reader back.
A role sees the xids of its own sessions only: every writer must connect as the reader's role
(or the reader's role be granted `pg_read_all_stats`).
"""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

WAIT = 0.5  # seconds a reader waits for the writers that may hold ids below what it reads
POLL = 0.0005
MAX_PENDING = 1000  # beyond, a read adds no pair (a later one will)
_RUNNING = sa.text(
    "SELECT backend_xid::text FROM pg_stat_activity WHERE datname = current_database()"
    " AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
)


class Horizon:
    """The settled horizon of one store (shared by its threads). `settle()` returns an id H:
    every event <= H that will ever be committed is committed.

    A pending (L, listed) may be settled only by a list of running xids read *after* it was
    made (`made` <= the later read's start): with several threads, a list read before another
    thread's L would miss a writer that began in between."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._safe = 0
        self._pending: list[tuple[int, frozenset[str], float]] = []  # (L, listed, made)
        self._seq: str | None = None

    def settle(self, engine: sa.Engine, *, wait: float = WAIT) -> int:
        deadline = time.monotonic() + wait
        with engine.connect() as conn:
            if self._seq is None:
                self._seq = str(
                    conn.execute(sa.text("SELECT pg_get_serial_sequence('events', 'id')")).scalar()
                )
            row = conn.execute(sa.text(f"SELECT last_value, is_called FROM {self._seq}")).one()
            last = int(row[0]) if row[1] else int(row[0]) - 1
            started = time.monotonic()
            mine = frozenset(conn.execute(_RUNNING).scalars())  # after the sequence: see above
            made = time.monotonic()
            conn.rollback()
            with self._lock:
                self._apply(mine, started)
                if not mine:
                    self._safe = max(self._safe, last)
                elif self._pending and self._pending[-1][1] == mine:  # they settle together
                    old = self._pending[-1]
                    self._pending[-1] = (max(last, old[0]), mine, max(made, old[2]))
                elif len(self._pending) < MAX_PENDING:
                    self._pending.append((last, mine, made))
            while True:
                with self._lock:
                    if self._safe >= last or time.monotonic() >= deadline:
                        return self._safe
                time.sleep(POLL)
                started = time.monotonic()
                running = frozenset(conn.execute(_RUNNING).scalars())
                conn.rollback()  # a fresh pg_stat_activity snapshot next time
                with self._lock:
                    self._apply(running, started)

    def behind(self) -> bool:
        """Are some drawn ids above the settled horizon (a reader may find more soon)?"""
        with self._lock:
            return any(last > self._safe for last, _, _ in self._pending)

    def _apply(self, running: frozenset[str], started: float) -> None:
        """Settle every pending pair made before `running` was read (`started`) none of whose
        listed writers is in it."""
        keep: list[tuple[int, frozenset[str], float]] = []
        for last, listed, made in self._pending:
            if made <= started and not listed & running:
                self._safe = max(self._safe, last)
            else:
                keep.append((last, listed, made))
        self._pending = [p for p in keep if p[0] > self._safe]
