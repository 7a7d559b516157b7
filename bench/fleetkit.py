"""A fleet of real processes for the fleet benchmarks: `jobfleet server`, `jobfleet scheduler`s,
`jobfleet worker`s on one database (each in a session of its own; all killed at the end)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import BenchError, free_port


class Fleet:
    def __init__(self, jobfleet: str, database: str, workdir: Path, lease_timeout: float) -> None:
        self.jobfleet = jobfleet
        self.database = database
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_urlsafe(24)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("JOBFLEET_")}
        self.env["JOBFLEET_ADMIN_TOKEN"] = self.token
        self.env["XDG_CONFIG_HOME"] = str(workdir / "config")
        self.config = workdir / "fleet.yaml"
        self.config.write_text(
            f"lease_timeout: {lease_timeout}s\nworker: {{grace: 1s, poll_interval: 0.2s}}\n"
        )
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [self.jobfleet, *args, "--config", str(self.config)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def server(self) -> None:
        self.spawn(
            "server",
            *("server", "--database", self.database, "--port", str(self.port)),
            *("--data-dir", str(self.workdir / "server")),
        )
        wait(self._ready, 60, "the server to answer /readyz")

    def _ready(self) -> bool:
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def scheduler(self, name: str) -> None:
        self.spawn(
            name,
            *("scheduler", "--database", self.database),
            *("--data-dir", str(self.workdir / name)),
        )
        wait(lambda: "jobfleet scheduler on" in self.log(name), 60, f"{name} to start")

    def leader(self) -> str | None:
        leading = [n for n in self.procs if n.startswith("sched") and self.alive(n)]
        return next((n for n in leading if "leading the scheduler role" in self.log(n)), None)

    def worker(self, name: str, cpu: str = "2") -> None:
        self.spawn(
            name,
            *("worker", "--server", self.url, "--token", self.token, "--name", name),
            *("--cpu", cpu, "--memory", "4Gi", "--data-dir", str(self.workdir / name)),
        )
        wait(lambda: self.worker_state(name) == "READY", 60, f"worker {name} to register")

    def worker_state(self, name: str) -> str | None:
        items = self.http.get("/v1/workers").json()["items"]
        return {w["name"]: w["state"] for w in items}.get(name)

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def kill(self, name: str) -> float:
        """SIGKILL `name`; returns the wall-clock time of the kill."""
        at = time.time()
        self.procs[name].kill()
        self.procs[name].wait(10)
        return at

    def submit(self, command: str) -> str:
        r = self.http.post("/v1/jobs", json={"command": command, "shell": True})
        if r.status_code != 201:
            raise BenchError(f"submit refused: {r.status_code} {r.text}")
        return str(r.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get(f"/v1/jobs/{job_id}").json()
        return body

    def event_time(self, job_id: str, etype: str) -> float | None:
        items = self.http.get(f"/v1/jobs/{job_id}/events").json()["items"]
        times = [parse(e["time"]) for e in items if e["type"] == etype]
        return times[-1] if times else None

    def close(self) -> None:
        self.http.close()
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        for pidfile in (self.workdir / "pids").glob("*.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
                os.killpg(int(pidfile.read_text().strip()), signal.SIGKILL)


def parse(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
