"""`make bench-peers`' table: jobfleet's --json figures beside the peers' results, with ratios."""

from __future__ import annotations

import json
from pathlib import Path

from bench.peers import main


def write(path: Path, doc: dict[str, object]) -> str:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def ours(bench: str, figures: dict[str, object]) -> dict[str, object]:
    return {
        "bench": bench,
        "date": "2026-12-05 00:00:00 UTC",
        "git": "abc1234",
        "jobfleet": "0.1.0",
        "speed": 30.0,
        "machine": "test machine",
        "runs": 1,
        "n": 10,
        "config": None,
        "backends": {"postgres": figures},
    }


def test_the_table_puts_jobfleet_beside_each_peer_with_ratios(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    # One peer measured in two invocations (as run_all.sh does): the raw values are merged.
    peer = {"peer": "pgqueuer", "version": "1.6.0", "backend": "postgres"}
    write(
        results / "pgqueuer.r1.a.json",
        {**peer, "raw": {"W1_enqueue_bulk_jobs_s": [50_000.0], "W2_drain_bulk_jobs_s": [1000.0]}},
    )
    write(results / "pgqueuer.r1.b.json", {**peer, "raw": {"W3_p50_ms": [2.0], "cpu_index": [28]}})
    write(results / "limits.json", {"raw": {"L1_spawn_per_s_x1": [1500.0]}})
    out = tmp_path / "table.md"
    rc = main(
        [
            "--peers-results",
            str(results),
            "--submit",
            write(tmp_path / "s.json", ours("submit", {"batch_jobs_s": 25_000.0})),
            "--latency",
            write(tmp_path / "l.json", ours("latency", {"running_ms": {"p50": 8.0, "p99": 20}})),
            "--drain-none",
            write(tmp_path / "d.json", ours("drain", {"jobs_s": 1500.0})),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    table = out.read_text(encoding="utf-8")
    assert "abc1234" in table and "pgqueuer 1.6.0" in table
    assert "| bulk submit, jobs/s | 25,000 | 50,000 (0.50x) |" in table
    assert "| drain of /bin/true, jobs/s (`isolation: none`) | 1,500 | 1,000 (1.50x) |" in table
    assert "| idle submit -> RUNNING p50, ms | 8.00 | 2.00 (4.00x) |" in table
    assert "| drain of /bin/true, jobs/s (default isolation) | n/a | 1,000 |" in table
    assert "median 28.0" in table and "1,500/s from one process" in table
