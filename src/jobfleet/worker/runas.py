"""Whom jobs run as (PRODUCT.md §14.5): never with the worker's rights to jobfleet's secrets.

A worker running as root runs its jobs as `worker.run_as` (default `nobody`; `run_as: root`
must be said explicitly). The switch is util-linux `setpriv`, put in front of the job's argv,
so it happens after the sandbox set-up that needs root (joining the run's cgroup in the
namespace init, isolation/namespaces.py) and the spawn itself stays a plain vfork+exec. What
the job may touch is then what that user may:

- its working directory (made by the worker, then handed over: owner the user, mode 0700),
  its termination log and checkpoint file (made empty, owned by the user, 0600); the folders
  on the way (the data dir, `logs/`, `work/` and their buckets) are 0711: passable, not
  listable, so a run's files are found only by its (random) run id;
- nothing else of the data directory: logs 0600, the admin token, the database, the lock and
  the worker identity 0600 (datadir.py), all owned by root;
- a `file://` payload is read by `cat` run as the user: a file it could not read is a
  START_ERROR (http and s3 payloads are fetched with the worker's own credentials, then
  handed over).

A worker that is not root cannot switch: its jobs run as its own user and can read what it
can (its data directory, the token it was given); it says so at start (docs/operations.md
#security).
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from jobfleet.errors import ConfigError
from jobfleet.worker.payload import PayloadError

log = logging.getLogger("jobfleet.worker")
PASSABLE = 0o711  # the folders between the data dir and a run's own files


@dataclass(frozen=True, slots=True)
class RunAs:
    """The unprivileged user jobs run as, and the `setpriv` that switches to it."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    setpriv: str

    def switch(self) -> list[str]:
        """The argv prefix that runs what follows as this user (no supplementary groups of
        the worker's, no capabilities)."""
        groups = f"--groups={','.join(map(str, self.groups))}" if self.groups else "--clear-groups"
        return [self.setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", groups, "--"]

    def wrap(self, argv: list[str]) -> list[str]:
        return [*self.switch(), *argv]

    def env(self, cwd: Path) -> dict[str, str]:
        home = self.home if os.path.isdir(self.home) else str(cwd)  # nobody's is /nonexistent
        return {"USER": self.name, "LOGNAME": self.name, "HOME": home}

    def hand_over(self, work_dir: Path) -> None:
        """Give the run's working directory (and what the payload put in it) to the user."""
        for root, dirs, files in os.walk(work_dir):
            for name in dirs + files:
                os.chown(os.path.join(root, name), self.uid, self.gid, follow_symlinks=False)
        os.chown(work_dir, self.uid, self.gid)
        os.chmod(work_dir, 0o700)

    def own_file(self, path: Path) -> None:
        """Create `path` empty (if missing), owned by the user, 0600: a file the job writes."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.fchown(fd, self.uid, self.gid)
        finally:
            os.close(fd)

    def copy_file(self, source: str, target: Path, timeout: float) -> None:
        """Copy `source` to `target`, reading it with this user's rights (`cat` as the user)."""
        with open(target, "wb") as out:
            try:
                done = subprocess.run(
                    [*self.switch(), "cat", "--", source],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.PIPE,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                target.unlink(missing_ok=True)
                raise PayloadError(f"reading {source} took more than {timeout:g}s") from exc
        if done.returncode != 0:
            target.unlink(missing_ok=True)
            why = done.stderr.decode(errors="replace").strip().splitlines()
            raise PayloadError(
                f"user {self.name} cannot read {source}: {why[-1] if why else 'cat failed'}"
            )


def resolve(run_as: str) -> RunAs | None:
    """The user to switch to, or None when jobs run as the worker's own user (the worker is
    not root, or `run_as: root`). Raises ConfigError for an unknown user or no setpriv."""
    if os.geteuid() != 0 or run_as in ("root", "0"):
        return None
    try:
        pw = pwd.getpwuid(int(run_as)) if run_as.isdigit() else pwd.getpwnam(run_as)
    except KeyError:
        raise ConfigError(f"worker.run_as: there is no user {run_as!r} on this machine") from None
    if pw.pw_uid == 0:
        return None
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise ConfigError(
            "worker.run_as: running jobs as another user needs util-linux `setpriv`; install "
            "it, or set worker.run_as: root to run jobs as root"
        )
    groups = tuple(sorted(set(os.getgrouplist(pw.pw_name, pw.pw_gid)) - {pw.pw_gid}))
    return RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid, groups, pw.pw_dir, setpriv)


def announce(run_as: RunAs | None, configured: str) -> None:
    """Say at start whom jobs run as, and what that exposes."""
    if run_as is not None:
        log.info("jobs run as user %s (uid %d), not as the worker's root", run_as.name, run_as.uid)
        return
    me = pwd.getpwuid(os.geteuid()).pw_name if _known(os.geteuid()) else str(os.geteuid())
    if os.geteuid() == 0:
        log.warning(
            "jobs run as root (worker.run_as: %s): they can read jobfleet's secrets", configured
        )
        return
    log.warning(
        "jobs run as this worker's own user %s (uid %d; worker.run_as needs a root worker): "
        "they can read what it can, its data directory and token included "
        "(see docs/operations.md#security)",
        me,
        os.geteuid(),
    )


def _known(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def prepare_data_dir(data_dir: Path, run_as: RunAs) -> None:
    """Make the way to the runs' own files passable for the user, and check the folders above
    the data dir are too (else its jobs could not reach their working dirs by path)."""
    for path in (data_dir, data_dir / "logs", data_dir / "work"):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, PASSABLE)
    for parent in data_dir.resolve().parents:
        if not _passable(parent.stat(), run_as):
            raise ConfigError(
                f"worker.run_as: user {run_as.name} cannot pass through {parent} to the data "
                f"directory {data_dir}: use a data directory it can reach (e.g. under "
                "/var/lib), or set worker.run_as: root"
            )


def _passable(st: os.stat_result, run_as: RunAs) -> bool:
    if st.st_uid == run_as.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == run_as.gid or st.st_gid in run_as.groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)
