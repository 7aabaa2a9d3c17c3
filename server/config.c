#include "server/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/result.h"

static const char usage[] =
    "bistore: one HTTP gateway in front of Neo4j and SQLite, written atomically.\n"
    "\n"
    "usage:\n"
    "  bistore serve [options]     run the gateway\n"
    "  bistore check [--deep] [store options]\n"
    "                              compare the stores; exit 0 iff they agree (1: they\n"
    "                              disagree, 2: error). Safe beside a serving gateway.\n"
    "  bistore repair --policy sqlite_wins|neo4j_wins [--deep] [--dry-run] [store options]\n"
    "                              find and repair disagreements; a second writer: stop\n"
    "                              the gateway first (or use POST /v1/reconciliations)\n"
    "  bistore resolve [--intent SEQ --policy sqlite_wins|neo4j_wins [--dry-run]]\n"
    "                  [store options]\n"
    "                              show the intent Neo4j refuses on replay (exit 1 when\n"
    "                              there is one), or settle it; a second writer: stop\n"
    "                              the gateway first\n"
    "  bistore migrate [store options]\n"
    "                              give Neo4j records written by an older gateway the\n"
    "                              parts a fast reconciliation sums (_h1, _h2, _hid);\n"
    "                              batched, resumable, safe beside a serving gateway\n"
    "  bistore promote [store options]\n"
    "                              make this SQLite file the store's primary: Neo4j's\n"
    "                              watermark moves to a new epoch (the transactions\n"
    "                              holding it terminated), which fences every other copy\n"
    "                              (a deposed primary takes no writes); then serve it\n"
    "  bistore --help | --version\n"
    "\n"
    "options (each also read from BISTORE_<OPTION>, e.g. BISTORE_NEO4J_URL):\n"
    "  --listen HOST:PORT          address to serve on (127.0.0.1:8080); port 0 picks a\n"
    "                              free port, printed in the first log line\n"
    "  --sqlite PATH               SQLite database (./data/bistore.db)\n"
    "  --neo4j-url URL             Neo4j HTTP endpoint (http://127.0.0.1:7474)\n"
    "  --neo4j-database NAME       Neo4j database (neo4j)\n"
    "  --neo4j-user USER           Neo4j basic-auth user (none: no auth)\n"
    "  --neo4j-password-file FILE  file holding the Neo4j password (or set\n"
    "                              BISTORE_NEO4J_PASSWORD)\n"
    "  --neo4j-timeout-ms MS       timeout of each Neo4j request (5000)\n"
    "  --neo4j-api tx|query        Neo4j's transaction endpoint (/db/{db}/tx) or its\n"
    "                              Query API (/db/{db}/query/v2/tx) (tx)\n"
    "  --max-body-bytes N          largest request body (16777216)\n"
    "  --max-operations N          most operations in one transaction (10000)\n"
    "  --max-json-depth N          deepest nesting of a body's objects and arrays (64)\n"
    "  --max-string-bytes N        longest property string value, in bytes (1048576)\n"
    "  --max-properties N          most properties of one entity or relationship (1024)\n"
    "  --max-connections N         most client connections at once (1024)\n"
    "  --max-connections-per-ip N  most connections from one client address (256;\n"
    "                              0: no limit)\n"
    "  --header-timeout SECONDS    a connection's request line and headers must be\n"
    "                              complete this soon, however they trickle (10)\n"
    "  --idle-timeout SECONDS      close a connection silent this long: mid-body, or\n"
    "                              idle between keep-alive requests (30)\n"
    "  --max-header-bytes N        request line and headers at most (32768; 431 or 414)\n"
    "  --body-timeout SECONDS      a request's body must have arrived this soon after\n"
    "                              its headers, however it trickles (60)\n"
    "  --max-body-memory N         bytes of request bodies held at once, all connections\n"
    "                              together (268435456); more: 503 overloaded\n"
    "  --max-page-bytes N          a list page ends early, with a next cursor, once its\n"
    "                              items pass this many bytes (8388608)\n"
    "  --max-queue N               most writes waiting for the writer (4096)\n"
    "  --max-relationship-types N  most relationship types the stores may hold (1000;\n"
    "                              at most 4096): each costs Neo4j a constraint\n"
    "  --validate-interval SECONDS run a fast validation this often (3600; 0: off)\n"
    "  --replica-socket PATH       Litestream's control socket: acknowledge a write only\n"
    "                              once Litestream has it in the replica (none)\n"
    "  --replica-timeout SECONDS   wait for Litestream this long at most (5); then\n"
    "                              503 replication_unavailable, not ready\n"
    "  --replica-dir DIR           run Litestream (--litestream) replicating the SQLite\n"
    "                              file into DIR/epoch-<epoch>, and acknowledge a write\n"
    "                              only once it is there (none)\n"
    "  --litestream PATH           the Litestream binary (litestream, from PATH)\n"
    "  --standby-of URL            be a standby of the primary at URL: follow the newest\n"
    "                              replica under --replica-dir into --sqlite, answer\n"
    "                              503 standby, and take over once the primary's /healthz\n"
    "                              fails for --lease-timeout (or on SIGUSR1) (none)\n"
    "  --lease-timeout SECONDS     how long the primary may be silent (5)\n"
    "  --insecure-no-auth          allow a non-loopback --listen without API keys\n"
    "  --api-keys-file FILE        API keys: lines of <sha256 hex> <scope>[,<scope>] [name]\n"
    "                              (scopes read, write, admin; re-read on SIGHUP)\n"
    "  --tls-cert FILE             serve HTTPS with this PEM certificate (with --tls-key)\n"
    "  --tls-key FILE              the PEM private key of --tls-cert\n"
    "  --allowed-hosts NAMES       host names a request's Host header may carry, comma\n"
    "                              separated, besides localhost and IP addresses\n"
    "                              (none; '*': any name, the check is off)\n"
    "  --allow-raw-statements      accept raw \"cypher\" and \"sql\" operations in\n"
    "                              POST /v1/transactions (off: 403 forbidden)\n"
    "  --log-level LEVEL           debug, info, warn or error (info)\n"
    "  --log-format FORMAT         text, json, or auto: json unless stderr is a\n"
    "                              terminal (auto)\n"
    "alerts (GET /v1/alerts; evaluated once a second):\n"
    "  --alert-failure-rate R      failed/transactions over the window above R (0.01)\n"
    "  --alert-failure-window S    the window of the failure rate and of ID conflicts (300)\n"
    "  --alert-failure-min N       failures the window needs before the rate counts (5)\n"
    "  --alert-id-conflicts N      ID conflicts in the window that fire (1)\n"
    "  --alert-recovery-seconds S  recovery (not ready) longer than S (30)\n"
    "  --alert-pending-seconds S   intents pending longer than S (60)\n"
    "  --alert-neo4j-seconds S     Neo4j unreachable for S seconds (5)\n"
    "  --alert-webhook URL         POST each alert that fires or resolves (JSON) here\n"
    "  --alert-webhook-queue N     events waiting at most; the oldest dropped (64)\n"
    "  --alert-webhook-retries N   attempts after the first, with backoff (3)\n"
    "  --alert-webhook-timeout-ms MS  timeout of each attempt (2000)\n";

const char *config_usage(void)
{
    return usage;
}

bool config_is_loopback(const char *host)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&v6);
    return strcmp(host, "localhost") == 0;
}

static int copy(char *dst, size_t cap, const char *value, const char *name, char *msg, size_t mcap)
{
    if (strlen(value) >= cap)
        return msg_fail(msg, mcap, "%s is too long", name);
    snprintf(dst, cap, "%s", value);
    return 0;
}

static int parse_size(const char *value, const char *name, size_t min, size_t max, size_t *out,
                      char *msg, size_t cap)
{
    char *end;
    errno = 0;
    unsigned long long v = isdigit((unsigned char)value[0]) ? strtoull(value, &end, 10) : 0;
    if (!isdigit((unsigned char)value[0]) || errno || *end || v < min || v > max)
        return msg_fail(msg, cap, "%s: '%s' is not a number in %zu..%zu", name, value, min, max);
    *out = (size_t)v;
    return 0;
}

/* true/false flags: 1, true, yes, on / 0, false, no, off (any case). */
static int parse_bool(const char *value, const char *name, bool *out, char *msg, size_t cap)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(value, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(value, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return msg_fail(msg, cap, "%s: '%s' is neither true nor false", name, value);
}

static int parse_listen(struct config *cfg, const char *value, char *msg, size_t cap)
{
    const char *colon = strrchr(value, ':');
    if (!colon || colon == value)
        return msg_fail(msg, cap, "--listen: '%s' is not HOST:PORT", value);
    size_t hlen = (size_t)(colon - value);
    if (value[0] == '[' && hlen >= 2 && value[hlen - 1] == ']') {
        value++;
        hlen -= 2;
    }
    if (hlen >= sizeof cfg->listen_host)
        return msg_fail(msg, cap, "--listen: host too long in '%s'", value);
    memcpy(cfg->listen_host, value, hlen);
    cfg->listen_host[hlen] = '\0';
    size_t port;
    if (parse_size(colon + 1, "--listen port", 0, 65535, &port, msg, cap) != 0)
        return msg_fail(msg, cap, "--listen: bad port in '%s'", value);
    cfg->listen_port = (unsigned)port;
    return 0;
}

static int read_password_file(struct config *cfg, const char *path, char *msg, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return msg_fail(msg, cap, "--neo4j-password-file: cannot open %s: %s", path,
                        strerror(errno));
    size_t n = fread(cfg->neo4j_password, 1, sizeof cfg->neo4j_password, f);
    fclose(f);
    if (n == sizeof cfg->neo4j_password)
        return msg_fail(msg, cap, "--neo4j-password-file: %s holds more than %zu bytes", path,
                        sizeof cfg->neo4j_password - 1);
    cfg->neo4j_password[n] = '\0';
    while (n && (cfg->neo4j_password[n - 1] == '\n' || cfg->neo4j_password[n - 1] == '\r'))
        cfg->neo4j_password[--n] = '\0';
    return 0;
}

/*
 * --neo4j-url: http:// or https://, and no user:password@ in it. A URL with
 * credentials is refused rather than cleaned: it would travel into /readyz,
 * 503 messages and logs, and ps shows it. The message never repeats the URL.
 */
static int parse_neo4j_url(struct config *cfg, const char *value, char *msg, size_t cap)
{
    size_t scheme = strncmp(value, "http://", 7) == 0    ? 7
                    : strncmp(value, "https://", 8) == 0 ? 8
                                                         : 0;
    if (!scheme)
        return msg_fail(msg, cap, "--neo4j-url must start with http:// or https://");
    const char *authority = value + scheme;
    size_t alen = strcspn(authority, "/?#");
    if (memchr(authority, '@', alen))
        return msg_fail(msg, cap,
                        "--neo4j-url must not hold credentials (user:password@): give the user "
                        "with --neo4j-user and the password with --neo4j-password-file or "
                        "BISTORE_NEO4J_PASSWORD");
    if (alen == 0)
        return msg_fail(msg, cap, "--neo4j-url has no host");
    return copy(cfg->neo4j_url, sizeof cfg->neo4j_url, value, "--neo4j-url", msg, cap);
}

/* One option: value from the flag, else from the environment variable. */
static int apply(struct config *cfg, const char *flag, const char *value, char *msg, size_t cap)
{
    if (strcmp(flag, "listen") == 0)
        return parse_listen(cfg, value, msg, cap);
    if (strcmp(flag, "sqlite") == 0)
        return copy(cfg->sqlite_path, sizeof cfg->sqlite_path, value, "--sqlite", msg, cap);
    if (strcmp(flag, "neo4j-url") == 0)
        return parse_neo4j_url(cfg, value, msg, cap);
    if (strcmp(flag, "neo4j-database") == 0)
        return copy(cfg->neo4j_database, sizeof cfg->neo4j_database, value, "--neo4j-database", msg,
                    cap);
    if (strcmp(flag, "neo4j-user") == 0)
        return copy(cfg->neo4j_user, sizeof cfg->neo4j_user, value, "--neo4j-user", msg, cap);
    if (strcmp(flag, "neo4j-password") == 0) /* environment only */
        return copy(cfg->neo4j_password, sizeof cfg->neo4j_password, value,
                    "BISTORE_NEO4J_PASSWORD", msg, cap);
    if (strcmp(flag, "neo4j-password-file") == 0)
        return read_password_file(cfg, value, msg, cap);
    if (strcmp(flag, "neo4j-api") == 0) {
        if (strcmp(value, "tx") != 0 && strcmp(value, "query") != 0)
            return msg_fail(msg, cap, "--neo4j-api: '%s' is not tx or query", value);
        return copy(cfg->neo4j_api, sizeof cfg->neo4j_api, value, "--neo4j-api", msg, cap);
    }
    if (strcmp(flag, "log-level") == 0) {
        if (strcmp(value, "debug") != 0 && strcmp(value, "info") != 0 &&
            strcmp(value, "warn") != 0 && strcmp(value, "error") != 0)
            return msg_fail(msg, cap, "--log-level: '%s' is not debug, info, warn or error", value);
        return copy(cfg->log_level, sizeof cfg->log_level, value, "--log-level", msg, cap);
    }
    if (strcmp(flag, "allowed-hosts") == 0)
        return copy(cfg->allowed_hosts, sizeof cfg->allowed_hosts, value, "--allowed-hosts", msg,
                    cap);
    if (strcmp(flag, "api-keys-file") == 0)
        return copy(cfg->api_keys_file, sizeof cfg->api_keys_file, value, "--api-keys-file", msg,
                    cap);
    if (strcmp(flag, "tls-cert") == 0)
        return copy(cfg->tls_cert, sizeof cfg->tls_cert, value, "--tls-cert", msg, cap);
    if (strcmp(flag, "tls-key") == 0)
        return copy(cfg->tls_key, sizeof cfg->tls_key, value, "--tls-key", msg, cap);
    if (strcmp(flag, "log-format") == 0) {
        if (strcmp(value, "auto") != 0 && strcmp(value, "text") != 0 && strcmp(value, "json") != 0)
            return msg_fail(msg, cap, "--log-format: '%s' is not auto, text or json", value);
        return copy(cfg->log_format, sizeof cfg->log_format, value, "--log-format", msg, cap);
    }
    if (strcmp(flag, "alert-webhook") == 0) {
        if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
            return msg_fail(msg, cap, "--alert-webhook: '%s' is not an http(s) URL", value);
        return copy(cfg->alert_webhook, sizeof cfg->alert_webhook, value, "--alert-webhook", msg,
                    cap);
    }
    if (strcmp(flag, "alert-failure-rate") == 0) {
        char *end;
        errno = 0;
        double r = strtod(value, &end);
        if (errno || end == value || *end || !(r >= 0 && r <= 1))
            return msg_fail(msg, cap, "--alert-failure-rate: '%s' is not a number in 0..1", value);
        cfg->alert_failure_rate = r;
        return 0;
    }
    if (strcmp(flag, "insecure-no-auth") == 0)
        return parse_bool(value, "--insecure-no-auth", &cfg->insecure_no_auth, msg, cap);
    if (strcmp(flag, "allow-raw-statements") == 0)
        return parse_bool(value, "--allow-raw-statements", &cfg->allow_raw_statements, msg, cap);
    size_t v;
    if (strcmp(flag, "max-body-bytes") == 0)
        return parse_size(value, "--max-body-bytes", 1, (size_t)1 << 30, &cfg->max_body_bytes, msg,
                          cap);
    if (strcmp(flag, "max-operations") == 0)
        return parse_size(value, "--max-operations", 1, 1000000, &cfg->max_operations, msg, cap);
    if (strcmp(flag, "max-json-depth") == 0)
        return parse_size(value, "--max-json-depth", 4, 10000, &cfg->max_json_depth, msg, cap);
    if (strcmp(flag, "max-string-bytes") == 0)
        return parse_size(value, "--max-string-bytes", 1, (size_t)1 << 30, &cfg->max_string_bytes,
                          msg, cap);
    if (strcmp(flag, "max-properties") == 0)
        return parse_size(value, "--max-properties", 1, 65536, &cfg->max_properties, msg, cap);
    if (strcmp(flag, "max-connections") == 0)
        return parse_size(value, "--max-connections", 1, 65536, &cfg->max_connections, msg, cap);
    if (strcmp(flag, "max-connections-per-ip") == 0)
        return parse_size(value, "--max-connections-per-ip", 0, 65536, &cfg->max_connections_per_ip,
                          msg, cap);
    if (strcmp(flag, "max-body-memory") == 0)
        return parse_size(value, "--max-body-memory", (size_t)1 << 20, (size_t)1 << 40,
                          &cfg->max_body_memory, msg, cap);
    if (strcmp(flag, "max-page-bytes") == 0)
        return parse_size(value, "--max-page-bytes", 4096, (size_t)1 << 30, &cfg->max_page_bytes,
                          msg, cap);
    if (strcmp(flag, "max-header-bytes") == 0)
        return parse_size(value, "--max-header-bytes", 4096, (size_t)1 << 20,
                          &cfg->max_header_bytes, msg, cap);
    if (strcmp(flag, "replica-socket") == 0)
        return copy(cfg->replica_socket, sizeof cfg->replica_socket, value, "--replica-socket", msg,
                    cap);
    if (strcmp(flag, "replica-dir") == 0)
        return copy(cfg->replica_dir, sizeof cfg->replica_dir, value, "--replica-dir", msg, cap);
    if (strcmp(flag, "litestream") == 0)
        return copy(cfg->litestream, sizeof cfg->litestream, value, "--litestream", msg, cap);
    if (strcmp(flag, "standby-of") == 0) {
        if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
            return msg_fail(msg, cap, "--standby-of: '%s' is not an http:// or https:// URL",
                            value);
        return copy(cfg->standby_of, sizeof cfg->standby_of, value, "--standby-of", msg, cap);
    }
    if (strcmp(flag, "lease-timeout") == 0) {
        if (parse_size(value, "--lease-timeout", 1, 3600, &v, msg, cap) != 0)
            return -1;
        cfg->lease_timeout_s = (unsigned)v;
        return 0;
    }
    if (strcmp(flag, "replica-timeout") == 0) {
        if (parse_size(value, "--replica-timeout", 1, 3600, &v, msg, cap) != 0)
            return -1;
        cfg->replica_timeout_s = (unsigned)v;
        return 0;
    }
    if (strcmp(flag, "max-queue") == 0)
        return parse_size(value, "--max-queue", 1, 1000000, &cfg->max_queue, msg, cap);
    if (strcmp(flag, "max-relationship-types") == 0)
        return parse_size(value, "--max-relationship-types", 1, 4096, &cfg->max_rel_types, msg,
                          cap);
    if (strcmp(flag, "validate-interval") == 0) {
        if (parse_size(value, "--validate-interval", 0, 31 * 86400, &v, msg, cap) != 0)
            return -1;
        cfg->validate_interval_s = (unsigned)v;
        return 0;
    }
    struct {
        const char *name;
        unsigned *dest;
        size_t min, max;
    } const secs[] = {
        {"alert-failure-window", &cfg->alert_failure_window_s, 1, 900},
        {"alert-recovery-seconds", &cfg->alert_recovery_s, 1, 86400},
        {"alert-pending-seconds", &cfg->alert_pending_s, 1, 86400},
        {"alert-neo4j-seconds", &cfg->alert_neo4j_s, 0, 86400},
        {"header-timeout", &cfg->header_timeout_s, 1, 3600},
        {"idle-timeout", &cfg->idle_timeout_s, 1, 3600},
        {"body-timeout", &cfg->body_timeout_s, 1, 86400},
    };
    for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++) {
        if (strcmp(flag, secs[i].name) != 0)
            continue;
        char name[64];
        snprintf(name, sizeof name, "--%s", secs[i].name);
        if (parse_size(value, name, secs[i].min, secs[i].max, &v, msg, cap) != 0)
            return -1;
        *secs[i].dest = (unsigned)v;
        return 0;
    }
    if (strcmp(flag, "alert-failure-min") == 0)
        return parse_size(value, "--alert-failure-min", 1, 1000000, &cfg->alert_failure_min, msg,
                          cap);
    if (strcmp(flag, "alert-id-conflicts") == 0)
        return parse_size(value, "--alert-id-conflicts", 1, 1000000, &cfg->alert_id_conflicts, msg,
                          cap);
    if (strcmp(flag, "alert-webhook-queue") == 0)
        return parse_size(value, "--alert-webhook-queue", 1, 10000, &cfg->alert_webhook_queue, msg,
                          cap);
    if (strcmp(flag, "alert-webhook-retries") == 0)
        return parse_size(value, "--alert-webhook-retries", 0, 10, &cfg->alert_webhook_retries, msg,
                          cap);
    if (strcmp(flag, "alert-webhook-timeout-ms") == 0) {
        if (parse_size(value, "--alert-webhook-timeout-ms", 100, 60000, &v, msg, cap) != 0)
            return -1;
        cfg->alert_webhook_timeout_ms = (long)v;
        return 0;
    }
    if (strcmp(flag, "neo4j-timeout-ms") == 0) {
        if (parse_size(value, "--neo4j-timeout-ms", 1, 3600000, &v, msg, cap) != 0)
            return -1;
        cfg->neo4j_timeout_ms = (long)v;
        return 0;
    }
    return msg_fail(msg, cap, "unknown option --%s (see --help)", flag);
}

static const char *const env_flags[] = {"listen",
                                        "sqlite",
                                        "neo4j-url",
                                        "neo4j-database",
                                        "neo4j-user",
                                        "neo4j-password",
                                        "neo4j-password-file",
                                        "neo4j-timeout-ms",
                                        "max-body-bytes",
                                        "max-operations",
                                        "max-connections",
                                        "max-queue",
                                        "insecure-no-auth",
                                        "log-level",
                                        "validate-interval",
                                        "allowed-hosts",
                                        "max-relationship-types",
                                        "allow-raw-statements",
                                        "log-format",
                                        "alert-failure-rate",
                                        "alert-failure-window",
                                        "alert-failure-min",
                                        "alert-id-conflicts",
                                        "alert-recovery-seconds",
                                        "alert-pending-seconds",
                                        "alert-neo4j-seconds",
                                        "alert-webhook",
                                        "alert-webhook-queue",
                                        "alert-webhook-retries",
                                        "alert-webhook-timeout-ms",
                                        "neo4j-api",

                                        "api-keys-file",
                                        "tls-cert",
                                        "tls-key",
                                        "max-json-depth",
                                        "max-string-bytes",
                                        "max-properties",
                                        "max-connections-per-ip",
                                        "header-timeout",
                                        "idle-timeout",
                                        "max-header-bytes",
                                        "body-timeout",
                                        "max-body-memory",
                                        "max-page-bytes",
                                        "replica-socket",
                                        "replica-timeout",
                                        "replica-dir",
                                        "litestream",
                                        "standby-of",
                                        "lease-timeout"};

static void defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 8080;
    snprintf(cfg->sqlite_path, sizeof cfg->sqlite_path, "data/bistore.db");
    snprintf(cfg->neo4j_url, sizeof cfg->neo4j_url, "http://127.0.0.1:7474");
    snprintf(cfg->neo4j_database, sizeof cfg->neo4j_database, "neo4j");
    snprintf(cfg->log_level, sizeof cfg->log_level, "info");
    snprintf(cfg->neo4j_api, sizeof cfg->neo4j_api, "tx");
    cfg->max_body_bytes = (size_t)16 << 20;
    cfg->max_operations = 10000;
    cfg->max_json_depth = 64;
    cfg->max_string_bytes = (size_t)1 << 20;
    cfg->max_properties = 1024;
    cfg->neo4j_timeout_ms = 5000;
    cfg->max_connections = 1024;
    cfg->max_connections_per_ip = 256;
    cfg->header_timeout_s = 10;
    cfg->idle_timeout_s = 30;
    cfg->max_header_bytes = 32768;
    cfg->body_timeout_s = 60;
    cfg->max_body_memory = (size_t)256 << 20;
    cfg->max_page_bytes = (size_t)8 << 20;
    cfg->max_queue = 4096;
    cfg->max_rel_types = 1000;
    cfg->replica_timeout_s = 5;
    snprintf(cfg->litestream, sizeof cfg->litestream, "litestream");
    cfg->lease_timeout_s = 5;
    cfg->validate_interval_s = 3600;
    snprintf(cfg->log_format, sizeof cfg->log_format, "auto");
    cfg->alert_failure_rate = 0.01;
    cfg->alert_failure_window_s = 300;
    cfg->alert_failure_min = 5;
    cfg->alert_id_conflicts = 1;
    cfg->alert_recovery_s = 30;
    cfg->alert_pending_s = 60;
    cfg->alert_neo4j_s = 5;
    cfg->alert_webhook_queue = 64;
    cfg->alert_webhook_retries = 3;
    cfg->alert_webhook_timeout_ms = 2000;
}

int config_parse(int argc, char **argv, struct config *cfg, char *msg, size_t cap)
{
    defaults(cfg);
    if (argc < 2)
        return msg_fail(msg, cap, "missing command (see --help)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        cfg->command = CMD_HELP;
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        cfg->command = CMD_VERSION;
        return 0;
    }
    if (strcmp(argv[1], "serve") == 0)
        cfg->command = CMD_SERVE;
    else if (strcmp(argv[1], "check") == 0)
        cfg->command = CMD_CHECK;
    else if (strcmp(argv[1], "repair") == 0)
        cfg->command = CMD_REPAIR;
    else if (strcmp(argv[1], "resolve") == 0)
        cfg->command = CMD_RESOLVE;
    else if (strcmp(argv[1], "migrate") == 0)
        cfg->command = CMD_MIGRATE;
    else if (strcmp(argv[1], "promote") == 0)
        cfg->command = CMD_PROMOTE;
    else
        return msg_fail(msg, cap, "unknown command '%s' (see --help)", argv[1]);
    for (size_t i = 0; i < sizeof env_flags / sizeof env_flags[0]; i++) {
        char name[64] = "BISTORE_";
        size_t n = strlen(name);
        for (const char *p = env_flags[i]; *p && n < sizeof name - 1; p++)
            name[n++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        name[n] = '\0';
        const char *v = getenv(name);
        if (v && v[0] && apply(cfg, env_flags[i], v, msg, cap) != 0)
            return -1;
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            cfg->command = CMD_HELP;
            return 0;
        }
        if (strncmp(a, "--", 2) != 0)
            return msg_fail(msg, cap, "unexpected argument '%s' (see --help)", a);
        const char *flag = a + 2;
        const char *eq = strchr(flag, '=');
        char name[64];
        const char *value;
        if (eq) {
            size_t len = (size_t)(eq - flag);
            if (len >= sizeof name)
                return msg_fail(msg, cap, "unknown option %s", a);
            memcpy(name, flag, len);
            name[len] = '\0';
            value = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", flag);
            if (strcmp(name, "insecure-no-auth") == 0 || strcmp(name, "deep") == 0 ||
                strcmp(name, "dry-run") == 0 || strcmp(name, "allow-raw-statements") == 0)
                value = "1";
            else if (i + 1 < argc)
                value = argv[++i];
            else
                return msg_fail(msg, cap, "option %s needs a value", a);
        }
        if (strcmp(name, "neo4j-password") == 0)
            return msg_fail(msg, cap,
                            "--neo4j-password is not accepted on the command line: "
                            "use --neo4j-password-file or BISTORE_NEO4J_PASSWORD");
        bool tool = cfg->command != CMD_SERVE;
        if (strcmp(name, "intent") == 0) {
            char *end;
            errno = 0;
            long long seq = strtoll(value, &end, 10);
            if (cfg->command != CMD_RESOLVE)
                return msg_fail(msg, cap, "--intent does not apply to this command");
            if (errno || *end || end == value || seq < 1)
                return msg_fail(msg, cap, "--intent: '%s' is not an intent seq (1 or more)", value);
            cfg->intent = seq;
            continue;
        }
        if (strcmp(name, "deep") == 0 || strcmp(name, "dry-run") == 0 ||
            strcmp(name, "policy") == 0) {
            if (!tool || cfg->command == CMD_MIGRATE || cfg->command == CMD_PROMOTE ||
                (cfg->command == CMD_CHECK && strcmp(name, "deep") != 0) ||
                (cfg->command == CMD_RESOLVE && strcmp(name, "deep") == 0))
                return msg_fail(msg, cap, "--%s does not apply to this command", name);
            if (strcmp(name, "policy") == 0) {
                if (strcmp(value, "sqlite_wins") != 0 && strcmp(value, "neo4j_wins") != 0)
                    return msg_fail(msg, cap, "--policy: '%s' is not sqlite_wins or neo4j_wins",
                                    value);
                snprintf(cfg->policy, sizeof cfg->policy, "%s", value);
            } else if (parse_bool(value, name,
                                  strcmp(name, "deep") == 0 ? &cfg->deep : &cfg->dry_run, msg,
                                  cap) != 0) {
                return -1;
            }
            continue;
        }
        if (apply(cfg, name, value, msg, cap) != 0)
            return -1;
    }
    if (cfg->command == CMD_REPAIR && !cfg->policy[0])
        return msg_fail(msg, cap, "repair needs --policy sqlite_wins or --policy neo4j_wins");
    if (cfg->command == CMD_RESOLVE && (cfg->intent > 0) != (cfg->policy[0] != '\0'))
        return msg_fail(msg, cap, "resolve needs both --intent SEQ and --policy, or neither");
    if (cfg->command == CMD_RESOLVE && cfg->dry_run && !cfg->intent)
        return msg_fail(msg, cap, "--dry-run needs --intent and --policy");
    if (cfg->max_body_memory < cfg->max_body_bytes)
        return msg_fail(msg, cap,
                        "--max-body-memory (%zu) is below --max-body-bytes (%zu): a body of the "
                        "largest size could never be accepted",
                        cfg->max_body_memory, cfg->max_body_bytes);
    if (cfg->replica_dir[0] && cfg->replica_socket[0])
        return msg_fail(msg, cap,
                        "--replica-dir runs Litestream itself, --replica-socket uses one run "
                        "elsewhere: give one of them");
    if (cfg->standby_of[0] && !cfg->replica_dir[0])
        return msg_fail(msg, cap, "--standby-of needs --replica-dir: the replicas it follows");
    if ((cfg->tls_cert[0] != '\0') != (cfg->tls_key[0] != '\0'))
        return msg_fail(msg, cap, "--tls-cert and --tls-key go together: give both or neither");
    if (!config_is_loopback(cfg->listen_host) && !cfg->insecure_no_auth && !cfg->api_keys_file[0])
        return msg_fail(msg, cap,
                        "refusing to listen on %s without API keys: bind a loopback address, "
                        "give --api-keys-file, or pass --insecure-no-auth",
                        cfg->listen_host);
    return 0;
}
