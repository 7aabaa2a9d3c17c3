/*
 * Reconciliation runs inside a gateway: started by POST /v1/reconciliations
 * (or the periodic validation), run in a thread of their own, kept in
 * SQLite (bistore_reconciliations, bistore_findings) so a report survives
 * a restart. One run at a time. Re-checks and repairs go through the
 * writer thread (writer_call), so they never race a client write.
 *
 * The run writes SQLite only through the writer, in short transactions on
 * its connection (DESIGN.md invariant 7): the run row (writer_call_sqlite,
 * at the start and the end) and the findings, stored in the same writer job
 * that confirmed them, one transaction per re-check batch. The run's own
 * connection is read-only (the scan and the repair's reading of findings),
 * so nothing holds SQLite's write lock while the scan waits for Neo4j.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cursor.h"
#include "common/log.h"
#include "stores/engine/internal.h"
#include "stores/reconcile/internal.h"
#include "stores/reconcile/repair.h"
#include "stores/sqlite/recon.h"

#define REPAIR_BATCH 100

struct recon_run {
    struct bistore *bs;
    char id[UUID_STR_LEN];
    int64_t n;
    struct recon_options opt;
    struct sql_conn *reader; /* the scan (read-only) */
    struct neo4j_client *neo4j;
    struct recon_summary sum;
    int64_t next_finding; /* number of the last stored finding (writer thread) */
    _Atomic int64_t scanned, total;
    pthread_t thread;
};

const char *recon_mode_name(enum recon_mode m)
{
    return m == RECON_DEEP ? "deep" : "fast";
}

const char *recon_repair_name(enum recon_repair r)
{
    return r == REPAIR_SQLITE_WINS ? "sqlite_wins" : r == REPAIR_NEO4J_WINS ? "neo4j_wins" : "none";
}

bool recon_mode_parse(const char *s, enum recon_mode *m)
{
    if (strcmp(s, "fast") == 0)
        *m = RECON_FAST;
    else if (strcmp(s, "deep") == 0)
        *m = RECON_DEEP;
    else
        return false;
    return true;
}

bool recon_repair_parse(const char *s, enum recon_repair *r)
{
    if (strcmp(s, "none") == 0)
        *r = REPAIR_NONE;
    else if (strcmp(s, "sqlite_wins") == 0)
        *r = REPAIR_SQLITE_WINS;
    else if (strcmp(s, "neo4j_wins") == 0)
        *r = REPAIR_NEO4J_WINS;
    else
        return false;
    return true;
}

json_t *recon_summary_json(const struct recon_summary *s)
{
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "entities_sqlite",
        (json_int_t)s->entities_sqlite, "entities_neo4j", (json_int_t)s->entities_neo4j,
        "relationships_sqlite", (json_int_t)s->relationships_sqlite, "relationships_neo4j",
        (json_int_t)s->relationships_neo4j, "only_in_sqlite", (json_int_t)s->only_in_sqlite,
        "only_in_neo4j", (json_int_t)s->only_in_neo4j, "mismatched", (json_int_t)s->mismatched,
        "duplicate_ids", (json_int_t)s->duplicate_ids, "missing_ids", (json_int_t)s->missing_ids,
        "repaired", (json_int_t)s->repaired);
}

bool recon_summary_dirty(const struct recon_summary *s)
{
    return s->only_in_sqlite || s->only_in_neo4j || s->mismatched || s->duplicate_ids ||
           s->missing_ids;
}

/* ---- bookkeeping in SQLite, through the writer ---- */

/* The run row at the start (writer thread, writer_call_sqlite). */
static int insert_run_in_writer(struct bistore *bs, void *arg, struct bs_error *err)
{
    struct recon_run *run = arg;
    char now[TIMESTAMP_LEN];
    time_now_rfc3339(now);
    json_t *sum = recon_summary_json(&run->sum);
    char *text = sum ? json_dumps(sum, JSON_COMPACT) : NULL;
    json_decref(sum);
    int rc = text ? sql_run_insert(bs->wconn, run->id, recon_mode_name(run->opt.mode),
                                   recon_repair_name(run->opt.repair), run->opt.dry_run, now, text,
                                   &run->n, err)
                  : (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    free(text);
    return rc;
}

struct save_call {
    struct recon_run *run;
    const char *state, *error;
};

/* The run row's state, progress and summary (writer thread). */
static int save_run_in_writer(struct bistore *bs, void *arg, struct bs_error *err)
{
    struct save_call *c = arg;
    struct recon_run *run = c->run;
    json_t *sum = recon_summary_json(&run->sum);
    char *text = sum ? json_dumps(sum, JSON_COMPACT) : NULL;
    json_decref(sum);
    char now[TIMESTAMP_LEN];
    time_now_rfc3339(now);
    bool finished = strcmp(c->state, "running") != 0;
    int rc = text ? sql_run_update(bs->wconn, run->n, c->state, finished ? now : NULL, run->scanned,
                                   run->total, text, c->error, err)
                  : (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    free(text);
    return rc;
}

/* Saves the run row through the writer; runs even while Neo4j is away or
 * the gateway stops, so a failed run can say so. */
static int save_run(struct recon_run *run, const char *state, const char *error,
                    struct bs_error *err)
{
    struct save_call c = {run, state, error};
    return writer_call_sqlite(run->bs, save_run_in_writer, &c, err);
}

/*
 * Stores confirmed findings, numbered on from run->next_finding, in one
 * short transaction of the writer's connection (writer thread; no Neo4j
 * call inside). All or none: on failure nothing is stored and the
 * numbering stays.
 */
static int store_findings(struct bistore *bs, struct recon_run *run, json_t *findings,
                          struct bs_error *err)
{
    if (sql_findings_insert(bs->wconn, run->n, run->next_finding, findings, err) != 0)
        return -1;
    run->next_finding += (int64_t)json_array_size(findings);
    return 0;
}

/* ---- scan hooks ---- */

struct confirm_call {
    struct recon_run *run;
    json_t *candidates;
    json_t *confirmed;
};

/* Re-reads the candidates with no write in flight (Neo4j reads, no SQLite
 * transaction open), then stores those still true in one short transaction. */
static int confirm_in_writer(struct bistore *bs, void *arg, struct bs_error *err)
{
    struct confirm_call *c = arg;
    bool deep = c->run->opt.mode == RECON_DEEP;
    if (recon_confirm(bs->wconn, bs->neo4j, deep, c->candidates, &c->confirmed, err) != 0)
        return -1;
    return store_findings(bs, c->run, c->confirmed, err);
}

static int hook_confirm(void *arg, json_t *candidates, json_t **confirmed, struct bs_error *err)
{
    struct recon_run *run = arg;
    struct confirm_call c = {run, candidates, NULL};
    int rc = writer_call(run->bs, confirm_in_writer, &c, err);
    *confirmed = c.confirmed;
    return rc;
}

static int hook_progress(void *arg, int64_t scanned, int64_t total)
{
    struct recon_run *run = arg;
    run->scanned = scanned;
    run->total = total;
    pthread_mutex_lock(&run->bs->lock);
    bool stopping = run->bs->stopping;
    pthread_mutex_unlock(&run->bs->lock);
    return stopping ? -1 : 0;
}

/* ---- repair ---- */

static int repair_all(struct recon_run *run, struct bs_error *err)
{
    int64_t after = 0;
    for (;;) {
        json_t *batch = json_array();
        bool more;
        if (!batch || sql_findings_page(run->reader, run->n, NULL, after, REPAIR_BATCH, batch,
                                        &after, &more, err) != 0) {
            json_decref(batch);
            return -1;
        }
        if (json_array_size(batch) == 0) {
            json_decref(batch);
            return 0;
        }
        struct repair_batch rb = {.run_id = run->id,
                                  .run_n = run->n,
                                  .policy = run->opt.repair,
                                  .dry_run = run->opt.dry_run,
                                  .findings = batch};
        int rc = writer_call(run->bs, repair_run_batch, &rb, err);
        json_decref(batch);
        if (rc != 0)
            return -1;
        run->sum.repaired += rb.repaired;
    }
}

/* ---- the run ---- */

static void *run_main(void *arg)
{
    struct recon_run *run = arg;
    struct bs_error err;
    bs_error_clear(&err);
    struct recon_hooks hooks = {hook_confirm, hook_progress, run};
    int64_t t0 = time_monotonic_ms();
    log_info("reconciliation %s: %s scan, repair %s%s", run->id, recon_mode_name(run->opt.mode),
             recon_repair_name(run->opt.repair), run->opt.dry_run ? " (dry run)" : "");
    int rc = recon_scan(run->reader, run->neo4j, &run->opt, &hooks, &run->sum, &err);
    if (rc == 0 && run->opt.repair != REPAIR_NONE)
        rc = repair_all(run, &err);
    /* Finished for the next start before the stored state says so: a client
     * that sees "done" and starts another run must not get 409 (that start
     * joins this thread, so it waits for the save below). */
    pthread_mutex_lock(&run->bs->lock);
    run->bs->recon_done = true;
    pthread_mutex_unlock(&run->bs->lock);
    struct bs_error save_err;
    bs_error_clear(&save_err);
    if (save_run(run, rc == 0 ? "done" : "failed", rc == 0 ? NULL : err.message, &save_err) != 0)
        log_error("reconciliation %s: cannot record its end: %s", run->id, save_err.message);
    log_info("reconciliation %s %s in %lld ms: %lld scanned, %lld only in SQLite, %lld only in "
             "Neo4j, %lld mismatched, %lld duplicate ids, %lld missing ids, %lld repaired%s%s",
             run->id, rc == 0 ? "done" : "failed", (long long)(time_monotonic_ms() - t0),
             (long long)run->scanned, (long long)run->sum.only_in_sqlite,
             (long long)run->sum.only_in_neo4j, (long long)run->sum.mismatched,
             (long long)run->sum.duplicate_ids, (long long)run->sum.missing_ids,
             (long long)run->sum.repaired, rc == 0 ? "" : ": ", rc == 0 ? "" : err.message);
    return NULL;
}

static void run_free(struct recon_run *run)
{
    if (!run)
        return;
    sql_close(run->reader);
    neo4j_client_free(run->neo4j);
    free(run);
}

/* Joins a finished run (lock held by the caller is NOT required). */
void recon_reap(struct bistore *bs, bool wait)
{
    pthread_mutex_lock(&bs->lock);
    struct recon_run *run = bs->recon;
    bool done = bs->recon_done;
    if (run && (done || wait))
        bs->recon = NULL;
    pthread_mutex_unlock(&bs->lock);
    if (run && !done && wait)
        log_info("reconciliation %s: waiting for it to stop", run->id);
    if (run && (done || wait)) {
        pthread_join(run->thread, NULL);
        run_free(run);
    }
}

int recon_mark_interrupted(struct sql_conn *c, struct bs_error *err)
{
    char now[TIMESTAMP_LEN];
    time_now_rfc3339(now);
    return sql_run_mark_interrupted(c, now, err);
}

/*
 * Claims the one run a gateway has: under one lock section, takes a finished
 * run out (joined here, outside the lock, which also waits for it to record
 * its end) and, when no run is left and the gateway is not stopping, marks a
 * start as under way (bs->recon_starting) until publish_run or
 * release_claim. 0 when claimed; -1 with err (409 while a run is going on).
 */
static int claim_run(struct bistore *bs, struct bs_error *err)
{
    pthread_mutex_lock(&bs->lock);
    struct recon_run *finished = NULL;
    if (bs->recon && bs->recon_done) {
        finished = bs->recon;
        bs->recon = NULL;
    }
    bool busy = bs->recon != NULL || bs->recon_starting, stopping = bs->stopping;
    if (!busy && !stopping)
        bs->recon_starting = true;
    pthread_mutex_unlock(&bs->lock);
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

static void release_claim(struct bistore *bs)
{
    pthread_mutex_lock(&bs->lock);
    bs->recon_starting = false;
    pthread_mutex_unlock(&bs->lock);
}

/* Makes the claimed run the gateway's and starts its thread. */
static int publish_run(struct bistore *bs, struct recon_run *run)
{
    pthread_mutex_lock(&bs->lock);
    BS_ASSERT(bs->recon_starting && bs->recon == NULL);
    bs->recon_starting = false;
    bs->recon = run;
    bs->recon_done = false;
    int rc = pthread_create(&run->thread, NULL, run_main, run);
    if (rc != 0)
        bs->recon = NULL;
    pthread_mutex_unlock(&bs->lock);
    return rc == 0 ? 0 : -1;
}

int bistore_reconcile_start(struct bistore *bs, const struct recon_options *opt, char *id,
                            struct bs_error *err)
{
    if (claim_run(bs, err) != 0)
        return -1;
    struct recon_run *run = calloc(1, sizeof *run);
    if (!run) {
        release_claim(bs);
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    }
    run->bs = bs;
    run->opt = *opt;
    ids_uuid7(run->id);
    run->reader = sql_open(bs->sqlite_path, false, err);
    struct neo4j_config ncfg = recon_neo4j_config(&bs->neo4j_cfg);
    run->neo4j = run->reader ? neo4j_client_new(&ncfg) : NULL;
    if (!run->neo4j && err->code == BS_OK)
        bs_error_set(err, BS_STORAGE_ERROR, "cannot set up the Neo4j client");
    if (!run->neo4j || writer_call_sqlite(bs, insert_run_in_writer, run, err) != 0) {
        run_free(run);
        release_claim(bs);
        return -1;
    }
    snprintf(id, UUID_STR_LEN, "%s", run->id);
    if (publish_run(bs, run) != 0) {
        struct bs_error save_err;
        bs_error_clear(&save_err);
        if (save_run(run, "failed", "cannot start the reconciliation thread", &save_err) != 0)
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
    struct bistore *bs = arg;
    pthread_mutex_lock(&bs->lock);
    while (!bs->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += bs->validate_interval_s;
        while (!bs->stopping &&
               pthread_cond_timedwait(&bs->validator_wake, &bs->lock, &until) != ETIMEDOUT)
            ;
        if (bs->stopping)
            break;
        pthread_mutex_unlock(&bs->lock);
        struct recon_options opt = {RECON_FAST, REPAIR_NONE, false};
        char id[UUID_STR_LEN];
        struct bs_error err;
        bs_error_clear(&err);
        if (bistore_reconcile_start(bs, &opt, id, &err) != 0)
            log_warn("periodic validation not started: %s", err.message);
        pthread_mutex_lock(&bs->lock);
    }
    pthread_mutex_unlock(&bs->lock);
    return NULL;
}

int recon_start_validator(struct bistore *bs)
{
    if (bs->validate_interval_s == 0)
        return 0;
    if (pthread_create(&bs->validator, NULL, validator_main, bs) != 0)
        return -1;
    bs->validator_started = true;
    log_info("periodic validation every %u s", bs->validate_interval_s);
    return 0;
}

/* ---- reads ---- */

/* Live numbers of the running run override the stored ones. */
static void overlay_live(struct bistore *bs, json_t *run)
{
    pthread_mutex_lock(&bs->lock);
    struct recon_run *live = bs->recon;
    if (live && !bs->recon_done &&
        strcmp(live->id, json_string_value(json_object_get(run, "id"))) == 0) {
        json_object_set_new(run, "progress",
                            json_pack("{s:I, s:I}", "scanned", (json_int_t)live->scanned, "total",
                                      (json_int_t)live->total));
        json_object_set_new(run, "summary", recon_summary_json(&live->sum));
    }
    pthread_mutex_unlock(&bs->lock);
}

int bistore_reconcile_get(struct bistore *bs, const char *id, json_t **out, struct bs_error *err)
{
    *out = NULL;
    recon_reap(bs, false);
    struct sql_conn *c = sql_pool_get(&bs->readers, err);
    if (!c)
        return -1;
    enum lookup found = sql_run_get(c, id, out, err);
    sql_pool_put(&bs->readers, c);
    if (found == LOOKUP_FOUND)
        overlay_live(bs, *out);
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

/* Newest first; the cursor is the run's row number. */
int bistore_reconcile_list(struct bistore *bs, const char *after, int limit, json_t **items,
                           char **next, struct bs_error *err)
{
    *next = NULL;
    *items = json_array();
    int64_t before = INT64_MAX, last = 0;
    bool more = false;
    if (after && decode_row_cursor(after, &before, err) != 0)
        return -1;
    struct sql_conn *c = sql_pool_get(&bs->readers, err);
    if (!c)
        return -1;
    int rc = sql_run_list(c, before, limit, *items, &last, &more, err);
    sql_pool_put(&bs->readers, c);
    size_t i;
    json_t *run;
    json_array_foreach (*items, i, run)
        overlay_live(bs, run);
    if (rc == 0)
        *next = row_cursor(last, more);
    return rc;
}

int bistore_findings_list(struct bistore *bs, const char *run_id, const char *kind,
                          const char *after, int limit, json_t **items, char **next,
                          struct bs_error *err)
{
    *next = NULL;
    *items = json_array();
    int64_t from = 0, run_n = 0, last = 0;
    bool more = false;
    if (after && decode_row_cursor(after, &from, err) != 0)
        return -1;
    struct sql_conn *c = sql_pool_get(&bs->readers, err);
    if (!c)
        return -1;
    int rc = sql_run_n(c, run_id, &run_n, err);
    if (rc == LOOKUP_FOUND)
        rc = sql_findings_page(c, run_n, kind, from, limit, *items, &last, &more, err);
    sql_pool_put(&bs->readers, c);
    size_t i;
    json_t *f;
    json_array_foreach (*items, i, f)
        json_object_del(f, "n");
    if (rc == 0)
        *next = row_cursor(last, more);
    return rc;
}
