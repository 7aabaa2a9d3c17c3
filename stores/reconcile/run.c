/*
 * One reconciliation run inside a gateway, in a thread of its own: the
 * scan, then (with a policy) the repairs, then its end recorded.
 *
 * The run writes SQLite only through the writer, in short transactions on
 * its connection (DESIGN.md invariant 7): the run row (writer_call_sqlite,
 * at the start and the end) and the findings, stored in the same writer job
 * that confirmed them, one transaction per re-check batch. Re-checks and
 * repairs run in the writer thread (writer_call), so they never race a
 * client write. The run's own connection is read-only (the scan and the
 * repair's reading of findings), so nothing holds SQLite's write lock while
 * the scan waits for Neo4j.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "stores/engine/engine.h"
#include "stores/reconcile/internal.h"
#include "stores/reconcile/repair.h"
#include "stores/sqlite/recon.h"

#define REPAIR_BATCH 100

static int hook_confirm(void *arg, json_t *candidates, json_t **confirmed, struct bs_error *err);
static int hook_progress(void *arg, int64_t scanned, int64_t total);
static void hook_counted(void *arg);
static int repair_all(struct recon_run *run, struct bs_error *err);
static int insert_run_in_writer(struct engine *e, void *arg, struct bs_error *err);

/* ---- the run ---- */

struct recon_run *run_new(struct reconciler *r, const struct recon_options *opt,
                          struct bs_error *err)
{
    struct recon_run *run = calloc(1, sizeof *run);
    if (!run)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), NULL;
    run->owner = r;
    run->opt = *opt;
    ids_uuid7(run->id);
    run->reader = sql_open(r->sqlite_path, false, err);
    run->neo4j = run->reader ? neo4j_client_new(&r->neo4j) : NULL;
    run->neo4j_side = run->neo4j ? neo4j_client_new(&r->neo4j) : NULL;
    if (!run->neo4j_side && err->code == BS_OK)
        bs_error_set(err, BS_STORAGE_ERROR, "cannot set up the Neo4j client");
    if (!run->neo4j_side || writer_call_sqlite(r->engine, insert_run_in_writer, run, err) != 0) {
        run_free(run);
        return NULL;
    }
    return run;
}

void *run_main(void *arg)
{
    struct recon_run *run = arg;
    struct bs_error err;
    bs_error_clear(&err);
    int64_t t0 = time_monotonic_ms();
    log_info("reconciliation %s: %s scan, repair %s%s", run->id, recon_mode_name(run->opt.mode),
             recon_repair_name(run->opt.repair), run->opt.dry_run ? " (dry run)" : "");
    struct recon_hooks hooks = {hook_confirm, hook_progress, run, hook_counted};
    int rc =
        recon_scan(run->reader, run->neo4j, run->neo4j_side, &run->opt, &hooks, &run->sum, &err);
    if (rc == 0 && run->opt.repair != REPAIR_NONE)
        rc = repair_all(run, &err);
    /* Finished for the next start before the stored state says so: a client
     * that sees "done" and starts another run must not get 409 (that start
     * joins this thread, so it waits for the save below). */
    reconciler_run_done(run->owner);
    struct bs_error save_err;
    bs_error_clear(&save_err);
    if (run_save(run, rc == 0 ? "done" : "failed", rc == 0 ? NULL : err.message, &save_err) != 0)
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

void run_free(struct recon_run *run)
{
    if (!run)
        return;
    sql_close(run->reader);
    neo4j_client_free(run->neo4j);
    neo4j_client_free(run->neo4j_side);
    free(run);
}

/* ---- the scan's hooks ---- */

struct confirm_call {
    struct recon_run *run;
    json_t *candidates;
    json_t *confirmed;
};

/* Re-reads the candidates with no write in flight (Neo4j reads, no SQLite
 * transaction open), then stores those still true, numbered on from
 * run->next_finding, in one short transaction (all or none). */
static int confirm_in_writer(struct engine *e, void *arg, struct bs_error *err)
{
    struct confirm_call *c = arg;
    struct recon_run *run = c->run;
    bool deep = run->opt.mode == RECON_DEEP;
    struct sql_conn *sql = writer_sql(e);
    if (recon_confirm(sql, writer_neo4j(e), deep, c->candidates, &c->confirmed, err) != 0 ||
        sql_findings_insert(sql, run->n, run->next_finding, c->confirmed, err) != 0)
        return -1;
    run->next_finding += (int64_t)json_array_size(c->confirmed);
    return 0;
}

static int hook_confirm(void *arg, json_t *candidates, json_t **confirmed, struct bs_error *err)
{
    struct recon_run *run = arg;
    struct confirm_call c = {run, candidates, NULL};
    int rc = writer_call(run->owner->engine, confirm_in_writer, &c, err);
    *confirmed = c.confirmed;
    return rc;
}

/* What GET shows of a running run: its counts so far (the run's thread
 * writes run->sum without a lock; readers take this copy under one). */
static void run_publish(struct recon_run *run)
{
    pthread_mutex_lock(&run->owner->lock);
    run->live_sum = run->sum;
    pthread_mutex_unlock(&run->owner->lock);
}

static void hook_counted(void *arg)
{
    run_publish(arg);
}

static int hook_progress(void *arg, int64_t scanned, int64_t total)
{
    struct recon_run *run = arg;
    run->scanned = scanned;
    run->total = total;
    run_publish(run);
    return reconciler_stopping(run->owner) ? -1 : 0;
}

/* ---- the repairs ---- */

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
        int rc = writer_call(run->owner->engine, repair_run_batch, &rb, err);
        json_decref(batch);
        if (rc != 0)
            return -1;
        run->sum.repaired += rb.repaired;
        run_publish(run);
    }
}

/* ---- the run's row, through the writer ---- */

/* The summary as the row keeps it (JSON text, free() it), or NULL. */
static char *summary_text(const struct recon_run *run)
{
    json_t *sum = recon_summary_json(&run->sum);
    char *text = sum ? json_dumps(sum, JSON_COMPACT) : NULL;
    json_decref(sum);
    return text;
}

static int insert_run_in_writer(struct engine *e, void *arg, struct bs_error *err)
{
    struct recon_run *run = arg;
    char now[TIMESTAMP_LEN];
    time_now_rfc3339(now);
    char *text = summary_text(run);
    int rc = text ? sql_run_insert(writer_sql(e), run->id, recon_mode_name(run->opt.mode),
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

static int save_run_in_writer(struct engine *e, void *arg, struct bs_error *err)
{
    struct save_call *c = arg;
    struct recon_run *run = c->run;
    char now[TIMESTAMP_LEN];
    time_now_rfc3339(now);
    bool finished = strcmp(c->state, "running") != 0;
    char *text = summary_text(run);
    int rc = text ? sql_run_update(writer_sql(e), run->n, c->state, finished ? now : NULL,
                                   run->scanned, run->total, text, c->error, err)
                  : (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    free(text);
    return rc;
}

/* Runs even while Neo4j is away or the gateway stops, so a failed run can say so. */
int run_save(struct recon_run *run, const char *state, const char *error, struct bs_error *err)
{
    struct save_call c = {run, state, error};
    return writer_call_sqlite(run->owner->engine, save_run_in_writer, &c, err);
}
