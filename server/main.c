/*
 * bistore: parse the command line, open the stores, serve until SIGTERM or
 * SIGINT, then stop taking requests, let the writer finish, roll back any
 * Neo4j transaction still open and close.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "server/app.h"
#include "server/config.h"
#include "server/http.h"
#include "stores/bistore.h"

static int serve(const struct config *cfg)
{
    if (strcmp(cfg->log_level, "debug") == 0)
        log_set_level(LOG_DEBUG);
    else if (strcmp(cfg->log_level, "warn") == 0)
        log_set_level(LOG_WARN);
    else if (strcmp(cfg->log_level, "error") == 0)
        log_set_level(LOG_ERROR);

    /* Signals are taken by sigwait() below, in this thread only. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("cannot initialise libcurl");
        return 1;
    }
    struct bistore_config scfg = {
        .sqlite_path = cfg->sqlite_path,
        .neo4j = {.url = cfg->neo4j_url,
                  .database = cfg->neo4j_database,
                  .user = cfg->neo4j_user[0] ? cfg->neo4j_user : NULL,
                  .password = cfg->neo4j_password,
                  .timeout_ms = cfg->neo4j_timeout_ms,
                  .connect_timeout_ms =
                      cfg->neo4j_timeout_ms < 2000 ? cfg->neo4j_timeout_ms : 2000},
        .max_queue = cfg->max_queue,
        .validate_interval_s = cfg->validate_interval_s,
        .read_connections = 16,
    };
    struct bs_error err;
    bs_error_clear(&err);
    struct bistore *store = bistore_open(&scfg, &err);
    if (!store) {
        log_error("cannot open the stores: %s", err.message);
        curl_global_cleanup();
        return 1;
    }
    struct app app = {.store = store, .cfg = cfg};
    char msg[256];
    unsigned port = 0;
    struct http_server *http =
        http_start(&app, cfg->listen_host, cfg->listen_port, &port, msg, sizeof msg);
    if (!http) {
        log_error("%s", msg);
        bistore_close(store);
        curl_global_cleanup();
        return 1;
    }
    const char *h = cfg->listen_host;
    bool v6 = strchr(h, ':') != NULL;
    log_info("bistore %s listening on http://%s%s%s:%u", BISTORE_VERSION, v6 ? "[" : "", h,
             v6 ? "]" : "", port);
    if (bistore_start(store, &err) != 0) {
        log_error("%s", err.message);
        http_stop(http);
        bistore_close(store);
        curl_global_cleanup();
        return 1;
    }
    int sig = 0;
    sigwait(&stop_signals, &sig);
    log_info("signal %d: shutting down", sig);
    http_stop(http);
    bistore_close(store);
    curl_global_cleanup();
    log_info("stopped");
    return 0;
}

int main(int argc, char **argv)
{
    static struct config cfg;
    char msg[512];
    if (config_parse(argc, argv, &cfg, msg, sizeof msg) != 0) {
        fprintf(stderr, "bistore: %s\n", msg);
        return 2;
    }
    switch (cfg.command) {
    case CMD_HELP: fputs(config_usage(), stdout); return 0;
    case CMD_VERSION: printf("bistore %s\n", BISTORE_VERSION); return 0;
    case CMD_SERVE: break;
    }
    return serve(&cfg);
}
