/*
 * Recovery and replay: bringing Neo4j up to SQLite's intent log (DESIGN.md
 * section 4), run by the writer thread at start-up, after Neo4j came back
 * and before any write while an intent is pending.
 *
 *   recover   Neo4j answers; the Entity id constraint (a schema statement,
 *             its own transaction); the intent log's last seq; then replay
 *   replay    roll back the Neo4j transactions recorded as open; read the
 *             watermark; intents up to it are in Neo4j (mark them); replay
 *             the rest in order, in batches, each batch one Neo4j
 *             transaction guarded from its first seq - 1 to its last, so
 *             each intent is applied exactly once
 *   refusal   a batch Neo4j refuses with the watermark where it belongs is
 *             replayed one intent at a time, up to the one Neo4j refuses:
 *             that one is named (readiness, its intent row, the log) and not
 *             tried again until `bistore resolve` settles it
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/background.h"
#include "common/metrics.h"
#include "stores/engine/internal.h"

/* Intents replayed together in one Neo4j transaction, at most. */
#define REPLAY_BATCH_INTENTS 2000
#define REPLAY_BATCH_BYTES ((size_t)8 << 20)
/* Reads of a watermark that keeps moving before giving up. */
#define REPLAY_ATTEMPTS 3

static int read_watermark(struct engine *e, int64_t *seq, struct bs_error *err);
static int check_epoch(struct engine *e, struct bs_error *err);
static int replay_batches(struct engine *e, int64_t watermark, struct bs_error *err);
static int replay_one_by_one(struct engine *e, struct bs_error *err);

/* ---- the entry points ---- */

int replay_recover(struct engine *e, struct bs_error *err)
{
    char version[64] = "";
    struct neo4j_client *neo4j = writer_neo4j(e);
    if (!neo4j_ping(neo4j, version, sizeof version))
        return bs_error_set(err, BS_NEO4J_UNAVAILABLE, "Neo4j at %s does not answer",
                            e->neo4j_cfg.url),
               -1;
    json_t *stmts = json_array();
    struct neo4j_result r = {0};
    if (!stmts || neo4j_add_statement(stmts, cypher_entity_constraint(), NULL) != 0) {
        json_decref(stmts);
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    }
    /* The constraints of the relationship types SQLite holds, in the same
     * schema transaction (a no-op for each that exists). */
    for (size_t i = 0; i < e->n_rel_types; i++) {
        char text[256];
        if (cypher_relationship_constraint(e->rel_types[i], text, sizeof text) != 0 ||
            neo4j_add_statement(stmts, text, NULL) != 0) {
            json_decref(stmts);
            return bs_error_set(err, BS_STORAGE_ERROR, "relationship type constraint for '%s'",
                                e->rel_types[i]),
                   -1;
        }
    }
    enum neo4j_status status = neo4j_autocommit(neo4j, stmts, &r);
    json_decref(stmts);
    spare_schema_changed(&e->spare);
    if (status != NEO4J_OK) {
        neo4j_failure(err, &r, "Entity id constraint");
        neo4j_result_clear(&r);
        return -1;
    }
    neo4j_result_clear(&r);
    if (sql_intent_max_seq(writer_sql(e), &e->last_seq, err) != 0)
        return -1;
    if (replay_pending(e, err) != 0)
        return -1;
    log_info("recovered: Neo4j %s, intent log at seq %lld, nothing pending", version,
             (long long)e->last_seq);
    return 0;
}

int replay_pending(struct engine *e, struct bs_error *err)
{
    for (int attempt = 0; attempt < REPLAY_ATTEMPTS; attempt++) {
        if (orphans_rollback_all(&e->orphans, writer_neo4j(e)) != 0)
            return bs_error_set(err, BS_NEO4J_UNAVAILABLE,
                                "Neo4j did not answer the rollback of an open transaction"),
                   -1;
        int64_t watermark;
        if (read_watermark(e, &watermark, err) != 0)
            return -1;
        if (watermark > e->last_seq) {
            readiness_set(e, false,
                          "Neo4j's watermark (%lld) is ahead of SQLite's intent log "
                          "(%lld): this SQLite file is older than the Neo4j it is paired "
                          "with; restore the matching file or reconcile",
                          (long long)watermark, (long long)e->last_seq);
            return bs_error_set(err, BS_NEO4J_UNAVAILABLE, "%s", "stores out of step"), -1;
        }
        e->applied_seq = watermark;
        if (mark_applied(e, watermark, NULL, err) != 0)
            return -1;
        if (watermark == e->last_seq)
            return 0;
        if (replay_batches(e, watermark, err) == 0)
            return 0;
        if (err->code != BS_NEO4J_ERROR)
            return -1; /* transient (Neo4j away, a transient error): retried on the timer */
        /* Neo4j refused a batch: either the guard (the watermark moved under
         * us: read it again) or a statement, deterministically. */
        int64_t now;
        if (read_watermark(e, &now, err) != 0)
            return -1;
        if (now == e->applied_seq)
            return replay_one_by_one(e, err);
    }
    return bs_error_set(err, BS_NEO4J_ERROR,
                        "Neo4j's watermark keeps moving under this gateway: is a second "
                        "gateway writing to the same stores?"),
           -1;
}

/* ---- replay in batches ---- */

/* A batch being collected: the guard first, then every intent's statements. */
struct replay_batch {
    json_t *stmts;
    int64_t first, last;
    size_t bytes;
    bool failed;
    struct bs_error *err;
};

/* A replay batch on its way to Neo4j, in a thread of its own. */
struct replay_send {
    struct neo4j_client *neo4j; /* the writer's, lent to the request thread */
    json_t *stmts;
    int64_t first, last;
    struct background call;
    struct neo4j_result r;
    enum neo4j_status status;
};

static int replay_next(struct engine *e, int64_t after, int limit, struct replay_batch *batch,
                       struct bs_error *err);
static void *replay_send_main(void *arg);
static int replay_wait(struct engine *e, struct replay_send *s, struct bs_error *err);

/*
 * Replays the pending intents after `watermark` in batches. The next batch
 * is read and built while Neo4j runs the one before; it is sent only once
 * that one is in. 0 when all are applied; -1 on failure (a guard failure
 * means the watermark moved under us: the caller reads it again).
 */
static int replay_batches(struct engine *e, int64_t watermark, struct bs_error *err)
{
    struct replay_send s = {.neo4j = writer_neo4j(e)};
    bool in_flight = false;
    int64_t collected = watermark;
    int rc = 0;
    while (rc == 0 && (in_flight || collected < e->last_seq)) {
        struct replay_batch next = {0};
        bool have = collected < e->last_seq;
        if (have && replay_next(e, collected, REPLAY_BATCH_INTENTS, &next, err) != 0) {
            have = false;
            rc = -1;
        }
        if (in_flight) {
            in_flight = false;
            struct bs_error ignored;
            if (replay_wait(e, &s, rc == 0 ? err : &ignored) != 0)
                rc = -1;
        }
        if (rc != 0) {
            if (have)
                json_decref(next.stmts);
            break;
        }
        if (have) {
            s = (struct replay_send){.neo4j = writer_neo4j(e),
                                     .stmts = next.stmts,
                                     .first = next.first,
                                     .last = next.last};
            background_start(&s.call, replay_send_main, &s);
            in_flight = true;
            collected = next.last;
        }
    }
    return rc;
}

/*
 * Appends an intent's statements to the batch, merging each into the one
 * before it when they share a template (creates of one type from
 * consecutive intents): one statement instead of hundreds.
 */
static int replay_append(json_t *stmts, json_t *statements)
{
    size_t i;
    json_t *stmt;
    bool merged;
    json_array_foreach (statements, i, stmt)
        if (cypher_append_merged(stmts, 1, stmt, &merged) != 0) /* [0] is the guard */
            return -1;
    return 0;
}

/* Collects one pending intent into the batch; false stops the reading. */
static bool replay_collect(int64_t seq, const char *statements, void *arg)
{
    struct replay_batch *batch = arg;
    if (batch->last && (seq != batch->last + 1 || batch->bytes > REPLAY_BATCH_BYTES))
        return false; /* the batch is full (or the log has a gap): stop here */
    json_t *data = json_loads(statements, 0, NULL);
    if (!data || replay_append(batch->stmts, data) != 0) {
        json_decref(data);
        bs_error_set(batch->err, BS_STORAGE_ERROR, "intent %lld unreadable", (long long)seq);
        batch->failed = true;
        return false;
    }
    json_decref(data);
    if (!batch->first)
        batch->first = seq;
    batch->last = seq;
    batch->bytes += strlen(statements);
    return true;
}

/* Collects the next batch of pending intents, after seq `after`, behind
 * its guard (from `after` to the batch's last seq). 0, or -1 with err set. */
static int replay_next(struct engine *e, int64_t after, int limit, struct replay_batch *batch,
                       struct bs_error *err)
{
    *batch = (struct replay_batch){.stmts = json_array(), .err = err};
    if (!batch->stmts ||
        cypher_add_watermark_guard(batch->stmts, e->store_id, e->epoch, after, 0) != 0) {
        json_decref(batch->stmts);
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    }
    int rc = sql_intent_pending(writer_sql(e), after, limit, replay_collect, batch, err);
    if (batch->failed || (rc != 0 && batch->last == 0)) {
        json_decref(batch->stmts);
        return -1;
    }
    if (batch->first != after + 1) { /* data, not our logic: an error, not an assert */
        json_decref(batch->stmts);
        return bs_error_set(err, BS_STORAGE_ERROR, "the intent log has a gap after seq %lld",
                            (long long)after),
               -1;
    }
    json_t *params = json_object_get(json_array_get(batch->stmts, 0), "parameters");
    if (json_object_set_new(params, "seq", json_integer(batch->last)) != 0) {
        json_decref(batch->stmts);
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    }
    return 0;
}

static void *replay_send_main(void *arg)
{
    struct replay_send *s = arg;
    s->status = neo4j_autocommit(s->neo4j, s->stmts, &s->r);
    return NULL;
}

/* Waits for the batch in flight; when Neo4j took it, it is applied (and marked). */
static int replay_wait(struct engine *e, struct replay_send *s, struct bs_error *err)
{
    background_wait(&s->call);
    json_decref(s->stmts);
    s->stmts = NULL;
    int rc = 0;
    if (s->status != NEO4J_OK) {
        neo4j_failure(err, &s->r, "replay");
        log_warn("replay of intents %lld..%lld failed: %s", (long long)s->first, (long long)s->last,
                 err->message);
        rc = -1;
    } else if (neo4j_row_count(&s->r, 0) != 1) {
        bs_error_set(err, BS_NEO4J_ERROR, "the watermark node of store %s is missing", e->store_id);
        rc = -1;
    }
    neo4j_result_clear(&s->r);
    if (rc != 0)
        return -1;
    log_info("replayed intents %lld..%lld", (long long)s->first, (long long)s->last);
    metrics_replayed((uint64_t)(s->last - s->first + 1));
    BS_ASSERT(s->first == e->applied_seq + 1); /* the replay follows the watermark */
    e->applied_seq = s->last;
    return mark_applied(e, s->last, NULL, err);
}

/* ---- a refusal ---- */

static int replay_refused(struct engine *e, int64_t seq, const char *neo4j_message,
                          struct bs_error *err);

/*
 * After a batch was refused with the watermark unmoved: the intents after
 * it, one Neo4j transaction each, until the one Neo4j refuses (recorded by
 * replay_refused) or all are in. 0 when all are in.
 */
static int replay_one_by_one(struct engine *e, struct bs_error *err)
{
    while (e->applied_seq < e->last_seq) {
        struct replay_batch one;
        if (replay_next(e, e->applied_seq, 1, &one, err) != 0)
            return -1;
        struct replay_send s = {
            .neo4j = writer_neo4j(e), .stmts = one.stmts, .first = one.first, .last = one.last};
        replay_send_main(&s);
        enum neo4j_status status = s.status;
        char message[BS_ERROR_MESSAGE_MAX];
        snprintf(message, sizeof message, "%s %s", s.r.code, s.r.message);
        if (replay_wait(e, &s, err) == 0)
            continue;
        if (status != NEO4J_CLIENT_ERROR && status != NEO4J_DATABASE_ERROR)
            return -1; /* transient, or the watermark node is gone */
        int64_t now;
        if (read_watermark(e, &now, err) != 0)
            return -1;
        if (now != e->applied_seq) /* the guard: the watermark moved, after all */
            return bs_error_set(err, BS_NEO4J_ERROR, "the watermark moved"), -1;
        return replay_refused(e, one.first, message, err);
    }
    return 0;
}

/* "create_entity a, delete_relationship r (+3 more)": what a transaction did. */
static void operations_summary(const json_t *ops, char *out, size_t cap)
{
    struct buf b;
    buf_init(&b, cap);
    size_t i, n = json_array_size(ops);
    json_t *op;
    json_array_foreach (ops, i, op) {
        if (i == 3) {
            buf_printf(&b, " (+%zu more)", n - 3);
            break;
        }
        const char *id = json_string_value(json_object_get(op, "id"));
        buf_printf(&b, "%s%s%s%s", i ? ", " : "", json_string_value(json_object_get(op, "op")),
                   id ? " " : "", id ? id : ""); /* a raw statement has no id */
    }
    snprintf(out, cap, "%s", n ? buf_str(&b) : "no operations");
    buf_free(&b);
}

/*
 * Neo4j refused intent seq on replay with the watermark where it belongs:
 * a deterministic refusal (a node of that id made behind the gateway's
 * back, say) that no retry can get past, and later intents must wait for
 * it (they are applied in order). Records it (in the intent row, for
 * GET /v1/transactions and `bistore resolve`), makes the gateway unready
 * with a reason that names it, and logs it once. The writer does not try
 * it again (writer.c) until it is resolved or the gateway restarts.
 */
static int replay_refused(struct engine *e, int64_t seq, const char *neo4j_message,
                          struct bs_error *err)
{
    struct sql_conn *sql = writer_sql(e);
    struct sql_intent in;
    struct bs_error ignored;
    char ops[256] = "?";
    bool known = sql_intent_get_pending(sql, seq, &in, &ignored) == LOOKUP_FOUND;
    if (known)
        operations_summary(in.operations, ops, sizeof ops);
    json_t *refused =
        json_pack("{s:s, s:s}", "code", bs_code_name(BS_NEO4J_ERROR), "message", neo4j_message);
    char *text = refused ? json_text_dumps(refused) : NULL;
    if (!text || sql_intent_set_refused(sql, seq, text, &ignored) != 0)
        log_error("cannot record the refusal of intent %lld", (long long)seq);
    free(text);
    json_decref(refused);
    char reason[REASON_MAX];
    int n = snprintf(reason, sizeof reason,
                     "intent %lld (tx %s: %s) is refused by Neo4j on replay; writes wait for it, "
                     "as intents are applied in order: settle it with `bistore resolve --intent "
                     "%lld --policy sqlite_wins|neo4j_wins` (README: a refused intent). ",
                     (long long)seq, known ? in.tx_id : "?", ops, (long long)seq);
    if (n > 0 && (size_t)n < sizeof reason) { /* Neo4j's words last: what is cut is theirs */
        size_t room = sizeof reason - (size_t)n - 1, len = strlen(neo4j_message);
        len = len < room ? len : room;
        memcpy(reason + n, neo4j_message, len);
        reason[(size_t)n + len] = '\0';
    }
    if (known)
        sql_intent_clear(&in);
    log_error("%s", reason);
    readiness_set_stuck(e, seq, reason);
    return bs_error_set(err, BS_NOT_READY, "%s", reason), -1;
}

/* ---- the watermark and the mark ---- */

/* Reads the watermark of this store (creating it at 0 if missing); its
 * epoch must be this store's (check_epoch). */
static int read_watermark(struct engine *e, int64_t *seq, struct bs_error *err)
{
    json_t *stmts = json_array();
    struct neo4j_result r = {0};
    int rc = -1;
    if (!stmts || cypher_add_watermark_ensure(stmts, e->store_id) != 0) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    } else if (neo4j_autocommit(writer_neo4j(e), stmts, &r) != NEO4J_OK) {
        neo4j_failure(err, &r, "watermark read");
    } else {
        json_t *v = neo4j_cell(&r, 0, 0, 0), *epoch = neo4j_cell(&r, 0, 0, 1);
        if (json_is_integer(v) && json_is_integer(epoch)) {
            *seq = json_integer_value(v);
            e->watermark_epoch = json_integer_value(epoch);
            rc = check_epoch(e, err);
        } else {
            bs_error_set(err, BS_NEO4J_ERROR, "the watermark node has no integer seq");
        }
    }
    neo4j_result_clear(&r);
    json_decref(stmts);
    return rc;
}

/*
 * A watermark at another epoch: a promotion (bistore promote) fenced this
 * store's watermark for another gateway, so this one is deposed and must
 * apply nothing more (its guard would refuse it anyway); or Neo4j is older
 * than this file's promotion. Either way no write: not ready, and why.
 */
static int check_epoch(struct engine *e, struct bs_error *err)
{
    if (e->watermark_epoch == e->epoch)
        return 0;
    if (e->watermark_epoch > e->epoch) {
        pthread_mutex_lock(&e->lock);
        e->fenced = true; /* while this process runs: /readyz and metrics say so */
        pthread_mutex_unlock(&e->lock);
        readiness_set(e, false,
                      "fenced: Neo4j's watermark is at epoch %lld, this gateway's SQLite file at "
                      "epoch %lld: another gateway was promoted, and this one takes no writes "
                      "(restore from the new primary's replica to rejoin)",
                      (long long)e->watermark_epoch, (long long)e->epoch);
    } else {
        readiness_set(e, false,
                      "Neo4j's watermark is at epoch %lld, behind this SQLite file's epoch %lld: "
                      "Neo4j is older than this file's promotion; restore the matching Neo4j or "
                      "run bistore promote again",
                      (long long)e->watermark_epoch, (long long)e->epoch);
    }
    return bs_error_set(err, BS_NOT_READY, "fenced: the watermark's epoch is %lld, ours %lld",
                        (long long)e->watermark_epoch, (long long)e->epoch),
           -1;
}

bool replay_fenced(struct engine *e)
{
    int64_t seq;
    struct bs_error err;
    return read_watermark(e, &seq, &err) != 0 && e->watermark_epoch != e->epoch;
}

int mark_applied(struct engine *e, int64_t upto, const char *at, struct bs_error *err)
{
    char now[TIMESTAMP_LEN];
    time_now_rfc3339(now);
    if (at)
        snprintf(now, sizeof now, "%s", at);
    struct sql_conn *sql = writer_sql(e);
    bool alone = !sql_in_transaction(sql); /* else it counts once that commits */
    if (sql_intent_mark_applied(sql, upto, now, err) != 0)
        return -1;
    if (alone && upto > e->marked_seq)
        e->marked_seq = upto;
    return 0;
}

bool mark_applied_or_warn(struct engine *e, int64_t upto, const char *at)
{
    struct bs_error err;
    if (mark_applied(e, upto, at, &err) == 0)
        return true;
    log_warn("intents up to %lld applied but not marked: %s", (long long)upto, err.message);
    return false;
}
