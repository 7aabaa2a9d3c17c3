#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang-15
# (-fsanitize=fuzzer,address,undefined, build-fuzz/) and runs each for a
# bounded time from a copy of its seed corpus, tests/fuzz/corpus/<target>/
# (what a run finds is kept in build-fuzz/corpus/, never written back to
# the repository). Prints per target: executions, exec/s, corpus size,
# coverage (cov: and ft: of libFuzzer's last status line) and crashes.
# A tests/fuzz/<target>.dict is passed as its dictionary.
#   scripts/fuzz.sh [--seconds N] [TARGET...]
# BISTORE_FUZZ_SECONDS (default 60) is the time per target. A crash, leak
# or UB report fails the script and leaves its reproducer in
# build-fuzz/artifacts/<target>/ (replay it: build/tests/fuzz/<target>_replay FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${BISTORE_FUZZ_SECONDS:-60}
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
cc=${BISTORE_FUZZ_CC:-clang-15}
command -v "$cc" >/dev/null || { echo "fuzz: $cc is missing (scripts/deps.sh installs it)" >&2; exit 1; }
dir=build-fuzz
CC=$cc cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBISTORE_FUZZ=ON \
  -DBISTORE_BENCH=OFF >/dev/null
cmake --build "$dir" --target "${targets[@]/%/_libfuzzer}" >/dev/null
# The largest input: the target's own limit (64 KiB, FUZZ_MAX_INPUT).
max_len=65536
failed=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for t in "${targets[@]}"; do
  work=$dir/corpus/$t
  art=$dir/artifacts/$t
  rm -rf "$work"
  mkdir -p "$work" "$art"
  cp tests/fuzz/corpus/"$t"/* "$work"/
  log=$dir/$t.log
  rc=0
  dict=()
  [ -f tests/fuzz/"$t".dict ] && dict=(-dict=tests/fuzz/"$t".dict)
  "$dir/tests/fuzz/${t}_libfuzzer" -max_total_time="$seconds" -max_len=$max_len -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" -artifact_prefix="$art/" "$work" \
    >"$log" 2>&1 || rc=$?
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  execs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" || echo "?")
  rate=$(grep -oP 'stat::average_exec_per_sec:\s*\K[0-9]+' "$log" || echo "?")
  cov=$(grep -oP 'cov: \K[0-9]+' <<<"$last" || echo "?")
  ft=$(grep -oP 'ft: \K[0-9]+' <<<"$last" || echo "?")
  corp=$(ls "$work" | wc -l)
  crashes=$(find "$art" -type f | wc -l)
  echo "fuzz $t: ${seconds}s, $execs executions, $rate exec/s, corpus $corp files, cov $cov, ft $ft, crashes $crashes"
  if [ $rc -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    echo "fuzz $t: FAILED (exit $rc); reproducer(s): $(find "$art" -type f | tr '\n' ' ')" >&2
    grep -E 'ERROR|SUMMARY|invariant|runtime error' "$log" | head -20 >&2 || true
  fi
done
exit $failed
