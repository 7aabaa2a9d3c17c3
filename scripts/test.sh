#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. installs and builds what is missing (scripts/deps.sh)
#   2. style checks (banned functions, clang-format)
#   3. release build: Criterion unit tests
#   4. ASan+UBSan build: the same unit tests
#   5. one real Neo4j 5.26 for the legs on it, then the integration and
#      fault tests (pytest) against the release gateway and again against
#      the ASan+UBSan gateway (the tx adapter), and the protocol's crash,
#      reconciliation and API tests against the release gateway on the
#      Query API adapter (BISTORE_TEST_NEO4J_API=query); after the ASan leg,
#      the concurrency, group commit, pipeline and fault tests against the
#      ThreadSanitizer gateway (build-tsan, a report exits 66 and fails the
#      test) and the API tests against the
#      release gateway under valgrind memcheck (an error or a definite leak
#      exits 67 and fails the test; tests/valgrind.supp, tests/tsan.supp);
#      after the Query API leg, on the same Neo4j, schemathesis against
#      openapi/openapi.yaml and the release gateway
#      (tests/integration/schemathesis_run.py: every check, deterministic,
#      >= 10,000 cases, no failure; about 4-5 minutes)
#   6. deployment, against the same Neo4j: cmake --install with the man
#      page and the systemd unit (scripts/install-check.sh), the container
#      image built and run (scripts/container-check.sh)
#   7. the version matrix: a Neo4j 2026.x (Java 25) and the API, fault and
#      reconciliation tests on the release gateway with each adapter (the
#      whole suite with BISTORE_TEST_MATRIX=full); with no JDK 25 on the
#      machine these legs print "NOT RUN" and count neither way
#   8. the benchmarks in their --smoke form (they still run; not timed)
#   9. the libFuzzer targets of tests/fuzz (scripts/fuzz.sh: clang-15 build,
#      BISTORE_FUZZ_SECONDS per target, default 60); their seed corpora are
#      also replayed by ctest in steps 3 and 4
# Prints "N passed, N failed" at the end; exits non-zero on any failure. A
# leg that cannot run on this machine at all is SKIPPED or NOT RUN: said at
# the end, never counted as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$SECONDS
scripts/deps.sh

echo "== style"
scripts/check-style.sh

echo "== build (release, asan, tsan)"
scripts/build.sh release
scripts/build.sh asan
scripts/build.sh tsan

export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp"
passed=0; failed=0; skipped=""
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
echo "-- deps, style, builds, unit tests: $((SECONDS - start)) s"

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

run_pytest() { # run_pytest LABEL BINARY ADAPTER [TEST FILES...]: tests/integration (or those files)
  local label=$1 bin=$2 api=$3 log; shift 3; log=$(mktemp)
  local files=("$@"); [ ${#files[@]} -gt 0 ] || files=(tests/integration)
  local t0=$SECONDS debug_log="$BISTORE_TEST_NEO4J_HOME/logs/debug.log" debug_from
  debug_from=$(($(stat -c %s "$debug_log" 2>/dev/null || echo 0) + 1))
  echo "== integration and fault tests ($label)"
  if BISTORE_BIN="$bin" BISTORE_TEST_NEO4J_API="$api" python3 -m pytest "${files[@]}" -q \
       -p no:cacheprovider >"$log" 2>&1; then :; fi
  cat "$log"
  local p f e
  p=$(grep -Eo '[0-9]+ passed' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  f=$(grep -Eo '[0-9]+ failed' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  e=$(grep -Eo '[0-9]+ error' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  rm -f "$log"
  [ "$p" -gt 0 ] || f=$((f + 1))
  if [ $((f + e)) -gt 0 ]; then # Neo4j's side of a failure (the gateway's is in pytest's report)
    echo "-- Neo4j's debug.log during this leg, its last errors"
    # (a log rotated meanwhile: all of the new one)
    [ "$(stat -c %s "$debug_log" 2>/dev/null || echo 0)" -ge "$debug_from" ] || debug_from=1
    tail -c "+$debug_from" "$debug_log" 2>/dev/null | grep -E -A6 'ERROR|Exception' | tail -60 || true
  fi
  echo "-- $label: $((SECONDS - t0)) s"
  count "$p" $((f + e))
}
not_run=()

# The legs on a second adapter or Neo4j (BISTORE_TEST_MATRIX=full: the whole
# suite on each): on the Query API adapter, the commit protocol's crash
# tests, reconciliation and the API; on Neo4j 2026.x, the API and fault
# tests with each adapter.
query_set=(tests/integration/test_api_entities.py tests/integration/test_api_transactions.py
           tests/integration/test_faults.py tests/integration/test_pipeline.py
           tests/integration/test_powerloss.py tests/integration/test_stuck_intent.py
           tests/integration/test_reconcile.py tests/integration/test_reconcile_runs.py
           tests/integration/test_reconcile_cli.py tests/integration/test_reconcile_ranges.py
           tests/integration/test_neo4j_api.py tests/integration/test_raw_statements.py
           tests/integration/test_promote.py tests/integration/test_failover.py)
calendar_set=(tests/integration/test_api_entities.py tests/integration/test_api_transactions.py
              tests/integration/test_faults.py tests/integration/test_neo4j_api.py)
if [ "${BISTORE_TEST_MATRIX:-}" = full ]; then
  query_set=(tests/integration); calendar_set=(tests/integration)
fi

# Deployment, one count each (exit 77: skipped, said at the end).
run_leg() { # run_leg LABEL COMMAND...
  local label=$1 log rc=0 t0=$SECONDS; shift; log=$(mktemp)
  echo "== $label"
  "$@" >"$log" 2>&1 || rc=$?
  case $rc in
    0) cat "$log"; count 1 0 ;;
    77) cat "$log"; skipped="$skipped $label;" ;;
    *) cat "$log"; echo "$label FAILED"; count 0 1 ;;
  esac
  echo "-- $label: $((SECONDS - t0)) s"
  rm -f "$log"
}

start_neo4j 5.26
run_pytest "release, Neo4j 5.26, tx adapter" "$root/build/bistore" tx
# The fault-under-load test (31 kills, a Neo4j restart, proxy faults, a full
# disk: about 3-5 minutes) runs once, on the release gateway.
run_pytest "asan+ubsan, Neo4j 5.26, tx adapter" "$root/build-asan/bistore" tx tests/integration \
  --ignore=tests/integration/test_fault_load.py
# valgrind runs the gateway tens of times slower: a representative few (entities,
# relationships, a batch with refs, idempotency, the audit list, a 404).
valgrind_set=(
  tests/integration/test_api_entities.py::test_create_entity_with_id_lands_in_both_stores
  tests/integration/test_api_entities.py::test_patch_if_match_merges_and_bumps_version
  tests/integration/test_api_entities.py::test_delete_entity_removes_its_relationships_in_both_stores
  tests/integration/test_api_entities.py::test_list_entities_keyset_pagination_and_type_filter
  tests/integration/test_api_transactions.py::test_create_relationship_lands_in_both_stores
  tests/integration/test_api_transactions.py::test_get_and_delete_relationship
  tests/integration/test_api_transactions.py::test_batch_with_refs_creates_the_same_graph_in_both
  tests/integration/test_api_transactions.py::test_transaction_idempotency_key
  tests/integration/test_api_transactions.py::test_transactions_audit_list
  tests/integration/test_api_transactions.py::test_relationship_missing_endpoint_is_404)
# The writer's helper threads (the committer, the pipelined request, the
# spare transaction) under the crash and fault tests too, and the fast
# scan's two Neo4j requests side by side: about 3 minutes.
run_pytest "tsan, Neo4j 5.26, tx adapter" "$root/build-tsan/bistore" tx tests/integration/test_concurrency.py \
  tests/integration/test_group_commit.py tests/integration/test_pipeline.py tests/integration/test_faults.py \
  tests/integration/test_stuck_intent.py tests/integration/test_replica.py tests/integration/test_failover.py \
  tests/integration/test_reconcile_ranges.py::test_range_checksums_go_to_neo4j_two_at_a_time \
  tests/integration/test_reconcile_ranges.py::test_scattered_differences_of_every_kind_are_all_found
BISTORE_WRAPPER="valgrind -q --error-exitcode=67 --leak-check=full --show-leak-kinds=definite
  --errors-for-leak-kinds=definite --suppressions=$root/tests/valgrind.supp" BISTORE_TEST_READY_TIMEOUT=120 \
  run_pytest "valgrind memcheck, release, Neo4j 5.26, tx adapter" "$root/build/bistore" tx \
  "${valgrind_set[@]}"
run_pytest "release, Neo4j 5.26, query adapter" "$root/build/bistore" query "${query_set[@]}"
# schemathesis: every operation of openapi/openapi.yaml, every check, 600
# examples per operation (about 13,000 cases; tests/integration/schemathesis.toml
# says which statuses a schema-valid request may also get, and why).
run_pytest "schemathesis, release, Neo4j 5.26" "$root/build/bistore" tx tests/integration/schemathesis_run.py
# After the pytest legs, alone: the image's build takes both cores for
# about half a minute. Both run against this Neo4j.
run_leg "install check" scripts/install-check.sh build
run_leg "container check" scripts/container-check.sh
# The fixed-memory check writes nothing to Neo4j (every request is refused).
run_leg "benchmark smoke: stats-memory" env NEO4J_URL="$BISTORE_TEST_NEO4J_URL" \
  bench/stats_memory.py --smoke
# Needs no Neo4j; a crash fails it and leaves the reproducer in build-fuzz/artifacts/.
fuzz_seconds=${BISTORE_FUZZ_SECONDS:-60}
run_leg "fuzz (libFuzzer, $fuzz_seconds s per target)" env BISTORE_FUZZ_SECONDS="$fuzz_seconds" \
  scripts/fuzz.sh
stop_neo4j

# The version matrix: the calendar release, on both adapters. The harness
# restarts Neo4j through scripts/neo4j.sh, which reads BISTORE_NEO4J_VERSION.
if scripts/neo4j.sh jdk25 >/dev/null || [ -n "${BISTORE_NEO4J_JAVA:-}" ]; then
  export BISTORE_NEO4J_VERSION=2026
  if start_neo4j 2026.08.1; then
    run_pytest "release, Neo4j 2026.08.1, tx adapter" "$root/build/bistore" tx "${calendar_set[@]}"
    run_pytest "release, Neo4j 2026.08.1, query adapter" "$root/build/bistore" query "${calendar_set[@]}"
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
  local label=$1 log t0=$SECONDS; shift; log=$(mktemp)
  echo "== benchmark smoke: $label"
  if "$@" >"$log" 2>&1; then
    tail -n 5 "$log"; count 1 0
  else
    cat "$log"; echo "benchmark smoke $label FAILED"; count 0 1
  fi
  echo "-- benchmark smoke $label: $((SECONDS - t0)) s"
  rm -f "$log"
}
run_smoke perf bench/perf.sh --smoke
run_smoke reconciliation bench/recon.sh --smoke

echo "== suite took $((SECONDS - start)) s"
[ -z "$skipped" ] || echo "SKIPPED (not counted as passed):$skipped"
for leg in "${not_run[@]}"; do echo "NOT RUN (counted neither passed nor failed): $leg"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
