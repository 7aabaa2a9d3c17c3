#!/usr/bin/env bash
# The local Neo4j 5.26 (Community, from Maven Central) for development and tests.
#
#   scripts/neo4j.sh build                      fetch Neo4j and build the launcher (once)
#   scripts/neo4j.sh start HOME [HTTP_PORT] [BOLT_PORT]
#                                               start in the background, data in HOME;
#                                               port 0 (the default) lets the kernel pick;
#                                               prints "http=<port> bolt=<port>" when ready
#   scripts/neo4j.sh stop HOME                  SIGTERM, wait for a clean shutdown
#
# The server listens on 127.0.0.1 only, with auth off and -Xmx1g. Its data in
# HOME survives a stop and a start (and a SIGKILL); its pid is in HOME/pid and
# its log in HOME/neo4j.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proj="$here/neo4j"
lib="$proj/target/lib"
jar="$proj/target/bistore-neo4j-1.jar"

build() {
  if [ -f "$jar" ] && [ -d "$lib" ] && [ "$jar" -nt "$proj/pom.xml" ] &&
     [ "$jar" -nt "$proj/src/main/java/bistore/BistoreNeo4j.java" ]; then
    return 0
  fi
  command -v mvn >/dev/null || { echo "neo4j.sh: Maven (mvn) is needed" >&2; exit 1; }
  (cd "$proj" && mvn -q -B package -DskipTests)
}

start() {
  local home=${1:?HOME folder}; local http=${2:-0}; local bolt=${3:-}
  build
  mkdir -p "$home"
  home=$(cd "$home" && pwd)
  if [ -f "$home/pid" ] && kill -0 "$(cat "$home/pid")" 2>/dev/null; then
    echo "neo4j.sh: already running with pid $(cat "$home/pid")" >&2; exit 1
  fi
  rm -f "$home/ports"
  local args=("$home" "$http"); [ -n "$bolt" ] && args+=("$bolt")
  nohup java -Xmx1g -XX:+UseG1GC \
    --add-opens java.base/java.nio=ALL-UNNAMED \
    --add-opens java.base/java.io=ALL-UNNAMED \
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
    --add-opens java.base/java.lang=ALL-UNNAMED \
    -cp "$jar:$lib/*" bistore.BistoreNeo4j "${args[@]}" \
    >"$home/neo4j.log" 2>&1 </dev/null &
  echo $! >"$home/pid"
  local deadline=$((SECONDS + 120))
  while [ ! -s "$home/ports" ]; do
    if ! kill -0 "$(cat "$home/pid")" 2>/dev/null; then
      echo "neo4j.sh: Neo4j exited during start-up; last lines of $home/neo4j.log:" >&2
      tail -n 20 "$home/neo4j.log" >&2; exit 1
    fi
    [ $SECONDS -lt $deadline ] || { echo "neo4j.sh: Neo4j not ready after 120 s" >&2; exit 1; }
    sleep 0.2
  done
  cat "$home/ports"
}

stop() {
  local home=${1:?HOME folder}
  [ -f "$home/pid" ] || return 0
  local pid; pid=$(cat "$home/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    local deadline=$((SECONDS + 60))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$home/pid" "$home/ports"
}

case "${1:-}" in
  build) build ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
