"""Linux namespaces for a run, through util-linux `unshare` (Python 3.11 has no os.unshare).

Measured (bench/isolation.py): `unshare --pid --fork --mount-proc` costs a few milliseconds
over a bare spawn. A PID namespace needs the extra fork that `--fork` does, so it is left to
`unshare`. The network namespace is different: a namespace of that kind belongs to a thread,
so a short-lived thread of the worker enters a new one (ctypes `unshare(2)`), brings loopback
up with one ioctl and spawns the run from there; the child inherits it. Measured against the
alternatives: `unshare --net` plus an `ip link set lo up` exec cost about twice as much, and a
pre-exec hook (`preexec_fn`) far more, since it forces a full fork of the worker.

With a PID namespace the run's first process is PID 1 of that namespace, and PID 1 ignores
every signal it has no handler for — even SIGTERM from the worker. So PID 1 is a tiny /bin/sh
init (INIT below): it joins the run's cgroup, starts the job, forwards SIGTERM/SIGINT/SIGHUP
to it and exits with its status. When PID 1 dies the kernel kills everything left in the
namespace, daemonised grandchildren included; `--kill-child` makes PID 1 die when `unshare`
does. The cost: a job killed by signal N is seen as exit status 128+N (what a shell reports),
which the executor maps back to the signal.
"""

from __future__ import annotations

import ctypes
import fcntl
import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

T = TypeVar("T")

# The cgroup.procs files to join, then "--", then the job's argv.
_SETUP = """fail() { echo "jobfleet-init: $1" >&2; exit 125; }
while [ "$1" != -- ]; do echo 0 > "$1" || fail "cannot join cgroup $1"; shift; done; shift
"""
# The init's own stderr goes to /dev/null (a shell reports "Killed" for its jobs); the job's
# goes to the run's stderr through fd 3.
INIT = (
    _SETUP
    + """trap 'kill -TERM $c 2>/dev/null' TERM
trap 'kill -INT $c 2>/dev/null' INT
trap 'kill -HUP $c 2>/dev/null' HUP
exec 3>&2 2>/dev/null
"$@" 2>&3 3>&- & c=$!
exec 3>&-
while :; do wait $c; s=$?; kill -0 $c 2>/dev/null || exit $s; done
"""
)
EXEC = _SETUP + 'exec "$@"\n'
SH = "/bin/sh"
CLONE_NEWNET = 0x40000000
SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40
_LO_UP = struct.pack("16sh", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING)


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()  # loaded here, never between fork and exec


def enter_network_namespace() -> None:
    """Move the calling thread into a new network namespace with loopback up, nothing else."""
    if _LIBC is None or _LIBC.unshare(CLONE_NEWNET) != 0:
        errno = ctypes.get_errno() if _LIBC is not None else 38
        raise OSError(errno, "unshare(CLONE_NEWNET) failed")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCSIFFLAGS, _LO_UP)


@dataclass
class Namespaces:
    """Which namespaces this worker can give a run (found by `probe`, never assumed)."""

    unshare: str | None = None
    pid: bool = False
    net: bool = False
    why_not: str | None = None

    @classmethod
    def probe(cls, enabled: bool = True) -> Namespaces:
        if not enabled:
            return cls(why_not="disabled by worker.namespaces: false")
        unshare = shutil.which("unshare")
        if unshare is None:
            return cls(why_not="util-linux `unshare` is not installed")
        found = cls(unshare=unshare)
        found.pid = _works([unshare, "--pid", "--fork", "--kill-child", "--mount-proc", "true"])
        found.net = _LIBC is not None and _net_works()
        if not (found.pid and found.net):
            found.why_not = "unshare refused (no privilege for namespaces on this machine?)"
        return found

    def features(self) -> dict[str, object]:
        out: dict[str, object] = {"pid_namespace": self.pid, "network_namespace": self.net}
        if self.why_not:
            out["namespaces_unavailable"] = self.why_not
        return out

    def wrap(self, argv: list[str], join: list[str]) -> tuple[list[str], bool]:
        """The argv that runs `argv` isolated, and whether a signal shows as 128+N."""
        if not self.pid and not join:
            return argv, False
        prefix: list[str] = []
        if self.unshare and self.pid:
            prefix = [self.unshare, "--pid", "--fork", "--kill-child", "--mount-proc", "--"]
        script = INIT if self.pid else EXEC
        return [*prefix, SH, "-c", script, "jobfleet-init", *join, "--", *argv], self.pid


def in_new_network_namespace(spawn: Callable[[], T]) -> T:
    """Call `spawn` (which starts a process) in a thread that entered a new network namespace.

    The thread ends right after, so the worker's own threads never leave the host's network.
    """
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            enter_network_namespace()
            box["value"] = spawn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=body, name="jobfleet-netns")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return cast(T, box["value"])


def _net_works() -> bool:
    try:
        done = in_new_network_namespace(
            lambda: subprocess.run(["true"], capture_output=True, timeout=10, check=False)
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _works(argv: list[str]) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0
