"""Run isolation: resource limits (a backend) plus namespaces, behind one interface.

`Isolation.detect` picks the strongest backend that really works on this machine (cgroup v2,
then cgroup v1, then rlimits) by creating and removing a test cgroup, and probes namespaces
by running `unshare`. The executor calls `prepare` before a run starts and `release` after it
ended; `info()` is what the worker logs at start and advertises (workers.info["isolation"]).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from jobfleet.worker.isolation.base import (
    DEFAULT_PIDS,
    Backend,
    IsolationError,
    Limits,
    RunCgroup,
    safe_name,
)
from jobfleet.worker.isolation.cgroup1 import CgroupV1
from jobfleet.worker.isolation.cgroup2 import CgroupV2
from jobfleet.worker.isolation.namespaces import Namespaces
from jobfleet.worker.isolation.rlimits import NoLimits, Rlimits

__all__ = ["DEFAULT_PIDS", "Isolation", "IsolationError", "Limits", "Prepared", "worker_dir"]

Mode = Literal["auto", "cgroup2", "cgroup1", "rlimits", "none"]
log = logging.getLogger("jobfleet.worker")


@dataclass
class Prepared:
    """One run's isolation: the argv to spawn, a pre-exec hook, its cgroup."""

    argv: list[str]
    preexec: Callable[[], None] | None
    cgroup: RunCgroup | None
    signal_as_status: bool  # a PID-1 shell init reports "killed by N" as exit 128+N
    network_namespace: bool = False  # spawn it in a new network namespace (loopback only)


def worker_dir(name: str, data_dir: str) -> str:
    """The worker's cgroup folder: its name plus a hash of its data dir (two test stacks on
    one machine may share a worker name, never a data dir)."""
    digest = hashlib.sha1(data_dir.encode()).hexdigest()[:8]
    return f"{safe_name(name)}-{digest}"


class Isolation:
    def __init__(
        self,
        backend: Backend,
        namespaces: Namespaces,
        *,
        sealed: bool = False,
        pids: int | None = DEFAULT_PIDS,
        skipped: dict[str, str] | None = None,
    ) -> None:
        self.backend = backend
        self.namespaces = namespaces
        self.sealed = sealed
        self.pids = pids
        self.skipped = skipped or {}

    @classmethod
    def detect(
        cls,
        mode: Mode = "auto",
        *,
        worker: str,
        namespaces: bool = True,
        sealed: bool = False,
        pids: int | None = DEFAULT_PIDS,
    ) -> Isolation:
        backend, skipped = _choose(mode, worker)
        ns = Namespaces.probe(namespaces)
        if sealed and not ns.net:
            raise IsolationError(
                "sealed: true needs network namespaces, and this worker cannot create them "
                f"({ns.why_not})"
            )
        return cls(backend, ns, sealed=sealed, pids=pids, skipped=skipped)

    @classmethod
    def plain(cls) -> Isolation:
        """No limits, no namespaces: a process group and a working dir (unit tests, bench)."""
        return cls(NoLimits(), Namespaces(why_not="not probed"), pids=None)

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.backend.name, **self.backend.features()}
        out.update(self.namespaces.features())
        out["pids_limit"] = self.pids if self.backend.name.startswith("cgroup") else None
        out["sealed"] = self.sealed
        if self.skipped:
            out["not_usable"] = self.skipped
        return out

    def summary(self) -> str:
        """`info()` as one line for people: "cgroup1 (memory, cpu, pids <= 4096, OOM
        detection), PID and network namespaces; not usable: cgroup2 (...)"."""
        info = self.info()
        limits = [k for k in ("memory", "cpu", "pids") if info.get(k)]
        if "pids" in limits and info.get("pids_limit"):
            limits[limits.index("pids")] = f"pids <= {info['pids_limit']}"
        if info.get("oom_detection"):
            limits.append("OOM detection")
        text = str(info["backend"]) + (f" ({', '.join(limits)})" if limits else "")
        spaces = [
            n
            for k, n in (("pid_namespace", "PID"), ("network_namespace", "network"))
            if info.get(k)
        ]
        text += f", {' and '.join(spaces)} namespaces" if spaces else ", no namespaces"
        if info.get("sealed"):
            text += ", sealed"
        skipped = info.get("not_usable") or {}
        if skipped:
            text += "; not usable: " + "; ".join(f"{k} ({v})" for k, v in skipped.items())
        return text

    def weaknesses(self) -> list[str]:
        """What this worker cannot enforce, in words (empty when it has everything)."""
        out = []
        if not self.backend.name.startswith("cgroup"):
            why = ", ".join(f"{k}: {v}" for k, v in self.skipped.items()) or "by configuration"
            out.append(f"no cgroup limits, using {self.backend.name} ({why})")
        if not self.namespaces.pid:
            out.append(f"no PID namespaces ({self.namespaces.why_not})")
        if not self.namespaces.net:
            out.append(
                f"no network namespaces: network: none jobs fail ({self.namespaces.why_not})"
            )
        return out

    def sweep(self) -> int:
        return self.backend.sweep()

    def close(self) -> None:
        """The worker stops: remove its cgroup folder (its runs' cgroups are gone already)."""
        self.backend.close()

    def prepare(self, run_id: str, argv: list[str], limits: Limits, network: str) -> Prepared:
        """Create the run's cgroup and the argv that joins it. Raises IsolationError/OSError."""
        net = network == "none" or self.sealed
        if net and not self.namespaces.net:
            raise IsolationError(
                "the job needs a network namespace (network: none or a sealed deployment) and "
                f"this worker cannot create one ({self.namespaces.why_not})"
            )
        limits = Limits(limits.memory, limits.cpu_milli, self.pids, limits.timeout)
        group = self.backend.create(run_id, limits)
        join = group.procs_files() if group is not None else []
        wrapped, as_status = self.namespaces.wrap(argv, join)
        return Prepared(wrapped, self.backend.preexec(limits), group, as_status, net)

    @staticmethod
    def release(prepared: Prepared) -> None:
        """Kill whatever is left in the run's cgroup and remove it."""
        if prepared.cgroup is not None:
            prepared.cgroup.remove()


def _choose(mode: Mode, worker: str) -> tuple[Backend, dict[str, str]]:
    skipped: dict[str, str] = {}
    if mode == "none":
        return NoLimits(), skipped
    order: list[Mode] = ["cgroup2", "cgroup1", "rlimits"] if mode == "auto" else [mode]
    for name in order:
        if name == "rlimits":
            return Rlimits(), skipped
        backend = CgroupV2(worker) if name == "cgroup2" else CgroupV1(worker)
        try:
            backend.probe()
        except OSError as exc:
            skipped[name] = str(exc)
            continue
        return backend, skipped
    raise IsolationError(f"worker.isolation: {mode} is not usable here: {skipped[mode]}")
