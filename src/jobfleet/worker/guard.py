"""The worker's guard: no job outlives a worker killed with SIGKILL.

A worker that stops cleanly kills its runs itself. One killed with SIGKILL cannot: its jobs
would run on, unwatched, while the server requeues them elsewhere. So at start the worker
starts this small process (a session of its own, so signals to the worker's group miss it)
and keeps the write end of a pipe whose read end is the guard's stdin. However the worker
dies, the kernel closes that end; the guard reads EOF and does at once what a restart of the
worker would do (worker/agent.py `Worker.start`): kill the process groups its ledger still
shows as live (worker/ledger.py) and every run cgroup left under its cgroup folder (which
catches daemonised grandchildren too). A PID namespace's init dying takes the rest of the
namespace with it.

The guard may also hold the data directory's lock (datadir.py): a new worker on that
directory then waits until the guard has finished cleaning up.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from jobfleet.worker.isolation import Isolation
from jobfleet.worker.isolation.cgroup1 import CgroupV1
from jobfleet.worker.isolation.cgroup2 import CgroupV2
from jobfleet.worker.ledger import Ledger


class Guard:
    """The worker's handle: the pipe's write end, kept open until the process ends."""

    def __init__(self, popen: subprocess.Popen[bytes], write_end: int) -> None:
        self.popen = popen
        self._write_end = write_end

    def close(self) -> None:
        """The worker stopped cleanly (its runs are gone): let the guard finish now."""
        if self._write_end >= 0:
            os.close(self._write_end)
            self._write_end = -1


def start_guard(
    ledger: Path, isolation: Isolation, worker_dir: str, lock_fd: int | None = None
) -> Guard:
    """Start the guard of a worker with this ledger and isolation (before any run starts)."""
    read_end, write_end = os.pipe()  # both close on exec: the jobs never hold the pipe
    argv = [sys.executable, "-m", "jobfleet.worker.guard", "--ledger", str(ledger)]
    backend = isolation.backend.name
    if backend in ("cgroup1", "cgroup2"):
        argv += ["--cgroup", backend, "--worker-dir", worker_dir]
    try:
        popen = subprocess.Popen(
            argv,
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=(lock_fd,) if lock_fd is not None else (),
        )
    finally:
        os.close(read_end)
    return Guard(popen, write_end)


def clean_up(ledger: Path, cgroup: str | None, worker_dir: str | None) -> int:
    """Kill what the dead worker left: its ledger's live groups and its run cgroups."""
    killed = len(Ledger(ledger).reap_leftovers())
    if cgroup and worker_dir:
        backend = CgroupV2(worker_dir) if cgroup == "cgroup2" else CgroupV1(worker_dir)
        killed += backend.sweep()
        backend.close()
    return killed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jobfleet-guard")
    parser.add_argument("--ledger", type=Path, required=True)
    parser.add_argument("--cgroup", choices=["cgroup1", "cgroup2"])
    parser.add_argument("--worker-dir")
    args = parser.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    while os.read(0, 4096):  # nothing is ever written: this waits for the worker's end
        pass
    killed = clean_up(args.ledger, args.cgroup, args.worker_dir)
    if killed:
        print(f"jobfleet guard: killed {killed} leftovers of a worker that died", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
