#!/usr/bin/env bash
# Installs what bistore needs to build, test and run, on a fresh Debian
# machine (run as root, or with sudo available): the C libraries and tools
# from Debian's packages, pytest from PyPI when it is missing, and the local
# Neo4j 5.26 from Maven Central (scripts/neo4j.sh build). Safe to run again:
# it only installs what is missing.
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

if ! python3 -c 'import pytest' 2>/dev/null; then
  echo "deps: installing pytest"
  python3 -m pip install --quiet pytest || python3 -m pip install --quiet --break-system-packages pytest
fi

scripts/neo4j.sh build
