"""An array of N elements (default 10,000) against a batch of N jobs, through `jobfleet up`.

Each round submits one batch `POST /v1/jobs {"jobs": [...N]}` and one array `POST /v1/jobs
{..., "array": {"size": N}}`, alternating which goes first, and cancels both job sets (not
measured). The jobs ask for more CPUs than any worker has, so they stay QUEUED: the figure is
the cost of submission. Goal (issue 14): the array at >= 0.8x the batch's rate.

    .venv/bin/python -m bench.arrays [--database sqlite|postgres|URL] [-n 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import Server, cancel_job_set, database, median, say

GOAL = 0.8


def spec(job_set: str) -> dict[str, Any]:
    return {
        "command": ["/bin/true"],
        "resources": {"cpu": 1000, "memory": "1Mi"},
        "job_set": job_set,
    }


def timed(client: httpx.Client, body: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    r = client.post("/v1/jobs", json=body)
    dt = time.perf_counter() - t0
    if r.status_code != 201:
        raise SystemExit(f"submit failed: {r.status_code} {r.text[:300]}")
    return dt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="sqlite")
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="jobfleet-bench-") as tmp,
        database(args.database, Path(tmp)) as db,
        Server(db.url, Path(tmp)) as server,
    ):
        server.start()
        client = server.client(timeout=300.0)
        client.get("/readyz")
        batch_s: list[float] = []
        array_s: list[float] = []
        for i in range(args.runs):
            sets = [f"b-{secrets.token_hex(3)}", f"a-{secrets.token_hex(3)}"]
            batch = {"jobs": [spec(sets[0])] * args.n}
            array = {**spec(sets[1]), "array": {"size": args.n}}
            if i % 2:
                array_s.append(timed(client, array))
                batch_s.append(timed(client, batch))
            else:
                batch_s.append(timed(client, batch))
                array_s.append(timed(client, array))
            for job_set in sets:
                cancel_job_set(client, "default", job_set)
        b, a = median(batch_s), median(array_s)
        say(f"{db.version}: {args.n} jobs, median of {args.runs}")
        say(f"  batch: {b * 1000:.0f} ms ({args.n / b:,.0f} jobs/s)")
        say(f"  array: {a * 1000:.0f} ms ({args.n / a:,.0f} jobs/s)")
        ratio = b / a
        say(f"  array rate / batch rate = {ratio:.2f} (goal >= {GOAL})")


if __name__ == "__main__":
    main()
