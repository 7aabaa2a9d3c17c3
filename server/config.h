/*
 * Configuration of `bistore serve`: flags, each also read from an
 * environment variable (BISTORE_ + the flag in capitals with '_'); a flag
 * beats its variable.
 */
#ifndef BISTORE_CONFIG_H
#define BISTORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum command {
    CMD_SERVE,
    CMD_CHECK,
    CMD_REPAIR,
    CMD_RESOLVE,
    CMD_MIGRATE,
    CMD_PROMOTE,
    CMD_HELP,
    CMD_VERSION
};

struct config {
    enum command command;
    char listen_host[64];
    unsigned listen_port;
    char sqlite_path[1024];
    char neo4j_url[512];
    char neo4j_database[128];
    char neo4j_user[128];
    char neo4j_password[256]; /* from --neo4j-password-file or BISTORE_NEO4J_PASSWORD */
    size_t max_body_bytes;
    size_t max_operations;
    size_t max_json_depth;   /* nesting of a body's objects and arrays; deeper: 400 */
    size_t max_string_bytes; /* one property string; longer: 400 */
    size_t max_properties;   /* per entity or relationship; more: 400 */
    long neo4j_timeout_ms;
    char neo4j_api[8]; /* tx | query (--neo4j-api) */
    size_t max_connections;
    size_t max_connections_per_ip; /* from one client address; 0: no limit */
    unsigned header_timeout_s;     /* a request head must be complete this soon */
    unsigned idle_timeout_s;       /* a connection silent this long is closed */
    size_t max_header_bytes;       /* request line + headers (MHD's connection memory) */
    unsigned body_timeout_s;       /* a request's body must arrive this soon after its head */
    size_t max_body_memory;        /* request bodies held at once, in bytes; more: 503 */
    size_t max_page_bytes;         /* a list page's items, in bytes (one item at least) */
    size_t max_queue;
    size_t max_rel_types;
    /* --replica-socket: Litestream's control socket ("": no replica); a
     * write is acknowledged once Litestream says the replica holds it. */
    char replica_socket[108];   /* a Unix socket path (sun_path's size) */
    unsigned replica_timeout_s; /* each wait for Litestream, at most */
    /* --replica-dir: the gateway runs Litestream itself (--litestream),
     * replicating its file into <dir>/epoch-<epoch>; with --standby-of it
     * is a standby following the newest of those folders. */
    char replica_dir[1024];
    char litestream[1024];        /* the binary ("litestream": found on PATH) */
    char standby_of[512];         /* the primary's base URL ("": primary) */
    unsigned lease_timeout_s;     /* the primary silent this long: take over */
    unsigned validate_interval_s; /* periodic fast validation; 0: off */
    bool insecure_no_auth;
    char api_keys_file[1024]; /* --api-keys-file: "" for none (server/apikeys.h) */
    char tls_cert[1024];      /* --tls-cert and --tls-key: PEM files; "": plain HTTP */
    char tls_key[1024];
    /* Host header names served besides IP literals and localhost, comma
     * separated; "*": any (the check is off). */
    char allowed_hosts[1024];
    bool allow_raw_statements; /* raw cypher/sql operations (else 403) */
    char log_level[16];
    char log_format[8]; /* auto (json unless stderr is a terminal) | text | json */
    /* alerts (server/monitor.c) */
    double alert_failure_rate;       /* failed / transactions over the window */
    unsigned alert_failure_window_s; /* the window of failure_rate and id_conflicts */
    size_t alert_failure_min;        /* failures the window needs before the rate counts */
    size_t alert_id_conflicts;       /* conflicts in the window that fire */
    unsigned alert_recovery_s;       /* recovery slower than this */
    unsigned alert_pending_s;        /* an intent pending longer than this */
    unsigned alert_neo4j_s;          /* Neo4j unreachable for this long */
    char alert_webhook[512];         /* POST alert events here; "": none */
    size_t alert_webhook_queue;      /* events waiting at most (the oldest dropped) */
    size_t alert_webhook_retries;    /* attempts after the first */
    long alert_webhook_timeout_ms;   /* per attempt */
    /* check and repair */
    bool deep;
    char policy[16]; /* sqlite_wins | neo4j_wins */
    bool dry_run;
    /* resolve */
    long long intent; /* the refused intent's seq; 0: list it */
};

/* Fills cfg from argv and the environment. 0 on success; -1 with a message
 * for the user in msg. */
int config_parse(int argc, char **argv, struct config *cfg, char *msg, size_t cap);
/* The text of --help. */
const char *config_usage(void);
/* True for 127.0.0.0/8, ::1 and localhost. */
bool config_is_loopback(const char *host);

#endif
