"""The dashboard's server time on a big store (PostgreSQL).

Fills a fresh PostgreSQL database with --jobs synthetic jobs (default 1,000,000; one INSERT ...
SELECT generate_series per 100,000, `store/synthetic.py`), gives one real job --events events
(default 10,000: attempts that ran and were requeued, with their runs) and a --log-mb MB log
(default 100), then serves the API app (no scheduler, no worker: nothing else uses the CPU)
and times dashboard pages over loopback HTTP, signed in by the cookie: the jobs table's first
page (goal ≤ 300 ms), filtered and later pages, the job page, its older events, the overview
and the workers page. Each figure is the median (and the slowest) of --runs requests after
one warm-up.

    .venv/bin/python -m bench.ui [--jobs 1000000] [--events 10000] [--log-mb 100] [--runs 7]
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn

from bench.common import (
    BenchError,
    database,
    fmt_ms,
    machine,
    main_guard,
    median,
    print_header,
    print_summary,
    say,
)
from jobfleet.config import Settings
from jobfleet.models import JobSpec
from jobfleet.runfiles import RunFiles
from jobfleet.server.app import create_app
from jobfleet.store import JobFilter, Store
from jobfleet.store.synthetic import fill_history, fill_jobs

GOAL_FIRST_PAGE_MS = 300.0


@contextlib.contextmanager
def serve(app: object) -> Iterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise BenchError("uvicorn did not start within 30 s")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def write_log(path: Path, mb: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = b"step %08d: loss=0.1234 lr=0.0003 tokens/s=51234 " + b"x" * 60 + b"\n"
    block = b"".join(line % i for i in range(8192))
    with open(path, "wb") as f:
        while f.tell() < mb * 2**20:
            f.write(block)


def timed(client: httpx.Client, url: str, runs: int) -> tuple[float, float, int]:
    """(median ms, slowest ms, bytes) of `runs` GETs after one warm-up."""
    r = client.get(url)
    if r.status_code != 200:
        raise BenchError(f"GET {url}: HTTP {r.status_code}: {r.text[:300]}")
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return median(times), max(times), len(r.content)


def fill(store: Store, args: argparse.Namespace, files: RunFiles) -> str:
    t0 = time.perf_counter()

    def progress(done: int) -> None:
        say(f"   filled {done:,} jobs ({time.perf_counter() - t0:.0f} s)")

    fill_jobs(store, args.jobs, progress=progress)
    say(f"   {args.jobs:,} jobs in {time.perf_counter() - t0:.1f} s")
    [job_id] = store.submit([JobSpec(command=["python", "train.py"], job_set="bench-ui")])
    t1 = time.perf_counter()
    run_ids = fill_history(store, job_id, args.events)
    write_log(files.log(run_ids[-1], "stdout"), args.log_mb)
    say(
        f"   job {job_id}: {args.events:,} more events, {len(run_ids):,} runs, "
        f"{args.log_mb} MB log in {time.perf_counter() - t1:.1f} s"
    )
    return job_id


def measure(
    url: str, token: str, job_id: str, store: Store, runs: int
) -> list[tuple[str, float, float, int]]:
    rows: list[tuple[str, float, float, int]] = []
    with httpx.Client(base_url=url, timeout=120) as c:
        if c.post("/ui/login", data={"token": token}).status_code != 303:
            raise BenchError("the dashboard refused the bench token")
        first = c.get("/ui/jobs").text
        cursor = first.split("cursor=", 1)[1].split('"', 1)[0] if "cursor=" in first else ""
        page_events = c.get(f"/ui/jobs/{job_id}").text
        before = page_events.split("events?before=", 1)[1].split('"', 1)[0]
        for name, path in (
            ("jobs table, first page", "/ui/jobs"),
            ("jobs table, next page", f"/ui/jobs?cursor={cursor}"),
            ("jobs table, queue=ml & state=FAILED", "/ui/jobs?queue=ml&state=FAILED"),
            ("jobs table, label team=red", "/ui/jobs?label=team%3Dred"),
            ("jobs table, oldest first", "/ui/jobs?sort=oldest"),
            ("jobs table, text 'echo 4242' (LIKE scan)", "/ui/jobs?q=echo+4242"),
            ("job page (10k events, 100 MB log)", f"/ui/jobs/{job_id}"),
            ("job page, older events", f"/ui/jobs/{job_id}/events?before={before}"),
            ("job page, log tail", f"/ui/jobs/{job_id}/log?stream=stdout"),
            ("overview (counts over every job)", "/ui/"),
            ("workers", "/ui/workers"),
        ):
            rows.append((name, *timed(c, path, runs)))
    for name, call in (
        ("store.page_jobs alone (no HTTP, no template)", lambda: store.page_jobs(JobFilter())),
        ("store.final_counts (overview, every 30 s)", store.final_counts),
        ("store.queue_overview with cached finals", lambda: store.queue_overview(final={})),
        ("store.recent_failures", store.recent_failures),
        ("store.event_rate", store.event_rate),
    ):
        t0 = time.perf_counter()
        call()
        rows.append((name, (time.perf_counter() - t0) * 1000, 0, 0))
    return rows


def run(args: argparse.Namespace) -> int:
    print_header("ui", machine(), args)
    workdir = Path(tempfile.mkdtemp(prefix="jobfleet-bench-ui-"))
    try:
        with database("postgres", workdir) as backend:
            say(f"-- backend: {backend.version} {backend.label}")
            store = Store(backend.url)
            store.migrate()
            store.ensure_defaults()
            for name in ("ml", "etl", "batch"):
                store.upsert_queue(name, weight=2.0 if name == "ml" else 1.0, config={})
            files = RunFiles(workdir / "data")
            job_id = fill(store, args, files)
            token = secrets.token_urlsafe(24)
            store.create_token("bench", admin=True, token=token)
            app = create_app(store, Settings(), files)
            with serve(app) as url:
                rows = measure(url, token, job_id, store, args.runs)
            store.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    say("")
    say(f"{'page':<46} {'median ms':>10} {'slowest':>9} {'bytes':>9}")
    for name, med, worst, size in rows:
        if size:
            say(f"{name:<46} {fmt_ms(med):>10} {fmt_ms(worst):>9} {size:>9,}")
        else:
            say(f"{name:<46} {fmt_ms(med):>10} {'(once)':>9}")
    first = rows[0][1]
    verdict = "met" if first <= GOAL_FIRST_PAGE_MS else "NOT met"
    print_summary(
        f"| jobs table first page, {args.jobs:,} jobs (PostgreSQL) | {fmt_ms(first)} ms | "
        f"≤ {GOAL_FIRST_PAGE_MS:.0f} ms — {verdict} |"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ui", description=__doc__)
    ap.add_argument("--jobs", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--log-mb", type=int, default=100)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(143)))
    try:
        return run(args)
    except BenchError as e:
        say(f"FAILED: {e}")
        return 1


if __name__ == "__main__":
    main_guard(main)
