/*
 * The single writer: a queue of client transactions and the thread that
 * runs them, one at a time and in arrival order, through the commit
 * protocol (commit.c). It also owns recovery: at start-up, whenever Neo4j
 * went away, and before any transaction while an intent is pending.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "stores/engine/fault.h"
#include "stores/engine/internal.h"
#include "stores/sqlite/testvfs.h"

#define RETRY_INTERVAL_MS 1000

void writer_set_ready(struct bistore *bs, bool ready, const char *reason_fmt, ...)
{
    pthread_mutex_lock(&bs->lock);
    bool was = bs->ready;
    bs->ready = ready;
    va_list ap;
    va_start(ap, reason_fmt);
    vsnprintf(bs->reason, sizeof bs->reason, reason_fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&bs->lock);
    if (was != ready) {
        if (ready) {
            log_info("ready: accepting writes");
            testvfs_hit("ready");
        } else {
            log_warn("not ready: %s", bs->reason);
        }
    }
}

void writer_set_stuck(struct bistore *bs, int64_t seq, const char *reason)
{
    pthread_mutex_lock(&bs->lock);
    bs->stuck_seq = seq;
    bs->ready = false;
    snprintf(bs->reason, sizeof bs->reason, "%s", reason);
    pthread_mutex_unlock(&bs->lock);
}

void writer_clear_stuck(struct bistore *bs)
{
    pthread_mutex_lock(&bs->lock);
    bs->stuck_seq = 0;
    pthread_mutex_unlock(&bs->lock);
}

int64_t writer_stuck_seq(struct bistore *bs)
{
    pthread_mutex_lock(&bs->lock);
    int64_t seq = bs->stuck_seq;
    pthread_mutex_unlock(&bs->lock);
    return seq;
}

#define READY_PING_INTERVAL_MS 1000

bool bistore_ready(struct bistore *bs, char *reason, size_t cap)
{
    pthread_mutex_lock(&bs->lock);
    bool ready = bs->ready;
    bool ping = ready && time_monotonic_ms() - bs->last_ping_ms >= READY_PING_INTERVAL_MS;
    if (bs->stuck_seq) { /* its reason stays: Neo4j answering changes nothing */
        snprintf(reason, cap, "%s", bs->reason);
        pthread_mutex_unlock(&bs->lock);
        return false;
    }
    pthread_mutex_unlock(&bs->lock);
    if (ping) {
        /* "Neo4j answers" is part of ready: ask it, at most once a second. */
        struct neo4j_client *c = read_client_get(bs);
        char version[64];
        bool up = c && neo4j_ping(c, version, sizeof version);
        if (c)
            read_client_put(bs, c);
        if (up) {
            pthread_mutex_lock(&bs->lock);
            bs->last_ping_ms = time_monotonic_ms();
            pthread_mutex_unlock(&bs->lock);
        } else {
            writer_set_ready(bs, false, "Neo4j at %s does not answer", bs->neo4j_url);
            pthread_mutex_lock(&bs->lock);
            pthread_cond_signal(&bs->wake); /* the writer retries recovery */
            pthread_mutex_unlock(&bs->lock);
            ready = false;
        }
    }
    pthread_mutex_lock(&bs->lock);
    ready = ready && bs->ready;
    snprintf(reason, cap, "%s", bs->reason);
    pthread_mutex_unlock(&bs->lock);
    return ready;
}

static bool is_ready(struct bistore *bs)
{
    pthread_mutex_lock(&bs->lock);
    bool ready = bs->ready;
    pthread_mutex_unlock(&bs->lock);
    return ready;
}

/* True when no Neo4j transaction of ours is open and nothing is pending. */
static bool writer_clean(struct bistore *bs)
{
    return bs->applied_seq == bs->last_seq && bs->orphans.n == 0;
}

/* Recovery or replay as needed; true when a transaction may start. */
static bool writer_prepare(struct bistore *bs, int64_t *last_attempt_ms, bool for_job,
                           struct bs_error *err)
{
    bool clean = is_ready(bs) && writer_clean(bs);
    if (clean)
        return true;
    if (writer_stuck_seq(bs)) { /* a deterministic refusal is not retried */
        char reason[REASON_MAX];
        bistore_ready(bs, reason, sizeof reason);
        bs_error_set(err, BS_NOT_READY, "not ready: %s", reason);
        return false;
    }
    int64_t now = time_monotonic_ms();
    if (for_job && !is_ready(bs) && now - *last_attempt_ms < RETRY_INTERVAL_MS) {
        /* Neo4j failed less than a second ago: fail fast, retry on the timer. */
        char reason[REASON_MAX];
        bistore_ready(bs, reason, sizeof reason);
        bs_error_set(err, BS_NEO4J_UNAVAILABLE, "Neo4j is unavailable: %s", reason);
        return false;
    }
    *last_attempt_ms = now;
    int rc = is_ready(bs) ? commit_replay_pending(bs, err) : commit_recover(bs, err);
    if (rc != 0 && writer_stuck_seq(bs))
        return false; /* err and the reason name the refused intent */
    if (rc != 0) {
        if (err->code != BS_NEO4J_UNAVAILABLE) {
            char msg[BS_ERROR_MESSAGE_MAX];
            snprintf(msg, sizeof msg, "%s", err->message);
            bs_error_set(err, BS_NEO4J_UNAVAILABLE, "recovery is not finished: %s", msg);
        }
        char reason[REASON_MAX];
        bistore_ready(bs, reason, sizeof reason);
        if (strstr(reason, "watermark") == NULL) /* keep the more precise reason */
            writer_set_ready(bs, false, "%s", err->message);
        return false;
    }
    pthread_mutex_lock(&bs->lock);
    bs->last_ping_ms = time_monotonic_ms();
    pthread_mutex_unlock(&bs->lock);
    writer_set_ready(bs, true, "ready");
    return true;
}

/* A writer_call_sqlite job. Between jobs the writer's connection is never
 * inside a transaction (every path of commit.c ends its own); should one be
 * open all the same, the job is refused rather than run inside it. */
static void run_sqlite_job(struct bistore *bs, struct write_job *job)
{
    if (sql_in_transaction(bs->wconn)) {
        log_error("writer: a transaction is open between jobs; bookkeeping refused");
        bs_error_set(&job->out->err, BS_STORAGE_ERROR, "the writer's connection is busy");
        return;
    }
    job->fn(bs, job->fn_arg, &job->out->err);
    if (sql_in_transaction(bs->wconn)) {
        log_error("writer: a bookkeeping job left its transaction open; rolled back");
        sql_rollback(bs->wconn);
        if (job->out->err.code == BS_OK)
            bs_error_set(&job->out->err, BS_STORAGE_ERROR, "bookkeeping left a transaction open");
    }
}

static void finish_job(struct bistore *bs, struct write_job *job)
{
    pthread_mutex_lock(&bs->lock);
    job->done = true;
    pthread_cond_signal(&job->done_cond);
    pthread_mutex_unlock(&bs->lock);
}

/* Most client transactions, and operations, that one group takes. */
#define GROUP_MAX_TXNS 128
#define GROUP_MAX_OPS 20000

/*
 * Takes the next job, or a group of client transactions: every queued
 * client transaction up to the next function job, within the group limits
 * (group commit: a burst pays one fsync and one set of Neo4j round trips).
 * Lock held.
 */
static size_t take_jobs(struct bistore *bs, struct write_job **jobs)
{
    size_t n = 0, ops = 0;
    while (bs->head && n < GROUP_MAX_TXNS) {
        struct write_job *job = bs->head;
        if (n > 0 && (job->fn || ops + job->txn->n_ops > GROUP_MAX_OPS ||
                      job->txn->n_ops >= PIPELINE_MIN_OPS))
            break;
        bs->head = job->next;
        if (!bs->head)
            bs->tail = NULL;
        bs->queued--;
        jobs[n++] = job;
        if (job->fn || job->txn->n_ops >= PIPELINE_MIN_OPS)
            break; /* alone: a function, or a large transaction (pipelined) */
        ops += job->txn->n_ops;
    }
    return n;
}

static void *writer_main(void *arg)
{
    struct bistore *bs = arg;
    int64_t last_attempt = -RETRY_INTERVAL_MS;
    struct bs_error err;
    bs_error_clear(&err);
    struct write_job *jobs[GROUP_MAX_TXNS];
    struct commit_item items[GROUP_MAX_TXNS];
    writer_prepare(bs, &last_attempt, false, &err);
    for (;;) {
        pthread_mutex_lock(&bs->lock);
        while (!bs->writer_exit && !bs->head) {
            if (bs->stopping || (bs->ready && writer_clean(bs))) {
                pthread_cond_wait(&bs->wake, &bs->lock);
                continue;
            }
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += RETRY_INTERVAL_MS / 1000;
            if (pthread_cond_timedwait(&bs->wake, &bs->lock, &until) == ETIMEDOUT)
                break;
        }
        size_t n = take_jobs(bs, jobs);
        bool stopping = bs->stopping, exiting = bs->writer_exit;
        pthread_mutex_unlock(&bs->lock);

        if (n && jobs[0]->sqlite_only) {
            /* Bookkeeping: no recovery first, Neo4j is not involved. */
            run_sqlite_job(bs, jobs[0]);
            finish_job(bs, jobs[0]);
            continue;
        }
        if (stopping) {
            for (size_t i = 0; i < n; i++) {
                bs_error_set(&jobs[i]->out->err, BS_NEO4J_UNAVAILABLE,
                             "the gateway is shutting down");
                finish_job(bs, jobs[i]);
            }
            if (n || !exiting)
                continue; /* a reconciliation may still record its end */
            break;
        }
        bs_error_clear(&err);
        bool can_write = writer_prepare(bs, &last_attempt, n > 0, &err);
        if (n == 0)
            continue;
        if (!can_write && jobs[0]->while_stuck && writer_stuck_seq(bs)) {
            jobs[0]->fn(bs, jobs[0]->fn_arg, &jobs[0]->out->err);
        } else if (!can_write) {
            for (size_t i = 0; i < n; i++)
                jobs[i]->out->err = err;
        } else if (jobs[0]->fn) {
            jobs[0]->fn(bs, jobs[0]->fn_arg, &jobs[0]->out->err);
        } else {
            for (size_t i = 0; i < n; i++)
                items[i] = (struct commit_item){jobs[i]->txn, jobs[i]->rid, jobs[i]->out};
            commit_group(bs, items, n);
        }
        for (size_t i = 0; i < n; i++)
            finish_job(bs, jobs[i]);
    }
    return NULL;
}

/* Queues job and waits until the writer has run it. */
static void run_job(struct bistore *bs, struct write_job *job)
{
    pthread_cond_init(&job->done_cond, NULL);
    pthread_mutex_lock(&bs->lock);
    /* Bookkeeping is not refused for a full queue or a stop under way: a
     * reconciliation (one at a time) must be able to record how it ended. */
    bool refused = job->sqlite_only ? bs->writer_exit : bs->stopping || bs->queued >= bs->max_queue;
    if (refused) {
        bs_error_set(&job->out->err, BS_NEO4J_UNAVAILABLE,
                     bs->stopping ? "the gateway is shutting down"
                                  : "too many writes are queued; retry later");
        job->done = true;
    } else {
        if (bs->tail)
            bs->tail->next = job;
        else
            bs->head = job;
        bs->tail = job;
        bs->queued++;
        pthread_cond_signal(&bs->wake);
    }
    while (!job->done)
        pthread_cond_wait(&job->done_cond, &bs->lock);
    pthread_mutex_unlock(&bs->lock);
    pthread_cond_destroy(&job->done_cond);
}

void bistore_submit(struct bistore *bs, struct bs_txn *txn, const char *rid,
                    struct bistore_outcome *out)
{
    memset(out, 0, sizeof *out);
    bs_error_clear(&out->err);
    struct write_job job = {.txn = txn, .rid = rid, .out = out};
    run_job(bs, &job);
}

static int call_in_writer(struct bistore *bs,
                          int (*fn)(struct bistore *bs, void *arg, struct bs_error *err), void *arg,
                          bool sqlite_only, bool while_stuck, struct bs_error *err)
{
    struct bistore_outcome out;
    memset(&out, 0, sizeof out);
    bs_error_clear(&out.err);
    struct write_job job = {.fn = fn,
                            .fn_arg = arg,
                            .sqlite_only = sqlite_only,
                            .while_stuck = while_stuck,
                            .out = &out};
    run_job(bs, &job);
    *err = out.err;
    return out.err.code == BS_OK ? 0 : -1;
}

int writer_call(struct bistore *bs, int (*fn)(struct bistore *bs, void *arg, struct bs_error *err),
                void *arg, struct bs_error *err)
{
    return call_in_writer(bs, fn, arg, false, false, err);
}

int writer_call_sqlite(struct bistore *bs,
                       int (*fn)(struct bistore *bs, void *arg, struct bs_error *err), void *arg,
                       struct bs_error *err)
{
    return call_in_writer(bs, fn, arg, true, false, err);
}

int writer_call_while_stuck(struct bistore *bs,
                            int (*fn)(struct bistore *bs, void *arg, struct bs_error *err),
                            void *arg, struct bs_error *err)
{
    return call_in_writer(bs, fn, arg, false, true, err);
}

void bistore_outcome_clear(struct bistore_outcome *out)
{
    json_decref(out->result);
    out->result = NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The store id pairs this SQLite file with its watermark in Neo4j. */
static int load_store_id(struct bistore *bs, struct bs_error *err)
{
    int rc = sql_meta_get(bs->wconn, "store_id", bs->store_id, sizeof bs->store_id, err);
    if (rc == 1) {
        ids_uuid7(bs->store_id);
        rc = sql_meta_set(bs->wconn, "store_id", bs->store_id, err);
    }
    return rc;
}

struct bistore *bistore_open(const struct bistore_config *cfg, struct bs_error *err)
{
    /* The SQLite fault shim, when a test asked for it, must be SQLite's
     * default VFS before the first open below; unset, this reads one
     * environment variable once and registers nothing. */
    testvfs_init();
    struct bistore *bs = calloc(1, sizeof *bs);
    if (!bs) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        return NULL;
    }
    bs->orphans.fd = -1;
    pthread_mutex_init(&bs->lock, NULL);
    pthread_cond_init(&bs->wake, NULL);
    pthread_cond_init(&bs->validator_wake, NULL);
    snprintf(bs->reason, sizeof bs->reason, "recovery has not finished");
    bs->sqlite_path = strdup(cfg->sqlite_path);
    bs->neo4j_url = strdup(cfg->neo4j.url);
    bs->neo4j_database = strdup(cfg->neo4j.database);
    bs->neo4j_user = dup_or_null(cfg->neo4j.user);
    bs->neo4j_password = dup_or_null(cfg->neo4j.password);
    bs->max_queue = cfg->max_queue;
    bs->neo4j_cfg = cfg->neo4j;
    bs->neo4j_cfg.url = bs->neo4j_url;
    bs->neo4j_cfg.database = bs->neo4j_database;
    bs->neo4j_cfg.user = bs->neo4j_user;
    bs->neo4j_cfg.password = bs->neo4j_password;
    if (!bs->sqlite_path || !bs->neo4j_url || !bs->neo4j_database) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        goto fail;
    }
    bs->wconn = sql_open(bs->sqlite_path, true, err);
    if (!bs->wconn || load_store_id(bs, err) != 0)
        goto fail;
    if (sql_pool_init(&bs->readers, bs->sqlite_path, cfg->read_connections) != 0) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        goto fail;
    }
    if (orphans_open(&bs->orphans, bs->sqlite_path) != 0) {
        bs_error_set(err, BS_STORAGE_ERROR, "cannot open %s.neo4j-tx", bs->sqlite_path);
        goto fail_pool;
    }
    bs->neo4j = neo4j_client_new(&bs->neo4j_cfg);
    if (!bs->neo4j) {
        bs_error_set(err, BS_STORAGE_ERROR, "cannot set up the Neo4j client");
        goto fail_pool;
    }
    if (sql_intent_max_seq(bs->wconn, &bs->last_seq, err) != 0 ||
        recon_mark_interrupted(bs->wconn, err) != 0)
        goto fail_pool;
    bs->validate_interval_s = cfg->validate_interval_s;
    bs->applied_seq = -1; /* unknown until recovery reads the watermark */
    return bs;
fail_pool:
    sql_pool_destroy(&bs->readers);
fail:
    neo4j_client_free(bs->neo4j);
    orphans_close(&bs->orphans);
    sql_close(bs->wconn);
    free(bs->sqlite_path);
    free(bs->neo4j_url);
    free(bs->neo4j_database);
    free(bs->neo4j_user);
    free(bs->neo4j_password);
    free(bs);
    return NULL;
}

int bistore_start(struct bistore *bs, struct bs_error *err)
{
    fault_init();
    log_info("SQLite %s open (store %s, intent log at seq %lld)", bs->sqlite_path, bs->store_id,
             (long long)bs->last_seq);
    if (spare_start(&bs->spare, &bs->neo4j_cfg) != 0)
        log_warn("no spare Neo4j transactions: every write opens its own");
    if (pthread_create(&bs->writer, NULL, writer_main, bs) != 0) {
        bs_error_set(err, BS_STORAGE_ERROR, "cannot start the writer thread");
        return -1;
    }
    bs->writer_started = true;
    if (recon_start_validator(bs) != 0) {
        bs_error_set(err, BS_STORAGE_ERROR, "cannot start the validation thread");
        return -1;
    }
    return 0;
}

void bistore_close(struct bistore *bs)
{
    if (!bs)
        return;
    pthread_mutex_lock(&bs->lock);
    bs->stopping = true;
    pthread_cond_broadcast(&bs->wake);
    pthread_cond_broadcast(&bs->validator_wake);
    pthread_mutex_unlock(&bs->lock);
    if (bs->validator_started)
        pthread_join(bs->validator, NULL);
    /* A running reconciliation stops at its next page or writer call and
     * records its end through the writer, which keeps running bookkeeping
     * jobs until writer_exit. */
    recon_reap(bs, true);
    pthread_mutex_lock(&bs->lock);
    bs->writer_exit = true;
    pthread_cond_broadcast(&bs->wake);
    pthread_mutex_unlock(&bs->lock);
    if (bs->writer_started)
        pthread_join(bs->writer, NULL);
    spare_stop(&bs->spare);
    if (bs->orphans.n)
        orphans_rollback_all(&bs->orphans, bs->neo4j);
    neo4j_client_free(bs->neo4j);
    for (size_t i = 0; i < bs->n_read_clients; i++)
        neo4j_client_free(bs->read_clients[i]);
    orphans_close(&bs->orphans);
    sql_pool_destroy(&bs->readers);
    sql_close(bs->wconn);
    for (size_t i = 0; i < bs->n_rel_types; i++)
        free(bs->rel_types[i]);
    free(bs->sqlite_path);
    free(bs->neo4j_url);
    free(bs->neo4j_database);
    free(bs->neo4j_user);
    free(bs->neo4j_password);
    pthread_mutex_destroy(&bs->lock);
    pthread_cond_destroy(&bs->wake);
    pthread_cond_destroy(&bs->validator_wake);
    free(bs);
}
