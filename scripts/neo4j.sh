#!/usr/bin/env bash
# The local Neo4j (Community, from Maven Central) for development and tests:
# 5.26 LTS on Java 17 by default, or the calendar release of the version
# matrix (2026.08.1, Java 25) with BISTORE_NEO4J_VERSION=2026.
#
#   scripts/neo4j.sh build                      fetch Neo4j and build the launcher (once)
#   scripts/neo4j.sh start HOME [HTTP_PORT] [BOLT_PORT]
#                                               start in the background, data in HOME;
#                                               port 0 (the default) lets the kernel pick;
#                                               prints "http=<port> bolt=<port>" when ready
#   scripts/neo4j.sh stop HOME                  SIGTERM, wait for a clean shutdown
#
# The server listens on 127.0.0.1 only (HTTP, and Bolt: the Query API needs
# it), with -Xmx1g and auth off, or on when
# BISTORE_NEO4J_AUTH_PASSWORD_FILE names a file holding the password of the
# user neo4j. Its data in HOME survives a stop and a start (and a SIGKILL);
# its pid is in HOME/pid and its log in HOME/neo4j.log.
#
#   BISTORE_NEO4J_VERSION  5.26 (default) or 2026
#   BISTORE_NEO4J_JAVA     the JDK's home (default: the one on PATH for 5.26,
#                          /usr/lib/jvm/temurin-25-jdk-amd64 or another JDK 25
#                          found in /usr/lib/jvm for 2026)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proj="$here/neo4j"
# A JDK 25's home, when one is installed (exit 1 when none).
jdk25() {
  local d
  for d in /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/java-25-openjdk-amd64 /usr/lib/jvm/*25*; do
    if [ -x "$d/bin/java" ] && "$d/bin/java" -version 2>&1 | grep -q 'version "25'; then
      echo "$d"; return 0
    fi
  done
  return 1
}

case "${BISTORE_NEO4J_VERSION:-5.26}" in
  5.26) version=5.26.12; target=target; java_home=${BISTORE_NEO4J_JAVA:-} ;;
  2026) version=2026.08.1; target=target-2026; java_home=${BISTORE_NEO4J_JAVA:-$(jdk25 || true)} ;;
  *) echo "neo4j.sh: BISTORE_NEO4J_VERSION is 5.26 or 2026" >&2; exit 2 ;;
esac
java_bin=${java_home:+$java_home/bin/}java
# The launcher is compiled once, for Java 17 against 5.26 (its API is the
# same in 2026.x); the 2026 leg runs that jar with 2026's jars, which only
# need copying (Maven with the JDK 17 fetches them): a JDK 25's runtime is
# needed to run Neo4j 2026, not to build anything.
jar="$proj/target/bistore-neo4j-1.jar"
lib="$proj/$target/lib"

build() {
  command -v mvn >/dev/null || { echo "neo4j.sh: Maven (mvn) is needed" >&2; exit 1; }
  if ! { [ -f "$jar" ] && [ -d "$proj/target/lib" ] && [ "$jar" -nt "$proj/pom.xml" ] &&
         [ "$jar" -nt "$proj/src/main/java/bistore/BistoreNeo4j.java" ]; }; then
    (cd "$proj" && mvn -q -B package -DskipTests)
  fi
  if [ "$target" != target ] && ! { [ -d "$lib" ] && [ "$lib" -nt "$proj/pom.xml" ]; }; then
    (cd "$proj" && mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
       -Dneo4j.version="$version" -DincludeScope=runtime \
       -DoutputDirectory="$lib.tmp" && rm -rf "$lib" && mv "$lib.tmp" "$lib")
  fi
}

start() {
  local home=${1:?HOME folder}; local http=${2:-0}; local bolt=${3:-}
  if [ "$target" != target ] && [ -z "$java_home" ]; then
    echo "neo4j.sh: NOT RUN: no JDK 25 for Neo4j $version (set BISTORE_NEO4J_JAVA)" >&2; exit 3
  fi
  build
  mkdir -p "$home"
  home=$(cd "$home" && pwd)
  if [ -f "$home/pid" ] && kill -0 "$(cat "$home/pid")" 2>/dev/null; then
    echo "neo4j.sh: already running with pid $(cat "$home/pid")" >&2; exit 1
  fi
  rm -f "$home/ports"
  local args=()
  [ -n "${BISTORE_NEO4J_AUTH_PASSWORD_FILE:-}" ] &&
    args+=(--auth-password-file "$(cd "$(dirname "$BISTORE_NEO4J_AUTH_PASSWORD_FILE")" && pwd)/$(basename "$BISTORE_NEO4J_AUTH_PASSWORD_FILE")")
  args+=("$home" "$http"); [ -n "$bolt" ] && args+=("$bolt")
  nohup "$java_bin" -Xmx1g -XX:+UseG1GC \
    --add-opens java.base/java.nio=ALL-UNNAMED \
    --add-opens java.base/java.io=ALL-UNNAMED \
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED \
    --add-opens java.base/java.lang=ALL-UNNAMED \
    -cp "$jar:$lib/*" bistore.BistoreNeo4j "${args[@]}" \
    >"$home/neo4j.log" 2>&1 </dev/null &
  echo $! >"$home/pid"
  local deadline=$((SECONDS + ${BISTORE_NEO4J_START_TIMEOUT:-300}))
  while [ ! -s "$home/ports" ]; do
    if ! kill -0 "$(cat "$home/pid")" 2>/dev/null; then
      echo "neo4j.sh: Neo4j exited during start-up; last lines of $home/neo4j.log:" >&2
      tail -n 20 "$home/neo4j.log" >&2; exit 1
    fi
    [ $SECONDS -lt $deadline ] || { echo "neo4j.sh: Neo4j not ready after ${BISTORE_NEO4J_START_TIMEOUT:-300} s" >&2; exit 1; }
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
  jdk25) jdk25 ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  *) sed -n '2,25p' "$0" >&2; exit 2 ;;
esac
