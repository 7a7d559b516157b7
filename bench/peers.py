"""jobfleet beside the peer job systems: one table from one run (`make bench-peers`).

Reads the peers' JSON results (`run_all.sh` of ../shared/bench/peers writes them under
$BENCH_ROOT/results) and the `--json` files of jobfleet's own bench.submit, bench.latency and
bench.drain, taken against the same PostgreSQL server, and prints a Markdown table of jobfleet's
figures beside each peer's with the ratio jobfleet / peer (for throughput above 1 is better, for
latency below 1 is better), plus the date, the commit and the host-speed sentinel.

    .venv/bin/python -m bench.peers --peers-results DIR [--submit F] [--latency F]
        [--drain F] [--drain-none F] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PEER_ORDER = ["celery", "rq", "procrastinate", "pgqueuer"]


@dataclass
class Peer:
    name: str
    version: str
    backend: str
    median: dict[str, float] = field(default_factory=dict)


def load_peers(results: Path) -> tuple[list[Peer], list[float], dict[str, float]]:
    """The peers' medians per metric (their invocations merged, as their report.py does), the
    sentinel of each invocation, and the machine limits (limits.json) if measured."""
    raw: dict[str, dict[str, list[float]]] = {}
    meta: dict[str, tuple[str, str]] = {}
    limits: dict[str, float] = {}
    for path in sorted(results.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if path.name == "limits.json":
            limits = {k: statistics.median(v) for k, v in doc.get("raw", {}).items() if v}
            continue
        if "peer" not in doc:
            continue
        name = str(doc["peer"])
        meta[name] = (str(doc.get("version", "?")), str(doc.get("backend", "?")))
        merged = raw.setdefault(name, {})
        for key, values in doc.get("raw", {}).items():
            merged.setdefault(key, []).extend(v for v in values if v is not None)
    peers = [
        Peer(name, *meta[name], {k: statistics.median(v) for k, v in merged.items() if v})
        for name, merged in raw.items()
    ]
    peers.sort(key=lambda p: (PEER_ORDER.index(p.name) if p.name in PEER_ORDER else 99, p.name))
    sentinels = [x for merged in raw.values() for x in merged.get("cpu_index", [])]
    return peers, sentinels, limits


def load_jobfleet(path: str | None) -> dict[str, Any] | None:
    if not path or not Path(path).exists():
        return None
    doc: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return doc


def _pg(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """A benchmark's PostgreSQL figures (the peers' server is PostgreSQL)."""
    if doc is None:
        return None
    backends: dict[str, Any] = doc.get("backends", {})
    return backends.get("postgres") or next(iter(backends.values()), None)


@dataclass
class Row:
    label: str
    ours: float | None
    peer_key: str
    lower_is_better: bool = False
    fmt: Callable[[float], str] = lambda x: f"{x:,.0f}"


def rows(docs: dict[str, dict[str, Any] | None]) -> list[Row]:
    sub, lat = _pg(docs["submit"]), _pg(docs["latency"])
    drain, drain_none = _pg(docs["drain"]), _pg(docs["drain_none"])

    def get(d: dict[str, Any] | None, *keys: str) -> float | None:
        for k in keys:
            if d is None:
                return None
            d = d.get(k)
        return None if d is None else float(d)  # type: ignore[arg-type]

    ms: Callable[[float], str] = lambda x: f"{x:.2f}"  # noqa: E731
    return [
        Row("bulk submit, jobs/s", get(sub, "batch_jobs_s"), "W1_enqueue_bulk_jobs_s"),
        Row("single submits, jobs/s", get(sub, "single_jobs_s"), "W1_enqueue_single_jobs_s"),
        Row(
            "drain of /bin/true, jobs/s (default isolation)",
            get(drain, "jobs_s"),
            "W2_drain_bulk_jobs_s",
        ),
        Row(
            "drain of /bin/true, jobs/s (`isolation: none`)",
            get(drain_none, "jobs_s"),
            "W2_drain_bulk_jobs_s",
        ),
        Row(
            "idle submit -> RUNNING p50, ms",
            get(lat, "running_ms", "p50"),
            "W3_p50_ms",
            lower_is_better=True,
            fmt=ms,
        ),
        Row(
            "idle submit -> RUNNING p99, ms",
            get(lat, "running_ms", "p99"),
            "W3_p99_ms",
            lower_is_better=True,
            fmt=ms,
        ),
    ]


def render(
    docs: dict[str, dict[str, Any] | None],
    peers: list[Peer],
    sentinels: list[float],
    limits: dict[str, float],
) -> str:
    ours = next((d for d in docs.values() if d is not None), None)
    lines = ["## jobfleet beside the peers (one run, one PostgreSQL server)", ""]
    if ours is not None:
        lines.append(
            f"- date {ours['date']}, jobfleet {ours['jobfleet']} ({ours['git']}), {ours['machine']}"
        )
        ours_speed = [d["speed"] for d in docs.values() if d is not None]
        lines.append(
            "- host-speed sentinel (pure-Python loop iterations per µs; higher = faster): "
            f"jobfleet's benchmarks {', '.join(f'{s:.1f}' for s in ours_speed)}"
            + (
                f"; peers' invocations min {min(sentinels):.1f} / median "
                f"{statistics.median(sentinels):.1f} / max {max(sentinels):.1f}"
                if sentinels
                else ""
            )
        )
    if limits:
        spawn = limits.get("L1_spawn_per_s_x1")
        tps = limits.get("L2_tps_sync_on")
        lines.append(
            "- machine limits: `/bin/true` spawn+reap "
            f"{_num(spawn)}/s from one process, {_num(limits.get('L1_spawn_per_s_x2'))}/s "
            f"from two; PostgreSQL single-row commits {_num(tps)}/s"
        )
    lines += [
        "- ratio = jobfleet / peer: above 1 jobfleet is faster for throughput, slower for "
        "latency. Peers' drain is their W2 (`/bin/true` from 2 workers) with bulk enqueue, "
        "like jobfleet's (batches of 1,000); their single enqueue is one client thread, "
        "jobfleet's is 4 threads over HTTP.",
        "",
    ]
    head = "| measure | jobfleet |" + "".join(f" {p.name} {p.version} (ratio) |" for p in peers)
    lines += [head, "|---|---|" + "---|" * len(peers)]
    for r in rows(docs):
        cells = [r.label, "n/a" if r.ours is None else r.fmt(r.ours)]
        for p in peers:
            theirs = p.median.get(r.peer_key)
            if theirs is None:
                cells.append("n/a")
            elif r.ours is None or theirs == 0:
                cells.append(r.fmt(theirs))
            else:
                cells.append(f"{r.fmt(theirs)} ({r.ours / theirs:.2f}x)")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.splitlines()[0])
    ap.add_argument("--peers-results", required=True, help="the peers' results directory")
    ap.add_argument("--submit", help="bench.submit --json file")
    ap.add_argument("--latency", help="bench.latency --json file")
    ap.add_argument("--drain", help="bench.drain --json file (default isolation)")
    ap.add_argument("--drain-none", help="bench.drain --json file (`isolation: none`)")
    ap.add_argument("--out", help="also write the table to this file")
    args = ap.parse_args(argv)
    peers, sentinels, limits = load_peers(Path(args.peers_results))
    docs = {
        "submit": load_jobfleet(args.submit),
        "latency": load_jobfleet(args.latency),
        "drain": load_jobfleet(args.drain),
        "drain_none": load_jobfleet(args.drain_none),
    }
    if not peers and not any(docs.values()):
        print("no figures found (neither the peers' nor jobfleet's)", file=sys.stderr)
        return 1
    text = render(docs, peers, sentinels, limits)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
