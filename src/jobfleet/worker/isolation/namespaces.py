"""Linux namespaces for a run, through util-linux `unshare` (Python 3.11 has no os.unshare).

Measured on the reference machine (bench/isolation.py): `unshare --pid --fork --mount-proc`
costs a few milliseconds over a bare spawn, a network namespace a few more. ctypes
`unshare(2)` in a preexec hook would save one exec but forces a full fork of the (large)
worker instead of vfork, and a PID namespace still needs the extra fork that `--fork` does.

With a PID namespace the run's first process is PID 1 of that namespace, and PID 1 ignores
every signal it has no handler for — even SIGTERM from the worker. So PID 1 is a tiny /bin/sh
init (INIT below): it joins the run's cgroup, brings loopback up in a network namespace, starts
the job, forwards SIGTERM/SIGINT/SIGHUP to it and exits with its status. When PID 1 dies the
kernel kills everything left in the namespace, daemonised grandchildren included; `--kill-child`
makes PID 1 die when `unshare` does. The cost: a job killed by signal N is seen as exit status
128+N (what a shell reports), which the executor maps back to the signal.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

# $1: path of `ip` or "-"; then cgroup.procs files to join; then "--"; then the job's argv.
_SETUP = """ip=$1; shift
fail() { echo "jobfleet-init: $1" >&2; exit 125; }
while [ "$1" != -- ]; do echo 0 > "$1" || fail "cannot join cgroup $1"; shift; done; shift
[ "$ip" = - ] || "$ip" link set lo up || fail "cannot bring up loopback"
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


@dataclass
class Namespaces:
    """Which namespaces this worker can give a run (found by `probe`, never assumed)."""

    unshare: str | None = None
    ip: str | None = None
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
        found = cls(unshare=unshare, ip=shutil.which("ip"))
        found.pid = _works([unshare, "--pid", "--fork", "--kill-child", "--mount-proc", "true"])
        found.net = _works([unshare, "--net", "true"])
        if not (found.pid and found.net):
            found.why_not = "unshare refused (no privilege for namespaces on this machine?)"
        return found

    def features(self) -> dict[str, object]:
        out: dict[str, object] = {"pid_namespace": self.pid, "network_namespace": self.net}
        if self.net and self.ip is None:
            out["loopback"] = "down (no `ip` command to bring it up)"
        if self.why_not:
            out["namespaces_unavailable"] = self.why_not
        return out

    def wrap(self, argv: list[str], join: list[str], *, net: bool) -> tuple[list[str], bool]:
        """The argv that runs `argv` isolated, and whether a signal shows as 128+N."""
        ip = self.ip if (net and self.ip) else "-"
        if not self.pid and not net and not join:
            return argv, False
        prefix: list[str] = []
        if self.unshare and (self.pid or net):
            prefix = [self.unshare]
            if self.pid:
                prefix += ["--pid", "--fork", "--kill-child", "--mount-proc"]
            if net:
                prefix.append("--net")
            prefix.append("--")
        script = INIT if self.pid else EXEC
        return [*prefix, SH, "-c", script, "jobfleet-init", ip, *join, "--", *argv], self.pid


def _works(argv: list[str]) -> bool:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
