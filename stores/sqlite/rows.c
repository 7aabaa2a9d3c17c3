/*
 * Entity and relationship rows (stores/sqlite/sqlite.h): the tables
 * `entities` and `relationships`, read and written one row at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stores/sqlite/internal.h"

#define ENTITY_COLUMNS "id, type, properties, metadata, version, hash, created_at, updated_at"
#define RELATIONSHIP_COLUMNS                                                                       \
    "id, type, source_id, target_id, properties, version, hash, created_at, updated_at"

/* ---- entities ---- */

void sql_entity_clear(struct sql_entity *e)
{
    json_decref(e->properties);
    json_decref(e->metadata);
    e->properties = e->metadata = NULL;
}

/* An ENTITY_COLUMNS row into out (a struct sql_entity); -1 when its JSON is unreadable. */
static int read_entity(sqlite3_stmt *s, void *out)
{
    struct sql_entity *e = out;
    sql_copy_col(s, 0, e->id, sizeof e->id);
    sql_copy_col(s, 1, e->type, sizeof e->type);
    e->properties = sql_json_col(s, 2);
    e->metadata = sql_json_col(s, 3);
    e->version = sqlite3_column_int64(s, 4);
    sql_copy_col(s, 5, e->hash, sizeof e->hash);
    sql_copy_col(s, 6, e->created_at, sizeof e->created_at);
    sql_copy_col(s, 7, e->updated_at, sizeof e->updated_at);
    return e->properties ? 0 : -1;
}

enum lookup sql_entity_get(struct sql_conn *c, const char *id, struct sql_entity *out,
                           struct bs_error *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s =
        sql_stmt(c, Q_ENTITY_GET, "SELECT " ENTITY_COLUMNS " FROM entities WHERE id = ?1", err);
    if (!s)
        return LOOKUP_FAILED;
    sql_bind_text(s, 1, id);
    return sql_step_one(c, s, read_entity, out, "read entity", err);
}

enum lookup sql_entity_exists(struct sql_conn *c, const char *id, struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_ENTITY_EXISTS, "SELECT 1 FROM entities WHERE id = ?1", err);
    if (!s)
        return LOOKUP_FAILED;
    sql_bind_text(s, 1, id);
    return sql_step_exists(c, s, "entity exists", err);
}

/* Binds ?1..?8 of the entity insert/update statements; props: canonical JSON. */
static sqlite3_stmt *bind_entity(sqlite3_stmt *s, const struct sql_entity *e, const char *props,
                                 struct bs_error *err)
{
    if (!s)
        return NULL;
    char *meta = e->metadata ? json_canon_dumps(e->metadata) : NULL;
    if (e->metadata && !meta) {
        bs_error_set(err, BS_STORAGE_ERROR, "out of memory");
        return NULL;
    }
    sql_bind_text(s, 1, e->id);
    sql_bind_text(s, 2, e->type);
    sql_bind_text(s, 3, props);
    sql_bind_text(s, 4, meta);
    sqlite3_bind_int64(s, 5, e->version);
    sql_bind_text(s, 6, e->hash);
    sql_bind_text(s, 7, e->created_at);
    sql_bind_text(s, 8, e->updated_at);
    free(meta);
    return s;
}

static sqlite3_stmt *entity_insert(struct sql_conn *c, struct bs_error *err)
{
    return sql_stmt(
        c, Q_ENTITY_INSERT,
        "INSERT INTO entities(" ENTITY_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", err);
}

int sql_entity_insert(struct sql_conn *c, const struct sql_entity *e, struct bs_error *err)
{
    char *props = json_canon_dumps(e->properties);
    if (!props)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    sqlite3_stmt *s = bind_entity(entity_insert(c, err), e, props, err);
    free(props);
    return s ? sql_step_done(c, s, err, "insert entity") : -1;
}

enum sql_insert sql_entity_create(struct sql_conn *c, const struct sql_entity *e,
                                  const char *properties_text, struct bs_error *err)
{
    sqlite3_stmt *s = bind_entity(entity_insert(c, err), e, properties_text, err);
    return s ? sql_step_create(c, s, err, "insert entity") : SQL_INSERT_FAILED;
}

int sql_entity_update(struct sql_conn *c, const struct sql_entity *e, struct bs_error *err)
{
    char *props = json_canon_dumps(e->properties);
    if (!props)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    sqlite3_stmt *s = bind_entity(
        sql_stmt(c, Q_ENTITY_UPDATE,
                 "UPDATE entities SET type = ?2, properties = ?3, metadata = ?4, version = ?5,"
                 " hash = ?6, updated_at = ?8 WHERE id = ?1",
                 err),
        e, props, err);
    free(props);
    if (!s || sql_step_done(c, s, err, "update entity") != 0)
        return -1;
    return sqlite3_changes(c->db) == 1 ? 0 : sql_fail(c, err, "update entity: row vanished");
}

int sql_entity_delete(struct sql_conn *c, const char *id, struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_ENTITY_DELETE, "DELETE FROM entities WHERE id = ?1", err);
    if (!s)
        return -1;
    sql_bind_text(s, 1, id);
    return sql_step_done(c, s, err, "delete entity");
}

int sql_entity_list(struct sql_conn *c, const char *type, const char *after, int limit,
                    size_t max_bytes, json_t *items, bool *more, struct bs_error *err)
{
    sqlite3_stmt *s = type ? sql_stmt(c, Q_ENTITY_LIST_TYPE,
                                      "SELECT " ENTITY_COLUMNS " FROM entities WHERE type = ?3"
                                      " AND id > ?1 ORDER BY id LIMIT ?2",
                                      err)
                           : sql_stmt(c, Q_ENTITY_LIST,
                                      "SELECT " ENTITY_COLUMNS " FROM entities WHERE id > ?1"
                                      " ORDER BY id LIMIT ?2",
                                      err);
    if (!s)
        return -1;
    sql_bind_text(s, 1, after ? after : "");
    sqlite3_bind_int(s, 2, limit + 1); /* one more row tells whether a next page exists */
    if (type)
        sql_bind_text(s, 3, type);
    int rc;
    size_t used = 0;
    *more = false;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (sql_page_full(s, items, limit, max_bytes, &used)) {
            *more = true;
            rc = SQLITE_DONE;
            break;
        }
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

void sql_relationship_clear(struct sql_relationship *r)
{
    json_decref(r->properties);
    r->properties = NULL;
}

/* A RELATIONSHIP_COLUMNS row into out (a struct sql_relationship). */
static int read_relationship(sqlite3_stmt *s, void *out)
{
    struct sql_relationship *r = out;
    sql_copy_col(s, 0, r->id, sizeof r->id);
    sql_copy_col(s, 1, r->type, sizeof r->type);
    sql_copy_col(s, 2, r->source, sizeof r->source);
    sql_copy_col(s, 3, r->target, sizeof r->target);
    r->properties = sql_json_col(s, 4);
    r->version = sqlite3_column_int64(s, 5);
    sql_copy_col(s, 6, r->hash, sizeof r->hash);
    sql_copy_col(s, 7, r->created_at, sizeof r->created_at);
    sql_copy_col(s, 8, r->updated_at, sizeof r->updated_at);
    return r->properties ? 0 : -1;
}

int sql_relationships_of(struct sql_conn *c, const char *id,
                         int (*fn)(const struct sql_relationship *r, void *arg), void *arg,
                         struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_RELS_OF_ENTITY,
                               "SELECT " RELATIONSHIP_COLUMNS " FROM relationships"
                               " WHERE source_id = ?1 UNION SELECT " RELATIONSHIP_COLUMNS
                               " FROM relationships WHERE target_id = ?1 ORDER BY 1",
                               err);
    if (!s)
        return -1;
    sql_bind_text(s, 1, id);
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

enum lookup sql_relationship_get(struct sql_conn *c, const char *id, struct sql_relationship *out,
                                 struct bs_error *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = sql_stmt(
        c, Q_REL_GET, "SELECT " RELATIONSHIP_COLUMNS " FROM relationships WHERE id = ?1", err);
    if (!s)
        return LOOKUP_FAILED;
    sql_bind_text(s, 1, id);
    return sql_step_one(c, s, read_relationship, out, "read relationship", err);
}

enum lookup sql_relationship_exists(struct sql_conn *c, const char *id, struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_REL_EXISTS, "SELECT 1 FROM relationships WHERE id = ?1", err);
    if (!s)
        return LOOKUP_FAILED;
    sql_bind_text(s, 1, id);
    return sql_step_exists(c, s, "relationship exists", err);
}

/* Binds ?1..?9 of the relationship insert; props: canonical JSON. */
static sqlite3_stmt *bind_relationship(struct sql_conn *c, const struct sql_relationship *r,
                                       const char *props, struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_REL_INSERT,
                               "INSERT INTO relationships(" RELATIONSHIP_COLUMNS ")"
                               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                               err);
    if (!s)
        return NULL;
    sql_bind_text(s, 1, r->id);
    sql_bind_text(s, 2, r->type);
    sql_bind_text(s, 3, r->source);
    sql_bind_text(s, 4, r->target);
    sql_bind_text(s, 5, props);
    sqlite3_bind_int64(s, 6, r->version);
    sql_bind_text(s, 7, r->hash);
    sql_bind_text(s, 8, r->created_at);
    sql_bind_text(s, 9, r->updated_at);
    return s;
}

int sql_relationship_insert(struct sql_conn *c, const struct sql_relationship *r,
                            struct bs_error *err)
{
    char *props = json_canon_dumps(r->properties);
    if (!props)
        return bs_error_set(err, BS_STORAGE_ERROR, "out of memory"), -1;
    sqlite3_stmt *s = bind_relationship(c, r, props, err);
    free(props);
    return s ? sql_step_done(c, s, err, "insert relationship") : -1;
}

enum sql_insert sql_relationship_create(struct sql_conn *c, const struct sql_relationship *r,
                                        const char *properties_text, struct bs_error *err)
{
    sqlite3_stmt *s = bind_relationship(c, r, properties_text, err);
    return s ? sql_step_create(c, s, err, "insert relationship") : SQL_INSERT_FAILED;
}

int sql_relationship_delete(struct sql_conn *c, const char *id, struct bs_error *err)
{
    sqlite3_stmt *s = sql_stmt(c, Q_REL_DELETE, "DELETE FROM relationships WHERE id = ?1", err);
    if (!s)
        return -1;
    sql_bind_text(s, 1, id);
    return sql_step_done(c, s, err, "delete relationship");
}

json_t *sql_relationship_json(const struct sql_relationship *r)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:O, s:I, s:s, s:s}", "id", r->id, "type", r->type,
                     "source", r->source, "target", r->target, "properties", r->properties,
                     "version", (json_int_t)r->version, "created_at", r->created_at, "updated_at",
                     r->updated_at);
}
