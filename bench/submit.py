"""Submission throughput of `jobfleet up` over HTTP.

(a) batch: N jobs (default 20,000) in `POST /v1/jobs {"jobs": [...]}` requests of --batch (1,000)
    from one keep-alive httpx.Client;
(b) single: --single-n jobs (default 2,000), one `POST /v1/jobs` each, from --threads (4) threads,
    each with its own httpx.Client.

The jobs ask for --cpu (1000) CPUs, which no worker has, so they stay QUEUED and the figure is the
cost of submission alone. After each run the job set is cancelled (not measured) so the scheduler
does not carry every earlier run's jobs around.

    .venv/bin/python -m bench.submit [--database sqlite|postgres|all|URL] [-n N] [--runs 3]
"""

from __future__ import annotations

import argparse
import secrets
import threading
import time
from typing import Any

from bench.common import (
    Backend,
    BenchError,
    Server,
    base_parser,
    cancel_job_set,
    check_args,
    fmt_ms,
    fmt_rate,
    goal_note,
    main_guard,
    median,
    now_utc,
    percentile,
    print_summary,
    run_backends,
    runs_text,
    say,
    submit_batch,
    submit_one,
    write_json,
)

GOAL_BATCH = 20_000.0  # jobs/s into PostgreSQL, batches
GOAL_SINGLE = 1_500.0  # jobs/s into PostgreSQL, single submits from 4 threads


def spec(job_set: str, cpu: float) -> dict[str, Any]:
    return {
        "command": ["/bin/true"],
        "resources": {"cpu": cpu, "memory": "1Mi"},
        "job_set": job_set,
    }


def batch_run(server: Server, n: int, batch: int, cpu: float, job_set: str) -> tuple[float, str]:
    """Submit n jobs in batches; returns (seconds, queue of the jobs)."""
    queue = "default"
    with server.client(timeout=300.0) as client:
        client.get("/readyz")  # open the keep-alive connection before the clock starts
        t0 = time.perf_counter()
        done = 0
        while done < n:
            k = min(batch, n - done)
            jobs = submit_batch(client, [spec(job_set, cpu)] * k)
            done += k
        dt = time.perf_counter() - t0
        queue = str(jobs[0].get("queue") or queue)
    return dt, queue


def single_run(
    server: Server, n: int, threads: int, cpu: float, job_set: str
) -> tuple[float, list[float]]:
    """Submit n jobs one per request from `threads` threads; returns (seconds, call latencies s)."""
    shares = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    start: list[float] = []
    ends: list[float] = [0.0] * threads
    lat: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads, action=lambda: start.append(time.perf_counter()))

    def worker(i: int) -> None:
        try:
            with server.client(timeout=60.0) as client:
                client.get("/readyz")  # connect before the clock starts
                body = spec(job_set, cpu)
                barrier.wait(timeout=60)
                mine = lat[i]
                for _ in range(shares[i]):
                    t = time.perf_counter()
                    submit_one(client, body)
                    mine.append(time.perf_counter() - t)
                ends[i] = time.perf_counter()
        except BaseException as e:
            errors.append(e)
            barrier.abort()

    ts = [threading.Thread(target=worker, args=(i,), name=f"submit-{i}") for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        e = errors[0]
        if isinstance(e, BenchError):
            raise e
        raise BenchError(f"single submit thread failed: {type(e).__name__}: {e}")
    return max(ends) - start[0], [x for xs in lat for x in xs]


def check_queued(server: Server, job_set: str) -> str:
    """Confirm the submitted jobs stay QUEUED (nothing ran during the measurement)."""
    with server.client() as client:
        r = client.get("/v1/jobs", params={"job_set": job_set, "limit": 1})
        if r.status_code != 200:
            return f"could not list jobs (HTTP {r.status_code})"
        items = r.json().get("items") or [{}]
        job = items[0]
        running = [
            s
            for s in ("SCHEDULED", "LEASED", "RUNNING", "SUCCEEDED", "FAILED")
            if client.get("/v1/jobs", params={"job_set": job_set, "state": s, "limit": 1})
            .json()
            .get("items")
        ]
    note = f"state {job.get('state')}, scheduling_reason {job.get('scheduling_reason')!r}"
    if running:
        note += f" — WARNING: some jobs reached {', '.join(running)}; raise --cpu"
    return note


def bench_backend(server: Server, backend: Backend, args: argparse.Namespace) -> None:
    tag = secrets.token_hex(3)
    # warm-up (not measured): connections, statement caches, first-insert costs
    warm = f"bench-submit-{tag}-warmup"
    say("   warm-up: 1 batch of 200 jobs + 50 single submits, not measured")
    try:
        _, queue = batch_run(server, 200, 200, args.cpu, warm)
    except BenchError as e:
        if "HTTP 422" not in str(e):
            raise
        raise BenchError(
            f"{e}\n   (if the server refuses cpu {args.cpu:g} as too large, pass --cpu with a "
            "value it accepts that no worker can hold, so the jobs stay QUEUED)"
        ) from e
    single_run(server, 50, min(args.threads, 50), args.cpu, warm)
    with server.client(timeout=600) as c:
        say(f"   ({cancel_job_set(c, queue, warm)})")

    say(
        f"   (a) batch submit: N={args.n:,} in POST /v1/jobs batches of {args.batch:,}, one "
        "keep-alive httpx.Client"
    )
    say(
        f"       jobs ask for cpu {args.cpu:g} so no worker can take them: they stay QUEUED and "
        "the figure is submission alone"
    )
    batch_rates: list[float] = []
    for i in range(args.runs):
        js = f"bench-submit-{tag}-batch-{i + 1}"
        dt, queue = batch_run(server, args.n, args.batch, args.cpu, js)
        batch_rates.append(args.n / dt)
        say(f"       run {i + 1}: {fmt_rate(args.n / dt)} jobs/s ({dt:.3f} s)")
        if i == 0:
            say(f"       check: {check_queued(server, js)}")
        with server.client(timeout=600) as c:
            say(f"       ({cancel_job_set(c, queue, js)})")
        server.check_alive()
    b_med = median(batch_rates)
    say(
        f"       median of {args.runs}: {fmt_rate(b_med)} jobs/s;"
        + goal_text(backend, b_med, GOAL_BATCH)
    )

    say(
        f"   (b) single submits: N={args.single_n:,} from {args.threads} threads, one "
        "POST /v1/jobs per job, each thread its own keep-alive httpx.Client (same QUEUED-only jobs)"
    )
    single_rates: list[float] = []
    for i in range(args.runs):
        js = f"bench-submit-{tag}-single-{i + 1}"
        dt, lat = single_run(server, args.single_n, args.threads, args.cpu, js)
        single_rates.append(args.single_n / dt)
        ms = [x * 1000 for x in lat]
        say(
            f"       run {i + 1}: {fmt_rate(args.single_n / dt)} jobs/s ({dt:.3f} s; "
            f"per call p50 {fmt_ms(percentile(ms, 50))} ms, p99 {fmt_ms(percentile(ms, 99))} ms)"
        )
        with server.client(timeout=600) as c:
            say(f"       ({cancel_job_set(c, queue, js)})")
        server.check_alive()
    s_med = median(single_rates)
    say(
        f"       median of {args.runs}: {fmt_rate(s_med)} jobs/s;"
        + goal_text(backend, s_med, GOAL_SINGLE)
    )
    args.results.append((backend, batch_rates, single_rates))


def goal_text(backend: Backend, value: float, goal: float) -> str:
    note = goal_note(value, goal)
    where = "" if backend.name == "postgres" else " (the goal is stated for PostgreSQL)"
    return f" goal ≥{fmt_rate(goal)} jobs/s: {note}{where}"


def main() -> int:
    ap = base_parser("submit", __doc__.splitlines()[0], default_database="all", default_n=20_000)
    ap.add_argument("--batch", type=int, default=1_000, help="jobs per POST in (a) (default 1,000)")
    ap.add_argument(
        "--single-n", type=int, default=2_000, help="jobs in (b), all threads together (2,000)"
    )
    ap.add_argument("--threads", type=int, default=4, help="client threads in (b) (default 4)")
    ap.add_argument(
        "--cpu",
        type=float,
        default=1000.0,
        help="CPUs each job asks for; above every worker's so the jobs stay QUEUED (default 1000)",
    )
    args = ap.parse_args()
    check_args(ap, args)
    if args.batch < 1 or args.single_n < 1 or args.threads < 1:
        ap.error("--batch, --single-n and --threads must be at least 1")
    args.results = []
    rc = run_backends("submit", args, lambda s, b: bench_backend(s, b, args))
    if args.results:
        m = args.machine
        parts = [
            f"{b.name} batch {fmt_rate(median(br))} jobs/s (runs {runs_text(br, fmt_rate)}), "
            f"single x{args.threads} threads {fmt_rate(median(sr))} jobs/s "
            f"(runs {runs_text(sr, fmt_rate)})"
            for b, br, sr in args.results
        ]
        print_summary(
            f"- submit, {now_utc()[:10]}, {m.short()}, jobfleet {m.jobfleet} ({m.git}): "
            + "; ".join(parts)
            + f" — median of {args.runs}, N={args.n:,} in batches of {args.batch:,} / "
            f"N={args.single_n:,} single, jobs kept QUEUED (cpu {args.cpu:g})"
        )
        write_json(
            args,
            "submit",
            {
                b.name: {
                    "batch_jobs_s": median(br),
                    "runs_batch_jobs_s": br,
                    "batch": args.batch,
                    "single_jobs_s": median(sr),
                    "runs_single_jobs_s": sr,
                    "threads": args.threads,
                }
                for b, br, sr in args.results
            },
        )
    return rc


if __name__ == "__main__":
    main_guard(main)
