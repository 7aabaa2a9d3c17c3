#!/usr/bin/env bash
# Runs the gateway with everything it needs: installs and builds what is
# missing, starts the local Neo4j (data in ./data/neo4j, HTTP on
# 127.0.0.1:${NEO4J_HTTP_PORT:-7474}) and serves on 127.0.0.1:${BISTORE_PORT:-8080}
# with ./data/bistore.db. Ctrl-C stops the gateway, then Neo4j.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release
mkdir -p data
neo4j_port=${NEO4J_HTTP_PORT:-7474}
started_neo4j=0
if [ -f data/neo4j/pid ] && kill -0 "$(cat data/neo4j/pid)" 2>/dev/null; then
  echo "run: Neo4j already running (pid $(cat data/neo4j/pid))"
else
  echo "run: starting Neo4j on 127.0.0.1:$neo4j_port (data in data/neo4j)"
  scripts/neo4j.sh start data/neo4j "$neo4j_port"
  started_neo4j=1
fi
stop_neo4j() { [ "$started_neo4j" = 1 ] && scripts/neo4j.sh stop data/neo4j; }
trap stop_neo4j EXIT
trap 'kill -TERM "$gw" 2>/dev/null' INT TERM
build/bistore serve --listen "127.0.0.1:${BISTORE_PORT:-8080}" --sqlite data/bistore.db \
  --neo4j-url "http://127.0.0.1:$neo4j_port" "$@" &
gw=$!
wait "$gw" || true
wait "$gw" 2>/dev/null || true
