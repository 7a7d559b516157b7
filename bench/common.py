"""Shared helpers for the jobfleet benchmarks.

- machine description (CPU model, nproc, memory, kernel, Python) and a host-speed sentinel;
- a throw-away database per benchmark (SQLite file, or a fresh PostgreSQL database that is dropped
  at the end);
- a real `jobfleet up` server as a subprocess (own data dir, own XDG_CONFIG_HOME, known admin token,
  free port), stopped with SIGTERM (SIGKILL after 10 s);
- a tiny Server-Sent-Events parser and a background reader of `GET /v1/events`;
- statistics and report formatting shared by the three benchmarks.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JOBFLEET = REPO / ".venv" / "bin" / "jobfleet"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TERMINAL_BAD = frozenset({"failed", "cancelled", "preempted"})


class BenchError(RuntimeError):
    """A benchmark could not produce a valid figure; the message says why."""


# --------------------------------------------------------------------------- output


def say(*parts: object) -> None:
    print(*parts, flush=True)


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ms(x: float) -> str:
    return f"{x:.2f}" if x < 100 else f"{x:,.0f}"


def now_utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


# --------------------------------------------------------------------------- machine


@dataclass
class Machine:
    cpu: str
    nproc: int
    memory_gib: float
    kernel: str
    python: str
    jobfleet: str
    git: str
    speed: float

    def line(self) -> str:
        return (
            f"{self.cpu} | nproc {self.nproc} | {self.memory_gib:.1f} GiB RAM | "
            f"kernel {self.kernel} | Python {self.python}"
        )

    def short(self) -> str:
        return f"{self.cpu} x{self.nproc}, {self.memory_gib:.0f} GiB, Python {self.python}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("model name", "Hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _memory_gib() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / (1024 * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


def _nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _git() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        rev = git("rev-parse", "--short", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return "git: no commit"
    try:
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        dirty = False
    return f"git {rev}{' + uncommitted changes' if dirty else ''}"


def cpu_index(loops: int = 2_000_000) -> float:
    """Host-speed sentinel: pure-Python loop iterations per microsecond (same as the peer bench)."""
    t0 = time.perf_counter()
    x = 0
    for i in range(loops):
        x += i & 7
    return loops / (time.perf_counter() - t0) / 1e6


def machine() -> Machine:
    try:
        version = importlib.metadata.version("jobfleet")
    except importlib.metadata.PackageNotFoundError:
        version = "not installed"
    return Machine(
        cpu=_cpu_model(),
        nproc=_nproc(),
        memory_gib=_memory_gib(),
        kernel=platform.release(),
        python=platform.python_version(),
        jobfleet=version,
        git=_git(),
        speed=cpu_index(),
    )


def print_header(name: str, m: Machine, args: argparse.Namespace) -> None:
    say(f"== jobfleet benchmark: {name} ==")
    say(f"date:     {now_utc()}")
    say(f"machine:  {m.line()}")
    say(
        f"jobfleet: {m.jobfleet} ({m.git}); host-speed sentinel {m.speed:.1f} "
        "(pure-Python loop iterations per µs; lower = slower host right now)"
    )
    say(f"runs:     {args.runs} (median reported)")
    if os.environ.get("JOBFLEET_CONFIG"):
        say(f"note:     JOBFLEET_CONFIG={os.environ['JOBFLEET_CONFIG']} is passed to the server")


# --------------------------------------------------------------------------- statistics


def percentile(xs: Sequence[float], p: float) -> float:
    """Percentile with linear interpolation between closest ranks (numpy's 'linear')."""
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(s) - 1)
    return s[f] + (s[c] - s[f]) * (k - f)


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def parse_time(s: str) -> datetime:
    """An ISO-8601 event `time` (with `Z` or an offset) as an aware datetime."""
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    return datetime.fromisoformat(s)


# --------------------------------------------------------------------------- databases


@dataclass
class Backend:
    name: str  # "sqlite" | "postgres"
    url: str  # what the server gets as --database
    label: str  # for printing (password hidden)
    version: str


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _psycopg_url(url: str) -> str:
    """SQLAlchemy-style `postgresql+psycopg://` -> libpq `postgresql://`."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def _with_dbname(url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + dbname))


def _pg_version(conn: Any) -> str:
    row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0].split()[0]}" if row else "PostgreSQL"


def expand_databases(arg: str) -> list[str]:
    return ["sqlite", "postgres"] if arg == "all" else [arg]


@contextlib.contextmanager
def database(spec: str, workdir: Path) -> Iterator[Backend]:
    """A database for one server: `sqlite`, `postgres` (fresh database, dropped after) or a URL
    (used as given, neither created nor dropped)."""
    if spec == "sqlite":
        url = f"sqlite:///{workdir}/bench.db"
        yield Backend("sqlite", url, url, f"SQLite {sqlite3.sqlite_version}")
        return
    if spec != "postgres":
        name = "sqlite" if spec.startswith("sqlite") else "postgres"
        version = f"SQLite {sqlite3.sqlite_version}" if name == "sqlite" else "PostgreSQL"
        if name == "postgres":
            with contextlib.suppress(Exception):
                import psycopg

                with psycopg.connect(_psycopg_url(spec), connect_timeout=5) as conn:
                    version = _pg_version(conn)
        say(f"   note: using the database at {redact(spec)} as it is (not created, not dropped)")
        yield Backend(name, spec, redact(spec), version)
        return

    import psycopg
    from psycopg import sql

    base = os.environ.get("JOBFLEET_BENCH_PG_URL") or DEFAULT_PG_URL
    dbname = f"jobfleet_bench_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(_psycopg_url(base), autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        raise BenchError(
            f"cannot connect to PostgreSQL at {redact(base)}: {e}".rstrip()
            + "\n   set JOBFLEET_BENCH_PG_URL (a URL whose user may CREATE DATABASE)"
            " or use --database sqlite"
        ) from e
    with admin:
        version = _pg_version(admin)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        url = _with_dbname(base, dbname)
        try:
            yield Backend("postgres", url, redact(url), version)
        finally:
            try:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(dbname)
                    )
                )
            except psycopg.Error as e:
                say(f"   warning: could not drop database {dbname}: {e}")


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"({path} unreadable)"
    out = text.splitlines()[-lines:]
    return "\n".join("      | " + x for x in out) if out else "      | (empty)"


class Server:
    """One `jobfleet up` subprocess with its own data dir, config home, port and admin token."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        jobfleet: str | Path = DEFAULT_JOBFLEET,
        ready_timeout: float = 60.0,
    ) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.jobfleet = str(jobfleet)
        self.ready_timeout = ready_timeout
        self.port = free_port()
        self.token = secrets.token_urlsafe(24)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = workdir / "server.stdout.log"
        self.stderr_path = workdir / "server.stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle
    def start(self) -> float:
        """Start the server and wait for GET /readyz = 200; returns the seconds it took."""
        if not os.access(self.jobfleet, os.X_OK):
            raise BenchError(f"{self.jobfleet} is not an executable (use --jobfleet PATH)")
        data_dir = self.workdir / "data"
        config_home = self.workdir / "config"
        data_dir.mkdir(parents=True, exist_ok=True)
        config_home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["JOBFLEET_ADMIN_TOKEN"] = self.token
        env["XDG_CONFIG_HOME"] = str(config_home)
        for k in ("JOBFLEET_SERVER", "JOBFLEET_TOKEN"):  # client settings: not for the server
            env.pop(k, None)
        cmd = [
            self.jobfleet,
            "up",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database",
            self.database_url,
        ]
        t0 = time.perf_counter()
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # own process group: leftovers can be cleaned by pgid
            )
        try:
            self._wait_ready(t0)
            self._check_token()
        except BaseException:
            self.stop(quiet=True)
            raise
        return time.perf_counter() - t0

    def _failure(self, what: str) -> BenchError:
        return BenchError(
            f"{what}\n   command: {self.jobfleet} up --port {self.port} "
            f"--database {redact(self.database_url)}\n"
            f"   server stderr (last lines of {self.stderr_path}):\n{_tail(self.stderr_path)}"
        )

    def _wait_ready(self, t0: float) -> None:
        assert self.proc is not None
        deadline = t0 + self.ready_timeout
        last = "no answer yet"
        with httpx.Client(base_url=self.base_url, timeout=2.0) as c:
            while True:
                rc = self.proc.poll()
                if rc is not None:
                    raise self._failure(
                        f"`jobfleet up` exited with status {rc} before it was ready"
                    )
                try:
                    r = c.get("/readyz")
                    if r.status_code == 200:
                        return
                    last = f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as e:
                    last = f"{type(e).__name__}: {e}"
                if time.perf_counter() > deadline:
                    raise self._failure(
                        f"`jobfleet up` not ready after {self.ready_timeout:.0f} s "
                        f"(GET /readyz: {last})"
                    )
                time.sleep(0.1)

    def _check_token(self) -> None:
        with self.client() as c:
            r = c.get("/v1/jobs", params={"limit": 1})
        if r.status_code in (401, 403):
            raise self._failure(
                f"the server refused the admin token from JOBFLEET_ADMIN_TOKEN "
                f"(GET /v1/jobs: HTTP {r.status_code})"
            )

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise self._failure(f"`jobfleet up` exited (status {self.proc.returncode}) mid-run")

    def stop(self, quiet: bool = False) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL the process group."""
        p = self.proc
        if p is None:
            return
        self.proc = None
        t0 = time.perf_counter()
        how = "SIGTERM"
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                how = "SIGKILL after 10 s (SIGTERM ignored)"
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        # anything of the server's process group still alive is a leftover child: remove it
        leftovers = False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, 0)
            leftovers = True
            os.killpg(p.pid, signal.SIGKILL)
        if not quiet:
            say(
                f"   server stopped: {how}, exit status {p.returncode}, "
                f"{time.perf_counter() - t0:.1f} s"
                + ("; killed processes it left behind in its group" if leftovers else "")
            )

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP
    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
        )


# --------------------------------------------------------------------------- HTTP helpers


def _problem(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:500]
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("title", "detail") if body.get(k)]
        if body.get("errors"):
            parts.append(json.dumps(body["errors"])[:400])
        if parts:
            return "; ".join(parts)
    return json.dumps(body)[:500]


def submit_batch(client: httpx.Client, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST /v1/jobs {"jobs": [...]}; returns the jobs (checked: 201, same count)."""
    r = client.post("/v1/jobs", json={"jobs": specs})
    if r.status_code != 201:
        raise BenchError(f"batch submit: HTTP {r.status_code}: {_problem(r)}")
    jobs = r.json().get("jobs")
    if not isinstance(jobs, list) or len(jobs) != len(specs):
        got = len(jobs) if isinstance(jobs, list) else "no"
        raise BenchError(f"batch submit: sent {len(specs)} specs, got {got} jobs back")
    return jobs


def submit_one(client: httpx.Client, spec: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/jobs with one spec; returns the job (checked: 201)."""
    r = client.post("/v1/jobs", json=spec)
    if r.status_code != 201:
        raise BenchError(f"submit: HTTP {r.status_code}: {_problem(r)}")
    job: dict[str, Any] = r.json()
    return job


def cancel_job_set(client: httpx.Client, queue: str, job_set: str) -> str:
    """Cancel what is left of a job set (clean-up outside the measurement); returns a note."""
    t0 = time.perf_counter()
    try:
        r = client.post(f"/v1/job-sets/{queue}/{job_set}/cancel", json={}, timeout=600)
    except httpx.HTTPError as e:
        return f"cancelling job set {job_set} failed: {type(e).__name__}: {e}"
    dt = time.perf_counter() - t0
    if r.status_code >= 300:
        return f"cancelling job set {job_set} failed: HTTP {r.status_code}: {_problem(r)}"
    try:
        n = r.json().get("cancelled")
    except ValueError:
        n = "?"
    return f"cancelled job set {job_set} ({n} jobs) in {dt:.1f} s, not measured"


def count_states(client: httpx.Client, job_set: str, limit_pages: int = 200) -> Counter[str]:
    """States of a job set's jobs as the server lists them (GET /v1/jobs paginated)."""
    states: Counter[str] = Counter()
    cursor: str | None = None
    for _ in range(limit_pages):
        params: dict[str, Any] = {"job_set": job_set, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/v1/jobs", params=params)
        r.raise_for_status()
        body = r.json()
        states.update(str(j.get("state")) for j in body.get("items", []))
        cursor = body.get("next_cursor")
        if not cursor:
            break
    return states


# --------------------------------------------------------------------------- SSE


@dataclass
class SSEMessage:
    event: str
    data: str
    id: str | None


class SSEParser:
    """Minimal text/event-stream parser: `id:`, `event:`, `data:`, `:` comments, blank line
    dispatches (one leading space after the colon is dropped; several `data:` lines join with
    newlines; a block without data dispatches nothing)."""

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.comments = 0
        self._event = ""
        self._data: list[str] = []

    def feed_line(self, line: str) -> SSEMessage | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        return None  # `retry:` and unknown fields are ignored

    def _dispatch(self) -> SSEMessage | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return SSEMessage(event, "\n".join(data), self.last_event_id)

    def feed(self, lines: Iterable[str]) -> Iterator[SSEMessage]:
        for line in lines:
            msg = self.feed_line(line)
            if msg is not None:
                yield msg


@dataclass
class Received:
    t: float  # time.perf_counter() when the event arrived at the client
    type: str
    event: dict[str, Any]

    @property
    def job_id(self) -> str:
        return str(self.event.get("job_id"))


class EventStream:
    """Follows `GET /v1/events` (SSE) in a background thread and hands every event to a callback.

    Starts with `after=0`, so nothing of a fresh job set is missed however late the subscription
    becomes live on the server; reconnects (a few times) after the last id it saw."""

    def __init__(
        self,
        server: Server,
        params: dict[str, str],
        on_event: Callable[[Received], None],
        max_reconnects: int = 5,
    ) -> None:
        self.server = server
        self.params = params
        self.on_event = on_event
        self.max_reconnects = max_reconnects
        self.reconnects = 0
        self.heartbeats = 0
        self.last_id: str | None = None
        self.error: BaseException | None = None
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, name="sse-reader", daemon=True)

    def start(self, timeout: float = 15.0) -> EventStream:
        self._thread.start()
        if not self._connected.wait(timeout) or self.error is not None:
            self.stop()
            raise BenchError(f"GET /v1/events did not open: {self.error or 'timed out'}")
        return self

    def check(self) -> None:
        if self.error is not None:
            raise BenchError(f"event stream broke: {type(self.error).__name__}: {self.error}")

    def _run(self) -> None:
        timeout = httpx.Timeout(10.0, read=60.0)  # the server sends a heartbeat every ≤15 s
        failures = 0
        try:
            with self.server.client(timeout=60.0) as client:
                while not self._stopping.is_set():
                    try:
                        self._follow(client, timeout)
                        if self._stopping.is_set():
                            return
                        raise BenchError("the server closed the event stream")
                    except (httpx.HTTPError, BenchError) as e:
                        if self._stopping.is_set():
                            return
                        if not self._connected.is_set() or failures >= self.max_reconnects:
                            raise
                        failures += 1
                        self.reconnects += 1
                        say(f"   warning: event stream dropped ({e}); reconnecting")
                        time.sleep(0.2)
        except BaseException as e:
            if not self._stopping.is_set():
                self.error = e
        finally:
            self._connected.set()  # release start() on failure

    def _follow(self, client: httpx.Client, timeout: httpx.Timeout) -> None:
        params = dict(self.params, after=self.last_id or "0")
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        with client.stream(
            "GET", "/v1/events", params=params, headers=headers, timeout=timeout
        ) as r:
            if r.status_code != 200:
                r.read()
                raise BenchError(f"GET /v1/events: HTTP {r.status_code}: {_problem(r)}")
            self._response = r
            self._connected.set()
            parser = SSEParser()
            for line in r.iter_lines():
                msg = parser.feed_line(line)
                if msg is None:
                    self.heartbeats = parser.comments
                    continue
                t = time.perf_counter()
                self.last_id = msg.id or self.last_id
                try:
                    ev = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(ev, dict):
                    self.on_event(Received(t, str(ev.get("type") or msg.event), ev))

    def stop(self) -> None:
        self._stopping.set()
        r = self._response
        if r is not None:
            # shutdown() wakes the reader blocked in recv(); close() alone would not
            stream = r.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EventRecorder:
    """Callback for EventStream: keeps the first arrival of each (job, type) and counts."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.first: dict[str, dict[str, Received]] = {}
        self.counts: Counter[str] = Counter()
        self.succeeded: set[str] = set()
        self.last_success: float = float("nan")
        self.bad: list[Received] = []
        self.duplicates = 0

    def __call__(self, r: Received) -> None:
        with self.cond:
            per_job = self.first.setdefault(r.job_id, {})
            if r.type in per_job:
                self.duplicates += 1
            else:
                per_job[r.type] = r
                self.counts[r.type] += 1
                if r.type == "succeeded":
                    self.succeeded.add(r.job_id)
                    self.last_success = r.t
                elif r.type in TERMINAL_BAD:
                    self.bad.append(r)
            self.cond.notify_all()

    def get(self, job_id: str, type_: str) -> Received | None:
        with self.cond:
            return self.first.get(job_id, {}).get(type_)

    def wait_terminal(self, job_id: str, timeout: float) -> Received | None:
        """Wait for the job's succeeded (or failed/cancelled/preempted) event."""
        deadline = time.perf_counter() + timeout
        with self.cond:
            while True:
                per_job = self.first.get(job_id, {})
                for t in ("succeeded", *TERMINAL_BAD):
                    if t in per_job:
                        return per_job[t]
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.5))


def describe_bad(bad: Sequence[Received], limit: int = 5) -> str:
    lines = []
    for r in bad[:limit]:
        f = r.event.get("failure") or {}
        detail = ", ".join(
            f"{k}={f[k]!r}" for k in ("condition", "exit_code", "message") if f.get(k) is not None
        )
        lines.append(f"      job {r.job_id}: {r.type} {detail}".rstrip())
    if len(bad) > limit:
        lines.append(f"      ... and {len(bad) - limit} more")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI scaffolding


def base_parser(
    name: str, description: str, default_database: str, default_n: int
) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)
    ap.add_argument(
        "--database",
        default=default_database,
        help="sqlite | postgres | all (both) | a database URL used as it is "
        f"(default: {default_database}); postgres creates a fresh database on "
        f"$JOBFLEET_BENCH_PG_URL (default {DEFAULT_PG_URL}) and drops it at the end",
    )
    ap.add_argument("-n", type=int, default=default_n, help=f"jobs per run (default {default_n:,})")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure; the median is reported")
    ap.add_argument(
        "--jobfleet",
        default=str(DEFAULT_JOBFLEET),
        help="the jobfleet executable to start as `jobfleet up` (default: the repo's .venv)",
    )
    ap.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for GET /readyz = 200 (default 60)",
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (server logs, SQLite)"
    )
    ap.add_argument(
        "--json",
        metavar="FILE",
        help="also write the figures as JSON to FILE (what `make bench-peers` reads)",
    )
    return ap


def write_json(args: argparse.Namespace, name: str, backends: dict[str, dict[str, Any]]) -> None:
    """With --json FILE: the run's figures, machine, date and commit as one JSON document."""
    path = getattr(args, "json", None)
    if not path:
        return
    m: Machine = args.machine
    doc = {
        "bench": name,
        "date": now_utc(),
        "git": m.git,
        "jobfleet": m.jobfleet,
        "speed": m.speed,
        "machine": m.line(),
        "runs": args.runs,
        "n": args.n,
        "config": os.environ.get("JOBFLEET_CONFIG"),
        "backends": backends,
    }
    Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    say(f"figures written to {path}")


def check_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.n < 1:
        ap.error("-n must be at least 1")
    if args.runs < 1:
        ap.error("--runs must be at least 1")


def _sigterm_to_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_backends(
    name: str,
    args: argparse.Namespace,
    body: Callable[[Server, Backend], None],
) -> int:
    """Header, then for each database: fresh database + `jobfleet up`, `body(server, backend)`,
    clean-up. Returns the exit status (1 if any backend failed)."""
    signal.signal(signal.SIGTERM, _sigterm_to_exit)  # run the clean-up on SIGTERM too
    m = machine()
    print_header(name, m, args)
    args.machine = m
    failed: list[str] = []
    for spec in expand_databases(args.database):
        workdir = Path(tempfile.mkdtemp(prefix=f"jobfleet-bench-{name}-"))
        os.chmod(workdir, 0o711)  # as root, jobs run as nobody, who must pass through to them
        say("")
        try:
            with database(spec, workdir) as backend:
                say(f"-- backend: {backend.name} ({backend.version}) {backend.label}")
                server = Server(backend.url, workdir, args.jobfleet, args.ready_timeout)
                with server:
                    took = server.start()
                    say(f"   server: jobfleet up on {server.base_url}, ready in {took:.1f} s")
                    body(server, backend)
                    server.check_alive()
        except BenchError as e:
            failed.append(spec)
            say(f"   FAILED ({spec}): {e}")
        finally:
            if args.keep:
                say(f"   kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        say(f"\nFAILED on: {', '.join(failed)}")
    return 1 if failed else 0


def goal_note(value: float, goal: float, higher_is_better: bool = True) -> str:
    ok = value >= goal if higher_is_better else value <= goal
    return "met" if ok else "NOT met"


def print_summary(line: str) -> None:
    say("\nsummary (one line for bench/RESULTS.md):")
    say(line)


def runs_text(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    return " / ".join(fmt(v) for v in values)


def main_guard(fn: Callable[[], int]) -> None:
    try:
        code = fn()
    except KeyboardInterrupt:
        say("\ninterrupted")
        code = 130
    sys.exit(code)
