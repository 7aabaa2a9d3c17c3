#!/usr/bin/env bash
# The container image, built and run here (a leg of scripts/test.sh):
#
#   scripts/container-check.sh
#
#  1. the base images docker/Dockerfile names (debian:bookworm and
#     debian:bookworm-slim), made once with debootstrap from the Debian
#     mirror apt uses and kept in podman's storage as localhost/debian:...
#     (made again when missing; no registry is needed);
#  2. the image, built from docker/Dockerfile with buildah (its build time
#     and size are printed);
#  3. docker/compose.yaml checked against the image's config (port, volume,
#     user, health check, environment: scripts/container-config.py);
#  4. the gateway run from the image (`buildah run --isolation chroot`: the
#     host's network, so it reaches a Neo4j on loopback) with the image's own
#     command line, a free port and a host folder as its volume: /healthz
#     and /readyz answer 200, the image's health check passes inside it, a
#     POST /v1/entities is in Neo4j (its HTTP API) and in the SQLite file
#     (sqlite3, in the volume), the process runs as the image's user (its
#     /proc/<pid>/status), a backup taken while it serves is whole, and
#     SIGTERM stops it cleanly.
#
# Neo4j: $BISTORE_TEST_NEO4J_URL when set (scripts/test.sh's), else one of
# its own (scripts/neo4j.sh, port 0), stopped at the end.
# Exits 0 when every check passed, 1 on a failure, 77 (SKIPPED, printed)
# only when buildah cannot run at all on this machine. Runs as root (the
# base system is made with debootstrap); re-runs itself with sudo if not.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$SECONDS

say() { echo "container-check: $*"; }
fail() {
  say "FAILED: $*"
  if [ -s "${work:-}/gateway.log" ]; then say "the gateway's log:"; tail -n 40 "$work/gateway.log"; fi
  exit 1
}
skip() { say "SKIPPED: $* (nothing was checked; not counted as passed)"; exit 77; }

if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null && sudo -n true 2>/dev/null ||
    fail "needs root (debootstrap, buildah's chroot isolation); sudo is not available"
  exec sudo -n --preserve-env=BISTORE_TEST_NEO4J_URL,BISTORE_DEBIAN_MIRROR "$0" "$@"
fi

# ---- can buildah run at all? ----------------------------------------------
command -v buildah >/dev/null || skip "buildah is not installed (scripts/deps.sh installs it)"
probe=$(buildah from --quiet scratch 2>&1) || skip "buildah cannot run here: $probe"
buildah rm "$probe" >/dev/null
for tool in podman debootstrap sqlite3 curl python3; do
  command -v "$tool" >/dev/null || fail "$tool is missing (scripts/deps.sh installs it)"
done

# What a run killed with SIGKILL left behind (its tag names its pid).
for old in $(podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/bistore:check-' || true); do
  kill -0 "${old##*-}" 2>/dev/null && continue
  buildah containers --format '{{.ContainerID}} {{.ImageName}}' | awk -v i="$old" '$2 == i {print $1}' |
    xargs -r buildah rm >/dev/null 2>&1 || true
  buildah rmi --force "$old" >/dev/null 2>&1 || true
done

work=$(mktemp -d "${TMPDIR:-/var/tmp}/bistore-container-check.XXXXXX")
image="localhost/bistore:check-$$"
ctr="" gw_pid="" run_pid="" neo4j_home=""
cleanup() {
  [ -n "$gw_pid" ] && kill -TERM "$gw_pid" 2>/dev/null
  [ -n "$run_pid" ] && wait "$run_pid" 2>/dev/null
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1
  buildah rmi "$image" >/dev/null 2>&1
  [ -n "$neo4j_home" ] && "$root/scripts/neo4j.sh" stop "$neo4j_home" >/dev/null 2>&1
  rm -rf "$work"
  return 0
}
trap cleanup EXIT

# ---- 1. base images ---------------------------------------------------------
# The Debian mirror (and the security mirror) apt uses on this machine, from
# the sources apt reads: sources.list, sources.list.d/*.list and *.sources.
debian_mirrors() {
  python3 - /etc/apt/sources.list /etc/apt/sources.list.d/* <<'EOF'
import re, sys
debian = {"buster", "bullseye", "bookworm", "trixie", "forky", "sid",
          "oldstable", "stable", "testing", "unstable"}
entries = []  # (uri, suites)
for path in sys.argv[1:]:
    try:
        text = open(path).read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            f = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                k, _, v = line.partition(":")
                f[k.strip().lower()] = v.split()
            if "deb" in f.get("types", []) and f.get("enabled", ["yes"])[0] != "no":
                entries += [(u, f.get("suites", [])) for u in f.get("uris", [])]
    elif path.endswith(".list") or path == "/etc/apt/sources.list":
        for line in text.splitlines():
            w = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
            if len(w) >= 3 and w[0] == "deb":
                entries.append((w[1], [w[2]]))
main = [u for u, s in entries if any(x in debian or x.split("-")[0] in debian and
                                     not x.endswith("-security") for x in s)]
sec = [u for u, s in entries if any(x.endswith("-security") for x in s)]
print(main[0] if main else "", sec[0] if sec else "")
EOF
}

base_full=localhost/debian:bookworm
base_slim=localhost/debian:bookworm-slim
have_bases() { podman image exists "$base_full" && podman image exists "$base_slim"; }

make_bases() {
  local mirror security rootfs t0=$SECONDS
  read -r mirror security < <(debian_mirrors)
  mirror=${BISTORE_DEBIAN_MIRROR:-$mirror}
  [ -n "$mirror" ] || fail "no Debian mirror in /etc/apt/sources.list{,.d}: set BISTORE_DEBIAN_MIRROR"
  rootfs="$work/rootfs"
  say "making $base_full and $base_slim: debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log"; fail "debootstrap failed"; }
  # What Debian's official images configure: bookworm, its updates and its
  # security suite; apt keeps no .deb files and no translations.
  rm -f "$rootfs/etc/apt/sources.list"
  {
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$mirror"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [ -n "$security" ]; then
      printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' "$security"
      printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
  } >"$rootfs/etc/apt/sources.list.d/debian.sources"
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
  tar -C "$rootfs" --numeric-owner -c . |
    podman import --quiet --change 'CMD ["bash"]' - "$base_full" >/dev/null
  # -slim, as Debian's: no documentation, manual pages or translations,
  # and dpkg told not to install them.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{groff,info,linda,lintian/overrides,man}/*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  tar -C "$rootfs" --numeric-owner -c . |
    podman import --quiet --change 'CMD ["bash"]' - "$base_slim" >/dev/null
  rm -rf "$rootfs"
  say "base images made in $((SECONDS - t0)) s (cached in podman's storage from now on)"
}

if ! have_bases; then
  # One maker at a time (two suites on one machine); the other waits, then
  # finds them.
  exec 9>"${TMPDIR:-/var/tmp}/bistore-container-bases.lock"
  flock 9
  have_bases || make_bases
  flock -u 9
else
  say "base images: $base_full, $base_slim (cached)"
fi

# ---- 2. the image -----------------------------------------------------------
t0=$SECONDS
if ! buildah bud --isolation chroot --pull=never --format docker --quiet \
       -f docker/Dockerfile -t "$image" . >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log"; fail "the image did not build"
fi
build_s=$((SECONDS - t0))
size=$(podman image inspect --format '{{.Size}}' "$image")
say "image built in $build_s s: $image, $((size / 1000000)) MB ($size bytes)"

ctr=$(buildah from --quiet --pull=never "$image")
mnt=$(buildah mount "$ctr")
buildah inspect --type image "$image" >"$work/image.json"
buildah run --isolation chroot "$ctr" -- bistore --help >"$work/help.txt" 2>&1 ||
  { cat "$work/help.txt"; fail "bistore --help did not run in the image"; }
version=$(buildah run --isolation chroot "$ctr" -- bistore --version 2>&1) ||
  fail "bistore --version did not run in the image: $version"
say "in the image: $version; its libraries resolve (ldd):"
buildah run --isolation chroot "$ctr" -- sh -c 'ldd /usr/local/bin/bistore' >"$work/ldd.txt" 2>&1
if grep -q 'not found' "$work/ldd.txt"; then cat "$work/ldd.txt"; fail "missing libraries"; fi
sed -n 's/^[[:space:]]*\(lib[^ ]*\) =>.*/\1/p' "$work/ldd.txt" | tr '\n' ' '; echo

# ---- Neo4j ------------------------------------------------------------------
neo4j_url=${BISTORE_TEST_NEO4J_URL:-}
if [ -z "$neo4j_url" ]; then
  neo4j_home="$work/neo4j"
  ports=$("$root/scripts/neo4j.sh" start "$neo4j_home" 0) || fail "Neo4j did not start"
  # the last "http=PORT" of what it printed (a first build may print more)
  http_port=$(grep -o 'http=[0-9]*' <<<"$ports" | tail -n 1 | cut -d= -f2)
  [ -n "$http_port" ] || fail "Neo4j printed no http port: $ports"
  neo4j_url="http://127.0.0.1:$http_port"
  say "Neo4j of its own on $neo4j_url"
else
  say "Neo4j: $neo4j_url (the suite's)"
fi

# ---- 3. compose against the image ------------------------------------------
say "docker/compose.yaml against the image's config:"
cfg=$(python3 scripts/container-config.py docker/compose.yaml "$work/image.json" \
        "$mnt/etc/passwd" "$work/help.txt" "$neo4j_url") || fail "compose and image disagree"
eval "$cfg"
git check-ignore -q docker/.env || fail "docker/.env (the password) is not in .gitignore"
[ -f docker/.env.example ] || fail "docker/.env.example is missing"

# ---- 4. the gateway, run from the image -------------------------------------
# buildah run gives a declared VOLUME an anonymous volume that hides a bind
# mount at the same path, so the working container (not the image) drops the
# declaration and the host folder is mounted there, as compose mounts its
# named volume.
buildah config --volume "$cfg_volume-" "$ctr"
volume="$work/volume"
mkdir -p "$volume"
chown "$cfg_uid:$cfg_gid" "$volume"
env_args=()
for e in "${cfg_env[@]}"; do env_args+=(--env "$e"); done
say "running: ${cfg_run[*]}  (volume $volume at $cfg_volume; ${cfg_env[*]%%=*})"
: >"$work/gateway.log" # before the loop below reads it (the background shell may open it later)
buildah run --isolation chroot --volume "$volume:$cfg_volume" "${env_args[@]}" "$ctr" -- \
  "${cfg_run[@]}" >"$work/gateway.log" 2>&1 &
run_pid=$!

port=""
deadline=$((SECONDS + 60))
while [ -z "$port" ]; do
  port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/gateway.log" | head -1)
  [ -n "$port" ] && break
  kill -0 "$run_pid" 2>/dev/null || { cat "$work/gateway.log"; fail "the gateway exited at start"; }
  [ $SECONDS -lt $deadline ] || { cat "$work/gateway.log"; fail "no 'listening on' line in 60 s"; }
  sleep 0.2
done
say "gateway listening on 127.0.0.1:$port"

# The gateway's process: the one descendant of buildah run named bistore.
descendants() { local c; for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done; }
for p in $(descendants "$run_pid"); do
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = bistore ] && gw_pid=$p
done
[ -n "$gw_pid" ] || fail "no bistore process under buildah run (pid $run_pid)"

http() { # http METHOD PATH [BODY [IDEMPOTENCY_KEY]] -> body in $work/body, prints the status
  curl -s -o "$work/body" -w '%{http_code}' -X "$1" "http://127.0.0.1:$port$2" \
    ${3:+-H 'Content-Type: application/json' --data "$3"} ${4:+-H "Idempotency-Key: $4"}
}
st=$(http GET /healthz); [ "$st" = 200 ] || fail "/healthz answered $st: $(cat "$work/body")"
say "/healthz: 200 $(cat "$work/body")"
deadline=$((SECONDS + 60))
while st=$(http GET /readyz); [ "$st" != 200 ]; do
  [ $SECONDS -lt $deadline ] || fail "/readyz answered $st for 60 s: $(cat "$work/body")"
  sleep 0.2
done
say "/readyz: 200 $(cat "$work/body")"
hc=${cfg_health//@PORT@/$port}
buildah run --isolation chroot "$ctr" -- sh -c "$hc" || fail "the image's health check failed: $hc"
say "the image's health check passes inside the container: $hc"

# As a client should: a 503 (Neo4j slower than --neo4j-timeout-ms on a
# loaded machine; nothing was written) is retried with the same
# Idempotency-Key, which answers the real outcome. Anything else fails.
name="container-check $$ $(date -u +%FT%TZ)"
key="container-check-$$-$(date +%s)"
deadline=$((SECONDS + 120))
while st=$(http POST /v1/entities "{\"type\": \"Person\", \"properties\": {\"canonical_name\": \"$name\"}}" "$key");
      [ "$st" = 503 ] && [ $SECONDS -lt $deadline ]; do
  say "POST /v1/entities answered 503, retried with Idempotency-Key $key: $(cat "$work/body")"
  sleep 1
done
[ "$st" = 201 ] || fail "POST /v1/entities answered $st: $(cat "$work/body")"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/body")
say "POST /v1/entities: 201, id $id"

# In Neo4j, over its HTTP API.
curl -s -X POST "$neo4j_url/db/$cfg_database/tx/commit" -H 'Content-Type: application/json' \
  --data "{\"statements\": [{\"statement\": \"MATCH (n:Entity {id: \$id}) RETURN n.canonical_name, labels(n)\", \"parameters\": {\"id\": \"$id\"}}]}" \
  >"$work/neo4j.json" || fail "Neo4j's HTTP API did not answer"
in_neo4j=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
rows = d["results"][0]["data"] if d.get("results") and not d.get("errors") else []
print(json.dumps(rows[0]["row"]) if len(rows) == 1 else "")' "$work/neo4j.json")
[ -n "$in_neo4j" ] || fail "entity $id is not in Neo4j: $(cat "$work/neo4j.json")"
say "in Neo4j: $in_neo4j"

# In SQLite: the file in the volume (the host folder), not in the image's layer.
db="$volume/${cfg_sqlite#"$cfg_volume"/}"
[ -f "$db" ] || fail "no SQLite file at $db (the volume); $(ls -la "$volume")"
row=$(sqlite3 -readonly "$db" "SELECT type || ' ' || properties FROM entities WHERE id = '$id'")
[ -n "$row" ] || fail "entity $id is not in $db"
say "in SQLite ($cfg_sqlite = $db in the volume): $row"
owner=$(stat -c '%u:%g' "$db")
[ "$owner" = "$cfg_uid:$cfg_gid" ] || fail "$db belongs to $owner, not $cfg_uid:$cfg_gid"
[ -z "$(ls -A "$mnt$cfg_volume")" ] || fail "files in the container's own $cfg_volume: $(ls -A "$mnt$cfg_volume")"
say "the database files belong to $owner; the container's own $cfg_volume stays empty"

# The process, as the kernel sees it.
status=/proc/$gw_pid/status
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "$status")
gids=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "$status")
[ "$uids" = "$cfg_uid $cfg_uid $cfg_uid $cfg_uid" ] || fail "gateway pid $gw_pid has Uid $uids"
[ "$gids" = "$cfg_gid $cfg_gid $cfg_gid $cfg_gid" ] || fail "gateway pid $gw_pid has Gid $gids"
capeff=$(awk '/^CapEff:/ {print $2}' "$status")
[ "$capeff" = 0000000000000000 ] || fail "gateway pid $gw_pid has capabilities $capeff"
groot=$(readlink "/proc/$gw_pid/root")
[ "$groot" != / ] || fail "gateway pid $gw_pid is not in the container's root"
dbfd=$(for f in /proc/"$gw_pid"/fd/*; do readlink "$f"; done | grep -c "${cfg_sqlite##*/}" || true)
say "gateway pid $gw_pid: Uid $uids, Gid $gids ($cfg_user_name), CapEff $capeff," \
  "root $groot, $dbfd open files of ${cfg_sqlite##*/}"

# A backup while it serves (the README's commands): whole, with the entity.
sqlite3 "$db" ".backup '$work/backup.db'" || fail "sqlite3 .backup failed while serving"
sqlite3 "$db" "VACUUM INTO '$work/vacuum.db'" || fail "VACUUM INTO failed while serving"
for b in backup vacuum; do
  [ "$(sqlite3 "$work/$b.db" 'PRAGMA integrity_check')" = ok ] || fail "$b.db is damaged"
  [ "$(sqlite3 "$work/$b.db" "SELECT count(*) FROM entities WHERE id = '$id'")" = 1 ] ||
    fail "$b.db lacks entity $id"
done
[ "$(stat -c '%u:%g' "$db-wal")" = "$cfg_uid:$cfg_gid" ] || fail "the backup changed the WAL's owner"
say "backups while serving (.backup, VACUUM INTO): integrity ok, entity present"

# SIGTERM: a clean stop.
kill -TERM "$gw_pid"
rc=0; wait "$run_pid" || rc=$?
gw_pid="" run_pid=""
[ "$rc" -eq 0 ] || { tail -n 20 "$work/gateway.log"; fail "the gateway exited $rc on SIGTERM"; }
grep -q 'stopped' "$work/gateway.log" || { tail -n 20 "$work/gateway.log"; fail "no clean stop"; }
say "SIGTERM: stopped cleanly (exit 0)"

say "PASSED in $((SECONDS - start)) s (image build $build_s s, image $((size / 1000000)) MB)"
