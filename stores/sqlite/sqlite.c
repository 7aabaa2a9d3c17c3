#include "stores/sqlite/sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

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

#define TX_COLUMNS                                                                                 \
    "t.n, t.tx_id, CASE WHEN t.state = 'aborted' THEN 'aborted'"                                   \
    " WHEN i.applied_at IS NULL THEN 'pending' ELSE 'applied' END AS st,"                          \
    " t.created_at, i.applied_at, t.operations, coalesce(t.error, i.refused), t.provenance"        \
    " FROM bistore_transactions t LEFT JOIN bistore_intents i ON i.seq = t.seq"

static const char *const stmt_sql[Q_COUNT] = {
    [Q_ENTITY_GET] = "SELECT id, type, properties, metadata, version, hash, created_at,"
                     " updated_at FROM entities WHERE id = ?1",
    [Q_ENTITY_EXISTS] = "SELECT 1 FROM entities WHERE id = ?1",
    [Q_ENTITY_INSERT] = "INSERT INTO entities(id, type, properties, metadata, version, hash,"
                        " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [Q_ENTITY_UPDATE] = "UPDATE entities SET type = ?2, properties = ?3, metadata = ?4,"
                        " version = ?5, hash = ?6, updated_at = ?8 WHERE id = ?1",
    [Q_ENTITY_DELETE] = "DELETE FROM entities WHERE id = ?1",
    [Q_ENTITY_LIST] = "SELECT id, type, properties, metadata, version, hash, created_at,"
                      " updated_at FROM entities WHERE id > ?1 ORDER BY id LIMIT ?2",
    [Q_ENTITY_LIST_TYPE] = "SELECT id, type, properties, metadata, version, hash, created_at,"
                           " updated_at FROM entities WHERE type = ?3 AND id > ?1"
                           " ORDER BY id LIMIT ?2",
    [Q_RELS_OF_ENTITY] = "SELECT id, type, source_id, target_id, properties, version, hash,"
                         " created_at, updated_at FROM relationships WHERE source_id = ?1"
                         " UNION SELECT id, type, source_id, target_id, properties, version,"
                         " hash, created_at, updated_at FROM relationships WHERE target_id = ?1"
                         " ORDER BY 1",
    [Q_REL_GET] = "SELECT id, type, source_id, target_id, properties, version, hash,"
                  " created_at, updated_at FROM relationships WHERE id = ?1",
    [Q_REL_EXISTS] = "SELECT 1 FROM relationships WHERE id = ?1",
    [Q_REL_INSERT] = "INSERT INTO relationships(id, type, source_id, target_id, properties,"
                     " version, hash, created_at, updated_at)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [Q_REL_DELETE] = "DELETE FROM relationships WHERE id = ?1",
    [Q_INTENT_INSERT] = "INSERT INTO bistore_intents(seq, tx_id, statements, created_at)"
                        " VALUES (?1, ?2, ?3, ?4)",
    [Q_INTENT_MARK_APPLIED] = "UPDATE bistore_intents SET applied_at = ?2"
                              " WHERE applied_at IS NULL AND seq <= ?1",
    [Q_INTENT_PENDING] = "SELECT seq, tx_id, statements FROM bistore_intents"
                         " WHERE applied_at IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2",
    [Q_INTENT_MAX_SEQ] = "SELECT coalesce(max(seq), 0) FROM bistore_intents",
    [Q_INTENT_GET_PENDING] = "SELECT i.tx_id, i.refused, t.operations FROM bistore_intents i"
                             " LEFT JOIN bistore_transactions t ON t.seq = i.seq"
                             " WHERE i.seq = ?1 AND i.applied_at IS NULL",
    [Q_INTENT_SET_REFUSED] = "UPDATE bistore_intents SET refused = ?2 WHERE seq = ?1",
    [Q_INTENT_RESOLVE] = "UPDATE bistore_intents SET statements = ?2, refused = NULL"
                         " WHERE seq = ?1 AND applied_at IS NULL",
    [Q_TX_SET_ERROR_OF_SEQ] = "UPDATE bistore_transactions SET error = ?2 WHERE seq = ?1",
    [Q_INTENT_PENDING_COUNT] = "SELECT count(*), coalesce(min(seq), 0) FROM bistore_intents"
                               " WHERE applied_at IS NULL",
    [Q_TX_INSERT] = "INSERT INTO bistore_transactions(tx_id, seq, state, created_at,"
                    " operations, error, provenance) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_TX_GET] = "SELECT " TX_COLUMNS " WHERE t.tx_id = ?1",
    [Q_TX_LIST] = "SELECT " TX_COLUMNS " WHERE t.n > ?1 AND (?2 IS NULL OR st = ?2"
                  " OR (?2 = 'committed' AND st <> 'aborted')) ORDER BY t.n LIMIT ?3",
    [Q_IDEM_GET] = "SELECT body_hash, result, tx_id FROM bistore_idempotency"
                   " WHERE key = ?1 AND scope = ?2",
    [Q_IDEM_INSERT] = "INSERT INTO bistore_idempotency(key, scope, body_hash, result, tx_id,"
                      " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_META_GET] = "SELECT value FROM bistore_meta WHERE key = ?1",
    [Q_META_SET] = "INSERT INTO bistore_meta(key, value) VALUES (?1, ?2)"
                   " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
};

/* The error code of an SQLite failure: a full disk is told apart (507:
 * nothing was written, retry once there is room). */
static enum bs_code storage_code(int sqlite_rc)
{
    return (sqlite_rc & 0xff) == SQLITE_FULL ? BS_STORAGE_FULL : BS_STORAGE_ERROR;
}

static int sql_fail(struct sql_conn *c, struct bs_error *err, const char *what)
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

/* The cached statement id, reset and unbound; NULL on a prepare error. */
static sqlite3_stmt *stmt(struct sql_conn *c, enum sql_stmt_id id, struct bs_error *err)
{
    if (!c->stmts[id]) {
        if (sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmts[id],
                               NULL) != SQLITE_OK) {
            sql_fail(c, err, "prepare");
            return NULL;
        }
    } else {
        sqlite3_reset(c->stmts[id]);
        sqlite3_clear_bindings(c->stmts[id]);
    }
    return c->stmts[id];
}

static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
    return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i);
}

static void copy_col(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    const char *v = (const char *)sqlite3_column_text(s, col);
    snprintf(out, cap, "%s", v ? v : "");
}

static json_t *json_col(sqlite3_stmt *s, int col)
{
    const char *v = (const char *)sqlite3_column_text(s, col);
    if (!v)
        return NULL;
    return json_loads(v, 0, NULL);
}

/* Runs a statement that returns no rows; -1 (err filled) on failure. */
static int step_done(struct sql_conn *c, sqlite3_stmt *s, struct bs_error *err, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return sql_fail(c, err, what);
    return 0;
}

/*
 * Runs an insert of a new row: 0 done, 1 refused by a constraint (err
 * filled, not logged: a client's mistake the caller names), -1 otherwise.
 */
static int step_create(struct sql_conn *c, sqlite3_stmt *s, struct bs_error *err, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_CONSTRAINT)
        return sql_fail(c, err, what);
    bs_error_set(err, BS_STORAGE_ERROR, "SQLite: %s: %s", what, sqlite3_errmsg(c->db));
    return 1;
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

/* ---- entities ---- */

void sql_entity_clear(struct sql_entity *e)
{
    json_decref(e->properties);
    json_decref(e->metadata);
    e->properties = e->metadata = NULL;
}

void sql_relationship_clear(struct sql_relationship *r)
{
    json_decref(r->properties);
    r->properties = NULL;
}

static int read_entity(sqlite3_stmt *s, struct sql_entity *out)
{
    copy_col(s, 0, out->id, sizeof out->id);
    copy_col(s, 1, out->type, sizeof out->type);
    out->properties = json_col(s, 2);
    out->metadata = json_col(s, 3);
    out->version = sqlite3_column_int64(s, 4);
    copy_col(s, 5, out->hash, sizeof out->hash);
    copy_col(s, 6, out->created_at, sizeof out->created_at);
    copy_col(s, 7, out->updated_at, sizeof out->updated_at);
    return out->properties ? 0 : -1;
}

int sql_entity_get(struct sql_conn *c, const char *id, struct sql_entity *out, struct bs_error *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = stmt(c, Q_ENTITY_GET, err);
    if (!s)
        return -1;
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    int ret = 1;
    if (rc == SQLITE_ROW)
        ret = read_entity(s, out) == 0
                  ? 0
                  : (bs_error_set(err, BS_STORAGE_ERROR, "entity %s: unreadable JSON", id), -1);
    else if (rc != SQLITE_DONE)
        ret = sql_fail(c, err, "read entity");
    sqlite3_reset(s);
    return ret;
}

int sql_entity_exists(struct sql_conn *c, const char *id, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_ENTITY_EXISTS, err);
    if (!s)
        return -1;
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? 1 : sql_fail(c, err, "entity exists");
}

/* Binds ?1..?8 of the entity insert/update statements; props: canonical JSON. */
static sqlite3_stmt *bind_entity(struct sql_conn *c, enum sql_stmt_id id,
                                 const struct sql_entity *e, const char *props,
                                 struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, id, err);
    if (!s)
        return NULL;
    char *meta = e->metadata ? json_canon_dumps(e->metadata) : NULL;
    if (e->metadata && !meta) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        return NULL;
    }
    bind_text(s, 1, e->id);
    bind_text(s, 2, e->type);
    bind_text(s, 3, props);
    bind_text(s, 4, meta);
    sqlite3_bind_int64(s, 5, e->version);
    bind_text(s, 6, e->hash);
    bind_text(s, 7, e->created_at);
    bind_text(s, 8, e->updated_at);
    free(meta);
    return s;
}

static int write_entity(struct sql_conn *c, enum sql_stmt_id id, const struct sql_entity *e,
                        struct bs_error *err)
{
    char *props = json_canon_dumps(e->properties);
    if (!props) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        return -1;
    }
    sqlite3_stmt *s = bind_entity(c, id, e, props, err);
    free(props);
    if (!s)
        return -1;
    int rc = step_done(c, s, err, id == Q_ENTITY_INSERT ? "insert entity" : "update entity");
    if (rc == 0 && id == Q_ENTITY_UPDATE && sqlite3_changes(c->db) != 1)
        return sql_fail(c, err, "update entity: row vanished");
    return rc;
}

int sql_entity_insert(struct sql_conn *c, const struct sql_entity *e, struct bs_error *err)
{
    return write_entity(c, Q_ENTITY_INSERT, e, err);
}

int sql_entity_create(struct sql_conn *c, const struct sql_entity *e, const char *properties_text,
                      struct bs_error *err)
{
    sqlite3_stmt *s = bind_entity(c, Q_ENTITY_INSERT, e, properties_text, err);
    return s ? step_create(c, s, err, "insert entity") : -1;
}

int sql_entity_update(struct sql_conn *c, const struct sql_entity *e, struct bs_error *err)
{
    return write_entity(c, Q_ENTITY_UPDATE, e, err);
}

int sql_entity_delete(struct sql_conn *c, const char *id, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_ENTITY_DELETE, err);
    if (!s)
        return -1;
    bind_text(s, 1, id);
    return step_done(c, s, err, "delete entity");
}

int sql_entity_list(struct sql_conn *c, const char *type, const char *after, int limit,
                    json_t *items, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, type ? Q_ENTITY_LIST_TYPE : Q_ENTITY_LIST, err);
    if (!s)
        return -1;
    bind_text(s, 1, after ? after : "");
    sqlite3_bind_int(s, 2, limit);
    if (type)
        bind_text(s, 3, type);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct sql_entity e = {0};
        json_t *j = read_entity(s, &e) == 0 ? sql_entity_json(&e) : NULL;
        sql_entity_clear(&e);
        if (!j || json_array_append_new(items, j) != 0) {
            sqlite3_reset(s);
            bs_error_set(err, BS_STORAGE_ERROR, "entity row unreadable or out of memory");
            return -1;
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sql_fail(c, err, "list entities");
}

json_t *sql_entity_json(const struct sql_entity *e)
{
    return json_pack("{s:s, s:s, s:O, s:O?, s:I, s:s, s:s}", "id", e->id, "type", e->type,
                     "properties", e->properties, "metadata", e->metadata, "version",
                     (json_int_t)e->version, "created_at", e->created_at, "updated_at",
                     e->updated_at);
}

/* ---- relationships ---- */

static int read_relationship(sqlite3_stmt *s, struct sql_relationship *out)
{
    copy_col(s, 0, out->id, sizeof out->id);
    copy_col(s, 1, out->type, sizeof out->type);
    copy_col(s, 2, out->source, sizeof out->source);
    copy_col(s, 3, out->target, sizeof out->target);
    out->properties = json_col(s, 4);
    out->version = sqlite3_column_int64(s, 5);
    copy_col(s, 6, out->hash, sizeof out->hash);
    copy_col(s, 7, out->created_at, sizeof out->created_at);
    copy_col(s, 8, out->updated_at, sizeof out->updated_at);
    return out->properties ? 0 : -1;
}

int sql_relationships_of(struct sql_conn *c, const char *id,
                         int (*fn)(const struct sql_relationship *r, void *arg), void *arg,
                         struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_RELS_OF_ENTITY, err);
    if (!s)
        return -1;
    bind_text(s, 1, id);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct sql_relationship r = {0};
        int bad = read_relationship(s, &r);
        int ret = bad ? -1 : fn(&r, arg);
        sql_relationship_clear(&r);
        if (ret != 0) {
            sqlite3_reset(s);
            if (bad)
                bs_error_set(err, BS_STORAGE_ERROR, "relationship row unreadable");
            return -1;
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sql_fail(c, err, "relationships of entity");
}

int sql_relationship_get(struct sql_conn *c, const char *id, struct sql_relationship *out,
                         struct bs_error *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = stmt(c, Q_REL_GET, err);
    if (!s)
        return -1;
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    int ret = 1;
    if (rc == SQLITE_ROW)
        ret = read_relationship(s, out) == 0
                  ? 0
                  : (bs_error_set(err, BS_STORAGE_ERROR, "relationship %s unreadable", id), -1);
    else if (rc != SQLITE_DONE)
        ret = sql_fail(c, err, "read relationship");
    sqlite3_reset(s);
    return ret;
}

int sql_relationship_exists(struct sql_conn *c, const char *id, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_REL_EXISTS, err);
    if (!s)
        return -1;
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? 1 : sql_fail(c, err, "relationship exists");
}

/* Binds ?1..?9 of the relationship insert; props: canonical JSON. */
static sqlite3_stmt *bind_relationship(struct sql_conn *c, const struct sql_relationship *r,
                                       const char *props, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_REL_INSERT, err);
    if (!s)
        return NULL;
    bind_text(s, 1, r->id);
    bind_text(s, 2, r->type);
    bind_text(s, 3, r->source);
    bind_text(s, 4, r->target);
    bind_text(s, 5, props);
    sqlite3_bind_int64(s, 6, r->version);
    bind_text(s, 7, r->hash);
    bind_text(s, 8, r->created_at);
    bind_text(s, 9, r->updated_at);
    return s;
}

int sql_relationship_insert(struct sql_conn *c, const struct sql_relationship *r,
                            struct bs_error *err)
{
    char *props = json_canon_dumps(r->properties);
    if (!props) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        return -1;
    }
    sqlite3_stmt *s = bind_relationship(c, r, props, err);
    free(props);
    return s ? step_done(c, s, err, "insert relationship") : -1;
}

int sql_relationship_create(struct sql_conn *c, const struct sql_relationship *r,
                            const char *properties_text, struct bs_error *err)
{
    sqlite3_stmt *s = bind_relationship(c, r, properties_text, err);
    return s ? step_create(c, s, err, "insert relationship") : -1;
}

int sql_relationship_delete(struct sql_conn *c, const char *id, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_REL_DELETE, err);
    if (!s)
        return -1;
    bind_text(s, 1, id);
    return step_done(c, s, err, "delete relationship");
}

json_t *sql_relationship_json(const struct sql_relationship *r)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:O, s:I, s:s, s:s}", "id", r->id, "type", r->type,
                     "source", r->source, "target", r->target, "properties", r->properties,
                     "version", (json_int_t)r->version, "created_at", r->created_at, "updated_at",
                     r->updated_at);
}

/* ---- intent log ---- */

int sql_intent_insert(struct sql_conn *c, int64_t seq, const char *tx_id, const char *statements,
                      const char *created_at, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_INTENT_INSERT, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, seq);
    bind_text(s, 2, tx_id);
    bind_text(s, 3, statements);
    bind_text(s, 4, created_at);
    return step_done(c, s, err, "insert intent");
}

static int intent_mark(struct sql_conn *c, int64_t upto, const char *at, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_INTENT_MARK_APPLIED, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, upto);
    bind_text(s, 2, at);
    return step_done(c, s, err, "mark intents applied");
}

/*
 * The protocol's last step, in a transaction of its own. Its commit needs no
 * fsync: the mark only saves work (the watermark in Neo4j is the truth, and
 * recovery marks again from it). But the connection must stay durable for
 * what SQLite does inside that commit: it can run the auto-checkpoint, or be
 * the first writer after one and restart the WAL. synchronous = OFF, the
 * old choice, skips the syncs of both (the WAL before a checkpoint copies it
 * into the database, the database after; a restarted WAL's new header
 * before the frames after it), and a power cut then loses acknowledged
 * transactions or corrupts the file: tests/unit/test_powerloss.c, 256 of
 * 1,044 cut points lost some and 370 failed integrity_check.
 *
 * NORMAL skips only the commit's own sync of the WAL and keeps the others
 * (in WAL mode it is consistent, only not durable for the last commits,
 * which here is the mark; the next client commit, FULL, syncs the WAL with
 * the mark in it). FULL would sync the mark too: one fsync more per group.
 * bench/mark_cost.c, 3,000 marks, p50 (two runs on a quiet machine; two
 * with other tests' I/O): OFF 0.025-0.029 ms (0.059-0.062), NORMAL
 * 0.025-0.026 ms (0.063-0.065), FULL 0.155-0.157 ms (1.8-2.2). So NORMAL:
 * what OFF cost, with its syncs only where a checkpoint or restart needs
 * them (every ~1,000 pages).
 */
int sql_intent_mark_applied(struct sql_conn *c, int64_t upto, const char *at, struct bs_error *err)
{
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
    sqlite3_stmt *s = stmt(c, Q_INTENT_MAX_SEQ, err);
    if (!s)
        return -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *seq = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : sql_fail(c, err, "max intent seq");
}

int sql_intent_pending_count(struct sql_conn *c, int64_t *count, int64_t *oldest_seq,
                             struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_INTENT_PENDING_COUNT, err);
    if (!s)
        return -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *count = sqlite3_column_int64(s, 0);
        if (oldest_seq)
            *oldest_seq = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : sql_fail(c, err, "count pending intents");
}

int sql_intent_pending(struct sql_conn *c, int64_t after, int limit,
                       int (*fn)(int64_t seq, const char *tx_id, const char *statements, void *arg),
                       void *arg, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_INTENT_PENDING, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, after);
    sqlite3_bind_int(s, 2, limit);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (fn(sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
               (const char *)sqlite3_column_text(s, 2), arg) != 0) {
            sqlite3_reset(s);
            return -1;
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sql_fail(c, err, "pending intents");
}

int sql_intent_get_pending(struct sql_conn *c, int64_t seq, struct sql_intent *out,
                           struct bs_error *err)
{
    memset(out, 0, sizeof *out);
    out->seq = seq;
    sqlite3_stmt *s = stmt(c, Q_INTENT_GET_PENDING, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, seq);
    int rc = sqlite3_step(s);
    int ret = 1;
    if (rc == SQLITE_ROW) {
        const char *tx_id = (const char *)sqlite3_column_text(s, 0);
        snprintf(out->tx_id, sizeof out->tx_id, "%s", tx_id ? tx_id : "");
        out->refused = json_col(s, 1);
        out->operations = json_col(s, 2);
        ret = 0;
    } else if (rc != SQLITE_DONE) {
        ret = sql_fail(c, err, "read intent");
    }
    sqlite3_reset(s);
    return ret;
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
    sqlite3_stmt *s = stmt(c, Q_INTENT_SET_REFUSED, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, seq);
    bind_text(s, 2, refused);
    return step_done(c, s, err, "record a refused intent");
}

int sql_intent_resolve(struct sql_conn *c, int64_t seq, const char *statements,
                       const char *tx_error, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_INTENT_RESOLVE, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, seq);
    bind_text(s, 2, statements);
    if (step_done(c, s, err, "resolve intent") != 0)
        return -1;
    if (sqlite3_changes(c->db) != 1)
        return bs_error_set(err, BS_STORAGE_ERROR, "intent %lld is not pending", (long long)seq),
               -1;
    s = stmt(c, Q_TX_SET_ERROR_OF_SEQ, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, seq);
    bind_text(s, 2, tx_error);
    return step_done(c, s, err, "record the resolution");
}

/* ---- audit trail ---- */

int sql_tx_insert(struct sql_conn *c, const char *tx_id, int64_t seq, const char *state,
                  const char *created_at, const char *operations, const char *error,
                  const char *provenance, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_TX_INSERT, err);
    if (!s)
        return -1;
    bind_text(s, 1, tx_id);
    if (seq >= 0)
        sqlite3_bind_int64(s, 2, seq);
    else
        sqlite3_bind_null(s, 2);
    bind_text(s, 3, state);
    bind_text(s, 4, created_at);
    bind_text(s, 5, operations);
    bind_text(s, 6, error);
    bind_text(s, 7, provenance);
    return step_done(c, s, err, "insert transaction");
}

static json_t *tx_row_json(sqlite3_stmt *s)
{
    json_t *ops = json_col(s, 5);
    json_t *error = json_col(s, 6);
    json_t *prov = json_col(s, 7);
    const char *applied = (const char *)sqlite3_column_text(s, 4);
    return json_pack("{s:s, s:s, s:s, s:s?, s:o, s:o, s:o}", "tx_id",
                     (const char *)sqlite3_column_text(s, 1), "state",
                     (const char *)sqlite3_column_text(s, 2), "created_at",
                     (const char *)sqlite3_column_text(s, 3), "applied_at", applied, "operations",
                     ops ? ops : json_array(), "error", error ? error : json_null(), "provenance",
                     prov ? prov : json_null());
}

int sql_tx_get(struct sql_conn *c, const char *tx_id, json_t **out, struct bs_error *err)
{
    *out = NULL;
    sqlite3_stmt *s = stmt(c, Q_TX_GET, err);
    if (!s)
        return -1;
    bind_text(s, 1, tx_id);
    int rc = sqlite3_step(s);
    int ret = 1;
    if (rc == SQLITE_ROW) {
        *out = tx_row_json(s);
        ret = *out ? 0 : (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
    } else if (rc != SQLITE_DONE) {
        ret = sql_fail(c, err, "read transaction");
    }
    sqlite3_reset(s);
    return ret;
}

int sql_tx_list(struct sql_conn *c, const char *state, int64_t after, int limit, json_t *items,
                int64_t *last, bool *more, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_TX_LIST, err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, after);
    bind_text(s, 2, state);
    sqlite3_bind_int(s, 3, limit + 1); /* one more row tells whether a next page exists */
    int rc;
    *last = after;
    *more = false;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (json_array_size(items) == (size_t)limit) {
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

int sql_idem_get(struct sql_conn *c, const char *key, const char *scope, char body_hash[17],
                 json_t **result, char tx_id[UUID_STR_LEN], struct bs_error *err)
{
    *result = NULL;
    sqlite3_stmt *s = stmt(c, Q_IDEM_GET, err);
    if (!s)
        return -1;
    bind_text(s, 1, key);
    bind_text(s, 2, scope);
    int rc = sqlite3_step(s);
    int ret = 1;
    if (rc == SQLITE_ROW) {
        copy_col(s, 0, body_hash, 17);
        *result = json_col(s, 1);
        copy_col(s, 2, tx_id, UUID_STR_LEN);
        ret = *result ? 0 : (bs_error_set(err, BS_STORAGE_ERROR, "stored response unreadable"), -1);
    } else if (rc != SQLITE_DONE) {
        ret = sql_fail(c, err, "read idempotency key");
    }
    sqlite3_reset(s);
    return ret;
}

int sql_idem_insert(struct sql_conn *c, const char *key, const char *scope, const char *body_hash,
                    const char *result, const char *tx_id, const char *created_at,
                    struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_IDEM_INSERT, err);
    if (!s)
        return -1;
    bind_text(s, 1, key);
    bind_text(s, 2, scope);
    bind_text(s, 3, body_hash);
    bind_text(s, 4, result);
    bind_text(s, 5, tx_id);
    bind_text(s, 6, created_at);
    return step_done(c, s, err, "insert idempotency key");
}

int sql_meta_get(struct sql_conn *c, const char *key, char *out, size_t cap, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_META_GET, err);
    if (!s)
        return -1;
    bind_text(s, 1, key);
    int rc = sqlite3_step(s);
    int ret = 1;
    if (rc == SQLITE_ROW) {
        copy_col(s, 0, out, cap);
        ret = 0;
    } else if (rc != SQLITE_DONE) {
        ret = sql_fail(c, err, "read meta");
    }
    sqlite3_reset(s);
    return ret;
}

int sql_meta_set(struct sql_conn *c, const char *key, const char *value, struct bs_error *err)
{
    sqlite3_stmt *s = stmt(c, Q_META_SET, err);
    if (!s)
        return -1;
    bind_text(s, 1, key);
    bind_text(s, 2, value);
    return step_done(c, s, err, "write meta");
}
