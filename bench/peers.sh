#!/usr/bin/env bash
# jobfleet beside the peer job systems, in one run against one PostgreSQL server:
#   make bench-peers                                  # or: bash bench/peers.sh
#   PEERS="celery pgqueuer procrastinate" REPS=1 make bench-peers
# 1. runs the peers' harness (../shared/bench/peers/run_all.sh; it makes its own venv with the
#    peers' pinned versions and starts a private PostgreSQL 15 on 127.0.0.1:55432 and a Redis),
#    from a copy, so that its generated RESULTS.md lands under $BENCH_ROOT and not in shared/;
# 2. runs jobfleet's bench.submit, bench.latency and bench.drain (default isolation, then
#    `isolation: none`) against that same PostgreSQL server, each with --json;
# 3. prints one table (python -m bench.peers): jobfleet's figures beside the peers' with ratios,
#    the date, the commit and the host-speed sentinel; kept in $BENCH_ROOT/jobfleet/table.md.
# Knobs: PEERS_DIR (default ../shared/bench/peers), PEERS, REPS (peers' repetitions, default 1),
# RUNS (runs of each jobfleet benchmark, default $REPS), BENCH_ROOT, SKIP_PEERS=1 (reuse the
# peers' results of an earlier run; the server is started again if needed).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
PY=${PY:-$REPO/.venv/bin/python}
if [ -z "${PEERS_DIR:-}" ]; then  # shared/ beside the clone (or beside a worktrees folder)
  PEERS_DIR=$REPO/../shared/bench/peers
  [ -d "$PEERS_DIR" ] || PEERS_DIR=$REPO/../../shared/bench/peers
fi
export PEERS=${PEERS:-"celery pgqueuer procrastinate"}
export REPS=${REPS:-1}
RUNS=${RUNS:-$REPS}
export BENCH_ROOT=${BENCH_ROOT:-${TMPDIR:-/tmp}/jobfleet-peers-bench}
OURS=$BENCH_ROOT/jobfleet
COPY=$BENCH_ROOT/peers-harness

if [ ! -f "$PEERS_DIR/run_all.sh" ]; then
  echo "no peers' harness at $PEERS_DIR (set PEERS_DIR)" >&2
  exit 2
fi
mkdir -p "$BENCH_ROOT" "$OURS"
rm -rf "$COPY"
cp -r "$PEERS_DIR" "$COPY"
chmod -R u+w "$COPY"

started_here=0
if ! bash "$COPY/services.sh" status | grep -q "postgres: running"; then started_here=1; fi
cleanup() {
  if [ "$started_here" = 1 ] && [ "${KEEP_SERVICES:-0}" != 1 ]; then bash "$COPY/services.sh" stop; fi
}
trap cleanup EXIT

rc=0
if [ "${SKIP_PEERS:-0}" = 1 ]; then
  bash "$COPY/services.sh" start || exit 1
else
  echo "=== $(date +%T) peers: PEERS=\"$PEERS\" REPS=$REPS bash run_all.sh (a copy of $PEERS_DIR)"
  KEEP_SERVICES=1 bash "$COPY/run_all.sh" || rc=1
fi

# The peers' server (services.sh): user bench, trust auth, allowed to create databases.
export JOBFLEET_BENCH_PG_URL=${JOBFLEET_BENCH_PG_URL:-postgresql://bench@127.0.0.1:55432/bench}
printf 'worker:\n  isolation: none\n  namespaces: false\n' >"$OURS/isolation-none.yaml"
rm -f "$OURS"/*.json
run() {  # run LOG NAME ARGS...: one jobfleet benchmark against the peers' PostgreSQL
  local log=$1 name=$2; shift 2
  echo "=== $(date +%T) jobfleet: python -m bench.$name --database postgres --runs $RUNS $*"
  "$PY" -m "bench.$name" --database postgres --runs "$RUNS" "$@" 2>&1 | tee "$OURS/$log.log"
  if [ "${PIPESTATUS[0]}" -ne 0 ]; then echo "!!! bench.$name failed" >&2; rc=1; fi
}
run submit submit --json "$OURS/submit.json"
run latency latency --json "$OURS/latency.json"
run drain drain --json "$OURS/drain.json"
export JOBFLEET_CONFIG="$OURS/isolation-none.yaml"
run drain-none drain --json "$OURS/drain-none.json"
unset JOBFLEET_CONFIG

echo
"$PY" -m bench.peers --peers-results "$BENCH_ROOT/results" --submit "$OURS/submit.json" \
  --latency "$OURS/latency.json" --drain "$OURS/drain.json" --drain-none "$OURS/drain-none.json" \
  --out "$OURS/table.md" || rc=1
echo "(peers' full report: $COPY/RESULTS.md; jobfleet's logs: $OURS)"
exit $rc
