#!/usr/bin/env bash
# Installs what bistore needs to build, test and run, on a fresh Debian
# machine (run as root, or with sudo available): the C libraries and tools
# from Debian's packages, pytest and the Neo4j driver from PyPI when they are
# missing, the local Neo4j 5.26 and 2026.08.1 from Maven Central
# (scripts/neo4j.sh build), a JDK 25 for the latter when Debian has one, and
# for the dashboard's browser test Debian's chromium with playwright-core
# from npm (tests/browser, pinned by its package-lock.json), and Litestream
# (scripts/litestream.sh) from the Go module proxy.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build pkg-config libmicrohttpd-dev libjansson-dev
          libcurl4-openssl-dev libsqlite3-dev libcriterion-dev libxxhash-dev libssl-dev clang-format valgrind
          sqlite3 maven default-jdk-headless python3 python3-pip python3-venv python3-yaml curl
          systemd man-db groff-base
          buildah podman debootstrap
          chromium nodejs npm
          clang-15 libfuzzer-15-dev linux-perf)
# systemd for systemd-analyze (the unit is verified), man-db and groff-base
# for the man page; buildah, podman and debootstrap for the container check
# (scripts/container-check.sh builds and runs docker/Dockerfile's image);
# chromium, nodejs and npm for the dashboard's browser test (tests/browser);
# clang-15 and libfuzzer-15-dev for the fuzz targets (scripts/fuzz.sh);
# linux-perf for bench/profile.sh.
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qE "install ok (installed|triggers-)" || missing+=("$p")
done
# A preinstalled JDK or Maven outside dpkg is fine.
if command -v java >/dev/null; then missing=("${missing[@]/default-jdk-headless}"); fi
if command -v mvn >/dev/null; then missing=("${missing[@]/maven}"); fi
# So is a Node.js that brings its own npm (NodeSource's nodejs does).
if command -v node >/dev/null; then missing=("${missing[@]/nodejs}"); fi
if command -v npm >/dev/null; then missing=("${missing[@]/npm}"); fi
read -r -a missing <<<"${missing[*]}"
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  # Another apt run holding the lock is waited for, not failed on.
  $sudo_cmd apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    "${missing[@]}" >/dev/null
fi

# Python packages: pytest (and prometheus_client) for the tests, the Neo4j driver for the Python
# baseline of bench/perf.sh (its smoke runs in the test suite); httpx (the
# Python client's one dependency), mypy (its --strict check is a test) and
# hatchling (its build backend, so the test's pip install needs no network). Debian's own
# python3 refuses pip outside a venv (PEP 668) unless told.
pip_install() { # pip_install MODULE SPEC
  python3 -c "import $1" 2>/dev/null && return
  echo "deps: installing $2"
  python3 -m pip install --quiet "$2" || python3 -m pip install --quiet --break-system-packages "$2"
}
pip_install pytest pytest
pip_install neo4j 'neo4j==5.28.2'
pip_install httpx 'httpx>=0.27,<1'
pip_install mypy 'mypy>=1.8'
pip_install hatchling 'hatchling>=1.18'
# prometheus_client's text parser reads GET /metrics in the tests.
pip_install prometheus_client 'prometheus_client==0.21.1'
# schemathesis fuzzes the gateway against openapi/openapi.yaml (a CI leg).
pip_install schemathesis 'schemathesis==4.32.5'

# playwright-core drives /usr/bin/chromium (it downloads no browser of its own).
if ! (cd tests/browser && npm ls --depth=0 >/dev/null 2>&1); then
  echo "deps: installing tests/browser (npm ci)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

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

# Litestream, the replication engine (--replica-socket; tests/integration/
# test_replica.py runs it): built from the Go module proxy with the
# machine's Go, or a Go toolchain fetched from that proxy when there is none.
scripts/litestream.sh build
