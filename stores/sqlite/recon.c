/* Reconciliation in SQLite (stores/sqlite/recon.h). */
#include "stores/sqlite/recon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stores/sqlite/internal.h"

/* ---- runs ---- */

#define RUN_COLUMNS                                                                                \
    "n, id, state, mode, repair, dry_run, started_at, finished_at, scanned, total, summary, error"

static json_t *run_row_json(sqlite3_stmt *q)
{
    json_t *summary = sql_json_col(q, 10);
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:s?, s:{s:I, s:I}, s:o, s:s?}", "id",
                     sqlite3_column_text(q, 1), "state", sqlite3_column_text(q, 2), "mode",
                     sqlite3_column_text(q, 3), "repair", sqlite3_column_text(q, 4), "dry_run",
                     sqlite3_column_int(q, 5), "started_at", sqlite3_column_text(q, 6),
                     "finished_at", sqlite3_column_text(q, 7), "progress", "scanned",
                     (json_int_t)sqlite3_column_int64(q, 8), "total",
                     (json_int_t)sqlite3_column_int64(q, 9), "summary",
                     summary ? summary : json_object(), "error", sqlite3_column_text(q, 11));
}

int sql_run_insert(struct sql_conn *c, const char *id, const char *mode, const char *repair,
                   bool dry_run, const char *started_at, const char *summary, int64_t *n,
                   struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_RUN_INSERT,
                               "INSERT INTO bistore_reconciliations(id, state, mode, repair,"
                               " dry_run, started_at, summary) VALUES (?1, 'running', ?2, ?3, ?4,"
                               " ?5, ?6)",
                               err);
    if (!s)
        return -1;
    sql_bind_text(s, 1, id);
    sql_bind_text(s, 2, mode);
    sql_bind_text(s, 3, repair);
    sqlite3_bind_int(s, 4, dry_run);
    sql_bind_text(s, 5, started_at);
    sql_bind_text(s, 6, summary);
    if (sql_step_done(c, s, err, "insert reconciliation") != 0)
        return -1;
    *n = sqlite3_last_insert_rowid(c->db);
    return 0;
}

int sql_run_update(struct sql_conn *c, int64_t n, const char *state, const char *finished_at,
                   int64_t scanned, int64_t total, const char *summary, const char *error,
                   struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_RUN_UPDATE,
                               "UPDATE bistore_reconciliations SET state = ?1, finished_at = ?2,"
                               " scanned = ?3, total = ?4, summary = ?5, error = ?6 WHERE n = ?7",
                               err);
    if (!s)
        return -1;
    sql_bind_text(s, 1, state);
    sql_bind_text(s, 2, finished_at);
    sqlite3_bind_int64(s, 3, scanned);
    sqlite3_bind_int64(s, 4, total);
    sql_bind_text(s, 5, summary);
    sql_bind_text(s, 6, error);
    sqlite3_bind_int64(s, 7, n);
    return sql_step_done(c, s, err, "update reconciliation");
}

int sql_run_mark_interrupted(struct sql_conn *c, const char *at, struct bs_error *err)
{
    sqlite3_stmt *s =
        sql_stmt(c, Q_RUN_MARK_INTERRUPTED,
                 "UPDATE bistore_reconciliations SET state = 'failed', finished_at = ?1,"
                 " error = 'interrupted: the gateway stopped during the run'"
                 " WHERE state = 'running'",
                 err);
    if (!s)
        return -1;
    sql_bind_text(s, 1, at);
    return sql_step_done(c, s, err, "mark interrupted reconciliations");
}

static int read_run(sqlite3_stmt *s, void *out)
{
    json_t **run = out;
    *run = run_row_json(s);
    return *run ? 0 : -1;
}

enum lookup sql_run_get(struct sql_conn *c, const char *id, json_t **out, struct bs_error *err)
{
    *out = NULL;
    sqlite3_stmt *s = sql_stmt(
        c, Q_RUN_GET, "SELECT " RUN_COLUMNS " FROM bistore_reconciliations WHERE id = ?1", err);
    if (!s)
        return LOOKUP_FAILED;
    sql_bind_text(s, 1, id);
    return sql_step_one(c, s, read_run, out, "read reconciliation", err);
}

static int read_n(sqlite3_stmt *s, void *out)
{
    *(int64_t *)out = sqlite3_column_int64(s, 0);
    return 0;
}

enum lookup sql_run_n(struct sql_conn *c, const char *id, int64_t *n, struct bs_error *err)
{
    sqlite3_stmt *s =
        sql_stmt(c, Q_RUN_N, "SELECT n FROM bistore_reconciliations WHERE id = ?1", err);
    if (!s)
        return LOOKUP_FAILED;
    sql_bind_text(s, 1, id);
    return sql_step_one(c, s, read_n, n, "read reconciliation", err);
}

/*
 * Appends the rows of s (limit + 1 asked for), each made by row_json, to
 * items: at most limit; the one more tells *more. Column 0 is the row
 * number that *last gets.
 */
static int page_rows(struct sql_conn *c, sqlite3_stmt *s, json_t *(*row_json)(sqlite3_stmt *),
                     int limit, json_t *items, int64_t *last, bool *more, const char *what,
                     struct bs_error *err)
{
    *more = false;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (json_array_size(items) == (size_t)limit) {
            *more = true;
            rc = SQLITE_DONE;
            break;
        }
        json_t *row = row_json(s);
        *last = sqlite3_column_int64(s, 0);
        if (!row || json_array_append_new(items, row) != 0) {
            sqlite3_reset(s);
            return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sql_fail(c, err, what);
}

int sql_run_list(struct sql_conn *c, int64_t before, int limit, json_t *items, int64_t *last,
                 bool *more, struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_RUN_LIST,
                               "SELECT " RUN_COLUMNS " FROM bistore_reconciliations WHERE n < ?1"
                               " ORDER BY n DESC LIMIT ?2",
                               err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, before);
    sqlite3_bind_int(s, 2, limit + 1);
    return page_rows(c, s, run_row_json, limit, items, last, more, "list reconciliations", err);
}

/* ---- findings ---- */

static json_t *finding_row_json(sqlite3_stmt *q)
{
    json_t *s = sql_json_col(q, 4), *n = sql_json_col(q, 5);
    const char *id = (const char *)sqlite3_column_text(q, 3);
    return json_pack("{s:I, s:s, s:s, s:s?, s:o, s:o, s:s}", "n",
                     (json_int_t)sqlite3_column_int64(q, 0), "kind", sqlite3_column_text(q, 1),
                     "object", sqlite3_column_text(q, 2), "id", id, "sqlite", s ? s : json_null(),
                     "neo4j", n ? n : json_null(), "action", sqlite3_column_text(q, 6));
}

/* One finding's row into the insert statement; -1 when out of memory. */
static int bind_finding(sqlite3_stmt *q, int64_t run_n, int64_t n, const json_t *f)
{
    json_t *s = json_object_get(f, "sqlite"), *nj = json_object_get(f, "neo4j");
    char *sqlite_text = !s || json_is_null(s) ? NULL : json_dumps(s, JSON_COMPACT);
    char *neo4j_text = !nj || json_is_null(nj) ? NULL : json_dumps(nj, JSON_COMPACT);
    sqlite3_bind_int64(q, 1, run_n);
    sqlite3_bind_int64(q, 2, n);
    sql_bind_text(q, 3, json_string_value(json_object_get(f, "kind")));
    sql_bind_text(q, 4, json_string_value(json_object_get(f, "object")));
    sql_bind_text(q, 5, json_string_value(json_object_get(f, "id")));
    sql_bind_text(q, 6, sqlite_text);
    sql_bind_text(q, 7, neo4j_text);
    bool lost = (s && !json_is_null(s) && !sqlite_text) || (nj && !json_is_null(nj) && !neo4j_text);
    free(sqlite_text);
    free(neo4j_text);
    return lost ? -1 : 0;
}

int sql_findings_insert(struct sql_conn *c, int64_t run_n, int64_t first, const json_t *findings,
                        struct bs_error *err)
{
    if (json_array_size(findings) == 0)
        return 0;
    if (sql_begin(c, err) != 0)
        return -1;
    sqlite3_stmt *q = sql_stmt(c, Q_FINDING_INSERT,
                               "INSERT INTO bistore_findings(run_n, n, kind, object, id, sqlite,"
                               " neo4j, action) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'none')",
                               err);
    int rc = q ? 0 : -1;
    size_t i;
    json_t *f;
    json_array_foreach (findings, i, f) {
        if (rc != 0)
            break;
        if (bind_finding(q, run_n, first + 1 + (int64_t)i, f) != 0)
            rc = (bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1);
        else
            rc = sql_step_done(c, q, err, "insert finding");
        sqlite3_clear_bindings(q);
    }
    if (rc == 0)
        return sql_commit(c, err);
    sql_rollback(c);
    return -1;
}

int sql_findings_page(struct sql_conn *c, int64_t run_n, const char *kind, int64_t after, int limit,
                      json_t *items, int64_t *last, bool *more, struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_FINDING_PAGE,
                               "SELECT n, kind, object, id, sqlite, neo4j, action FROM"
                               " bistore_findings WHERE run_n = ?1 AND n > ?2"
                               " AND (?3 IS NULL OR kind = ?3) ORDER BY n LIMIT ?4",
                               err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, run_n);
    sqlite3_bind_int64(s, 2, after);
    sql_bind_text(s, 3, kind);
    sqlite3_bind_int(s, 4, limit + 1);
    return page_rows(c, s, finding_row_json, limit, items, last, more, "read findings", err);
}

int sql_finding_set_action(struct sql_conn *c, int64_t run_n, int64_t n, const char *action,
                           const char *adopted_id, struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_FINDING_SET_ACTION,
                               "UPDATE bistore_findings SET action = ?3,"
                               " neo4j = CASE WHEN ?4 IS NULL THEN neo4j"
                               " ELSE json_set(neo4j, '$.adopted_id', ?4) END"
                               " WHERE run_n = ?1 AND n = ?2",
                               err);
    if (!s)
        return -1;
    sqlite3_bind_int64(s, 1, run_n);
    sqlite3_bind_int64(s, 2, n);
    sql_bind_text(s, 3, action);
    sql_bind_text(s, 4, adopted_id);
    return sql_step_done(c, s, err, "update finding");
}

/* ---- the scan's reads ---- */

#define SCAN_ENTITY_COLUMNS "id, type, version, hash"
#define SCAN_RELATIONSHIP_COLUMNS "id, type, source_id, target_id, version, hash"

static json_t *scan_entity_row(sqlite3_stmt *s, bool deep)
{
    json_t *row = json_pack(
        "{s:s, s:s, s:I, s:s}", "id", sqlite3_column_text(s, 0), "type", sqlite3_column_text(s, 1),
        "version", (json_int_t)sqlite3_column_int64(s, 2), "hash", sqlite3_column_text(s, 3));
    if (row && deep) {
        json_t *props = sql_json_col(s, 4);
        json_object_set_new(row, "properties", props ? props : json_null());
    }
    return row;
}

static json_t *scan_relationship_row(sqlite3_stmt *s, bool deep)
{
    json_t *row =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "id", sqlite3_column_text(s, 0), "type",
                  sqlite3_column_text(s, 1), "source", sqlite3_column_text(s, 2), "target",
                  sqlite3_column_text(s, 3), "version", (json_int_t)sqlite3_column_int64(s, 4),
                  "hash", sqlite3_column_text(s, 5));
    if (row && deep) {
        json_t *props = sql_json_col(s, 6);
        json_object_set_new(row, "properties", props ? props : json_null());
    }
    return row;
}

/* The scan's pages: ids in [?1, ?3), the first ?4 dropped (seen on the page
 * before), at most ?2. An open end is bound as a blob, which sorts after
 * every text in SQLite, so the upper bound is always an index bound. */
static sqlite3_stmt *scan_statement(struct sql_conn *c, bool relationships, bool deep,
                                    struct bs_error *err)
{
    if (!relationships)
        return deep ? sql_stmt(c, Q_SCAN_ENTITIES_DEEP,
                               "SELECT " SCAN_ENTITY_COLUMNS ", properties FROM entities"
                               " WHERE id >= ?1 AND id < ?3 ORDER BY id LIMIT ?2 OFFSET ?4",
                               err)
                    : sql_stmt(c, Q_SCAN_ENTITIES_FAST,
                               "SELECT " SCAN_ENTITY_COLUMNS " FROM entities WHERE id >= ?1"
                               " AND id < ?3 ORDER BY id LIMIT ?2 OFFSET ?4",
                               err);
    return deep ? sql_stmt(c, Q_SCAN_RELS_DEEP,
                           "SELECT " SCAN_RELATIONSHIP_COLUMNS ", properties FROM relationships"
                           " WHERE type = ?5 AND id >= ?1 AND id < ?3 ORDER BY id"
                           " LIMIT ?2 OFFSET ?4",
                           err)
                : sql_stmt(c, Q_SCAN_RELS_FAST,
                           "SELECT " SCAN_RELATIONSHIP_COLUMNS " FROM relationships"
                           " WHERE type = ?5 AND id >= ?1 AND id < ?3 ORDER BY id"
                           " LIMIT ?2 OFFSET ?4",
                           err);
}

/* Binds the range [lo, hi) as ?1 and ?3 (hi NULL: no end). */
static void bind_range(sqlite3_stmt *s, const char *lo, const char *hi)
{
    sql_bind_text(s, 1, lo);
    if (hi)
        sql_bind_text(s, 3, hi);
    else
        sqlite3_bind_zeroblob(s, 3, 0);
}

int sql_scan_page(struct sql_conn *c, const char *type, bool deep, const struct sql_scan_at *at,
                  int limit, json_t *page, struct bs_error *err)
{
    sqlite3_stmt *s = scan_statement(c, type != NULL, deep, err);
    if (!s)
        return -1;
    bind_range(s, at->after, at->before);
    sqlite3_bind_int(s, 2, limit);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)at->skip);
    if (type)
        sql_bind_text(s, 5, type);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *row = type ? scan_relationship_row(s, deep) : scan_entity_row(s, deep);
        if (!row || json_array_append_new(page, row) != 0) {
            sqlite3_reset(s);
            return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sql_fail(c, err, "scan");
}

/* Steps s to its end, appending its first column's text to out; resets s. */
static int append_texts(struct sql_conn *c, sqlite3_stmt *s, json_t *out, const char *what,
                        struct bs_error *err)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (json_array_append_new(out, json_string((const char *)sqlite3_column_text(s, 0))) != 0) {
            sqlite3_reset(s);
            return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : sql_fail(c, err, what);
}

/* ---- range checksums (stores/reconcile/ranges.c) ---- */

int sql_range_sums(struct sql_conn *c, const char *type, const char *lo, const char *hi,
                   struct canon_sums *out, struct bs_error *err)
{
    sqlite3_stmt *s =
        type ? sql_stmt(c, Q_RANGE_SUMS_RELS,
                        "SELECT count(*), sum(bistore_hash_part(hash, 1)),"
                        " sum(bistore_hash_part(hash, 2)), sum(version),"
                        " sum(bistore_id_part(source_id)), sum(bistore_id_part(target_id))"
                        " FROM relationships WHERE type = ?5 AND id >= ?1 AND id < ?3",
                        err)
             : sql_stmt(c, Q_RANGE_SUMS_ENTITIES,
                        "SELECT count(*), sum(bistore_hash_part(hash, 1)),"
                        " sum(bistore_hash_part(hash, 2)), sum(version) FROM entities"
                        " WHERE id >= ?1 AND id < ?3",
                        err);
    if (!s)
        return -1;
    bind_range(s, lo, hi);
    if (type)
        sql_bind_text(s, 5, type);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->count = sqlite3_column_int64(s, 0);
        out->h1 = sqlite3_column_int64(s, 1);
        out->h2 = sqlite3_column_int64(s, 2);
        out->version = sqlite3_column_int64(s, 3);
        out->source = type ? sqlite3_column_int64(s, 4) : 0;
        out->target = type ? sqlite3_column_int64(s, 5) : 0;
    }
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : sql_fail(c, err, "range checksum");
}

int sql_range_keys(struct sql_conn *c, const char *type, const char *lo, const char *hi,
                   int64_t every, json_t *keys, struct bs_error *err)
{
    sqlite3_stmt *s =
        type ? sql_stmt(c, Q_RANGE_KEYS_RELS,
                        "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS k"
                        " FROM relationships WHERE type = ?5 AND id >= ?1 AND id < ?3)"
                        " WHERE k % ?2 = 1 AND k > 1",
                        err)
             : sql_stmt(c, Q_RANGE_KEYS_ENTITIES,
                        "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS k"
                        " FROM entities WHERE id >= ?1 AND id < ?3) WHERE k % ?2 = 1 AND k > 1",
                        err);
    if (!s)
        return -1;
    bind_range(s, lo, hi);
    sqlite3_bind_int64(s, 2, every > 0 ? every : 1);
    if (type)
        sql_bind_text(s, 5, type);
    return append_texts(c, s, keys, "range keys", err);
}

int sql_scan_relationship_types(struct sql_conn *c, json_t *types, struct bs_error *err)
{
    /* Ascending, one index seek per type (relationships_type_id), where
     * DISTINCT would read every row of the index. */
    sqlite3_stmt *s = sql_stmt(c, Q_SCAN_REL_TYPES,
                               "WITH RECURSIVE t(type) AS (SELECT min(type) FROM relationships"
                               " UNION ALL SELECT (SELECT min(type) FROM relationships"
                               " WHERE type > t.type) FROM t WHERE t.type IS NOT NULL)"
                               " SELECT type FROM t WHERE type IS NOT NULL",
                               err);
    if (!s)
        return -1;
    return append_texts(c, s, types, "relationship types", err);
}

int sql_scan_count(struct sql_conn *c, int64_t *count, struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_SCAN_COUNT,
                               "SELECT (SELECT count(*) FROM entities) +"
                               " (SELECT count(*) FROM relationships)",
                               err);
    if (!s)
        return -1;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *count = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : sql_fail(c, err, "count rows");
}

int sql_scan_reread(struct sql_conn *c, bool entity, bool deep, const char *id, json_t **row,
                    struct bs_error *err)
{
    sqlite3_stmt *s = entity ? sql_stmt(c, Q_REREAD_ENTITY,
                                        "SELECT " SCAN_ENTITY_COLUMNS ", properties FROM entities"
                                        " WHERE id = ?1",
                                        err)
                             : sql_stmt(c, Q_REREAD_RELATIONSHIP,
                                        "SELECT " SCAN_RELATIONSHIP_COLUMNS ", properties FROM"
                                        " relationships WHERE id = ?1",
                                        err);
    *row = NULL;
    if (!s)
        return -1;
    sql_bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *row = entity ? scan_entity_row(s, deep) : scan_relationship_row(s, deep);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return bs_error_set(err, BS_STORAGE_ERROR, "SQLite: re-read failed"), -1;
    if (!*row)
        *row = json_null();
    return 0;
}
