/*
 * The gateway's own logs (stores/sqlite/sqlite.h): the intent log
 * (bistore_intents), the audit trail (bistore_transactions), idempotency
 * keys (bistore_idempotency) and its bookkeeping (bistore_meta).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "stores/sqlite/internal.h"

/* ---- intent log ---- */

int sql_intent_insert(struct sql_conn *c, int64_t seq, const char *tx_id, const char *statements,
                      const char *created_at, struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_INTENT_INSERT,
                               "INSERT INTO bistore_intents(seq, tx_id, statements, created_at)"
                               " VALUES (?1, ?2, ?3, ?4)",
                               err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, seq);
    sql_bind_text(s, 2, tx_id);
    sql_bind_text(s, 3, statements);
    sql_bind_text(s, 4, created_at);
    return sql_step_done(c, s, err, "insert intent");
}

static int intent_mark(struct sql_conn *c, int64_t upto, const char *at, struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_INTENT_MARK_APPLIED,
                               "UPDATE bistore_intents SET applied_at = ?2"
                               " WHERE applied_at IS NULL AND seq <= ?1",
                               err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, upto);
    sql_bind_text(s, 2, at);
    return sql_step_done(c, s, err, "mark intents applied");
}

/*
 * The protocol's last step, in a transaction of its own. Its commit needs no
 * fsync: the mark only saves work (the watermark in Neo4j is the truth, and
 * recovery marks again from it). But the connection must stay durable for
 * what SQLite does inside that commit: it can run the auto-checkpoint, or be
 * the first writer after one and restart the WAL. synchronous = OFF skips
 * the syncs of both (the WAL before a checkpoint copies it into the
 * database, the database after; a restarted WAL's new header before the
 * frames after it), and a power cut then loses acknowledged transactions or
 * corrupts the file: tests/unit/test_powerloss.c, 256 of 1,044 cut points
 * lost some and 370 failed integrity_check under OFF.
 *
 * NORMAL skips only the commit's own sync of the WAL and keeps the others
 * (in WAL mode it is consistent, only not durable for the last commits,
 * which here is the mark; the next client commit, FULL, syncs the WAL with
 * the mark in it). FULL would sync the mark too: one fsync more per group.
 * bench/bench_mark_cost.c, 3,000 marks, p50 (two runs on a quiet machine;
 * two with other tests' I/O): OFF 0.025-0.029 ms (0.059-0.062), NORMAL
 * 0.025-0.026 ms (0.063-0.065), FULL 0.155-0.157 ms (1.8-2.2). So NORMAL:
 * what OFF costs, with its syncs only where a checkpoint or restart needs
 * them (every ~1,000 pages).
 */
int sql_intent_mark_applied(struct sql_conn *c, int64_t upto, const char *at, struct bs_error *err)
{
    if (sql_in_transaction(c)) /* inside a write transaction: durable with its commit */
        return intent_mark(c, upto, at, err);
    if (sql_exec(c, "PRAGMA synchronous = NORMAL", err) != 0)
        return -1;
    int rc = intent_mark(c, upto, at, err);
    /* Left below FULL, the writer would acknowledge commits that are not
     * durable. Nothing but a failed allocation can stop this pragma. */
    int restored = sql_exec(c, "PRAGMA synchronous = FULL", err);
    BS_ASSERT(restored == 0);
    return rc;
}

int sql_intent_max_seq(struct sql_conn *c, int64_t *seq, struct bs_error *err)
{
    sqlite3_stmt *s =
        sql_stmt(c, Q_INTENT_MAX_SEQ, "SELECT coalesce(max(seq), 0) FROM bistore_intents", err);
    if (!s)
        return -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *seq = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : sql_fail(c, err, "max intent seq");
}

int sql_intent_pending(struct sql_conn *c, int64_t after, int limit,
                       bool (*fn)(int64_t seq, const char *statements, void *arg), void *arg,
                       struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_INTENT_PENDING,
                               "SELECT seq, statements FROM bistore_intents"
                               " WHERE applied_at IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2",
                               err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int(s, 2, limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (!fn(sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1), arg)) {
            rc = SQLITE_DONE;
            break;
        }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sql_fail(c, err, "pending intents");
}

/* An intent row into out (a struct sql_intent whose seq is set). */
static int read_intent(sqlite3_stmt *s, void *out)
{
    struct sql_intent *in = out;
    sql_copy_col(s, 0, in->tx_id, sizeof in->tx_id);
    in->refused = sql_json_col(s, 1);
    in->operations = sql_json_col(s, 2);
    return 0;
}

enum lookup sql_intent_get_pending(struct sql_conn *c, int64_t seq, struct sql_intent *out,
                                   struct bs_error *err)
{
    memset(out, 0, sizeof *out);
    out->seq = seq;
    sqlite3_stmt *s = sql_stmt(c, Q_INTENT_GET_PENDING,
                               "SELECT i.tx_id, i.refused, t.operations FROM bistore_intents i"
                               " LEFT JOIN bistore_transactions t ON t.seq = i.seq"
                               " WHERE i.seq = ?1 AND i.applied_at IS NULL",
                               err);
    if (!s)
        return LOOKUP_FAILED;
    sqlite3_bind_int64(s, 1, seq);
    return sql_step_one(c, s, read_intent, out, "read intent", err);
}

void sql_intent_clear(struct sql_intent *in)
{
    json_decref(in->refused);
    json_decref(in->operations);
    in->refused = in->operations = NULL;
}

int sql_intent_set_refused(struct sql_conn *c, int64_t seq, const char *refused,
                           struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_INTENT_SET_REFUSED,
                               "UPDATE bistore_intents SET refused = ?2 WHERE seq = ?1", err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, seq);
    sql_bind_text(s, 2, refused);
    return sql_step_done(c, s, err, "record a refused intent");
}

int sql_intent_resolve(struct sql_conn *c, int64_t seq, const char *statements,
                       const char *tx_error, struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_INTENT_RESOLVE,
                               "UPDATE bistore_intents SET statements = ?2, refused = NULL"
                               " WHERE seq = ?1 AND applied_at IS NULL",
                               err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, seq);
    sql_bind_text(s, 2, statements);
    if (sql_step_done(c, s, err, "resolve intent") != 0)
        return -1;
    if (sqlite3_changes(c->db) != 1)
        return bs_error_set(err, BS_STORAGE_ERROR, "intent %lld is not pending", (long long)seq),
               -1;
    s = sql_stmt(c, Q_TX_SET_ERROR_OF_SEQ,
                 "UPDATE bistore_transactions SET error = ?2 WHERE seq = ?1", err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, seq);
    sql_bind_text(s, 2, tx_error);
    return sql_step_done(c, s, err, "record the resolution");
}

/* ---- audit trail ---- */

/* A transaction's row; tx_state, its state as the API names it, comes
 * from its row and its intent's (not t.state, which WHERE would take). An
 * intent landed but not marked (?8, ?9: struct sql_landed) is applied. */
#define TX_APPLIED_AT "coalesce(i.applied_at, CASE WHEN i.seq <= ?8 THEN ?9 END)"
#define TX_COLUMNS                                                                                 \
    "t.n, t.tx_id, CASE WHEN t.state = 'aborted' THEN 'aborted'"                                   \
    " WHEN " TX_APPLIED_AT " IS NULL THEN 'pending' ELSE 'applied' END AS tx_state,"               \
    " t.created_at, " TX_APPLIED_AT ", t.operations, coalesce(t.error, i.refused), t.provenance"   \
    " FROM bistore_transactions t LEFT JOIN bistore_intents i ON i.seq = t.seq"

static void bind_landed(sqlite3_stmt *s, const struct sql_landed *landed)
{
    sqlite3_bind_int64(s, 8, landed ? landed->seq : -1);
    sql_bind_text(s, 9, landed && landed->seq >= 0 ? landed->at : NULL);
}

int sql_tx_insert(struct sql_conn *c, const char *tx_id, int64_t seq, const char *state,
                  const char *created_at, const char *operations, const char *error,
                  const char *provenance, struct bs_error *err)
{
    sqlite3_stmt *s =
        sql_stmt(c, Q_TX_INSERT,
                 "INSERT INTO bistore_transactions(tx_id, seq, state, created_at, operations,"
                 " error, provenance) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                 err);
    if (!s)
        return -1;
    sql_bind_text(s, 1, tx_id);
    if (seq >= 0)
        sqlite3_bind_int64(s, 2, seq);
    else
        sqlite3_bind_null(s, 2);
    sql_bind_text(s, 3, state);
    sql_bind_text(s, 4, created_at);
    sql_bind_text(s, 5, operations);
    sql_bind_text(s, 6, error);
    sql_bind_text(s, 7, provenance);
    return sql_step_done(c, s, err, "insert transaction");
}

static json_t *tx_row_json(sqlite3_stmt *s)
{
    json_t *ops = sql_json_col(s, 5);
    json_t *error = sql_json_col(s, 6);
    json_t *prov = sql_json_col(s, 7);
    const char *applied = (const char *)sqlite3_column_text(s, 4);
    return json_pack("{s:s, s:s, s:s, s:s?, s:o, s:o, s:o}", "tx_id",
                     (const char *)sqlite3_column_text(s, 1), "state",
                     (const char *)sqlite3_column_text(s, 2), "created_at",
                     (const char *)sqlite3_column_text(s, 3), "applied_at", applied, "operations",
                     ops ? ops : json_array(), "error", error ? error : json_null(), "provenance",
                     prov ? prov : json_null());
}

static int read_tx(sqlite3_stmt *s, void *out)
{
    json_t **tx = out;
    *tx = tx_row_json(s);
    return *tx ? 0 : -1;
}

enum lookup sql_tx_get(struct sql_conn *c, const char *tx_id, const struct sql_landed *landed,
                       json_t **out, struct bs_error *err)
{
    *out = NULL;
    sqlite3_stmt *s = sql_stmt(c, Q_TX_GET, "SELECT " TX_COLUMNS " WHERE t.tx_id = ?1", err);
    if (!s)
        return LOOKUP_FAILED;
    sql_bind_text(s, 1, tx_id);
    bind_landed(s, landed);
    return sql_step_one(c, s, read_tx, out, "read transaction", err);
}

int sql_tx_list(struct sql_conn *c, const char *state, int64_t after, int limit, size_t max_bytes,
                const struct sql_landed *landed, json_t *items, int64_t *last, bool *more,
                struct bs_error *err)
{
    sqlite3_stmt *s =
        sql_stmt(c, Q_TX_LIST,
                 "SELECT " TX_COLUMNS " WHERE t.n > ?1 AND (?2 IS NULL OR tx_state = ?2"
                 " OR (?2 = 'committed' AND tx_state <> 'aborted')) ORDER BY t.n"
                 " LIMIT ?3",
                 err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, after);
    sql_bind_text(s, 2, state);
    sqlite3_bind_int(s, 3, limit + 1); /* one more row tells whether a next page exists */
    bind_landed(s, landed);
    int rc;
    *last = after;
    *more = false;
    size_t used = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (sql_page_full(s, items, limit, max_bytes, &used)) {
            *more = true;
            rc = SQLITE_DONE;
            break;
        }
        json_t *j = tx_row_json(s);
        *last = sqlite3_column_int64(s, 0);
        if (!j || json_array_append_new(items, j) != 0) {
            sqlite3_reset(s);
            bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
            return -1;
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sql_fail(c, err, "list transactions");
}

/* ---- idempotency and meta ---- */

struct idem_row {
    char *body_hash;
    json_t **result;
    char *tx_id;
};

static int read_idem(sqlite3_stmt *s, void *out)
{
    struct idem_row *r = out;
    sql_copy_col(s, 0, r->body_hash, HASH_STR_LEN);
    *r->result = sql_json_col(s, 1);
    sql_copy_col(s, 2, r->tx_id, UUID_STR_LEN);
    return *r->result ? 0 : -1;
}

enum lookup sql_idem_get(struct sql_conn *c, const char *key, const char *scope,
                         char body_hash[HASH_STR_LEN], json_t **result, char tx_id[UUID_STR_LEN],
                         struct bs_error *err)
{
    *result = NULL;
    sqlite3_stmt *s = sql_stmt(c, Q_IDEM_GET,
                               "SELECT body_hash, result, tx_id FROM bistore_idempotency"
                               " WHERE key = ?1 AND scope = ?2",
                               err);
    if (!s)
        return LOOKUP_FAILED;
    sql_bind_text(s, 1, key);
    sql_bind_text(s, 2, scope);
    struct idem_row row = {body_hash, result, tx_id};
    return sql_step_one(c, s, read_idem, &row, "read idempotency key", err);
}

int sql_idem_insert(struct sql_conn *c, const char *key, const char *scope, const char *body_hash,
                    const char *result, const char *tx_id, const char *created_at,
                    struct bs_error *err)
{
    sqlite3_stmt *s =
        sql_stmt(c, Q_IDEM_INSERT,
                 "INSERT INTO bistore_idempotency(key, scope, body_hash, result, tx_id,"
                 " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                 err);
    if (!s)
        return -1;
    sql_bind_text(s, 1, key);
    sql_bind_text(s, 2, scope);
    sql_bind_text(s, 3, body_hash);
    sql_bind_text(s, 4, result);
    sql_bind_text(s, 5, tx_id);
    sql_bind_text(s, 6, created_at);
    return sql_step_done(c, s, err, "insert idempotency key");
}

struct meta_value {
    char *out;
    size_t cap;
};

static int read_meta(sqlite3_stmt *s, void *out)
{
    struct meta_value *v = out;
    sql_copy_col(s, 0, v->out, v->cap);
    return 0;
}

enum lookup sql_meta_get(struct sql_conn *c, const char *key, char *out, size_t cap,
                         struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_META_GET, "SELECT value FROM bistore_meta WHERE key = ?1", err);
    if (!s)
        return LOOKUP_FAILED;
    sql_bind_text(s, 1, key);
    struct meta_value v = {out, cap};
    return sql_step_one(c, s, read_meta, &v, "read meta", err);
}

int sql_meta_set(struct sql_conn *c, const char *key, const char *value, struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_META_SET,
                               "INSERT INTO bistore_meta(key, value) VALUES (?1, ?2)"
                               " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                               err);
    if (!s)
        return -1;
    sql_bind_text(s, 1, key);
    sql_bind_text(s, 2, value);
    return sql_step_done(c, s, err, "write meta");
}
