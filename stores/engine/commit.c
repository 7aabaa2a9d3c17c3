/*
 * The commit protocol (DESIGN.md section 4), run by the writer thread only.
 *
 *   plan      the handler validated the request and resolved refs
 *   sqlite    BEGIN IMMEDIATE; apply rows; INSERT intent(seq, statements)
 *   neo4j     open an empty tx (recorded in the orphan log), run
 *             [guarded watermark prev -> seq, data statements]
 *             -- any error: DELETE the tx, ROLLBACK sqlite, answer 4xx/5xx
 *   sqlite    COMMIT                                  <- the commit point
 *   neo4j     commit the open tx
 *             -- failure or timeout: the intent stays pending; it is
 *                replayed (exactly once, by the watermark) before the next
 *                write and by recovery
 *   sqlite    mark the intent applied
 *
 * Invariants (DESIGN.md section 3) held here:
 *  - Neo4j is committed only after SQLite's commit, so no state of a failed
 *    transaction is visible anywhere;
 *  - every Neo4j transaction starts with the guarded watermark, so an
 *    intent is applied once even when a request given up on arrives late;
 *  - intents are applied in seq order: a new transaction starts only when
 *    nothing is pending (applied_seq == last_seq).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/background.h"
#include "common/buf.h"
#include "common/log.h"
#include "stores/engine/fault.h"
#include "stores/engine/internal.h"
#include "stores/model/canon.h"

static enum bs_code neo4j_failure(struct bs_error *err, const struct neo4j_result *r,
                                  const char *what)
{
    switch (r->status) {
    case NEO4J_UNAVAILABLE:
    case NEO4J_TX_GONE:
        return bs_error_set(err, BS_NEO4J_UNAVAILABLE, "Neo4j did not answer (%s): %s", what,
                            r->message);
    case NEO4J_TRANSIENT:
        return bs_error_set(err, BS_NEO4J_UNAVAILABLE,
                            "Neo4j reported a transient error (%s), retry: %s %s", what, r->code,
                            r->message);
    default:
        return bs_error_set(err, BS_NEO4J_ERROR, "Neo4j rejected the %s: %s %s", what, r->code,
                            r->message);
    }
}

/* ---- the watermark ---- */

/* Reads the watermark of this store (creating it at 0 if missing). */
static int read_watermark(struct bistore *bs, int64_t *seq, struct bs_error *err)
{
    json_t *stmts = json_array();
    struct neo4j_result r = {0};
    int rc = -1;
    if (!stmts || cypher_add_watermark_ensure(stmts, bs->store_id) != 0) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    } else if (neo4j_autocommit(bs->neo4j, stmts, &r) != NEO4J_OK) {
        neo4j_failure(err, &r, "watermark read");
    } else {
        json_t *v = neo4j_cell(&r, 0, 0, 0);
        if (json_is_integer(v)) {
            *seq = json_integer_value(v);
            rc = 0;
        } else {
            bs_error_set(err, BS_NEO4J_ERROR, "the watermark node has no integer seq");
        }
    }
    neo4j_result_clear(&r);
    json_decref(stmts);
    return rc;
}

/* ---- replay ---- */

/* Marks the intents up to seq `upto` applied, now (sql_intent_mark_applied). */
static int mark_applied(struct bistore *bs, int64_t upto, struct bs_error *err)
{
    char now[TIMESTAMP_LEN];
    time_now_rfc3339(now);
    return sql_intent_mark_applied(bs->wconn, upto, now, err);
}

/* Intents replayed together in one Neo4j transaction, at most. */
#define REPLAY_BATCH_INTENTS 2000
#define REPLAY_BATCH_BYTES ((size_t)8 << 20)

struct replay_ctx {
    struct bistore *bs;
    struct bs_error *err;
    json_t *stmts; /* the batch: guard first, then every intent's statements */
    int64_t first, last;
    size_t bytes;
    int failed;
};

/*
 * Appends an intent's statements to the batch, merging each into the one
 * before it when they share a template (creates of one type from
 * consecutive intents): one statement instead of hundreds.
 */
static int replay_append(json_t *batch, json_t *statements)
{
    size_t i;
    json_t *stmt;
    bool merged;
    json_array_foreach (statements, i, stmt)
        if (cypher_append_merged(batch, 1, stmt, &merged) != 0) /* [0] is the guard */
            return -1;
    return 0;
}

/* Collects one pending intent into the batch. */
static int replay_collect(int64_t seq, const char *statements, void *arg)
{
    struct replay_ctx *ctx = arg;
    if (ctx->last && (seq != ctx->last + 1 || ctx->bytes > REPLAY_BATCH_BYTES))
        return 1; /* the batch is full (or the log has a gap): stop here */
    json_t *data = json_loads(statements, 0, NULL);
    if (!data || replay_append(ctx->stmts, data) != 0) {
        json_decref(data);
        bs_error_set(ctx->err, BS_STORAGE_ERROR, "intent %lld unreadable", (long long)seq);
        ctx->failed = 1;
        return -1;
    }
    json_decref(data);
    if (!ctx->first)
        ctx->first = seq;
    ctx->last = seq;
    ctx->bytes += strlen(statements);
    return 0;
}

/* Collects the next batch of pending intents, after seq `after`, behind
 * its guard (from `after` to the batch's last seq). 0, or -1 with err set. */
static int replay_next(struct bistore *bs, int64_t after, int limit, struct replay_ctx *ctx,
                       struct bs_error *err)
{
    *ctx = (struct replay_ctx){bs, err, json_array(), 0, 0, 0, 0};
    if (!ctx->stmts || cypher_add_watermark_guard(ctx->stmts, bs->store_id, after, 0) != 0) {
        json_decref(ctx->stmts);
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    }
    int rc = sql_intent_pending(bs->wconn, after, limit, replay_collect, ctx, err);
    if (ctx->failed || (rc != 0 && ctx->last == 0)) {
        json_decref(ctx->stmts);
        return -1;
    }
    if (ctx->first != after + 1) {
        json_decref(ctx->stmts);
        return bs_error_set(err, BS_STORAGE_ERROR, "the intent log has a gap after seq %lld",
                            (long long)after),
               -1;
    }
    json_t *params = json_object_get(json_array_get(ctx->stmts, 0), "parameters");
    if (json_object_set_new(params, "seq", json_integer(ctx->last)) != 0) {
        json_decref(ctx->stmts);
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    }
    return 0;
}

/* A replay batch on its way to Neo4j, in a thread of its own. */
struct replay_send {
    struct bistore *bs;
    json_t *stmts;
    int64_t first, last;
    struct background call;
    struct neo4j_result r;
    enum neo4j_status status;
};

static void *replay_send_main(void *arg)
{
    struct replay_send *s = arg;
    s->status = neo4j_autocommit(s->bs->neo4j, s->stmts, &s->r);
    return NULL;
}

/* Waits for the batch in flight; when Neo4j took it, it is applied (and marked). */
static int replay_wait(struct bistore *bs, struct replay_send *s, struct bs_error *err)
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
        bs_error_set(err, BS_NEO4J_ERROR, "the watermark node of store %s is missing",
                     bs->store_id);
        rc = -1;
    }
    neo4j_result_clear(&s->r);
    if (rc != 0)
        return -1;
    log_info("replayed intents %lld..%lld", (long long)s->first, (long long)s->last);
    bs->applied_seq = s->last;
    return mark_applied(bs, s->last, err);
}

/*
 * Replays the pending intents after `watermark` in batches: one Neo4j
 * transaction per batch, guarded from the batch's first seq - 1 to its last,
 * so each intent is applied once and in order. The next batch is read and
 * built while Neo4j runs the one before; it is sent only once that one is
 * in. 0 when all are applied; -1 on failure (a guard failure means the
 * watermark moved under us: the caller reads it again).
 */
static int replay_batches(struct bistore *bs, int64_t watermark, struct bs_error *err)
{
    struct replay_send s = {.bs = bs};
    bool in_flight = false;
    int64_t collected = watermark;
    int rc = 0;
    while (rc == 0 && (in_flight || collected < bs->last_seq)) {
        struct replay_ctx next = {0};
        bool have = collected < bs->last_seq;
        if (have && replay_next(bs, collected, REPLAY_BATCH_INTENTS, &next, err) != 0) {
            have = false;
            rc = -1;
        }
        if (in_flight) {
            in_flight = false;
            struct bs_error werr;
            if (replay_wait(bs, &s, rc == 0 ? err : &werr) != 0)
                rc = -1;
        }
        if (rc != 0) {
            if (have)
                json_decref(next.stmts);
            break;
        }
        if (have) {
            s = (struct replay_send){
                .bs = bs, .stmts = next.stmts, .first = next.first, .last = next.last};
            background_start(&s.call, replay_send_main, &s);
            in_flight = true;
            collected = next.last;
        }
    }
    return rc;
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
        buf_printf(&b, "%s%s %s", i ? ", " : "", json_string_value(json_object_get(op, "op")),
                   json_string_value(json_object_get(op, "id")));
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
 * it again (writer_prepare) until it is resolved or the gateway restarts.
 */
static int replay_refused(struct bistore *bs, int64_t seq, const char *neo4j_message,
                          struct bs_error *err)
{
    struct sql_intent in;
    struct bs_error ignored;
    char ops[256] = "?";
    bool known = sql_intent_get_pending(bs->wconn, seq, &in, &ignored) == 0;
    if (known)
        operations_summary(in.operations, ops, sizeof ops);
    json_t *refused =
        json_pack("{s:s, s:s}", "code", bs_code_name(BS_NEO4J_ERROR), "message", neo4j_message);
    char *text = refused ? json_text_dumps(refused) : NULL;
    if (!text || sql_intent_set_refused(bs->wconn, seq, text, &ignored) != 0)
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
    writer_set_stuck(bs, seq, reason);
    return bs_error_set(err, BS_NOT_READY, "%s", reason), -1;
}

/*
 * After a batch was refused with the watermark unmoved: the intents after
 * it, one Neo4j transaction each, until the one Neo4j refuses (recorded by
 * replay_refused) or all are in. 0 when all are in.
 */
static int replay_one_by_one(struct bistore *bs, struct bs_error *err)
{
    while (bs->applied_seq < bs->last_seq) {
        struct replay_ctx one;
        if (replay_next(bs, bs->applied_seq, 1, &one, err) != 0)
            return -1;
        struct replay_send s = {.bs = bs, .stmts = one.stmts, .first = one.first, .last = one.last};
        replay_send_main(&s);
        enum neo4j_status status = s.status;
        char message[BS_ERROR_MESSAGE_MAX];
        snprintf(message, sizeof message, "%s %s", s.r.code, s.r.message);
        if (replay_wait(bs, &s, err) == 0)
            continue;
        if (status != NEO4J_CLIENT_ERROR && status != NEO4J_DATABASE_ERROR)
            return -1; /* transient, or the watermark node is gone */
        int64_t now;
        if (read_watermark(bs, &now, err) != 0)
            return -1;
        if (now != bs->applied_seq) /* the guard: the watermark moved, after all */
            return bs_error_set(err, BS_NEO4J_ERROR, "the watermark moved"), -1;
        return replay_refused(bs, one.first, message, err);
    }
    return 0;
}

/*
 * Brings Neo4j up to SQLite: rolls back recorded open transactions, reads
 * the watermark, marks what Neo4j has as applied and replays the rest in
 * order. Returns 0 when nothing is pending any more.
 */
int commit_replay_pending(struct bistore *bs, struct bs_error *err)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        if (orphans_rollback_all(&bs->orphans, bs->neo4j) != 0)
            return bs_error_set(err, BS_NEO4J_UNAVAILABLE,
                                "Neo4j did not answer the rollback of an open transaction"),
                   -1;
        int64_t watermark;
        if (read_watermark(bs, &watermark, err) != 0)
            return -1;
        if (watermark > bs->last_seq) {
            writer_set_ready(bs, false,
                             "Neo4j's watermark (%lld) is ahead of SQLite's intent log "
                             "(%lld): this SQLite file is older than the Neo4j it is paired "
                             "with; restore the matching file or reconcile",
                             (long long)watermark, (long long)bs->last_seq);
            return bs_error_set(err, BS_NEO4J_UNAVAILABLE, "%s", "stores out of step"), -1;
        }
        bs->applied_seq = watermark;
        if (mark_applied(bs, watermark, err) != 0)
            return -1;
        if (watermark == bs->last_seq)
            return 0;
        if (replay_batches(bs, watermark, err) == 0)
            return 0;
        if (err->code != BS_NEO4J_ERROR)
            return -1; /* transient (Neo4j away, a transient error): retried on the timer */
        /* Neo4j refused a batch: either the guard (the watermark moved under
         * us: read it again) or a statement, deterministically. */
        int64_t now;
        if (read_watermark(bs, &now, err) != 0)
            return -1;
        if (now == bs->applied_seq)
            return replay_one_by_one(bs, err);
    }
    return bs_error_set(err, BS_NEO4J_ERROR,
                        "Neo4j's watermark keeps moving under this gateway: is a second "
                        "gateway writing to the same stores?"),
           -1;
}

/*
 * Start-up (and after Neo4j came back): schema, the watermark, pending
 * intents. The Entity id constraint is a schema statement, so it runs in
 * its own transaction.
 */
int commit_recover(struct bistore *bs, struct bs_error *err)
{
    char version[64] = "";
    if (!neo4j_ping(bs->neo4j, version, sizeof version))
        return bs_error_set(err, BS_NEO4J_UNAVAILABLE, "Neo4j at %s does not answer",
                            bs->neo4j_url),
               -1;
    json_t *stmts = json_array();
    struct neo4j_result r = {0};
    if (!stmts || neo4j_add_statement(stmts, cypher_entity_constraint(), NULL) != 0) {
        json_decref(stmts);
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    }
    enum neo4j_status st = neo4j_autocommit(bs->neo4j, stmts, &r);
    json_decref(stmts);
    if (st != NEO4J_OK) {
        neo4j_failure(err, &r, "Entity id constraint");
        neo4j_result_clear(&r);
        return -1;
    }
    neo4j_result_clear(&r);
    if (sql_intent_max_seq(bs->wconn, &bs->last_seq, err) != 0)
        return -1;
    if (commit_replay_pending(bs, err) != 0)
        return -1;
    log_info("recovered: Neo4j %s, intent log at seq %lld, nothing pending", version,
             (long long)bs->last_seq);
    return 0;
}

/* ---- one client transaction ---- */

/* Creates the uniqueness constraint of each relationship type new to us. */
static int ensure_rel_constraints(struct bistore *bs, struct apply_state *st, struct bs_error *err)
{
    for (size_t i = 0; i < st->n_new_rel_types; i++) {
        char text[256];
        json_t *stmts = json_array();
        struct neo4j_result r = {0};
        int rc = -1;
        if (stmts && cypher_relationship_constraint(st->new_rel_types[i], text, sizeof text) == 0 &&
            neo4j_add_statement(stmts, text, NULL) == 0) {
            if (neo4j_autocommit(bs->neo4j, stmts, &r) == NEO4J_OK)
                rc = 0;
            else
                neo4j_failure(err, &r, "relationship constraint");
        } else {
            bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        }
        neo4j_result_clear(&r);
        json_decref(stmts);
        if (rc != 0)
            return -1;
        if (bs->n_rel_types < REL_TYPES_MAX) {
            char *copy = strdup(st->new_rel_types[i]);
            if (copy)
                bs->rel_types[bs->n_rel_types++] = copy;
        }
    }
    return 0;
}

/* An idempotent repeat: the stored result, or a conflict. 1: key unknown. */
static int idempotency_check(struct bistore *bs, struct bs_txn *txn, struct bistore_outcome *out)
{
    char hash[17], tx_id[UUID_STR_LEN];
    json_t *result = NULL;
    int rc =
        sql_idem_get(bs->wconn, txn->idem_key, txn->idem_scope, hash, &result, tx_id, &out->err);
    if (rc != 0)
        return rc;
    if (strcmp(hash, txn->idem_body_hash) != 0) {
        json_decref(result);
        bs_error_set(&out->err, BS_IDEMPOTENCY_CONFLICT,
                     "Idempotency-Key was used with a different body");
        return -1;
    }
    out->result = result;
    out->replayed = true;
    out->neo4j_applied = true;
    json_t *tx = NULL;
    struct bs_error ignored;
    if (sql_tx_get(bs->wconn, tx_id, &tx, &ignored) == 0)
        out->neo4j_applied =
            strcmp(json_string_value(json_object_get(tx, "state")), "applied") == 0;
    json_decref(tx);
    return 0;
}

/* Records a transaction that reached the stores and was rolled back. */
static void record_aborted(struct bistore *bs, const char *tx_id, struct bs_txn *txn,
                           const struct bs_error *failure)
{
    json_t *ops = json_array();
    for (size_t i = 0; ops && i < txn->n_ops; i++)
        json_array_append_new(ops, json_pack("{s:s, s:s}", "op", op_kind_name(txn->ops[i].kind),
                                             "id", txn->ops[i].id));
    json_t *e =
        json_pack("{s:s, s:s}", "code", bs_code_name(failure->code), "message", failure->message);
    if (e && failure->field[0])
        json_object_set_new(e, "field", json_string(failure->field));
    if (e && failure->op_index >= 0)
        json_object_set_new(e, "operation_index", json_integer(failure->op_index));
    char *ops_text = ops ? json_text_dumps(ops) : NULL;
    char *e_text = e ? json_text_dumps(e) : NULL;
    char *prov = txn->provenance ? json_text_dumps(txn->provenance) : NULL;
    char now[TIMESTAMP_LEN];
    time_now_rfc3339(now);
    struct bs_error err;
    bs_error_clear(&err);
    if (sql_tx_insert(bs->wconn, tx_id, -1, "aborted", now, ops_text, e_text, prov, &err) != 0)
        log_error("cannot record aborted transaction %s: %s", tx_id, err.message);
    free(ops_text);
    free(e_text);
    free(prov);
    json_decref(ops);
    json_decref(e);
}

/* Writes the intent, the audit row and the idempotency row of the transaction. */
static int log_intent(struct bistore *bs, struct bs_txn *txn, const char *tx_id, int64_t seq,
                      struct apply_state *st, const char *stmts_text, json_t *result,
                      struct bs_error *err)
{
    char *stmts = stmts_text ? NULL : json_text_dumps(st->cypher.statements);
    char *ops = json_text_dumps(st->results);
    char *prov = txn->provenance ? json_text_dumps(txn->provenance) : NULL;
    char *res = txn->idem_key ? json_text_dumps(result) : NULL;
    int rc = -1;
    if ((!stmts && !stmts_text) || !ops || (txn->provenance && !prov) || (txn->idem_key && !res))
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    else if (sql_intent_insert(bs->wconn, seq, tx_id, stmts_text ? stmts_text : stmts, st->now,
                               err) == 0 &&
             sql_tx_insert(bs->wconn, tx_id, seq, "committed", st->now, ops, NULL, prov, err) ==
                 0 &&
             (!txn->idem_key ||
              sql_idem_insert(bs->wconn, txn->idem_key, txn->idem_scope, txn->idem_body_hash, res,
                              tx_id, st->now, err) == 0))
        rc = 0;
    free(stmts);
    free(ops);
    free(prov);
    free(res);
    return rc;
}

/* DELETEs the Neo4j transaction (best effort; a failure leaves it recorded). */
static void neo4j_abandon(struct bistore *bs, const char *tx_path)
{
    struct neo4j_result r = {0};
    enum neo4j_status st = neo4j_rollback(bs->neo4j, tx_path, &r);
    if (st == NEO4J_OK || st == NEO4J_TX_GONE || st == NEO4J_CLIENT_ERROR)
        orphans_remove(&bs->orphans, tx_path);
    neo4j_result_clear(&r);
}

/* A Neo4j transaction for the next group: the spare (if allowed), or a new one. */
static enum neo4j_status take_transaction(struct bistore *bs, char tx_path[NEO4J_TX_PATH_MAX],
                                          bool allow_spare, struct neo4j_result *r, bool *was_spare)
{
    *was_spare = allow_spare && spare_take(&bs->spare, tx_path);
    enum neo4j_status st = *was_spare ? NEO4J_OK : neo4j_begin(bs->neo4j, tx_path, r);
    if (st == NEO4J_OK && orphans_add(&bs->orphans, tx_path) != 0) {
        neo4j_abandon(bs, tx_path);
        return NEO4J_DATABASE_ERROR;
    }
    return st;
}

/* ---- a group of client transactions ---- */

/* One transaction of a group. */
struct member {
    struct commit_item *item;
    struct apply_state st;
    char tx_id[UUID_STR_LEN];
    bool in_txn;       /* applied inside the group's SQLite transaction */
    int64_t seq;       /* its intent; 0 when it is not in the group's Neo4j tx */
    size_t first_stmt; /* its first data statement in the group's list */
    json_t *result;
    struct pipeline *pipe; /* a large transaction's, or NULL */
};

struct pipeline;
static int pipeline_finish(struct pipeline *p, const struct apply_state *st, struct bs_error *err);
static const char *pipeline_statements_text(struct pipeline *p);

/* Applies one member in its own SAVEPOINT; false when it left the group. */
static bool apply_member(struct bistore *bs, struct member *m, int64_t seq)
{
    struct bs_txn *txn = m->item->txn;
    struct bistore_outcome *out = m->item->out;
    struct bs_error *err = &out->err;
    BS_ASSERT(sql_in_transaction(bs->wconn)); /* else SAVEPOINT would begin one of its own */
    if (sql_savepoint(bs->wconn, err) != 0)
        return false;
    if (txn->idem_key && idempotency_check(bs, txn, out) <= 0) {
        sql_savepoint_rollback(bs->wconn);
        return false; /* a replayed result, or a conflict */
    }
    int rc =
        txn->apply ? txn->apply(bs, txn->apply_ctx, &m->st, err) : apply_txn(bs, txn, &m->st, err);
    if (rc == 0 && m->pipe) /* the last statements, and every answer checked */
        rc = pipeline_finish(m->pipe, &m->st, err);
    if (rc == 0) {
        m->result = json_pack("{s:s, s:O, s:O}", "tx_id", m->tx_id, "results", m->st.results,
                              "records", m->st.records);
        const char *text = m->pipe ? pipeline_statements_text(m->pipe) : NULL;
        rc = m->result ? log_intent(bs, txn, m->tx_id, seq, &m->st, text, m->result, err)
                       : (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    }
    if (rc != 0) {
        sql_savepoint_rollback(bs->wconn);
        if (err->code != BS_STORAGE_ERROR && err->code != BS_NEO4J_UNAVAILABLE)
            record_aborted(bs, m->tx_id, txn, err); /* inside the group's transaction */
        return false;
    }
    if (sql_savepoint_release(bs->wconn, err) != 0)
        return false;
    m->seq = seq;
    return true;
}

/* The member and operation a group statement came from, for an error. */
static struct member *statement_owner(struct member *ms, size_t n, long stmt, long *op_index)
{
    struct member *owner = NULL;
    for (size_t i = 0; i < n; i++)
        if (ms[i].seq && (long)ms[i].first_stmt <= stmt)
            owner = &ms[i];
    *op_index = -1;
    if (owner) {
        size_t local = (size_t)stmt - owner->first_stmt;
        if (local < owner->st.n_stmt_first_op)
            *op_index = (long)owner->st.stmt_first_op[local];
    }
    return owner;
}

/*
 * Appends the members' data statements to the group's list (after the
 * guard) and sets want[i], the rows statement i must touch. With `merge`, a
 * statement with the template of the one before it (creates of one type by
 * consecutive members) joins it: one UNWIND for the burst instead of one per
 * member, which must touch the sum of their rows. Every row of these
 * templates touches at most one node or relationship (ids are unique), so
 * the sum holds only when each row did.
 */
static int group_statements(struct member *ms, size_t n, bool merge, json_t *stmts, size_t *want)
{
    for (size_t i = 0; i < n; i++) {
        if (!ms[i].seq)
            continue;
        ms[i].first_stmt = json_array_size(stmts) - 1;
        for (size_t j = 0; j < cypher_batch_count(&ms[i].st.cypher); j++) {
            json_t *stmt = json_array_get(ms[i].st.cypher.statements, j);
            size_t rows = ms[i].st.cypher.expected[j];
            bool merged = false;
            if ((merge ? cypher_append_merged(stmts, 1, stmt, &merged)
                       : json_array_append(stmts, stmt)) != 0)
                return -1;
            size_t at = json_array_size(stmts) - 2;
            if (!merged)
                want[at] = rows;
            else if (want[at] != CYPHER_ANY_COUNT)
                want[at] = rows == CYPHER_ANY_COUNT ? rows : want[at] + rows;
        }
    }
    return 0;
}

/* True (with err set) when a statement's count v is not the `want` rows SQLite touched. */
static bool count_differs(json_t *v, size_t want, struct bs_error *err)
{
    if (want == CYPHER_ANY_COUNT || (json_is_integer(v) && (size_t)json_integer_value(v) == want))
        return false;
    bs_error_set(err, BS_NEO4J_ERROR,
                 "Neo4j lacks a node or relationship that SQLite has (touched %lld of %zu "
                 "rows): the stores disagree; run a reconciliation",
                 (long long)json_integer_value(v), want);
    return true;
}

/* True when the watermark node of this store exists (a read, for an error message). */
static bool watermark_present(struct bistore *bs)
{
    json_t *stmts = json_array();
    struct neo4j_result r = {0};
    bool present = true; /* when unsure, blame the rows */
    if (stmts && cypher_add_watermark_count(stmts, bs->store_id) == 0 &&
        neo4j_autocommit(bs->neo4j, stmts, &r) == NEO4J_OK)
        present = json_integer_value(neo4j_cell(&r, 0, 0, 0)) > 0;
    neo4j_result_clear(&r);
    json_decref(stmts);
    return present;
}

/*
 * Checks every data statement touched as many rows as SQLite did. With
 * `joined`, the guard is part of the first statement (cypher_join_guard):
 * no row from it means no watermark node or no row of ours.
 */
static int check_group_counts(struct bistore *bs, const size_t *want, const struct neo4j_result *r,
                              size_t n_stmts, bool joined, long *bad_stmt, struct bs_error *err)
{
    *bad_stmt = -1;
    if (!joined && neo4j_row_count(r, 0) != 1)
        return bs_error_set(err, BS_NEO4J_ERROR, "the watermark node of store %s is missing",
                            bs->store_id),
               -1;
    size_t base = joined ? 0 : 1;
    for (size_t i = 0; i < n_stmts; i++) {
        if (count_differs(neo4j_cell(r, base + i, 0, 0), want[i], err)) {
            if (joined && json_integer_value(neo4j_cell(r, 0, 0, 0)) == 0 && !watermark_present(bs))
                bs_error_set(err, BS_NEO4J_ERROR, "the watermark node of store %s is missing",
                             bs->store_id);
            *bad_stmt = (long)i;
            return -1;
        }
    }
    return 0;
}

/* The guard refused the transaction: the watermark is not where we expect.
 * Only the guard divides (1/0), so the code says it wherever Neo4j puts the
 * failing index (it counts the failing statement's partial result). */
static bool guard_refused(const struct neo4j_result *r)
{
    return strstr(r->code, "ArithmeticError") != NULL;
}

/* A Neo4j rejection of our data statements, as the error of the member. */
static void statement_failure(const struct neo4j_result *r, long op_index, struct bs_error *err)
{
    err->op_index = op_index;
    if (strstr(r->code, "ConstraintValidationFailed")) {
        bool rel = strstr(r->message, "relationship") || strstr(r->message, "Relationship");
        bs_error_set(err, rel ? BS_RELATIONSHIP_EXISTS : BS_ENTITY_EXISTS,
                     "Neo4j already holds this id (the stores disagree; run a "
                     "reconciliation): %s",
                     r->message);
        return;
    }
    if (guard_refused(r)) {
        bs_error_set(err, BS_NEO4J_UNAVAILABLE,
                     "Neo4j's watermark moved under this gateway: is a second gateway "
                     "writing to the same stores? Recovering");
        return;
    }
    neo4j_failure(err, r, "transaction");
}

/*
 * The group's transaction is rolled back: every member that was applied in
 * it gets err, including those that left early. Their answers (an
 * idempotent repeat, a 404/409/412) may have been computed from rows of
 * members that are now gone, so none of them is final (invariant 6).
 */
static void fail_members(struct member *ms, size_t n, const struct bs_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!ms[i].in_txn)
            continue;
        struct bistore_outcome *out = ms[i].item->out;
        json_decref(out->result);
        out->result = NULL;
        out->replayed = false;
        out->err = *err;
    }
}

/*
 * From SQLite's commit (the commit point) on, for the members in Neo4j
 * transaction tx_path whose statements all passed: COMMIT, then Neo4j's
 * commit (on failure the intents stay pending and are replayed), then the
 * outcomes.
 */
static void commit_point(struct bistore *bs, struct member *ms, size_t n, size_t members,
                         int64_t seq, const char *tx_path)
{
    struct bs_error gerr;
    bs_error_clear(&gerr);
    struct neo4j_result r = {0};
    if (sql_commit(bs->wconn, &gerr) != 0) {
        /* Not committed, or (outcome_unknown) maybe durable after the next
         * start, when WAL recovery brings it back with its intent, which is
         * then replayed; nobody can tell now, an Idempotency-Key retry will.
         * Either way Neo4j must not have it yet. */
        neo4j_abandon(bs, tx_path);
        fail_members(ms, n, &gerr);
        /* recovery reads the intent log and the watermark again */
        writer_set_ready(bs, false, "SQLite's commit failed: %s", gerr.message);
        return;
    }
    bs->last_seq = seq;
    fault_hit(FAULT_AFTER_SQLITE_COMMIT);

    /* neo4j: commit; on failure the intents stay pending */
    bool applied = neo4j_commit(bs->neo4j, tx_path, NULL, &r) == NEO4J_OK;
    if (applied) {
        orphans_remove(&bs->orphans, tx_path);
        fault_hit(FAULT_AFTER_NEO4J_COMMIT);
        bs->applied_seq = seq;
        struct bs_error mark_err;
        if (mark_applied(bs, seq, &mark_err) != 0) /* the watermark stays the truth */
            log_warn("intents up to %lld applied but not marked: %s", (long long)seq,
                     mark_err.message);
    } else {
        log_warn("intents %lld..%lld committed; Neo4j commit failed (%s): pending",
                 (long long)(bs->last_seq - (int64_t)members + 1), (long long)seq, r.message);
    }
    neo4j_result_clear(&r);
    for (size_t i = 0; i < n; i++) {
        if (!ms[i].seq)
            continue;
        ms[i].item->out->result = ms[i].result;
        ms[i].item->out->neo4j_applied = applied;
        ms[i].result = NULL;
    }
}

/*
 * The protocol for a group (one transaction each in SQLite SAVEPOINTs, one
 * SQLite transaction, one Neo4j transaction, one fsync). A member that
 * fails in SQLite (a conflict, a missing entity) leaves the group alone.
 * Returns 1 when Neo4j refused the group's statements and more than one
 * member was in it: the caller retries them one by one, so one bad request
 * cannot fail its neighbours.
 */
static int run_group(struct bistore *bs, struct commit_item *items, size_t n)
{
    BS_ASSERT(bs->applied_seq == bs->last_seq); /* nothing pending: order holds */
    struct member *ms = calloc(n, sizeof *ms);
    struct bs_error gerr;
    bs_error_clear(&gerr);
    int retry = 0;
    if (!ms) {
        for (size_t i = 0; i < n; i++)
            bs_error_set(&items[i].out->err, BS_STORAGE_ERROR, "out of memory");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        ms[i].item = &items[i];
        ids_uuid7(ms[i].tx_id);
        if (apply_init(&ms[i].st) != 0)
            bs_error_set(&items[i].out->err, BS_STORAGE_ERROR, "out of memory");
    }
    char tx_path[NEO4J_TX_PATH_MAX] = "";
    struct neo4j_result r = {0};
    json_t *stmts = NULL;
    size_t *want = NULL;
    neo4j_set_request_id(bs->neo4j, items[0].rid);

    /* sqlite: BEGIN IMMEDIATE; each member in a SAVEPOINT; intents */
    if (sql_begin(bs->wconn, &gerr) != 0) {
        for (size_t i = 0; i < n; i++)
            items[i].out->err = gerr;
        goto done;
    }
    int64_t seq = bs->last_seq;
    size_t members = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].out->err.code != BS_OK)
            continue;
        ms[i].in_txn = true;
        if (apply_member(bs, &ms[i], seq + 1)) {
            seq++;
            members++;
        } else if (!sql_in_transaction(bs->wconn)) {
            /* SQLite rolled the group's transaction back by itself (a full
             * disk, an I/O error, no memory): every member applied so far
             * is gone with it, and nothing reached Neo4j. */
            gerr = items[i].out->err;
            log_error("group commit: SQLite rolled back the group's transaction: %s", gerr.message);
            for (size_t j = i + 1; j < n; j++) /* not applied yet: they fail with the group */
                ms[j].in_txn = items[j].out->err.code == BS_OK;
            fail_members(ms, n, &gerr);
            goto done;
        }
    }
    fault_hit(FAULT_AFTER_BEGIN);
    if (n > 1 && members == 0)
        log_debug("group commit: %zu transactions, none to Neo4j", n);
    if (members == 0) {               /* only aborted records (or idempotent repeats) to keep */
        sql_commit(bs->wconn, &gerr); /* on failure rolled back: nothing to tell anyone */
        goto done;
    }

    /* neo4j: a transaction (recorded), the guarded watermark, all data */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ms[i].seq && ensure_rel_constraints(bs, &ms[i].st, &gerr) != 0) {
            if (n > 1 && gerr.code == BS_NEO4J_ERROR) { /* refused: only its own member fails */
                retry = 1;
                goto rollback_quiet;
            }
            goto rollback;
        }
        total += ms[i].seq ? cypher_batch_count(&ms[i].st.cypher) : 0;
    }
    stmts = json_array();
    want = malloc((total + 1) * sizeof *want);
    if (!stmts || !want ||
        cypher_add_watermark_guard(stmts, bs->store_id, bs->last_seq, seq) != 0 ||
        group_statements(ms, n, members > 1, stmts, want) != 0) {
        bs_error_set(&gerr, BS_STORAGE_ERROR, "out of memory");
        goto rollback;
    }
    size_t n_data = json_array_size(stmts) - 1;
    if (n > 1)
        log_debug("group commit: %zu transactions, %zu to Neo4j in %zu statements", n, members,
                  n_data);
    /* one data statement: it travels joined to the guard (one statement fewer) */
    int joined = cypher_join_guard(stmts);
    if (joined < 0) {
        bs_error_set(&gerr, BS_STORAGE_ERROR, "out of memory");
        goto rollback;
    }
    bool was_spare;
    enum neo4j_status ns = take_transaction(bs, tx_path, true, &r, &was_spare);
    if (ns == NEO4J_OK) {
        ns = neo4j_run(bs->neo4j, tx_path, stmts, &r);
        if (ns == NEO4J_TX_GONE && was_spare) { /* the spare expired: once more, fresh */
            orphans_remove(&bs->orphans, tx_path);
            ns = take_transaction(bs, tx_path, false, &r, &was_spare);
            if (ns == NEO4J_OK)
                ns = neo4j_run(bs->neo4j, tx_path, stmts, &r);
        }
    } else {
        tx_path[0] = '\0';
    }
    long bad_stmt = -1;
    if (ns != NEO4J_OK) {
        if (tx_path[0])
            neo4j_abandon(bs, tx_path);
        /* the data statement Neo4j refused, or -1: the guard (or no statement) */
        long data_stmt = r.status != NEO4J_CLIENT_ERROR || guard_refused(&r) ? -1
                         : joined                                            ? r.statement_index
                                  : r.statement_index - 1;
        if (data_stmt >= 0 && n > 1) {
            retry = 1;
            goto rollback_quiet;
        }
        if (data_stmt >= 0) {
            long op_index;
            struct member *owner = statement_owner(ms, n, data_stmt, &op_index);
            statement_failure(&r, op_index, &gerr);
            sql_rollback(bs->wconn);
            if (owner) {
                owner->item->out->err = gerr;
                record_aborted(bs, owner->tx_id, owner->item->txn, &gerr);
                owner->seq = 0;
            }
            goto done;
        }
        statement_failure(&r, -1, &gerr);
        if (gerr.code == BS_NEO4J_UNAVAILABLE)
            writer_set_ready(bs, false, "%s", gerr.message);
        goto rollback;
    }
    if (check_group_counts(bs, want, &r, n_data, joined == 1, &bad_stmt, &gerr) != 0) {
        neo4j_abandon(bs, tx_path);
        if (bad_stmt >= 0 && n > 1) {
            retry = 1;
            goto rollback_quiet;
        }
        goto rollback;
    }
    fault_hit(FAULT_AFTER_NEO4J_STATEMENTS);

    commit_point(bs, ms, n, members, seq, tx_path);
    goto done;

rollback:
    fail_members(ms, n, &gerr);
rollback_quiet:
    sql_rollback(bs->wconn);
    /* A Neo4j transaction whose DELETE failed stays recorded; the writer
     * rolls it back before the next transaction. */
done:
    json_decref(stmts);
    free(want);
    neo4j_result_clear(&r);
    for (size_t i = 0; i < n; i++) {
        json_decref(ms[i].result);
        apply_free(&ms[i].st);
    }
    free(ms);
    neo4j_set_request_id(bs->neo4j, NULL);
    return retry;
}

/* ---- a large transaction, pipelined ---- */

/*
 * A transaction of PIPELINE_MIN_OPS operations or more runs alone, and its
 * statements go to Neo4j in chunks of about PIPELINE_CHUNK_ROWS rows while
 * the operations after them are applied to SQLite: Neo4j's execution and
 * SQLite's overlap instead of adding up. The protocol is the same: the first
 * chunk starts with the guarded watermark, every count is checked before
 * SQLite's commit point, and any failure rolls back both.
 */
#define PIPELINE_CHUNK_ROWS 1000
/* The statements' text: bounded by the request body, far below this. */
#define PIPELINE_TEXT_MAX ((size_t)1 << 31)

struct pipeline {
    struct bistore *bs;
    char tx_path[NEO4J_TX_PATH_MAX];
    int64_t prev, seq; /* the guard */
    size_t shipped;    /* data statements sent so far */
    /* the request in flight */
    bool in_flight, guard, guard_sent;
    struct background call;
    json_t *request;
    size_t first, count; /* its data statements */
    struct neo4j_result r;
    enum neo4j_status status;
    /* every data statement sent, as JSON text ("{...},{...}"): serialised
     * once, off the writer's path, for the request and for the intent */
    struct buf text;
    bool text_failed;
    json_t *guard_stmt; /* the guarded watermark, sent first */
};

/* The request thread: serialises the chunk's statements onto the kept text
 * (for the intent) and sends them, after the guard when it goes first. */
static void *pipeline_send(void *arg)
{
    struct pipeline *p = arg;
    enum buf_status bst = p->text.len ? buf_append_char(&p->text, ',') : BUF_OK;
    size_t start = p->text.len;
    for (size_t i = 0; i < json_array_size(p->request) && bst == BUF_OK; i++) {
        if (i)
            bst = buf_append_char(&p->text, ',');
        if (bst == BUF_OK)
            bst = json_text_append(&p->text, json_array_get(p->request, i));
    }
    struct buf first;
    buf_init(&first, (size_t)1 << 20);
    if (bst == BUF_OK && p->guard) {
        bst = json_text_append(&first, json_array_get(p->guard_stmt, 0));
        if (bst == BUF_OK && p->text.len > start)
            bst = buf_append_char(&first, ',');
        if (bst == BUF_OK)
            bst = buf_append(&first, buf_str(&p->text) + start, p->text.len - start);
    }
    neo4j_result_clear(&p->r);
    if (bst != BUF_OK) {
        p->text_failed = true;
        p->r.status = p->status = NEO4J_DATABASE_ERROR;
        snprintf(p->r.message, sizeof p->r.message, "out of memory");
    } else if (p->guard) {
        p->status = neo4j_run_text(p->bs->neo4j, p->tx_path, buf_str(&first), first.len, &p->r);
    } else {
        p->status = neo4j_run_text(p->bs->neo4j, p->tx_path, buf_str(&p->text) + start,
                                   p->text.len - start, &p->r);
    }
    buf_free(&first);
    return NULL;
}

/* Waits for the request in flight and checks its answer: 0, or -1 with err set. */
static int pipeline_wait(struct pipeline *p, const struct apply_state *st, struct bs_error *err)
{
    if (!p->in_flight)
        return 0;
    background_wait(&p->call);
    p->in_flight = false;
    json_decref(p->request);
    p->request = NULL;
    size_t base = p->guard ? 1 : 0;
    int rc = 0;
    if (p->status != NEO4J_OK) {
        long op_index = -1;
        long at = p->r.statement_index - (long)base;
        if (p->r.status == NEO4J_CLIENT_ERROR && at >= 0 &&
            p->first + (size_t)at < st->n_stmt_first_op)
            op_index = (long)st->stmt_first_op[p->first + (size_t)at];
        statement_failure(&p->r, op_index, err);
        if (err->code == BS_NEO4J_UNAVAILABLE)
            writer_set_ready(p->bs, false, "%s", err->message);
        rc = -1;
    } else if (p->guard && neo4j_row_count(&p->r, 0) != 1) {
        bs_error_set(err, BS_NEO4J_ERROR, "the watermark node of store %s is missing",
                     p->bs->store_id);
        rc = -1;
    } else {
        for (size_t i = 0; i < p->count && rc == 0; i++)
            if (count_differs(neo4j_cell(&p->r, base + i, 0, 0), st->cypher.expected[p->first + i],
                              err))
                rc = -1;
    }
    neo4j_result_clear(&p->r);
    return rc;
}

/* Sends the statements not sent yet (the guard first, once), after the
 * request before them was answered and checked. */
static int pipeline_ship(struct pipeline *p, const struct apply_state *st, struct bs_error *err)
{
    if (pipeline_wait(p, st, err) != 0)
        return -1;
    size_t total = cypher_batch_count(&st->cypher);
    if (total == p->shipped && p->guard_sent)
        return 0;
    json_t *req = json_array();
    for (size_t i = p->shipped; req && i < total; i++)
        if (json_array_append(req, json_array_get(st->cypher.statements, i)) != 0) {
            json_decref(req);
            req = NULL;
        }
    if (!req)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    p->request = req;
    p->guard = !p->guard_sent;
    p->guard_sent = true;
    p->first = p->shipped;
    p->count = total - p->shipped;
    p->shipped = total;
    p->in_flight = true;
    background_start(&p->call, pipeline_send, p);
    return 0;
}

/* The statements left, and every answer checked: 0, or -1 with err set. */
static int pipeline_finish(struct pipeline *p, const struct apply_state *st, struct bs_error *err)
{
    if (pipeline_ship(p, st, err) != 0 || pipeline_wait(p, st, err) != 0)
        return -1;
    if (p->shipped != cypher_batch_count(&st->cypher) || p->text_failed)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    return 0;
}

/* Every data statement sent, as the JSON array the intent log keeps. */
static const char *pipeline_statements_text(struct pipeline *p)
{
    /* "{...},{...}" becomes "[{...},{...}]" in place */
    if (buf_append_char(&p->text, ']') != BUF_OK || buf_append_char(&p->text, '\0') != BUF_OK)
        return NULL;
    memmove(p->text.data + 1, p->text.data, p->text.len - 1);
    p->text.data[0] = '[';
    return p->text.data;
}

/* After each operation: ships a chunk once enough rows wait. */
static int pipeline_after_op(void *arg, struct apply_state *st, struct bs_error *err)
{
    struct pipeline *p = arg;
    size_t rows = cypher_open_rows(&st->cypher);
    for (size_t i = p->shipped; i < cypher_batch_count(&st->cypher); i++)
        rows += st->cypher.expected[i] == CYPHER_ANY_COUNT ? 1 : st->cypher.expected[i];
    if (rows < PIPELINE_CHUNK_ROWS)
        return 0;
    if (cypher_batch_finish(&st->cypher) != 0)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    return pipeline_ship(p, st, err);
}

/* The relationship types of txn new to Neo4j get their constraint first:
 * schema statements cannot run inside the data's transaction. */
static int ensure_txn_rel_types(struct bistore *bs, const struct bs_txn *txn,
                                struct apply_state *st, struct bs_error *err)
{
    for (size_t i = 0; i < txn->n_ops; i++)
        if (txn->ops[i].kind == OP_CREATE_RELATIONSHIP)
            apply_note_rel_type(bs, st, txn->ops[i].type);
    int rc = ensure_rel_constraints(bs, st, err);
    st->n_new_rel_types = 0;
    return rc;
}

static void run_pipelined(struct bistore *bs, struct commit_item *item)
{
    BS_ASSERT(bs->applied_seq == bs->last_seq);
    struct bistore_outcome *out = item->out;
    struct pipeline p = {.bs = bs, .prev = bs->last_seq, .seq = bs->last_seq + 1};
    struct member m = {.item = item, .pipe = &p};
    struct neo4j_result r = {0};
    bool was_spare;
    ids_uuid7(m.tx_id);
    buf_init(&p.text, PIPELINE_TEXT_MAX);
    neo4j_set_request_id(bs->neo4j, item->rid);
    p.guard_stmt = json_array();
    if (apply_init(&m.st) != 0 || !p.guard_stmt ||
        cypher_add_watermark_guard(p.guard_stmt, bs->store_id, p.prev, p.seq) != 0) {
        bs_error_set(&out->err, BS_STORAGE_ERROR, "out of memory");
        goto done;
    }
    if (ensure_txn_rel_types(bs, item->txn, &m.st, &out->err) != 0)
        goto done;
    /* a fresh transaction: a spare lost to a Neo4j restart would fail mid-way */
    if (take_transaction(bs, p.tx_path, false, &r, &was_spare) != NEO4J_OK) {
        statement_failure(&r, -1, &out->err);
        if (out->err.code == BS_NEO4J_UNAVAILABLE)
            writer_set_ready(bs, false, "%s", out->err.message);
        goto done;
    }
    if (sql_begin(bs->wconn, &out->err) != 0) {
        neo4j_abandon(bs, p.tx_path);
        goto done;
    }
    m.st.after_op = pipeline_after_op;
    m.st.after_op_arg = &p;
    bool ok = apply_member(bs, &m, p.seq); /* ships the chunks, checks every answer */
    fault_hit(FAULT_AFTER_BEGIN);
    if (!ok) {
        /* SQLite's error or a chunk's is the answer; a chunk still in flight
         * is waited for before its transaction is rolled back. */
        struct bs_error ignored;
        pipeline_wait(&p, &m.st, &ignored);
        neo4j_abandon(bs, p.tx_path);
        sql_commit(bs->wconn, &ignored); /* keeps the aborted record */
        goto done;
    }
    fault_hit(FAULT_AFTER_NEO4J_STATEMENTS);
    commit_point(bs, &m, 1, 1, p.seq, p.tx_path);
done:
    neo4j_result_clear(&r);
    json_decref(m.result);
    json_decref(p.guard_stmt);
    buf_free(&p.text);
    apply_free(&m.st);
    neo4j_set_request_id(bs->neo4j, NULL);
}

void commit_group(struct bistore *bs, struct commit_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        memset(items[i].out, 0, sizeof *items[i].out);
        bs_error_clear(&items[i].out->err);
    }
    if (n == 1 && items[0].txn->n_ops >= PIPELINE_MIN_OPS && !items[0].txn->apply) {
        run_pipelined(bs, &items[0]);
        return;
    }
    if (run_group(bs, items, n) == 0)
        return;
    /* Neo4j refused one of them: each alone, so only that one fails. */
    log_info("group commit: Neo4j refused a group of %zu; applying them one by one", n);
    for (size_t i = 0; i < n; i++) {
        json_decref(items[i].out->result); /* an answer from the group: not final */
        memset(items[i].out, 0, sizeof *items[i].out);
        bs_error_clear(&items[i].out->err);
        if (bs->applied_seq != bs->last_seq)
            bs_error_set(&items[i].out->err, BS_NEO4J_UNAVAILABLE,
                         "Neo4j did not take an earlier transaction; retry");
        else
            run_group(bs, &items[i], 1);
    }
}

void commit_txn(struct bistore *bs, struct bs_txn *txn, const char *rid,
                struct bistore_outcome *out)
{
    struct commit_item item = {txn, rid, out};
    commit_group(bs, &item, 1);
}
