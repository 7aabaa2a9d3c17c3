#!/usr/bin/env python3
"""Checks docker/compose.yaml against the image it runs (scripts/container-check.sh).

    container-config.py COMPOSE IMAGE_JSON PASSWD HELP NEO4J_URL

COMPOSE is docker/compose.yaml, IMAGE_JSON the output of
`buildah inspect --type image`, PASSWD the image's /etc/passwd, HELP the
image's `bistore --help`, NEO4J_URL the Neo4j the check runs against.

Every finding is printed on stderr ("ok: ..." or "DRIFT: ..."); on success
the values the check needs are printed on stdout as shell assignments (for
eval), the command line being the image's own ENTRYPOINT + CMD with only
--listen (a free loopback port) and --neo4j-url (NEO4J_URL) replaced. Exits
1 on any drift, so the compose file, the Dockerfile and the binary cannot
disagree on the port, the volume, the user, the health check or the
environment without the check failing.
"""

import json
import re
import shlex
import sys
from pathlib import Path

import yaml

problems = []


def ok(msg):
    print(f"  ok: {msg}", file=sys.stderr)


def drift(msg):
    print(f"  DRIFT: {msg}", file=sys.stderr)
    problems.append(msg)


def flag_value(args, flag):
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a[len(flag) + 1:]
    return None


def replace_flag(args, flag, value):
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a == flag:
            out += [flag, value]
            i += 2
            continue
        out.append(f"{flag}={value}" if a.startswith(flag + "=") else a)
        i += 1
    return out


def split_port(spec):
    """'127.0.0.1:8080:8080' -> ('127.0.0.1', '8080', '8080'); long syntax too."""
    if isinstance(spec, dict):
        return spec.get("host_ip", ""), str(spec.get("published", "")), str(spec["target"])
    parts = str(spec).split("/")[0].split(":")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return "", "", parts[0]


def main():
    compose_path, image_json, passwd_path, help_path, neo4j_url = sys.argv[1:6]
    compose = yaml.safe_load(Path(compose_path).read_text())
    ok(f"{compose_path} parses as YAML")
    services = compose.get("services") or {}
    gw = services.get("bistore")
    neo = services.get("neo4j")
    if not gw or not neo:
        drift("compose has no 'bistore' or no 'neo4j' service")
        return
    build = gw.get("build") or {}
    if build.get("dockerfile") != "docker/Dockerfile" or build.get("context") != "..":
        drift(f"bistore.build is {build}, not context .. and docker/Dockerfile")

    image = json.loads(Path(image_json).read_text())
    cfg = (image.get("Docker") or {}).get("config") or image["OCIv1"]["config"]
    entry = cfg.get("Entrypoint") or []
    cmd = cfg.get("Cmd") or []
    args = entry + cmd
    if entry != ["bistore"] or not cmd or cmd[0] != "serve":
        drift(f"image runs {args}, not 'bistore serve ...'")

    # The port: --listen in CMD, EXPOSE, compose's ports, the health check.
    listen = flag_value(cmd, "--listen") or "127.0.0.1:8080"
    lhost, _, lport = listen.rpartition(":")
    exposed = sorted(cfg.get("ExposedPorts") or {})
    if exposed != [f"{lport}/tcp"]:
        drift(f"image EXPOSEs {exposed}, CMD listens on {lport}")
    published = [split_port(p) for p in gw.get("ports") or []]
    if not published or any(t != lport for _, _, t in published):
        drift(f"compose publishes {gw.get('ports')}, the image listens on {lport}")
    insecure = "--insecure-no-auth" in cmd
    if insecure and any(h not in ("127.0.0.1", "::1", "[::1]") for h, _, _ in published):
        drift("the image runs --insecure-no-auth; compose must publish on loopback only")
    ok(f"port {lport}: CMD --listen {listen}, EXPOSE {exposed}, compose ports {gw.get('ports')}")

    health = ((cfg.get("Healthcheck") or {}).get("Test")) or []
    url_re = re.compile(r"http://127\.0\.0\.1:(\d+)(/\S*)")
    m = url_re.search(" ".join(health))
    if not m or m.group(1) != lport or m.group(2) != "/healthz":
        drift(f"image HEALTHCHECK {health} does not GET /healthz on port {lport}"
              " (built without --format docker?)")
    if "healthcheck" in gw and gw["healthcheck"].get("test") != health:
        drift(f"compose overrides the image's health check: {gw['healthcheck']}")
    ok(f"health check: image's {health[1:] if health else None}, compose inherits it")

    # The volume: the image's VOLUME, the --sqlite path in it, compose's mount.
    volumes = sorted(cfg.get("Volumes") or {})
    sqlite = flag_value(cmd, "--sqlite") or ""
    mounts = []
    for v in gw.get("volumes") or []:
        if isinstance(v, dict):
            mounts.append((v.get("source"), v["target"]))
        else:
            src, _, rest = str(v).partition(":")
            mounts.append((src, rest.split(":")[0]))
    targets = [t for _, t in mounts]
    if len(volumes) != 1 or targets != volumes:
        drift(f"image VOLUMEs {volumes}, compose mounts {targets}")
    volume = volumes[0] if volumes else ""
    if not volume or not sqlite.startswith(volume.rstrip("/") + "/"):
        drift(f"CMD --sqlite {sqlite} is not in the volume {volume}")
    declared = compose.get("volumes") or {}
    for src, _ in mounts:
        if src not in declared:
            drift(f"compose mounts volume '{src}' that it does not declare")
    if cfg.get("WorkingDir") != volume:
        drift(f"image WORKDIR {cfg.get('WorkingDir')} is not the volume {volume}")
    ok(f"volume {volume}: image VOLUME, compose mounts {mounts}, SQLite file {sqlite}")

    # The user: the image's USER, its /etc/passwd, compose's user.
    user = cfg.get("User") or ""
    uid, _, gid = user.partition(":")
    names = {}
    for line in Path(passwd_path).read_text().splitlines():
        f = line.split(":")
        if len(f) >= 4:
            names[f[2]] = (f[0], f[3])
            names[f[0]] = (f[2], f[3])
    if not uid.isdigit() or uid == "0" or uid not in names:
        drift(f"image USER '{user}' is not a numeric non-root uid of its /etc/passwd")
        uid_name = ("?", "?")
    else:
        uid_name = names[uid]
        if gid and gid != uid_name[1]:
            drift(f"image USER {user}: the passwd entry's gid is {uid_name[1]}")
    if str(gw.get("user", user)) != user:
        drift(f"compose user {gw.get('user')} is not the image's USER {user}")
    ok(f"user: image USER {user} = {uid_name[0]} in its /etc/passwd, compose user {gw.get('user')}")

    # The environment: every BISTORE_ variable names an option of the binary;
    # no password has a default.
    help_text = Path(help_path).read_text()
    env = gw.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.partition("=")[::2] for e in env)
    run_env = {}
    for key, value in list(env.items()) + list((neo.get("environment") or {}).items()):
        value = str(value)
        secret = re.search(r"PASSWORD|AUTH|SECRET|KEY", key)
        if secret and (re.search(r"\$\{[A-Z0-9_]+(:?-)", value) or "${" not in value
                       or not re.search(r"\$\{[A-Z0-9_]+:\?", value)):
            drift(f"{key}: '{value}' is not a required ${{VAR:?...}} (a default or literal secret)")
    for key, value in env.items():
        if not key.startswith("BISTORE_"):
            continue
        option = "--" + key[len("BISTORE_"):].lower().replace("_", "-")
        if option != "--neo4j-password" and not re.search(re.escape(option) + r"(?![a-z0-9-])", help_text):
            drift(f"compose sets {key}, but the image's bistore has no {option}")
        run_env[key] = "container-check-password" if "PASSWORD" in key else str(value)
    ok(f"environment: {sorted(env)} are options of the image's bistore; no default secret")

    # Neo4j: CMD's --neo4j-url names the compose service and its HTTP port.
    url = flag_value(cmd, "--neo4j-url") or ""
    m = re.match(r"https?://([^:/]+):(\d+)", url)
    neo_targets = [t for _, _, t in (split_port(p) for p in neo.get("ports") or [])]
    if not m or m.group(1) not in services or m.group(2) not in neo_targets + ["7474"]:
        drift(f"CMD --neo4j-url {url} is not the compose neo4j service's HTTP port")
    dep = (gw.get("depends_on") or {}).get(m.group(1) if m else "neo4j") or {}
    if dep.get("condition") != "service_healthy":
        drift("bistore does not wait for neo4j to be healthy (depends_on)")
    ok(f"Neo4j: CMD --neo4j-url {url} is compose's neo4j service, depended on when healthy")

    if problems:
        return
    run = replace_flag(replace_flag(args, "--listen", "127.0.0.1:0"), "--neo4j-url", neo4j_url)
    hc = " ".join(health[1:]) if health[:1] == ["CMD-SHELL"] else shlex.join(health[1:])
    out = {
        "cfg_volume": volume,
        "cfg_sqlite": sqlite,
        "cfg_port": lport,
        "cfg_uid": uid,
        "cfg_gid": uid_name[1],
        "cfg_user_name": uid_name[0],
        "cfg_health": hc.replace(f"127.0.0.1:{lport}/", "127.0.0.1:@PORT@/"),
        "cfg_database": flag_value(cmd, "--neo4j-database") or "neo4j",
    }
    for k, v in out.items():
        print(f"{k}={shlex.quote(v)}")
    print("cfg_run=(" + " ".join(shlex.quote(a) for a in run) + ")")
    print("cfg_env=(" + " ".join(shlex.quote(f"{k}={v}") for k, v in run_env.items()) + ")")


if __name__ == "__main__":
    main()
    sys.exit(1 if problems else 0)
