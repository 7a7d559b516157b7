"""Drain throughput of `jobfleet up`: N `/bin/true` jobs, first submit to last SUCCEEDED.

The clock starts just before the first `POST /v1/jobs`; the N jobs (cpu 0.01, memory 1Mi) go in
batches of --batch (1,000); an SSE stream `GET /v1/events?job_set=<unique to the run>`, opened
before the first submit, counts `succeeded` events, and the clock stops when the last one
arrives. Any `failed`, `cancelled` or `preempted` event fails the run loudly; --timeout (300 s)
bounds each run and reports how far it got.

    .venv/bin/python -m bench.drain [--database postgres|sqlite|all|URL] [-n 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import secrets
import time

from bench.common import (
    Backend,
    BenchError,
    EventRecorder,
    EventStream,
    Server,
    base_parser,
    check_args,
    count_states,
    describe_bad,
    fmt_rate,
    goal_note,
    main_guard,
    median,
    now_utc,
    print_summary,
    run_backends,
    runs_text,
    say,
    submit_batch,
    write_json,
)

GOAL = 1_000.0  # jobs/s


def one_run(server: Server, args: argparse.Namespace, job_set: str) -> tuple[float, float]:
    """Returns (jobs/s first submit -> last succeeded, jobs/s of the submit phase alone)."""
    rec = EventRecorder()
    spec = {
        "command": ["/bin/true"],
        "resources": {"cpu": 0.01, "memory": "1Mi"},
        "job_set": job_set,
    }
    n = args.n
    with (
        EventStream(server, {"job_set": job_set}, rec).start() as stream,
        server.client(timeout=300.0) as client,
    ):
        client.get("/readyz")  # keep-alive connection open before the clock starts
        t0 = time.perf_counter()
        deadline = t0 + args.timeout
        done = 0
        while done < n:
            k = min(args.batch, n - done)
            submit_batch(client, [spec] * k)
            done += k
        t_submitted = time.perf_counter()
        next_note = t_submitted + 10.0
        with rec.cond:
            while len(rec.succeeded) < n and not rec.bad:
                now = time.perf_counter()
                if now >= deadline:
                    break
                if now >= next_note:
                    say(f"       ... {len(rec.succeeded):,}/{n:,} succeeded after {now - t0:.0f} s")
                    next_note = now + 10.0
                rec.cond.wait(min(deadline - now, 0.5))
                stream.check()
            finished = len(rec.succeeded)
            bad = list(rec.bad)
            t_last = rec.last_success
            counts = dict(rec.counts)
        if bad:
            raise BenchError(
                f"{len(bad)} job(s) did not succeed ({finished:,}/{n:,} succeeded so far):\n"
                + describe_bad(bad)
            )
        if finished < n:
            server.check_alive()
            try:
                states = dict(count_states(client, job_set))
            except Exception as e:
                states = {"(could not list)": f"{type(e).__name__}: {e}"}  # type: ignore[dict-item]
            raise BenchError(
                f"timeout after {args.timeout:g} s: {finished:,}/{n:,} SUCCEEDED "
                f"({fmt_rate(finished / args.timeout)} jobs/s); events seen by type {counts}; "
                f"job states per GET /v1/jobs {states}"
            )
        if stream.reconnects:
            say(f"       note: the event stream reconnected {stream.reconnects} time(s)")
    return n / (t_last - t0), n / (t_submitted - t0)


def bench_backend(server: Server, backend: Backend, args: argparse.Namespace) -> None:
    tag = secrets.token_hex(3)
    say(
        f"   N={args.n:,} x /bin/true (cpu 0.01, memory 1Mi) in POST /v1/jobs batches of "
        f"{args.batch:,}; clock: before the first POST -> arrival of the last `succeeded` event"
    )
    rates: list[float] = []
    for i in range(args.runs):
        if i:
            time.sleep(args.pause)  # let the worker and the store settle
        rate, submit_rate = one_run(server, args, f"bench-drain-{tag}-{i + 1}")
        rates.append(rate)
        say(
            f"     run {i + 1}: {fmt_rate(rate)} jobs/s ({args.n / rate:.2f} s; submit phase "
            f"alone {fmt_rate(submit_rate)} jobs/s)"
        )
        server.check_alive()
    med = median(rates)
    say(
        f"     median of {args.runs}: {fmt_rate(med)} jobs/s; goal ≥{fmt_rate(GOAL)} jobs/s: "
        f"{goal_note(med, GOAL)}"
    )
    args.results.append((backend, rates))


def main() -> int:
    ap = base_parser("drain", __doc__.splitlines()[0], default_database="postgres", default_n=5_000)
    ap.add_argument("--batch", type=int, default=1_000, help="jobs per POST (default 1,000)")
    ap.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per run before giving up (300)"
    )
    ap.add_argument(
        "--pause", type=float, default=2.0, help="seconds idle between runs (default 2)"
    )
    args = ap.parse_args()
    check_args(ap, args)
    if args.batch < 1 or args.timeout <= 0:
        ap.error("--batch must be at least 1 and --timeout positive")
    args.results = []
    rc = run_backends("drain", args, lambda s, b: bench_backend(s, b, args))
    if args.results:
        m = args.machine
        parts = [
            f"{b.name} {fmt_rate(median(r))} jobs/s (runs {runs_text(r, fmt_rate)})"
            for b, r in args.results
        ]
        print_summary(
            f"- drain, {now_utc()[:10]}, {m.short()}, jobfleet {m.jobfleet} ({m.git}): "
            + "; ".join(parts)
            + f" — median of {args.runs}, N={args.n:,} /bin/true in batches of {args.batch:,}, "
            "first submit to last SUCCEEDED"
        )
        write_json(
            args,
            "drain",
            {b.name: {"jobs_s": median(r), "runs_jobs_s": r} for b, r in args.results},
        )
    return rc


if __name__ == "__main__":
    main_guard(main)
