/*
 * The connection (stores/sqlite/sqlite.h): the schema, opening, plain
 * statements and transactions, the statement cache, and the pool of
 * read-only connections.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "stores/sqlite/internal.h"

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS entities("
    " id TEXT PRIMARY KEY, type TEXT NOT NULL, properties TEXT NOT NULL, metadata TEXT,"
    " version INTEGER NOT NULL, hash TEXT NOT NULL,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS entities_type_id ON entities(type, id);"
    "CREATE TABLE IF NOT EXISTS relationships("
    " id TEXT PRIMARY KEY, type TEXT NOT NULL,"
    " source_id TEXT NOT NULL REFERENCES entities(id),"
    " target_id TEXT NOT NULL REFERENCES entities(id),"
    " properties TEXT NOT NULL, version INTEGER NOT NULL, hash TEXT NOT NULL,"
    " created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS relationships_source ON relationships(source_id, id);"
    "CREATE INDEX IF NOT EXISTS relationships_target ON relationships(target_id);"
    /* The intent log: one row per committed transaction, replayed to Neo4j in
     * seq order until applied_at is set. */
    "CREATE TABLE IF NOT EXISTS bistore_intents("
    " seq INTEGER PRIMARY KEY, tx_id TEXT NOT NULL, statements TEXT NOT NULL,"
    " created_at TEXT NOT NULL, applied_at TEXT);"
    "CREATE INDEX IF NOT EXISTS bistore_intents_pending ON bistore_intents(seq)"
    " WHERE applied_at IS NULL;"
    /* The audit trail: committed and aborted transactions, oldest first by n. */
    "CREATE TABLE IF NOT EXISTS bistore_transactions("
    " n INTEGER PRIMARY KEY, tx_id TEXT NOT NULL UNIQUE, seq INTEGER UNIQUE,"
    " state TEXT NOT NULL CHECK (state IN ('committed', 'aborted')),"
    " created_at TEXT NOT NULL, operations TEXT, error TEXT, provenance TEXT);"
    "CREATE TABLE IF NOT EXISTS bistore_idempotency("
    " key TEXT NOT NULL, scope TEXT NOT NULL, body_hash TEXT NOT NULL,"
    " result TEXT NOT NULL, tx_id TEXT NOT NULL,"
    " created_at TEXT NOT NULL, PRIMARY KEY (key, scope)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS bistore_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)"
    " WITHOUT ROWID;"
    /* Reconciliation: the per-type scan of relationships, runs and findings. */
    "CREATE INDEX IF NOT EXISTS relationships_type_id ON relationships(type, id);"
    "CREATE TABLE IF NOT EXISTS bistore_reconciliations("
    " n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, state TEXT NOT NULL,"
    " mode TEXT NOT NULL, repair TEXT NOT NULL, dry_run INTEGER NOT NULL,"
    " started_at TEXT NOT NULL, finished_at TEXT, scanned INTEGER NOT NULL DEFAULT 0,"
    " total INTEGER NOT NULL DEFAULT 0, summary TEXT NOT NULL, error TEXT);"
    "CREATE TABLE IF NOT EXISTS bistore_findings("
    " run_n INTEGER NOT NULL, n INTEGER NOT NULL, kind TEXT NOT NULL, object TEXT NOT NULL,"
    " id TEXT, sqlite TEXT, neo4j TEXT, action TEXT NOT NULL, PRIMARY KEY (run_n, n))"
    " WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS bistore_findings_kind ON bistore_findings(run_n, kind, n);";

/* The error code of an SQLite failure: a full disk is told apart (507:
 * nothing was written, retry once there is room). */
static enum bs_code storage_code(int sqlite_rc)
{
    return (sqlite_rc & 0xff) == SQLITE_FULL ? BS_STORAGE_FULL : BS_STORAGE_ERROR;
}

int sql_fail(struct sql_conn *c, struct bs_error *err, const char *what)
{
    const char *msg = c && c->db ? sqlite3_errmsg(c->db) : "cannot open";
    log_error("sqlite: %s: %s", what, msg);
    if (err)
        bs_error_set(err, c && c->db ? storage_code(sqlite3_errcode(c->db)) : BS_STORAGE_ERROR,
                     "SQLite: %s: %s", what, msg);
    return -1;
}

/*
 * Checks that the pragma took: a relationship insert relies on the foreign
 * keys to refuse a missing endpoint (sql_relationship_create), and a
 * SQLite built without them would take it silently.
 */
static int foreign_keys_on(struct sql_conn *c, struct bs_error *err)
{
    sqlite3_stmt *s = NULL;
    int on = 0;
    if (sqlite3_prepare_v2(c->db, "PRAGMA foreign_keys", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        on = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    if (on == 1)
        return 0;
    log_error("sqlite: foreign keys are not enforced by this SQLite");
    bs_error_set(err, BS_STORAGE_ERROR, "SQLite: foreign keys are not enforced");
    return -1;
}

/* Columns added after the first release, for stores created before them. */
static int migrate(struct sql_conn *c, struct bs_error *err)
{
    static const struct {
        const char *table, *column, *add;
    } columns[] = {
        /* Neo4j's refusal of a pending intent on replay (JSON), until resolved */
        {"bistore_intents", "refused", "ALTER TABLE bistore_intents ADD COLUMN refused TEXT"},
    };
    for (size_t i = 0; i < sizeof columns / sizeof columns[0]; i++) {
        sqlite3_stmt *q = NULL;
        int found = 0;
        if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
                               -1, &q, NULL) != SQLITE_OK)
            return sql_fail(c, err, "read the schema");
        sqlite3_bind_text(q, 1, columns[i].table, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, columns[i].column, -1, SQLITE_STATIC);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            found = sqlite3_column_int(q, 0);
        sqlite3_finalize(q);
        if (rc != SQLITE_ROW)
            return sql_fail(c, err, "read the schema");
        if (!found && sql_exec(c, columns[i].add, err) != 0)
            return -1;
    }
    return 0;
}

/* bistore_hash_part(hash, k): part k (1 or 2) of a record's hash
 * (canon_hash_parts), NULL when hash is not one; what Neo4j stores as _h1
 * and _h2, derived here in the query (nothing to keep current). */
static void hash_part(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int64_t h1, h2;
    const char *hex = (const char *)sqlite3_value_text(argv[0]);
    int k = sqlite3_value_int(argv[1]);
    if (!hex || canon_hash_parts(hex, &h1, &h2) != 0 || (k != 1 && k != 2))
        sqlite3_result_null(ctx);
    else
        sqlite3_result_int64(ctx, k == 1 ? h1 : h2);
}

/* bistore_id_part(id): canon_id_part of an entity id, NULL when it has
 * none; what Neo4j stores as _hid on the entity's node. */
static void id_part(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    int64_t k = canon_id_part((const char *)sqlite3_value_text(argv[0]));
    if (k < 0)
        sqlite3_result_null(ctx);
    else
        sqlite3_result_int64(ctx, k);
}

struct sql_conn *sql_open(const char *path, bool writable, struct bs_error *err)
{
    struct sql_conn *c = calloc(1, sizeof *c);
    if (!c) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        return NULL;
    }
    int flags = SQLITE_OPEN_NOMUTEX |
                (writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY);
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        sql_fail(c, err, path);
        sql_close(c);
        return NULL;
    }
    sqlite3_busy_timeout(c->db, 10000);
    /* Clients' raw SQL runs on the writer's connection (raw.c): no direct
     * schema writes (writable_schema, sqlite_dbpage) and no extensions,
     * whatever a statement tries. */
    if (sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL) != SQLITE_OK ||
        sqlite3_db_config(c->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL) != SQLITE_OK ||
        sqlite3_db_config(c->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL) != SQLITE_OK ||
        sqlite3_create_function_v2(c->db, "bistore_hash_part", 2,
                                   SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                   hash_part, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_create_function_v2(c->db, "bistore_id_part", 1,
                                   SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                   id_part, NULL, NULL, NULL) != SQLITE_OK) {
        sql_fail(c, err, "configure the connection");
        sql_close(c);
        return NULL;
    }
    const char *pragmas = writable ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                     " PRAGMA foreign_keys=ON;"
                                   : "PRAGMA foreign_keys=ON;";
    if (sql_exec(c, pragmas, err) != 0 ||
        (writable && (sql_exec(c, schema_sql, err) != 0 || migrate(c, err) != 0)) ||
        foreign_keys_on(c, err) != 0) {
        sql_close(c);
        return NULL;
    }
    return c;
}

void sql_close(struct sql_conn *c)
{
    if (!c)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(c->stmts[i]);
    sqlite3_close(c->db);
    free(c);
}

int sql_exec(struct sql_conn *c, const char *sql, struct bs_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        log_error("sqlite: %s: %s", sql, msg ? msg : "?");
        if (err)
            bs_error_set(err, storage_code(rc), "SQLite: %s", msg ? msg : "error");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

bool sql_in_transaction(struct sql_conn *c)
{
    return !sqlite3_get_autocommit(c->db);
}

int64_t sql_total_changes(struct sql_conn *c)
{
    return sqlite3_total_changes64(c->db);
}

int sql_begin(struct sql_conn *c, struct bs_error *err)
{
    return sql_exec(c, "BEGIN IMMEDIATE", err);
}

void sql_rollback(struct sql_conn *c)
{
    sql_exec(c, "ROLLBACK", NULL);
}

int sql_savepoint(struct sql_conn *c, struct bs_error *err)
{
    return sql_exec(c, "SAVEPOINT member", err);
}

int sql_savepoint_release(struct sql_conn *c, struct bs_error *err)
{
    return sql_exec(c, "RELEASE member", err);
}

void sql_savepoint_rollback(struct sql_conn *c)
{
    sql_exec(c, "ROLLBACK TO member; RELEASE member", NULL);
}

int sql_commit(struct sql_conn *c, struct bs_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    int code = sqlite3_extended_errcode(c->db);
    log_error("sqlite: COMMIT: %s (extended code %d)", msg ? msg : "?", code);
    char why[BS_ERROR_MESSAGE_MAX / 2];
    snprintf(why, sizeof why, "%.400s", msg ? msg : "error");
    sqlite3_free(msg);
    if (sql_in_transaction(c)) /* SQLite kept it open (busy, say): nothing is durable */
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    /* A full disk or a failed write stops before the commit frame is in the
     * WAL: nothing of it can come back. After any other I/O error (the
     * fsync, above all) its frames may all be in the file, and WAL recovery
     * at the next open would bring the transaction back. */
    if ((code & 0xff) == SQLITE_FULL)
        bs_error_set(err, BS_STORAGE_FULL, "SQLite: %s", why);
    else if ((code & 0xff) != SQLITE_IOERR || code == SQLITE_IOERR_WRITE ||
             code == SQLITE_IOERR_NOMEM)
        bs_error_set(err, BS_STORAGE_ERROR, "SQLite: %s", why);
    else
        bs_error_set(err, BS_OUTCOME_UNKNOWN,
                     "SQLite's commit failed (%s): the transaction may or may not be durable; "
                     "retry with the same Idempotency-Key to learn its outcome",
                     why);
    return -1;
}

/* The cached statement id (prepared from text the first time), reset and
 * unbound; NULL on a prepare error. */
sqlite3_stmt *sql_stmt(struct sql_conn *c, enum sql_stmt_id id, const char *text,
                       struct bs_error *err)
{
    if (!c->stmts[id]) {
        if (sqlite3_prepare_v3(c->db, text, -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[id], NULL) !=
            SQLITE_OK) {
            sql_fail(c, err, "prepare");
            return NULL;
        }
    } else {
        sqlite3_reset(c->stmts[id]);
        sqlite3_clear_bindings(c->stmts[id]);
    }
    return c->stmts[id];
}

int sql_bind_text(sqlite3_stmt *s, int i, const char *v)
{
    return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i);
}

void sql_copy_col(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    const char *v = (const char *)sqlite3_column_text(s, col);
    snprintf(out, cap, "%s", v ? v : "");
}

size_t sql_row_bytes(sqlite3_stmt *s)
{
    size_t n = 0;
    for (int col = 0; col < sqlite3_column_count(s); col++) {
        int t = sqlite3_column_type(s, col);
        if (t == SQLITE_TEXT || t == SQLITE_BLOB)
            n += (size_t)sqlite3_column_bytes(s, col);
    }
    return n;
}

bool sql_page_full(sqlite3_stmt *s, const json_t *items, int limit, size_t max_bytes, size_t *used)
{
    size_t n = json_array_size(items), bytes = sql_row_bytes(s);
    if (n == (size_t)limit || (n > 0 && bytes > max_bytes - *used))
        return true;
    *used += bytes < max_bytes - *used ? bytes : max_bytes - *used;
    return false;
}

json_t *sql_json_col(sqlite3_stmt *s, int col)
{
    const char *v = (const char *)sqlite3_column_text(s, col);
    if (!v)
        return NULL;
    return json_loads(v, 0, NULL);
}

/* Runs a statement that returns no rows; -1 (err filled) on failure. */
int sql_step_done(struct sql_conn *c, sqlite3_stmt *s, struct bs_error *err, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return sql_fail(c, err, what);
    return 0;
}

/* A constraint's refusal is the client's mistake: err filled, not logged. */
enum sql_insert sql_step_create(struct sql_conn *c, sqlite3_stmt *s, struct bs_error *err,
                                const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return SQL_INSERTED;
    if (rc != SQLITE_CONSTRAINT)
        return sql_fail(c, err, what), SQL_INSERT_FAILED;
    bs_error_set(err, BS_STORAGE_ERROR, "SQLite: %s: %s", what, sqlite3_errmsg(c->db));
    return SQL_REFUSED;
}

enum lookup sql_step_one(struct sql_conn *c, sqlite3_stmt *s,
                         int (*read)(sqlite3_stmt *s, void *out), void *out, const char *what,
                         struct bs_error *err)
{
    int rc = sqlite3_step(s);
    enum lookup found = LOOKUP_MISSING;
    if (rc == SQLITE_ROW && read(s, out) != 0)
        found = (bs_error_set(err, BS_STORAGE_ERROR, "SQLite: %s: unreadable row", what),
                 LOOKUP_FAILED);
    else if (rc == SQLITE_ROW)
        found = LOOKUP_FOUND;
    else if (rc != SQLITE_DONE)
        found = (sql_fail(c, err, what), LOOKUP_FAILED);
    sqlite3_reset(s);
    return found;
}

enum lookup sql_step_exists(struct sql_conn *c, sqlite3_stmt *s, const char *what,
                            struct bs_error *err)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return LOOKUP_FOUND;
    return rc == SQLITE_DONE ? LOOKUP_MISSING : (sql_fail(c, err, what), LOOKUP_FAILED);
}

sqlite3 *sql_db(struct sql_conn *c)
{
    return c->db;
}

/* ---- pool ---- */

int sql_pool_init(struct sql_pool *p, const char *path, size_t max)
{
    memset(p, 0, sizeof *p);
    p->path = strdup(path);
    p->free_conns = calloc(max, sizeof *p->free_conns);
    if (!p->path || !p->free_conns) {
        free(p->path);
        free(p->free_conns);
        return -1;
    }
    p->max = max;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->freed, NULL);
    return 0;
}

struct sql_conn *sql_pool_get(struct sql_pool *p, struct bs_error *err)
{
    pthread_mutex_lock(&p->lock);
    while (p->n_free == 0 && p->n_open >= p->max)
        pthread_cond_wait(&p->freed, &p->lock);
    if (p->n_free > 0) {
        struct sql_conn *c = p->free_conns[--p->n_free];
        pthread_mutex_unlock(&p->lock);
        return c;
    }
    p->n_open++;
    pthread_mutex_unlock(&p->lock);
    struct sql_conn *c = sql_open(p->path, false, err);
    if (!c) {
        pthread_mutex_lock(&p->lock);
        p->n_open--;
        pthread_cond_signal(&p->freed);
        pthread_mutex_unlock(&p->lock);
    }
    return c;
}

void sql_pool_put(struct sql_pool *p, struct sql_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&p->lock);
    BS_ASSERT(p->n_free < p->max);
    p->free_conns[p->n_free++] = c;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

void sql_pool_destroy(struct sql_pool *p)
{
    for (size_t i = 0; i < p->n_free; i++)
        sql_close(p->free_conns[i]);
    free(p->free_conns);
    free(p->path);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->freed);
}
