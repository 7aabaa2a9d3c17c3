/*
 * The single writer: a queue of jobs and the thread that runs them, one at
 * a time and in arrival order. A job is a group of client transactions
 * (through the commit protocol, commit.c) or a function of a layer above
 * (writer_call*). Before a write the writer recovers or replays as needed
 * (replay.c): at start-up, whenever Neo4j went away, and while an intent
 * is pending. The engine's lifecycle is here too: open, start, stop, close.
 *
 * Asserted after every job: no SQLite transaction open on the write
 * connection, no Neo4j transaction of the job's left open (committed,
 * DELETEd, or recorded for recovery when Neo4j could not be reached).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/metrics.h"
#include "common/timeutil.h"
#include "stores/engine/fault.h"
#include "stores/engine/internal.h"
#include "stores/replica/replica.h"
#include "stores/sqlite/recon.h"
#include "stores/sqlite/testvfs.h"

#define RETRY_INTERVAL_MS 1000

static void *writer_main(void *arg);

/* ---- the writer's own connections ---- */

struct sql_conn *writer_sql(struct engine *e)
{
    BS_ASSERT(pthread_equal(pthread_self(), e->wconn_owner));
    return e->wconn;
}

struct neo4j_client *writer_neo4j(struct engine *e)
{
    BS_ASSERT(pthread_equal(pthread_self(), e->wconn_owner));
    return e->neo4j;
}

const char *engine_store_id(const struct engine *e)
{
    return e->store_id;
}

bool writer_clean(const struct engine *e)
{
    return e->applied_seq == e->last_seq && e->orphans.n == 0;
}

int writer_replicated(struct engine *e, int64_t seq, struct bs_error *err)
{
    if (!e->replica)
        return 0;
    /* Anything the writer committed since its last wait (a resolved
     * intent's new statements keep their seq) needs one more. */
    int64_t changes = sql_total_changes(writer_sql(e));
    if (e->replicated_seq >= seq && e->replicated_changes == changes)
        return 0;
    int64_t upto = e->last_seq; /* what the sync covers: committed before it */
    uint64_t txid = 0;
    if (replica_sync(e->replica, &txid, err) != 0) {
        e->replica_failed = true;
        readiness_set(e, false, "replication: %s", err->message);
        return -1;
    }
    e->replicated_seq = upto;
    e->replicated_changes = changes;
    return 0;
}

/* ---- lifecycle ---- */

/* The fencing token a file holds (meta "epoch"; 0: never promoted). */
int engine_read_epoch(struct sql_conn *sql, int64_t *epoch, struct bs_error *err)
{
    char text[32];
    switch (sql_meta_get(sql, "epoch", text, sizeof text, err)) {
    case LOOKUP_MISSING: *epoch = 0; return 0;
    case LOOKUP_FAILED: return -1;
    case LOOKUP_FOUND: break;
    }
    char *end;
    long long v = strtoll(text, &end, 10);
    if (*end || end == text || v < 0)
        return bs_error_set(err, BS_STORAGE_ERROR, "meta epoch is not a number: %.30s", text), -1;
    *epoch = v;
    return 0;
}

/* The store id pairs this SQLite file with its watermark in Neo4j. */
static int load_store_id(struct engine *e, struct bs_error *err)
{
    struct sql_conn *sql = writer_sql(e);
    switch (sql_meta_get(sql, "store_id", e->store_id, sizeof e->store_id, err)) {
    case LOOKUP_FOUND: return 0;
    case LOOKUP_FAILED: return -1;
    case LOOKUP_MISSING: break;
    }
    ids_uuid7(e->store_id);
    return sql_meta_set(sql, "store_id", e->store_id, err);
}

/*
 * The relationship types SQLite holds: their uniqueness constraints exist
 * in Neo4j (made before the first data of each type), recovery makes sure
 * of it again in one request, and they count towards max_rel_types.
 */
static int load_rel_types(struct engine *e, struct bs_error *err)
{
    json_t *types = json_array();
    if (!types)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    int rc = sql_scan_relationship_types(writer_sql(e), types, err);
    for (size_t i = 0; rc == 0 && i < json_array_size(types) && e->n_rel_types < REL_TYPES_MAX;
         i++) {
        char *copy = strdup(json_string_value(json_array_get(types, i)));
        if (!copy)
            rc = (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
        else
            e->rel_types[e->n_rel_types++] = copy;
    }
    json_decref(types);
    return rc;
}

static void free_rel_types(struct engine *e)
{
    for (size_t i = 0; i < e->n_rel_types; i++)
        free(e->rel_types[i]);
    e->n_rel_types = 0;
}

struct engine *engine_open(const struct engine_config *cfg, struct bs_error *err)
{
    /* The SQLite fault shim, when a test asked for it, must be SQLite's
     * default VFS before the first open below; unset, this reads one
     * environment variable once and registers nothing. */
    testvfs_init();
    struct engine *e = calloc(1, sizeof *e);
    if (!e) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        return NULL;
    }
    e->sqlite_path = cfg->sqlite_path;
    e->neo4j_cfg = cfg->neo4j;
    e->max_queue = cfg->max_queue;
    e->max_rel_types = cfg->max_rel_types ? cfg->max_rel_types : REL_TYPES_MAX;
    e->readiness_pool = cfg->readiness_pool;
    e->orphans.fd = -1;
    e->wconn_owner = pthread_self(); /* until the writer starts */
    e->applied_seq = -1;             /* unknown until recovery reads the watermark */
    e->marked_seq = -1;
    e->landed.seq = -1;
    e->replicated_seq = -1; /* asked before the first intent reaches Neo4j */
    e->replicated_changes = -1;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    snprintf(e->reason, sizeof e->reason, "recovery has not finished");
    /* the lock first: nothing is written while another process writes */
    switch (orphans_open(&e->orphans, e->sqlite_path)) {
    case 0: break;
    case ORPHANS_BUSY:
        bs_error_set(err, BS_STORAGE_ERROR,
                     "%s is open in another bistore process (a gateway serving it, or a tool "
                     "writing it): stop that one first",
                     e->sqlite_path);
        goto fail;
    default:
        bs_error_set(err, BS_STORAGE_ERROR, "cannot open %s.neo4j-tx", e->sqlite_path);
        goto fail;
    }
    e->wconn = sql_open(e->sqlite_path, true, err);
    if (!e->wconn || load_store_id(e, err) != 0 ||
        engine_read_epoch(e->wconn, &e->epoch, err) != 0 || load_rel_types(e, err) != 0 ||
        sql_intent_max_seq(e->wconn, &e->last_seq, err) != 0)
        goto fail;
    e->neo4j = neo4j_client_new(&e->neo4j_cfg);
    if (!e->neo4j) {
        bs_error_set(err, BS_STORAGE_ERROR, "cannot set up the Neo4j client");
        goto fail;
    }
    if (cfg->replica_socket &&
        !(e->replica = replica_open(cfg->replica_socket, e->sqlite_path,
                                    cfg->replica_timeout_s ? (int)cfg->replica_timeout_s
                                                           : REPLICA_TIMEOUT_S_DEFAULT,
                                    err)))
        goto fail;
    return e;
fail:
    neo4j_client_free(e->neo4j);
    orphans_close(&e->orphans);
    sql_close(e->wconn);
    free_rel_types(e);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->wake);
    free(e);
    return NULL;
}

int engine_start(struct engine *e, struct bs_error *err)
{
    fault_init();
    metrics_recovery_begin();
    log_info("SQLite %s open (store %s, intent log at seq %lld)", e->sqlite_path, e->store_id,
             (long long)e->last_seq);
    if (spare_start(&e->spare, &e->neo4j_cfg) != 0)
        log_warn("no spare Neo4j transactions: every write opens its own");
    if (flight_start(e) != 0)
        log_warn("no committer thread: the writer waits for each Neo4j commit itself");
    pthread_mutex_lock(&e->lock); /* the writer takes wconn over once this returns */
    int rc = pthread_create(&e->writer, NULL, writer_main, e);
    e->writer_started = rc == 0;
    pthread_mutex_unlock(&e->lock);
    if (rc != 0)
        return bs_error_set(err, BS_STORAGE_ERROR, "cannot start the writer thread"), -1;
    return 0;
}

void engine_stop(struct engine *e)
{
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    e->writer_exit = true;
    pthread_cond_broadcast(&e->wake);
    pthread_mutex_unlock(&e->lock);
    if (e->writer_started)
        pthread_join(e->writer, NULL);
    e->wconn_owner = pthread_self(); /* the writer is gone */
    flight_stop(e);
    spare_stop(&e->spare);
    if (e->orphans.n)
        orphans_rollback_all(&e->orphans, e->neo4j);
    neo4j_client_free(e->neo4j);
    replica_close(e->replica);
    orphans_close(&e->orphans);
    sql_close(e->wconn);
    free_rel_types(e);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->wake);
    free(e);
}

/* ---- the thread ---- */

static bool prepare_to_write(struct engine *e, int64_t *last_attempt_ms, bool for_job,
                             struct bs_error *err);
static size_t take_jobs(struct engine *e, struct write_job **jobs);
static void run_sqlite_job(struct engine *e, struct write_job *job);
static void finish_job(struct engine *e, struct write_job *job);
static bool job_alone(const struct write_job *job);
static bool joins_flight(struct engine *e, struct write_job *const *jobs, size_t n, bool stopping);
static void settle(struct engine *e);
static void requeue(struct engine *e, struct write_job *const *jobs, size_t n);

static void *writer_main(void *arg)
{
    struct engine *e = arg;
    pthread_mutex_lock(&e->lock); /* engine_start has recorded the thread */
    e->wconn_owner = pthread_self();
    pthread_mutex_unlock(&e->lock);
    int64_t last_attempt = -RETRY_INTERVAL_MS;
    struct bs_error err;
    bs_error_clear(&err);
    struct write_job *jobs[GROUP_MAX_TXNS];
    struct commit_item items[GROUP_MAX_TXNS];
    prepare_to_write(e, &last_attempt, false, &err);
    for (;;) {
        pthread_mutex_lock(&e->lock);
        while (!e->writer_exit && !e->head && !flight_done_locked(e)) {
            if (e->stopping || e->flight.active || (e->ready && writer_clean(e))) {
                pthread_cond_wait(&e->wake, &e->lock);
                continue;
            }
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += RETRY_INTERVAL_MS / 1000;
            if (pthread_cond_timedwait(&e->wake, &e->lock, &until) == ETIMEDOUT)
                break;
        }
        size_t n = take_jobs(e, jobs);
        bool stopping = e->stopping, exiting = e->writer_exit;
        pthread_mutex_unlock(&e->lock);

        /* A plain group goes on behind the commit in flight; anything
         * else, or nothing to do, waits for it to land first. */
        bool behind = joins_flight(e, jobs, n, stopping) && flight_go_behind(e);
        bool just_landed = !behind && e->flight.active;
        if (just_landed) { /* and marked before a job that may take long */
            flight_land(e, false);
            settle(e);
        }
        enum commit_end end = COMMIT_ANSWERED;
        if (n && jobs[0]->sqlite_only) {
            /* Bookkeeping: no recovery first, Neo4j is not involved. */
            run_sqlite_job(e, jobs[0]);
        } else if (stopping) {
            for (size_t i = 0; i < n; i++)
                bs_error_set(&jobs[i]->out->err, BS_NEO4J_UNAVAILABLE,
                             "the gateway is shutting down");
        } else {
            bs_error_clear(&err);
            /* A flight that just landed with nothing queued: a commit that
             * failed is replayed on the retry timer, as any other. */
            bool can_write = behind || (n == 0 && just_landed) ||
                             prepare_to_write(e, &last_attempt, n > 0, &err);
            if (n == 0) {
                /* recovery or replay only */
            } else if (!can_write && jobs[0]->while_stuck && readiness_stuck_seq(e)) {
                jobs[0]->fn(e, jobs[0]->fn_arg, &jobs[0]->out->err);
            } else if (!can_write) {
                for (size_t i = 0; i < n; i++)
                    jobs[i]->out->err = err;
            } else if (jobs[0]->fn) {
                jobs[0]->fn(e, jobs[0]->fn_arg, &jobs[0]->out->err);
            } else {
                for (size_t i = 0; i < n; i++)
                    items[i] = (struct commit_item){.txn = jobs[i]->txn,
                                                    .rid = jobs[i]->rid,
                                                    .out = jobs[i]->out,
                                                    .job = jobs[i]};
                end = commit_group(e, items, n, true);
            }
        }
        /* Between jobs: nothing of a job is left open in either store (a
         * transaction in flight is the committer's). */
        BS_ASSERT(!sql_in_transaction(e->wconn));
        BS_ASSERT(e->open_neo4j_txs == 0);
        settle(e);
        if (end == COMMIT_REQUEUE)
            requeue(e, jobs, n);
        else if (end == COMMIT_ANSWERED)
            for (size_t i = 0; i < n; i++)
                finish_job(e, jobs[i]);
        if (stopping && !n && exiting)
            break;
    }
    return NULL;
}

/*
 * Whether the jobs, a group of client transactions, may go on behind the
 * commit in flight without waiting for it to land: ready, nothing pending
 * but the flight, no other Neo4j transaction recorded, and not a job that
 * goes alone (a function, a large transaction, raw statements).
 */
static bool joins_flight(struct engine *e, struct write_job *const *jobs, size_t n, bool stopping)
{
    return n > 0 && e->flight.active && !stopping && !job_alone(jobs[0]) && readiness_is_ready(e) &&
           e->applied_seq == e->flight.first_seq - 1 && e->last_seq == e->flight.seq &&
           e->orphans.n == 1;
}

/* After a job: the mark of what landed (when no later commit took it
 * along), then the answers the committer left to the writer. */
static void settle(struct engine *e)
{
    if (e->marked_seq < e->applied_seq)
        mark_applied_or_warn(e, e->applied_seq, e->applied_at);
    if (e->applied_seq >= 0)
        metrics_pending(e->last_seq - e->applied_seq);
    for (size_t i = 0; i < e->n_unanswered; i++)
        finish_job(e, e->unanswered[i]);
    e->n_unanswered = 0;
}

/* Puts jobs back at the head of the queue, in their order. */
static void requeue(struct engine *e, struct write_job *const *jobs, size_t n)
{
    pthread_mutex_lock(&e->lock);
    for (size_t i = n; i-- > 0;) {
        jobs[i]->next = e->head;
        e->head = jobs[i];
        if (!e->tail)
            e->tail = jobs[i];
        e->queued++;
    }
    pthread_mutex_unlock(&e->lock);
}

/*
 * Takes the next job, or a group of client transactions: every queued
 * client transaction up to the next function job, within the group limits
 * (group commit: a burst pays one fsync and one set of Neo4j round trips).
 * Lock held.
 */
/*
 * A job that goes alone: a function, a large transaction (pipelined), or
 * one with raw statements. A client's Cypher may read or change what its
 * neighbours' statements touch, so the group's merging (statements of one
 * template from several members run as one UNWIND, ahead of a raw
 * statement between them) would change what it sees, its rows and the
 * others' counts; a raw statement that fails would also make the whole
 * group retry one by one. Alone, it runs exactly as it will replay.
 */
static bool job_alone(const struct write_job *job)
{
    return job->fn || job->txn->n_ops >= PIPELINE_MIN_OPS || txn_has_raw(job->txn);
}

static size_t take_jobs(struct engine *e, struct write_job **jobs)
{
    size_t n = 0, ops = 0, bytes = 0;
    while (e->head && n < GROUP_MAX_TXNS) {
        struct write_job *job = e->head;
        bool alone = job_alone(job);
        if (n > 0 && (alone || ops + job->txn->n_ops > GROUP_MAX_OPS ||
                      bytes + job->txn->size_bytes > GROUP_MAX_BYTES))
            break;
        e->head = job->next;
        if (!e->head)
            e->tail = NULL;
        e->queued--;
        jobs[n++] = job;
        if (alone)
            break;
        ops += job->txn->n_ops;
        bytes += job->txn->size_bytes;
    }
    return n;
}

/* Recovery or replay as needed; true when a transaction may start. */
static bool prepare_to_write(struct engine *e, int64_t *last_attempt_ms, bool for_job,
                             struct bs_error *err)
{
    if (readiness_is_ready(e) && writer_clean(e))
        return true;
    if (readiness_stuck_seq(e)) { /* a deterministic refusal is not retried */
        char reason[REASON_MAX];
        engine_ready(e, reason, sizeof reason);
        bs_error_set(err, BS_NOT_READY, "not ready: %s", reason);
        return false;
    }
    int64_t now = time_monotonic_ms();
    if (for_job && !readiness_is_ready(e) && now - *last_attempt_ms < RETRY_INTERVAL_MS) {
        /* Neo4j (or the replica) failed less than a second ago: fail
         * fast, retry on the timer. Nothing of the job is written. */
        char reason[REASON_MAX];
        engine_ready(e, reason, sizeof reason);
        if (e->replica_failed || e->watermark_epoch != e->epoch)
            bs_error_set(err, BS_NOT_READY, "not ready: %s", reason);
        else
            bs_error_set(err, BS_NEO4J_UNAVAILABLE, "Neo4j is unavailable: %s", reason);
        return false;
    }
    *last_attempt_ms = now;
    /* Intents reach Neo4j only once the replica has them. */
    if (writer_replicated(e, e->last_seq, err) != 0) {
        /* The wait may have taken --replica-timeout: the next second of
         * jobs fails fast from its end, not its start. */
        *last_attempt_ms = time_monotonic_ms();
        char msg[BS_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof msg, "%s", err->message);
        bs_error_set(err, BS_NOT_READY, "not ready: replication: %.900s", msg);
        return false;
    }
    e->replica_failed = false;
    int rc = readiness_is_ready(e) ? replay_pending(e, err) : replay_recover(e, err);
    if (rc != 0 && readiness_stuck_seq(e))
        return false; /* err and the reason name the refused intent */
    if (rc != 0) {
        if (err->code != BS_NEO4J_UNAVAILABLE && err->code != BS_NOT_READY) {
            char msg[BS_ERROR_MESSAGE_MAX];
            snprintf(msg, sizeof msg, "%s", err->message);
            bs_error_set(err, BS_NEO4J_UNAVAILABLE, "recovery is not finished: %s", msg);
        }
        char reason[REASON_MAX];
        engine_ready(e, reason, sizeof reason);
        if (strstr(reason, "watermark") == NULL &&
            err->code != BS_NOT_READY) /* keep the more precise reason */
            readiness_set(e, false, "%s", err->message);
        return false;
    }
    readiness_note_ping(e);
    readiness_set(e, true, "ready");
    return true;
}

/* A writer_call_sqlite job. Between jobs the writer's connection is never
 * inside a transaction (asserted); a job that leaves its own open is
 * rolled back and fails. */
static void run_sqlite_job(struct engine *e, struct write_job *job)
{
    struct sql_conn *sql = writer_sql(e);
    job->fn(e, job->fn_arg, &job->out->err);
    if (sql_in_transaction(sql)) {
        log_error("writer: a bookkeeping job left its transaction open; rolled back");
        sql_rollback(sql);
        if (job->out->err.code == BS_OK)
            bs_error_set(&job->out->err, BS_STORAGE_ERROR, "bookkeeping left a transaction open");
    }
}

static void finish_job(struct engine *e, struct write_job *job)
{
    pthread_mutex_lock(&e->lock);
    job_finish_locked(job);
    pthread_mutex_unlock(&e->lock);
}

/* ---- queueing a job ---- */

/* Queues job and waits until the writer has run it. */
static void run_job(struct engine *e, struct write_job *job)
{
    pthread_cond_init(&job->done_cond, NULL);
    pthread_mutex_lock(&e->lock);
    /* Bookkeeping is not refused for a full queue or a stop under way: a
     * reconciliation (one at a time) must be able to record how it ended. */
    bool refused = job->sqlite_only ? e->writer_exit : e->stopping || e->queued >= e->max_queue;
    if (refused) {
        if (e->stopping)
            bs_error_set(&job->out->err, BS_NEO4J_UNAVAILABLE, "the gateway is shutting down");
        else
            bs_error_set(&job->out->err, BS_OVERLOADED,
                         "%zu writes are waiting for the writer already (--max-queue); nothing "
                         "was written: retry later",
                         e->max_queue);
        job->done = true;
    } else {
        if (e->tail)
            e->tail->next = job;
        else
            e->head = job;
        e->tail = job;
        e->queued++;
        pthread_cond_signal(&e->wake);
    }
    while (!job->done)
        pthread_cond_wait(&job->done_cond, &e->lock);
    pthread_mutex_unlock(&e->lock);
    pthread_cond_destroy(&job->done_cond);
}

void engine_submit(struct engine *e, struct bs_txn *txn, const char *rid,
                   struct bistore_outcome *out)
{
    memset(out, 0, sizeof *out);
    bs_error_clear(&out->err);
    struct write_job job = {.txn = txn, .rid = rid, .out = out};
    run_job(e, &job);
    if (out->in_doubt && out->err.code == BS_OK) { /* see bistore_outcome */
        struct bs_error doubt;
        bs_error_clear(&doubt);
        bs_error_set(&doubt, BS_COMMIT_IN_DOUBT,
                     "committed in SQLite and in the replica, but Neo4j did not confirm its "
                     "commit; it is replayed into Neo4j unless another gateway was promoted "
                     "meanwhile");
        outcome_fail(out, &doubt);
    }
}

static int call_in_writer(struct engine *e, writer_job fn, void *arg, bool sqlite_only,
                          bool while_stuck, struct bs_error *err)
{
    struct bistore_outcome out;
    memset(&out, 0, sizeof out);
    bs_error_clear(&out.err);
    struct write_job job = {.fn = fn,
                            .fn_arg = arg,
                            .sqlite_only = sqlite_only,
                            .while_stuck = while_stuck,
                            .out = &out};
    run_job(e, &job);
    *err = out.err;
    return out.err.code == BS_OK ? 0 : -1;
}

int writer_call(struct engine *e, writer_job fn, void *arg, struct bs_error *err)
{
    return call_in_writer(e, fn, arg, false, false, err);
}

int writer_call_sqlite(struct engine *e, writer_job fn, void *arg, struct bs_error *err)
{
    return call_in_writer(e, fn, arg, true, false, err);
}

int writer_call_while_stuck(struct engine *e, writer_job fn, void *arg, struct bs_error *err)
{
    return call_in_writer(e, fn, arg, false, true, err);
}

void engine_commit_internal(struct engine *e, apply_hook apply, void *ctx, json_t *provenance,
                            const char *rid, struct bistore_outcome *out)
{
    BS_ASSERT(pthread_equal(pthread_self(), e->wconn_owner)); /* inside a writer job */
    struct bs_txn txn = {.provenance = provenance};
    struct commit_item item = {
        .txn = &txn, .apply = apply, .apply_ctx = ctx, .rid = rid, .out = out};
    enum commit_end end = commit_group(e, &item, 1, false);
    BS_ASSERT(end == COMMIT_ANSWERED); /* a function job: nothing is in flight */
}
