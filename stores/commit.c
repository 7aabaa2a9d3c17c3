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
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "stores/fault.h"
#include "stores/internal.h"

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

struct replay_ctx {
    struct bistore *bs;
    struct bs_error *err;
    int failed;
};

/*
 * Applies one pending intent in its own Neo4j transaction, guarded by
 * prev = seq - 1. When the guard fails, someone (a late request of an
 * earlier gateway) moved the watermark: the caller re-reads it.
 */
static int replay_one(int64_t seq, const char *tx_id, const char *statements, void *arg)
{
    struct replay_ctx *ctx = arg;
    struct bistore *bs = ctx->bs;
    json_error_t jerr;
    json_t *data = json_loads(statements, 0, &jerr);
    json_t *stmts = json_array();
    struct neo4j_result r = {0};
    int rc = -1;
    if (!data || !stmts || cypher_add_watermark_guard(stmts, bs->store_id, seq - 1, seq) != 0 ||
        json_array_extend(stmts, data) != 0) {
        bs_error_set(ctx->err, BS_STORAGE_ERROR, "intent %lld unreadable", (long long)seq);
    } else if (neo4j_autocommit(bs->neo4j, stmts, &r) != NEO4J_OK) {
        neo4j_failure(ctx->err, &r, "replay");
        log_warn("replay of intent %lld (tx %s) failed: %s", (long long)seq, tx_id,
                 ctx->err->message);
    } else if (neo4j_row_count(&r, 0) != 1) {
        bs_error_set(ctx->err, BS_NEO4J_ERROR, "the watermark node of store %s is missing",
                     bs->store_id);
    } else {
        bs->applied_seq = seq;
        log_info("replayed intent %lld (tx %s)", (long long)seq, tx_id);
        rc = 0;
    }
    neo4j_result_clear(&r);
    json_decref(stmts);
    json_decref(data);
    if (rc != 0)
        ctx->failed = 1;
    return rc;
}

static int mark_applied(struct bistore *bs, int64_t upto, struct bs_error *err)
{
    char now[TIMESTAMP_LEN];
    time_now_rfc3339(now);
    return sql_intent_mark_applied(bs->wconn, upto, now, err);
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
        struct replay_ctx ctx = {bs, err, 0};
        if (sql_intent_pending(bs->wconn, watermark, 1000, replay_one, &ctx, err) != 0 &&
            !ctx.failed)
            return -1;
        if (mark_applied(bs, bs->applied_seq, err) != 0)
            return -1;
        if (!ctx.failed && bs->applied_seq == bs->last_seq)
            return 0;
        if (ctx.failed && err->code != BS_NEO4J_ERROR)
            return -1;
        /* A guard failure: the watermark moved under us; read it again. */
    }
    return bs_error_set(err, BS_NEO4J_ERROR, "replay did not converge"), -1;
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

/* The error of a Neo4j rejection of our data statements, naming the operation. */
static void data_failure(struct apply_state *st, const struct neo4j_result *r, struct bs_error *err)
{
    long stmt = r->statement_index - 1; /* statement 0 is the watermark guard */
    if (stmt >= 0 && (size_t)stmt < st->n_stmt_first_op)
        err->op_index = (long)st->stmt_first_op[stmt];
    if (strstr(r->code, "ConstraintValidationFailed")) {
        bool rel = strstr(r->message, "relationship") || strstr(r->message, "Relationship");
        bs_error_set(err, rel ? BS_RELATIONSHIP_EXISTS : BS_ENTITY_EXISTS,
                     "Neo4j already holds this id (the stores disagree; run a "
                     "reconciliation): %s",
                     r->message);
        return;
    }
    if (r->statement_index == 0 && strstr(r->code, "ArithmeticError")) {
        bs_error_set(err, BS_NEO4J_UNAVAILABLE,
                     "Neo4j's watermark moved under this gateway: is a second gateway "
                     "writing to the same stores? Recovering");
        return;
    }
    neo4j_failure(err, r, "transaction");
}

/* Checks that each data statement touched as many rows as SQLite did. */
static int check_counts(struct bistore *bs, struct apply_state *st, const struct neo4j_result *r,
                        struct bs_error *err)
{
    if (neo4j_row_count(r, 0) != 1)
        return bs_error_set(err, BS_NEO4J_ERROR, "the watermark node of store %s is missing",
                            bs->store_id),
               -1;
    size_t n = cypher_batch_count(&st->cypher);
    for (size_t i = 0; i < n; i++) {
        if (st->cypher.expected[i] == CYPHER_ANY_COUNT)
            continue;
        json_t *v = neo4j_cell(r, i + 1, 0, 0);
        if (!json_is_integer(v) || (size_t)json_integer_value(v) != st->cypher.expected[i]) {
            if (i < st->n_stmt_first_op)
                err->op_index = (long)st->stmt_first_op[i];
            bs_error_set(err, BS_NEO4J_ERROR,
                         "Neo4j lacks a node or relationship that SQLite has (statement %zu "
                         "touched %lld of %zu rows): the stores disagree; run a "
                         "reconciliation",
                         i, (long long)json_integer_value(v), st->cypher.expected[i]);
            return -1;
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
    char *ops_text = ops ? json_dumps(ops, JSON_COMPACT) : NULL;
    char *e_text = e ? json_dumps(e, JSON_COMPACT) : NULL;
    char *prov = txn->provenance ? json_dumps(txn->provenance, JSON_COMPACT) : NULL;
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
                      struct apply_state *st, json_t *result, struct bs_error *err)
{
    char *stmts = json_dumps(st->cypher.statements, JSON_COMPACT);
    char *ops = json_dumps(st->results, JSON_COMPACT);
    char *prov = txn->provenance ? json_dumps(txn->provenance, JSON_COMPACT) : NULL;
    char *res = txn->idem_key ? json_dumps(result, JSON_COMPACT) : NULL;
    int rc = -1;
    if (!stmts || !ops || (txn->provenance && !prov) || (txn->idem_key && !res))
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
    else if (sql_intent_insert(bs->wconn, seq, tx_id, stmts, st->now, err) == 0 &&
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

void commit_txn(struct bistore *bs, struct bs_txn *txn, const char *rid,
                struct bistore_outcome *out)
{
    BS_ASSERT(bs->applied_seq == bs->last_seq); /* nothing pending: order holds */
    struct bs_error *err = &out->err;
    struct apply_state st;
    char tx_id[UUID_STR_LEN];
    char tx_path[NEO4J_TX_PATH_MAX] = "";
    struct neo4j_result r = {0};
    json_t *result = NULL;
    bool began = false;
    ids_uuid7(tx_id);
    neo4j_set_request_id(bs->neo4j, rid);
    if (apply_init(&st) != 0) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        return;
    }

    /* sqlite: BEGIN IMMEDIATE; apply rows; log the intent */
    if (sql_exec(bs->wconn, "BEGIN IMMEDIATE", err) != 0)
        goto fail;
    began = true;
    if (txn->idem_key) {
        int rc = idempotency_check(bs, txn, out);
        if (rc <= 0) {
            sql_exec(bs->wconn, "ROLLBACK", NULL);
            goto done;
        }
    }
    if ((txn->apply ? txn->apply(bs, txn->apply_ctx, &st, err) : apply_txn(bs, txn, &st, err)) != 0)
        goto fail_aborted;
    int64_t seq = bs->last_seq + 1;
    result =
        json_pack("{s:s, s:O, s:O}", "tx_id", tx_id, "results", st.results, "records", st.records);
    if (!result) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        goto fail;
    }
    if (log_intent(bs, txn, tx_id, seq, &st, result, err) != 0)
        goto fail;
    fault_hit(FAULT_AFTER_BEGIN);

    /* neo4j: open an empty tx, record it, run guard + data */
    if (ensure_rel_constraints(bs, &st, err) != 0)
        goto fail_aborted;
    if (neo4j_begin(bs->neo4j, tx_path, &r) != NEO4J_OK) {
        neo4j_failure(err, &r, "transaction start");
        goto fail_aborted;
    }
    if (orphans_add(&bs->orphans, tx_path) != 0) {
        neo4j_abandon(bs, tx_path);
        bs_error_set(err, BS_STORAGE_ERROR, "cannot record the Neo4j transaction");
        goto fail;
    }
    json_t *stmts = json_array();
    if (!stmts || cypher_add_watermark_guard(stmts, bs->store_id, bs->last_seq, seq) != 0 ||
        json_array_extend(stmts, st.cypher.statements) != 0) {
        json_decref(stmts);
        neo4j_abandon(bs, tx_path);
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        goto fail;
    }
    enum neo4j_status ns = neo4j_run(bs->neo4j, tx_path, stmts, &r);
    json_decref(stmts);
    if (ns != NEO4J_OK) {
        data_failure(&st, &r, err);
        neo4j_abandon(bs, tx_path);
        if (err->code == BS_NEO4J_UNAVAILABLE)
            writer_set_ready(bs, false, "%s", err->message);
        goto fail_aborted;
    }
    if (check_counts(bs, &st, &r, err) != 0) {
        neo4j_abandon(bs, tx_path);
        goto fail_aborted;
    }
    fault_hit(FAULT_AFTER_NEO4J_STATEMENTS);

    /* sqlite: COMMIT, the commit point */
    if (sql_exec(bs->wconn, "COMMIT", err) != 0) {
        neo4j_abandon(bs, tx_path);
        goto fail;
    }
    began = false;
    bs->last_seq = seq;
    fault_hit(FAULT_AFTER_SQLITE_COMMIT);

    /* neo4j: commit; on failure the intent stays pending */
    out->result = result;
    result = NULL;
    if (neo4j_commit(bs->neo4j, tx_path, NULL, &r) != NEO4J_OK) {
        log_msg(LOG_WARN, rid, "tx %s committed; Neo4j commit failed (%s), intent %lld pending",
                tx_id, r.message, (long long)seq);
        out->neo4j_applied = false;
        goto done;
    }
    orphans_remove(&bs->orphans, tx_path);
    fault_hit(FAULT_AFTER_NEO4J_COMMIT);
    bs->applied_seq = seq;
    out->neo4j_applied = true;
    struct bs_error mark_err;
    if (mark_applied(bs, seq, &mark_err) != 0) /* the watermark stays the truth */
        log_msg(LOG_WARN, rid, "intent %lld applied but not marked: %s", (long long)seq,
                mark_err.message);
    goto done;

fail_aborted:
    if (began) {
        sql_exec(bs->wconn, "ROLLBACK", NULL);
        began = false;
        record_aborted(bs, tx_id, txn, err);
    }
fail:
    if (began)
        sql_exec(bs->wconn, "ROLLBACK", NULL);
    /* A Neo4j transaction whose DELETE failed stays recorded; the writer
     * rolls it back before the next transaction. */
done:
    json_decref(result);
    neo4j_result_clear(&r);
    apply_free(&st);
    neo4j_set_request_id(bs->neo4j, NULL);
}
