"""A fleet of real processes for end-to-end tests: `jobfleet server`, `jobfleet scheduler`(s) and
`jobfleet worker`s, each a subprocess in a session of its own, on PostgreSQL or SQLite.

Short timeouts keep the tests fast: lease_timeout 3 s, the worker's grace 1 s, polling 0.2 s.
Jobs write their pid to `<root>/pids/<run id>.pid`, so teardown can kill what a SIGKILLed worker
left behind (a job runs in a session of its own and outlives its worker).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobfleet.client.sync import JsonClient as Client
from jobfleet.store import Store
from tests.conftest import truncate
from tests.e2e.conftest import JOBFLEET, free_port, make_env
from tests.helpers import wait_for

TOKEN = "e2e-fleet-admin-token"
LEASE_TIMEOUT = 3.0
CONFIG = f"""
lease_timeout: {LEASE_TIMEOUT}s
reroute_after: 60s
worker:
  grace: 1s
  poll_interval: 0.2s
  run_as: root  # said explicitly: the jobs write their pids under the test's root
"""


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.popen.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Cluster:
    root: Path
    database: str
    backend: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    procs: list[Proc] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        path = self.root / "fleet.yaml"
        if not path.exists():
            path.write_text(CONFIG)
        return path

    @property
    def pids(self) -> Path:
        path = self.root / "pids"
        path.mkdir(exist_ok=True)
        return path

    def _spawn(self, name: str, *args: str) -> Proc:
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [JOBFLEET, *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def server(self, *, wait: bool = True) -> Proc:
        proc = self._spawn(
            "server",
            *("server", "--database", self.database, "--port", str(self.port)),
            *("--data-dir", str(self.root / "server"), "--config", str(self.config)),
        )
        if wait:
            wait_for(lambda: self._ready(proc), timeout=60, interval=0.1, what="the server")
        return proc

    def start(self, *workers: str, scheduler: bool = True) -> dict[str, Proc]:
        """Server, scheduler and workers (1 CPU each) started side by side (a worker retries
        until the server answers), then waited for; the workers by name."""
        server = self.server(wait=False)
        sched = self.scheduler(wait_leading=False) if scheduler else None
        procs = {name: self.worker(name, wait=False) for name in workers}
        wait_for(lambda: self._ready(server), timeout=60, interval=0.1, what="the server")
        if sched is not None:
            self.wait_log(sched, "leading the scheduler role")
        for name in workers:
            self.wait_registered(name)
        return procs

    def _ready(self, proc: Proc) -> bool:
        assert proc.alive, f"server exited:\n{proc.output()}"
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def scheduler(self, name: str = "scheduler", *, wait_leading: bool = True) -> Proc:
        proc = self._spawn(
            name,
            *("scheduler", "--database", self.database, "--config", str(self.config)),
            *("--data-dir", str(self.root / name)),
        )
        if wait_leading:
            self.wait_log(proc, "leading the scheduler role")
        return proc

    def worker(self, name: str, *extra: str, cpu: str = "1", wait: bool = True) -> Proc:
        proc = self._spawn(
            name,
            *("worker", "--server", self.url, "--token", TOKEN, "--name", name),
            *("--cpu", cpu, "--memory", "2Gi", "--data-dir", str(self.root / name)),
            *("--config", str(self.config), *extra),
        )
        if wait:
            self.wait_registered(name)
        return proc

    def wait_registered(self, name: str) -> None:
        wait_for(
            lambda: self.worker_state(name) == "READY",
            timeout=60,
            interval=0.1,
            what=f"worker {name} to register",
        )

    def wait_log(self, proc: Proc, text: str, timeout: float = 30) -> None:
        def seen() -> bool:
            assert proc.alive or text in proc.output(), f"{proc.name} exited:\n{proc.output()}"
            return text in proc.output()

        wait_for(seen, timeout=timeout, interval=0.1, what=f"{text!r} from {proc.name}")

    def client(self) -> Client:
        return Client(self.url, TOKEN, timeout=10)

    def worker_state(self, name: str) -> str | None:
        with self.client() as c:
            return {w["name"]: w["state"] for w in c.workers()}.get(name)

    def job(self, job_id: str) -> dict[str, Any]:
        with self.client() as c:
            return c.get(job_id)

    def submit(self, script: str, **spec: Any) -> str:
        """A shell job that records its pid first (for teardown), then runs `script`."""
        command = f'echo $$ > {self.pids}/"$JOBFLEET_RUN_ID".pid; {script}'
        with self.client() as c:
            return str(c.submit({"command": command, "shell": True, **spec})["id"])

    def wait_job(self, job_id: str, check: Any, timeout: float = 30, what: str = "") -> Any:
        return wait_for(
            lambda: j if check(j := self.job(job_id)) else None,
            timeout=timeout,
            interval=0.1,
            what=what or f"job {job_id}",
        )

    def run_pids(self, run_id: str) -> list[int]:
        """The live processes of a run, by its JOBFLEET_RUN_ID (host pids: in a PID namespace
        the job's own `$$` means nothing out here)."""
        path = self.pids / f"{run_id}.pid"
        wait_for(path.exists, timeout=10, what=f"pid file of {run_id}")
        return processes_of(run_id)

    def stop(self) -> None:
        for proc in self.procs:
            proc.signal(signal.SIGCONT)
            proc.signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        for pidfile in self.pids.glob("*.pid"):
            for pid in processes_of(pidfile.name.removesuffix(".pid")):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


def processes_of(run_id: str) -> list[int]:
    """Live (not zombie) processes whose environment says they belong to `run_id`."""
    marker = f"JOBFLEET_RUN_ID={run_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0") and alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.pg)])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    yield from make_cluster(request, tmp_path, request.param)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.pg)])
def any_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    yield from make_cluster(request, tmp_path, request.param)


def make_cluster(request: pytest.FixtureRequest, root: Path, backend: str) -> Iterator[Cluster]:
    if backend == "postgres":
        database: str = request.getfixturevalue("pg_url")
        store = Store(database)
        truncate(store)
        store.close()
    else:
        database = f"sqlite:///{root / 'fleet.db'}"
    env = make_env(root)
    env["JOBFLEET_ADMIN_TOKEN"] = TOKEN
    c = Cluster(root, database, backend, env)
    try:
        yield c
    finally:
        c.stop()
