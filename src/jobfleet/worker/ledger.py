"""A worker's ledger of the process groups it started, so none outlives a crash.

Each start and end appends one line to a file (one `write` on an O_APPEND descriptor: it
survives the worker being killed). When a worker of the same name starts again, every group the
ledger still shows as live belonged to a worker that died without cleaning up: it is killed
(after checking, by the process start time, that the pid was not reused).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22: starttime (after the comm field)


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = -1

    def reap_leftovers(self) -> list[int]:
        """Kill the groups a previous incarnation left running; start a fresh ledger."""
        live: dict[int, str] = {}
        with contextlib.suppress(FileNotFoundError), open(self.path) as f:
            for line in f:
                kind, _, rest = line.strip().partition(" ")
                pid_text, _, started = rest.partition(" ")
                if not pid_text.isdigit():
                    continue
                if kind == "start":
                    live[int(pid_text)] = started
                elif kind == "end":
                    live.pop(int(pid_text), None)
        killed = []
        for pid, started in live.items():
            if started and _start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                    killed.append(pid)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        return killed

    def started(self, pid: int) -> None:
        if self._fd >= 0:
            os.write(self._fd, f"start {pid} {_start_time(pid) or ''}\n".encode())

    def ended(self, pid: int) -> None:
        if self._fd >= 0:
            os.write(self._fd, f"end {pid}\n".encode())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
