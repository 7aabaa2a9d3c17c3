/*
 * A gateway's reconciliation runs (stores/reconcile/reconcile.h): started
 * by POST /v1/reconciliations or the periodic validation, one at a time,
 * each in a thread of its own (run.c); read back with their findings from
 * SQLite, with the live numbers of the run under way.
 *
 * One at a time: a start claims the one run in a single lock section (the
 * busy check and the claim together), so concurrent starts give one run
 * and 409s (test_reconcile.py::test_concurrent_starts_start_exactly_one_run).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cursor.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "stores/engine/engine.h"
#include "stores/reconcile/internal.h"
#include "stores/sqlite/recon.h"

static void *validator_main(void *arg);
static void reap(struct reconciler *r, bool wait);

/* ---- lifecycle ---- */

struct reconciler *reconciler_new(const struct reconciler_config *cfg)
{
    struct reconciler *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->engine = cfg->engine;
    r->readers = cfg->readers;
    r->sqlite_path = cfg->sqlite_path;
    r->neo4j = recon_neo4j_config(&cfg->neo4j);
    r->validate_interval_s = cfg->validate_interval_s;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->validator_wake, NULL);
    return r;
}

int reconciler_start(struct reconciler *r)
{
    if (r->validate_interval_s == 0)
        return 0;
    if (pthread_create(&r->validator, NULL, validator_main, r) != 0)
        return -1;
    r->validator_started = true;
    log_info("periodic validation every %u s", r->validate_interval_s);
    return 0;
}

void reconciler_stop(struct reconciler *r)
{
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_cond_broadcast(&r->validator_wake);
    pthread_mutex_unlock(&r->lock);
    if (r->validator_started)
        pthread_join(r->validator, NULL);
    r->validator_started = false;
    /* A running reconciliation stops at its next page or writer call and
     * records its end through the writer, which keeps running bookkeeping
     * jobs until it exits. */
    reap(r, true);
}

void reconciler_free(struct reconciler *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->validator_wake);
    free(r);
}

bool reconciler_stopping(struct reconciler *r)
{
    pthread_mutex_lock(&r->lock);
    bool stopping = r->stopping;
    pthread_mutex_unlock(&r->lock);
    return stopping;
}

void reconciler_run_done(struct reconciler *r)
{
    pthread_mutex_lock(&r->lock);
    r->run_done = true;
    pthread_mutex_unlock(&r->lock);
}

int recon_mark_interrupted(struct engine *e, struct bs_error *err)
{
    char now[TIMESTAMP_LEN];
    time_now_rfc3339(now);
    return sql_run_mark_interrupted(writer_sql(e), now, err);
}

/* Joins the run thread if it finished (or, with wait, waits for it). */
static void reap(struct reconciler *r, bool wait)
{
    pthread_mutex_lock(&r->lock);
    struct recon_run *run = r->run;
    bool done = r->run_done;
    if (run && (done || wait))
        r->run = NULL;
    pthread_mutex_unlock(&r->lock);
    if (run && !done && wait)
        log_info("reconciliation %s: waiting for it to stop", run->id);
    if (run && (done || wait)) {
        pthread_join(run->thread, NULL);
        run_free(run);
    }
}

/* ---- starting a run ---- */

/*
 * Claims the one run: under one lock section, takes a finished run out
 * (joined here, outside the lock, which also waits for it to record its
 * end) and, when no run is left and nothing stops, marks a start as under
 * way (starting) until publish_run or release_claim. 0 when claimed; -1
 * with err (409 while a run is going on).
 */
static int claim_run(struct reconciler *r, struct bs_error *err)
{
    pthread_mutex_lock(&r->lock);
    struct recon_run *finished = NULL;
    if (r->run && r->run_done) {
        finished = r->run;
        r->run = NULL;
    }
    bool busy = r->run != NULL || r->starting, stopping = r->stopping;
    if (!busy && !stopping)
        r->starting = true;
    pthread_mutex_unlock(&r->lock);
    if (finished) {
        pthread_join(finished->thread, NULL);
        run_free(finished);
    }
    if (stopping)
        return bs_error_set(err, BS_NEO4J_UNAVAILABLE, "the gateway is shutting down"), -1;
    if (busy)
        return bs_error_set(err, BS_RECONCILIATION_RUNNING,
                            "a reconciliation is already running; wait for it to finish"),
               -1;
    return 0;
}

static void release_claim(struct reconciler *r)
{
    pthread_mutex_lock(&r->lock);
    r->starting = false;
    pthread_mutex_unlock(&r->lock);
}

/* Makes the claimed run the gateway's and starts its thread. */
static int publish_run(struct reconciler *r, struct recon_run *run)
{
    pthread_mutex_lock(&r->lock);
    BS_ASSERT(r->starting && r->run == NULL);
    r->starting = false;
    r->run = run;
    r->run_done = false;
    int rc = pthread_create(&run->thread, NULL, run_main, run);
    if (rc != 0)
        r->run = NULL;
    pthread_mutex_unlock(&r->lock);
    return rc == 0 ? 0 : -1;
}

int recon_start(struct reconciler *r, const struct recon_options *opt, char *id,
                struct bs_error *err)
{
    if (claim_run(r, err) != 0)
        return -1;
    struct recon_run *run = run_new(r, opt, err);
    if (!run) {
        release_claim(r);
        return -1;
    }
    snprintf(id, UUID_STR_LEN, "%s", run->id);
    if (publish_run(r, run) != 0) {
        struct bs_error save_err;
        bs_error_clear(&save_err);
        if (run_save(run, "failed", "cannot start the reconciliation thread", &save_err) != 0)
            log_error("reconciliation %s: %s", run->id, save_err.message);
        run_free(run);
        return bs_error_set(err, BS_STORAGE_ERROR, "cannot start a thread"), -1;
    }
    return 0;
}

/* The periodic validation: a fast run every validate_interval_s seconds
 * (skipped while another run is going on). */
static void *validator_main(void *arg)
{
    struct reconciler *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += r->validate_interval_s;
        while (!r->stopping &&
               pthread_cond_timedwait(&r->validator_wake, &r->lock, &until) != ETIMEDOUT)
            ;
        if (r->stopping)
            break;
        pthread_mutex_unlock(&r->lock);
        struct recon_options opt = {RECON_FAST, REPAIR_NONE, false};
        char id[UUID_STR_LEN];
        struct bs_error err;
        bs_error_clear(&err);
        if (recon_start(r, &opt, id, &err) != 0)
            log_warn("periodic validation not started: %s", err.message);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* ---- reads ---- */

/* Live numbers of the running run override the stored ones. */
static void overlay_live(struct reconciler *r, json_t *run)
{
    pthread_mutex_lock(&r->lock);
    struct recon_run *live = r->run;
    if (live && !r->run_done &&
        strcmp(live->id, json_string_value(json_object_get(run, "id"))) == 0) {
        json_object_set_new(run, "progress",
                            json_pack("{s:I, s:I}", "scanned", (json_int_t)live->scanned, "total",
                                      (json_int_t)live->total));
        json_object_set_new(run, "summary", recon_summary_json(&live->live_sum));
    }
    pthread_mutex_unlock(&r->lock);
}

enum lookup recon_get(struct reconciler *r, const char *id, json_t **out, struct bs_error *err)
{
    *out = NULL;
    reap(r, false);
    struct sql_conn *c = sql_pool_get(r->readers, err);
    if (!c)
        return LOOKUP_FAILED;
    enum lookup found = sql_run_get(c, id, out, err);
    sql_pool_put(r->readers, c);
    if (found == LOOKUP_FOUND)
        overlay_live(r, *out);
    return found;
}

/* The row number an `after` cursor holds; -1 (invalid_request) when it is not ours. */
static int decode_row_cursor(const char *after, int64_t *n, struct bs_error *err)
{
    char key[32];
    char *end;
    if (cursor_decode(after, key, sizeof key) != 0 || (*n = strtoll(key, &end, 10)) < 0 || *end) {
        bs_error_field(err, "after");
        return bs_error_set(err, BS_INVALID_REQUEST, "'after' is not a cursor of ours"), -1;
    }
    return 0;
}

/* The cursor of the page after row number last, when more follow. */
static char *row_cursor(int64_t last, bool more)
{
    if (!more)
        return NULL;
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)last);
    return cursor_encode(num);
}

int recon_list(struct reconciler *r, const char *after, int limit, json_t **items, char **next,
               struct bs_error *err)
{
    *next = NULL;
    *items = json_array();
    int64_t before = INT64_MAX, last = 0;
    bool more = false;
    if (after && decode_row_cursor(after, &before, err) != 0)
        return -1;
    struct sql_conn *c = sql_pool_get(r->readers, err);
    if (!c)
        return -1;
    int rc = sql_run_list(c, before, limit, *items, &last, &more, err);
    sql_pool_put(r->readers, c);
    size_t i;
    json_t *run;
    json_array_foreach (*items, i, run)
        overlay_live(r, run);
    if (rc == 0)
        *next = row_cursor(last, more);
    return rc;
}

enum lookup recon_findings(struct reconciler *r, const char *run_id, const char *kind,
                           const char *after, int limit, json_t **items, char **next,
                           struct bs_error *err)
{
    *next = NULL;
    *items = json_array();
    int64_t from = 0, run_n = 0, last = 0;
    bool more = false;
    if (after && decode_row_cursor(after, &from, err) != 0)
        return LOOKUP_FAILED;
    struct sql_conn *c = sql_pool_get(r->readers, err);
    if (!c)
        return LOOKUP_FAILED;
    enum lookup found = sql_run_n(c, run_id, &run_n, err);
    if (found == LOOKUP_FOUND &&
        sql_findings_page(c, run_n, kind, from, limit, *items, &last, &more, err) != 0)
        found = LOOKUP_FAILED;
    sql_pool_put(r->readers, c);
    size_t i;
    json_t *f;
    json_array_foreach (*items, i, f)
        json_object_del(f, "n");
    if (found == LOOKUP_FOUND)
        *next = row_cursor(last, more);
    return found;
}
