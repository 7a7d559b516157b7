"""One thread that copies every run's stdout and stderr from pipes into timestamped log files.

On disk each line is prefixed with the time it was read, RFC 3339 in UTC with microseconds
(`2026-11-26T06:20:00.123456Z hello`), so `GET /v1/jobs/{id}/logs?timestamps=true` can show
it and the default view strips it (`strip_timestamps`). A line is written as soon as its
newline arrives (the API follows the file), a partial line at the end of the output or once
it passes 64 KiB. Each run may write `limit` bytes on disk in all (both streams, timestamps and
jobfleet's notes included); past that, output is read and dropped — the log says so when
dropping starts and how much was dropped at the end (room for both notes is kept back).

One selector serves all runs: a run costs two pipe registrations, not a thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MAX_LINE = 64 * 1024
NOTES_ROOM = 512  # kept back from the limit for the two notes of each stream
_STAMP = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ", re.MULTILINE)
_STAMP_TEXT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ?", re.MULTILINE)


def stamp(t: float | None = None) -> bytes:
    t = time.time() if t is None else t
    whole = int(t)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)).encode()
        + f".{int((t - whole) * 1e6):06d}Z ".encode()
    )


def strip_timestamps(text: str) -> str:
    """The log as the job wrote it: every line's leading timestamp removed."""
    return _STAMP_TEXT.sub("", text)


def split_stamp(line: str) -> tuple[str | None, str]:
    """(timestamp, text) of one stored line; (None, line) for a line without one."""
    m = _STAMP_TEXT.match(line)
    if m is None:
        return None, line
    return m.group(0).strip(), line[m.end() :]


@dataclass
class _Stream:
    path: Path  # the log file, created at the first output (a silent run makes none)
    out: int | None = None  # its descriptor once created
    partial: bytes = b""
    dropped: int = 0

    def write(self, data: bytes) -> None:
        if self.out is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            self.out = os.open(self.path, flags, 0o600)
        os.write(self.out, data)


@dataclass
class _RunLog:
    limit: int
    streams: dict[int, _Stream] = field(default_factory=dict)  # pipe fd -> stream
    written: int = 0
    done: threading.Event = field(default_factory=threading.Event)


class LogPump:
    def __init__(self, limit: int = 64 * 2**20) -> None:
        self.limit = limit
        self._runs: dict[str, _RunLog] = {}
        self._owner: dict[int, str] = {}  # pipe fd -> run id
        self._lock = threading.Lock()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="jobfleet-logs", daemon=True)
        self._thread.start()

    def add(self, run_id: str, pipes: dict[int, Path]) -> None:
        """Start copying each pipe (read end) into its log file (appended; the file is made at
        the run's first output on that pipe, so a silent run costs no file)."""
        run = _RunLog(self.limit)
        for fd, path in pipes.items():
            os.set_blocking(fd, False)
            run.streams[fd] = _Stream(path)
        with self._lock:
            self._runs[run_id] = run
            for fd in pipes:
                self._owner[fd] = run_id
                self._sel.register(fd, selectors.EVENT_READ, run_id)
        self._wake()

    def finish(self, run_id: str, timeout: float = 2.0) -> None:
        """Wait until the run's output is all written (both pipes at EOF), then forget it.

        A process that escaped the run and still holds a pipe would keep it open forever: after
        `timeout` whatever was read is written and the pipes are closed anyway.
        """
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            return
        if not run.done.wait(timeout):
            with self._lock:
                for fd in list(run.streams):
                    self._drain(run, fd)
                    self._close(run, fd)
        with self._lock:
            self._runs.pop(run_id, None)

    def stop(self) -> None:
        with self._lock:
            self._stop = True
        self._wake()
        self._thread.join(timeout=5)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def _loop(self) -> None:
        while True:
            events = self._sel.select(timeout=1.0)
            with self._lock:
                if self._stop:
                    return
                for key, _ in events:
                    if key.data is None:
                        os.read(self._wake_r, 4096)
                    else:
                        self._readable(int(key.fd))

    def _readable(self, fd: int) -> None:
        run_id = self._owner.get(fd)
        run = self._runs.get(run_id) if run_id else None
        if run is None or fd not in run.streams:
            return
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._lines(run, run.streams[fd], data, final=False)
        else:
            self._close(run, fd)

    def _drain(self, run: _RunLog, fd: int) -> None:
        with contextlib.suppress(OSError):
            while data := os.read(fd, 65536):
                self._lines(run, run.streams[fd], data, final=False)

    def _close(self, run: _RunLog, fd: int) -> None:
        stream = run.streams.pop(fd)
        self._lines(run, stream, b"", final=True)
        if stream.dropped:
            stream.write(stamp() + _dropped_note(stream.dropped, run.limit))
        if stream.out is not None:
            os.close(stream.out)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(fd)
        self._owner.pop(fd, None)
        os.close(fd)
        if not run.streams:
            run.done.set()

    def _lines(self, run: _RunLog, stream: _Stream, data: bytes, *, final: bool) -> None:
        buf = stream.partial + data
        parts = buf.split(b"\n")
        stream.partial = b"" if final else parts.pop()
        if len(stream.partial) > MAX_LINE:
            parts.append(stream.partial)
            stream.partial = b""
        if not parts or (parts == [b""] and final):
            return
        prefix = stamp()
        out: list[bytes] = []
        for line in parts:
            if final and not line:
                continue
            size = len(prefix) + len(line) + 1  # what it costs on disk
            if stream.dropped or run.written + size > run.limit - NOTES_ROOM:
                if not stream.dropped:
                    out.append(prefix + _limit_note(run.limit))
                stream.dropped += len(line) + 1
                continue
            run.written += size
            out.append(prefix + line + b"\n")
        if out:
            stream.write(b"".join(out))


def _limit_note(limit: int) -> bytes:
    return f"[jobfleet] log limit of {limit} bytes reached: further output is dropped\n".encode()


def _dropped_note(dropped: int, limit: int) -> bytes:
    return f"[jobfleet] {dropped} bytes of output were dropped (log limit {limit} bytes)\n".encode()
