"""The data directory of `jobfleet up` and `jobfleet worker`: one process at a time, private.

A process that runs on a data directory holds an exclusive lock (`flock`) on its `lock` file
for as long as it lives; the file says its pid. A second process on the same directory is
refused before it touches anything (`AlreadyRunning`: the CLI prints "already running on DIR
(pid N)" and exits with status 2). The kernel drops the lock when its holder dies, however it
dies, so a crash never leaves a stale lock. A holder may hand the descriptor to a helper (the
worker's guard, worker/guard.py) that keeps the directory locked until it has cleaned up.

What jobfleet creates in it is private to the user it runs as: the directory 0700 when made
(an existing one loses group and other read and write; 0711 when jobs run as another user and
must reach their own files inside, see worker/runas.py), the admin token, the SQLite database,
the lock and the worker identity 0600.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from pathlib import Path

from jobfleet.errors import JobfleetError

LOCK_FILE = "lock"
IDENTITY_FILE = "worker-id"
HANDOVER_WAIT = 5.0  # how long to wait for a dead holder's helper to finish cleaning up


class AlreadyRunning(JobfleetError):
    """Another jobfleet process holds the data directory."""

    status = 409
    title = "Already running"


class DataDirLock:
    """The held lock; `fd` stays open (and locked) until `release` or the process ends."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def private_dir(path: Path) -> Path:
    """Create `path` (0700) if missing; an existing one we own loses group and other read."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        st = path.stat()
        if st.st_uid == os.geteuid() and st.st_mode & 0o066:
            os.chmod(path, st.st_mode & 0o7711)
    return path


def private_file(path: Path) -> Path:
    """Make sure `path` exists with mode 0600 (created empty if missing)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


def lock(data_dir: Path, what: str = "jobfleet") -> DataDirLock:
    """Take the data directory's lock or raise AlreadyRunning naming the holder's pid."""
    private_dir(data_dir)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        _acquire(fd, data_dir, what)
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return DataDirLock(fd, path)


def _acquire(fd: int, data_dir: Path, what: str) -> None:
    deadline = time.monotonic() + HANDOVER_WAIT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pid = _holder(fd)
            # A holder that is gone left a helper cleaning up after it: wait a little for it.
            if pid is not None and not _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise AlreadyRunning(
                f"{what} is already running on {data_dir} (pid {pid if pid else '?'})"
            ) from None


def _holder(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def identity(data_dir: Path) -> str:
    """The worker's random identity, kept in the data directory (made on first use)."""
    path = data_dir / IDENTITY_FILE
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text().strip()
        if text:
            return text
    value = secrets.token_hex(16)
    private_dir(data_dir)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value
