"""What isolation costs per run: `/bin/true` start-to-finish through the real `Executor`.

Three configurations, interleaved run by run so that a shared machine's noise hits all alike:

- `bare`: a process group and a working dir, nothing else (`Isolation.plain()`, the baseline);
- `cgroup+pidns`: the detected cgroup backend (memory, CPU, pids limits) and a PID namespace
  with the shell init — what every job gets by default;
- `full`: the same plus a network namespace with loopback up (`network: none`, sealed mode).

Each sample is the time from `Executor.start()` to the exit callback (the run's cgroup removed,
its logs flushed). Prints the machine, median / p90 per configuration and the median added over
`bare`. Goal: under 20 ms added at the median for `full`.

    .venv/bin/python -m bench.isolation [-n 200] [--warmup 20]
"""

from __future__ import annotations

import argparse
import queue
import tempfile
import time
from pathlib import Path

from bench.common import machine, median, now_utc, percentile, say
from jobfleet.protocol import Assignment, Finished
from jobfleet.runfiles import RunFiles
from jobfleet.worker.executor import Executor
from jobfleet.worker.isolation import Isolation, worker_dir

SPEC = {"command": ["/bin/true"], "resources": {"cpu": 1.0, "memory": 256 * 2**20, "gpu": 0}}
GOAL_MS = 20.0


class Subject:
    def __init__(self, name: str, root: Path, isolation: Isolation, network: str) -> None:
        self.name = name
        self.done: queue.SimpleQueue[Finished] = queue.SimpleQueue()
        self.executor = Executor(RunFiles(root / name), self.done.put, isolation=isolation)
        self.spec = {**SPEC, "network": network}
        self.samples: list[float] = []
        self.n = 0

    def once(self) -> float:
        self.n += 1
        run_id = f"BENCH{self.n:08d}-1"
        t0 = time.perf_counter()
        failed = self.executor.start(Assignment(run_id, run_id[:-2], 1, self.n, self.spec, 0.0))
        result = failed or self.done.get(timeout=30)
        elapsed = (time.perf_counter() - t0) * 1000
        if result.outcome != "succeeded":
            raise SystemExit(f"{self.name}: /bin/true did not succeed: {result}")
        return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200, help="measured runs per configuration")
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()
    m = machine()
    say("== jobfleet benchmark: isolation overhead per run ==")
    say(f"date:     {now_utc()}")
    say(f"machine:  {m.line()}")
    say(f"jobfleet: {m.git}; host-speed sentinel {m.speed:.1f} (loop iterations per µs)")
    with tempfile.TemporaryDirectory(prefix="jobfleet-bench-iso-") as tmp:
        root = Path(tmp)
        iso = Isolation.detect(worker=worker_dir("bench", tmp))
        say(f"isolation: {iso.info()}")
        subjects = [
            Subject("bare", root, Isolation.plain(), "default"),
            Subject("cgroup+pidns", root, iso, "default"),
            Subject("full", root, iso, "none"),
        ]
        for i in range(args.warmup + args.n):
            for s in subjects:
                ms = s.once()
                if i >= args.warmup:
                    s.samples.append(ms)
        for s in subjects:
            s.executor.shutdown(timeout=5)
    report(subjects, args.n)


def report(subjects: list[Subject], n: int) -> None:
    base = median(subjects[0].samples)
    say(f"\nN={n} per configuration, start() → exit callback, milliseconds")
    say(f"{'configuration':<14} {'median':>8} {'p90':>8} {'added (median)':>15}")
    for s in subjects:
        med, p90 = median(s.samples), percentile(s.samples, 90)
        say(f"{s.name:<14} {med:8.2f} {p90:8.2f} {med - base:15.2f}")
    added = median(subjects[-1].samples) - base
    verdict = "met" if added < GOAL_MS else "NOT met"
    say(f"\ngoal: full isolation adds < {GOAL_MS:.0f} ms at the median — {verdict} ({added:.1f})")


if __name__ == "__main__":
    main()
