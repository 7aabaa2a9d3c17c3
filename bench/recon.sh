#!/usr/bin/env bash
# The reconciliation benchmark (bench/README.md):
#
#   bench/recon.sh            1,000,000 entities and 2,000,000 relationships
#   bench/recon.sh --smoke    2,000 and 4,000: a quick check that it works (CI)
#
# Builds (scripts/build.sh release), starts its own Neo4j in a temporary
# folder, loads a consistent store with bench_recon_load (UNWIND batches,
# not through the gateway), measures Neo4j's raw keyset scan
# (bench/neo4j_scan.py) and SQLite's (bench/recon_damage.py), starts the
# gateway, runs a fast reconciliation through the API twice (Neo4j cold for
# these queries, then warm) and times each against
# both keyset scans, reads the gateway's peak RSS, times `bistore check`
# (the same scan from the CLI) under /usr/bin/time, then scatters 100
# differences of four kinds (20 in --smoke) and times `bistore check`
# again, which must find each of them.
# Fails (exit 1) when anything fails or the check finds a disagreement.
# Everything it started is stopped and its folder removed, even on failure.
#
# Environment: ENTITIES, RELATIONSHIPS (sizes), BATCH (rows per load batch,
# 10000), SEED (1), BENCH_DIR (where the temporary folder goes, default
# $TMPDIR or /tmp; it needs a few GB for the full run), KEEP=1 (keep the
# folder: the stores and the logs), NEO4J_TIMEOUT_MS (passed to the gateway
# and the CLI as --neo4j-timeout-ms; unset: the gateway's default).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--smoke" ]; then
  ENTITIES=2000 RELATIONSHIPS=4000
elif [ $# -gt 0 ]; then
  sed -n '2,20p' "$0" >&2
  exit 2
fi
ENTITIES=${ENTITIES:-1000000}
RELATIONSHIPS=${RELATIONSHIPS:-2000000}
BATCH=${BATCH:-10000}
SEED=${SEED:-1}
KEEP=${KEEP:-0}

work=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/bistore-recon-bench.XXXXXX")
neo4j_home="$work/neo4j"
gw_pid=""
neo4j_started=0

say() { printf '%s\n' "$*"; }
fail() { say "recon.sh: FAILED: $*" >&2; exit 1; }

cleanup() {
  local status=$?
  if [ -n "$gw_pid" ] && kill -0 "$gw_pid" 2>/dev/null; then
    kill -TERM "$gw_pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$gw_pid" 2>/dev/null || true
    wait "$gw_pid" 2>/dev/null || true
  fi
  if [ "$neo4j_started" = 1 ] || [ -f "$neo4j_home/pid" ]; then
    scripts/neo4j.sh stop "$neo4j_home" >/dev/null 2>&1 || true
  fi
  if [ "$KEEP" = 1 ]; then
    say "recon.sh: kept $work"
  else
    rm -rf "$work"
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk '{ printf "%.1f", ($14 + $15) / 100 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
json() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# Runs a command and writes its max RSS and CPU time to $check_time in
# /usr/bin/time -v's words; python's resource module where time is missing.
max_rss() {
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -v -o "$check_time" "$@"
  else
    python3 - "$check_time" "$@" <<'PY'
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
u = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    f.write(f"User time (seconds): {u.ru_utime:.2f}\nSystem time (seconds): {u.ru_stime:.2f}\n"
            f"Maximum resident set size (kbytes): {u.ru_maxrss}\n")
sys.exit(rc)
PY
  fi
}

timeout_flags=()
if [ -n "${NEO4J_TIMEOUT_MS:-}" ]; then
  timeout_flags=(--neo4j-timeout-ms "$NEO4J_TIMEOUT_MS")
fi

say "== reconciliation benchmark: $ENTITIES entities, $RELATIONSHIPS relationships"
say "   $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load average $(loadavg), folder $work"

say "== build"
scripts/build.sh release >/dev/null
[ -x build/bench/bench_recon_load ] || fail "build/bench/bench_recon_load missing (BISTORE_BENCH off?)"

say "== Neo4j"
ports=$(scripts/neo4j.sh start "$neo4j_home" 0) || fail "Neo4j did not start"
neo4j_started=1
neo4j_port=$(printf '%s\n' "$ports" | sed -n 's/.*http=\([0-9]*\).*/\1/p')
[ -n "$neo4j_port" ] || fail "no Neo4j port in '$ports'"
neo4j_url="http://127.0.0.1:$neo4j_port"
neo4j_pid=$(cat "$neo4j_home/pid")
neo4j_version=$(curl -sf "$neo4j_url/" | json 'd["neo4j_version"] + " " + d["neo4j_edition"]') ||
  fail "Neo4j at $neo4j_url does not answer"
say "   Neo4j $neo4j_version at $neo4j_url (pid $neo4j_pid, JVM -Xmx1g)"

say "== load (bench_recon_load, batches of $BATCH)"
sqlite_path="$work/bistore.db"
build/bench/bench_recon_load --sqlite "$sqlite_path" --neo4j-url "$neo4j_url" \
  --entities "$ENTITIES" --relationships "$RELATIONSHIPS" --batch "$BATCH" --seed "$SEED" ||
  fail "the load failed"
say "   SQLite file $(du -h "$sqlite_path" | cut -f1), Neo4j folder $(du -sh "$neo4j_home" | cut -f1)"

say "== each store alone: keyset scan, pages of 5000 (bench/neo4j_scan.py, bench/recon_damage.py)"
scan_out="$work/scan.out"
python3 bench/neo4j_scan.py "$neo4j_url" >"$scan_out" || fail "the raw Neo4j scan failed"
python3 bench/recon_damage.py sqlite-scan "$sqlite_path" >>"$scan_out" || fail "the SQLite scan failed"
sed 's/^/   /' "$scan_out"
# What a row-by-row check cannot beat: both stores' keyset scans, one after
# the other (the gateway's Neo4j queries, and SQLite's), no merge at all.
keyset_s=$(awk '/as the gateway|SQLite keyset/ { for (i = 1; i < NF; i++) if ($(i + 1) == "s") s += $i }
                END { printf "%.1f", s }' "$scan_out")
say "   plain keyset scan of both stores: $keyset_s s"

say "== gateway: fast reconciliation through the API"
gw_log="$work/gateway.log"
: >"$gw_log" # before the loop below reads it (the background shell may open it later)
build/bistore serve --listen 127.0.0.1:0 --sqlite "$sqlite_path" --neo4j-url "$neo4j_url" \
  --validate-interval 0 --log-level debug "${timeout_flags[@]}" 2>"$gw_log" &
gw_pid=$!
gw_port=""
deadline=$((SECONDS + 30))
while [ -z "$gw_port" ]; do
  kill -0 "$gw_pid" 2>/dev/null || { cat "$gw_log" >&2; fail "the gateway exited"; }
  [ $SECONDS -lt $deadline ] || fail "no 'listening on' line from the gateway in 30 s"
  gw_port=$(head -n 1 "$gw_log" | sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p')
  [ -n "$gw_port" ] || sleep 0.1
done
gw="http://127.0.0.1:$gw_port"
deadline=$((SECONDS + 120))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$gw/readyz")" = 200 ]; do
  kill -0 "$gw_pid" 2>/dev/null || { tail -n 20 "$gw_log" >&2; fail "the gateway exited"; }
  [ $SECONDS -lt $deadline ] || fail "the gateway not ready after 120 s"
  sleep 0.2
done
rss_ready=$(awk '/^VmHWM/ { print $2 }' "/proc/$gw_pid/status")
say "   gateway pid $gw_pid at $gw, ready (VmHWM ${rss_ready} kB)"

# The Neo4j requests logged (debug: one line per request with its duration)
# in log $1 from line $2 on: how many, and the sum of their durations. The
# fast scan has two range-checksum requests out at a time, so the sum can
# exceed the wall time $3.
neo4j_requests() {
  tail -n +"$2" "$1" | awk -v secs="$3" '
    /neo4j POST .* in [0-9]+ ms/ { if (match($0, /in [0-9]+ ms/)) { n++; ms += substr($0, RSTART + 3, RLENGTH - 6) } }
    END { printf "   Neo4j requests:        %d, %.1f s in all (%.0f%% of the run; two at a time in the range checksums)\n",
          n, ms / 1000, (secs > 0 ? 100 * ms / 1000 / secs : 0) }'
}

# One fast run through the API ($1 names it), timed, checked and described.
gateway_run() {
  local log_mark load_before gw_cpu0 neo_cpu0 t0 t1 answer run_id last_note run state gw_cpu neo_cpu
  local load_after gw_hwm summary ents rels dirty
  log_mark=$(($(wc -l <"$gw_log") + 1))
  load_before=$(loadavg)
  gw_cpu0=$(cpu_s "$gw_pid")
  neo_cpu0=$(cpu_s "$neo4j_pid")
  t0=$(now)
  answer=$(curl -sf -X POST -H 'Content-Type: application/json' -d '{"mode":"fast"}' \
    "$gw/v1/reconciliations") || fail "POST /v1/reconciliations refused"
  run_id=$(printf '%s' "$answer" | json 'd["id"]')
  last_note=$SECONDS
  while :; do
    run=$(curl -sf "$gw/v1/reconciliations/$run_id") || fail "GET /v1/reconciliations/$run_id failed"
    state=$(printf '%s' "$run" | json 'd["state"]')
    [ "$state" = running ] || break
    if [ $((SECONDS - last_note)) -ge 15 ]; then
      say "   ... $(printf '%s' "$run" | json '"%d of %d" % (d["progress"]["scanned"], d["progress"]["total"])')"
      last_note=$SECONDS
    fi
    kill -0 "$gw_pid" 2>/dev/null || fail "the gateway died during the run"
    sleep 0.25
  done
  t1=$(now)
  gw_cpu=$(awk -v a="$gw_cpu0" -v b="$(cpu_s "$gw_pid")" 'BEGIN { printf "%.1f", b - a }')
  neo_cpu=$(awk -v a="$neo_cpu0" -v b="$(cpu_s "$neo4j_pid")" 'BEGIN { printf "%.1f", b - a }')
  load_after=$(loadavg)
  gw_hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$gw_pid/status")
  summary=$(printf '%s' "$run" | json 'json.dumps(d["summary"])')
  if [ "$state" != done ]; then
    say "   run $run_id: $run" >&2
    fail "the reconciliation ended '$state': $(printf '%s' "$run" | json 'd["error"]')"
  fi
  secs=$(elapsed "$t0" "$t1")
  ents=$(printf '%s' "$run" | json 'd["summary"]["entities_sqlite"]')
  rels=$(printf '%s' "$run" | json 'd["summary"]["relationships_sqlite"]')
  dirty=$(printf '%s' "$run" | json 'sum(d["summary"][k] for k in ("only_in_sqlite", "only_in_neo4j", "mismatched", "duplicate_ids", "missing_ids"))')
  say "   $1: run $run_id done"
  say "   summary: $summary"
  [ "$ents" = "$ENTITIES" ] && [ "$rels" = "$RELATIONSHIPS" ] ||
    fail "the run counted $ents entities and $rels relationships, not $ENTITIES and $RELATIONSHIPS"
  [ "$dirty" = 0 ] || fail "$dirty findings on a consistent store"
  say "   total time:            $secs s (POST to state done, polled every 0.25 s)"
  say "   vs the keyset scan:    $(awk -v k="$keyset_s" -v s="$secs" 'BEGIN { printf "%.2fx", (s > 0 ? k / s : 0) }') ($keyset_s s / $secs s)"
  say "   entities checked/s:    $(rate "$ents" "$secs")"
  say "   rows checked/s:        $(rate $((ents + rels)) "$secs") (entities + relationships)"
  say "   gateway peak RSS:      $gw_hwm kB (VmHWM; $rss_ready kB when ready)"
  say "   CPU during the run:    gateway $gw_cpu s, Neo4j $neo_cpu s"
  neo4j_requests "$gw_log" "$log_mark" "$secs"
  say "   load average:          $load_before before, $load_after after"
  tail -n +"$log_mark" "$gw_log" | grep -E 'reconciliation .* (done|failed) in' |
    sed 's/^/   gateway log: /' || true
}

# The first run is Neo4j's first of these aggregations (its JIT compiles
# them on the way); the second is what a gateway's periodic validation sees.
gateway_run "first run"
gateway_run "second run"

kill -TERM "$gw_pid"
wait "$gw_pid" 2>/dev/null || true
gw_pid=""

# Runs `bistore check` under max_rss: its output in $check_out, its exit
# status in check_rc, its wall time in secs.
check_out="$work/check.out"
check_time="$work/check.time"
timed_check() {
  local t0 t1
  t0=$(now)
  set +e
  max_rss build/bistore check --sqlite "$sqlite_path" --neo4j-url "$neo4j_url" --log-level debug \
    "${timeout_flags[@]}" >"$check_out" 2>"$work/check.err"
  check_rc=$?
  set -e
  t1=$(now)
  secs=$(elapsed "$t0" "$t1")
}

say "== CLI: bistore check (same scan, no gateway)"
timed_check
sed 's/^/   /' "$check_out"
if [ $check_rc -ne 0 ]; then
  grep -v ' DEBUG ' "$work/check.err" | tail -n 5 >&2
  fail "bistore check exited $check_rc"
fi
check_rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$check_time")
check_cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.1f", s }' "$check_time")
say "   total time:            $secs s"
say "   entities checked/s:    $(rate "$ENTITIES" "$secs")"
say "   rows checked/s:        $(rate $((ENTITIES + RELATIONSHIPS)) "$secs")"
say "   CLI max RSS:           $check_rss kB (CPU $check_cpu s)"
cli_s=$secs
neo4j_requests "$work/check.err" 1 "$secs"

per_kind=$((ENTITIES >= 100000 ? 25 : 5))
say "== CLI: bistore check after $((4 * per_kind)) scattered differences ($per_kind each: only in SQLite,"
say "   only in Neo4j, mismatched hash, duplicate id; the uniqueness constraint replaced by a plain index)"
expected=$(python3 bench/recon_damage.py damage "$sqlite_path" "$neo4j_url" "$ENTITIES" --per-kind "$per_kind") ||
  fail "the damage failed"
timed_check
grep -v '^  ' "$check_out" | tail -n 3 | sed 's/^/   /'
[ $check_rc -eq 1 ] || { tail -n 5 "$work/check.err" >&2; fail "bistore check exited $check_rc, not 1"; }
for kind in only_in_sqlite only_in_neo4j mismatched duplicate_ids; do
  want=$(printf '%s' "$expected" | json "d['$kind']")
  label=$(printf '%s' "$kind" | sed 's/only_in_sqlite/only in SQLite/; s/only_in_neo4j/only in Neo4j/;
                                      s/duplicate_ids/duplicate ids/')
  got=$(sed -n "s/.*$label \([0-9]*\).*/\1/p" "$check_out" | tail -n 1)
  [ "$got" = "$want" ] || fail "$label: $got found, $want made"
done
check_rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$check_time")
say "   all $((4 * per_kind)) found"
say "   total time:            $secs s"
say "   entities checked/s:    $(rate "$ENTITIES" "$secs")"
say "   vs the consistent run: $(awk -v a="$cli_s" -v b="$secs" 'BEGIN { printf "%.0f%%", (b > 0 ? 100 * a / b : 0) }') of the CLI's speed on the consistent store"
say "   CLI max RSS:           $check_rss kB"
say "== done"
