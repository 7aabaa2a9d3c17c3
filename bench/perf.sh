#!/usr/bin/env bash
# The performance benchmarks in one command (bench/PERF.md):
#
#   bench/perf.sh            build (release), start a Neo4j of its own (HTTP +
#                            Bolt) and a gateway in a temporary folder, run every
#                            workload for bistore and the baselines, print the
#                            table (about 8 minutes on 2 cores)
#   bench/perf.sh --smoke    the same, everything tiny (about a minute): do the
#                            benchmarks still work? Not a timed test.
#
# Options after those go to bench/perf_run.py (--only uuid,creates,replay,reads,
# batches). BISTORE_PERF_WORK=DIR keeps the stores, logs and results.json there
# (default: a new folder in /tmp, removed at the end unless the run failed).
# Everything started here is stopped on the way out, on failure or Ctrl-C too.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build.sh release >/dev/null
for t in bench_load bench_naive bench_uuid7; do
  [ -x "build/bench/$t" ] || { echo "perf.sh: build/bench/$t is missing (BISTORE_BENCH=OFF?)" >&2; exit 1; }
done
scripts/deps.sh # the Neo4j jars and the Python driver (neo4j==5.28.2) if missing

keep=${BISTORE_PERF_WORK:+1}
work=${BISTORE_PERF_WORK:-$(mktemp -d /tmp/bistore-perf.XXXXXX)}
mkdir -p "$work"
runner=

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$runner" ] && kill -0 "$runner" 2>/dev/null; then
    kill -TERM "$runner" 2>/dev/null || true
    wait "$runner" 2>/dev/null || true
  fi
  # the runner stops what it started; this is the safety net if it was killed
  if [ -f "$work/gateway.pid" ]; then
    kill -TERM "$(cat "$work/gateway.pid")" 2>/dev/null || true
    rm -f "$work/gateway.pid"
  fi
  scripts/neo4j.sh stop "$work/neo4j" >/dev/null 2>&1 || true
  if [ -z "$keep" ] && [ "$rc" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "perf.sh: stores, logs and results kept in $work" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

python3 bench/perf_run.py --work "$work" --build build "$@" &
runner=$!
wait "$runner"
