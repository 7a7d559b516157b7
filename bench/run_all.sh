#!/usr/bin/env bash
# Run every jobfleet benchmark (submit, latency, drain) with their defaults, from the repo root:
#   bash bench/run_all.sh                      # all three, default databases and sizes
#   bash bench/run_all.sh --runs 1             # extra arguments go to every benchmark
#   BENCH_DATABASE=sqlite bash bench/run_all.sh  # one database for all three
# Each benchmark starts (and stops) its own `jobfleet up`. The full output is kept in
# $BENCH_LOG (default: a file under ${TMPDIR:-/tmp}); the one-line summaries are repeated at the end.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
BENCH_LOG=${BENCH_LOG:-$(mktemp "${TMPDIR:-/tmp}/jobfleet-bench.XXXXXX.log")}
db_args=()
if [ -n "${BENCH_DATABASE:-}" ]; then db_args=(--database "$BENCH_DATABASE"); fi

rc=0
for b in submit latency drain; do
  echo "=== $(date +%T) python -m bench.$b ${db_args[*]} $*" | tee -a "$BENCH_LOG"
  "$PY" -m "bench.$b" "${db_args[@]}" "$@" 2>&1 | tee -a "$BENCH_LOG"
  status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ]; then
    echo "!!! bench.$b failed (exit $status)" | tee -a "$BENCH_LOG"
    rc=1
  fi
  echo | tee -a "$BENCH_LOG"
done

echo "=== summaries (paste into bench/RESULTS.md); full log: $BENCH_LOG"
grep -A1 '^summary (one line for bench/RESULTS.md):' "$BENCH_LOG" | grep '^- ' || echo "(none)"
exit $rc
