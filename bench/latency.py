"""Single-job latency of `jobfleet up` on an idle system.

One `/bin/true` job (cpu 0.1) at a time: t0 is taken just before its `POST /v1/jobs`; one SSE stream
`GET /v1/events?job_set=<unique to the run>`, opened in a background thread before the first
submit, records the client's clock when the job's `running` and `succeeded` events arrive. The next
job is submitted --gap (20 ms) after the previous one succeeded. Reported: submit -> RUNNING and
submit -> SUCCEEDED (p50, p90, p99, max), plus the server's own view from the events' `time`
fields (`submitted` -> `running`, `submitted` -> `succeeded`).

    .venv/bin/python -m bench.latency [--database sqlite|postgres|all|URL] [-n 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import itertools
import secrets
import time
from dataclasses import dataclass, field

from bench.common import (
    Backend,
    BenchError,
    EventRecorder,
    EventStream,
    Server,
    base_parser,
    check_args,
    describe_bad,
    fmt_ms,
    goal_note,
    main_guard,
    median,
    now_utc,
    parse_time,
    percentile,
    print_summary,
    run_backends,
    say,
    submit_one,
    write_json,
)

GOAL_P50_MS = 10.0
GOAL_P99_MS = 50.0
PCTS = (50, 90, 99)


@dataclass
class RunResult:
    running: list[float] = field(default_factory=list)  # ms, client clock
    succeeded: list[float] = field(default_factory=list)
    srv_running: list[float] = field(default_factory=list)  # ms, event `time` fields
    srv_succeeded: list[float] = field(default_factory=list)
    post: list[float] = field(default_factory=list)  # ms, duration of the POST call
    # ms between consecutive lifecycle events of a job (event `time`s): where the time goes
    hops: dict[str, list[float]] = field(default_factory=dict)

    def stats(self, xs: list[float]) -> dict[str, float]:
        d = {f"p{p}": percentile(xs, p) for p in PCTS}
        d["max"] = max(xs)
        return d


HOPS = ("submitted", "scheduled", "leased", "running", "succeeded")


def record_hops(rec: EventRecorder, job_id: str, hops: dict[str, list[float]]) -> None:
    """The server's time between each two consecutive lifecycle events of the job."""
    times = {}
    for t in HOPS:
        got = rec.get(job_id, t)
        if got is not None and got.event.get("time"):
            times[t] = parse_time(str(got.event["time"]))
    for a, b in itertools.pairwise(HOPS):
        if a in times and b in times:
            ms = (times[b] - times[a]).total_seconds() * 1000
            hops.setdefault(f"{a}->{b}", []).append(ms)


def line(d: dict[str, float]) -> str:
    return ", ".join(f"{k} {fmt_ms(v)}" for k, v in d.items()) + " ms"


def one_run(server: Server, args: argparse.Namespace, job_set: str) -> RunResult:
    rec = EventRecorder()
    res = RunResult()
    spec = {"command": ["/bin/true"], "resources": {"cpu": 0.1}, "job_set": job_set}
    with (
        EventStream(server, {"job_set": job_set}, rec).start() as stream,
        server.client(timeout=60.0) as client,
    ):
        client.get("/readyz")  # keep-alive connection open before the first t0
        for i in range(args.warmup + args.n):
            t0 = time.perf_counter()
            job = submit_one(client, spec)
            t_post = time.perf_counter()
            job_id = str(job["id"])
            end = rec.wait_terminal(job_id, args.job_timeout)
            stream.check()
            if end is None:
                server.check_alive()
                raise BenchError(
                    f"job {job_id} did not finish within {args.job_timeout:g} s "
                    f"(events seen: {sorted(rec.first.get(job_id, {}))})"
                )
            if end.type != "succeeded":
                raise BenchError(f"a job did not succeed:\n{describe_bad([end])}")
            run = rec.get(job_id, "running")
            sub = rec.get(job_id, "submitted")
            if run is None:
                raise BenchError(f"job {job_id} succeeded but no `running` event arrived")
            if i >= args.warmup:
                record_hops(rec, job_id, res.hops)
                res.post.append((t_post - t0) * 1000)
                res.running.append((run.t - t0) * 1000)
                res.succeeded.append((end.t - t0) * 1000)
                if sub is not None and sub.event.get("time"):
                    ts = parse_time(str(sub.event["time"]))
                    res.srv_running.append(
                        (parse_time(str(run.event["time"])) - ts).total_seconds() * 1000
                    )
                    res.srv_succeeded.append(
                        (parse_time(str(end.event["time"])) - ts).total_seconds() * 1000
                    )
            if args.gap > 0:
                time.sleep(args.gap)
        if stream.reconnects:
            say(f"       note: the event stream reconnected {stream.reconnects} time(s)")
    return res


def bench_backend(server: Server, backend: Backend, args: argparse.Namespace) -> None:
    tag = secrets.token_hex(3)
    say(
        f"   {args.n} x /bin/true (cpu 0.1), one at a time, {args.gap * 1000:g} ms after the "
        f"previous one succeeded; first {args.warmup} of each run not counted"
    )
    say(
        "   client clock: t0 just before POST /v1/jobs -> arrival of the job's SSE event "
        "(GET /v1/events, one stream per run)"
    )
    results: list[RunResult] = []
    for i in range(args.runs):
        r = one_run(server, args, f"bench-latency-{tag}-{i + 1}")
        results.append(r)
        say(f"     run {i + 1}: submit->RUNNING   {line(r.stats(r.running))}")
        say(f"            submit->SUCCEEDED {line(r.stats(r.succeeded))}")
        if r.srv_running:
            say(
                f"            server-side (event times) submitted->running "
                f"{line(r.stats(r.srv_running))}; ->succeeded {line(r.stats(r.srv_succeeded))}"
            )
        else:
            say("            server-side: no `submitted` events with a `time` seen")
        say(f"            POST /v1/jobs call p50 {fmt_ms(percentile(r.post, 50))} ms")
        if r.hops:
            say(
                "            hops (event times), p50: "
                + ", ".join(f"{k} {fmt_ms(percentile(v, 50))}" for k, v in r.hops.items())
                + " ms"
            )
        server.check_alive()

    def med(attr: str) -> dict[str, float] | None:
        per_run = [r.stats(getattr(r, attr)) for r in results if getattr(r, attr)]
        if not per_run:
            return None
        return {k: median([d[k] for d in per_run]) for k in per_run[0]}

    run_m, succ_m = med("running"), med("succeeded")
    srv_run_m, srv_succ_m = med("srv_running"), med("srv_succeeded")
    assert run_m is not None and succ_m is not None
    say(f"     median of {args.runs} runs (each percentile's median):")
    say(f"       submit->RUNNING   {line(run_m)}")
    say(f"       submit->SUCCEEDED {line(succ_m)}")
    if srv_run_m and srv_succ_m:
        say(
            f"       server-side (event `time`): submitted->running {line(srv_run_m)}; "
            f"submitted->succeeded {line(srv_succ_m)}"
        )
    say(
        f"     goal (submit->RUNNING, client clock): p50 ≤{GOAL_P50_MS:g} ms "
        f"{goal_note(run_m['p50'], GOAL_P50_MS, higher_is_better=False)}, "
        f"p99 ≤{GOAL_P99_MS:g} ms {goal_note(run_m['p99'], GOAL_P99_MS, higher_is_better=False)}"
    )
    args.results.append((backend, run_m, succ_m, srv_run_m))


def main() -> int:
    ap = base_parser("latency", __doc__.splitlines()[0], default_database="all", default_n=200)
    ap.add_argument(
        "--gap", type=float, default=0.02, help="seconds idle between jobs (default 0.02)"
    )
    ap.add_argument(
        "--warmup", type=int, default=5, help="jobs at the start of each run not counted (5)"
    )
    ap.add_argument(
        "--job-timeout", type=float, default=30.0, help="seconds one job may take (default 30)"
    )
    args = ap.parse_args()
    check_args(ap, args)
    if args.warmup < 0 or args.gap < 0:
        ap.error("--warmup and --gap must not be negative")
    args.results = []
    rc = run_backends("latency", args, lambda s, b: bench_backend(s, b, args))
    if args.results:
        m = args.machine
        parts = []
        for b, run_m, succ_m, srv in args.results:
            text = (
                f"{b.name} submit->RUNNING p50 {fmt_ms(run_m['p50'])} / p90 "
                f"{fmt_ms(run_m['p90'])} / p99 {fmt_ms(run_m['p99'])} / max "
                f"{fmt_ms(run_m['max'])} ms, ->SUCCEEDED p50 {fmt_ms(succ_m['p50'])} / p99 "
                f"{fmt_ms(succ_m['p99'])} ms"
            )
            if srv:
                text += f" (server-side ->running p50 {fmt_ms(srv['p50'])} ms)"
            parts.append(text)
        print_summary(
            f"- latency, {now_utc()[:10]}, {m.short()}, jobfleet {m.jobfleet} ({m.git}): "
            + "; ".join(parts)
            + f" — median of {args.runs} runs x N={args.n}, client clock via SSE"
        )
        write_json(
            args,
            "latency",
            {
                b.name: {"running_ms": run_m, "succeeded_ms": succ_m, "server_running_ms": srv}
                for b, run_m, succ_m, srv in args.results
            },
        )
    return rc


if __name__ == "__main__":
    main_guard(main)
