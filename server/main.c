/*
 * bistore: parse the command line, open the stores, serve until SIGTERM or
 * SIGINT, then stop taking requests, let the writer finish, roll back any
 * Neo4j transaction still open and close.
 */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/timeutil.h"
#include "server/apikeys.h"
#include "server/config.h"
#include "server/http.h"
#include "server/litestream.h"
#include "server/monitor.h"
#include "server/standby.h"
#include "stores/bistore.h"

static void set_log_level(const struct config *cfg)
{
    /* auto: people read a terminal, log shippers read a gateway's stderr
     * elsewhere; the tools (check, repair, resolve) talk to people: text */
    if (strcmp(cfg->log_format, "json") == 0 ||
        (strcmp(cfg->log_format, "auto") == 0 && cfg->command == CMD_SERVE &&
         !isatty(STDERR_FILENO)))
        log_set_format(LOG_JSON);
    if (strcmp(cfg->log_level, "debug") == 0)
        log_set_level(LOG_DEBUG);
    else if (strcmp(cfg->log_level, "warn") == 0)
        log_set_level(LOG_WARN);
    else if (strcmp(cfg->log_level, "error") == 0)
        log_set_level(LOG_ERROR);
}

static struct bistore_config store_config(const struct config *cfg)
{
    struct bistore_config scfg = {
        .sqlite_path = cfg->sqlite_path,
        .neo4j = {.url = cfg->neo4j_url,
                  .database = cfg->neo4j_database,
                  .user = cfg->neo4j_user[0] ? cfg->neo4j_user : NULL,
                  .password = cfg->neo4j_password,
                  .timeout_ms = cfg->neo4j_timeout_ms,
                  .connect_timeout_ms = cfg->neo4j_timeout_ms < 2000 ? cfg->neo4j_timeout_ms : 2000,
                  .api = strcmp(cfg->neo4j_api, "query") == 0 ? NEO4J_API_QUERY : NEO4J_API_TX},
        .max_queue = cfg->max_queue,
        .max_rel_types = cfg->max_rel_types,
        .replica_socket = cfg->replica_socket[0] ? cfg->replica_socket : NULL,
        .replica_timeout_s = cfg->replica_timeout_s,
        .max_properties = cfg->max_properties,
        .max_string_bytes = cfg->max_string_bytes,
        .read_connections = 16,
        .max_page_bytes = cfg->max_page_bytes,
        .validate_interval_s = cfg->command == CMD_SERVE ? cfg->validate_interval_s : 0,
    };
    return scfg;
}

/* ---- progress for check and repair: a live line on a terminal, plain
 * lines every few seconds in a pipe ---- */

struct progress {
    bool tty;
    int64_t started_ms, last_ms;
};

static void progress_show(struct progress *p, int64_t scanned, int64_t total, bool last)
{
    int64_t now = time_monotonic_ms();
    if (!last && now - p->last_ms < (p->tty ? 200 : 5000))
        return;
    p->last_ms = now;
    double secs = (double)(now - p->started_ms) / 1000.0;
    double rate = secs > 0 ? (double)scanned / secs : 0;
    double left = rate > 0 && total > scanned ? (double)(total - scanned) / rate : 0;
    fprintf(stderr, "%sscanned %lld of %lld (%.0f/s, %.0f s left)%s", p->tty ? "\r" : "",
            (long long)scanned, (long long)total, rate, left, p->tty && !last ? "" : "\n");
    fflush(stderr);
}

struct finding_printer {
    struct progress *progress;
    long shown;
};

static void check_progress(void *arg, int64_t scanned, int64_t total)
{
    struct finding_printer *fp = arg;
    progress_show(fp->progress, scanned, total, false);
}

#define FINDINGS_SHOWN 50

static void check_finding(void *arg, const json_t *f)
{
    struct finding_printer *fp = arg;
    if (fp->shown++ >= FINDINGS_SHOWN)
        return;
    const char *id = json_string_value(json_object_get(f, "id"));
    if (fp->progress->tty)
        fputs("\r\033[K", stderr);
    printf("%-15s %-12s %s\n", json_string_value(json_object_get(f, "kind")),
           json_string_value(json_object_get(f, "object")), id ? id : "(no id)");
}

static void print_summary(const struct recon_summary *s)
{
    printf("entities:      %lld in SQLite, %lld in Neo4j\n", (long long)s->entities_sqlite,
           (long long)s->entities_neo4j);
    printf("relationships: %lld in SQLite, %lld in Neo4j\n", (long long)s->relationships_sqlite,
           (long long)s->relationships_neo4j);
    printf("only in SQLite %lld, only in Neo4j %lld, mismatched %lld, duplicate ids %lld, "
           "missing ids %lld, repaired %lld\n",
           (long long)s->only_in_sqlite, (long long)s->only_in_neo4j, (long long)s->mismatched,
           (long long)s->duplicate_ids, (long long)s->missing_ids, (long long)s->repaired);
}

static int run_check(const struct config *cfg)
{
    struct bistore_config scfg = store_config(cfg);
    struct recon_options opt = {cfg->deep ? RECON_DEEP : RECON_FAST, REPAIR_NONE, false};
    int64_t t0 = time_monotonic_ms();
    struct progress p = {isatty(STDERR_FILENO), t0, t0};
    struct finding_printer fp = {&p, 0};
    struct check_hooks hooks = {check_finding, check_progress, &fp};
    struct recon_summary sum;
    struct bs_error err;
    bs_error_clear(&err);
    int rc = bistore_check(&scfg, &opt, &hooks, &sum, &err);
    if (rc != 0) {
        fprintf(stderr, "bistore check: %s\n", err.message);
        return 2;
    }
    int64_t scanned =
        sum.entities_sqlite > sum.entities_neo4j ? sum.entities_sqlite : sum.entities_neo4j;
    scanned += sum.relationships_sqlite > sum.relationships_neo4j ? sum.relationships_sqlite
                                                                  : sum.relationships_neo4j;
    progress_show(&p, scanned, scanned, true);
    if (fp.shown > FINDINGS_SHOWN)
        printf("... and %ld more findings\n", fp.shown - FINDINGS_SHOWN);
    print_summary(&sum);
    bool dirty = recon_summary_dirty(&sum);
    printf("%s\n", dirty ? "the stores DISAGREE" : "the stores agree");
    return dirty ? 1 : 0;
}

static void migrate_progress(void *arg, const struct migrate_summary *sum)
{
    progress_show(arg, sum->seen, sum->total > sum->seen ? sum->total : sum->seen, false);
}

static int run_promote(const struct config *cfg)
{
    struct bistore_config scfg = store_config(cfg);
    struct bs_error err;
    bs_error_clear(&err);
    int64_t epoch = 0;
    if (bistore_promote(&scfg, &epoch, &err) != 0) {
        fprintf(stderr, "bistore promote: %s\n", err.message);
        return 2;
    }
    printf("promoted: %s is the primary at epoch %lld\n", cfg->sqlite_path, (long long)epoch);
    return 0;
}

static int run_migrate(const struct config *cfg)
{
    struct bistore_config scfg = store_config(cfg);
    int64_t t0 = time_monotonic_ms();
    struct progress p = {isatty(STDERR_FILENO), t0, t0};
    struct migrate_hooks hooks = {migrate_progress, &p};
    struct migrate_summary sum;
    struct bs_error err;
    bs_error_clear(&err);
    int rc = bistore_migrate(&scfg, &hooks, &sum, &err);
    progress_show(&p, sum.seen, sum.seen, true);
    printf("read %lld records, gave %lld of them their hash parts\n", (long long)sum.seen,
           (long long)sum.set);
    if (rc != 0) {
        fprintf(stderr, "bistore migrate: %s (run it again to resume)\n", err.message);
        return 2;
    }
    return 0;
}

enum recovered { RECOVERED_TIMEOUT, RECOVERED_READY, RECOVERED_REFUSED };

/* Waits (60 s at most) until the in-process core is ready, or stops at an
 * intent Neo4j refuses; reason says why not. */
static enum recovered wait_recovered(struct bistore *store, char *reason, size_t cap)
{
    int64_t deadline = time_monotonic_ms() + 60000;
    for (;;) {
        if (bistore_ready(store, reason, cap))
            return RECOVERED_READY;
        json_t *refused = NULL;
        struct bs_error err;
        bs_error_clear(&err);
        if (bistore_refused_intent(store, &refused, &err) == 0) {
            json_decref(refused);
            return RECOVERED_REFUSED;
        }
        if (time_monotonic_ms() > deadline)
            return RECOVERED_TIMEOUT;
        time_sleep_ms(100);
    }
}

/* A full gateway core in-process (writer, recovery, commit protocol),
 * without HTTP, for repair and resolve: NULL after saying why (tool names
 * the command). */
static struct bistore *open_core(const struct config *cfg, const char *tool)
{
    struct bistore_config scfg = store_config(cfg);
    struct bs_error err;
    bs_error_clear(&err);
    struct bistore *store = bistore_open(&scfg, &err);
    if (!store || bistore_start(store, &err) != 0) {
        fprintf(stderr, "bistore %s: %s\n", tool, err.message);
        bistore_close(store);
        return NULL;
    }
    return store;
}

/* Runs a reconciliation with repair in-process, through a full gateway
 * core (writer, recovery, commit protocol), without HTTP. */
static int run_repair(const struct config *cfg)
{
    struct recon_options opt = {cfg->deep ? RECON_DEEP : RECON_FAST, REPAIR_NONE, cfg->dry_run};
    recon_repair_parse(cfg->policy, &opt.repair);
    struct bistore *store = open_core(cfg, "repair");
    if (!store)
        return 2;
    struct bs_error err;
    bs_error_clear(&err);
    char reason[1024];
    char id[64];
    json_t *run = NULL;
    int rc = 2;
    if (wait_recovered(store, reason, sizeof reason) != RECOVERED_READY) {
        fprintf(stderr, "bistore repair: not ready after 60 s: %s\n", reason);
    } else if (bistore_reconcile_start(store, &opt, id, &err) != 0) {
        fprintf(stderr, "bistore repair: %s\n", err.message);
    } else {
        int64_t t0 = time_monotonic_ms();
        struct progress p = {isatty(STDERR_FILENO), t0, t0};
        const char *state = "running";
        for (;;) {
            json_decref(run);
            run = NULL;
            if (bistore_reconcile_get(store, id, &run, &err) != 0)
                break;
            state = json_string_value(json_object_get(run, "state"));
            json_t *pr = json_object_get(run, "progress");
            bool done = strcmp(state, "running") != 0;
            progress_show(&p, json_integer_value(json_object_get(pr, "scanned")),
                          json_integer_value(json_object_get(pr, "total")), done);
            if (done)
                break;
            time_sleep_ms(200);
        }
        json_t *s = json_object_get(run, "summary");
        struct recon_summary sum = {0};
#define GET(f) sum.f = json_integer_value(json_object_get(s, #f))
        GET(entities_sqlite);
        GET(entities_neo4j);
        GET(relationships_sqlite);
        GET(relationships_neo4j);
        GET(only_in_sqlite);
        GET(only_in_neo4j);
        GET(mismatched);
        GET(duplicate_ids);
        GET(missing_ids);
        GET(repaired);
#undef GET
        print_summary(&sum);
        const char *error = json_string_value(json_object_get(run, "error"));
        printf("reconciliation %s %s%s%s%s\n", id, state ? state : "unknown",
               opt.dry_run ? " (dry run: nothing written)" : "", error ? ": " : "",
               error ? error : "");
        rc = state && strcmp(state, "done") == 0 ? 0 : 2;
    }
    json_decref(run);
    bistore_close(store);
    return rc;
}

/* The refused intent, for the operator: what it did and what Neo4j said. */
static void print_refused(const json_t *r)
{
    const json_t *ops = json_object_get(r, "operations");
    printf("intent %lld (tx %s) is refused by Neo4j on replay:\n",
           (long long)json_integer_value(json_object_get(r, "seq")),
           json_string_value(json_object_get(r, "tx_id")));
    size_t i;
    json_t *op;
    json_array_foreach (ops, i, op)
        printf("  %s %s\n", json_string_value(json_object_get(op, "op")),
               json_string_value(json_object_get(op, "id")));
    const char *why = json_string_value(json_object_get(json_object_get(r, "refused"), "message"));
    printf("Neo4j: %s\n", why ? why : "(not recorded)");
    printf("settle it with: bistore resolve --intent %lld --policy sqlite_wins|neo4j_wins "
           "[--dry-run]\n",
           (long long)json_integer_value(json_object_get(r, "seq")));
}

/*
 * `bistore resolve`: recovers in-process (a full gateway core, without
 * HTTP) up to the intent Neo4j refuses, then lists it (exit 1; 0 when none
 * is refused) or settles it under the policy and waits until it is
 * replayed (exit 0; 2 on any error, nothing written).
 */
static int run_resolve(const struct config *cfg)
{
    struct bistore *store = open_core(cfg, "resolve");
    if (!store)
        return 2;
    struct bs_error err;
    bs_error_clear(&err);
    char reason[1024];
    enum recovered state = wait_recovered(store, reason, sizeof reason);
    int rc = 2;
    json_t *refused = NULL, *report = NULL;
    if (state == RECOVERED_TIMEOUT) {
        fprintf(stderr, "bistore resolve: not recovered after 60 s: %s\n", reason);
    } else if (!cfg->intent) {
        if (state == RECOVERED_READY) {
            printf("no intent is refused: everything committed is in Neo4j\n");
            rc = 0;
        } else if (bistore_refused_intent(store, &refused, &err) == 0) {
            print_refused(refused);
            rc = 1;
        }
    } else {
        enum recon_repair policy = REPAIR_NONE;
        recon_repair_parse(cfg->policy, &policy);
        if (bistore_resolve_intent(store, cfg->intent, policy, cfg->dry_run, &report, &err) != 0) {
            fprintf(stderr, "bistore resolve: %s\n", err.message);
        } else {
            size_t i;
            json_t *o;
            json_array_foreach (json_object_get(report, "objects"), i, o)
                printf("%s %s: %s\n", json_string_value(json_object_get(o, "object")),
                       json_string_value(json_object_get(o, "id")),
                       json_is_true(json_object_get(o, "disagreed"))
                           ? json_string_value(json_object_get(o, "action"))
                           : "agrees already");
            if (cfg->dry_run) {
                printf("dry run: nothing written\n");
                rc = 0;
            } else if (wait_recovered(store, reason, sizeof reason) == RECOVERED_READY) {
                printf("intent %lld settled with %s and replayed: the stores agree on it\n",
                       cfg->intent, cfg->policy);
                rc = 0;
            } else {
                fprintf(stderr, "bistore resolve: settled, but not replayed: %s\n", reason);
            }
        }
    }
    json_decref(refused);
    json_decref(report);
    bistore_close(store);
    return rc;
}

/* File descriptors the gateway needs besides its client connections:
 * SQLite (database, WAL, shm, intent files), Neo4j connections of the
 * writer, spare and reconciliation threads, the listening socket, logs. */
#define FD_RESERVE 64

/*
 * Raises the soft RLIMIT_NOFILE to what max_connections needs (the default
 * soft limit, 1,024 on Debian, is below 1,024 connections plus the
 * gateway's own files). When the hard limit is lower, max_connections is
 * cut to fit, and note says so (logged once the first line is out).
 */
static void fit_fd_limit(size_t *max_connections, char *note, size_t cap)
{
    note[0] = '\0';
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        snprintf(note, cap, "cannot read the file descriptor limit: %s", strerror(errno));
        return;
    }
    rlim_t need = (rlim_t)*max_connections + FD_RESERVE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need) ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = old;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        size_t fit = rl.rlim_cur > 2 * FD_RESERVE ? (size_t)(rl.rlim_cur - FD_RESERVE) : FD_RESERVE;
        snprintf(note, cap,
                 "the file descriptor limit is %llu (hard %llu): --max-connections %zu "
                 "lowered to %zu; raise the limit (ulimit -n, LimitNOFILE=) to serve more",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, *max_connections,
                 fit);
        *max_connections = fit;
    }
}

/* Blocks SIGTERM, SIGINT, SIGHUP and SIGUSR1 (taken by sigtimedwait in
 * the main thread only) into set. */
static void take_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);  /* re-reads --api-keys-file */
    sigaddset(set, SIGUSR1); /* a standby: take over now */
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The next signal, or 0 after ms without one. */
static int next_signal(const sigset_t *set, long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

static void reload_keys(struct apikeys *keys)
{
    char msg[1400];
    if (!keys)
        log_info("SIGHUP: no --api-keys-file, nothing to reload");
    else if (apikeys_reload(keys, msg, sizeof msg) == 0)
        log_info("SIGHUP: %s", msg);
    else
        log_error("SIGHUP: the API keys in use are kept: %s", msg);
}

#define STANDBY_STEP_MS 200
#define LITESTREAM_CHECK_MS 1000

/*
 * A standby's life before it serves: follows and watches until it has
 * taken over (0, *epoch the copy's new one) or a stop signal came (1).
 */
static int stand_by(struct standby *sb, struct apikeys *keys, const sigset_t *signals,
                    int64_t *epoch)
{
    for (;;) {
        int sig = next_signal(signals, STANDBY_STEP_MS);
        if (sig == SIGHUP) {
            reload_keys(keys);
        } else if (sig == SIGTERM || sig == SIGINT) {
            log_info("signal %d: shutting down", sig);
            return 1;
        } else if (standby_step(sb, sig == SIGUSR1, epoch)) {
            return 0;
        }
    }
}

static int serve(const struct config *given)
{
    struct config fitted = *given;
    const struct config *cfg = &fitted;
    char fd_note[256];
    fit_fd_limit(&fitted.max_connections, fd_note, sizeof fd_note);
    set_log_level(cfg);
    sigset_t signals;
    take_signals(&signals);

    /* The key file first: a bad one refuses to start before anything opens. */
    char keys_msg[1400];
    struct apikeys *keys = NULL;
    if (cfg->api_keys_file[0]) {
        keys = apikeys_open(cfg->api_keys_file, keys_msg, sizeof keys_msg);
        if (!keys) {
            log_error("--api-keys-file: %s", keys_msg);
            return 1;
        }
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("cannot initialise libcurl");
        apikeys_close(keys);
        return 1;
    }
    int rc = 1;
    struct bistore_config scfg = store_config(cfg);
    struct bs_error err;
    bs_error_clear(&err);
    char msg[1400];
    struct litestream *ls = NULL;
    struct bistore *store = NULL;
    struct http_server *http = NULL;
    struct monitor *monitor = NULL;
    struct standby *sb = NULL;
    bool standby = cfg->standby_of[0] != '\0';
    struct app app = {.max_operations = cfg->max_operations,
                      .allow_raw_statements = cfg->allow_raw_statements};
    atomic_init(&app.role, standby ? APP_STANDBY : APP_PRIMARY);
    if (cfg->replica_dir[0]) {
        /* its socket is known now; the process starts once the epoch is */
        ls = litestream_new(cfg->litestream, cfg->sqlite_path, msg, sizeof msg);
        if (!ls) {
            log_error("--replica-dir: %s", msg);
            goto out;
        }
        scfg.replica_socket = litestream_socket(ls);
    }
    if (!standby && standby_copy_exists(cfg->sqlite_path)) {
        log_error("%s is a standby's copy (%s.standby is beside it): start it with --standby-of, "
                  "or promote it (bistore promote) first",
                  cfg->sqlite_path, cfg->sqlite_path);
        goto out;
    }
    if (!standby && !(store = bistore_open(&scfg, &err))) {
        log_error("cannot open the stores: %s", err.message);
        goto out;
    }
    if (standby) {
        /* before the HTTP threads, which read its note; it lives until
         * they stop */
        struct standby_config sc = {.litestream = cfg->litestream,
                                    .replica_dir = cfg->replica_dir,
                                    .primary_url = cfg->standby_of,
                                    .lease_timeout_s = cfg->lease_timeout_s,
                                    .store = &scfg};
        if (!(sb = standby_start(&sc, msg, sizeof msg))) {
            log_error("standby: %s", msg);
            goto out;
        }
        app.standby_ctx = sb;
        app.standby_note = standby_note;
    }
    app.store = store;
    unsigned port = 0;
    http = http_start(&app, cfg, keys, &port, msg, sizeof msg);
    if (!http) {
        log_error("%s", msg);
        goto out;
    }
    const char *h = cfg->listen_host;
    bool v6 = strchr(h, ':') != NULL;
    log_msg(LOG_ALWAYS, NULL, "bistore %s listening on %s://%s%s%s:%u%s", BISTORE_VERSION,
            cfg->tls_cert[0] ? "https" : "http", v6 ? "[" : "", h, v6 ? "]" : "", port,
            standby ? " (standby)" : "");
    if (fd_note[0])
        log_warn("%s", fd_note);
    if (standby) {
        log_info("standby of %s: following the replicas under %s into %s", cfg->standby_of,
                 cfg->replica_dir, cfg->sqlite_path);
        int64_t epoch = 0;
        if (stand_by(sb, keys, &signals, &epoch) != 0) {
            rc = 0; /* stopped by a signal */
            goto out;
        }
        if (!(store = bistore_open(&scfg, &err))) {
            log_error("taking over: cannot open the stores: %s", err.message);
            goto out;
        }
        app.store = store;
        log_warn("took over: %s is the primary at epoch %lld", cfg->sqlite_path, (long long)epoch);
    }
    if (ls) {
        /* A Litestream that does not start is not fatal: the writes wait
         * for it (503 replication_unavailable, /readyz says why) and the
         * loop below starts it again; a promoted standby has fenced the
         * old primary already and is the only one that can serve. */
        char replica[1100];
        if (standby_replica_path(cfg->replica_dir, bistore_epoch(store), replica, sizeof replica) !=
            0) {
            log_error("--replica-dir: %s is too long", cfg->replica_dir);
            goto out;
        }
        if (litestream_replicate(ls, replica, msg, sizeof msg) != 0)
            log_error("--replica-dir: %s (trying again every %d s)", msg,
                      LITESTREAM_CHECK_MS / 1000);
        else
            log_info("litestream replicates %s into %s", cfg->sqlite_path, replica);
    }
    if (bistore_start(store, &err) != 0) {
        log_error("%s", err.message);
        goto out;
    }
    atomic_store_explicit(&app.role, APP_PRIMARY, memory_order_release);
    if (sb)
        standby_served(sb);
    monitor = monitor_start(store, cfg);
    /* SIGHUP: the key file again, swapped in whole while requests run (a bad
     * file keeps the keys in use); SIGTERM, SIGINT: stop. Between them, a
     * Litestream that died is started again. */
    for (;;) {
        int sig = next_signal(&signals, LITESTREAM_CHECK_MS);
        if (sig == SIGHUP) {
            reload_keys(keys);
        } else if (sig == SIGTERM || sig == SIGINT) {
            log_info("signal %d: shutting down", sig);
            break;
        } else if (ls) {
            bool restarted;
            if (!litestream_keep(ls, &restarted, msg, sizeof msg))
                log_error("litestream: %s", msg);
            else if (restarted)
                log_warn("litestream had exited: started again");
        }
    }
    rc = 0;
out:
    http_stop(http);
    standby_free(sb);
    apikeys_close(keys);
    monitor_stop(monitor);
    bistore_close(store);
    litestream_free(ls);
    curl_global_cleanup();
    if (rc == 0)
        log_info("stopped");
    return rc;
}

int main(int argc, char **argv)
{
    static struct config cfg;
    char msg[512];
    metrics_init();
    if (config_parse(argc, argv, &cfg, msg, sizeof msg) != 0) {
        fprintf(stderr, "bistore: %s\n", msg);
        return 2;
    }
    switch (cfg.command) {
    case CMD_HELP: fputs(config_usage(), stdout); return 0;
    case CMD_VERSION: printf("bistore %s\n", BISTORE_VERSION); return 0;
    case CMD_SERVE: break;
    case CMD_CHECK:
    case CMD_REPAIR:
    case CMD_RESOLVE:
    case CMD_MIGRATE:
    case CMD_PROMOTE: {
        set_log_level(&cfg);
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return 2;
        int rc = cfg.command == CMD_CHECK     ? run_check(&cfg)
                 : cfg.command == CMD_REPAIR  ? run_repair(&cfg)
                 : cfg.command == CMD_MIGRATE ? run_migrate(&cfg)
                 : cfg.command == CMD_PROMOTE ? run_promote(&cfg)
                                              : run_resolve(&cfg);
        curl_global_cleanup();
        return rc;
    }
    }
    return serve(&cfg);
}
