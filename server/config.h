/*
 * Configuration of `bistore serve`: flags, each also read from an
 * environment variable (BISTORE_ + the flag in capitals with '_'); a flag
 * beats its variable.
 */
#ifndef BISTORE_CONFIG_H
#define BISTORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum command { CMD_SERVE, CMD_CHECK, CMD_REPAIR, CMD_RESOLVE, CMD_HELP, CMD_VERSION };

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
    long neo4j_timeout_ms;
    char neo4j_api[8]; /* tx | query (--neo4j-api) */
    size_t max_connections;
    size_t max_queue;
    unsigned validate_interval_s; /* periodic fast validation; 0: off */
    bool insecure_no_auth;
    char log_level[16];
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
