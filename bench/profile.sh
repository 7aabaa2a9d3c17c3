#!/usr/bin/env bash
# Where the gateway's CPU goes per write (bench/PERF.md, issue 14 item 2):
#
#   bench/profile.sh [--clients N] [--seconds S] [--warmup S] [--bin PATH]
#
# Starts its own Neo4j (scripts/neo4j.sh, in a temporary folder; or uses
# NEO4J_URL with NEO4J_HOME, the folder of a scripts/neo4j.sh server, for
# its pid) and a gateway (PATH, default build/bistore, with the flags of
# bench/perf.sh), warms Neo4j's JIT with creates at 8 clients (--warmup,
# 60 s), then runs single creates at N clients (32) for S seconds (10)
# twice: the first gives the CPU per 1,000 transactions of the load
# generator, of Neo4j and of the gateway, the second, under `perf record`,
# the split of the gateway's by function family (its samples by library and
# symbol). It prints both, the split in CPU ms per 1,000 transactions.
# Needs perf (scripts/deps.sh installs linux-perf). KEEP=1 keeps the folder
# (perf.data, the logs). Everything it started is stopped, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

clients=32 seconds=10 warmup=60 bin=build/bistore
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) sed -n '2,16p' "$0" >&2; exit 2 ;;
  esac
done
command -v perf >/dev/null || { echo "profile.sh: perf is missing: run scripts/deps.sh" >&2; exit 1; }
load=build/bench/bench_load
[ -x "$bin" ] && [ -x "$load" ] || scripts/build.sh release >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/bistore-profile.XXXXXX")
gw_pid="" own_neo4j=0
cleanup() {
  local status=$?
  [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
  [ "$own_neo4j" = 1 ] && scripts/neo4j.sh stop "$work/neo4j" >/dev/null 2>&1
  if [ "${KEEP:-0}" = 1 ]; then echo "profile.sh: kept $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT INT TERM

if [ -n "${NEO4J_URL:-}" ]; then
  url=$NEO4J_URL
  neo4j_pid=$(cat "${NEO4J_HOME:?NEO4J_HOME names the server folder of NEO4J_URL}/pid")
else
  own_neo4j=1
  port=$(scripts/neo4j.sh start "$work/neo4j" 0 | sed -n 's/.*http=\([0-9]*\).*/\1/p')
  url=http://127.0.0.1:$port
  neo4j_pid=$(cat "$work/neo4j/pid")
fi

"$bin" serve --listen 127.0.0.1:0 --sqlite "$work/gateway.sqlite" --neo4j-url "$url" \
  --validate-interval 0 --log-level warn --neo4j-timeout-ms 60000 >"$work/gateway.log" 2>&1 &
gw_pid=$!
gw_port=""
for _ in $(seq 100); do
  gw_port=$(ss -ltnp 2>/dev/null | grep "pid=$gw_pid," | grep -o '127.0.0.1:[0-9]*' | head -1 | cut -d: -f2 || true)
  [ -n "$gw_port" ] && curl -fs "http://127.0.0.1:$gw_port/readyz" >/dev/null && break
  sleep 0.2
done
[ -n "$gw_port" ] || { echo "profile.sh: the gateway did not start" >&2; cat "$work/gateway.log" >&2; exit 1; }
gw=http://127.0.0.1:$gw_port

echo "== warm-up: creates at 8 clients for $warmup s (Neo4j's JIT)"
"$load" --url "$gw" --workload create --clients 8 --duration "$warmup" --warmup 0 | grep -v '^RESULT'

# CPU from a run of its own: perf's sampling of 40-odd threads costs the
# gateway CPU too (about half as much again here), not the split.
echo "== creates at $clients clients for $seconds s: the CPU of each process"
"$load" --url "$gw" --workload create --clients "$clients" --duration "$seconds" --warmup 1 \
  --cpu-pid "gateway:$gw_pid" --cpu-pid "neo4j:$neo4j_pid" >"$work/load.txt"
grep -v '^RESULT' "$work/load.txt"
result=$(grep '^RESULT' "$work/load.txt" | sed 's/^RESULT //')

echo "== the same again, perf sampling the gateway: the split of its CPU"
"$load" --url "$gw" --workload create --clients "$clients" --duration "$seconds" --warmup 1 \
  >"$work/load-perf.txt" &
load_pid=$!
sleep 1.5 # after the load generator's warm-up second
perf record -q -F 999 -p "$gw_pid" -o "$work/perf.data" -- \
  sleep "$(awk -v s="$seconds" 'BEGIN { print (s > 3 ? s - 1 : s / 2) }')" 2>"$work/perf-record.log"
wait "$load_pid"
grep -v '^RESULT' "$work/load-perf.txt"

perf report -i "$work/perf.data" --no-children --sort dso,sym --stdio -g none --percent-limit 0 2>/dev/null |
  grep -E '^ +[0-9.]+%' >"$work/symbols.txt"

python3 - "$work/symbols.txt" "$result" "$clients" <<'EOF'
import json, re, sys
rows, result, clients = open(sys.argv[1]).read().splitlines(), json.loads(sys.argv[2]), sys.argv[3]
tx = result["ok"]
per_1k = dict(result["cpu_s_per_1k"], client=result["client_cpu_s_per_1k"])  # CPU s per 1,000 tx

KERNEL = [  # (symbol pattern, family), the first match wins
    (r"sched|task_switch|_raw_spin_unlock_irq|futex|wake|finish_task|pick_next|enqueue|dequeue",
     "kernel: scheduling and wake-ups (futex, socket)"),
    (r"tcp|sock|skb|inet|ip_|net_|__dev_|loopback|napi|softirq|_copy_to_iter|copy_from_iter|sk_|poll|epoll",
     "kernel: TCP and polling (loopback)"),
    (r"ext4|jbd2|fsync|filemap|folio|page|blk|bio|iowrite|virtio|buffer|dirty|writeback|mpage",
     "kernel: files and fsync"),
    (r"", "kernel: other (syscall entry, timers, memory)"),
]
LIBC = [
    (r"malloc|free|calloc|realloc|tcache|consolidate|unlink_chunk|_int_", "libc: malloc/free"),
    (r"pthread|futex|lll_|sem_|cond", "libc: locks and condition variables"),
    (r"printf|strtod|printf_fp|xsputn|_IO_|itoa|strto", "libc: number formatting and parsing"),
    (r"", "libc: memory and strings (memcpy, memset, strlen)"),
]

def family(dso, sym):
    table = KERNEL if dso == "[kernel.kallsyms]" else LIBC if dso.startswith("libc.so") else None
    if table:
        return next(name for pattern, name in table if re.search(pattern, sym))
    for lib, name in (("sqlite", "SQLite"), ("jansson", "jansson (JSON trees)"), ("curl", "libcurl (Neo4j requests)"),
                      ("microhttpd", "libmicrohttpd (HTTP server)"), ("ssl", "OpenSSL"), ("crypto", "OpenSSL"),
                      ("xxhash", "xxHash")):
        if lib in dso:
            return name
    if dso == "bistore":
        return "bistore's own code"
    return "other (" + dso + ")"

shares = {}
for line in rows:
    m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$", line)
    if m:
        f = family(m.group(2), m.group(3).strip())
        shares[f] = shares.get(f, 0.0) + float(m.group(1))
total = sum(shares.values()) or 1.0
gw_ms = per_1k.get("gateway", 0.0) * 1000.0
print(f"\n== CPU per 1,000 transactions at {clients} clients ({tx} creates, {result['tx_per_s']:.0f} tx/s)")
print("| component | CPU ms per 1,000 tx | share of the gateway's |")
print("|---|---|---|")
for label in ("client", "neo4j", "gateway"):
    if label in per_1k:
        print(f"| {label} | {per_1k[label] * 1000.0:,.1f} | |")
for f, v in sorted(shares.items(), key=lambda kv: -kv[1]):
    print(f"| gateway: {f} | {gw_ms * v / total:,.1f} | {100 * v / total:.1f} % |")
EOF
