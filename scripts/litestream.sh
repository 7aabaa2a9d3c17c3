#!/usr/bin/env bash
# Litestream, the replication engine a gateway started with --replica-socket
# waits for (README "Replication"): one pinned release, built from the Go
# module proxy into a folder outside the clone, so a fresh clone finds it.
#
#   scripts/litestream.sh build   install it when it is missing (go install;
#                                 about 2 minutes on 2 cores the first time)
#   scripts/litestream.sh path    print the binary's path (exit 1 when absent)
#
# BISTORE_LITESTREAM_DIR overrides the folder. Litestream's go.mod names Go
# 1.25; a Go from 1.21 on fetches that toolchain from the module proxy
# itself (GOTOOLCHAIN=auto), the machine's 1.26 builds it as it is.
set -euo pipefail
version=v0.5.18
dir=${BISTORE_LITESTREAM_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/bistore/litestream-$version}
bin=$dir/litestream

# A Go that can build Litestream: 1.21 or later (they fetch the toolchain
# its go.mod names).
go_recent() {
  local v; v=$("$1" env GOVERSION 2>/dev/null) || return 1
  v=${v#go}; local major=${v%%.*} rest=${v#*.}; local minor=${rest%%.*}
  [ "$major" -gt 1 ] || [ "${minor:-0}" -ge 21 ]
}

# Without one (Debian 12's golang-go is 1.19): the Go toolchain itself, as
# the module the go command would take (golang.org/toolchain), from the
# module proxy; printed: its go binary.
fetch_go() {
  local gover=go1.25.4 arch
  case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
  local mod="v0.0.1-$gover.linux-$arch" root=$dir/../go-$gover
  if ! [ -x "$root/bin/go" ]; then
    local proxy=${GOPROXY:-https://proxy.golang.org}; proxy=${proxy%%,*}
    [ "$proxy" = direct ] || [ "$proxy" = off ] && proxy=https://proxy.golang.org
    echo "litestream.sh: fetching $gover from $proxy" >&2
    mkdir -p "$root.tmp"
    curl -fsSL -o "$root.tmp/go.zip" "$proxy/golang.org/toolchain/@v/$mod.zip"
    (cd "$root.tmp" && python3 -m zipfile -e go.zip .)
    rm -rf "$root"; mv "$root.tmp/golang.org/toolchain@$mod" "$root"; rm -rf "$root.tmp"
    chmod +x "$root"/bin/* "$root"/pkg/tool/*/*
  fi
  echo "$root/bin/go"
}

case ${1:-} in
  path)
    [ -x "$bin" ] || { echo "litestream.sh: not installed (run scripts/litestream.sh build)" >&2; exit 1; }
    echo "$bin" ;;
  build)
    if [ -x "$bin" ] && [ "$("$bin" version 2>/dev/null)" = "$version" ]; then exit 0; fi
    go=$(command -v go || true)
    [ -n "$go" ] || go=/usr/local/go/bin/go
    if ! [ -x "$go" ] || ! go_recent "$go"; then go=$(fetch_go); fi
    mkdir -p "$dir"
    echo "litestream.sh: building Litestream $version with $("$go" version)"
    GOBIN="$dir" GOTOOLCHAIN=${GOTOOLCHAIN:-auto} "$go" install \
      "github.com/benbjohnson/litestream/cmd/litestream@$version"
    [ "$("$bin" version)" = "$version" ] || { echo "litestream.sh: $bin is not $version" >&2; exit 1; }
    echo "litestream.sh: $bin" ;;
  *) echo "usage: scripts/litestream.sh build|path" >&2; exit 2 ;;
esac
