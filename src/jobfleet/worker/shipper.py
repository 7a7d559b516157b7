"""Log shipping: how a run's log reaches the server that serves it (PRODUCT.md §8).

Two kinds, one small interface (`LogShipper`): the worker of `jobfleet up` shares the server's
disk, so its log files are read there directly and nothing is shipped (`NoShipping`). A
`jobfleet worker` on another machine ships (`HttpShipper`): a thread sends every `interval`
the bytes its live runs' files gained since the offset the server acknowledged, and when a run
ends the agent ships the rest (`ship(..., final=True)`) before it reports the end, so the server
holds the whole log once it sees the run over. A failed request raises; the next try resumes
from the acknowledged offset (the server stores a resent chunk once). Chunks carry the lease's
fencing token: a run the server refuses is no longer shipped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from jobfleet.protocol import LOG_CHUNK_LIMIT, LOG_REQUEST_LIMIT, LogAck, LogChunk
from jobfleet.runfiles import RunFiles, Stream

log = logging.getLogger("jobfleet.worker")
STREAMS: tuple[Stream, ...] = ("stdout", "stderr")
INTERVAL = 0.25  # seconds between live shipments: `logs -f` shows a line within a second
LIVE_REQUESTS = 8  # requests per live pass at most (a flood is caught up on later passes)
Live = Callable[[], dict[str, int]]  # the running runs: run id -> lease fencing token


class LogShipper(Protocol):
    def start(self, live: Live) -> None: ...

    def ship(self, runs: dict[str, int], *, final: bool = False) -> None: ...

    def stop(self) -> None: ...


class NoShipping:
    """`jobfleet up`: the API reads the worker's files on the shared disk."""

    def start(self, live: Live) -> None:
        pass

    def ship(self, runs: dict[str, int], *, final: bool = False) -> None:
        pass

    def stop(self) -> None:
        pass


class LogLink(Protocol):
    def ship_logs(self, worker: str, chunks: list[LogChunk]) -> LogAck: ...


class HttpShipper:
    def __init__(
        self, link: LogLink, files: RunFiles, worker: str, *, interval: float = INTERVAL
    ) -> None:
        self.link = link
        self.files = files
        self.worker = worker
        self.interval = interval
        self._offsets: dict[tuple[str, Stream], int] = {}  # acknowledged by the server
        self._ended: set[str] = set()  # shipped in full, or refused: not shipped again
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, live: Live) -> None:
        self._thread = threading.Thread(
            target=self._loop, args=(live,), name="jobfleet-log-shipper", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self, live: Live) -> None:
        failures = 0
        while not self._stop.wait(self.interval if not failures else min(5.0, 0.5 * failures)):
            try:
                self.ship(live())
                failures = 0
            except Exception as exc:  # the server may be away: resume from the acked offsets
                failures += 1
                log.warning("could not ship logs (%s); retrying", exc)

    def ship(self, runs: dict[str, int], *, final: bool = False) -> None:
        """Send what `runs`' files gained; with `final`, all of it (the runs have ended and
        their files are complete), then forget them. Raises if the server cannot be reached."""
        with self._lock:
            if not final:  # an ended run leaves the live set once the agent reported it
                self._ended &= runs.keys()
            runs = {r: f for r, f in runs.items() if r not in self._ended}
            requests = 0
            while runs and (final or requests < LIVE_REQUESTS):
                chunks = self._gather(runs)
                if not chunks:
                    break
                before = dict(self._offsets)
                self._apply(self.link.ship_logs(self.worker, chunks), runs)
                requests += 1
                if self._offsets == before:
                    break  # the server took nothing more: never spin
            if final:
                for run_id in runs:
                    self._forget(run_id)

    def _gather(self, runs: dict[str, int]) -> list[LogChunk]:
        """The next chunks to send, LOG_REQUEST_LIMIT bytes at most."""
        chunks: list[LogChunk] = []
        room = LOG_REQUEST_LIMIT
        for run_id, fencing in runs.items():
            for stream in STREAMS:
                offset = self._offsets.get((run_id, stream), 0)
                data = self._read(run_id, stream, offset, min(room, LOG_CHUNK_LIMIT))
                if data:
                    chunks.append(LogChunk(run_id, fencing, stream, offset, data))
                    room -= len(data)
                if room <= 0:
                    return chunks
        return chunks

    def _read(self, run_id: str, stream: Stream, offset: int, limit: int) -> bytes:
        try:
            with open(self.files.log(run_id, stream), "rb") as f:
                f.seek(offset)
                return f.read(limit)
        except FileNotFoundError:
            return b""

    def _apply(self, ack: LogAck, runs: dict[str, int]) -> None:
        for run_id, streams in ack.acked.items():
            for stream in STREAMS:
                if stream in streams:
                    self._offsets[(run_id, stream)] = streams[stream]
        for run_id, why in ack.refused.items():
            log.warning("logs of run %s refused (%s): no longer shipped", run_id, why)
            runs.pop(run_id, None)
            self._forget(run_id)

    def _forget(self, run_id: str) -> None:
        self._ended.add(run_id)
        for stream in STREAMS:
            self._offsets.pop((run_id, stream), None)
