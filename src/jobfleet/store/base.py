"""The store's foundation: engines, transactions, and the one way a job changes state.

Writers on PostgreSQL take no common lock: they draw event ids from a sequence and commit in
any order. Readers of the event log read only up to the commit horizon (store/horizon.py), so
a reader that resumes after id N can never later see an id below N appear (no gap on resume);
for that, a writer takes its transaction id before it draws an event id (`_claim_xid`). SQLite
has one writer at a time by nature (BEGIN IMMEDIATE), which commits in id order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import sqlalchemy as sa

from jobfleet.errors import StaleState
from jobfleet.failures.classifier import Classifier
from jobfleet.failures.conditions import FailureInfo
from jobfleet.failures.policy import RetryPolicy
from jobfleet.lifecycle import EventType, JobState, Op, transition
from jobfleet.store import migrate as migrations
from jobfleet.store.engine import make_engines, normalise_url
from jobfleet.store.horizon import Horizon
from jobfleet.store.outbox_write import outbox_targets, write_outbox
from jobfleet.store.schema import events, jobs

ORDER = "order"  # a notification kind: a worker has a new kill order (no event yet)
# A unique key refused a row: SQLAlchemy's error, or psycopg's own when COPY wrote the rows.
DUPLICATE = (sa.exc.IntegrityError, psycopg.errors.UniqueViolation)
BOOTSTRAP_LOCK = 728132005  # advisory lock key: start-up writes (StoreBase.exclusive)
CHUNK = 4000
COPY_FROM = 64  # rows: below this a plain executemany costs less than a COPY


def in_state(state: JobState) -> sa.ColumnElement[bool]:
    """`jobs.state = 'STATE'` with the state written into the SQL, not bound: the partial
    indexes (schema.py) serve a query only if its WHERE visibly implies their predicate."""
    return jobs.c.state == sa.literal_column(f"'{JobState(state).value}'")


@dataclass(slots=True)
class JobRef:
    """What a transition needs to know of a job."""

    id: str
    state: JobState
    cancel_requested: bool
    queue: str
    job_set: str
    attempt: int
    run_id: str | None = None
    worker: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    callback: str | None = None  # which events the job's callback_url receives (None: none)

    @classmethod
    def from_row(cls, row: Any) -> JobRef:
        m = row._mapping
        return cls(
            id=m["id"],
            state=JobState(m["state"]),
            cancel_requested=bool(m["cancel_requested"]),
            queue=m["queue"],
            job_set=m["job_set"],
            attempt=m["attempt"],
            run_id=m["run_id"],
            worker=m["worker"],
            extra=dict(m),
            callback=m.get("callback"),
        )


REF_COLUMNS = (
    jobs.c.id,
    jobs.c.state,
    jobs.c.cancel_requested,
    jobs.c.queue,
    jobs.c.job_set,
    jobs.c.attempt,
    jobs.c.run_id,
    jobs.c.worker,
    jobs.c.callback,
)


def insert_many(
    conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], *, copy_from: int = COPY_FROM
) -> None:
    """Insert many rows (all with the same keys) fast, in the current transaction.

    PostgreSQL: COPY (one stream, no per-row statement) from `copy_from` rows on. SQLite: the
    driver's executemany.
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql" or len(rows) < copy_from:
        conn.execute(table.insert(), rows)
        return
    cols = list(rows[0])
    convs = [(c, _converter(table.c[c].type)) for c in cols]
    raw = conn.connection.dbapi_connection
    assert raw is not None
    with (
        raw.cursor() as cur,  # type: ignore[attr-defined]
        cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy,
    ):
        for i in range(0, len(rows), 2000):
            copy.write(
                "".join(
                    "\t".join([conv(row[c]) for c, conv in convs]) + "\n"
                    for row in rows[i : i + 2000]
                )
            )


def _converter(kind: Any) -> Callable[[Any], str]:
    """COPY text of one column's values, by the column's type (one call per field, no type
    tests for the common case; anything unexpected goes through `_copy_text`)."""
    if isinstance(kind, sa.JSON):
        return lambda v: "\\N" if v is None else json.dumps(v).translate(_COPY_ESCAPES)
    if isinstance(kind, sa.String):
        return lambda v: (
            v.translate(_COPY_ESCAPES)
            if v.__class__ is str
            else "\\N"
            if v is None
            else _copy_text(v, False)
        )
    if isinstance(kind, sa.Boolean):
        return lambda v: "t" if v is True else "f" if v is False else _copy_text(v, False)
    if isinstance(kind, sa.Integer):
        return lambda v: str(v) if v.__class__ is int else _copy_text(v, False)
    if isinstance(kind, sa.Float):
        return lambda v: repr(v) if v.__class__ is float else _copy_text(v, False)
    return lambda v: _copy_text(v, False)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any, is_json: bool) -> str:
    """One field of COPY's text format (NULL is \\N; backslash, tab, newline and CR escaped)."""
    if value is None:
        return "\\N"
    if is_json:
        return json.dumps(value).translate(_COPY_ESCAPES)
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"insert_many: no COPY text for a {type(value).__name__}")


Payload = dict[str, Any] | Callable[[JobRef], dict[str, Any]] | None


class StoreBase:
    def __init__(
        self,
        url: str,
        *,
        retry_default: RetryPolicy | None = None,
        classifier: Classifier | None = None,
    ) -> None:
        self.url = normalise_url(url)
        self.writer, self.reader = make_engines(self.url)
        self.backend = self.writer.dialect.name
        self.retry_default = retry_default or RetryPolicy()
        self.classifier = classifier or Classifier()
        self._listeners: list[tuple[Callable[[], None], frozenset[str] | None]] = []
        # A check run first in every write transaction: the leader scheduler's fence, which
        # refuses to write once another leader took over.
        self.fence: Callable[[sa.Connection], None] | None = None
        self.horizon = Horizon()

    # -- lifecycle of the store -------------------------------------------------------------

    def migrate(self) -> None:
        migrations.upgrade(self.writer)

    def close(self) -> None:
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()

    def subscribe(
        self, listener: Callable[[], None], *, kinds: Iterable[str] | None = None
    ) -> None:
        """Call `listener` (cheaply: it should only set a flag) after a write transaction that
        appended events of one of `kinds` (event types, or ORDER for a new kill order); every
        kind if None."""
        self._listeners.append((listener, None if kinds is None else frozenset(kinds)))

    def _notify(self, kinds: set[str]) -> None:
        for listener, wanted in list(self._listeners):
            if wanted is None or wanted & kinds:
                listener()

    @contextmanager
    def tx(self) -> Iterator[sa.Connection]:
        """A write transaction; listeners are told once it has committed, if it made events.

        Writers run side by side (no common lock); those that update the same rows lock them
        in one order (ids sorted, see `_move`).
        """
        with self.writer.begin() as conn:
            conn.info["xid"] = False
            conn.info["writing"] = True
            try:
                if self.fence is not None:
                    self.fence(conn)
                conn.info["kinds"] = set()
                yield conn
            finally:
                conn.info["writing"] = False
            kinds: set[str] = conn.info.pop("kinds", set())
        if kinds:
            self._notify(kinds)

    @contextmanager
    def exclusive(self, key: int = BOOTSTRAP_LOCK) -> Iterator[None]:
        """Run the block while holding a PostgreSQL session advisory lock (SQLite: nothing to
        do, it has one writer): the start-up writes of processes that start together (two
        `jobfleet server`s creating the default queue and the admin principal) take turns
        instead of one of them dying on a unique key."""
        if self.backend != "postgresql":
            yield
            return
        with self.writer.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self.reader.connect() as conn:
            try:
                yield conn
            except BaseException:
                # A result left half-read keeps its statement, and on SQLite its snapshot,
                # past the pool's rollback (sqlite3 no longer resets statements on rollback
                # since Python 3.11): later reads on that pooled connection would see the
                # past. The connection is closed instead of going back to the pool.
                conn.invalidate()
                raise

    def event_horizon(self) -> int | None:
        """The highest event id a reader of the log may read up to (None: no bound). Every
        event at or below it that will ever be committed is committed (store/horizon.py)."""
        if self.backend != "postgresql":
            return None  # one writer at a time: commits in id order
        return self.horizon.settle(self.writer)

    def _observe(self, failure: FailureInfo) -> FailureInfo:
        """A failure as the server records it: texts bounded, categories set. Called once,
        where the failure is observed; the result is stored and never recomputed."""
        return self.classifier.classify(failure.bounded())

    # -- the one way a job moves ------------------------------------------------------------

    def _move(
        self,
        conn: sa.Connection,
        refs: Sequence[JobRef],
        op: Op,
        *,
        now: float | None = None,
        values: dict[str, Any] | None = None,
        payload: Payload = None,
        next_attempt: bool = False,
        run_id: Callable[[JobRef], str | None] | None = None,
    ) -> list[JobRef]:
        """Apply `op` to each job: a guarded UPDATE plus exactly one event per job that moved.

        Jobs whose row no longer holds the expected state (another writer was first) are left
        alone and are not returned. Raises IllegalTransition if the table refuses `op` for a
        job as the caller saw it.
        """
        now = time.time() if now is None else now
        groups: dict[tuple[JobState, bool], list[JobRef]] = {}
        for ref in refs:
            groups.setdefault((ref.state, ref.cancel_requested), []).append(ref)
        moved: list[JobRef] = []
        evs: list[dict[str, Any]] = []
        # Rows are locked in one order (groups by state, ids sorted in each), so two writers
        # moving the same jobs wait for each other instead of deadlocking.
        for (source, flag), group in sorted(groups.items(), key=lambda kv: kv[0][0].value):
            group.sort(key=lambda r: r.id)
            step = transition(source, op, cancel_requested=flag)
            sets: dict[str, Any] = {
                "state": step.target.value,
                "cancel_requested": step.cancel_requested,
                "updated_at": now,
                **(values or {}),
            }
            if next_attempt:
                sets["attempt"] = jobs.c.attempt + 1
            if step.target.terminal:
                sets["finished_at"] = now
                sets["expires_at"] = jobs.c.ttl + now  # NULL unless the job has its own ttl
            if step.target.terminal or step.event is EventType.REQUEUED:
                sets["preempt_requested"] = False
            for i in range(0, len(group), CHUNK):
                chunk = group[i : i + CHUNK]
                stmt = (
                    jobs.update()
                    .where(
                        jobs.c.id.in_([r.id for r in chunk]),
                        jobs.c.state == source.value,
                        jobs.c.cancel_requested == flag,
                    )
                    .values(**sets)
                    .returning(jobs.c.id)
                )
                got = set(conn.execute(stmt).scalars())
                if got:
                    conn.info["xid"] = True  # it wrote: its events need no _claim_xid
                for ref in chunk:
                    if ref.id not in got:
                        continue
                    ref.state = step.target
                    ref.cancel_requested = step.cancel_requested
                    if next_attempt:
                        ref.attempt += 1
                    if run_id is not None:
                        ref.run_id = run_id(ref)
                    moved.append(ref)
                    evs.append(self._event(ref, step.event, now, payload))
        self._append(conn, evs, {r.id: r.callback for r in moved if r.callback})
        return moved

    def _move_one(self, conn: sa.Connection, ref: JobRef, op: Op, **kw: Any) -> JobRef:
        moved = self._move(conn, [ref], op, **kw)
        if not moved:
            raise StaleState(f"job {ref.id} changed while this request ran; try again")
        return moved[0]

    @staticmethod
    def _event(ref: JobRef, etype: EventType, now: float, payload: Payload) -> dict[str, Any]:
        body = payload(ref) if callable(payload) else payload
        return {
            "type": etype.value,
            "job_id": ref.id,
            "run_id": ref.run_id,
            "queue": ref.queue,
            "job_set": ref.job_set,
            "state": ref.state.value,
            "attempt": ref.attempt,
            "time": now,
            "payload": body or None,
        }

    @staticmethod
    def _claim_xid(conn: sa.Connection) -> None:
        """Make sure the transaction has its id before it draws an event id (PostgreSQL), as the
        horizon needs (store/horizon.py). A transaction that already wrote a row has one: its
        writers mark it (`conn.info["xid"] = True`) and save the round trip."""
        if conn.dialect.name == "postgresql" and not conn.info.get("xid"):
            conn.execute(sa.text("SELECT pg_current_xact_id()"))
            conn.info["xid"] = True

    _lock = _claim_xid  # the former name (a write lock, gone), for callers on other branches

    @classmethod
    def _append(
        cls,
        conn: sa.Connection,
        evs: list[dict[str, Any]],
        callbacks: dict[str, str] | None = None,
    ) -> None:
        """Insert events; for jobs in `callbacks` (job id → "terminal"|"all"), also write the
        callback outbox rows of the events they must receive, in this same transaction."""
        if not evs:
            return
        cls._claim_xid(conn)  # before any event id is drawn
        conn.info.setdefault("kinds", set()).update(e["type"] for e in evs)
        targets = outbox_targets(evs, callbacks) if callbacks else None
        if not targets:
            insert_many(conn, events, evs)
            return
        stmt = events.insert().returning(
            events.c.id, events.c.job_id, events.c.type, sort_by_parameter_order=True
        )
        write_outbox(conn, conn.execute(stmt, evs).all(), targets)

    def _write_reasons(self, reasons: dict[str, str], state: JobState) -> None:
        """Set `scheduling_reason` of jobs still in `state`, only where it changes. Writing a
        reason is not a transition: no event."""
        by_reason: dict[str, list[str]] = {}
        for job_id, reason in reasons.items():
            by_reason.setdefault(reason, []).append(job_id)
        if not by_reason:
            return
        with self.tx() as conn:
            for reason, ids in by_reason.items():
                conn.execute(
                    jobs.update()
                    .where(
                        jobs.c.id.in_(ids),
                        jobs.c.state == state.value,
                        sa.or_(
                            jobs.c.scheduling_reason.is_(None),
                            jobs.c.scheduling_reason != reason,
                        ),
                    )
                    .values(scheduling_reason=reason)
                )

    def _refs(
        self, conn: sa.Connection, where: Any, *extra_cols: Any, lock: bool = True
    ) -> list[JobRef]:
        """The jobs matching `where`. In a write transaction on PostgreSQL their rows are
        locked (in id order) until it ends, so what is read still holds when they are moved:
        writers take no common lock. `lock=False`: a stale row is only skipped by `_move`'s
        guard, which is what the caller wants (routing a job no longer QUEUED)."""
        stmt = sa.select(*REF_COLUMNS, *extra_cols).where(where)
        if lock and conn.info.get("writing") and conn.dialect.name == "postgresql":
            stmt = stmt.order_by(jobs.c.id).with_for_update()
        rows = conn.execute(stmt).all()
        if rows and lock and conn.info.get("writing"):
            conn.info["xid"] = True  # a row lock gives the transaction its id
        return [JobRef.from_row(r) for r in rows]
