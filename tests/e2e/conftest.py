"""End-to-end fixtures: `jobfleet up` as a real subprocess, and the real `jobfleet` CLI.

Every `up` gets its own XDG_CONFIG_HOME and XDG_DATA_HOME, so the profile it saves (and the CLI
then reads) never touches the user's. JOBFLEET_ADMIN_TOKEN, JOBFLEET_SERVER, JOBFLEET_TOKEN and
JOBFLEET_CONFIG are removed from the environment so that the first-start token creation and the
saved profile are what the CLI uses.

On PostgreSQL the session database of `pg_url` is emptied before each `up` starts (so the admin
token is created afresh); only one `up` runs on it at a time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from jobfleet.client.sync import JsonClient as Client
from jobfleet.store import Store
from tests.conftest import truncate
from tests.helpers import wait_for

JOBFLEET = str(Path(sys.executable).with_name("jobfleet"))
START_TIMEOUT = 30.0
STOP_TIMEOUT = 25.0  # the worker's grace (10 s) plus uvicorn's graceful shutdown, with margin
SCRUBBED = ("JOBFLEET_ADMIN_TOKEN", "JOBFLEET_SERVER", "JOBFLEET_TOKEN", "JOBFLEET_CONFIG")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["XDG_CONFIG_HOME"] = str(root / "xdg-config")
    env["XDG_DATA_HOME"] = str(root / "xdg-data")
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    return env


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 30.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `jobfleet` console script; output captured (pipes closed by `run`)."""
    return subprocess.run(
        [JOBFLEET, *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def pgrep(pattern: str) -> list[int]:
    """Pids whose full command line contains `pattern` (never this test process)."""
    done = subprocess.run(
        ["pgrep", "-f", "--", pattern], capture_output=True, text=True, check=False
    )
    return [int(p) for p in done.stdout.split() if int(p) != os.getpid()]


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Fleet:
    """One `jobfleet up` process and the environment its CLI calls share."""

    root: Path
    data_dir: Path
    env: dict[str, str]
    port: int
    database: str | None
    config: Path | None
    backend: str
    proc: subprocess.Popen[bytes] | None = None
    session: int = 0  # `up` leads a session of its own: its helper processes stay in it
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    @property
    def profile(self) -> Path:
        return Path(self.env["XDG_CONFIG_HOME"]) / "jobfleet" / "profile.json"

    def argv(self) -> list[str]:
        argv = [JOBFLEET, "up", "--data-dir", str(self.data_dir), "--port", str(self.port)]
        if self.database:
            argv += ["--database", self.database]
        if self.config:
            argv += ["--config", str(self.config)]
        return argv

    def start(self) -> Fleet:
        assert self.proc is None, "already running"
        self.starts += 1
        log = self.root / f"up-{self.starts}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv(),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        self.session = self.proc.pid
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"`jobfleet up` exited with {self.proc.returncode}:\n{self.output()}"
                )
            try:
                return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=START_TIMEOUT, interval=0.1, what=f"{self.url}/readyz")

    def output(self, start: int | None = None) -> str:
        """What `up` printed (stdout and stderr), of its last start or of start number `start`."""
        path = self.logs[-1 if start is None else start - 1]
        return path.read_text(errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send `sig`, wait (bounded) for the exit, SIGKILL after the bound; the exit code."""
        proc, self.proc = self.proc, None
        assert proc is not None, "not running"
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                raise AssertionError(
                    f"`jobfleet up` did not exit within {timeout}s of {sig.name}"
                ) from None
        return proc.returncode

    def leftovers(self) -> list[int]:
        """Live processes still in the session of the last `up` (its helpers; jobs have their
        own sessions). Zombies waiting for init to reap them do not count."""
        done = subprocess.run(
            ["ps", "-s", str(self.session), "-o", "pid=,stat="],
            capture_output=True,
            text=True,
            check=False,
        )
        rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
        return [int(pid) for pid, stat, *_ in rows if not stat.startswith("Z")]

    def cli(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return run_cli(self.env, *args, timeout=timeout, cwd=self.root)

    def cli_many(
        self, *calls: Sequence[str], timeout: float = 30.0
    ) -> list[subprocess.CompletedProcess[str]]:
        """Independent CLI calls run side by side (each costs ~0.6 s of interpreter start)."""
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            futures = [pool.submit(self.cli, *args, timeout=timeout) for args in calls]
            return [f.result() for f in futures]

    def client(self) -> Client:
        return Client(self.url, self.token, timeout=10)

    def job(self, job_id: str) -> dict[str, Any]:
        with self.client() as c:
            return c.get(job_id)

    def wait_state(self, job_id: str, *states: str, timeout: float = 15.0) -> dict[str, Any]:
        with self.client() as c:
            return wait_for(
                lambda: (job := c.get(job_id))["state"] in states and job,
                timeout=timeout,
                interval=0.1,
                what=f"job {job_id} to be {'/'.join(states)}",
            )


def new_fleet(
    root: Path,
    backend: str,
    request: pytest.FixtureRequest,
    *,
    config: Path | None = None,
    jobs_as_root: bool = True,
) -> Fleet:
    """A stopped fleet on a fresh data dir (and, on PostgreSQL, an emptied database).

    The tests run as root and their jobs use the tests' files: unless `jobs_as_root` is
    False, the config says `worker.run_as: root` explicitly (added to the given file, or a
    file of its own)."""
    database = None
    if backend == "postgres":
        database = request.getfixturevalue("pg_url")
        store = Store(database)
        truncate(store)
        store.close()
    root.mkdir(parents=True, exist_ok=True)
    if jobs_as_root:
        config = _jobs_as_root(root, config)
    return Fleet(
        root=root,
        data_dir=root / "data",
        env=make_env(root),
        port=free_port(),
        database=database,
        config=config,
        backend=backend,
    )


def _jobs_as_root(root: Path, config: Path | None) -> Path:
    data: dict[str, Any] = {}
    if config is not None:
        data = yaml.safe_load(config.read_text()) or {}
    data.setdefault("worker", {}).setdefault("run_as", "root")
    target = config or root / "jobs-as-root.yaml"
    target.write_text(yaml.safe_dump(data))
    return target


def finish(fleet: Fleet) -> None:
    """Teardown: stop `up` if it still runs (the exit code is judged by the tests that care)."""
    try:
        if fleet.proc is not None:
            fleet.stop()
    finally:
        if fleet.session:
            kill_pids(fleet.leftovers())


BACKENDS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.pg)]


@pytest.fixture(scope="module", params=BACKENDS)
def shared_fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """One running `jobfleet up` per backend for a whole module (tests use unique job sets)."""
    f = new_fleet(tmp_path_factory.mktemp(f"up-{request.param}"), request.param, request)
    try:
        yield f.start()
    finally:
        finish(f)


from tests.e2e.cluster import any_cluster, cluster  # noqa: E402  (fleet fixtures)

__all__ = ["any_cluster", "cluster"]
