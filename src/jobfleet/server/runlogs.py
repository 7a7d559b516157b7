"""Where the API and the dashboard read a run's log: one function for both, two sources.

The worker of `jobfleet up` writes the log files on this server's disk (runfiles.py), and the
file is read directly. A `jobfleet worker` on another machine ships its files' bytes to the
server, which keeps them in the database (store/logs.py). The rule: the file when it exists on
this disk, else the shipped chunks. Both hold the same bytes at the same offsets (the log
pump's timestamped lines), so a reader that follows from an offset may switch source.
"""

from __future__ import annotations

import os
from pathlib import Path

from jobfleet.runfiles import RunFiles, Stream
from jobfleet.store import Store


class RunLogs:
    def __init__(self, files: RunFiles, store: Store) -> None:
        self.files = files
        self.store = store

    def _file(self, run_id: str, stream: Stream) -> Path | None:
        path = self.files.log(run_id, stream)
        return path if path.exists() else None

    def size(self, run_id: str, stream: Stream) -> int:
        path = self._file(run_id, stream)
        if path is None:
            return self.store.log_size(run_id, stream)
        try:
            return os.stat(path).st_size
        except FileNotFoundError:  # deleted by retention meanwhile
            return 0

    def read_from(self, run_id: str, stream: Stream, offset: int, limit: int) -> bytes:
        """Up to `limit` bytes from byte `offset` on (b"" when there is nothing more)."""
        path = self._file(run_id, stream)
        if path is None:
            return self.store.read_log(run_id, stream, offset, limit)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read(limit)
        except FileNotFoundError:
            return b""

    def tail(self, run_id: str, stream: Stream, limit: int) -> tuple[bytes, int, int]:
        """(the last `limit` bytes, the offset they start at, the log's size)."""
        size = self.size(run_id, stream)
        start = max(0, size - limit)
        data = self.read_from(run_id, stream, start, size - start)
        return data, start, start + len(data)
