#!/usr/bin/env bash
# `cmake --install` checked (a leg of scripts/test.sh):
#
#   scripts/install-check.sh [BUILD_DIR]      (default build/, built first)
#
# runs `cmake --install BUILD_DIR --prefix /usr` (Debian's prefix, not the
# configured /usr/local: the unit must follow the prefix given at install
# time) into a temporary DESTDIR and checks that the binary, the man page,
# the systemd unit and its environment file are where a Debian admin looks
# for them; that the man page renders (man -l, groff without warnings) and
# names every option of `bistore --help`; that the unit has the sandboxing
# and restart policy README promises, that `systemd-analyze verify` passes
# on it with no warning at all (verify exits 0 on unknown keys, so any output
# fails); and that a reinstall keeps an edited environment file.
#
# systemd-analyze verify checks that ExecStart's binary exists and that the
# Documentation= man page opens, at their real paths. The binary is installed
# under DESTDIR, not at /usr/local/bin, so verify runs on a copy of the
# installed unit whose ExecStart and EnvironmentFile point into DESTDIR
# (nothing else changed; the check first asserts that those two paths, with
# DESTDIR in front, are the installed files), with MANPATH on DESTDIR's man
# folder.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
say() { echo "install-check: $*"; }
fail() { say "FAILED: $*"; exit 1; }
for tool in cmake man groff systemd-analyze; do
  command -v "$tool" >/dev/null || fail "$tool is missing (scripts/deps.sh installs it)"
done
[ -x "$build/bistore" ] || fail "no $build/bistore (scripts/build.sh release)"
dest=$(mktemp -d "${TMPDIR:-/tmp}/bistore-install-check.XXXXXX")
trap 'rm -rf "$dest"' EXIT

prefix=/usr
DESTDIR="$dest" cmake --install "$build" --prefix "$prefix" >"$dest.log" 2>&1 ||
  { cat "$dest.log"; fail "cmake --install"; }
sed "s#$dest##" "$dest.log"; rm -f "$dest.log"

bin="$dest$prefix/bin/bistore"
man1="$dest$prefix/share/man/man1/bistore.1"
unit="$dest$prefix/lib/systemd/system/bistore.service"
example="$dest$prefix/share/doc/bistore/bistore.env.example"
env_file="$dest/etc/default/bistore"
for f in "$bin" "$man1" "$unit" "$example" "$env_file"; do
  [ -f "$f" ] || fail "not installed: ${f#"$dest"}"
done
[ -x "$bin" ] || fail "${bin#"$dest"} is not executable"
"$bin" --version >/dev/null || fail "the installed binary does not run"
[ "$(stat -c %a "$env_file")" = 600 ] || fail "/etc/default/bistore is mode $(stat -c %a "$env_file"), not 600"
say "installed: ${bin#"$dest"}, ${man1#"$dest"}, ${unit#"$dest"}, /etc/default/bistore (0600), ${example#"$dest"}"

# The man page: renders, no groff warning, every option of --help in it.
rendered=$(MANWIDTH=200 man -l "$man1" 2>&1 | col -b) || fail "man -l failed: $rendered"
grep -q '^NAME' <<<"$rendered" || fail "man -l rendered no NAME section"
warnings=$(groff -man -ww -z "$man1" 2>&1) || true
[ -z "$warnings" ] || fail "groff warns on bistore.1: $warnings"
mapfile -t options < <("$bin" --help | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u)
[ ${#options[@]} -gt 10 ] || fail "bistore --help lists only ${#options[@]} options"
for o in "${options[@]}"; do
  grep -qF -- "$o" <<<"$rendered" || fail "bistore.1 does not describe $o (in bistore --help)"
done
say "man -l renders bistore.1 ($(wc -l <<<"$rendered") lines), groff -ww: no warning," \
  "all ${#options[@]} options of --help described"

# The environment file names only options of the binary.
while read -r var; do
  o="--$(tr 'A-Z_' 'a-z-' <<<"${var#BISTORE_}")"
  [ "$o" = --neo4j-password ] || printf '%s\n' "${options[@]}" | grep -qxF -- "$o" ||
    fail "bistore.env sets $var, but bistore has no $o"
done < <(grep -oE '^#?BISTORE_[A-Z0-9_]+' "$env_file" | tr -d '#')

# The unit: its paths are the installed files; the promised directives.
exec_path=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
envf_path=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit")
[ "$exec_path" = "$prefix/bin/bistore" ] || fail "ExecStart=$exec_path, installed at $prefix/bin/bistore"
[ "$envf_path" = /etc/default/bistore ] || fail "EnvironmentFile=$envf_path, installed at /etc/default/bistore"
for d in DynamicUser=yes ProtectSystem=strict StateDirectory=bistore NoNewPrivileges=yes \
         Restart=on-failure 'Documentation=man:bistore(1)'; do
  grep -qxF "$d" "$unit" || fail "bistore.service lacks $d"
done
verify="$dest/verify/bistore.service"
mkdir -p "$dest/verify"
sed -e "s#^ExecStart=$exec_path#ExecStart=$dest$exec_path#" \
    -e "s#^EnvironmentFile=-$envf_path#EnvironmentFile=-$dest$envf_path#" "$unit" >"$verify"
[ "$(diff "$unit" "$verify" | grep -c '^>')" = 2 ] || fail "the verify copy differs in more than 2 lines"
out=$(cd "$dest" && MANPATH="$dest$prefix/share/man" systemd-analyze verify "$verify" 2>&1) ||
  fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
exposure=$(systemd-analyze security --offline=yes "$verify" 2>/dev/null | grep -o 'Overall exposure level.*' |
  sed 's/ [^ ]*$//') || true
say "systemd-analyze verify: no warning ($(systemd --version | head -1 | cut -d' ' -f1-2));" \
  "${exposure:-exposure level not reported}"

# A reinstall (an upgrade) keeps an admin's configuration.
echo 'BISTORE_LOG_LEVEL=debug' >>"$env_file"
DESTDIR="$dest" cmake --install "$build" --prefix "$prefix" >/dev/null || fail "cmake --install (again)"
grep -qx 'BISTORE_LOG_LEVEL=debug' "$env_file" || fail "a reinstall overwrote /etc/default/bistore"
say "a reinstall keeps an edited /etc/default/bistore"
say "PASSED"
