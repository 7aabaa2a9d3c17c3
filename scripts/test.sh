#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. installs and builds what is missing (scripts/deps.sh)
#   2. style checks (banned functions, clang-format)
#   3. release build: Criterion unit tests
#   4. ASan+UBSan build: the same unit tests
#   5. one real Neo4j 5.26 for the legs on it, then the integration and
#      fault tests (pytest) against the release gateway and again against
#      the ASan+UBSan gateway (the tx adapter), and against the release
#      gateway on the Query API adapter (BISTORE_TEST_NEO4J_API=query)
#   6. the version matrix: a Neo4j 2026.x (Java 25) and the same tests on
#      the release gateway with each adapter; with no JDK 25 on the machine
#      these legs print "NOT RUN" and count neither as passed nor as failed
#   7. the benchmarks in their --smoke form (they still run; not timed)
# Prints "N passed, N failed" at the end; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$SECONDS
scripts/deps.sh

echo "== style"
scripts/check-style.sh

echo "== build (release, asan)"
scripts/build.sh release
scripts/build.sh asan

export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
passed=0; failed=0
count() { # count N_PASSED N_FAILED
  passed=$((passed + $1)); failed=$((failed + $2))
}

run_ctest() { # run_ctest DIR
  local log; log=$(mktemp)
  if ctest --test-dir "$1" --output-on-failure >"$log" 2>&1; then :; fi
  cat "$log"
  local tot fail
  tot=$(sed -n 's/.*tests passed, [0-9]* tests failed out of \([0-9]*\).*/\1/p' "$log")
  fail=$(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of.*/\1/p' "$log")
  rm -f "$log"
  [ -n "$tot" ] || { echo "ctest in $1 ran nothing"; count 0 1; return; }
  count $((tot - fail)) "$fail"
}
echo "== unit tests (release)"
run_ctest build
echo "== unit tests (asan+ubsan)"
run_ctest build-asan

neo4j_homes=()
cleanup() {
  local h
  for h in "${neo4j_homes[@]}"; do
    "$root/scripts/neo4j.sh" stop "$h" || true; rm -rf "$h"
  done
}
trap cleanup EXIT
start_neo4j() { # start_neo4j LABEL: a fresh Neo4j (BISTORE_NEO4J_VERSION) for the legs that follow
  local home; home=$(mktemp -d /tmp/bistore-test-neo4j.XXXXXX)
  neo4j_homes+=("$home")
  echo "== Neo4j $1"
  local ports; ports=$(scripts/neo4j.sh start "$home" 0) || return 1
  local http_port=${ports#http=}; http_port=${http_port%% *}
  export BISTORE_TEST_NEO4J_URL="http://127.0.0.1:$http_port"
  export BISTORE_TEST_NEO4J_HOME="$home"
  echo "Neo4j $1 on $BISTORE_TEST_NEO4J_URL"
}
stop_neo4j() {
  scripts/neo4j.sh stop "$BISTORE_TEST_NEO4J_HOME" || true
}

run_pytest() { # run_pytest LABEL BINARY [ADAPTER]: the whole tests/integration
  local log; log=$(mktemp)
  echo "== integration and fault tests ($1)"
  if BISTORE_BIN="$2" BISTORE_TEST_NEO4J_API="${3:-}" python3 -m pytest tests/integration -q \
       -p no:cacheprovider >"$log" 2>&1; then :; fi
  cat "$log"
  local p f e
  p=$(grep -Eo '[0-9]+ passed' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  f=$(grep -Eo '[0-9]+ failed' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  e=$(grep -Eo '[0-9]+ error' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  rm -f "$log"
  [ "$p" -gt 0 ] || f=$((f + 1))
  count "$p" $((f + e))
}
not_run=()

start_neo4j 5.26
run_pytest "release, Neo4j 5.26, tx adapter" "$root/build/bistore" tx
run_pytest "asan+ubsan, Neo4j 5.26, tx adapter" "$root/build-asan/bistore" tx
run_pytest "release, Neo4j 5.26, query adapter" "$root/build/bistore" query
stop_neo4j

# The version matrix: the calendar release, on both adapters. The harness
# restarts Neo4j through scripts/neo4j.sh, which reads BISTORE_NEO4J_VERSION.
if scripts/neo4j.sh jdk25 >/dev/null || [ -n "${BISTORE_NEO4J_JAVA:-}" ]; then
  export BISTORE_NEO4J_VERSION=2026
  if start_neo4j 2026.08.1; then
    run_pytest "release, Neo4j 2026.08.1, tx adapter" "$root/build/bistore" tx
    run_pytest "release, Neo4j 2026.08.1, query adapter" "$root/build/bistore" query
    stop_neo4j
  else
    echo "Neo4j 2026.08.1 did not start"; count 0 1
  fi
  unset BISTORE_NEO4J_VERSION
else
  not_run+=("Neo4j 2026.08.1 legs (tx and query adapters): no JDK 25 (see README, Tests)")
  echo "NOT RUN: Neo4j 2026.08.1 legs: no JDK 25 on this machine"
fi

# The benchmarks, tiny: a check that they still run (each starts its own
# Neo4j), not a timed test; their figures are in bench/README.md and PERF.md.
run_smoke() { # run_smoke LABEL COMMAND...
  local label=$1 log; shift; log=$(mktemp)
  echo "== benchmark smoke: $label"
  if "$@" >"$log" 2>&1; then
    tail -n 5 "$log"; count 1 0
  else
    cat "$log"; echo "benchmark smoke $label FAILED"; count 0 1
  fi
  rm -f "$log"
}
run_smoke perf bench/perf.sh --smoke
run_smoke reconciliation bench/recon.sh --smoke

echo "== suite took $((SECONDS - start)) s"
for leg in "${not_run[@]}"; do echo "NOT RUN (counted neither passed nor failed): $leg"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
