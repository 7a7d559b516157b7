"""Run logs shipped by remote workers (`jobfleet worker`), kept in `log_chunks`.

A worker on another machine writes its runs' logs to its own disk; it ships the new bytes of
each file, at byte offsets, fenced by the run's lease like a report. The server stores each
stream as contiguous chunks: a chunk that starts past what is stored (a gap) is not stored, one
that overlaps stores only its new part, and the answer says, per stream, up to which offset the
server holds the log, so the worker resumes from there (a lost answer just resends; a resend is
stored once). Per run, at most `limit` bytes are kept (both streams): the chunk that crosses it
is cut and ends with a note; later ones are acknowledged and dropped.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from jobfleet.protocol import LOG_CHUNK_LIMIT, LogAck, LogChunk, ReportResult
from jobfleet.store.base import StoreBase
from jobfleet.store.schema import log_chunks
from jobfleet.store.workers import WorkerOps

READ_ROWS = 512  # chunks fetched per query while reading
STREAMS = ("stdout", "stderr")


def _cap_note(limit: int) -> bytes:
    return f"\n[jobfleet] server log limit of {limit} bytes reached: the rest is dropped\n".encode()


class LogOps(StoreBase):
    def store_log_chunks(self, worker: str, chunks: list[LogChunk], *, limit: int) -> LogAck:
        """Store what is new in `chunks` (see the module doc); refuse runs not validly leased
        to `worker` under the chunk's fencing token, storing nothing of them."""
        ack = LogAck()
        if not chunks:
            return ack
        with self.tx() as conn:
            run_ids = list({c.run_id for c in chunks})
            current = WorkerOps._leases(conn, worker, run_ids)
            ends, used = self._extent(conn, run_ids)
            scratch = ReportResult()
            rows: list[dict[str, Any]] = []
            for c in chunks:
                if c.run_id in scratch.refused or not WorkerOps._check(
                    current, c.run_id, c.fencing, scratch
                ):
                    continue
                job_id = current[c.run_id]["job_id"]
                row = _fit(c, job_id, ends, used, limit)
                if row is not None:
                    rows.append(row)
                ack.acked.setdefault(c.run_id, {})[c.stream] = ends[(c.run_id, c.stream)]
            self._insert(conn, rows)
            ack.refused = dict(scratch.refused)
        return ack

    @staticmethod
    def _extent(
        conn: sa.Connection, run_ids: list[str]
    ) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
        """(where each stream's stored log ends, bytes stored per run). A stream is stored
        contiguously from 0, so its end is its size: one probe of the key per stream, however
        many chunks the run has."""
        ends: dict[tuple[str, str], int] = {}
        used: dict[str, int] = {}
        for run_id in run_ids:
            for stream in STREAMS:
                end = _end(conn, run_id, stream)
                if end:
                    ends[(run_id, stream)] = end
                used[run_id] = used.get(run_id, 0) + end
        return ends, used

    def _insert(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        """Insert; a row another request stored meanwhile (same key) is left as it is."""
        if not rows:
            return
        dialect = postgresql if self.backend == "postgresql" else sqlite
        stmt = dialect.insert(log_chunks).on_conflict_do_nothing()
        conn.execute(stmt, rows)

    def log_size(self, run_id: str, stream: str) -> int:
        """Where the stored log of one stream ends (0 when nothing was shipped)."""
        with self.read() as conn:
            return _end(conn, run_id, stream)

    def read_log(self, run_id: str, stream: str, offset: int, limit: int) -> bytes:
        """Up to `limit` bytes of the stored log from byte `offset` on."""
        t = log_chunks.c
        out = bytearray()
        pos = offset
        with self.read() as conn:
            while len(out) < limit:
                rows = conn.execute(
                    sa.select(t.start, t.data)
                    .where(
                        t.run_id == run_id,
                        t.stream == stream,
                        t.start > pos - 2 * LOG_CHUNK_LIMIT,  # lets the key bound the scan
                        t.start + t.size > pos,
                    )
                    .order_by(t.start)
                    .limit(READ_ROWS)
                ).all()
                for start, data in rows:
                    piece = bytes(data)[pos - start : pos - start + limit - len(out)]
                    out += piece
                    pos += len(piece)
                if len(rows) < READ_ROWS:
                    break
        return bytes(out)


def _end(conn: sa.Connection, run_id: str, stream: str) -> int:
    t = log_chunks.c
    last = conn.execute(
        sa.select(t.start + t.size)
        .where(t.run_id == run_id, t.stream == stream)
        .order_by(t.start.desc())
        .limit(1)
    ).scalar()
    return int(last or 0)


def _fit(
    c: LogChunk,
    job_id: str,
    ends: dict[tuple[str, str], int],
    used: dict[str, int],
    limit: int,
) -> dict[str, Any] | None:
    """The row to store for `c` (its new part, cut at the run's limit), or None; updates
    `ends` (what is acknowledged) and `used`."""
    key = (c.run_id, c.stream)
    end = ends.get(key, 0)
    stop = c.offset + len(c.data)
    room = limit - used.get(c.run_id, 0)
    if room <= 0:
        ends[key] = max(end, stop)  # over the limit: acknowledged and dropped
        return None
    if c.offset > end or stop <= end:
        ends[key] = end  # a gap (resume from `end`) or all of it stored already
        return None
    data = c.data[end - c.offset :][:LOG_CHUNK_LIMIT]  # a longer one: the worker sends the rest
    if len(data) > room:
        data = data[:room] + _cap_note(limit)
        ends[key] = stop  # the rest of this chunk is dropped with the note
    else:
        ends[key] = end + len(data)
    used[c.run_id] = used.get(c.run_id, 0) + len(data)
    return {
        "run_id": c.run_id,
        "stream": c.stream,
        "start": end,
        "size": len(data),
        "job_id": job_id,
        "data": data,
        "created_at": time.time(),
    }
