#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. installs and builds what is missing (scripts/deps.sh)
#   2. style checks (banned functions, clang-format)
#   3. release build: Criterion unit tests
#   4. ASan+UBSan build: the same unit tests
#   5. one real Neo4j for the whole run, then the integration and fault
#      tests (pytest) against the release gateway and again against the
#      ASan+UBSan gateway
#   6. deployment: cmake --install with the man page and the systemd unit
#      (scripts/install-check.sh), and the container image built and run
#      against the same Neo4j (scripts/container-check.sh)
#   7. the benchmarks in their --smoke form (they still run; not timed)
# Prints "N passed, N failed" at the end; exits non-zero on any failure. A
# leg that cannot run on this machine at all is SKIPPED: said at the end,
# never counted as passed.
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

echo "== Neo4j"
neo4j_home=$(mktemp -d /tmp/bistore-test-neo4j.XXXXXX)
cleanup() { "$root/scripts/neo4j.sh" stop "$neo4j_home" || true; rm -rf "$neo4j_home"; }
trap cleanup EXIT
ports=$(scripts/neo4j.sh start "$neo4j_home" 0)
http_port=${ports#http=}; http_port=${http_port%% *}
export BISTORE_TEST_NEO4J_URL="http://127.0.0.1:$http_port"
export BISTORE_TEST_NEO4J_HOME="$neo4j_home"
echo "Neo4j on $BISTORE_TEST_NEO4J_URL"

run_pytest() { # run_pytest LABEL BINARY
  local log; log=$(mktemp)
  echo "== integration and fault tests ($1)"
  if BISTORE_BIN="$2" python3 -m pytest tests/integration -q -p no:cacheprovider \
       >"$log" 2>&1; then :; fi
  cat "$log"
  local p f e
  p=$(grep -Eo '[0-9]+ passed' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  f=$(grep -Eo '[0-9]+ failed' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  e=$(grep -Eo '[0-9]+ error' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  rm -f "$log"
  [ "$p" -gt 0 ] || f=$((f + 1))
  count "$p" $((f + e))
}
run_pytest release "$root/build/bistore"
run_pytest asan+ubsan "$root/build-asan/bistore"

# Deployment, one count each: cmake --install, then the image (after the
# pytest legs, alone: its build takes both cores for about half a minute).
run_leg() { # run_leg LABEL COMMAND...   (exit 77: skipped)
  local label=$1 log rc=0; shift; log=$(mktemp)
  echo "== $label"
  "$@" >"$log" 2>&1 || rc=$?
  case $rc in
    0) cat "$log"; count 1 0 ;;
    77) cat "$log"; skipped="$skipped $label;" ;;
    *) cat "$log"; echo "$label FAILED"; count 0 1 ;;
  esac
  rm -f "$log"
}
run_leg "install check" scripts/install-check.sh build
run_leg "container check" scripts/container-check.sh

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
[ -z "$skipped" ] || echo "SKIPPED (not counted as passed):$skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
