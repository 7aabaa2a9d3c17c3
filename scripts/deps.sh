#!/usr/bin/env bash
# Installs what bistore needs to build, test and run, on a fresh Debian
# machine (run as root, or with sudo available): the C libraries and tools
# from Debian's packages, pytest and the Neo4j driver from PyPI when they are
# missing, the local Neo4j 5.26 and 2026.08.1 from Maven Central
# (scripts/neo4j.sh build), and a JDK 25 for the latter when Debian has one.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build pkg-config libmicrohttpd-dev libjansson-dev
          libcurl4-openssl-dev libsqlite3-dev libcriterion-dev libxxhash-dev clang-format
          sqlite3 maven default-jdk-headless python3 python3-pip curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A preinstalled JDK or Maven outside dpkg is fine.
if command -v java >/dev/null; then missing=("${missing[@]/default-jdk-headless}"); fi
if command -v mvn >/dev/null; then missing=("${missing[@]/maven}"); fi
read -r -a missing <<<"${missing[*]}"
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python packages: pytest for the tests, the Neo4j driver for the Python
# baseline of bench/perf.sh (its smoke runs in the test suite). Debian's own
# python3 refuses pip outside a venv (PEP 668) unless told.
pip_install() { # pip_install MODULE SPEC
  python3 -c "import $1" 2>/dev/null && return
  echo "deps: installing $2"
  python3 -m pip install --quiet "$2" || python3 -m pip install --quiet --break-system-packages "$2"
}
pip_install pytest pytest
pip_install neo4j 'neo4j==5.28.2'

scripts/neo4j.sh build

# Java 25 for Neo4j 2026.x, the calendar release of the version matrix
# (scripts/test.sh): Temurin's own repository is not reachable from here, so
# Debian's package when the release has one; else the matrix's 2026 legs say
# NOT RUN. The jars need no JDK 25 (Maven copies them).
if ! scripts/neo4j.sh jdk25 >/dev/null; then
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq || true
  for p in openjdk-25-jdk-headless openjdk-25-jre-headless; do
    if apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      echo "deps: installing $p"
      DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "$p" >/dev/null && break
    fi
  done
  scripts/neo4j.sh jdk25 >/dev/null ||
    echo "deps: no JDK 25 here (none in /usr/lib/jvm, none in this Debian release):" \
         "the Neo4j 2026 legs of scripts/test.sh will print NOT RUN"
fi
BISTORE_NEO4J_VERSION=2026 scripts/neo4j.sh build
