#!/usr/bin/env bash
# The two Neo4j adapters (--neo4j-api tx|query) on the same workloads, in one
# run, against one Neo4j of its own (bench/PERF.md, "Neo4j adapters"):
#
#   bench/adapters.sh [SECONDS]     each measurement lasts SECONDS (15)
#
# For each round, each workload (create: POST /v1/entities; batch: one
# POST /v1/transactions of 20 entities and 20 relationships) and each number
# of clients (1, 32), a gateway with each adapter is measured in turn (the
# order alternates between rounds), so a busy machine slows both alike.
# Prints bench_load's lines; BISTORE_PERF_WORK=DIR keeps the logs there;
# BISTORE_BENCH_NEO4J_URL uses a running Neo4j instead of starting one;
# BISTORE_ADAPTER_ROUNDS (2) sets the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
rounds=${BISTORE_ADAPTER_ROUNDS:-2}
scripts/build.sh release >/dev/null
work=${BISTORE_PERF_WORK:-$(mktemp -d /tmp/bistore-adapters.XXXXXX)}
mkdir -p "$work"
gw_pid=
cleanup() {
  [ -n "$gw_pid" ] && kill -TERM "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
  scripts/neo4j.sh stop "$work/neo4j" >/dev/null 2>&1 || true
}
trap cleanup EXIT
if [ -n "${BISTORE_BENCH_NEO4J_URL:-}" ]; then # a Neo4j of yours (its data is added to)
  neo4j=$BISTORE_BENCH_NEO4J_URL
else
  ports=$(scripts/neo4j.sh start "$work/neo4j" 0)
  http=${ports#http=}; http=${http%% *}
  neo4j="http://127.0.0.1:$http"
fi

gateway() { # gateway API LABEL: starts one on a fresh SQLite file, sets $url
  rm -f "$work/$2.db"*
  local port  # a free port (with --log-level warn the "listening on" line is not printed)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  build/bistore serve --listen "127.0.0.1:$port" --sqlite "$work/$2.db" --neo4j-url "$neo4j" \
    --neo4j-api "$1" --validate-interval 0 --log-level warn --neo4j-timeout-ms 60000 \
    >"$work/$2.log" 2>&1 &
  gw_pid=$!
  url="http://127.0.0.1:$port"
  for _ in $(seq 600); do
    curl -sf "$url/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "adapters.sh: the $1 gateway is not ready:" >&2; tail -5 "$work/$2.log" >&2; exit 1
}
stop_gateway() {
  kill -TERM "$gw_pid"; wait "$gw_pid" || true; gw_pid=
}

for round in $(seq "$rounds"); do
  apis="tx query"; [ $((round % 2)) -eq 0 ] && apis="query tx"
  for workload in create batch; do
    for clients in 1 32; do
      for api in $apis; do
        gateway "$api" "$api-$workload-$clients"
        extra=(); [ "$workload" = batch ] && extra=(--entities 20 --relationships 20)
        build/bench/bench_load --url "$url" --workload "$workload" --clients "$clients" \
          --duration "$secs" --warmup 2 --system "bistore-$api" "${extra[@]}" \
          --cpu-pid "gateway:$gw_pid" | grep -v '^{' || true
        stop_gateway
      done
    done
  done
done
